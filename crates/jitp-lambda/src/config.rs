//! The function's settings, read once at init from its environment.
//!
//! Every variable is optional; a value that is set but wrong is an error, so a typo fails the deployment at init
//! instead of silently falling back to a default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jitp_core::event::AccountId;
use jitp_core::policy::AwsContext;
use jitp_core::profile::{OnReject, Overrides, PolicyMode};

/// Path of jitp.toml. Default: `templates/jitp.toml` beside the executable.
pub const CONFIG_ENV: &str = "JITP_CONFIG";
/// `per-thing` or `shared`: replaces `defaults.policy_mode`.
pub const POLICY_MODE_ENV: &str = "JITP_POLICY_MODE";
/// Replaces `defaults.policy_prefix`.
pub const POLICY_PREFIX_ENV: &str = "JITP_POLICY_PREFIX";
/// `revoke`, `deactivate` or `leave`: replaces `defaults.on_reject`.
pub const ON_REJECT_ENV: &str = "JITP_ON_REJECT";
/// `aws` (default), `memory` or `memory:PATH`.
pub const REGISTRY_ENV: &str = "JITP_REGISTRY";
/// An endpoint to use instead of AWS IoT's (an emulator such as moto's server).
pub const ENDPOINT_ENV: &str = jitp_aws::ENDPOINT_ENV;
/// Records of one SQS batch handled at once (default [`DEFAULT_SQS_CONCURRENCY`]).
pub const SQS_CONCURRENCY_ENV: &str = "JITP_SQS_CONCURRENCY";
/// How long one event may spend retrying transient failures, in milliseconds (default 20000).
pub const RETRY_DEADLINE_ENV: &str = "JITP_RETRY_DEADLINE_MS";
/// The account written into policies. Default: the account of the function's own ARN.
pub const ACCOUNT_ENV: &str = "JITP_AWS_ACCOUNT_ID";
/// The partition written into policies. Default: the partition of the function's own ARN.
pub const PARTITION_ENV: &str = "JITP_AWS_PARTITION";
/// The region, set by Lambda itself.
pub const REGION_ENV: &str = "AWS_REGION";
/// Where Lambda unpacked the deployment package, set by Lambda itself.
pub const TASK_ROOT_ENV: &str = "LAMBDA_TASK_ROOT";

/// Default records of one SQS batch in flight at once: enough to overlap the registry's latency, few enough to
/// stay under AWS IoT's 10-15 requests per second quotas per API with a small batch.
pub const DEFAULT_SQS_CONCURRENCY: usize = 8;
/// Upper bound on `JITP_SQS_CONCURRENCY`: far above what AWS IoT's API quotas can serve.
pub const MAX_SQS_CONCURRENCY: usize = 256;
/// Upper bound on `JITP_RETRY_DEADLINE_MS`: Lambda's own maximum timeout (15 minutes).
pub const MAX_RETRY_DEADLINE: Duration = Duration::from_secs(15 * 60);

/// A variable that is set but cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}={value:?}: expected {expected}")]
pub struct ConfigError {
    /// The variable.
    pub var: &'static str,
    /// Its value.
    pub value: String,
    /// What would have been accepted.
    pub expected: String,
}

/// Which registry the function talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryChoice {
    /// AWS IoT, or the emulator at `endpoint_url`.
    Aws {
        /// `JITP_AWS_ENDPOINT_URL`.
        endpoint_url: Option<String>,
    },
    /// The embedded registry (tests, demos), optionally read from and saved to a file after each invocation.
    Memory(Option<PathBuf>),
}

/// Everything the function reads from its environment.
#[derive(Debug, Clone)]
pub struct LambdaConfig {
    /// The jitp.toml to load.
    pub config_path: PathBuf,
    /// Deployment overrides of `[defaults]`.
    pub overrides: Overrides,
    /// The registry.
    pub registry: RegistryChoice,
    /// `JITP_AWS_PARTITION`, if set.
    pub partition: Option<String>,
    /// `AWS_REGION`, if set.
    pub region: Option<String>,
    /// `JITP_AWS_ACCOUNT_ID`, if set.
    pub account_id: Option<AccountId>,
    /// Records of one SQS batch in flight at once.
    pub sqs_concurrency: usize,
    /// Retry budget per event.
    pub retry_deadline: Duration,
}

impl LambdaConfig {
    /// Read the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let exe = std::env::current_exe().ok();
        Self::from_lookup(|name| std::env::var(name).ok(), exe.as_deref())
    }

    /// Read settings through `get` (a variable that is empty counts as unset); `exe` is the running executable,
    /// for the default config path.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>, exe: Option<&Path>) -> Result<Self, ConfigError> {
        let get = |name: &str| get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let config_path = match get(CONFIG_ENV) {
            Some(path) => PathBuf::from(path),
            None => default_config_path(get(TASK_ROOT_ENV).as_deref().map(Path::new), exe),
        };
        let overrides = Overrides {
            policy_mode: parse(POLICY_MODE_ENV, get(POLICY_MODE_ENV), "per-thing or shared", |v| {
                v.parse::<PolicyMode>().ok()
            })?,
            // jitp-core validates the prefix with the rest of the file and names the override in its error.
            policy_prefix: get(POLICY_PREFIX_ENV),
            on_reject: parse(ON_REJECT_ENV, get(ON_REJECT_ENV), "revoke, deactivate or leave", |v| {
                v.parse::<OnReject>().ok()
            })?,
        };
        let registry = match get(REGISTRY_ENV).as_deref() {
            None | Some("aws") => RegistryChoice::Aws { endpoint_url: get(ENDPOINT_ENV) },
            Some("memory") => RegistryChoice::Memory(None),
            Some(other) => match other.strip_prefix("memory:") {
                Some(path) if !path.is_empty() => RegistryChoice::Memory(Some(PathBuf::from(path))),
                _ => return Err(invalid(REGISTRY_ENV, other, "aws, memory or memory:PATH")),
            },
        };
        let partition =
            parse(PARTITION_ENV, get(PARTITION_ENV), "a partition such as aws, aws-cn or aws-us-gov", |v| {
                is_partition(v).then(|| v.to_owned())
            })?;
        let region =
            parse(REGION_ENV, get(REGION_ENV), "a region such as us-east-1", |v| is_region(v).then(|| v.to_owned()))?;
        let account_id = parse(ACCOUNT_ENV, get(ACCOUNT_ENV), "12 digits", |v| v.parse::<AccountId>().ok())?;
        let sqs_concurrency = parse(
            SQS_CONCURRENCY_ENV,
            get(SQS_CONCURRENCY_ENV),
            &format!("a whole number from 1 to {MAX_SQS_CONCURRENCY}"),
            |v| v.parse::<usize>().ok().filter(|n| (1..=MAX_SQS_CONCURRENCY).contains(n)),
        )?
        .unwrap_or(DEFAULT_SQS_CONCURRENCY);
        let retry_deadline = parse(
            RETRY_DEADLINE_ENV,
            get(RETRY_DEADLINE_ENV),
            &format!("milliseconds, at most {}", MAX_RETRY_DEADLINE.as_millis()),
            |v| v.parse::<u64>().ok().map(Duration::from_millis).filter(|d| *d <= MAX_RETRY_DEADLINE),
        )?
        .unwrap_or_else(|| jitp_core::provision::Settings::default().retry_deadline);
        Ok(Self { config_path, overrides, registry, partition, region, account_id, sqs_concurrency, retry_deadline })
    }

    /// The template context's `aws.*`: the configured values first, then those of the function's own ARN
    /// (`arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME`, which Lambda gives each invocation), then the
    /// defaults `aws`, `us-east-1`, `123456789012`. The last happens only outside Lambda (tests, emulators).
    pub fn aws_context(&self, function_arn: Option<&str>) -> AwsContext {
        let arn = function_arn.and_then(FunctionArn::parse);
        let default = AwsContext::default();
        AwsContext {
            partition: self
                .partition
                .clone()
                .or_else(|| arn.as_ref().map(|a| a.partition.to_owned()))
                .unwrap_or(default.partition),
            region: self.region.clone().or_else(|| arn.as_ref().map(|a| a.region.to_owned())).unwrap_or(default.region),
            account_id: self
                .account_id
                .as_ref()
                .map(|a| a.as_str().to_owned())
                .or_else(|| arn.as_ref().map(|a| a.account.to_owned()))
                .unwrap_or(default.account_id),
        }
    }

    /// Is the whole `aws.*` context known without an invocation's ARN?
    pub fn aws_context_is_complete(&self) -> bool {
        self.partition.is_some() && self.region.is_some() && self.account_id.is_some()
    }
}

/// Where jitp.toml is when `JITP_CONFIG` is not set: `$LAMBDA_TASK_ROOT/templates/jitp.toml` in Lambda (the
/// deployment package unpacked), else `templates/jitp.toml` beside the executable if it exists, else
/// `./templates/jitp.toml` (a checkout of the repository).
pub fn default_config_path(task_root: Option<&Path>, exe: Option<&Path>) -> PathBuf {
    let relative = Path::new("templates").join("jitp.toml");
    if let Some(root) = task_root {
        return root.join(relative);
    }
    match exe.and_then(Path::parent).map(|dir| dir.join(&relative)) {
        Some(beside) if beside.is_file() => beside,
        _ => relative,
    }
}

/// The parts of a Lambda function ARN that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionArn<'a> {
    /// `aws`, `aws-cn`, ...
    pub partition: &'a str,
    /// `us-east-1`, ...
    pub region: &'a str,
    /// 12 digits.
    pub account: &'a str,
}

impl<'a> FunctionArn<'a> {
    /// Parse `arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`; `None` for anything else.
    pub fn parse(arn: &'a str) -> Option<Self> {
        let mut parts = arn.split(':');
        let (Some("arn"), Some(partition), Some("lambda"), Some(region), Some(account), Some("function")) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let valid = is_partition(partition) && is_region(region) && account.parse::<AccountId>().is_ok();
        valid.then_some(Self { partition, region, account })
    }
}

fn is_partition(v: &str) -> bool {
    (1..=32).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
}

fn is_region(v: &str) -> bool {
    (1..=32).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn invalid(var: &'static str, value: &str, expected: &str) -> ConfigError {
    ConfigError { var, value: value.to_owned(), expected: expected.to_owned() }
}

fn parse<T>(
    var: &'static str,
    value: Option<String>,
    expected: &str,
    f: impl FnOnce(&str) -> Option<T>,
) -> Result<Option<T>, ConfigError> {
    match value {
        None => Ok(None),
        Some(v) => f(&v).map(Some).ok_or_else(|| invalid(var, &v, expected)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<LambdaConfig, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        LambdaConfig::from_lookup(|k| map.get(k).cloned(), None)
    }

    #[test]
    fn defaults() {
        let c = load(&[]).unwrap();
        assert_eq!(c.config_path, Path::new("templates/jitp.toml"));
        assert_eq!(c.registry, RegistryChoice::Aws { endpoint_url: None });
        assert_eq!(c.sqs_concurrency, DEFAULT_SQS_CONCURRENCY);
        assert_eq!(c.retry_deadline, Duration::from_secs(20));
        assert!(c.overrides.policy_mode.is_none() && c.overrides.on_reject.is_none());
        assert!(!c.aws_context_is_complete());
        let aws = c.aws_context(None);
        assert_eq!(
            (aws.partition, aws.region, aws.account_id),
            ("aws".into(), "us-east-1".into(), "123456789012".into())
        );
    }

    #[test]
    fn every_variable() {
        let c = load(&[
            (CONFIG_ENV, "/opt/jitp.toml"),
            (POLICY_MODE_ENV, "shared"),
            (POLICY_PREFIX_ENV, "acme-"),
            (ON_REJECT_ENV, "deactivate"),
            (REGISTRY_ENV, "aws"),
            (ENDPOINT_ENV, "http://127.0.0.1:5000"),
            (SQS_CONCURRENCY_ENV, "3"),
            (RETRY_DEADLINE_ENV, "1500"),
            (ACCOUNT_ENV, "210987654321"),
            (PARTITION_ENV, "aws-cn"),
            (REGION_ENV, "cn-north-1"),
        ])
        .unwrap();
        assert_eq!(c.config_path, Path::new("/opt/jitp.toml"));
        assert_eq!(c.overrides.policy_mode, Some(PolicyMode::Shared));
        assert_eq!(c.overrides.policy_prefix.as_deref(), Some("acme-"));
        assert_eq!(c.overrides.on_reject, Some(OnReject::Deactivate));
        assert_eq!(c.registry, RegistryChoice::Aws { endpoint_url: Some("http://127.0.0.1:5000".into()) });
        assert_eq!(c.sqs_concurrency, 3);
        assert_eq!(c.retry_deadline, Duration::from_millis(1500));
        assert!(c.aws_context_is_complete());
        let aws = c.aws_context(Some("arn:aws:lambda:us-east-1:123456789012:function:jitp"));
        assert_eq!(
            (aws.partition.as_str(), aws.region.as_str(), aws.account_id.as_str()),
            ("aws-cn", "cn-north-1", "210987654321")
        );
    }

    #[test]
    fn task_root_decides_the_default_config_path() {
        let c = load(&[(TASK_ROOT_ENV, "/var/task")]).unwrap();
        assert_eq!(c.config_path, Path::new("/var/task/templates/jitp.toml"));
        // Beside the executable only if it is there.
        assert_eq!(
            default_config_path(None, Some(Path::new("/nonexistent/bin/bootstrap"))),
            Path::new("templates/jitp.toml")
        );
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../x");
        assert_eq!(default_config_path(None, Some(&repo)), repo.parent().unwrap().join("templates/jitp.toml"));
    }

    #[test]
    fn registries() {
        assert_eq!(load(&[(REGISTRY_ENV, "memory")]).unwrap().registry, RegistryChoice::Memory(None));
        assert_eq!(
            load(&[(REGISTRY_ENV, "memory:/tmp/r.json")]).unwrap().registry,
            RegistryChoice::Memory(Some("/tmp/r.json".into()))
        );
        // Empty counts as unset.
        assert_eq!(load(&[(REGISTRY_ENV, " ")]).unwrap().registry, RegistryChoice::Aws { endpoint_url: None });
    }

    #[test]
    fn wrong_values_name_the_variable() {
        let cases = [
            (POLICY_MODE_ENV, "per_thing"),
            (ON_REJECT_ENV, "delete"),
            (REGISTRY_ENV, "dynamo"),
            (REGISTRY_ENV, "memory:"),
            (SQS_CONCURRENCY_ENV, "0"),
            (SQS_CONCURRENCY_ENV, "10000"),
            (SQS_CONCURRENCY_ENV, "eight"),
            (RETRY_DEADLINE_ENV, "-1"),
            (RETRY_DEADLINE_ENV, "900001"),
            (ACCOUNT_ENV, "12345"),
            (PARTITION_ENV, "AWS"),
            (REGION_ENV, "us east 1"),
        ];
        for (var, value) in cases {
            let err = load(&[(var, value)]).err();
            assert_eq!(err.as_ref().map(|e| e.var), Some(var), "{var}={value}");
            assert!(err.unwrap().to_string().starts_with(&format!("{var}=")));
        }
    }

    #[test]
    fn the_function_arn_fills_the_gaps() {
        let c = load(&[(REGION_ENV, "eu-west-1")]).unwrap();
        let aws = c.aws_context(Some("arn:aws-us-gov:lambda:us-gov-west-1:210987654321:function:jitp:live"));
        assert_eq!(aws.partition, "aws-us-gov");
        assert_eq!(aws.region, "eu-west-1", "AWS_REGION wins over the ARN");
        assert_eq!(aws.account_id, "210987654321");
        for bad in ["", "No header lambda-runtime-invoked-function-arn found.", "arn:aws:lambda:us-east-1:1:function:f"]
        {
            assert_eq!(FunctionArn::parse(bad), None, "{bad}");
        }
        assert_eq!(c.aws_context(Some("arn:aws:s3:::bucket")).account_id, "123456789012");
    }
}

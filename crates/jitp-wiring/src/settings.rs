//! The settings of the binaries that run the workflow, each a flag with its environment variable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
#[cfg(feature = "workflow")]
use jitp_policy::policy::AwsContext;
use jitp_profile::profile::{CrlObjects, OnReject, Overrides, PolicyMode};
use jitp_registry::pacing::{self, Quotas};
use jitp_registry::registry::Operation;

use crate::Error;
use crate::aws::AwsArgs;
#[cfg(feature = "workflow")]
use crate::aws::{Discovered, FunctionArn};
use crate::crl::Loadable;
use crate::registry::{Opened, RegistryArg};

/// Upper bound on the retry deadline: Lambda's own maximum timeout (15 minutes).
pub const MAX_RETRY_DEADLINE: Duration = Duration::from_secs(15 * 60);
/// Upper bound on the backoffs.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Upper bound on the CA cache's lifetime: a day.
const MAX_CA_CACHE_TTL: Duration = Duration::from_secs(24 * 3600);

/// jitp.toml and the deployment's overrides of its `[defaults]`.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// The CA profiles (jitp.toml). Default: ./templates/jitp.toml; in the Lambda function
    /// $LAMBDA_TASK_ROOT/templates/jitp.toml, else templates/jitp.toml beside the executable if it exists.
    #[arg(long, env = "JITP_CONFIG", value_name = "PATH", value_parser = path)]
    pub config: Option<PathBuf>,
    /// per-thing or shared; replaces jitp.toml's defaults.policy_mode.
    #[arg(long, env = "JITP_POLICY_MODE", value_name = "MODE", value_parser = policy_mode)]
    pub policy_mode: Option<PolicyMode>,
    /// Replaces jitp.toml's defaults.policy_prefix (checked with the rest of the file).
    #[arg(long, env = "JITP_POLICY_PREFIX", value_name = "PREFIX", value_parser = non_empty)]
    pub policy_prefix: Option<String>,
    /// revoke, deactivate or leave; replaces jitp.toml's defaults.on_reject.
    #[arg(long, env = "JITP_ON_REJECT", value_name = "ACTION", value_parser = on_reject)]
    pub on_reject: Option<OnReject>,
}

impl ConfigArgs {
    /// `--config`, else [`default_config_path`]`(task_root, exe)`.
    pub fn path(&self, task_root: Option<&Path>, exe: Option<&Path>) -> PathBuf {
        self.config.clone().unwrap_or_else(|| default_config_path(task_root, exe))
    }

    /// Load jitp.toml from `path` with the overrides, as the workflow's rules (the templates compile here, so a
    /// bad one fails start-up) or as the guard's profiles ([`Loadable`]). An `s3://` CRL is a configuration error
    /// here (not fetched): [`crate::crl::load`] fetches them.
    pub fn load_from<L: Loadable>(&self, path: &Path) -> Result<L, Error> {
        self.load_with_crls(path, CrlObjects::new())
    }

    /// [`ConfigArgs::load_from`] with the bytes of the S3 CRLs jitp.toml lists.
    pub fn load_with_crls<L: Loadable>(&self, path: &Path, crl_objects: CrlObjects) -> Result<L, Error> {
        let overrides = Overrides {
            policy_mode: self.policy_mode,
            policy_prefix: self.policy_prefix.clone(),
            on_reject: self.on_reject,
            crl_objects,
        };
        L::load_with(path, &overrides).map_err(|source| Error::Config { path: path.to_owned(), source })
    }

    /// Load `--config`, else `./templates/jitp.toml` (the CLI, run from a checkout).
    pub fn load<L: Loadable>(&self) -> Result<L, Error> {
        self.load_from(&self.path(None, None))
    }
}

/// Where jitp.toml is without `--config`: `$LAMBDA_TASK_ROOT/templates/jitp.toml` in Lambda (the deployment
/// package unpacked), else `templates/jitp.toml` beside the executable if it exists, else `./templates/jitp.toml`
/// (a checkout of the repository).
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

/// `--endpoint-url`: one flag for every command that talks to AWS (the workflow's binaries, and `jitp check` /
/// `jitp lint` for the S3 CRLs they fetch).
#[derive(Debug, Clone, Default, Args)]
pub struct EndpointArgs {
    /// An endpoint to send AWS IoT and S3 requests to instead of AWS's (an emulator such as moto's server;
    /// S3 is then addressed path-style).
    #[arg(long, env = "JITP_AWS_ENDPOINT_URL", value_name = "URL", value_parser = endpoint_url)]
    pub endpoint_url: Option<String>,
}

/// The settings every binary that runs the workflow takes: the Lambda function, `jitp serve`, `jitp provision`.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// jitp.toml and its overrides.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The policy context.
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Where the things live: aws (AWS IoT), memory (the embedded registry), or memory:PATH (the embedded
    /// registry kept in a file). Default: aws; jitp provision: memory.
    #[arg(long, env = "JITP_REGISTRY", value_name = "REGISTRY", value_parser = registry)]
    pub registry: Option<RegistryArg>,
    /// `--endpoint-url`.
    #[command(flatten)]
    pub endpoint: EndpointArgs,
    /// How long one event may retry transient failures (throttling, AWS IoT unavailable) before it is handed
    /// back for redelivery, in milliseconds; at most 900000. Keep it well under the Lambda's timeout.
    #[arg(
        long,
        env = "JITP_RETRY_DEADLINE_MS",
        value_name = "MS",
        default_value_t = millis(pacing::DEFAULT_RETRY_DEADLINE),
        value_parser = millis_up_to(MAX_RETRY_DEADLINE)
    )]
    pub retry_deadline_ms: u64,
    /// The first retry's backoff in milliseconds; it doubles per retry, with full jitter, up to the ceiling.
    #[arg(
        long,
        env = "JITP_RETRY_BASE_MS",
        value_name = "MS",
        default_value_t = millis(pacing::DEFAULT_RETRY_BASE),
        value_parser = millis_up_to(MAX_BACKOFF)
    )]
    pub retry_base_ms: u64,
    /// The backoffs' ceiling in milliseconds.
    #[arg(
        long,
        env = "JITP_RETRY_MAX_MS",
        value_name = "MS",
        default_value_t = millis(pacing::DEFAULT_RETRY_MAX),
        value_parser = millis_up_to(MAX_BACKOFF)
    )]
    pub retry_max_ms: u64,
    /// How long a CA's description is cached, in seconds: a deactivated CA is noticed within this time.
    #[arg(
        long,
        env = "JITP_CA_CACHE_TTL_SECS",
        value_name = "SECS",
        default_value_t = pacing::DEFAULT_CA_CACHE_TTL.as_secs(),
        value_parser = secs_up_to(MAX_CA_CACHE_TTL)
    )]
    pub ca_cache_ttl_secs: u64,
    /// How often the S3 CRLs jitp.toml lists (crl = ["s3://bucket/key"]) are fetched again, in seconds, 10 to
    /// 86400: a CRL published to S3 takes effect within this time (a conditional GetObject; unchanged costs a 304).
    #[arg(
        long,
        env = "JITP_CRL_REFRESH_SECONDS",
        value_name = "SECS",
        default_value_t = crate::crl::DEFAULT_CRL_REFRESH.as_secs(),
        value_parser = secs_in(crate::crl::MIN_CRL_REFRESH, crate::crl::MAX_CRL_REFRESH)
    )]
    pub crl_refresh_seconds: u64,
    /// The account's API quotas where they differ from AWS's defaults and from jitp.toml's [quotas], as
    /// Operation=rate pairs (requests per second), comma-separated: CreatePolicy=50,UpdateCertificate=50.
    #[arg(long, env = "JITP_QUOTAS", value_name = "OP=RATE,...", value_parser = quotas)]
    pub quotas: Option<BTreeMap<Operation, f64>>,
    /// How many processes share the account's quotas at once: each paces its calls at 1/N of every quota. For
    /// the Lambda function, its maximum concurrency (infra/ sets it); for jitp serve, the number of replicas.
    #[arg(
        long,
        env = "JITP_QUOTA_INSTANCES",
        value_name = "N",
        default_value_t = 1,
        value_parser = count_in(1, MAX_QUOTA_INSTANCES)
    )]
    pub quota_instances: usize,
    /// Do not pace calls under the quotas (only for an emulator or a test account: against AWS IoT a burst then
    /// bounces off the quotas and starves the account's other tools).
    #[arg(long, env = "JITP_NO_PACING", value_parser = crate::switch)]
    pub no_pacing: bool,
}

/// Upper bound on `--quota-instances`: Lambda's default account concurrency is 1000.
const MAX_QUOTA_INSTANCES: usize = 10_000;

fn quotas(v: &str) -> Result<BTreeMap<Operation, f64>, String> {
    Quotas::parse_overrides(v)
        .map_err(|why| format!("Operation=rate pairs such as CreatePolicy=50,UpdateCertificate=50: {why}"))
}

impl Settings {
    /// The registry to open: `--registry`, else `default`.
    pub fn registry_or(&self, default: RegistryArg) -> RegistryArg {
        self.registry.clone().unwrap_or(default)
    }

    /// Open the registry (`--registry`, else `default`) with `--endpoint-url` and `--region`.
    pub async fn open_registry(&self, default: RegistryArg) -> Result<Opened, Error> {
        let choice = self.registry_or(default);
        crate::registry::open(&choice, self.endpoint.endpoint_url.as_deref(), self.aws.region.as_deref()).await
    }

    /// The policy context for workflows over `opened`, given the Lambda function's ARN if there is one. Warns
    /// when policies for AWS IoT would name the placeholder account.
    #[cfg(feature = "workflow")]
    pub fn aws_context(&self, opened: &Opened, function_arn: Option<&str>) -> AwsContext {
        let function_arn = function_arn.and_then(FunctionArn::parse);
        let found = Discovered { function_arn, sdk_region: opened.sdk_region.as_deref() };
        let aws = crate::aws::resolve(&self.aws, &found);
        if opened.is_aws() && self.aws.account_id.is_none() && function_arn.is_none() {
            tracing::warn!(
                account_id = %aws.account_id,
                "no JITP_AWS_ACCOUNT_ID (--account-id) and no function ARN to take the account from: policies name a placeholder account"
            );
        }
        aws
    }

    /// `--crl-refresh-seconds` as a duration.
    pub fn crl_refresh(&self) -> Duration {
        Duration::from_secs(self.crl_refresh_seconds)
    }

    /// Load jitp.toml at `path` with its S3 CRLs fetched (from S3 when the registry is AWS IoT, at
    /// `--endpoint-url` if given; an `s3://` CRL with the embedded registry is a start-up error), and the
    /// refresh that keeps them current: the workflow's rules or the guard's profiles ([`Loadable`]).
    pub async fn load_rules<L: Loadable>(
        &self,
        path: &Path,
        opened: &Opened,
    ) -> Result<(L, crate::crl::CrlRefresh), Error> {
        let fetcher = self.crl_fetcher(path, opened).await?;
        crate::crl::load(&self.config, path, fetcher, self.crl_refresh()).await
    }

    #[cfg(feature = "aws")]
    async fn crl_fetcher(&self, path: &Path, opened: &Opened) -> Result<Option<Arc<dyn crate::crl::CrlFetch>>, Error> {
        let needed = jitp_profile::profile::Config::crl_objects(path)
            .map_err(|source| Error::Config { path: path.to_owned(), source })?;
        if needed.is_empty() || !opened.is_aws() {
            return Ok(None);
        }
        Ok(Some(crate::crl::s3_fetcher(self.endpoint.endpoint_url.as_deref(), self.aws.region.as_deref()).await))
    }

    #[cfg(not(feature = "aws"))]
    async fn crl_fetcher(&self, _: &Path, _: &Opened) -> Result<Option<Arc<dyn crate::crl::CrlFetch>>, Error> {
        Ok(None)
    }

    /// The workflow's tunables, with the policy context `aws`.
    #[cfg(feature = "workflow")]
    pub fn workflow(&self, aws: AwsContext) -> jitp_core::engine::Settings {
        use jitp_registry::pacing::Pacing;
        jitp_core::engine::Settings {
            aws,
            retry_deadline: Duration::from_millis(self.retry_deadline_ms),
            retry_base: Duration::from_millis(self.retry_base_ms),
            retry_max: Duration::from_millis(self.retry_max_ms),
            ca_cache_ttl: Duration::from_secs(self.ca_cache_ttl_secs),
            pacing: (!self.no_pacing).then(|| Pacing {
                quotas: Quotas::aws_defaults(),
                overrides: self.quotas.clone().unwrap_or_default(),
                instances: u32::try_from(self.quota_instances).unwrap_or(u32::MAX),
            }),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn whole_number(v: &str) -> Option<u64> {
    // `u64::from_str` takes a leading `+`; a setting is digits only.
    (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())).then(|| v.parse().ok()).flatten()
}

fn millis_up_to(max: Duration) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync + 'static {
    let max = millis(max);
    move |v| whole_number(v).filter(|n| *n <= max).ok_or_else(|| format!("milliseconds, a whole number up to {max}"))
}

fn secs_up_to(max: Duration) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync + 'static {
    let max = max.as_secs();
    move |v| whole_number(v).filter(|n| *n <= max).ok_or_else(|| format!("seconds, a whole number up to {max}"))
}

fn secs_in(min: Duration, max: Duration) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync + 'static {
    let (min, max) = (min.as_secs(), max.as_secs());
    move |v| {
        whole_number(v)
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| format!("seconds, a whole number from {min} to {max}"))
    }
}

/// A whole number in `min..=max`, for the binaries' own settings.
pub fn count_in(min: usize, max: usize) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync + 'static {
    move |v| {
        whole_number(v)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| format!("a whole number from {min} to {max}"))
    }
}

/// A switch's value (the variable of a flag that takes none): `true`, `1`, `yes`, `on` or `false`, `0`, `no`, `off`,
/// in any case.
pub fn switch(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("true or false".to_owned()),
    }
}

fn path(v: &str) -> Result<PathBuf, String> {
    non_empty(v).map(PathBuf::from)
}

fn non_empty(v: &str) -> Result<String, String> {
    if v.is_empty() { Err("a value (unset the variable for the default)".to_owned()) } else { Ok(v.to_owned()) }
}

fn policy_mode(v: &str) -> Result<PolicyMode, String> {
    v.parse().map_err(|_| "per-thing or shared".to_owned())
}

fn on_reject(v: &str) -> Result<OnReject, String> {
    v.parse().map_err(|_| "revoke, deactivate or leave".to_owned())
}

fn registry(v: &str) -> Result<RegistryArg, String> {
    v.parse()
}

fn endpoint_url(v: &str) -> Result<String, String> {
    let ok = ["http://", "https://"].iter().any(|scheme| v.len() > scheme.len() && v.starts_with(scheme));
    if ok && !v.bytes().any(|b| b.is_ascii_whitespace()) {
        Ok(v.to_owned())
    } else {
        Err("an http:// or https:// URL such as http://127.0.0.1:5000".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_digits_within_bounds() {
        let deadline = millis_up_to(MAX_RETRY_DEADLINE);
        assert_eq!(deadline("1500"), Ok(1500));
        assert_eq!(deadline("900000"), Ok(900_000));
        for bad in ["900001", "+5", "-1", "1.5", "", " 5", "20s"] {
            assert_eq!(deadline(bad), Err("milliseconds, a whole number up to 900000".into()), "{bad:?}");
        }
        let count = count_in(1, 256);
        assert_eq!(count("8"), Ok(8));
        for bad in ["0", "257", "many"] {
            assert!(count(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_config_path() {
        assert_eq!(default_config_path(Some(Path::new("/var/task")), None), Path::new("/var/task/templates/jitp.toml"));
        // Beside the executable only if it is there.
        assert_eq!(
            default_config_path(None, Some(Path::new("/nonexistent/bin/bootstrap"))),
            Path::new("templates/jitp.toml")
        );
        let exe = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../x");
        let beside = exe.parent().map(|d| d.join("templates/jitp.toml"));
        assert_eq!(Some(default_config_path(None, Some(&exe))), beside);
    }

    #[test]
    fn values() {
        assert!(endpoint_url("http://127.0.0.1:5000").is_ok());
        for bad in ["", "127.0.0.1:5000", "http://", "http://a b"] {
            assert!(endpoint_url(bad).is_err(), "{bad:?}");
        }
        assert_eq!(policy_mode("shared"), Ok(PolicyMode::Shared));
        assert!(policy_mode("per_thing").is_err());
        assert_eq!(on_reject("leave"), Ok(OnReject::Leave));
        assert!(non_empty("").is_err() && path("").is_err());
        assert_eq!((switch("TRUE"), switch("0"), switch("off")), (Ok(true), Ok(false), Ok(false)));
        assert_eq!(switch("maybe"), Err("true or false".to_owned()));
    }
}

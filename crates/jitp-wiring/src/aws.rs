//! The template context's `aws.*` (the account, region and partition written into policy ARNs): one set of
//! flags, one validation, one order of fallbacks for every binary.

use clap::Args;
#[cfg(feature = "workflow")]
use jitp_policy::policy::AwsContext;
use jitp_registry::event::AccountId;

/// The account, region and partition written into policies. Each is optional: [`resolve`] fills the gaps.
#[derive(Debug, Clone, Default, Args)]
pub struct AwsArgs {
    /// The account in policy ARNs (aws.account_id), 12 digits. Default: the Lambda function's own account;
    /// elsewhere the placeholder 123456789012 (with a warning when the registry is AWS IoT).
    #[arg(long, env = "JITP_AWS_ACCOUNT_ID", value_name = "ID", value_parser = account_id)]
    pub account_id: Option<AccountId>,
    /// The region in policy ARNs (aws.region), which is also the AWS SDK's region. Default: the SDK's own
    /// (profile, instance metadata), else the Lambda function's, else us-east-1.
    #[arg(long, env = "AWS_REGION", value_name = "REGION", value_parser = region)]
    pub region: Option<String>,
    /// The partition in policy ARNs (aws.partition): aws, aws-cn, aws-us-gov. Default: the Lambda function's
    /// own, else aws.
    #[arg(long, env = "JITP_AWS_PARTITION", value_name = "PARTITION", value_parser = partition)]
    pub partition: Option<String>,
}

impl AwsArgs {
    /// Are the account, region and partition all given, so that nothing is left to discover?
    pub fn is_complete(&self) -> bool {
        self.account_id.is_some() && self.region.is_some() && self.partition.is_some()
    }

    /// The context with the defaults for whatever is not given (`jitp check`, `jitp lint`: no registry, no ARN).
    #[cfg(feature = "workflow")]
    pub fn context(&self) -> AwsContext {
        resolve(self, &Discovered::default())
    }
}

/// What a binary found out at run time, to fill the gaps of [`AwsArgs`].
#[cfg(feature = "workflow")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Discovered<'a> {
    /// The Lambda function's own ARN (the runtime gives it with each invocation).
    pub function_arn: Option<FunctionArn<'a>>,
    /// The region the AWS SDK resolved (profile, instance metadata), when the registry is AWS IoT.
    pub sdk_region: Option<&'a str>,
}

/// `aws.*`: what the settings give; else the function's ARN (and for the region, first the SDK's); else `aws`,
/// `us-east-1`, `123456789012`.
#[cfg(feature = "workflow")]
pub fn resolve(args: &AwsArgs, found: &Discovered<'_>) -> AwsContext {
    let default = AwsContext::default();
    let arn = found.function_arn;
    AwsContext {
        partition: args.partition.clone().or_else(|| arn.map(|a| a.partition.to_owned())).unwrap_or(default.partition),
        region: args
            .region
            .clone()
            .or_else(|| found.sdk_region.map(str::to_owned))
            .or_else(|| arn.map(|a| a.region.to_owned()))
            .unwrap_or(default.region),
        account_id: args
            .account_id
            .as_ref()
            .map(|a| a.as_str().to_owned())
            .or_else(|| arn.map(|a| a.account.to_owned()))
            .unwrap_or(default.account_id),
    }
}

/// A Lambda function's policy context: [`resolve`] with its own ARN (`invoked_function_arn`, from the
/// invocation's context) and the SDK's region, logged once; a warning when neither the settings nor the ARN name
/// the account (every policy would then name the placeholder account).
#[cfg(feature = "workflow")]
pub fn for_function(args: &AwsArgs, invoked_function_arn: &str, sdk_region: Option<&str>) -> AwsContext {
    let function_arn = FunctionArn::parse(invoked_function_arn);
    let aws = resolve(args, &Discovered { function_arn, sdk_region });
    if function_arn.is_none() && args.account_id.is_none() {
        tracing::warn!(
            account_id = %aws.account_id,
            "no JITP_AWS_ACCOUNT_ID and no function ARN to take the account from: policies use a placeholder account"
        );
    }
    tracing::info!(partition = %aws.partition, region = %aws.region, account_id = %aws.account_id, "policy context");
    aws
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
    /// Parse `arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`, each part valid as the flags
    /// require; `None` for anything else.
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

/// A partition name: 1 to 32 lowercase letters and hyphens.
pub fn is_partition(v: &str) -> bool {
    (1..=32).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
}

/// A region name: 1 to 32 lowercase letters, digits and hyphens (so `US-EAST-1` is refused everywhere).
pub fn is_region(v: &str) -> bool {
    (1..=32).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn account_id(v: &str) -> Result<AccountId, String> {
    v.parse::<AccountId>().map_err(|_| "12 digits".to_owned())
}

fn region(v: &str) -> Result<String, String> {
    if is_region(v) { Ok(v.to_owned()) } else { Err("a region such as us-east-1 (lowercase)".to_owned()) }
}

fn partition(v: &str) -> Result<String, String> {
    if is_partition(v) { Ok(v.to_owned()) } else { Err("a partition such as aws, aws-cn or aws-us-gov".to_owned()) }
}

#[cfg(all(test, feature = "workflow"))]
mod tests {
    use super::*;

    fn args(account: Option<&str>, region: Option<&str>, partition: Option<&str>) -> AwsArgs {
        AwsArgs {
            account_id: account.and_then(|a| a.parse().ok()),
            region: region.map(str::to_owned),
            partition: partition.map(str::to_owned),
        }
    }

    fn triple(c: &AwsContext) -> (&str, &str, &str) {
        (c.partition.as_str(), c.region.as_str(), c.account_id.as_str())
    }

    #[test]
    fn defaults_without_anything() {
        assert_eq!(triple(&args(None, None, None).context()), ("aws", "us-east-1", "123456789012"));
        assert!(!args(Some("210987654321"), Some("eu-west-1"), None).is_complete());
        assert!(args(Some("210987654321"), Some("eu-west-1"), Some("aws")).is_complete());
    }

    #[test]
    fn settings_win_then_the_sdk_region_then_the_function_arn() {
        let arn = FunctionArn::parse("arn:aws-us-gov:lambda:us-gov-west-1:210987654321:function:jitp:live");
        let found = Discovered { function_arn: arn, sdk_region: None };
        let c = resolve(&args(None, Some("eu-west-1"), None), &found);
        assert_eq!(triple(&c), ("aws-us-gov", "eu-west-1", "210987654321"));
        let c = resolve(&args(None, None, None), &Discovered { sdk_region: Some("eu-central-1"), ..found });
        assert_eq!(triple(&c), ("aws-us-gov", "eu-central-1", "210987654321"));
        let c = resolve(&args(Some("111122223333"), None, Some("aws-cn")), &found);
        assert_eq!(triple(&c), ("aws-cn", "us-gov-west-1", "111122223333"));
    }

    #[test]
    fn function_arns() {
        let arn = FunctionArn::parse("arn:aws:lambda:us-east-1:123456789012:function:jitp");
        assert_eq!(arn, Some(FunctionArn { partition: "aws", region: "us-east-1", account: "123456789012" }));
        for bad in [
            "",
            "No header lambda-runtime-invoked-function-arn found.",
            "arn:aws:lambda:us-east-1:1:function:f",
            "arn:aws:s3:::bucket",
            "arn:aws:lambda:US-EAST-1:123456789012:function:f",
        ] {
            assert_eq!(FunctionArn::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn one_validation() {
        assert!(region("us-east-1").is_ok() && region("cn-north-1").is_ok());
        for bad in ["US-EAST-1", "", "us east 1", &"a".repeat(33)] {
            assert!(region(bad).is_err(), "{bad:?}");
        }
        assert!(partition("aws-us-gov").is_ok());
        for bad in ["AWS", "aws1", ""] {
            assert!(partition(bad).is_err(), "{bad:?}");
        }
        assert!(account_id("123456789012").is_ok());
        for bad in ["12345678901", "1234567890123", "12345678901a", ""] {
            assert!(account_id(bad).is_err(), "{bad:?}");
        }
    }
}

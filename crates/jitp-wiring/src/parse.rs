//! Parsing settings: clap's errors named after the variable, and variables given as values rather than read
//! from the process environment.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Command, Parser};

use crate::Error;

/// A value clap refused, as [`Error::Setting`]: the flag, its variable (looked up in `cmd`, subcommands
/// included), the value and what is allowed. `None` for every other kind of error (help, an unknown flag, a
/// missing value), which clap reports best itself.
pub fn setting_error(err: &clap::Error, cmd: &Command) -> Option<Error> {
    let text = |kind| match err.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    let expected = match err.kind() {
        ErrorKind::ValueValidation => std::error::Error::source(err).map(ToString::to_string)?,
        ErrorKind::InvalidValue => match err.get(ContextKind::ValidValue) {
            Some(ContextValue::Strings(valid)) => valid.join(", "),
            _ => return None,
        },
        _ => return None,
    };
    // "--policy-mode <MODE>" (or "<MODE>" for a positional argument).
    let arg = text(ContextKind::InvalidArg)?;
    let flag = arg.split([' ', '=']).next().unwrap_or_default().to_owned();
    let var = flag.strip_prefix("--").and_then(|long| env_of(cmd, long)).map(|v| v.to_string_lossy().into_owned());
    let value = text(ContextKind::InvalidValue).unwrap_or_default();
    Some(Error::Setting { var, flag, value, expected })
}

/// [`setting_error`], else clap's own message as [`Error::Usage`].
pub fn explain(err: &clap::Error, cmd: &Command) -> Error {
    setting_error(err, cmd).unwrap_or_else(|| Error::Usage(err.render().to_string().trim_end().to_owned()))
}

/// The variable of the flag `--long` in `cmd` or any of its subcommands.
fn env_of<'a>(cmd: &'a Command, long: &str) -> Option<&'a OsStr> {
    cmd.get_arguments()
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env())
        .or_else(|| cmd.get_subcommands().find_map(|sub| env_of(sub, long)))
}

/// Parse `T` from `args` (the program name first) and from `vars` instead of the process environment: each
/// variable an argument of `T` names stands for its flag, unless `args` gives the flag itself. The Lambda
/// function parses its whole environment this way, and tests their own variables.
pub fn from_vars<T, A, K, V>(
    args: impl IntoIterator<Item = A>,
    vars: impl IntoIterator<Item = (K, V)>,
) -> Result<T, Error>
where
    T: Parser,
    A: Into<OsString>,
    K: Into<OsString>,
    V: Into<OsString>,
{
    let declared = T::command();
    let mut argv: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let vars: HashMap<OsString, OsString> = vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
    let mut from_vars = Vec::new();
    for arg in declared.get_arguments() {
        let (Some(name), Some(long)) = (arg.get_env(), arg.get_long()) else { continue };
        let Some(value) = vars.get(name) else { continue };
        let flag = format!("--{long}");
        let given = argv.iter().any(|a| {
            let a = a.to_string_lossy();
            a == flag || a.starts_with(&format!("{flag}="))
        });
        if given {
            continue;
        }
        if arg.get_action().takes_values() {
            let mut pair = OsString::from(format!("{flag}="));
            pair.push(value);
            from_vars.push(pair);
        } else if boolish(name, &flag, value)? {
            from_vars.push(flag.into());
        }
    }
    argv.extend(from_vars);
    // The variables were read above; clap must not read the process's.
    let matches =
        declared.clone().mut_args(|a| a.env(None)).try_get_matches_from(argv).map_err(|e| explain(&e, &declared))?;
    T::from_arg_matches(&matches).map_err(|e| explain(&e, &declared))
}

/// A switch's variable, read as [`crate::settings::switch`] reads it.
fn boolish(name: &OsStr, flag: &str, value: &OsStr) -> Result<bool, Error> {
    crate::settings::switch(&value.to_string_lossy()).map_err(|expected| Error::Setting {
        var: Some(name.to_string_lossy().into_owned()),
        flag: flag.to_owned(),
        value: value.to_string_lossy().into_owned(),
        expected,
    })
}

#[cfg(all(test, feature = "workflow"))]
mod tests {
    use clap::{Args, CommandFactory as _};

    use super::*;
    use crate::Settings;

    #[derive(Debug, Parser)]
    struct Bin {
        #[command(flatten)]
        settings: Settings,
        /// A switch with a variable.
        #[arg(long, env = "JITP_TEST_SWITCH", value_parser = crate::switch)]
        switch: bool,
        #[command(flatten)]
        own: Own,
    }

    #[derive(Debug, Args)]
    struct Own {
        /// One of the binary's own settings.
        #[arg(long, env = "JITP_TEST_COUNT", default_value_t = 8, value_parser = crate::settings::count_in(1, 256))]
        count: usize,
    }

    fn parse(args: &[&str], vars: &[(&str, &str)]) -> Result<Bin, Error> {
        from_vars::<Bin, _, _, _>(std::iter::once("bin").chain(args.iter().copied()), vars.iter().copied())
    }

    #[test]
    fn defaults() {
        let bin = parse(&[], &[]).unwrap();
        let s = &bin.settings;
        assert!(s.config.config.is_none() && s.registry.is_none() && s.endpoint.endpoint_url.is_none());
        assert_eq!(
            (s.retry_deadline_ms, s.retry_base_ms, s.retry_max_ms, s.ca_cache_ttl_secs),
            (20_000, 25, 2_000, 300)
        );
        assert_eq!(s.crl_refresh_seconds, 300);
        assert_eq!(bin.own.count, 8);
        assert!(!bin.switch);
    }

    #[test]
    fn every_variable() {
        let bin = parse(
            &[],
            &[
                ("JITP_CONFIG", "/opt/jitp.toml"),
                ("JITP_POLICY_MODE", "shared"),
                ("JITP_POLICY_PREFIX", "acme-"),
                ("JITP_ON_REJECT", "deactivate"),
                ("JITP_REGISTRY", "memory:/tmp/r.json"),
                ("JITP_AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
                ("JITP_RETRY_DEADLINE_MS", "1500"),
                ("JITP_RETRY_BASE_MS", "5"),
                ("JITP_RETRY_MAX_MS", "50"),
                ("JITP_CA_CACHE_TTL_SECS", "60"),
                ("JITP_CRL_REFRESH_SECONDS", "45"),
                ("JITP_QUOTAS", "CreatePolicy=50,UpdateCertificate=40"),
                ("JITP_QUOTA_INSTANCES", "4"),
                ("JITP_AWS_ACCOUNT_ID", "210987654321"),
                ("JITP_AWS_PARTITION", "aws-cn"),
                ("AWS_REGION", "cn-north-1"),
                ("JITP_TEST_SWITCH", "true"),
                ("JITP_TEST_COUNT", "3"),
                ("UNRELATED", "ignored"),
            ],
        )
        .unwrap();
        let s = &bin.settings;
        assert_eq!(s.config.config.as_deref(), Some(std::path::Path::new("/opt/jitp.toml")));
        assert_eq!(s.config.policy_mode, Some(jitp_profile::profile::PolicyMode::Shared));
        assert_eq!(s.config.policy_prefix.as_deref(), Some("acme-"));
        assert_eq!(s.config.on_reject, Some(jitp_profile::profile::OnReject::Deactivate));
        assert_eq!(s.registry.as_ref().map(ToString::to_string).as_deref(), Some("memory:/tmp/r.json"));
        assert_eq!(s.endpoint.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(s.crl_refresh(), std::time::Duration::from_secs(45));
        let w = s.workflow(jitp_policy::policy::AwsContext::default());
        assert_eq!(w.retry_deadline, std::time::Duration::from_millis(1500));
        assert_eq!((w.retry_base.as_millis(), w.retry_max.as_millis(), w.ca_cache_ttl.as_secs()), (5, 50, 60));
        let pacing = w.pacing.expect("paced unless JITP_NO_PACING");
        assert_eq!(pacing.instances, 4);
        let quotas = pacing.resolve(&Default::default());
        use jitp_registry::registry::Operation;
        assert_eq!(quotas.get(Operation::CreatePolicy), Some(50.0));
        assert_eq!(quotas.get(Operation::UpdateCertificate), Some(40.0));
        assert_eq!(quotas.get(Operation::CreateThing), Some(15.0), "AWS's default where not overridden");
        let off = parse(&[], &[("JITP_NO_PACING", "true")]).unwrap();
        assert!(off.settings.workflow(jitp_policy::policy::AwsContext::default()).pacing.is_none());
        assert!(s.aws.is_complete());
        let aws = s.aws.context();
        assert_eq!(
            (aws.partition.as_str(), aws.region.as_str(), aws.account_id.as_str()),
            ("aws-cn", "cn-north-1", "210987654321")
        );
        assert!(bin.switch);
        assert_eq!(bin.own.count, 3);
    }

    #[test]
    fn a_flag_wins_over_its_variable() {
        let bin = parse(&["--policy-prefix", "flag-"], &[("JITP_POLICY_PREFIX", "var-")]).unwrap();
        assert_eq!(bin.settings.config.policy_prefix.as_deref(), Some("flag-"));
        let bin = parse(&["--policy-prefix=flag-"], &[("JITP_POLICY_PREFIX", "var-")]).unwrap();
        assert_eq!(bin.settings.config.policy_prefix.as_deref(), Some("flag-"));
    }

    #[test]
    fn a_bad_value_names_the_variable_the_flag_the_value_and_what_is_allowed() {
        let cases = [
            ("JITP_POLICY_MODE", "per_thing", "--policy-mode", "per-thing or shared"),
            ("JITP_ON_REJECT", "delete", "--on-reject", "revoke, deactivate or leave"),
            ("JITP_REGISTRY", "moto", "--registry", "aws, memory or memory:PATH"),
            ("JITP_REGISTRY", "memory:", "--registry", "aws, memory or memory:PATH"),
            (
                "JITP_AWS_ENDPOINT_URL",
                "127.0.0.1:5000",
                "--endpoint-url",
                "an http:// or https:// URL such as http://127.0.0.1:5000",
            ),
            ("JITP_RETRY_DEADLINE_MS", "20s", "--retry-deadline-ms", "milliseconds, a whole number up to 900000"),
            ("JITP_RETRY_DEADLINE_MS", "900001", "--retry-deadline-ms", "milliseconds, a whole number up to 900000"),
            ("JITP_CA_CACHE_TTL_SECS", "-1", "--ca-cache-ttl-secs", "seconds, a whole number up to 86400"),
            ("JITP_CRL_REFRESH_SECONDS", "5", "--crl-refresh-seconds", "seconds, a whole number from 10 to 86400"),
            ("JITP_CRL_REFRESH_SECONDS", "86401", "--crl-refresh-seconds", "seconds, a whole number from 10 to 86400"),
            ("JITP_CRL_REFRESH_SECONDS", "5m", "--crl-refresh-seconds", "seconds, a whole number from 10 to 86400"),
            ("JITP_CRL_REFRESH_SECONDS", "", "--crl-refresh-seconds", "seconds, a whole number from 10 to 86400"),
            ("JITP_AWS_ACCOUNT_ID", "12345", "--account-id", "12 digits"),
            ("JITP_AWS_PARTITION", "AWS", "--partition", "a partition such as aws, aws-cn or aws-us-gov"),
            ("AWS_REGION", "US-EAST-1", "--region", "a region such as us-east-1 (lowercase)"),
            ("JITP_CONFIG", "", "--config", "a value (unset the variable for the default)"),
            (
                "JITP_QUOTAS",
                "CreatePolicy=0",
                "--quotas",
                "Operation=rate pairs such as CreatePolicy=50,UpdateCertificate=50: the quota of CreatePolicy is 0; it must be from 0.01 to 10000 requests per second",
            ),
            (
                "JITP_QUOTAS",
                "CreatePolicy:20",
                "--quotas",
                "Operation=rate pairs such as CreatePolicy=50,UpdateCertificate=50: \"CreatePolicy:20\" is not Operation=rate (for example CreatePolicy=20)",
            ),
            ("JITP_QUOTA_INSTANCES", "0", "--quota-instances", "a whole number from 1 to 10000"),
            ("JITP_NO_PACING", "sometimes", "--no-pacing", "true or false"),
            ("JITP_TEST_COUNT", "0", "--count", "a whole number from 1 to 256"),
            ("JITP_TEST_SWITCH", "maybe", "--switch", "true or false"),
        ];
        for (var, value, flag, expected) in cases {
            match parse(&[], &[(var, value)]) {
                Err(Error::Setting { var: Some(v), flag: f, value: got, expected: e }) => {
                    assert_eq!((v.as_str(), f.as_str(), got.as_str(), e.as_str()), (var, flag, value, expected));
                }
                other => panic!("{var}={value:?}: {other:?}"),
            }
            let message = parse(&[], &[(var, value)]).unwrap_err().to_string();
            assert_eq!(message, format!("{var} / {flag} = {value:?}: expected {expected}"));
        }
    }

    #[test]
    fn other_usage_errors_are_clap_s() {
        let err = parse(&["--no-such-flag"], &[]).unwrap_err();
        assert!(matches!(&err, Error::Usage(m) if m.contains("--no-such-flag")), "{err}");
    }

    #[test]
    fn a_clap_error_from_the_process_environment_path_is_named_too() {
        // What a binary parsing with clap's own `env` gets: the same explanation.
        let cmd = Bin::command();
        let err = cmd.clone().try_get_matches_from(["bin", "--policy-mode", "nope"]).unwrap_err();
        assert_eq!(
            explain(&err, &cmd).to_string(),
            "JITP_POLICY_MODE / --policy-mode = \"nope\": expected per-thing or shared"
        );
    }

    #[test]
    fn every_setting_has_a_variable_and_a_flag_and_the_readme_lists_it() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
        let cmd = Settings::augment_args(Command::new("settings"));
        for arg in cmd.get_arguments().filter(|a| a.get_id() != "help") {
            let var = arg.get_env().map(|v| v.to_string_lossy().into_owned());
            let var = var.unwrap_or_else(|| panic!("{} has no variable", arg.get_id()));
            assert!(var.starts_with("JITP_") || var == "AWS_REGION", "{var}");
            let long = arg.get_long().unwrap_or_else(|| panic!("{var} has no flag"));
            assert!(
                readme.contains(&format!("| `--{long}` | `{var}` |")),
                "README.md's settings table lacks --{long} / {var}"
            );
        }
    }
}

//! The guard's settings: the shared [`jitp_wiring::Settings`] (jitp.toml, `JITP_REGISTRY`, the endpoint, the CRL
//! refresh period `JITP_CRL_REFRESH_SECONDS`, the CA refresh period `JITP_CA_CACHE_TTL_SECS`) plus its own, read
//! once at init from its environment by the binary ([`jitp_wiring::parse::from_vars`]). A value that is set but
//! wrong is an init error naming the variable.

use clap::{Parser, ValueEnum};

use crate::record::DEFAULT_NAMESPACE;

/// The default `JITP_GUARD_METRICS_SECONDS`: one counts line a minute per warm sandbox.
pub const DEFAULT_METRICS_SECONDS: usize = 60;

/// What the guard does with a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Refuse the connection (`isAuthenticated: false`).
    Enforce,
    /// Let it through and record the refusal it would have made (`enforced: false`): a rollout's first step,
    /// to see what the guard would refuse before it refuses anything.
    Report,
}

/// Everything the guard takes from its environment.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "jitp-guard",
    about = "The jitp connect guard (AWS IoT custom client certificate validation); configured by its environment variables."
)]
pub struct GuardSettings {
    /// What every jitp binary takes: configuration, registry, CRL and CA refresh periods.
    #[command(flatten)]
    pub common: jitp_wiring::Settings,
    /// enforce: refuse what the decision refuses; report: allow it and record the refusal (rollout).
    #[arg(long, env = "JITP_GUARD_MODE", value_enum, default_value = "enforce")]
    pub mode: Mode,
    /// The CloudWatch namespace of the guard's metrics.
    #[arg(long, env = "JITP_GUARD_NAMESPACE", default_value = DEFAULT_NAMESPACE,
          value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub metric_namespace: String,
    /// The value of the metrics' `Stack` dimension: the deployment's name.
    #[arg(long, env = "JITP_GUARD_STACK", default_value = "jitp",
          value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub stack: String,
    /// How often a warm sandbox writes its allow counts, in seconds, 1 to 3600.
    #[arg(long, env = "JITP_GUARD_METRICS_SECONDS", value_name = "SECS", default_value_t = DEFAULT_METRICS_SECONDS,
          value_parser = jitp_wiring::count_in(1, 3600))]
    pub metrics_seconds: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<GuardSettings, jitp_wiring::Error> {
        jitp_wiring::parse::from_vars(["jitp-guard"], vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn defaults_and_bad_values() {
        let s = parse(&[]).unwrap();
        assert_eq!((s.mode, s.metrics_seconds, s.stack.as_str()), (Mode::Enforce, 60, "jitp"));
        assert_eq!(parse(&[("JITP_GUARD_MODE", "report")]).unwrap().mode, Mode::Report);
        for (var, bad) in [("JITP_GUARD_MODE", "audit"), ("JITP_GUARD_METRICS_SECONDS", "0"), ("JITP_GUARD_STACK", "")]
        {
            let e = parse(&[(var, bad)]).unwrap_err().to_string();
            assert!(e.contains(var), "{var}={bad}: {e}");
        }
    }
}

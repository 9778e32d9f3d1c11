//! The one tracing setup: JSON lines (Lambda's JSON log format; CloudWatch and log shippers parse them), the
//! event's fields at the top level, the current span, the target, no colours.

use tracing_subscriber::EnvFilter;

/// Where the log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Standard output: the Lambda function and `jitp serve`, whose audit lines are JSON there too.
    Stdout,
    /// Standard error: commands whose standard output is their result (`jitp provision`'s audit record).
    Stderr,
}

/// The filter's directives: `rust_log` (tracing's syntax, `info,jitp_core=debug`) if set and not blank, else
/// `level` (Lambda's `AWS_LAMBDA_LOG_LEVEL`, any case), else `info`.
pub fn directives(rust_log: Option<&str>, level: Option<&str>) -> String {
    let given = |v: Option<&str>| v.map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    given(rust_log).or_else(|| given(level).map(|v| v.to_ascii_lowercase())).unwrap_or_else(|| "info".into())
}

/// Install the subscriber (once per process; later calls do nothing) with [`directives`]. Directives that do not
/// parse fall back to `info`, and a warning saying so is the first line logged.
pub fn init_tracing(rust_log: Option<&str>, level: Option<&str>, target: Target) {
    let directives = directives(rust_log, level);
    let (filter, refused) = match EnvFilter::try_new(&directives) {
        Ok(filter) => (filter, None),
        Err(e) => (EnvFilter::new("info"), Some(e)),
    };
    let builder = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .with_ansi(false)
        .with_env_filter(filter);
    let installed = match target {
        Target::Stdout => builder.with_writer(std::io::stdout).try_init(),
        Target::Stderr => builder.with_writer(std::io::stderr).try_init(),
    };
    if let (Ok(()), Some(e)) = (installed, refused) {
        tracing::warn!(directives, error = %e, "RUST_LOG is not a tracing filter; logging at info");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_then_the_lambda_level_then_info() {
        assert_eq!(directives(Some("info,jitp_core=debug"), Some("ERROR")), "info,jitp_core=debug");
        assert_eq!(directives(Some("  "), Some("DEBUG")), "debug");
        assert_eq!(directives(None, None), "info");
    }
}

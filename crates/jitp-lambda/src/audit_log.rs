//! The function's own log.
//!
//! Audit lines are jitp-core's ([`jitp_core::audit::AuditRecord::line`]), written to stdout by the handler with
//! `trigger` (`direct` or `sqs`), `requestId` and the SQS `messageId`.
//!
//! The function's own log is tracing, formatted as JSON lines on stdout too, with the level from `RUST_LOG` (else
//! Lambda's `AWS_LAMBDA_LOG_LEVEL`, else `info`).

/// Install the JSON tracing subscriber on stdout. `RUST_LOG` takes tracing's directive syntax
/// (`info,jitp_core=debug`); without it, Lambda's `AWS_LAMBDA_LOG_LEVEL` or `info`.
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let directives = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().map(|v| v.to_ascii_lowercase()))
        .unwrap_or_else(|| "info".into());
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .with_ansi(false)
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .try_init();
}

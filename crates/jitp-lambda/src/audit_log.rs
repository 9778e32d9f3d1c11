//! Audit lines and the function's own log.
//!
//! An audit line is the [`AuditRecord`] as one JSON object with its fields at the top level (so CloudWatch metric
//! filters such as `{ $.outcome = "REJECTED" }` and `{ $.reason = "DUPLICATE_THING" }` match), plus what Lambda's
//! JSON log format carries: `level` and `requestId`, and `trigger` and `messageId` to find the SQS message. It
//! holds ids and subject-derived names only, never a certificate's PEM.
//!
//! The function's own log is tracing, formatted as JSON lines on stdout too, with the level from `RUST_LOG` (else
//! Lambda's `AWS_LAMBDA_LOG_LEVEL`, else `info`).

use std::io::Write as _;
use std::sync::Arc;

use jitp_core::audit::{AuditRecord, Outcome};
use serde_json::Value;

/// Where audit lines go.
pub type Sink = Arc<dyn Fn(&str) + Send + Sync>;

/// Stdout, one `write` per line so that concurrent lines never interleave.
pub fn stdout() -> Sink {
    Arc::new(|line: &str| {
        let mut out = std::io::stdout().lock();
        let mut buf = String::with_capacity(line.len() + 1);
        buf.push_str(line);
        buf.push('\n');
        // Nowhere better to report a closed stdout.
        let _ = out.write_all(buf.as_bytes()).and_then(|()| out.flush());
    })
}

/// What an audit line adds to the record.
#[derive(Debug, Clone, Copy)]
pub struct Meta<'a> {
    /// The invocation's request id.
    pub request_id: &'a str,
    /// `direct` or `sqs`.
    pub trigger: &'a str,
    /// The SQS message, for batches.
    pub message_id: Option<&'a str>,
}

/// The audit line of `record`.
pub fn line(record: &AuditRecord, meta: &Meta<'_>) -> String {
    let Ok(Value::Object(mut map)) = serde_json::to_value(record) else {
        // An AuditRecord is a plain struct of strings and numbers: it always serializes to an object.
        return record.to_json_line();
    };
    let level = if matches!(record.outcome, Outcome::Error | Outcome::Held) { "WARN" } else { "INFO" };
    map.insert("level".into(), level.into());
    map.insert("requestId".into(), meta.request_id.into());
    map.insert("trigger".into(), meta.trigger.into());
    if let Some(id) = meta.message_id {
        map.insert("messageId".into(), id.into());
    }
    Value::Object(map).to_string()
}

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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use jitp_core::ReasonCode;

    use super::*;

    #[test]
    fn outcome_and_reason_are_top_level_keys() {
        let mut record = AuditRecord::new(1_767_225_600);
        record.outcome = Outcome::Rejected;
        record.reason = Some(ReasonCode::DuplicateThing);
        record.certificate_id = Some("ab".repeat(32));
        let meta = Meta { request_id: "req-1", trigger: "sqs", message_id: Some("m-1") };
        let v: Value = serde_json::from_str(&line(&record, &meta)).unwrap();
        assert_eq!(v["outcome"], "REJECTED");
        assert_eq!(v["reason"], "DUPLICATE_THING");
        assert_eq!(v["eventType"], "jitp.provision");
        assert_eq!(v["requestId"], "req-1");
        assert_eq!(v["messageId"], "m-1");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["certificate_id"], "ab".repeat(32));
        assert!(!line(&record, &meta).contains('\n'));
    }

    #[test]
    fn errors_are_warnings_and_direct_events_have_no_message_id() {
        let record = AuditRecord::new(0);
        let v: Value =
            serde_json::from_str(&line(&record, &Meta { request_id: "r", trigger: "direct", message_id: None }))
                .unwrap();
        assert_eq!(v["outcome"], "ERROR");
        assert_eq!(v["level"], "WARN");
        assert!(v.get("messageId").is_none());
    }
}

//! What the guard writes: one line per refusal, and the allows counted, not logged one by one.
//!
//! Both are CloudWatch Embedded Metric Format lines (one JSON object per line on stdout): `_aws` names the
//! metrics, the values are top-level keys beside it, so the log line is also the metric and no metric filter
//! is needed.
//! - A refusal ([`refusal_line`], `eventType` `jitp.guard`): the device's identity (certificate id, serial,
//!   issuer CA, profile), the reason code and the sentence naming the CRL or deny-list entry, the connection
//!   (its id, principal, SNI name), whether it was enforced; metric `Refused` = 1, by `Stack` and by `Stack` and
//!   `reason`. The alarm watches `Refused` by `Stack`.
//! - The allows ([`Counts`], `eventType` `jitp.guard.counts`): `Allowed` and `AllowedReportOnly` (refusals that
//!   report-only mode let through) summed over a period (`JITP_GUARD_METRICS_SECONDS`) and written at the first
//!   invocation after it. At 500 connects a second a line per allow is cost without value; what is lost is at
//!   most one period's counts when Lambda retires the sandbox.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::decision::Decision;
use crate::event::Connection;
use crate::judge::rfc3339;

/// The metrics' default namespace.
pub const DEFAULT_NAMESPACE: &str = "jitp/Guard";
/// The dimension every metric has: the deployment (the stack's name).
pub const STACK: &str = "Stack";
/// The second dimension of `Refused`: the reason code.
pub const REASON: &str = "reason";

/// Where the lines go, and standard output (jitp-pki's, shared with the provisioning audit lines).
pub use jitp_pki::report::{Sink, stdout};

/// Where the metrics go: namespace and the `Stack` dimension's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricTarget {
    /// CloudWatch namespace.
    pub namespace: String,
    /// The `Stack` dimension's value.
    pub stack: String,
}

/// The record of one refusal, as one EMF line. `enforced`: the connection was refused (false in report-only
/// mode, which lets it through); `request_id`: the Lambda invocation's; `at`: Unix seconds.
pub fn refusal_line(
    decision: &Decision,
    connection: &Connection,
    enforced: bool,
    request_id: &str,
    at: i64,
    target: &MetricTarget,
) -> String {
    let mut line = Map::new();
    line.insert(
        "_aws".into(),
        json!({
            "Timestamp": at.saturating_mul(1000),
            "CloudWatchMetrics": [{
                "Namespace": target.namespace,
                "Dimensions": [[STACK], [STACK, REASON]],
                "Metrics": [{"Name": "Refused", "Unit": "Count"}],
            }],
        }),
    );
    line.insert("eventType".into(), json!("jitp.guard"));
    line.insert("at".into(), json!(rfc3339(at)));
    line.insert(STACK.into(), json!(target.stack));
    line.insert("decision".into(), json!(decision.decision));
    line.insert("enforced".into(), json!(enforced));
    line.insert(REASON.into(), json!(decision.reason.map(|r| r.as_str())));
    line.insert("fault".into(), json!(decision.fault()));
    line.insert("message".into(), json!(decision.message));
    line.insert("certificate_id".into(), json!(decision.certificate_id));
    line.insert("serial".into(), json!(decision.serial));
    line.insert("ca_id".into(), json!(decision.ca_id));
    line.insert("profile".into(), json!(decision.profile));
    line.insert("connection_id".into(), json!(connection.connection_id));
    line.insert("principal_id".into(), json!(connection.principal_id));
    line.insert("server_name".into(), json!(connection.server_name));
    line.insert("requestId".into(), json!(request_id));
    line.insert("Refused".into(), json!(1));
    Value::Object(line).to_string()
}

/// The allows since the last line, and when that was.
#[derive(Debug)]
pub struct Counts {
    allowed: AtomicU64,
    allowed_report_only: AtomicU64,
    since: Mutex<Instant>,
    every: Duration,
}

impl Counts {
    /// Counts written every `every`.
    pub fn new(every: Duration) -> Self {
        Self {
            allowed: AtomicU64::new(0),
            allowed_report_only: AtomicU64::new(0),
            since: Mutex::new(Instant::now()),
            every,
        }
    }

    /// One allowed connection.
    pub fn allowed(&self) {
        self.allowed.fetch_add(1, Ordering::Relaxed);
    }

    /// One refused connection let through by report-only mode.
    pub fn allowed_report_only(&self) {
        self.allowed_report_only.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts' line if the period has passed at `now` (and the counts start again), else `None`. `at`:
    /// Unix seconds, for the line's timestamp.
    pub fn take_due(&self, now: Instant, at: i64, target: &MetricTarget) -> Option<String> {
        {
            let mut since = self.since.lock().ok()?;
            if now.saturating_duration_since(*since) < self.every {
                return None;
            }
            *since = now;
        }
        Some(self.take(at, target))
    }

    /// The counts' line now, whatever the period (and the counts start again).
    pub fn take(&self, at: i64, target: &MetricTarget) -> String {
        let allowed = self.allowed.swap(0, Ordering::Relaxed);
        let report_only = self.allowed_report_only.swap(0, Ordering::Relaxed);
        json!({
            "_aws": {
                "Timestamp": at.saturating_mul(1000),
                "CloudWatchMetrics": [{
                    "Namespace": target.namespace,
                    "Dimensions": [[STACK]],
                    "Metrics": [{"Name": "Allowed", "Unit": "Count"}, {"Name": "AllowedReportOnly", "Unit": "Count"}],
                }],
            },
            "eventType": "jitp.guard.counts",
            "at": rfc3339(at),
            STACK: target.stack,
            "Allowed": allowed,
            "AllowedReportOnly": report_only,
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Verdict;
    use crate::judge::ReasonCode;

    fn target() -> MetricTarget {
        MetricTarget { namespace: "jitp/Guard".into(), stack: "prod".into() }
    }

    #[test]
    fn a_refusal_line_is_its_own_metric() {
        let decision = Decision {
            decision: Verdict::Deny,
            reason: Some(ReasonCode::CertRevoked),
            message: "on the CRL".into(),
            certificate_id: Some("ab".repeat(32)),
            serial: Some("01".into()),
            ca_id: Some("cd".repeat(32)),
            profile: Some("sensors".into()),
        };
        let connection = Connection {
            connection_id: Some("c".into()),
            principal_id: None,
            server_name: Some("iot.example.com".into()),
        };
        let line: Value =
            serde_json::from_str(&refusal_line(&decision, &connection, true, "req", 1_767_225_600, &target())).unwrap();
        assert_eq!(line["eventType"], "jitp.guard");
        assert_eq!(line["reason"], "CERT_REVOKED");
        assert_eq!(line["fault"], "device");
        assert_eq!(line["decision"], "deny");
        assert_eq!(line["enforced"], true);
        assert_eq!(line["Refused"], 1);
        assert_eq!(line["Stack"], "prod");
        assert_eq!(line["server_name"], "iot.example.com");
        assert_eq!(line["_aws"]["Timestamp"], 1_767_225_600_000_i64);
        let metrics = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(metrics["Dimensions"], json!([["Stack"], ["Stack", "reason"]]));
        assert_eq!(metrics["Metrics"][0]["Name"], "Refused");
    }

    #[test]
    fn allows_are_summed_and_written_once_a_period() {
        let counts = Counts::new(Duration::from_secs(60));
        let start = Instant::now();
        for _ in 0..500 {
            counts.allowed();
        }
        counts.allowed_report_only();
        assert_eq!(counts.take_due(start, 0, &target()), None, "not yet");
        let line: Value =
            serde_json::from_str(&counts.take_due(start + Duration::from_secs(61), 0, &target()).unwrap()).unwrap();
        assert_eq!((line["Allowed"].as_u64(), line["AllowedReportOnly"].as_u64()), (Some(500), Some(1)));
        let line: Value = serde_json::from_str(&counts.take(0, &target())).unwrap();
        assert_eq!(line["Allowed"], 0, "the counts start again");
    }
}

//! Prometheus metrics, in the text exposition format (version 0.0.4), hand-rolled: a handful of counters and
//! one histogram do not need a metrics library.
//!
//! Label values come from jitp's own vocabularies (outcomes, reason codes, AWS operation names) and are escaped
//! anyway.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use jitp_core::audit::AuditRecord;

use crate::state::lock;

/// Upper bounds of the event latency buckets, seconds: a provisioning is 5 or 6 calls of tens of milliseconds;
/// the tail covers throttling backoff up to the workflow's retry deadline.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Why a request was turned away before reaching the workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Refusal {
    Unauthorized,
    Overloaded,
    Timeout,
    TooLarge,
}

impl Refusal {
    const ALL: [Refusal; 4] = [Self::Unauthorized, Self::Overloaded, Self::Timeout, Self::TooLarge];

    fn as_str(self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::Overloaded => "overloaded",
            Self::Timeout => "timeout",
            Self::TooLarge => "too_large",
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// (outcome, reason) -> count
    events: BTreeMap<(&'static str, String), u64>,
    /// operation -> count
    api_calls: BTreeMap<String, u64>,
    retries: u64,
    /// Per bucket (not cumulative); the last slot is +Inf.
    buckets: [u64; BUCKETS.len() + 1],
    sum_seconds: f64,
    count: u64,
    refused: BTreeMap<Refusal, u64>,
    previews: BTreeMap<&'static str, u64>,
    confirmations: u64,
    confirmations_dropped: u64,
}

/// The server's metrics. One lock: updates are a few map increments per request.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    /// Count one handled event.
    pub(crate) fn event(&self, record: &AuditRecord, elapsed: Duration) {
        let mut m = lock(&self.inner);
        let reason = record.reason.map(|r| r.as_str().to_owned()).unwrap_or_default();
        *m.events.entry((record.outcome.as_str(), reason)).or_default() += 1;
        for (op, n) in &record.api_calls {
            *m.api_calls.entry(op.clone()).or_default() += u64::from(*n);
        }
        m.retries += u64::from(record.retries);
        let seconds = elapsed.as_secs_f64();
        let slot = BUCKETS.iter().position(|b| seconds <= *b).unwrap_or(BUCKETS.len());
        m.buckets[slot] += 1;
        m.sum_seconds += seconds;
        m.count += 1;
    }

    pub(crate) fn refused(&self, why: Refusal) {
        *lock(&self.inner).refused.entry(why).or_default() += 1;
    }

    pub(crate) fn preview(&self, decision: &'static str) {
        *lock(&self.inner).previews.entry(decision).or_default() += 1;
    }

    pub(crate) fn confirmation(&self) {
        lock(&self.inner).confirmations += 1;
    }

    pub(crate) fn confirmation_dropped(&self) {
        lock(&self.inner).confirmations_dropped += 1;
    }

    /// The exposition text. `in_flight` is the number of `/v1/*` requests running now.
    pub(crate) fn render(&self, in_flight: usize) -> String {
        let m = lock(&self.inner);
        let mut out = String::with_capacity(4096);
        header(
            &mut out,
            "jitp_events_total",
            "counter",
            "Certificate-registered events handled, by outcome and reason code.",
        );
        for ((outcome, reason), n) in &m.events {
            let _ = writeln!(out, "jitp_events_total{{outcome=\"{}\",reason=\"{}\"}} {n}", esc(outcome), esc(reason));
        }
        header(&mut out, "jitp_api_calls_total", "counter", "AWS IoT API calls made by the workflow, by operation.");
        for (op, n) in &m.api_calls {
            let _ = writeln!(out, "jitp_api_calls_total{{operation=\"{}\"}} {n}", esc(op));
        }
        header(&mut out, "jitp_api_retries_total", "counter", "Throttled or failed AWS IoT calls that were retried.");
        let _ = writeln!(out, "jitp_api_retries_total {}", m.retries);
        header(&mut out, "jitp_event_duration_seconds", "histogram", "Time to handle one event.");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += m.buckets[i];
            let _ = writeln!(out, "jitp_event_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += m.buckets[BUCKETS.len()];
        let _ = writeln!(out, "jitp_event_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "jitp_event_duration_seconds_sum {}", m.sum_seconds);
        let _ = writeln!(out, "jitp_event_duration_seconds_count {}", m.count);
        header(&mut out, "jitp_http_refused_total", "counter", "Requests turned away before any work, by cause.");
        for why in Refusal::ALL {
            let n = m.refused.get(&why).copied().unwrap_or(0);
            let _ = writeln!(out, "jitp_http_refused_total{{cause=\"{}\"}} {n}", why.as_str());
        }
        header(&mut out, "jitp_previews_total", "counter", "Template previews, by decision.");
        for decision in ["accept", "reject"] {
            let n = m.previews.get(decision).copied().unwrap_or(0);
            let _ = writeln!(out, "jitp_previews_total{{decision=\"{decision}\"}} {n}");
        }
        header(
            &mut out,
            "jitp_destination_confirmations_total",
            "counter",
            "IoT rule destination confirmations received.",
        );
        let _ = writeln!(out, "jitp_destination_confirmations_total {}", m.confirmations);
        header(
            &mut out,
            "jitp_destination_confirmations_dropped_total",
            "counter",
            "IoT rule destination confirmations not kept because the bound was reached (see GET /v1/confirmation).",
        );
        let _ = writeln!(out, "jitp_destination_confirmations_dropped_total {}", m.confirmations_dropped);
        header(&mut out, "jitp_http_in_flight", "gauge", "Work requests (/v1/*) being handled now.");
        let _ = writeln!(out, "jitp_http_in_flight {in_flight}");
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escape a label value: backslash, double quote and newline.
fn esc(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use jitp_core::audit::Outcome;

    #[test]
    fn exposition() {
        let metrics = Metrics::default();
        let mut record = AuditRecord::new(0);
        record.outcome = Outcome::Provisioned;
        record.api_calls.insert("DescribeCertificate".into(), 1);
        record.api_calls.insert("CreateThing".into(), 1);
        metrics.event(&record, Duration::from_millis(20));
        metrics.event(&record, Duration::from_secs(60));
        metrics.refused(Refusal::Unauthorized);
        let text = metrics.render(3);
        for line in [
            "jitp_events_total{outcome=\"PROVISIONED\",reason=\"\"} 2",
            "jitp_api_calls_total{operation=\"DescribeCertificate\"} 2",
            "jitp_event_duration_seconds_bucket{le=\"0.01\"} 0",
            "jitp_event_duration_seconds_bucket{le=\"0.025\"} 1",
            "jitp_event_duration_seconds_bucket{le=\"30\"} 1",
            "jitp_event_duration_seconds_bucket{le=\"+Inf\"} 2",
            "jitp_event_duration_seconds_count 2",
            "jitp_http_refused_total{cause=\"unauthorized\"} 1",
            "jitp_http_in_flight 3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}

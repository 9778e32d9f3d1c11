//! Prometheus metrics, with `metrics-exporter-prometheus`.
//!
//! Events are counted by jitp-core's [`AuditRecord::count`], the one place jitp defines its event metrics; the
//! server adds what only it knows (requests turned away, previews, confirmations, requests in flight). Each
//! server owns its recorder (no process-global state), installed around every count with
//! [`metrics::with_local_recorder`].

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use jitp_core::audit::AuditRecord;

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

/// The server's metrics: its own recorder and the handle that renders it.
pub(crate) struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let builder = PrometheusBuilder::new();
        // The bucket list is a non-empty constant: set_buckets_for_metric fails only on an empty one.
        let builder =
            match builder.set_buckets_for_metric(Matcher::Full("jitp_event_duration_seconds".into()), &BUCKETS) {
                Ok(b) => b,
                Err(_) => PrometheusBuilder::new(),
            };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let metrics = Self { recorder, handle };
        metrics.with(|| {
            metrics::describe_counter!(
                "jitp_events_total",
                "Certificate-registered events handled, by outcome and reason code."
            );
            metrics::describe_counter!("jitp_api_calls_total", "AWS IoT API calls made by the workflow, by operation.");
            metrics::describe_counter!(
                "jitp_api_retries_total",
                "Throttled or failed AWS IoT calls that were retried."
            );
            metrics::describe_histogram!(
                "jitp_event_duration_seconds",
                metrics::Unit::Seconds,
                "Time to handle one event."
            );
            metrics::describe_counter!("jitp_http_refused_total", "Requests turned away before any work, by cause.");
            metrics::describe_counter!("jitp_previews_total", "Template previews, by decision.");
            metrics::describe_counter!(
                "jitp_destination_confirmations_total",
                "IoT rule destination confirmations received."
            );
            metrics::describe_counter!(
                "jitp_destination_confirmations_dropped_total",
                "IoT rule destination confirmations not kept because the bound was reached (see GET /v1/confirmation)."
            );
            metrics::describe_gauge!("jitp_http_in_flight", "Work requests (/v1/*) being handled now.");
            // Zeros, so that a dashboard sees every series before the first event.
            for why in Refusal::ALL {
                metrics::counter!("jitp_http_refused_total", "cause" => why.as_str()).absolute(0);
            }
            for decision in ["accept", "reject"] {
                metrics::counter!("jitp_previews_total", "decision" => decision).absolute(0);
            }
            metrics::counter!("jitp_api_retries_total").absolute(0);
            metrics::counter!("jitp_destination_confirmations_total").absolute(0);
            metrics::counter!("jitp_destination_confirmations_dropped_total").absolute(0);
        });
        metrics
    }
}

impl Metrics {
    fn with(&self, f: impl FnOnce()) {
        metrics::with_local_recorder(&self.recorder, f);
    }

    /// Count one handled event (jitp-core's definition of what an event counts).
    pub(crate) fn event(&self, record: &AuditRecord) {
        self.with(|| record.count());
    }

    pub(crate) fn refused(&self, why: Refusal) {
        self.with(|| metrics::counter!("jitp_http_refused_total", "cause" => why.as_str()).increment(1));
    }

    pub(crate) fn preview(&self, decision: &'static str) {
        self.with(|| metrics::counter!("jitp_previews_total", "decision" => decision).increment(1));
    }

    pub(crate) fn confirmation(&self) {
        self.with(|| metrics::counter!("jitp_destination_confirmations_total").increment(1));
    }

    pub(crate) fn confirmation_dropped(&self) {
        self.with(|| metrics::counter!("jitp_destination_confirmations_dropped_total").increment(1));
    }

    /// The exposition text. `in_flight` is the number of `/v1/*` requests running now.
    pub(crate) fn render(&self, in_flight: usize) -> String {
        #[allow(clippy::cast_precision_loss)] // a count of requests: far below 2^52
        self.with(|| metrics::gauge!("jitp_http_in_flight").set(in_flight as f64));
        self.handle.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jitp_core::audit::{Calls, Ending, Facts, Outcome};
    use jitp_registry::registry::Operation;
    use std::time::Duration;

    fn provisioned(duration: Duration) -> AuditRecord {
        let ending = Ending::Done { outcome: Outcome::Provisioned, message: String::new() };
        let mut calls = Calls::default();
        calls.by_operation.insert(Operation::DescribeCertificate, 1);
        calls.by_operation.insert(Operation::CreateThing, 1);
        AuditRecord::build(0, Facts::default(), ending, calls, duration)
    }

    #[test]
    fn exposition() {
        let metrics = Metrics::default();
        metrics.event(&provisioned(Duration::from_millis(20)));
        metrics.event(&provisioned(Duration::from_secs(60)));
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
    fn servers_do_not_share_counts() {
        let (a, b) = (Metrics::default(), Metrics::default());
        a.refused(Refusal::Timeout);
        assert!(a.render(0).lines().any(|l| l == "jitp_http_refused_total{cause=\"timeout\"} 1"));
        assert!(b.render(0).lines().any(|l| l == "jitp_http_refused_total{cause=\"timeout\"} 0"));
    }
}

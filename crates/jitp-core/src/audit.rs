//! The audit record: one JSON line per event, the same shape in every deployment (Lambda, server, CLI).
//!
//! Modelled on AWS IoT's own log records (`eventType`, `status`, `reason`, `details`): `outcome` and `reason`
//! are the fields metric filters and alarms key on (`{ $.outcome = "REJECTED" }`, `{ $.reason = "DUPLICATE_THING" }`).
//!
//! The workflow builds a record once, at the end of an event, from typed parts ([`AuditRecord::build`]); every
//! binary writes it with [`AuditRecord::line`], which adds only where the event came from ([`Origin`]), and
//! counts it with [`AuditRecord::count`] through the `metrics` facade (the server exports the counters; a
//! binary without a recorder installed pays nothing).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use jitp_pki::reason::{Fault, ReasonCode};
use jitp_registry::registry::Operation;

/// What happened to an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::IntoStaticStr, strum::Display)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    /// Thing, policy and attachments in place; certificate activated.
    Provisioned,
    /// The certificate was already ACTIVE: nothing written.
    AlreadyProvisioned,
    /// A final no for a certificate at fault (or a forged or stale event), with a reason code; never retried.
    Rejected,
    /// An operator's mistake (template, CA, configuration; see [`jitp_pki::reason::Fault::Operator`]) or the
    /// profile's own rules ([`jitp_pki::reason::Fault::Profile`]: a configuration change could accept it) stop the
    /// device: the certificate is left PENDING_ACTIVATION and the event is handed back, so that it
    /// provisions the device once the mistake is fixed (redrive the dead-letter queue after the fix).
    Held,
    /// A transient failure: the platform should deliver the event again.
    Error,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 5] =
        [Self::Provisioned, Self::AlreadyProvisioned, Self::Rejected, Self::Held, Self::Error];

    /// The SCREAMING_SNAKE name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// `Success` for an event whose certificate ends provisioned, `Failure` otherwise.
    pub fn status(self) -> Status {
        match self {
            Self::Provisioned | Self::AlreadyProvisioned => Status::Success,
            Self::Rejected | Self::Held | Self::Error => Status::Failure,
        }
    }

    /// Should the platform deliver this event again (ERROR, HELD)?
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Error | Self::Held)
    }
}

/// `Success` or `Failure`, as in AWS IoT's logs; a function of the [`Outcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    /// Provisioned or already provisioned.
    Success,
    /// Anything else.
    Failure,
}

/// The kind of record: the `eventType` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// A registration event handled by the provisioning workflow.
    #[serde(rename = "jitp.provision")]
    Provision,
    /// A change `jitp reconcile --apply` or `--rollback` made ([`ReconcileRecord`]).
    #[serde(rename = "jitp.reconcile")]
    Reconcile,
}

/// Where the CA id the workflow used came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaSource {
    /// DescribeCertificate named it (AWS).
    Registry,
    /// The registry did not say (moto); the event's id was used.
    Event,
}

/// What was done to a rejected or held certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::IntoStaticStr, strum::Display)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum CertificateAction {
    /// Set REVOKED (`on_reject = "revoke"`).
    Revoked,
    /// Set INACTIVE (`on_reject = "deactivate"`, or an ACTIVE certificate that did not own its thing).
    Inactive,
    /// Left as it was (`on_reject = "leave"`).
    Left,
    /// Left PENDING_ACTIVATION: an operator's mistake or the profile's own rules never cost a device its
    /// certificate.
    LeftPending,
}

impl CertificateAction {
    /// The SCREAMING_SNAKE name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One event's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When the event was handled (RFC 3339).
    pub timestamp: String,
    /// Always `jitp.provision`.
    #[serde(rename = "eventType")]
    pub event_type: EventType,
    /// What happened.
    pub outcome: Outcome,
    /// `Success` or `Failure`, as in AWS IoT's logs (see [`Outcome::status`]).
    pub status: Status,
    /// The reason code of a rejection or a hold.
    pub reason: Option<ReasonCode>,
    /// Whose mistake the rejection is (`device`, `operator`, `none`), from the reason code.
    pub fault: Option<Fault>,
    /// One sentence for people.
    pub message: String,
    /// The certificate.
    pub certificate_id: Option<String>,
    /// The CA.
    pub ca_certificate_id: Option<String>,
    /// Where the CA id came from.
    pub ca_source: Option<CaSource>,
    /// The thing.
    pub thing_name: Option<String>,
    /// The policy.
    pub policy_name: Option<String>,
    /// The policy's default version after the event.
    pub policy_version: Option<String>,
    /// The profile that decided.
    pub profile: Option<String>,
    /// What was done to a rejected or held certificate.
    pub certificate_action: Option<CertificateAction>,
    /// With `on_duplicate = "rotate"`: the older certificates this one replaced on its thing (deactivated; they
    /// stay attached, for a rollback).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaced_certificates: Vec<String>,
    /// The registry call whose failure ended an ERROR or a hold on the registry's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_operation: Option<Operation>,
    /// API calls made, by operation (every attempt, retried ones included).
    pub api_calls: BTreeMap<Operation, u32>,
    /// Their total.
    pub api_call_count: u32,
    /// Throttled or failed attempts that were retried.
    pub retries: u32,
    /// Time the event's calls waited for their slots under the API quotas ([`jitp_registry::pacing`]), milliseconds
    /// (calls that ran at once each count their own wait).
    pub quota_wait_ms: u64,
    /// Wall time, milliseconds.
    pub duration_ms: u64,
}

/// What the workflow learnt of an event on its way, whatever the outcome: the parts of a record that are
/// not the outcome itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The certificate.
    pub certificate_id: Option<String>,
    /// The CA, once known.
    pub ca_certificate_id: Option<String>,
    /// Where the CA id came from.
    pub ca_source: Option<CaSource>,
    /// The profile that governed the event.
    pub profile: Option<String>,
    /// The thing.
    pub thing_name: Option<String>,
    /// The policy.
    pub policy_name: Option<String>,
    /// The policy's default version after the event.
    pub policy_version: Option<String>,
    /// Certificates retired by a rotation.
    pub replaced_certificates: Vec<String>,
}

/// How an event ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// PROVISIONED or ALREADY_PROVISIONED, with the sentence that says what was found or done.
    Done {
        /// The outcome.
        outcome: Outcome,
        /// What was done.
        message: String,
    },
    /// REJECTED or HELD (by the reason code's [`Fault`]): the rejection and what was done to the certificate.
    Refused {
        /// The reason code.
        reason: ReasonCode,
        /// The human sentence.
        message: String,
        /// What was done to the certificate.
        action: Option<CertificateAction>,
    },
    /// ERROR: the platform should deliver the event again.
    Failed {
        /// The registry call that failed, where one did.
        operation: Option<Operation>,
        /// What went wrong.
        message: String,
    },
}

/// The API calls one event made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calls {
    /// Attempts by operation.
    pub by_operation: BTreeMap<Operation, u32>,
    /// Attempts that failed transiently and were made again.
    pub retries: u32,
    /// Time waited for quota slots, all calls together.
    pub quota_wait: Duration,
}

/// Where a record was handled, added to its line by [`AuditRecord::line`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    /// What delivered the event: `direct`, `sqs` (Lambda), `http` (jitp serve), `cli` (jitp provision).
    pub trigger: &'a str,
    /// The request id (the Lambda invocation's, the HTTP request's), where there is one.
    pub request_id: Option<&'a str>,
    /// The SQS message, for batches.
    pub message_id: Option<&'a str>,
}

/// The line written for a record: the record's fields at the top level, then the origin's.
#[derive(Serialize)]
struct Line<'a> {
    level: &'static str,
    #[serde(flatten)]
    record: &'a AuditRecord,
    trigger: &'a str,
    #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(rename = "messageId", skip_serializing_if = "Option::is_none")]
    message_id: Option<&'a str>,
}

impl AuditRecord {
    /// The record of an event handled at `now_unix` (Unix seconds), built once from what the workflow learnt,
    /// how it ended, and the calls it made.
    pub fn build(now_unix: i64, facts: Facts, ending: Ending, calls: Calls, duration: Duration) -> Self {
        let (outcome, reason, message, action, failed_operation) = match ending {
            Ending::Done { outcome, message } => (outcome, None, message, None, None),
            Ending::Refused { reason, message, action } => {
                // Held: the certificate was left as it was for the fix and the redelivery. A certificate the
                // workflow settled itself (an ACTIVE one that lost its thing, deactivated) has nothing to wait for.
                let settled = matches!(action, Some(CertificateAction::Revoked | CertificateAction::Inactive));
                let outcome = if reason.fault().holds() && !settled { Outcome::Held } else { Outcome::Rejected };
                (outcome, Some(reason), message, action, None)
            }
            Ending::Failed { operation, message } => (Outcome::Error, None, message, None, operation),
        };
        Self {
            timestamp: jitp_pki::unix_time::rfc3339(now_unix),
            event_type: EventType::Provision,
            outcome,
            status: outcome.status(),
            reason,
            fault: reason.map(ReasonCode::fault),
            message,
            certificate_id: facts.certificate_id,
            ca_certificate_id: facts.ca_certificate_id,
            ca_source: facts.ca_source,
            thing_name: facts.thing_name,
            policy_name: facts.policy_name,
            policy_version: facts.policy_version,
            profile: facts.profile,
            certificate_action: action,
            replaced_certificates: facts.replaced_certificates,
            failed_operation,
            api_call_count: calls.by_operation.values().sum(),
            api_calls: calls.by_operation,
            retries: calls.retries,
            quota_wait_ms: u64::try_from(calls.quota_wait.as_millis()).unwrap_or(u64::MAX),
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Should the platform deliver this event again?
    pub fn is_retryable(&self) -> bool {
        self.outcome.is_retryable()
    }

    /// The record alone as one JSON object (for APIs that return it).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// The audit line every binary writes: `level` (`WARN` for ERROR and HELD, else `INFO`), the record's
    /// fields at the top level (so that `{ $.outcome = "REJECTED" }` matches), then where it was handled. One
    /// JSON object, no newline. It holds ids and subject-derived names only, never a certificate's PEM.
    pub fn line(&self, origin: &Origin<'_>) -> String {
        let line = Line {
            level: if self.is_retryable() { "WARN" } else { "INFO" },
            record: self,
            trigger: origin.trigger,
            request_id: origin.request_id,
            message_id: origin.message_id,
        };
        serde_json::to_string(&line).unwrap_or_else(|_| self.to_json_line())
    }

    /// Count the record with the `metrics` facade: `jitp_events_total{outcome, reason}`,
    /// `jitp_api_calls_total{operation}`, `jitp_api_retries_total`, `jitp_quota_wait_seconds` and
    /// `jitp_event_duration_seconds`. The one place
    /// jitp counts events; a process without a recorder installed drops the counts.
    pub fn count(&self) {
        let reason = self.reason.map_or("", ReasonCode::as_str);
        metrics::counter!("jitp_events_total", "outcome" => self.outcome.as_str(), "reason" => reason).increment(1);
        for (operation, n) in &self.api_calls {
            metrics::counter!("jitp_api_calls_total", "operation" => operation.as_str()).increment(u64::from(*n));
        }
        metrics::counter!("jitp_api_retries_total").increment(u64::from(self.retries));
        #[allow(clippy::cast_precision_loss)] // milliseconds of one event: far below 2^52
        {
            metrics::histogram!("jitp_quota_wait_seconds").record(self.quota_wait_ms as f64 / 1000.0);
            metrics::histogram!("jitp_event_duration_seconds").record(self.duration_ms as f64 / 1000.0);
        }
    }
}

/// What one [`ReconcileRecord`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReconcileAction {
    /// A new default version of the device's policy (the rendered document of today's configuration).
    PolicyVersion,
    /// A new default version of a shared policy, for `devices` devices.
    SharedPolicyVersion,
    /// The thing's type or attributes, by UpdateThing with `expectedVersion` (never its `jitp_certificate`).
    ThingUpdated,
    /// `--rollback`: the default version set back to the one before (SetDefaultPolicyVersion).
    PolicyRollback,
    /// `--revoke`: the profile's `on_reject` applied to an ACTIVE certificate today's configuration refuses.
    Certificate,
}

/// One change made by `jitp reconcile --apply | --rollback`: one line per device changed (one per shared
/// policy), `eventType = "jitp.reconcile"`. Its own shape beside [`AuditRecord`]'s (`jitp.provision`, pinned by
/// `jitp_testkit::audit_line`), with the same conventions: snake_case fields, `timestamp` and `eventType` first,
/// ids and names only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileRecord {
    /// When the change was made (RFC 3339).
    pub timestamp: String,
    /// Always `jitp.reconcile`.
    #[serde(rename = "eventType")]
    pub event_type: EventType,
    /// What was changed.
    pub action: ReconcileAction,
    /// The thing (absent for a shared policy's version).
    pub thing_name: Option<String>,
    /// The thing's certificate.
    pub certificate_id: Option<String>,
    /// The policy.
    pub policy_name: Option<String>,
    /// The policy's default version before.
    pub from_version: Option<String>,
    /// The policy's default version after.
    pub to_version: Option<String>,
    /// Devices the change reaches (1, or a shared policy's devices).
    pub devices: u64,
    /// For `CERTIFICATE`: the rejection's reason code.
    pub reason: Option<ReasonCode>,
    /// For `CERTIFICATE`: what was done to it.
    pub certificate_action: Option<CertificateAction>,
    /// One sentence for people.
    pub message: String,
}

impl ReconcileRecord {
    /// A record of `action` at `now_unix`; the caller fills in the rest.
    pub fn new(now_unix: i64, action: ReconcileAction, message: String) -> Self {
        Self {
            timestamp: jitp_pki::unix_time::rfc3339(now_unix),
            event_type: EventType::Reconcile,
            action,
            thing_name: None,
            certificate_id: None,
            policy_name: None,
            from_version: None,
            to_version: None,
            devices: 1,
            reason: None,
            certificate_action: None,
            message,
        }
    }

    /// The audit line: `level` INFO, the record's fields, `trigger` (`cli`). One JSON object, no newline.
    pub fn line(&self, trigger: &str) -> String {
        #[derive(Serialize)]
        struct Line<'a> {
            level: &'static str,
            #[serde(flatten)]
            record: &'a ReconcileRecord,
            trigger: &'a str,
        }
        serde_json::to_string(&Line { level: "INFO", record: self, trigger }).unwrap_or_else(|_| "{}".into())
    }
}

/// Where audit lines go, and standard output (jitp-pki's, shared with the guard's records).
pub use jitp_pki::report::{Sink, stdout};

#[cfg(test)]
mod tests {
    use super::*;

    /// The audit record's names, byte for byte (as_str, Display and serde agree): metric filters key on them.
    #[test]
    fn outcome_and_action_names_are_pinned() {
        let outcomes = [
            (Outcome::Provisioned, "PROVISIONED"),
            (Outcome::AlreadyProvisioned, "ALREADY_PROVISIONED"),
            (Outcome::Rejected, "REJECTED"),
            (Outcome::Held, "HELD"),
            (Outcome::Error, "ERROR"),
        ];
        assert_eq!(outcomes.map(|(o, _)| o), Outcome::ALL);
        for (outcome, name) in outcomes {
            assert_eq!((outcome.as_str(), outcome.to_string().as_str()), (name, name));
            assert_eq!(serde_json::to_string(&outcome).ok(), Some(format!("\"{name}\"")));
        }
        for (action, name) in [
            (CertificateAction::Revoked, "REVOKED"),
            (CertificateAction::Inactive, "INACTIVE"),
            (CertificateAction::Left, "LEFT"),
            (CertificateAction::LeftPending, "LEFT_PENDING"),
        ] {
            assert_eq!((action.as_str(), action.to_string().as_str()), (name, name));
            assert_eq!(serde_json::to_string(&action).ok(), Some(format!("\"{name}\"")));
        }
    }

    fn rejected() -> AuditRecord {
        let ending = Ending::Refused {
            reason: ReasonCode::CertDenied,
            message: "denied".into(),
            action: Some(CertificateAction::Revoked),
        };
        let facts = Facts { certificate_id: Some("ab".repeat(32)), ..Facts::default() };
        AuditRecord::build(1_767_225_600, facts, ending, Calls::default(), Duration::from_millis(3))
    }

    #[test]
    fn the_line_puts_the_record_at_the_top_level_then_the_origin() {
        let origin = Origin { trigger: "sqs", request_id: Some("req-1"), message_id: Some("m-1") };
        let line = rejected().line(&origin);
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        assert_eq!(v["outcome"], "REJECTED");
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["reason"], "CERT_DENIED");
        assert_eq!(v["fault"], "device");
        assert_eq!(v["certificate_action"], "REVOKED");
        assert_eq!(v["eventType"], "jitp.provision");
        assert_eq!(v["timestamp"], "2026-01-01T00:00:00Z");
        assert_eq!(v["requestId"], "req-1");
        assert_eq!(v["messageId"], "m-1");
        assert_eq!(v["trigger"], "sqs");
        assert_eq!(v["level"], "INFO");
        assert!(v.get("failed_operation").is_none());
    }

    #[test]
    fn errors_and_holds_are_warnings_and_name_the_failed_call() {
        let ending = Ending::Failed { operation: Some(Operation::CreateThing), message: "throttled".into() };
        let record = AuditRecord::build(0, Facts::default(), ending, Calls::default(), Duration::ZERO);
        let v: serde_json::Value =
            serde_json::from_str(&record.line(&Origin { trigger: "direct", request_id: None, message_id: None }))
                .unwrap_or_default();
        assert_eq!(v["outcome"], "ERROR");
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["failed_operation"], "CreateThing");
        assert!(v.get("messageId").is_none() && v.get("requestId").is_none());
        let held = Ending::Refused { reason: ReasonCode::PolicyTemplateError, message: String::new(), action: None };
        let record = AuditRecord::build(0, Facts::default(), held, Calls::default(), Duration::ZERO);
        assert_eq!((record.outcome, record.fault), (Outcome::Held, Some(Fault::Operator)));
        assert!(record.is_retryable());
    }

    #[test]
    fn a_record_reads_back_as_it_was_written() {
        let record = rejected();
        let back: AuditRecord = serde_json::from_str(&record.to_json_line())
            .unwrap_or_else(|e| unreachable!("the record's line does not read back: {e}"));
        assert_eq!(back, record);
        assert_ne!(record.to_json_line(), "{}");
    }
}

//! The audit record: one JSON line per event, the same shape in every deployment (Lambda, server, CLI).
//!
//! Modelled on AWS IoT's own log records (`eventType`, `status`, `reason`, `details`): `outcome` and `reason`
//! are the fields metric filters and alarms key on (`{ $.outcome = "REJECTED" }`, `{ $.reason = "DUPLICATE_THING" }`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::reason::ReasonCode;

/// What happened to an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    /// Thing, policy and attachments in place; certificate activated.
    Provisioned,
    /// The certificate was already ACTIVE: nothing written.
    AlreadyProvisioned,
    /// A final no for a certificate at fault (or a forged or stale event), with a reason code; never retried.
    Rejected,
    /// An operator's mistake (template, CA, configuration; see [`crate::reason::Fault::Operator`]) stops an
    /// acceptable device: the certificate is left PENDING_ACTIVATION and the event is handed back, so that it
    /// provisions the device once the mistake is fixed (redrive the dead-letter queue after the fix).
    Held,
    /// A transient failure: the platform should deliver the event again.
    Error,
}

impl Outcome {
    /// The SCREAMING_SNAKE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provisioned => "PROVISIONED",
            Self::AlreadyProvisioned => "ALREADY_PROVISIONED",
            Self::Rejected => "REJECTED",
            Self::Held => "HELD",
            Self::Error => "ERROR",
        }
    }
}

/// One event's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When the event was handled (RFC 3339).
    pub timestamp: String,
    /// Always `jitp.provision`.
    #[serde(rename = "eventType")]
    pub event_type: String,
    /// What happened.
    pub outcome: Outcome,
    /// `Success` or `Failure`, as in AWS IoT's logs.
    pub status: String,
    /// The reason code of a rejection (or of an error's cause where one applies).
    pub reason: Option<ReasonCode>,
    /// Whose mistake the rejection is (`device`, `operator`, `none`), from the reason code.
    pub fault: Option<crate::reason::Fault>,
    /// One sentence for people.
    pub message: String,
    /// The certificate.
    pub certificate_id: Option<String>,
    /// The CA.
    pub ca_certificate_id: Option<String>,
    /// Where the CA id came from: `registry` (DescribeCertificate) or `event` (the registry did not say).
    pub ca_source: Option<String>,
    /// The thing.
    pub thing_name: Option<String>,
    /// The policy.
    pub policy_name: Option<String>,
    /// The policy's default version after the event.
    pub policy_version: Option<String>,
    /// The profile that decided.
    pub profile: Option<String>,
    /// What was done to a rejected or held certificate: `REVOKED`, `INACTIVE`, `LEFT` (on_reject = "leave") or
    /// `LEFT_PENDING` (held: an operator's mistake never costs a device its certificate).
    pub certificate_action: Option<String>,
    /// With `on_duplicate = "rotate"`: the older certificates this one replaced on its thing (deactivated and
    /// detached).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaced_certificates: Vec<String>,
    /// API calls made, by operation.
    pub api_calls: BTreeMap<String, u32>,
    /// Their total.
    pub api_call_count: u32,
    /// Throttled or failed attempts that were retried.
    pub retries: u32,
    /// Wall time, milliseconds.
    pub duration_ms: u64,
}

impl AuditRecord {
    /// An empty record for an event starting now.
    pub fn new(now_unix: i64) -> Self {
        Self {
            timestamp: crate::cert::rfc3339(now_unix),
            event_type: "jitp.provision".into(),
            outcome: Outcome::Error,
            status: "Failure".into(),
            reason: None,
            fault: None,
            message: String::new(),
            certificate_id: None,
            ca_certificate_id: None,
            ca_source: None,
            thing_name: None,
            policy_name: None,
            policy_version: None,
            profile: None,
            certificate_action: None,
            replaced_certificates: Vec::new(),
            api_calls: BTreeMap::new(),
            api_call_count: 0,
            retries: 0,
            duration_ms: 0,
        }
    }

    /// Should the platform deliver this event again?
    pub fn is_retryable(&self) -> bool {
        matches!(self.outcome, Outcome::Error | Outcome::Held)
    }

    /// The record as one JSON line.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

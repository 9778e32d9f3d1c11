//! The certificate-registered event AWS IoT publishes on `$aws/events/certificates/registered/<caCertificateId>`.
//!
//! Parsed, never trusted: through SQS or HTTP anyone who can write to the queue or reach the endpoint can
//! forge one, so the workflow re-reads the certificate and its CA from the registry and uses the event only
//! to know which certificate to look at.

use serde::{Deserialize, Serialize};

use jitp_pki::ids::{CaCertificateId, CertificateId};
use jitp_pki::reason::{Rejection, reject};

/// The largest event jitp parses. A real one is about 300 bytes.
pub const MAX_EVENT_BYTES: usize = 16 * 1024;

/// A certificate-registered event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationEvent {
    /// The registered certificate.
    pub certificate_id: CertificateId,
    /// The CA the event claims signed it; checked against the registry.
    pub ca_certificate_id: CaCertificateId,
    /// When AWS IoT published the event, Unix milliseconds.
    pub timestamp: u64,
    /// The status at registration, normally PENDING_ACTIVATION.
    pub certificate_status: CertificateStatus,
    /// The account, 12 digits.
    pub aws_account_id: AccountId,
    /// When the certificate was registered, if AWS says.
    #[serde(default)]
    pub certificate_registration_timestamp: Option<String>,
}

/// AWS IoT certificate statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::IntoStaticStr, strum::Display)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum CertificateStatus {
    /// Usable.
    Active,
    /// Disabled, may be re-activated.
    Inactive,
    /// Revoked for good.
    Revoked,
    /// Registered by auto-registration, waiting for a provisioner.
    PendingActivation,
    /// Being transferred to another account.
    PendingTransfer,
    /// Registered inactive.
    RegisterInactive,
}

impl CertificateStatus {
    /// AWS's spelling.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

jitp_pki::ids::validated_string!(
    /// An AWS account id: exactly 12 digits.
    AccountId,
    "an AWS account id",
    "12 digits",
    |v| v.len() == 12 && v.bytes().all(|b| b.is_ascii_digit())
);

/// Parse an event from JSON bytes. Anything that is not exactly a registration event is MALFORMED_EVENT.
pub fn parse(bytes: &[u8]) -> Result<RegistrationEvent, Rejection> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(reject!(
            MalformedEvent,
            "the event is {} bytes, over the {MAX_EVENT_BYTES}-byte limit",
            bytes.len()
        ));
    }
    // JSON is UTF-8 (RFC 8259). serde_json skips the values of fields it ignores without checking their bytes or
    // escapes (found by fuzzing: invalid UTF-8, lone surrogates), so the whole document is read as a JSON value
    // first: parse accepts exactly what from_value accepts, which is what the Lambda runtime hands over.
    let text = std::str::from_utf8(bytes).map_err(|e| {
        reject!(MalformedEvent, "the event is not a certificate-registered event: not UTF-8 text ({e})")
    })?;
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| reject!(MalformedEvent, "the event is not a certificate-registered event: not JSON ({e})"))?;
    from_value(value)
}

/// Parse an event from an already-decoded JSON value (the Lambda runtime hands one over).
pub fn from_value(value: serde_json::Value) -> Result<RegistrationEvent, Rejection> {
    serde_json::from_value(value)
        .map_err(|e| reject!(MalformedEvent, "the event is not a certificate-registered event: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's spellings, byte for byte (as_str, Display and serde agree).
    #[test]
    fn certificate_status_names_are_pinned() {
        use CertificateStatus::*;
        let pinned = [
            (Active, "ACTIVE"),
            (Inactive, "INACTIVE"),
            (Revoked, "REVOKED"),
            (PendingActivation, "PENDING_ACTIVATION"),
            (PendingTransfer, "PENDING_TRANSFER"),
            (RegisterInactive, "REGISTER_INACTIVE"),
        ];
        for (status, name) in pinned {
            assert_eq!((status.as_str(), status.to_string().as_str()), (name, name));
            assert_eq!(serde_json::to_string(&status).ok(), Some(format!("\"{name}\"")));
        }
    }
    use jitp_pki::reason::ReasonCode;

    #[test]
    fn parses_a_real_event() {
        let event = parse(jitp_testkit::events::sample().as_bytes()).ok();
        assert_eq!(event.map(|e| e.certificate_status), Some(CertificateStatus::PendingActivation));
    }

    #[test]
    fn registration_timestamp_may_be_a_string_or_absent() {
        for variant in jitp_testkit::events::accepted_variants() {
            assert!(parse(variant.as_bytes()).is_ok(), "{variant}");
        }
    }

    #[test]
    fn malformed_events() {
        let mut cases = jitp_testkit::events::malformed_variants();
        cases.push(" ".repeat(MAX_EVENT_BYTES + 1).into_bytes());
        for case in cases {
            let r = parse(&case);
            assert_eq!(
                r.err().map(|e| e.reason),
                Some(ReasonCode::MalformedEvent),
                "{:.80}",
                String::from_utf8_lossy(&case)
            );
        }
    }
}

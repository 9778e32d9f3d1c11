//! The guard's decision for one certificate: find the registered CA that issued it, judge it against the
//! profiles ([`crate::judge::judge`]), and say allow or deny with the reason code and one sentence.
//!
//! Pure and synchronous: no registry call, no I/O, the time an argument. The Lambda ([`crate::handler`]) and
//! `jitp guard` (the CLI) both call [`decide`], so what an operator checks offline is what devices get.

use serde::Serialize;

use crate::cas::{CaSet, KnownCa};
use crate::judge::{Certificate, Config, Fault, ReasonCode, Refusal, Rejection, judge};

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The certificate passes the certificate half of the provisioning decision.
    Allow,
    /// It does not (or the event is malformed).
    Deny,
}

/// The guard's answer about one certificate, with what a record needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// `allow` or `deny`.
    pub decision: Verdict,
    /// The reason code of a denial.
    pub reason: Option<ReasonCode>,
    /// One sentence for people.
    pub message: String,
    /// The certificate's id in AWS IoT (SHA-256 of its DER), when it parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_id: Option<String>,
    /// Its serial number, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// The registered CA the decision used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_id: Option<String>,
    /// The profile that accepted it (or governed the denial).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

impl Decision {
    /// Allowed?
    pub fn allowed(&self) -> bool {
        self.decision == Verdict::Allow
    }

    /// Whose fault a denial is.
    pub fn fault(&self) -> Option<Fault> {
        self.reason.map(ReasonCode::fault)
    }

    /// A denial before any certificate could be read (a malformed event).
    pub fn refused(rejection: Rejection) -> Self {
        Self {
            decision: Verdict::Deny,
            reason: Some(rejection.reason),
            message: rejection.message,
            certificate_id: None,
            serial: None,
            ca_id: None,
            profile: None,
        }
    }
}

/// How telling a refusal from one candidate CA is: a CA whose signature is not on the certificate says only
/// that it is not the issuer; any other refusal comes from the CA that did issue it.
fn specificity(reason: ReasonCode) -> u8 {
    match reason {
        ReasonCode::IssuerMismatch | ReasonCode::SignatureInvalid => 0,
        _ => 1,
    }
}

/// Decide about `device` against the registered CAs `cas` and the profiles of `config` at `now` (Unix seconds).
///
/// The candidates are the registered CAs whose subject is the certificate's issuer. Allowed if one of them,
/// ACTIVE in AWS IoT, accepts it; otherwise the most telling refusal (see `specificity`; the first in CA id
/// order among equals): UNKNOWN_CA when no registered CA has that subject, CA_NOT_ACTIVE when the CA that
/// accepts it is not ACTIVE, else the decision's own refusal (CERT_REVOKED, CERT_DENIED, CERT_ON_HOLD,
/// CERT_EXPIRED, SUBJECT_MISMATCH, ...).
pub fn decide(config: &Config, cas: &CaSet, device: &Certificate, now: i64) -> Decision {
    let certificate_id = Some(device.fingerprint_hex());
    let serial = Some(device.serial_hex());
    let mut best: Option<(u8, Decision)> = None;
    for ca in cas.candidates(device) {
        let decision = match judge(config, device, &ca.registered, now) {
            Ok(judged) if ca.active => {
                return Decision {
                    decision: Verdict::Allow,
                    reason: None,
                    message: format!(
                        "allowed: profile {} accepts the certificate (serial {}) issued by CA {}",
                        judged.profile.name,
                        device.serial_hex(),
                        ca.id
                    ),
                    certificate_id,
                    serial,
                    ca_id: Some(ca.id.to_string()),
                    profile: Some(judged.profile.name.clone()),
                };
            }
            Ok(judged) => denial(
                ca,
                Refusal {
                    rejection: Rejection::new(
                        ReasonCode::CaNotActive,
                        format!(
                            "the certificate's CA {} is not ACTIVE in AWS IoT (as of the guard's last refresh of the registered CAs)",
                            ca.id
                        ),
                    ),
                    profile: Some(judged.profile),
                },
            ),
            Err(refusal) => denial(ca, refusal),
        };
        let rank = decision.reason.map_or(0, specificity);
        if best.as_ref().is_none_or(|(r, _)| rank > *r) {
            best = Some((rank, decision));
        }
    }
    let mut decision = match best {
        Some((_, decision)) => decision,
        None => Decision::refused(Rejection::new(
            ReasonCode::UnknownCa,
            format!(
                "no CA registered in AWS IoT that a profile serves has the certificate's issuer as its subject (the \
                 guard knows {} CA(s)); a CA the device presents in its chain is not trusted",
                cas.len()
            ),
        )),
    };
    decision.certificate_id = certificate_id;
    decision.serial = serial;
    decision
}

fn denial(ca: &KnownCa, refusal: Refusal<'_>) -> Decision {
    Decision {
        decision: Verdict::Deny,
        reason: Some(refusal.rejection.reason),
        message: refusal.rejection.message,
        certificate_id: None,
        serial: None,
        ca_id: Some(ca.id.to_string()),
        profile: refusal.profile.map(|p| p.name.clone()),
    }
}

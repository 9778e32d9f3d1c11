//! The reason-code vocabulary and the rejection that carries one.
//!
//! Reason codes are a public interface: logs, metric filters, alarms and the CLI's JSON all key on
//! their SCREAMING_SNAKE names, so a name never changes once shipped.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a certificate was not provisioned. One code per rejection, the most specific that applies.
///
/// Its name ([`ReasonCode::as_str`], `Display`, serde) is the variant's in SCREAMING_SNAKE_CASE, derived once by
/// strum and serde; the test `names_are_pinned` holds every shipped name byte for byte.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::Display,
    strum::VariantArray,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ReasonCode {
    /// The event is not a certificate-registered event, or it contradicts the registry.
    MalformedEvent,
    /// Not PEM, not exactly one certificate, bad DER, trailing data, a private key.
    MalformedCertificate,
    /// The certificate's issuer name is not the registered CA's subject.
    IssuerMismatch,
    /// The issuer matches but the signature does not verify with the CA's key.
    SignatureInvalid,
    /// Key or signature algorithm outside RSA (PKCS#1 v1.5, PSS) and ECDSA P-256/P-384/P-521.
    UnsupportedAlgorithm,
    /// A key no configuration accepts: an RSA modulus below AWS IoT's 2048-bit floor (a profile's higher
    /// `min_rsa_bits` is [`ReasonCode::KeyTooShort`]), or a known-weak RSA modulus (ROCA, CVE-2017-15361; a small
    /// prime factor; factors close enough for Fermat's method): its private key can be computed.
    WeakKey,
    /// notAfter (plus clock skew) is in the past.
    CertExpired,
    /// notBefore (minus clock skew) is in the future.
    CertNotYetValid,
    /// The device certificate says it is a CA (basicConstraints cA=true).
    DeviceCertIsCa,
    /// The extended key usage does not allow TLS client authentication.
    KeyUsageInvalid,
    /// notAfter - notBefore exceeds the profile's `max_validity_days`.
    ValidityTooLong,
    /// The registered CA is not a CA, or does not chain to the profile's `ca_chain`, or a CRL of the profile
    /// (`crl`, with `crl_policy = "enforce"`) was not issued by it or is past its nextUpdate.
    CaInvalid,
    /// The registered CA is not ACTIVE in the registry.
    CaNotActive,
    /// The registered CA's notAfter is in the past at the decision time.
    CaExpired,
    /// The registered CA's notBefore is in the future at the decision time.
    CaNotYetValid,
    /// The certificate's serial or fingerprint is on the profile's deny list.
    CertDenied,
    /// No profile lists this CA.
    UnknownCa,
    /// No profile's subject rules match the certificate's subject.
    SubjectMismatch,
    /// The rendered thing name is not 1..=128 characters of `[A-Za-z0-9:_-]`, exactly as the subject spells it.
    InvalidThingName,
    /// A value bound for a thing attribute or a policy is not allowed there.
    InvalidAttribute,
    /// A template (the policy, the thing name or an attribute expression) failed to render for a subject its
    /// profile accepts (an undefined field, not JSON): the template's mistake, not the device's.
    PolicyTemplateError,
    /// The rendered policy failed the least-privilege lint.
    PolicyTooPermissive,
    /// The rendered policy exceeds AWS IoT's 2048-character limit (whitespace excluded).
    PolicyTooLarge,
    /// The thing is owned by another certificate (its `jitp_certificate` attribute names another certificate,
    /// whatever that certificate's status), and the profile's `on_duplicate` is `reject`, or the other
    /// certificate is newer and `on_duplicate` is `rotate`.
    DuplicateThing,
    /// The certificate does not exist in the registry.
    CertNotFound,
    /// The certificate is REVOKED or INACTIVE (someone else decided): left alone.
    CertNotPending,
    /// The device certificate marks an extension critical that jitp does not process (RFC 5280 4.2).
    UnsupportedCriticalExtension,
    /// The public key is not a valid key: an RSA exponent that is even or too small, an even modulus, an EC
    /// point that is not on its curve, is the point at infinity, has the wrong length or names another curve.
    InvalidPublicKey,
    /// The device certificate carries the registered CA's own public key.
    DeviceKeyIsCaKey,
    /// The device certificate's names fall outside the registered CA's name constraints.
    NameConstraintViolation,
    /// The device certificate's serial is on a valid CRL of its profile (`crl`): the CA revoked it.
    CertRevoked,
    /// The thing exists but jitp did not create it (it has no `jitp_certificate` attribute): jitp never adopts a
    /// thing it did not create.
    ThingNotManaged,
    /// The device's per-thing policy exists and another certificate, not REVOKED and not attached to the
    /// device's thing, is attached to it (the thing was deleted while that certificate stayed): writing or
    /// attaching the policy would change or share that certificate's permissions. The operator decides.
    PolicyInUse,
    /// The thing's recorded owner (`jitp_certificate`) is REVOKED, INACTIVE or deleted: the name is not taken
    /// over silently. The operator hands it over (`jitp handover`) or deletes the thing.
    ThingOwnerRetired,
    /// The device certificate's serial is on a valid CRL of its profile with reason certificateHold: the CA
    /// suspended it. A suspension, not a revocation: held (never revoked), provisioned once the hold is lifted.
    CertOnHold,
    /// No valid CRL of the profile covers the device (RFC 5280 6.3.3: each CRL's issuingDistributionPoint
    /// against the device's cRLDistributionPoints), under `crl_policy = "enforce"`; or a CRL whose scope leaves the
    /// device out lists it. The listed CRLs are the operator's: held until a CRL covering the device is listed.
    CrlScopeMismatch,
    /// The RSA modulus is at least AWS IoT's 2048-bit floor but below the profile's own `min_rsa_bits`: the
    /// profile's limit, which a configuration change could lower ([`Fault::Profile`]).
    KeyTooShort,
    /// The device certificate is X.509 v1 (no extensions) and its profile sets `require_v3 = true`.
    CertNotV3,
}

impl ReasonCode {
    /// Every code, in declaration order (for docs, metrics and tests).
    pub const ALL: &'static [ReasonCode] = <Self as strum::VariantArray>::VARIANTS;

    /// The stable SCREAMING_SNAKE name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whose mistake a rejection with this code is, which decides what jitp may do to the certificate. REVOKED is
    /// final in AWS IoT, so only a rejection that no configuration could ever turn into an acceptance may lead
    /// to it.
    ///
    /// - [`Fault::Device`]: no configuration accepts the certificate (forged, malformed, a key no one accepts,
    ///   expired, revoked by its CA, on the deny list). The profile's `on_reject` applies: revoke, deactivate
    ///   or leave.
    /// - [`Fault::Profile`]: the profile's own limits and rules refuse it (subject rules, `max_validity_days`,
    ///   `min_rsa_bits` above the floor, `require_v3`, a thing name or attribute the templates derive, another
    ///   certificate owning the thing under `on_duplicate`, a notBefore beyond `clock_skew_seconds`): a
    ///   configuration change could accept it, so it is handled as an operator's fault (held), whatever
    ///   `on_reject` says.
    /// - [`Fault::Operator`]: the account's or the security team's setup stops an acceptable device: a template
    ///   that fails or renders too wide, a CA that is not ACTIVE, expired or not configured, a CRL that the CA did
    ///   not issue or that is stale, a thing jitp does not manage.
    /// - [`Fault::None`]: nobody's verdict on the certificate (a forged or stale event, a certificate someone
    ///   else already decided on): nothing is written.
    ///
    /// For Profile and Operator faults ([`Fault::holds`]) the certificate is never revoked or deactivated: it
    /// stays PENDING_ACTIVATION, the event is handed back (outcome `HELD`), and once the configuration is fixed
    /// a redelivered event provisions the device.
    pub fn fault(self) -> Fault {
        match self {
            Self::MalformedEvent | Self::CertNotFound | Self::CertNotPending => Fault::None,
            Self::CaInvalid
            | Self::CaNotActive
            | Self::CaExpired
            | Self::CaNotYetValid
            | Self::UnknownCa
            | Self::PolicyTemplateError
            | Self::PolicyTooPermissive
            | Self::PolicyTooLarge
            | Self::ThingNotManaged
            | Self::PolicyInUse
            | Self::ThingOwnerRetired
            // A hold is the CA's suspension, not the operator's mistake, but it takes the same path: the
            // certificate stays PENDING, the event is handed back, and it provisions once the hold is lifted.
            // The reason code tells a hold apart in the audit record and in reconcile.
            | Self::CertOnHold
            | Self::CrlScopeMismatch => Fault::Operator,
            Self::SubjectMismatch
            | Self::ValidityTooLong
            | Self::InvalidThingName
            | Self::InvalidAttribute
            | Self::DuplicateThing
            | Self::CertNotYetValid
            | Self::KeyTooShort
            | Self::CertNotV3 => Fault::Profile,
            Self::MalformedCertificate
            | Self::IssuerMismatch
            | Self::SignatureInvalid
            | Self::UnsupportedAlgorithm
            | Self::WeakKey
            | Self::CertExpired
            | Self::DeviceCertIsCa
            | Self::KeyUsageInvalid
            | Self::CertDenied
            | Self::CertRevoked
            | Self::UnsupportedCriticalExtension
            | Self::InvalidPublicKey
            | Self::DeviceKeyIsCaKey
            | Self::NameConstraintViolation => Fault::Device,
        }
    }
}

/// Whose mistake a rejection is: see [`ReasonCode::fault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// No configuration accepts the certificate: the profile's `on_reject` applies.
    Device,
    /// The setup stops an acceptable device: the certificate stays PENDING and the event is handed back.
    Operator,
    /// The profile's own limits and rules refuse it; a configuration change could accept it: held as an
    /// operator's fault is (the certificate stays PENDING, the event is handed back), never revoked.
    Profile,
    /// No verdict on the certificate: nothing is written.
    None,
}

impl Fault {
    /// Does a rejection of this fault leave the certificate PENDING_ACTIVATION and hand the event back
    /// (outcome `HELD`), so that the device provisions once the configuration is fixed? Operator and Profile
    /// faults do; only a Device fault may get `on_reject`.
    pub fn holds(self) -> bool {
        matches!(self, Self::Operator | Self::Profile)
    }
}

/// A final "no": a reason code and a human sentence with the detail (which field, which value, which limit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// The stable code alarms key on.
    pub reason: ReasonCode,
    /// One sentence for people.
    pub message: String,
}

impl Rejection {
    /// A rejection with `reason` and `message`.
    pub fn new(reason: ReasonCode, message: impl Into<String>) -> Self {
        Self { reason, message: message.into() }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

impl std::error::Error for Rejection {}

/// Shorthand for building a rejection with `format!` arguments.
#[macro_export]
macro_rules! reject {
    ($code:ident, $($arg:tt)+) => {
        $crate::reason::Rejection::new($crate::reason::ReasonCode::$code, format!($($arg)+))
    };
}
pub use crate::reject;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_listed_once_with_a_fault() {
        let mut seen = std::collections::HashSet::new();
        for code in ReasonCode::ALL {
            assert!(seen.insert(code.as_str()), "{code} listed twice");
            let _ = code.fault();
        }
        assert_eq!(seen.len(), ReasonCode::ALL.len());
    }

    /// Every shipped name, byte for byte: logs, metric filters and alarms key on them.
    #[test]
    fn names_are_pinned() {
        let pinned = [
            (ReasonCode::MalformedEvent, "MALFORMED_EVENT"),
            (ReasonCode::MalformedCertificate, "MALFORMED_CERTIFICATE"),
            (ReasonCode::IssuerMismatch, "ISSUER_MISMATCH"),
            (ReasonCode::SignatureInvalid, "SIGNATURE_INVALID"),
            (ReasonCode::UnsupportedAlgorithm, "UNSUPPORTED_ALGORITHM"),
            (ReasonCode::WeakKey, "WEAK_KEY"),
            (ReasonCode::CertExpired, "CERT_EXPIRED"),
            (ReasonCode::CertNotYetValid, "CERT_NOT_YET_VALID"),
            (ReasonCode::DeviceCertIsCa, "DEVICE_CERT_IS_CA"),
            (ReasonCode::KeyUsageInvalid, "KEY_USAGE_INVALID"),
            (ReasonCode::ValidityTooLong, "VALIDITY_TOO_LONG"),
            (ReasonCode::CaInvalid, "CA_INVALID"),
            (ReasonCode::CaNotActive, "CA_NOT_ACTIVE"),
            (ReasonCode::CertDenied, "CERT_DENIED"),
            (ReasonCode::UnknownCa, "UNKNOWN_CA"),
            (ReasonCode::SubjectMismatch, "SUBJECT_MISMATCH"),
            (ReasonCode::InvalidThingName, "INVALID_THING_NAME"),
            (ReasonCode::InvalidAttribute, "INVALID_ATTRIBUTE"),
            (ReasonCode::PolicyTemplateError, "POLICY_TEMPLATE_ERROR"),
            (ReasonCode::PolicyTooPermissive, "POLICY_TOO_PERMISSIVE"),
            (ReasonCode::PolicyTooLarge, "POLICY_TOO_LARGE"),
            (ReasonCode::DuplicateThing, "DUPLICATE_THING"),
            (ReasonCode::CertNotFound, "CERT_NOT_FOUND"),
            (ReasonCode::CertNotPending, "CERT_NOT_PENDING"),
            (ReasonCode::CaExpired, "CA_EXPIRED"),
            (ReasonCode::CaNotYetValid, "CA_NOT_YET_VALID"),
            (ReasonCode::UnsupportedCriticalExtension, "UNSUPPORTED_CRITICAL_EXTENSION"),
            (ReasonCode::InvalidPublicKey, "INVALID_PUBLIC_KEY"),
            (ReasonCode::DeviceKeyIsCaKey, "DEVICE_KEY_IS_CA_KEY"),
            (ReasonCode::NameConstraintViolation, "NAME_CONSTRAINT_VIOLATION"),
            (ReasonCode::ThingNotManaged, "THING_NOT_MANAGED"),
            (ReasonCode::CertRevoked, "CERT_REVOKED"),
            (ReasonCode::PolicyInUse, "POLICY_IN_USE"),
            (ReasonCode::ThingOwnerRetired, "THING_OWNER_RETIRED"),
            (ReasonCode::CertOnHold, "CERT_ON_HOLD"),
            (ReasonCode::CrlScopeMismatch, "CRL_SCOPE_MISMATCH"),
            (ReasonCode::KeyTooShort, "KEY_TOO_SHORT"),
            (ReasonCode::CertNotV3, "CERT_NOT_V3"),
        ];
        assert_eq!(pinned.len(), ReasonCode::ALL.len(), "a new code gets its pinned name here");
        for (code, name) in pinned {
            assert_eq!((code.as_str(), code.to_string().as_str()), (name, name));
        }
    }

    #[test]
    fn serde_name_equals_as_str_for_every_code() {
        for code in ReasonCode::ALL {
            let json = serde_json::to_string(code).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: ReasonCode = serde_json::from_str(&json).unwrap_or(ReasonCode::MalformedEvent);
            assert_eq!(back, *code);
        }
    }
}

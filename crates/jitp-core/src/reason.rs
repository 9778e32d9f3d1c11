//! The reason-code vocabulary and the rejection that carries one.
//!
//! Reason codes are a public interface: logs, metric filters, alarms and the CLI's JSON all key on
//! their SCREAMING_SNAKE names, so a name never changes once shipped.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a certificate was not provisioned. One code per rejection, the most specific that applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
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
    /// RSA modulus below the profile's `min_rsa_bits`.
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
    /// The registered CA is not a CA, or does not chain to the profile's `ca_chain`.
    CaInvalid,
    /// The registered CA is not ACTIVE in the registry.
    CaNotActive,
    /// The certificate's serial or fingerprint is on the profile's deny list.
    CertDenied,
    /// No profile lists this CA.
    UnknownCa,
    /// No profile's subject rules match the certificate's subject.
    SubjectMismatch,
    /// The rendered thing name is not 1..=128 characters of `[A-Za-z0-9:_-]`.
    InvalidThingName,
    /// A value bound for a thing attribute or a policy is not allowed there.
    InvalidAttribute,
    /// The policy template failed to render (syntax, undefined field, not JSON).
    PolicyTemplateError,
    /// The rendered policy failed the least-privilege lint.
    PolicyTooPermissive,
    /// The rendered policy exceeds AWS IoT's 2048-character limit (whitespace excluded).
    PolicyTooLarge,
    /// The thing is already bound to another ACTIVE certificate.
    DuplicateThing,
    /// The certificate does not exist in the registry.
    CertNotFound,
    /// The certificate is REVOKED or INACTIVE (someone else decided): left alone.
    CertNotPending,
}

impl ReasonCode {
    /// Every code, in declaration order (for docs, metrics and tests).
    pub const ALL: &'static [ReasonCode] = &[
        Self::MalformedEvent,
        Self::MalformedCertificate,
        Self::IssuerMismatch,
        Self::SignatureInvalid,
        Self::UnsupportedAlgorithm,
        Self::WeakKey,
        Self::CertExpired,
        Self::CertNotYetValid,
        Self::DeviceCertIsCa,
        Self::KeyUsageInvalid,
        Self::ValidityTooLong,
        Self::CaInvalid,
        Self::CaNotActive,
        Self::CertDenied,
        Self::UnknownCa,
        Self::SubjectMismatch,
        Self::InvalidThingName,
        Self::InvalidAttribute,
        Self::PolicyTemplateError,
        Self::PolicyTooPermissive,
        Self::PolicyTooLarge,
        Self::DuplicateThing,
        Self::CertNotFound,
        Self::CertNotPending,
    ];

    /// The stable SCREAMING_SNAKE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedEvent => "MALFORMED_EVENT",
            Self::MalformedCertificate => "MALFORMED_CERTIFICATE",
            Self::IssuerMismatch => "ISSUER_MISMATCH",
            Self::SignatureInvalid => "SIGNATURE_INVALID",
            Self::UnsupportedAlgorithm => "UNSUPPORTED_ALGORITHM",
            Self::WeakKey => "WEAK_KEY",
            Self::CertExpired => "CERT_EXPIRED",
            Self::CertNotYetValid => "CERT_NOT_YET_VALID",
            Self::DeviceCertIsCa => "DEVICE_CERT_IS_CA",
            Self::KeyUsageInvalid => "KEY_USAGE_INVALID",
            Self::ValidityTooLong => "VALIDITY_TOO_LONG",
            Self::CaInvalid => "CA_INVALID",
            Self::CaNotActive => "CA_NOT_ACTIVE",
            Self::CertDenied => "CERT_DENIED",
            Self::UnknownCa => "UNKNOWN_CA",
            Self::SubjectMismatch => "SUBJECT_MISMATCH",
            Self::InvalidThingName => "INVALID_THING_NAME",
            Self::InvalidAttribute => "INVALID_ATTRIBUTE",
            Self::PolicyTemplateError => "POLICY_TEMPLATE_ERROR",
            Self::PolicyTooPermissive => "POLICY_TOO_PERMISSIVE",
            Self::PolicyTooLarge => "POLICY_TOO_LARGE",
            Self::DuplicateThing => "DUPLICATE_THING",
            Self::CertNotFound => "CERT_NOT_FOUND",
            Self::CertNotPending => "CERT_NOT_PENDING",
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
macro_rules! reject {
    ($code:ident, $($arg:tt)+) => {
        $crate::reason::Rejection::new($crate::reason::ReasonCode::$code, format!($($arg)+))
    };
}
pub(crate) use reject;

#[cfg(test)]
mod tests {
    use super::*;

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

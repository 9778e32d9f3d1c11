//! Verification of a device certificate against the registered CA, and of the CA itself.
//!
//! The checks run in a fixed order, cheap and structural first, so that a certificate with several faults
//! gets the most specific code; the first failing check decides.
//!
//! [`verify_ca`], all CA_INVALID unless noted:
//! 1. the version is v3 and basicConstraints cA is true;
//! 2. keyUsage, if present, asserts keyCertSign;
//! 3. no critical extension outside [`super::CA_PROCESSED`] (the message names the OID);
//! 4. the key is RSA (2048-8192 bits) or ECDSA P-256/P-384/P-521;
//! 5. the key is a valid key (the rules of [`super::key_check`]), and not a known-weak RSA key
//!    ([`super::weak_rsa`]: ROCA, a small factor, factors close together);
//! 6. nameConstraints decode and constrain no form jitp cannot evaluate (directoryName);
//! 7. notBefore <= notAfter, then the decision time, widened by the clock skew, is inside the CA's validity:
//!    CA_NOT_YET_VALID, CA_EXPIRED.
//!
//! [`verify_device`]:
//! 1. the key is supported (UNSUPPORTED_ALGORITHM), then valid (INVALID_PUBLIC_KEY);
//! 2. the signature algorithm is supported (UNSUPPORTED_ALGORITHM) and the same inside and outside the
//!    signed part (MALFORMED_CERTIFICATE);
//! 3. the issuer name is the CA's subject (ISSUER_MISMATCH);
//! 4. the version is v3, or v1 without unique identifiers or extensions (MALFORMED_CERTIFICATE otherwise:
//!    v2, or fields a v1 certificate cannot have);
//! 5. basicConstraints cA is not true (DEVICE_CERT_IS_CA);
//! 6. no critical extension outside [`super::DEVICE_PROCESSED`] (UNSUPPORTED_CRITICAL_EXTENSION);
//! 7. keyUsage, if present, asserts digitalSignature and neither keyCertSign nor cRLSign (KEY_USAGE_INVALID);
//! 8. notBefore <= notAfter (MALFORMED_CERTIFICATE);
//! 9. webpki, with the CA as the only trust anchor: the structure, extKeyUsage allows clientAuth
//!    (KEY_USAGE_INVALID), the signature (SIGNATURE_INVALID), then the CA's name constraints
//!    (NAME_CONSTRAINT_VIOLATION). webpki reads v3 only: a v1 certificate's signature is checked with the same
//!    algorithms and crypto ([`signature_verifies`]); it has no extension for webpki to check, and no
//!    subjectAltName for a name constraint to apply to (the constraints webpki would apply to its subject,
//!    directoryName, are refused on the CA);
//! 10. the key is not the CA's own key (DEVICE_KEY_IS_CA_KEY): after the signature, so that it is only said of
//!     a certificate the CA really signed; then not a known-weak RSA key (WEAK_KEY: ROCA, a small factor,
//!     factors close together; see [`super::weak_rsa`]): after the signature too, so that the CA's device, not
//!     a forger, is said to have it;
//! 11. the decision time, widened by the clock skew, is inside the validity (CERT_NOT_YET_VALID, CERT_EXPIRED).

use std::time::Duration;

use der::{Decode, Encode};
use rustls_pki_types::{
    AlgorithmIdentifier, CertificateDer, InvalidSignature, SignatureVerificationAlgorithm, UnixTime,
};
use x509_cert::ext::pkix::KeyUsage;

use super::Certificate;
use super::algorithm::{VERIFICATION_ALGORITHMS, check_signature_algorithm};
use super::extensions::{
    CA_PROCESSED, DEVICE_PROCESSED, check_ca_name_constraints, check_device_key_usage, describe_name_constraints,
    describe_sans, unprocessed_critical,
};
use super::key_check::check_not_weak;
use crate::reason::{Rejection, reject};
use crate::unix_time::rfc3339;

/// How deep a `ca_chain` may go above the registered CA: enough for root -> policy CA -> issuing CA,
/// small enough to bound the signature checks spent on a hostile configuration.
const MAX_CHAIN_DEPTH: usize = 4;

/// The decision time and the clock skew tolerated around validity windows, for the device and the CA alike.
#[derive(Debug, Clone, Copy)]
pub struct DeviceCheck {
    /// The decision time, Unix seconds.
    pub now: i64,
    /// Tolerance for device clocks on notBefore and notAfter.
    pub clock_skew_seconds: u32,
}

/// Check the registered CA at `check.now`: a CA certificate (basicConstraints cA, keyCertSign when key usage is
/// present) with a valid key AWS IoT accepts, no critical extension jitp ignores, and inside its validity.
/// Returns CA_INVALID, CA_NOT_YET_VALID or CA_EXPIRED otherwise; the order is in the module doc.
pub fn verify_ca(ca: &Certificate, check: DeviceCheck) -> Result<CaCheck, Rejection> {
    check_ca_structure(ca)?;
    check_ca_time(ca, check)?;
    Ok(CaCheck(()))
}

/// A registered CA that passed [`verify_ca`]'s checks that do not depend on the time (steps 1-6). The workflow
/// makes one when a CA enters its cache, so those checks run once per CA, not once per event; only the
/// validity window (step 7) is checked per decision, by [`TrustedCa::valid_at`].
#[derive(Debug, Clone)]
pub struct TrustedCa(Certificate);

impl TrustedCa {
    /// Run steps 1-6 of [`verify_ca`] on `ca`.
    pub fn check(ca: Certificate) -> Result<Self, Rejection> {
        check_ca_structure(&ca)?;
        Ok(Self(ca))
    }

    /// The CA certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.0
    }

    /// Step 7 of [`verify_ca`]: is `check.now`, widened by the clock skew, inside the CA's validity?
    pub fn valid_at(&self, check: DeviceCheck) -> Result<CaCheck, Rejection> {
        check_ca_time(&self.0, check)?;
        Ok(CaCheck(()))
    }
}

fn check_ca_structure(ca: &Certificate) -> Result<(), Rejection> {
    if ca.version() != 3 {
        return Err(reject!(
            CaInvalid,
            "the registered CA {:?} is an X.509 v{} certificate; a CA must be v3, with basicConstraints cA=TRUE \
             (RFC 5280 4.1.2.1, 4.2.1.9)",
            ca.subject_line(),
            ca.version()
        ));
    }
    let ca_flag = ca.is_ca().map_err(|e| reject!(CaInvalid, "the CA certificate: {}", e.message))?;
    if !ca_flag {
        return Err(reject!(
            CaInvalid,
            "the registered CA {:?} is not a CA certificate (basicConstraints cA is not true)",
            ca.subject_line()
        ));
    }
    match ca.x509().tbs_certificate().get_extension::<KeyUsage>() {
        Ok(Some((_, ku))) if !ku.key_cert_sign() => {
            return Err(reject!(CaInvalid, "the registered CA's key usage does not include keyCertSign"));
        }
        Ok(_) => {}
        Err(e) => {
            return Err(reject!(CaInvalid, "the registered CA's key usage extension is invalid: {e}"));
        }
    }
    if let Some(extension) = unprocessed_critical(ca, CA_PROCESSED) {
        return Err(reject!(
            CaInvalid,
            "the registered CA marks {extension} critical; on a CA jitp processes only basicConstraints, keyUsage \
             and nameConstraints, and RFC 5280 4.2 forbids ignoring a critical extension"
        ));
    }
    let spki = ca.x509().tbs_certificate().subject_public_key_info();
    ca.key().check_supported(spki).map_err(|e| reject!(CaInvalid, "the registered CA: {}", e.message))?;
    if let super::KeyKind::Rsa { bits } = ca.key()
        && *bits < usize::try_from(super::MIN_RSA_BITS).unwrap_or(2048)
    {
        return Err(reject!(CaInvalid, "the registered CA's RSA key has {bits} bits; at least 2048 are required"));
    }
    ca.key_validity().map_err(|e| reject!(CaInvalid, "the registered CA's key: {}", e.message))?;
    check_not_weak(ca.key(), spki).map_err(|e| {
        reject!(CaInvalid, "the registered CA's key: {}; register the CA again with a new key", e.message)
    })?;
    check_ca_name_constraints(ca)
}

fn check_ca_time(ca: &Certificate, check: DeviceCheck) -> Result<(), Rejection> {
    let (not_before, not_after) = ca.validity();
    if not_before > not_after {
        return Err(reject!(
            CaInvalid,
            "the registered CA's notBefore {} is after its notAfter {}",
            rfc3339(not_before),
            rfc3339(not_after)
        ));
    }
    let skew = i64::from(check.clock_skew_seconds);
    match outside(not_before, not_after, check) {
        Some(Outside::NotYet(by)) => Err(reject!(
            CaNotYetValid,
            "the registered CA {:?} is valid from {} ({by}s from now, beyond the {skew}s clock skew allowed)",
            ca.subject_line(),
            rfc3339(not_before)
        )),
        Some(Outside::Expired(ago)) => Err(reject!(
            CaExpired,
            "the registered CA {:?} expired at {} ({ago}s ago, beyond the {skew}s clock skew allowed)",
            ca.subject_line(),
            rfc3339(not_after)
        )),
        None => Ok(()),
    }
}

/// Proof that [`verify_ca`] passed.
#[derive(Debug, Clone, Copy)]
pub struct CaCheck(());

/// Verify `device` against the registered `ca` at `check.now`.
pub fn verify_device(
    device: &Certificate,
    ca: &Certificate,
    ca_ok: CaCheck,
    check: DeviceCheck,
) -> Result<(), Rejection> {
    verify_device_for(device, ca, ca_ok, check, webpki::KeyUsage::client_auth())
}

/// [`verify_device`] with TLS server authentication as the required extended key usage instead of client
/// authentication: for running public path-validation suites (x509-limbo), whose leaves are servers. jitp
/// itself never calls it.
#[doc(hidden)]
pub fn verify_device_as_server(
    device: &Certificate,
    ca: &Certificate,
    ca_ok: CaCheck,
    check: DeviceCheck,
) -> Result<(), Rejection> {
    verify_device_for(device, ca, ca_ok, check, webpki::KeyUsage::server_auth())
}

fn verify_device_for(
    device: &Certificate,
    ca: &Certificate,
    _ca_ok: CaCheck,
    check: DeviceCheck,
    usage: webpki::KeyUsage,
) -> Result<(), Rejection> {
    let tbs = device.x509().tbs_certificate();
    device.key().check_supported(tbs.subject_public_key_info())?;
    device.key_validity()?;
    check_signature_algorithm(&device.x509().signature_algorithm().oid)?;
    if tbs.signature() != device.x509().signature_algorithm() {
        return Err(reject!(
            MalformedCertificate,
            "the signature algorithm inside the certificate differs from the one outside"
        ));
    }
    if device.issuer_der() != ca.subject_der() {
        return Err(reject!(
            IssuerMismatch,
            "the certificate's issuer {:?} is not the registered CA {:?}",
            device.x509().tbs_certificate().issuer().to_string(),
            ca.subject_line()
        ));
    }
    check_version(device)?;
    if device.is_ca()? {
        return Err(reject!(
            DeviceCertIsCa,
            "the device certificate has basicConstraints cA=true; a device certificate must not be a CA"
        ));
    }
    if let Some(extension) = unprocessed_critical(device, DEVICE_PROCESSED) {
        return Err(reject!(
            UnsupportedCriticalExtension,
            "the device certificate marks {extension} critical; on a device certificate jitp processes only \
             basicConstraints, keyUsage, extKeyUsage and subjectAltName, and RFC 5280 4.2 forbids ignoring a \
             critical extension"
        ));
    }
    check_device_key_usage(device)?;
    let (not_before, not_after) = device.validity();
    if not_before > not_after {
        return Err(reject!(MalformedCertificate, "notBefore is after notAfter"));
    }
    if device.version() == 1 {
        check_v1_signature(device, ca)?;
    } else {
        verify_with_webpki(device, ca, check, usage, (not_before, not_after))?;
    }
    let device_key = tbs.subject_public_key_info().subject_public_key.raw_bytes();
    if device_key == ca.x509().tbs_certificate().subject_public_key_info().subject_public_key.raw_bytes() {
        return Err(reject!(
            DeviceKeyIsCaKey,
            "the device certificate carries the registered CA's own public key (the CA {:?}); a device must have \
             its own key",
            ca.subject_line()
        ));
    }
    check_not_weak(device.key(), tbs.subject_public_key_info())?;
    check_time(not_before, not_after, check)
}

/// Step 9 for a v3 certificate: webpki checks the signature, the structure, the extended key usage and the name
/// constraints.
fn verify_with_webpki(
    device: &Certificate,
    ca: &Certificate,
    check: DeviceCheck,
    usage: webpki::KeyUsage,
    (not_before, not_after): (i64, i64),
) -> Result<(), Rejection> {
    // webpki checks the signature, the structure, the extended key usage and the name constraints. Its time
    // check has no skew, so it is given a time inside the window and the caller checks the window with the
    // profile's skew. (Pre-1970 times were moved to the epoch in the copy webpki reads, so the clamped time,
    // floored at the epoch, is inside that copy's window too.)
    let inside = check.now.clamp(not_before, not_after);
    let ca_der = CertificateDer::from(ca.structure_der());
    let anchor = webpki::anchor_from_trusted_cert(&ca_der)
        .map_err(|e| reject!(CaInvalid, "the registered CA cannot be used as a trust anchor: {e}"))?;
    let device_der = CertificateDer::from(device.structure_der());
    let end_entity = webpki::EndEntityCert::try_from(&device_der).map_err(map_webpki)?;
    // A shifted copy's signed bytes are not the certificate's: the signature is checked over the real ones.
    let wrapped: Vec<SignedBytes<'_>> = match device.shifted().and_then(|s| s.tbs(device.der())) {
        Some((signed, shown)) => {
            VERIFICATION_ALGORITHMS.iter().map(|inner| SignedBytes { inner: *inner, shown, signed }).collect()
        }
        None => Vec::new(),
    };
    let wrapped_refs: Vec<&dyn SignatureVerificationAlgorithm> =
        wrapped.iter().map(|w| w as &dyn SignatureVerificationAlgorithm).collect();
    let algorithms = if wrapped_refs.is_empty() { VERIFICATION_ALGORITHMS } else { &wrapped_refs };
    end_entity
        .verify_for_usage(
            algorithms,
            &[anchor],
            &[],
            UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(inside).unwrap_or(0))),
            usage,
            None,
            None,
        )
        .map_err(|e| match e {
            webpki::Error::NameConstraintViolation => reject!(
                NameConstraintViolation,
                "the device certificate's names ({}, subject {:?}) are outside the registered CA's name \
                 constraints ({})",
                describe_sans(device),
                device.subject_line(),
                describe_name_constraints(ca)
            ),
            other => map_webpki(other),
        })?;
    Ok(())
}

/// Step 4: a version jitp reads. v1 (RFC 5280 allows it for end entities; OpenSSL 3's `x509 -req` without
/// extensions makes one, as in AWS's documentation) or v3; v2 exists only for unique identifiers, which
/// nothing issues and webpki refuses. A v1 certificate has no unique identifiers or extensions (RFC 5280
/// 4.1.2.8, 4.1.2.9) and does not spell out its default version (DER).
fn check_version(device: &Certificate) -> Result<(), Rejection> {
    let tbs = device.x509().tbs_certificate();
    match device.version() {
        3 => Ok(()),
        1 if tbs.extensions().is_some() => Err(reject!(
            MalformedCertificate,
            "the certificate is X.509 v1 but carries extensions, which only v3 may (RFC 5280 4.1.2.9)"
        )),
        1 if tbs.issuer_unique_id().is_some() || tbs.subject_unique_id().is_some() => Err(reject!(
            MalformedCertificate,
            "the certificate is X.509 v1 but carries a unique identifier, which only v2 and v3 may (RFC 5280 4.1.2.8)"
        )),
        1 if device.tbs_der().is_some_and(spells_default_version) => Err(reject!(
            MalformedCertificate,
            "the certificate encodes its default version v1 explicitly, which DER forbids"
        )),
        1 => Ok(()),
        other => Err(reject!(
            MalformedCertificate,
            "the certificate is X.509 v{other}; jitp reads v1 and v3 device certificates"
        )),
    }
}

/// Does a tbsCertificate TLV start its contents with the `[0]` version field?
fn spells_default_version(tbs: &[u8]) -> bool {
    der::asn1::AnyRef::from_der(tbs).is_ok_and(|any| any.value().first() == Some(&0xa0))
}

/// Step 9 for a v1 certificate (which webpki does not read): the signature, with webpki's algorithms and
/// crypto chosen as webpki chooses them, over the tbsCertificate as signed.
fn check_v1_signature(device: &Certificate, ca: &Certificate) -> Result<(), Rejection> {
    let (Some(message), Some(signature)) = (device.tbs_der(), device.x509().signature().as_bytes()) else {
        return Err(reject!(MalformedCertificate, "the certificate's signature is not a whole number of bytes"));
    };
    match signature_verifies(device.x509().signature_algorithm(), message, signature, ca) {
        Ok(()) => Ok(()),
        Err(SignatureFailure::Invalid) => {
            Err(reject!(SignatureInvalid, "the signature does not verify with the registered CA's key"))
        }
        Err(SignatureFailure::Unsupported) => Err(reject!(
            UnsupportedAlgorithm,
            "the signature algorithm is not supported for the CA's key (the CA's key cannot make this signature)"
        )),
    }
}

/// A verification algorithm that checks the signature over `signed` when webpki asks about `shown`: webpki
/// reads the pre-1970-shifted copy of a certificate, whose tbsCertificate differs from the signed one only
/// inside the validity times, which jitp checks itself.
#[derive(Debug)]
struct SignedBytes<'a> {
    inner: &'static dyn SignatureVerificationAlgorithm,
    shown: &'a [u8],
    signed: &'a [u8],
}

impl SignatureVerificationAlgorithm for SignedBytes<'_> {
    fn verify_signature(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), InvalidSignature> {
        let message = if message == self.shown { self.signed } else { message };
        self.inner.verify_signature(public_key, message, signature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        self.inner.public_key_alg_id()
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        self.inner.signature_alg_id()
    }

    fn fips_status(&self) -> rustls_pki_types::FipsStatus {
        self.inner.fips_status()
    }
}

enum Outside {
    /// notBefore is this many seconds after now, beyond the skew.
    NotYet(i64),
    /// notAfter was this many seconds before now, beyond the skew.
    Expired(i64),
}

fn outside(not_before: i64, not_after: i64, check: DeviceCheck) -> Option<Outside> {
    let skew = i64::from(check.clock_skew_seconds);
    if check.now.saturating_add(skew) < not_before {
        return Some(Outside::NotYet(not_before.saturating_sub(check.now)));
    }
    if check.now.saturating_sub(skew) > not_after {
        return Some(Outside::Expired(check.now.saturating_sub(not_after)));
    }
    None
}

fn check_time(not_before: i64, not_after: i64, check: DeviceCheck) -> Result<(), Rejection> {
    let skew = i64::from(check.clock_skew_seconds);
    match outside(not_before, not_after, check) {
        Some(Outside::NotYet(by)) => Err(reject!(
            CertNotYetValid,
            "the certificate is valid from {} ({by}s from now, beyond the {skew}s clock skew allowed)",
            rfc3339(not_before)
        )),
        Some(Outside::Expired(ago)) => Err(reject!(
            CertExpired,
            "the certificate expired at {} ({ago}s ago, beyond the {skew}s clock skew allowed)",
            rfc3339(not_after)
        )),
        None => Ok(()),
    }
}

#[allow(deprecated)] // match the deprecated unit variants too: webpki may still return them
fn map_webpki(e: webpki::Error) -> Rejection {
    use webpki::Error as E;
    match e {
        E::InvalidSignatureForPublicKey => {
            reject!(SignatureInvalid, "the signature does not verify with the registered CA's key")
        }
        E::UnknownIssuer => reject!(IssuerMismatch, "the certificate was not issued by the registered CA"),
        E::CaUsedAsEndEntity => {
            reject!(DeviceCertIsCa, "the device certificate is a CA certificate")
        }
        E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) | E::EmptyEkuExtension => {
            reject!(KeyUsageInvalid, "the certificate's extended key usage does not allow TLS client authentication")
        }
        E::UnsupportedCriticalExtension => reject!(
            UnsupportedCriticalExtension,
            "the device certificate has a critical extension webpki does not process"
        ),
        E::NameConstraintViolation => {
            reject!(NameConstraintViolation, "the device certificate's names are outside the CA's name constraints")
        }
        E::MalformedNameConstraint | E::InvalidNetworkMaskConstraint => {
            reject!(CaInvalid, "the registered CA's nameConstraints are malformed ({e})")
        }
        E::UnsupportedSignatureAlgorithm
        | E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKey
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_)
        | E::SignatureAlgorithmMismatch => {
            reject!(UnsupportedAlgorithm, "the signature algorithm is not supported for the CA's key ({e})")
        }
        other => reject!(MalformedCertificate, "the certificate failed structural validation: {other}"),
    }
}

/// Does `ca` chain, within [`MAX_CHAIN_DEPTH`] links, to a self-signed root among `roots` (or is it one)?
/// `roots` may also hold the intermediates between them.
pub fn chains_to(ca: &Certificate, roots: &[Certificate]) -> bool {
    let mut current = ca;
    for _ in 0..=MAX_CHAIN_DEPTH {
        if roots.iter().any(|r| r.der() == current.der()) && is_self_issued(current) {
            return true;
        }
        let issuer = current.issuer_der();
        let Some(parent) =
            roots.iter().find(|r| r.subject_der() == issuer && r.der() != current.der() && signed_by(current, r))
        else {
            return false;
        };
        current = parent;
    }
    false
}

fn is_self_issued(cert: &Certificate) -> bool {
    cert.issuer_der() == cert.subject_der()
}

/// Verify `child`'s signature with `issuer`'s public key, choosing the algorithm as webpki does: by the
/// signature's and the key's algorithm identifiers.
fn signed_by(child: &Certificate, issuer: &Certificate) -> bool {
    // The bytes as signed, not a re-encoding (which would differ for a pre-1970 time).
    let Some(message) = child.tbs_der() else {
        return false;
    };
    let Some(signature) = child.x509().signature().as_bytes() else {
        return false;
    };
    signature_verifies(child.x509().signature_algorithm(), message, signature, issuer).is_ok()
}

/// Why [`signature_verifies`] said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SignatureFailure {
    /// No verification algorithm of webpki's takes this signature algorithm with the issuer's key.
    Unsupported,
    /// The signature does not verify with the issuer's key.
    Invalid,
}

/// Does `signature` over `message` (signed with `sig_alg`) verify with `issuer`'s public key? The algorithm is
/// chosen as webpki chooses it, by the signature's and the key's algorithm identifiers, among the algorithms
/// jitp accepts; the crypto is webpki's (aws-lc-rs).
pub(super) fn signature_verifies(
    sig_alg: &spki::AlgorithmIdentifierOwned,
    message: &[u8],
    signature: &[u8],
    issuer: &Certificate,
) -> Result<(), SignatureFailure> {
    let spki = issuer.x509().tbs_certificate().subject_public_key_info();
    let (Some(sig_alg), Some(key_alg)) = (alg_id_contents(sig_alg), alg_id_contents(&spki.algorithm)) else {
        return Err(SignatureFailure::Unsupported);
    };
    let Some(public_key) = spki.subject_public_key.as_bytes() else {
        return Err(SignatureFailure::Unsupported);
    };
    let candidates: Vec<_> = VERIFICATION_ALGORITHMS
        .iter()
        .filter(|alg| {
            alg.signature_alg_id().as_ref() == sig_alg.as_slice()
                && alg.public_key_alg_id().as_ref() == key_alg.as_slice()
        })
        .collect();
    if candidates.is_empty() {
        return Err(SignatureFailure::Unsupported);
    }
    if candidates.iter().any(|alg| alg.verify_signature(public_key, message, signature).is_ok()) {
        Ok(())
    } else {
        Err(SignatureFailure::Invalid)
    }
}

/// The contents (without the SEQUENCE header) of an AlgorithmIdentifier, the form pki-types compares.
fn alg_id_contents(alg: &spki::AlgorithmIdentifierOwned) -> Option<Vec<u8>> {
    let der = alg.to_der().ok()?;
    let any = der::asn1::AnyRef::from_der(&der).ok()?;
    Some(any.value().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reason::ReasonCode;

    fn at(now: i64) -> DeviceCheck {
        DeviceCheck { now, clock_skew_seconds: 300 }
    }

    #[test]
    fn time_window_is_widened_by_the_skew_and_no_more() {
        assert!(check_time(1000, 2000, at(1500)).is_ok());
        assert!(check_time(1000, 2000, at(700)).is_ok());
        assert!(check_time(1000, 2000, at(2300)).is_ok());
        assert_eq!(check_time(1000, 2000, at(699)).err().map(|e| e.reason), Some(ReasonCode::CertNotYetValid));
        assert_eq!(check_time(1000, 2000, at(2301)).err().map(|e| e.reason), Some(ReasonCode::CertExpired));
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        assert!(check_time(i64::MIN, i64::MAX, at(i64::MAX)).is_ok());
        assert!(check_time(0, 10, at(i64::MIN)).is_err());
    }
}

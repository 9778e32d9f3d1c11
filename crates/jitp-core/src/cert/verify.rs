//! Verification of a device certificate against the registered CA, and of the CA itself.
//!
//! The checks run in a fixed order so that a certificate with several faults gets the most specific code:
//! algorithms, then issuer name, then the CA flag, then the signature (webpki, with the CA as trust anchor),
//! then the validity window widened by the clock skew.

use std::time::Duration;

use der::{Decode, Encode};
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_cert::ext::pkix::KeyUsage;

use super::Certificate;
use super::algorithm::{VERIFICATION_ALGORITHMS, check_signature_algorithm};
use crate::reason::{Rejection, reject};

/// How deep a `ca_chain` may go above the registered CA: enough for root -> policy CA -> issuing CA,
/// small enough to bound the signature checks spent on a hostile configuration.
const MAX_CHAIN_DEPTH: usize = 4;

/// What the device check needs besides the two certificates.
#[derive(Debug, Clone, Copy)]
pub struct DeviceCheck {
    /// The decision time, Unix seconds.
    pub now: i64,
    /// Tolerance for device clocks on notBefore and notAfter.
    pub clock_skew_seconds: u32,
}

/// Check the registered CA: a CA certificate (basicConstraints cA, keyCertSign when key usage is present)
/// with a key AWS IoT accepts. Returns CA_INVALID otherwise.
pub fn verify_ca(ca: &Certificate) -> Result<CaCheck, Rejection> {
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
    ca.key()
        .check_supported(ca.x509().tbs_certificate().subject_public_key_info())
        .map_err(|e| reject!(CaInvalid, "the registered CA: {}", e.message))?;
    if let super::KeyKind::Rsa { bits } = ca.key()
        && *bits < usize::try_from(crate::profile::MIN_RSA_BITS_FLOOR).unwrap_or(2048)
    {
        return Err(reject!(CaInvalid, "the registered CA's RSA key has {bits} bits; at least 2048 are required"));
    }
    Ok(CaCheck(()))
}

/// Proof that [`verify_ca`] passed.
#[derive(Debug, Clone, Copy)]
pub struct CaCheck(());

/// Verify `device` against the registered `ca` at `check.now`.
pub fn verify_device(
    device: &Certificate,
    ca: &Certificate,
    _ca_ok: CaCheck,
    check: DeviceCheck,
) -> Result<(), Rejection> {
    let tbs = device.x509().tbs_certificate();
    device.key().check_supported(tbs.subject_public_key_info())?;
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
    if device.is_ca()? {
        return Err(reject!(
            DeviceCertIsCa,
            "the device certificate has basicConstraints cA=true; a device certificate must not be a CA"
        ));
    }
    let (not_before, not_after) = device.validity();
    if not_before > not_after {
        return Err(reject!(MalformedCertificate, "notBefore is after notAfter"));
    }
    // webpki checks the signature, the structure and the key usage. Its time check has no skew, so it is
    // given a time inside the window and the window is checked below with the profile's skew.
    let inside = check.now.clamp(not_before, not_after);
    let ca_der = CertificateDer::from(ca.der());
    let anchor = webpki::anchor_from_trusted_cert(&ca_der)
        .map_err(|e| reject!(CaInvalid, "the registered CA cannot be used as a trust anchor: {e}"))?;
    let device_der = CertificateDer::from(device.der());
    let end_entity = webpki::EndEntityCert::try_from(&device_der).map_err(map_webpki)?;
    end_entity
        .verify_for_usage(
            VERIFICATION_ALGORITHMS,
            &[anchor],
            &[],
            UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(inside).unwrap_or(0))),
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .map_err(map_webpki)?;
    check_time(not_before, not_after, check)
}

fn check_time(not_before: i64, not_after: i64, check: DeviceCheck) -> Result<(), Rejection> {
    let skew = i64::from(check.clock_skew_seconds);
    if check.now.saturating_add(skew) < not_before {
        return Err(reject!(
            CertNotYetValid,
            "the certificate is valid from {} ({}s from now, beyond the {}s clock skew allowed)",
            rfc3339(not_before),
            not_before.saturating_sub(check.now),
            skew
        ));
    }
    if check.now.saturating_sub(skew) > not_after {
        return Err(reject!(
            CertExpired,
            "the certificate expired at {} ({}s ago, beyond the {}s clock skew allowed)",
            rfc3339(not_after),
            check.now.saturating_sub(not_after),
            skew
        ));
    }
    Ok(())
}

pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
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
    let sig_alg = alg_id_contents(child.x509().signature_algorithm());
    let spki = issuer.x509().tbs_certificate().subject_public_key_info();
    let key_alg = alg_id_contents(&spki.algorithm);
    let (Some(sig_alg), Some(key_alg)) = (sig_alg, key_alg) else {
        return false;
    };
    let Ok(message) = child.x509().tbs_certificate().to_der() else {
        return false;
    };
    let (Some(signature), Some(public_key)) = (child.x509().signature().as_bytes(), spki.subject_public_key.as_bytes())
    else {
        return false;
    };
    VERIFICATION_ALGORITHMS.iter().any(|alg| {
        alg.signature_alg_id().as_ref() == sig_alg.as_slice()
            && alg.public_key_alg_id().as_ref() == key_alg.as_slice()
            && alg.verify_signature(public_key, &message, signature).is_ok()
    })
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

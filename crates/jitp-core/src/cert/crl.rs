//! Certificate revocation lists (RFC 5280 5): parsed by rustls-webpki, checked against the registered CA once.
//!
//! A profile's CRL files are read when the configuration loads ([`Crl::from_bytes`]): DER or PEM
//! (`-----BEGIN X509 CRL-----`), at most [`MAX_CRL_BYTES`]. webpki parses the list and refuses what it cannot
//! use for a revocation decision: a version other than 2, no nextUpdate, a delta CRL, an indirect CRL, a CRL
//! partitioned by reason, and a critical extension (of the list or of an entry) it does not process
//! (RFC 5280 5.2 and 5.3 forbid using such a list). x509-cert reads the same bytes for the names and times
//! jitp prints.
//!
//! The CA a CRL belongs to is known only from the registry, so [`Crl::verify`] runs when the CA enters the
//! workflow's cache (beside the `ca_chain` checks): the CRL's issuer is the CA's subject, the CA's keyUsage,
//! if present, asserts cRLSign, and the CRL's signature verifies with the CA's key (webpki's verification
//! algorithms, chosen by the signature's and the key's algorithm identifiers, as for a `ca_chain`). Its
//! [`CrlCheck`] is the proof [`Crl::revocation`] asks for. nextUpdate is compared with the decision time by
//! the decision ([`Crl::expired_at`]).
//!
//! Why not webpki's revocation check inside `verify_for_usage` (`RevocationOptionsBuilder`): in this version
//! it verifies the CRL's signature again on every lookup (its own TODO, rustls/webpki#81), consults only the
//! first CRL whose issuer matches, applies nextUpdate at the verification time (which jitp clamps into the
//! device's validity window), does not check the trust anchor's keyUsage for cRLSign, and reports a revoked
//! certificate without its entry. jitp uses webpki's parser and its serial lookup
//! ([`webpki::CertRevocationList::find_serial`]), and its signature algorithms, and none of that.

use std::fmt;

use der::{Decode, Reader, SliceReader};
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::KeyUsage;

use super::verify::{SignatureFailure, signature_verifies};
use super::{Certificate, TrustedCa};
use crate::ids::shown;
use crate::unix_time::rfc3339;

/// The largest CRL file jitp reads: about 200 000 revoked serials. The bound keeps a hostile or mistaken
/// file (a disk image named `.crl`) cheap to refuse.
pub const MAX_CRL_BYTES: usize = 8 * 1024 * 1024;

/// The PEM label of a CRL (RFC 7468 5).
pub const CRL_PEM_LABEL: &str = "X509 CRL";

/// A parsed certificate revocation list.
#[derive(Clone)]
pub struct Crl {
    der: Vec<u8>,
    /// webpki's list (its `find_serial` is on [`webpki::CertRevocationList`], which is not `Clone`).
    list: std::sync::Arc<webpki::CertRevocationList<'static>>,
    issuer_der: Vec<u8>,
    issuer: String,
    this_update: i64,
    next_update: i64,
    revoked: usize,
    crl_number: Option<String>,
    signature_algorithm: spki::AlgorithmIdentifierOwned,
    signature: Vec<u8>,
}

impl fmt::Debug for Crl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Crl")
            .field("issuer", &self.issuer)
            .field("this_update", &rfc3339(self.this_update))
            .field("next_update", &rfc3339(self.next_update))
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

/// Proof that [`Crl::verify`] passed for a CA.
#[derive(Debug, Clone, Copy)]
pub struct CrlCheck(());

/// A device's entry on a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// When the CA revoked it, Unix seconds.
    pub revocation_date: i64,
    /// The entry's reasonCode (RFC 5280 5.3.1 name, e.g. `keyCompromise`), if it has one.
    pub reason: Option<&'static str>,
}

impl Crl {
    /// Parse a CRL file: PEM if it starts (after whitespace) with `-----BEGIN `, DER otherwise. The error is
    /// one sentence for a configuration error (the caller names the key and the file).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() > MAX_CRL_BYTES {
            return Err(format!("the file is {} bytes, over the {MAX_CRL_BYTES}-byte limit for a CRL", bytes.len()));
        }
        let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
        if bytes[start..].starts_with(b"-----BEGIN ") {
            Self::from_der(pem_to_der(bytes)?)
        } else if start == bytes.len() {
            Err("the file is empty".to_owned())
        } else if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
            Err("the PEM file has data before the CRL block (only whitespace may surround it)".to_owned())
        } else {
            Self::from_der(bytes.to_vec())
        }
    }

    /// Parse a DER CRL (strict: no BER, no trailing bytes).
    pub fn from_der(der: Vec<u8>) -> Result<Self, String> {
        if der.first() != Some(&0x30) {
            return Err("it is neither PEM (-----BEGIN X509 CRL-----) nor a DER CRL (no SEQUENCE)".to_owned());
        }
        let list = webpki::OwnedCertRevocationList::from_der(&der).map_err(describe_webpki)?;
        let x509 = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&der)
            .map_err(|e| format!("it is not a valid DER CRL: {e}"))?;
        let tbs = &x509.tbs_cert_list;
        let next_update = tbs.next_update.ok_or("it has no nextUpdate (RFC 5280 5.1.2.5 requires one)")?;
        let crl_number = tbs
            .crl_extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == CRL_NUMBER)
            .and_then(|e| der::asn1::Int::from_der(e.extn_value.as_bytes()).ok())
            .map(|n| hex::encode(n.as_bytes()));
        let signature = x509.signature.as_bytes().ok_or("its signature is not a whole number of bytes")?.to_vec();
        let issuer_der = der::Encode::to_der(&tbs.issuer).map_err(|e| format!("its issuer name is invalid: {e}"))?;
        Ok(Self {
            issuer: tbs.issuer.to_string(),
            issuer_der,
            this_update: unix_seconds(tbs.this_update),
            next_update: unix_seconds(next_update),
            revoked: tbs.revoked_certificates.as_ref().map_or(0, Vec::len),
            crl_number,
            signature_algorithm: x509.signature_algorithm.clone(),
            signature,
            list: std::sync::Arc::new(list.into()),
            der,
        })
    }

    /// The DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The issuer as a one-line RFC 4514 string.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// thisUpdate, Unix seconds.
    pub fn this_update(&self) -> i64 {
        self.this_update
    }

    /// nextUpdate, Unix seconds.
    pub fn next_update(&self) -> i64 {
        self.next_update
    }

    /// How many certificates it revokes.
    pub fn revoked_count(&self) -> usize {
        self.revoked
    }

    /// The cRLNumber extension, hex, if present.
    pub fn crl_number(&self) -> Option<&str> {
        self.crl_number.as_deref()
    }

    /// Is the CRL past its nextUpdate at `now` (at or after it, as webpki's `ExpirationPolicy::Enforce`)?
    pub fn expired_at(&self, now: i64) -> bool {
        now >= self.next_update
    }

    /// Was this CRL issued by `ca`: its issuer is the CA's subject, the CA may sign CRLs (keyUsage cRLSign
    /// when the extension is present) and the signature verifies with the CA's key? The error says which,
    /// in a sentence.
    pub fn verify(&self, ca: &TrustedCa) -> Result<CrlCheck, String> {
        let ca = ca.certificate();
        if self.issuer_der != ca.subject_der() {
            return Err(format!(
                "its issuer {} is not the registered CA {}",
                shown(&self.issuer),
                shown(&ca.subject_line())
            ));
        }
        match ca.x509().tbs_certificate().get_extension::<KeyUsage>() {
            Ok(Some((_, ku))) if !ku.crl_sign() => {
                return Err("the registered CA's keyUsage does not include cRLSign, so it cannot issue CRLs".into());
            }
            Ok(_) => {}
            Err(e) => return Err(format!("the registered CA's keyUsage extension is invalid: {e}")),
        }
        let tbs = tbs_bytes(&self.der).ok_or("its tbsCertList cannot be located")?;
        match signature_verifies(&self.signature_algorithm, tbs, &self.signature, ca) {
            Ok(()) => Ok(CrlCheck(())),
            Err(SignatureFailure::Unsupported) => Err(format!(
                "its signature algorithm {} is not supported for the registered CA's key",
                self.signature_algorithm.oid
            )),
            Err(SignatureFailure::Invalid) => Err(format!(
                "its signature does not verify with the registered CA's key (the CA {}): it was signed by \
                 another key",
                shown(&ca.subject_line())
            )),
        }
    }

    /// The device's entry on this CRL, if it is on it: the lookup is webpki's, by the serial's DER content
    /// octets, as webpki compares them.
    pub fn revocation(&self, device: &Certificate, _proof: CrlCheck) -> Option<Revocation> {
        let serial = device.x509().tbs_certificate().serial_number().as_bytes();
        // The owned list was parsed whole at load time, so the lookup cannot fail.
        let entry = self.list.find_serial(serial).ok().flatten()?;
        Some(Revocation {
            revocation_date: i64::try_from(entry.revocation_date.as_secs()).unwrap_or(i64::MAX),
            reason: entry.reason_code.map(reason_name),
        })
    }
}

const CRL_NUMBER: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("2.5.29.20");

fn unix_seconds(time: x509_cert::time::Time) -> i64 {
    i64::try_from(time.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

/// The tbsCertList TLV, exactly as signed: CertificateList ::= SEQUENCE { tbsCertList, ... }.
fn tbs_bytes(der: &[u8]) -> Option<&[u8]> {
    let mut r = SliceReader::new(der).ok()?;
    let outer = der::Header::decode(&mut r).ok()?;
    if outer.tag() != der::Tag::Sequence {
        return None;
    }
    r.tlv_bytes().ok()
}

/// The one `X509 CRL` block of a PEM file; only whitespace may surround it.
fn pem_to_der(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "it starts like PEM but is not UTF-8 text".to_owned())?;
    let blocks = pem::parse_many(text).map_err(|e| format!("the PEM is not valid: {e}"))?;
    let [block] = blocks.as_slice() else {
        return Err(format!("expected exactly one PEM block, found {}", blocks.len()));
    };
    if block.tag() != CRL_PEM_LABEL {
        return Err(format!("the PEM block is {}, not {CRL_PEM_LABEL}", shown(block.tag())));
    }
    let end = text.rfind("-----END ").and_then(|i| text[i + 9..].find("-----").map(|j| i + 9 + j + 5));
    if !end.is_some_and(|e| text[e..].trim().is_empty()) || text.matches("-----BEGIN ").count() != 1 {
        return Err("the PEM file has data after the CRL block".to_owned());
    }
    if block.contents().is_empty() {
        return Err("the CRL block is empty".to_owned());
    }
    Ok(block.contents().to_vec())
}

#[allow(deprecated)] // match the deprecated unit variants too
fn describe_webpki(e: webpki::Error) -> String {
    use webpki::Error as E;
    match e {
        E::UnsupportedDeltaCrl => {
            "it is a delta CRL (deltaCRLIndicator); jitp reads only complete CRLs: publish the full CRL".into()
        }
        E::UnsupportedCriticalExtension => "it marks an extension critical that jitp does not process, and RFC \
                                            5280 5.2 forbids using such a CRL"
            .into(),
        E::UnsupportedCrlVersion => "it is not a version 2 CRL".into(),
        E::UnsupportedIndirectCrl => "it is an indirect CRL (entries for another issuer); jitp reads only CRLs \
                                      issued by the CA itself"
            .into(),
        E::UnsupportedRevocationReasonsPartitioning => {
            "it covers only some revocation reasons (onlySomeReasons); jitp reads only complete CRLs".into()
        }
        E::UnsupportedCrlIssuingDistributionPoint => {
            "its issuingDistributionPoint is not a full name, which jitp does not support".into()
        }
        E::InvalidCrlNumber => "its cRLNumber is not a non-negative integer of at most 20 octets".into(),
        E::SignatureAlgorithmMismatch => "the signature algorithm inside the CRL differs from the one outside".into(),
        E::UnsupportedRevocationReason => "an entry has a reasonCode RFC 5280 does not define".into(),
        E::TrailingData(_) => format!("it is not a valid DER CRL: it is truncated or has bytes after its end ({e})"),
        other => format!("it is not a valid DER CRL ({other})"),
    }
}

/// RFC 5280 5.3.1's name of a reasonCode.
fn reason_name(reason: webpki::RevocationReason) -> &'static str {
    use webpki::RevocationReason as R;
    match reason {
        R::Unspecified => "unspecified",
        R::KeyCompromise => "keyCompromise",
        R::CaCompromise => "cACompromise",
        R::AffiliationChanged => "affiliationChanged",
        R::Superseded => "superseded",
        R::CessationOfOperation => "cessationOfOperation",
        R::CertificateHold => "certificateHold",
        R::RemoveFromCrl => "removeFromCRL",
        R::PrivilegeWithdrawn => "privilegeWithdrawn",
        R::AaCompromise => "aACompromise",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [
            &b""[..],
            b"   \n",
            b"hello",
            &[0x30],
            &[0x30, 0x82, 0xff, 0xff],
            &[0x30, 0x00],
            &[0xff, 0xfe, 0x00],
            b"-----BEGIN X509 CRL-----\n!!!\n-----END X509 CRL-----\n",
            b"-----BEGIN X509 CRL-----\n-----END X509 CRL-----\n",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\ntrailing",
            b"-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n",
        ] {
            assert!(Crl::from_bytes(bytes).is_err(), "{bytes:?}");
        }
        let huge = vec![0x30; MAX_CRL_BYTES + 1];
        assert!(Crl::from_bytes(&huge).unwrap_err().contains("limit"));
    }
}

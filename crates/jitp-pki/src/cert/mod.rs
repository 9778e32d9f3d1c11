//! X.509 certificates: parse at the edge (x509-cert), inspect the subject and key, verify against the
//! registered CA (rustls-webpki). Every byte here is attacker-controlled.
//!
//! The checks, their order and the reasons for them are in [`verify`] and in this directory's README.md.

mod algorithm;
mod crl;
mod crl_scope;
mod extensions;
mod key_check;
mod pre_epoch;
mod verify;
mod weak_rsa;

pub use algorithm::{Curve, KeyKind};
pub use crl::{CRL_PEM_LABEL, Crl, CrlCheck, MAX_CRL_BYTES, Revocation};
pub use crl_scope::{ALL_REASONS, CrlScope, DistributionPoints};
pub use extensions::{CA_PROCESSED, DEVICE_PROCESSED};
pub use key_check::{MAX_RSA_EXPONENT_BITS, MIN_RSA_EXPONENT};
pub use verify::{CaCheck, DeviceCheck, TrustedCa, chains_to, verify_ca, verify_device, verify_device_as_server};
pub use weak_rsa::{FERMAT_ROUNDS, MIN_CHECKED_BITS, RsaWeakness, SMALL_FACTOR_BOUND, rsa_weakness};

use der::{Decode, Encode};
use sha2::Digest as _;
use x509_cert::Certificate as X509;
use x509_cert::ext::pkix::BasicConstraints;

use crate::ids::shown;
use crate::reason::{Rejection, reject};

/// The smallest RSA modulus AWS IoT accepts, for a CA and (unless a profile raises it) a device.
pub const MIN_RSA_BITS: u32 = 2048;

/// notAfter `99991231235959Z` as Unix seconds: RFC 5280 4.1.2.5's "no well-defined expiration date".
pub const NO_WELL_DEFINED_EXPIRATION: i64 = 253_402_300_799;

/// The largest certificate file jitp reads. Real device certificates are 1-2 KiB; the bound keeps
/// hostile input cheap to refuse.
pub const MAX_PEM_BYTES: usize = 64 * 1024;

/// A parsed certificate: the DER it came from plus the fields jitp decides on.
#[derive(Debug, Clone)]
pub struct Certificate {
    der: Vec<u8>,
    x509: X509,
    subject: Subject,
    key: KeyKind,
    fingerprint: [u8; 32],
    /// Set when a validity time is before 1970 and `x509` was parsed from a shifted copy (see [`pre_epoch`]).
    shifted: Option<Box<pre_epoch::Shifted>>,
    /// [`key_check::check_valid`]'s answer, computed once: the registered CA is parsed once and cached by the
    /// workflow, and validating an EC point costs 1-3 µs.
    key_validity: std::sync::OnceLock<Result<(), Rejection>>,
}

/// The subject attributes jitp uses, each decoded to text. An attribute type can occur more than once in a
/// hostile subject, so each is a list; rules that use a field require it at most once.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Subject {
    /// commonName (2.5.4.3).
    pub cn: Vec<String>,
    /// organizationName (2.5.4.10).
    pub o: Vec<String>,
    /// organizationalUnitName (2.5.4.11).
    pub ou: Vec<String>,
    /// countryName (2.5.4.6).
    pub c: Vec<String>,
    /// stateOrProvinceName (2.5.4.8).
    pub st: Vec<String>,
    /// serialNumber (2.5.4.5), the device serial some makers put in the subject.
    pub serial_number: Vec<String>,
}

impl Subject {
    /// The fields as `(name, values)` pairs, in a fixed order, under the names templates use.
    pub fn fields(&self) -> [(&'static str, &[String]); 6] {
        [
            ("cn", &self.cn),
            ("o", &self.o),
            ("ou", &self.ou),
            ("c", &self.c),
            ("st", &self.st),
            ("serial_number", &self.serial_number),
        ]
    }

    /// The single value of a field, or a SUBJECT_MISMATCH if it occurs more than once.
    pub fn single(&self, field: &'static str) -> Result<Option<&str>, Rejection> {
        let values = self.fields().into_iter().find(|(name, _)| *name == field).map(|(_, v)| v).unwrap_or(&[]);
        match values {
            [] => Ok(None),
            [one] => Ok(Some(one.as_str())),
            many => Err(reject!(
                SubjectMismatch,
                "the subject has {} {} attributes; jitp requires at most one of each",
                many.len(),
                field.to_uppercase()
            )),
        }
    }
}

impl Certificate {
    /// Parse one PEM certificate. Anything else (empty, several blocks, a key, text around the block,
    /// bad base64, bad or trailing DER) is MALFORMED_CERTIFICATE.
    pub fn from_pem(text: &[u8]) -> Result<Self, Rejection> {
        Self::from_der(pem_to_der(text)?)
    }

    /// Parse DER (strict: no BER, no trailing bytes).
    ///
    /// Validity times from 1950 (UTCTime `50`-`69`, RFC 5280 4.1.2.5.1) or earlier (GeneralizedTime) are
    /// accepted; [`Certificate::validity`] then returns negative Unix seconds.
    pub fn from_der(der: Vec<u8>) -> Result<Self, Rejection> {
        let (x509, shifted) = match X509::from_der(&der) {
            Ok(x509) => (x509, None),
            // x509-cert (der) cannot represent times before the Unix epoch: retry with them moved there.
            Err(e) => match pre_epoch::shift(&der) {
                Some(shifted) => match X509::from_der(&shifted.der) {
                    Ok(x509) => (x509, Some(Box::new(shifted))),
                    Err(_) => return Err(reject!(MalformedCertificate, "the certificate is not valid DER X.509: {e}")),
                },
                None => return Err(reject!(MalformedCertificate, "the certificate is not valid DER X.509: {e}")),
            },
        };
        let subject = parse_subject(x509.tbs_certificate().subject())?;
        let key = KeyKind::of(x509.tbs_certificate().subject_public_key_info())?;
        let fingerprint = sha2::Sha256::digest(&der).into();
        Ok(Self { der, x509, subject, key, fingerprint, shifted, key_validity: std::sync::OnceLock::new() })
    }

    /// The DER bytes as received.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The parsed structure, for checks this module does not wrap. Its validity is not the certificate's
    /// when a time is before 1970 (x509-cert cannot hold those): use [`Certificate::validity`].
    pub fn x509(&self) -> &X509 {
        &self.x509
    }

    /// The DER webpki reads the structure from: the certificate's own, or the pre-1970-shifted copy.
    pub(crate) fn structure_der(&self) -> &[u8] {
        self.shifted.as_ref().map_or(&self.der, |s| &s.der)
    }

    /// The shifted copy's details, if a validity time is before 1970.
    pub(crate) fn shifted(&self) -> Option<&pre_epoch::Shifted> {
        self.shifted.as_deref()
    }

    /// The signed tbsCertificate TLV, exactly as received.
    pub(crate) fn tbs_der(&self) -> Option<&[u8]> {
        let range = match &self.shifted {
            Some(s) => s.tbs.clone(),
            None => pre_epoch::tbs_range(&self.der)?,
        };
        self.der.get(range)
    }

    /// The subject fields jitp uses.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// The public key's algorithm and size.
    pub fn key(&self) -> &KeyKind {
        &self.key
    }

    /// Is the public key a valid key (INVALID_PUBLIC_KEY otherwise; the rules are in `key_check`)? Computed
    /// on first use and remembered.
    pub(crate) fn key_validity(&self) -> Result<(), Rejection> {
        self.key_validity
            .get_or_init(|| key_check::check_valid(&self.key, self.x509.tbs_certificate().subject_public_key_info()))
            .clone()
    }

    /// The known weakness of the key if it is an RSA key with one (ROCA, a small factor, factors close
    /// together: [`rsa_weakness`]). Computed on each call (a few microseconds: BENCHMARKS.md).
    pub fn rsa_weakness(&self) -> Option<RsaWeakness> {
        key_check::rsa_weakness(&self.key, self.x509.tbs_certificate().subject_public_key_info())
    }

    /// SHA-256 of the DER: AWS IoT's certificate id and the deny list's fingerprint.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// The fingerprint as 64 lowercase hex digits.
    pub fn fingerprint_hex(&self) -> String {
        hex::encode(self.fingerprint)
    }

    /// The serial number as lowercase hex without leading zero bytes.
    pub fn serial_hex(&self) -> String {
        let bytes = self.x509.tbs_certificate().serial_number().as_bytes();
        let trimmed: &[u8] = match bytes.iter().position(|b| *b != 0) {
            Some(i) => &bytes[i..],
            None => &bytes[bytes.len().saturating_sub(1)..],
        };
        hex::encode(trimmed)
    }

    /// notBefore and notAfter as Unix seconds (negative before 1970).
    pub fn validity(&self) -> (i64, i64) {
        if let Some(s) = &self.shifted {
            return (s.not_before, s.not_after);
        }
        let v = self.x509.tbs_certificate().validity();
        (unix_seconds(v.not_before), unix_seconds(v.not_after))
    }

    /// The X.509 version: 1, 2 or 3 (the DER's `version` field plus one; absent, 1).
    pub fn version(&self) -> u8 {
        match self.x509.tbs_certificate().version() {
            x509_cert::certificate::Version::V1 => 1,
            x509_cert::certificate::Version::V2 => 2,
            x509_cert::certificate::Version::V3 => 3,
        }
    }

    /// Is notAfter `99991231235959Z`, which RFC 5280 4.1.2.5 reserves for a certificate with no well-defined
    /// expiration date (vendors' secure elements use it)?
    pub fn has_no_expiration(&self) -> bool {
        self.validity().1 == NO_WELL_DEFINED_EXPIRATION
    }

    /// basicConstraints cA, if the extension is present; an unreadable extension is MALFORMED.
    pub fn is_ca(&self) -> Result<bool, Rejection> {
        match self.x509.tbs_certificate().get_extension::<BasicConstraints>() {
            Ok(found) => Ok(found.is_some_and(|(_, bc)| bc.ca)),
            Err(e) => Err(reject!(MalformedCertificate, "the basicConstraints extension is invalid: {e}")),
        }
    }

    /// The DER of the issuer and subject names, compared byte for byte as RFC 5280 path building does.
    pub fn issuer_der(&self) -> Vec<u8> {
        self.x509.tbs_certificate().issuer().to_der().unwrap_or_default()
    }

    /// See [`Certificate::issuer_der`].
    pub fn subject_der(&self) -> Vec<u8> {
        self.x509.tbs_certificate().subject().to_der().unwrap_or_default()
    }

    /// The subject as a one-line RFC 4514 string, for messages.
    pub fn subject_line(&self) -> String {
        self.x509.tbs_certificate().subject().to_string()
    }
}

fn unix_seconds(time: x509_cert::time::Time) -> i64 {
    i64::try_from(time.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

const BEGIN: &str = "-----BEGIN ";
const END: &str = "-----END ";

/// Extract the DER of the one certificate block in `text`.
pub fn pem_to_der(text: &[u8]) -> Result<Vec<u8>, Rejection> {
    if text.len() > MAX_PEM_BYTES {
        return Err(reject!(
            MalformedCertificate,
            "the certificate file is {} bytes, over the {MAX_PEM_BYTES}-byte limit",
            text.len()
        ));
    }
    let text = std::str::from_utf8(text)
        .map_err(|_| reject!(MalformedCertificate, "the certificate is not PEM text (it is not UTF-8)"))?;
    if text.trim().is_empty() {
        return Err(reject!(MalformedCertificate, "the certificate file is empty"));
    }
    let blocks = text.matches(BEGIN).count();
    if blocks == 0 {
        return Err(reject!(MalformedCertificate, "no PEM block found (expected -----BEGIN CERTIFICATE-----)"));
    }
    let parsed = pem::parse_many(text).map_err(|e| reject!(MalformedCertificate, "the PEM is not valid: {e}"))?;
    if let Some(key) = parsed.iter().find(|p| p.tag().contains("PRIVATE KEY")) {
        return Err(reject!(
            MalformedCertificate,
            "the file holds a {}, not a certificate; private keys never leave the device",
            key.tag()
        ));
    }
    if parsed.len() != 1 || blocks != 1 {
        return Err(reject!(
            MalformedCertificate,
            "expected exactly one PEM block, found {}",
            blocks.max(parsed.len())
        ));
    }
    let block = &parsed[0];
    if block.tag() != "CERTIFICATE" {
        return Err(reject!(MalformedCertificate, "the PEM block is {}, not CERTIFICATE", shown(block.tag())));
    }
    // Only whitespace may surround the block: trailing data is how smuggling starts.
    let start = text.find(BEGIN).unwrap_or(0);
    let end = text.find(END).and_then(|i| text[i + END.len()..].find("-----").map(|j| i + END.len() + j + 5));
    let outside_ok = text[..start].trim().is_empty() && end.is_some_and(|e| text[e..].trim().is_empty());
    if !outside_ok {
        return Err(reject!(MalformedCertificate, "the PEM file has data before or after the certificate block"));
    }
    if block.contents().is_empty() {
        return Err(reject!(MalformedCertificate, "the certificate block is empty"));
    }
    Ok(block.contents().to_vec())
}

fn parse_subject(name: &x509_cert::name::Name) -> Result<Subject, Rejection> {
    use der::asn1::{BmpString, Ia5StringRef, PrintableStringRef, TeletexStringRef, Utf8StringRef};
    use der::{Tag, Tagged};
    const CN: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("2.5.4.3");
    const O: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("2.5.4.10");
    const OU: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("2.5.4.11");
    const C: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("2.5.4.6");
    const ST: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("2.5.4.8");
    const SERIAL: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("2.5.4.5");

    let mut subject = Subject::default();
    for atv in name.iter() {
        let slot = match atv.oid {
            oid if oid == CN => &mut subject.cn,
            oid if oid == O => &mut subject.o,
            oid if oid == OU => &mut subject.ou,
            oid if oid == C => &mut subject.c,
            oid if oid == ST => &mut subject.st,
            oid if oid == SERIAL => &mut subject.serial_number,
            _ => continue,
        };
        let value = &atv.value;
        let bad = |e: der::Error| {
            reject!(MalformedCertificate, "a subject attribute ({}) is not a valid string: {e}", atv.oid)
        };
        let text = match value.tag() {
            Tag::Utf8String => Utf8StringRef::try_from(value).map_err(bad)?.as_str().to_owned(),
            Tag::PrintableString => PrintableStringRef::try_from(value).map_err(bad)?.as_str().to_owned(),
            Tag::Ia5String => Ia5StringRef::try_from(value).map_err(bad)?.as_str().to_owned(),
            Tag::TeletexString => TeletexStringRef::try_from(value).map_err(bad)?.as_str().to_owned(),
            Tag::BmpString => value.decode_as::<BmpString>().map_err(bad)?.to_string(),
            other => {
                return Err(reject!(
                    MalformedCertificate,
                    "a subject attribute ({}) has string type {other}, which jitp does not read",
                    atv.oid
                ));
            }
        };
        slot.push(text);
    }
    Ok(subject)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reason::ReasonCode;

    fn code(r: Result<Vec<u8>, Rejection>) -> Option<ReasonCode> {
        r.err().map(|e| e.reason)
    }

    #[test]
    fn pem_rejections() {
        let m = Some(ReasonCode::MalformedCertificate);
        assert_eq!(code(pem_to_der(b"")), m);
        assert_eq!(code(pem_to_der(b"   \n")), m);
        assert_eq!(code(pem_to_der(b"hello")), m);
        assert_eq!(code(pem_to_der(&[0xff, 0xfe, 0x00])), m);
        assert_eq!(code(pem_to_der(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n")), m);
        assert_eq!(code(pem_to_der(b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")), m);
        assert_eq!(code(pem_to_der(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")), m);
        assert_eq!(code(pem_to_der(&vec![b'A'; MAX_PEM_BYTES + 1])), m);
        assert_eq!(code(pem_to_der(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\ntrailing")), m);
        assert_eq!(code(pem_to_der(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")), None);
    }

    #[test]
    fn der_garbage_is_malformed_not_a_panic() {
        for der in [vec![], vec![0x30], vec![0x30, 0x82, 0xff, 0xff], vec![0x30, 0x00], vec![0u8; 100]] {
            let r = Certificate::from_der(der);
            assert_eq!(r.err().map(|e| e.reason), Some(ReasonCode::MalformedCertificate));
        }
    }
}

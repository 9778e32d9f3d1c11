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

use super::crl_scope::CrlScope;
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
    scope: CrlScope,
    freshest_crl: Option<String>,
    on_hold: usize,
    removed: usize,
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

impl Revocation {
    /// A certificateHold entry: the CA suspended the certificate; the hold may be lifted (RFC 5280 5.3.1).
    pub fn is_hold(&self) -> bool {
        self.reason == Some("certificateHold")
    }

    /// A removeFromCRL entry: not revoked (RFC 5280 6.3.3 (k)); a hold that was lifted.
    pub fn is_removal(&self) -> bool {
        self.reason == Some("removeFromCRL")
    }
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

    /// Parse a DER CRL (strict: no BER, no trailing bytes). Each refusal names the part of the CRL at fault and
    /// what jitp needs instead.
    pub fn from_der(der: Vec<u8>) -> Result<Self, String> {
        if der.first() != Some(&0x30) {
            return Err("it is neither PEM (-----BEGIN X509 CRL-----) nor a DER CRL (no SEQUENCE)".to_owned());
        }
        let x509 = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&der).map_err(|e| {
            structure::malformed_part(&der).unwrap_or_else(|| format!("it is not a valid DER CRL: {e}"))
        })?;
        let tbs = &x509.tbs_cert_list;
        if tbs.version != x509_cert::Version::V2 {
            return Err(format!(
                "its version field says v{}; jitp needs a version 2 CRL (RFC 5280 5.1.2.1), with nextUpdate and \
                 cRLNumber",
                tbs.version as u8 + 1
            ));
        }
        let next_update = tbs.next_update.ok_or("it has no nextUpdate (RFC 5280 5.1.2.5 requires one)")?;
        let signature = x509
            .signature
            .as_bytes()
            .ok_or("its signatureValue BIT STRING has unused bits: a signature is a whole number of bytes")?
            .to_vec();
        let issuer_der = der::Encode::to_der(&tbs.issuer).map_err(|e| format!("its issuer name is invalid: {e}"))?;
        let extensions = read_extensions(tbs, &issuer_der)?;
        let entries = read_entries(tbs)?;
        // webpki reads every part of the list but the issuingDistributionPoint, which jitp reads itself
        // (`CrlScope`: webpki 0.103 refuses any scope but a full name, and does not say why): it parses a copy in
        // which that extension is renamed authorityKeyIdentifier, which it skips. The signature is verified on the
        // original bytes (`Crl::verify`).
        let renamed = extensions.scope_present.then(|| structure::rename_idp(&der)).flatten();
        let list =
            webpki::OwnedCertRevocationList::from_der(renamed.as_deref().unwrap_or(&der)).map_err(describe_webpki)?;
        Ok(Self {
            issuer: tbs.issuer.to_string(),
            issuer_der,
            this_update: unix_seconds(tbs.this_update),
            next_update: unix_seconds(next_update),
            revoked: tbs.revoked_certificates.as_ref().map_or(0, Vec::len),
            crl_number: extensions.crl_number,
            scope: extensions.scope,
            freshest_crl: extensions.freshest_crl,
            on_hold: entries.on_hold,
            removed: entries.removed,
            signature_algorithm: x509.signature_algorithm.clone(),
            signature,
            list: std::sync::Arc::new(list.into()),
            der,
        })
    }

    /// Which certificates it covers (its issuingDistributionPoint; RFC 5280 5.2.5).
    pub fn scope(&self) -> &CrlScope {
        &self.scope
    }

    /// Its freshestCRL extension, as text (the delta CRLs' locations), if it advertises delta CRLs: revocations
    /// after its thisUpdate may be only in those, which jitp does not read (RFC 5280 5.2.6).
    pub fn freshest_crl(&self) -> Option<&str> {
        self.freshest_crl.as_deref()
    }

    /// How many entries are certificateHold: suspensions, not revocations.
    pub fn on_hold_count(&self) -> usize {
        self.on_hold
    }

    /// How many entries are removeFromCRL (RFC 5280 5.3.1 allows it only in delta CRLs; in a full CRL jitp
    /// reads it as RFC 5280 6.3.3 (k) does: not revoked).
    pub fn removed_count(&self) -> usize {
        self.removed
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

const fn oid(dotted: &str) -> der::asn1::ObjectIdentifier {
    der::asn1::ObjectIdentifier::new_unwrap(dotted)
}

const CRL_NUMBER: der::asn1::ObjectIdentifier = oid("2.5.29.20");
const DELTA_CRL_INDICATOR: der::asn1::ObjectIdentifier = oid("2.5.29.27");
const ISSUING_DISTRIBUTION_POINT: der::asn1::ObjectIdentifier = oid("2.5.29.28");
const AUTHORITY_KEY_IDENTIFIER: der::asn1::ObjectIdentifier = oid("2.5.29.35");
const FRESHEST_CRL: der::asn1::ObjectIdentifier = oid("2.5.29.46");
const ISSUER_ALT_NAME: der::asn1::ObjectIdentifier = oid("2.5.29.18");
const AUTHORITY_INFO_ACCESS: der::asn1::ObjectIdentifier = oid("1.3.6.1.5.5.7.1.1");
const REASON_CODE: der::asn1::ObjectIdentifier = oid("2.5.29.21");
const HOLD_INSTRUCTION_CODE: der::asn1::ObjectIdentifier = oid("2.5.29.23");
const INVALIDITY_DATE: der::asn1::ObjectIdentifier = oid("2.5.29.24");
const CERTIFICATE_ISSUER: der::asn1::ObjectIdentifier = oid("2.5.29.29");

/// What jitp reads from a CRL's extensions (RFC 5280 5.2).
struct CrlExtensions {
    crl_number: Option<String>,
    scope: CrlScope,
    scope_present: bool,
    freshest_crl: Option<String>,
}

/// The CRL's extensions: each known one read, a critical unknown one refused (RFC 5280 5.2: such a CRL must
/// not be used), none twice. webpki would refuse a CRL without the `[0]` wrapper; said here first, plainly.
fn read_extensions(
    tbs: &x509_cert::crl::TbsCertList<x509_cert::certificate::Rfc5280>,
    issuer_der: &[u8],
) -> Result<CrlExtensions, String> {
    let Some(extensions) = &tbs.crl_extensions else {
        return Err("it has no crlExtensions; jitp needs a version 2 CRL with its cRLNumber (RFC 5280 5.2.3, as \
                    `openssl ca -gencrl` writes with a crlnumber file)"
            .into());
    };
    if extensions.is_empty() {
        return Err("its crlExtensions is an empty SEQUENCE, which RFC 5280 5.1.2.7 forbids (one or more); jitp \
                    needs a version 2 CRL with its cRLNumber"
            .into());
    }
    let mut out =
        CrlExtensions { crl_number: None, scope: CrlScope::default(), scope_present: false, freshest_crl: None };
    let mut seen = std::collections::HashSet::new();
    for extension in extensions {
        let (id, value) = (extension.extn_id, extension.extn_value.as_bytes());
        if !seen.insert(id) {
            return Err(format!("its extension {id} appears twice; RFC 5280 4.2 allows one instance of each"));
        }
        match id {
            CRL_NUMBER => {
                let number = der::asn1::Int::from_der(value)
                    .ok()
                    .filter(|n| n.as_bytes().len() <= 20 && n.as_bytes().first().is_none_or(|b| b & 0x80 == 0))
                    .ok_or("its cRLNumber is not a non-negative integer of at most 20 octets (RFC 5280 5.2.3)")?;
                out.crl_number = Some(hex::encode(number.as_bytes()));
            }
            DELTA_CRL_INDICATOR => {
                return Err("it is a delta CRL (deltaCRLIndicator); jitp reads only complete CRLs: publish the \
                            full CRL"
                    .into());
            }
            ISSUING_DISTRIBUTION_POINT => {
                out.scope = CrlScope::from_idp(value, issuer_der)?;
                out.scope_present = true;
            }
            FRESHEST_CRL => out.freshest_crl = Some(freshest_crl_text(value)),
            AUTHORITY_KEY_IDENTIFIER | ISSUER_ALT_NAME | AUTHORITY_INFO_ACCESS => {}
            other if extension.critical => {
                return Err(format!(
                    "it marks extension {other} critical, which jitp does not process, and RFC 5280 5.2 forbids \
                     using such a CRL; jitp needs the CA's CRL without it or with it non-critical"
                ));
            }
            _ => {} // a non-critical extension jitp does not read (AD CS's, for instance) is ignored
        }
    }
    Ok(out)
}

/// The freshestCRL extension as people read it: the delta CRLs' URIs.
fn freshest_crl_text(value: &[u8]) -> String {
    use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
    let Ok(points) = x509_cert::ext::pkix::FreshestCrl::from_der(value) else {
        return "a freshestCRL extension (it does not decode)".to_owned();
    };
    let uris: Vec<String> = points
        .0
        .iter()
        .filter_map(|p| match &p.distribution_point {
            Some(DistributionPointName::FullName(names)) => Some(names),
            _ => None,
        })
        .flatten()
        .filter_map(|n| match n {
            GeneralName::UniformResourceIdentifier(uri) => Some(shown(uri.as_str())),
            _ => None,
        })
        .collect();
    if uris.is_empty() { "a freshestCRL extension".to_owned() } else { uris.join(", ") }
}

/// What jitp counts of a CRL's entries.
struct Entries {
    on_hold: usize,
    removed: usize,
}

/// The entries: no serial twice (which would leave the lookup to pick one of two statuses), reasonCodes RFC
/// 5280 5.3.1 defines, no entry of another issuer (indirect CRL), no critical entry extension jitp does not
/// process (RFC 5280 5.3).
fn read_entries(tbs: &x509_cert::crl::TbsCertList<x509_cert::certificate::Rfc5280>) -> Result<Entries, String> {
    let mut out = Entries { on_hold: 0, removed: 0 };
    let entries = tbs.revoked_certificates.as_deref().unwrap_or_default();
    let mut serials = std::collections::HashSet::with_capacity(entries.len());
    for entry in entries {
        let serial = entry.serial_number.as_bytes();
        if !serials.insert(serial) {
            return Err(format!(
                "serial {} has two entries; jitp needs one entry per certificate (which of the two statuses holds \
                 is not said)",
                hex::encode(serial)
            ));
        }
        for extension in entry.crl_entry_extensions.iter().flatten() {
            match extension.extn_id {
                REASON_CODE => {
                    use x509_cert::ext::pkix::crl::CrlReason;
                    match CrlReason::from_der(extension.extn_value.as_bytes()) {
                        Ok(CrlReason::CertificateHold) => out.on_hold += 1,
                        Ok(CrlReason::RemoveFromCRL) => out.removed += 1,
                        Ok(_) => {}
                        Err(_) => {
                            return Err(format!(
                                "the entry of serial {} has a reasonCode RFC 5280 5.3.1 does not define",
                                hex::encode(serial)
                            ));
                        }
                    }
                }
                CERTIFICATE_ISSUER => {
                    return Err(format!(
                        "the entry of serial {} names a certificateIssuer: it is an indirect CRL, and jitp reads only \
                         CRLs the registered CA issues for itself",
                        hex::encode(serial)
                    ));
                }
                HOLD_INSTRUCTION_CODE | INVALIDITY_DATE => {}
                other if extension.critical => {
                    return Err(format!(
                        "the entry of serial {} marks extension {other} critical, which jitp does not process, and \
                         RFC 5280 5.3 forbids using such a CRL",
                        hex::encode(serial)
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// Where in a CRL's DER a part is malformed, for a message that names it: the walk runs only once x509-cert
/// has refused the bytes.
mod structure {
    use der::asn1::{AnyRef, BitString};
    use der::{Decode, Reader, SliceReader, Tag, Tagged};
    use spki::AlgorithmIdentifierOwned;
    use x509_cert::crl::RevokedCert;
    use x509_cert::ext::Extensions;
    use x509_cert::name::Name;
    use x509_cert::time::Time;

    /// The TLVs inside one SEQUENCE's content.
    fn elements(content: &[u8]) -> Result<Vec<&[u8]>, String> {
        let mut reader = SliceReader::new(content).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        while !reader.is_finished() {
            out.push(reader.tlv_bytes().map_err(|e| e.to_string())?);
        }
        Ok(out)
    }

    fn sequence(tlv: &[u8]) -> Result<&[u8], String> {
        let any = AnyRef::from_der(tlv).map_err(|e| e.to_string())?;
        if any.tag() != Tag::Sequence {
            return Err(format!("it is a {}, not a SEQUENCE", any.tag()));
        }
        Ok(any.value())
    }

    /// A sentence naming the first malformed part of `der`, or `None` if the walk finds none.
    pub(super) fn malformed_part(der: &[u8]) -> Option<String> {
        let bad = |part: &str, need: &str, e: String| {
            Some(format!("it is not a valid DER CRL: its {part} is malformed ({e}); jitp needs {need}"))
        };
        let outer = match sequence(der) {
            Ok(content) => content,
            Err(e) => return bad("outer SEQUENCE", "one DER CertificateList with nothing after it", e),
        };
        let parts = match elements(outer) {
            Ok(parts) => parts,
            Err(e) => return bad("CertificateList", "tbsCertList, signatureAlgorithm, signatureValue", e),
        };
        let [tbs, algorithm, signature] = parts.as_slice() else {
            return Some(format!(
                "it is not a valid DER CRL: its CertificateList has {} parts; jitp needs 3 (tbsCertList, \
                 signatureAlgorithm, signatureValue)",
                parts.len()
            ));
        };
        if let Err(e) = AlgorithmIdentifierOwned::from_der(algorithm) {
            return bad("signatureAlgorithm", "a DER AlgorithmIdentifier", e.to_string());
        }
        if let Err(e) = BitString::from_der(signature) {
            return bad("signatureValue BIT STRING", "a DER BIT STRING holding the signature", e.to_string());
        }
        tbs_part(tbs)
    }

    fn tbs_part(tbs: &[u8]) -> Option<String> {
        let bad = |part: &str, need: &str, e: String| {
            Some(format!("it is not a valid DER CRL: its tbsCertList's {part} is malformed ({e}); jitp needs {need}"))
        };
        let fields = match sequence(tbs).and_then(elements) {
            Ok(fields) => fields,
            Err(e) => return bad("SEQUENCE", "a DER TBSCertList", e),
        };
        let mut fields = fields.into_iter().peekable();
        let tag = |f: &&[u8]| f.first().copied();
        match fields.next_if(|f| tag(f) == Some(0x02)) {
            None => {
                return Some(
                    "it has no version field: it is a version 1 CRL; jitp needs a version 2 CRL (RFC 5280 \
                             5.1.2.1) with nextUpdate and cRLNumber"
                        .into(),
                );
            }
            Some(v) => {
                if let Err(e) = x509_cert::Version::from_der(v) {
                    return bad("version", "INTEGER 1 (v2)", e.to_string());
                }
            }
        }
        type Check = fn(&[u8]) -> Result<(), der::Error>;
        let checks: [(&str, &str, Check); 3] = [
            ("signature", "a DER AlgorithmIdentifier", |b| AlgorithmIdentifierOwned::from_der(b).map(drop)),
            ("issuer", "a DER Name", |b| Name::from_der(b).map(drop)),
            ("thisUpdate", "a UTCTime or GeneralizedTime", |b| Time::from_der(b).map(drop)),
        ];
        for (part, need, check) in checks {
            let Some(field) = fields.next() else { return bad(part, need, "missing".into()) };
            if let Err(e) = check(field) {
                return bad(part, need, e.to_string());
            }
        }
        if let Some(next) = fields.next_if(|f| matches!(tag(f), Some(0x17 | 0x18)))
            && let Err(e) = Time::from_der(next)
        {
            return bad("nextUpdate", "a UTCTime or GeneralizedTime", e.to_string());
        }
        if let Some(list) = fields.next_if(|f| tag(f) == Some(0x30)) {
            let entries = match sequence(list).and_then(elements) {
                Ok(entries) => entries,
                Err(e) => return bad("revokedCertificates", "a SEQUENCE of entries", e),
            };
            for (i, entry) in entries.iter().enumerate() {
                if let Err(e) = RevokedCert::<x509_cert::certificate::Rfc5280>::from_der(entry) {
                    return bad(
                        &format!("revokedCertificates entry {}", i + 1),
                        "userCertificate, revocationDate and optional DER crlEntryExtensions",
                        e.to_string(),
                    );
                }
            }
        }
        if let Some(wrapper) = fields.next_if(|f| tag(f) == Some(0xA0)) {
            let inner = AnyRef::from_der(wrapper).map(|a| a.value()).map_err(|e| e.to_string());
            if let Err(e) = inner.and_then(|b| Extensions::from_der(b).map_err(|e| e.to_string())) {
                return bad("crlExtensions", "[0] EXPLICIT SEQUENCE OF DER Extension", e);
            }
        }
        if let Some(rest) = fields.next() {
            return Some(format!(
                "it is not a valid DER CRL: its tbsCertList has an unexpected field (tag 0x{:02x}) after its last \
                 one",
                rest.first().copied().unwrap_or_default()
            ));
        }
        None
    }

    /// A copy of `der` whose issuingDistributionPoint extension is renamed authorityKeyIdentifier (same length,
    /// so the DER stays well formed), or `None` if it has none.
    pub(super) fn rename_idp(der: &[u8]) -> Option<Vec<u8>> {
        const IDP: [u8; 5] = [0x06, 0x03, 0x55, 0x1D, 0x1C];
        let base = der.as_ptr() as usize;
        let tbs = elements(sequence(der).ok()?).ok()?.into_iter().next()?;
        let wrapper = elements(sequence(tbs).ok()?).ok()?.into_iter().find(|f| f.first() == Some(&0xA0))?;
        let list = AnyRef::from_der(wrapper).ok()?.value();
        for extension in elements(sequence(list).ok()?).ok()? {
            let oid = sequence(extension).ok()?;
            if oid.starts_with(&IDP) {
                // The last byte of the OID 2.5.29.28, at its offset in `der` (both slices borrow `der`).
                let at = oid.as_ptr() as usize - base + IDP.len() - 1;
                let mut copy = der.to_vec();
                *copy.get_mut(at)? = 0x23; // 2.5.29.35
                return Some(copy);
            }
        }
        None
    }
}

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
        E::UnsupportedCrlIssuingDistributionPoint | E::MalformedExtensions => {
            format!("its extensions are not what RFC 5280 5.2 allows ({e:?}); jitp needs DER extensions")
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

//! Extensions: which critical ones jitp processes, the device's keyUsage, and the words for name constraints.
//!
//! RFC 5280 4.2: a certificate with a critical extension the verifier does not process must be rejected.
//! jitp processes:
//! - on the device certificate: basicConstraints (cA must be false), keyUsage (see [`check_device_key_usage`]),
//!   extKeyUsage (clientAuth, checked by webpki) and subjectAltName (checked by webpki against the CA's name
//!   constraints). These are the extensions webpki processes on an end entity, less cRLDistributionPoints
//!   (jitp checks revocation only against the CRLs a profile lists, never a distribution point) and the SCT list (not checked by anyone here); nameConstraints on a
//!   device constrains nothing, so jitp does not count it as processed there.
//! - on the registered CA: basicConstraints (cA must be true), keyUsage (keyCertSign) and nameConstraints
//!   (applied by webpki to the device). The CA is jitp's trust anchor, so it is not checked for anything
//!   else: a critical certificatePolicies, policyConstraints, extKeyUsage etc. on it is an extension jitp
//!   would be ignoring, and the CA is refused.
//!
//! Everything else, critical, is refused: subject/authority key identifiers (RFC 5280 requires them to be
//! non-critical), certificate policies and policy constraints, cRLDistributionPoints, authorityInfoAccess, and
//! any private or unknown OID.

use der::asn1::ObjectIdentifier as Oid;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{KeyUsage, NameConstraints, SubjectAltName};

use super::Certificate;
use crate::reason::{Rejection, reject};

const BASIC_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.19");
const KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.15");
const EXT_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.37");
const SUBJECT_ALT_NAME: Oid = Oid::new_unwrap("2.5.29.17");
const NAME_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.30");

/// The critical extensions jitp processes on a device certificate.
pub const DEVICE_PROCESSED: &[Oid] = &[BASIC_CONSTRAINTS, KEY_USAGE, EXT_KEY_USAGE, SUBJECT_ALT_NAME];
/// The critical extensions jitp processes on the registered CA.
pub const CA_PROCESSED: &[Oid] = &[BASIC_CONSTRAINTS, KEY_USAGE, NAME_CONSTRAINTS];

/// The first critical extension of `cert` outside `processed`, as "name (OID)".
pub(crate) fn unprocessed_critical(cert: &Certificate, processed: &[Oid]) -> Option<String> {
    let extensions = cert.x509().tbs_certificate().extensions()?;
    extensions.iter().find(|e| e.critical && !processed.contains(&e.extn_id)).map(|e| {
        match extension_name(&e.extn_id) {
            Some(name) => format!("{name} ({})", e.extn_id),
            None => e.extn_id.to_string(),
        }
    })
}

fn extension_name(oid: &Oid) -> Option<&'static str> {
    Some(match oid.to_string().as_str() {
        "2.5.29.9" => "subjectDirectoryAttributes",
        "2.5.29.14" => "subjectKeyIdentifier",
        "2.5.29.15" => "keyUsage",
        "2.5.29.17" => "subjectAltName",
        "2.5.29.18" => "issuerAltName",
        "2.5.29.19" => "basicConstraints",
        "2.5.29.30" => "nameConstraints",
        "2.5.29.31" => "cRLDistributionPoints",
        "2.5.29.32" => "certificatePolicies",
        "2.5.29.33" => "policyMappings",
        "2.5.29.35" => "authorityKeyIdentifier",
        "2.5.29.36" => "policyConstraints",
        "2.5.29.37" => "extKeyUsage",
        "2.5.29.46" => "freshestCRL",
        "2.5.29.54" => "inhibitAnyPolicy",
        "1.3.6.1.5.5.7.1.1" => "authorityInfoAccess",
        "1.3.6.1.5.5.7.1.11" => "subjectInfoAccess",
        "1.3.6.1.4.1.11129.2.4.2" => "signedCertificateTimestampList",
        _ => return None,
    })
}

/// The bits a keyUsage asserts, by their RFC 5280 names.
fn key_usage_bits(ku: &KeyUsage) -> Vec<&'static str> {
    [
        (ku.digital_signature(), "digitalSignature"),
        (ku.non_repudiation(), "contentCommitment"),
        (ku.key_encipherment(), "keyEncipherment"),
        (ku.data_encipherment(), "dataEncipherment"),
        (ku.key_agreement(), "keyAgreement"),
        (ku.key_cert_sign(), "keyCertSign"),
        (ku.crl_sign(), "cRLSign"),
        (ku.encipher_only(), "encipherOnly"),
        (ku.decipher_only(), "decipherOnly"),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect()
}

/// A device certificate's keyUsage, when present, asserts digitalSignature (the device signs the TLS
/// handshake, RFC 5280 4.2.1.3, RFC 8446 4.4.3) and neither keyCertSign nor cRLSign (which only a CA may
/// assert, RFC 5280 4.2.1.3 and 4.2.1.9). Other bits (keyEncipherment for RSA, keyAgreement...) are allowed.
pub(crate) fn check_device_key_usage(device: &Certificate) -> Result<(), Rejection> {
    let ku = match device.x509().tbs_certificate().get_extension::<KeyUsage>() {
        Ok(Some((_, ku))) => ku,
        Ok(None) => return Ok(()),
        Err(e) => return Err(reject!(MalformedCertificate, "the keyUsage extension is invalid: {e}")),
    };
    let bits = key_usage_bits(&ku);
    let shown = if bits.is_empty() { "empty".to_owned() } else { bits.join(", ") };
    if ku.key_cert_sign() || ku.crl_sign() {
        let ca_bits: Vec<_> = bits.iter().filter(|b| **b == "keyCertSign" || **b == "cRLSign").copied().collect();
        return Err(reject!(
            KeyUsageInvalid,
            "the device certificate's keyUsage ({shown}) asserts {}, which only a CA may; a device certificate \
             must not assert keyCertSign or cRLSign",
            ca_bits.join(" and ")
        ));
    }
    if !ku.digital_signature() {
        return Err(reject!(
            KeyUsageInvalid,
            "the device certificate's keyUsage ({shown}) lacks digitalSignature, which TLS client authentication \
             requires"
        ));
    }
    Ok(())
}

/// The CA's name constraints, decoded; CA_INVALID if they cannot be, or if they constrain directoryName,
/// which webpki does not evaluate and so refuses for every device (it has no way to be satisfied).
pub(crate) fn check_ca_name_constraints(ca: &Certificate) -> Result<(), Rejection> {
    let nc = match ca.x509().tbs_certificate().get_extension::<NameConstraints>() {
        Ok(Some((_, nc))) => nc,
        Ok(None) => return Ok(()),
        Err(e) => return Err(reject!(CaInvalid, "the registered CA's nameConstraints extension is invalid: {e}")),
    };
    let subtrees = nc.permitted_subtrees.iter().chain(nc.excluded_subtrees.iter()).flatten();
    if subtrees.clone().any(|s| matches!(s.base, GeneralName::DirectoryName(_))) {
        return Err(reject!(
            CaInvalid,
            "the registered CA's nameConstraints constrain directoryName, which jitp does not evaluate (so no \
             device could satisfy them); jitp evaluates dNSName and iPAddress constraints"
        ));
    }
    if nc.permitted_subtrees.as_ref().is_some_and(|s| s.is_empty())
        || nc.excluded_subtrees.as_ref().is_some_and(|s| s.is_empty())
        || (nc.permitted_subtrees.is_none() && nc.excluded_subtrees.is_none())
    {
        return Err(reject!(
            CaInvalid,
            "the registered CA's nameConstraints has an empty subtree list (RFC 5280 4.2.1.10 requires at least one)"
        ));
    }
    Ok(())
}

/// "permitted dNSName example.com; excluded iPAddress 10.0.0.0/8" for messages.
pub(crate) fn describe_name_constraints(ca: &Certificate) -> String {
    let Ok(Some((_, nc))) = ca.x509().tbs_certificate().get_extension::<NameConstraints>() else {
        return "none".into();
    };
    let mut parts = Vec::new();
    for (label, trees) in [("permitted", &nc.permitted_subtrees), ("excluded", &nc.excluded_subtrees)] {
        if let Some(trees) = trees {
            let names: Vec<String> = trees.iter().take(8).map(|t| describe_name(&t.base)).collect();
            let more = if trees.len() > 8 { format!(" and {} more", trees.len() - 8) } else { String::new() };
            parts.push(format!("{label} {}{more}", names.join(", ")));
        }
    }
    parts.join("; ")
}

/// The device's subjectAltName entries for messages, or "no subjectAltName".
pub(crate) fn describe_sans(device: &Certificate) -> String {
    match device.x509().tbs_certificate().get_extension::<SubjectAltName>() {
        Ok(Some((_, san))) => {
            let names: Vec<String> = san.0.iter().take(8).map(describe_name).collect();
            let more = if san.0.len() > 8 { format!(" and {} more", san.0.len() - 8) } else { String::new() };
            format!("subjectAltName {}{more}", names.join(", "))
        }
        _ => "no subjectAltName".into(),
    }
}

fn describe_name(name: &GeneralName) -> String {
    use crate::ids::shown;
    match name {
        GeneralName::DnsName(s) => format!("dNSName {}", shown(s.as_str())),
        GeneralName::Rfc822Name(s) => format!("rfc822Name {}", shown(s.as_str())),
        GeneralName::UniformResourceIdentifier(s) => format!("URI {}", shown(s.as_str())),
        GeneralName::IpAddress(ip) => format!("iPAddress {}", describe_ip(ip.as_bytes())),
        GeneralName::DirectoryName(n) => format!("directoryName {}", shown(&n.to_string())),
        GeneralName::OtherName(o) => format!("otherName {}", o.type_id),
        GeneralName::EdiPartyName(_) => "ediPartyName".into(),
        GeneralName::RegisteredId(oid) => format!("registeredID {oid}"),
    }
}

fn describe_ip(bytes: &[u8]) -> String {
    let addr = |b: &[u8]| -> Option<std::net::IpAddr> {
        match b.len() {
            4 => <[u8; 4]>::try_from(b).ok().map(std::net::IpAddr::from),
            16 => <[u8; 16]>::try_from(b).ok().map(std::net::IpAddr::from),
            _ => None,
        }
    };
    match bytes.len() {
        4 | 16 => addr(bytes).map(|a| a.to_string()),
        8 | 32 => {
            let (ip, mask) = bytes.split_at(bytes.len() / 2);
            let prefix: u32 = mask.iter().map(|b| b.count_ones()).sum();
            addr(ip).map(|a| format!("{a}/{prefix}"))
        }
        _ => None,
    }
    .unwrap_or_else(|| hex::encode(bytes))
}

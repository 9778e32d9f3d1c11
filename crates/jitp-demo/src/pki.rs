//! A demo PKI generated in code: a self-signed P-256 CA and device certificates it issues, at a fixed clock.

use std::collections::BTreeMap;
use std::sync::Mutex;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PublicKeyData, SerialNumber, SignatureAlgorithm,
};
use sha2::Digest as _;
use time::OffsetDateTime;

use crate::Error;

/// The demo's clock, 2026-01-01T00:00:00Z: its certificates are valid around it and it decides at it.
pub const NOW: i64 = 1_767_225_600;
/// One day in seconds.
pub const DAY: i64 = 86_400;

/// PEM-encode a DER certificate (LF line endings, as openssl writes them).
pub fn certificate_pem(der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new("CERTIFICATE", der.to_vec()), config)
}

/// `unix` as a certificate time; out-of-range values clamp to the Unix epoch.
fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A self-signed root CA (P-256, cA=true, keyCertSign and cRLSign) that issues the demo's devices.
#[derive(Debug)]
pub struct DemoCa {
    /// The CA certificate, PEM.
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl DemoCa {
    /// A CA named `cn`, valid six years before [`NOW`] to fourteen after. Two CAs with one name have different
    /// keys: the second is a forgery of the first.
    pub fn new(cn: &str) -> Result<Self, Error> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "jitp demo");
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = at(NOW - 6 * 365 * DAY);
        params.not_after = at(NOW + 14 * 365 * DAY);
        params.serial_number = Some(SerialNumber::from_slice(&sha2::Sha256::digest(cn.as_bytes())[..8]));
        let key = KeyPair::generate().map_err(|e| Error::new("a CA key", e))?;
        let cert = params.self_signed(&key).map_err(|e| Error::new(format!("CA {cn:?}"), e))?;
        Ok(Self { pem: cert.pem(), issuer: Issuer::new(params, key) })
    }

    /// Issue `device`'s certificate, PEM.
    pub fn issue(&self, device: &DemoDevice) -> Result<String, Error> {
        let params = device.params();
        let what = || format!("the certificate of {:?}", device.cn);
        let cert = match device.rsa_bits {
            Some(bits) => params.signed_by(&rsa_public_key(bits), &self.issuer),
            None => {
                let key = KeyPair::generate().map_err(|e| Error::new(what(), e))?;
                params.signed_by(&key, &self.issuer)
            }
        };
        Ok(cert.map_err(|e| Error::new(what(), e))?.pem())
    }
}

/// A device certificate to issue: `DemoDevice::new(cn)` is a good one; change fields for bad ones.
#[derive(Debug, Clone)]
pub struct DemoDevice {
    /// Subject CN.
    pub cn: String,
    /// notBefore, Unix seconds.
    pub not_before: i64,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// basicConstraints cA=true (a device certificate that claims to be a CA).
    pub is_ca: bool,
    /// Serial number bytes.
    pub serial: Vec<u8>,
    /// Certify an RSA public key of this many bits instead of a generated P-256 key.
    pub rsa_bits: Option<usize>,
}

impl DemoDevice {
    /// A valid P-256 device certificate for `cn` (O=Acme), from a day before [`NOW`] for a year.
    pub fn new(cn: &str) -> Self {
        Self {
            cn: cn.to_owned(),
            not_before: NOW - DAY,
            not_after: NOW + 365 * DAY,
            is_ca: false,
            serial: sha2::Sha256::digest(cn.as_bytes())[..8].to_vec(),
            rsa_bits: None,
        }
    }

    fn params(&self) -> CertificateParams {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Acme");
        dn.push(DnType::CommonName, self.cn.as_str());
        params.distinguished_name = dn;
        params.is_ca = if self.is_ca { IsCa::Ca(BasicConstraints::Unconstrained) } else { IsCa::NoCa };
        params.not_before = at(self.not_before);
        params.not_after = at(self.not_after);
        params.serial_number = Some(SerialNumber::from_slice(&self.serial));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params
    }
}

/// The certificate-registered event AWS IoT publishes for certificate `certificate_id` of CA `ca_id`, at [`NOW`],
/// in account 123456789012.
pub fn registration_event(certificate_id: &str, ca_id: &str) -> String {
    serde_json::json!({
        "certificateId": certificate_id,
        "caCertificateId": ca_id,
        "timestamp": NOW * 1000,
        "certificateStatus": "PENDING_ACTIVATION",
        "awsAccountId": "123456789012",
        "certificateRegistrationTimestamp": null
    })
    .to_string()
}

/// A subject public key given as bytes, to certify keys rcgen cannot generate (RSA-1024).
#[derive(Debug, Clone)]
pub struct RawPublicKey {
    /// The subjectPublicKey BIT STRING contents.
    pub bytes: Vec<u8>,
    /// The algorithm whose key OID goes into the SPKI.
    pub alg: &'static SignatureAlgorithm,
}

impl PublicKeyData for RawPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.bytes
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

/// An RSA public key with a modulus of `bits` bits (not a usable key: only its size matters to the checks).
pub fn rsa_public_key(bits: usize) -> RawPublicKey {
    rsa_key_with_modulus(&fake_modulus(bits), &[0x01, 0x00, 0x01])
}

/// An RSA public key with this modulus and exponent (big-endian bytes, no sign byte needed).
pub fn rsa_key_with_modulus(modulus: &[u8], exponent: &[u8]) -> RawPublicKey {
    let int = |bytes: &[u8]| {
        let mut v = bytes.to_vec();
        if v.first().is_some_and(|b| b & 0x80 != 0) {
            v.insert(0, 0);
        }
        der_tlv(0x02, &v)
    };
    let mut seq = int(modulus);
    seq.extend(int(exponent));
    RawPublicKey { bytes: der_tlv(0x30, &seq), alg: &rcgen::PKCS_RSA_SHA256 }
}

/// A `bits`-bit odd number standing in for an RSA modulus whose private key nobody needs: a fixed pattern, moved
/// up by steps of 2 until no prime below 2^16 divides it, so that it has none of the weaknesses jitp looks for
/// but its size. Computed once per size and process.
pub fn fake_modulus(bits: usize) -> Vec<u8> {
    static MODULI: Mutex<BTreeMap<usize, Vec<u8>>> = Mutex::new(BTreeMap::new());
    let mut moduli = MODULI.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    moduli
        .entry(bits)
        .or_insert_with(|| {
            let mut modulus = vec![0u8; bits / 8];
            for (i, b) in modulus.iter_mut().enumerate() {
                *b = if i == 0 { 0xC1 } else { (i as u8).wrapping_mul(37) | 1 };
            }
            let primes: Vec<u32> = (3..1u32 << 16)
                .step_by(2)
                .filter(|n| (3..).step_by(2).take_while(|d| d * d <= *n).all(|d| n % d != 0))
                .collect();
            while primes.iter().any(|p| modulus.iter().fold(0u32, |r, b| ((r << 8) | u32::from(*b)) % p) == 0) {
                // + 2, carrying (the pattern's leading 0xC1 keeps the carry from changing its size).
                let mut carry = 2u16;
                for b in modulus.iter_mut().rev() {
                    let sum = u16::from(*b) + carry;
                    *b = sum as u8;
                    carry = sum >> 8;
                    if carry == 0 {
                        break;
                    }
                }
            }
            modulus
        })
        .clone()
}

/// A DER TLV with a definite length (contents up to 64 KiB).
pub fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_pki_issues_what_it_says() {
        let ca = DemoCa::new("Demo CA").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(ca.pem.starts_with("-----BEGIN CERTIFICATE-----\n") && !ca.pem.contains('\r'));
        let good = ca.issue(&DemoDevice::new("sensor-1")).unwrap_or_else(|e| unreachable!("{e}"));
        let weak = DemoDevice { rsa_bits: Some(1024), ..DemoDevice::new("sensor-2") };
        let weak = ca.issue(&weak).unwrap_or_else(|e| unreachable!("{e}"));
        assert_ne!(good, weak);
        assert_eq!(fake_modulus(1024).len(), 128);
        let event: serde_json::Value = serde_json::from_str(&registration_event("a", "b")).unwrap_or_default();
        assert_eq!(event["certificateStatus"], "PENDING_ACTIVATION");
    }
}

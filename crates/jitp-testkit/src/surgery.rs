//! Builders for the certificate checks' hostile cases: certificates whose extensions are given byte for byte
//! and in order (critical or not), CAs with any validity window or name constraints, and public keys that are
//! not valid keys (RSA exponents and moduli, EC points off the curve, compressed, of the wrong length).
//!
//! Provenance: as in the crate root, every certificate is signed by rcgen at the fixed clock; the hostile
//! parts are DER built here (a few TLVs) or bytes of a generated key changed on purpose.

use rcgen::{CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, Issuer, KeyPair, SerialNumber};
use sha2::Digest as _;

use crate::{Alg, Ca, DAY, Device, NOW, Pem, RawPublicKey, at, der_tlv};

/// An extension as it will be written: OID arcs, the critical flag and the DER of the value.
#[derive(Debug, Clone)]
pub struct Ext {
    /// The OID, as arcs.
    pub oid: Vec<u64>,
    /// The critical flag.
    pub critical: bool,
    /// The extnValue contents (the DER inside the OCTET STRING).
    pub value: Vec<u8>,
}

/// A private OID no one processes (under the IANA "example" enterprise number 32473, RFC 5612).
pub const UNKNOWN_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 32473, 1, 1];

/// keyUsage bit numbers (RFC 5280 4.2.1.3).
pub mod ku {
    /// digitalSignature.
    pub const DIGITAL_SIGNATURE: u8 = 0;
    /// contentCommitment (nonRepudiation).
    pub const CONTENT_COMMITMENT: u8 = 1;
    /// keyEncipherment.
    pub const KEY_ENCIPHERMENT: u8 = 2;
    /// dataEncipherment.
    pub const DATA_ENCIPHERMENT: u8 = 3;
    /// keyAgreement.
    pub const KEY_AGREEMENT: u8 = 4;
    /// keyCertSign.
    pub const KEY_CERT_SIGN: u8 = 5;
    /// cRLSign.
    pub const CRL_SIGN: u8 = 6;
    /// encipherOnly.
    pub const ENCIPHER_ONLY: u8 = 7;
    /// decipherOnly.
    pub const DECIPHER_ONLY: u8 = 8;
}

/// A GeneralName for SANs and name constraints.
#[derive(Debug, Clone)]
pub enum Name {
    /// dNSName.
    Dns(String),
    /// iPAddress: an address in a SAN, address and mask in a constraint (4 or 16 bytes each).
    Ip(Vec<u8>),
    /// directoryName with a single CN.
    Dir(String),
    /// uniformResourceIdentifier.
    Uri(String),
    /// rfc822Name.
    Email(String),
}

impl Name {
    fn der(&self) -> Vec<u8> {
        match self {
            Name::Dns(s) => der_tlv(0x82, s.as_bytes()),
            Name::Ip(b) => der_tlv(0x87, b),
            Name::Dir(cn) => der_tlv(0xA4, &dn_with_cn(cn)),
            Name::Uri(s) => der_tlv(0x86, s.as_bytes()),
            Name::Email(s) => der_tlv(0x81, s.as_bytes()),
        }
    }
}

/// Name ::= SEQUENCE OF SET OF { cn }, with one UTF8String CN.
fn dn_with_cn(cn: &str) -> Vec<u8> {
    let mut atv = der_tlv(0x06, &[0x55, 0x04, 0x03]);
    atv.extend(der_tlv(0x0C, cn.as_bytes()));
    der_tlv(0x30, &der_tlv(0x31, &der_tlv(0x30, &atv)))
}

impl Ext {
    /// An extension with an OID nobody processes and a NULL value.
    pub fn unknown(critical: bool) -> Self {
        Self { oid: UNKNOWN_OID.to_vec(), critical, value: vec![0x05, 0x00] }
    }

    /// Any OID with a NULL value (for known extensions marked critical where they must not be, the value
    /// does not matter: the critical check comes first).
    pub fn raw(oid: &[u64], critical: bool, value: Vec<u8>) -> Self {
        Self { oid: oid.to_vec(), critical, value }
    }

    /// basicConstraints, critical: `cA` true or absent (false).
    pub fn basic_constraints(ca: bool) -> Self {
        let value = if ca { der_tlv(0x30, &[0x01, 0x01, 0xFF]) } else { der_tlv(0x30, &[]) };
        Self { oid: vec![2, 5, 29, 19], critical: true, value }
    }

    /// keyUsage with the given bits (see [`ku`]), critical as RFC 5280 recommends.
    pub fn key_usage(bits: &[u8]) -> Self {
        Self { oid: vec![2, 5, 29, 15], critical: true, value: key_usage_bit_string(bits) }
    }

    /// extKeyUsage clientAuth, not critical.
    pub fn eku_client_auth() -> Self {
        let client_auth = der_tlv(0x06, &[0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02]);
        Self { oid: vec![2, 5, 29, 37], critical: false, value: der_tlv(0x30, &client_auth) }
    }

    /// subjectAltName with `names`.
    pub fn san(names: &[Name], critical: bool) -> Self {
        let body: Vec<u8> = names.iter().flat_map(Name::der).collect();
        Self { oid: vec![2, 5, 29, 17], critical, value: der_tlv(0x30, &body) }
    }

    /// nameConstraints (critical, as RFC 5280 requires of CAs) with permitted and excluded subtrees.
    pub fn name_constraints(permitted: &[Name], excluded: &[Name]) -> Self {
        let subtrees = |tag: u8, names: &[Name]| -> Vec<u8> {
            if names.is_empty() {
                return Vec::new();
            }
            let body: Vec<u8> = names.iter().flat_map(|n| der_tlv(0x30, &n.der())).collect();
            der_tlv(tag, &body)
        };
        let mut body = subtrees(0xA0, permitted);
        body.extend(subtrees(0xA1, excluded));
        Self { oid: vec![2, 5, 29, 30], critical: true, value: der_tlv(0x30, &body) }
    }

    /// subjectKeyIdentifier (must be non-critical, RFC 5280 4.2.1.2).
    pub fn subject_key_id(critical: bool) -> Self {
        Self { oid: vec![2, 5, 29, 14], critical, value: der_tlv(0x04, &[0x11; 20]) }
    }

    /// certificatePolicies with anyPolicy.
    pub fn any_policy(critical: bool) -> Self {
        let any = der_tlv(0x30, &der_tlv(0x06, &[0x55, 0x1D, 0x20, 0x00]));
        Self { oid: vec![2, 5, 29, 32], critical, value: der_tlv(0x30, &any) }
    }

    fn custom(&self) -> CustomExtension {
        let mut ext = CustomExtension::from_oid_content(&self.oid, self.value.clone());
        ext.set_criticality(self.critical);
        ext
    }
}

/// A keyUsage BIT STRING with `bits` set, DER (trailing zero bits dropped, RFC 5280 / X.690 11.2.2).
pub fn key_usage_bit_string(bits: &[u8]) -> Vec<u8> {
    let mut bytes = [0u8; 2];
    for &bit in bits {
        bytes[usize::from(bit / 8)] |= 0x80 >> (bit % 8);
    }
    let used = if bytes[1] != 0 {
        2
    } else if bytes[0] != 0 {
        1
    } else {
        0
    };
    if used == 0 {
        return der_tlv(0x03, &[0x00]);
    }
    let last = bytes[used - 1];
    let unused = last.trailing_zeros() as u8;
    let mut content = vec![unused];
    content.extend_from_slice(&bytes[..used]);
    der_tlv(0x03, &content)
}

/// The extensions of a normal CA: basicConstraints cA and keyUsage keyCertSign + cRLSign, both critical.
pub fn ca_extensions() -> Vec<Ext> {
    vec![Ext::basic_constraints(true), Ext::key_usage(&[ku::KEY_CERT_SIGN, ku::CRL_SIGN])]
}

/// The extensions of a normal device: keyUsage digitalSignature, critical.
pub fn device_extensions() -> Vec<Ext> {
    vec![Ext::key_usage(&[ku::DIGITAL_SIGNATURE])]
}

/// How to build a CA byte for byte.
#[derive(Debug, Clone)]
pub struct CaBuild {
    /// Subject CN (the subject is `O=jitp test, CN=<cn>`).
    pub cn: String,
    /// Key algorithm.
    pub alg: Alg,
    /// notBefore, Unix seconds (negative before 1970).
    pub not_before: i64,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// Exactly these extensions, in this order.
    pub extensions: Vec<Ext>,
}

impl CaBuild {
    /// A normal CA, valid six years back and fourteen ahead, like [`Ca::new`].
    pub fn new(cn: &str, alg: Alg) -> Self {
        Self {
            cn: cn.into(),
            alg,
            not_before: NOW - 6 * 365 * DAY,
            not_after: NOW + 14 * 365 * DAY,
            extensions: ca_extensions(),
        }
    }

    /// Same, valid from `not_before` to `not_after`.
    pub fn valid(mut self, not_before: i64, not_after: i64) -> Self {
        self.not_before = not_before;
        self.not_after = not_after;
        self
    }

    /// Same, with `ext` appended.
    pub fn with(mut self, ext: Ext) -> Self {
        self.extensions.push(ext);
        self
    }

    /// The self-signed CA.
    pub fn build(&self) -> Ca {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "jitp test");
        dn.push(DnType::CommonName, self.cn.as_str());
        params.distinguished_name = dn;
        // No rcgen-made extensions: the list is exactly `extensions`.
        params.is_ca = IsCa::NoCa;
        params.not_before = at(self.not_before);
        params.not_after = at(self.not_after);
        params.serial_number = Some(SerialNumber::from_slice(&sha2::Sha256::digest(self.cn.as_bytes())[..8]));
        params.custom_extensions = self.extensions.iter().map(Ext::custom).collect();
        let key = self.alg.ca_key();
        let cert = params.self_signed(&key).unwrap();
        let key_pem = key.serialize_pem();
        Ca { cert: Pem::new(cert.der().to_vec()), issuer: Issuer::new(params, key), key_pem }
    }
}

impl Ca {
    /// Issue `device` with exactly `extensions`, in order, instead of its usual keyUsage/extKeyUsage.
    pub fn issue_with(&self, device: &Device, extensions: &[Ext]) -> Pem {
        let mut params = device.params();
        params.key_usages.clear();
        params.extended_key_usages.clear();
        params.is_ca = IsCa::NoCa;
        params.custom_extensions = extensions.iter().map(Ext::custom).collect();
        let der = match &device.public_key {
            Some(raw) => params.signed_by(raw, &self.issuer).unwrap().der().to_vec(),
            None => params.signed_by(&device.alg.key(), &self.issuer).unwrap().der().to_vec(),
        };
        Pem::new(der)
    }

    /// This CA's own public key, to certify for a device.
    pub fn public_key(&self) -> RawPublicKey {
        let key: &KeyPair = self.issuer.key();
        RawPublicKey { bytes: key.public_key_raw().to_vec(), alg: key.algorithm() }
    }
}

/// An RSA public key: a `bits`-bit modulus (odd unless `even_modulus`) and `exponent` (big-endian bytes).
pub fn rsa_key(bits: usize, exponent: &[u8], even_modulus: bool) -> RawPublicKey {
    let mut modulus = jitp_demo::pki::fake_modulus(bits);
    if even_modulus {
        *modulus.last_mut().unwrap() &= 0xFE;
    }
    crate::rsa_key_with_modulus(&modulus, exponent)
}

/// The ways an EC public key can be wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadPoint {
    /// The empty string.
    Empty,
    /// The point at infinity (the single byte 00).
    Infinity,
    /// The real point, compressed (02/03 || X).
    Compressed,
    /// The real point with the 06/07 "hybrid" prefix of X9.62.
    Hybrid,
    /// The uncompressed point with its last byte dropped.
    Truncated,
    /// The uncompressed point with a byte appended.
    Extended,
    /// The last byte of Y changed: off the curve.
    OffCurve,
    /// X = Y = 2^n - 1: coordinates above the field prime.
    AbovePrime,
    /// A real point of another curve, labelled with this curve's OID.
    OtherCurve,
}

impl BadPoint {
    /// Every kind.
    pub const ALL: [BadPoint; 9] = [
        BadPoint::Empty,
        BadPoint::Infinity,
        BadPoint::Compressed,
        BadPoint::Hybrid,
        BadPoint::Truncated,
        BadPoint::Extended,
        BadPoint::OffCurve,
        BadPoint::AbovePrime,
        BadPoint::OtherCurve,
    ];
}

/// A key for `alg` (P256, P384 or P521) spoiled as `how`, in the SPKI of `alg`'s curve.
pub fn bad_ec_key(alg: Alg, how: BadPoint) -> RawPublicKey {
    let sig = alg.signature();
    let real = KeyPair::generate_for(sig).unwrap().public_key_raw().to_vec();
    let other = match alg {
        Alg::P256 => Alg::P384,
        _ => Alg::P256,
    };
    let bytes = match how {
        BadPoint::Empty => vec![],
        BadPoint::Infinity => vec![0x00],
        BadPoint::Compressed | BadPoint::Hybrid => {
            let n = (real.len() - 1) / 2;
            let y_odd = real[real.len() - 1] & 1 == 1;
            if how == BadPoint::Compressed {
                let mut out = vec![if y_odd { 0x03 } else { 0x02 }];
                out.extend_from_slice(&real[1..=n]);
                out
            } else {
                let mut out = real.clone();
                out[0] = if y_odd { 0x07 } else { 0x06 };
                out
            }
        }
        BadPoint::Truncated => real[..real.len() - 1].to_vec(),
        BadPoint::Extended => {
            let mut out = real.clone();
            out.push(0x01);
            out
        }
        BadPoint::OffCurve => {
            let mut out = real.clone();
            *out.last_mut().unwrap() ^= 0x01;
            out
        }
        BadPoint::AbovePrime => {
            let mut out = vec![0xFF; real.len()];
            out[0] = 0x04;
            if alg == Alg::P521 {
                // P-521's coordinates are 521 bits in 66 bytes: 2^521 - 1 is the prime itself.
                out[1] = 0x01;
                out[67] = 0x01;
            }
            out
        }
        BadPoint::OtherCurve => KeyPair::generate_for(other.signature()).unwrap().public_key_raw().to_vec(),
    };
    RawPublicKey { bytes, alg: sig }
}

/// A pre-1970 time used by the tests: 1960-01-01T00:00:00Z, written by rcgen as UTCTime `600101000000Z`.
pub const JAN_1960: i64 = -315_619_200;

/// `bytes` as the subject public key of `alg`'s key type (its curve's OID for EC), for arbitrary-key tests.
pub fn raw_key(alg: Alg, bytes: Vec<u8>) -> RawPublicKey {
    RawPublicKey { bytes, alg: alg.signature() }
}

/// The raw public key (an uncompressed point for EC) of a freshly generated `alg` key.
pub fn public_key_bytes(alg: Alg) -> Vec<u8> {
    use rcgen::PublicKeyData as _;
    alg.key().der_bytes().to_vec()
}

/// What [`Ca::issue_version`] writes in place of a v3 certificate's version field (and whether it keeps the
/// extensions, or adds unique identifiers): the version class, the allowed ones and the malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionEdit {
    /// X.509 v1 as OpenSSL's `x509 -req` makes it: no version field (the DEFAULT), no extensions.
    V1,
    /// v1 spelled out (`[0] INTEGER 0`), which DER forbids (a DEFAULT value is never encoded).
    ExplicitV1,
    /// v1 that keeps the extensions, which only v3 may carry.
    V1WithExtensions,
    /// v1 with a subjectUniqueID, which only v2 and v3 may carry.
    V1WithUniqueId,
    /// `[0] INTEGER n` (1: v2, 3 and more: versions that do not exist), no extensions.
    Number(u8),
}

/// (tag, whole TLV) of each element of a DER SEQUENCE's contents.
fn elements(mut contents: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while !contents.is_empty() {
        let tag = contents[0];
        let (len, header) = match contents[1] {
            n if n < 0x80 => (n as usize, 2),
            0x81 => (contents[2] as usize, 3),
            0x82 => (((contents[2] as usize) << 8) | contents[3] as usize, 4),
            other => panic!("length form {other:#x} not used by these certificates"),
        };
        out.push((tag, contents[..header + len].to_vec()));
        contents = &contents[header + len..];
    }
    out
}

/// The contents of the one TLV `der`.
fn contents(der: &[u8]) -> &[u8] {
    let header = match der[1] {
        n if n < 0x80 => 2,
        0x81 => 3,
        0x82 => 4,
        other => panic!("length form {other:#x} not used by these certificates"),
    };
    &der[header..]
}

impl Ca {
    /// Issue `device` as a certificate of another version (see [`VersionEdit`]), signed by this CA over the
    /// edited tbsCertificate: its signature verifies.
    pub fn issue_version(&self, device: &Device, edit: VersionEdit) -> Pem {
        use rcgen::SigningKey as _;
        let v3 = self.issue(device);
        let [(_, tbs), (_, algorithm), _] = <[(u8, Vec<u8>); 3]>::try_from(elements(contents(&v3.der))).unwrap();
        let mut fields: Vec<(u8, Vec<u8>)> = elements(contents(&tbs));
        assert_eq!(fields[0].0, 0xA0, "rcgen writes v3 with its version field");
        fields.remove(0);
        let keep_extensions = edit == VersionEdit::V1WithExtensions;
        fields.retain(|(tag, _)| *tag != 0xA3 || keep_extensions);
        match edit {
            VersionEdit::V1 | VersionEdit::V1WithExtensions => {}
            VersionEdit::ExplicitV1 => fields.insert(0, (0xA0, der_tlv(0xA0, &der_tlv(0x02, &[0])))),
            VersionEdit::Number(n) => fields.insert(0, (0xA0, der_tlv(0xA0, &der_tlv(0x02, &[n])))),
            VersionEdit::V1WithUniqueId => {
                let at = fields.iter().position(|(tag, _)| *tag == 0xA3).unwrap_or(fields.len());
                fields.insert(at, (0x82, der_tlv(0x82, &[0x00, 0x2A])));
            }
        }
        let tbs = der_tlv(0x30, &fields.iter().flat_map(|(_, tlv)| tlv.iter().copied()).collect::<Vec<u8>>());
        let signature = self.issuer.key().sign(&tbs).unwrap();
        let mut bits = vec![0x00];
        bits.extend_from_slice(&signature);
        let mut body = tbs;
        body.extend_from_slice(&algorithm);
        body.extend_from_slice(&der_tlv(0x03, &bits));
        Pem::new(der_tlv(0x30, &body))
    }
}

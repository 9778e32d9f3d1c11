//! Fixtures for jitp's tests, benchmarks and demo: CAs and device certificates generated in code with rcgen
//! at a fixed clock, plus byte surgery for the hostile cases rcgen refuses to produce (SHA-1 and MD5
//! signatures, unsupported curves, tiny RSA moduli).
//!
//! Provenance: every certificate here comes from [`Ca::new`] and [`Ca::issue`], every CRL from [`Ca::crl`] and
//! [`Ca::crl_with`]; nothing is read from disk.
//! Keys are generated once per algorithm and process (RSA-4096 generation takes a second).
//!
//! The set-up every suite needs once is here too, so that it is written once:
//! - [`repo_config_path`] and [`templates_dir`]: the repository's shipped configuration (each test loads it
//!   itself); [`config_dir::ConfigDir`]: a configuration of a test's own in a temporary directory.
//! - [`events`]: the registration event AWS IoT publishes, its malformed variants, and the SQS envelope.
//! - [`moto`]: moto's server; with the `aws` feature, an `AwsRegistry` over it set up as auto-registration
//!   leaves an account.
//! - `lambda` (feature `lambda`): a fake Lambda Runtime API for the `jitp-lambda` binary.
//! - [`audit_line`]: the audit line's shape.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // a fixture that cannot be built is a test bug
#![warn(missing_docs)]

pub mod audit_line;
pub mod captured_log;
pub mod config_dir;
pub mod crl_ext;
pub mod events;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod moto;
pub mod surgery;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, RsaKeySize, SerialNumber, SignatureAlgorithm,
};
use sha2::Digest as _;
use time::OffsetDateTime;

/// The fixed clock: 2026-01-01T00:00:00Z.
pub const NOW: i64 = 1_767_225_600;
/// One day in seconds.
pub const DAY: i64 = 86_400;

/// The repository's root (this crate is `crates/jitp-testkit`).
pub fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The shipped templates, `templates/`: `jitp.toml` and `policies/`.
pub fn templates_dir() -> PathBuf {
    repo_root().join("templates")
}

/// The shipped configuration, `templates/jitp.toml`: what the Lambda, the server and the CLI load by default.
pub fn repo_config_path() -> PathBuf {
    templates_dir().join("jitp.toml")
}

/// The real clock, Unix seconds: for a binary under test that decides at the system clock, not at [`NOW`].
pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Key algorithms fixtures can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// RSA-2048, PKCS#1 v1.5 SHA-256.
    Rsa2048,
    /// RSA-3072.
    Rsa3072,
    /// RSA-4096.
    Rsa4096,
    /// ECDSA P-256 SHA-256.
    P256,
    /// ECDSA P-384 SHA-384.
    P384,
    /// ECDSA P-521 SHA-512.
    P521,
    /// Ed25519 (AWS IoT does not accept it).
    Ed25519,
}

impl Alg {
    fn signature(self) -> &'static SignatureAlgorithm {
        match self {
            Alg::Rsa2048 | Alg::Rsa3072 | Alg::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
            Alg::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Alg::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            Alg::P521 => &rcgen::PKCS_ECDSA_P521_SHA512,
            Alg::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }

    /// A key of this algorithm. RSA keys are generated once per process and shared (generation is slow).
    pub fn key(self) -> KeyPair {
        self.pooled_key(0)
    }

    /// A key for a CA. RSA keys come from another pool than [`Alg::key`]'s, so a CA never shares its key with
    /// a device certificate it issues (which jitp refuses as DEVICE_KEY_IS_CA_KEY).
    pub fn ca_key(self) -> KeyPair {
        self.pooled_key(1)
    }

    fn pooled_key(self, pool: usize) -> KeyPair {
        static RSA: [[OnceLock<String>; 3]; 2] = [const { [const { OnceLock::new() }; 3] }; 2];
        let rsa = |i: usize, size: RsaKeySize| {
            let pem = RSA[pool][i]
                .get_or_init(|| KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size).unwrap().serialize_pem());
            KeyPair::from_pem(pem).unwrap()
        };
        match self {
            Alg::Rsa2048 => rsa(0, RsaKeySize::_2048),
            Alg::Rsa3072 => rsa(1, RsaKeySize::_3072),
            Alg::Rsa4096 => rsa(2, RsaKeySize::_4096),
            other => KeyPair::generate_for(other.signature()).unwrap(),
        }
    }
}

/// A certificate as PEM and DER.
#[derive(Debug, Clone)]
pub struct Pem {
    /// PEM text.
    pub pem: String,
    /// DER bytes.
    pub der: Vec<u8>,
}

impl Pem {
    fn new(der: Vec<u8>) -> Self {
        Self { pem: to_pem(&der), der }
    }

    /// SHA-256 of the DER, lowercase hex: AWS IoT's certificate id.
    pub fn id(&self) -> String {
        hex::encode(sha2::Sha256::digest(&self.der))
    }
}

/// PEM-encode a DER certificate.
pub fn to_pem(der: &[u8]) -> String {
    jitp_demo::pki::certificate_pem(der)
}

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

/// A certificate authority that can issue device certificates.
#[derive(Debug)]
pub struct Ca {
    /// The CA certificate.
    pub cert: Pem,
    issuer: Issuer<'static, KeyPair>,
    /// The key again (PEM), to sign CRLs rcgen cannot make ([`CrlSpec::extensions`]).
    key_pem: String,
}

/// How to build a CA.
#[derive(Debug, Clone)]
pub struct CaSpec {
    /// Subject CN.
    pub cn: String,
    /// Key algorithm.
    pub alg: Alg,
    /// basicConstraints cA.
    pub is_ca: bool,
    /// Key usages (empty: no extension).
    pub key_usages: Vec<KeyUsagePurpose>,
}

impl CaSpec {
    /// A normal CA: cA=true, keyCertSign + cRLSign.
    pub fn new(cn: &str, alg: Alg) -> Self {
        Self {
            cn: cn.into(),
            alg,
            is_ca: true,
            key_usages: vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
        }
    }
}

impl Ca {
    /// A self-signed root CA, valid 2020..2040.
    pub fn new(cn: &str, alg: Alg) -> Self {
        Self::build(&CaSpec::new(cn, alg), None)
    }

    /// A CA from `spec`, self-signed or signed by `parent`.
    pub fn build(spec: &CaSpec, parent: Option<&Ca>) -> Self {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "jitp test");
        dn.push(DnType::CommonName, spec.cn.as_str());
        params.distinguished_name = dn;
        params.is_ca = if spec.is_ca { IsCa::Ca(BasicConstraints::Unconstrained) } else { IsCa::ExplicitNoCa };
        params.key_usages = spec.key_usages.clone();
        params.not_before = at(NOW - 6 * 365 * DAY);
        params.not_after = at(NOW + 14 * 365 * DAY);
        params.serial_number = Some(SerialNumber::from_slice(&sha2::Sha256::digest(spec.cn.as_bytes())[..8]));
        let key = spec.alg.ca_key();
        let cert = match parent {
            Some(p) => params.signed_by(&key, &p.issuer).unwrap(),
            None => params.self_signed(&key).unwrap(),
        };
        let der = cert.der().to_vec();
        let key_pem = key.serialize_pem();
        Self { cert: Pem::new(der), issuer: Issuer::new(params, key), key_pem }
    }

    /// AWS IoT's id for this CA.
    pub fn id(&self) -> String {
        self.cert.id()
    }

    /// A CRL signed by this CA revoking `serials` (each as in [`Device::serial`]), with these thisUpdate and
    /// nextUpdate (Unix seconds).
    pub fn crl(&self, serials: &[&[u8]], this_update: i64, next_update: i64) -> CrlFile {
        self.crl_with(&CrlSpec { this_update, next_update, ..CrlSpec::new(serials) })
    }

    /// A CRL signed by this CA, from `spec`.
    pub fn crl_with(&self, spec: &CrlSpec) -> CrlFile {
        let params = rcgen::CertificateRevocationListParams {
            this_update: at(spec.this_update),
            next_update: at(spec.next_update),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: spec.distribution_point.as_ref().map(|uri| {
                rcgen::CrlIssuingDistributionPoint {
                    distribution_point: rcgen::CrlDistributionPoint { uris: vec![uri.clone()] },
                    scope: None,
                }
            }),
            revoked_certs: spec
                .revoked
                .iter()
                .map(|r| rcgen::RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&r.serial),
                    revocation_time: at(r.at),
                    reason_code: r.reason,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer).unwrap();
        if spec.extensions.is_empty() {
            return CrlFile { pem: crl.pem().unwrap(), der: crl.der().to_vec() };
        }
        let key = KeyPair::from_pem(&self.key_pem).unwrap();
        let der = crl_ext::resign(crl.der(), &spec.extensions, |tbs| rcgen::SigningKey::sign(&key, tbs).unwrap());
        CrlFile { pem: to_pem(&der).replace("CERTIFICATE", "X509 CRL"), der }
    }

    /// Issue a device certificate.
    pub fn issue(&self, spec: &Device) -> Pem {
        let params = spec.params();
        let der = match &spec.public_key {
            Some(raw) => params.signed_by(raw, &self.issuer).unwrap().der().to_vec(),
            None => params.signed_by(&spec.alg.key(), &self.issuer).unwrap().der().to_vec(),
        };
        Pem::new(der)
    }
}

/// A certificate revocation list as PEM (`X509 CRL`) and DER.
#[derive(Debug, Clone)]
pub struct CrlFile {
    /// PEM text.
    pub pem: String,
    /// DER bytes.
    pub der: Vec<u8>,
}

/// One entry of a CRL to issue.
#[derive(Debug, Clone)]
pub struct Revoked {
    /// The revoked certificate's serial number bytes (as in [`Device::serial`]).
    pub serial: Vec<u8>,
    /// The revocation date, Unix seconds.
    pub at: i64,
    /// The reasonCode entry extension, if any.
    pub reason: Option<rcgen::RevocationReason>,
}

impl Revoked {
    /// `serial`, revoked a day before [`NOW`], without a reason code.
    pub fn serial(serial: &[u8]) -> Self {
        Self { serial: serial.to_vec(), at: NOW - DAY, reason: None }
    }
}

/// How to build a CRL: [`CrlSpec::new`] is a good one; change fields for others.
#[derive(Debug, Clone)]
pub struct CrlSpec {
    /// The entries.
    pub revoked: Vec<Revoked>,
    /// thisUpdate, Unix seconds.
    pub this_update: i64,
    /// nextUpdate, Unix seconds.
    pub next_update: i64,
    /// An issuingDistributionPoint URI (rcgen marks the extension critical, as RFC 5280 5.2.5 requires).
    pub distribution_point: Option<String>,
    /// CRL extensions rcgen cannot write (an issuingDistributionPoint of any shape, freshestCRL, unknown ones):
    /// each replaces rcgen's extension of the same OID or is appended, and the CRL is signed again with the
    /// CA's key ([`crl_ext`]).
    pub extensions: Vec<crl_ext::RawExtension>,
}

impl CrlSpec {
    /// A CRL revoking `serials`, issued a day before [`NOW`], next update a week after it.
    pub fn new(serials: &[&[u8]]) -> Self {
        Self {
            revoked: serials.iter().map(|s| Revoked::serial(s)).collect(),
            this_update: NOW - DAY,
            next_update: NOW + 7 * DAY,
            distribution_point: None,
            extensions: Vec::new(),
        }
    }
}

/// A device certificate to issue. `Device::new("sensor-...")` is a good one; change fields for bad ones.
#[derive(Debug, Clone)]
pub struct Device {
    /// Subject CN (None: no CN at all).
    pub cn: Option<String>,
    /// Extra subject attributes in order (type, value); repeated types allowed.
    pub extra: Vec<(DnType, String)>,
    /// Key algorithm.
    pub alg: Alg,
    /// notBefore, Unix seconds.
    pub not_before: i64,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// basicConstraints cA=true.
    pub is_ca: bool,
    /// Serial number bytes.
    pub serial: Vec<u8>,
    /// Extended key usages (empty: none).
    pub eku: Vec<ExtendedKeyUsagePurpose>,
    /// A raw subject public key to certify instead of a generated one.
    pub public_key: Option<RawPublicKey>,
    /// Its cRLDistributionPoints extension value (DER, e.g. from [`crl_ext::cdp`]), non-critical; none if `None`.
    pub crl_distribution_points: Option<Vec<u8>>,
}

impl Device {
    /// A valid P-256 device certificate with `cn`, valid from a day before [`NOW`] for a year.
    pub fn new(cn: &str) -> Self {
        Self {
            cn: Some(cn.into()),
            extra: vec![(DnType::OrganizationName, "Acme".into())],
            alg: Alg::P256,
            not_before: NOW - DAY,
            not_after: NOW + 365 * DAY,
            is_ca: false,
            serial: sha2::Sha256::digest(cn.as_bytes())[..8].to_vec(),
            eku: vec![],
            public_key: None,
            crl_distribution_points: None,
        }
    }

    /// Same, valid from a day before `now` for a year instead of around [`NOW`] (with [`unix_now`]: for a
    /// binary that decides at the real clock).
    pub fn valid_around(mut self, now: i64) -> Self {
        self.not_before = now - DAY;
        self.not_after = now + 365 * DAY;
        self
    }

    /// Same, with another key algorithm.
    pub fn alg(mut self, alg: Alg) -> Self {
        self.alg = alg;
        self
    }

    /// Add a subject attribute.
    pub fn with(mut self, ty: DnType, value: &str) -> Self {
        self.extra.push((ty, value.into()));
        self
    }

    fn params(&self) -> CertificateParams {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        for (ty, v) in &self.extra {
            dn.push(ty.clone(), v.as_str());
        }
        if let Some(cn) = &self.cn {
            dn.push(DnType::CommonName, cn.as_str());
        }
        params.distinguished_name = dn;
        params.is_ca = if self.is_ca { IsCa::Ca(BasicConstraints::Unconstrained) } else { IsCa::NoCa };
        params.not_before = at(self.not_before);
        params.not_after = at(self.not_after);
        params.serial_number = Some(SerialNumber::from_slice(&self.serial));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = self.eku.clone();
        if let Some(cdp) = &self.crl_distribution_points {
            params.custom_extensions.push(rcgen::CustomExtension::from_oid_content(&[2, 5, 29, 31], cdp.clone()));
        }
        params
    }
}

pub use jitp_demo::pki::{RawPublicKey, der_tlv, rsa_key_with_modulus, rsa_public_key};

/// OIDs (full TLV) used for surgery. Each replacement has the same length, so the DER stays well formed.
pub mod oid {
    /// sha256WithRSAEncryption.
    pub const SHA256_RSA: &[u8] = &[0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B];
    /// sha1WithRSAEncryption.
    pub const SHA1_RSA: &[u8] = &[0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x05];
    /// md5WithRSAEncryption.
    pub const MD5_RSA: &[u8] = &[0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x04];
    /// ecdsa-with-SHA256.
    pub const ECDSA_SHA256: &[u8] = &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02];
    /// ecdsa-with-SHA1 is shorter; ecdsa-with-SHA224 (1.2.840.10045.4.3.1) has the same length.
    pub const ECDSA_SHA224: &[u8] = &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x01];
    /// prime256v1 (P-256).
    pub const P256: &[u8] = &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
    /// prime192v1 (P-192), which AWS IoT does not accept.
    pub const P192: &[u8] = &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x01];
    /// id-ce-cRLNumber (2.5.29.20), which every CRL [`crate::Ca::crl`] issues carries.
    pub const CRL_NUMBER: &[u8] = &[0x06, 0x03, 0x55, 0x1D, 0x14];
    /// id-ce-deltaCRLIndicator (2.5.29.27): a cRLNumber renamed to it makes a delta CRL.
    pub const DELTA_CRL_INDICATOR: &[u8] = &[0x06, 0x03, 0x55, 0x1D, 0x1B];
    /// id-ce-issuingDistributionPoint (2.5.29.28), critical in the CRLs rcgen issues.
    pub const ISSUING_DISTRIBUTION_POINT: &[u8] = &[0x06, 0x03, 0x55, 0x1D, 0x1C];
    /// 2.5.29.99, an extension nobody defines: an issuingDistributionPoint renamed to it is a critical
    /// extension no verifier processes.
    pub const UNKNOWN_EXTENSION: &[u8] = &[0x06, 0x03, 0x55, 0x1D, 0x63];
}

/// Replace every occurrence of `from` with `to` (same length) in `der`. Panics if none was found.
pub fn replace_all(der: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len(), "surgery must keep lengths");
    let mut out = der.to_vec();
    let mut found = false;
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            found = true;
            i += from.len();
        } else {
            i += 1;
        }
    }
    assert!(found, "pattern not found");
    out
}

/// Flip one bit in the last byte (inside the signature).
pub fn corrupt_signature(der: &[u8]) -> Vec<u8> {
    let mut out = der.to_vec();
    if let Some(last) = out.last_mut() {
        *last ^= 0x01;
    }
    out
}

pub use events::{event, event_for_ids};

pub use rcgen::{DnType as Dn, ExtendedKeyUsagePurpose as Eku, KeyUsagePurpose as KeyUsage, RevocationReason};

impl Ca {
    /// The PEM of a CA certificate (cA=true, keyCertSign) that certifies `key`, signed by a throwaway root. It
    /// cannot issue anything; it exists to test how a CA with an unusable key is judged.
    pub fn with_public_key_for_tests(key: RawPublicKey) -> String {
        let root = Ca::new("Throwaway Root", Alg::P256);
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "Weak Key CA");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        params.not_before = at(NOW - 365 * DAY);
        params.not_after = at(NOW + 365 * DAY);
        params.signed_by(&key, &root.issuer).unwrap().pem()
    }
}

//! Which keys and signature algorithms jitp accepts: those AWS IoT Core accepts for device certificates,
//! RSA (PKCS#1 v1.5 and PSS with SHA-2) and ECDSA on P-256/P-384/P-521 with SHA-2.

use der::asn1::{ObjectIdentifier as Oid, UintRef};
use der::{Decode, Sequence};
use rustls_pki_types::SignatureVerificationAlgorithm;
use spki::SubjectPublicKeyInfoOwned;
use webpki::aws_lc_rs as algs;

use crate::reason::{Rejection, reject};

const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
const P256: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
const P384: Oid = Oid::new_unwrap("1.3.132.0.34");
const P521: Oid = Oid::new_unwrap("1.3.132.0.35");

/// RSA moduli above this are refused: it bounds the cost of a signature check on hostile input, and it is
/// webpki's own upper bound (RSA_PKCS1_2048_8192_*).
pub(super) const MAX_RSA_BITS: usize = 8192;

/// A NIST curve AWS IoT accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Curve {
    /// secp256r1.
    P256,
    /// secp384r1.
    P384,
    /// secp521r1.
    P521,
}

/// The subject public key, as far as jitp's rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum KeyKind {
    /// An RSA key with a modulus of `bits` bits.
    Rsa {
        /// Modulus size.
        bits: usize,
    },
    /// An ECDSA key on `curve`.
    Ec {
        /// The named curve.
        curve: Curve,
    },
    /// Anything else (Ed25519, DSA, other curves): parsed so that the verdict can name it.
    Unsupported,
}

/// RSAPublicKey (RFC 8017 A.1.1).
#[derive(Sequence)]
pub(super) struct RsaPublicKey<'a> {
    pub(super) modulus: UintRef<'a>,
    pub(super) public_exponent: UintRef<'a>,
}

impl KeyKind {
    /// Classify a subject public key. A key whose own encoding is broken is MALFORMED_CERTIFICATE.
    pub fn of(spki: &SubjectPublicKeyInfoOwned) -> Result<Self, Rejection> {
        let oid = spki.algorithm.oid;
        if oid == RSA_ENCRYPTION {
            let bytes = spki.subject_public_key.as_bytes().unwrap_or_default();
            let key = RsaPublicKey::from_der(bytes)
                .map_err(|e| reject!(MalformedCertificate, "the RSA public key is not valid DER: {e}"))?;
            let modulus = key.modulus.as_bytes();
            let bits = match modulus.first() {
                Some(first) => modulus.len() * 8 - first.leading_zeros() as usize,
                None => 0,
            };
            return Ok(Self::Rsa { bits });
        }
        if oid == EC_PUBLIC_KEY {
            let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.decode_as::<Oid>().ok());
            return Ok(match curve {
                Some(c) if c == P256 => Self::Ec { curve: Curve::P256 },
                Some(c) if c == P384 => Self::Ec { curve: Curve::P384 },
                Some(c) if c == P521 => Self::Ec { curve: Curve::P521 },
                _ => Self::Unsupported,
            });
        }
        Ok(Self::Unsupported)
    }

    /// Is this key one AWS IoT accepts (size limits aside from the profile's minimum)?
    pub fn check_supported(&self, spki: &SubjectPublicKeyInfoOwned) -> Result<(), Rejection> {
        match self {
            Self::Rsa { bits } if *bits > MAX_RSA_BITS => {
                Err(reject!(UnsupportedAlgorithm, "the RSA key has {bits} bits; jitp accepts at most {MAX_RSA_BITS}"))
            }
            Self::Rsa { .. } | Self::Ec { .. } => Ok(()),
            Self::Unsupported => Err(reject!(
                UnsupportedAlgorithm,
                "the key algorithm {} is not supported (AWS IoT accepts RSA and ECDSA P-256/P-384/P-521)",
                key_algorithm_name(spki)
            )),
        }
    }
}

fn key_algorithm_name(spki: &SubjectPublicKeyInfoOwned) -> String {
    let name = match spki.algorithm.oid.to_string().as_str() {
        "1.3.101.112" => "Ed25519",
        "1.3.101.113" => "Ed448",
        "1.2.840.10040.4.1" => "DSA",
        "1.2.840.113549.1.1.10" => "RSASSA-PSS key",
        "1.2.840.10045.2.1" => {
            let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.decode_as::<Oid>().ok());
            return format!("ECDSA on curve {}", curve.map(|c| curve_name(&c)).unwrap_or_else(|| "(none)".into()));
        }
        _ => return spki.algorithm.oid.to_string(),
    };
    name.to_owned()
}

fn curve_name(oid: &Oid) -> String {
    match oid.to_string().as_str() {
        "1.3.132.0.10" => "secp256k1".into(),
        "1.3.36.3.3.2.8.1.1.7" => "brainpoolP256r1".into(),
        other => other.to_owned(),
    }
}

/// Signature algorithms by OID: `Some(name)` for those jitp accepts, `Err(name)` for known-bad ones.
pub(super) fn check_signature_algorithm(oid: &Oid) -> Result<(), Rejection> {
    let refused = match oid.to_string().as_str() {
        // sha256/384/512WithRSAEncryption, RSASSA-PSS, ecdsa-with-SHA256/384/512
        "1.2.840.113549.1.1.11"
        | "1.2.840.113549.1.1.12"
        | "1.2.840.113549.1.1.13"
        | "1.2.840.113549.1.1.10"
        | "1.2.840.10045.4.3.2"
        | "1.2.840.10045.4.3.3"
        | "1.2.840.10045.4.3.4" => return Ok(()),
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption (SHA-1)".to_owned(),
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption (MD5)".to_owned(),
        "1.2.840.113549.1.1.2" => "md2WithRSAEncryption (MD2)".to_owned(),
        "1.2.840.113549.1.1.14" => "sha224WithRSAEncryption (SHA-224)".to_owned(),
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1 (SHA-1)".to_owned(),
        "1.2.840.10045.4.3.1" => "ecdsa-with-SHA224 (SHA-224)".to_owned(),
        "1.2.840.10040.4.3" | "2.16.840.1.101.3.4.3.1" | "2.16.840.1.101.3.4.3.2" => "DSA".to_owned(),
        "1.3.101.112" => "Ed25519".to_owned(),
        "1.3.101.113" => "Ed448".to_owned(),
        other => other.to_owned(),
    };
    Err(reject!(
        UnsupportedAlgorithm,
        "the signature algorithm {refused} is not supported (jitp accepts RSA PKCS#1 v1.5/PSS and ECDSA with SHA-256/384/512)"
    ))
}

/// The verification algorithms handed to webpki: AWS IoT's set, without Ed25519 or post-quantum schemes.
pub(crate) static VERIFICATION_ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    algs::ECDSA_P256_SHA256,
    algs::ECDSA_P256_SHA384,
    algs::ECDSA_P256_SHA512,
    algs::ECDSA_P384_SHA256,
    algs::ECDSA_P384_SHA384,
    algs::ECDSA_P384_SHA512,
    algs::ECDSA_P521_SHA256,
    algs::ECDSA_P521_SHA384,
    algs::ECDSA_P521_SHA512,
    algs::RSA_PKCS1_2048_8192_SHA256,
    algs::RSA_PKCS1_2048_8192_SHA384,
    algs::RSA_PKCS1_2048_8192_SHA512,
    algs::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
    algs::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
    algs::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    algs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    algs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    algs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
];

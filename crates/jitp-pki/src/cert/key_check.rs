//! Is a supported public key a valid key? INVALID_PUBLIC_KEY otherwise.
//!
//! The rules, and why:
//! - RSA: the modulus is odd (it is a product of two odd primes); the public exponent is odd and
//!   65537 <= e < 2^33. 65537 is the floor of FIPS 186-5 5.4 and NIST SP 800-56B 6.2.1 (2^16 < e), and what
//!   every device stack generates (OpenSSL, mbedTLS, wolfSSL, TPM 2.0, AWS IoT's own CreateKeysAndCertificate);
//!   a tiny exponent is a sign of a home-made key. NIST's ceiling is 2^256, but AWS-LC, which verifies the
//!   signatures here, refuses exponents over 33 bits (a DoS bound), so a CA key above it could not verify
//!   anything and jitp applies the same ceiling to devices. The modulus size is checked elsewhere
//!   (UNSUPPORTED_ALGORITHM above 8192 bits, WEAK_KEY below the profile's minimum).
//! - EC (P-256/P-384/P-521): the point is uncompressed (`04 || X || Y`, the one form RFC 5480 2.2 requires
//!   every implementation to support; AWS IoT's documentation lists no other), exactly as long as its curve
//!   requires (65, 97 or 133 bytes: a point of another curve under this curve's OID is caught here), not the
//!   point at infinity, with coordinates below the field prime and on the curve. The last two are AWS-LC's
//!   `EC_POINT_oct2point` + `EC_KEY_check_key`, reached through `aws_lc_rs::signature::ParsedPublicKey`.
//!
//! Then, for a valid RSA key, [`check_not_weak`]: is its modulus one whose private key can be computed from it
//! (ROCA, a small factor, factors close together: [`super::weak_rsa`])? WEAK_KEY otherwise.

use aws_lc_rs::signature::{self as lc, ParsedPublicKey};
use der::Decode;
use spki::SubjectPublicKeyInfoOwned;

use super::algorithm::{Curve, KeyKind, RsaPublicKey};
use super::weak_rsa::RsaWeakness;
use crate::reason::{Rejection, reject};

/// The smallest RSA public exponent jitp accepts (FIPS 186-5 5.4: 2^16 < e).
pub const MIN_RSA_EXPONENT: u64 = 65_537;
/// RSA public exponents have at most this many bits (AWS-LC's bound for verification).
pub const MAX_RSA_EXPONENT_BITS: usize = 33;

/// Check that `spki`, already classified as `kind`, holds a valid key.
pub(crate) fn check_valid(kind: &KeyKind, spki: &SubjectPublicKeyInfoOwned) -> Result<(), Rejection> {
    let Some(bytes) = spki.subject_public_key.as_bytes() else {
        return Err(reject!(
            InvalidPublicKey,
            "the subjectPublicKey BIT STRING has {} unused bits; a key is a whole number of bytes",
            spki.subject_public_key.unused_bits()
        ));
    };
    match kind {
        KeyKind::Rsa { .. } => check_rsa(bytes),
        KeyKind::Ec { curve } => check_ec(*curve, bytes),
        KeyKind::Unsupported => Ok(()),
    }
}

fn check_rsa(bytes: &[u8]) -> Result<(), Rejection> {
    // KeyKind::of already decoded this; a failure here would be MALFORMED there.
    let key = RsaPublicKey::from_der(bytes)
        .map_err(|e| reject!(MalformedCertificate, "the RSA public key is not valid DER: {e}"))?;
    let modulus = key.modulus.as_bytes();
    if modulus.last().is_none_or(|b| b % 2 == 0) {
        return Err(reject!(
            InvalidPublicKey,
            "the RSA modulus is even (it ends in {}); a modulus is a product of two odd primes",
            modulus.last().map(|b| format!("0x{b:02x}")).unwrap_or_else(|| "nothing".into())
        ));
    }
    let exponent = key.public_exponent.as_bytes();
    let bits = match exponent.iter().position(|b| *b != 0) {
        Some(i) => (exponent.len() - i) * 8 - exponent[i].leading_zeros() as usize,
        None => 0,
    };
    let shown = if bits <= 64 {
        exponent.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b)).to_string()
    } else {
        format!("a {bits}-bit number")
    };
    if exponent.last().is_none_or(|b| b % 2 == 0) {
        return Err(reject!(
            InvalidPublicKey,
            "the RSA public exponent is {shown}, which is even; an exponent must be odd (FIPS 186-5 5.4)"
        ));
    }
    if bits > MAX_RSA_EXPONENT_BITS {
        return Err(reject!(
            InvalidPublicKey,
            "the RSA public exponent is {shown} ({bits} bits); jitp accepts at most {MAX_RSA_EXPONENT_BITS} bits, \
             the bound of the signature verifier (AWS-LC)"
        ));
    }
    let value = exponent.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b));
    if value < MIN_RSA_EXPONENT {
        return Err(reject!(
            InvalidPublicKey,
            "the RSA public exponent is {value}; jitp requires at least {MIN_RSA_EXPONENT} (FIPS 186-5 5.4)"
        ));
    }
    Ok(())
}

/// The known weakness of an RSA key ([`super::weak_rsa`]); `None` for a key without one and for other keys.
pub(crate) fn rsa_weakness(kind: &KeyKind, spki: &SubjectPublicKeyInfoOwned) -> Option<RsaWeakness> {
    let KeyKind::Rsa { .. } = kind else { return None };
    let key = RsaPublicKey::from_der(spki.subject_public_key.as_bytes()?).ok()?; // else MALFORMED in KeyKind::of
    super::weak_rsa::rsa_weakness(key.modulus.as_bytes())
}

/// Refuse an RSA key with a known weakness as WEAK_KEY; other keys pass.
pub(crate) fn check_not_weak(kind: &KeyKind, spki: &SubjectPublicKeyInfoOwned) -> Result<(), Rejection> {
    match rsa_weakness(kind, spki) {
        Some(weakness) => Err(reject!(WeakKey, "the RSA public key is weak: {weakness}")),
        None => Ok(()),
    }
}

fn curve_name(curve: Curve) -> &'static str {
    match curve {
        Curve::P256 => "P-256",
        Curve::P384 => "P-384",
        Curve::P521 => "P-521",
    }
}

/// The field size in bytes: an uncompressed point is `04 || X || Y`, twice this plus one.
fn field_bytes(curve: Curve) -> usize {
    match curve {
        Curve::P256 => 32,
        Curve::P384 => 48,
        Curve::P521 => 66,
    }
}

fn check_ec(curve: Curve, point: &[u8]) -> Result<(), Rejection> {
    let name = curve_name(curve);
    let expected = 1 + 2 * field_bytes(curve);
    match point {
        [] => return Err(reject!(InvalidPublicKey, "the {name} public key is empty")),
        [0x00] => {
            return Err(reject!(
                InvalidPublicKey,
                "the {name} public key is the point at infinity (the single byte 00)"
            ));
        }
        [0x02 | 0x03, ..] => {
            return Err(reject!(
                InvalidPublicKey,
                "the {name} public key is a compressed point ({} bytes starting {:02x}); jitp accepts only \
                 uncompressed points (04 || X || Y, {expected} bytes)",
                point.len(),
                point[0]
            ));
        }
        [0x04, ..] if point.len() == expected => {}
        [0x04, ..] => {
            let other = [Curve::P256, Curve::P384, Curve::P521]
                .into_iter()
                .find(|c| 1 + 2 * field_bytes(*c) == point.len())
                .map(|c| format!(", the length of a {} point", curve_name(c)))
                .unwrap_or_default();
            return Err(reject!(
                InvalidPublicKey,
                "the {name} public key is {} bytes{other}; an uncompressed {name} point is {expected} bytes",
                point.len()
            ));
        }
        [first, ..] => {
            return Err(reject!(
                InvalidPublicKey,
                "the {name} public key starts with {first:02x}; jitp accepts only uncompressed points (04 || X || Y)"
            ));
        }
    }
    let algorithm = match curve {
        Curve::P256 => &lc::ECDSA_P256_SHA256_ASN1,
        Curve::P384 => &lc::ECDSA_P384_SHA384_ASN1,
        Curve::P521 => &lc::ECDSA_P521_SHA512_ASN1,
    };
    ParsedPublicKey::new(algorithm, point).map(|_| ()).map_err(|_| {
        reject!(
            InvalidPublicKey,
            "the {name} public key is not a point on {name} (a coordinate is not below the field prime, or the \
             point does not satisfy the curve equation)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reason::ReasonCode;

    fn rsa(modulus: &[u8], exponent: &[u8]) -> Result<(), Rejection> {
        fn int(bytes: &[u8]) -> Vec<u8> {
            let mut v = bytes.to_vec();
            if v.first().is_some_and(|b| b & 0x80 != 0) {
                v.insert(0, 0);
            }
            let mut out = vec![0x02, u8::try_from(v.len()).unwrap_or(0)];
            out.extend(v);
            out
        }
        let mut body = int(modulus);
        body.extend(int(exponent));
        let mut der = vec![0x30, u8::try_from(body.len()).unwrap_or(0)];
        der.extend(body);
        check_rsa(&der)
    }

    #[test]
    fn rsa_rules() {
        let odd = [0xC1u8, 0x23, 0x45, 0x67];
        let even = [0xC1u8, 0x23, 0x45, 0x66];
        assert!(rsa(&odd, &[0x01, 0x00, 0x01]).is_ok());
        assert!(rsa(&odd, &[0x01, 0x00, 0x00, 0x01]).is_ok()); // 2^24 + 1
        assert!(rsa(&odd, &[0x01, 0xFF, 0xFF, 0xFF, 0xFF]).is_ok()); // 2^33 - 1
        for (modulus, exponent) in [
            (&even[..], &[0x01, 0x00, 0x01][..]),
            (&odd, &[0x03]),
            (&odd, &[0x01]),
            (&odd, &[0x01, 0x00, 0x00]),
            (&odd, &[0x00]),
            (&odd, &[0xFF, 0xFF]),
            (&odd, &[0x02, 0x00, 0x00, 0x00, 0x01]), // 2^33 + 1
        ] {
            let r = rsa(modulus, exponent);
            assert_eq!(r.err().map(|e| e.reason), Some(ReasonCode::InvalidPublicKey), "{modulus:x?} {exponent:x?}");
        }
    }

    #[test]
    fn ec_shapes() {
        let code = |curve, point: &[u8]| check_ec(curve, point).err().map(|e| e.reason);
        let bad = Some(ReasonCode::InvalidPublicKey);
        assert_eq!(code(Curve::P256, &[]), bad);
        assert_eq!(code(Curve::P256, &[0x00]), bad);
        assert_eq!(code(Curve::P256, &[0x02; 33]), bad);
        assert_eq!(code(Curve::P256, &[0x04; 97]), bad);
        assert_eq!(code(Curve::P256, &[0x05; 65]), bad);
        assert_eq!(code(Curve::P256, &[0x04; 65]), bad); // (0x0404.., 0x0404..) is not on the curve
    }
}

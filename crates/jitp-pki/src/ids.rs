//! AWS IoT identifiers as newtypes: a value of these types is always well formed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An identifier did not have the required form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} must be {rule}; got {shown}")]
pub struct InvalidId {
    kind: &'static str,
    rule: &'static str,
    shown: String,
}

impl InvalidId {
    /// `value` is not a `kind`: it must be `rule`.
    pub fn new(kind: &'static str, rule: &'static str, value: &str) -> Self {
        Self { kind, rule, shown: shown(value) }
    }
}

/// Quote a value for an error message, bounded so a 10 MB input does not become a 10 MB message.
pub fn shown(value: &str) -> String {
    const MAX: usize = 80;
    let mut out: String = value.chars().take(MAX).collect();
    if value.chars().nth(MAX).is_some() {
        out.push('…');
    }
    format!("{out:?}")
}

fn is_sha256_hex(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

macro_rules! sha256_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The id of a DER certificate as AWS IoT computes it: SHA-256 of the DER, lowercase hex.
            pub fn of_der(der: &[u8]) -> Self {
                use sha2::Digest as _;
                Self(hex::encode(sha2::Sha256::digest(der)))
            }

            /// The id from an already computed SHA-256 of the DER.
            pub fn from_fingerprint(sha256: [u8; 32]) -> Self {
                Self(hex::encode(sha256))
            }

            /// The 64 lowercase hex digits.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(value: String) -> Result<Self, InvalidId> {
                if is_sha256_hex(&value) {
                    Ok(Self(value))
                } else {
                    Err(InvalidId::new($kind, "64 lowercase hex digits", &value))
                }
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(value: &str) -> Result<Self, InvalidId> {
                Self::try_from(value.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

sha256_id!(
    /// A device certificate's id in AWS IoT (64 lowercase hex).
    CertificateId,
    "a certificate id"
);
sha256_id!(
    /// A CA certificate's id in AWS IoT (64 lowercase hex).
    CaCertificateId,
    "a CA certificate id"
);

impl CertificateId {
    /// The id in a certificate ARN (`arn:aws:iot:REGION:ACCOUNT:cert/ID`), if it is one.
    pub fn from_arn(arn: &str) -> Option<Self> {
        arn.strip_prefix("arn:")?.rsplit_once(":cert/")?.1.parse().ok()
    }
}

/// A string newtype that can only hold values accepted by `$valid`: `TryFrom<String>`, `FromStr`, serde
/// (`try_from`), `Display`, `as_str`, and `Into<String>`.
#[macro_export]
macro_rules! validated_string {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $rule:literal, $valid:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The value.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::ids::InvalidId;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                let valid: fn(&str) -> bool = $valid;
                if valid(&value) { Ok(Self(value)) } else { Err($crate::ids::InvalidId::new($kind, $rule, &value)) }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::ids::InvalidId;
            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Self::try_from(value.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}
pub use crate::validated_string;

validated_string!(
    /// An AWS IoT policy name: 1..=128 of `[A-Za-z0-9_+=,.@-]`.
    PolicyName,
    "a policy name",
    "1 to 128 of [A-Za-z0-9_+=,.@-]",
    |v| (1..=128).contains(&v.len())
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'=' | b',' | b'.' | b'@' | b'-'))
);

/// An S3 object named by an `s3://bucket/key` URI, as a profile's `crl = [...]` may list it. Only a valid
/// general purpose bucket name and a plain key exist: the value goes into an IAM resource ARN
/// (`arn:aws:s3:::bucket/key`, granted by infra/), so nothing in it may widen that grant (`*`, `?`, `${`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct S3Object {
    bucket: String,
    key: String,
}

/// The longest key S3 accepts, in UTF-8 bytes.
pub const MAX_S3_KEY_BYTES: usize = 1024;

impl S3Object {
    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Parse `s3://bucket/key`. The error is one sentence naming the rule broken (the caller names the key
    /// and the value).
    ///
    /// Bucket: the general purpose bucket naming rules (3 to 63 of `[a-z0-9.-]`, a letter or digit at each
    /// end, no `..`, not an IP address, none of S3's reserved prefixes and suffixes). Key: 1 to 1024 bytes of
    /// `[A-Za-z0-9!_.'()/=+@:-]` (S3's safe characters without `*`, plus a few unambiguous ones; no comma), no empty,
    /// `.` or `..` segment, not ending in `/`. No query string, fragment or percent-encoding: the URI is the
    /// object, as `aws s3 cp` writes it.
    pub fn parse(uri: &str) -> Result<Self, String> {
        let rest = match uri.strip_prefix("s3://") {
            Some(rest) => rest,
            None if uri.len() >= 5 && uri.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("s3://")) => {
                return Err("the scheme must be written s3:// in lowercase".to_owned());
            }
            None => return Err("an S3 URI is s3://bucket/key".to_owned()),
        };
        if let Some(c) = rest.chars().find(|c| matches!(c, '?' | '#' | '%')) {
            return Err(format!(
                "{c:?} is not allowed: an s3:// URI names the object as it is (no query string, fragment or percent-encoding)"
            ));
        }
        let (bucket, key) = rest.split_once('/').ok_or("no key: an S3 URI is s3://bucket/key")?;
        check_bucket(bucket)?;
        check_key(key)?;
        Ok(Self { bucket: bucket.to_owned(), key: key.to_owned() })
    }
}

fn check_bucket(bucket: &str) -> Result<(), String> {
    const RULE: &str = "3 to 63 of [a-z0-9.-], starting and ending with a letter or digit";
    let ends_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if bucket.is_empty() {
        return Err("the bucket name is empty".to_owned());
    }
    if !(3..=63).contains(&bucket.len())
        || !bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        || !ends_ok(bucket.as_bytes().first())
        || !ends_ok(bucket.as_bytes().last())
    {
        return Err(format!("the bucket name {} is not valid ({RULE})", shown(bucket)));
    }
    if bucket.contains("..") {
        return Err(format!("the bucket name {} has two adjacent periods", shown(bucket)));
    }
    if bucket.split('.').count() == 4
        && bucket.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("the bucket name {} is formatted as an IP address", shown(bucket)));
    }
    const PREFIXES: [&str; 3] = ["xn--", "sthree-", "amzn-s3-demo-"];
    const SUFFIXES: [&str; 5] = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];
    if let Some(p) = PREFIXES.iter().find(|p| bucket.starts_with(**p)) {
        return Err(format!("the bucket name {} starts with {p:?}, which S3 reserves", shown(bucket)));
    }
    if let Some(s) = SUFFIXES.iter().find(|s| bucket.ends_with(**s)) {
        return Err(format!("the bucket name {} ends with {s:?}, which S3 reserves", shown(bucket)));
    }
    Ok(())
}

fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("no key: an S3 URI is s3://bucket/key".to_owned());
    }
    if key.len() > MAX_S3_KEY_BYTES {
        return Err(format!("the key is {} bytes, over S3's {MAX_S3_KEY_BYTES}", key.len()));
    }
    // No comma either: the deployments list the same URIs comma-separated (infra's CrlObjects), so a key with
    // one could be linted here and never be granted there.
    if let Some(c) = key.chars().find(|c| !(c.is_ascii_alphanumeric() || "!_.'()/=+@:-".contains(*c))) {
        return Err(format!(
            "the key has {c:?}; a CRL's key is [A-Za-z0-9!_.'()/=+@:-] (no wildcard for the IAM grant, no comma for \
             infra's CrlObjects list)"
        ));
    }
    if key.ends_with('/') {
        return Err("the key ends with \"/\": that names a folder, not a CRL object".to_owned());
    }
    if let Some(segment) = key.split('/').find(|s| s.is_empty() || *s == "." || *s == "..") {
        return Err(format!(
            "the key has an empty, \".\" or \"..\" segment ({:?}): write the object's key exactly",
            segment
        ));
    }
    Ok(())
}

impl fmt::Display for S3Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

impl FromStr for S3Object {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn certificate_id_accepts_only_lowercase_sha256_hex() {
        let good = "a".repeat(64);
        assert!(CertificateId::from_str(&good).is_ok());
        assert!(CertificateId::from_str(&"A".repeat(64)).is_err());
        assert!(CertificateId::from_str(&"a".repeat(63)).is_err());
        assert!(CertificateId::from_str(&"g".repeat(64)).is_err());
        assert!(CaCertificateId::from_str("").is_err());
    }

    #[test]
    fn id_of_der_is_sha256_hex() {
        let id = CertificateId::of_der(b"abc");
        assert_eq!(id.as_str(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        use sha2::Digest as _;
        assert_eq!(CertificateId::from_fingerprint(sha2::Sha256::digest(b"abc").into()), id);
    }

    #[test]
    fn certificate_id_from_arn() {
        let id = "a".repeat(64);
        let arn = format!("arn:aws:iot:us-east-1:123456789012:cert/{id}");
        assert_eq!(CertificateId::from_arn(&arn).map(|i| i.to_string()), Some(id.clone()));
        assert_eq!(CertificateId::from_arn(&format!("arn:aws:iot:us-east-1:1:thing/{id}")), None);
        assert_eq!(CertificateId::from_arn(&id), None);
    }

    #[test]
    fn policy_name_rules() {
        assert!(PolicyName::from_str("jitp-sensor-1").is_ok());
        assert!(PolicyName::from_str("").is_err());
        assert!(PolicyName::from_str("a/b").is_err());
        assert!(PolicyName::from_str(&"p".repeat(129)).is_err());
    }

    #[test]
    fn error_message_is_bounded() {
        let err = CertificateId::from_str(&"x".repeat(10_000)).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.len() < 300, "{err}");
    }

    proptest! {
        #[test]
        fn certificate_id_parse_agrees_with_rule(s in "\\PC*|[0-9a-f]{64}") {
            let ok = CertificateId::from_str(&s).is_ok();
            prop_assert_eq!(ok, s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            if let Ok(id) = CertificateId::from_str(&s) { prop_assert_eq!(id.as_str(), s.as_str()); }
        }
    }
}

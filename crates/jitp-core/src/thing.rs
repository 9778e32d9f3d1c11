//! Thing names and thing attributes: only values AWS IoT accepts, and that are safe to bind to a policy, can exist.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::InvalidId;

/// An AWS IoT thing name, restricted to 1..=128 of `[A-Za-z0-9:_-]`.
///
/// That set is narrower than what AWS accepts for thing names: it keeps out every character that could
/// widen a policy (`*`, `?`, `+`, `#`, `/`, `$`, quotes), so a thing name may be placed in a topic or a
/// client ARN as it is. The MQTT client id must equal it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ThingName(String);

impl ThingName {
    /// The longest thing name AWS IoT accepts.
    pub const MAX_LEN: usize = 128;

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_thing_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-')
}

impl TryFrom<String> for ThingName {
    type Error = InvalidId;
    fn try_from(value: String) -> Result<Self, InvalidId> {
        if (1..=Self::MAX_LEN).contains(&value.len()) && value.bytes().all(is_thing_name_byte) {
            Ok(Self(value))
        } else {
            Err(InvalidId::new("a thing name", "1 to 128 characters of [A-Za-z0-9:_-]", &value))
        }
    }
}

impl FromStr for ThingName {
    type Err = InvalidId;
    fn from_str(value: &str) -> Result<Self, InvalidId> {
        Self::try_from(value.to_owned())
    }
}

impl From<ThingName> for String {
    fn from(name: ThingName) -> String {
        name.0
    }
}

impl fmt::Display for ThingName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ThingName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ThingName({})", self.0)
    }
}

/// A thing attribute name: AWS's `[a-zA-Z0-9_.,@/:#-]+`, at most 128 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AttributeName(String);

/// A thing attribute value: AWS's `[a-zA-Z0-9_.,@/:#=\[\]-]*`, at most 800 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AttributeValue(String);

impl AttributeName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AttributeValue {
    /// The value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AttributeName {
    type Error = InvalidId;
    fn try_from(value: String) -> Result<Self, InvalidId> {
        let ok = (1..=128).contains(&value.len())
            && value.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b',' | b'@' | b'/' | b':' | b'#' | b'-')
            });
        if ok {
            Ok(Self(value))
        } else {
            Err(InvalidId::new("an attribute name", "1 to 128 of [A-Za-z0-9_.,@/:#-]", &value))
        }
    }
}

impl TryFrom<String> for AttributeValue {
    type Error = InvalidId;
    fn try_from(value: String) -> Result<Self, InvalidId> {
        let ok = value.len() <= 800
            && value.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(b, b'_' | b'.' | b',' | b'@' | b'/' | b':' | b'#' | b'=' | b'[' | b']' | b'-')
            });
        if ok {
            Ok(Self(value))
        } else {
            Err(InvalidId::new("an attribute value", "at most 800 of [A-Za-z0-9_.,@/:#=[]-]", &value))
        }
    }
}

impl From<AttributeName> for String {
    fn from(v: AttributeName) -> String {
        v.0
    }
}

impl From<AttributeValue> for String {
    fn from(v: AttributeValue) -> String {
        v.0
    }
}

impl fmt::Display for AttributeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for AttributeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn thing_name_rules() {
        assert!(ThingName::from_str("sensor-0a1b2c3d4e5f").is_ok());
        assert!(ThingName::from_str("a:b_c-D9").is_ok());
        assert!(ThingName::from_str(&"x".repeat(128)).is_ok());
        for bad in ["", "a b", "a/b", "a*", "a+", "a#", "a?", "${iot:ClientId}", "a\"", "é", "a\n"] {
            assert!(ThingName::from_str(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(ThingName::from_str(&"x".repeat(129)).is_err());
    }

    #[test]
    fn attribute_rules() {
        assert!(AttributeName::try_from("batch".to_owned()).is_ok());
        assert!(AttributeValue::try_from(String::new()).is_ok());
        assert!(AttributeValue::try_from("line-3/2026".to_owned()).is_ok());
        assert!(AttributeValue::try_from("a b".to_owned()).is_err());
        assert!(AttributeValue::try_from("a\"".to_owned()).is_err());
        assert!(AttributeName::try_from(String::new()).is_err());
    }

    proptest! {
        #[test]
        fn thing_name_accepts_exactly_the_rule(s in "\\PC{0,140}|[A-Za-z0-9:_-]{1,130}") {
            let expected = (1..=128).contains(&s.len()) && s.bytes().all(is_thing_name_byte);
            let parsed = ThingName::from_str(&s);
            prop_assert_eq!(parsed.is_ok(), expected);
            if let Ok(name) = parsed { prop_assert_eq!(name.as_str(), s.as_str()); }
        }
    }
}

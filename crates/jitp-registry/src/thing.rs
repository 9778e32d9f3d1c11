//! Thing names and thing attributes: only values AWS IoT accepts, and that are safe to bind to a policy, can exist.

use jitp_pki::ids::validated_string;

validated_string!(
    /// An AWS IoT thing name, restricted to 1..=128 of `[A-Za-z0-9:_-]`.
    ///
    /// That set is narrower than what AWS accepts for thing names: it keeps out every character that could
    /// widen a policy (`*`, `?`, `+`, `#`, `/`, `$`, quotes), so a thing name may be placed in a topic or a
    /// client ARN as it is. The MQTT client id must equal it.
    ThingName,
    "a thing name",
    "1 to 128 characters of [A-Za-z0-9:_-]",
    |v| (1..=ThingName::MAX_LEN).contains(&v.len()) && v.bytes().all(is_thing_name_byte)
);

impl ThingName {
    /// The longest thing name AWS IoT accepts.
    pub const MAX_LEN: usize = 128;
}

/// The thing attribute that records which certificate owns the thing (see `jitp_core::provision`). A profile may
/// not set it, and it counts against AWS IoT's attribute limit.
pub const CERTIFICATE_ATTRIBUTE: &str = "jitp_certificate";

fn is_thing_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-')
}

validated_string!(
    /// A thing attribute name: AWS's `[a-zA-Z0-9_.,@/:#-]+`, at most 128 characters.
    AttributeName,
    "an attribute name",
    "1 to 128 of [A-Za-z0-9_.,@/:#-]",
    |v| (1..=128).contains(&v.len())
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b',' | b'@' | b'/' | b':' | b'#' | b'-'))
);

validated_string!(
    /// A thing attribute value: AWS's `[a-zA-Z0-9_.,@/:#=\[\]-]*`, at most 800 characters.
    AttributeValue,
    "an attribute value",
    "at most 800 of [A-Za-z0-9_.,@/:#=[]-]",
    |v| v.len() <= 800
        && v.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b',' | b'@' | b'/' | b':' | b'#' | b'=' | b'[' | b']' | b'-')
        })
);

#[cfg(test)]
mod tests {
    use std::str::FromStr;

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

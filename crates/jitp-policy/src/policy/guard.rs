//! The guard on printed values: no value a template prints into a policy may carry a character that could
//! widen it ([`FORBIDDEN`], or a control character).
//!
//! Device values are checked once, when their [`super::DeviceContext`] is built ([`forbidden_reason`]); the
//! renderer's escape function ([`escape`]) applies the same check to everything a policy template prints,
//! computed values included, and fails the render with a [`Refused`] error, which the renderer recognises by
//! its type ([`refused`]).

use std::io::{self, Write};

/// The characters no printed template value may contain, with why.
pub const FORBIDDEN: &[(&str, &str)] = &[
    ("\"", "a quote ends the JSON string"),
    ("\\", "a backslash starts a JSON escape"),
    ("*", "a policy wildcard"),
    ("?", "a policy wildcard"),
    ("+", "an MQTT wildcard"),
    ("#", "an MQTT wildcard"),
    ("/", "a topic level separator"),
    ("$", "the start of a policy variable"),
];

/// Why `value` may not be printed into a policy, if it may not.
pub fn forbidden_reason(value: &str) -> Option<String> {
    for (s, why) in FORBIDDEN {
        if value.contains(s) {
            return Some(format!("contains {s:?} ({why})"));
        }
    }
    value.chars().find(|c| c.is_control()).map(|c| format!("contains the control character {:?}", c))
}

/// The escape function's refusal: the error a render fails with when a printed value is forbidden.
#[derive(Debug)]
pub(super) struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a printed value carries a character a policy may not hold")
    }
}

impl std::error::Error for Refused {}

/// The policy templates' escape function: prints `value` as it is, or refuses it.
pub(super) fn escape(value: &str, out: &mut dyn Write) -> io::Result<()> {
    if forbidden_reason(value).is_some() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, Refused));
    }
    out.write_all(value.as_bytes())
}

/// Did the render fail because [`escape`] refused a value? Tera carries the escape function's I/O error as a
/// source of its own; the error is recognised by its type, not by its text.
pub(super) fn refused(error: &tera::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = next {
        if e.downcast_ref::<io::Error>().and_then(io::Error::get_ref).is_some_and(|inner| inner.is::<Refused>()) {
            return true;
        }
        next = e.source();
    }
    false
}

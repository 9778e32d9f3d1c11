//! The crate's one error type: a policy document, a request or a context that cannot be evaluated.
//!
//! An error is never a decision: a document AWS IoT would refuse to store, or a request AWS IoT would refuse before
//! authorizing it (a publish to a topic with `+`, a client id longer than AWS's limit), is reported as such, with
//! the field, the value and the rule it breaks.

/// Why a policy, request or context cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The document is not JSON (or has a duplicate key, which JSON parsers resolve differently).
    #[error("the policy is not valid JSON: {0}")]
    NotJson(String),
    /// The document is JSON but not a policy document this evaluator reads.
    #[error("the policy's {field} {value}: {reason}")]
    Document {
        /// Where in the document (`Statement[2].Effect`).
        field: String,
        /// The value found (quoted, shortened).
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An action name that is not one of AWS IoT's data-plane actions.
    #[error("unknown action {0:?}: expected one of {actions}", actions = crate::Action::NAMES.join(", "))]
    UnknownAction(String),
    /// A request's resource, or a context value, that AWS IoT would refuse before authorizing anything.
    #[error("{field} {value:?}: {reason}")]
    Request {
        /// The request's or context's field (`resource`, `client id`, `thing name`...).
        field: &'static str,
        /// The value given (shortened).
        value: String,
        /// The rule it breaks, with the limit.
        reason: String,
    },
}

/// A value shortened for a message: a hostile input must not make the message itself huge.
pub(crate) fn shorten(value: &str) -> String {
    const MAX: usize = 120;
    if value.chars().count() <= MAX {
        value.to_owned()
    } else {
        let head: String = value.chars().take(MAX).collect();
        format!("{head}… ({} characters)", value.chars().count())
    }
}

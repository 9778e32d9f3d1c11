//! The library's one error type: what went wrong that is not a verdict on a certificate.
//!
//! A certificate that fails a rule is not an error but a [`crate::reason::Rejection`]; these are faults of
//! configuration, of the registry, or of the machine.

use std::path::PathBuf;

/// Errors from loading configuration and templates, and from the provisioning workflow.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration or a file it names is wrong; `line` is 1-based where known.
    #[error("{}{}: {key}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Config {
        /// The file at fault.
        file: PathBuf,
        /// Its line, when known.
        line: Option<usize>,
        /// The key (e.g. `profiles[1].common_name`).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The registry failed in a way a retry may fix (throttled, unavailable, timed out).
    #[error("transient registry failure in {operation}: {message}")]
    Transient {
        /// The API call.
        operation: &'static str,
        /// What the registry said.
        message: String,
    },
    /// The registry answered in a way jitp cannot work with (a bug or a permissions problem).
    #[error("registry call {operation} failed: {message}")]
    Registry {
        /// The API call.
        operation: &'static str,
        /// What the registry said.
        message: String,
    },
}

impl Error {
    /// A configuration error.
    pub fn config(
        file: impl Into<PathBuf>,
        line: Option<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Config { file: file.into(), line, key: key.into(), message: message.into() }
    }

    /// Should the platform retry the event that hit this error?
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }
}

//! jitp-demo: what `jitp demo` needs and the shipped `jitp` binary may carry, held to the workspace's lints.
//!
//! [`pki`]: a demo CA and device certificates generated in code (rcgen) at a fixed clock, good ones and the
//! deliberately bad ones the demo mixes in (expired, another CA, a hostile CN, a duplicate, a short RSA key, a
//! CA flag); [`progress`]: the progress bar with the ETA the pacing implies (the burst bench shows it too).
//! The test kit (jitp-testkit) builds its richer fixtures on [`pki`]'s key helpers; it is never linked into
//! what ships.

pub mod pki;
pub mod progress;

/// Something the demo could not generate (rcgen refused a certificate or a key).
#[derive(Debug, thiserror::Error)]
#[error("the demo could not generate {what}: {source}")]
pub struct Error {
    what: String,
    #[source]
    source: rcgen::Error,
}

impl Error {
    fn new(what: impl Into<String>, source: rcgen::Error) -> Self {
        Self { what: what.into(), source }
    }
}

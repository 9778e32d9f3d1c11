//! jitp-pki: what a certificate is, before any configuration.
//!
//! AWS IoT identifiers as newtypes ([`ids`]), the stable reason codes every rejection carries ([`reason`]),
//! time as an argument ([`unix_time`]), and X.509 itself ([`cert`]): parse at the edge (x509-cert), verify
//! against a CA (rustls-webpki), CRLs and their scopes, key checks. No configuration, no registry, no I/O: the
//! connect guard, the decision and `jitp check` all stand on it.

pub mod cert;
pub mod ids;
pub mod reason;
pub mod report;
pub mod unix_time;

pub use reason::{ReasonCode, Rejection};

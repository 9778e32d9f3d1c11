//! jitp-profile: jitp.toml's CA profiles, and what a device certificate must be to match one.
//!
//! [`profile::Config`] is the configuration as plain validated data (no templates); [`judge`] is the
//! certificate half of the decision (the CA, the chain, the subject rules, the CRLs, the deny list, the
//! profile's limits), which the provisioning decision builds on and the connect guard runs alone.
//! [`error::ConfigError`] is the crate's one error: a configuration or a file it names is wrong.

pub mod error;
pub mod judge;
pub mod profile;

pub use error::ConfigError;

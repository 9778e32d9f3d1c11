//! jitp-wiring: what the binaries share (the Lambda function, the drift report, `jitp serve`, `jitp provision`,
//! and the connect guard), so that each one's `main` only parses and dispatches.
//!
//! Features: `workflow` (on by default, off in the workspace's dependency entry) brings jitp-core and jitp-policy:
//! the rules with their compiled templates, the policy context ([`aws::resolve`]) and the engine's settings
//! (`Settings::workflow`). The connect guard goes without it: it loads jitp.toml as jitp-profile's `Config` through
//! the same [`crl::Loadable`] load and refresh. `aws` brings the AWS SDK (jitp-aws) for the registry and S3 CRLs;
//! `lambda` the one `main` of every Lambda binary (`lambda::run` over the `lambda::Function` trait).
//!
//! - [`Settings`]: one settings type (clap `Args`), every knob a flag with its `JITP_*` variable, flattened into
//!   each binary's own arguments. [`ConfigArgs`] (jitp.toml and its deployment overrides) and [`AwsArgs`] (the
//!   policy context's account, region and partition, with one validation) are flattened into `jitp check`,
//!   `jitp render` and `jitp lint` too.
//! - [`registry::open`]: `aws`, `memory` or `memory:PATH` as an [`jitp_registry::registry::IotRegistry`], from explicit
//!   values. `aws` needs this crate's `aws` feature (the AWS SDK); without it only the embedded registry opens.
//! - [`aws::resolve`]: the template context's `aws.*` from the settings, the Lambda function's own ARN and the
//!   SDK's region.
//! - [`crl`]: the S3 CRLs a jitp.toml lists, fetched at start-up and refreshed on a TTL.
//! - [`log::init_tracing`]: the one tracing setup (JSON lines).
//! - [`parse`]: clap's errors turned into [`Error::Setting`], which names the variable, the flag, the value and
//!   what is allowed; and a parser that reads given variables instead of the process environment (tests).
//!
//! The clock is jitp-core's ([`jitp_pki::unix_time::system_clock`]). No function here reads the process
//! environment: the binaries do (through clap's `env`, or `std::env`) and pass the values in.

pub mod aws;
pub mod crl;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod log;
pub mod parse;
pub mod registry;
mod settings;

use std::path::PathBuf;

pub use aws::AwsArgs;
pub use registry::{Opened, RegistryArg};
pub use settings::{ConfigArgs, EndpointArgs, MAX_RETRY_DEADLINE, Settings, count_in, default_config_path, switch};

/// Why a binary cannot start: its settings, its jitp.toml or its registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is set to a value that cannot be used.
    #[error("{}{flag} = {value:?}: expected {expected}", var.as_ref().map(|v| format!("{v} / ")).unwrap_or_default())]
    Setting {
        /// Its environment variable, if it has one.
        var: Option<String>,
        /// Its flag (`--policy-mode`).
        flag: String,
        /// The value given.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// The command line is wrong in another way (an unknown flag, a missing value); clap's own message.
    #[error("{0}")]
    Usage(String),
    /// jitp.toml, a template or a file it names is wrong.
    #[error("configuration {}", config_message(path, source))]
    Config {
        /// The jitp.toml.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: jitp_profile::ConfigError,
    },
    /// An S3 CRL jitp.toml lists cannot be fetched at start-up.
    #[error("CRL {object}: {message}")]
    Crl {
        /// The `s3://` URI(s).
        object: String,
        /// Why.
        message: String,
    },
    /// The embedded registry's file cannot be read or written.
    #[error("memory registry {}: {source}", path.display())]
    MemoryRegistry {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: jitp_registry::registry::RegistryError,
    },
    /// `aws` was asked of a build without the AWS SDK.
    #[error(
        "JITP_REGISTRY / --registry = \"aws\": this build has no AWS SDK (built without the `aws` feature); use memory or memory:PATH, or build with default features"
    )]
    NoAws,
}

/// `path: what` for a configuration error, or just `what` when it already names the path (a mistake in
/// jitp.toml itself names its file, line and key; a file that cannot be read names itself), so the path is
/// said once.
fn config_message(path: &std::path::Path, source: &jitp_profile::ConfigError) -> String {
    let (path, what) = (path.display().to_string(), source.to_string());
    if what.contains(&path) { what } else { format!("{path}: {what}") }
}

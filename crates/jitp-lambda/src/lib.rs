//! jitp-lambda: the AWS Lambda function that provisions devices when AWS IoT registers their certificates.
//!
//! The IoT rule on `$aws/events/certificates/registered/#` invokes it directly (asynchronous invocation) or
//! writes to an SQS queue it consumes in batches; [`handler::Handler::handle`] tells the two apart by shape and
//! runs each event through [`jitp_core::provision::Provisioner`]. The binary (`bootstrap`) only wires things up:
//! tracing, [`config::LambdaConfig::from_env`], [`build`], then `lambda_runtime::run`.
//!
//! Init does all the work that can fail on configuration (jitp.toml, the templates, the environment), so a bad
//! deployment fails its init phase loudly instead of its first device.

pub mod audit_log;
pub mod config;
pub mod handler;

use std::path::PathBuf;
use std::sync::Arc;

use jitp_core::memory::MemoryRegistry;
use jitp_core::registry::IotRegistry;
use jitp_core::rules::Rules;

pub use config::{ConfigError, LambdaConfig, RegistryChoice};
pub use handler::{Clock, Handler, HandlerError, Response};

/// Init failed: the function must not start taking events.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// An environment variable is set to something unusable.
    #[error(transparent)]
    Env(#[from] ConfigError),
    /// jitp.toml, a template or a file it names is wrong.
    #[error("configuration {}: {source}", path.display())]
    Config {
        /// The jitp.toml.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: jitp_core::Error,
    },
    /// The memory registry's file cannot be read.
    #[error("memory registry: {0}")]
    Registry(#[source] jitp_core::Error),
}

/// Load the configuration and templates, open the registry, and build the handler (system clock, stdout).
pub async fn build(lambda: LambdaConfig) -> Result<Handler, InitError> {
    let path = lambda.config_path.clone();
    let config = Rules::load_with(&path, &lambda.overrides).map_err(|source| InitError::Config { path, source })?;
    let config = Arc::new(config);
    let (registry, memory): (Arc<dyn IotRegistry>, Option<Arc<MemoryRegistry>>) = match &lambda.registry {
        RegistryChoice::Aws { endpoint_url } => {
            (Arc::new(jitp_aws::AwsRegistry::from_env(endpoint_url.clone()).await), None)
        }
        RegistryChoice::Memory(None) => (Arc::new(MemoryRegistry::new()), None),
        RegistryChoice::Memory(Some(file)) => {
            let memory = Arc::new(MemoryRegistry::open(file).map_err(InitError::Registry)?);
            (memory.clone(), Some(memory))
        }
    };
    let mut builder = Handler::builder(config, registry, lambda);
    if let Some(memory) = memory {
        builder = builder.save_after_each_invocation(memory);
    }
    Ok(builder.build())
}

//! jitp-lambda: the AWS Lambda function that provisions devices when AWS IoT registers their certificates.
//!
//! The IoT rule on `$aws/events/certificates/registered/#` invokes it directly (asynchronous invocation) or
//! writes to an SQS queue it consumes in batches; [`handler::Handler::handle`] tells the two apart by shape and
//! runs each event through [`jitp_core::provision::Provisioner`]. The binary (`bootstrap`) only wires things up:
//! tracing, [`LambdaSettings`] from its environment, [`build`], then `lambda_runtime::run`.
//!
//! Init does all the work that can fail on configuration (jitp.toml, the templates, the environment), so a bad
//! deployment fails its init phase loudly instead of its first device.
//!
//! The crate's second binary, `jitp-drift`, is the scheduled drift report ([`drift`]): `jitp reconcile --plan`
//! shard by shard under a read-only role, its totals written as CloudWatch metrics.

pub mod drift;
pub mod handler;
pub mod settings;

use std::path::Path;
use std::sync::Arc;

use jitp_wiring::RegistryArg;

pub use handler::{Clock, Handler, HandlerError, Response};
pub use settings::LambdaSettings;

/// Open the registry (default `aws`), load jitp.toml from `config_path` (templates compiled, S3 CRLs fetched:
/// one that cannot be is an init error) with the settings' overrides, and build the handler (system clock,
/// stdout), which refreshes the S3 CRLs every `JITP_CRL_REFRESH_SECONDS`.
pub async fn build(settings: &LambdaSettings, config_path: &Path) -> Result<Handler, jitp_wiring::Error> {
    let opened = settings.common.open_registry(RegistryArg::Aws).await?;
    let (rules, crls) = settings.common.load_rules(config_path, &opened).await?;
    let mut builder = Handler::builder(Arc::new(rules), opened.registry.clone(), settings)
        .sdk_region(opened.sdk_region.clone())
        .crl_refresh(crls);
    // Saving a memory registry without a file does nothing.
    if let Some(memory) = opened.memory.clone() {
        builder = builder.save_after_each_invocation(memory);
    }
    Ok(builder.build())
}

//! jitp-guard: the provisioning decision at every connection, through AWS IoT Core's custom client certificate
//! validation (a Lambda a domain configuration names in `ClientCertificateConfig.ClientCertificateCallbackArn`,
//! invoked after the TLS handshake of every connect attempt to that domain).
//!
//! jitp decides once, at a device's first connection; a certificate revoked by its CA's CRL, added to the deny
//! list or put on hold afterwards would keep connecting until `jitp reconcile --apply --revoke`. The guard closes
//! that window: the certificate half of the same decision ([`judge`]: CA checks, signature, validity with the
//! clock skew, key checks, profile selection, CRLs with holds and scopes, deny list, the profile's limits),
//! against the CAs registered in AWS IoT ([`cas`]), at every connect, with no AWS call on the warm path.
//!
//! - [`event`]: AWS's event and answer (the documented shape, with its source).
//! - [`decision::decide`]: the pure decision, shared with `jitp guard` (the CLI).
//! - [`handler::Guard`]: the Lambda handler, its snapshot of profiles and CAs and their refresh.
//! - [`record`]: one EMF line per refusal; allows counted, written once a period.
//! - [`settings::GuardSettings`]: the environment (`JITP_*`), as the provisioning Lambda's plus the guard's own.
//!
//! The binary (`bootstrap`) only wires things up: tracing, [`GuardSettings`] from its environment, [`build`],
//! then `lambda_runtime::run`.

pub mod cas;
pub mod decision;
pub mod event;
pub mod handler;
pub mod judge;
pub mod record;
pub mod settings;

use std::path::Path;
use std::sync::Arc;

use jitp_wiring::RegistryArg;

use crate::judge::Config;

pub use cas::CaSet;
pub use decision::{Decision, Verdict, decide};
pub use event::{ConnectAnswer, ConnectEvent};
pub use handler::{Guard, Snapshot};
pub use settings::{GuardSettings, Mode};

/// Why the guard cannot start (or refresh).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// The settings, jitp.toml, the S3 CRLs or the registry cannot be opened.
    #[error(transparent)]
    Wiring(#[from] jitp_wiring::Error),
    /// The registry refused or failed a call that learns the registered CAs.
    #[error("{operation}: {source}")]
    Registry {
        /// The call.
        operation: judge::Operation,
        /// Why.
        #[source]
        source: judge::RegistryError,
    },
}

/// Open the registry (default `aws`), load jitp.toml from `config_path` (S3 CRLs fetched: one that cannot be is
/// an init error), learn the registered CAs, and build the guard (system clock, stdout), which refreshes the S3
/// CRLs every `JITP_CRL_REFRESH_SECONDS` and the CAs every `JITP_CA_CACHE_TTL_SECS`.
pub async fn build(settings: &GuardSettings, config_path: &Path) -> Result<Guard, GuardError> {
    let opened = settings.common.open_registry(RegistryArg::Aws).await?;
    let (config, crls) = settings.common.load_rules::<Config>(config_path, &opened).await?;
    let cas = CaSet::load(opened.registry.as_ref(), &config).await?;
    Ok(Guard::builder(Arc::new(config), cas, opened.registry.clone(), settings).crl_refresh(crls).build())
}

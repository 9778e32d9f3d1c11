//! The library's one error type: what went wrong that is not a verdict on a certificate.
//!
//! A certificate that fails a rule is not an error but a [`jitp_pki::reason::Rejection`]; these are faults of
//! configuration, of the registry, or of the machine.

use jitp_pki::ids::PolicyName;
use jitp_profile::ConfigError;
use jitp_registry::registry::{Operation, RegistryError};
use jitp_registry::thing::ThingName;

/// Errors from loading configuration and templates, and from the provisioning workflow.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A shard of the inventory that is not 1 to 3 lowercase hex digits (`reconcile::Shard`).
    #[error("shard {value:?}: {message}")]
    Shard {
        /// The value given (its first 16 characters).
        value: String,
        /// What is wrong.
        message: String,
    },
    /// The configuration, a template or a file they name is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A registry call kept failing in a way a retry may fix (throttled, unavailable, timed out) until the
    /// retry deadline: the platform should deliver the event again.
    #[error("{operation} still failing after {attempts} attempts, at the retry deadline: {source}")]
    Transient {
        /// The API call.
        operation: Operation,
        /// How many times it was made.
        attempts: u32,
        /// The last failure.
        #[source]
        source: RegistryError,
    },
    /// The operation's quota has no slot within the retry deadline (a burst larger than the quota drains in the
    /// time left): the workflow's event is handed back for redelivery, a plan's device is listed under errors.
    #[error(
        "{operation} is paced at {rate:.2} calls/s under its quota and the next slot is {} ms away, beyond the retry deadline of {} ms",
        wait.as_millis(),
        deadline.as_millis()
    )]
    QuotaWait {
        /// The API call.
        operation: Operation,
        /// How long the event would have waited.
        wait: std::time::Duration,
        /// The lane's rate at the time.
        rate: f64,
        /// The retry deadline it would have passed.
        deadline: std::time::Duration,
    },
    /// The registry answered in a way jitp cannot work with (a bug, a permissions problem, a missing setup step).
    #[error("{operation} failed: {source}")]
    Registry {
        /// The API call.
        operation: Operation,
        /// What the registry said.
        #[source]
        source: RegistryError,
    },
    /// CreateThing named a thing type or group that does not exist: AWS IoT creates neither on the fly, so an
    /// operator's setup step was missed.
    #[error(
        "CreateThing failed: {source}: create thing type {thing_type:?} in the account first (see infra/README.md)"
    )]
    MissingThingType {
        /// The thing type the profile names.
        thing_type: String,
        /// What the registry said.
        #[source]
        source: RegistryError,
    },
    /// Another event wrote the thing between every read and compare-and-set of a claim: a retry may win.
    #[error("thing {thing} changed under every one of {rounds} claims; deliver the event again")]
    Contended {
        /// The thing.
        thing: ThingName,
        /// How many claims were tried.
        rounds: usize,
    },
    /// A policy is at AWS's limit of 5 versions and none of them can be deleted (every one is the default).
    #[error("policy {policy} is at the 5-version limit and has no non-default version to prune")]
    NoVersionToPrune {
        /// The policy.
        policy: PolicyName,
    },
}

impl Error {
    /// Should the platform retry the event that hit this error?
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. } | Self::QuotaWait { .. } | Self::Contended { .. })
    }

    /// The registry call that failed, where one did.
    pub fn operation(&self) -> Option<Operation> {
        match self {
            Self::Transient { operation, .. }
            | Self::QuotaWait { operation, .. }
            | Self::Registry { operation, .. } => Some(*operation),
            Self::MissingThingType { .. } => Some(Operation::CreateThing),
            Self::Contended { .. } => Some(Operation::UpdateThing),
            Self::NoVersionToPrune { .. } => Some(Operation::CreatePolicyVersion),
            Self::Shard { .. } | Self::Config(_) => None,
        }
    }
}

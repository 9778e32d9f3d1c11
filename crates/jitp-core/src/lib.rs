//! jitp-core: the decision, and what acts on it.
//!
//! Below it: certificates ([`jitp_pki`]), the registry port ([`jitp_registry`]), the configuration and the
//! certificate half of the decision ([`jitp_profile`]), the policy templates ([`jitp_policy`]). Here:
//! [`rules::Rules`] (the configuration and the templates compiled from it, loaded together), the decision
//! ([`decide`]), the provisioning workflow over the registry port ([`provision`]), `jitp lint`'s review
//! ([`review`]), the reconciliation of provisioned fleets ([`reconcile`]) and the audit record ([`audit`]).

pub mod audit;
pub mod decide;
pub mod engine;
pub mod error;
pub mod provision;
pub mod reconcile;
pub mod review;
pub mod rules;

pub use error::Error;

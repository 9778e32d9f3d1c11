//! jitp-core: the decision, and what acts on it.
//!
//! Below it: certificates ([`jitp_pki`]), the registry port ([`jitp_registry`]), the configuration and the
//! certificate half of the decision ([`jitp_profile`]), the policy templates ([`jitp_policy`]). Here:
//! [`rules::Rules`] (the configuration and the templates compiled from it, loaded together), the decision
//! ([`decide`]), the provisioning workflow over the registry port ([`provision`]), `jitp lint`'s review
//! ([`review`]) with the policy tests beside the templates ([`policy_tests`]), the reconciliation of provisioned
//! fleets ([`reconcile`]), the audit record ([`audit`]), and `jitp explain` ([`explain`]: the decision's policy
//! evaluated by `jitp_policy_eval`).

pub mod audit;
pub mod decide;
pub mod engine;
pub mod error;
pub mod explain;
pub mod policy_tests;
pub mod provision;
pub mod reconcile;
pub mod review;
pub mod rules;

pub use error::Error;

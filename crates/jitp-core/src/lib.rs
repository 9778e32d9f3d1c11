//! jitp-core: the domain of just-in-time provisioning for AWS IoT Core.
//!
//! No AWS SDK and no HTTP here: parse and verify certificates ([`cert`]), select a CA profile ([`profile`]),
//! derive the thing ([`thing`]), render and lint its policy ([`policy`]), and decide ([`decide`]). The
//! provisioning workflow talks to AWS IoT only through the [`registry::IotRegistry`] port.
//!
//! The configuration ([`profile::Config`]) is plain validated data; the templates compiled from it
//! ([`policy::Engine`]) sit above it, and [`rules::Rules`] holds the two, loaded together: it is what
//! [`decide`], [`review`] (`jitp lint`) and [`provision`] take.

pub mod audit;
pub mod cert;
pub mod decide;
pub mod error;
pub mod event;
pub mod explain;
pub mod ids;
pub mod memory;
mod naming;
pub mod pacing;
pub mod policy;
pub mod policy_tests;
pub mod profile;
pub mod provision;
pub mod reason;
pub mod reconcile;
pub mod registry;
pub mod review;
pub mod rules;
pub mod thing;
pub mod unix_time;

pub use error::Error;
pub use reason::{ReasonCode, Rejection};

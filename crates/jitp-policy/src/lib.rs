//! jitp-policy: a device's AWS IoT policy, from the security team's templates.
//!
//! [`policy`]: the templates compiled once (Tera), each device's context, render, the guard against values
//! that could widen a policy, and lint. [`naming`]: the set of thing and policy names a profile can produce,
//! and the collisions between profiles. Errors are the configuration's ([`jitp_profile::ConfigError`]): a
//! template is part of it.

pub mod naming;
pub mod policy;

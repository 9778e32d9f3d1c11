//! jitp-registry: AWS IoT's registry as jitp sees it, and nothing of jitp's decisions.
//!
//! The certificate-registered event ([`event`]: parse, never trust), thing names and attributes ([`thing`]:
//! only valid values exist), the [`registry::IotRegistry`] port (typed calls, typed answers,
//! [`registry::RegistryError`]: this crate's one error), API pacing under AWS's quotas ([`pacing`]), and
//! [`memory::MemoryRegistry`], an implementation with AWS's semantics for the demo, tests and benches.

pub mod event;
pub mod memory;
pub mod pacing;
pub mod registry;
pub mod thing;

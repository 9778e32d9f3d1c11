//! Least-privilege lint for rendered AWS IoT Core policy documents.
//!
//! Modelled on AWS IoT Device Defender's `IOT_POLICY_OVERLY_PERMISSIVE_CHECK` and
//! `IOT_POLICY_POTENTIAL_MISCONFIGURATION_CHECK`. It runs on every policy jitp renders (before it reaches
//! AWS) and in CI on every template, so it treats the document as untrusted: the template may come from a
//! non-programmer and the values in it from a hostile certificate. It never panics, reads at most
//! [`MAX_DOCUMENT_BYTES`] and keeps at most [`MAX_FINDINGS_PER_SEVERITY`] findings of each severity.
//!
//! What it enforces: a device may connect only as its own thing, touch only topics, shadows and jobs
//! that carry its thing name (literally for a per-thing policy, or through
//! `${iot:Connection.Thing.ThingName}`), and call only device data-plane actions. Errors make
//! [`Report::has_errors`] true, which the caller maps to `POLICY_TOO_PERMISSIVE`; warnings point at
//! statements that grant or deny less than they seem to.
//!
//! Matching follows IAM: action names are case-insensitive, resources are case-sensitive, `*` and `?`
//! are wildcards (a `*` can span `/` and, at the end of an ARN segment, `:`), and MQTT's `+` and `#` are
//! literal characters except in `topicfilter/` resources, where they are the filter's own wildcards.
//! Conditions are not evaluated: they can only narrow a statement.
//!
//! One file per concern: `rules` is the rule catalogue, `json` the duplicate-key JSON parser (and the
//! [`Document`] it parses once, for the renderer's checks, the lint and the canonical form), `actions` the
//! action tables and IAM's glob, `resources` the ARN and topic parsing, `checks` the checks themselves, and
//! `findings` what they report; `domain` the connect guard's rule (`iot:Connect` limited to the guarded domain),
//! applied by `jitp lint` when jitp.toml's `[guard]` is set.

mod actions;
mod checks;
mod domain;
mod findings;
mod json;
mod resources;
mod rules;
#[cfg(test)]
mod tests;

pub use checks::{MAX_DOCUMENT_BYTES, POLICY_VERSION, Scope};
pub use domain::{DOMAIN_NAME_KEY, lint_guard_domain};
pub use findings::{Finding, MAX_FINDINGS_PER_SEVERITY, Report};
pub use json::Document;
pub use resources::THING_NAME_VARIABLE;
pub use rules::{Rule, Severity};

use checks::{Ctx, check_document};
use findings::Sink;

/// Lints one rendered policy document for a thing (or for every thing, with [`Scope::Shared`]). A document
/// over [`MAX_DOCUMENT_BYTES`] is not parsed at all.
pub fn lint(document: &str, scope: Scope<'_>) -> Report {
    lint_document(&Document::parse_bounded(document, MAX_DOCUMENT_BYTES), scope)
}

/// Lints a document already parsed (see [`Document`]): the same report as [`lint`] on its text.
pub fn lint_document(document: &Document, scope: Scope<'_>) -> Report {
    let mut sink = Sink::default();
    check_document(document, &Ctx::new(scope), &mut sink);
    sink.finish()
}

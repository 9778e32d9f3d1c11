//! The template context: everything a template may read about one device, built once per device.
//!
//! One [`DeviceContext`] serves the device's thing_name expression (`subject`, `certificate`, `ca`,
//! `profile`), then its attribute expressions (plus `thing_name`, once [`DeviceContext::name`] has added it),
//! then its per-thing policy template (plus `aws`, once [`DeviceContext::place`] has added it): the names never
//! see where the policy lives. A shared policy sees no device values at all (see `shared_context`). Values come
//! from the certificate exactly as they are, never trimmed or normalised. Absent subject fields are left
//! undefined, so a template that uses one without `| default(...)` fails and says which.
//!
//! Every subject value is checked here, once, against what a policy may hold ([`forbidden_reason`]): a device
//! whose policy prints one is refused with INVALID_ATTRIBUTE naming the field, the value and the character.

use serde::Serialize;
use tera::Context;

use super::guard::forbidden_reason;
use jitp_pki::cert::Subject;
use jitp_pki::ids::shown;
use jitp_profile::profile::Profile;
use jitp_registry::thing::ThingName;

/// AWS placement of the rendered policy (template context `aws.*`).
#[derive(Debug, Clone, Serialize)]
pub struct AwsContext {
    /// `aws`, `aws-cn`, `aws-us-gov`.
    pub partition: String,
    /// e.g. `us-east-1`.
    pub region: String,
    /// 12 digits.
    pub account_id: String,
}

impl Default for AwsContext {
    fn default() -> Self {
        Self { partition: "aws".into(), region: "us-east-1".into(), account_id: "123456789012".into() }
    }
}

/// Everything the templates may read about one device, filled in as its names are rendered.
#[derive(Debug, Clone)]
pub struct DeviceContext<'a> {
    profile: &'a Profile,
    subject: &'a Subject,
    /// `subject`, `certificate`, `ca`, `profile`; then `thing_name`; then `aws`.
    values: Context,
    /// `subject.ou "a*b" contains "*" (a policy wildcard)`, for each subject field with a refused value.
    refused: Vec<String>,
    thing_name: Option<ThingName>,
    aws: Option<&'a AwsContext>,
}

impl<'a> DeviceContext<'a> {
    /// The context of a device of `profile` with `subject`, certificate `certificate_id` (64 hex) and serial
    /// (hex), issued by the registered CA `ca_id`: what its thing_name expression sees.
    pub fn new(profile: &'a Profile, subject: &'a Subject, certificate_id: &str, serial: &str, ca_id: &str) -> Self {
        let mut values = Context::new();
        values.insert("subject", &subject_map(subject));
        values.insert("certificate", &serde_json::json!({ "id": certificate_id, "serial": serial }));
        values.insert("ca", &serde_json::json!({ "id": ca_id }));
        values.insert("profile", &serde_json::json!({ "name": profile.name }));
        let refused = subject
            .fields()
            .into_iter()
            .filter_map(|(field, values)| {
                let (value, why) = values.iter().find_map(|v| forbidden_reason(v).map(|why| (v, why)))?;
                Some(format!("subject.{field} {} {why}", shown(value)))
            })
            .collect();
        Self { profile, subject, values, refused, thing_name: None, aws: None }
    }

    /// Add the device's thing name: attribute expressions and the policy see it from now on.
    pub fn name(&mut self, thing_name: ThingName) {
        self.values.insert("thing_name", thing_name.as_str());
        self.thing_name = Some(thing_name);
    }

    /// Add where the policy lives: the policy template alone sees it (add it after the names are rendered).
    pub fn place(&mut self, aws: &'a AwsContext) {
        self.values.insert("aws", aws);
        self.aws = Some(aws);
    }

    /// The profile.
    pub fn profile(&self) -> &'a Profile {
        self.profile
    }

    /// The subject fields.
    pub fn subject(&self) -> &'a Subject {
        self.subject
    }

    /// The thing name, once [`DeviceContext::name`] has added it.
    pub fn thing_name(&self) -> Option<&ThingName> {
        self.thing_name.as_ref()
    }

    /// Where the policy lives, once [`DeviceContext::place`] has added it.
    pub fn aws(&self) -> Option<&'a AwsContext> {
        self.aws
    }

    /// The subject values a policy may not print, each with its field and why (empty for most devices).
    pub fn refused(&self) -> &[String] {
        &self.refused
    }

    /// The Tera context.
    pub(super) fn values(&self) -> &Context {
        &self.values
    }
}

/// The context of a shared policy: no device values at all. `thing_name` is the policy variable AWS IoT
/// resolves at connection time, so one template serves both modes.
pub(super) fn shared_context(aws: &AwsContext, profile: &Profile) -> Context {
    let mut ctx = Context::new();
    ctx.insert("aws", aws);
    ctx.insert("profile", &serde_json::json!({ "name": profile.name }));
    ctx.insert_value("thing_name", tera::Value::safe_string(super::lint::THING_NAME_VARIABLE));
    ctx
}

/// Subject fields with exactly one value, by template name.
fn subject_map(subject: &Subject) -> serde_json::Map<String, serde_json::Value> {
    subject
        .fields()
        .into_iter()
        .filter_map(|(name, values)| match values {
            [one] => Some((name.to_owned(), serde_json::Value::String(one.clone()))),
            _ => None,
        })
        .collect()
}

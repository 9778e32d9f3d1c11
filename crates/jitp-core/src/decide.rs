//! The pure decision: certificate + CA + profiles + now -> a [`Verdict`] or a [`Refusal`].
//!
//! `jitp check`, the HTTP preview and the provisioning workflow all call [`decide`]: one code path, so what
//! the security team previews is what devices get.

use std::collections::BTreeMap;

use serde::Serialize;

use jitp_pki::cert::{self, Certificate, KeyKind, Subject};
use jitp_pki::ids::{CaCertificateId, CertificateId, shown};
use jitp_pki::reason::{Fault, ReasonCode, Rejection, reject};
use jitp_policy::policy::{AwsContext, DeviceContext, RenderedPolicy};
use jitp_profile::judge::{CrlStatus, Refusal, RegisteredCa, judge, parse_ca};
use jitp_profile::profile::{OnDuplicate, PolicyMode, Profile};
use jitp_registry::thing::{AttributeName, AttributeValue, ThingName};

use crate::rules::Rules;

/// What to decide about.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The device certificate, PEM.
    pub certificate_pem: &'a [u8],
    /// The registered CA, checked (see [`RegisteredCa`]).
    pub ca: &'a RegisteredCa,
    /// The decision time, Unix seconds.
    pub now: i64,
    /// The template context's `aws.*`.
    pub aws: &'a AwsContext,
}

/// Yes: which profile, which thing, which policy.
#[derive(Debug, Clone)]
pub struct Verdict<'c> {
    /// The matching profile, in the configuration the decision was made with.
    pub profile: &'c Profile,
    /// SHA-256 of the certificate DER (the id AWS IoT gives it).
    pub certificate_id: CertificateId,
    /// Serial number, hex.
    pub serial: String,
    /// Key algorithm and size.
    pub key: KeyKind,
    /// notBefore / notAfter, Unix seconds.
    pub not_before: i64,
    /// See `not_before`.
    pub not_after: i64,
    /// The thing to create or reuse; the MQTT client id must equal it.
    pub thing_name: ThingName,
    /// Thing type, if the profile sets one.
    pub thing_type: Option<String>,
    /// Thing groups.
    pub thing_groups: Vec<String>,
    /// Thing attributes, rendered and validated.
    pub attributes: BTreeMap<AttributeName, AttributeValue>,
    /// The policy.
    pub policy: RenderedPolicy,
    /// Per-thing or shared policy.
    pub policy_mode: PolicyMode,
    /// What to do if the thing has another active certificate.
    pub on_duplicate: OnDuplicate,
}

/// Decide whether the certificate may be provisioned, and as what.
///
/// The first failing step decides, in this order (tested in `tests/decide.rs`, `tests/cert_checks.rs` and
/// `tests/crl.rs`):
/// 1. the device certificate parses (MALFORMED_CERTIFICATE, ...);
/// 2. to 7. [`judge`]: the CA, the certificate against it, the subject rules that select the profile, the
///    profile's CRLs, its deny list and its limits;
/// 8. the names, then the policy (INVALID_THING_NAME, INVALID_ATTRIBUTE, POLICY_TEMPLATE_ERROR,
///    POLICY_TOO_PERMISSIVE, POLICY_TOO_LARGE).
pub fn decide<'c>(rules: &'c Rules, input: &Input<'_>) -> Result<Verdict<'c>, Refusal<'c>> {
    let device = Certificate::from_pem(input.certificate_pem)?;
    let profile = judge(rules.config(), &device, input.ca, input.now)?;
    device_verdict(rules, profile, &device, input).map_err(|rejection| Refusal { rejection, profile: Some(profile) })
}

/// The thing name and attributes a profile's expressions give one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// The validated thing name.
    pub thing_name: ThingName,
    /// The validated attributes.
    pub attributes: BTreeMap<AttributeName, AttributeValue>,
}

/// Render and validate the thing_name and attribute expressions of `device`'s profile, and add the thing name
/// to `device`: the one code path that [`decide`] and `jitp lint` share. The rendered text is used exactly as
/// it is; a name or value that is not valid is the device's fault (INVALID_THING_NAME, INVALID_ATTRIBUTE,
/// naming the subject field whose value carries the offending character), an expression that fails to render
/// is the template's.
pub fn render_names(rules: &Rules, device: &mut DeviceContext<'_>) -> Result<Names, Rejection> {
    let engine = rules.templates();
    let (profile, subject) = (device.profile(), device.subject());
    let raw_name = engine.render_thing_name(device)?;
    let thing_name = ThingName::try_from(raw_name.clone()).map_err(|e| {
        reject!(
            InvalidThingName,
            "the thing name {} rendered for profile {} is invalid: {e}{}",
            shown(&raw_name),
            profile.name,
            culprits(subject, &raw_name, |c| c.is_ascii_alphanumeric() || ":_-".contains(c))
        )
    })?;
    device.name(thing_name.clone());
    let mut attributes = BTreeMap::new();
    for name in profile.attributes.keys() {
        let raw = engine.render_attribute(device, name.as_str())?;
        let value = AttributeValue::try_from(raw.clone()).map_err(|e| {
            reject!(
                InvalidAttribute,
                "attribute {name} of profile {}: {e}{}",
                profile.name,
                culprits(subject, &raw, |c| { c.is_ascii_alphanumeric() || "_.,@/:#=[]-".contains(c) })
            )
        })?;
        attributes.insert(name.clone(), value);
    }
    Ok(Names { thing_name, attributes })
}

/// `; subject.cn "sensor-1 " contains U+0020 ' '` for each subject field whose value carries a character
/// that `rendered` (an invalid name or value) also carries and that names and values may not hold: which
/// field of the certificate made it invalid. Empty when no single field is to blame (e.g. a name too long).
fn culprits(subject: &Subject, rendered: &str, allowed: fn(char) -> bool) -> String {
    let mut out = String::new();
    for (field, values) in subject.fields() {
        let [value] = values else { continue };
        if let Some(c) = value.chars().find(|c| !allowed(*c) && rendered.contains(*c)) {
            out.push_str(&format!(
                "; subject.{field} {} contains {}",
                shown(value),
                jitp_policy::policy::describe_char(c)
            ));
        }
    }
    out
}

fn device_verdict<'c>(
    rules: &Rules,
    profile: &'c Profile,
    device: &Certificate,
    input: &Input<'_>,
) -> Result<Verdict<'c>, Rejection> {
    // The fingerprint is the SHA-256 of the DER: AWS IoT's certificate id, already computed at parse time.
    let certificate_id = CertificateId::from_fingerprint(device.fingerprint());
    let serial = device.serial_hex();
    // The one template context of this device: its names, then its policy, read it.
    let mut context =
        DeviceContext::new(profile, device.subject(), certificate_id.as_str(), &serial, input.ca.id().as_str());
    let Names { thing_name, attributes } = render_names(rules, &mut context)?;
    context.place(input.aws);
    let policy = rules.templates().render_policy(&context)?;
    let (not_before, not_after) = device.validity();
    Ok(Verdict {
        profile,
        certificate_id,
        serial,
        key: *device.key(),
        not_before,
        not_after,
        thing_name,
        thing_type: profile.thing_type.clone(),
        thing_groups: profile.thing_groups.clone(),
        attributes,
        policy,
        policy_mode: profile.policy_mode,
        on_duplicate: profile.on_duplicate,
    })
}

/// The outcome of [`check`] in the shape `jitp check --format json` and `POST /v1/preview` print.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// `accept` or `reject`.
    pub decision: &'static str,
    /// The reason code of a rejection.
    pub reason: Option<ReasonCode>,
    /// Whose fault the rejection is, which says what the workflow would do to the certificate: `device` its
    /// profile's `on_reject`, `profile` and `operator` held (left pending for the fix).
    pub fault: Option<Fault>,
    /// One sentence for people.
    pub message: String,
    /// The selected profile.
    pub profile: Option<String>,
    /// The thing name.
    pub thing_name: Option<String>,
    /// The policy name.
    pub policy_name: Option<String>,
    /// The rendered policy document, as JSON.
    pub policy: Option<serde_json::Value>,
    /// Lint warnings on the policy.
    pub warnings: Vec<jitp_policy::policy::Finding>,
    /// The certificate id (SHA-256 of the DER), when the certificate parsed.
    pub certificate_id: Option<String>,
    /// The CA id the decision used.
    pub ca_id: Option<String>,
    /// Thing type, groups and attributes the thing would get.
    pub thing_type: Option<String>,
    /// See `thing_type`.
    pub thing_groups: Vec<String>,
    /// See `thing_type`.
    pub attributes: BTreeMap<AttributeName, AttributeValue>,
    /// The selected profile's CRLs and what the decision made of each.
    pub crls: Vec<CrlStatus>,
}

impl CheckReport {
    /// Did the certificate pass?
    pub fn accepted(&self) -> bool {
        self.decision == "accept"
    }

    fn rejected(refusal: Refusal<'_>, ca_id: Option<String>, certificate_id: Option<String>) -> Self {
        Self {
            decision: "reject",
            reason: Some(refusal.rejection.reason),
            fault: Some(refusal.rejection.reason.fault()),
            message: refusal.rejection.message,
            profile: refusal.profile.map(|p| p.name.clone()),
            thing_name: None,
            policy_name: None,
            policy: None,
            warnings: Vec::new(),
            certificate_id,
            ca_id,
            thing_type: None,
            thing_groups: Vec::new(),
            attributes: BTreeMap::new(),
            crls: Vec::new(),
        }
    }
}

/// The whole offline decision from PEM inputs, for `jitp check` and previews: no registry, no side effects.
/// `ca_id` defaults to the SHA-256 of the CA's DER, as AWS IoT computes it.
pub fn check(
    rules: &Rules,
    ca_pem: &[u8],
    certificate_pem: &[u8],
    ca_id: Option<&CaCertificateId>,
    now: i64,
    aws: &AwsContext,
) -> CheckReport {
    let certificate_id = cert::pem_to_der(certificate_pem).ok().map(|der| CertificateId::of_der(&der).to_string());
    let ca = match parse_ca(ca_pem) {
        Ok(ca) => ca,
        Err(e) => {
            return CheckReport::rejected(e.into(), ca_id.map(|i| i.to_string()), certificate_id);
        }
    };
    let ca_id = ca_id.cloned().unwrap_or_else(|| CaCertificateId::of_der(ca.der()));
    let ca = RegisteredCa::new(rules.config(), ca_id.clone(), ca_pem);
    let input = Input { certificate_pem, ca: &ca, now, aws };
    let crls = |profile: Option<&Profile>| {
        let index = profile.and_then(|p| rules.config().profiles.iter().position(|q| std::ptr::eq(p, q)));
        index.map(|i| ca.crl_statuses(rules.config(), i, now)).unwrap_or_default()
    };
    match decide(rules, &input) {
        Ok(v) => CheckReport {
            crls: crls(Some(v.profile)),
            decision: "accept",
            reason: None,
            fault: None,
            message: format!("certificate accepted by profile {} as thing {}", v.profile.name, v.thing_name),
            profile: Some(v.profile.name.clone()),
            thing_name: Some(v.thing_name.to_string()),
            policy_name: Some(v.policy.name.to_string()),
            policy: Some(v.policy.json()),
            warnings: v.policy.warnings,
            certificate_id: Some(v.certificate_id.to_string()),
            ca_id: Some(ca_id.to_string()),
            thing_type: v.thing_type,
            thing_groups: v.thing_groups,
            attributes: v.attributes,
        },
        Err(refusal) => {
            let statuses = crls(refusal.profile);
            CheckReport { crls: statuses, ..CheckReport::rejected(refusal, Some(ca_id.to_string()), certificate_id) }
        }
    }
}

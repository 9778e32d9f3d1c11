//! `jitp reconcile --plan`: what today's configuration would change on the devices jitp already provisioned.
//!
//! jitp governs a device at its first connection; a template tightened since, or a deny-list entry added since,
//! reaches no device already provisioned. The plan re-decides every provisioned device with today's
//! configuration and clock ([`decide::decide`], the workflow's one code path) and compares the verdict with
//! what the registry holds. It writes nothing: every call it makes is a read.
//!
//! # Inventory: the things jitp made
//!
//! Every thing jitp creates carries [`CERTIFICATE_ATTRIBUTE`] = the id of the certificate that owns it (64
//! lowercase hex digits). The inventory is 16 ListThings listings, `attributeName = jitp_certificate`,
//! `attributeValue = <one hex digit>`, `usePrefixAttributeValue = true` ([`listings`]):
//!
//! - ListThings with an attribute filter scales with the things jitp made, not with the account's things (an
//!   account may hold millions that jitp never saw);
//! - fleet indexing (SearchIndex) would answer in one query, but it is an account option, billed, that jitp
//!   cannot assume is on;
//! - the policy name prefix would find policies, not things (and a shared policy names no thing at all);
//! - the 16 prefixes are disjoint and together cover every id jitp writes, so no thing is listed twice and
//!   each listing is a unit a later `--apply` can resume from. A value that does not start with a lowercase
//!   hex digit is not listed at all: jitp never writes one.
//!
//! The prefix length is a parameter ([`Shard`]): 1 digit (16 listings) for `jitp reconcile`, 2 (256 shards)
//! for the scheduled drift report, which plans one shard per Lambda invocation ([`Reconciler::plan_shard`]):
//! 100,000 devices take about 2 h 47 min at AWS's quotas, far beyond one invocation's 15 minutes.
//!
//! # What one device costs
//!
//! Per device: DescribeCertificate (the PEM, status and CA) and ListThingPrincipals (is that certificate
//! attached to the thing?) at once, then GetPolicy of the verdict's policy (per-thing mode; a shared policy is
//! read once per run): **3 calls** (2 in shared mode), plus 1/250 of a ListThings page. DescribeCACertificate is
//! made once per CA per run. Under AWS's default quotas ([`jitp_registry::pacing::Quotas::aws_defaults`]) the slowest
//! lane for those calls is ListThingPrincipals at 10 a second: 10 devices a second, 100,000 devices in about
//! 2 h 47 min (GetPolicy alone would allow 15 a second, DescribeCertificate 100). The thing itself comes with
//! its ListThings page: no DescribeThing.
//!
//! # Groups
//!
//! Each device is `unchanged`, or has a policy change and/or a thing change (`policy_changes`,
//! `thing_changes`), or `would_reject` (an ACTIVE certificate today's configuration refuses, by reason code),
//! or is `retired` (its certificate is INACTIVE or REVOKED: jitp decides nothing about it), or `unaccounted`
//! (the attribute is not a certificate id, the certificate is gone, not attached to the thing, still PENDING,
//! or names no CA). A device whose calls failed is listed under `errors`.
//!
//! The classification ([`assess`]) and the grouping ([`PlanBuilder`]) are pure; [`Reconciler::plan`] makes the
//! calls. Policy diffs are grouped by their statements with the device's own thing name written
//! `{{ thing_name }}` (where it is a path segment of a resource: `client/<thing>`, `topic/things/<thing>/...`),
//! so that one template change to 100,000 per-thing policies is one group, shown once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use futures::StreamExt as _;
use serde::Serialize;
use serde_json::Value;

use crate::decide::{self, Input, Verdict};
use crate::engine::ca_cache::CaCache;
use crate::engine::policy_version::same_document;
use crate::engine::{CallGate, Settings, thing_spec};
use crate::error::Error;
use crate::rules::Rules;
use jitp_pki::ids::{CertificateId, PolicyName};
use jitp_pki::reason::{ReasonCode, Rejection};
use jitp_pki::unix_time::rfc3339;
use jitp_profile::profile::{PolicyMode, Profile};
use jitp_registry::event::CertificateStatus;
use jitp_registry::pacing::Pacer;
use jitp_registry::registry::{IotRegistry, MAX_THINGS_PER_PAGE, Operation, ThingDescription, ThingFilter};
use jitp_registry::thing::{CERTIFICATE_ATTRIBUTE, ThingName};

/// `jitp reconcile --apply | --rollback`: the plan made true, and its policy part undone.
pub mod access;
pub mod apply;

/// Example things shown per group.
pub const EXAMPLES: usize = 3;
/// Devices looked at concurrently at most (the lanes pace them; this only keeps the lanes busy).
const CONCURRENCY: usize = 16;
/// What a device's own thing name is written as in a grouped policy diff.
pub const THING_PLACEHOLDER: &str = "{{ thing_name }}";

/// The 16 ListThings listings of the inventory: `jitp_certificate` starting with each hex digit (see the
/// module docs for why).
pub fn listings(max_results: u32) -> Vec<ThingFilter> {
    Shard::all(1).iter().map(|shard| shard.listing(max_results)).collect()
}

/// The lowercase hex digits, in order: the alphabet of certificate ids and of shard prefixes.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// One shard of the inventory: the things whose `jitp_certificate` starts with a prefix of 1 to
/// [`Shard::MAX_DIGITS`] lowercase hex digits, listed by one ListThings listing ([`Shard::listing`]).
///
/// The shards of one length ([`Shard::all`]) are disjoint and together list every thing whose attribute is at
/// least that long and starts with lowercase hex digits: every thing jitp made (its value is a 64-digit id).
/// A value shorter than the prefix (never written by jitp) is listed by a 1-digit shard but not by a longer one.
/// A scheduled drift report plans one shard per invocation, so a fleet too large for one invocation's time
/// limit is planned in pieces that can each be retried alone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Shard(String);

impl Shard {
    /// The longest prefix: 3 digits, 4,096 shards (at 100,000 devices, about 24 a shard; longer prefixes would
    /// make most listings one short page).
    pub const MAX_DIGITS: usize = 3;

    /// Every shard of `digits` hex digits (clamped to 1..=[`Shard::MAX_DIGITS`]), in order: 16^digits of them.
    pub fn all(digits: usize) -> Vec<Shard> {
        let digits = digits.clamp(1, Self::MAX_DIGITS);
        let mut shards = vec![String::new()];
        for _ in 0..digits {
            shards = shards
                .iter()
                .flat_map(|prefix| HEX.iter().map(move |&d| format!("{prefix}{}", char::from(d))))
                .collect();
        }
        shards.into_iter().map(Shard).collect()
    }

    /// The prefix.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its ListThings listing: `jitp_certificate` starting with the prefix, pages of at most `max_results`.
    pub fn listing(&self, max_results: u32) -> ThingFilter {
        ThingFilter {
            attribute_name: CERTIFICATE_ATTRIBUTE.to_owned(),
            attribute_value: self.0.clone(),
            prefix: true,
            max_results: max_results.clamp(1, MAX_THINGS_PER_PAGE),
        }
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Shard {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shown: String = s.chars().take(16).collect();
        if s.is_empty() || s.len() > Self::MAX_DIGITS {
            return Err(Error::Shard {
                value: shown,
                message: format!("a shard is 1 to {} lowercase hex digits", Self::MAX_DIGITS),
            });
        }
        if !s.bytes().all(|b| HEX.contains(&b)) {
            return Err(Error::Shard {
                value: shown,
                message: "a shard is lowercase hex digits (0-9, a-f)".to_owned(),
            });
        }
        Ok(Shard(s.to_owned()))
    }
}

impl TryFrom<String> for Shard {
    type Error = Error;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Shard> for String {
    fn from(shard: Shard) -> Self {
        shard.0
    }
}

/// The names of the policies jitp attaches to the certificate of thing `thing` under `config`: each per-thing
/// profile's `<policy_prefix><thing>` and each shared profile's shared name.
///
/// # How reconcile proves a device is jitp's
///
/// A thing's `jitp_certificate` attribute is a claim: anyone who can write thing attributes can make it. Before
/// reconcile writes to a device or revokes its certificate, the registry must show what jitp's workflow and only
/// it makes together: the certificate is attached to the thing (ListThingPrincipals), and a policy of a name
/// jitp gives this thing's policy is attached to the certificate (ListAttachedPolicies). A thing made by hand for
/// another team's certificate, attached to it, has no such policy, so it is `unaccounted` (`no_jitp_policy`) and
/// nothing is written or revoked. Forging the proof takes attaching a policy named like jitp's to the
/// certificate, an act of someone who administers the account's policies, not of someone who edits things. The
/// attachment type (EXCLUSIVE_THING) is not read: it takes ListThingPrincipalsV2, a call and an action more
/// per device, and adds nothing a hand attachment could not also set. Cost: one ListAttachedPolicies per ACTIVE
/// device, made beside GetPolicy (the same round trip).
pub fn jitp_policy_names(config: &jitp_profile::profile::Config, thing: &ThingName) -> BTreeSet<String> {
    config
        .profiles
        .iter()
        .map(|p| match p.policy_mode {
            PolicyMode::Shared => jitp_policy::naming::shared_name(p),
            _ => format!("{}{}", p.policy_prefix, thing.as_str()),
        })
        .collect()
}

/// What the registry holds for one device, as far as the plan needed to look, and today's decision.
#[derive(Debug, Clone)]
pub enum Observed<'c> {
    /// The thing's `jitp_certificate` is not a certificate id.
    BadCertificateId,
    /// DescribeCertificate: no such certificate.
    CertificateMissing,
    /// The certificate exists but is not attached to the thing.
    NotAttached,
    /// The certificate's status, when it is not ACTIVE.
    Status(CertificateStatus),
    /// The registry does not say which CA issued the certificate: nothing to decide against.
    CaNotNamed,
    /// The certificate is ACTIVE and attached to the thing, but has no policy jitp would attach for this thing:
    /// not provably a device jitp provisioned (see [`jitp_policy_names`]).
    NoJitpPolicy,
    /// Today's configuration refuses the certificate; the profile that governed the refusal, if the decision
    /// selected one (its `on_reject` is what `--revoke` applies).
    Refused(Rejection, Option<&'c Profile>),
    /// Today's configuration accepts it; `current_policy`: the default document of the verdict's policy, `None`
    /// if no policy has that name.
    Accepted {
        /// The verdict.
        verdict: Box<Verdict<'c>>,
        /// GetPolicy's default document.
        current_policy: Option<String>,
    },
}

/// Why a device is unaccounted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unaccounted {
    /// `jitp_certificate` is not 64 lowercase hex digits.
    BadCertificateId,
    /// The certificate does not exist.
    CertificateMissing,
    /// The certificate is not attached to the thing.
    NotAttached,
    /// The certificate is still PENDING_ACTIVATION: a provisioning that did not finish (its redelivered event
    /// completes it).
    CertificatePending,
    /// The registry names no CA for the certificate.
    CaNotNamed,
    /// The certificate has no policy jitp would attach for this thing: the thing and its attribute may have
    /// been written by anyone who can write things; reconcile proves a device is jitp's before it acts.
    NoJitpPolicy,
}

/// A value before and after (`None`: absent).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Change {
    /// In the registry now.
    pub from: Option<String>,
    /// What today's configuration makes it.
    pub to: Option<String>,
}

/// How the thing differs from today's verdict.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ThingDiff {
    /// The verdict names another thing (the thing name template changed).
    pub name: Option<Change>,
    /// The thing type.
    pub thing_type: Option<Change>,
    /// Attributes added, removed or changed, by name.
    pub attributes: BTreeMap<String, Change>,
}

/// How the policy's default version differs from today's rendered document: statements compared as canonical
/// JSON objects (keys sorted), the device's thing name written [`THING_PLACEHOLDER`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyDiff {
    /// No policy has the verdict's name: every statement is added.
    pub missing: bool,
    /// Statements today's document has and the registry's does not.
    pub added: Vec<Value>,
    /// Statements the registry's document has and today's does not.
    pub removed: Vec<Value>,
    /// What the change means: the requests the device gains and loses ([`access::access_diff`]).
    pub access: Box<access::AccessDiff>,
}

/// One device's place in the plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Assessment {
    /// Today's verdict is what the registry holds.
    Unchanged,
    /// The policy, the thing, or both would change.
    Drift {
        /// The policy's change.
        policy: Option<PolicyDiff>,
        /// The thing's change.
        thing: Option<ThingDiff>,
    },
    /// An ACTIVE certificate today's configuration refuses.
    WouldReject(Rejection),
    /// The certificate is INACTIVE, REVOKED (or another status jitp does not provision from).
    Retired(CertificateStatus),
    /// A thing with the attribute that jitp cannot account for.
    Unaccounted(Unaccounted),
}

/// Classify one device (pure): its thing as listed, its certificate id, and what the plan observed.
pub fn assess(thing: &ThingDescription, certificate: &CertificateId, observed: &Observed<'_>) -> Assessment {
    match observed {
        Observed::BadCertificateId => Assessment::Unaccounted(Unaccounted::BadCertificateId),
        Observed::CertificateMissing => Assessment::Unaccounted(Unaccounted::CertificateMissing),
        Observed::NotAttached => Assessment::Unaccounted(Unaccounted::NotAttached),
        Observed::CaNotNamed => Assessment::Unaccounted(Unaccounted::CaNotNamed),
        Observed::NoJitpPolicy => Assessment::Unaccounted(Unaccounted::NoJitpPolicy),
        Observed::Status(CertificateStatus::PendingActivation) => {
            Assessment::Unaccounted(Unaccounted::CertificatePending)
        }
        Observed::Status(CertificateStatus::Active) => Assessment::Unchanged,
        Observed::Status(status) => Assessment::Retired(*status),
        Observed::Refused(rejection, _) => Assessment::WouldReject(rejection.clone()),
        Observed::Accepted { verdict, current_policy } => {
            let policy = policy_diff(current_policy.as_deref(), &verdict.policy.document, &thing.name);
            let thing = thing_diff(thing, verdict, certificate);
            if policy.is_none() && thing.is_none() {
                Assessment::Unchanged
            } else {
                Assessment::Drift { policy, thing }
            }
        }
    }
}

/// The thing as today's verdict would create it, against the thing as it is (pure). `None`: the same.
pub fn thing_diff(thing: &ThingDescription, verdict: &Verdict<'_>, certificate: &CertificateId) -> Option<ThingDiff> {
    let want = thing_spec(verdict, certificate);
    let change = |from: Option<&String>, to: Option<&String>| {
        (from != to).then(|| Change { from: from.cloned(), to: to.cloned() })
    };
    let names: BTreeSet<&String> = want.attributes.keys().chain(thing.attributes.keys()).collect();
    let attributes: BTreeMap<String, Change> = names
        .into_iter()
        .filter_map(|k| change(thing.attributes.get(k), want.attributes.get(k)).map(|c| (k.clone(), c)))
        .collect();
    let diff = ThingDiff {
        name: change(Some(&thing.name.to_string()), Some(&want.name.to_string())),
        thing_type: change(thing.thing_type.as_ref(), want.thing_type.as_ref()),
        attributes,
    };
    (diff.name.is_some() || diff.thing_type.is_some() || !diff.attributes.is_empty()).then_some(diff)
}

/// The registry's policy document (`None`: no such policy) against today's (pure). `None`: the same JSON.
pub fn policy_diff(current: Option<&str>, rendered: &str, thing: &ThingName) -> Option<PolicyDiff> {
    if let Some(current) = current
        && same_document(current, rendered)
    {
        return None;
    }
    let now = statements(current.unwrap_or("{}"), thing.as_str());
    let want = statements(rendered, thing.as_str());
    let key = |v: &Value| v.to_string();
    let now_keys: BTreeSet<String> = now.iter().map(key).collect();
    let want_keys: BTreeSet<String> = want.iter().map(key).collect();
    let mut added: Vec<Value> = want.iter().filter(|v| !now_keys.contains(&key(v))).cloned().collect();
    let mut removed: Vec<Value> = now.iter().filter(|v| !want_keys.contains(&key(v))).cloned().collect();
    if added.is_empty() && removed.is_empty() && current.is_some() {
        // The same statements, another document (its Version, say): show the documents whole.
        added = vec![generalize(canonical(parse(rendered)), thing.as_str())];
        removed = vec![generalize(canonical(parse(current.unwrap_or("{}"))), thing.as_str())];
    }
    let access = Box::new(access::access_diff(current, rendered, thing.as_str()));
    Some(PolicyDiff { missing: current.is_none(), added, removed, access })
}

fn parse(document: &str) -> Value {
    serde_json::from_str(document).unwrap_or_else(|_| Value::String(document.to_owned()))
}

/// A document's statements, canonical and with the thing name generalized; a document without a Statement
/// list is one statement.
fn statements(document: &str, thing: &str) -> Vec<Value> {
    let doc = parse(document);
    let list = match doc.get("Statement") {
        Some(Value::Array(list)) => list.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ if document == "{}" => Vec::new(),
        _ => vec![doc],
    };
    list.into_iter().map(|s| generalize(canonical(s), thing)).collect()
}

/// Object keys sorted, recursively (serde_json keeps insertion order in this workspace).
fn canonical(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().map(|(k, v)| (k, canonical(v))).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().collect())
        }
        Value::Array(list) => Value::Array(list.into_iter().map(canonical).collect()),
        other => other,
    }
}

/// Every string with `/<thing>` (followed by `/` or its end) written `/{{ thing_name }}`.
fn generalize(value: Value, thing: &str) -> Value {
    match value {
        Value::String(s) => Value::String(replace_thing(&s, thing)),
        Value::Array(list) => Value::Array(list.into_iter().map(|v| generalize(v, thing)).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, generalize(v, thing))).collect()),
        other => other,
    }
}

fn replace_thing(s: &str, thing: &str) -> String {
    let needle = format!("/{thing}");
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find(&needle) {
        let after = &rest[at + needle.len()..];
        out.push_str(&rest[..at]);
        if after.is_empty() || after.starts_with('/') {
            out.push('/');
            out.push_str(THING_PLACEHOLDER);
        } else {
            out.push_str(&needle);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Devices that share one change: how many, and the first [`EXAMPLES`] thing names (in name order).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group<K> {
    /// The change (or reason, status, why) the devices share.
    #[serde(flatten)]
    pub change: K,
    /// How many devices.
    pub devices: u64,
    /// Up to [`EXAMPLES`] of their things, by name.
    pub examples: Vec<String>,
}

/// A rejection group's key: the reason, and the message of its first example.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejected {
    /// The reason code.
    pub reason: ReasonCode,
    /// The first example's message.
    pub message: String,
}

/// A retired group's key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retired {
    /// The certificate status.
    pub status: CertificateStatus,
}

/// An unaccounted group's key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Why {
    /// Why the device is unaccounted for.
    pub why: Unaccounted,
}

/// An orphaned group's key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Orphaned {
    /// The jitp policy names attached to the first example.
    pub policies: Vec<String>,
}

/// An ACTIVE certificate with a jitp policy attached that no thing jitp made names as its owner.
#[derive(Debug, Clone, PartialEq)]
pub struct Orphan {
    /// The certificate.
    pub id: CertificateId,
    /// Its ARN.
    pub arn: String,
    /// The policies attached to it whose names start with a profile's `policy_prefix`.
    pub policies: Vec<String>,
}

/// A device whose calls failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceError {
    /// Its thing.
    pub thing: String,
    /// What failed.
    pub message: String,
}

/// Devices per group. A device with both a policy and a thing change counts in both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    /// Every thing listed.
    pub devices: u64,
    /// Nothing would change.
    pub unchanged: u64,
    /// The policy would change.
    pub policy_changes: u64,
    /// The thing would change.
    pub thing_changes: u64,
    /// Today's configuration would refuse the ACTIVE certificate.
    pub would_reject: u64,
    /// INACTIVE or REVOKED.
    pub retired: u64,
    /// Not accounted for.
    pub unaccounted: u64,
    /// The plan could not look.
    pub errors: u64,
    /// ACTIVE certificates with a jitp policy that no thing jitp made names (not devices: not in `devices`).
    #[serde(default)]
    pub orphaned: u64,
}

impl Counts {
    /// Devices with drift, each once: a policy or thing change, a rejection today, or unaccounted for (a device
    /// with a policy and a thing change counts once here, twice in the groups). Not the unchanged, not those the
    /// plan could not look at, and not the retired: a revoked or inactive certificate is an ending, not drift
    /// (`--apply --revoke` makes them), so a report alarming on this number returns to OK after an apply. The
    /// plan's `drift` flag (the CLI's exit 1) counts the retired too.
    pub fn drifted(&self) -> u64 {
        self.devices
            .saturating_sub(self.unchanged)
            .saturating_sub(self.retired)
            .saturating_sub(self.errors)
            .saturating_add(self.orphaned)
    }

    /// Add `other`'s devices to these (the counts of disjoint shards sum to the counts of their union).
    pub fn add(&mut self, other: &Counts) {
        let Counts {
            devices,
            unchanged,
            policy_changes,
            thing_changes,
            would_reject,
            retired,
            unaccounted,
            errors,
            orphaned,
        } = other;
        self.orphaned = self.orphaned.saturating_add(*orphaned);
        self.devices = self.devices.saturating_add(*devices);
        self.unchanged = self.unchanged.saturating_add(*unchanged);
        self.policy_changes = self.policy_changes.saturating_add(*policy_changes);
        self.thing_changes = self.thing_changes.saturating_add(*thing_changes);
        self.would_reject = self.would_reject.saturating_add(*would_reject);
        self.retired = self.retired.saturating_add(*retired);
        self.unaccounted = self.unaccounted.saturating_add(*unaccounted);
        self.errors = self.errors.saturating_add(*errors);
    }
}

/// The plan: `jitp reconcile --plan --format json` prints this (its shape is pinned by a test and documented in
/// the README).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The decision time, RFC 3339.
    pub at: String,
    /// The configuration decided with.
    pub config: String,
    /// Anything in a group other than `unchanged`.
    pub drift: bool,
    /// Devices per group.
    pub counts: Counts,
    /// Distinct policy changes, most devices first.
    pub policy_changes: Vec<Group<PolicyDiff>>,
    /// Distinct thing changes, most devices first.
    pub thing_changes: Vec<Group<ThingDiff>>,
    /// Rejections by reason code, most devices first.
    pub would_reject: Vec<Group<Rejected>>,
    /// Retired certificates by status.
    pub retired: Vec<Group<Retired>>,
    /// Unaccounted devices by why.
    pub unaccounted: Vec<Group<Why>>,
    /// ACTIVE certificates with a jitp policy that no thing jitp made names: the thing was deleted, or names
    /// another certificate now. Examples are certificate ids. Only the whole plan looks for them
    /// ([`Reconciler::plan`]); a shard's plan does not.
    pub orphaned: Vec<Group<Orphaned>>,
    /// Devices whose calls failed (the plan is incomplete when this is not empty).
    pub errors: Vec<DeviceError>,
    /// Calls made, by operation.
    pub calls: BTreeMap<Operation, u32>,
}

#[derive(Debug)]
struct Entry<K> {
    change: K,
    devices: u64,
    examples: BTreeSet<String>,
}

#[derive(Debug)]
struct Groups<K>(BTreeMap<String, Entry<K>>);

impl<K> Default for Groups<K> {
    fn default() -> Self {
        Self(BTreeMap::new())
    }
}

impl<K> Groups<K> {
    /// Count `thing` under `key`; the change kept is the one of the group's first example by name (so a
    /// rejection group shows the message of the thing it lists first, whatever order devices were looked at).
    fn add(&mut self, key: String, change: K, thing: &str) {
        match self.0.get_mut(&key) {
            None => {
                let examples = BTreeSet::from([thing.to_owned()]);
                self.0.insert(key, Entry { change, devices: 1, examples });
            }
            Some(entry) => {
                entry.devices += 1;
                if entry.examples.first().is_none_or(|first| thing < first.as_str()) {
                    entry.change = change;
                }
                entry.examples.insert(thing.to_owned());
                if entry.examples.len() > EXAMPLES {
                    entry.examples.pop_last();
                }
            }
        }
    }

    fn finish(self) -> Vec<Group<K>> {
        let mut groups: Vec<(String, Group<K>)> = self
            .0
            .into_iter()
            .map(|(key, e)| {
                (key, Group { change: e.change, devices: e.devices, examples: e.examples.into_iter().collect() })
            })
            .collect();
        groups.sort_by(|a, b| b.1.devices.cmp(&a.1.devices).then_with(|| a.0.cmp(&b.0)));
        groups.into_iter().map(|(_, g)| g).collect()
    }
}

/// Groups assessed devices into a [`Plan`] (pure: the same devices in any order make the same plan).
#[derive(Debug, Default)]
pub struct PlanBuilder {
    counts: Counts,
    policy: Groups<PolicyDiff>,
    thing: Groups<ThingDiff>,
    rejected: Groups<Rejected>,
    retired: Groups<Retired>,
    unaccounted: Groups<Why>,
    orphaned: Groups<Orphaned>,
    errors: Vec<DeviceError>,
}

fn key_of(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

impl PlanBuilder {
    /// Count one device.
    pub fn add(&mut self, thing: &ThingName, assessment: Assessment) {
        let name = thing.as_str();
        self.counts.devices += 1;
        match assessment {
            Assessment::Unchanged => self.counts.unchanged += 1,
            Assessment::Drift { policy, thing } => {
                if let Some(diff) = policy {
                    self.counts.policy_changes += 1;
                    self.policy.add(key_of(&diff), diff, name);
                }
                if let Some(diff) = thing {
                    self.counts.thing_changes += 1;
                    self.thing.add(key_of(&diff), diff, name);
                }
            }
            Assessment::WouldReject(Rejection { reason, message }) => {
                self.counts.would_reject += 1;
                self.rejected.add(reason.to_string(), Rejected { reason, message }, name);
            }
            Assessment::Retired(status) => {
                self.counts.retired += 1;
                self.retired.add(status.to_string(), Retired { status }, name);
            }
            Assessment::Unaccounted(why) => {
                self.counts.unaccounted += 1;
                self.unaccounted.add(key_of(&why), Why { why }, name);
            }
        }
    }

    /// Count an orphaned certificate (not a device: `devices` is unchanged).
    pub fn orphan(&mut self, orphan: &Orphan) {
        self.counts.orphaned += 1;
        let change = Orphaned { policies: orphan.policies.clone() };
        self.orphaned.add("orphaned".to_owned(), change, orphan.id.as_str());
    }

    /// Count a device the plan could not look at.
    pub fn error(&mut self, thing: &ThingName, error: &Error) {
        self.counts.devices += 1;
        self.counts.errors += 1;
        self.errors.push(DeviceError { thing: thing.to_string(), message: error.to_string() });
    }

    /// The plan, decided at `now` with the configuration at `config`, having made `calls`.
    pub fn finish(mut self, now: i64, config: &str, calls: BTreeMap<Operation, u32>) -> Plan {
        self.errors.sort_by(|a, b| a.thing.cmp(&b.thing));
        let c = &self.counts;
        let drift = c.policy_changes + c.thing_changes + c.would_reject + c.retired + c.unaccounted + c.orphaned > 0;
        Plan {
            at: rfc3339(now),
            config: config.to_owned(),
            drift,
            counts: self.counts,
            policy_changes: self.policy.finish(),
            thing_changes: self.thing.finish(),
            would_reject: self.rejected.finish(),
            retired: self.retired.finish(),
            unaccounted: self.unaccounted.finish(),
            orphaned: self.orphaned.finish(),
            errors: self.errors,
            calls,
        }
    }
}

/// One device as the inventory found it: its thing as listed, its certificate id (when `jitp_certificate` is
/// one), and what was observed (or why the calls failed).
struct Looked<'c> {
    thing: ThingDescription,
    id: Option<CertificateId>,
    observed: Result<Observed<'c>, Error>,
}

impl Looked<'_> {
    fn assessment(&self) -> Result<Assessment, &Error> {
        let observed = self.observed.as_ref()?;
        Ok(match &self.id {
            Some(id) => assess(&self.thing, id, observed),
            None => Assessment::Unaccounted(Unaccounted::BadCertificateId),
        })
    }
}

/// Makes plans over a registry. Every call goes through the workflow's paced, retried calls.
pub struct Reconciler {
    rules: Arc<Rules>,
    registry: Arc<dyn IotRegistry>,
    settings: Settings,
    pacer: Pacer,
    page_size: u32,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler").field("config", &self.rules.config().path).finish_non_exhaustive()
    }
}

/// What one run remembers: CAs (one DescribeCACertificate per CA), shared policies (one GetPolicy per name).
struct Memo {
    cas: CaCache,
    shared: tokio::sync::Mutex<HashMap<PolicyName, Option<String>>>,
}

impl Default for Memo {
    fn default() -> Self {
        Self { cas: CaCache::for_run(), shared: tokio::sync::Mutex::default() }
    }
}

impl Reconciler {
    /// A reconciler over `registry` with today's `rules`; `settings` as the workflow's (pacing, retries, the
    /// template context).
    pub fn new(rules: Arc<Rules>, registry: Arc<dyn IotRegistry>, settings: Settings) -> Self {
        let pacer = settings.pacer(rules.config());
        Self { rules, registry, settings, pacer, page_size: MAX_THINGS_PER_PAGE }
    }

    /// Ask for pages of at most `things` (default and most: 250).
    pub fn with_page_size(mut self, things: u32) -> Self {
        self.page_size = things.clamp(1, MAX_THINGS_PER_PAGE);
        self
    }

    /// The plan at `now`: every listing, page by page, each device re-decided and compared. Read-only. A failed
    /// ListThings fails the plan; a device whose own calls fail is listed under `errors`.
    pub async fn plan(&self, now: i64) -> Result<Plan, Error> {
        self.plan_of(&Shard::all(1), now, true).await
    }

    /// The plan of one shard at `now`: the devices whose `jitp_certificate` starts with its prefix, and only
    /// those (a scheduled drift report plans the fleet shard by shard and sums the counts). Read-only. A failed
    /// ListThings fails it; a device whose own calls fail is listed under `errors`.
    pub async fn plan_shard(&self, shard: &Shard, now: i64) -> Result<Plan, Error> {
        self.plan_of(std::slice::from_ref(shard), now, false).await
    }

    async fn plan_of(&self, shards: &[Shard], now: i64, orphans: bool) -> Result<Plan, Error> {
        let gate = CallGate::new(self.registry.as_ref(), &self.settings, &self.pacer);
        let memo = Memo::default();
        let concurrency = self.concurrency();
        let mut builder = PlanBuilder::default();
        let mut owners: std::collections::HashSet<CertificateId> = std::collections::HashSet::new();
        for filter in shards.iter().map(|shard| shard.listing(self.page_size)) {
            let mut token: Option<String> = None;
            loop {
                let page = gate.must(Operation::ListThings, |r| r.list_things(&filter, token.as_deref())).await?;
                for looked in self.look_page(page.things, now, &gate, &memo, concurrency).await {
                    owners.extend(looked.id.clone());
                    match looked.assessment() {
                        Ok(assessment) => builder.add(&looked.thing.name, assessment),
                        Err(e) => builder.error(&looked.thing.name, e),
                    }
                }
                match page.next_token {
                    Some(next) if Some(&next) != token.as_ref() => token = Some(next),
                    _ => break,
                }
            }
        }
        if orphans {
            for orphan in self.orphans(&owners, &gate, concurrency).await? {
                builder.orphan(&orphan);
            }
        }
        let config = self.rules.config().path.display().to_string();
        Ok(builder.finish(now, &config, gate.into_calls().by_operation))
    }

    /// ACTIVE certificates of the CAs the profiles serve that carry a policy named with a profile's
    /// `policy_prefix` and that no thing of the inventory (`owners`: every certificate a listed thing names)
    /// names: certificates jitp activated whose thing was deleted or now names another certificate.
    ///
    /// Found by ListCACertificates, then ListCertificatesByCA per CA a profile serves (pages of 250, with the
    /// status), then ListAttachedPolicies of each ACTIVE certificate no listed thing names. A fleet whose
    /// certificates all belong to its things costs one call per 250 certificates; only candidates cost more.
    pub(crate) async fn orphans(
        &self,
        owners: &std::collections::HashSet<CertificateId>,
        gate: &CallGate<'_>,
        concurrency: usize,
    ) -> Result<Vec<Orphan>, Error> {
        let config = self.rules.config();
        let cas = gate.must(Operation::ListCACertificates, |r| r.list_ca_certificates()).await?;
        let mut found = Vec::new();
        for ca in cas.iter().filter(|id| config.profiles.iter().any(|p| p.ca.matches(id))) {
            let mut marker: Option<String> = None;
            loop {
                let page = gate
                    .must(Operation::ListCertificatesByCA, |r| r.list_certificates_by_ca(ca, marker.as_deref()))
                    .await?;
                let candidates = page
                    .certificates
                    .into_iter()
                    .filter(|c| c.status == CertificateStatus::Active && !owners.contains(&c.id));
                let looked: Vec<Result<Option<Orphan>, Error>> = futures::stream::iter(candidates)
                    .map(|c| async move {
                        let attached = gate
                            .optional(Operation::ListAttachedPolicies, |r| r.list_attached_policies(&c.arn))
                            .await?
                            .unwrap_or_default();
                        let policies: Vec<String> = attached
                            .iter()
                            .map(|p| p.to_string())
                            .filter(|p| config.profiles.iter().any(|profile| p.starts_with(&profile.policy_prefix)))
                            .collect();
                        Ok((!policies.is_empty()).then_some(Orphan { id: c.id, arn: c.arn, policies }))
                    })
                    .buffer_unordered(concurrency)
                    .collect()
                    .await;
                for orphan in looked {
                    found.extend(orphan?);
                }
                match page.next_marker {
                    Some(next) if Some(&next) != marker.as_ref() => marker = Some(next),
                    _ => break,
                }
            }
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found)
    }

    /// Devices in flight: enough to keep the lanes busy, few enough that the queue on the slowest lane a device
    /// uses stays within half the retry deadline (a call that waits longer for its slot fails). With AWS's
    /// defaults that is [`CONCURRENCY`]; with a small share of the quotas (`--quota-instances`) it is fewer.
    fn concurrency(&self) -> usize {
        let slowest = [Operation::DescribeCertificate, Operation::ListThingPrincipals, Operation::GetPolicy]
            .into_iter()
            .filter_map(|op| self.pacer.ceiling(op))
            .min_by(f64::total_cmp);
        match slowest {
            None => CONCURRENCY,
            Some(rate) => {
                let queue = rate * self.settings.retry_deadline.as_secs_f64() / 2.0;
                if queue.is_finite() && queue >= 1.0 { (queue as usize).min(CONCURRENCY) } else { 1 }
            }
        }
    }

    /// One page of the inventory, its devices looked at `concurrency` at a time.
    async fn look_page<'s>(
        &'s self,
        things: Vec<ThingDescription>,
        now: i64,
        gate: &CallGate<'_>,
        memo: &Memo,
        concurrency: usize,
    ) -> Vec<Looked<'s>> {
        futures::stream::iter(things)
            .map(|thing| async move {
                let owner = thing.attributes.get(CERTIFICATE_ATTRIBUTE).map(String::as_str).unwrap_or_default();
                let (id, observed) = match owner.parse::<CertificateId>() {
                    Ok(id) => {
                        let observed = self.observe(&thing, &id, now, gate, memo).await;
                        (Some(id), observed)
                    }
                    Err(_) => (None, Ok(Observed::BadCertificateId)),
                };
                Looked { thing, id, observed }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await
    }

    async fn observe(
        &self,
        thing: &ThingDescription,
        id: &CertificateId,
        now: i64,
        gate: &CallGate<'_>,
        memo: &Memo,
    ) -> Result<Observed<'_>, Error> {
        let name = &thing.name;
        let (described, principals) = tokio::join!(
            gate.optional(Operation::DescribeCertificate, |r| r.describe_certificate(id)),
            gate.optional(Operation::ListThingPrincipals, |r| r.list_thing_principals(name)),
        );
        let Some(cert) = described? else { return Ok(Observed::CertificateMissing) };
        let principals = principals?.unwrap_or_default(); // none: deleted since it was listed
        if !principals.contains(&cert.arn) {
            return Ok(Observed::NotAttached);
        }
        if cert.status != CertificateStatus::Active {
            return Ok(Observed::Status(cert.status));
        }
        let Some(ca_id) = &cert.ca_certificate_id else { return Ok(Observed::CaNotNamed) };
        let ca = memo.cas.get(ca_id, self.rules.config(), gate).await?;
        let ca = match ca.usable() {
            Ok(ca) => ca,
            Err(rejection) => return Ok(Observed::Refused(rejection, None)),
        };
        let input = Input { certificate_pem: cert.pem.as_bytes(), ca, now, aws: &self.settings.aws };
        let arn = &cert.arn;
        let attached = || async {
            Ok::<_, Error>(
                gate.optional(Operation::ListAttachedPolicies, |r| r.list_attached_policies(arn))
                    .await?
                    .unwrap_or_default(),
            )
        };
        let proven = |attached: &[PolicyName]| {
            let ours = jitp_policy_names(self.rules.config(), name);
            attached.iter().any(|p| ours.contains(p.as_str()))
        };
        let verdict = match decide::decide(&self.rules, &input) {
            Ok(verdict) => verdict,
            Err(refusal) => {
                if !proven(&attached().await?) {
                    return Ok(Observed::NoJitpPolicy);
                }
                return Ok(Observed::Refused(refusal.rejection, refusal.profile));
            }
        };
        let (current_policy, attached) = tokio::join!(self.policy(&verdict, gate, memo), attached());
        if !proven(&attached?) {
            return Ok(Observed::NoJitpPolicy);
        }
        Ok(Observed::Accepted { verdict: Box::new(verdict), current_policy: current_policy? })
    }

    /// The default document of the verdict's policy (`None`: no such policy); a shared policy is read once.
    async fn policy(&self, verdict: &Verdict<'_>, gate: &CallGate<'_>, memo: &Memo) -> Result<Option<String>, Error> {
        let name = &verdict.policy.name;
        let fetch = || async {
            Ok::<_, Error>(gate.optional(Operation::GetPolicy, |r| r.get_policy(name)).await?.map(|p| p.document))
        };
        if verdict.policy_mode != PolicyMode::Shared {
            return fetch().await;
        }
        let mut shared = memo.shared.lock().await;
        if let Some(document) = shared.get(name) {
            return Ok(document.clone());
        }
        let document = fetch().await?;
        shared.insert(name.clone(), document.clone());
        Ok(document)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jitp_pki::reason::reject;

    fn thing(name: &str) -> ThingName {
        name.parse().unwrap_or_else(|e| unreachable!("{e}"))
    }

    const V1: &str = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:r:1:client/sensor-1"},
        {"Effect":"Allow","Action":"iot:Publish","Resource":["arn:aws:iot:r:1:topic/things/sensor-1/*"]}]}"#;

    #[test]
    fn the_thing_name_is_generalized_only_as_a_whole_path_segment() {
        assert_eq!(replace_thing("client/sensor-1", "sensor-1"), "client/{{ thing_name }}");
        assert_eq!(
            replace_thing("topic/things/sensor-1/x/sensor-1", "sensor-1"),
            "topic/things/{{ thing_name }}/x/{{ thing_name }}"
        );
        assert_eq!(replace_thing("topic/sensor-10/x", "sensor-1"), "topic/sensor-10/x");
        assert_eq!(replace_thing("sensor-1", "sensor-1"), "sensor-1");
    }

    #[test]
    fn a_narrowed_statement_is_one_removed_and_one_added_the_same_for_every_thing() {
        let v2 = |name: &str| {
            V1.replace("sensor-1", name).replace(&format!("things/{name}/*"), &format!("things/{name}/telemetry"))
        };
        let one = policy_diff(Some(V1), &v2("sensor-1"), &thing("sensor-1")).unwrap();
        let other =
            policy_diff(Some(&V1.replace("sensor-1", "sensor-2")), &v2("sensor-2"), &thing("sensor-2")).unwrap();
        assert_eq!(one, other, "the same change, once generalized");
        assert!(!one.missing);
        assert_eq!(one.removed.len(), 1);
        assert_eq!(one.added.len(), 1);
        assert_eq!(one.added[0]["Resource"][0], "arn:aws:iot:r:1:topic/things/{{ thing_name }}/telemetry");
        // Key order and whitespace do not make a change.
        let reordered = r#"{"Statement":[{"Resource":"arn:aws:iot:r:1:client/sensor-1","Action":"iot:Connect","Effect":"Allow"},
            {"Effect":"Allow","Action":"iot:Publish","Resource":["arn:aws:iot:r:1:topic/things/sensor-1/*"]}],"Version":"2012-10-17"}"#;
        assert_eq!(policy_diff(Some(reordered), V1, &thing("sensor-1")), None);
        // No policy: everything is added.
        let missing = policy_diff(None, V1, &thing("sensor-1")).unwrap();
        assert!(missing.missing && missing.removed.is_empty() && missing.added.len() == 2);
        // Same statements, another Version: the documents whole.
        let other_version = V1.replace("2012-10-17", "2008-10-17");
        let whole = policy_diff(Some(&other_version), V1, &thing("sensor-1")).unwrap();
        assert_eq!((whole.added.len(), whole.removed.len()), (1, 1));
    }

    #[test]
    fn groups_count_every_device_keep_three_examples_by_name_and_do_not_depend_on_order() {
        let diff = policy_diff(Some("{}"), V1, &thing("sensor-1")).unwrap();
        let assessments = |names: &[&str]| {
            let mut b = PlanBuilder::default();
            for n in names {
                b.add(&thing(n), Assessment::Drift { policy: Some(diff.clone()), thing: None });
                b.add(&thing(&format!("x{n}")), Assessment::WouldReject(reject!(CertDenied, "{n} is denied")));
            }
            b.add(&thing("u"), Assessment::Unchanged);
            b.add(&thing("r"), Assessment::Retired(CertificateStatus::Revoked));
            b.add(&thing("q"), Assessment::Unaccounted(Unaccounted::CertificateMissing));
            b.finish(0, "jitp.toml", BTreeMap::new())
        };
        let plan = assessments(&["d", "b", "a", "c", "e"]);
        assert_eq!(plan, assessments(&["a", "b", "c", "d", "e"]));
        assert!(plan.drift);
        assert_eq!(plan.counts.devices, 13);
        assert_eq!((plan.counts.policy_changes, plan.counts.would_reject, plan.counts.unchanged), (5, 5, 1));
        assert_eq!(plan.policy_changes.len(), 1);
        assert_eq!(plan.policy_changes[0].devices, 5);
        assert_eq!(plan.policy_changes[0].examples, ["a", "b", "c"]);
        assert_eq!(plan.would_reject[0].change.message, "a is denied", "the first example's message");
        let quiet = {
            let mut b = PlanBuilder::default();
            b.add(&thing("u"), Assessment::Unchanged);
            b.finish(0, "jitp.toml", BTreeMap::new())
        };
        assert!(!quiet.drift);
    }
}

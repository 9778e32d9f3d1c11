//! An in-memory [`IotRegistry`] with AWS IoT's semantics: the backend of the demo, the tests and the benches.
//!
//! It keeps what matters to jitp the way AWS does: certificate statuses and legal transitions, CreateThing
//! idempotent for an identical configuration and AlreadyExists otherwise, CreatePolicy AlreadyExists, at most
//! 5 policy versions, policy tags (at most 50, AWS's key and value limits), attachments, exclusive thing
//! principals. On top: token-bucket quotas per API, scripted
//! faults (before or after the write takes effect, and latency), an invariant check after every call, an optional
//! log of every call's span (which calls overlapped), and a persistence file so `jitp provision --registry
//! memory:PATH` can be run repeatedly.
//!
//! Known difference: AWS requires thing types and thing groups to exist before CreateThing and
//! AddThingToThingGroup name them; this registry accepts any, so that the demo and tests need no account setup.
//! The workflow reports AWS's NotFound for a missing thing type as a setup error naming the type.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::event::CertificateStatus;
use crate::pacing::Quotas;
use crate::registry::{
    CaDescription, CaStatus, CertificateDescription, CertificatePage, CertificateSummary, IotRegistry,
    MAX_THINGS_PER_PAGE, Operation, PolicyDescription, PolicyVersion, RegistryError, ThingDescription, ThingFilter,
    ThingNamePage, ThingPage, ThingSpec,
};
use crate::thing::ThingName;
use jitp_pki::ids::{CaCertificateId, CertificateId, PolicyName};

/// AWS IoT keeps at most this many versions of a policy.
pub const MAX_POLICY_VERSIONS: usize = 5;
/// AWS IoT's tag limits (the `Tag` type of its API reference; "user-defined tags per resource" in the tagging
/// guide): at most 50 tags a resource, a key of 1 to 128 characters, a value of at most 256.
pub const MAX_TAGS_PER_RESOURCE: usize = 50;
/// The longest tag key.
pub const MAX_TAG_KEY_CHARS: usize = 128;
/// The longest tag value.
pub const MAX_TAG_VALUE_CHARS: usize = 256;

/// A scripted fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Throttled before the call takes effect.
    ThrottleBefore,
    /// 5xx before the call takes effect.
    UnavailableBefore,
    /// The call takes effect, then the answer is lost (5xx): the caller cannot know it worked.
    UnavailableAfter,
    /// The call is delayed.
    Latency(Duration),
}

/// One call as the registry saw it, from its arrival (before any latency) to its answer: the log
/// [`MemoryRegistry::with_call_log`] keeps, for tests that check which calls overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallSpan {
    /// Which API.
    pub op: Operation,
    /// When the call arrived.
    pub started: Instant,
    /// When it answered (after the write, or at the throttle or fault that refused it).
    pub ended: Instant,
}

/// What admission tells the write that follows it.
#[derive(Debug, Clone, Copy)]
struct Admitted {
    /// Answer Unavailable after the write (a scripted UnavailableAfter).
    fail_after: bool,
    started: Instant,
}

/// Inject `kind` on the `nth` (1-based) call of `op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// Which API.
    pub op: Operation,
    /// Which call of it (1-based, counted per registry).
    pub nth: u64,
    /// What happens.
    pub kind: FaultKind,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Cert {
    pem: String,
    status: Option<CertificateStatus>,
    ca: Option<CaCertificateId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ca {
    pem: String,
    status: CaStatus,
    auto_registration: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Thing {
    thing_type: Option<String>,
    attributes: BTreeMap<String, String>,
    groups: BTreeSet<String>,
    /// AWS IoT's thing version: 1 at creation, +1 on every UpdateThing.
    #[serde(default = "first_version")]
    version: i64,
}

fn first_version() -> i64 {
    1
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Policy {
    versions: BTreeMap<u64, String>,
    default: u64,
    next: u64,
    /// TagResource's tags (policies are taggable in AWS IoT).
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

/// Everything the registry holds (the persistence file is this, as JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    account: String,
    region: String,
    certificates: BTreeMap<CertificateId, Cert>,
    cas: BTreeMap<CaCertificateId, Ca>,
    things: BTreeMap<ThingName, Thing>,
    policies: BTreeMap<PolicyName, Policy>,
    /// principal ARN -> policies
    policy_targets: BTreeMap<String, BTreeSet<PolicyName>>,
    /// thing -> principal ARNs
    thing_principals: BTreeMap<ThingName, BTreeSet<String>>,
    /// principal ARN -> (thing, exclusive)
    principal_things: BTreeMap<String, BTreeMap<ThingName, bool>>,
}

#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.rate.max(1.0));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Default)]
struct Runtime {
    calls: HashMap<Operation, u64>,
    throttled: HashMap<Operation, u64>,
    buckets: HashMap<Operation, Bucket>,
    faults: Vec<Fault>,
    violations: Vec<String>,
    /// Every call waits a uniformly random time in this range, as a call to AWS does (tens of ms).
    latency: Option<(Duration, Duration)>,
    /// Every call's span, when [`MemoryRegistry::with_call_log`] asked for it.
    log: Option<Vec<CallSpan>>,
    /// ListThings pages hold at most this many things, whatever `maxResults` asks ([`MemoryRegistry::with_page_size`]).
    page_size: Option<u32>,
}

/// ListThings' `nextToken` of this registry: the name of the last thing of the page before. AWS's tokens are
/// opaque; callers only pass them back.
const THINGS_TOKEN: &str = "jitp-memory-things-after:";
/// ListCertificatesByCA's `nextMarker` of this registry: the id of the last certificate of the page before.
const CERTIFICATES_MARKER: &str = "jitp-memory-certificates-after:";

/// The in-memory registry.
#[derive(Debug)]
pub struct MemoryRegistry {
    state: Mutex<State>,
    runtime: Mutex<Runtime>,
    path: Option<PathBuf>,
}

impl Default for MemoryRegistry {
    fn default() -> Self {
        Self::new()
    }
}

fn cert_arn(state: &State, id: &CertificateId) -> String {
    format!("arn:aws:iot:{}:{}:cert/{id}", state.region, state.account)
}

fn policy_arn(state: &State, name: &PolicyName) -> String {
    format!("arn:aws:iot:{}:{}:policy/{name}", state.region, state.account)
}

/// The policy a resource ARN names, as AWS IoT resolves it: this account and region's policies only.
fn tagged_policy<'s>(state: &'s mut State, arn: &str) -> Result<&'s mut Policy, RegistryError> {
    let prefix = format!("arn:aws:iot:{}:{}:policy/", state.region, state.account);
    let name = arn.strip_prefix(&prefix).and_then(|n| n.parse::<PolicyName>().ok());
    name.and_then(|n| state.policies.get_mut(&n)).ok_or_else(|| RegistryError::NotFound(format!("resource {arn}")))
}

/// AWS IoT's checks of the tags of one TagResource request.
fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), RegistryError> {
    for (key, value) in tags {
        let key_chars = key.chars().count();
        if !(1..=MAX_TAG_KEY_CHARS).contains(&key_chars) {
            return Err(RegistryError::InvalidRequest(format!(
                "tag key {key:?} has {key_chars} characters; 1 to {MAX_TAG_KEY_CHARS} are allowed"
            )));
        }
        if key.starts_with("aws:") {
            return Err(RegistryError::InvalidRequest(format!("tag key {key:?}: the aws: prefix is reserved")));
        }
        let value_chars = value.chars().count();
        if value_chars > MAX_TAG_VALUE_CHARS {
            return Err(RegistryError::InvalidRequest(format!(
                "tag {key:?}: the value has {value_chars} characters; at most {MAX_TAG_VALUE_CHARS} are allowed"
            )));
        }
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the maps half-written in a way that matters to a test
    // registry; keep serving.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MemoryRegistry {
    /// An empty registry for account 123456789012 in us-east-1, no quotas, no faults.
    pub fn new() -> Self {
        let state = State { account: "123456789012".into(), region: "us-east-1".into(), ..State::default() };
        Self { state: Mutex::new(state), runtime: Mutex::default(), path: None }
    }

    /// Open a persistence file (a missing file starts empty); [`MemoryRegistry::save`] writes it back.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, RegistryError> {
        let path = path.as_ref().to_path_buf();
        let mut registry = Self::new();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let state: State = serde_json::from_slice(&bytes).map_err(|e| RegistryError::File {
                    path: path.clone(),
                    message: format!("line {}: not a jitp memory registry file: {e}", e.line()),
                })?;
                registry.state = Mutex::new(state);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(RegistryError::File { path, message: format!("cannot read it: {e}") }),
        }
        registry.path = Some(path);
        Ok(registry)
    }

    /// Write the state to the persistence file, atomically (temp file + rename).
    pub fn save(&self) -> Result<(), RegistryError> {
        let Some(path) = &self.path else { return Ok(()) };
        let json = serde_json::to_vec_pretty(&*lock(&self.state)).unwrap_or_default();
        let tmp = path.with_extension("tmp");
        let failed = |path: &Path, e: std::io::Error| RegistryError::File {
            path: path.to_owned(),
            message: format!("cannot write it: {e}"),
        };
        std::fs::write(&tmp, json).map_err(|e| failed(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| failed(path, e))
    }

    /// Enforce token-bucket quotas (requests per second per API), each bucket holding a second's worth (at
    /// least one call), as AWS's do. Scale them with [`Quotas::scaled`].
    pub fn with_quotas(self, quotas: &Quotas) -> Self {
        {
            let mut rt = lock(&self.runtime);
            for (op, rate) in quotas.iter() {
                rt.buckets.insert(op, Bucket { rate, tokens: rate.max(1.0), last: Instant::now() });
            }
        }
        self
    }

    /// Empty every quota bucket now, so that the calls that follow run at the quotas' sustained rate from the
    /// first one, without the first second's burst a full bucket allows (`jitp demo` measures rates this way).
    pub fn empty_buckets(&self) {
        let mut rt = lock(&self.runtime);
        let now = Instant::now();
        for bucket in rt.buckets.values_mut() {
            bucket.tokens = 0.0;
            bucket.last = now;
        }
    }

    /// Delay every call by a uniformly random time in `min..=max`, before it takes effect, so that concurrent
    /// events interleave as widely as they do against AWS (tens of milliseconds a call).
    pub fn with_latency(self, min: Duration, max: Duration) -> Self {
        lock(&self.runtime).latency = Some((min, max.max(min)));
        self
    }

    /// Cap ListThings pages at `things` (at least 1), so that tests page through a few things as a fleet pages
    /// through 250 a page.
    pub fn with_page_size(self, things: u32) -> Self {
        lock(&self.runtime).page_size = Some(things.max(1));
        self
    }

    /// Keep a log of every call's span (arrival to answer), for [`MemoryRegistry::call_log`].
    pub fn with_call_log(self) -> Self {
        lock(&self.runtime).log = Some(Vec::new());
        self
    }

    /// The calls made so far, in the order they answered (empty unless [`MemoryRegistry::with_call_log`]).
    pub fn call_log(&self) -> Vec<CallSpan> {
        lock(&self.runtime).log.clone().unwrap_or_default()
    }

    fn log(&self, op: Operation, started: Instant) {
        if let Some(log) = &mut lock(&self.runtime).log {
            log.push(CallSpan { op, started, ended: Instant::now() });
        }
    }

    /// Script faults.
    pub fn with_faults(self, faults: impl IntoIterator<Item = Fault>) -> Self {
        self.add_faults(faults);
        self
    }

    /// Script more faults on a registry in use (`nth` counts the calls made so far too), as a test that
    /// interleaves runs does to crash one of them.
    pub fn add_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        lock(&self.runtime).faults.extend(faults);
    }

    /// Register a CA as AWS's RegisterCACertificate does; its id is the SHA-256 of its DER.
    pub fn register_ca(&self, pem: &str, auto_registration: bool) -> Result<CaCertificateId, RegistryError> {
        let der = jitp_pki::cert::pem_to_der(pem.as_bytes()).map_err(|e| RegistryError::InvalidRequest(e.message))?;
        let id = CaCertificateId::of_der(&der);
        lock(&self.state).cas.entry(id.clone()).or_insert(Ca {
            pem: pem.to_owned(),
            status: CaStatus::Active,
            auto_registration,
        });
        Ok(id)
    }

    /// Set a CA's status.
    pub fn set_ca_status(&self, id: &CaCertificateId, status: CaStatus) {
        if let Some(ca) = lock(&self.state).cas.get_mut(id) {
            ca.status = status;
        }
    }

    /// What AWS IoT does on a device's first connection with an unknown certificate from an auto-registering CA:
    /// register it PENDING_ACTIVATION (idempotent). Its id is the SHA-256 of its DER.
    pub fn register_certificate(&self, pem: &str, ca: &CaCertificateId) -> Result<CertificateId, RegistryError> {
        let der = jitp_pki::cert::pem_to_der(pem.as_bytes()).map_err(|e| RegistryError::InvalidRequest(e.message))?;
        let id = CertificateId::of_der(&der);
        let mut state = lock(&self.state);
        if !state.cas.contains_key(ca) {
            return Err(RegistryError::NotFound(format!("CA {ca}")));
        }
        state.certificates.entry(id.clone()).or_insert(Cert {
            pem: pem.to_owned(),
            status: Some(CertificateStatus::PendingActivation),
            ca: Some(ca.clone()),
        });
        Ok(id)
    }

    /// A certificate's status.
    pub fn certificate_status(&self, id: &CertificateId) -> Option<CertificateStatus> {
        lock(&self.state).certificates.get(id).and_then(|c| c.status)
    }

    /// A certificate's ARN.
    pub fn certificate_arn(&self, id: &CertificateId) -> String {
        cert_arn(&lock(&self.state), id)
    }

    /// Things that exist.
    pub fn thing_names(&self) -> Vec<ThingName> {
        lock(&self.state).things.keys().cloned().collect()
    }

    /// Policies that exist, with their number of versions.
    pub fn policies(&self) -> BTreeMap<PolicyName, usize> {
        lock(&self.state).policies.iter().map(|(n, p)| (n.clone(), p.versions.len())).collect()
    }

    /// Policies attached to a certificate.
    pub fn attached_policies(&self, id: &CertificateId) -> Vec<PolicyName> {
        let state = lock(&self.state);
        state.policy_targets.get(&cert_arn(&state, id)).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    /// An operator's DeleteThing (the console's "delete", which detaches the thing's principals first): the
    /// certificates stay as they are, with their policies. For tests of what people do to the registry.
    pub fn operator_delete_thing(&self, name: &ThingName) {
        let mut state = lock(&self.state);
        if let Some(principals) = state.thing_principals.remove(name) {
            for principal in principals {
                if let Some(things) = state.principal_things.get_mut(&principal) {
                    things.remove(name);
                }
            }
        }
        state.things.remove(name);
    }

    /// An operator's CreateThing, or UpdateThing of every attribute, without any check (a script, a typo).
    pub fn operator_put_thing(&self, name: &ThingName, attributes: BTreeMap<String, String>) {
        let mut state = lock(&self.state);
        let thing = state.things.entry(name.clone()).or_default();
        thing.attributes = attributes;
        thing.version += 1;
    }

    /// An operator's AttachThingPrincipal (non-exclusive unless `exclusive`), without any check.
    pub fn operator_attach_thing(&self, name: &ThingName, id: &CertificateId, exclusive: bool) {
        let mut state = lock(&self.state);
        let arn = cert_arn(&state, id);
        state.principal_things.entry(arn.clone()).or_default().insert(name.clone(), exclusive);
        state.thing_principals.entry(name.clone()).or_default().insert(arn);
    }

    /// An operator's DetachPolicy.
    pub fn operator_detach_policy(&self, name: &PolicyName, id: &CertificateId) {
        let mut state = lock(&self.state);
        let arn = cert_arn(&state, id);
        if let Some(policies) = state.policy_targets.get_mut(&arn) {
            policies.remove(name);
        }
    }

    /// An operator's UpdateCertificate to any status, without AWS's transition rules.
    pub fn operator_set_status(&self, id: &CertificateId, status: CertificateStatus) {
        if let Some(cert) = lock(&self.state).certificates.get_mut(id) {
            cert.status = Some(status);
        }
    }

    /// The thing's attributes, if it exists.
    pub fn thing_attributes(&self, name: &ThingName) -> Option<BTreeMap<String, String>> {
        lock(&self.state).things.get(name).map(|t| t.attributes.clone())
    }

    /// The certificates (ARNs) a policy is attached to.
    pub fn policy_targets(&self, name: &PolicyName) -> Vec<String> {
        let state = lock(&self.state);
        state.policy_targets.iter().filter(|(_, p)| p.contains(name)).map(|(t, _)| t.clone()).collect()
    }

    /// The default version's document of a policy.
    pub fn policy_document(&self, name: &PolicyName) -> Option<String> {
        let state = lock(&self.state);
        state.policies.get(name).and_then(|p| p.versions.get(&p.default).cloned())
    }

    /// Things attached to a certificate.
    pub fn attached_things(&self, id: &CertificateId) -> Vec<ThingName> {
        let state = lock(&self.state);
        state.principal_things.get(&cert_arn(&state, id)).map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }

    /// Calls made so far, by operation (including throttled and faulted ones).
    pub fn call_counts(&self) -> HashMap<Operation, u64> {
        lock(&self.runtime).calls.clone()
    }

    /// Calls refused by the quotas, by operation.
    pub fn throttle_counts(&self) -> HashMap<Operation, u64> {
        lock(&self.runtime).throttled.clone()
    }

    /// Invariant violations seen after any call: an ACTIVE certificate without a thing or a policy attached.
    pub fn violations(&self) -> Vec<String> {
        let all: Vec<CertificateId> = lock(&self.state).certificates.keys().cloned().collect();
        self.check_invariants(&all);
        lock(&self.runtime).violations.clone()
    }

    /// A fingerprint of the whole state (for "same final state" comparisons), ignoring certificate ids' order.
    pub fn snapshot(&self) -> serde_json::Value {
        serde_json::to_value(&*lock(&self.state)).unwrap_or_default()
    }

    /// Admission: count the call, apply quota and faults. Says whether to fail after the write.
    async fn admit(&self, op: Operation) -> Result<Admitted, RegistryError> {
        let started = Instant::now();
        let answer = self.admission(op).await;
        if answer.is_err() {
            self.log(op, started);
        }
        answer.map(|fail_after| Admitted { fail_after, started })
    }

    async fn admission(&self, op: Operation) -> Result<bool, RegistryError> {
        let latency = lock(&self.runtime).latency;
        if let Some((min, max)) = latency {
            tokio::time::sleep(rand::random_range(min..=max)).await;
        }
        let (fault, throttled) = {
            let mut rt = lock(&self.runtime);
            let n = {
                let c = rt.calls.entry(op).or_default();
                *c += 1;
                *c
            };
            let fault = rt.faults.iter().find(|f| f.op == op && f.nth == n).map(|f| f.kind);
            let throttled = rt.buckets.get_mut(&op).is_some_and(|b| !b.take());
            if throttled {
                *rt.throttled.entry(op).or_default() += 1;
            }
            (fault, throttled)
        };
        if throttled {
            return Err(RegistryError::Throttled(format!("{op}: rate exceeded")));
        }
        match fault {
            Some(FaultKind::ThrottleBefore) => Err(RegistryError::Throttled(format!("{op}: injected throttle"))),
            Some(FaultKind::UnavailableBefore) => Err(RegistryError::Unavailable(format!("{op}: injected 503"))),
            Some(FaultKind::UnavailableAfter) => Ok(true),
            Some(FaultKind::Latency(d)) => {
                tokio::time::sleep(d).await;
                Ok(false)
            }
            None => Ok(false),
        }
    }

    /// Apply a write under the state lock, check the invariant, then apply an after-fault.
    /// `touched`: the certificate the call may have changed (its status or attachments), whose invariant is
    /// checked now; calls that touch no certificate cannot break it. `violations()` re-checks all of them.
    fn finish<T>(
        &self,
        op: Operation,
        admitted: Admitted,
        touched: Option<&CertificateId>,
        result: Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        if let Some(id) = touched {
            self.check_invariants(std::slice::from_ref(id));
        }
        self.log(op, admitted.started);
        if admitted.fail_after && result.is_ok() {
            return Err(RegistryError::Unavailable(format!("{op}: injected 503 after the write")));
        }
        result
    }

    fn check_invariants(&self, ids: &[CertificateId]) {
        let state = lock(&self.state);
        let mut found = Vec::new();
        for id in ids {
            let Some(cert) = state.certificates.get(id) else { continue };
            if cert.status != Some(CertificateStatus::Active) {
                continue;
            }
            let arn = cert_arn(&state, id);
            if state.principal_things.get(&arn).is_none_or(BTreeMap::is_empty) {
                found.push(format!("certificate {id} is ACTIVE without a thing"));
            }
            if state.policy_targets.get(&arn).is_none_or(BTreeSet::is_empty) {
                found.push(format!("certificate {id} is ACTIVE without a policy"));
            }
        }
        drop(state);
        if !found.is_empty() {
            let mut rt = lock(&self.runtime);
            for v in found {
                if !rt.violations.contains(&v) {
                    rt.violations.push(v);
                }
            }
        }
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> Result<T, RegistryError>) -> Result<T, RegistryError> {
        f(&mut lock(&self.state))
    }
}

#[async_trait]
impl IotRegistry for MemoryRegistry {
    async fn describe_certificate(&self, id: &CertificateId) -> Result<CertificateDescription, RegistryError> {
        let after = self.admit(Operation::DescribeCertificate).await?;
        let r = self.with_state(|s| {
            let c = s.certificates.get(id).ok_or_else(|| RegistryError::NotFound(format!("certificate {id}")))?;
            Ok(CertificateDescription {
                id: id.clone(),
                arn: cert_arn(s, id),
                pem: c.pem.clone(),
                status: c.status.unwrap_or(CertificateStatus::PendingActivation),
                ca_certificate_id: c.ca.clone(),
            })
        });
        self.finish(Operation::DescribeCertificate, after, None, r)
    }

    async fn describe_ca_certificate(&self, id: &CaCertificateId) -> Result<CaDescription, RegistryError> {
        let after = self.admit(Operation::DescribeCACertificate).await?;
        let r = self.with_state(|s| {
            let c = s.cas.get(id).ok_or_else(|| RegistryError::NotFound(format!("CA {id}")))?;
            Ok(CaDescription {
                id: id.clone(),
                pem: c.pem.clone(),
                status: c.status,
                auto_registration: c.auto_registration,
            })
        });
        self.finish(Operation::DescribeCACertificate, after, None, r)
    }

    async fn update_certificate(&self, id: &CertificateId, status: CertificateStatus) -> Result<(), RegistryError> {
        let after = self.admit(Operation::UpdateCertificate).await?;
        let r = self.with_state(|s| {
            if matches!(status, CertificateStatus::PendingActivation | CertificateStatus::PendingTransfer) {
                return Err(RegistryError::InvalidRequest(format!("cannot set status {status}")));
            }
            let c = s.certificates.get_mut(id).ok_or_else(|| RegistryError::NotFound(format!("certificate {id}")))?;
            let current = c.status.unwrap_or(CertificateStatus::PendingActivation);
            if current == status {
                return Ok(());
            }
            if matches!(current, CertificateStatus::Revoked | CertificateStatus::PendingTransfer) {
                return Err(RegistryError::Conflict(format!("certificate {id} is {current}")));
            }
            c.status = Some(status);
            Ok(())
        });
        self.finish(Operation::UpdateCertificate, after, Some(id), r)
    }

    async fn create_thing(&self, spec: &ThingSpec) -> Result<(), RegistryError> {
        let after = self.admit(Operation::CreateThing).await?;
        let r = self.with_state(|s| match s.things.get(&spec.name) {
            Some(t) if t.thing_type == spec.thing_type && t.attributes == spec.attributes => Ok(()),
            Some(_) => {
                Err(RegistryError::AlreadyExists(format!("thing {} exists with a different configuration", spec.name)))
            }
            None => {
                s.things.insert(
                    spec.name.clone(),
                    Thing {
                        thing_type: spec.thing_type.clone(),
                        attributes: spec.attributes.clone(),
                        groups: BTreeSet::new(),
                        version: first_version(),
                    },
                );
                Ok(())
            }
        });
        self.finish(Operation::CreateThing, after, None, r)
    }

    async fn describe_thing(&self, name: &ThingName) -> Result<ThingDescription, RegistryError> {
        let after = self.admit(Operation::DescribeThing).await?;
        let r = self.with_state(|s| {
            let t = s.things.get(name).ok_or_else(|| RegistryError::NotFound(format!("thing {name}")))?;
            Ok(ThingDescription {
                name: name.clone(),
                thing_type: t.thing_type.clone(),
                attributes: t.attributes.clone(),
                version: t.version,
            })
        });
        self.finish(Operation::DescribeThing, after, None, r)
    }

    async fn update_thing(&self, spec: &ThingSpec, expected_version: Option<i64>) -> Result<(), RegistryError> {
        let after = self.admit(Operation::UpdateThing).await?;
        let r = self.with_state(|s| {
            let t =
                s.things.get_mut(&spec.name).ok_or_else(|| RegistryError::NotFound(format!("thing {}", spec.name)))?;
            if let Some(expected) = expected_version
                && expected != t.version
            {
                return Err(RegistryError::VersionConflict(format!(
                    "thing {} is at version {}, not {expected}",
                    spec.name, t.version
                )));
            }
            t.thing_type = spec.thing_type.clone();
            t.attributes = spec.attributes.clone();
            t.version += 1;
            Ok(())
        });
        self.finish(Operation::UpdateThing, after, None, r)
    }

    async fn add_thing_to_thing_group(&self, thing: &ThingName, group: &str) -> Result<(), RegistryError> {
        let after = self.admit(Operation::AddThingToThingGroup).await?;
        let r = self.with_state(|s| {
            let t = s.things.get_mut(thing).ok_or_else(|| RegistryError::NotFound(format!("thing {thing}")))?;
            t.groups.insert(group.to_owned());
            Ok(())
        });
        self.finish(Operation::AddThingToThingGroup, after, None, r)
    }

    async fn list_thing_principals(&self, thing: &ThingName) -> Result<Vec<String>, RegistryError> {
        let after = self.admit(Operation::ListThingPrincipals).await?;
        let r = self.with_state(|s| {
            if !s.things.contains_key(thing) {
                return Err(RegistryError::NotFound(format!("thing {thing}")));
            }
            Ok(s.thing_principals.get(thing).map(|p| p.iter().cloned().collect()).unwrap_or_default())
        });
        self.finish(Operation::ListThingPrincipals, after, None, r)
    }

    async fn create_policy(&self, name: &PolicyName, document: &str) -> Result<(), RegistryError> {
        let after = self.admit(Operation::CreatePolicy).await?;
        let r = self.with_state(|s| {
            if s.policies.contains_key(name) {
                return Err(RegistryError::AlreadyExists(format!("policy {name}")));
            }
            if serde_json::from_str::<serde_json::Value>(document).is_err() {
                return Err(RegistryError::InvalidRequest("MalformedPolicyException: not JSON".into()));
            }
            s.policies.insert(
                name.clone(),
                Policy {
                    versions: BTreeMap::from([(1, document.to_owned())]),
                    default: 1,
                    next: 2,
                    tags: BTreeMap::new(),
                },
            );
            Ok(())
        });
        self.finish(Operation::CreatePolicy, after, None, r)
    }

    async fn get_policy(&self, name: &PolicyName) -> Result<PolicyDescription, RegistryError> {
        let after = self.admit(Operation::GetPolicy).await?;
        let r = self.with_state(|s| {
            let p = s.policies.get(name).ok_or_else(|| RegistryError::NotFound(format!("policy {name}")))?;
            Ok(PolicyDescription {
                name: name.clone(),
                document: p.versions.get(&p.default).cloned().unwrap_or_default(),
                default_version_id: p.default.to_string(),
                arn: policy_arn(s, name),
            })
        });
        self.finish(Operation::GetPolicy, after, None, r)
    }

    async fn create_policy_version(&self, name: &PolicyName, document: &str) -> Result<String, RegistryError> {
        let after = self.admit(Operation::CreatePolicyVersion).await?;
        let r = self.with_state(|s| {
            let p = s.policies.get_mut(name).ok_or_else(|| RegistryError::NotFound(format!("policy {name}")))?;
            if p.versions.len() >= MAX_POLICY_VERSIONS {
                return Err(RegistryError::VersionsLimitExceeded(format!(
                    "policy {name} has {MAX_POLICY_VERSIONS} versions"
                )));
            }
            let id = p.next;
            p.next += 1;
            p.versions.insert(id, document.to_owned());
            p.default = id;
            Ok(id.to_string())
        });
        self.finish(Operation::CreatePolicyVersion, after, None, r)
    }

    async fn list_policy_versions(&self, name: &PolicyName) -> Result<Vec<PolicyVersion>, RegistryError> {
        let after = self.admit(Operation::ListPolicyVersions).await?;
        let r = self.with_state(|s| {
            let p = s.policies.get(name).ok_or_else(|| RegistryError::NotFound(format!("policy {name}")))?;
            Ok(p.versions
                .keys()
                .map(|v| PolicyVersion { version_id: v.to_string(), is_default: *v == p.default })
                .collect())
        });
        self.finish(Operation::ListPolicyVersions, after, None, r)
    }

    async fn delete_policy_version(&self, name: &PolicyName, version_id: &str) -> Result<(), RegistryError> {
        let after = self.admit(Operation::DeletePolicyVersion).await?;
        let r = self.with_state(|s| {
            let p = s.policies.get_mut(name).ok_or_else(|| RegistryError::NotFound(format!("policy {name}")))?;
            let v: u64 =
                version_id.parse().map_err(|_| RegistryError::InvalidRequest(format!("version {version_id:?}")))?;
            if v == p.default {
                return Err(RegistryError::Conflict("cannot delete the default version".into()));
            }
            p.versions
                .remove(&v)
                .map(|_| ())
                .ok_or_else(|| RegistryError::NotFound(format!("policy {name} version {v}")))
        });
        self.finish(Operation::DeletePolicyVersion, after, None, r)
    }

    async fn set_default_policy_version(&self, name: &PolicyName, version_id: &str) -> Result<(), RegistryError> {
        let after = self.admit(Operation::SetDefaultPolicyVersion).await?;
        let r = self.with_state(|s| {
            let p = s.policies.get_mut(name).ok_or_else(|| RegistryError::NotFound(format!("policy {name}")))?;
            let v: u64 =
                version_id.parse().map_err(|_| RegistryError::InvalidRequest(format!("version {version_id:?}")))?;
            if !p.versions.contains_key(&v) {
                return Err(RegistryError::NotFound(format!("policy {name} version {v}")));
            }
            p.default = v;
            Ok(())
        });
        self.finish(Operation::SetDefaultPolicyVersion, after, None, r)
    }

    async fn attach_policy(&self, name: &PolicyName, target: &str) -> Result<(), RegistryError> {
        let after = self.admit(Operation::AttachPolicy).await?;
        let r = self.with_state(|s| {
            if !s.policies.contains_key(name) {
                return Err(RegistryError::NotFound(format!("policy {name}")));
            }
            if !CertificateId::from_arn(target).is_some_and(|id| s.certificates.contains_key(&id)) {
                return Err(RegistryError::NotFound(format!("target {target}")));
            }
            s.policy_targets.entry(target.to_owned()).or_default().insert(name.clone());
            Ok(())
        });
        self.finish(Operation::AttachPolicy, after, CertificateId::from_arn(target).as_ref(), r)
    }

    async fn list_attached_policies(&self, target: &str) -> Result<Vec<PolicyName>, RegistryError> {
        let after = self.admit(Operation::ListAttachedPolicies).await?;
        let r = self
            .with_state(|s| Ok(s.policy_targets.get(target).map(|p| p.iter().cloned().collect()).unwrap_or_default()));
        self.finish(Operation::ListAttachedPolicies, after, None, r)
    }

    async fn attach_thing_principal(
        &self,
        thing: &ThingName,
        principal: &str,
        exclusive: bool,
    ) -> Result<(), RegistryError> {
        let after = self.admit(Operation::AttachThingPrincipal).await?;
        let r = self.with_state(|s| {
            if !s.things.contains_key(thing) {
                return Err(RegistryError::NotFound(format!("thing {thing}")));
            }
            if !CertificateId::from_arn(principal).is_some_and(|id| s.certificates.contains_key(&id)) {
                return Err(RegistryError::NotFound(format!("principal {principal}")));
            }
            let attached = s.principal_things.entry(principal.to_owned()).or_default();
            let others: Vec<(&ThingName, &bool)> = attached.iter().filter(|(t, _)| *t != thing).collect();
            if (exclusive && !others.is_empty()) || others.iter().any(|(_, ex)| **ex) {
                return Err(RegistryError::InvalidRequest(format!(
                    "principal {principal} is attached exclusively elsewhere"
                )));
            }
            attached.insert(thing.clone(), exclusive);
            s.thing_principals.entry(thing.clone()).or_default().insert(principal.to_owned());
            Ok(())
        });
        self.finish(Operation::AttachThingPrincipal, after, CertificateId::from_arn(principal).as_ref(), r)
    }

    async fn detach_thing_principal(&self, thing: &ThingName, principal: &str) -> Result<(), RegistryError> {
        let after = self.admit(Operation::DetachThingPrincipal).await?;
        let r = self.with_state(|s| {
            if !s.things.contains_key(thing) {
                return Err(RegistryError::NotFound(format!("thing {thing}")));
            }
            if let Some(things) = s.principal_things.get_mut(principal) {
                things.remove(thing);
            }
            if let Some(principals) = s.thing_principals.get_mut(thing) {
                principals.remove(principal);
            }
            Ok(())
        });
        self.finish(Operation::DetachThingPrincipal, after, CertificateId::from_arn(principal).as_ref(), r)
    }

    async fn list_things(&self, filter: &ThingFilter, next_token: Option<&str>) -> Result<ThingPage, RegistryError> {
        let after = self.admit(Operation::ListThings).await?;
        let page_size = lock(&self.runtime).page_size;
        let r = self.with_state(|s| {
            if !(1..=MAX_THINGS_PER_PAGE).contains(&filter.max_results) {
                return Err(RegistryError::InvalidRequest(format!(
                    "maxResults {} is not from 1 to {MAX_THINGS_PER_PAGE}",
                    filter.max_results
                )));
            }
            let limit = filter.max_results.min(page_size.unwrap_or(u32::MAX)) as usize;
            let start = match next_token {
                None => None,
                Some(token) => match token.strip_prefix(THINGS_TOKEN).map(str::parse::<ThingName>) {
                    Some(Ok(name)) => Some(name),
                    _ => return Err(RegistryError::InvalidRequest(format!("nextToken {token:?} is not valid"))),
                },
            };
            let matches = |t: &Thing| {
                t.attributes.get(&filter.attribute_name).is_some_and(|v| {
                    if filter.prefix { v.starts_with(&filter.attribute_value) } else { *v == filter.attribute_value }
                })
            };
            let range = match &start {
                Some(name) => {
                    s.things.range::<ThingName, _>((std::ops::Bound::Excluded(name), std::ops::Bound::Unbounded))
                }
                None => s.things.range::<ThingName, _>(..),
            };
            let mut found = range.filter(|(_, t)| matches(t));
            let things: Vec<ThingDescription> = found
                .by_ref()
                .take(limit)
                .map(|(name, t)| ThingDescription {
                    name: name.clone(),
                    thing_type: t.thing_type.clone(),
                    attributes: t.attributes.clone(),
                    version: t.version,
                })
                .collect();
            let more = found.next().is_some();
            let next_token = match things.last() {
                Some(last) if more => Some(format!("{THINGS_TOKEN}{}", last.name)),
                _ => None,
            };
            Ok(ThingPage { things, next_token })
        });
        self.finish(Operation::ListThings, after, None, r)
    }

    async fn list_things_in_thing_group(
        &self,
        group: &str,
        next_token: Option<&str>,
    ) -> Result<ThingNamePage, RegistryError> {
        let after = self.admit(Operation::ListThingsInThingGroup).await?;
        let limit = lock(&self.runtime).page_size.unwrap_or(MAX_THINGS_PER_PAGE).min(MAX_THINGS_PER_PAGE) as usize;
        let r = self.with_state(|s| {
            let start = match next_token {
                None => None,
                Some(token) => match token.strip_prefix(THINGS_TOKEN).map(str::parse::<ThingName>) {
                    Some(Ok(name)) => Some(name),
                    _ => return Err(RegistryError::InvalidRequest(format!("nextToken {token:?} is not valid"))),
                },
            };
            let mut members = s
                .things
                .iter()
                .filter(|(name, t)| t.groups.contains(group) && start.as_ref().is_none_or(|after| *name > after))
                .map(|(name, _)| name.clone());
            let things: Vec<ThingName> = members.by_ref().take(limit).collect();
            let next_token = match (members.next(), things.last()) {
                (Some(_), Some(last)) => Some(format!("{THINGS_TOKEN}{last}")),
                _ => None,
            };
            Ok(ThingNamePage { things, next_token })
        });
        self.finish(Operation::ListThingsInThingGroup, after, None, r)
    }

    async fn list_targets_for_policy(&self, name: &PolicyName) -> Result<Vec<String>, RegistryError> {
        let after = self.admit(Operation::ListTargetsForPolicy).await?;
        let r = self.with_state(|s| {
            if !s.policies.contains_key(name) {
                return Err(RegistryError::NotFound(format!("policy {name}")));
            }
            Ok(s.policy_targets.iter().filter(|(_, names)| names.contains(name)).map(|(t, _)| t.clone()).collect())
        });
        self.finish(Operation::ListTargetsForPolicy, after, None, r)
    }

    async fn list_ca_certificates(&self) -> Result<Vec<CaCertificateId>, RegistryError> {
        let after = self.admit(Operation::ListCACertificates).await?;
        let r = self.with_state(|s| Ok(s.cas.keys().cloned().collect()));
        self.finish(Operation::ListCACertificates, after, None, r)
    }

    async fn list_certificates_by_ca(
        &self,
        ca: &CaCertificateId,
        marker: Option<&str>,
    ) -> Result<CertificatePage, RegistryError> {
        let after = self.admit(Operation::ListCertificatesByCA).await?;
        let limit = lock(&self.runtime).page_size.unwrap_or(MAX_THINGS_PER_PAGE).min(MAX_THINGS_PER_PAGE) as usize;
        let r = self.with_state(|s| {
            if !s.cas.contains_key(ca) {
                return Err(RegistryError::NotFound(format!("CA {ca}")));
            }
            let start = match marker {
                None => None,
                Some(m) => match m.strip_prefix(CERTIFICATES_MARKER).map(str::parse::<CertificateId>) {
                    Some(Ok(id)) => Some(id),
                    _ => return Err(RegistryError::InvalidRequest(format!("marker {m:?} is not valid"))),
                },
            };
            let mut of_ca = s
                .certificates
                .iter()
                .filter(|(id, c)| c.ca.as_ref() == Some(ca) && start.as_ref().is_none_or(|after| *id > after))
                .filter_map(|(id, c)| {
                    c.status.map(|status| CertificateSummary { id: id.clone(), arn: cert_arn(s, id), status })
                });
            let certificates: Vec<CertificateSummary> = of_ca.by_ref().take(limit).collect();
            let next_marker = match (of_ca.next(), certificates.last()) {
                (Some(_), Some(last)) => Some(format!("{CERTIFICATES_MARKER}{}", last.id)),
                _ => None,
            };
            Ok(CertificatePage { certificates, next_marker })
        });
        self.finish(Operation::ListCertificatesByCA, after, None, r)
    }

    async fn tag_resource(&self, arn: &str, tags: &BTreeMap<String, String>) -> Result<(), RegistryError> {
        let after = self.admit(Operation::TagResource).await?;
        let r = self.with_state(|s| {
            check_tags(tags)?;
            let policy = tagged_policy(s, arn)?;
            let total = policy.tags.keys().chain(tags.keys().filter(|k| !policy.tags.contains_key(*k))).count();
            if total > MAX_TAGS_PER_RESOURCE {
                return Err(RegistryError::InvalidRequest(format!(
                    "resource {arn} would have {total} tags; at most {MAX_TAGS_PER_RESOURCE} are allowed"
                )));
            }
            policy.tags.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            Ok(())
        });
        self.finish(Operation::TagResource, after, None, r)
    }

    async fn untag_resource(&self, arn: &str, keys: &[String]) -> Result<(), RegistryError> {
        let after = self.admit(Operation::UntagResource).await?;
        let r = self.with_state(|s| {
            let policy = tagged_policy(s, arn)?;
            for key in keys {
                policy.tags.remove(key);
            }
            Ok(())
        });
        self.finish(Operation::UntagResource, after, None, r)
    }

    async fn list_tags_for_resource(&self, arn: &str) -> Result<BTreeMap<String, String>, RegistryError> {
        let after = self.admit(Operation::ListTagsForResource).await?;
        let r = self.with_state(|s| Ok(tagged_policy(s, arn)?.tags.clone()));
        self.finish(Operation::ListTagsForResource, after, None, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";

    #[tokio::test]
    async fn activating_a_bare_certificate_is_a_violation() {
        let registry = MemoryRegistry::new();
        let ca = registry.register_ca(CA, true).unwrap_or_else(|e| unreachable!("{e}"));
        let id = registry
            .register_certificate("-----BEGIN CERTIFICATE-----\nMAE=\n-----END CERTIFICATE-----\n", &ca)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(registry.violations().is_empty());
        registry.update_certificate(&id, CertificateStatus::Active).await.unwrap_or_else(|e| unreachable!("{e}"));
        let violations = registry.violations();
        assert_eq!(violations.len(), 2, "{violations:?}");
        assert!(violations[0].contains("without a thing") && violations[1].contains("without a policy"));
    }

    #[tokio::test]
    async fn buckets_start_full_unless_emptied() {
        let quotas = Quotas::none().with(&BTreeMap::from([(Operation::DescribeCertificate, 10.0)]));
        let id: CertificateId = "ab".repeat(32).parse().unwrap_or_else(|e| unreachable!("{e}"));
        let full = MemoryRegistry::new().with_quotas(&quotas);
        for _ in 0..10 {
            assert!(matches!(full.describe_certificate(&id).await, Err(RegistryError::NotFound(_))));
        }
        assert!(matches!(full.describe_certificate(&id).await, Err(RegistryError::Throttled(_))));
        let empty = MemoryRegistry::new().with_quotas(&quotas);
        empty.empty_buckets();
        assert!(matches!(empty.describe_certificate(&id).await, Err(RegistryError::Throttled(_))));
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(matches!(empty.describe_certificate(&id).await, Err(RegistryError::NotFound(_))));
    }

    #[tokio::test]
    async fn list_things_filters_by_attribute_exactly_or_by_prefix_and_pages_with_a_token() {
        let registry = MemoryRegistry::new().with_page_size(2);
        for (name, value) in [("a", "0abc"), ("b", "0abd"), ("c", "1abc"), ("d", "0abc"), ("e", "0")] {
            let spec = ThingSpec {
                name: name.parse().unwrap_or_else(|e| unreachable!("{e}")),
                thing_type: None,
                attributes: BTreeMap::from([("owner".to_owned(), value.to_owned())]),
            };
            registry.create_thing(&spec).await.unwrap_or_else(|e| unreachable!("{e}"));
        }
        let filter = |value: &str, prefix: bool| ThingFilter {
            attribute_name: "owner".into(),
            attribute_value: value.into(),
            prefix,
            max_results: MAX_THINGS_PER_PAGE,
        };
        let all = |filter: ThingFilter| {
            let registry = &registry;
            async move {
                let (mut names, mut token, mut pages) = (Vec::new(), None::<String>, 0);
                loop {
                    let page =
                        registry.list_things(&filter, token.as_deref()).await.unwrap_or_else(|e| unreachable!("{e}"));
                    assert!(page.things.len() <= 2);
                    pages += 1;
                    names.extend(page.things.into_iter().map(|t| t.name.to_string()));
                    match page.next_token {
                        Some(next) => token = Some(next),
                        None => return (names, pages),
                    }
                }
            }
        };
        assert_eq!(all(filter("0abc", false)).await, (vec!["a".to_owned(), "d".to_owned()], 1));
        assert_eq!(all(filter("0", true)).await, (vec!["a".into(), "b".into(), "d".into(), "e".into()], 2));
        assert_eq!(all(filter("0", false)).await, (vec!["e".to_owned()], 1));
        assert_eq!(all(filter("2", true)).await, (Vec::new(), 1));
        let bad = registry.list_things(&filter("0", true), Some("nonsense")).await;
        assert!(matches!(bad, Err(RegistryError::InvalidRequest(_))), "{bad:?}");
        let too_many = registry.list_things(&ThingFilter { max_results: 251, ..filter("0", true) }, None).await;
        assert!(matches!(too_many, Err(RegistryError::InvalidRequest(_))), "{too_many:?}");
    }

    #[tokio::test]
    async fn policy_tags_follow_aws_limits() {
        let registry = MemoryRegistry::new();
        let name: PolicyName = "jitp-p".parse().unwrap_or_else(|e| unreachable!("{e}"));
        registry.create_policy(&name, "{}").await.unwrap_or_else(|e| unreachable!("{e}"));
        let arn = registry.get_policy(&name).await.unwrap_or_else(|e| unreachable!("{e}")).arn;
        assert_eq!(arn, "arn:aws:iot:us-east-1:123456789012:policy/jitp-p");
        let tags = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        let invalid = |r: Result<(), RegistryError>| matches!(r, Err(RegistryError::InvalidRequest(_)));
        let long_key = "k".repeat(MAX_TAG_KEY_CHARS + 1);
        let long_value = "v".repeat(MAX_TAG_VALUE_CHARS + 1);
        for bad in [tags(&[("", "v")]), tags(&[(&long_key, "v")]), tags(&[("aws:x", "v")]), tags(&[("k", &long_value)])]
        {
            assert!(invalid(registry.tag_resource(&arn, &bad).await), "{bad:?}");
        }
        let fifty: BTreeMap<String, String> =
            (0..MAX_TAGS_PER_RESOURCE).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(registry.tag_resource(&arn, &fifty).await, Ok(()));
        assert_eq!(registry.tag_resource(&arn, &tags(&[("k0", "replaced")])).await, Ok(()), "a key it has");
        assert!(invalid(registry.tag_resource(&arn, &tags(&[("one-more", "")])).await));
        assert_eq!(registry.untag_resource(&arn, &["k1".into(), "absent".into()]).await, Ok(()));
        let now = registry.list_tags_for_resource(&arn).await.unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((now.len(), now.get("k0").map(String::as_str)), (MAX_TAGS_PER_RESOURCE - 1, Some("replaced")));
        for other in
            ["arn:aws:iot:us-east-1:123456789012:policy/jitp-q", "arn:aws:iot:eu-west-1:123456789012:policy/jitp-p"]
        {
            assert!(matches!(registry.list_tags_for_resource(other).await, Err(RegistryError::NotFound(_))), "{other}");
        }
    }

    #[tokio::test]
    async fn revoked_certificates_stay_revoked() {
        let registry = MemoryRegistry::new();
        let ca = registry.register_ca(CA, true).unwrap_or_else(|e| unreachable!("{e}"));
        let id = registry
            .register_certificate("-----BEGIN CERTIFICATE-----\nMAE=\n-----END CERTIFICATE-----\n", &ca)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(registry.update_certificate(&id, CertificateStatus::Revoked).await, Ok(()));
        let again = registry.update_certificate(&id, CertificateStatus::Active).await;
        assert!(matches!(again, Err(RegistryError::Conflict(_))), "{again:?}");
        assert!(matches!(
            registry.update_certificate(&id, CertificateStatus::PendingActivation).await,
            Err(RegistryError::InvalidRequest(_))
        ));
    }
}

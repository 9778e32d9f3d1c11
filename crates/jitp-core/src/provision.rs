//! The workflow: decide, then converge the registry idempotently, activate last.
//!
//! Events arrive at least once, in bursts, sometimes concurrently. Every step tolerates "already done", so a
//! replay or a concurrent copy converges to the same state; activation is the last write, so a certificate is
//! never ACTIVE without its thing and policy; a rejection is final and never activates.
//!
//! Calls for a first provisioning: DescribeCertificate, CreateThing, CreatePolicy (per-thing mode, or once per
//! process in shared mode), AttachPolicy, AttachThingPrincipal, UpdateCertificate: 6 per-thing, 5 shared. A
//! replay of a provisioned device: 1 (DescribeCertificate). DescribeCACertificate is cached per process.
//! Ownership is detected without an extra call: the thing carries a `jitp_certificate` attribute, so
//! CreateThing for another certificate's thing fails with AlreadyExists and only then is ownership examined.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::audit::{AuditRecord, Outcome};
use crate::cert::Certificate;
use crate::decide::{self, Input, Verdict};
use crate::error::Error;
use crate::event::{CertificateStatus, RegistrationEvent};
use crate::ids::{CaCertificateId, CertificateId, PolicyName};
use crate::policy::AwsContext;
use crate::profile::{Config, OnDuplicate, OnReject, PolicyMode};
use crate::reason::{Rejection, reject};
use crate::registry::{CaStatus, CertificateDescription, IotRegistry, Operation, RegistryError, ThingSpec};

/// The thing attribute that records which certificate jitp bound the thing to.
pub const CERTIFICATE_ATTRIBUTE: &str = "jitp_certificate";

/// Tunables of the workflow.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The template context's `aws.*`.
    pub aws: AwsContext,
    /// Give up retrying a transient failure after this long (then the event is retried by the platform).
    pub retry_deadline: Duration,
    /// First backoff; doubles per attempt, with full jitter.
    pub retry_base: Duration,
    /// Backoff ceiling.
    pub retry_max: Duration,
    /// How long a CA description stays cached (a deactivated CA is noticed within this time).
    pub ca_cache_ttl: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            aws: AwsContext::default(),
            retry_deadline: Duration::from_secs(20),
            retry_base: Duration::from_millis(25),
            retry_max: Duration::from_secs(2),
            ca_cache_ttl: Duration::from_secs(300),
        }
    }
}

#[derive(Debug)]
struct CachedCa {
    active: bool,
    cert: Result<Certificate, Rejection>,
    fetched: Instant,
}

/// Runs events through the workflow. Cheap to share (`Arc`); safe to call concurrently.
pub struct Provisioner {
    config: Arc<Config>,
    registry: Arc<dyn IotRegistry>,
    settings: Settings,
    cas: Mutex<HashMap<CaCertificateId, Arc<CachedCa>>>,
    /// Shared policies known to exist with a given document in this process.
    shared_policies: Mutex<HashMap<PolicyName, (String, String)>>,
}

impl std::fmt::Debug for Provisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioner").field("config", &self.config.path).finish_non_exhaustive()
    }
}

/// Why the workflow stopped early.
enum Stop {
    Reject(Rejection, Option<String>),
    Fail(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Self::Fail(e)
    }
}

impl From<Rejection> for Stop {
    fn from(r: Rejection) -> Self {
        Self::Reject(r, None)
    }
}

/// Per-event bookkeeping: calls, retries.
struct Tally<'a> {
    registry: &'a dyn IotRegistry,
    settings: &'a Settings,
    calls: BTreeMap<String, u32>,
    retries: u32,
}

impl<'a> Tally<'a> {
    /// Make one registry call, retrying transient failures with jittered exponential backoff until the deadline.
    async fn call<T, F, Fut>(&mut self, op: Operation, f: F) -> Result<Result<T, RegistryError>, Error>
    where
        F: Fn(&'a dyn IotRegistry) -> Fut,
        Fut: std::future::Future<Output = Result<T, RegistryError>>,
    {
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            *self.calls.entry(op.as_str().to_owned()).or_default() += 1;
            match f(self.registry).await {
                Err(e) if e.is_transient() => {
                    let backoff = self.backoff(attempt);
                    if started.elapsed() + backoff > self.settings.retry_deadline {
                        return Err(Error::Transient { operation: op.as_str(), message: e.to_string() });
                    }
                    self.retries += 1;
                    attempt = attempt.saturating_add(1);
                    tokio::time::sleep(backoff).await;
                }
                other => return Ok(other),
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self.settings.retry_max.min(self.settings.retry_base.saturating_mul(1u32 << attempt.min(16)));
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX).max(1);
        Duration::from_nanos(rand::random_range(nanos / 4..=nanos))
    }

    /// Like `call`, with any non-transient error a hard failure.
    async fn must<T, F, Fut>(&mut self, op: Operation, f: F) -> Result<T, Error>
    where
        F: Fn(&'a dyn IotRegistry) -> Fut,
        Fut: std::future::Future<Output = Result<T, RegistryError>>,
    {
        self.call(op, f).await?.map_err(|e| Error::Registry { operation: op.as_str(), message: e.to_string() })
    }
}

impl Provisioner {
    /// A provisioner over `registry` with the profiles of `config`.
    pub fn new(config: Arc<Config>, registry: Arc<dyn IotRegistry>, settings: Settings) -> Self {
        Self { config, registry, settings, cas: Mutex::default(), shared_policies: Mutex::default() }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Parse raw event bytes and handle them; a malformed event is a REJECTED record with MALFORMED_EVENT.
    pub async fn handle_bytes(&self, bytes: &[u8], now: i64) -> AuditRecord {
        match crate::event::parse(bytes) {
            Ok(event) => self.handle(&event, now).await,
            Err(rejection) => {
                let mut record = AuditRecord::new(now);
                finish_rejected(&mut record, &rejection, None);
                record
            }
        }
    }

    /// Handle one registration event at time `now` (Unix seconds). Never panics; a record with
    /// `Outcome::Error` means "deliver the event again".
    pub async fn handle(&self, event: &RegistrationEvent, now: i64) -> AuditRecord {
        let started = Instant::now();
        let mut record = AuditRecord::new(now);
        record.certificate_id = Some(event.certificate_id.to_string());
        record.ca_certificate_id = Some(event.ca_certificate_id.to_string());
        let mut tally =
            Tally { registry: self.registry.as_ref(), settings: &self.settings, calls: BTreeMap::new(), retries: 0 };
        let result = self.run(event, now, &mut tally, &mut record).await;
        match result {
            Ok(outcome) => {
                record.outcome = outcome;
                record.status = "Success".into();
            }
            Err(Stop::Reject(rejection, profile)) => {
                let action = if rejection_writes(&rejection) { Some(self.on_reject(profile.as_deref())) } else { None };
                match self.apply_rejection(event, action, &mut tally).await {
                    Ok(done) => {
                        finish_rejected(&mut record, &rejection, profile);
                        record.certificate_action = done;
                    }
                    Err(e) => fail(&mut record, &e),
                }
            }
            Err(Stop::Fail(e)) => fail(&mut record, &e),
        }
        record.api_call_count = tally.calls.values().sum();
        record.api_calls = tally.calls;
        record.retries = tally.retries;
        record.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        record
    }

    fn on_reject(&self, profile: Option<&str>) -> OnReject {
        self.config.on_reject(profile)
    }

    async fn apply_rejection(
        &self,
        event: &RegistrationEvent,
        action: Option<OnReject>,
        tally: &mut Tally<'_>,
    ) -> Result<Option<String>, Error> {
        let status = match action {
            None => return Ok(None),
            Some(OnReject::Leave) => return Ok(Some("LEFT".into())),
            Some(OnReject::Revoke) => CertificateStatus::Revoked,
            Some(OnReject::Deactivate) => CertificateStatus::Inactive,
        };
        let id = &event.certificate_id;
        match tally.call(Operation::UpdateCertificate, |r| r.update_certificate(id, status)).await? {
            // Already revoked, deleted or changed by an operator: the rejection stands either way.
            Ok(()) | Err(RegistryError::Conflict(_)) | Err(RegistryError::NotFound(_)) => {
                Ok(Some(status.as_str().into()))
            }
            Err(e) => Err(Error::Registry { operation: "UpdateCertificate", message: e.to_string() }),
        }
    }

    async fn run(
        &self,
        event: &RegistrationEvent,
        now: i64,
        tally: &mut Tally<'_>,
        record: &mut AuditRecord,
    ) -> Result<Outcome, Stop> {
        let cert_id = &event.certificate_id;
        let cert = match tally.call(Operation::DescribeCertificate, |r| r.describe_certificate(cert_id)).await? {
            Ok(c) => c,
            Err(RegistryError::NotFound(_)) => {
                return Err(reject!(CertNotFound, "certificate {cert_id} does not exist in the registry").into());
            }
            Err(e) => return Err(Error::Registry { operation: "DescribeCertificate", message: e.to_string() }.into()),
        };
        let ca_id = match &cert.ca_certificate_id {
            Some(id) if *id != event.ca_certificate_id => {
                return Err(reject!(
                    MalformedEvent,
                    "the event names CA {} but the registry says certificate {cert_id} was signed by CA {id}",
                    event.ca_certificate_id
                )
                .into());
            }
            Some(id) => {
                record.ca_source = Some("registry".into());
                id.clone()
            }
            None => {
                record.ca_source = Some("event".into());
                event.ca_certificate_id.clone()
            }
        };
        record.ca_certificate_id = Some(ca_id.to_string());
        match cert.status {
            CertificateStatus::PendingActivation => {}
            CertificateStatus::Active => {
                record.message = "the certificate is already ACTIVE; nothing to do".into();
                return Ok(Outcome::AlreadyProvisioned);
            }
            other => {
                return Err(reject!(
                    CertNotPending,
                    "the certificate is {other}, set by someone else; jitp leaves it alone"
                )
                .into());
            }
        }
        let ca = self.ca(&ca_id, tally).await?;
        let ca_cert = ca.cert.as_ref().map_err(|e| Stop::Reject(e.clone(), None))?;
        if !ca.active {
            return Err(reject!(CaNotActive, "CA {ca_id} is not ACTIVE in the registry").into());
        }
        let input =
            Input { certificate_pem: cert.pem.as_bytes(), ca: ca_cert, ca_id: &ca_id, now, aws: &self.settings.aws };
        let verdict = decide::decide(&self.config, &input).map_err(|r| Stop::Reject(r.rejection, r.profile))?;
        if verdict.certificate_id != cert.id {
            // The registry's id scheme differs from AWS's (moto hashes the PEM text): the registry's id wins.
            tracing::debug!(registry = %cert.id, der = %verdict.certificate_id, "certificate id is not the SHA-256 of the DER");
        }
        record.profile = Some(verdict.profile.clone());
        record.thing_name = Some(verdict.thing_name.to_string());
        record.policy_name = Some(verdict.policy.name.to_string());
        let profile = Some(verdict.profile.clone());
        self.converge(&cert, &verdict, tally, record).await.map_err(|stop| match stop {
            Stop::Reject(r, None) => Stop::Reject(r, profile.clone()),
            other => other,
        })?;
        record.message = format!("provisioned thing {} with policy {}", verdict.thing_name, verdict.policy.name);
        Ok(Outcome::Provisioned)
    }

    async fn ca(&self, id: &CaCertificateId, tally: &mut Tally<'_>) -> Result<Arc<CachedCa>, Stop> {
        if let Some(hit) = self.cas.lock().ok().and_then(|m| m.get(id).cloned())
            && hit.fetched.elapsed() < self.settings.ca_cache_ttl
        {
            return Ok(hit);
        }
        let described = match tally.call(Operation::DescribeCACertificate, |r| r.describe_ca_certificate(id)).await? {
            Ok(d) => d,
            Err(RegistryError::NotFound(_)) => {
                return Err(reject!(UnknownCa, "CA {id} is not registered in this account").into());
            }
            Err(e) => return Err(Error::Registry { operation: "DescribeCACertificate", message: e.to_string() }.into()),
        };
        let cached = Arc::new(CachedCa {
            active: described.status == CaStatus::Active,
            cert: decide::parse_ca(described.pem.as_bytes()),
            fetched: Instant::now(),
        });
        if let Ok(mut map) = self.cas.lock() {
            map.insert(id.clone(), cached.clone());
        }
        Ok(cached)
    }

    async fn converge(
        &self,
        cert: &CertificateDescription,
        verdict: &Verdict,
        tally: &mut Tally<'_>,
        record: &mut AuditRecord,
    ) -> Result<(), Stop> {
        self.converge_thing(cert, verdict, tally).await?;
        let version = match verdict.policy_mode {
            PolicyMode::PerThing => self.ensure_policy(&verdict.policy.name, &verdict.policy.document, tally).await?,
            PolicyMode::Shared => {
                self.ensure_shared_policy(&verdict.policy.name, &verdict.policy.document, tally).await?
            }
        };
        record.policy_version = Some(version);
        let policy = &verdict.policy.name;
        tally.must(Operation::AttachPolicy, |r| r.attach_policy(policy, &cert.arn)).await?;
        let thing = &verdict.thing_name;
        tally.must(Operation::AttachThingPrincipal, |r| r.attach_thing_principal(thing, &cert.arn, true)).await?;
        // Last: only now may the device connect.
        tally.must(Operation::UpdateCertificate, |r| r.update_certificate(&cert.id, CertificateStatus::Active)).await?;
        Ok(())
    }

    async fn converge_thing(
        &self,
        cert: &CertificateDescription,
        verdict: &Verdict,
        tally: &mut Tally<'_>,
    ) -> Result<(), Stop> {
        let mut attributes: BTreeMap<String, String> =
            verdict.attributes.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        attributes.insert(CERTIFICATE_ATTRIBUTE.into(), cert.id.to_string());
        let spec = ThingSpec { name: verdict.thing_name.clone(), thing_type: verdict.thing_type.clone(), attributes };
        match tally.call(Operation::CreateThing, |r| r.create_thing(&spec)).await? {
            Ok(()) => {}
            Err(RegistryError::AlreadyExists(_)) => {
                self.check_ownership(cert, verdict, tally).await?;
                tally.must(Operation::UpdateThing, |r| r.update_thing(&spec, None)).await?;
            }
            Err(RegistryError::NotFound(what)) => {
                // AWS IoT creates neither thing types nor groups on the fly: an operator's setup step was missed.
                return Err(Error::Registry {
                    operation: "CreateThing",
                    message: format!(
                        "{what}: create thing type {:?} in the account first (see infra/README.md)",
                        spec.thing_type.as_deref().unwrap_or("")
                    ),
                }
                .into());
            }
            Err(e) => return Err(Error::Registry { operation: "CreateThing", message: e.to_string() }.into()),
        }
        for group in &verdict.thing_groups {
            let name = &verdict.thing_name;
            tally.must(Operation::AddThingToThingGroup, |r| r.add_thing_to_thing_group(name, group)).await?;
        }
        Ok(())
    }

    /// The thing exists with another configuration: is it bound to another ACTIVE certificate?
    async fn check_ownership(
        &self,
        cert: &CertificateDescription,
        verdict: &Verdict,
        tally: &mut Tally<'_>,
    ) -> Result<(), Stop> {
        let thing = &verdict.thing_name;
        let principals = tally.must(Operation::ListThingPrincipals, |r| r.list_thing_principals(thing)).await?;
        for arn in principals.iter().filter(|a| **a != cert.arn) {
            let Some(other) = CertificateId::from_arn(arn) else { continue };
            let status = match tally.call(Operation::DescribeCertificate, |r| r.describe_certificate(&other)).await? {
                Ok(d) => d.status,
                Err(RegistryError::NotFound(_)) => continue,
                Err(e) => {
                    return Err(Error::Registry { operation: "DescribeCertificate", message: e.to_string() }.into());
                }
            };
            if status == CertificateStatus::Active && verdict.on_duplicate == OnDuplicate::Reject {
                return Err(reject!(
                    DuplicateThing,
                    "thing {thing} is already bound to ACTIVE certificate {other}; one identity per device (on_duplicate = \"rotate\" allows a second)"
                )
                .into());
            }
        }
        Ok(())
    }

    async fn ensure_shared_policy(
        &self,
        name: &PolicyName,
        document: &str,
        tally: &mut Tally<'_>,
    ) -> Result<String, Stop> {
        if let Some((doc, version)) = self.shared_policies.lock().ok().and_then(|m| m.get(name).cloned())
            && doc == document
        {
            return Ok(version);
        }
        let version = self.ensure_policy(name, document, tally).await?;
        if let Ok(mut map) = self.shared_policies.lock() {
            map.insert(name.clone(), (document.to_owned(), version.clone()));
        }
        Ok(version)
    }

    /// Create the policy, or make `document` its default version; at AWS's limit of 5 versions, prune the oldest
    /// non-default one first.
    async fn ensure_policy(&self, name: &PolicyName, document: &str, tally: &mut Tally<'_>) -> Result<String, Stop> {
        match tally.call(Operation::CreatePolicy, |r| r.create_policy(name, document)).await? {
            Ok(()) => return Ok("1".into()),
            Err(RegistryError::AlreadyExists(_)) => {}
            Err(e) => return Err(Error::Registry { operation: "CreatePolicy", message: e.to_string() }.into()),
        }
        let current = tally.must(Operation::GetPolicy, |r| r.get_policy(name)).await?;
        if same_document(&current.document, document) {
            return Ok(current.default_version_id);
        }
        for _ in 0..2 {
            match tally.call(Operation::CreatePolicyVersion, |r| r.create_policy_version(name, document)).await? {
                Ok(version) => return Ok(version),
                Err(RegistryError::VersionsLimitExceeded(_)) => {
                    let versions = tally.must(Operation::ListPolicyVersions, |r| r.list_policy_versions(name)).await?;
                    let oldest = versions
                        .iter()
                        .filter(|v| !v.is_default)
                        .min_by_key(|v| v.version_id.parse::<u64>().unwrap_or(u64::MAX))
                        .map(|v| v.version_id.clone());
                    let Some(oldest) = oldest else { break };
                    match tally.call(Operation::DeletePolicyVersion, |r| r.delete_policy_version(name, &oldest)).await?
                    {
                        Ok(()) | Err(RegistryError::NotFound(_)) => {}
                        Err(e) => {
                            return Err(
                                Error::Registry { operation: "DeletePolicyVersion", message: e.to_string() }.into()
                            );
                        }
                    }
                }
                Err(e) => {
                    return Err(Error::Registry { operation: "CreatePolicyVersion", message: e.to_string() }.into());
                }
            }
        }
        Err(Error::Registry {
            operation: "CreatePolicyVersion",
            message: format!("policy {name} has no version to prune"),
        }
        .into())
    }
}

/// Documents are equal if they are the same JSON (AWS may reformat what it stores).
fn same_document(a: &str, b: &str) -> bool {
    match (serde_json::from_str::<serde_json::Value>(a), serde_json::from_str::<serde_json::Value>(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Rejections that change the certificate: not a forged event, not a certificate someone else already decided on.
fn rejection_writes(rejection: &Rejection) -> bool {
    use crate::reason::ReasonCode as R;
    !matches!(rejection.reason, R::MalformedEvent | R::CertNotPending | R::CertNotFound)
}

fn finish_rejected(record: &mut AuditRecord, rejection: &Rejection, profile: Option<String>) {
    record.outcome = Outcome::Rejected;
    record.status = "Failure".into();
    record.reason = Some(rejection.reason);
    record.message = rejection.message.clone();
    if profile.is_some() {
        record.profile = profile;
    }
}

fn fail(record: &mut AuditRecord, e: &Error) {
    record.outcome = Outcome::Error;
    record.status = "Failure".into();
    record.message = e.to_string();
}

//! The engine: the registry steps the workflow and reconcile both take, each written once.
//!
//! [`CallGate`]: every registry call paced under the account's API quotas and retried the one way.
//! [`ca_cache`]: the registered CAs described once, checked once for the configuration. [`policy_version`]:
//! a policy's default version compared, made (with its rollback record) and pruned at AWS's limit.
//! [`thing_spec`]: the thing a verdict asks for. [`rejection_effect`]: what a rejection does to a
//! certificate, the one place a reason code can become REVOKED. `provision` (the workflow) and `reconcile`
//! stand on this layer; neither imports the other.

pub(crate) mod ca_cache;
pub(crate) mod policy_version;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use jitp_pki::ids::CertificateId;
use jitp_pki::reason::{Fault, ReasonCode};
use jitp_policy::policy::AwsContext;
use jitp_profile::profile::{Config, OnReject};
use jitp_registry::event::CertificateStatus;
use jitp_registry::pacing::{self, NoSlot, Pacer, Pacing};
use jitp_registry::registry::{IotRegistry, Operation, RegistryError, ThingSpec};
use jitp_registry::thing::CERTIFICATE_ATTRIBUTE;

use crate::audit::{Calls, CertificateAction};
use crate::decide::Verdict;
use crate::error::Error;

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
    /// Pace every registry call under the account's API quotas ([`jitp_registry::pacing`]), or `None`: unpaced (the
    /// default, for tests and the embedded registry; the binaries pace at AWS's quotas unless told not to).
    pub pacing: Option<Pacing>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            aws: AwsContext::default(),
            retry_deadline: pacing::DEFAULT_RETRY_DEADLINE,
            retry_base: pacing::DEFAULT_RETRY_BASE,
            retry_max: pacing::DEFAULT_RETRY_MAX,
            ca_cache_ttl: pacing::DEFAULT_CA_CACHE_TTL,
            pacing: None,
        }
    }
}

impl Settings {
    /// The quota lanes these settings ask for, sized from the quotas [`Settings::pacing`] names, jitp.toml's
    /// `[quotas]` and the deployment's overrides, in that order of precedence from last to first; unpaced
    /// without [`Settings::pacing`].
    pub fn pacer(&self, config: &Config) -> Pacer {
        match &self.pacing {
            Some(pacing) => Pacer::new(&pacing.resolve(&config.quotas), pacing.instances),
            None => Pacer::unpaced(),
        }
    }
}

/// The thing `verdict` asks for, owned by certificate `owner`: its name, type and attributes, with
/// [`CERTIFICATE_ATTRIBUTE`] naming the owner (what CreateThing's conditional create and UpdateThing's
/// compare-and-set write).
pub(crate) fn thing_spec(verdict: &Verdict<'_>, owner: &CertificateId) -> ThingSpec {
    let mut attributes: BTreeMap<String, String> =
        verdict.attributes.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    attributes.insert(CERTIFICATE_ATTRIBUTE.into(), owner.to_string());
    ThingSpec { name: verdict.thing_name.clone(), thing_type: verdict.thing_type.clone(), attributes }
}

/// What a rejection with `reason` does to a certificate jitp still decides on, under the governing `on_reject`:
/// the status to write (`None`: leave it as it is) and the action recorded; `None` for no verdict (nothing
/// written, nothing recorded). The one place where a reason code can become REVOKED, which is final in AWS
/// IoT: only a [`Fault::Device`] rejection (no configuration accepts the certificate) gets `on_reject`; an
/// operator's fault or the profile's own rules ([`Fault::holds`]) leave the certificate pending for the fix.
/// The workflow's rejections and `jitp reconcile --revoke` both go through here.
pub fn rejection_effect(
    reason: ReasonCode,
    on_reject: OnReject,
) -> Option<(Option<CertificateStatus>, CertificateAction)> {
    match reason.fault() {
        Fault::None => None,
        Fault::Operator | Fault::Profile => Some((None, CertificateAction::LeftPending)),
        Fault::Device => Some(match on_reject {
            OnReject::Leave => (None, CertificateAction::Left),
            OnReject::Revoke => (Some(CertificateStatus::Revoked), CertificateAction::Revoked),
            OnReject::Deactivate => (Some(CertificateStatus::Inactive), CertificateAction::Inactive),
        }),
    }
}

pub(crate) fn registry_error(operation: Operation, source: RegistryError) -> Error {
    Error::Registry { operation, source }
}

/// The one way jitp calls the registry: every call takes its slot in its operation's quota lane first
/// ([`Pacer::admit`]), transient failures are retried with jittered exponential backoff until the retry
/// deadline, and the calls, retries and time waited are counted for the audit record. One per event (the
/// workflow) or per device (reconcile); shared by reference between calls that run at once.
pub(crate) struct CallGate<'a> {
    registry: &'a dyn IotRegistry,
    settings: &'a Settings,
    pacer: &'a Pacer,
    calls: Mutex<BTreeMap<Operation, u32>>,
    retries: AtomicU32,
    quota_wait: Mutex<Duration>,
}

impl<'a> CallGate<'a> {
    pub(crate) fn new(registry: &'a dyn IotRegistry, settings: &'a Settings, pacer: &'a Pacer) -> Self {
        Self {
            registry,
            settings,
            pacer,
            calls: Mutex::default(),
            retries: AtomicU32::new(0),
            quota_wait: Mutex::default(),
        }
    }

    /// Make one registry call, each attempt in its slot of the operation's quota, retrying transient failures
    /// with jittered exponential backoff until the deadline (waiting for a slot counts towards it).
    pub(crate) async fn call<T, F, Fut>(&self, op: Operation, f: F) -> Result<Result<T, RegistryError>, Error>
    where
        F: Fn(&'a dyn IotRegistry) -> Fut,
        Fut: std::future::Future<Output = Result<T, RegistryError>>,
    {
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            match self.attempt(op, &f, started).await? {
                Err(e) if e.is_transient() => self.pause(op, &mut attempt, started, e).await?,
                other => return Ok(other),
            }
        }
    }

    /// One attempt of a call started at `started`: its slot (within what is left of the retry deadline), the
    /// call, the pacer told how it went. Transient failures are returned, not retried.
    pub(crate) async fn attempt<T, F, Fut>(
        &self,
        op: Operation,
        f: &F,
        started: Instant,
    ) -> Result<Result<T, RegistryError>, Error>
    where
        F: Fn(&'a dyn IotRegistry) -> Fut,
        Fut: std::future::Future<Output = Result<T, RegistryError>>,
    {
        let deadline = self.settings.retry_deadline;
        match self.pacer.admit(op, deadline.saturating_sub(started.elapsed())).await {
            Ok(waited) => {
                if let Ok(mut total) = self.quota_wait.lock() {
                    *total += waited;
                }
            }
            Err(NoSlot { wait, rate }) => return Err(Error::QuotaWait { operation: op, wait, rate, deadline }),
        }
        if let Ok(mut calls) = self.calls.lock() {
            *calls.entry(op).or_default() += 1;
        }
        let answer = f(self.registry).await;
        match &answer {
            Err(RegistryError::Throttled(_)) => self.pacer.throttled(op),
            _ => self.pacer.admitted(op),
        }
        Ok(answer)
    }

    /// After transient failure `e` of attempt number `attempt`: back off, or give up past the retry deadline.
    pub(crate) async fn pause(
        &self,
        op: Operation,
        attempt: &mut u32,
        started: Instant,
        e: RegistryError,
    ) -> Result<(), Error> {
        let backoff = self.backoff(*attempt);
        if started.elapsed() + backoff > self.settings.retry_deadline {
            return Err(Error::Transient { operation: op, attempts: attempt.saturating_add(1), source: e });
        }
        self.retries.fetch_add(1, Ordering::Relaxed);
        *attempt = attempt.saturating_add(1);
        tokio::time::sleep(backoff).await;
        Ok(())
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self.settings.retry_max.min(self.settings.retry_base.saturating_mul(1u32 << attempt.min(16)));
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX).max(1);
        Duration::from_nanos(rand::random_range(nanos / 4..=nanos))
    }

    /// Like `call`, with any non-transient error a hard failure.
    pub(crate) async fn must<T, F, Fut>(&self, op: Operation, f: F) -> Result<T, Error>
    where
        F: Fn(&'a dyn IotRegistry) -> Fut,
        Fut: std::future::Future<Output = Result<T, RegistryError>>,
    {
        self.call(op, f).await?.map_err(|e| registry_error(op, e))
    }

    /// The call, where a NotFound answer is `None`: the thing, certificate or policy asked about does not exist
    /// (or no longer does); any other non-transient error is a failure.
    pub(crate) async fn optional<T, F, Fut>(&self, op: Operation, f: F) -> Result<Option<T>, Error>
    where
        F: Fn(&'a dyn IotRegistry) -> Fut,
        Fut: std::future::Future<Output = Result<T, RegistryError>>,
    {
        match self.call(op, f).await? {
            Ok(answer) => Ok(Some(answer)),
            Err(RegistryError::NotFound(_)) => Ok(None),
            Err(e) => Err(registry_error(op, e)),
        }
    }

    /// A write where the errors `done` accepts mean there is nothing left to do (already so, or gone).
    pub(crate) async fn settle<F, Fut>(
        &self,
        op: Operation,
        f: F,
        done: fn(&RegistryError) -> bool,
    ) -> Result<(), Error>
    where
        F: Fn(&'a dyn IotRegistry) -> Fut,
        Fut: std::future::Future<Output = Result<(), RegistryError>>,
    {
        match self.call(op, f).await? {
            Ok(()) => Ok(()),
            Err(e) if done(&e) => Ok(()),
            Err(e) => Err(registry_error(op, e)),
        }
    }

    /// Set a certificate's status where "already so", "REVOKED" and "gone" all mean there is nothing to do.
    pub(crate) async fn set_status(&self, id: &CertificateId, status: CertificateStatus) -> Result<(), Error> {
        let done = |e: &RegistryError| matches!(e, RegistryError::Conflict(_) | RegistryError::NotFound(_));
        self.settle(Operation::UpdateCertificate, |r| r.update_certificate(id, status), done).await
    }

    /// Detach a certificate from a thing; already detached (or the thing gone) is done.
    pub(crate) async fn detach(&self, thing: &jitp_registry::thing::ThingName, principal: &str) -> Result<(), Error> {
        let done = |e: &RegistryError| matches!(e, RegistryError::NotFound(_));
        self.settle(Operation::DetachThingPrincipal, |r| r.detach_thing_principal(thing, principal), done).await
    }

    pub(crate) fn into_calls(self) -> Calls {
        Calls {
            by_operation: self.calls.into_inner().unwrap_or_default(),
            retries: self.retries.into_inner(),
            quota_wait: self.quota_wait.into_inner().unwrap_or_default(),
        }
    }
}

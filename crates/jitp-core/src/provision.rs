//! The workflow: decide, then converge the registry idempotently, activate last.
//!
//! Events arrive at least once, in bursts, sometimes concurrently. Every step tolerates "already done", so a
//! replay or a concurrent copy converges to the same state; activation is the last write, so a certificate is
//! never ACTIVE without its thing and policy; a rejection never activates.
//!
//! Calls for a first provisioning: DescribeCertificate, CreateThing, CreatePolicy (per-thing mode, or once per
//! process in shared mode), AttachPolicy, AttachThingPrincipal, UpdateCertificate: 6 per-thing, 5 shared.
//! DescribeCACertificate is cached per process. A replay of a provisioned device proves it complete with
//! DescribeCertificate, then DescribeThing, ListThingPrincipals and ListAttachedPolicies at once: 4 calls.
//!
//! # Stages: what runs at once
//!
//! Calls that do not depend on each other run concurrently, so a first provisioning waits for 4 round trips,
//! not one per call:
//!
//! 1. DescribeCertificate, and beside it DescribeCACertificate for the CA the event names when this process
//!    has not cached it (a prefetch: used only once the certificate's answer has passed CERT_NOT_FOUND,
//!    MALFORMED_EVENT and CERT_NOT_PENDING, in that order, as if it had been asked for afterwards).
//! 2. The thing's claim (CreateThing; DescribeThing and UpdateThing when it exists) beside the policy's
//!    conditional create (CreatePolicy, unless the process knows the shared policy). The rest of the policy's
//!    convergence (GetPolicy, CreatePolicyVersion, pruning) runs only after the claim succeeded; why the
//!    create may run before is written beside the code, in `Provisioner::provision`.
//! 3. AttachPolicy, AttachThingPrincipal and AddThingToThingGroup (each group), all at once.
//! 4. UpdateCertificate ACTIVE, alone and last, only if every call of the stages before succeeded. In rotate
//!    mode the re-read of the thing and the retirement of older certificates follow, one after the other.
//!
//! Within a stage every branch is awaited before the outcome is decided (no in-flight write is dropped): a
//! rejection of the claim wins, then the first failure in the order above. A failure in one branch leaves
//! what the others did, which is what a replay converges from: every step tolerates "already done".
//!
//! # One identity per device: who owns a thing
//!
//! The thing carries the attribute [`CERTIFICATE_ATTRIBUTE`] = the id of the certificate it belongs to, written
//! by the CreateThing that creates it. Ownership rests on two atomic primitives of AWS IoT, never on "is another
//! certificate ACTIVE right now":
//!
//! 1. **CreateThing is a conditional create.** AWS IoT creates a thing name at most once; a CreateThing for an
//!    existing name succeeds only if the configuration (type and attributes) is identical, and answers
//!    ResourceAlreadyExistsException otherwise. Two certificates always send different configurations (the
//!    owner attribute differs), so of any number of concurrent CreateThing calls for one name, exactly one
//!    certificate's can create it; every other certificate gets AlreadyExists, reads the owner (DescribeThing)
//!    and, finding another certificate there, stops before it attaches anything. A replay of the owner's own
//!    event sends the identical configuration and succeeds, so an owner whose provisioning was interrupted
//!    (PENDING, maybe half attached) still owns the thing and its redelivered event completes it.
//! 2. **UpdateThing with `expectedVersion` is a compare-and-set.** Every later change of a thing (the owner's
//!    configuration drifted; a rotation moves the thing to a newer certificate) is made against the version
//!    just read and fails with VersionConflictException if anyone wrote in between; the claim then starts over.
//!    With `on_duplicate = "reject"` the owner attribute is therefore written once and never changes.
//!
//! # `on_duplicate = "rotate"`
//!
//! Certificates for one thing are ordered by (notBefore, certificate id): "newer" means issued later. A newer
//! certificate of the same CA takes the thing over by compare-and-set of the owner attribute; an older one, or
//! one of another CA, is rejected DUPLICATE_THING. Ownership therefore only moves forward, and the newest
//! certificate ends as the owner however events interleave. After activating, the owner re-reads the thing:
//! if a newer certificate took it meanwhile, it deactivates itself; otherwise it deactivates every older
//! certificate of the same CA attached to the thing, recorded as `replaced_certificates`. Every activation is
//! followed by such a re-read in the same event, so no older certificate stays ACTIVE: either its own re-read
//! sees the newer owner, or the newer owner's clean-up runs after it.
//!
//! A replay of the owner's event that finds it complete runs the clean-up again, so a first delivery that failed
//! between activation and clean-up cannot leave an older certificate ACTIVE. A superseded owner still in flight
//! may write the thing's per-thing policy after the new owner did; that write is harmless because in rotate mode
//! the configuration must make the policy a function of the thing alone (`naming` refuses templates that read
//! the subject, the certificate or the CA, and same-prefix rotate profiles with different templates), so every
//! certificate of one thing writes the same document.
//!
//! Retired certificates are INACTIVE (reversible, never REVOKED) and stay attached to the thing, so an
//! operator can roll a device back by activating its previous certificate. Nobody detaches them: AWS IoT has
//! no conditional activation, so detaching a certificate whose own event may be activating it at that moment
//! could leave it ACTIVE without its thing. In reject mode a certificate that does not own its thing never
//! reaches activation, so there the one detachment jitp makes (of an ACTIVE certificate someone activated by
//! hand without owning its thing, after deactivating it) is safe.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jitp_pki::cert::Certificate;
use jitp_pki::ids::{CaCertificateId, CertificateId, PolicyName};
use jitp_pki::reason::{Rejection, reject};
use jitp_profile::judge::Refusal;
use jitp_profile::profile::{Config, OnDuplicate, PolicyMode, Profile};
use jitp_registry::event::{CertificateStatus, RegistrationEvent};
use jitp_registry::pacing::Pacer;
use jitp_registry::registry::{CertificateDescription, IotRegistry, Operation, RegistryError};

use crate::audit::{AuditRecord, CaSource, Calls, CertificateAction, Ending, Facts, Outcome};
use crate::decide::{self, Input, Verdict};
use crate::engine::ca_cache::{CaCache, not_active};
use crate::engine::policy_version::make_default;
use crate::engine::{CallGate, Settings, registry_error, rejection_effect, thing_spec};
use crate::error::Error;
use crate::rules::Rules;

pub use jitp_registry::thing::CERTIFICATE_ATTRIBUTE;

/// How often a claim re-reads a thing that keeps changing under it (deleted, or written by another event
/// between the read and the compare-and-set) before the event is handed back for redelivery.
const MAX_CLAIM_ROUNDS: usize = 5;

/// Other certificates a per-thing policy may be attached to that the workflow describes before it holds the
/// event anyway (each is a DescribeCertificate on a path that runs only when someone else is attached).
const MAX_TARGETS_DESCRIBED: usize = 5;

/// Runs events through the workflow. Cheap to share (`Arc`); safe to call concurrently.
pub struct Provisioner {
    rules: Arc<Rules>,
    registry: Arc<dyn IotRegistry>,
    settings: Settings,
    /// One lane per AWS operation, shared by every event of this provisioner (and by those it derives with
    /// [`Provisioner::with_rules`], so a CRL refresh does not reset the quota lanes).
    pacer: Arc<Pacer>,
    /// The registered CAs described, kept for `ca_cache_ttl`.
    cas: CaCache,
    /// Shared policies known to exist with a given document in this process.
    shared_policies: Mutex<HashMap<PolicyName, (String, String)>>,
}

impl std::fmt::Debug for Provisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioner").field("config", &self.rules.config().path).finish_non_exhaustive()
    }
}

/// A rejection on its way out of the workflow: the decision's [`Refusal`] (the rejection and the profile that
/// governed it, once one was selected), and what the workflow knows beyond the decision.
struct Refused<'c> {
    refusal: Refusal<'c>,
    /// The certificate was ACTIVE when the event was handled: jitp writes no verdict on it.
    active: bool,
    /// The workflow already set the certificate's status itself (a superseded or duplicate ACTIVE one).
    written: Option<CertificateAction>,
    /// A DUPLICATE_THING whose owner is proven live: ACTIVE and attached to the thing. Only then may an ACTIVE
    /// certificate that does not own its thing be deactivated (`recheck_active`).
    live_owner: bool,
}

/// Why the workflow stopped early.
enum Stop<'c> {
    Reject(Box<Refused<'c>>),
    Fail(Error),
}

impl<'c> Stop<'c> {
    /// Fill in what the caller knows: the governing profile (unless set) and whether the certificate is ACTIVE.
    fn governed(self, profile: Option<&'c Profile>, active: bool) -> Self {
        match self {
            Self::Reject(mut r) => {
                if r.refusal.profile.is_none() {
                    r.refusal.profile = profile;
                }
                r.active = active;
                Self::Reject(r)
            }
            fail => fail,
        }
    }

    /// A rejection whose certificate the workflow already deactivated itself.
    fn deactivated(rejection: Rejection) -> Self {
        Self::Reject(Box::new(Refused {
            refusal: rejection.into(),
            active: false,
            written: Some(CertificateAction::Inactive),
            live_owner: false,
        }))
    }
}

impl From<Error> for Stop<'_> {
    fn from(e: Error) -> Self {
        Self::Fail(e)
    }
}

impl<'c> From<Refusal<'c>> for Stop<'c> {
    fn from(refusal: Refusal<'c>) -> Self {
        Self::Reject(Box::new(Refused { refusal, active: false, written: None, live_owner: false }))
    }
}

impl From<Rejection> for Stop<'_> {
    fn from(rejection: Rejection) -> Self {
        Refusal::from(rejection).into()
    }
}

/// What one event knows about the certificate it provisions, for claims and rotations.
struct Subject<'a> {
    cert: &'a CertificateDescription,
    verdict: &'a Verdict<'a>,
    ca_id: &'a CaCertificateId,
    ca: &'a Certificate,
}

impl Subject<'_> {
    /// The rotation order: later notBefore is newer; the certificate id breaks ties.
    fn rank(&self) -> (i64, &CertificateId) {
        (self.verdict.not_before, &self.cert.id)
    }
}

/// What the policy's conditional create found.
enum PolicyStart {
    /// This process already knows the shared policy with this document, at this version: no call made.
    Known(String),
    /// CreatePolicy created it with this event's document (version 1).
    Created,
    /// It existed: its default version is compared with this event's document after the claim.
    Exists,
}

/// Another certificate found on a thing, as the rotation rules see it.
enum Other {
    /// Deleted from the registry.
    Gone,
    /// Present: its rank, whether the same CA issued it, its status.
    Present { not_before: i64, same_ca: bool, status: CertificateStatus },
}

impl Provisioner {
    /// A provisioner over `registry` with the profiles and templates of `rules`.
    ///
    /// With [`Settings::pacing`], its lanes are sized from the quotas it names, jitp.toml's `[quotas]` and the
    /// deployment's overrides, in that order of precedence from last to first.
    pub fn new(rules: Arc<Rules>, registry: Arc<dyn IotRegistry>, settings: Settings) -> Self {
        let pacer = Arc::new(settings.pacer(rules.config()));
        let cas = CaCache::for_workflow(settings.ca_cache_ttl);
        Self { rules, registry, settings, pacer, cas, shared_policies: Mutex::default() }
    }

    /// A provisioner with new `rules` (a CRL refresh: the same profiles, new CRLs) over the same registry,
    /// settings and pacer lanes. Its CA cache is this one's, each CA checked again for `rules` (a cached
    /// [`jitp_profile::judge::RegisteredCa`] holds the CRL proofs of the rules it was built for, so keeping it as it is would
    /// serve the old CRLs), with the same fetch time. Refused, naming the profile's key and the CRL, if a CRL that
    /// verified against a cached CA no longer does (a new CRL signed by another key): the caller keeps `self`.
    /// Events already running on `self` finish on the old rules; the caller swaps the new provisioner in whole,
    /// so an event sees one rule set. The shared-policy cache starts empty (a GetPolicy per shared policy, once).
    pub fn with_rules(&self, rules: Arc<Rules>) -> Result<Self, Error> {
        Ok(Self {
            cas: self.cas.for_config(rules.config())?,
            rules,
            registry: self.registry.clone(),
            settings: self.settings.clone(),
            pacer: self.pacer.clone(),
            shared_policies: Mutex::default(),
        })
    }

    /// The pacer every event of this provisioner shares (its lanes' rates, the bound they set).
    pub fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        self.rules.config()
    }

    /// The configuration and its templates.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Parse raw event bytes and handle them; a malformed event is a REJECTED record with MALFORMED_EVENT.
    pub async fn handle_bytes(&self, bytes: &[u8], now: i64) -> AuditRecord {
        self.handle_parsed(jitp_registry::event::parse(bytes), now).await
    }

    /// Handle what the event parser made of an event (`event::parse` of bytes, `event::from_value` of a decoded
    /// value); a malformed event is a REJECTED record with MALFORMED_EVENT.
    pub async fn handle_parsed(&self, parsed: Result<RegistrationEvent, Rejection>, now: i64) -> AuditRecord {
        match parsed {
            Ok(event) => self.handle(&event, now).await,
            Err(rejection) => {
                let ending = Ending::Refused { reason: rejection.reason, message: rejection.message, action: None };
                AuditRecord::build(now, Facts::default(), ending, Calls::default(), Duration::ZERO)
            }
        }
    }

    /// Handle one registration event at time `now` (Unix seconds). Never panics; a record whose
    /// [`AuditRecord::is_retryable`] is true (ERROR, HELD) means "deliver the event again". The caller writes
    /// the record ([`AuditRecord::line`]) and counts it ([`AuditRecord::count`]).
    pub async fn handle(&self, event: &RegistrationEvent, now: i64) -> AuditRecord {
        let started = Instant::now();
        let mut facts = Facts {
            certificate_id: Some(event.certificate_id.to_string()),
            ca_certificate_id: Some(event.ca_certificate_id.to_string()),
            ..Facts::default()
        };
        let gate = CallGate::new(self.registry.as_ref(), &self.settings, &self.pacer);
        let ending = match self.run(event, now, &gate, &mut facts).await {
            Ok((outcome, message)) => Ending::Done { outcome, message },
            Err(Stop::Reject(refused)) => match self.apply_rejection(event, &refused, &gate).await {
                Ok(action) => {
                    if let Some(profile) = refused.refusal.profile {
                        facts.profile = Some(profile.name.clone());
                    }
                    let Rejection { reason, message } = refused.refusal.rejection;
                    Ending::Refused { reason, message, action }
                }
                Err(e) => failed(&e),
            },
            Err(Stop::Fail(e)) => failed(&e),
        };
        AuditRecord::build(now, facts, ending, gate.into_calls(), started.elapsed())
    }

    /// What a rejection does to the certificate: only a device at fault (no configuration would accept it),
    /// still PENDING, gets its profile's `on_reject`; an operator's mistake or the profile's own rules leave it
    /// PENDING for the redelivery after the fix.
    async fn apply_rejection(
        &self,
        event: &RegistrationEvent,
        refused: &Refused<'_>,
        gate: &CallGate<'_>,
    ) -> Result<Option<CertificateAction>, Error> {
        if let Some(done) = refused.written {
            return Ok(Some(done));
        }
        if refused.active {
            return Ok(None);
        }
        let on_reject = self.rules.config().on_reject(refused.refusal.profile);
        let Some((status, action)) = rejection_effect(refused.refusal.rejection.reason, on_reject) else {
            return Ok(None);
        };
        if let Some(status) = status {
            gate.set_status(&event.certificate_id, status).await?;
        }
        Ok(Some(action))
    }

    async fn run(
        &self,
        event: &RegistrationEvent,
        now: i64,
        gate: &CallGate<'_>,
        facts: &mut Facts,
    ) -> Result<(Outcome, String), Stop<'_>> {
        let cert_id = &event.certificate_id;
        let describe = gate.call(Operation::DescribeCertificate, |r| r.describe_certificate(cert_id));
        // The event names the CA: when this process does not know it yet, ask for it in the same round trip. The
        // answer is only a prefetch: it is used below only where the sequential workflow would have asked for
        // the same CA (after CERT_NOT_FOUND, MALFORMED_EVENT and CERT_NOT_PENDING), so it changes no outcome.
        let (described, prefetched) = if self.cas.cached(&event.ca_certificate_id).is_some() {
            (describe.await, None)
        } else {
            let (described, ca) =
                tokio::join!(describe, self.cas.get(&event.ca_certificate_id, self.rules.config(), gate));
            (described, Some(ca))
        };
        let cert = match described? {
            Ok(c) => c,
            Err(RegistryError::NotFound(_)) => {
                return Err(reject!(CertNotFound, "certificate {cert_id} does not exist in the registry").into());
            }
            Err(e) => return Err(registry_error(Operation::DescribeCertificate, e).into()),
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
                facts.ca_source = Some(CaSource::Registry);
                id.clone()
            }
            None => {
                facts.ca_source = Some(CaSource::Event);
                event.ca_certificate_id.clone()
            }
        };
        facts.ca_certificate_id = Some(ca_id.to_string());
        let active = match cert.status {
            CertificateStatus::PendingActivation => false,
            CertificateStatus::Active => true,
            other => {
                return Err(reject!(
                    CertNotPending,
                    "the certificate is {other}, set by someone else; jitp leaves it alone"
                )
                .into());
            }
        };
        let ca = match prefetched {
            // The event's CA is the registry's (checked above), so the prefetched answer is the one wanted.
            Some(answer) => answer,
            None => self.cas.get(&ca_id, self.rules.config(), gate).await,
        };
        let ca = ca.map_err(|e| Stop::from(e).governed(None, active))?;
        let registered = ca.registered().map_err(|e| Stop::from(e).governed(None, active))?;
        let ca_cert = registered.certificate().map_err(|e| Stop::from(e.clone()).governed(None, active))?;
        if !ca.is_active() {
            return Err(Stop::from(not_active(&ca_id)).governed(None, active));
        }
        let input = Input { certificate_pem: cert.pem.as_bytes(), ca: registered, now, aws: &self.settings.aws };
        let verdict = decide::decide(&self.rules, &input).map_err(|r| Stop::from(r).governed(None, active))?;
        if verdict.certificate_id != cert.id {
            // The registry's id scheme differs from AWS's (moto hashes the PEM text): the registry's id wins.
            tracing::debug!(registry = %cert.id, der = %verdict.certificate_id, "certificate id is not the SHA-256 of the DER");
        }
        facts.profile = Some(verdict.profile.name.clone());
        facts.thing_name = Some(verdict.thing_name.to_string());
        facts.policy_name = Some(verdict.policy.name.to_string());
        let subject = Subject { cert: &cert, verdict: &verdict, ca_id: &ca_id, ca: ca_cert };
        let outcome = if active {
            self.recheck_active(&subject, gate, facts).await
        } else {
            self.provision(&subject, gate, facts).await
        };
        outcome.map_err(|s| s.governed(Some(verdict.profile), active))
    }

    /// A PENDING certificate: claim the thing, converge, activate last.
    async fn provision(
        &self,
        subject: &Subject<'_>,
        gate: &CallGate<'_>,
        facts: &mut Facts,
    ) -> Result<(Outcome, String), Stop<'_>> {
        let verdict = subject.verdict;
        // The claim and the policy's conditional create at once. Why the create may run before the claim is
        // known: CreatePolicy is itself a conditional create in AWS IoT. It succeeds only if no policy of that
        // name exists, never changes an existing one, and the policy it creates is attached to nothing. So a
        // certificate that then loses the claim (DUPLICATE_THING, or a hold such as THING_NOT_MANAGED) can at
        // most leave an unattached policy under the thing's policy name, with a document it rendered. Whoever
        // owns the thing never attaches a document it did not compare: when its own CreatePolicy answers
        // AlreadyExists, it reads the default version (GetPolicy) and, unless that is its own document, makes
        // its own the default (CreatePolicyVersion) before it attaches anything; that slow path runs only
        // after its claim succeeded. A loser never gets that far, and no later CreatePolicy can succeed on an
        // existing name, so after the owner's compare nobody but the owner (and its replays, with the same
        // document) writes the policy. In per-thing reject mode the template may read the subject or the
        // certificate, so it is this argument, not "the documents are equal", that keeps one device from
        // widening another's policy.
        let (claim, policy) = tokio::join!(self.claim_thing(subject, gate), self.create_policy(verdict, gate));
        // Both awaited: a rejection or failure of the claim wins, then the policy's failure.
        claim?;
        let created = policy?;
        self.converge(subject, gate, facts, created).await?;
        // Last, after every branch succeeded: only now may the device connect.
        let id = &subject.cert.id;
        gate.must(Operation::UpdateCertificate, |r| r.update_certificate(id, CertificateStatus::Active)).await?;
        if verdict.on_duplicate == OnDuplicate::Rotate {
            facts.replaced_certificates = self.settle_rotation(subject, gate).await?;
        }
        Ok((
            Outcome::Provisioned,
            format!("provisioned thing {} with policy {}", verdict.thing_name, verdict.policy.name),
        ))
    }

    /// An ACTIVE certificate: ALREADY_PROVISIONED only if it owns its thing, is attached to it, and has its
    /// policy; otherwise complete what is missing (it is already active, so "activate last" is moot), or, if
    /// the thing belongs to another certificate, deactivate it: an ACTIVE certificate must not hold another
    /// device's identity.
    async fn recheck_active(
        &self,
        subject: &Subject<'_>,
        gate: &CallGate<'_>,
        facts: &mut Facts,
    ) -> Result<(Outcome, String), Stop<'_>> {
        let (cert, verdict) = (subject.cert, subject.verdict);
        let (thing, arn, policy) = (&verdict.thing_name, &cert.arn, &verdict.policy.name);
        let (described, principals, policies) = tokio::join!(
            gate.call(Operation::DescribeThing, |r| r.describe_thing(thing)),
            gate.call(Operation::ListThingPrincipals, |r| r.list_thing_principals(thing)),
            gate.call(Operation::ListAttachedPolicies, |r| r.list_attached_policies(arn)),
        );
        let present = |op, answer: Result<bool, RegistryError>| match answer {
            Ok(found) => Ok(found),
            Err(RegistryError::NotFound(_)) => Ok(false),
            Err(e) => Err(registry_error(op, e)),
        };
        let owns = present(
            Operation::DescribeThing,
            described?.map(|d| d.attributes.get(CERTIFICATE_ATTRIBUTE) == Some(&cert.id.to_string())),
        )?;
        let attached = present(Operation::ListThingPrincipals, principals?.map(|p| p.contains(arn)))?;
        let has_policy = present(Operation::ListAttachedPolicies, policies?.map(|p| p.contains(policy)))?;
        if owns && attached && has_policy {
            if verdict.on_duplicate == OnDuplicate::Rotate {
                // The first delivery may have failed between activation and its clean-up: retire the older
                // certificates now, or they would stay ACTIVE once no event of theirs is left to run.
                facts.replaced_certificates = self.settle_rotation(subject, gate).await?;
            }
            let message = format!("already provisioned: owns thing {thing}, attached, with policy {policy}");
            return Ok((Outcome::AlreadyProvisioned, message));
        }
        let missing: Vec<&str> = [(!owns, "thing ownership"), (!attached, "thing attachment"), (!has_policy, "policy")]
            .into_iter()
            .filter_map(|(gap, what)| gap.then_some(what))
            .collect();
        match self.claim_thing(subject, gate).await {
            // Only an owner proven live (ACTIVE and attached to the thing) costs this certificate its activation:
            // an owner that is retired, deleted, still PENDING or not jitp's leaves it as it is (HELD), so an
            // operator's deletion or rollback never leaves a device without an ACTIVE certificate.
            Err(Stop::Reject(refused))
                if refused.refusal.rejection.reason == jitp_pki::ReasonCode::DuplicateThing && refused.live_owner =>
            {
                gate.set_status(&cert.id, CertificateStatus::Inactive).await?;
                // Detaching is safe only where no copy of this certificate's event can be activating it now:
                // in reject mode a non-owner never reaches activation; in rotate mode it may (module docs).
                if verdict.on_duplicate == OnDuplicate::Reject {
                    gate.detach(thing, arn).await?;
                }
                let mut rejection = refused.refusal.rejection;
                rejection
                    .message
                    .push_str("; this certificate was ACTIVE without owning the thing, so jitp deactivated it");
                return Err(Stop::deactivated(rejection));
            }
            other => other?,
        }
        let created = self.create_policy(verdict, gate).await?;
        self.converge(subject, gate, facts, created).await?;
        if verdict.on_duplicate == OnDuplicate::Rotate {
            facts.replaced_certificates = self.settle_rotation(subject, gate).await?;
        }
        Ok((Outcome::Provisioned, format!("completed an ACTIVE certificate that lacked its {}", missing.join(", "))))
    }

    /// After the thing is claimed and the policy's conditional create answered: make this event's document the
    /// policy's default if it was not created by it, then the groups and both attachments at once.
    async fn converge(
        &self,
        subject: &Subject<'_>,
        gate: &CallGate<'_>,
        facts: &mut Facts,
        created: PolicyStart,
    ) -> Result<(), Stop<'_>> {
        let (cert, verdict) = (subject.cert, subject.verdict);
        if matches!(created, PolicyStart::Exists) && verdict.policy_mode != PolicyMode::Shared {
            self.policy_not_in_use(subject, gate).await?;
        }
        facts.policy_version = Some(self.settle_policy(verdict, created, gate).await?);
        let (policy, thing) = (&verdict.policy.name, &verdict.thing_name);
        let groups = futures::future::join_all(verdict.thing_groups.iter().map(|group| {
            gate.must(Operation::AddThingToThingGroup, move |r| r.add_thing_to_thing_group(thing, group))
        }));
        let (groups, attached_policy, attached_thing) = tokio::join!(
            groups,
            gate.must(Operation::AttachPolicy, |r| r.attach_policy(policy, &cert.arn)),
            gate.must(Operation::AttachThingPrincipal, |r| r.attach_thing_principal(thing, &cert.arn, true)),
        );
        // Every branch has answered; the first failure in the workflow's order is the event's.
        groups.into_iter().collect::<Result<Vec<()>, Error>>()?;
        attached_policy?;
        attached_thing?;
        Ok(())
    }

    /// Make this certificate the owner of its thing, or refuse (see the module docs for why this is atomic).
    async fn claim_thing(&self, subject: &Subject<'_>, gate: &CallGate<'_>) -> Result<(), Stop<'_>> {
        let (cert, verdict) = (subject.cert, subject.verdict);
        let spec = thing_spec(subject.verdict, &subject.cert.id);
        let name = &verdict.thing_name;
        for _ in 0..MAX_CLAIM_ROUNDS {
            // The conditional create: succeeds for the first certificate, and for its own replays.
            match gate.call(Operation::CreateThing, |r| r.create_thing(&spec)).await? {
                Ok(()) => return Ok(()),
                Err(RegistryError::AlreadyExists(_)) => {}
                Err(source @ RegistryError::NotFound(_)) => {
                    // AWS IoT creates neither thing types nor groups on the fly: an operator's setup step was missed.
                    let thing_type = spec.thing_type.clone().unwrap_or_default();
                    return Err(Error::MissingThingType { thing_type, source }.into());
                }
                Err(e) => return Err(registry_error(Operation::CreateThing, e).into()),
            }
            let Some(current) = gate.optional(Operation::DescribeThing, |r| r.describe_thing(name)).await? else {
                continue; // deleted since: create again
            };
            let Some(owner) = current.attributes.get(CERTIFICATE_ATTRIBUTE) else {
                return Err(reject!(
                    ThingNotManaged,
                    "thing {name} exists but jitp did not create it (it has no {CERTIFICATE_ATTRIBUTE} attribute); jitp never adopts a thing: delete it, or set {CERTIFICATE_ATTRIBUTE}={} on it to hand it to this certificate",
                    cert.id
                )
                .into());
            };
            let replacing = if *owner == cert.id.to_string() {
                false // ours, with another configuration (the profile changed): update it in place
            } else {
                self.may_take_over(subject, owner, gate).await?;
                true
            };
            // The compare-and-set: only if nobody wrote the thing since it was read.
            match gate.call(Operation::UpdateThing, |r| r.update_thing(&spec, Some(current.version))).await? {
                Ok(()) => {
                    if replacing {
                        tracing::info!(thing = %name, from = %owner, to = %cert.id, "rotation: thing moved to a newer certificate");
                    }
                    return Ok(());
                }
                Err(RegistryError::VersionConflict(_) | RegistryError::NotFound(_)) => continue,
                Err(e) => return Err(registry_error(Operation::UpdateThing, e).into()),
            }
        }
        Err(Error::Contended { thing: name.clone(), rounds: MAX_CLAIM_ROUNDS }.into())
    }

    /// The thing is owned by `owner`, another certificate: may this one take it over?
    ///
    /// Only from a live owner, and only by rotation. The owner attribute is a claim anyone who can write thing
    /// attributes can make, so it is checked against the registry before anything follows from it:
    ///
    /// - not a certificate id, or an ACTIVE certificate not attached to the thing (a thing made or edited by
    ///   hand): THING_NOT_MANAGED, held;
    /// - REVOKED, INACTIVE or deleted: THING_OWNER_RETIRED, held. A retired owner's name is never taken over
    ///   silently, in either mode: the operator decides (`jitp handover`, or delete the thing);
    /// - live (ACTIVE and attached, or PENDING_ACTIVATION: a provisioning in flight): DUPLICATE_THING, unless
    ///   `on_duplicate = "rotate"` and this certificate is newer and of the same CA.
    async fn may_take_over(&self, subject: &Subject<'_>, owner: &str, gate: &CallGate<'_>) -> Result<(), Stop<'_>> {
        let name = &subject.verdict.thing_name;
        let Ok(other) = owner.parse::<CertificateId>() else {
            return Err(reject!(
                ThingNotManaged,
                "thing {name} has {CERTIFICATE_ATTRIBUTE}={owner:?}, which is not a certificate id; jitp leaves it to the operator"
            )
            .into());
        };
        let (not_before, same_ca, status) = match self.other_certificate(subject, &other, gate).await? {
            Other::Gone => {
                return Err(reject!(
                    ThingOwnerRetired,
                    "thing {name} belongs to certificate {other}, which no longer exists; jitp does not take a name over from a deleted owner: hand it to this certificate with `jitp handover --thing {name} --certificate {}`, or delete the thing",
                    subject.cert.id
                )
                .into());
            }
            Other::Present { not_before, same_ca, status } => (not_before, same_ca, status),
        };
        match status {
            CertificateStatus::Active => {
                let principals = gate.must(Operation::ListThingPrincipals, |r| r.list_thing_principals(name)).await?;
                if !principals.iter().any(|arn| CertificateId::from_arn(arn).as_ref() == Some(&other)) {
                    return Err(reject!(
                        ThingNotManaged,
                        "thing {name} names certificate {other} as its owner, but that certificate is not attached to it: not a thing jitp provisioned; jitp leaves it to the operator"
                    )
                    .into());
                }
            }
            CertificateStatus::PendingActivation => {}
            retired => {
                return Err(reject!(
                    ThingOwnerRetired,
                    "thing {name} belongs to certificate {other}, which is {retired}; jitp does not take a name over from a retired owner: hand it to this certificate with `jitp handover --thing {name} --certificate {}`, or delete the thing",
                    subject.cert.id
                )
                .into());
            }
        }
        let live = status == CertificateStatus::Active;
        let duplicate = |rejection: Rejection| {
            Stop::Reject(Box::new(Refused {
                refusal: rejection.into(),
                active: false,
                written: None,
                live_owner: live,
            }))
        };
        if subject.verdict.on_duplicate == OnDuplicate::Reject {
            return Err(duplicate(reject!(
                DuplicateThing,
                "thing {name} belongs to certificate {other} ({status}: an owner whose provisioning is in flight keeps its thing); one identity per device (on_duplicate = \"rotate\" lets a newer certificate of the same CA take over)"
            )));
        }
        if !same_ca {
            return Err(duplicate(reject!(
                DuplicateThing,
                "thing {name} belongs to certificate {other} of another CA; rotation replaces only a certificate of the same CA"
            )));
        }
        if (not_before, &other) > subject.rank() {
            return Err(duplicate(reject!(
                DuplicateThing,
                "thing {name} belongs to newer certificate {other} (notBefore {}); rotation only moves a thing to a newer certificate",
                jitp_pki::unix_time::rfc3339(not_before)
            )));
        }
        Ok(())
    }

    async fn other_certificate(
        &self,
        subject: &Subject<'_>,
        other: &CertificateId,
        gate: &CallGate<'_>,
    ) -> Result<Other, Stop<'_>> {
        let Some(described) = gate.optional(Operation::DescribeCertificate, |r| r.describe_certificate(other)).await?
        else {
            return Ok(Other::Gone);
        };
        // A certificate jitp cannot read was never provisioned by it: rank it oldest, of another CA.
        let Ok(parsed) = Certificate::from_pem(described.pem.as_bytes()) else {
            return Ok(Other::Present { not_before: i64::MIN, same_ca: false, status: described.status });
        };
        let same_ca = parsed.issuer_der() == subject.ca.subject_der()
            && described.ca_certificate_id.as_ref().is_none_or(|id| id == subject.ca_id);
        Ok(Other::Present { not_before: parsed.validity().0, same_ca, status: described.status })
    }

    /// After activation in rotate mode: step back if a newer certificate took the thing meanwhile, else retire
    /// (deactivate) the older certificates of the same CA attached to it. Returns the ids it deactivated.
    async fn settle_rotation(&self, subject: &Subject<'_>, gate: &CallGate<'_>) -> Result<Vec<String>, Stop<'_>> {
        let (cert, name) = (subject.cert, &subject.verdict.thing_name);
        let current = gate.must(Operation::DescribeThing, |r| r.describe_thing(name)).await?;
        let owner = current.attributes.get(CERTIFICATE_ATTRIBUTE).cloned().unwrap_or_default();
        if owner != cert.id.to_string() {
            gate.set_status(&cert.id, CertificateStatus::Inactive).await?;
            return Err(Stop::deactivated(reject!(
                DuplicateThing,
                "thing {name} was taken over by newer certificate {owner} while this one was provisioned; jitp deactivated this one (it stays attached, for a rollback)"
            )));
        }
        let principals = gate.must(Operation::ListThingPrincipals, |r| r.list_thing_principals(name)).await?;
        let mut retired = Vec::new();
        for arn in principals.iter().filter(|a| **a != cert.arn) {
            let Some(other) = CertificateId::from_arn(arn) else { continue };
            match self.other_certificate(subject, &other, gate).await? {
                Other::Present { not_before, same_ca: true, status } if (not_before, &other) < subject.rank() => {
                    if matches!(status, CertificateStatus::Active | CertificateStatus::PendingActivation) {
                        gate.set_status(&other, CertificateStatus::Inactive).await?;
                        retired.push(other.to_string());
                    }
                }
                // Gone, newer (it retires this one), or of another CA (attached by an operator): not ours.
                Other::Gone | Other::Present { .. } => {}
            }
        }
        Ok(retired)
    }

    /// The device's per-thing policy existed before this event: prove that no other certificate depends on it
    /// before this event writes a version into it or attaches it (POLICY_IN_USE, held, otherwise).
    ///
    /// Why this is needed: the claim proves the *thing* is this certificate's, not the policy. An operator who
    /// deletes a thing leaves its certificate ACTIVE with the per-thing policy attached; a new certificate for the
    /// same name then creates the thing again and would find the policy there. Writing its document would change
    /// the old certificate's permissions, and even attaching the same document would give two ACTIVE
    /// certificates one client id.
    ///
    /// Who may be attached besides this certificate: REVOKED certificates (final in AWS IoT: they never connect
    /// again), certificates attached to the thing this event has just claimed that are not ACTIVE (the device's
    /// own retired ones: an owner handed over, a predecessor kept INACTIVE for a rollback), and, in rotate mode,
    /// the thing's older ACTIVE certificates of the same CA (this event retires them once it has activated).
    /// Anything else (a newer ACTIVE certificate on the thing, an ACTIVE
    /// certificate on the thing in reject mode, any live certificate elsewhere, a thing group, an identity)
    /// holds the event. At most
    /// [`MAX_TARGETS_DESCRIBED`] other certificates are described; more than that holds it too.
    ///
    /// Why the answer stays true until this event attaches the policy: it runs after the claim succeeded, so
    /// only this certificate (and replays of its event) can reach this point for this thing, by the claim's
    /// atomic primitives (CreateThing's conditional create, UpdateThing's expectedVersion); no other jitp event
    /// attaches this policy meanwhile. A person attaching it by hand in that window is not jitp's to prevent;
    /// `jitp reconcile` reports such a certificate (`orphaned`). Cost: one ListTargetsForPolicy, on this slow
    /// path only (the policy existed); ListThingPrincipals and DescribeCertificate only when others are attached.
    async fn policy_not_in_use(&self, subject: &Subject<'_>, gate: &CallGate<'_>) -> Result<(), Stop<'_>> {
        let (cert, verdict) = (subject.cert, subject.verdict);
        let (name, thing) = (&verdict.policy.name, &verdict.thing_name);
        let Some(targets) = gate.optional(Operation::ListTargetsForPolicy, |r| r.list_targets_for_policy(name)).await?
        else {
            // Deleted since CreatePolicy answered: GetPolicy says so next, and the event is handed back.
            return Ok(());
        };
        let others: Vec<&String> = targets.iter().filter(|t| **t != cert.arn).collect();
        if others.is_empty() {
            return Ok(());
        }
        let principals = gate
            .optional(Operation::ListThingPrincipals, |r| r.list_thing_principals(thing))
            .await?
            .unwrap_or_default();
        let mut blocking: Vec<String> = Vec::new();
        let mut described = 0;
        for target in others {
            let Some(id) = CertificateId::from_arn(target) else {
                blocking.push(format!("{target} (not a certificate)"));
                continue;
            };
            let on_thing = principals.contains(target);
            if described == MAX_TARGETS_DESCRIBED {
                blocking.push(format!("certificate {id} (not examined)"));
                continue;
            }
            described += 1;
            let rotate = verdict.on_duplicate == OnDuplicate::Rotate;
            match self.other_certificate(subject, &id, gate).await? {
                Other::Gone => {}
                Other::Present { status: CertificateStatus::Revoked, .. } => {}
                // The device's own retired certificate (an owner handed over, kept for a rollback): not live.
                Other::Present { status, .. } if on_thing && status != CertificateStatus::Active => {}
                // A rotation's older predecessor of the same CA: this event retires it once it has activated
                // (`settle_rotation` retires exactly these).
                Other::Present { not_before, same_ca: true, .. }
                    if on_thing && rotate && (not_before, &id) < subject.rank() => {}
                Other::Present { status, .. } => blocking.push(format!("certificate {id} ({status})")),
            }
        }
        if blocking.is_empty() {
            return Ok(());
        }
        let shown: Vec<&str> = blocking.iter().take(3).map(String::as_str).collect();
        let more = blocking.len().saturating_sub(shown.len());
        Err(reject!(
            PolicyInUse,
            "policy {name} is attached to {}{} as well: writing or attaching it for certificate {} would change or share that certificate's permissions (was the thing deleted while its certificate stayed ACTIVE?). Revoke, deactivate or detach the other certificate, or hand the device over, then redeliver the event",
            shown.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() },
            cert.id
        )
        .into())
    }

    /// The policy's conditional create, the part that may run before the claim is known (see
    /// [`Self::provision`]): CreatePolicy, unless this process already knows the shared policy with this
    /// document.
    async fn create_policy(&self, verdict: &Verdict<'_>, gate: &CallGate<'_>) -> Result<PolicyStart, Stop<'_>> {
        let (name, document) = (&verdict.policy.name, &verdict.policy.document);
        if verdict.policy_mode == PolicyMode::Shared
            && let Some((doc, version)) = self.shared_policies.lock().ok().and_then(|m| m.get(name).cloned())
            && doc == *document
        {
            return Ok(PolicyStart::Known(version));
        }
        match gate.call(Operation::CreatePolicy, |r| r.create_policy(name, document)).await? {
            Ok(()) => Ok(PolicyStart::Created),
            Err(RegistryError::AlreadyExists(_)) => Ok(PolicyStart::Exists),
            Err(e) => Err(registry_error(Operation::CreatePolicy, e).into()),
        }
    }

    /// After the claim: the policy's default version is this event's document. Returns that version.
    async fn settle_policy(
        &self,
        verdict: &Verdict<'_>,
        created: PolicyStart,
        gate: &CallGate<'_>,
    ) -> Result<String, Stop<'_>> {
        let (name, document) = (&verdict.policy.name, &verdict.policy.document);
        let version = match created {
            PolicyStart::Known(version) => return Ok(version),
            PolicyStart::Created => "1".to_owned(),
            PolicyStart::Exists => self.update_policy(name, document, gate).await?,
        };
        if verdict.policy_mode == PolicyMode::Shared
            && let Ok(mut map) = self.shared_policies.lock()
        {
            map.insert(name.clone(), (document.clone(), version.clone()));
        }
        Ok(version)
    }

    /// The policy exists: make `document` its default version unless it already is ([`make_default`]).
    async fn update_policy(&self, name: &PolicyName, document: &str, gate: &CallGate<'_>) -> Result<String, Stop<'_>> {
        Ok(make_default(name, document, gate).await?.version)
    }
}

/// What `jitp handover` did: the thing moved to a certificate by an operator's decision.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HandedOver {
    /// The thing.
    pub thing: String,
    /// The owner before (the attribute's value as it was).
    pub from: Option<String>,
    /// The owner now.
    pub to: String,
    /// The new owner was INACTIVE, attached to the thing with its policy, and is ACTIVE now (a rotation rollback).
    pub activated: bool,
    /// The device's other certificates that were ACTIVE (the previous owner, others on the thing), INACTIVE now
    /// (never REVOKED: the hand-over can be handed back).
    pub deactivated: Vec<String>,
    /// One sentence: what happened and what to do next.
    pub message: String,
}

impl Provisioner {
    /// `jitp handover`: move thing `thing` to certificate `to`, deliberately, when the workflow holds a device
    /// (THING_OWNER_RETIRED, THING_NOT_MANAGED) or to roll a rotation back. Refused (a [`Rejection`], nothing
    /// written) unless today's configuration accepts `to` for exactly this thing.
    ///
    /// The order keeps a device with an ACTIVE certificate at every step, also under redelivered events:
    /// 1. the compare-and-set of the owner attribute (UpdateThing with the `expectedVersion` just read: a thing
    ///    written since makes the hand-over fail, never overwrite). From here on a late event of the previous
    ///    owner finds it no longer owns the thing; its owner (`to`) is not live yet, so that event is held, not
    ///    acted on (`recheck_active` deactivates only for a live owner), and the previous owner stays ACTIVE;
    /// 2. `to` activated, if it was INACTIVE and is attached to the thing with its policy (a rollback); a
    ///    PENDING `to` is provisioned by its redelivered event, which now finds itself the owner;
    /// 3. every other ACTIVE certificate of the device (the previous owner, any other on the thing) deactivated,
    ///    only once `to` is ACTIVE.
    ///
    /// A PENDING `to` while another certificate of the device is ACTIVE is refused: the device would end with two
    /// ACTIVE certificates on one thing; deactivate it first, or use rotation.
    pub async fn hand_over(
        &self,
        thing: &jitp_registry::thing::ThingName,
        to: &CertificateId,
        now: i64,
    ) -> Result<Result<HandedOver, Rejection>, Error> {
        let gate = CallGate::new(self.registry.as_ref(), &self.settings, &self.pacer);
        let Some(current) = gate.optional(Operation::DescribeThing, |r| r.describe_thing(thing)).await? else {
            return Ok(Err(reject!(
                ThingNotManaged,
                "thing {thing} does not exist: nothing to hand over; redeliver the certificate's event"
            )));
        };
        let Some(cert) = gate.optional(Operation::DescribeCertificate, |r| r.describe_certificate(to)).await? else {
            return Ok(Err(reject!(CertNotFound, "certificate {to} does not exist in the registry")));
        };
        if !matches!(
            cert.status,
            CertificateStatus::PendingActivation | CertificateStatus::Active | CertificateStatus::Inactive
        ) {
            return Ok(Err(reject!(
                CertNotPending,
                "certificate {to} is {}: it can never be a thing's owner again",
                cert.status
            )));
        }
        let Some(ca_id) = cert.ca_certificate_id.clone() else {
            return Ok(Err(reject!(
                UnknownCa,
                "the registry names no CA for certificate {to}: nothing to decide against"
            )));
        };
        let ca = self.cas.get(&ca_id, self.rules.config(), &gate).await?;
        let registered = match ca.usable() {
            Ok(registered) => registered,
            Err(rejection) => return Ok(Err(rejection)),
        };
        let input = Input { certificate_pem: cert.pem.as_bytes(), ca: registered, now, aws: &self.settings.aws };
        let verdict = match decide::decide(&self.rules, &input) {
            Ok(v) => v,
            Err(refusal) => return Ok(Err(refusal.rejection)),
        };
        if verdict.thing_name != *thing {
            return Ok(Err(reject!(
                DuplicateThing,
                "today's configuration names certificate {to}'s thing {}, not {thing}: a certificate is handed only its own name",
                verdict.thing_name
            )));
        }
        let from = current.attributes.get(CERTIFICATE_ATTRIBUTE).cloned();
        // Every other ACTIVE certificate of the device: the recorded owner, and any certificate attached to the
        // thing (a rotation's newer certificate after the attribute was written back by hand, say). Once `to` is
        // ACTIVE, each of them is deactivated: one identity per device.
        let principals = gate.must(Operation::ListThingPrincipals, |r| r.list_thing_principals(thing)).await?;
        let mut others: Vec<CertificateId> = principals.iter().filter_map(|arn| CertificateId::from_arn(arn)).collect();
        others.extend(from.as_deref().and_then(|o| o.parse::<CertificateId>().ok()));
        others.sort();
        others.dedup();
        others.retain(|id| id != to);
        let mut active_others = Vec::new();
        for id in others.iter().take(MAX_TARGETS_DESCRIBED) {
            let described = gate.optional(Operation::DescribeCertificate, |r| r.describe_certificate(id)).await?;
            if described.is_some_and(|d| d.status == CertificateStatus::Active) {
                active_others.push(id.clone());
            }
        }
        if others.len() > MAX_TARGETS_DESCRIBED {
            return Ok(Err(reject!(
                DuplicateThing,
                "thing {thing} has {} other certificates: more than jitp examines ({MAX_TARGETS_DESCRIBED}); detach the ones that are not this device's first",
                others.len()
            )));
        }
        if !active_others.is_empty() && cert.status == CertificateStatus::PendingActivation {
            let shown: Vec<String> = active_others.iter().map(ToString::to_string).collect();
            return Ok(Err(reject!(
                DuplicateThing,
                "thing {thing} has ACTIVE certificate {} and certificate {to} is PENDING: handing over now would leave two ACTIVE certificates on one thing once {to} is provisioned; deactivate it first (or use on_duplicate = \"rotate\")",
                shown.join(", ")
            )));
        }
        // A rollback's certificate must already be complete: it is activated here, not by an event.
        if cert.status == CertificateStatus::Inactive {
            let policies = gate.must(Operation::ListAttachedPolicies, |r| r.list_attached_policies(&cert.arn)).await?;
            if !principals.contains(&cert.arn) || !policies.contains(&verdict.policy.name) {
                return Ok(Err(reject!(
                    CertNotPending,
                    "certificate {to} is INACTIVE and not attached to thing {thing} with policy {}: jitp activates only a complete certificate",
                    verdict.policy.name
                )));
            }
        }
        let ca_cert = match registered.certificate() {
            Ok(c) => c,
            Err(rejection) => return Ok(Err(rejection.clone())),
        };
        let subject = Subject { cert: &cert, verdict: &verdict, ca_id: &ca_id, ca: ca_cert };
        let spec = thing_spec(subject.verdict, &subject.cert.id);
        if from.as_deref() != Some(to.as_str()) {
            match gate.call(Operation::UpdateThing, |r| r.update_thing(&spec, Some(current.version))).await? {
                Ok(()) => {}
                Err(RegistryError::VersionConflict(_) | RegistryError::NotFound(_)) => {
                    return Err(Error::Contended { thing: thing.clone(), rounds: 1 });
                }
                Err(e) => return Err(registry_error(Operation::UpdateThing, e)),
            }
        }
        let activated = cert.status == CertificateStatus::Inactive;
        if activated {
            gate.must(Operation::UpdateCertificate, |r| r.update_certificate(to, CertificateStatus::Active)).await?;
        }
        let mut deactivated = Vec::new();
        if cert.status != CertificateStatus::PendingActivation {
            for other in &active_others {
                gate.set_status(other, CertificateStatus::Inactive).await?;
                deactivated.push(other.to_string());
            }
        }
        let message = match cert.status {
            CertificateStatus::PendingActivation => format!(
                "thing {thing} now names certificate {to}: redeliver its held event (or redrive the dead-letter queue) to provision it"
            ),
            _ => format!("thing {thing} now names certificate {to}, which is ACTIVE"),
        };
        Ok(Ok(HandedOver { thing: thing.to_string(), from, to: to.to_string(), activated, deactivated, message }))
    }
}

fn failed(e: &Error) -> Ending {
    Ending::Failed { operation: e.operation(), message: e.to_string() }
}

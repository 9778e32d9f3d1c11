//! `jitp reconcile --apply` and `--rollback`: make the registry what the plan says today's configuration wants,
//! and undo the policy part.
//!
//! # The plan is the resume point
//!
//! An apply makes the plan again (the same inventory, every device re-decided, the same paced and retried
//! calls) and acts on each device's place in it. Nothing is remembered between runs: a device an earlier,
//! interrupted apply already changed is `unchanged` in the plan, so re-running continues where it stopped and
//! converges; a second apply finds nothing to do and writes nothing.
//!
//! # What an apply changes
//!
//! - **Policy changes**: the rendered document becomes the policy's new default version (CreatePolicyVersion
//!   set-as-default, [`make_default`]: the workflow's own path), after the default it replaces is recorded in
//!   the policy's tags (below). At AWS's limit of 5 versions the oldest version is pruned first, never the
//!   default and never the one just recorded (it is what `--rollback` restores). A CreatePolicyVersion whose
//!   answer was lost is never repeated blind: the policy is read again first, so no document is ever stored
//!   twice in a row by one run. A shared policy gets one new version, made once, reported with the devices it
//!   reaches. A policy that does not exist is reported, not created (only a provisioning creates and attaches
//!   policies).
//! - **Thing changes**: UpdateThing with `expectedVersion` = the version the listing returned (the workflow's
//!   compare-and-set: a thing written since is not overwritten, it is an error and the re-run reads it again).
//!   The `jitp_certificate` attribute is written as it is: reconcile never moves a thing to another
//!   certificate. A changed thing *name* is reported: AWS IoT cannot rename a thing.
//! - **Would reject**: reported. With `--revoke`, the profile's `on_reject` (REVOKED, INACTIVE, or left) is
//!   applied to those ACTIVE certificates when the reason is the device's fault ([`Fault::Device`]:
//!   CERT_DENIED, CERT_REVOKED, CERT_EXPIRED...), through the workflow's mapping ([`rejection_effect`]); an operator's
//!   fault (CA_INVALID from a stale CRL, CA_NOT_ACTIVE...) and a refusal by the profile's own rules
//!   ([`Fault::Profile`]: SUBJECT_MISMATCH, VALIDITY_TOO_LONG, KEY_TOO_SHORT...: a configuration change could
//!   accept the device again) are only ever reported.
//!
//! # Rollback: how it knows the version before
//!
//! Every new default jitp makes ([`make_default`], for an apply and for the workflow alike) is preceded by a
//! record in the policy's own tags, written where any later run can read it: TagResource
//! `jitp:rollback:<SHA-256 of the new document, canonical>` = `<the default version id read just before>`
//! (GetPolicy, then TagResource, then CreatePolicyVersion). `--rollback`, for a device whose default is today's
//! document, reads the policy again (GetPolicy: the default now, and the ARN the tags are on), hashes the
//! default's document, and looks its key up (ListTagsForResource):
//!
//! - found, naming an existing version: SetDefaultPolicyVersion to it, then UntagResource of that key;
//! - found, naming a version that is gone (deleted by hand: pruning never deletes one): refused, reported;
//! - found, but not a version id of this policy other than its default: ignored (tags are state others can
//!   write), refused, reported;
//! - not found: the default is not a document jitp made over another; a policy with one version is left alone
//!   (nothing ever changed it), any other is refused and reported. Nothing is ever inferred from version
//!   numbers: a default set by hand, the 5-version limit, gaps in the numbering change nothing.
//!
//! Why this restores the default that was in force before the apply, in every interleaving (AWS IoT offers no
//! conditional write on policies, so the argument rests on the order of the writes and on the tag's key and value
//! being functions of what was read):
//!
//! - **Any default, any numbering.** The value is the default GetPolicy returned, whatever its number; a
//!   version's document never changes, so restoring that id restores that document.
//! - **The 5-version limit.** Pruning ([`make_default`]) never deletes the default nor the version just
//!   recorded, and removes jitp's tags that name any other version before deleting anything, so no remaining
//!   tag names a deleted version.
//! - **A crash or a lost answer.** The record is written before the version exists. A crash before
//!   CreatePolicyVersion leaves a record and the old default: the re-run reads the default again and rewrites
//!   the same key (with the default it reads then). A CreatePolicyVersion that took effect but whose answer was
//!   lost is re-read, not repeated; the record was already there. AWS makes a version and its default in one
//!   call (`setAsDefault`), so there is no state "created but not yet default" to recover from.
//! - **Two applies at once, same document.** Both read the default (the same one, or one of them already sees
//!   the new document and does nothing), both write the same key with the same value, and each may make a
//!   version: the document can then be stored twice, but whichever is the default, its document hashes to that
//!   key, and rollback restores the default both read.
//! - **Two applies at once, different documents.** Two keys. The default at the end is one of the two
//!   documents; its key names the default its own apply read, which is the state before that apply. If the
//!   other apply's version landed first, that is its document (which was in force in between).
//! - **A rollback run twice, or a crash inside one.** The first rollback sets the old default and removes the
//!   key; the default's document is then not today's, so a second run does nothing (and if it were, its key is
//!   gone: refused). A crash between SetDefaultPolicyVersion and UntagResource leaves a key no default hashes
//!   to: harmless, removed by the next pruning.
//! - **A rollback concurrent with an apply** (not a sequence anyone should run) can remove a key that the
//!   apply's later CreatePolicyVersion needs: the next rollback of that policy is then refused and reported,
//!   never wrong. Likewise a pruning removes the record of an apply still in flight only if the default moved
//!   between that apply's read and the pruning: refused later, never wrong.
//!
//! A device the apply did not reach (`--canary`) is not at today's document and is left alone. Thing changes
//! and certificate actions are not rolled back. A version the workflow made (a device re-provisioned after the
//! template changed) carries its record too, so rollback restores it the same way.
//!
//! Calls: an apply's policy change is GetPolicy, TagResource, CreatePolicyVersion (at the limit, add
//! ListPolicyVersions, ListTagsForResource, UntagResource when a stale tag is found, DeletePolicyVersion); a
//! rollback is GetPolicy, ListTagsForResource, SetDefaultPolicyVersion, UntagResource (ListPolicyVersions
//! instead of the last two when no record is found). jitp's tags on a policy stay few: one key per distinct
//! document jitp made the default since the policy last pruned (at most 4, since a policy with 5 versions
//! prunes at every new one; a CreatePolicyVersion that fails for good takes its record back, so only a process
//! dying between TagResource and CreatePolicyVersion leaves one more), and every pruning cleans them down to
//! those naming the default or the version just recorded.

//! # Order, canary, audit
//!
//! Devices are acted on in thing-name order; `--canary N` acts on the first N devices that have something to
//! change and leaves the rest (`deferred`). A shared policy's version is one change reaching all its devices,
//! made when any device the run acts on needs it. `--thing-group G` acts only on the things in G
//! (ListThingsInThingGroup first; the others are not even looked at); a shared policy, which reaches devices
//! outside the group, is then reported, not changed. Every change writes one [`ReconcileRecord`] to the sink as it
//! is made (one per device, one per shared policy).

use std::collections::BTreeMap;

use futures::StreamExt as _;
use serde::Serialize;

use super::{DeviceError, Looked, Memo, Observed, Reconciler, listings};
use crate::audit::{CertificateAction, ReconcileAction, ReconcileRecord};
use crate::decide::Verdict;
use crate::engine::policy_version::{is_version_id, make_default, rollback_tag, same_document};
use crate::engine::{CallGate, registry_error, rejection_effect, thing_spec};
use crate::error::Error;
use jitp_pki::ids::{CertificateId, PolicyName};
use jitp_pki::reason::{Fault, ReasonCode, Rejection};
use jitp_pki::unix_time::rfc3339;
use jitp_profile::profile::{PolicyMode, Profile};
use jitp_registry::registry::{Operation, RegistryError, ThingSpec};
use jitp_registry::thing::ThingName;

/// Apply the plan, or roll its policy changes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `--apply`.
    Apply,
    /// `--rollback`.
    Rollback,
}

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options<'a> {
    /// Apply or roll back.
    pub mode: Mode,
    /// Apply `on_reject` to the would-reject devices whose rejection is the device's fault.
    pub revoke: bool,
    /// Act on the first this many devices (by thing name) that have something to change, then stop.
    pub canary: Option<usize>,
    /// Only the things in this thing group (ListThingsInThingGroup, not recursive).
    pub thing_group: Option<&'a str>,
}

/// A device the run looked at and left as it was, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reported {
    /// Its thing.
    pub thing: String,
    /// The rejection's reason code, for a would-reject device.
    pub reason: Option<ReasonCode>,
    /// Why nothing was done.
    pub message: String,
}

/// Devices by what the run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AppliedCounts {
    /// Every thing listed.
    pub devices: u64,
    /// Devices changed (a shared policy's version counts every device it reaches).
    pub changed: u64,
    /// Policy versions made or rolled back (a shared policy once).
    pub policies: u64,
    /// Things updated.
    pub things: u64,
    /// Certificates given their profile's `on_reject`.
    pub certificates: u64,
    /// Nothing to do.
    pub unchanged: u64,
    /// Looked at, left as they were, reported.
    pub reported: u64,
    /// Left for a later run by `--canary`.
    pub deferred: u64,
    /// Devices whose calls failed (re-run to continue).
    pub errors: u64,
}

/// What a run did: `jitp reconcile --apply --format json` prints this.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Applied {
    /// Apply or rollback.
    pub mode: Mode,
    /// The decision time, RFC 3339.
    pub at: String,
    /// The configuration decided with.
    pub config: String,
    /// No device failed: everything the run set out to change is changed.
    pub converged: bool,
    /// Devices by what was done.
    pub counts: AppliedCounts,
    /// Every change made, in the order made (each also written to the audit sink).
    pub changes: Vec<ReconcileRecord>,
    /// Devices left as they were, and why (in thing-name order).
    pub reported: Vec<Reported>,
    /// Devices whose calls failed (in thing-name order).
    pub errors: Vec<DeviceError>,
    /// Calls made, by operation.
    pub calls: BTreeMap<Operation, u32>,
}

/// What the run does to one device.
#[derive(Debug, Default)]
struct Work<'a> {
    thing: String,
    certificate: Option<&'a CertificateId>,
    /// UpdateThing: the spec and the version it was listed at.
    update: Option<(ThingSpec, i64)>,
    /// Apply: a new default version of a per-thing policy.
    policy: Option<(&'a PolicyName, &'a str)>,
    /// Rollback: a per-thing policy to roll back, and today's document (its default, as the plan read it).
    rollback: Option<(&'a PolicyName, &'a str)>,
    /// `--revoke`: the rejection and its profile.
    revoke: Option<(&'a Rejection, Option<&'a Profile>)>,
    /// Needs a shared policy's change (made once, beside the devices).
    shared: Option<&'a PolicyName>,
}

impl Work<'_> {
    fn is_empty(&self) -> bool {
        self.update.is_none()
            && self.policy.is_none()
            && self.rollback.is_none()
            && self.revoke.is_none()
            && self.shared.is_none()
    }
}

/// One device's part in the run.
enum Step<'a> {
    Nothing,
    Report(Reported),
    Error(DeviceError),
    Do(Work<'a>),
}

/// What acting on one device (or one shared policy) came to.
#[derive(Default)]
struct Done {
    records: Vec<ReconcileRecord>,
    reported: Vec<Reported>,
    error: Option<DeviceError>,
}

impl Reconciler {
    /// Apply the plan at `now` (or roll it back, `options.mode`), writing each change's record to `audit` as it
    /// is made. A failed ListThings fails the run; a device whose calls fail is listed under `errors` and the
    /// others go on.
    pub async fn apply(
        &self,
        now: i64,
        options: Options<'_>,
        audit: &(dyn Fn(&ReconcileRecord) + Send + Sync),
    ) -> Result<Applied, Error> {
        let gate = CallGate::new(self.registry.as_ref(), &self.settings, &self.pacer);
        let memo = Memo::default();
        let concurrency = self.concurrency();
        let members = match options.thing_group {
            Some(group) => Some(group_members(group, &gate).await?),
            None => None,
        };
        let mut looked: Vec<Looked<'_>> = Vec::new();
        for filter in listings(self.page_size) {
            let mut token: Option<String> = None;
            loop {
                let mut page = gate.must(Operation::ListThings, |r| r.list_things(&filter, token.as_deref())).await?;
                if let Some(members) = &members {
                    page.things.retain(|t| members.contains(&t.name));
                }
                looked.extend(self.look_page(page.things, now, &gate, &memo, concurrency).await);
                match page.next_token {
                    Some(next) if Some(&next) != token.as_ref() => token = Some(next),
                    _ => break,
                }
            }
        }
        looked.sort_by(|a, b| a.thing.name.cmp(&b.thing.name));

        let mut counts = AppliedCounts::default();
        let (mut reported, mut errors, mut work) = (Vec::new(), Vec::new(), Vec::new());
        for device in &looked {
            counts.devices += 1;
            match step(device, options) {
                Step::Nothing => counts.unchanged += 1,
                Step::Report(r) => reported.push(r),
                Step::Error(e) => errors.push(e),
                Step::Do(w) => work.push(w),
            }
        }
        if let Some(n) = options.canary {
            counts.deferred = work.len().saturating_sub(n) as u64;
            work.truncate(n);
        }
        // Shared policies: the document (apply) and the devices each reaches, over the whole plan.
        let mut shared: BTreeMap<&PolicyName, (&str, u64)> = BTreeMap::new();
        for device in &looked {
            if let Ok(Observed::Accepted { verdict, current_policy }) = &device.observed
                && verdict.policy_mode == PolicyMode::Shared
                && wants(options.mode, verdict, current_policy.as_deref())
            {
                shared.entry(&verdict.policy.name).or_insert((&verdict.policy.document, 0)).1 += 1;
            }
        }
        let needed: std::collections::BTreeSet<&PolicyName> = work.iter().filter_map(|w| w.shared).collect();

        let mut changes = Vec::new();
        let mut take = |done: Done, counts: &mut AppliedCounts, reported: &mut Vec<Reported>| {
            for record in done.records {
                audit(&record);
                match record.action {
                    ReconcileAction::PolicyVersion | ReconcileAction::PolicyRollback => counts.policies += 1,
                    ReconcileAction::SharedPolicyVersion => counts.policies += 1,
                    ReconcileAction::ThingUpdated => counts.things += 1,
                    ReconcileAction::Certificate => counts.certificates += 1,
                }
                changes.push(record);
            }
            reported.extend(done.reported);
            if let Some(e) = done.error {
                errors.push(e);
            }
        };
        for name in needed {
            let Some((document, devices)) = shared.get(name).copied() else { continue };
            let done = self.shared_policy(options.mode, name, document, devices, now, &gate).await;
            counts.changed += done.records.iter().map(|r| r.devices).sum::<u64>();
            take(done, &mut counts, &mut reported);
        }
        let tally_ref = &gate;
        let mut acting = futures::stream::iter(work.iter())
            .map(|w| async move { self.act(w, now, tally_ref).await })
            .buffer_unordered(concurrency);
        while let Some(done) = acting.next().await {
            if done.records.iter().any(|r| r.action != ReconcileAction::SharedPolicyVersion) {
                counts.changed += 1;
            }
            take(done, &mut counts, &mut reported);
        }
        drop(acting);
        // Orphans: ACTIVE certificates with a jitp policy that no thing jitp made names. Not with --thing-group (an
        // orphan is on no thing of it) nor with --canary (it acts on devices, in name order).
        if options.mode == Mode::Apply && options.thing_group.is_none() && options.canary.is_none() {
            let owners = looked.iter().filter_map(|l| l.id.clone()).collect();
            match self.orphans(&owners, &gate, concurrency).await {
                Ok(orphans) => {
                    for orphan in orphans {
                        let done = self.orphan(&orphan, options.revoke, now, &gate).await;
                        take(done, &mut counts, &mut reported);
                    }
                }
                Err(e) => {
                    errors.push(DeviceError { thing: "orphaned certificates".to_owned(), message: e.to_string() })
                }
            }
        }
        reported.sort_by(|a, b| a.thing.cmp(&b.thing));
        errors.sort_by(|a, b| a.thing.cmp(&b.thing));
        counts.reported = reported.len() as u64;
        counts.errors = errors.len() as u64;
        Ok(Applied {
            mode: options.mode,
            at: rfc3339(now),
            config: self.rules.config().path.display().to_string(),
            converged: errors.is_empty(),
            counts,
            changes,
            reported,
            errors,
            calls: gate.into_calls().by_operation,
        })
    }

    /// Act on one device: its thing, its per-thing policy, its certificate.
    async fn act(&self, work: &Work<'_>, now: i64, gate: &CallGate<'_>) -> Done {
        let mut done = Done::default();
        let thing = &work.thing;
        let record = |action, message: String| {
            let mut r = ReconcileRecord::new(now, action, message);
            r.thing_name = Some(thing.clone());
            r.certificate_id = work.certificate.map(ToString::to_string);
            r
        };
        let fail = |message: String| Some(DeviceError { thing: thing.clone(), message });
        if let Some((spec, version)) = &work.update {
            match gate.call(Operation::UpdateThing, |r| r.update_thing(spec, Some(*version))).await {
                Ok(Ok(())) => done.records.push(record(
                    ReconcileAction::ThingUpdated,
                    format!("thing {thing} updated to today's type and attributes (expectedVersion {version})"),
                )),
                Ok(Err(RegistryError::VersionConflict(_) | RegistryError::NotFound(_))) => {
                    done.error = fail(format!(
                        "thing {thing} changed since it was listed (version {version}); re-run to read it again"
                    ));
                    return done;
                }
                Ok(Err(e)) => {
                    done.error = fail(registry_error(Operation::UpdateThing, e).to_string());
                    return done;
                }
                Err(e) => {
                    done.error = fail(e.to_string());
                    return done;
                }
            }
        }
        if let Some((name, document)) = work.policy {
            match make_default(name, document, gate).await {
                Ok(d) => {
                    if let Some(previous) = d.previous {
                        let mut r = record(
                            ReconcileAction::PolicyVersion,
                            format!(
                                "policy {name}: today's document is the default, version {previous} -> {}",
                                d.version
                            ),
                        );
                        r.policy_name = Some(name.to_string());
                        r.from_version = Some(previous);
                        r.to_version = Some(d.version);
                        done.records.push(r);
                    }
                }
                Err(e) => {
                    done.error = fail(e.to_string());
                    return done;
                }
            }
        }
        if let Some((name, document)) = work.rollback {
            match self.roll_back(name, document, gate).await {
                Ok(Rolled::Back { from, to }) => {
                    let mut r = record(
                        ReconcileAction::PolicyRollback,
                        format!("policy {name}: default version {from} -> {to}"),
                    );
                    r.policy_name = Some(name.to_string());
                    r.from_version = Some(from);
                    r.to_version = Some(to);
                    done.records.push(r);
                }
                Ok(Rolled::Nothing) => {}
                Ok(Rolled::Refused(message)) => {
                    done.reported.push(Reported { thing: thing.clone(), reason: None, message });
                }
                Err(e) => done.error = fail(e.to_string()),
            }
        }
        if let (Some((rejection, profile)), Some(id)) = (work.revoke, work.certificate) {
            match rejection_effect(rejection.reason, self.rules.config().on_reject(profile)) {
                effect @ (Some((None, _)) | None) => done.reported.push(Reported {
                    thing: thing.clone(),
                    reason: Some(rejection.reason),
                    message: match effect {
                        Some((None, CertificateAction::Left)) => {
                            format!("on_reject = \"leave\": left ACTIVE ({})", rejection.message)
                        }
                        _ => format!("not the device's fault: left ACTIVE, never revoked ({})", rejection.message),
                    },
                }),
                Some((Some(status), action)) => match gate.set_status(id, status).await {
                    Ok(()) => {
                        let mut r = record(
                            ReconcileAction::Certificate,
                            format!("certificate {id} set {}: {}", action.as_str(), rejection.message),
                        );
                        r.reason = Some(rejection.reason);
                        r.certificate_action = Some(action);
                        done.records.push(r);
                    }
                    Err(e) => done.error = fail(e.to_string()),
                },
            }
        }
        done
    }

    /// An orphaned certificate: with `--revoke`, deactivated (INACTIVE, never REVOKED: it was orphaned by what
    /// someone did to its thing, not by anything wrong with the certificate, and a configuration or a hand-over
    /// may still give it back its device); otherwise reported.
    async fn orphan(&self, orphan: &super::Orphan, revoke: bool, now: i64, gate: &CallGate<'_>) -> Done {
        let mut done = Done::default();
        let label = format!("certificate {}", orphan.id);
        let why = format!(
            "ACTIVE with jitp policy {} but no thing jitp made names it (its thing was deleted, or names another certificate)",
            orphan.policies.join(", ")
        );
        if !revoke {
            done.reported.push(Reported {
                thing: label,
                reason: None,
                message: format!("orphaned: {why}; --revoke deactivates it"),
            });
            return done;
        }
        match gate.set_status(&orphan.id, jitp_registry::event::CertificateStatus::Inactive).await {
            Ok(()) => {
                let mut r =
                    ReconcileRecord::new(now, ReconcileAction::Certificate, format!("{label} set INACTIVE: {why}"));
                r.certificate_id = Some(orphan.id.to_string());
                r.certificate_action = Some(crate::audit::CertificateAction::Inactive);
                done.records.push(r);
            }
            Err(e) => done.error = Some(DeviceError { thing: label, message: e.to_string() }),
        }
        done
    }

    /// A shared policy's one change for the `devices` devices it reaches.
    async fn shared_policy(
        &self,
        mode: Mode,
        name: &PolicyName,
        document: &str,
        devices: u64,
        now: i64,
        gate: &CallGate<'_>,
    ) -> Done {
        let mut done = Done::default();
        let label = format!("shared policy {name}");
        let (action, result) = match mode {
            Mode::Apply => (
                ReconcileAction::SharedPolicyVersion,
                make_default(name, document, gate)
                    .await
                    .map(|d| d.previous.map_or(Rolled::Nothing, |from| Rolled::Back { from, to: d.version })),
            ),
            Mode::Rollback => (ReconcileAction::PolicyRollback, self.roll_back(name, document, gate).await),
        };
        match result {
            Ok(Rolled::Back { from, to }) => {
                let mut r = ReconcileRecord::new(
                    now,
                    action,
                    format!("{label}: default version {from} -> {to}, {devices} devices"),
                );
                r.policy_name = Some(name.to_string());
                r.from_version = Some(from);
                r.to_version = Some(to);
                r.devices = devices;
                done.records.push(r);
            }
            Ok(Rolled::Nothing) => {}
            Ok(Rolled::Refused(message)) => done.reported.push(Reported { thing: label, reason: None, message }),
            Err(e) => done.error = Some(DeviceError { thing: label, message: e.to_string() }),
        }
        done
    }

    /// Set the default back to the version it was before `document` was made the default, as the apply that
    /// made it recorded in the policy's tags (see the module docs for the rule and its argument).
    async fn roll_back(&self, name: &PolicyName, document: &str, gate: &CallGate<'_>) -> Result<Rolled, Error> {
        let current = gate.must(Operation::GetPolicy, |r| r.get_policy(name)).await?;
        if !same_document(&current.document, document) {
            return Ok(Rolled::Nothing); // changed since the plan read it: no longer today's document
        }
        let default = current.default_version_id.as_str();
        let key = rollback_tag(&current.document);
        let tags = gate.must(Operation::ListTagsForResource, |r| r.list_tags_for_resource(&current.arn)).await?;
        let Some(before) = tags.get(&key) else {
            let versions = gate.must(Operation::ListPolicyVersions, |r| r.list_policy_versions(name)).await?;
            if versions.len() < 2 {
                return Ok(Rolled::Nothing); // only ever one version: nothing changed it
            }
            return Ok(Rolled::Refused(format!(
                "policy {name}: its default, version {default}, is today's document, but no apply recorded the \
                 default it replaced (no tag {key}): not rolled back; jitp never guesses it from version numbers"
            )));
        };
        if !is_version_id(before) || before == default {
            return Ok(Rolled::Refused(format!(
                "policy {name}: tag {key} = {before:?} is not a version of this policy other than its default \
                 {default}: ignored (someone else wrote it); not rolled back"
            )));
        }
        match gate.call(Operation::SetDefaultPolicyVersion, |r| r.set_default_policy_version(name, before)).await? {
            Ok(()) => {}
            Err(RegistryError::NotFound(_)) => {
                return Ok(Rolled::Refused(format!(
                    "policy {name}: version {before}, the default before today's document (tag {key}), no longer \
                     exists: not rolled back"
                )));
            }
            Err(e) => return Err(registry_error(Operation::SetDefaultPolicyVersion, e)),
        }
        // The record is spent. If this fails, the tag stays behind harmlessly: the default's document no longer
        // hashes to it, so no rollback reads it, and the next pruning of this policy removes it.
        let spent = [key];
        let _ = gate.call(Operation::UntagResource, |r| r.untag_resource(&current.arn, &spent)).await;
        Ok(Rolled::Back { from: default.to_owned(), to: before.clone() })
    }
}

/// Every thing in `group`, page by page.
async fn group_members(group: &str, gate: &CallGate<'_>) -> Result<std::collections::BTreeSet<ThingName>, Error> {
    let mut members = std::collections::BTreeSet::new();
    let mut token: Option<String> = None;
    loop {
        let page = gate
            .must(Operation::ListThingsInThingGroup, |r| r.list_things_in_thing_group(group, token.as_deref()))
            .await?;
        members.extend(page.things);
        match page.next_token {
            Some(next) if Some(&next) != token.as_ref() => token = Some(next),
            _ => return Ok(members),
        }
    }
}

/// What a rollback (or a shared policy's apply) came to.
enum Rolled {
    Back { from: String, to: String },
    Nothing,
    Refused(String),
}

/// Does `mode` change this accepted device's policy? Apply: its default is not today's document. Rollback: it is.
fn wants(mode: Mode, verdict: &Verdict<'_>, current: Option<&str>) -> bool {
    match (mode, current) {
        (_, None) => false,
        (Mode::Apply, Some(current)) => !same_document(current, &verdict.policy.document),
        (Mode::Rollback, Some(current)) => same_document(current, &verdict.policy.document),
    }
}

/// One device's part in the run (pure).
fn step<'a>(device: &'a Looked<'_>, options: Options<'_>) -> Step<'a> {
    let thing = device.thing.name.to_string();
    let observed = match &device.observed {
        Ok(observed) => observed,
        Err(e) => return Step::Error(DeviceError { thing, message: e.to_string() }),
    };
    let certificate = device.id.as_ref();
    let report = |reason, message: String| Step::Report(Reported { thing: thing.clone(), reason, message });
    match (observed, options.mode) {
        (Observed::Refused(rejection, profile), Mode::Apply) => {
            let fault = rejection.reason.fault();
            if options.revoke && fault == Fault::Device {
                let work =
                    Work { thing: thing.clone(), certificate, revoke: Some((rejection, *profile)), ..Work::default() };
                return Step::Do(work);
            }
            let why = match fault {
                Fault::Device => "would reject (--revoke applies on_reject)",
                Fault::Profile => {
                    "would reject by the profile's own rules, which a configuration change could relax: reported only, never revoked"
                }
                Fault::Operator | Fault::None => "would reject, not the device's fault: reported only, never revoked",
            };
            report(Some(rejection.reason), format!("{why}: {}", rejection.message))
        }
        (Observed::Accepted { verdict, current_policy }, mode) => {
            let mut work = Work { thing: thing.clone(), certificate, ..Work::default() };
            let policy = &verdict.policy.name;
            if mode == Mode::Apply && current_policy.is_none() {
                return report(
                    None,
                    format!("policy {policy} does not exist: reconcile does not create policies (a provisioning does)"),
                );
            }
            if wants(mode, verdict, current_policy.as_deref()) {
                match (verdict.policy_mode, mode) {
                    (PolicyMode::Shared, _) if options.thing_group.is_some() => {
                        return report(
                            None,
                            format!(
                                "shared policy {policy} reaches devices outside the thing group: run without --thing-group to change it"
                            ),
                        );
                    }
                    (PolicyMode::Shared, _) => work.shared = Some(policy),
                    (_, Mode::Apply) => work.policy = Some((policy, &verdict.policy.document)),
                    (_, Mode::Rollback) => work.rollback = Some((policy, &verdict.policy.document)),
                }
            }
            if mode == Mode::Apply
                && let Some(id) = certificate
                && let Some(diff) = super::thing_diff(&device.thing, verdict, id)
            {
                if diff.name.is_some() {
                    return report(
                        None,
                        format!(
                            "today's configuration names thing {}: AWS IoT cannot rename a thing; left as it is",
                            verdict.thing_name
                        ),
                    );
                }
                // The owner as it is: reconcile never moves a thing to another certificate.
                work.update = Some((thing_spec(verdict, id), device.thing.version));
            }
            if work.is_empty() { Step::Nothing } else { Step::Do(work) }
        }
        _ => Step::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_apply_record_names_what_it_changed() {
        let mut r = ReconcileRecord::new(0, ReconcileAction::PolicyVersion, "m".into());
        r.policy_name = Some("jitp-x".into());
        let v: serde_json::Value = serde_json::from_str(&r.line("cli")).unwrap_or_default();
        assert_eq!(v["eventType"], "jitp.reconcile");
        assert_eq!(v["action"], "POLICY_VERSION");
        assert_eq!(v["trigger"], "cli");
        assert_eq!(v["level"], "INFO");
    }
}

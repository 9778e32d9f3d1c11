//! A policy's versions: compare a document with the default, make a new default (its rollback record first),
//! prune at AWS's limit of 5 versions. The workflow's slow path and `jitp reconcile --apply | --rollback`
//! both go through [`make_default`].

use std::collections::BTreeMap;
use std::time::Instant;

use jitp_pki::ids::PolicyName;
use jitp_registry::registry::{Operation, RegistryError};

use super::{CallGate, registry_error};
use crate::error::Error;

/// A policy's default version after [`make_default`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Defaulted {
    /// The default before, when this call made a new one (`None`: the document was already the default).
    pub(crate) previous: Option<String>,
    /// The default now.
    pub(crate) version: String,
}

/// The tag key prefix of jitp's rollback records: `jitp:rollback:<SHA-256 of a document>` = the version that
/// was the policy's default when that document was made the default (see `reconcile::apply`'s module doc).
pub(crate) const ROLLBACK_TAG_PREFIX: &str = "jitp:rollback:";

/// The rollback tag key of `document`: its SHA-256 over its canonical form (the JSON with every object's keys
/// sorted, compact), so that two documents [`same_document`] holds equal have the same key however AWS IoT
/// stored them; a text that is not JSON is hashed as it is. 78 characters, inside AWS's 128 for a key.
pub(crate) fn rollback_tag(document: &str) -> String {
    use sha2::Digest as _;
    let canonical = match serde_json::from_str::<serde_json::Value>(document) {
        Ok(value) => sorted_keys(value).to_string(),
        Err(_) => document.to_owned(),
    };
    format!("{ROLLBACK_TAG_PREFIX}{}", hex::encode(sha2::Sha256::digest(canonical.as_bytes())))
}

fn sorted_keys(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted_keys(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted_keys).collect()),
        other => other,
    }
}

/// A policy version id as AWS IoT writes them (decimal digits): a rollback tag's value must be one.
pub(crate) fn is_version_id(value: &str) -> bool {
    !value.is_empty() && value.len() <= 20 && value.bytes().all(|b| b.is_ascii_digit())
}

/// Make `document` the existing policy `name`'s default version unless it already is: CreatePolicyVersion
/// (set as default), after recording the default it replaces in the policy's tag [`rollback_tag`]`(document)`
/// (TagResource, before the version exists, so that no interleaving leaves the new default without its record;
/// the argument is in `reconcile::apply`'s module doc). At AWS's limit of 5 versions, prune first: the oldest
/// version that is neither the default nor the one this call recorded (it stays, for a rollback); jitp's
/// rollback tags naming any other version are removed first (see [`prune`]). A CreatePolicyVersion whose answer
/// was lost (a transient failure: it may have taken effect) is never repeated blind: the policy is read again
/// first, so a retry never makes a second version of the same document.
pub(crate) async fn make_default(name: &PolicyName, document: &str, gate: &CallGate<'_>) -> Result<Defaulted, Error> {
    let started = Instant::now();
    let mut attempt: u32 = 0;
    let mut pruned = 0;
    let mut before: Option<String> = None;
    let mut arn = String::new();
    let mut read = true;
    let key = rollback_tag(document);
    loop {
        if read {
            let current = gate.must(Operation::GetPolicy, |r| r.get_policy(name)).await?;
            if same_document(&current.document, document) {
                // Already the default: made by this call (an answer lost) or by another writer.
                let previous = before.filter(|b| *b != current.default_version_id);
                return Ok(Defaulted { previous, version: current.default_version_id });
            }
            // The record first: the default this version replaces, as read just now.
            let record = BTreeMap::from([(key.clone(), current.default_version_id.clone())]);
            gate.must(Operation::TagResource, |r| r.tag_resource(&current.arn, &record)).await?;
            before = Some(current.default_version_id);
            arn = current.arn;
            read = false;
        }
        match gate
            .attempt(Operation::CreatePolicyVersion, &|r| r.create_policy_version(name, document), started)
            .await?
        {
            Ok(version) => return Ok(Defaulted { previous: before, version }),
            Err(RegistryError::VersionsLimitExceeded(_)) if pruned < 2 => {
                pruned += 1;
                if !prune(name, &arn, before.as_deref(), gate).await? {
                    break;
                }
            }
            Err(RegistryError::VersionsLimitExceeded(_)) => break,
            Err(e) if e.is_transient() => {
                gate.pause(Operation::CreatePolicyVersion, &mut attempt, started, e).await?;
                read = true;
            }
            Err(e) => {
                withdraw(name, &arn, &key, document, gate).await;
                return Err(registry_error(Operation::CreatePolicyVersion, e));
            }
        }
    }
    withdraw(name, &arn, &key, document, gate).await;
    Err(Error::NoVersionToPrune { policy: name.clone() })
}

/// CreatePolicyVersion failed for good: take this call's record back (UntagResource), unless the document is
/// the default after all (another writer's version, which the record serves), so that failed documents do not
/// pile up tags. Best effort: the error being returned is the one that matters, and a record left behind is
/// removed by the next pruning.
async fn withdraw(name: &PolicyName, arn: &str, key: &str, document: &str, gate: &CallGate<'_>) {
    let Ok(Ok(current)) = gate.call(Operation::GetPolicy, |r| r.get_policy(name)).await else { return };
    if !same_document(&current.document, document) {
        let keys = [key.to_owned()];
        let _ = gate.call(Operation::UntagResource, |r| r.untag_resource(arn, &keys)).await;
    }
}

/// At the 5-version limit: delete the oldest version that is neither the default nor `keep` (the default the
/// caller recorded, which a rollback restores). Only here are the policy's tags read (ListTagsForResource), so
/// the workflow's and an apply's calls are unchanged until a policy reaches the limit. jitp's rollback tags
/// that name any other version (or no version id at all) are removed first (UntagResource): they record how an
/// earlier default came to be, which no rollback of today's document reads, and keeping them would pin old
/// versions until nothing could be pruned. So no version a remaining `jitp:rollback:*` tag names is ever
/// deleted, and jitp's tags on a policy are cleaned down to those naming its default or `keep` every time it
/// prunes. Returns whether a version was deleted (or was already gone).
async fn prune(name: &PolicyName, arn: &str, keep: Option<&str>, gate: &CallGate<'_>) -> Result<bool, Error> {
    let versions = gate.must(Operation::ListPolicyVersions, |r| r.list_policy_versions(name)).await?;
    let kept = |id: &str| Some(id) == keep || versions.iter().any(|v| v.is_default && v.version_id == id);
    let tags = gate.must(Operation::ListTagsForResource, |r| r.list_tags_for_resource(arn)).await?;
    let stale: Vec<String> =
        tags.iter().filter(|(k, v)| k.starts_with(ROLLBACK_TAG_PREFIX) && !kept(v)).map(|(k, _)| k.clone()).collect();
    if !stale.is_empty() {
        gate.must(Operation::UntagResource, |r| r.untag_resource(arn, &stale)).await?;
    }
    let oldest = versions
        .iter()
        .filter(|v| !kept(&v.version_id))
        .min_by_key(|v| v.version_id.parse::<u64>().unwrap_or(u64::MAX))
        .map(|v| v.version_id.clone());
    let Some(oldest) = oldest else { return Ok(false) };
    let gone = |e: &RegistryError| matches!(e, RegistryError::NotFound(_));
    gate.settle(Operation::DeletePolicyVersion, |r| r.delete_policy_version(name, &oldest), gone).await?;
    Ok(true)
}

/// Documents are equal if they are the same JSON (AWS may reformat what it stores).
pub(crate) fn same_document(a: &str, b: &str) -> bool {
    match (serde_json::from_str::<serde_json::Value>(a), serde_json::from_str::<serde_json::Value>(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

//! The registered CAs a process has described, for the workflow and for reconcile alike.
//!
//! DescribeCACertificate once per CA: the answer is parsed and checked once for the configuration
//! ([`RegisteredCa`]: the CA's own checks, each profile's `ca_chain` and CRLs verified against it) and kept.
//! The workflow keeps an answer for `ca_cache_ttl` (a CA deactivated in the registry is noticed within that
//! time) and forgets a CA that is not registered (its next event asks again: the operator may register it);
//! a reconcile run keeps every answer, absences included, for the run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jitp_pki::ids::CaCertificateId;
use jitp_pki::reason::{Rejection, reject};
use jitp_profile::ConfigError;
use jitp_profile::judge::RegisteredCa;
use jitp_profile::profile::Config;
use jitp_registry::registry::{CaStatus, Operation};

use super::CallGate;
use crate::error::Error;

/// What the registry said of one CA, when.
#[derive(Debug)]
pub(crate) struct CachedCa {
    id: CaCertificateId,
    /// `None`: not registered in this account.
    found: Option<Found>,
    fetched: Instant,
}

#[derive(Debug)]
struct Found {
    active: bool,
    ca: RegisteredCa,
}

impl CachedCa {
    /// The CA as registered (whatever its status), or UNKNOWN_CA.
    pub(crate) fn registered(&self) -> Result<&RegisteredCa, Rejection> {
        match &self.found {
            Some(found) => Ok(&found.ca),
            None => Err(reject!(UnknownCa, "CA {} is not registered in this account", self.id)),
        }
    }

    /// Is the CA registered and ACTIVE?
    pub(crate) fn is_active(&self) -> bool {
        self.found.as_ref().is_some_and(|f| f.active)
    }

    /// The CA to decide against: UNKNOWN_CA if it is not registered, CA_NOT_ACTIVE if it is not ACTIVE.
    pub(crate) fn usable(&self) -> Result<&RegisteredCa, Rejection> {
        let ca = self.registered()?;
        if !self.is_active() {
            return Err(not_active(&self.id));
        }
        Ok(ca)
    }
}

/// CA_NOT_ACTIVE for `id`: the one wording, wherever a CA's status stops a decision.
pub(crate) fn not_active(id: &CaCertificateId) -> Rejection {
    reject!(CaNotActive, "CA {id} is not ACTIVE in the registry")
}

/// The cache: answers by CA id, and one DescribeCACertificate in flight per CA.
#[derive(Debug)]
pub(crate) struct CaCache {
    /// How long an answer is used; `None`: for the cache's life.
    ttl: Option<Duration>,
    /// Keep "not registered" answers too (a reconcile run), or ask again next time (the workflow).
    remember_missing: bool,
    entries: Mutex<HashMap<CaCertificateId, Arc<CachedCa>>>,
    /// Single flight: the events that need a CA while its description is being fetched wait for that call and
    /// take its answer from the cache, so a cold burst costs one DescribeCACertificate, not one per event
    /// (paced, one per event would queue behind the CA's 10-a-second lane). A failed fetch caches nothing: the
    /// next waiter asks again. A gate is dropped once its fetch is over, so CA ids named by events leave
    /// nothing behind.
    fetches: Mutex<HashMap<CaCertificateId, Arc<tokio::sync::Mutex<()>>>>,
}

impl CaCache {
    /// The workflow's cache: answers kept for `ttl`, absences not kept.
    pub(crate) fn for_workflow(ttl: Duration) -> Self {
        Self::new(Some(ttl), false)
    }

    /// One reconcile run's cache: every answer kept for the run.
    pub(crate) fn for_run() -> Self {
        Self::new(None, true)
    }

    fn new(ttl: Option<Duration>, remember_missing: bool) -> Self {
        Self { ttl, remember_missing, entries: Mutex::default(), fetches: Mutex::default() }
    }

    /// The cached answer for `id`, unless it is missing or older than the TTL.
    pub(crate) fn cached(&self, id: &CaCertificateId) -> Option<Arc<CachedCa>> {
        let hit = self.entries.lock().ok().and_then(|m| m.get(id).cloned())?;
        self.ttl.is_none_or(|ttl| hit.fetched.elapsed() < ttl).then_some(hit)
    }

    /// The answer for `id`: from the cache, or DescribeCACertificate (single flight), checked for `config`.
    pub(crate) async fn get(
        &self,
        id: &CaCertificateId,
        config: &Config,
        gate: &CallGate<'_>,
    ) -> Result<Arc<CachedCa>, Error> {
        if let Some(hit) = self.cached(id) {
            return Ok(hit);
        }
        let flight = match self.fetches.lock() {
            Ok(mut flights) => flights.entry(id.clone()).or_default().clone(),
            Err(_) => Arc::default(),
        };
        let held = flight.lock().await;
        let answer = match self.cached(id) {
            Some(hit) => Ok(hit),
            None => self.fetch(id, config, gate).await,
        };
        drop(held);
        if let Ok(mut flights) = self.fetches.lock()
            && flights.get(id).is_some_and(|f| Arc::ptr_eq(f, &flight))
        {
            flights.remove(id);
        }
        answer
    }

    async fn fetch(&self, id: &CaCertificateId, config: &Config, gate: &CallGate<'_>) -> Result<Arc<CachedCa>, Error> {
        let described = gate.optional(Operation::DescribeCACertificate, |r| r.describe_ca_certificate(id)).await?;
        let found = described.map(|d| Found {
            active: d.status == CaStatus::Active,
            ca: RegisteredCa::new(config, id.clone(), d.pem.as_bytes()),
        });
        let keep = found.is_some() || self.remember_missing;
        let entry = Arc::new(CachedCa { id: id.clone(), found, fetched: Instant::now() });
        if keep && let Ok(mut map) = self.entries.lock() {
            map.insert(id.clone(), entry.clone());
        }
        Ok(entry)
    }

    /// The same answers checked for `config` instead (a CRL refresh: the same profiles, new CRLs), with their
    /// fetch times, without describing or parsing any CA again. A cached [`RegisteredCa`] holds the CRL proofs
    /// of the configuration it was built for, so keeping it as it is would serve the old CRLs. Refused, naming
    /// the profile's key and the CRL, if a CRL that verified against a cached CA no longer does (a new CRL
    /// signed by another key).
    pub(crate) fn for_config(&self, config: &Config) -> Result<Self, ConfigError> {
        let cached: Vec<Arc<CachedCa>> = match self.entries.lock() {
            Ok(map) => map.values().cloned().collect(),
            Err(_) => Vec::new(),
        };
        let mut entries = HashMap::with_capacity(cached.len());
        for old in cached {
            let found = match &old.found {
                Some(Found { active, ca: was }) => {
                    let ca = was.for_config(config);
                    if let Some((key, why)) = ca.crls_no_longer_verifying(was, config).into_iter().next() {
                        return Err(ConfigError::config(&config.path, None, key, why));
                    }
                    Some(Found { active: *active, ca })
                }
                None => None,
            };
            let entry = CachedCa { id: old.id.clone(), found, fetched: old.fetched };
            entries.insert(old.id.clone(), Arc::new(entry));
        }
        Ok(Self { entries: Mutex::new(entries), ..Self::new(self.ttl, self.remember_missing) })
    }
}

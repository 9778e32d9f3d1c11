//! The registered CAs the guard trusts: learnt through the registry port (ListCACertificates,
//! DescribeCACertificate) at init and on a refresh, never per connect.
//!
//! A device certificate names its issuer by subject; the guard finds the registered CAs with that subject
//! ([`CaSet::candidates`]) and the decision verifies the signature against each. A CA the device only presents
//! in its chain is never among them: trust comes from AWS IoT's registry alone, as it does for AWS IoT itself.
//! Which CAs are described: those the profiles list, or, when a profile serves any CA (`ca = ["*"]`), every
//! CA ListCACertificates returns. A CA's status (ACTIVE or not) is the one DescribeCACertificate said at the
//! last refresh: a CA deactivated in AWS IoT reaches the guard within one refresh period
//! (`JITP_CA_CACHE_TTL_SECS`).

use std::collections::HashMap;

use crate::GuardError;
use crate::judge::{
    CaCertificateId, CaDescription, CaMatch, CaStatus, Certificate, Config, IotRegistry, Operation, RegisteredCa,
    RegistryError, registered_ca,
};

/// One registered CA as the guard holds it.
#[derive(Debug, Clone)]
pub struct KnownCa {
    /// Its id in AWS IoT.
    pub id: CaCertificateId,
    /// ACTIVE in AWS IoT at the last refresh.
    pub active: bool,
    /// Parsed and checked for the configuration (its profiles' CRLs verified against it).
    pub registered: RegisteredCa,
}

/// The registered CAs, indexed by subject (DER) for the lookup of a device's issuer.
#[derive(Debug, Clone, Default)]
pub struct CaSet {
    cas: Vec<KnownCa>,
    by_subject: HashMap<Vec<u8>, Vec<usize>>,
}

impl CaSet {
    /// The CAs described by `described`, checked for `config`; in id order, so a lookup's order is stable.
    pub fn new(config: &Config, described: Vec<CaDescription>) -> Self {
        let cas = described
            .into_iter()
            .map(|d| KnownCa {
                active: d.status == CaStatus::Active,
                registered: registered_ca(config, d.id.clone(), d.pem.as_bytes()),
                id: d.id,
            })
            .collect();
        Self::from_cas(cas)
    }

    fn from_cas(mut cas: Vec<KnownCa>) -> Self {
        cas.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        cas.dedup_by(|a, b| a.id == b.id);
        let mut by_subject: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
        for (i, ca) in cas.iter().enumerate() {
            // A CA whose PEM does not parse has no subject to be found by: no device can name it.
            if let Ok(cert) = ca.registered.certificate() {
                by_subject.entry(cert.subject_der()).or_default().push(i);
            }
        }
        Self { cas, by_subject }
    }

    /// Describe the CAs `config` can use through `registry`: the ids its profiles list, or every registered
    /// CA when a profile serves any. A CA listed but not registered is skipped (its devices are UNKNOWN_CA).
    pub async fn load(registry: &dyn IotRegistry, config: &Config) -> Result<Self, GuardError> {
        let ids = match listed_ids(config) {
            Some(ids) => ids,
            None => registry
                .list_ca_certificates()
                .await
                .map_err(|source| GuardError::Registry { operation: Operation::ListCACertificates, source })?,
        };
        let mut described = Vec::with_capacity(ids.len());
        for id in ids {
            match registry.describe_ca_certificate(&id).await {
                Ok(d) => described.push(d),
                Err(RegistryError::NotFound(_)) => {
                    tracing::warn!(ca = %id, "a profile lists CA {id}, which is not registered in AWS IoT: its devices are refused UNKNOWN_CA");
                }
                Err(source) => {
                    return Err(GuardError::Registry { operation: Operation::DescribeCACertificate, source });
                }
            }
        }
        Ok(Self::new(config, described))
    }

    /// The same CAs checked for `config` instead (a CRL refresh: the same profiles, new CRLs), without parsing
    /// them again. Refused, naming the CRL, if a CRL that verified against one of them no longer does (e.g. a
    /// CRL published with another key): the caller keeps the rules it has, as the provisioning Lambda does.
    pub fn for_config(&self, config: &Config) -> Result<Self, String> {
        let mut cas = Vec::with_capacity(self.cas.len());
        for ca in &self.cas {
            let registered = ca.registered.for_config(config);
            let lost = registered.crls_no_longer_verifying(&ca.registered, config);
            if let Some((key, why)) = lost.first() {
                return Err(format!("{key}: {why}"));
            }
            cas.push(KnownCa { id: ca.id.clone(), active: ca.active, registered });
        }
        Ok(Self::from_cas(cas))
    }

    /// The registered CAs whose subject is `device`'s issuer, in id order.
    pub fn candidates(&self, device: &Certificate) -> impl Iterator<Item = &KnownCa> {
        self.by_subject.get(&device.issuer_der()).into_iter().flatten().filter_map(|&i| self.cas.get(i))
    }

    /// Every CA held.
    pub fn iter(&self) -> impl Iterator<Item = &KnownCa> {
        self.cas.iter()
    }

    /// How many CAs are held.
    pub fn len(&self) -> usize {
        self.cas.len()
    }

    /// None held?
    pub fn is_empty(&self) -> bool {
        self.cas.is_empty()
    }
}

/// The CA ids the profiles list, or `None` when a profile serves any CA.
fn listed_ids(config: &Config) -> Option<Vec<CaCertificateId>> {
    let mut ids = Vec::new();
    for profile in &config.profiles {
        match &profile.ca {
            CaMatch::Any => return None,
            CaMatch::Ids(listed) => ids.extend(listed.iter().cloned()),
        }
    }
    ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    ids.dedup();
    Some(ids)
}

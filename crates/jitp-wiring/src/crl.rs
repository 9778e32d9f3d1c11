//! S3 CRLs: fetched at start-up, refreshed on a TTL, swapped in whole.
//!
//! jitp-core lists the objects a jitp.toml needs ([`Config::crl_objects`]) and parses their bytes; this module
//! fetches them through a [`CrlFetch`] (jitp-aws's GetObject with the `aws` feature, [`s3_fetcher`]; a fake in
//! tests) and decides when to fetch again:
//!
//! - [`load`]: every S3 CRL fetched before the rules load. A failure is a start-up error ([`Error::Crl`]): the
//!   Lambda's init fails and no device is touched.
//! - [`CrlRefresh::refresh`]: once the TTL (`JITP_CRL_REFRESH_SECONDS`) has passed since the last attempt, a
//!   conditional GetObject per object (`If-None-Match` with the ETag held). All unchanged (304): nothing is
//!   rebuilt. One changed: the configuration is rebuilt from the held bytes plus the new ones
//!   ([`Loadable::with_crl_objects`], the load's parsing) and returned for the caller to swap in. Any failure
//!   (network, access denied, a CRL that does not parse, or one the caller refuses because a cached CA does not
//!   verify it, [`CrlRefresh::refresh_with`]): the last good rules stay, with one warning per
//!   failure streak and an info line when it ends; the next attempt is a TTL later. A CRL that passes its
//!   nextUpdate while the refresh keeps failing is then governed by `crl_policy`, as for a file.
//!
//! The caller swaps the returned rules in whole (the Lambda swaps its `Provisioner`, whose CA cache holds the
//! old CRLs' proofs, see `Provisioner::with_rules`), so an event sees the old rules or the new, never a mix.
//!
//! What is loaded and rebuilt is a [`Loadable`]: the workflow's `Rules` (jitp-core, the templates compiled; with
//! the `workflow` feature) or the connect guard's [`Config`] (the profiles alone: the guard links no template
//! engine).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jitp_pki::ids::S3Object;
use jitp_profile::ConfigError;
use jitp_profile::profile::{Config, CrlObjects, Overrides};

use crate::{ConfigArgs, Error};

/// The default `JITP_CRL_REFRESH_SECONDS`: five minutes, as the CA cache.
pub const DEFAULT_CRL_REFRESH: Duration = Duration::from_secs(300);
/// The shortest refresh period: a GetObject per object per 10 s per instance is already plenty.
pub const MIN_CRL_REFRESH: Duration = Duration::from_secs(10);
/// The longest: a day (a CRL's nextUpdate is typically days away).
pub const MAX_CRL_REFRESH: Duration = Duration::from_secs(24 * 3600);
/// One object's fetch, body included, at most: the SDK's operation timeout does not bound a slow body, and the
/// Lambda's invocation that finds the TTL passed waits for its refresh.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(15);

/// `fetcher.fetch`, given up after [`FETCH_TIMEOUT`] (a failed fetch like any other).
async fn fetch(fetcher: &dyn CrlFetch, object: &S3Object, etag: Option<&str>) -> Result<Fetched, String> {
    tokio::time::timeout(FETCH_TIMEOUT, fetcher.fetch(object, etag))
        .await
        .unwrap_or_else(|_| Err(format!("{object}: no answer within {} s", FETCH_TIMEOUT.as_secs())))
}

/// What a conditional fetch found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// Still the ETag held (S3's 304): nothing to rebuild.
    Unchanged,
    /// New bytes and their ETag.
    Changed {
        /// The object's bytes.
        bytes: Arc<[u8]>,
        /// Its ETag, for the next conditional fetch.
        etag: Option<String>,
    },
}

/// Fetches an S3 CRL object, conditionally when given the ETag held. The error is one sentence naming the
/// object.
#[async_trait::async_trait]
pub trait CrlFetch: Send + Sync {
    /// GetObject `object`, with `If-None-Match: etag` when there is one.
    async fn fetch(&self, object: &S3Object, etag: Option<&str>) -> Result<Fetched, String>;
}

/// What jitp.toml loads into, and what a changed S3 CRL rebuilds: jitp-core's `Rules` for the workflow (with the
/// `workflow` feature), jitp-profile's [`Config`] for the connect guard.
pub trait Loadable: Sized {
    /// Load jitp.toml at `path` with `overrides` (the S3 CRLs' bytes among them).
    fn load_with(path: &Path, overrides: &Overrides) -> Result<Self, ConfigError>;
    /// The same configuration with the S3 CRLs' bytes `objects` in place of those it was loaded with.
    fn with_crl_objects(&self, objects: &CrlObjects) -> Result<Self, ConfigError>;
}

impl Loadable for Config {
    fn load_with(path: &Path, overrides: &Overrides) -> Result<Self, ConfigError> {
        Config::load_with(path, overrides)
    }

    fn with_crl_objects(&self, objects: &CrlObjects) -> Result<Self, ConfigError> {
        Config::with_crl_objects(self, objects)
    }
}

#[cfg(feature = "workflow")]
impl Loadable for jitp_core::rules::Rules {
    fn load_with(path: &Path, overrides: &Overrides) -> Result<Self, ConfigError> {
        jitp_core::rules::Rules::load_with(path, overrides)
    }

    fn with_crl_objects(&self, objects: &CrlObjects) -> Result<Self, ConfigError> {
        jitp_core::rules::Rules::with_crl_objects(self, objects)
    }
}

/// The copies held and when the objects were last asked for.
struct Held {
    objects: BTreeMap<S3Object, (Arc<[u8]>, Option<String>)>,
    checked: Instant,
    /// In a failure streak: its first failure was logged, the others are not.
    failing: bool,
}

/// The S3 CRLs of a configuration and their refresh. Safe to share; one refresh runs at a time (the others
/// skip it and keep deciding on the rules they hold).
pub struct CrlRefresh {
    objects: Vec<S3Object>,
    fetcher: Option<Arc<dyn CrlFetch>>,
    every: Duration,
    held: tokio::sync::Mutex<Held>,
    rebuilds: AtomicU64,
}

impl std::fmt::Debug for CrlRefresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrlRefresh").field("objects", &self.objects.len()).field("every", &self.every).finish()
    }
}

/// Load jitp.toml at `path` with `config`'s overrides and its S3 CRLs fetched through `fetcher` (required
/// when it lists any). Returns the rules (or the guard's profiles) and their refresh, whose clock starts now.
pub async fn load<L: Loadable>(
    config: &ConfigArgs,
    path: &Path,
    fetcher: Option<Arc<dyn CrlFetch>>,
    every: Duration,
) -> Result<(L, CrlRefresh), Error> {
    let objects = Config::crl_objects(path).map_err(|source| Error::Config { path: path.to_owned(), source })?;
    let mut held = BTreeMap::new();
    if !objects.is_empty() {
        let Some(fetcher) = fetcher.as_ref() else {
            return Err(Error::Crl {
                object: objects.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                message: "S3 CRLs are fetched only with the aws registry (JITP_REGISTRY=aws, in a build with the aws feature)".to_owned(),
            });
        };
        held = fetch_all(fetcher.as_ref(), &objects).await?;
    }
    let bytes: CrlObjects = held.iter().map(|(o, (b, _))| (o.clone(), b.clone())).collect();
    let rules = config.load_with_crls(path, bytes)?;
    let refresh = CrlRefresh {
        objects,
        fetcher,
        every,
        held: tokio::sync::Mutex::new(Held { objects: held, checked: Instant::now(), failing: false }),
        rebuilds: AtomicU64::new(0),
    };
    Ok((rules, refresh))
}

/// GetObject each of `objects` unconditionally: their bytes and ETags, or the first failure naming its URI.
async fn fetch_all(
    fetcher: &dyn CrlFetch,
    objects: &[S3Object],
) -> Result<BTreeMap<S3Object, (Arc<[u8]>, Option<String>)>, Error> {
    let mut held = BTreeMap::new();
    for object in objects {
        match fetch(fetcher, object, None).await {
            Ok(Fetched::Changed { bytes, etag }) => {
                held.insert(object.clone(), (bytes, etag));
            }
            Ok(Fetched::Unchanged) => {
                return Err(Error::Crl {
                    object: object.to_string(),
                    message: "answered Not Modified to an unconditional GetObject".to_owned(),
                });
            }
            Err(message) => return Err(Error::Crl { object: object.to_string(), message }),
        }
    }
    Ok(held)
}

/// An S3 CRL's bytes taken from a local file (`--crl-object s3://bucket/key=PATH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCrl {
    /// The object jitp.toml lists.
    pub object: S3Object,
    /// The file standing in for it.
    pub path: PathBuf,
}

impl std::str::FromStr for LocalCrl {
    type Err = String;

    /// `s3://bucket/key=PATH`, split at the last `=` (a key may hold `=`; a path holding one cannot be given).
    /// The URI is checked as jitp.toml's are ([`S3Object::parse`]).
    fn from_str(v: &str) -> Result<Self, String> {
        let (uri, path) = v
            .rsplit_once('=')
            .ok_or("s3://bucket/key=PATH: the object jitp.toml lists, =, and the local file to use as its bytes")?;
        if path.is_empty() {
            return Err(format!("no PATH after {uri}=: s3://bucket/key=PATH names the local file to use"));
        }
        let object = S3Object::parse(uri)
            .map_err(|why| format!("s3://BUCKET/KEY=PATH, as jitp.toml writes it ({uri:?}: {why})"))?;
        Ok(Self { object, path: PathBuf::from(path) })
    }
}

/// How `jitp lint` and `jitp check` get the S3 CRLs a jitp.toml lists: from local files (`--crl-object`, to
/// preview a CRL before publishing it, or offline in CI), else from S3 with the default credential chain
/// (refused by `--offline`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CrlObjectArgs {
    /// Use the local file PATH as the bytes of the S3 CRL s3://BUCKET/KEY that jitp.toml lists (repeatable):
    /// lint or check a CRL before publishing it. The S3 CRLs not given are fetched from S3.
    #[arg(long = "crl-object", value_name = "s3://BUCKET/KEY=PATH", value_parser = crl_object)]
    pub crl_objects: Vec<LocalCrl>,
    /// Fetch nothing from S3: every S3 CRL jitp.toml lists must be given with --crl-object.
    #[arg(long)]
    pub offline: bool,
}

fn crl_object(v: &str) -> Result<LocalCrl, String> {
    v.parse()
}

impl CrlObjectArgs {
    /// Load jitp.toml at `path` with `config`'s overrides, its S3 CRLs read from the `--crl-object` files and
    /// the others fetched through `fetcher` (called only if one is needed; refused under `--offline`). An
    /// object given that jitp.toml does not list is an error naming it and the ones it does list.
    pub async fn load<L, F, Fut>(&self, config: &ConfigArgs, path: &Path, fetcher: F) -> Result<L, Error>
    where
        L: Loadable,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Arc<dyn CrlFetch>, Error>>,
    {
        let listed = Config::crl_objects(path).map_err(|source| Error::Config { path: path.to_owned(), source })?;
        let mut bytes = CrlObjects::new();
        for local in &self.crl_objects {
            if !listed.contains(&local.object) {
                let names = listed.iter().map(ToString::to_string).collect::<Vec<_>>();
                return Err(Error::Setting {
                    var: None,
                    flag: "--crl-object".to_owned(),
                    value: format!("{}={}", local.object, local.path.display()),
                    expected: format!(
                        "an S3 CRL that {} lists in a profile's crl ({})",
                        path.display(),
                        if names.is_empty() { "it lists none".to_owned() } else { names.join(", ") }
                    ),
                });
            }
            if bytes.contains_key(&local.object) {
                return Err(Error::Setting {
                    var: None,
                    flag: "--crl-object".to_owned(),
                    value: format!("{}={}", local.object, local.path.display()),
                    expected: format!("each object once ({} is given twice)", local.object),
                });
            }
            bytes.insert(local.object.clone(), read_local(local)?);
        }
        let missing: Vec<S3Object> = listed.into_iter().filter(|o| !bytes.contains_key(o)).collect();
        if !missing.is_empty() {
            let names = missing.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            if self.offline {
                return Err(Error::Crl {
                    object: names,
                    message: "--offline: not fetched from S3; give each as --crl-object s3://BUCKET/KEY=PATH"
                        .to_owned(),
                });
            }
            let fetcher = fetcher().await?;
            let fetched = fetch_all(fetcher.as_ref(), &missing).await.map_err(|e| match e {
                Error::Crl { object, message } => Error::Crl {
                    message: format!(
                        "{message} (to use a local copy instead: --crl-object {object}=PATH; to fetch nothing: --offline)"
                    ),
                    object,
                },
                other => other,
            })?;
            bytes.extend(fetched.into_iter().map(|(o, (b, _))| (o, b)));
        }
        config.load_with_crls(path, bytes)
    }
}

/// A `--crl-object` file, read up to one byte past the CRL size limit (the parser then says it is too large).
fn read_local(local: &LocalCrl) -> Result<Arc<[u8]>, Error> {
    use std::io::Read as _;
    let limit = jitp_pki::cert::MAX_CRL_BYTES as u64 + 1;
    let mut bytes = Vec::new();
    std::fs::File::open(&local.path).and_then(|f| f.take(limit).read_to_end(&mut bytes)).map_err(|e| Error::Crl {
        object: local.object.to_string(),
        message: format!(
            "--crl-object {}={}: cannot read {}: {e}",
            local.object,
            local.path.display(),
            local.path.display()
        ),
    })?;
    // Parsed here too so that a bad file is named by its flag and path (the load would name only jitp.toml).
    if let Err(why) = jitp_pki::cert::Crl::from_bytes(&bytes) {
        return Err(Error::Crl {
            object: local.object.to_string(),
            message: format!("--crl-object {}={}: {why}", local.object, local.path.display()),
        });
    }
    Ok(bytes.into())
}

impl CrlRefresh {
    /// No S3 CRL: [`CrlRefresh::refresh`] never fetches.
    pub fn none() -> Self {
        Self {
            objects: Vec::new(),
            fetcher: None,
            every: DEFAULT_CRL_REFRESH,
            held: tokio::sync::Mutex::new(Held { objects: BTreeMap::new(), checked: Instant::now(), failing: false }),
            rebuilds: AtomicU64::new(0),
        }
    }

    /// The refresh period (`JITP_CRL_REFRESH_SECONDS`).
    pub fn every(&self) -> Duration {
        self.every
    }

    /// The S3 objects refreshed.
    pub fn objects(&self) -> &[S3Object] {
        &self.objects
    }

    /// How many times new rules were built since the load (each changed fetch that parsed).
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds.load(Ordering::Relaxed)
    }

    /// Has the TTL passed at `now` since the last attempt?
    pub fn due(&self, now: Instant) -> bool {
        !self.objects.is_empty()
            && self.held.try_lock().is_ok_and(|held| now.saturating_duration_since(held.checked) >= self.every)
    }

    /// If the TTL has passed at `now`: fetch every object conditionally and, if any changed, rules like
    /// `current` with the new CRLs, for the caller to swap in. `None`: nothing due, nothing changed, another
    /// refresh running, or a failure (logged once per streak; `current` stays the rules to use).
    pub async fn refresh<L: Loadable>(&self, current: &L, now: Instant) -> Option<Arc<L>> {
        self.refresh_with(current, now, Ok).await
    }

    /// [`CrlRefresh::refresh`], the new rules accepted only if `accept` builds what the caller swaps in from
    /// them (the Lambda: a `Provisioner` whose cached CAs verify the new CRLs). Refused, it is a failure like
    /// a failed fetch: the copies held stay the last good ones and the next attempt is a TTL later.
    pub async fn refresh_with<L: Loadable, T>(
        &self,
        current: &L,
        now: Instant,
        accept: impl FnOnce(Arc<L>) -> Result<T, String>,
    ) -> Option<T> {
        let fetcher = self.fetcher.as_ref()?;
        let mut held = self.held.try_lock().ok()?;
        if self.objects.is_empty() || now.saturating_duration_since(held.checked) < self.every {
            return None;
        }
        held.checked = now;
        // Each object stands alone: one that cannot be fetched keeps its last good copy, and the others' new
        // CRLs still take effect (a revocation published to one CRL is not held back by another's outage).
        let mut changed = BTreeMap::new();
        let mut errors = Vec::new();
        for object in &self.objects {
            let etag = held.objects.get(object).and_then(|(_, etag)| etag.as_deref());
            match fetch(fetcher.as_ref(), object, etag).await {
                Ok(Fetched::Unchanged) => {}
                Ok(Fetched::Changed { bytes, etag }) => {
                    if held.objects.get(object).is_none_or(|(old, _)| **old != *bytes) {
                        changed.insert(object.clone(), (bytes, etag));
                    } else if let Some(entry) = held.objects.get_mut(object) {
                        entry.1 = etag;
                    }
                }
                Err(message) => errors.push(message),
            }
        }
        if changed.is_empty() {
            self.settle(&mut held, &errors);
            return None;
        }
        let mut bytes: CrlObjects = held.objects.iter().map(|(o, (b, _))| (o.clone(), b.clone())).collect();
        bytes.extend(changed.iter().map(|(o, (b, _))| (o.clone(), b.clone())));
        match current.with_crl_objects(&bytes).map_err(|e| e.to_string()).and_then(|rules| accept(Arc::new(rules))) {
            Ok(accepted) => {
                let names: Vec<String> = changed.keys().map(ToString::to_string).collect();
                held.objects.extend(changed);
                self.rebuilds.fetch_add(1, Ordering::Relaxed);
                self.settle(&mut held, &errors);
                tracing::info!(crl = %names.join(", "), "new S3 CRL published: rules rebuilt");
                Some(accepted)
            }
            Err(why) => {
                self.failed(&mut held, &why);
                None
            }
        }
    }

    /// The end of an attempt: a failure streak goes on while any object failed, and ends when none did.
    fn settle(&self, held: &mut Held, errors: &[String]) {
        if errors.is_empty() {
            self.recovered(held);
        } else {
            self.failed(held, &errors.join("; "));
        }
    }

    fn failed(&self, held: &mut Held, message: &str) {
        if !held.failing {
            held.failing = true;
            tracing::warn!(
                error = %message,
                retry_in_secs = self.every.as_secs(),
                "S3 CRL refresh failed: the last good CRLs stay in force (logged once until a refresh succeeds)"
            );
        }
    }

    fn recovered(&self, held: &mut Held) {
        if held.failing {
            held.failing = false;
            tracing::info!("S3 CRL refresh succeeded again");
        }
    }
}

/// The [`CrlFetch`] over jitp-aws's GetObject (the endpoint and region as the registry's).
#[cfg(feature = "aws")]
pub async fn s3_fetcher(endpoint_url: Option<&str>, region: Option<&str>) -> Arc<dyn CrlFetch> {
    let s3 = jitp_aws::s3::S3Crls::builder()
        .set_endpoint_url(endpoint_url.map(str::to_owned))
        .set_region(region.map(str::to_owned))
        .build()
        .await;
    Arc::new(S3Fetcher(s3))
}

/// The [`CrlFetch`] of `jitp lint` and `jitp check` ([`CrlObjectArgs::load`]): [`s3_fetcher`] with the default
/// credential chain, at `endpoint_url` if given.
#[cfg(feature = "aws")]
pub async fn review_fetcher(endpoint_url: Option<String>, region: Option<String>) -> Result<Arc<dyn CrlFetch>, Error> {
    Ok(s3_fetcher(endpoint_url.as_deref(), region.as_deref()).await)
}

/// Without the AWS SDK nothing is fetched: every S3 CRL must be given with `--crl-object`.
#[cfg(not(feature = "aws"))]
pub async fn review_fetcher(_: Option<String>, _: Option<String>) -> Result<Arc<dyn CrlFetch>, Error> {
    Err(Error::Usage(
        "this build has no AWS SDK (built without the `aws` feature) to fetch S3 CRLs: give each as --crl-object s3://BUCKET/KEY=PATH"
            .to_owned(),
    ))
}

/// jitp-aws's [`jitp_aws::s3::S3Crls`] as a [`CrlFetch`].
#[cfg(feature = "aws")]
#[derive(Debug, Clone)]
pub struct S3Fetcher(pub jitp_aws::s3::S3Crls);

#[cfg(feature = "aws")]
#[async_trait::async_trait]
impl CrlFetch for S3Fetcher {
    async fn fetch(&self, object: &S3Object, etag: Option<&str>) -> Result<Fetched, String> {
        match self.0.get(object, etag).await {
            Ok(jitp_aws::s3::Fetched::Unchanged) => Ok(Fetched::Unchanged),
            Ok(jitp_aws::s3::Fetched::Changed { bytes, etag }) => Ok(Fetched::Changed { bytes: bytes.into(), etag }),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crl_object_flag_splits_at_the_last_equals_and_checks_the_uri() {
        let local: LocalCrl = "s3://acme-crls/v=2/ca.crl=/tmp/new.crl".parse().unwrap();
        assert_eq!((local.object.key(), local.path.as_path()), ("v=2/ca.crl", Path::new("/tmp/new.crl")));
        for (bad, says) in [
            ("s3://acme-crls/ca.crl", "=PATH"),
            ("s3://acme-crls/ca.crl=", "no PATH"),
            ("S3://acme-crls/ca.crl=x", "lowercase"),
            ("s3://acme-crls/dir/=x", "folder"),
            ("https://acme-crls/ca.crl=x", "s3://bucket/key"),
        ] {
            let why = bad.parse::<LocalCrl>().unwrap_err();
            assert!(why.contains(says), "{bad}: {why}");
        }
    }
}

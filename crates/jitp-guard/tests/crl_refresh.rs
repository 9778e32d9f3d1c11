#![cfg(test)]
//! S3 CRLs while the guard runs, through jitp-wiring's refresh (the provisioning Lambda's) with an S3 stand-in:
//! a CRL published to S3 reaches the decisions after the refresh (a hold, its lifting, a revocation); a CRL that
//! does not parse, or that the registered CA did not sign, leaves the last good one in force; and a refresh
//! never makes a connect wait for S3: an answer comes while a fetch hangs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jitp_guard::judge::Config;
use jitp_guard::{CaSet, Guard, GuardSettings};
use jitp_pki::ids::S3Object;
use jitp_registry::memory::MemoryRegistry;
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::events::connect;
use jitp_testkit::{Alg, Ca, CrlSpec, Device, NOW, RevocationReason, Revoked};
use jitp_wiring::ConfigArgs;
use jitp_wiring::crl::{CrlFetch, Fetched};

const URI: &str = "s3://acme-pki/crl/acme.crl";
const TTL: Duration = Duration::from_millis(200);
const CN: &str = "sensor-0000000000aa";

/// One S3 object: its bytes and ETag, or missing; a fetch may be told to hang.
#[derive(Default)]
struct FakeS3 {
    object: Mutex<Option<(Vec<u8>, String)>>,
    version: AtomicUsize,
    hang: Mutex<bool>,
    fetches: AtomicUsize,
}

impl FakeS3 {
    fn publish(&self, bytes: Vec<u8>) {
        let v = self.version.fetch_add(1, Ordering::Relaxed);
        *self.object.lock().unwrap() = Some((bytes, format!("\"etag-{v}\"")));
    }
}

#[async_trait::async_trait]
impl CrlFetch for FakeS3 {
    async fn fetch(&self, object: &S3Object, etag: Option<&str>) -> Result<Fetched, String> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        if *self.hang.lock().unwrap() {
            std::future::pending::<()>().await;
        }
        match self.object.lock().unwrap().clone() {
            Some((_, tag)) if etag == Some(tag.as_str()) => Ok(Fetched::Unchanged),
            Some((bytes, tag)) => Ok(Fetched::Changed { bytes: bytes.into(), etag: Some(tag) }),
            None => Err(format!("{object}: NoSuchKey")),
        }
    }
}

struct World {
    _dir: ConfigDir,
    ca: Ca,
    s3: Arc<FakeS3>,
    guard: Guard,
}

impl World {
    async fn start() -> World {
        let ca = Ca::new("jitp guard s3 CA", Alg::P256);
        let dir = ConfigDir::new();
        dir.copy_policy("sensor.json.tera", "sensor.json.tera");
        let path = dir.write_config(&format!(
            "[[profiles]]\nname = \"sensors\"\nca = [\"*\"]\ncommon_name = 'sensor-[0-9a-f]{{12}}'\nthing_name = \"{{{{ subject.cn }}}}\"\npolicy = \"policies/sensor.json.tera\"\ncrl = [\"{URI}\"]\n"
        ));
        let s3 = Arc::new(FakeS3::default());
        s3.publish(ca.crl_with(&CrlSpec::new(&[])).der);
        let fetcher: Arc<dyn CrlFetch> = s3.clone();
        let (config, crls) =
            jitp_wiring::crl::load::<Config>(&ConfigArgs::default(), &path, Some(fetcher), TTL).await.unwrap();
        let memory = Arc::new(MemoryRegistry::new());
        memory.register_ca(&ca.cert.pem, true).unwrap();
        let cas = CaSet::load(memory.as_ref(), &config).await.unwrap();
        let settings: GuardSettings =
            jitp_wiring::parse::from_vars(["jitp-guard"], Vec::<(String, String)>::new()).unwrap();
        let guard = Guard::builder(Arc::new(config), cas, memory, &settings)
            .clock(Arc::new(|| NOW))
            .sink(Arc::new(|_: &str| {}))
            .crl_refresh(crls)
            .build();
        World { _dir: dir, ca, s3, guard }
    }

    fn allowed(&self, device: &Device) -> bool {
        self.guard.answer(&connect(&[&self.ca.issue(device).pem]), "r").is_authenticated
    }

    /// Publish `bytes`, let the TTL pass, let one connect start the refresh, and wait for it to finish.
    async fn publish_and_refresh(&self, bytes: Vec<u8>) {
        self.s3.publish(bytes);
        tokio::time::sleep(TTL + Duration::from_millis(20)).await;
        let fetches = self.s3.fetches.load(Ordering::Relaxed);
        let _ = self.allowed(&Device::new("sensor-000000000001"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while (self.s3.fetches.load(Ordering::Relaxed) == fetches || self.guard.refreshing())
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!self.guard.refreshing(), "the refresh did not finish");
    }
}

fn entry(cn: &str, reason: Option<RevocationReason>) -> Revoked {
    Revoked { reason, ..Revoked::serial(&Device::new(cn).serial) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crl_published_to_s3_reaches_the_decisions_after_the_refresh() {
    let world = World::start().await;
    let device = Device::new(CN);
    assert!(world.allowed(&device));

    // On hold: refused at the first connect after the refresh (not before: the refresh runs beside that one).
    let hold = CrlSpec { revoked: vec![entry(CN, Some(RevocationReason::CertificateHold))], ..CrlSpec::new(&[]) };
    world.publish_and_refresh(world.ca.crl_with(&hold).der).await;
    assert_eq!(world.guard.crl_refresh().rebuilds(), 1);
    assert!(!world.allowed(&device), "on hold");

    // The hold lifted (the entry gone from the next CRL): allowed again.
    world.publish_and_refresh(world.ca.crl_with(&CrlSpec::new(&[])).der).await;
    assert!(world.allowed(&device), "the hold lifted");

    // Revoked.
    let revoked = CrlSpec { revoked: vec![entry(CN, None)], ..CrlSpec::new(&[]) };
    world.publish_and_refresh(world.ca.crl_with(&revoked).der).await;
    assert!(!world.allowed(&device), "revoked");
    let rebuilds = world.guard.crl_refresh().rebuilds();

    // Garbage, then a CRL another CA signed: neither is taken; the revocation stays in force.
    world.publish_and_refresh(b"not a CRL".to_vec()).await;
    let other = Ca::new("jitp guard s3 CA", Alg::P384);
    world.publish_and_refresh(other.crl_with(&CrlSpec::new(&[])).der).await;
    assert_eq!(world.guard.crl_refresh().rebuilds(), rebuilds, "neither was taken");
    assert!(!world.allowed(&device), "the last good CRL stays");
    assert!(world.allowed(&Device::new("sensor-0000000000bb")), "and the others still connect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_fetch_never_holds_a_connect() {
    let world = World::start().await;
    let loaded = world.s3.fetches.load(Ordering::Relaxed);
    *world.s3.hang.lock().unwrap() = true;
    tokio::time::sleep(TTL + Duration::from_millis(20)).await;
    // This connect finds the refresh due and starts it; the fetch never answers; the answers keep coming.
    for _ in 0..100 {
        assert!(world.allowed(&Device::new(CN)));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while world.s3.fetches.load(Ordering::Relaxed) == loaded && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(world.s3.fetches.load(Ordering::Relaxed), loaded + 1, "one refresh, in flight, none started beside it");
    assert!(world.guard.refreshing());
}

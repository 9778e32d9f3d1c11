#![cfg(test)]
//! The S3 CRL refresh over a fake fetcher: the load fetches every object, the TTL gates the conditional
//! fetches, an unchanged object rebuilds nothing, a failure keeps the last good rules, and readers of the
//! swapped rules always see one consistent set of CRLs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jitp_core::decide::check;
use jitp_core::rules::Rules;
use jitp_pki::ids::S3Object;
use jitp_pki::reason::ReasonCode;
use jitp_policy::policy::AwsContext;
use jitp_testkit::captured_log::CapturedLog;
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::{Alg, Ca, CrlSpec, Device, NOW};
use jitp_wiring::ConfigArgs;
use jitp_wiring::crl::{CrlFetch, CrlRefresh, Fetched, load};

const A: &str = "s3://acme-pki/crl/a.crl";
const B: &str = "s3://acme-pki/crl/b.crl";
const TTL: Duration = Duration::from_secs(60);

fn ca() -> &'static Ca {
    static C: std::sync::OnceLock<Ca> = std::sync::OnceLock::new();
    C.get_or_init(|| Ca::new("Acme Device CA", Alg::P256))
}

fn cn(i: usize) -> String {
    format!("sensor-{i:012x}")
}

/// A CRL revoking the devices `0..n`.
fn crl(n: usize) -> Vec<u8> {
    let serials: Vec<Vec<u8>> = (0..n).map(|i| Device::new(&cn(i)).serial).collect();
    let refs: Vec<&[u8]> = serials.iter().map(Vec::as_slice).collect();
    ca().crl_with(&CrlSpec::new(&refs)).der
}

/// S3 as the refresh sees it: objects with ETags, a 304 for a matching If-None-Match, and a switch to fail.
#[derive(Default)]
struct FakeS3 {
    objects: Mutex<BTreeMap<String, (Vec<u8>, String)>>,
    failing: Mutex<Option<String>>,
    gets: AtomicUsize,
    not_modified: AtomicUsize,
    version: AtomicUsize,
}

impl FakeS3 {
    fn put(&self, uri: &str, bytes: Vec<u8>) {
        let etag = format!("\"v{}\"", self.version.fetch_add(1, Ordering::SeqCst));
        self.objects.lock().unwrap().insert(uri.to_owned(), (bytes, etag));
    }
}

#[async_trait::async_trait]
impl CrlFetch for FakeS3 {
    async fn fetch(&self, object: &S3Object, etag: Option<&str>) -> Result<Fetched, String> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        if let Some(why) = self.failing.lock().unwrap().clone() {
            return Err(format!("{object}: {why}"));
        }
        let objects = self.objects.lock().unwrap();
        let (bytes, current) = objects.get(&object.to_string()).ok_or(format!("{object}: NoSuchKey"))?;
        if etag == Some(current.as_str()) {
            self.not_modified.fetch_add(1, Ordering::SeqCst);
            return Ok(Fetched::Unchanged);
        }
        Ok(Fetched::Changed { bytes: Arc::from(bytes.as_slice()), etag: Some(current.clone()) })
    }
}

fn config(dir: &ConfigDir, entries: &[&str]) -> std::path::PathBuf {
    dir.copy_policy("sensor.json.tera", "sensor.json.tera");
    let list: Vec<String> = entries.iter().map(|e| format!("{e:?}")).collect();
    dir.write_config(&format!(
        "[[profiles]]\nname = \"sensors\"\nca = [\"*\"]\ncommon_name = 'sensor-[0-9a-f]{{12}}'\nthing_name = \"{{{{ subject.cn }}}}\"\npolicy = \"policies/sensor.json.tera\"\ncrl = [{}]\n",
        list.join(", ")
    ))
}

fn reason(rules: &Rules, i: usize) -> Option<ReasonCode> {
    let pem = ca().issue(&Device::new(&cn(i))).pem;
    check(rules, ca().cert.pem.as_bytes(), pem.as_bytes(), None, NOW, &AwsContext::default()).reason
}

async fn loaded(s3: &Arc<FakeS3>, path: &std::path::Path) -> (Rules, CrlRefresh) {
    load(&ConfigArgs::default(), path, Some(s3.clone() as Arc<dyn CrlFetch>), TTL).await.unwrap()
}

#[tokio::test]
async fn the_ttl_gates_a_conditional_refresh_and_only_a_change_rebuilds() {
    let dir = ConfigDir::new();
    let path = config(&dir, &[A]);
    let s3 = Arc::new(FakeS3::default());
    s3.put(A, crl(1));
    let (rules, refresh) = loaded(&s3, &path).await;
    assert_eq!(reason(&rules, 0), Some(ReasonCode::CertRevoked));
    assert_eq!(reason(&rules, 1), None);
    let start = Instant::now();

    // Before the TTL: no fetch at all.
    assert!(!refresh.due(start));
    assert!(refresh.refresh(&rules, start).await.is_none());
    assert_eq!(s3.gets.load(Ordering::SeqCst), 1, "the load's fetch only");

    // After it, unchanged: one 304, nothing rebuilt.
    let later = start + TTL + Duration::from_secs(1);
    assert!(refresh.due(later));
    assert!(refresh.refresh(&rules, later).await.is_none());
    assert_eq!((s3.not_modified.load(Ordering::SeqCst), refresh.rebuilds()), (1, 0));
    assert!(!refresh.due(later), "the clock restarts at each attempt");

    // Published: device 1 revoked too, after the next TTL.
    s3.put(A, crl(2));
    let next = later + TTL;
    let rules = refresh.refresh(&rules, next).await.expect("a changed object rebuilds");
    assert_eq!(refresh.rebuilds(), 1);
    assert_eq!(
        (reason(&rules, 0), reason(&rules, 1), reason(&rules, 2)),
        (Some(ReasonCode::CertRevoked), Some(ReasonCode::CertRevoked), None)
    );

    // Failures keep the last good rules (the caller keeps `rules`) and retry a TTL later.
    *s3.failing.lock().unwrap() = Some("AccessDenied".to_owned());
    let failed = next + TTL;
    assert!(refresh.refresh(&*rules, failed).await.is_none());
    assert!(refresh.refresh(&*rules, failed + TTL).await.is_none());
    *s3.failing.lock().unwrap() = None;
    s3.objects.lock().unwrap().clear();
    assert!(refresh.refresh(&*rules, failed + TTL * 2).await.is_none(), "deleted: NoSuchKey");
    s3.put(A, b"not a CRL".to_vec());
    assert!(refresh.refresh(&*rules, failed + TTL * 3).await.is_none(), "a CRL that does not parse");
    assert_eq!(refresh.rebuilds(), 1);
    // A caller that refuses the new rules (the Lambda: a cached CA does not verify them) is a failure too: the
    // copies held stay, and the next attempt fetches the object again.
    s3.put(A, crl(3));
    let refused = refresh.refresh_with(&*rules, failed + TTL * 4, |_| Err::<(), _>("does not verify".to_owned())).await;
    assert!(refused.is_none());
    assert_eq!(refresh.rebuilds(), 1);
    let rules = refresh.refresh(&*rules, failed + TTL * 5).await.expect("a good CRL again");
    assert_eq!(reason(&rules, 2), Some(ReasonCode::CertRevoked));
    assert_eq!(refresh.rebuilds(), 2);
}

/// Each object stands alone: while one cannot be fetched (deleted, access denied), its last good copy stays in
/// force and another object's new CRL still takes effect.
#[tokio::test]
async fn one_object_failing_does_not_hold_back_another_ones_new_crl() {
    let dir = ConfigDir::new();
    let path = config(&dir, &[A, B]);
    let s3 = Arc::new(FakeS3::default());
    s3.put(A, crl(1));
    let serial = Device::new(&cn(5)).serial;
    s3.put(B, ca().crl_with(&CrlSpec::new(&[serial.as_slice()])).der);
    let (rules, refresh) = loaded(&s3, &path).await;
    assert_eq!(
        (reason(&rules, 0), reason(&rules, 2), reason(&rules, 5)),
        (Some(ReasonCode::CertRevoked), None, Some(ReasonCode::CertRevoked))
    );

    s3.objects.lock().unwrap().remove(B);
    s3.put(A, crl(3));
    let rules = refresh.refresh(&rules, Instant::now() + TTL).await.expect("A's new CRL despite B's failure");
    assert_eq!(
        (reason(&rules, 2), reason(&rules, 5), reason(&rules, 6)),
        (Some(ReasonCode::CertRevoked), Some(ReasonCode::CertRevoked), None),
        "A's new entries in force, B's last good copy kept"
    );
    assert_eq!(refresh.rebuilds(), 1);
}

#[tokio::test]
async fn a_failure_at_load_is_an_error_naming_the_object() {
    let dir = ConfigDir::new();
    let path = config(&dir, &[A]);
    let s3 = Arc::new(FakeS3::default());
    let err =
        load::<Rules>(&ConfigArgs::default(), &path, Some(s3 as Arc<dyn CrlFetch>), TTL).await.unwrap_err().to_string();
    assert!(err.contains(A) && err.contains("NoSuchKey"), "{err}");
    let err = load::<Rules>(&ConfigArgs::default(), &path, None, TTL).await.unwrap_err().to_string();
    assert!(err.contains(A) && err.contains("aws registry"), "{err}");
    // Without S3 CRLs, no fetcher is needed and nothing is ever due.
    let plain = config(&dir, &[]);
    let (_, refresh) = load::<Rules>(&ConfigArgs::default(), &plain, None, TTL).await.unwrap();
    assert!(!refresh.due(Instant::now() + TTL * 10));
}

/// Readers load the rules while a writer refreshes and swaps them: both objects are published together
/// (generation n revokes n devices in each), and every snapshot a reader sees has the two CRLs of one
/// generation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_readers_see_one_rule_set_during_swaps() {
    let dir = ConfigDir::new();
    let path = config(&dir, &[A, B]);
    let s3 = Arc::new(FakeS3::default());
    s3.put(A, crl(0));
    s3.put(B, crl(0));
    let (rules, refresh) = loaded(&s3, &path).await;
    let live = Arc::new(ArcSwap::from_pointee(rules));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (live, stop) = (live.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seen = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    let snapshot = live.load_full();
                    let counts: Vec<usize> =
                        snapshot.config().profiles[0].crl.iter().map(|c| c.crl.revoked_count()).collect();
                    assert_eq!(counts[0], counts[1], "a mix of generations: {counts:?}");
                    seen = seen.max(counts[0]);
                    tokio::task::yield_now().await;
                }
                seen
            })
        })
        .collect();
    let mut now = Instant::now();
    for generation in 1..=8 {
        let (a, b) = (crl(generation), crl(generation));
        s3.put(A, a);
        s3.put(B, b);
        now += TTL;
        let current = live.load_full();
        let next = refresh.refresh(&*current, now).await.expect("changed");
        live.store(next);
    }
    stop.store(true, Ordering::SeqCst);
    for reader in readers {
        assert!(reader.await.unwrap() <= 8);
    }
    assert_eq!(refresh.rebuilds(), 8);
    assert_eq!(reason(&live.load(), 7), Some(ReasonCode::CertRevoked));
}

#[tokio::test(flavor = "current_thread")]
async fn a_failure_streak_warns_once_and_its_end_is_logged() {
    let captured = CapturedLog::default();
    let _guard = tracing::subscriber::set_default(captured.subscriber());
    let dir = ConfigDir::new();
    let path = config(&dir, &[A]);
    let s3 = Arc::new(FakeS3::default());
    s3.put(A, crl(1));
    let (rules, refresh) = loaded(&s3, &path).await;
    let mut now = Instant::now();
    *s3.failing.lock().unwrap() = Some("AccessDenied".to_owned());
    for _ in 0..3 {
        now += TTL;
        assert!(refresh.refresh(&rules, now).await.is_none());
    }
    assert_eq!(captured.count("S3 CRL refresh failed"), 1, "one warning for three failures");
    assert_eq!(captured.count("AccessDenied"), 1);
    *s3.failing.lock().unwrap() = None;
    now += TTL;
    assert!(refresh.refresh(&rules, now).await.is_none(), "unchanged: a 304");
    assert_eq!(captured.count("S3 CRL refresh succeeded again"), 1);
    *s3.failing.lock().unwrap() = Some("timeout".to_owned());
    now += TTL;
    assert!(refresh.refresh(&rules, now).await.is_none());
    assert_eq!(captured.count("S3 CRL refresh failed"), 2, "a new streak warns again");
}

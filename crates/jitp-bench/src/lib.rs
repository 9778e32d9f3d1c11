//! jitp-bench: the harnesses behind the figures in `BENCHMARKS.md`.
//!
//! - `benches/decide.rs` (criterion): the decision's cost per certificate, whole and by stage.
//! - `jitp-calls`: API calls per provisioned device, first and replayed event, per-thing and shared policies.
//! - `jitp-latency`: per-event wall time from event to ACTIVE against the in-memory registry with a fixed
//!   latency per call, in milliseconds and round trips (p50, p99, max; warm and cold).
//! - `jitp-burst`: N registration events through the workflow against the in-memory registry with AWS IoT's
//!   default quotas as token buckets: devices per second against the quota bound.
//! - `jitp-coldstart`: the release `jitp-lambda` binary against a local Runtime API: time to the first `next`
//!   and peak RSS after 1000 events.
//! - `jitp-moto-compare`: per-event wall time of jitp and of the boto3 JITR baseline (`benches/baseline/`, a
//!   comparison point only) on one moto server.
//! - `jitp-seed`: seed corpora for the fuzz targets under `fuzz/corpus/`, from the test fixtures.
//!
//! Nothing here is a test of behaviour: the figures are measured and written down, never asserted on time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a harness whose fixtures cannot be built should stop loudly

use std::sync::Arc;

use jitp_core::rules::Rules;
use jitp_pki::cert::Certificate;
use jitp_pki::ids::CaCertificateId;
use jitp_profile::profile::Overrides;
use jitp_testkit::{Alg, Ca, Device, Pem};

/// Load the repository's profiles and templates (`jitp_testkit::repo_config_path`) with `overrides`.
pub fn config(overrides: &Overrides) -> Arc<Rules> {
    let path = jitp_testkit::repo_config_path();
    match Rules::load_with(&path, overrides) {
        Ok(c) => Arc::new(c),
        Err(e) => panic!("cannot load {}: {e}", path.display()),
    }
}

/// A CN the `sensors` profile accepts (`sensor-[0-9a-f]{12}`), unique per `i`.
pub fn sensor_cn(i: u64) -> String {
    format!("sensor-{:012x}", i & 0xffff_ffff_ffff)
}

/// A CA and one device certificate it issued, both of algorithm `alg` (a device is normally issued by a CA of
/// its own family, and the signature the decision verifies is the CA's).
#[derive(Debug)]
pub struct Pair {
    /// The CA.
    pub ca: Ca,
    /// The CA, parsed as the workflow caches it.
    pub ca_cert: Certificate,
    /// AWS IoT's id for the CA.
    pub ca_id: CaCertificateId,
    /// The device certificate.
    pub device: Pem,
}

impl Pair {
    /// A CA of `alg` and a `sensors` device of `alg`.
    pub fn new(alg: Alg) -> Self {
        let ca = Ca::new(&format!("Acme Device CA {alg:?}"), alg);
        let device = ca.issue(&Device::new("sensor-0123456789ab").alg(alg));
        let ca_cert = Certificate::from_pem(ca.cert.pem.as_bytes()).expect("the CA fixture parses");
        let ca_id = CaCertificateId::of_der(&ca.cert.der);
        Self { ca, ca_cert, ca_id, device }
    }
}

/// The algorithms the figures cover, with their labels.
pub const ALGS: [(Alg, &str); 4] =
    [(Alg::Rsa2048, "rsa2048"), (Alg::Rsa4096, "rsa4096"), (Alg::P256, "p256"), (Alg::P384, "p384")];

/// Peak resident set (VmHWM) of a process, in KiB, from `/proc/<pid>/status`.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The median of a sample (sorted in place); `None` for an empty one.
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) { (values[mid - 1] + values[mid]) / 2.0 } else { values[mid] })
}

/// The multi-threaded tokio runtime a bench binary runs on, with `threads` workers.
pub fn runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().unwrap()
}

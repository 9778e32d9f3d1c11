//! Lambda cold start: the release `jitp-lambda` binary against a local Lambda Runtime API (axum on
//! 127.0.0.1:0). Two figures:
//!
//! - init: time from spawning the process to its first `GET /runtime/invocation/next`, over `--runs` fresh
//!   processes (median, min, max), with `JITP_REGISTRY=memory`;
//! - peak RSS: `VmHWM` from `/proc/<pid>/status` after `--events` events, one invocation each, in two set-ups:
//!   `memory` (an empty embedded registry: every event is a CERT_NOT_FOUND rejection after one call) and
//!   `memory:FILE` (a registry file holding the CA and one pending certificate per event: every event provisions
//!   a device, and the function saves the file after each invocation, as that mode does).
//!
//! `cargo build --release -p jitp-lambda && cargo run --release -p jitp-bench --bin jitp-coldstart`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark harness

use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use jitp_bench::{median, sensor_cn, vm_hwm_kib};
use jitp_registry::memory::MemoryRegistry;
use jitp_testkit::lambda::{Reply, RuntimeApi};
use jitp_testkit::{Alg, Ca, Device, event_for_ids, repo_root, unix_now};
use serde_json::Value;

#[derive(Debug, Parser)]
#[command(about = "Cold start and peak RSS of the jitp-lambda binary against a local Lambda Runtime API")]
struct Args {
    /// The function binary.
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Fresh processes for the init figure.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Events fed to one process for the RSS figure.
    #[arg(long, default_value_t = 1000)]
    events: usize,
}

struct Function(Child);

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(binary: &Path, api: &RuntimeApi, registry: &str) -> (Function, Instant) {
    let mut cmd = api.command(binary);
    cmd.env("JITP_REGISTRY", registry).stdout(Stdio::null()).stderr(Stdio::null());
    let started = Instant::now();
    let child = cmd.spawn().unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
    (Function(child), started)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    let binary = args.binary.clone().unwrap_or_else(|| repo_root().join("target/release/jitp-lambda"));
    if !binary.is_file() {
        eprintln!("{} not found: cargo build --release -p jitp-lambda", binary.display());
        return ExitCode::FAILURE;
    }
    let size = std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0);
    println!("binary {} ({:.1} MB)", binary.display(), size as f64 / 1e6);

    // Init: fresh process each time, to the first `next`.
    let mut inits = Vec::new();
    for _ in 0..args.runs {
        let api = RuntimeApi::start().await;
        let (function, started) = spawn(&binary, &api, "memory");
        let Some(first) = api.wait_first_next(Duration::from_secs(10)).await else {
            eprintln!("the function did not ask for an event within 10 s");
            return ExitCode::FAILURE;
        };
        inits.push(first.duration_since(started).as_secs_f64() * 1000.0);
        drop(function);
    }
    let runs: Vec<String> = inits.iter().map(|ms| format!("{ms:.1}")).collect();
    let (min, max) = inits.iter().fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    let med = median(&mut inits).unwrap_or(0.0);
    println!(
        "init (process start to first /next), {} runs, JITP_REGISTRY=memory: median {med:.1} ms, min {min:.1}, max {max:.1}",
        args.runs
    );
    println!("  runs (ms): {}", runs.join(" "));

    // RSS after N events, both set-ups.
    let now = unix_now();
    let ca = Ca::new("jitp coldstart CA", Alg::P256);
    let pems: Vec<String> =
        (0..args.events as u64).map(|i| ca.issue(&Device::new(&sensor_cn(i)).valid_around(now)).pem).collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("registry.json");
    let mut events: Vec<Value> = Vec::with_capacity(pems.len());
    {
        let memory = MemoryRegistry::open(&file).unwrap();
        let ca_id = memory.register_ca(&ca.cert.pem, true).unwrap();
        for pem in &pems {
            let id = memory.register_certificate(pem, &ca_id).unwrap();
            events.push(serde_json::from_str(&event_for_ids(id.as_str(), ca_id.as_str())).unwrap());
        }
        memory.save().unwrap();
    }
    for (label, registry) in [
        ("memory (empty: CERT_NOT_FOUND rejections)", "memory".to_owned()),
        ("memory:FILE (every event provisions; file saved per invocation)", format!("memory:{}", file.display())),
    ] {
        let api = RuntimeApi::start().await;
        let (function, _) = spawn(&binary, &api, &registry);
        let after_init = {
            api.wait_first_next(Duration::from_secs(10)).await;
            vm_hwm_kib(function.0.id()).unwrap_or(0)
        };
        let started = Instant::now();
        let mut answered = 0;
        for event in &events {
            if matches!(api.invoke(event.clone()).await, Reply::Response { .. }) {
                answered += 1;
            }
        }
        let elapsed = started.elapsed();
        // The function is now blocked in its next `next`: its peak so far is the figure.
        let hwm = vm_hwm_kib(function.0.id()).unwrap_or(0);
        println!(
            "peak RSS (VmHWM), {label}: {:.1} MB after {} events ({answered} answered with a response, {:.2} ms per invocation); {:.1} MB after init",
            hwm as f64 / 1024.0,
            events.len(),
            elapsed.as_secs_f64() * 1000.0 / events.len().max(1) as f64,
            after_init as f64 / 1024.0
        );
        drop(function);
    }
    if let Ok(memory) = MemoryRegistry::open(&file) {
        let active = memory.policies().len();
        println!("  memory:FILE run left {active} policies in the registry file");
    }
    ExitCode::SUCCESS
}

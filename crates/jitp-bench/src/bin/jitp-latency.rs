//! Latency from event to ACTIVE: each event's wall time, from `Provisioner::handle_bytes` being called to its
//! return, against the in-memory registry with a fixed latency per call (`MemoryRegistry::with_latency`, 40 ms
//! by default, about what a call to AWS IoT takes from a Lambda in the same region). Reported in milliseconds
//! and in round trips (milliseconds ÷ latency): how many calls the workflow waits for one after the other.
//!
//! For each policy mode and concurrency: a fresh registry and provisioner, one cold event (the CA not cached,
//! in shared mode the policy not known), then N devices through the warm provisioner, k at a time. The figure
//! is the warm events' p50, p99 and max. The workflow's dependency graph needs 4 round trips for a warm event
//! (certificate; thing and policy; attachments; activation) and 4 for a cold one (the CA is fetched beside the
//! certificate).
//!
//! `cargo run --release -p jitp-bench --bin jitp-latency -- --latency-ms 40 --devices 200 --concurrency 1,8`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark harness

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use jitp_bench::{config, sensor_cn};
use jitp_core::audit::Outcome;
use jitp_core::engine::Settings;
use jitp_core::provision::Provisioner;
use jitp_profile::profile::{Overrides, PolicyMode};
use jitp_registry::event::CertificateStatus;
use jitp_registry::memory::MemoryRegistry;
use jitp_registry::registry::IotRegistry;
use jitp_testkit::{Alg, Ca, Device, NOW};
use tokio::sync::Semaphore;

#[derive(Debug, Parser)]
#[command(about = "Per-event wall time from handle_bytes to return, against a registry with a fixed latency per call")]
struct Args {
    /// Latency of every registry call, milliseconds.
    #[arg(long, default_value_t = 40.0)]
    latency_ms: f64,
    /// Warm events (one device each) per run, after the cold one.
    #[arg(long, default_value_t = 200)]
    devices: usize,
    /// Events in flight at once, comma-separated: one run per value.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    concurrency: Vec<usize>,
    /// Policy modes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "per-thing,shared")]
    policy_mode: Vec<PolicyMode>,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

struct Run {
    mode: PolicyMode,
    concurrency: usize,
    cold_ms: f64,
    warm_ms: Vec<f64>,
    failures: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    jitp_bench::runtime(args.threads).block_on(run_all(args))
}

async fn run_all(args: Args) -> ExitCode {
    let latency = Duration::from_secs_f64(args.latency_ms / 1000.0);
    let ca = Ca::new("Acme Latency CA", Alg::P256);
    let started = Instant::now();
    // Generated once, before anything is timed; one more than the warm events, for the cold one.
    let pems: Vec<String> = (0..=args.devices as u64).map(|i| ca.issue(&Device::new(&sensor_cn(i))).pem).collect();
    eprintln!("generated {} P-256 device certificates in {:.1?}", pems.len(), started.elapsed());
    println!(
        "latency {:.1} ms per call | {} warm events per run | {} worker threads",
        args.latency_ms, args.devices, args.threads
    );

    let mut runs = Vec::new();
    for &mode in &args.policy_mode {
        for &concurrency in &args.concurrency {
            let run = measure(mode, concurrency.max(1), latency, &ca, &pems).await;
            eprintln!(
                "{mode:?} concurrency {concurrency}: cold {:.1} ms, warm p50 {:.1} ms",
                run.cold_ms,
                percentile(&run.warm_ms, 0.5)
            );
            runs.push(run);
        }
    }

    let rt = |ms: f64| ms / args.latency_ms;
    println!();
    println!(
        "| policy mode | concurrency | cold event ms (round trips) | warm p50 ms (RT) | warm p99 ms (RT) | warm max ms (RT) |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let mut ok = true;
    for run in &runs {
        let (p50, p99, max) =
            (percentile(&run.warm_ms, 0.5), percentile(&run.warm_ms, 0.99), percentile(&run.warm_ms, 1.0));
        println!(
            "| {} | {} | {:.1} ({:.2}) | {p50:.1} ({:.2}) | {p99:.1} ({:.2}) | {max:.1} ({:.2}) |",
            match run.mode {
                PolicyMode::PerThing => "per-thing",
                PolicyMode::Shared => "shared",
            },
            run.concurrency,
            run.cold_ms,
            rt(run.cold_ms),
            rt(p50),
            rt(p99),
            rt(max)
        );
        for failure in &run.failures {
            eprintln!("{:?} concurrency {}: {failure}", run.mode, run.concurrency);
        }
        ok &= run.failures.is_empty();
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// A fresh registry and provisioner; the cold event alone, then the warm ones `concurrency` at a time.
async fn measure(mode: PolicyMode, concurrency: usize, latency: Duration, ca: &Ca, pems: &[String]) -> Run {
    let registry = Arc::new(MemoryRegistry::new().with_latency(latency, latency));
    let ca_id = registry.register_ca(&ca.cert.pem, true).unwrap();
    let events: Vec<(jitp_pki::ids::CertificateId, String)> = pems
        .iter()
        .map(|pem| {
            let id = registry.register_certificate(pem, &ca_id).unwrap();
            let event = jitp_testkit::event_for_ids(id.as_str(), ca_id.as_str());
            (id, event)
        })
        .collect();
    let config = config(&Overrides { policy_mode: Some(mode), ..Overrides::default() });
    let provisioner = Arc::new(Provisioner::new(config, registry.clone() as Arc<dyn IotRegistry>, Settings::default()));
    let mut failures = Vec::new();

    let (cold_ms, outcome) = timed(&provisioner, &events[0].1).await;
    if outcome != Outcome::Provisioned {
        failures.push(format!("the cold event ended {outcome:?}"));
    }

    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = Vec::new();
    for (_, event) in &events[1..] {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let (provisioner, event) = (provisioner.clone(), event.clone());
        tasks.push(tokio::spawn(async move {
            let answer = timed(&provisioner, &event).await;
            drop(permit);
            answer
        }));
    }
    let mut warm_ms = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (ms, outcome) = task.await.unwrap();
        if outcome != Outcome::Provisioned {
            failures.push(format!("a warm event ended {outcome:?}"));
        }
        warm_ms.push(ms);
    }
    let not_active = events.iter().filter(|(id, _)| registry.certificate_status(id) != Some(CertificateStatus::Active));
    let not_active = not_active.count();
    if not_active > 0 {
        failures.push(format!("{not_active} certificates not ACTIVE"));
    }
    failures.extend(registry.violations());
    Run { mode, concurrency, cold_ms, warm_ms, failures }
}

/// One event's wall time from `handle_bytes` being called to its return, in milliseconds, and its outcome.
async fn timed(provisioner: &Provisioner, event: &str) -> (f64, Outcome) {
    let started = Instant::now();
    let record = provisioner.handle_bytes(event.as_bytes(), NOW).await;
    (started.elapsed().as_secs_f64() * 1000.0, record.outcome)
}

/// The nearest-rank percentile `q` (0..=1) of a sample; 0 for an empty one.
fn percentile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

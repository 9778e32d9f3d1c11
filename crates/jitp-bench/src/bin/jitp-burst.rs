//! A burst of N registration events through the workflow (`Provisioner::handle_bytes`) against the in-memory
//! registry with AWS IoT's default API quotas enforced as token buckets, each multiplied by `--scale` so that a
//! run takes well under a minute. The figure is a ratio, not a time: devices per second achieved divided by the
//! quota bound (for each API the workflow calls, its quota divided by its calls per device; the smallest of
//! those). At the default quotas both UpdateCertificate and CreatePolicy allow 10 TPS and are called once per
//! device, so the bound is 10 x scale devices per second.
//!
//! The workflow's retry timings (`Settings::retry_base`, `retry_max`, `retry_deadline`) are given in real time
//! and divided by the same scale (unless `--real-time-settings`), so that backoffs keep the same proportion to
//! the token refill interval as they would against AWS at scale 1.
//!
//! jitp paces its calls under the same quotas (`Settings::pacing`, as the binaries do against AWS) unless
//! `--no-pacing`; `--compare` runs each concurrency both ways, side by side. The registry's buckets start full
//! (an idle account), so the first second's burst is counted in the rate: over thousands of devices it is a
//! fraction of a percent.
//!
//! Events the workflow gives up on (`Outcome::Error`: the deadline passed while throttled, or no quota slot
//! came in time) are delivered again, as Lambda's retries or SQS would, and counted: the table's "ERROR
//! records" is every delivery that ended ERROR. At the end every certificate must be ACTIVE and the registry's
//! invariant (no ACTIVE certificate without a thing and a policy) must hold.
//!
//! `cargo run --release -p jitp-bench --bin jitp-burst -- --devices 10000 --scale 25 --concurrency 1,8,32,128`
//! `cargo run --release -p jitp-bench --bin jitp-burst -- --devices 2000 --scale 1 --concurrency 32 --compare`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark harness

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use jitp_bench::{config, median, sensor_cn};
use jitp_core::audit::Outcome;
use jitp_core::engine::Settings;
use jitp_core::provision::Provisioner;
use jitp_demo::progress::Progress;
use jitp_pki::ids::CertificateId;
use jitp_profile::profile::{Overrides, PolicyMode};
use jitp_registry::event::CertificateStatus;
use jitp_registry::memory::MemoryRegistry;
use jitp_registry::pacing::{Pacing, Quotas};
use jitp_registry::registry::{IotRegistry, Operation};
use jitp_testkit::{Alg, Ca, Device, NOW};
use tokio::sync::Semaphore;

#[derive(Debug, Parser)]
#[command(
    about = "A burst of registration events against AWS IoT's default quotas (scaled); reports devices/s over the quota bound"
)]
struct Args {
    /// Registration events (one device each).
    #[arg(long, default_value_t = 10_000)]
    devices: usize,
    /// Multiply every default quota by this (and divide the retry timings by it).
    #[arg(long, default_value_t = 25.0)]
    scale: f64,
    /// Concurrent events in flight, comma-separated: one run per value, each on a fresh registry.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,128")]
    concurrency: Vec<usize>,
    /// Policy mode.
    #[arg(long, default_value = "per-thing")]
    policy_mode: PolicyMode,
    /// Settings::retry_base in real (unscaled) milliseconds; default: Settings::default().
    #[arg(long)]
    retry_base_ms: Option<f64>,
    /// Settings::retry_max in real milliseconds.
    #[arg(long)]
    retry_max_ms: Option<f64>,
    /// Settings::retry_deadline in real milliseconds.
    #[arg(long)]
    retry_deadline_ms: Option<f64>,
    /// Use the retry timings as given, not divided by the scale.
    #[arg(long)]
    real_time_settings: bool,
    /// Deliveries of one event at most (the first one included) before it counts as lost.
    #[arg(long, default_value_t = 10)]
    max_deliveries: u32,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Send calls unpaced (the workflow before pacing).
    #[arg(long)]
    no_pacing: bool,
    /// Run every concurrency unpaced and paced, side by side.
    #[arg(long, conflicts_with = "no_pacing")]
    compare: bool,
}

struct Run {
    concurrency: usize,
    paced: bool,
    errors: u64,
    quota_wait_ms: Vec<f64>,
    elapsed: Duration,
    provisioned: usize,
    outcomes: BTreeMap<&'static str, usize>,
    redeliveries: u64,
    retries: u64,
    throttles: HashMap<Operation, u64>,
    calls: HashMap<Operation, u64>,
    not_active: usize,
    violations: Vec<String>,
    durations_ms: Vec<f64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    jitp_bench::runtime(args.threads).block_on(run_all(args))
}

async fn run_all(args: Args) -> ExitCode {
    let defaults = Settings::default();
    let ms = |v: Option<f64>, d: Duration| v.map_or(d, |m| Duration::from_secs_f64(m / 1000.0));
    let real = Settings {
        retry_base: ms(args.retry_base_ms, defaults.retry_base),
        retry_max: ms(args.retry_max_ms, defaults.retry_max),
        retry_deadline: ms(args.retry_deadline_ms, defaults.retry_deadline),
        ..defaults
    };
    let divisor = if args.real_time_settings { 1.0 } else { args.scale };
    let settings = Settings {
        retry_base: real.retry_base.div_f64(divisor),
        retry_max: real.retry_max.div_f64(divisor),
        retry_deadline: real.retry_deadline.div_f64(divisor),
        ..real.clone()
    };

    // Certificates are generated once, before anything is timed (P-256: fast to generate).
    let started = Instant::now();
    let ca = Ca::new("Acme Burst CA", Alg::P256);
    let pems: Vec<String> = (0..args.devices as u64).map(|i| ca.issue(&Device::new(&sensor_cn(i))).pem).collect();
    eprintln!("generated {} P-256 device certificates in {:.1?}", pems.len(), started.elapsed());

    let config = config(&Overrides { policy_mode: Some(args.policy_mode), ..Overrides::default() });
    let quotas = Quotas::aws_defaults().scaled(args.scale);
    // The workflow's minimum calls per device, by operation (see jitp_core::provision).
    let mut per_device = vec![
        (Operation::DescribeCertificate, 1.0),
        (Operation::CreateThing, 1.0),
        (Operation::AttachPolicy, 1.0),
        (Operation::AttachThingPrincipal, 1.0),
        (Operation::UpdateCertificate, 1.0),
    ];
    if args.policy_mode == PolicyMode::PerThing {
        per_device.push((Operation::CreatePolicy, 1.0));
    }
    let (bound_op, bound) = per_device
        .iter()
        .map(|(op, calls)| (*op, quotas.get(*op).unwrap_or(f64::INFINITY) / calls))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    // The buckets start full (one second of quota), so the first `bound` devices need not wait: the best a
    // run of N devices can do is N / ((N - bound) / bound) devices per second.
    let ceiling = args.devices as f64 / (args.devices as f64 - bound).max(1.0);
    println!(
        "devices {} | policy mode {:?} | quota scale {} | bound {bound:.0} devices/s ({bound_op}) | best possible ratio with full buckets at the start {ceiling:.3}",
        args.devices, args.policy_mode, args.scale
    );
    println!(
        "retry settings (real time): base {:?}, max {:?}, deadline {:?}; as run: base {:?}, max {:?}, deadline {:?}",
        real.retry_base,
        real.retry_max,
        real.retry_deadline,
        settings.retry_base,
        settings.retry_max,
        settings.retry_deadline
    );

    let pacings: &[bool] = if args.compare {
        &[false, true]
    } else if args.no_pacing {
        &[false]
    } else {
        &[true]
    };
    let mut runs = Vec::new();
    for &concurrency in &args.concurrency {
        for &paced in pacings {
            let settings = Settings {
                pacing: paced.then(|| Pacing { quotas: quotas.clone(), ..Pacing::default() }),
                ..settings.clone()
            };
            let run = burst(&args, &config, &settings, &quotas, &ca, &pems, concurrency).await;
            let rate = run.provisioned as f64 / run.elapsed.as_secs_f64();
            let throttles: u64 = run.throttles.values().sum();
            eprintln!(
                "concurrency {concurrency}, {}: {} provisioned in {:.2?} = {rate:.1} devices/s, ratio {:.3}; throttles {throttles}, retries {}, redeliveries {}",
                if paced { "paced" } else { "unpaced" },
                run.provisioned,
                run.elapsed,
                rate / bound,
                run.retries,
                run.redeliveries
            );
            runs.push(run);
        }
    }

    println!();
    println!(
        "| concurrency | pacing | devices/s | ratio to bound | calls per provisioned | throttled calls | ERROR records | retries (audit) | redeliveries | lost / not ACTIVE | violations | event p50 / p99 (real s) | quota wait p50 / p99 (real s) |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut ok = true;
    for run in &mut runs {
        let rate = run.provisioned as f64 / run.elapsed.as_secs_f64();
        let throttles: u64 = run.throttles.values().sum();
        let calls: u64 = run.calls.values().sum();
        let lost = args.devices - run.provisioned;
        let p50 = median(&mut run.durations_ms).unwrap_or(0.0);
        let p99 = percentile(&run.durations_ms, 0.99);
        let w50 = median(&mut run.quota_wait_ms).unwrap_or(0.0);
        let w99 = percentile(&run.quota_wait_ms, 0.99);
        // Event durations ran on the scaled clock: multiply back to real time.
        let real_s = |ms: f64| ms * divisor / 1000.0;
        println!(
            "| {} | {} | {rate:.1} | {:.3} | {:.3} | {throttles} ({:.2}%) | {} | {} | {} | {lost} / {} | {} | {:.2} / {:.2} | {:.2} / {:.2} |",
            run.concurrency,
            if run.paced { "paced" } else { "off" },
            rate / bound,
            calls as f64 / run.provisioned.max(1) as f64,
            100.0 * throttles as f64 / calls.max(1) as f64,
            run.errors,
            run.retries,
            run.redeliveries,
            run.not_active,
            run.violations.len(),
            real_s(p50),
            real_s(p99),
            real_s(w50),
            real_s(w99)
        );
        ok &= lost == 0 && run.not_active == 0 && run.violations.is_empty();
    }
    println!();
    for run in &runs {
        let mut throttles: Vec<_> = run.throttles.iter().filter(|(_, n)| **n > 0).collect();
        throttles.sort();
        let mut calls: Vec<_> = run.calls.iter().collect();
        calls.sort();
        println!(
            "concurrency {} {}: outcomes {:?}; throttled by API {:?}; calls by API {:?}",
            run.concurrency,
            if run.paced { "paced" } else { "unpaced" },
            run.outcomes,
            throttles,
            calls
        );
        for v in run.violations.iter().take(5) {
            println!("  violation: {v}");
        }
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

async fn burst(
    args: &Args,
    config: &Arc<jitp_core::rules::Rules>,
    settings: &Settings,
    quotas: &Quotas,
    ca: &Ca,
    pems: &[String],
    concurrency: usize,
) -> Run {
    let registry = MemoryRegistry::new();
    let ca_id = registry.register_ca(&ca.cert.pem, true).unwrap();
    let mut ids: Vec<CertificateId> = Vec::with_capacity(pems.len());
    let mut events = Vec::with_capacity(pems.len());
    for pem in pems {
        let id = registry.register_certificate(pem, &ca_id).unwrap();
        events.push(jitp_testkit::event_for_ids(id.as_str(), ca_id.as_str()));
        ids.push(id);
    }
    // Quotas start now, with full buckets.
    let registry = Arc::new(registry.with_quotas(quotas));
    let provisioner =
        Arc::new(Provisioner::new(config.clone(), registry.clone() as Arc<dyn IotRegistry>, settings.clone()));
    let progress = Arc::new(Progress::new(pems.len()));
    progress.start(provisioner.pacer(), args.policy_mode == PolicyMode::PerThing);
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let max_deliveries = args.max_deliveries.max(1);

    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for event in events {
        let provisioner = provisioner.clone();
        let permits = permits.clone();
        let progress = progress.clone();
        tasks.spawn(async move {
            let mut deliveries = 0u32;
            let mut retries = 0u64;
            let mut errors = 0u64;
            let mut durations = Vec::new();
            let mut waits = Vec::new();
            loop {
                let permit = permits.acquire().await.unwrap();
                deliveries += 1;
                let record = provisioner.handle_bytes(event.as_bytes(), NOW).await;
                drop(permit);
                retries += u64::from(record.retries);
                errors += u64::from(record.outcome == Outcome::Error);
                durations.push(record.duration_ms as f64);
                waits.push(record.quota_wait_ms as f64);
                if !record.is_retryable() || deliveries >= max_deliveries {
                    progress.done(&record.api_calls, provisioner.pacer());
                    return (record.outcome, deliveries, retries, errors, durations, waits);
                }
            }
        });
    }
    let mut run = Run {
        concurrency,
        paced: settings.pacing.is_some(),
        errors: 0,
        quota_wait_ms: Vec::with_capacity(pems.len()),
        elapsed: Duration::ZERO,
        provisioned: 0,
        outcomes: BTreeMap::new(),
        redeliveries: 0,
        retries: 0,
        throttles: HashMap::new(),
        calls: HashMap::new(),
        not_active: 0,
        violations: Vec::new(),
        durations_ms: Vec::with_capacity(pems.len()),
    };
    while let Some(done) = tasks.join_next().await {
        let (outcome, deliveries, retries, errors, durations, waits) = done.unwrap();
        run.errors += errors;
        run.quota_wait_ms.extend(waits);
        *run.outcomes.entry(outcome.as_str()).or_default() += 1;
        if outcome == Outcome::Provisioned {
            run.provisioned += 1;
        }
        run.redeliveries += u64::from(deliveries - 1);
        run.retries += retries;
        run.durations_ms.extend(durations);
    }
    run.elapsed = started.elapsed();
    progress.finish();
    run.throttles = registry.throttle_counts();
    run.calls = registry.call_counts();
    run.not_active = ids.iter().filter(|id| registry.certificate_status(id) != Some(CertificateStatus::Active)).count();
    run.violations = registry.violations();
    run
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

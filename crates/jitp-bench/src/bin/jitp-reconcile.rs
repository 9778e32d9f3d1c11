//! `jitp reconcile --plan` at fleet size: N devices provisioned with the shipped templates, then the sensor
//! template narrowed (v2, one topic), and the plan run twice over the same registry:
//! - unpaced, against a registry without quotas: jitp's own CPU per device (the decision, the render, the
//!   comparison and the in-memory registry's share of it), from the process's CPU time (`/proc/self/stat`,
//!   utime + stime, all threads, 100 Hz ticks) over the plan;
//! - paced at AWS's default quotas × `--scale`, against a registry enforcing the same quotas: the time the quotas
//!   impose, measured and multiplied back by the scale (at scale 1 a 10,000-device plan takes about 17 minutes of
//!   waiting), next to what the pacer's lanes predict for the calls the plan made.
//!
//! Then `--apply`, paced the same way, and a plan after it that must find no drift: the apply's time at the quotas
//! and its CPU per device.
//!
//! Every plan must find exactly the N narrowed devices under one policy change and nothing else, the apply must
//! converge and change N policies, or the binary exits 1.
//!
//! `cargo run --release -p jitp-bench --bin jitp-reconcile -- --devices 10000 --scale 25`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark harness

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use jitp_bench::sensor_cn;
use jitp_core::audit::Outcome;
use jitp_core::engine::Settings;
use jitp_core::provision::Provisioner;
use jitp_core::reconcile::apply::{Mode, Options};
use jitp_core::reconcile::{Plan, Reconciler};
use jitp_core::rules::Rules;
use jitp_registry::memory::MemoryRegistry;
use jitp_registry::pacing::{Pacer, Pacing, Quotas};
use jitp_registry::registry::{IotRegistry, Operation};
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::{Alg, Ca, Device, NOW};
use tokio::sync::Semaphore;

/// The statement v2 narrows (as `crates/jitp-core/tests/reconcile.rs` does).
const NARROWED_FROM: &str = r#""{{ arn }}:topic/things/{{ thing_name }}/events/*","#;
const NARROWED_TO: &str = r#""{{ arn }}:topic/things/{{ thing_name }}/events/alarm","#;

#[derive(Debug, Parser)]
#[command(
    about = "jitp reconcile --plan over N provisioned devices: CPU per device unpaced, and the time AWS's quotas impose"
)]
struct Args {
    /// Devices provisioned before the template changes.
    #[arg(long, default_value_t = 10_000)]
    devices: usize,
    /// Multiply AWS's default quotas by this for the paced plan (and scale its time back).
    #[arg(long, default_value_t = 25.0)]
    scale: f64,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    jitp_bench::runtime(args.threads).block_on(run(args))
}

/// CPU time of the whole process so far (user + system, every thread), from `/proc/self/stat` in 100 Hz ticks.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The command name may hold spaces: the fields after its closing parenthesis are space-separated, utime and
    // stime being the 12th and 13th of them (fields 14 and 15 of proc(5)).
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

async fn run(args: Args) -> ExitCode {
    let started = Instant::now();
    let dir = ConfigDir::shipped();
    let v1 = Arc::new(Rules::load(dir.config_path()).unwrap());
    let ca = Ca::new("Acme Reconcile CA", Alg::P256);
    let registry = MemoryRegistry::new();
    let ca_id = registry.register_ca(&ca.cert.pem, true).unwrap();
    let events: Vec<String> = (0..args.devices as u64)
        .map(|i| {
            let pem = ca.issue(&Device::new(&sensor_cn(i))).pem;
            let id = registry.register_certificate(&pem, &ca_id).unwrap();
            jitp_testkit::event_for_ids(id.as_str(), ca_id.as_str())
        })
        .collect();
    let registry = Arc::new(registry);
    let provisioner = Arc::new(Provisioner::new(v1, registry.clone() as Arc<dyn IotRegistry>, Settings::default()));
    let gate = Arc::new(Semaphore::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    for event in events {
        let (provisioner, gate) = (provisioner.clone(), gate.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            provisioner.handle_bytes(event.as_bytes(), NOW).await.outcome
        });
    }
    while let Some(outcome) = tasks.join_next().await {
        assert_eq!(outcome.unwrap(), Outcome::Provisioned);
    }
    eprintln!("provisioned {} devices with v1 in {:.1?}", args.devices, started.elapsed());

    let template = dir.path().join("policies/sensor.json.tera");
    let text = std::fs::read_to_string(&template).unwrap();
    assert!(text.contains(NARROWED_FROM), "the shipped sensor template no longer has the statement v2 narrows");
    std::fs::write(&template, text.replace(NARROWED_FROM, NARROWED_TO)).unwrap();
    let v2 = Arc::new(Rules::load(dir.config_path()).unwrap());
    let mut ok = true;

    // Unpaced: jitp's own CPU.
    let reconciler = Reconciler::new(v2.clone(), registry.clone() as Arc<dyn IotRegistry>, Settings::default());
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    let plan = reconciler.plan(NOW).await.unwrap();
    let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());
    ok &= check(&plan, args.devices);
    let per_device = |d: Duration| d.as_secs_f64() * 1e6 / args.devices as f64;
    println!(
        "unpaced plan: {} devices in {wall:.2?} wall, {cpu:.2?} CPU = {:.0} µs CPU per device ({:.0} µs wall); calls {:?}",
        args.devices,
        per_device(cpu),
        per_device(wall),
        plan.calls
    );

    // Paced, against the same registry with the quotas enforced.
    let quotas = Quotas::aws_defaults().scaled(args.scale);
    let paced_registry = Arc::new(registry_with_quotas(&registry, &quotas));
    let settings =
        Settings { pacing: Some(Pacing { quotas: quotas.clone(), ..Pacing::default() }), ..Settings::default() };
    let reconciler = Reconciler::new(v2, paced_registry.clone() as Arc<dyn IotRegistry>, settings);
    let lanes = Pacer::new(&Quotas::aws_defaults(), 1);
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    let plan = reconciler.plan(NOW).await.unwrap();
    let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());
    ok &= check(&plan, args.devices);
    let throttled: u64 = paced_registry.throttle_counts().values().sum();
    let predicted = predicted_seconds(&plan.calls, &lanes);
    println!(
        "paced plan at AWS's quotas x{}: {wall:.2?} wall ({:.0} s at x1; the lanes predict {predicted:.0} s at x1, bound by the slowest lane for the calls made), {cpu:.2?} CPU, {throttled} throttled calls",
        args.scale,
        wall.as_secs_f64() * args.scale,
    );

    // Apply, paced, on the same reconciler (same lanes), then a plan that must show no drift.
    let options = Options { mode: Mode::Apply, revoke: false, canary: None, thing_group: None };
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    let applied = reconciler.apply(NOW, options, &|_| {}).await.unwrap();
    let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());
    ok &= applied.converged && applied.counts.policies == args.devices as u64;
    let throttled_after: u64 = paced_registry.throttle_counts().values().sum();
    println!(
        "paced apply at AWS's quotas x{}: {} policies changed in {wall:.2?} wall ({:.0} s at x1; the lanes predict {:.0} s: the plan again, then the writes), {cpu:.2?} CPU = {:.0} µs CPU per device, {} throttled calls; calls {:?}",
        args.scale,
        applied.counts.policies,
        wall.as_secs_f64() * args.scale,
        // The apply makes the plan again, then writes: two phases, one after the other.
        predicted_seconds(&plan.calls, &lanes) + predicted_seconds(&minus(&applied.calls, &plan.calls), &lanes),
        per_device(cpu),
        throttled_after - throttled,
        applied.calls
    );
    let after = reconciler.plan(NOW).await.unwrap();
    ok &= !after.drift;
    println!("plan after the apply: drift {}", after.drift);
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// The paced run needs the provisioned state under quotas: the memory registry's quotas are set at construction,
/// so copy the state through its persistence file.
fn registry_with_quotas(registry: &MemoryRegistry, quotas: &Quotas) -> MemoryRegistry {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(&registry.snapshot()).unwrap()).unwrap();
    MemoryRegistry::open(file.path()).unwrap().with_quotas(quotas)
}

/// Seconds the slowest lane needs for `calls`, at `pacer`'s rates.
fn predicted_seconds(calls: &BTreeMap<Operation, u32>, pacer: &Pacer) -> f64 {
    calls.iter().filter_map(|(op, n)| pacer.ceiling(*op).map(|rate| f64::from(*n) / rate)).fold(0.0, f64::max)
}

/// `a - b`, operation by operation.
fn minus(a: &BTreeMap<Operation, u32>, b: &BTreeMap<Operation, u32>) -> BTreeMap<Operation, u32> {
    a.iter().map(|(op, n)| (*op, n.saturating_sub(b.get(op).copied().unwrap_or(0)))).collect()
}

fn check(plan: &Plan, devices: usize) -> bool {
    let changed: u64 = plan.policy_changes.iter().map(|g| g.devices).sum();
    let good = plan.policy_changes.len() == 1
        && changed == devices as u64
        && plan.would_reject.is_empty()
        && plan.unaccounted.is_empty()
        && plan.errors.is_empty()
        && plan.thing_changes.is_empty();
    if !good {
        eprintln!(
            "unexpected plan: {} policy groups ({changed} devices), {} rejected groups, {} unaccounted, {} errors, {} thing groups",
            plan.policy_changes.len(),
            plan.would_reject.len(),
            plan.unaccounted.len(),
            plan.errors.len(),
            plan.thing_changes.len()
        );
    }
    good
}

//! `jitp demo`: the whole flow offline. A demo CA and device certificates (plus deliberately bad ones) are
//! registered PENDING_ACTIVATION in the embedded registry, with AWS's API quotas enforced, and every
//! registration event runs through the workflow with the repo's templates.
//!
//! jitp paces its calls under the same quotas (as the binaries do against AWS), so the run shows what a burst
//! looks like in an account: the progress bar's ETA is the one the pacing implies, and the summary names the
//! operation that bounds the rate. `--no-pacing` shows the same burst bouncing off the quotas instead.
//!
//! The rate is reported against the bound the chosen quotas put on it. The quotas' buckets start empty, so no
//! first second's burst is counted: a full bucket would let a small fleet through at any rate. With the quotas
//! scaled, the workflow's retry timings are scaled with them, so the run is a time-lapse of AWS's pace.

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use jitp_core::audit::{AuditRecord, Outcome};
use jitp_core::engine::Settings;
use jitp_core::provision::Provisioner;
use jitp_core::rules::Rules;
use jitp_demo::pki::{DAY, DemoCa, DemoDevice, NOW, registration_event};
use jitp_demo::progress::Progress;
use jitp_profile::profile::PolicyMode;
use jitp_registry::memory::MemoryRegistry;
use jitp_registry::pacing::{Pacer, Pacing, Quotas};
use jitp_registry::registry::{IotRegistry, Operation};
use tokio::sync::Semaphore;

use jitp_wiring::ConfigArgs;

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Good device certificates to provision.
    #[arg(long, default_value_t = 100)]
    devices: usize,
    /// Deliberately bad certificates (expired, wrong CA, hostile CN, duplicate, weak key, CA flag) mixed in.
    #[arg(long, default_value_t = 6)]
    bad: usize,
    /// Multiply AWS's default API quotas by this (10 keeps the demo short; 1 is AWS's real pace).
    #[arg(long, default_value_t = 10.0, value_parser = quota_scale)]
    quota_scale: f64,
    /// Events in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Send calls unpaced, to see the burst bounce off the quotas (throttled calls, retries, lost events).
    #[arg(long)]
    no_pacing: bool,
    /// Print every audit record as a JSON line.
    #[arg(long)]
    verbose: bool,
}

fn quota_scale(v: &str) -> Result<f64, String> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && (0.01..=1000.0).contains(s))
        .ok_or_else(|| "a number from 0.01 to 1000".to_owned())
}

const BAD_KINDS: [&str; 6] = ["expired", "wrong CA", "hostile CN", "duplicate CN", "weak key", "CA flag"];

pub(crate) async fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let config = Arc::new(args.config.load::<Rules>()?);
    eprintln!("jitp demo: generating a demo CA and {} device certificates ({} bad)…", args.devices, args.bad);
    let ca = DemoCa::new("jitp demo CA")?;
    let rogue = DemoCa::new("jitp demo CA")?; // same name, different key: a forgery
    let other = DemoCa::new("Someone else's CA")?;
    let mut pems = Vec::with_capacity(args.devices + args.bad);
    for i in 0..args.devices {
        pems.push(ca.issue(&DemoDevice::new(&format!("sensor-{:012x}", i)))?);
    }
    for i in 0..args.bad {
        let good = DemoDevice::new(&format!("sensor-{:012x}", 0xbad0_0000 + i));
        let pem = match i % BAD_KINDS.len() {
            0 => ca.issue(&DemoDevice { not_before: NOW - 400 * DAY, not_after: NOW - 30 * DAY, ..good })?,
            1 if i % 2 == 0 => rogue.issue(&good)?,
            1 => other.issue(&good)?,
            2 => ca.issue(&DemoDevice::new("sensor-*\"},{\"Effect\":\"Allow"))?,
            3 => {
                let serial = vec![0x5a, i as u8, 1, 2, 3, 4, 5, 6];
                ca.issue(&DemoDevice { serial, ..DemoDevice::new(&format!("sensor-{:012x}", 0)) })?
            }
            4 => ca.issue(&DemoDevice { rsa_bits: Some(1024), ..good })?,
            _ => ca.issue(&DemoDevice { is_ca: true, ..good })?,
        };
        pems.push(pem);
    }

    // The account: AWS's default quotas, or jitp.toml's where it names others, scaled for the time-lapse.
    let quotas = Pacing::default().resolve(&config.config().quotas).scaled(args.quota_scale);
    let registry = Arc::new(MemoryRegistry::new().with_quotas(&quotas));
    let ca_id = registry.register_ca(&ca.pem, true).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut events = Vec::with_capacity(pems.len());
    for pem in &pems {
        let id = registry.register_certificate(pem, &ca_id).map_err(|e| anyhow::anyhow!("{e}"))?;
        events.push(registration_event(id.as_str(), ca_id.as_str()));
    }
    // Good devices first, so the duplicate-CN certificates meet an already provisioned thing.
    // A time-lapse of AWS's pace: the workflow's backoffs and deadline shrink with the quotas, so that they keep their
    // proportion to the buckets' refill interval (as in jitp-burst).
    let real = Settings::default();
    let settings = Settings {
        retry_deadline: real.retry_deadline.div_f64(args.quota_scale),
        retry_base: real.retry_base.div_f64(args.quota_scale),
        retry_max: real.retry_max.div_f64(args.quota_scale),
        // Paced at the account's quotas, as scaled: every operation's, jitp.toml's included (as overrides, so
        // that they stay scaled).
        pacing: (!args.no_pacing).then(|| Pacing {
            quotas: quotas.clone(),
            overrides: quotas.iter().collect(),
            instances: 1,
        }),
        ..real
    };
    let per_thing = config.config().defaults.policy_mode == PolicyMode::PerThing;
    let provisioner = Arc::new(Provisioner::new(config, registry.clone() as Arc<dyn IotRegistry>, settings));
    let progress = Arc::new(Progress::new(events.len()));
    progress.start(provisioner.pacer(), per_thing);
    registry.empty_buckets();
    let started = Instant::now();
    let records = run_all(&provisioner, &events[..args.devices], args.concurrency, &progress).await;
    let good = Phase { elapsed: started.elapsed(), admitted: admitted(&registry) };
    let mut all = records;
    all.extend(run_all(&provisioner, &events[args.devices..], args.concurrency, &progress).await);
    progress.finish();
    if args.verbose {
        for r in &all {
            outln!("{}", r.line(&jitp_core::audit::Origin { trigger: "demo", request_id: None, message_id: None }));
        }
    }
    print_summary(&all, &good, &quotas, args.quota_scale, &registry, provisioner.pacer());
    let lost = all.iter().filter(|r| r.outcome == Outcome::Error).count();
    Ok(if lost == 0 && registry.violations().is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

async fn run_all(
    provisioner: &Arc<Provisioner>,
    events: &[String],
    concurrency: usize,
    progress: &Arc<Progress>,
) -> Vec<AuditRecord> {
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(events.len());
    for event in events {
        let provisioner = provisioner.clone();
        let gate = gate.clone();
        let event = event.clone();
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await;
            // The demo certificates are generated at the fixed test clock; decide at that time too.
            let record = provisioner.handle_bytes(event.as_bytes(), NOW).await;
            progress.done(&record.api_calls, provisioner.pacer());
            record
        }));
    }
    let mut records = Vec::with_capacity(tasks.len());
    for t in tasks {
        if let Ok(r) = t.await {
            records.push(r);
        }
    }
    records
}

/// The good devices' run: how long it took, and the calls the quotas let through meanwhile.
struct Phase {
    elapsed: Duration,
    admitted: HashMap<Operation, u64>,
}

/// Calls the registry let through so far (made minus throttled), by operation.
fn admitted(registry: &MemoryRegistry) -> HashMap<Operation, u64> {
    let throttled = registry.throttle_counts();
    registry
        .call_counts()
        .into_iter()
        .map(|(op, n)| (op, n.saturating_sub(throttled.get(&op).copied().unwrap_or(0))))
        .collect()
}

/// The shortest time the quotas allow for a run, and the operations that set it: those whose admitted calls need
/// the longest at their rate (buckets start empty, so a bucket of `rate` admits at most `rate * t` calls in `t`
/// seconds). `None` without quotas.
fn binding(admitted: &HashMap<Operation, u64>, quotas: &Quotas) -> Option<(Vec<Operation>, f64)> {
    let needs: BTreeMap<Operation, f64> = admitted
        .iter()
        .filter_map(|(op, n)| quotas.get(*op).map(|rate| (*op, *n as f64 / rate)))
        .filter(|(_, seconds)| *seconds > 0.0)
        .collect();
    let fastest = needs.values().copied().fold(0.0, f64::max);
    let ops: Vec<Operation> =
        needs.into_iter().filter(|(_, s)| *s >= fastest * (1.0 - 1e-9)).map(|(op, _)| op).collect();
    (!ops.is_empty()).then_some((ops, fastest))
}

fn print_summary(
    records: &[AuditRecord],
    good: &Phase,
    quotas: &Quotas,
    scale: f64,
    registry: &MemoryRegistry,
    pacer: &Pacer,
) {
    let mut by_outcome: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    for r in records {
        *by_outcome.entry(r.outcome.as_str()).or_default() += 1;
        if let Some(reason) = r.reason {
            *by_reason.entry(reason.to_string()).or_default() += 1;
        }
    }
    let provisioned: Vec<&AuditRecord> = records.iter().filter(|r| r.outcome == Outcome::Provisioned).collect();
    let calls: u32 = provisioned.iter().map(|r| r.api_call_count).sum();
    let provisioned_retries: u32 = provisioned.iter().map(|r| r.retries).sum();
    let retries: u32 = records.iter().map(|r| r.retries).sum();
    let throttles: u64 = registry.throttle_counts().values().sum();
    outln!("jitp demo — {} events, AWS quotas x{scale}", records.len());
    outln!("  {:<28} {:>8}", "outcome", "events");
    for (k, v) in &by_outcome {
        outln!("  {k:<28} {v:>8}");
    }
    if !by_reason.is_empty() {
        outln!("  {:<28} {:>8}", "rejected or held, by reason", "");
        for (k, v) in &by_reason {
            outln!("    {k:<26} {v:>8}");
        }
    }
    let per_device = |n: u32| if provisioned.is_empty() { 0.0 } else { f64::from(n) / provisioned.len() as f64 };
    outln!(
        "  {:<28} {:>8.2}  plus {:.2} retried after throttling",
        "API calls per provisioned",
        per_device(calls.saturating_sub(provisioned_retries)),
        per_device(provisioned_retries)
    );
    let seconds = good.elapsed.as_secs_f64().max(1e-9);
    let rate = provisioned.len() as f64 / seconds;
    match binding(&good.admitted, quotas) {
        Some((ops, fastest)) if !provisioned.is_empty() => {
            let bound = provisioned.len() as f64 / fastest;
            let why: Vec<String> = ops
                .iter()
                .map(|op| {
                    let per_device = good.admitted.get(op).copied().unwrap_or(0) as f64 / provisioned.len() as f64;
                    let quota = quotas.get(*op).unwrap_or(0.0);
                    format!("{op} {quota}/s at {per_device:.2} per device")
                })
                .collect();
            outln!(
                "  {:<28} {rate:>8.1}  {:.0}% of the {bound:.1}/s bound that AWS's quotas x{scale} impose",
                "devices per second",
                100.0 * rate / bound,
            );
            outln!("  {:<28} {:>8}  set by {}", "", "", why.join(", "));
            outln!("  {:<28} {:>8}  measured from empty quota buckets: no first-second burst counted", "", "");
            if scale != 1.0 {
                outln!("  {:<28} {:>8}  retry backoffs and deadline scaled by 1/{scale} with the quotas", "", "");
            }
        }
        _ => outln!("  {:<28} {rate:>8.1}", "devices per second"),
    }
    let all_calls: u32 = records.iter().map(|r| r.api_call_count).sum();
    let share = if all_calls == 0 { 0.0 } else { 100.0 * throttles as f64 / f64::from(all_calls) };
    outln!("  {:<28} {:>8}  {share:.1}% of {all_calls} calls; {retries} retries in all", "throttled calls", throttles);
    let waited: u64 = records.iter().map(|r| r.quota_wait_ms).sum();
    let mut waits: Vec<u64> = records.iter().map(|r| r.quota_wait_ms).collect();
    waits.sort_unstable();
    let p50 = waits.get(waits.len() / 2).copied().unwrap_or(0);
    let max = waits.last().copied().unwrap_or(0);
    if pacer.ceiling(Operation::UpdateCertificate).is_some() {
        outln!(
            "  {:<28} {:>8}  ms per event, median; max {max} ms; {:.1} s in all (paced under the quotas)",
            "waited for quota",
            p50,
            waited as f64 / 1000.0
        );
    } else {
        outln!("  {:<28} {:>8}  (--no-pacing: calls sent as fast as they come)", "waited for quota", "-");
    }
    outln!("  {:<28} {:>8}", "invariant violations", registry.violations().len());
}

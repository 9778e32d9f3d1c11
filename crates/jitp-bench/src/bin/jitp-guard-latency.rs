//! The connect guard's cost per connect, warm, in the handler: each decision's wall time from
//! `Guard::answer` being called (AWS's event JSON in) to its return (`isAuthenticated` out), on one thread, with
//! the refusal lines written to a sink that drops them.
//!
//! Two configurations side by side in one run (the machine is shared: compare within a run): the shipped-like
//! profile with no CRL and no deny list, and the same profile with a CRL of `--crl-entries` entries (DER, one
//! file) and a deny list of `--deny-entries` serials. The devices cycle through `--devices` distinct certificates
//! (one in 20 revoked, one in 20 denied, the rest valid); the figure is p50, p99 and max over `--decisions`
//! decisions after `--warmup`. The difference between the two rows is the cost of the lookups.
//!
//! `cargo run --release -p jitp-bench --bin jitp-guard-latency -- --decisions 100000`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark harness

use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use jitp_guard::judge::Config;
use jitp_guard::{CaSet, Guard, GuardSettings};
use jitp_registry::memory::MemoryRegistry;
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::events::connect;
use jitp_testkit::{Alg, Ca, CrlSpec, Device, NOW, Revoked};
use serde_json::Value;

#[derive(Debug, Parser)]
#[command(about = "The connect guard's wall time per decision, warm, in the handler")]
struct Args {
    /// Decisions measured per configuration.
    #[arg(long, default_value_t = 100_000)]
    decisions: usize,
    /// Decisions before measuring.
    #[arg(long, default_value_t = 2_000)]
    warmup: usize,
    /// Entries of the CRL.
    #[arg(long, default_value_t = 200_000)]
    crl_entries: u64,
    /// Serials on the deny list.
    #[arg(long, default_value_t = 10_000)]
    deny_entries: u64,
    /// Distinct device certificates the connects cycle through.
    #[arg(long, default_value_t = 1_000)]
    devices: u64,
}

fn serial(i: u64) -> Vec<u8> {
    // 9 bytes, the first below 0x80 (a positive INTEGER), distinct from the devices' (which start at 0x10).
    let mut s = vec![0x20];
    s.extend_from_slice(&i.to_be_bytes());
    s
}

fn device_serial(i: u64) -> Vec<u8> {
    let mut s = vec![0x10];
    s.extend_from_slice(&i.to_be_bytes());
    s
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Setup {
    _dir: ConfigDir,
    guard: Guard,
    events: Vec<Value>,
}

fn setup(args: &Args, ca: &Ca, with_lists: bool) -> Setup {
    let dir = ConfigDir::new();
    dir.copy_policy("sensor.json.tera", "sensor.json.tera");
    let mut lists = String::new();
    if with_lists {
        let started = Instant::now();
        // The devices' own revoked and denied ones among a crowd of others.
        let mut revoked: Vec<Revoked> = (0..args.crl_entries).map(|i| Revoked::serial(&serial(i))).collect();
        let mut denied: Vec<String> =
            (0..args.deny_entries).map(|i| format!("serial:{}", hex(&serial(1 << 40 | i)))).collect();
        for i in (0..args.devices).filter(|i| i % 20 == 1) {
            revoked.push(Revoked::serial(&device_serial(i)));
        }
        for i in (0..args.devices).filter(|i| i % 20 == 2) {
            denied.push(format!("serial:{}", hex(&device_serial(i))));
        }
        let crl = ca.crl_with(&CrlSpec { revoked, ..CrlSpec::new(&[]) });
        std::fs::write(dir.path().join("big.crl"), &crl.der).unwrap();
        std::fs::write(dir.path().join("denied.txt"), denied.join("\n")).unwrap();
        eprintln!(
            "CRL: {} entries, {} bytes DER; deny list: {} entries (made in {:.1} s)",
            args.crl_entries,
            crl.der.len(),
            denied.len(),
            started.elapsed().as_secs_f64()
        );
        lists = "crl = [\"big.crl\"]\ndeny_list = \"denied.txt\"\n".to_owned();
    }
    dir.write_config(&format!(
        "[[profiles]]\nname = \"sensors\"\nca = [\"*\"]\ncommon_name = 'sensor-[0-9a-f]{{12}}'\norganization = [\"Acme\"]\nthing_name = \"{{{{ subject.cn }}}}\"\npolicy = \"policies/sensor.json.tera\"\nmax_validity_days = 9125\n{lists}"
    ));
    let started = Instant::now();
    let config = Config::load(dir.config_path()).unwrap();
    let memory = MemoryRegistry::new();
    memory.register_ca(&ca.cert.pem, true).unwrap();
    let runtime = jitp_bench::runtime(1);
    let cas = runtime.block_on(CaSet::load(&memory, &config)).unwrap();
    eprintln!("rules and CAs loaded in {:.0} ms", started.elapsed().as_secs_f64() * 1000.0);
    let settings = guard_settings();
    let guard = Guard::builder(Arc::new(config), cas, Arc::new(memory), &settings)
        .clock(Arc::new(|| NOW))
        .sink(Arc::new(|_: &str| {}))
        .build();
    let events = (0..args.devices)
        .map(|i| {
            let mut device = Device::new(&format!("sensor-{i:012x}"));
            device.serial = device_serial(i);
            connect(&[&ca.issue(&device).pem])
        })
        .collect();
    Setup { _dir: dir, guard, events }
}

fn guard_settings() -> GuardSettings {
    use clap::Parser as _;
    GuardSettings::try_parse_from(["jitp-guard"]).unwrap()
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let args = Args::parse();
    let ca = Ca::new("jitp guard bench CA", Alg::P256);
    println!("| configuration | decisions | allowed | p50 µs | p99 µs | max µs |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for with_lists in [false, true] {
        let s = setup(&args, &ca, with_lists);
        let n = s.events.len();
        for i in 0..args.warmup {
            let _ = s.guard.answer(&s.events[i % n], "warmup");
        }
        let mut micros = Vec::with_capacity(args.decisions);
        let mut allowed = 0;
        for i in 0..args.decisions {
            let event = &s.events[i % n];
            let started = Instant::now();
            let answer = s.guard.answer(event, "bench");
            micros.push(started.elapsed().as_secs_f64() * 1e6);
            allowed += usize::from(answer.is_authenticated);
        }
        micros.sort_by(f64::total_cmp);
        let label = if with_lists {
            format!("CRL of {} + deny list of {}", args.crl_entries, args.deny_entries)
        } else {
            "no CRL, no deny list".to_owned()
        };
        println!(
            "| {label} | {} | {allowed} | {:.1} | {:.1} | {:.1} |",
            args.decisions,
            percentile(&micros, 0.5),
            percentile(&micros, 0.99),
            percentile(&micros, 1.0)
        );
    }
}

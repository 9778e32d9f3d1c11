//! The connect guard's cost per connect, in-process and warm: the handler's whole answer (`Guard::answer`: AWS's
//! event JSON in, the decision, `isAuthenticated` out) and its parts (the event's parse; the decision alone), each
//! with no CRL and no deny list and with a CRL of 200,000 entries and a deny list of 10,000, side by side, so the
//! difference is the lookups' cost. The percentiles over 100,000 decisions are `jitp-guard-latency`'s.
//!
//! `cargo bench -p jitp-bench --bench guard`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)] // benchmark harness

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use jitp_guard::judge::Config;
use jitp_guard::{CaSet, Guard, GuardSettings};
use jitp_registry::memory::MemoryRegistry;
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::events::connect;
use jitp_testkit::{Alg, Ca, CrlSpec, Device, NOW, Revoked};

const CRL_ENTRIES: u64 = 200_000;
const DENY_ENTRIES: u64 = 10_000;

fn serial(tag: u8, i: u64) -> Vec<u8> {
    let mut s = vec![tag];
    s.extend_from_slice(&i.to_be_bytes());
    s
}

fn guard_with(ca: &Ca, lists: bool) -> (ConfigDir, Guard) {
    let dir = ConfigDir::new();
    dir.copy_policy("sensor.json.tera", "sensor.json.tera");
    let mut extra = String::new();
    if lists {
        let revoked: Vec<Revoked> = (0..CRL_ENTRIES).map(|i| Revoked::serial(&serial(0x20, i))).collect();
        std::fs::write(dir.path().join("big.crl"), ca.crl_with(&CrlSpec { revoked, ..CrlSpec::new(&[]) }).der).unwrap();
        let denied: Vec<String> = (0..DENY_ENTRIES)
            .map(|i| format!("serial:{}", serial(0x30, i).iter().map(|b| format!("{b:02x}")).collect::<String>()))
            .collect();
        std::fs::write(dir.path().join("denied.txt"), denied.join("\n")).unwrap();
        extra = "crl = [\"big.crl\"]\ndeny_list = \"denied.txt\"\n".to_owned();
    }
    dir.write_config(&format!(
        "[[profiles]]\nname = \"sensors\"\nca = [\"*\"]\ncommon_name = 'sensor-[0-9a-f]{{12}}'\norganization = [\"Acme\"]\nthing_name = \"{{{{ subject.cn }}}}\"\npolicy = \"policies/sensor.json.tera\"\n{extra}"
    ));
    let config = Config::load(dir.config_path()).unwrap();
    let memory = MemoryRegistry::new();
    memory.register_ca(&ca.cert.pem, true).unwrap();
    let cas = jitp_bench::runtime(1).block_on(CaSet::load(&memory, &config)).unwrap();
    let settings = <GuardSettings as clap::Parser>::try_parse_from(["jitp-guard"]).unwrap();
    let guard = Guard::builder(Arc::new(config), cas, Arc::new(memory), &settings)
        .clock(Arc::new(|| NOW))
        .sink(Arc::new(|_: &str| {}))
        .build();
    (dir, guard)
}

fn benches(c: &mut Criterion) {
    let ca = Ca::new("jitp guard criterion CA", Alg::P256);
    let event = connect(&[&ca.issue(&Device::new("sensor-0000000000aa")).pem]);
    let parsed = jitp_guard::event::parse(&event).unwrap();
    let mut group = c.benchmark_group("guard");
    group.bench_function("parse_event", |b| b.iter(|| jitp_guard::event::parse(black_box(&event))));
    for (lists, label) in [(false, "no_lists"), (true, "crl_200k_deny_10k")] {
        let (_dir, guard) = guard_with(&ca, lists);
        assert!(guard.answer(&event, "bench").is_authenticated, "{label}");
        let snapshot = guard.snapshot();
        group.bench_function(format!("decide_{label}"), |b| {
            b.iter(|| jitp_guard::decide(&snapshot.config, &snapshot.cas, black_box(&parsed.device), NOW))
        });
        group.bench_function(format!("answer_{label}"), |b| b.iter(|| guard.answer(black_box(&event), "bench")));
    }
    group.finish();
}

criterion_group! {
    name = connect_guard;
    config = Criterion::default().sample_size(50);
    targets = benches
}
criterion_main!(connect_guard);

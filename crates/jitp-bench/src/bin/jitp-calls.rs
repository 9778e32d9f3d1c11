//! API calls per provisioned device, read from the audit records (`api_call_count`, `api_calls`): the first and
//! a replayed event, in per-thing and shared policy mode, against the in-memory registry (AWS semantics).
//!
//! The minimum is 6 calls per-thing (DescribeCertificate, CreateThing, CreatePolicy, AttachPolicy,
//! AttachThingPrincipal, UpdateCertificate), 5 shared (no CreatePolicy once the policy exists), 4 for a replay
//! (DescribeCertificate, then DescribeThing, ListThingPrincipals and ListAttachedPolicies at once, which prove the
//! certificate owns its thing, is attached to it and has its policy: ALREADY_PROVISIONED means complete). The first event of a process adds one DescribeCACertificate (cached afterwards).
//! The list is a count, not an order: the calls of one event run in 4 stages (the certificate, with the CA
//! beside it when not cached; the thing's claim beside CreatePolicy; both attachments; activation, last), see
//! `jitp_core::provision` and, for the time that takes, `jitp-latency`.
//! Exits 1 if any figure is above its minimum.
//!
//! `cargo run --release -p jitp-bench --bin jitp-calls`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark harness

use std::process::ExitCode;
use std::sync::Arc;

use jitp_bench::{config, sensor_cn};
use jitp_core::audit::{AuditRecord, Outcome};
use jitp_core::engine::Settings;
use jitp_core::provision::Provisioner;
use jitp_profile::profile::{Overrides, PolicyMode};
use jitp_registry::memory::MemoryRegistry;
use jitp_registry::registry::IotRegistry;
use jitp_testkit::{Alg, Ca, Device, NOW};

struct Row {
    mode: &'static str,
    case: &'static str,
    expected: u32,
    record: AuditRecord,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let ca = Ca::new("Acme Device CA", Alg::P256);
    let mut rows = Vec::new();
    for (mode, policy_mode, steady) in [("per-thing", PolicyMode::PerThing, 6), ("shared", PolicyMode::Shared, 5)] {
        let config = config(&Overrides { policy_mode: Some(policy_mode), ..Overrides::default() });
        let registry = Arc::new(MemoryRegistry::new());
        let ca_id = registry.register_ca(&ca.cert.pem, true).unwrap();
        let events: Vec<String> = (0..4)
            .map(|i| {
                let pem = ca.issue(&Device::new(&sensor_cn(0xabc0 + i))).pem;
                let id = registry.register_certificate(&pem, &ca_id).unwrap();
                jitp_testkit::event_for_ids(id.as_str(), ca_id.as_str())
            })
            .collect();
        let process =
            || Provisioner::new(config.clone(), registry.clone() as Arc<dyn IotRegistry>, Settings::default());
        let first_process = process();
        // In shared mode the first event of a process that finds no policy also creates it.
        let first = if policy_mode == PolicyMode::Shared { steady + 2 } else { steady + 1 };
        let mut run = async |p: &Provisioner, case, expected, event: &String| {
            let record = p.handle_bytes(event.as_bytes(), NOW).await;
            rows.push(Row { mode, case, expected, record });
        };
        run(&first_process, "first event of a process (+ DescribeCACertificate)", first, &events[0]).await;
        run(&first_process, "first provisioning, CA cached", steady, &events[1]).await;
        run(&first_process, "replay of a provisioned device", 4, &events[0]).await;
        // A new process (Lambda cold start) over the same account: the shared policy already exists.
        let second_process = process();
        let restart = if policy_mode == PolicyMode::Shared { steady + 3 } else { steady + 1 };
        run(&second_process, "first event of a new process, account not empty", restart, &events[2]).await;
        run(&second_process, "first provisioning, CA cached", steady, &events[3]).await;
        let violations = registry.violations();
        if !violations.is_empty() {
            eprintln!("invariant violations: {violations:?}");
            return ExitCode::FAILURE;
        }
    }

    println!("| policy mode | event | outcome | API calls | minimum | calls |");
    println!("|---|---|---|---:|---:|---|");
    let mut ok = true;
    for row in &rows {
        let calls: Vec<String> = row.record.api_calls.iter().map(|(op, n)| format!("{op} {n}")).collect();
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            row.mode,
            row.case,
            row.record.outcome.as_str(),
            row.record.api_call_count,
            row.expected,
            calls.join(", ")
        );
        let expected_outcome =
            if row.case.starts_with("replay") { Outcome::AlreadyProvisioned } else { Outcome::Provisioned };
        ok &= row.record.outcome == expected_outcome && row.record.api_call_count <= row.expected;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        eprintln!("some event made more calls than the minimum, or did not end as expected");
        ExitCode::FAILURE
    }
}

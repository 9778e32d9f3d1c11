//! Side by side on one moto server: per-event wall time of jitp (the workflow over `jitp_aws::AwsRegistry`)
//! against the boto3 JITR baseline (`benches/baseline/jitr_baseline.py`, a comparison point only), each
//! provisioning its own fresh devices with the same AWS IoT calls. The figure is the ratio of the medians.
//!
//! The two run in alternating rounds (jitp first, then the baseline first) so that neither always meets the
//! emptier or the fuller moto. Each side keeps one client for the whole run, as a warm Lambda would; each
//! baseline round is a new Python process (its first event pays for DescribeCACertificate, as jitp's first
//! event does).
//!
//! Needs moto (`scripts/setup-moto.sh`):
//! `cargo run --release -p jitp-bench --bin jitp-moto-compare -- --devices 200`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark harness

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use jitp_bench::{config, median, sensor_cn};
use jitp_core::audit::Outcome;
use jitp_core::engine::Settings;
use jitp_core::provision::Provisioner;
use jitp_profile::profile::Overrides;
use jitp_registry::registry::IotRegistry;
use jitp_testkit::moto::Moto;
use jitp_testkit::{Alg, Ca, Device, NOW, repo_root};

#[derive(Debug, Parser)]
#[command(about = "Per-event wall time of jitp and of a boto3 JITR baseline on the same moto server")]
struct Args {
    /// Devices per side (split over two rounds).
    #[arg(long, default_value_t = 200)]
    devices: usize,
    /// The Python that has boto3 and cryptography (moto's venv has both).
    #[arg(long)]
    python: Option<PathBuf>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    let python = args.python.clone().unwrap_or_else(|| repo_root().join(".venv/moto/bin/python"));
    let baseline = repo_root().join("benches/baseline/jitr_baseline.py");
    if !python.is_file() {
        eprintln!("{} not found: run scripts/setup-moto.sh (or pass --python)", python.display());
        return ExitCode::FAILURE;
    }
    let Some(moto) = Moto::start().await else {
        eprintln!("moto_server not found: run scripts/setup-moto.sh");
        return ExitCode::FAILURE;
    };
    moto.create_thing_type("sensor").await;
    let ca = Ca::new("jitp moto compare CA", Alg::P256);
    let ca_id = moto.register_ca(&ca, true).await;
    // 2 x devices pending certificates, as auto-registration leaves them; events carry moto's ids.
    let mut events = Vec::with_capacity(2 * args.devices);
    for i in 0..2 * args.devices as u64 {
        let pem = ca.issue(&Device::new(&sensor_cn(0x10_0000 + i))).pem;
        let id = moto.register_pending(&pem, &ca).await.id;
        events.push(jitp_testkit::event_for_ids(id.as_str(), ca_id.as_str()));
    }
    let (ours, theirs) = events.split_at(args.devices);
    let half = args.devices / 2;

    let provisioner = Provisioner::new(
        config(&Overrides::default()),
        moto.registry.clone() as Arc<dyn IotRegistry>,
        Settings::default(),
    );
    let mut jitp_ms = Vec::new();
    let mut base_ms = Vec::new();
    let mut jitp_calls = 0u64;
    let mut base_calls = 0u64;
    let mut failures = 0usize;
    let scratch = tempfile::tempdir().unwrap();
    for round in 0..2 {
        let (mine, yours) =
            if round == 0 { (&ours[..half], &theirs[..half]) } else { (&ours[half..], &theirs[half..]) };
        for step in 0..2 {
            if (round + step) % 2 == 0 {
                for event in mine {
                    let started = Instant::now();
                    let record = provisioner.handle_bytes(event.as_bytes(), NOW).await;
                    jitp_ms.push(started.elapsed().as_secs_f64() * 1000.0);
                    jitp_calls += u64::from(record.api_call_count);
                    if record.outcome != Outcome::Provisioned {
                        failures += 1;
                        eprintln!("jitp: {:?} {}", record.outcome, record.message);
                    }
                }
            } else {
                let file = scratch.path().join(format!("events-{round}.jsonl"));
                std::fs::write(&file, yours.join("\n")).unwrap();
                let out = Command::new(&python)
                    .arg(&baseline)
                    .args(["--endpoint", &moto.server.endpoint, "--events"])
                    .arg(&file)
                    .output()
                    .unwrap();
                if !out.status.success() {
                    eprintln!("baseline failed: {}", String::from_utf8_lossy(&out.stderr));
                    return ExitCode::FAILURE;
                }
                let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                base_ms.extend(report["durations_ms"].as_array().unwrap().iter().filter_map(serde_json::Value::as_f64));
                base_calls += report["calls"].as_u64().unwrap_or(0);
                failures += usize::try_from(report["errors"].as_u64().unwrap_or(0)).unwrap_or(0);
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (jm, bm) = (mean(&jitp_ms), mean(&base_ms));
    let jitp_med = median(&mut jitp_ms).unwrap_or(0.0);
    let base_med = median(&mut base_ms).unwrap_or(0.0);
    println!("moto at {}; {} devices per side, two alternating rounds", moto.server.endpoint, args.devices);
    println!(
        "jitp (Rust, AwsRegistry): median {jitp_med:.2} ms, mean {jm:.2} ms per event, {:.2} calls per event",
        jitp_calls as f64 / jitp_ms.len().max(1) as f64
    );
    println!(
        "boto3 JITR baseline:      median {base_med:.2} ms, mean {bm:.2} ms per event, {:.2} calls per event",
        base_calls as f64 / base_ms.len().max(1) as f64
    );
    println!("ratio jitp / baseline: median {:.2}, mean {:.2}", jitp_med / base_med, jm / bm);
    if failures > 0 {
        eprintln!("{failures} events did not provision");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

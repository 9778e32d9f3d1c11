#![cfg(test)]
//! The workflow paced under the quotas ([`jitp_registry::pacing`]) against the embedded registry enforcing them:
//! a burst gets through without bouncing off the quotas; a quota lower than jitp was told (another tool in the
//! account) costs a few throttles, not lost events; an event that cannot get a slot in time is handed back with
//! nothing activated, and its redelivery provisions it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jitp_core::audit::{AuditRecord, Outcome};
use jitp_core::engine::Settings;
use jitp_core::provision::Provisioner;
use jitp_core::rules::Rules;
use jitp_pki::ids::{CaCertificateId, CertificateId};
use jitp_registry::event::CertificateStatus;
use jitp_registry::memory::MemoryRegistry;
use jitp_registry::pacing::{Pacing, Quotas};
use jitp_registry::registry::{IotRegistry, Operation};
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::{Alg, Ca, Device, NOW};

fn rules() -> Arc<Rules> {
    Arc::new(Rules::load(jitp_testkit::repo_config_path()).unwrap())
}

fn ca() -> &'static Ca {
    static CA: std::sync::OnceLock<Ca> = std::sync::OnceLock::new();
    CA.get_or_init(|| Ca::new("Acme Device CA", Alg::P256))
}

/// `n` pending devices in `registry`: their ids and events.
fn fleet(registry: &MemoryRegistry, n: usize, base: u64) -> (CaCertificateId, Vec<(CertificateId, String)>) {
    let ca_id = registry.register_ca(&ca().cert.pem, true).unwrap();
    let devices = (0..n as u64)
        .map(|i| {
            let pem = ca().issue(&Device::new(&format!("sensor-{:012x}", base + i))).pem;
            let id = registry.register_certificate(&pem, &ca_id).unwrap();
            let event = jitp_testkit::event_for_ids(id.as_str(), ca_id.as_str());
            (id, event)
        })
        .collect();
    (ca_id, devices)
}

async fn burst(provisioner: &Arc<Provisioner>, events: &[String], concurrency: usize) -> Vec<AuditRecord> {
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for event in events {
        let (provisioner, gate, event) = (provisioner.clone(), gate.clone(), event.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            provisioner.handle_bytes(event.as_bytes(), NOW).await
        });
    }
    let mut records = Vec::new();
    while let Some(record) = tasks.join_next().await {
        records.push(record.unwrap());
    }
    records
}

fn paced(quotas: &Quotas, instances: u32) -> Settings {
    Settings {
        retry_base: Duration::from_millis(5),
        retry_max: Duration::from_millis(100),
        pacing: Some(Pacing { quotas: quotas.clone(), overrides: BTreeMap::new(), instances }),
        ..Settings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_burst_makes_the_minimum_calls_and_is_never_throttled() {
    // AWS's quotas x20 on both sides: UpdateCertificate and CreatePolicy at 200/s, 120 devices in ~0.6 s.
    let quotas = Quotas::aws_defaults().scaled(20.0);
    let registry = MemoryRegistry::new().with_quotas(&quotas);
    let (_, devices) = fleet(&registry, 120, 0x1000);
    let registry = Arc::new(registry);
    let provisioner = Arc::new(Provisioner::new(rules(), registry.clone() as Arc<dyn IotRegistry>, paced(&quotas, 1)));
    let events: Vec<String> = devices.iter().map(|(_, e)| e.clone()).collect();
    let records = burst(&provisioner, &events, 32).await;
    assert!(records.iter().all(|r| r.outcome == Outcome::Provisioned), "{:?}", outcomes(&records));
    let throttled: u64 = registry.throttle_counts().values().sum();
    assert_eq!(throttled, 0, "{:?}", registry.throttle_counts());
    let calls: u32 = records.iter().map(|r| r.api_call_count).sum();
    assert_eq!(calls, 6 * 120 + 1, "six calls a device, and one DescribeCACertificate");
    assert!(records.iter().all(|r| r.retries == 0));
    // 32 in flight against 200 slots a second: most events waited for a slot, and said so.
    let waited = records.iter().filter(|r| r.quota_wait_ms > 0).count();
    assert!(waited > 60, "{waited} of 120 events waited for their quota");
    for (id, _) in &devices {
        assert_eq!(registry.certificate_status(id), Some(CertificateStatus::Active));
    }
    assert!(registry.violations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_lower_than_configured_costs_a_few_throttles_not_events() {
    // jitp believes the account has AWS's quotas x20; another tool takes half, so the registry admits x10.
    let believed = Quotas::aws_defaults().scaled(20.0);
    let registry = MemoryRegistry::new().with_quotas(&Quotas::aws_defaults().scaled(10.0));
    registry.empty_buckets();
    let (_, devices) = fleet(&registry, 150, 0x2000);
    let registry = Arc::new(registry);
    let provisioner =
        Arc::new(Provisioner::new(rules(), registry.clone() as Arc<dyn IotRegistry>, paced(&believed, 1)));
    let events: Vec<String> = devices.iter().map(|(_, e)| e.clone()).collect();
    let records = burst(&provisioner, &events, 32).await;
    assert!(records.iter().all(|r| r.outcome == Outcome::Provisioned), "{:?}", outcomes(&records));
    let throttled: u64 = registry.throttle_counts().values().sum();
    let calls: u64 = registry.call_counts().values().sum();
    eprintln!("{throttled} of {calls} calls throttled: {:?}", registry.throttle_counts());
    // Unpaced, this burst is throttled on about half of its calls; halving on each throttle keeps it to a few.
    assert!(throttled * 10 < calls, "{throttled} of {calls} calls throttled");
    // The lanes that were throttled slowed down.
    let rate = provisioner.pacer().rate(Operation::UpdateCertificate).unwrap();
    assert!(rate <= 200.0, "{rate}");
    assert!(registry.violations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_share_the_quota() {
    let provisioner = Provisioner::new(
        rules(),
        Arc::new(MemoryRegistry::new()) as Arc<dyn IotRegistry>,
        paced(&Quotas::aws_defaults(), 8),
    );
    assert_eq!(provisioner.pacer().ceiling(Operation::UpdateCertificate), Some(1.25));
    assert_eq!(provisioner.pacer().ceiling(Operation::CreateThing), Some(15.0 / 8.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jitp_toml_quotas_size_the_lanes_and_the_deployment_s_win() {
    let dir = ConfigDir::shipped();
    let path = dir.edit_config(|toml| format!("{toml}\n[quotas]\nCreatePolicy = 40\nUpdateCertificate = 25.5\n"));
    let rules = Arc::new(Rules::load(&path).unwrap());
    let pacing = Pacing { overrides: BTreeMap::from([(Operation::CreatePolicy, 80.0)]), ..Pacing::default() };
    let settings = Settings { pacing: Some(pacing), ..Settings::default() };
    let provisioner = Provisioner::new(rules, Arc::new(MemoryRegistry::new()) as Arc<dyn IotRegistry>, settings);
    assert_eq!(provisioner.pacer().ceiling(Operation::CreatePolicy), Some(80.0));
    assert_eq!(provisioner.pacer().ceiling(Operation::UpdateCertificate), Some(25.5));
    assert_eq!(provisioner.pacer().ceiling(Operation::CreateThing), Some(15.0));
}

#[test]
fn a_bad_quota_in_jitp_toml_is_refused_with_its_key_and_limit() {
    for (table, says) in [
        ("CreatePolicy = 0", "quotas.CreatePolicy"),
        ("CreatePolicy = -5", "must be from 0.01 to 10000"),
        ("CreatePolicy = 1e9", "must be from 0.01 to 10000"),
        ("CreatePolicy = nan", "must be from 0.01 to 10000"),
        ("CreatePolicies = 10", "is not an AWS IoT operation jitp calls"),
        ("createpolicy = 10", "quotas.createpolicy"),
        ("CreatePolicy = \"fast\"", "jitp.toml"),
    ] {
        let dir = ConfigDir::shipped();
        let path = dir.edit_config(|toml| format!("{toml}\n[quotas]\n{table}\n"));
        let err = Rules::load(&path).unwrap_err().to_string();
        assert!(err.contains(says), "{table}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_slot_within_the_deadline_hands_the_event_back_with_nothing_activated() {
    // One UpdateCertificate every 2 s, a 1 s deadline. Of three events at once, the first activates at once, the
    // second takes the lane's next slot (2 s away: one interval, always taken), and the third, 4 s away behind a
    // queue, cannot activate in time.
    let quotas = Quotas::none().with(&BTreeMap::from([(Operation::UpdateCertificate, 0.5)]));
    let registry = MemoryRegistry::new();
    let (_, devices) = fleet(&registry, 3, 0x3000);
    let registry = Arc::new(registry);
    let settings = Settings { retry_deadline: Duration::from_secs(1), ..paced(&quotas, 1) };
    let provisioner = Arc::new(Provisioner::new(rules(), registry.clone() as Arc<dyn IotRegistry>, settings));
    let events: Vec<String> = devices.iter().map(|(_, e)| e.clone()).collect();
    let records = burst(&provisioner, &events, 3).await;
    let failed: Vec<&AuditRecord> = records.iter().filter(|r| r.outcome == Outcome::Error).collect();
    assert_eq!(failed.len(), 1, "{:?}", outcomes(&records));
    let failed = failed[0];
    assert!(failed.is_retryable());
    assert_eq!(failed.failed_operation, Some(Operation::UpdateCertificate));
    assert!(failed.message.contains("UpdateCertificate is paced at 0.50 calls/s"), "{}", failed.message);
    assert!(failed.message.contains("beyond the retry deadline of 1000 ms"), "{}", failed.message);
    let id: CertificateId = failed.certificate_id.as_deref().unwrap().parse().unwrap();
    assert_eq!(registry.certificate_status(&id), Some(CertificateStatus::PendingActivation));
    assert!(registry.violations().is_empty());
    // Redelivered when the slot it left is near (the second event took 2 s; the free slot is at 4 s), it provisions.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let event = &devices.iter().find(|(d, _)| *d == id).unwrap().1;
    let again = provisioner.handle_bytes(event.as_bytes(), NOW).await;
    assert_eq!(again.outcome, Outcome::Provisioned, "{}", again.message);
    assert_eq!(registry.certificate_status(&id), Some(CertificateStatus::Active));
}

fn outcomes(records: &[AuditRecord]) -> Vec<(Outcome, &str)> {
    records.iter().map(|r| (r.outcome, r.message.as_str())).collect()
}

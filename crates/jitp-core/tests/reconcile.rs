#![cfg(test)]
//! `jitp reconcile --plan` over the embedded registry: a fleet provisioned with template v1 through the real
//! workflow, then today's configuration changed (a narrowed topic, a deny-list entry), a retired certificate,
//! things jitp cannot account for; the plan shows exactly those changes, pages through the listings, and
//! writes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use jitp_core::audit::Outcome;
use jitp_core::event::CertificateStatus;
use jitp_core::ids::{CaCertificateId, CertificateId};
use jitp_core::memory::MemoryRegistry;
use jitp_core::provision::{Provisioner, Settings};
use jitp_core::reason::ReasonCode;
use jitp_core::reconcile::{Plan, Reconciler, Unaccounted};
use jitp_core::registry::{IotRegistry, Operation, ThingSpec};
use jitp_core::rules::Rules;
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::{Alg, Ca, DAY, Device, NOW};

const SENSORS: usize = 20;
const NARROWED_FROM: &str = r#""{{ arn }}:topic/things/{{ thing_name }}/events/*","#;
const NARROWED_TO: &str = r#""{{ arn }}:topic/things/{{ thing_name }}/events/alarm","#;

struct Fleet {
    dir: ConfigDir,
    ca: Ca,
    registry: Arc<MemoryRegistry>,
    sensors: Vec<(String, CertificateId)>,
}

async fn fleet() -> Fleet {
    let dir = ConfigDir::shipped();
    let registry = Arc::new(MemoryRegistry::new());
    let ca = Ca::new("Reconcile CA", Alg::P256);
    let ca_id: CaCertificateId = registry.register_ca(&ca.cert.pem, true).unwrap();
    let rules = Arc::new(Rules::load(dir.config_path()).unwrap());
    let provisioner = Provisioner::new(rules, registry.clone() as Arc<dyn IotRegistry>, Settings::default());
    let mut sensors = Vec::new();
    let names: Vec<String> =
        (0..SENSORS).map(|i| format!("sensor-{i:012x}")).chain(["gw-ab-0001".into(), "gw-cd-0002".into()]).collect();
    for name in names {
        let id = registry.register_certificate(&ca.issue(&Device::new(&name)).pem, &ca_id).unwrap();
        let record =
            provisioner.handle_bytes(jitp_testkit::event_for_ids(id.as_str(), ca_id.as_str()).as_bytes(), NOW).await;
        assert_eq!(record.outcome, Outcome::Provisioned, "{name}: {}", record.message);
        if name.starts_with("sensor-") {
            sensors.push((name, id));
        }
    }
    Fleet { dir, ca, registry, sensors }
}

async fn plan(fleet: &Fleet, page_size: u32) -> Plan {
    plan_at(fleet, page_size, NOW).await
}

async fn plan_at(fleet: &Fleet, page_size: u32, now: i64) -> Plan {
    let rules = Arc::new(Rules::load(fleet.dir.config_path()).unwrap());
    let reconciler = Reconciler::new(rules, fleet.registry.clone() as Arc<dyn IotRegistry>, Settings::default())
        .with_page_size(page_size);
    let before = fleet.registry.snapshot();
    let plan = reconciler.plan(now).await.unwrap();
    assert_eq!(fleet.registry.snapshot(), before, "the plan is read-only");
    plan
}

#[tokio::test]
async fn todays_configuration_unchanged_is_no_drift() {
    let fleet = fleet().await;
    let plan = plan(&fleet, 250).await;
    assert!(!plan.drift, "{plan:#?}");
    assert_eq!((plan.counts.devices, plan.counts.unchanged), (SENSORS as u64 + 2, SENSORS as u64 + 2));
    // 16 listings of one page; per device DescribeCertificate, ListThingPrincipals, GetPolicy; the CA once.
    let calls = &plan.calls;
    assert_eq!(calls.get(&Operation::ListThings), Some(&16));
    for op in [Operation::DescribeCertificate, Operation::ListThingPrincipals, Operation::GetPolicy] {
        assert_eq!(calls.get(&op), Some(&(SENSORS as u32 + 2)), "{op}");
    }
    assert_eq!(calls.get(&Operation::DescribeCACertificate), Some(&1));
    assert_eq!(calls.values().sum::<u32>(), 16 + 3 * (SENSORS as u32 + 2) + 1, "{calls:?}");
}

#[tokio::test]
async fn a_narrowed_topic_a_denied_certificate_a_retired_one_and_orphans_are_each_shown_once() {
    let fleet = fleet().await;
    // v2 of the sensor template narrows one topic.
    let template = fleet.dir.path().join("policies/sensor.json.tera");
    let v1 = std::fs::read_to_string(&template).unwrap();
    assert!(v1.contains(NARROWED_FROM));
    std::fs::write(&template, v1.replace(NARROWED_FROM, NARROWED_TO)).unwrap();
    // A deny-list entry for one sensor.
    let (denied_name, denied_id) = fleet.sensors[3].clone();
    std::fs::write(fleet.dir.path().join("denied.txt"), format!("sha256:{denied_id}\n")).unwrap();
    fleet.dir.edit_config(|toml| {
        toml.replacen(
            "policy = \"policies/sensor.json.tera\"",
            "policy = \"policies/sensor.json.tera\"\ndeny_list = \"denied.txt\"",
            1,
        )
    });
    // A retired certificate, a thing whose certificate does not exist, a thing whose attribute is no id.
    let (retired_name, retired_id) = fleet.sensors[5].clone();
    fleet.registry.update_certificate(&retired_id, CertificateStatus::Inactive).await.unwrap();
    for (name, owner) in [("orphan-1", "ab".repeat(32)), ("orphan-2", "0-not-an-id".to_owned())] {
        let attributes = BTreeMap::from([("jitp_certificate".to_owned(), owner)]);
        let spec = ThingSpec { name: name.parse().unwrap(), thing_type: None, attributes };
        fleet.registry.create_thing(&spec).await.unwrap();
    }
    // A thing jitp did not make is not listed at all.
    let spec = ThingSpec { name: "someone-elses".parse().unwrap(), thing_type: None, attributes: BTreeMap::new() };
    fleet.registry.create_thing(&spec).await.unwrap();

    // Pages of one thing: every listing with more than one thing pages.
    let plan = plan(&fleet, 1).await;
    assert!(plan.drift);
    let c = &plan.counts;
    assert_eq!(c.devices, SENSORS as u64 + 4, "{c:?}");
    assert_eq!((c.unchanged, c.thing_changes, c.errors), (2, 0, 0), "the gateways; {c:?}");
    assert_eq!(c.policy_changes, SENSORS as u64 - 2, "every sensor but the denied and the retired one");
    assert_eq!((c.would_reject, c.retired, c.unaccounted), (1, 1, 2));

    assert_eq!(plan.policy_changes.len(), 1, "one distinct change: {:#?}", plan.policy_changes);
    let change = &plan.policy_changes[0];
    assert_eq!(change.devices, SENSORS as u64 - 2);
    assert_eq!(change.examples, ["sensor-000000000000", "sensor-000000000001", "sensor-000000000002"]);
    assert!(!change.change.missing);
    let (added, removed) = (&change.change.added, &change.change.removed);
    assert_eq!((added.len(), removed.len()), (1, 1), "{added:?} {removed:?}");
    assert_eq!(added[0]["Sid"], "PublishOwnTopics");
    let resources =
        |s: &serde_json::Value| s["Resource"].as_array().unwrap().iter().map(|r| r.to_string()).collect::<Vec<_>>();
    let (new, old) = (resources(&added[0]), resources(&removed[0]));
    assert!(new.iter().any(|r| r.ends_with(":topic/things/{{ thing_name }}/events/alarm\"")), "{new:?}");
    assert!(old.iter().any(|r| r.ends_with(":topic/things/{{ thing_name }}/events/*\"")), "{old:?}");
    assert_eq!(new.len(), old.len());

    assert_eq!(plan.would_reject.len(), 1);
    assert_eq!(plan.would_reject[0].change.reason, ReasonCode::CertDenied);
    assert_eq!(plan.would_reject[0].examples, [denied_name]);
    assert_eq!(plan.retired.len(), 1);
    assert_eq!(plan.retired[0].change.status, CertificateStatus::Inactive);
    assert_eq!(plan.retired[0].examples, [retired_name]);
    let unaccounted: Vec<(Unaccounted, Vec<String>)> =
        plan.unaccounted.iter().map(|g| (g.change.why, g.examples.clone())).collect();
    assert_eq!(
        unaccounted,
        [
            (Unaccounted::BadCertificateId, vec!["orphan-2".to_owned()]),
            (Unaccounted::CertificateMissing, vec!["orphan-1".to_owned()])
        ]
    );
    assert!(plan.calls.get(&Operation::ListThings).copied().unwrap_or(0) > 16 + 2, "pages of one: {:?}", plan.calls);
}

#[tokio::test]
async fn paging_at_aws_page_size_lists_every_thing_once() {
    // More things than one page of 250 in one listing: all share the first hex digit of their attribute.
    let registry = Arc::new(MemoryRegistry::new());
    for i in 0..300 {
        let owner = format!("0{}", "f".repeat(63)); // the same missing certificate: unaccounted, cheap
        let attributes = BTreeMap::from([("jitp_certificate".to_owned(), owner)]);
        let spec = ThingSpec { name: format!("t-{i:04}").parse().unwrap(), thing_type: None, attributes };
        registry.create_thing(&spec).await.unwrap();
    }
    let rules = Arc::new(Rules::load(jitp_testkit::repo_config_path()).unwrap());
    let plan =
        Reconciler::new(rules, registry.clone() as Arc<dyn IotRegistry>, Settings::default()).plan(NOW).await.unwrap();
    assert_eq!((plan.counts.devices, plan.counts.unaccounted), (300, 300));
    assert_eq!(plan.calls.get(&Operation::ListThings), Some(&17), "two pages for 0, one for each other digit");
    assert_eq!(plan.unaccounted[0].examples, ["t-0000", "t-0001", "t-0002"]);
}

#[tokio::test]
async fn a_crl_published_since_and_the_clock_moving_on_are_rejections_by_reason() {
    let fleet = fleet().await;
    let (revoked_name, _) = &fleet.sensors[7];
    let serial = Device::new(revoked_name).serial; // what the fleet's certificate was issued with
    let crl = fleet.ca.crl(&[&serial], NOW - DAY, NOW + 30 * DAY);
    std::fs::write(fleet.dir.path().join("revoked.crl"), &crl.pem).unwrap();
    fleet.dir.edit_config(|toml| {
        toml.replacen(
            "policy = \"policies/sensor.json.tera\"",
            "policy = \"policies/sensor.json.tera\"\ncrl = [\"revoked.crl\"]",
            1,
        )
    });
    let plan = plan(&fleet, 250).await;
    assert_eq!(plan.counts.would_reject, 1, "{:#?}", plan.would_reject);
    assert_eq!(plan.would_reject[0].change.reason, ReasonCode::CertRevoked);
    assert_eq!(plan.would_reject[0].examples, [revoked_name.as_str()]);
    assert_eq!(plan.counts.unchanged, SENSORS as u64 + 1);

    // A year and a day on, every certificate has expired (the CRL too: CERT_EXPIRED is checked first).
    let later = plan_at(&fleet, 250, NOW + 366 * DAY).await;
    assert_eq!(later.counts.would_reject, SENSORS as u64 + 2);
    assert_eq!(later.would_reject.len(), 1, "{:#?}", later.would_reject);
    assert_eq!(later.would_reject[0].change.reason, ReasonCode::CertExpired);
}

#[tokio::test]
async fn a_ca_deactivated_since_is_ca_not_active_for_every_device_it_signed() {
    let fleet = fleet().await;
    let ca_id = fleet.registry.register_ca(&fleet.ca.cert.pem, true).unwrap(); // idempotent: its id
    fleet.registry.set_ca_status(&ca_id, jitp_core::registry::CaStatus::Inactive);
    let plan = plan(&fleet, 250).await;
    assert_eq!(plan.counts.would_reject, SENSORS as u64 + 2);
    assert_eq!(plan.would_reject.len(), 1);
    assert_eq!(plan.would_reject[0].change.reason, ReasonCode::CaNotActive);
    assert_eq!(plan.calls.get(&Operation::DescribeCACertificate), Some(&1), "once per CA, not per device");
    assert_eq!(plan.calls.get(&Operation::GetPolicy), None, "nothing decided, no policy read");
}

/// Paced at a hundredth of AWS's quotas (ListThingPrincipals at one call in 10 s), the plan looks at one device
/// at a time so that no call waits past the retry deadline for its slot: complete, no errors.
#[tokio::test(start_paused = true)]
async fn a_small_share_of_the_quotas_slows_the_plan_and_fails_no_device() {
    let fleet = fleet().await;
    let rules = Arc::new(Rules::load(fleet.dir.config_path()).unwrap());
    let pacing = jitp_core::pacing::Pacing { instances: 100, ..jitp_core::pacing::Pacing::default() };
    let settings = Settings { pacing: Some(pacing), ..Settings::default() };
    let started = tokio::time::Instant::now();
    let plan =
        Reconciler::new(rules, fleet.registry.clone() as Arc<dyn IotRegistry>, settings).plan(NOW).await.unwrap();
    assert_eq!((plan.counts.errors, plan.counts.unchanged), (0, SENSORS as u64 + 2), "{:?}", plan.errors);
    // 22 ListThingPrincipals at 0.1 a second: at least 21 intervals of 10 s.
    assert!(started.elapsed() >= std::time::Duration::from_secs(210), "{:?}", started.elapsed());
}

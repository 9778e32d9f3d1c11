#![cfg(test)]
//! The workflow over the embedded registry: first provisioning, replays, rejections, faults at every step,
//! concurrency, duplicates and policy version pruning.

use std::sync::Arc;

use jitp_core::audit::{AuditRecord, Outcome};
use jitp_core::engine::Settings;
use jitp_core::provision::Provisioner;
use jitp_core::rules::Rules;
use jitp_pki::ids::{CaCertificateId, CertificateId};
use jitp_pki::reason::ReasonCode;
use jitp_profile::profile::{OnReject, Overrides, PolicyMode};
use jitp_registry::event::CertificateStatus;
use jitp_registry::memory::{Fault, FaultKind, MemoryRegistry};
use jitp_registry::registry::{IotRegistry, Operation};
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::{Alg, Ca, DAY, Device, NOW};

const CN: &str = "sensor-0123456789ab";

fn config(overrides: Overrides) -> Arc<Rules> {
    Arc::new(Rules::load_with(jitp_testkit::repo_config_path(), &overrides).unwrap())
}

fn settings() -> Settings {
    Settings { retry_base: std::time::Duration::from_millis(1), ..Settings::default() }
}

/// One CA and one device certificate for the whole file, so that final states compare equal across worlds.
fn shared_ca() -> &'static Ca {
    static CA: std::sync::OnceLock<Ca> = std::sync::OnceLock::new();
    CA.get_or_init(|| Ca::new("Acme Device CA", Alg::P256))
}

struct World {
    registry: Arc<MemoryRegistry>,
    provisioner: Provisioner,
    ca: &'static Ca,
    ca_id: CaCertificateId,
}

impl World {
    fn new(registry: MemoryRegistry, overrides: Overrides) -> Self {
        let registry = Arc::new(registry);
        let ca = shared_ca();
        let ca_id = registry.register_ca(&ca.cert.pem, true).unwrap();
        let provisioner = Provisioner::new(config(overrides), registry.clone() as Arc<dyn IotRegistry>, settings());
        Self { registry, provisioner, ca, ca_id }
    }

    fn plain() -> Self {
        Self::new(MemoryRegistry::new(), Overrides::default())
    }

    fn register(&self, device: &Device) -> (CertificateId, String) {
        self.register_pem(&self.ca.issue(device).pem)
    }

    fn register_pem(&self, pem: &str) -> (CertificateId, String) {
        let id = self.registry.register_certificate(pem, &self.ca_id).unwrap();
        let event = jitp_testkit::event_for_ids(id.as_str(), self.ca_id.as_str());
        (id, event)
    }

    async fn run(&self, event: &str) -> AuditRecord {
        self.provisioner.handle_bytes(event.as_bytes(), NOW).await
    }
}

#[tokio::test]
async fn first_event_provisions_with_six_calls_and_activates_last() {
    let world = World::plain();
    let (id, event) = world.register(&Device::new(CN));
    let record = world.run(&event).await;
    assert_eq!(record.outcome, Outcome::Provisioned, "{}", record.message);
    assert_eq!(record.api_call_count, 7, "6 + the first DescribeCACertificate: {:?}", record.api_calls);
    assert_eq!(record.api_calls.get(&jitp_registry::registry::Operation::DescribeCACertificate), Some(&1));
    assert_eq!(world.registry.certificate_status(&id), Some(CertificateStatus::Active));
    assert_eq!(world.registry.attached_things(&id).len(), 1);
    assert_eq!(
        world.registry.attached_policies(&id).iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        ["jitp-sensor-0123456789ab"]
    );
    assert!(world.registry.violations().is_empty(), "{:?}", world.registry.violations());

    // The CA is cached: the next device costs exactly the minimum.
    let (_, second) = world.register(&Device::new("sensor-00000000000b"));
    let record = world.run(&second).await;
    assert_eq!(record.outcome, Outcome::Provisioned);
    assert_eq!(record.api_call_count, 6, "{:?}", record.api_calls);

    // A replay reads the certificate, proves it complete (owner, attachment, policy: three reads at once), stops.
    let replay = world.run(&event).await;
    assert_eq!(replay.outcome, Outcome::AlreadyProvisioned, "{}", replay.message);
    assert_eq!(replay.api_call_count, 4, "{:?}", replay.api_calls);
    assert_eq!(
        replay.api_calls.keys().map(|o| o.as_str()).collect::<Vec<_>>(),
        ["DescribeCertificate", "DescribeThing", "ListThingPrincipals", "ListAttachedPolicies"]
    );
}

#[tokio::test]
async fn shared_policy_mode_needs_five_calls() {
    let world =
        World::new(MemoryRegistry::new(), Overrides { policy_mode: Some(PolicyMode::Shared), ..Overrides::default() });
    let (_, first) = world.register(&Device::new(CN));
    assert_eq!(world.run(&first).await.outcome, Outcome::Provisioned);
    let (id, second) = world.register(&Device::new("sensor-00000000000b"));
    let record = world.run(&second).await;
    assert_eq!(record.outcome, Outcome::Provisioned, "{}", record.message);
    assert_eq!(record.api_call_count, 5, "{:?}", record.api_calls);
    assert_eq!(record.policy_name.as_deref(), Some("jitp-sensor"));
    assert_eq!(world.registry.attached_policies(&id).len(), 1);
    assert_eq!(world.registry.policies().len(), 1, "one policy for every device");
}

#[tokio::test]
async fn rejection_revokes_and_creates_nothing() {
    let world = World::plain();
    let mut expired = Device::new(CN);
    expired.not_after = NOW - 10 * DAY;
    expired.not_before = NOW - 20 * DAY;
    let (id, event) = world.register(&expired);
    let record = world.run(&event).await;
    assert_eq!(record.outcome, Outcome::Rejected);
    assert_eq!(record.reason, Some(ReasonCode::CertExpired));
    assert_eq!(record.certificate_action.map(|a| a.as_str()), Some("REVOKED"));
    assert_eq!(world.registry.certificate_status(&id), Some(CertificateStatus::Revoked));
    assert!(world.registry.thing_names().is_empty());
    assert!(world.registry.policies().is_empty());
    // A replay sees a revoked certificate and leaves it alone.
    let replay = world.run(&event).await;
    assert_eq!(replay.reason, Some(ReasonCode::CertNotPending));
    assert_eq!(replay.api_call_count, 1);
}

#[tokio::test]
async fn on_reject_deactivate_and_leave() {
    for (on_reject, status) in
        [(OnReject::Deactivate, CertificateStatus::Inactive), (OnReject::Leave, CertificateStatus::PendingActivation)]
    {
        let world = World::new(MemoryRegistry::new(), Overrides { on_reject: Some(on_reject), ..Overrides::default() });
        let mut expired = Device::new(CN);
        expired.not_before = NOW - 20 * DAY;
        expired.not_after = NOW - 10 * DAY;
        let (id, event) = world.register(&expired);
        let record = world.run(&event).await;
        assert_eq!(record.reason, Some(ReasonCode::CertExpired));
        assert_eq!(world.registry.certificate_status(&id), Some(status));
    }
}

#[tokio::test]
async fn malformed_and_forged_events_change_nothing() {
    let world = World::plain();
    for bad in ["", "{}", "not json", "{\"certificateId\": 5}"] {
        let record = world.run(bad).await;
        assert_eq!(record.outcome, Outcome::Rejected);
        assert_eq!(record.reason, Some(ReasonCode::MalformedEvent));
    }
    let (id, _) = world.register(&Device::new(CN));
    let forged = jitp_testkit::event_for_ids(id.as_str(), &"ab".repeat(32));
    let record = world.run(&forged).await;
    assert_eq!(record.reason, Some(ReasonCode::MalformedEvent), "{}", record.message);
    assert_eq!(world.registry.certificate_status(&id), Some(CertificateStatus::PendingActivation));
    let unknown = jitp_testkit::event_for_ids(&"cd".repeat(32), world.ca_id.as_str());
    assert_eq!(world.run(&unknown).await.reason, Some(ReasonCode::CertNotFound));
}

#[tokio::test]
async fn transient_faults_at_every_step_converge_after_a_replay() {
    // The reference: no faults.
    let device_pem = shared_ca().issue(&Device::new(CN)).pem;
    let reference = World::plain();
    let (_, event) = reference.register_pem(&device_pem);
    assert_eq!(reference.run(&event).await.outcome, Outcome::Provisioned);
    let expected = reference.registry.snapshot();

    let steps = [
        Operation::DescribeCertificate,
        Operation::DescribeCACertificate,
        Operation::CreateThing,
        Operation::CreatePolicy,
        Operation::AttachPolicy,
        Operation::AttachThingPrincipal,
        Operation::UpdateCertificate,
    ];
    for op in steps {
        for kind in [FaultKind::UnavailableBefore, FaultKind::UnavailableAfter, FaultKind::ThrottleBefore] {
            // Three faults in a row; the first delivery gives up at once (no retry budget), so the event fails
            // and the platform redelivers it.
            let registry = MemoryRegistry::new().with_faults((1..=3).map(|nth| Fault { op, nth, kind }));
            let mut world = World::new(registry, Overrides::default());
            world.provisioner = Provisioner::new(
                config(Overrides::default()),
                world.registry.clone() as Arc<dyn IotRegistry>,
                Settings { retry_deadline: std::time::Duration::ZERO, ..settings() },
            );
            let (id, event) = world.register_pem(&device_pem);
            let first = world.run(&event).await;
            assert_eq!(first.outcome, Outcome::Error, "{op} {kind:?}: {}", first.message);
            assert_ne!(world.registry.certificate_status(&id), Some(CertificateStatus::Revoked));
            let redelivery = Provisioner::new(
                config(Overrides::default()),
                world.registry.clone() as Arc<dyn IotRegistry>,
                settings(),
            );
            let record = redelivery.handle_bytes(event.as_bytes(), NOW).await;
            assert!(
                matches!(record.outcome, Outcome::Provisioned | Outcome::AlreadyProvisioned),
                "{op} {kind:?}: {}",
                record.message
            );
            assert_eq!(world.registry.snapshot(), expected, "{op} {kind:?}: final state differs");
            assert!(world.registry.violations().is_empty(), "{op} {kind:?}: {:?}", world.registry.violations());
        }
    }
}

#[tokio::test]
async fn a_single_transient_fault_is_retried_inside_the_event() {
    let registry = MemoryRegistry::new().with_faults([Fault {
        op: Operation::AttachPolicy,
        nth: 1,
        kind: FaultKind::ThrottleBefore,
    }]);
    let world = World::new(registry, Overrides::default());
    let (_, event) = world.register(&Device::new(CN));
    let record = world.run(&event).await;
    assert_eq!(record.outcome, Outcome::Provisioned);
    assert_eq!(record.retries, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_copies_give_one_thing_one_policy_one_activation() {
    let world = Arc::new(World::plain());
    let (id, event) = world.register(&Device::new(CN));
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let world = world.clone();
            let event = event.clone();
            tokio::spawn(async move { world.run(&event).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap().outcome);
    }
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Provisioned | Outcome::AlreadyProvisioned)), "{outcomes:?}");
    assert_eq!(world.registry.thing_names().len(), 1);
    assert_eq!(world.registry.policies().len(), 1);
    assert_eq!(world.registry.policies().values().copied().collect::<Vec<_>>(), [1], "no extra versions");
    assert_eq!(world.registry.certificate_status(&id), Some(CertificateStatus::Active));
    let activations = world.registry.call_counts().get(&Operation::UpdateCertificate).copied().unwrap_or(0);
    assert!(activations >= 1);
    assert!(world.registry.violations().is_empty());
}

#[tokio::test]
async fn second_certificate_with_the_same_cn_is_a_duplicate() {
    let world = World::plain();
    let (first_id, first) = world.register(&Device::new(CN));
    assert_eq!(world.run(&first).await.outcome, Outcome::Provisioned);
    let mut second_device = Device::new(CN);
    second_device.serial = vec![0x42; 8];
    let (second_id, second) = world.register(&second_device);
    let record = world.run(&second).await;
    assert_eq!(record.reason, Some(ReasonCode::DuplicateThing), "{}", record.message);
    // on_duplicate is the profile's own rule ("rotate" could accept it): held, never revoked.
    assert_eq!(record.outcome, Outcome::Held);
    assert_eq!(world.registry.certificate_status(&second_id), Some(CertificateStatus::PendingActivation));
    assert_eq!(world.registry.certificate_status(&first_id), Some(CertificateStatus::Active));
}

#[tokio::test]
async fn rotate_moves_the_thing_to_the_newer_certificate_and_retires_the_old() {
    let dir = ConfigDir::shipped();
    let path = dir.edit_config(|toml| {
        let toml = toml.replace("on_duplicate = \"reject\"", "on_duplicate = \"rotate\"");
        toml.split("[[profiles]]\nname = \"gateways\"").next().unwrap().to_owned()
    });
    let config = Arc::new(Rules::load(path).unwrap());
    let mut world = World::plain();
    world.provisioner = Provisioner::new(config, world.registry.clone() as Arc<dyn IotRegistry>, settings());

    let (first_id, first) = world.register(&Device::new(CN));
    assert_eq!(world.run(&first).await.outcome, Outcome::Provisioned);
    let mut second_device = Device::new(CN);
    second_device.serial = vec![0x42; 8];
    second_device.not_before += 3600; // issued later: newer
    let (second_id, second) = world.register(&second_device);
    let record = world.run(&second).await;
    assert_eq!(record.outcome, Outcome::Provisioned, "{}", record.message);
    assert_eq!(record.replaced_certificates, [first_id.to_string()]);
    assert_eq!(world.registry.certificate_status(&first_id), Some(CertificateStatus::Inactive), "retired, reversibly");
    assert_eq!(world.registry.attached_things(&first_id).len(), 1, "left attached, for a rollback");
    assert_eq!(world.registry.certificate_status(&second_id), Some(CertificateStatus::Active));
    assert_eq!(world.registry.attached_things(&second_id).iter().map(|t| t.to_string()).collect::<Vec<_>>(), [CN]);
    assert_eq!(world.registry.attached_policies(&second_id).len(), 1);
    assert!(world.registry.violations().is_empty(), "{:?}", world.registry.violations());

    // The older certificate cannot take its thing back.
    let (third_id, third) = world.register(&Device { serial: vec![0x43; 8], ..Device::new(CN) });
    let record = world.run(&third).await;
    assert_eq!(record.reason, Some(ReasonCode::DuplicateThing), "{}", record.message);
    assert_ne!(world.registry.certificate_status(&third_id), Some(CertificateStatus::Active));
}

#[tokio::test]
async fn policy_versions_are_pruned_at_five() {
    use jitp_pki::ids::PolicyName;
    let world = World::plain();
    let name: PolicyName = "jitp-sensor-0123456789ab".parse().unwrap();
    world.registry.create_policy(&name, "{\"Version\":\"2012-10-17\",\"Statement\":[]}").await.unwrap();
    for i in 0..4 {
        world
            .registry
            .create_policy_version(&name, &format!("{{\"Version\":\"2012-10-17\",\"Sid\":{i}}}"))
            .await
            .unwrap();
    }
    assert_eq!(world.registry.policies().get(&name), Some(&5));
    let (_, event) = world.register(&Device::new(CN));
    let record = world.run(&event).await;
    assert_eq!(record.outcome, Outcome::Provisioned, "{}", record.message);
    assert_eq!(record.policy_version.as_deref(), Some("6"));
    assert_eq!(record.api_calls.get(&jitp_registry::registry::Operation::DeletePolicyVersion), Some(&1));
    let versions = world.registry.list_policy_versions(&name).await.unwrap();
    assert_eq!(versions.len(), 5);
    assert!(!versions.iter().any(|v| v.version_id == "1"), "the oldest version was pruned");
}

#[tokio::test]
async fn persistence_file_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    let world = World::new(MemoryRegistry::open(&path).unwrap(), Overrides::default());
    let (id, event) = world.register(&Device::new(CN));
    world.registry.save().unwrap();
    let reopened = Arc::new(MemoryRegistry::open(&path).unwrap());
    let provisioner =
        Provisioner::new(config(Overrides::default()), reopened.clone() as Arc<dyn IotRegistry>, settings());
    assert_eq!(provisioner.handle_bytes(event.as_bytes(), NOW).await.outcome, Outcome::Provisioned);
    reopened.save().unwrap();
    let again = MemoryRegistry::open(&path).unwrap();
    assert_eq!(again.certificate_status(&id), Some(CertificateStatus::Active));
    assert!(MemoryRegistry::open("/nonexistent-dir/x.json").is_ok(), "a missing file starts empty");
}

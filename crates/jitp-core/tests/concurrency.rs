#![cfg(test)]
//! The workflow's concurrent stages: which calls run at once (read from the memory registry's call log, never
//! timed), a fault in one branch while the other succeeded (then a replay converges to the unfaulted state),
//! the order of reason codes when the CA is fetched beside the certificate, and one identity per device when
//! the losers' policy creates race the owner's.

use std::sync::Arc;
use std::time::Duration;

use jitp_core::audit::{AuditRecord, CaSource, Outcome};
use jitp_core::engine::Settings;
use jitp_core::provision::{CERTIFICATE_ATTRIBUTE, Provisioner};
use jitp_core::rules::Rules;
use jitp_pki::ids::{CaCertificateId, CertificateId};
use jitp_pki::reason::ReasonCode;
use jitp_profile::profile::Overrides;
use jitp_registry::event::CertificateStatus;
use jitp_registry::memory::{CallSpan, Fault, FaultKind, MemoryRegistry};
use jitp_registry::registry::{CaStatus, IotRegistry, Operation};
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::{Alg, Ca, DAY, Device, NOW};

const CN: &str = "sensor-0123456789ab";
const GROUPS: [&str; 2] = ["fleet", "sensors-eu"];

fn ca() -> &'static Ca {
    static CA: std::sync::OnceLock<Ca> = std::sync::OnceLock::new();
    CA.get_or_init(|| Ca::new("Acme Device CA", Alg::P256))
}

/// One device certificate for the whole file, so that final states compare equal across registries.
fn device_pem() -> &'static str {
    static PEM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PEM.get_or_init(|| ca().issue(&Device::new(CN)).pem)
}

fn settings() -> Settings {
    Settings { retry_base: Duration::from_millis(1), ..Settings::default() }
}

/// No retry budget: the first transient failure ends the event (ERROR), for the platform to redeliver.
fn impatient() -> Settings {
    Settings { retry_deadline: Duration::ZERO, ..settings() }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    PerThing,
    Shared,
}

/// The shipped configuration with two thing groups on the sensors profile (so that stage 3 has four calls), in
/// `mode`.
fn config(mode: Mode) -> (ConfigDir, Arc<Rules>) {
    let dir = ConfigDir::shipped();
    let path = dir.edit_config(|toml| {
        let toml = toml.replacen(
            "thing_type = \"sensor\"",
            &format!("thing_type = \"sensor\"\nthing_groups = [\"{}\", \"{}\"]", GROUPS[0], GROUPS[1]),
            1,
        );
        match mode {
            Mode::PerThing => toml,
            Mode::Shared => toml.replace("policy_mode = \"per-thing\"", "policy_mode = \"shared\""),
        }
    });
    let rules = Arc::new(Rules::load_with(path, &Overrides::default()).unwrap());
    (dir, rules)
}

struct World {
    registry: Arc<MemoryRegistry>,
    rules: Arc<Rules>,
    ca_id: CaCertificateId,
    _dir: ConfigDir,
}

impl World {
    fn new(registry: MemoryRegistry, mode: Mode) -> Self {
        let registry = Arc::new(registry);
        let ca_id = registry.register_ca(&ca().cert.pem, true).unwrap();
        let (dir, rules) = config(mode);
        Self { registry, rules, ca_id, _dir: dir }
    }

    /// A new process over this registry (cold caches).
    fn process(&self, settings: Settings) -> Provisioner {
        Provisioner::new(self.rules.clone(), self.registry.clone() as Arc<dyn IotRegistry>, settings)
    }

    fn register(&self, pem: &str) -> (CertificateId, String) {
        let id = self.registry.register_certificate(pem, &self.ca_id).unwrap();
        (id.clone(), jitp_testkit::event_for_ids(id.as_str(), self.ca_id.as_str()))
    }
}

async fn run(provisioner: &Provisioner, event: &str) -> AuditRecord {
    provisioner.handle_bytes(event.as_bytes(), NOW).await
}

/// The branches that run beside `op` in the same stage (the CA only when it is not cached).
fn siblings(op: Operation) -> &'static [Operation] {
    use Operation as O;
    match op {
        O::DescribeCertificate => &[O::DescribeCACertificate],
        O::DescribeCACertificate => &[O::DescribeCertificate],
        O::CreateThing => &[O::CreatePolicy],
        O::CreatePolicy => &[O::CreateThing],
        O::AttachPolicy => &[O::AttachThingPrincipal, O::AddThingToThingGroup],
        O::AttachThingPrincipal => &[O::AttachPolicy, O::AddThingToThingGroup],
        O::AddThingToThingGroup => &[O::AttachPolicy, O::AttachThingPrincipal],
        _ => &[],
    }
}

/// What the registry shows of a sibling branch having succeeded while `op` failed.
fn sibling_effect(world: &World, id: &CertificateId, op: Operation) -> bool {
    let snapshot = world.registry.snapshot();
    let groups = snapshot["things"][CN]["groups"].as_array().map_or(0, Vec::len);
    let (things, policies) = (world.registry.attached_things(id).len(), world.registry.attached_policies(id).len());
    match op {
        Operation::CreateThing => world.registry.policies().len() == 1,
        Operation::CreatePolicy => world.registry.thing_names().len() == 1,
        Operation::AttachPolicy => things == 1 && groups == GROUPS.len(),
        Operation::AttachThingPrincipal => policies == 1 && groups == GROUPS.len(),
        Operation::AddThingToThingGroup => things == 1 && policies == 1,
        // Reads: the sibling's call is in the record.
        _ => true,
    }
}

/// For each pair of concurrent branches: one fails (throttled, 5xx before, or 5xx after the write took effect)
/// while the other succeeds. Without a retry budget the event ends ERROR with the certificate not ACTIVE and
/// the sibling's write made; a redelivery (a new process) converges to exactly the state of an unfaulted run.
/// With a retry budget a single fault is retried inside the event, to the same state.
#[tokio::test]
async fn one_branch_fails_while_the_other_succeeds_and_a_replay_converges() {
    let ops = [
        Operation::DescribeCertificate,
        Operation::DescribeCACertificate,
        Operation::CreateThing,
        Operation::CreatePolicy,
        Operation::AttachPolicy,
        Operation::AttachThingPrincipal,
        Operation::AddThingToThingGroup,
    ];
    let kinds = [FaultKind::ThrottleBefore, FaultKind::UnavailableBefore, FaultKind::UnavailableAfter];
    for mode in [Mode::PerThing, Mode::Shared] {
        let reference = World::new(MemoryRegistry::new(), mode);
        let (_, event) = reference.register(device_pem());
        assert_eq!(run(&reference.process(settings()), &event).await.outcome, Outcome::Provisioned);
        let expected = reference.registry.snapshot();
        for op in ops {
            for kind in kinds {
                let case = format!("{mode:?} {op} {kind:?}");
                let faults = (1..=3).map(|nth| Fault { op, nth, kind });
                let world = World::new(MemoryRegistry::new().with_faults(faults), mode);
                let (id, event) = world.register(device_pem());
                let first = run(&world.process(impatient()), &event).await;
                assert_eq!(first.outcome, Outcome::Error, "{case}: {}", first.message);
                assert_eq!(first.failed_operation, Some(op), "{case}: {}", first.message);
                for sibling in siblings(op) {
                    assert!(
                        first.api_calls.contains_key(sibling),
                        "{case}: {sibling} did not run: {:?}",
                        first.api_calls
                    );
                }
                assert!(sibling_effect(&world, &id, op), "{case}: the sibling's write is missing");
                assert_eq!(
                    world.registry.certificate_status(&id),
                    Some(CertificateStatus::PendingActivation),
                    "{case}"
                );
                assert!(!first.api_calls.contains_key(&Operation::UpdateCertificate), "{case}: {:?}", first.api_calls);

                let replay = run(&world.process(settings()), &event).await;
                assert_eq!(replay.outcome, Outcome::Provisioned, "{case}: {}", replay.message);
                assert_eq!(world.registry.snapshot(), expected, "{case}: the replay's final state differs");
                assert!(world.registry.violations().is_empty(), "{case}: {:?}", world.registry.violations());

                // One fault, a retry budget: retried inside the event, same final state.
                let once = World::new(MemoryRegistry::new().with_faults([Fault { op, nth: 1, kind }]), mode);
                let (_, event) = once.register(device_pem());
                let record = run(&once.process(settings()), &event).await;
                assert_eq!(record.outcome, Outcome::Provisioned, "{case} retried: {}", record.message);
                assert_eq!(record.retries, 1, "{case} retried");
                assert_eq!(once.registry.snapshot(), expected, "{case} retried: the final state differs");
                assert!(once.registry.violations().is_empty(), "{case} retried: {:?}", once.registry.violations());
            }
        }
    }
}

/// The calls an event made, in stages: a call joins the current stage if it started before every call of that
/// stage ended (it ran at once with all of them); otherwise it must start after every one of them ended, and
/// begins the next stage. Each stage's operations, sorted.
fn stages(spans: &[CallSpan]) -> Vec<Vec<Operation>> {
    let mut spans = spans.to_vec();
    spans.sort_by_key(|s| s.started);
    let mut stages: Vec<Vec<CallSpan>> = Vec::new();
    for span in spans {
        match stages.last_mut() {
            // Overlaps the current stage: it runs at once with it.
            Some(stage) if stage.iter().all(|s| span.started < s.ended) => stage.push(span),
            _ => {
                if let Some(stage) = stages.last() {
                    assert!(
                        stage.iter().all(|s| s.ended <= span.started),
                        "{} overlaps only part of the stage before it: {stage:?}",
                        span.op
                    );
                }
                stages.push(vec![span]);
            }
        }
    }
    stages
        .into_iter()
        .map(|stage| {
            let mut ops: Vec<Operation> = stage.iter().map(|s| s.op).collect();
            ops.sort();
            ops
        })
        .collect()
}

/// A warm event's calls form the dependency graph's 4 stages: the certificate; the thing's claim beside the
/// policy's create; both attachments beside the groups; activation, alone and last. A cold one asks for the CA
/// beside the certificate. Read from the call log (which calls overlapped), with a fixed latency per call so
/// that calls of one stage overlap however loaded the machine is; nothing here is timed.
#[tokio::test]
async fn calls_run_in_the_dependency_graphs_four_stages() {
    use Operation as O;
    let latency = Duration::from_millis(15);
    for mode in [Mode::PerThing, Mode::Shared] {
        let world = World::new(MemoryRegistry::new().with_latency(latency, latency).with_call_log(), mode);
        let provisioner = world.process(settings());
        let mut seen = 0;
        for (label, cn) in [("cold", "sensor-00000000000a"), ("warm", "sensor-00000000000b")] {
            let (_, event) = world.register(&ca().issue(&Device::new(cn)).pem);
            let record = run(&provisioner, &event).await;
            assert_eq!(record.outcome, Outcome::Provisioned, "{mode:?} {label}: {}", record.message);
            let log = world.registry.call_log();
            let spans = &log[seen..];
            seen = log.len();
            let got = stages(spans);
            let first: Vec<O> = if label == "cold" {
                vec![O::DescribeCertificate, O::DescribeCACertificate]
            } else {
                vec![O::DescribeCertificate]
            };
            // Shared mode: the process creates the shared policy once; afterwards it knows it and skips the call.
            let second: Vec<O> = if mode == Mode::Shared && label == "warm" {
                vec![O::CreateThing]
            } else {
                vec![O::CreateThing, O::CreatePolicy]
            };
            let third =
                vec![O::AddThingToThingGroup, O::AddThingToThingGroup, O::AttachPolicy, O::AttachThingPrincipal];
            let mut want = vec![first, second, third, vec![O::UpdateCertificate]];
            for stage in &mut want {
                stage.sort();
            }
            assert_eq!(got, want, "{mode:?} {label}: {spans:#?}");
            assert_eq!(spans.last().map(|s| s.op), Some(O::UpdateCertificate), "{mode:?} {label}: activation is last");
        }
    }
}

/// With the CA fetched beside the certificate, the reason codes keep their order: CERT_NOT_FOUND, then
/// MALFORMED_EVENT (the prefetched CA is not used for the decision, though its description, a true answer about the
/// CA the event names, stays cached), then CERT_NOT_PENDING, then the CA's own
/// (CA_NOT_ACTIVE here; UNKNOWN_CA from the configuration is covered in identity.rs). The record counts every
/// call made, the prefetch included, and says where the CA id came from.
#[tokio::test]
async fn the_ca_fetched_beside_the_certificate_keeps_the_order_of_reasons() {
    let fresh = || World::new(MemoryRegistry::new(), Mode::PerThing);
    let calls = |r: &AuditRecord, op: Operation| r.api_calls.get(&op).copied().unwrap_or(0);

    // No certificate, and a CA that is not registered either: CERT_NOT_FOUND.
    let world = fresh();
    let unknown_ca = "ab".repeat(32);
    let event = jitp_testkit::event_for_ids(&"cd".repeat(32), &unknown_ca);
    let record = run(&world.process(settings()), &event).await;
    assert_eq!(record.reason, Some(ReasonCode::CertNotFound), "{}", record.message);
    assert_eq!(
        (calls(&record, Operation::DescribeCertificate), calls(&record, Operation::DescribeCACertificate)),
        (1, 1)
    );
    assert_eq!(record.api_call_count, 2);

    // The event names another registered CA than the registry's: MALFORMED_EVENT, whatever that CA says.
    let world = fresh();
    let other = Ca::new("Another CA", Alg::P256);
    let other_id = world.registry.register_ca(&other.cert.pem, true).unwrap();
    world.registry.set_ca_status(&other_id, CaStatus::Inactive);
    let (id, _) = world.register(device_pem());
    let provisioner = world.process(settings());
    let forged = jitp_testkit::event_for_ids(id.as_str(), other_id.as_str());
    let record = run(&provisioner, &forged).await;
    assert_eq!(record.reason, Some(ReasonCode::MalformedEvent), "{}", record.message);
    assert_eq!(calls(&record, Operation::DescribeCACertificate), 1, "the prefetch is counted");
    assert_eq!(world.registry.certificate_status(&id), Some(CertificateStatus::PendingActivation));
    // The answer is that CA's own description: an event whose certificate that CA did sign uses it from the cache.
    let (other_device, other_event) = {
        let pem = other.issue(&Device::new("sensor-0000000000cc")).pem;
        let id = world.registry.register_certificate(&pem, &other_id).unwrap();
        (id.clone(), jitp_testkit::event_for_ids(id.as_str(), other_id.as_str()))
    };
    let record = run(&provisioner, &other_event).await;
    assert_eq!(record.reason, Some(ReasonCode::CaNotActive), "{}", record.message);
    assert_eq!(calls(&record, Operation::DescribeCACertificate), 0, "cached");
    assert_eq!(world.registry.certificate_status(&other_device), Some(CertificateStatus::PendingActivation));

    // A certificate that is not PENDING, of a CA that is not ACTIVE: CERT_NOT_PENDING comes first.
    let world = fresh();
    let (id, event) = world.register(device_pem());
    world.registry.update_certificate(&id, CertificateStatus::Revoked).await.unwrap();
    world.registry.set_ca_status(&world.ca_id, CaStatus::Inactive);
    let record = run(&world.process(settings()), &event).await;
    assert_eq!(record.reason, Some(ReasonCode::CertNotPending), "{}", record.message);

    // A PENDING certificate of an inactive CA: CA_NOT_ACTIVE, from the prefetched answer; the CA id is the
    // registry's.
    let world = fresh();
    let (id, event) = world.register(device_pem());
    world.registry.set_ca_status(&world.ca_id, CaStatus::Inactive);
    let record = run(&world.process(settings()), &event).await;
    assert_eq!(record.reason, Some(ReasonCode::CaNotActive), "{}", record.message);
    assert_eq!(record.ca_source, Some(CaSource::Registry));
    assert_eq!(record.api_call_count, 2, "{:?}", record.api_calls);
    assert_eq!(world.registry.certificate_status(&id), Some(CertificateStatus::PendingActivation));
}

/// The one-identity rule under the new parallelism, with a per-thing template that renders something of the
/// certificate (its serial) into the policy, so that the documents differ: K certificates with one CN at once,
/// each after a random delay, against a registry with tens of milliseconds per call, for many rounds. Exactly
/// one ends ACTIVE; the thing names it; the default version of the policy attached to it is its own document;
/// no loser is attached to anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_identity_per_device_when_the_losers_policy_creates_race_the_owners() {
    const ROUNDS: usize = 20;
    const K: usize = 5;
    let template = r#"{"Version": "2012-10-17", "Statement": [{"Sid": "Cert{{ certificate.serial }}", "Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:us-east-1:123456789012:client/{{ thing_name }}"}]}"#;
    let dir = ConfigDir::shipped();
    dir.write_policy("sensor.json.tera", template);
    let rules = Arc::new(Rules::load_with(dir.config_path(), &Overrides::default()).unwrap());
    let devices: Vec<Device> = (0..K)
        .map(|i| {
            let mut d = Device::new(CN);
            d.serial = vec![0x10 + u8::try_from(i).unwrap(); 8];
            d.not_before = NOW - DAY;
            d
        })
        .collect();
    let policy = format!("jitp-{CN}");
    let mut raced = 0;
    for round in 0..ROUNDS {
        let registry =
            Arc::new(MemoryRegistry::new().with_latency(Duration::from_millis(10), Duration::from_millis(40)));
        let ca_id = registry.register_ca(&ca().cert.pem, true).unwrap();
        let provisioner =
            Arc::new(Provisioner::new(rules.clone(), registry.clone() as Arc<dyn IotRegistry>, settings()));
        let ids: Vec<CertificateId> =
            devices.iter().map(|d| registry.register_certificate(&ca().issue(d).pem, &ca_id).unwrap()).collect();
        let tasks: Vec<_> = ids
            .iter()
            .map(|id| {
                let (provisioner, event) =
                    (provisioner.clone(), jitp_testkit::event_for_ids(id.as_str(), ca_id.as_str()));
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(rand::random_range(0..30))).await;
                    provisioner.handle_bytes(event.as_bytes(), NOW).await
                })
            })
            .collect();
        let mut records = Vec::new();
        for t in tasks {
            records.push(t.await.unwrap());
        }
        let messages: Vec<String> = records.iter().map(|r| format!("{:?} {}", r.outcome, r.message)).collect();
        let active: Vec<usize> =
            (0..K).filter(|i| registry.certificate_status(&ids[*i]) == Some(CertificateStatus::Active)).collect();
        assert_eq!(active.len(), 1, "round {round}: {messages:#?}");
        let winner = active[0];
        let snapshot = registry.snapshot();
        assert_eq!(
            snapshot["things"][CN]["attributes"][CERTIFICATE_ATTRIBUTE].as_str(),
            Some(ids[winner].as_str()),
            "round {round}"
        );
        let attached: Vec<String> = registry.attached_policies(&ids[winner]).iter().map(ToString::to_string).collect();
        assert_eq!(attached, std::slice::from_ref(&policy), "round {round}");
        let stored = &snapshot["policies"][&policy];
        let default = stored["default"].as_u64().unwrap().to_string();
        let document = stored["versions"][&default].as_str().unwrap();
        assert_eq!(document, own_document(&rules, &devices[winner]), "round {round}: not the winner's own document");
        if stored["versions"].as_object().map_or(0, serde_json::Map::len) > 1 {
            raced += 1; // a loser created the policy first; the winner made its own the default
        }
        for (i, id) in ids.iter().enumerate().filter(|(i, _)| *i != winner) {
            // DUPLICATE_THING is the profile's own rule (on_duplicate): the loser is held, never revoked.
            assert_eq!(registry.certificate_status(id), Some(CertificateStatus::PendingActivation), "round {round}");
            assert!(registry.attached_things(id).is_empty(), "round {round}: loser {i} is attached to a thing");
            assert!(registry.attached_policies(id).is_empty(), "round {round}: loser {i} has a policy");
        }
        assert!(registry.violations().is_empty(), "round {round}: {:?}", registry.violations());
    }
    eprintln!("{raced} of {ROUNDS} rounds: a loser's CreatePolicy won the create, the owner replaced the document");
}

/// The document `device`'s certificate renders, as the registry stores it: from a run of that device alone.
fn own_document(rules: &Arc<Rules>, device: &Device) -> String {
    let registry = Arc::new(MemoryRegistry::new());
    let ca_id = registry.register_ca(&ca().cert.pem, true).unwrap();
    let id = registry.register_certificate(&ca().issue(device).pem, &ca_id).unwrap();
    let provisioner = Provisioner::new(rules.clone(), registry.clone() as Arc<dyn IotRegistry>, settings());
    let event = jitp_testkit::event_for_ids(id.as_str(), ca_id.as_str());
    let record = futures::executor::block_on(provisioner.handle_bytes(event.as_bytes(), NOW));
    assert_eq!(record.outcome, Outcome::Provisioned, "{}", record.message);
    let snapshot = registry.snapshot();
    snapshot["policies"][format!("jitp-{CN}")]["versions"]["1"].as_str().unwrap().to_owned()
}

/// A cold process meeting a burst asks for the CA once: the events that need it while it is being fetched wait for
/// that one call (single-flight), then take it from the cache. Many rounds, with registry latency so that every
/// event of a round is in flight while the first DescribeCACertificate is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_burst_asks_for_the_ca_once() {
    for round in 0..10u64 {
        let registry = MemoryRegistry::new().with_latency(Duration::from_millis(5), Duration::from_millis(25));
        let world = World::new(registry, Mode::PerThing);
        let events: Vec<String> = (0..16u64)
            .map(|i| world.register(&ca().issue(&Device::new(&format!("sensor-{:012x}", round * 100 + i))).pem).1)
            .collect();
        let provisioner = Arc::new(world.process(settings()));
        let mut tasks = tokio::task::JoinSet::new();
        for event in events {
            let provisioner = provisioner.clone();
            tasks.spawn(async move { run(&provisioner, &event).await });
        }
        let mut asked = 0;
        while let Some(record) = tasks.join_next().await {
            let record = record.unwrap();
            assert_eq!(record.outcome, jitp_core::audit::Outcome::Provisioned, "{}", record.message);
            asked += record.api_calls.get(&Operation::DescribeCACertificate).copied().unwrap_or(0);
        }
        assert_eq!(asked, 1, "round {round}: one DescribeCACertificate for 16 cold events");
        assert_eq!(world.registry.call_counts().get(&Operation::DescribeCACertificate), Some(&1));
    }
}

#![cfg(test)]
//! One identity per device, under concurrency: K certificates for one thing name delivered at once (and twice),
//! against a registry with AWS's semantics and tens of milliseconds per call, for many rounds; interrupted
//! owners; rotation; operator mistakes that must hold a device PENDING; ACTIVE certificates that are not
//! complete.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jitp_core::audit::{AuditRecord, Outcome};
use jitp_core::engine::Settings;
use jitp_core::provision::{CERTIFICATE_ATTRIBUTE, Provisioner};
use jitp_core::rules::Rules;
use jitp_pki::ids::{CaCertificateId, CertificateId};
use jitp_pki::reason::{Fault as Blame, ReasonCode};
use jitp_profile::profile::Overrides;
use jitp_registry::event::CertificateStatus;
use jitp_registry::memory::{Fault, FaultKind, MemoryRegistry};
use jitp_registry::registry::{CaStatus, IotRegistry, Operation, ThingSpec};
use jitp_registry::thing::ThingName;
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::{Alg, Ca, DAY, Device, NOW};

const CN: &str = "sensor-0123456789ab";
/// Rounds of every concurrent test: enough that a window of one call's latency shows.
const ROUNDS: usize = 12;
/// Certificates for one name per round.
const K: usize = 6;

/// A copy of the shipped templates in a temporary directory, with `edit` applied to jitp.toml and `policy` (if
/// given) as the sensor template.
fn config_dir(edit: impl Fn(String) -> String, policy: Option<&str>) -> ConfigDir {
    let dir = ConfigDir::shipped();
    if let Some(policy) = policy {
        dir.write_policy("sensor.json.tera", policy);
    }
    dir.edit_config(edit);
    dir
}

fn load(dir: &Path) -> Arc<Rules> {
    Arc::new(Rules::load_with(dir.join("jitp.toml"), &Overrides::default()).unwrap())
}

fn shipped() -> Arc<Rules> {
    Arc::new(Rules::load(jitp_testkit::repo_config_path()).unwrap())
}

fn rotate() -> Arc<Rules> {
    let dir = config_dir(|t| t.replace("on_duplicate = \"reject\"", "on_duplicate = \"rotate\""), None);
    load(dir.path())
}

fn ca() -> &'static Ca {
    static CA: std::sync::OnceLock<Ca> = std::sync::OnceLock::new();
    CA.get_or_init(|| Ca::new("Acme Device CA", Alg::P256))
}

fn settings() -> Settings {
    Settings { retry_base: Duration::from_millis(1), ..Settings::default() }
}

struct World {
    registry: Arc<MemoryRegistry>,
    ca_id: CaCertificateId,
}

impl World {
    fn new(registry: MemoryRegistry) -> Self {
        let registry = Arc::new(registry);
        let ca_id = registry.register_ca(&ca().cert.pem, true).unwrap();
        Self { registry, ca_id }
    }

    /// The registry as AWS is to a burst: every call 10-40 ms.
    fn slow() -> Self {
        Self::new(MemoryRegistry::new().with_latency(Duration::from_millis(10), Duration::from_millis(40)))
    }

    fn provisioner(&self, config: Arc<Rules>) -> Arc<Provisioner> {
        Arc::new(Provisioner::new(config, self.registry.clone() as Arc<dyn IotRegistry>, settings()))
    }

    fn register(&self, device: &Device) -> (CertificateId, String) {
        let id = self.registry.register_certificate(&ca().issue(device).pem, &self.ca_id).unwrap();
        (id.clone(), jitp_testkit::event_for_ids(id.as_str(), self.ca_id.as_str()))
    }

    fn owner(&self) -> Option<String> {
        let snapshot = self.registry.snapshot();
        snapshot["things"][CN]["attributes"][CERTIFICATE_ATTRIBUTE].as_str().map(str::to_owned)
    }

    fn status(&self, id: &CertificateId) -> CertificateStatus {
        self.registry.certificate_status(id).unwrap()
    }
}

/// K different certificates, all for thing `CN`; device `i` issued `i` hours after the first.
fn devices() -> Vec<Device> {
    (0..K)
        .map(|i| {
            let mut d = Device::new(CN);
            d.serial = vec![0x10 + u8::try_from(i).unwrap(); 8];
            d.not_before = NOW - DAY + 3600 * i64::try_from(i).unwrap();
            d
        })
        .collect()
}

/// Deliver every event `copies` times, all at once, each after a random delay of up to 30 ms.
async fn deliver_at_once(provisioner: &Arc<Provisioner>, events: &[String], copies: usize) -> Vec<AuditRecord> {
    let mut tasks = Vec::new();
    for event in events.iter().flat_map(|e| std::iter::repeat_n(e.clone(), copies)) {
        let provisioner = provisioner.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(rand::random_range(0..30))).await;
            provisioner.handle_bytes(event.as_bytes(), NOW).await
        }));
    }
    let mut records = Vec::new();
    for t in tasks {
        records.push(t.await.unwrap());
    }
    records
}

fn thing() -> ThingName {
    CN.parse().unwrap()
}

/// With `on_duplicate = "reject"`: exactly one certificate ends ACTIVE and attached, the owner the thing names;
/// every other one ends REJECTED DUPLICATE_THING, revoked, attached to nothing, with no policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn k_certificates_for_one_name_at_once_give_one_identity() {
    for round in 0..ROUNDS {
        let world = World::slow();
        let provisioner = world.provisioner(shipped());
        let (ids, events): (Vec<_>, Vec<_>) = devices().iter().map(|d| world.register(d)).unzip();
        let records = deliver_at_once(&provisioner, &events, 2).await;

        let active: Vec<&CertificateId> =
            ids.iter().filter(|id| world.status(id) == CertificateStatus::Active).collect();
        assert_eq!(active.len(), 1, "round {round}: {:?}", records.iter().map(|r| &r.message).collect::<Vec<_>>());
        let winner = active[0];
        assert_eq!(world.owner().as_deref(), Some(winner.as_str()), "round {round}: the owner is the ACTIVE one");
        for id in ids.iter().filter(|id| *id != winner) {
            // DUPLICATE_THING is the profile's own rule (on_duplicate): held, never revoked.
            assert_eq!(world.status(id), CertificateStatus::PendingActivation, "round {round}");
            assert!(world.registry.attached_things(id).is_empty(), "round {round}: a loser is attached");
            assert!(world.registry.attached_policies(id).is_empty(), "round {round}: a loser has a policy");
        }
        for record in &records {
            let ok = match record.certificate_id.as_deref() == Some(winner.as_str()) {
                true => matches!(record.outcome, Outcome::Provisioned | Outcome::AlreadyProvisioned),
                false => {
                    record.reason == Some(ReasonCode::DuplicateThing)
                        || (record.reason == Some(ReasonCode::CertNotPending) && record.certificate_action.is_none())
                }
            };
            assert!(ok, "round {round}: {:?} {:?} {}", record.outcome, record.reason, record.message);
        }
        assert_eq!(world.registry.policies().values().copied().collect::<Vec<_>>(), [1], "round {round}");
        assert!(world.registry.violations().is_empty(), "round {round}: {:?}", world.registry.violations());
    }
}

/// An owner interrupted at any step before activation keeps its thing: a second certificate arriving then
/// (alone, or together with the owner's redelivery) is refused, and the owner's redelivered event completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interrupted_owner_keeps_its_thing_and_its_replay_completes() {
    let steps = [
        Operation::AddThingToThingGroup,
        Operation::CreatePolicy,
        Operation::AttachPolicy,
        Operation::AttachThingPrincipal,
        Operation::UpdateCertificate,
    ];
    for op in steps {
        for kind in [FaultKind::UnavailableBefore, FaultKind::UnavailableAfter] {
            for together in [false, true] {
                let faults = (1..=3).map(|nth| Fault { op, nth, kind });
                let world = World::new(
                    MemoryRegistry::new()
                        .with_latency(Duration::from_millis(5), Duration::from_millis(20))
                        .with_faults(faults),
                );
                let impatient = Arc::new(Provisioner::new(
                    shipped(),
                    world.registry.clone() as Arc<dyn IotRegistry>,
                    Settings { retry_deadline: Duration::ZERO, ..settings() },
                ));
                let [first, second] = [0, 1].map(|i| devices()[i].clone());
                let (owner, owner_event) = world.register(&first);
                let interrupted = impatient.handle_bytes(owner_event.as_bytes(), NOW).await;
                let case = format!("{op} {kind:?} together={together}");
                if op == Operation::AddThingToThingGroup {
                    // The shipped profiles have no groups: no fault fires, nothing to interrupt.
                    assert_eq!(interrupted.outcome, Outcome::Provisioned, "{case}");
                    continue;
                }
                assert_eq!(interrupted.outcome, Outcome::Error, "{case}: {}", interrupted.message);
                assert_eq!(world.owner().as_deref(), Some(owner.as_str()), "{case}");

                let provisioner = world.provisioner(shipped());
                let (intruder, intruder_event) = world.register(&second);
                let events = if together { vec![owner_event.clone(), intruder_event] } else { vec![intruder_event] };
                let records = deliver_at_once(&provisioner, &events, 1).await;
                let refused = records.iter().find(|r| r.certificate_id.as_deref() == Some(intruder.as_str())).unwrap();
                assert_eq!(refused.reason, Some(ReasonCode::DuplicateThing), "{case}: {}", refused.message);
                assert_eq!(world.status(&intruder), CertificateStatus::PendingActivation, "{case}");
                assert!(world.registry.attached_things(&intruder).is_empty(), "{case}");

                let replay = provisioner.handle_bytes(owner_event.as_bytes(), NOW).await;
                assert!(
                    matches!(replay.outcome, Outcome::Provisioned | Outcome::AlreadyProvisioned),
                    "{case}: {}",
                    replay.message
                );
                assert_eq!(world.status(&owner), CertificateStatus::Active, "{case}");
                assert_eq!(world.registry.attached_things(&owner), [thing()], "{case}");
                assert!(world.registry.violations().is_empty(), "{case}: {:?}", world.registry.violations());
            }
        }
    }
}

/// With `on_duplicate = "rotate"`, however K certificates for one name interleave: the newest owns the thing,
/// is ACTIVE and attached; no other is ACTIVE (retired ones stay attached, INACTIVE, for a rollback); never an
/// ACTIVE certificate without its thing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_under_concurrency_ends_with_the_newest_certificate() {
    for round in 0..ROUNDS {
        let world = World::slow();
        let provisioner = world.provisioner(rotate());
        let mut registered: Vec<(CertificateId, String)> = devices().iter().map(|d| world.register(d)).collect();
        let newest = registered[K - 1].0.clone();
        // Deliver in a random order: the newest is not necessarily last.
        registered.sort_by_key(|_| rand::random::<u32>());
        let events: Vec<String> = registered.iter().map(|(_, e)| e.clone()).collect();
        let records = deliver_at_once(&provisioner, &events, 2).await;
        let messages: Vec<String> = records.iter().map(|r| format!("{:?} {}", r.outcome, r.message)).collect();

        assert_eq!(world.owner().as_deref(), Some(newest.as_str()), "round {round}: {messages:#?}");
        assert_eq!(world.status(&newest), CertificateStatus::Active, "round {round}: {messages:#?}");
        assert_eq!(world.registry.attached_things(&newest), [thing()], "round {round}");
        for (id, _) in registered.iter().filter(|(id, _)| *id != newest) {
            assert_ne!(
                world.status(id),
                CertificateStatus::Active,
                "round {round}: an older one is ACTIVE: {messages:#?}"
            );
        }
        assert!(world.registry.violations().is_empty(), "round {round}: {:?}", world.registry.violations());
    }
}

/// The operator's mistakes (a CA that is not ACTIVE or not configured, a template that fails or renders too
/// wide or too large, a thing jitp does not manage) never revoke: the certificate stays PENDING, the record is
/// HELD with fault "operator" and asks for redelivery, and once the mistake is fixed the event provisions it.
#[tokio::test]
async fn operator_mistakes_hold_the_device_pending_until_fixed() {
    let wide = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}"#;
    let undefined = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:us-east-1:123456789012:client/{{ subject.st }}"}]}"#;
    let large = format!(
        r#"{{"Version": "2012-10-17", "Statement": [{{"Sid": "{}", "Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:us-east-1:123456789012:client/{{{{ thing_name }}}}"}}]}}"#,
        "x".repeat(2100)
    );
    let not_json = "{ \"Version\": \"2012-10-17\", ";
    let other_ca = "f".repeat(64);
    type Setup = Box<dyn Fn(&World) -> ConfigDir>;
    let cases: Vec<(ReasonCode, Setup)> = vec![
        (ReasonCode::PolicyTooPermissive, Box::new(move |_| config_dir(|t| t, Some(wide)))),
        (ReasonCode::PolicyTemplateError, Box::new(move |_| config_dir(|t| t, Some(undefined)))),
        (ReasonCode::PolicyTemplateError, Box::new(move |_| config_dir(|t| t, Some(not_json)))),
        (ReasonCode::PolicyTooLarge, Box::new(move |_| config_dir(|t| t, Some(&large)))),
        (
            ReasonCode::UnknownCa,
            Box::new(move |_| config_dir(|t| t.replace("ca = [\"*\"]", &format!("ca = [\"{other_ca}\"]")), None)),
        ),
        (
            ReasonCode::CaNotActive,
            Box::new(|w| {
                w.registry.set_ca_status(&w.ca_id, CaStatus::Inactive);
                config_dir(|t| t, None)
            }),
        ),
        (
            ReasonCode::ThingNotManaged,
            Box::new(|w| {
                let spec = ThingSpec { name: thing(), thing_type: Some("sensor".into()), attributes: BTreeMap::new() };
                futures_lite(w.registry.create_thing(&spec)).unwrap();
                config_dir(|t| t, None)
            }),
        ),
    ];
    for (reason, setup) in cases {
        for on_reject in ["revoke", "deactivate"] {
            let world = World::new(MemoryRegistry::new());
            let dir = setup(&world);
            dir.edit_config(|toml| toml.replace("on_reject = \"revoke\"", &format!("on_reject = \"{on_reject}\"")));
            let (id, event) = world.register(&Device::new(CN));
            let held = world.provisioner(load(dir.path())).handle_bytes(event.as_bytes(), NOW).await;
            let case = format!("{reason} on_reject={on_reject}");
            assert_eq!(
                (held.outcome, held.reason, held.fault),
                (Outcome::Held, Some(reason), Some(Blame::Operator)),
                "{case}: {}",
                held.message
            );
            assert!(held.is_retryable(), "{case}: a held event is handed back");
            assert_eq!(held.certificate_action.map(|a| a.as_str()), Some("LEFT_PENDING"), "{case}");
            assert_eq!(world.status(&id), CertificateStatus::PendingActivation, "{case}");
            if reason == ReasonCode::ThingNotManaged {
                // The policy's conditional create runs beside the claim, so it may exist; attached to nothing.
                assert!(world.registry.policies().values().all(|versions| *versions == 1), "{case}");
            } else {
                assert!(world.registry.policies().is_empty(), "{case}");
            }
            assert!(world.registry.attached_policies(&id).is_empty(), "{case}");

            // The fix: the shipped configuration, the CA re-activated, the stray thing handed to the device.
            world.registry.set_ca_status(&world.ca_id, CaStatus::Active);
            if reason == ReasonCode::ThingNotManaged {
                let mut attributes = BTreeMap::new();
                attributes.insert(CERTIFICATE_ATTRIBUTE.to_owned(), id.to_string());
                let spec = ThingSpec { name: thing(), thing_type: Some("sensor".into()), attributes };
                world.registry.update_thing(&spec, None).await.unwrap();
            }
            let fixed = world.provisioner(shipped()).handle_bytes(event.as_bytes(), NOW).await;
            assert_eq!(fixed.outcome, Outcome::Provisioned, "{case} after the fix: {}", fixed.message);
            assert_eq!(world.status(&id), CertificateStatus::Active, "{case}");
        }
    }
}

/// Drive a registry call to completion from synchronous setup code (the memory registry never waits without
/// latency configured).
fn futures_lite<T>(f: impl std::future::Future<Output = T>) -> T {
    futures::executor::block_on(f)
}

/// A device at fault is still rejected with its profile's on_reject, and the record says so.
#[tokio::test]
async fn device_faults_still_revoke_and_say_whose_fault() {
    let world = World::new(MemoryRegistry::new());
    let mut expired = Device::new(CN);
    expired.not_after = NOW - 10 * DAY;
    expired.not_before = NOW - 20 * DAY;
    let (id, event) = world.register(&expired);
    let record = world.provisioner(shipped()).handle_bytes(event.as_bytes(), NOW).await;
    assert_eq!(
        (record.outcome, record.reason, record.fault),
        (Outcome::Rejected, Some(ReasonCode::CertExpired), Some(Blame::Device))
    );
    assert!(!record.is_retryable());
    assert_eq!(world.status(&id), CertificateStatus::Revoked);
}

/// ALREADY_PROVISIONED means complete. An ACTIVE certificate that lacks its thing, its attachment or its policy
/// (activated by hand) is completed, not reported as success; one whose thing belongs to another certificate
/// is deactivated; one the decision now refuses is reported and left for the operator.
#[tokio::test]
async fn already_provisioned_means_complete() {
    // Activated by hand, nothing else: completed.
    let world = World::new(MemoryRegistry::new());
    let provisioner = world.provisioner(shipped());
    let (id, event) = world.register(&Device::new(CN));
    world.registry.update_certificate(&id, CertificateStatus::Active).await.unwrap();
    let record = provisioner.handle_bytes(event.as_bytes(), NOW).await;
    assert_eq!(record.outcome, Outcome::Provisioned, "{}", record.message);
    assert!(record.message.contains("thing ownership, thing attachment, policy"), "{}", record.message);
    assert_eq!(world.registry.attached_things(&id), [thing()]);
    assert_eq!(world.registry.attached_policies(&id).len(), 1);
    let replay = provisioner.handle_bytes(event.as_bytes(), NOW).await;
    assert_eq!(replay.outcome, Outcome::AlreadyProvisioned, "{}", replay.message);

    // Detached from its thing by hand: re-attached.
    world.registry.detach_thing_principal(&thing(), &world.registry.certificate_arn(&id)).await.unwrap();
    let record = provisioner.handle_bytes(event.as_bytes(), NOW).await;
    assert_eq!(record.outcome, Outcome::Provisioned, "{}", record.message);
    assert!(record.message.contains("thing attachment"), "{}", record.message);
    assert_eq!(world.registry.attached_things(&id), [thing()]);

    // Another certificate for the same name, activated by hand: it holds another device's identity.
    let mut twin = Device::new(CN);
    twin.serial = vec![0x77; 8];
    let (twin_id, twin_event) = world.register(&twin);
    world.registry.update_certificate(&twin_id, CertificateStatus::Active).await.unwrap();
    let record = provisioner.handle_bytes(twin_event.as_bytes(), NOW).await;
    assert_eq!(
        (record.outcome, record.reason),
        (Outcome::Rejected, Some(ReasonCode::DuplicateThing)),
        "{}",
        record.message
    );
    assert_eq!(record.certificate_action.map(|a| a.as_str()), Some("INACTIVE"));
    assert_eq!(world.status(&twin_id), CertificateStatus::Inactive);
    assert!(world.registry.attached_things(&twin_id).is_empty());
    assert_eq!(world.status(&id), CertificateStatus::Active, "the owner is untouched");

    // ACTIVE, but the decision now refuses it (expired): reported, not revoked on an event.
    let later = provisioner.handle_bytes(event.as_bytes(), NOW + 400 * DAY).await;
    assert_eq!((later.outcome, later.reason), (Outcome::Rejected, Some(ReasonCode::CertExpired)), "{}", later.message);
    assert_eq!(later.certificate_action, None);
    assert_eq!(world.status(&id), CertificateStatus::Active);
}

/// A rotation whose clean-up failed after activation (the older certificate still ACTIVE) is finished by the
/// replay of the newer certificate's event, although that replay finds the newer one complete.
#[tokio::test]
async fn a_rotation_interrupted_after_activation_is_finished_by_the_replay() {
    // DescribeThing: #1 the older one's clean-up; #2 the newer one's claim; #3-#5 its clean-up, failing.
    let faults = (3..=5).map(|nth| Fault { op: Operation::DescribeThing, nth, kind: FaultKind::UnavailableBefore });
    let world = World::new(MemoryRegistry::new().with_faults(faults));
    let [older, newer] = [0, 1].map(|i| devices()[i].clone());
    let (old_id, old_event) = world.register(&older);
    let (new_id, new_event) = world.register(&newer);
    let provisioner = world.provisioner(rotate());
    assert_eq!(provisioner.handle_bytes(old_event.as_bytes(), NOW).await.outcome, Outcome::Provisioned);
    let impatient = Provisioner::new(
        rotate(),
        world.registry.clone() as Arc<dyn IotRegistry>,
        Settings { retry_deadline: Duration::ZERO, ..settings() },
    );
    let failed = impatient.handle_bytes(new_event.as_bytes(), NOW).await;
    assert_eq!(failed.outcome, Outcome::Error, "{}", failed.message);
    assert_eq!((world.status(&old_id), world.status(&new_id)), (CertificateStatus::Active, CertificateStatus::Active));

    let replay = provisioner.handle_bytes(new_event.as_bytes(), NOW).await;
    assert_eq!(replay.outcome, Outcome::AlreadyProvisioned, "{}", replay.message);
    assert_eq!(replay.replaced_certificates, [old_id.to_string()]);
    assert_eq!(world.status(&old_id), CertificateStatus::Inactive);
    assert!(world.registry.violations().is_empty(), "{:?}", world.registry.violations());
}

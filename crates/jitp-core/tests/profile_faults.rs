#![cfg(test)]
//! Revocation only where no configuration would ever accept the certificate (issue 21, item 2).
//!
//! A rejection by the profile's own limits and rules (`Fault::Profile`) is never final: the certificate stays
//! PENDING_ACTIVATION whatever `on_reject` says, the outcome is HELD, and once the profile is fixed the
//! redelivered event provisions the device. Checked for the whole vocabulary (a table over every reason code)
//! and end to end on the embedded registry, one case per profile rule.

use std::sync::Arc;

use jitp_core::audit::{AuditRecord, CertificateAction, Ending, Facts, Outcome};
use jitp_core::engine::{Settings, rejection_effect};
use jitp_core::provision::Provisioner;
use jitp_core::rules::Rules;
use jitp_pki::ids::CaCertificateId;
use jitp_pki::reason::{Fault, ReasonCode};
use jitp_profile::profile::OnReject;
use jitp_registry::event::CertificateStatus;
use jitp_registry::memory::MemoryRegistry;
use jitp_registry::registry::IotRegistry;
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::surgery::VersionEdit;
use jitp_testkit::{Alg, Ca, DAY, Device, NOW};

/// Whose fault each code is, written out: moving a code between faults must change this table.
const FAULTS: &[(ReasonCode, Fault)] = &[
    (ReasonCode::MalformedEvent, Fault::None),
    (ReasonCode::MalformedCertificate, Fault::Device),
    (ReasonCode::IssuerMismatch, Fault::Device),
    (ReasonCode::SignatureInvalid, Fault::Device),
    (ReasonCode::UnsupportedAlgorithm, Fault::Device),
    (ReasonCode::WeakKey, Fault::Device),
    (ReasonCode::CertExpired, Fault::Device),
    (ReasonCode::CertNotYetValid, Fault::Profile),
    (ReasonCode::DeviceCertIsCa, Fault::Device),
    (ReasonCode::KeyUsageInvalid, Fault::Device),
    (ReasonCode::ValidityTooLong, Fault::Profile),
    (ReasonCode::CaInvalid, Fault::Operator),
    (ReasonCode::CaNotActive, Fault::Operator),
    (ReasonCode::CaExpired, Fault::Operator),
    (ReasonCode::CaNotYetValid, Fault::Operator),
    (ReasonCode::CertDenied, Fault::Device),
    (ReasonCode::UnknownCa, Fault::Operator),
    (ReasonCode::SubjectMismatch, Fault::Profile),
    (ReasonCode::InvalidThingName, Fault::Profile),
    (ReasonCode::InvalidAttribute, Fault::Profile),
    (ReasonCode::PolicyTemplateError, Fault::Operator),
    (ReasonCode::PolicyTooPermissive, Fault::Operator),
    (ReasonCode::PolicyTooLarge, Fault::Operator),
    (ReasonCode::DuplicateThing, Fault::Profile),
    (ReasonCode::CertNotFound, Fault::None),
    (ReasonCode::CertNotPending, Fault::None),
    (ReasonCode::UnsupportedCriticalExtension, Fault::Device),
    (ReasonCode::InvalidPublicKey, Fault::Device),
    (ReasonCode::DeviceKeyIsCaKey, Fault::Device),
    (ReasonCode::NameConstraintViolation, Fault::Device),
    (ReasonCode::CertRevoked, Fault::Device),
    (ReasonCode::ThingNotManaged, Fault::Operator),
    (ReasonCode::PolicyInUse, Fault::Operator),
    (ReasonCode::ThingOwnerRetired, Fault::Operator),
    (ReasonCode::CertOnHold, Fault::Operator),
    (ReasonCode::CrlScopeMismatch, Fault::Operator),
    (ReasonCode::KeyTooShort, Fault::Profile),
    (ReasonCode::CertNotV3, Fault::Profile),
];

#[test]
fn every_code_has_its_fault_and_only_a_device_fault_can_revoke() {
    let listed: Vec<ReasonCode> = FAULTS.iter().map(|(code, _)| *code).collect();
    assert_eq!(listed, ReasonCode::ALL, "the table lists every code, in declaration order");
    for &(code, fault) in FAULTS {
        assert_eq!(code.fault(), fault, "{code}");
        for on_reject in [OnReject::Revoke, OnReject::Deactivate, OnReject::Leave] {
            let effect = rejection_effect(code, on_reject);
            let expected = match fault {
                Fault::None => None,
                Fault::Operator | Fault::Profile => Some((None, CertificateAction::LeftPending)),
                Fault::Device => Some(match on_reject {
                    OnReject::Revoke => (Some(CertificateStatus::Revoked), CertificateAction::Revoked),
                    OnReject::Deactivate => (Some(CertificateStatus::Inactive), CertificateAction::Inactive),
                    OnReject::Leave => (None, CertificateAction::Left),
                }),
            };
            assert_eq!(effect, expected, "{code} under {on_reject:?}");
            // The record: HELD (the event is handed back) exactly when the certificate is left for a fix.
            let action = effect.map(|(_, action)| action);
            let ending = Ending::Refused { reason: code, message: "m".into(), action };
            let record = AuditRecord::build(0, Facts::default(), ending, Default::default(), Default::default());
            let held = matches!(fault, Fault::Operator | Fault::Profile);
            assert_eq!(record.outcome, if held { Outcome::Held } else { Outcome::Rejected }, "{code}");
            assert_eq!(record.fault, Some(fault), "{code}");
            assert_eq!(record.outcome.is_retryable(), held, "{code}");
        }
    }
}

#[test]
fn profile_fault_serialises_as_profile() {
    assert_eq!(serde_json::to_string(&Fault::Profile).unwrap_or_default(), "\"profile\"");
}

/// A sensors profile written as an operator would, `on_reject = "revoke"` spelled out, with `extra` keys.
fn toml(extra: &str) -> String {
    format!(
        "[defaults]\non_reject = \"revoke\"\n[[profiles]]\nname = \"sensors\"\nca = [\"*\"]\n\
         common_name = 'sensor-[0-9a-f]{{12}}'\nthing_name = \"{{{{ subject.cn }}}}\"\n\
         policy = \"policies/sensor.json.tera\"\n{extra}\n"
    )
}

struct World {
    dir: ConfigDir,
    registry: Arc<MemoryRegistry>,
    ca: Ca,
    ca_id: CaCertificateId,
}

impl World {
    fn new(extra: &str) -> Self {
        let dir = ConfigDir::new();
        dir.copy_policy("sensor.json.tera", "sensor.json.tera");
        dir.write_config(&toml(extra));
        let registry = Arc::new(MemoryRegistry::new());
        let ca = Ca::new("Profile Fault CA", Alg::P256);
        let ca_id = registry.register_ca(&ca.cert.pem, true).unwrap();
        Self { dir, registry, ca, ca_id }
    }

    /// A provisioner over the configuration as it is on disk now (a redeploy after a fix).
    fn provisioner(&self) -> Provisioner {
        let rules = Arc::new(Rules::load(self.dir.config_path()).unwrap_or_else(|e| panic!("{e}")));
        let settings = Settings { retry_base: std::time::Duration::from_millis(1), ..Settings::default() };
        Provisioner::new(rules, self.registry.clone() as Arc<dyn IotRegistry>, settings)
    }

    fn register(&self, pem: &str) -> (jitp_pki::ids::CertificateId, String) {
        let id = self.registry.register_certificate(pem, &self.ca_id).unwrap();
        let event = jitp_testkit::event_for_ids(id.as_str(), self.ca_id.as_str());
        (id, event)
    }
}

/// One profile rule that refuses a device it could accept: the configuration, the device, the code, and the fix.
struct Case {
    name: &'static str,
    extra: &'static str,
    device: fn(&Ca) -> String,
    reason: ReasonCode,
    fixed: &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "max_validity_days below the vendor's 28 years",
            extra: "max_validity_days = 9125",
            device: |ca| {
                let mut d = Device::new("sensor-000000000028");
                d.not_after = d.not_before + 10_227 * DAY;
                ca.issue(&d).pem
            },
            reason: ReasonCode::ValidityTooLong,
            fixed: "max_validity_days = 10300",
        },
        Case {
            name: "min_rsa_bits above the floor",
            extra: "min_rsa_bits = 4096",
            device: |ca| ca.issue(&Device::new("sensor-0000000000a5").alg(Alg::Rsa2048)).pem,
            reason: ReasonCode::KeyTooShort,
            fixed: "min_rsa_bits = 2048",
        },
        Case {
            name: "a subject rule too tight",
            extra: "organization = [\"Acme Corp\"]",
            device: |ca| ca.issue(&Device::new("sensor-0000000000b1")).pem,
            reason: ReasonCode::SubjectMismatch,
            fixed: "organization = [\"Acme\", \"Acme Corp\"]",
        },
        Case {
            name: "require_v3 and a v1 certificate",
            extra: "require_v3 = true",
            device: |ca| ca.issue_version(&Device::new("sensor-0000000000c1"), VersionEdit::V1).pem,
            reason: ReasonCode::CertNotV3,
            fixed: "",
        },
        Case {
            name: "an attribute that keeps a character attribute values refuse",
            extra: "attributes = { line = \"{{ subject.ou }}\" }",
            device: |ca| {
                let mut d = Device::new("sensor-0000000000d1");
                d.extra.push((jitp_testkit::Dn::OrganizationalUnitName, "line 7".into()));
                ca.issue(&d).pem
            },
            reason: ReasonCode::InvalidAttribute,
            fixed: "attributes = { line = \"{{ subject.ou | replace(from=' ', to='_') }}\" }",
        },
    ]
}

#[tokio::test]
async fn a_profile_fault_holds_the_certificate_and_the_fixed_profile_provisions_it() {
    for case in cases() {
        let world = World::new(case.extra);
        let (id, event) = world.register(&(case.device)(&world.ca));
        let record = world.provisioner().handle_bytes(event.as_bytes(), NOW).await;
        assert_eq!(record.reason, Some(case.reason), "{}: {}", case.name, record.message);
        assert_eq!(record.outcome, Outcome::Held, "{}", case.name);
        assert_eq!(record.fault, Some(Fault::Profile), "{}", case.name);
        assert_eq!(record.certificate_action, Some(CertificateAction::LeftPending), "{}", case.name);
        assert_eq!(world.registry.certificate_status(&id), Some(CertificateStatus::PendingActivation), "{}", case.name);
        assert!(world.registry.thing_names().is_empty(), "{}", case.name);

        // The security team fixes the profile and redeploys; the event is redriven.
        world.dir.write_config(&toml(case.fixed));
        let record = world.provisioner().handle_bytes(event.as_bytes(), NOW).await;
        assert_eq!(record.outcome, Outcome::Provisioned, "{}: {}", case.name, record.message);
        assert_eq!(world.registry.certificate_status(&id), Some(CertificateStatus::Active), "{}", case.name);
    }
}

#[tokio::test]
async fn a_device_fault_still_gets_on_reject() {
    let world = World::new("max_validity_days = 9125");
    let mut expired = Device::new("sensor-0000000000e1");
    expired.not_before = NOW - 20 * DAY;
    expired.not_after = NOW - 10 * DAY;
    let (id, event) = world.register(&world.ca.issue(&expired).pem);
    let record = world.provisioner().handle_bytes(event.as_bytes(), NOW).await;
    assert_eq!((record.outcome, record.reason), (Outcome::Rejected, Some(ReasonCode::CertExpired)));
    assert_eq!(world.registry.certificate_status(&id), Some(CertificateStatus::Revoked));
    // A certificate both denied and refused by a profile limit is denied: final.
    let mut long = Device::new("sensor-0000000000e2");
    long.not_after = long.not_before + 10_227 * DAY;
    let issued = world.ca.issue(&long);
    std::fs::write(world.dir.path().join("denied.txt"), format!("sha256:{}\n", issued.id())).unwrap();
    world.dir.write_config(&toml("max_validity_days = 9125\ndeny_list = \"denied.txt\""));
    let (id, event) = world.register(&issued.pem);
    let record = world.provisioner().handle_bytes(event.as_bytes(), NOW).await;
    assert_eq!(
        (record.outcome, record.reason),
        (Outcome::Rejected, Some(ReasonCode::CertDenied)),
        "{}",
        record.message
    );
    assert_eq!(world.registry.certificate_status(&id), Some(CertificateStatus::Revoked));
}

#[tokio::test]
async fn a_certificate_not_yet_valid_is_held_until_it_is() {
    let world = World::new("");
    let mut early = Device::new("sensor-0000000000f1");
    early.not_before = NOW + DAY;
    early.not_after = NOW + 365 * DAY;
    let (id, event) = world.register(&world.ca.issue(&early).pem);
    let provisioner = world.provisioner();
    let record = provisioner.handle_bytes(event.as_bytes(), NOW).await;
    assert_eq!((record.outcome, record.reason), (Outcome::Held, Some(ReasonCode::CertNotYetValid)));
    assert_eq!(world.registry.certificate_status(&id), Some(CertificateStatus::PendingActivation));
    let record = provisioner.handle_bytes(event.as_bytes(), NOW + 2 * DAY).await;
    assert_eq!(record.outcome, Outcome::Provisioned, "{}", record.message);
}

#[tokio::test]
async fn a_duplicate_is_held_and_rotation_provisions_it() {
    let world = World::new("");
    let provisioner = world.provisioner();
    let (_, first) = world.register(&world.ca.issue(&Device::new("sensor-00000000dd01")).pem);
    assert_eq!(provisioner.handle_bytes(first.as_bytes(), NOW).await.outcome, Outcome::Provisioned);
    let mut newer = Device::new("sensor-00000000dd01");
    newer.not_before += 3600;
    newer.serial = vec![0x42; 8];
    let (id, second) = world.register(&world.ca.issue(&newer).pem);
    let record = provisioner.handle_bytes(second.as_bytes(), NOW).await;
    assert_eq!(
        (record.outcome, record.reason),
        (Outcome::Held, Some(ReasonCode::DuplicateThing)),
        "{}",
        record.message
    );
    assert_eq!(world.registry.certificate_status(&id), Some(CertificateStatus::PendingActivation));
    world.dir.write_config(&toml("on_duplicate = \"rotate\""));
    let record = world.provisioner().handle_bytes(second.as_bytes(), NOW).await;
    assert_eq!(record.outcome, Outcome::Provisioned, "{}", record.message);
    assert_eq!(world.registry.certificate_status(&id), Some(CertificateStatus::Active));
}

#![cfg(test)]
//! Revocation with X.509 CRLs (`crl = [...]`, `crl_policy`): loading (PEM, DER, every malformed file a
//! configuration error naming the key and the file), the checks against the registered CA (issuer, signature,
//! nextUpdate), CERT_REVOKED and its place in the order of reasons, and the workflow: a revoked device gets
//! `on_reject`, a bad CRL holds the device until it is fixed.

use std::sync::Arc;

use jitp_core::audit::Outcome;
use jitp_core::decide::{CheckReport, check};
use jitp_core::engine::Settings;
use jitp_core::provision::Provisioner;
use jitp_core::rules::Rules;
use jitp_pki::reason::{Fault, ReasonCode};
use jitp_policy::policy::AwsContext;
use jitp_registry::event::CertificateStatus;
use jitp_registry::registry::IotRegistry;
use jitp_testkit::captured_log::CapturedLog;
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::{Alg, Ca, CrlFile, CrlSpec, DAY, Device, NOW, RevocationReason, Revoked, oid, replace_all};

const CN: &str = "sensor-0123456789ab";
const OTHER_CN: &str = "sensor-00000000ffff";

fn ca() -> &'static Ca {
    static C: std::sync::OnceLock<Ca> = std::sync::OnceLock::new();
    C.get_or_init(|| Ca::new("Acme Device CA", Alg::P256))
}

fn serial(cn: &str) -> Vec<u8> {
    Device::new(cn).serial
}

/// A configuration directory with the sensor template, the given CRL files written under `crl/`, and a
/// profile listing them (in the order given) with `extra` keys.
struct Setup {
    dir: ConfigDir,
}

impl Setup {
    fn new() -> Self {
        let dir = ConfigDir::new();
        dir.copy_policy("sensor.json.tera", "sensor.json.tera");
        std::fs::create_dir_all(dir.path().join("crl")).unwrap();
        Self { dir }
    }

    fn file(&self, name: &str, bytes: &[u8]) -> &Self {
        std::fs::write(self.dir.path().join("crl").join(name), bytes).unwrap();
        self
    }

    fn load(&self, files: &[&str], extra: &str) -> Result<Rules, String> {
        let list: Vec<String> = files.iter().map(|f| format!("\"crl/{f}\"")).collect();
        let text = format!(
            "[[profiles]]\nname = \"sensors\"\nca = [\"*\"]\ncommon_name = 'sensor-[0-9a-f]{{12}}'\norganization = [\"Acme\"]\nthing_name = \"{{{{ subject.cn }}}}\"\npolicy = \"policies/sensor.json.tera\"\nmax_validity_days = 400\nmin_rsa_bits = 3072\ndeny_list = \"denied.txt\"\ncrl = [{}]\n{extra}\n",
            list.join(", ")
        );
        std::fs::write(self.dir.path().join("denied.txt"), "# none\n").unwrap();
        Rules::load(self.dir.write_config(&text)).map_err(|e| e.to_string())
    }

    fn rules(&self, files: &[&str], extra: &str) -> Rules {
        self.load(files, extra).unwrap()
    }

    /// A setup with one file, `acme.crl`.
    fn with(crl: &[u8]) -> (Self, Rules) {
        Self::with_policy(crl, "")
    }

    fn with_policy(crl: &[u8], extra: &str) -> (Self, Rules) {
        let setup = Self::new();
        setup.file("acme.crl", crl);
        let rules = setup.rules(&["acme.crl"], extra);
        (setup, rules)
    }
}

fn run(rules: &Rules, device: &Device) -> CheckReport {
    run_pem(rules, &ca().issue(device).pem)
}

fn run_pem(rules: &Rules, pem: &str) -> CheckReport {
    check(rules, ca().cert.pem.as_bytes(), pem.as_bytes(), None, NOW, &AwsContext::default())
}

#[track_caller]
fn assert_reason(report: &CheckReport, expected: Option<ReasonCode>) {
    assert_eq!(report.reason, expected, "{}", report.message);
}

fn revoking(serials: &[&[u8]]) -> CrlFile {
    ca().crl_with(&CrlSpec::new(serials))
}

// ---- the decision --------------------------------------------------------------------------------------------

#[test]
fn a_serial_on_the_crl_is_revoked_and_others_provision_in_pem_and_der() {
    let crl = revoking(&[&serial(CN)]);
    for (format, bytes) in [("PEM", crl.pem.as_bytes().to_vec()), ("DER", crl.der.clone())] {
        let (_setup, rules) = Setup::with(&bytes);
        let report = run(&rules, &Device::new(CN));
        assert_reason(&report, Some(ReasonCode::CertRevoked));
        assert_eq!(report.profile.as_deref(), Some("sensors"), "the profile governs on_reject");
        let serial_hex = hex::encode(serial(CN)).trim_start_matches("00").to_owned();
        for needle in [serial_hex.as_str(), "crl/acme.crl", "2025-12-31T00:00:00Z", "sensors"] {
            assert!(report.message.contains(needle), "{format}: {needle} in {}", report.message);
        }
        let other = run(&rules, &Device::new(OTHER_CN));
        assert!(other.accepted(), "{format}: {}", other.message);
    }
    assert_eq!(ReasonCode::CertRevoked.fault(), Fault::Device);
    assert_eq!(ReasonCode::CertRevoked.as_str(), "CERT_REVOKED");
}

#[test]
fn the_message_names_the_revocation_reason_when_the_entry_has_one() {
    let mut spec = CrlSpec::new(&[]);
    spec.revoked.push(Revoked { serial: serial(CN), at: NOW - 3 * DAY, reason: Some(RevocationReason::KeyCompromise) });
    let (_setup, rules) = Setup::with(&ca().crl_with(&spec).der);
    let report = run(&rules, &Device::new(CN));
    assert_reason(&report, Some(ReasonCode::CertRevoked));
    assert!(report.message.contains("keyCompromise"), "{}", report.message);
    assert!(report.message.contains("2025-12-29T00:00:00Z"), "{}", report.message);
}

/// Every CRL of the profile is consulted, not only the first of the CA's; and a valid CRL's revocation is
/// reported even when another CRL of the profile is bad.
#[test]
fn every_crl_of_the_profile_counts() {
    let setup = Setup::new();
    setup.file("empty.crl", &revoking(&[]).der);
    setup.file("second.crl", &revoking(&[&serial(CN)]).der);
    let impostor = Ca::new("Acme Device CA", Alg::P256);
    setup.file("forged.crl", &impostor.crl_with(&CrlSpec::new(&[])).der);
    let rules = setup.rules(&["empty.crl", "second.crl"], "");
    assert_reason(&run(&rules, &Device::new(CN)), Some(ReasonCode::CertRevoked));
    assert!(run(&rules, &Device::new(OTHER_CN)).accepted());
    let rules = setup.rules(&["forged.crl", "second.crl"], "");
    assert_reason(&run(&rules, &Device::new(CN)), Some(ReasonCode::CertRevoked));
    assert_reason(&run(&rules, &Device::new(OTHER_CN)), Some(ReasonCode::CaInvalid));
}

/// A CRL the CA did not issue, or one past its nextUpdate: CA_INVALID (the operator's fault) under the default
/// `crl_policy = "enforce"`, ignored under `"warn"` (its entries too: it is not trusted).
#[test]
fn a_crl_the_ca_did_not_issue_or_a_stale_one() {
    let impostor = Ca::new("Acme Device CA", Alg::P256); // same name, another key
    let stranger = Ca::new("Someone Else CA", Alg::P256);
    let revoked = [serial(CN)];
    let revoked: Vec<&[u8]> = revoked.iter().map(Vec::as_slice).collect();
    let cases: [(&str, CrlFile, &str); 4] = [
        ("same name, another key", impostor.crl_with(&CrlSpec::new(&revoked)), "signature does not verify"),
        ("another CA", stranger.crl_with(&CrlSpec::new(&revoked)), "Someone Else CA"),
        ("past nextUpdate", ca().crl(&revoked, NOW - 10 * DAY, NOW - DAY), "nextUpdate 2025-12-31T00:00:00Z"),
        ("nextUpdate is now", ca().crl(&revoked, NOW - 10 * DAY, NOW), "nextUpdate"),
    ];
    for (name, crl, needle) in cases {
        let (_setup, rules) = Setup::with(&crl.der);
        for device in [CN, OTHER_CN] {
            let report = run(&rules, &Device::new(device));
            assert_reason(&report, Some(ReasonCode::CaInvalid));
            assert!(
                report.message.contains(needle) && report.message.contains("crl/acme.crl"),
                "{name}: {}",
                report.message
            );
        }
        for extra in ["crl_policy = \"warn\""] {
            let (_setup, rules) = Setup::with_policy(&crl.der, extra);
            for device in [CN, OTHER_CN] {
                let report = run(&rules, &Device::new(device));
                assert!(report.accepted(), "{name}, {extra}: {}", report.message);
            }
        }
    }
    assert_eq!(ReasonCode::CaInvalid.fault(), Fault::Operator);
    // Explicitly "enforce" is the default.
    let (_setup, rules) = Setup::with_policy(&ca().crl(&[], NOW - 10 * DAY, NOW - DAY).der, "crl_policy = \"enforce\"");
    assert_reason(&run(&rules, &Device::new(CN)), Some(ReasonCode::CaInvalid));
}

/// The order: the device certificate's own checks (signature, validity, ...) first, then the subject rules
/// that select the profile, then the profile's CRLs (CERT_REVOKED), then the profile's own checks (WEAK_KEY,
/// VALIDITY_TOO_LONG, CERT_DENIED). An expired certificate that is also revoked is CERT_EXPIRED: RFC 5280
/// 6.1.3 (a) checks the validity period before the revocation status, and an expired certificate needs no
/// CRL to be refused.
#[test]
fn cert_revoked_comes_after_the_certificates_own_checks_and_before_the_profiles() {
    let expired = Device { not_before: NOW - 20 * DAY, not_after: NOW - 10 * DAY, ..Device::new(CN) };
    let not_yet = Device { not_before: NOW + 10 * DAY, not_after: NOW + 20 * DAY, ..Device::new(CN) };
    let too_long = Device { not_after: NOW + 900 * DAY, ..Device::new(CN) };
    let weak = Device::new(CN).alg(Alg::Rsa2048);
    let mismatched = Device::new("gw-ab-1234");
    let impostor = Ca::new("Acme Device CA", Alg::P256);
    let forged = impostor.issue(&Device::new(CN)).pem;
    let denied_serial = hex::encode(serial(CN));

    let crl = revoking(&[&serial(CN), &mismatched.serial]);
    let (setup, rules) = Setup::with(&crl.der);
    let cases: [(&str, CheckReport, ReasonCode); 6] = [
        ("expired and revoked", run(&rules, &expired), ReasonCode::CertExpired),
        ("not yet valid and revoked", run(&rules, &not_yet), ReasonCode::CertNotYetValid),
        ("forged and on the CRL", run_pem(&rules, &forged), ReasonCode::SignatureInvalid),
        ("no profile's subject and revoked", run(&rules, &mismatched), ReasonCode::SubjectMismatch),
        ("valid too long and revoked", run(&rules, &too_long), ReasonCode::CertRevoked),
        ("weak key and revoked", run(&rules, &weak), ReasonCode::CertRevoked),
    ];
    for (name, report, expected) in cases {
        assert_eq!(report.reason, Some(expected), "{name}: {}", report.message);
    }
    std::fs::write(setup.dir.path().join("denied.txt"), format!("serial:{denied_serial}\n")).unwrap();
    let text = std::fs::read_to_string(setup.dir.config_path()).unwrap();
    let rules = Rules::load(setup.dir.write_config(&text)).unwrap();
    assert_reason(&run(&rules, &Device::new(CN)), Some(ReasonCode::CertRevoked));
    // Without the CRL entry the same certificates get the profile's codes.
    let (_setup, clean) = Setup::with(&revoking(&[]).der);
    assert_reason(&run(&clean, &too_long), Some(ReasonCode::ValidityTooLong));
    assert_reason(&run(&clean, &weak), Some(ReasonCode::KeyTooShort));
}

// ---- loading ---------------------------------------------------------------------------------------------------

/// Each malformed file is a configuration error naming the key, the file and what is wrong; none panics.
#[test]
fn malformed_crl_files_are_configuration_errors() {
    let good = revoking(&[&serial(CN)]);
    let with_dp =
        ca().crl_with(&CrlSpec { distribution_point: Some("http://crl.acme/a.crl".into()), ..CrlSpec::new(&[]) });
    let delta = replace_all(&good.der, oid::CRL_NUMBER, oid::DELTA_CRL_INDICATOR);
    let critical_unknown = replace_all(&with_dp.der, oid::ISSUING_DISTRIBUTION_POINT, oid::UNKNOWN_EXTENSION);
    let mut trailing = good.der.clone();
    trailing.extend_from_slice(&[0, 0]);
    let cert_pem = ca().cert.pem.clone();
    let relabelled = good.pem.replace("X509 CRL", "CRL");
    let huge = vec![0x30u8; jitp_pki::cert::MAX_CRL_BYTES + 1];
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "empty"),
        ("whitespace", b"  \n\n".to_vec(), "empty"),
        ("garbage", b"this is not a CRL".to_vec(), "neither PEM"),
        ("binary garbage", vec![0xde, 0xad, 0xbe, 0xef], "neither PEM"),
        ("truncated DER", good.der[..good.der.len() / 2].to_vec(), "not a valid DER CRL"),
        ("trailing bytes", trailing, "not a valid DER CRL"),
        ("truncated PEM", good.pem.as_bytes()[..good.pem.len() / 2].to_vec(), "PEM"),
        ("a certificate", cert_pem.into_bytes(), "CERTIFICATE"),
        ("wrong label", relabelled.into_bytes(), "not X509 CRL"),
        ("two blocks", format!("{}{}", good.pem, good.pem).into_bytes(), "exactly one PEM block"),
        ("text after the block", format!("{}signed by me\n", good.pem).into_bytes(), "after the CRL block"),
        (
            "text before the block",
            format!("Certificate Revocation List (CRL):\n{}", good.pem).into_bytes(),
            "before the CRL block",
        ),
        ("a delta CRL", delta, "delta CRL"),
        ("a critical unknown extension", critical_unknown, "critical"),
        ("huge", huge, "limit"),
    ];
    let setup = Setup::new();
    for (name, bytes, needle) in cases {
        setup.file("bad.crl", &bytes);
        let err = setup.load(&["bad.crl"], "").map(|_| ()).unwrap_err();
        for want in ["profiles[0].crl", "bad.crl", needle] {
            assert!(err.contains(want), "{name}: {want:?} in {err}");
        }
    }
    let err = setup.load(&["missing.crl"], "").map(|_| ()).unwrap_err();
    assert!(err.contains("profiles[0].crl") && err.contains("missing.crl") && err.contains("cannot read"), "{err}");
    setup.file("good.crl", &good.der);
    let err = setup.load(&["good.crl"], "crl_policy = \"sometimes\"").map(|_| ()).unwrap_err();
    assert!(err.contains("sometimes") && err.contains("enforce"), "{err}");
    // The issuing distribution point itself (critical, known) is fine, for the devices that name it.
    setup.file("dp.crl", &with_dp.der);
    let named = with_cdp(CN, Some(&[Cdp::uri("http://crl.acme/a.crl")]));
    assert!(run(&setup.rules(&["dp.crl"], ""), &named).accepted());
}

#[test]
fn the_loaded_crl_reports_what_it_holds() {
    let (_setup, rules) = Setup::with(&revoking(&[&serial(CN), &serial(OTHER_CN)]).pem.into_bytes());
    let profile = rules.config().profile("sensors").unwrap();
    let [listed] = profile.crl.as_slice() else { panic!("one CRL") };
    assert_eq!(listed.file, "crl/acme.crl");
    assert_eq!(listed.crl.revoked_count(), 2);
    assert_eq!(listed.crl.next_update(), NOW + 7 * DAY);
    assert!(listed.crl.issuer().contains("Acme Device CA"), "{}", listed.crl.issuer());
    assert_eq!(profile.crl_policy, jitp_profile::profile::CrlPolicy::Enforce);
}

// ---- the workflow ----------------------------------------------------------------------------------------------

struct World {
    registry: Arc<jitp_registry::memory::MemoryRegistry>,
    ca_id: jitp_pki::ids::CaCertificateId,
}

impl World {
    fn new() -> Self {
        let registry = Arc::new(jitp_registry::memory::MemoryRegistry::new());
        let ca_id = registry.register_ca(&ca().cert.pem, true).unwrap();
        Self { registry, ca_id }
    }

    fn provisioner(&self, rules: Rules) -> Provisioner {
        self.provisioner_arc(Arc::new(rules))
    }

    fn provisioner_arc(&self, rules: Arc<Rules>) -> Provisioner {
        let settings = Settings { retry_base: std::time::Duration::from_millis(1), ..Settings::default() };
        Provisioner::new(rules, self.registry.clone() as Arc<dyn IotRegistry>, settings)
    }

    fn register(&self, device: &Device) -> (jitp_pki::ids::CertificateId, String) {
        let id = self.registry.register_certificate(&ca().issue(device).pem, &self.ca_id).unwrap();
        let event = jitp_testkit::event_for_ids(id.as_str(), self.ca_id.as_str());
        (id, event)
    }
}

#[tokio::test]
async fn a_revoked_device_gets_on_reject_and_nothing_is_created() {
    let world = World::new();
    let (_setup, rules) = Setup::with(&revoking(&[&serial(CN)]).pem.into_bytes());
    let provisioner = world.provisioner(rules);
    let (id, event) = world.register(&Device::new(CN));
    let record = provisioner.handle_bytes(event.as_bytes(), NOW).await;
    assert_eq!(record.outcome, Outcome::Rejected, "{}", record.message);
    assert_eq!(record.reason, Some(ReasonCode::CertRevoked));
    assert_eq!(record.certificate_action.map(|a| a.as_str()), Some("REVOKED"));
    assert_eq!(world.registry.certificate_status(&id), Some(CertificateStatus::Revoked));
    assert!(world.registry.thing_names().is_empty());
    assert!(world.registry.policies().is_empty());
    // The others of the CA provision.
    let (other, event) = world.register(&Device::new(OTHER_CN));
    let record = provisioner.handle_bytes(event.as_bytes(), NOW).await;
    assert_eq!(record.outcome, Outcome::Provisioned, "{}", record.message);
    assert_eq!(world.registry.certificate_status(&other), Some(CertificateStatus::Active));
}

#[tokio::test]
async fn on_reject_deactivate_applies_to_a_revoked_device() {
    let world = World::new();
    let (_setup, rules) = Setup::with_policy(&revoking(&[&serial(CN)]).der, "on_reject = \"deactivate\"");
    let (id, event) = world.register(&Device::new(CN));
    let record = world.provisioner(rules).handle_bytes(event.as_bytes(), NOW).await;
    assert_eq!(record.reason, Some(ReasonCode::CertRevoked));
    assert_eq!(world.registry.certificate_status(&id), Some(CertificateStatus::Inactive));
}

/// A CRL signed by another key under the CA's name, or a stale one: the device is held (PENDING, the event
/// handed back); once the security team publishes a good CRL and the configuration is reloaded, the
/// redelivered event provisions it.
#[tokio::test]
async fn a_bad_crl_holds_the_device_until_it_is_fixed() {
    let impostor = Ca::new("Acme Device CA", Alg::P256);
    for (name, bad) in
        [("forged", impostor.crl_with(&CrlSpec::new(&[]))), ("stale", ca().crl(&[], NOW - 10 * DAY, NOW - DAY))]
    {
        let world = World::new();
        let (setup, rules) = Setup::with(&bad.der);
        let (id, event) = world.register(&Device::new(CN));
        let record = world.provisioner(rules).handle_bytes(event.as_bytes(), NOW).await;
        assert_eq!(record.outcome, Outcome::Held, "{name}: {}", record.message);
        assert_eq!(record.reason, Some(ReasonCode::CaInvalid), "{name}");
        assert!(record.is_retryable(), "{name}: the event is handed back");
        assert_eq!(record.certificate_action.map(|a| a.as_str()), Some("LEFT_PENDING"), "{name}");
        assert_eq!(world.registry.certificate_status(&id), Some(CertificateStatus::PendingActivation), "{name}");
        assert!(world.registry.thing_names().is_empty(), "{name}");

        setup.file("acme.crl", &revoking(&[&serial(OTHER_CN)]).der);
        let fixed = world.provisioner(setup.rules(&["acme.crl"], ""));
        let record = fixed.handle_bytes(event.as_bytes(), NOW).await;
        assert_eq!(record.outcome, Outcome::Provisioned, "{name}: {}", record.message);
        assert_eq!(world.registry.certificate_status(&id), Some(CertificateStatus::Active), "{name}");
    }
}

#[tokio::test]
async fn with_crl_policy_warn_a_stale_crl_is_ignored() {
    let world = World::new();
    let stale = ca().crl(&[], NOW - 10 * DAY, NOW - DAY);
    let (_setup, rules) = Setup::with_policy(&stale.der, "crl_policy = \"warn\"");
    let (id, event) = world.register(&Device::new(CN));
    let record = world.provisioner(rules).handle_bytes(event.as_bytes(), NOW).await;
    assert_eq!(record.outcome, Outcome::Provisioned, "{}", record.message);
    assert_eq!(world.registry.certificate_status(&id), Some(CertificateStatus::Active));
}

// ---- against the CA, directly ------------------------------------------------------------------------------

fn trusted(ca: &Ca) -> jitp_pki::cert::TrustedCa {
    jitp_pki::cert::TrustedCa::check(jitp_pki::cert::Certificate::from_pem(ca.cert.pem.as_bytes()).unwrap()).unwrap()
}

/// A CA whose keyUsage lacks cRLSign cannot issue CRLs (RFC 5280 4.2.1.3), even one its key signed.
#[test]
fn a_ca_without_crl_sign_issues_no_valid_crl() {
    use jitp_testkit::{CaSpec, KeyUsage};
    // RSA CA keys are pooled: the two CAs share the name and the key, and differ only in keyUsage.
    let signer = Ca::build(&CaSpec::new("Acme RSA CA", Alg::Rsa2048), None);
    let no_crl_sign = Ca::build(
        &CaSpec { key_usages: vec![KeyUsage::KeyCertSign], ..CaSpec::new("Acme RSA CA", Alg::Rsa2048) },
        None,
    );
    let crl = jitp_pki::cert::Crl::from_bytes(&signer.crl_with(&CrlSpec::new(&[])).der).unwrap();
    assert!(crl.verify(&trusted(&signer)).is_ok());
    let err = crl.verify(&trusted(&no_crl_sign)).unwrap_err();
    assert!(err.contains("cRLSign"), "{err}");
}

/// jitp's verdict agrees with webpki's own revocation check (`verify_for_usage` with `RevocationOptions`) on
/// every variant both can judge: revoked, not listed, a CRL signed by another key, a stale CRL.
#[test]
fn the_verdict_agrees_with_webpkis_revocation_check() {
    use rustls_pki_types::{CertificateDer, UnixTime};
    let impostor = Ca::new("Acme Device CA", Alg::P256);
    let variants = [
        ("revoked", revoking(&[&serial(CN)]), CN, Some(ReasonCode::CertRevoked)),
        ("not listed", revoking(&[&serial(OTHER_CN)]), CN, None),
        ("another key", impostor.crl_with(&CrlSpec::new(&[&serial(CN)])), CN, Some(ReasonCode::CaInvalid)),
        ("stale", ca().crl(&[&serial(CN)], NOW - 10 * DAY, NOW - DAY), CN, Some(ReasonCode::CaInvalid)),
    ];
    for (name, crl, cn, expected) in variants {
        let (_setup, rules) = Setup::with(&crl.der);
        let device = ca().issue(&Device::new(cn));
        assert_eq!(run_pem(&rules, &device.pem).reason, expected, "{name}");

        let parsed = webpki::OwnedCertRevocationList::from_der(&crl.der).unwrap().into();
        let crls = [&parsed];
        let options = webpki::RevocationOptionsBuilder::new(&crls)
            .unwrap()
            .with_depth(webpki::RevocationCheckDepth::EndEntity)
            .with_status_policy(webpki::UnknownStatusPolicy::Allow)
            .with_expiration_policy(webpki::ExpirationPolicy::Enforce)
            .build();
        let ca_der = CertificateDer::from(ca().cert.der.as_slice());
        let anchor = webpki::anchor_from_trusted_cert(&ca_der).unwrap();
        let device_der = CertificateDer::from(device.der.as_slice());
        let leaf = webpki::EndEntityCert::try_from(&device_der).unwrap();
        let webpki_says = leaf
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &[anchor],
                &[],
                UnixTime::since_unix_epoch(std::time::Duration::from_secs(NOW as u64)),
                webpki::KeyUsage::client_auth(),
                Some(options),
                None,
            )
            .map(|_| ());
        let webpki_code = match webpki_says {
            Ok(()) => None,
            Err(webpki::Error::CertRevoked) => Some(ReasonCode::CertRevoked),
            Err(webpki::Error::InvalidCrlSignatureForPublicKey | webpki::Error::CrlExpired { .. }) => {
                Some(ReasonCode::CaInvalid)
            }
            Err(other) => panic!("{name}: webpki says {other:?}"),
        };
        assert_eq!(webpki_code, expected, "{name}: webpki and jitp disagree");
    }
}

/// Every byte of a CRL, overwritten: loading and verifying it is an error or a CRL, never a panic.
#[test]
fn hostile_bytes_never_panic() {
    let with_dp = ca().crl_with(&CrlSpec {
        distribution_point: Some("http://crl.acme/a.crl".into()),
        ..CrlSpec::new(&[&serial(CN), &serial(OTHER_CN)])
    });
    let ca = trusted(ca());
    let device = jitp_pki::cert::Certificate::from_pem(ca_issue(CN).as_bytes()).unwrap();
    for i in 0..with_dp.der.len() {
        for byte in [0x00, 0xff, with_dp.der[i] ^ 0x01, 0x80] {
            let mut der = with_dp.der.clone();
            der[i] = byte;
            if let Ok(crl) = jitp_pki::cert::Crl::from_bytes(&der)
                && let Ok(proof) = crl.verify(&ca)
            {
                let _ = crl.revocation(&device, proof);
            }
        }
        let _ = jitp_pki::cert::Crl::from_bytes(&with_dp.der[..i]);
    }
}

fn ca_issue(cn: &str) -> String {
    ca().issue(&Device::new(cn)).pem
}

/// CRLs signed with every key type a CA may have verify, and revoke.
#[test]
fn crls_of_rsa_and_every_ec_curve_verify() {
    for alg in [Alg::Rsa2048, Alg::Rsa3072, Alg::P256, Alg::P384, Alg::P521] {
        let ca = Ca::new(&format!("CRL CA {alg:?}"), alg);
        let setup = Setup::new();
        setup.file("acme.crl", &ca.crl_with(&CrlSpec::new(&[&serial(CN)])).der);
        let rules = setup.rules(&["acme.crl"], "");
        let run = |cn: &str| {
            let pem = ca.issue(&Device::new(cn)).pem;
            check(&rules, ca.cert.pem.as_bytes(), pem.as_bytes(), None, NOW, &AwsContext::default())
        };
        assert_reason(&run(CN), Some(ReasonCode::CertRevoked));
        let other = run(OTHER_CN);
        assert!(other.accepted(), "{alg:?}: {}", other.message);
    }
}

// ---- S3 CRLs (`crl = ["s3://bucket/key"]`): the caller fetches, the core parses -------------------------------

const S3_URI: &str = "s3://acme-pki/crl/acme-issuing.crl";

fn s3_config(setup: &Setup, entries: &[&str]) -> std::path::PathBuf {
    let list: Vec<String> = entries.iter().map(|f| format!("{f:?}")).collect();
    let text = format!(
        "[[profiles]]\nname = \"sensors\"\nca = [\"*\"]\ncommon_name = 'sensor-[0-9a-f]{{12}}'\nthing_name = \"{{{{ subject.cn }}}}\"\npolicy = \"policies/sensor.json.tera\"\ncrl = [{}]\n",
        list.join(", ")
    );
    setup.dir.write_config(&text)
}

fn objects(pairs: &[(&str, &[u8])]) -> jitp_profile::profile::CrlObjects {
    pairs.iter().map(|(uri, bytes)| (uri.parse().unwrap(), Arc::from(*bytes))).collect()
}

fn load_s3(path: &std::path::Path, objects: jitp_profile::profile::CrlObjects) -> Result<Rules, String> {
    let overrides = jitp_profile::profile::Overrides { crl_objects: objects, ..Default::default() };
    Rules::load_with(path, &overrides).map_err(|e| e.to_string())
}

#[test]
fn an_s3_crl_from_the_callers_bytes_revokes_through_the_same_pipeline() {
    let setup = Setup::new();
    setup.file("local.crl", &revoking(&[&serial(OTHER_CN)]).der);
    let path = s3_config(&setup, &[S3_URI, "crl/local.crl", S3_URI]);
    let listed = jitp_profile::profile::Config::crl_objects(&path).unwrap();
    assert_eq!(listed.iter().map(ToString::to_string).collect::<Vec<_>>(), [S3_URI], "each object once");
    assert_eq!((listed[0].bucket(), listed[0].key()), ("acme-pki", "crl/acme-issuing.crl"));

    let rules = load_s3(&path, objects(&[(S3_URI, revoking(&[&serial(CN)]).pem.as_bytes())])).unwrap();
    let report = run(&rules, &Device::new(CN));
    assert_reason(&report, Some(ReasonCode::CertRevoked));
    assert!(report.message.contains(S3_URI), "{}", report.message);
    assert_reason(&run(&rules, &Device::new(OTHER_CN)), Some(ReasonCode::CertRevoked));
    assert_eq!(rules.config().s3_crls(), listed);

    // Not fetched, oversized, not a CRL: configuration errors naming the key and the URI.
    let missing = load_s3(&path, objects(&[])).unwrap_err();
    assert!(
        missing.contains("profiles[0].crl") && missing.contains(S3_URI) && missing.contains("not fetched"),
        "{missing}"
    );
    let huge = vec![0x30; jitp_pki::cert::MAX_CRL_BYTES + 1];
    let too_big = load_s3(&path, objects(&[(S3_URI, &huge)])).unwrap_err();
    assert!(too_big.contains(S3_URI) && too_big.contains("limit"), "{too_big}");
    let garbage = load_s3(&path, objects(&[(S3_URI, b"not a crl")])).unwrap_err();
    assert!(garbage.contains("profiles[0].crl") && garbage.contains(S3_URI), "{garbage}");
}

#[test]
fn a_refresh_replaces_the_s3_crls_and_keeps_the_rest() {
    let setup = Setup::new();
    setup.file("local.crl", &revoking(&[&serial(OTHER_CN)]).der);
    let path = s3_config(&setup, &[S3_URI, "crl/local.crl"]);
    let first = load_s3(&path, objects(&[(S3_URI, &revoking(&[]).der)])).unwrap();
    assert!(run(&first, &Device::new(CN)).accepted());
    let third = Device::new("sensor-0000000000aa");
    let second = first.with_crl_objects(&objects(&[(S3_URI, &revoking(&[&serial(CN)]).der)])).unwrap();
    assert_reason(&run(&second, &Device::new(CN)), Some(ReasonCode::CertRevoked));
    assert_reason(&run(&second, &Device::new(OTHER_CN)), Some(ReasonCode::CertRevoked));
    assert!(run(&second, &third).accepted());
    assert!(run(&first, &Device::new(CN)).accepted(), "the old rules are unchanged");
    let bad = first.with_crl_objects(&objects(&[(S3_URI, b"\x30\x00")])).unwrap_err().to_string();
    assert!(bad.contains("profiles[0].crl") && bad.contains(S3_URI), "{bad}");
}

#[tokio::test]
async fn a_provisioner_with_new_rules_does_not_serve_the_old_crl_proofs() {
    let world = World::new();
    let setup = Setup::new();
    let path = s3_config(&setup, &[S3_URI]);
    let first = Arc::new(load_s3(&path, objects(&[(S3_URI, &revoking(&[]).der)])).unwrap());
    let old = world.provisioner_arc(first.clone());
    let (early, event) = world.register(&Device::new(OTHER_CN));
    let record = old.handle_bytes(event.as_bytes(), NOW).await;
    assert_eq!(record.outcome, Outcome::Provisioned, "{}", record.message);
    // Published: a CRL revoking CN. The CA is cached by `old`; the derived provisioner checks it again.
    let second = Arc::new(first.with_crl_objects(&objects(&[(S3_URI, &revoking(&[&serial(CN)]).der)])).unwrap());
    let new = old.with_rules(second).unwrap();
    let (id, event) = world.register(&Device::new(CN));
    let record = new.handle_bytes(event.as_bytes(), NOW).await;
    assert_eq!(record.reason, Some(ReasonCode::CertRevoked), "{}", record.message);
    assert_eq!(world.registry.certificate_status(&id), Some(CertificateStatus::Revoked));
    assert_eq!(world.registry.certificate_status(&early), Some(CertificateStatus::Active), "unaffected in state");

    // A CRL under the CA's name signed by another key: it parses, but no longer verifies against the cached CA,
    // so the new provisioner is refused and the caller keeps `new`.
    let impostor = Ca::new("Acme Device CA", Alg::P256);
    let forged = impostor.crl_with(&CrlSpec::new(&[]));
    let third = Arc::new(first.with_crl_objects(&objects(&[(S3_URI, &forged.der)])).unwrap());
    let refused = new.with_rules(third).unwrap_err().to_string();
    assert!(
        refused.contains("profiles[0].crl") && refused.contains(S3_URI) && refused.contains("no longer verifies"),
        "{refused}"
    );
}

#[test]
fn malformed_s3_uris_are_configuration_errors_naming_the_key_the_value_and_the_rule() {
    let setup = Setup::new();
    for (uri, rule) in [
        ("s3:///key.crl", "bucket name is empty"),
        ("s3://Acme-PKI/key.crl", "not valid"),
        ("s3://acme_pki/key.crl", "not valid"),
        ("s3://ab/key.crl", "not valid"),
        ("s3://-acme/key.crl", "not valid"),
        ("s3://acme..pki/key.crl", "adjacent periods"),
        ("s3://192.168.1.1/key.crl", "IP address"),
        ("s3://xn--acme/key.crl", "reserves"),
        ("s3://acme-s3alias/key.crl", "reserves"),
        ("s3://acme-pki", "no key"),
        ("s3://acme-pki/", "no key"),
        ("s3:/acme-pki/key.crl", "s3://bucket/key"),
        ("S3://acme-pki/key.crl", "lowercase"),
        ("https://acme-pki/key.crl", "s3://bucket/key"),
        ("s3://acme-pki/key.crl?versionId=1", "query string"),
        ("s3://acme-pki/key.crl#x", "fragment"),
        ("s3://acme-pki/key%20.crl", "percent"),
        ("s3://acme-pki/../key.crl", "\"..\" segment"),
        ("s3://acme-pki/crl//key.crl", "empty"),
        ("s3://acme-pki/crl/", "folder"),
        ("s3://acme-pki/crl/*.crl", "wildcard"),
        ("s3://acme-pki/crl/${aws:username}", "wildcard"),
        ("s3://acme-pki/key crl", "wildcard"),
        ("s3://acme-pki/a.crl,s3://acme-pki/b.crl", "comma"),
    ] {
        let path = s3_config(&setup, &[uri]);
        for error in [
            load_s3(&path, objects(&[])).unwrap_err(),
            jitp_profile::profile::Config::crl_objects(&path).unwrap_err().to_string(),
        ] {
            let value = format!("{uri:?}");
            assert!(error.contains("profiles[0].crl") && error.contains(&value), "{uri}: {error}");
            assert!(error.contains(rule), "{uri}: {rule:?} in {error}");
            assert!(error.contains(":7:"), "{uri}: the line in {error}");
        }
    }
    let long_key = format!("s3://acme-pki/{}", "k".repeat(1025));
    assert!(jitp_pki::ids::S3Object::parse(&long_key).unwrap_err().contains("1024"));
    assert!(jitp_pki::ids::S3Object::parse(&format!("s3://{}/k", "a".repeat(64))).is_err());
    for good in ["s3://acme-pki/k", "s3://a.b-c/crl/2026/acme(1).crl", "s3://123/x=y+z@a:b!_'"] {
        let object = jitp_pki::ids::S3Object::parse(good).unwrap();
        assert_eq!(object.to_string(), good);
    }
}

#[test]
fn s3_uri_parsing_never_panics() {
    proptest::proptest!(|(s in "\\PC{0,80}", t in "s3://[a-z.-]{0,8}/[ -~]{0,12}")| {
        let _ = jitp_pki::ids::S3Object::parse(&s);
        if let Ok(object) = jitp_pki::ids::S3Object::parse(&t) {
            proptest::prop_assert_eq!(object.to_string(), t);
        }
    });
}

/// Under `crl_policy = "warn"` a stale CRL is ignored with one warning per cached CA, not one per decision: a
/// burst of devices under it logs it once, and every one of them provisions.
#[tokio::test(flavor = "current_thread")]
async fn an_ignored_crl_is_logged_once_per_cached_ca_not_per_device() {
    let log = CapturedLog::default();
    let _guard = tracing::subscriber::set_default(log.subscriber());
    let world = World::new();
    let (_setup, rules) = Setup::with_policy(&ca().crl(&[], NOW - 10 * DAY, NOW - DAY).der, "crl_policy = \"warn\"");
    let provisioner = world.provisioner(rules);
    for i in 0..5 {
        let (_, event) = world.register(&Device::new(&format!("sensor-{i:012x}")));
        let record = provisioner.handle_bytes(event.as_bytes(), NOW).await;
        assert_eq!(record.outcome, Outcome::Provisioned, "{}", record.message);
    }
    assert_eq!(log.count("CRL ignored"), 1, "one warning for five devices");
    assert_eq!(log.count("is stale"), 1);
}

// ---- scope: which devices a CRL covers (RFC 5280 5.2.5, 6.3.3 (b)(2)) ------------------------------------------

use jitp_testkit::crl_ext::{Cdp, DpName, Idp, RawExtension};

const DP_A: &str = "http://crl.acme.example/part-a.crl";
const DP_B: &str = "http://crl.acme.example/part-b.crl";
const KEY_COMPROMISE: u16 = 1 << 1;
/// The registered CA's subject, RFC 4514 (as `Ca::new` names it).
const CA_DN: &str = "CN=Acme Device CA,O=jitp test";

fn uris(uri: &str) -> Option<DpName> {
    Some(DpName::Uris(vec![uri.to_owned()]))
}

/// A CRL with this issuingDistributionPoint (`None`: none) and these extra extensions, revoking `serials`.
fn scoped(idp: Option<&Idp>, extra: &[RawExtension], serials: &[&[u8]]) -> CrlFile {
    let mut extensions: Vec<RawExtension> = idp.map(RawExtension::idp).into_iter().collect();
    extensions.extend(extra.iter().cloned());
    if extensions.is_empty() {
        // resign only when asked: a CRL exactly as rcgen writes it
        return revoking(serials);
    }
    ca().crl_with(&CrlSpec { extensions, ..CrlSpec::new(serials) })
}

fn with_cdp(cn: &str, points: Option<&[Cdp]>) -> Device {
    Device { crl_distribution_points: points.map(jitp_testkit::crl_ext::cdp), ..Device::new(cn) }
}

/// How far a CRL covers a device.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Covers {
    /// For every reason: its entry revokes, its silence accepts.
    All,
    /// For some reasons: its entry revokes, its silence is not enough.
    Some,
    /// Not at all: its entry is a contradiction (held), its silence says nothing.
    No,
}

/// Each scope a CRL can have, against devices with each kind of cRLDistributionPoints: a device on the CRL is
/// revoked only where the CRL covers it, a device not on it is accepted only where it is covered for every
/// reason, and a device no CRL covers is held (CRL_SCOPE_MISMATCH), never accepted, under `enforce`.
#[test]
fn a_crl_covers_a_device_only_when_its_scope_includes_it() {
    let a = [Cdp::uri(DP_A)];
    let b = [Cdp::uri(DP_B)];
    let both = [Cdp::uri(DP_B), Cdp::uri(DP_A)];
    let upper = [Cdp::uri(&DP_A.replace("http://crl.acme", "HTTP://CRL.ACME"))];
    let rel1 = [Cdp { name: Some(DpName::RelativeCn("partition 1".into())), reasons: None, crl_issuer: None }];
    let rel2 = [Cdp { name: Some(DpName::RelativeCn("partition 2".into())), reasons: None, crl_issuer: None }];
    let key_only = [Cdp { name: uris(DP_A), reasons: Some(KEY_COMPROMISE), crl_issuer: None }];
    let indirect = [Cdp { name: uris(DP_A), reasons: None, crl_issuer: Some("http://other.example/".into()) }];
    let issuer_dn = Idp { name: Some(DpName::Directory(CA_DN.into())), ..Idp::default() };
    let full_a = Idp { name: uris(DP_A), ..Idp::default() };
    let user_a = Idp { name: uris(DP_A), only_user: true, ..Idp::default() };
    let user_only = Idp { only_user: true, ..Idp::default() };
    let rel_idp = Idp { name: Some(DpName::RelativeCn("partition 1".into())), ..Idp::default() };
    let some_reasons = Idp { only_some_reasons: Some(KEY_COMPROMISE), ..Idp::default() };
    use Covers::{All, No, Some as Partly};
    /// (name, the CRL's IDP, the device's points, covered?)
    type Case<'a> = (&'a str, Option<&'a Idp>, Option<&'a [Cdp]>, Covers);
    let cases: Vec<Case> = vec![
        ("no IDP, no CDP", None, None, All),
        ("no IDP, CDP A", None, Some(&a), All),
        ("IDP A, CDP A", Some(&full_a), Some(&a), All),
        ("IDP A, CDP B then A", Some(&full_a), Some(&both), All),
        ("IDP A + onlyContainsUserCerts, CDP A", Some(&user_a), Some(&a), All),
        ("onlyContainsUserCerts without a name, CDP B", Some(&user_only), Some(&b), All),
        ("onlyContainsUserCerts without a name, no CDP", Some(&user_only), None, All),
        ("IDP names the issuer, no CDP", Some(&issuer_dn), None, All),
        ("IDP relative 'partition 1', CDP relative 'partition 1'", Some(&rel_idp), Some(&rel1), All),
        ("IDP A, CDP B", Some(&full_a), Some(&b), No),
        ("IDP A, no CDP", Some(&full_a), None, No),
        ("IDP A, CDP A in upper case", Some(&full_a), Some(&upper), No),
        ("IDP relative 'partition 1', CDP relative 'partition 2'", Some(&rel_idp), Some(&rel2), No),
        ("IDP A, CDP A for keyCompromise only", Some(&full_a), Some(&key_only), Partly),
        ("IDP A, CDP A with a cRLIssuer (indirect)", Some(&full_a), Some(&indirect), No),
        ("onlySomeReasons keyCompromise, no CDP", Some(&some_reasons), None, Partly),
    ];
    for (name, idp, points, covered) in cases {
        let listed = with_cdp(CN, points);
        let unlisted = with_cdp(OTHER_CN, points);
        let (_setup, rules) = Setup::with(&scoped(idp, &[], &[&listed.serial]).der);
        let on_it = run(&rules, &listed);
        let off_it = run(&rules, &unlisted);
        if covered != No {
            assert_eq!(on_it.reason, Some(ReasonCode::CertRevoked), "{name}: {}", on_it.message);
        }
        if covered == All {
            assert!(off_it.accepted(), "{name}: {}", off_it.message);
        } else {
            assert_eq!(off_it.reason, Some(ReasonCode::CrlScopeMismatch), "{name}: {}", off_it.message);
            assert!(off_it.message.contains("crl/acme.crl"), "{name}: {}", off_it.message);
            let (_setup, warn) = Setup::with_policy(&scoped(idp, &[], &[&listed.serial]).der, "crl_policy = \"warn\"");
            assert!(run(&warn, &unlisted).accepted(), "{name} (warn)");
        }
        if covered == No {
            for report in [&on_it, &off_it] {
                assert_eq!(report.reason, Some(ReasonCode::CrlScopeMismatch), "{name}: {}", report.message);
                assert!(report.message.contains("crl/acme.crl"), "{name}: {}", report.message);
            }
            // Listed on a CRL that does not cover it: held in both policies.
            let (_setup, warn) = Setup::with_policy(&scoped(idp, &[], &[&listed.serial]).der, "crl_policy = \"warn\"");
            assert_eq!(run(&warn, &listed).reason, Some(ReasonCode::CrlScopeMismatch), "{name} (warn)");
        }
    }
    assert_eq!(ReasonCode::CrlScopeMismatch.fault(), Fault::Operator);
    assert_eq!(ReasonCode::CrlScopeMismatch.as_str(), "CRL_SCOPE_MISMATCH");
}

/// The measured fault: the operator lists partition A of a partitioned CRL; a device of partition B, revoked
/// on B, was provisioned. Now it is held until B is listed, and then revoked.
#[test]
fn a_device_of_a_partition_the_operator_did_not_list_is_held_then_revoked_once_it_is_listed() {
    let device = with_cdp(CN, Some(&[Cdp::uri(DP_B)]));
    let part_a = scoped(Some(&Idp { name: uris(DP_A), only_user: true, ..Idp::default() }), &[], &[]);
    let part_b = scoped(Some(&Idp { name: uris(DP_B), only_user: true, ..Idp::default() }), &[], &[&device.serial]);
    let setup = Setup::new();
    setup.file("a.crl", &part_a.der).file("b.crl", &part_b.der);
    let report = run(&setup.rules(&["a.crl"], ""), &device);
    assert_reason(&report, Some(ReasonCode::CrlScopeMismatch));
    for needle in [DP_A, DP_B, "crl/a.crl", "enforce"] {
        assert!(report.message.contains(needle), "{needle} in {}", report.message);
    }
    assert_reason(&run(&setup.rules(&["a.crl", "b.crl"], ""), &device), Some(ReasonCode::CertRevoked));
    let other_b = with_cdp(OTHER_CN, Some(&[Cdp::uri(DP_B)]));
    assert!(run(&setup.rules(&["a.crl", "b.crl"], ""), &other_b).accepted());
}

/// CRLs that cover only some reasons cover a device together when their reasons add up to all of them
/// (RFC 5280 6.3.3 reasons_mask).
#[test]
fn crls_partitioned_by_reason_cover_a_device_together() {
    let key = Idp { only_some_reasons: Some(KEY_COMPROMISE), ..Idp::default() };
    let rest = Idp { only_some_reasons: Some(jitp_pki::cert::ALL_REASONS & !KEY_COMPROMISE), ..Idp::default() };
    let setup = Setup::new();
    setup.file("key.crl", &scoped(Some(&key), &[], &[]).der);
    setup.file("rest.crl", &scoped(Some(&rest), &[], &[&serial(CN)]).der);
    assert_reason(&run(&setup.rules(&["key.crl"], ""), &Device::new(OTHER_CN)), Some(ReasonCode::CrlScopeMismatch));
    let both = setup.rules(&["key.crl", "rest.crl"], "");
    assert!(run(&both, &Device::new(OTHER_CN)).accepted());
    assert_reason(&run(&both, &Device::new(CN)), Some(ReasonCode::CertRevoked));
}

/// Scopes jitp cannot use for a device are refused when the CRL loads, naming the field and what jitp needs.
#[test]
fn crls_that_cannot_speak_for_a_device_are_refused_at_load_with_what_jitp_needs() {
    let cases: [(&str, Idp, &[&str]); 7] = [
        ("CA certificates only", Idp { only_ca: true, ..Idp::default() }, &["onlyContainsCACerts", "end-entity"]),
        (
            "CA certificates only, with a name",
            Idp { name: uris(DP_A), only_ca: true, ..Idp::default() },
            &["onlyContainsCACerts"],
        ),
        (
            "attribute certificates",
            Idp { only_attribute: true, ..Idp::default() },
            &["onlyContainsAttributeCerts", "end-entity"],
        ),
        ("indirect", Idp { name: uris(DP_A), indirect: true, ..Idp::default() }, &["indirectCRL", "own CRL"]),
        ("empty", Idp::default(), &["empty SEQUENCE"]),
        (
            "no reason",
            Idp { only_some_reasons: Some(1), ..Idp::default() },
            &["onlySomeReasons", "no revocation reason"],
        ),
        ("both user and CA only", Idp { only_user: true, only_ca: true, ..Idp::default() }, &["onlyContainsCACerts"]),
    ];
    let setup = Setup::new();
    for (name, idp, needles) in cases {
        setup.file("bad.crl", &scoped(Some(&idp), &[], &[]).der);
        let err = setup.load(&["bad.crl"], "").map(|_| ()).unwrap_err();
        for needle in needles.iter().chain(&["profiles[0].crl", "bad.crl", "issuingDistributionPoint"]) {
            assert!(err.contains(needle), "{name}: {needle:?} in {err}");
        }
        assert!(!err.contains("not a full name"), "{name}: {err}");
    }
}

// ---- holds: certificateHold is a suspension, removeFromCRL lifts it ---------------------------------------------

fn holding(reason: jitp_testkit::RevocationReason, cn: &str) -> CrlFile {
    let mut spec = CrlSpec::new(&[]);
    spec.revoked.push(Revoked { serial: serial(cn), at: NOW - 2 * DAY, reason: Some(reason) });
    ca().crl_with(&spec)
}

#[test]
fn a_certificate_on_hold_is_held_not_revoked_and_the_message_says_it_is_a_suspension() {
    let (_setup, rules) = Setup::with(&holding(RevocationReason::CertificateHold, CN).der);
    let report = run(&rules, &Device::new(CN));
    assert_reason(&report, Some(ReasonCode::CertOnHold));
    for needle in ["crl/acme.crl", "2025-12-30T00:00:00Z", "suspension", "certificateHold", "sensors"] {
        assert!(report.message.contains(needle), "{needle} in {}", report.message);
    }
    assert!(run(&rules, &Device::new(OTHER_CN)).accepted());
    assert_eq!(ReasonCode::CertOnHold.fault(), Fault::Operator, "held, never on_reject");
    assert_eq!(ReasonCode::CertOnHold.as_str(), "CERT_ON_HOLD");
    // Under warn too: a hold is the CA's word, not a CRL fault warn could ignore.
    let (_setup, warn) =
        Setup::with_policy(&holding(RevocationReason::CertificateHold, CN).der, "crl_policy = \"warn\"");
    assert_reason(&run(&warn, &Device::new(CN)), Some(ReasonCode::CertOnHold));
}

/// removeFromCRL belongs in delta CRLs (RFC 5280 5.3.1); in a full CRL jitp reads it as 6.3.3 (k) does: not
/// revoked. A revocation on another CRL wins over a hold on one.
#[test]
fn remove_from_crl_is_not_a_revocation_and_a_revocation_wins_over_a_hold() {
    let (_setup, rules) = Setup::with(&holding(RevocationReason::RemoveFromCrl, CN).der);
    let report = run(&rules, &Device::new(CN));
    assert!(report.accepted(), "{}", report.message);
    let profile = rules.config().profile("sensors").unwrap();
    assert_eq!(profile.crl[0].crl.removed_count(), 1);

    let setup = Setup::new();
    setup.file("hold.crl", &holding(RevocationReason::CertificateHold, CN).der);
    setup.file("key.crl", &holding(RevocationReason::KeyCompromise, CN).der);
    for order in [["hold.crl", "key.crl"], ["key.crl", "hold.crl"]] {
        let report = run(&setup.rules(&order, ""), &Device::new(CN));
        assert_reason(&report, Some(ReasonCode::CertRevoked));
        assert!(report.message.contains("keyCompromise"), "{}", report.message);
    }
}

/// End to end: at first connect a held certificate stays PENDING_ACTIVATION, nothing is created and the event
/// is handed back; when the CA lifts the hold (the entry leaves the next CRL, or becomes removeFromCRL) the
/// redelivered event provisions it.
#[tokio::test]
async fn a_hold_leaves_the_certificate_pending_and_a_lifted_hold_provisions_it() {
    let lifted: [(&str, CrlFile); 2] =
        [("the entry left the CRL", revoking(&[])), ("removeFromCRL", holding(RevocationReason::RemoveFromCrl, CN))];
    for (name, next) in lifted {
        let world = World::new();
        let (setup, rules) = Setup::with(&holding(RevocationReason::CertificateHold, CN).der);
        let (id, event) = world.register(&Device::new(CN));
        let record = world.provisioner(rules).handle_bytes(event.as_bytes(), NOW).await;
        assert_eq!(record.outcome, Outcome::Held, "{name}: {}", record.message);
        assert_eq!(record.reason, Some(ReasonCode::CertOnHold), "{name}");
        assert!(record.is_retryable(), "{name}: the event is handed back");
        assert_eq!(record.certificate_action.map(|a| a.as_str()), Some("LEFT_PENDING"), "{name}");
        assert!(record.message.contains("suspension"), "{name}: {}", record.message);
        assert_eq!(world.registry.certificate_status(&id), Some(CertificateStatus::PendingActivation), "{name}");
        assert!(world.registry.thing_names().is_empty(), "{name}");

        setup.file("acme.crl", &next.der);
        let record = world.provisioner(setup.rules(&["acme.crl"], "")).handle_bytes(event.as_bytes(), NOW).await;
        assert_eq!(record.outcome, Outcome::Provisioned, "{name}: {}", record.message);
        assert_eq!(world.registry.certificate_status(&id), Some(CertificateStatus::Active), "{name}");
    }
}

// ---- delta CRLs advertised by a full CRL (freshestCRL) ---------------------------------------------------------

#[test]
fn a_full_crl_advertising_delta_crls_holds_under_enforce_and_is_used_under_warn() {
    let crl = scoped(None, &[RawExtension::freshest_crl("http://crl.acme.example/delta.crl")], &[&serial(CN)]);
    let (_setup, rules) = Setup::with(&crl.der);
    let listed = rules.config().profile("sensors").unwrap().crl[0].crl.freshest_crl().map(str::to_owned);
    assert!(listed.is_some_and(|d| d.contains("delta.crl")));
    assert_reason(&run(&rules, &Device::new(CN)), Some(ReasonCode::CertRevoked));
    let held = run(&rules, &Device::new(OTHER_CN));
    assert_reason(&held, Some(ReasonCode::CaInvalid));
    for needle in ["freshestCRL", "delta.crl", "crl/acme.crl", "warn"] {
        assert!(held.message.contains(needle), "{needle} in {}", held.message);
    }
    let (_setup, warn) = Setup::with_policy(&crl.der, "crl_policy = \"warn\"");
    assert_reason(&run(&warn, &Device::new(CN)), Some(ReasonCode::CertRevoked));
    assert!(run(&warn, &Device::new(OTHER_CN)).accepted());
    // A delta CRL itself is still refused at load.
    let setup = Setup::new();
    setup.file("delta.crl", &replace_all(&revoking(&[]).der, oid::CRL_NUMBER, oid::DELTA_CRL_INDICATOR));
    assert!(setup.load(&["delta.crl"], "").map(|_| ()).unwrap_err().contains("delta CRL"));
}

// ---- lint ------------------------------------------------------------------------------------------------------

#[test]
fn lint_reports_scope_deltas_holds_and_removals() {
    let setup = Setup::new();
    let mut spec = CrlSpec::new(&[]);
    for (cn, reason) in [
        ("sensor-000000000001", RevocationReason::CertificateHold),
        ("sensor-000000000002", RevocationReason::CertificateHold),
        ("sensor-000000000003", RevocationReason::RemoveFromCrl),
    ] {
        spec.revoked.push(Revoked { serial: serial(cn), at: NOW - DAY, reason: Some(reason) });
    }
    spec.extensions = vec![
        RawExtension::idp(&Idp { name: uris(DP_A), only_user: true, ..Idp::default() }),
        RawExtension::freshest_crl("http://crl.acme.example/delta.crl"),
    ];
    setup.file("a.crl", &ca().crl_with(&spec).der);
    setup.file("plain.crl", &revoking(&[]).der);
    let rules = setup.rules(&["a.crl", "plain.crl"], "");
    let reports = jitp_core::review::crl_reports(&rules, NOW);
    let [a, plain] = reports.as_slice() else { panic!("two reports") };
    assert!(a.scope.contains(DP_A) && a.scope.contains("onlyContainsUserCerts"), "{}", a.scope);
    assert_eq!(a.freshest_crl.as_deref(), Some("\"http://crl.acme.example/delta.crl\""));
    assert_eq!((a.on_hold, a.removed_from_crl), (2, 1));
    assert!(a.has_errors(), "delta CRLs under enforce: the profile's devices would be held");
    assert!(plain.scope.contains("every certificate"), "{}", plain.scope);
    assert!(!plain.has_errors());
    let warn = setup.rules(&["a.crl"], "crl_policy = \"warn\"");
    assert!(!jitp_core::review::crl_reports(&warn, NOW)[0].has_errors());
}

// ---- messages: each refusal names the part and what jitp needs -------------------------------------------------

#[test]
fn each_malformed_part_is_named_in_the_message() {
    let good = revoking(&[&serial(CN)]);
    // The signature BIT STRING: its unused-bits octet set to 8 (RFC: 0..=7).
    let mut bad_bits = good.der.clone();
    let sig_at = bad_bits.len() - signature_len(&good.der);
    bad_bits[sig_at] = 8;
    let mut odd_bits = good.der.clone();
    odd_bits[sig_at] = 1;
    let unknown_critical = scoped(
        None,
        &[RawExtension { oid: "1.3.6.1.4.1.99999.1", critical: true, value: Some(vec![0x05, 0x00]) }],
        &[],
    );
    let no_extensions = ca().crl_with(&CrlSpec {
        extensions: vec![
            RawExtension { oid: "2.5.29.20", critical: false, value: None },
            RawExtension { oid: "2.5.29.35", critical: false, value: None },
        ],
        ..CrlSpec::new(&[])
    });
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("signature BIT STRING", bad_bits, &["signatureValue BIT STRING", "malformed"]),
        ("signature with unused bits", odd_bits, &["signatureValue"]),
        ("critical unknown extension", unknown_critical.der, &["1.3.6.1.4.1.99999.1", "critical", "without it"]),
        ("no extensions", no_extensions.der, &["no crlExtensions", "cRLNumber"]),
    ];
    let setup = Setup::new();
    for (name, bytes, needles) in cases {
        setup.file("bad.crl", &bytes);
        let err = setup.load(&["bad.crl"], "").map(|_| ()).unwrap_err();
        for needle in needles {
            assert!(err.contains(needle), "{name}: {needle:?} in {err}");
        }
        for vague in ["BadDer", "MalformedExtensions", "not a full name"] {
            assert!(!err.contains(vague), "{name}: {vague} in {err}");
        }
    }
    // A non-critical extension jitp does not read (AD CS's CA Version, 1.3.6.1.4.1.311.21.1) is ignored.
    let ms =
        scoped(None, &[RawExtension { oid: "1.3.6.1.4.1.311.21.1", critical: false, value: Some(vec![2, 1, 0]) }], &[]);
    setup.file("ms.crl", &ms.der);
    assert!(run(&setup.rules(&["ms.crl"], ""), &Device::new(CN)).accepted());
}

/// The length of the signatureValue BIT STRING's content (unused-bits octet included), the CRL's last TLV.
fn signature_len(der: &[u8]) -> usize {
    let list = <x509_cert::crl::CertificateList as der::Decode>::from_der(der).unwrap();
    list.signature.raw_bytes().len() + 1
}

// ---- a reference model of coverage, against jitp's, over generated scopes ---------------------------------------

/// For every combination of a CRL's scope and a device's distribution points drawn from a small vocabulary,
/// jitp's verdict equals a reference model written from RFC 5280 6.3.3's text.
#[test]
fn coverage_agrees_with_a_reference_model_of_rfc_5280_6_3_3() {
    use proptest::prelude::*;
    let names = [DP_A, DP_B];
    // A point: (which name: 0 A, 1 B, 2 none), reasons (None: all; Some(keyCompromise)).
    let point = (0usize..3, proptest::option::of(Just(KEY_COMPROMISE)));
    let config = proptest::test_runner::Config { cases: 48, ..Default::default() };
    proptest!(config, |(
        idp_name in proptest::option::of(0usize..2),
        idp_reasons in proptest::option::of(Just(KEY_COMPROMISE)),
        has_idp in any::<bool>(),
        device_points in proptest::option::of(proptest::collection::vec(point, 0..3)),
    )| {
        let idp = Idp {
            name: idp_name.and_then(|i| uris(names[i])),
            only_user: idp_name.is_none() && idp_reasons.is_none(),
            only_some_reasons: idp_reasons,
            ..Idp::default()
        };
        let cdp: Option<Vec<Cdp>> = device_points.as_ref().map(|ps| {
            ps.iter()
                .map(|(n, r)| Cdp { name: names.get(*n).and_then(|u| uris(u)), reasons: *r, crl_issuer: None })
                .collect()
        });
        // The model: the device's named points plus the issuer's (all reasons); the CRL's names and reasons.
        let all = jitp_pki::cert::ALL_REASONS;
        let mut points: Vec<(Option<usize>, u16)> = vec![(None, all)];
        for (n, r) in device_points.iter().flatten() {
            if *n < 2 {
                points.push((Some(*n), r.unwrap_or(all)));
            }
        }
        let crl_reasons = if has_idp { idp_reasons.unwrap_or(all) } else { all };
        let mask = points
            .iter()
            .filter(|(n, _)| !has_idp || idp_name.is_none() || *n == idp_name)
            .fold(0, |m, (_, r)| m | (r & crl_reasons));
        let expected = if mask == all { None } else { Some(ReasonCode::CrlScopeMismatch) };

        let crl = scoped(has_idp.then_some(&idp), &[], &[]);
        let device = Device { crl_distribution_points: cdp.as_deref().map(jitp_testkit::crl_ext::cdp), ..Device::new(OTHER_CN) };
        let (_setup, rules) = Setup::with(&crl.der);
        let report = run(&rules, &device);
        prop_assert_eq!(report.reason, expected, "{}", report.message);
    });
}

// ---- CRLs as `openssl ca -gencrl` writes them (fixtures/openssl-ca, made by its make.sh) ------------------------

#[test]
fn crls_made_by_openssl_ca_gencrl() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openssl-ca");
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let ca_pem = read("rootCA.pem");
    /// Per CRL file, each device's expected reason (`None`: accepted).
    type Verdicts<'a> = [(&'a str, Option<ReasonCode>); 5];
    let expectations: [(&str, Verdicts); 5] = [
        (
            "full.crl",
            [
                ("revoked.pem", Some(ReasonCode::CertRevoked)),
                ("held.pem", Some(ReasonCode::CertOnHold)),
                ("good.pem", None),
                ("part-a.pem", None),
                ("part-b.pem", Some(ReasonCode::CertRevoked)),
            ],
        ),
        (
            "part-a.crl",
            [
                ("revoked.pem", Some(ReasonCode::CrlScopeMismatch)),
                ("held.pem", Some(ReasonCode::CrlScopeMismatch)),
                ("good.pem", Some(ReasonCode::CrlScopeMismatch)),
                ("part-a.pem", None),
                ("part-b.pem", Some(ReasonCode::CrlScopeMismatch)),
            ],
        ),
        (
            "with-deltas.crl",
            [
                ("revoked.pem", Some(ReasonCode::CertRevoked)),
                ("held.pem", Some(ReasonCode::CertOnHold)),
                ("good.pem", Some(ReasonCode::CaInvalid)),
                ("part-a.pem", Some(ReasonCode::CaInvalid)),
                ("part-b.pem", Some(ReasonCode::CertRevoked)),
            ],
        ),
        (
            "removed.crl",
            [
                ("revoked.pem", Some(ReasonCode::CertRevoked)),
                ("held.pem", None),
                ("good.pem", None),
                ("part-a.pem", None),
                ("part-b.pem", Some(ReasonCode::CertRevoked)),
            ],
        ),
        (
            "lifted.crl",
            [
                ("revoked.pem", Some(ReasonCode::CertRevoked)),
                ("held.pem", None),
                ("good.pem", None),
                ("part-a.pem", None),
                ("part-b.pem", Some(ReasonCode::CertRevoked)),
            ],
        ),
    ];
    for (crl_name, devices) in expectations {
        let (_setup, rules) = Setup::with(&read(crl_name));
        let crl = &rules.config().profile("sensors").unwrap().crl[0].crl;
        let now = crl.this_update() + 60;
        for (device, expected) in devices {
            let report = check(&rules, &ca_pem, &read(device), None, now, &AwsContext::default());
            assert_eq!(report.reason, expected, "{crl_name}, {device}: {}", report.message);
        }
    }
}

/// Every byte of a CRL with each scope part jitp reads, and of a device certificate's cRLDistributionPoints,
/// overwritten: loading, verifying, scoping and looking up is an error or an answer, never a panic.
#[test]
fn hostile_scope_bytes_never_panic() {
    let idp = Idp {
        name: Some(DpName::RelativeCn("partition 1".into())),
        only_user: true,
        only_some_reasons: Some(KEY_COMPROMISE | (1 << 3)),
        ..Idp::default()
    };
    let crl = scoped(Some(&idp), &[RawExtension::freshest_crl(DP_A)], &[&serial(CN)]);
    let points = [
        Cdp { name: Some(DpName::RelativeCn("partition 1".into())), reasons: Some(KEY_COMPROMISE), crl_issuer: None },
        Cdp { name: uris(DP_A), reasons: None, crl_issuer: Some(DP_B.into()) },
        Cdp::uri(DP_B),
    ];
    let device_pem = ca().issue(&with_cdp(CN, Some(&points))).pem;
    let device = jitp_pki::cert::Certificate::from_pem(device_pem.as_bytes()).unwrap();
    let trusted = trusted(ca());
    let device_points = jitp_pki::cert::DistributionPoints::of(&device);
    for i in 0..crl.der.len() {
        for byte in [0x00, 0xff, crl.der[i] ^ 0x01, 0x80] {
            let mut der = crl.der.clone();
            der[i] = byte;
            if let Ok(parsed) = jitp_pki::cert::Crl::from_bytes(&der) {
                let _ = (parsed.scope().coverage(&device_points), parsed.scope().describe(), parsed.freshest_crl());
                if let Ok(proof) = parsed.verify(&trusted) {
                    let _ = parsed.revocation(&device, proof);
                }
            }
        }
    }
    let device_der = ca().issue(&with_cdp(CN, Some(&points))).der;
    let scope = jitp_pki::cert::Crl::from_bytes(&crl.der).unwrap();
    for i in 0..device_der.len() {
        for byte in [0x00, 0xff, device_der[i] ^ 0x01] {
            let mut der = device_der.clone();
            der[i] = byte;
            if let Ok(device) = jitp_pki::cert::Certificate::from_der(der) {
                let points = jitp_pki::cert::DistributionPoints::of(&device);
                let _ = (scope.scope().coverage(&points), points.describe());
            }
        }
    }
}

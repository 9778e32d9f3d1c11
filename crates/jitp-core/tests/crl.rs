#![cfg(test)]
//! Revocation with X.509 CRLs (`crl = [...]`, `crl_policy`): loading (PEM, DER, every malformed file a
//! configuration error naming the key and the file), the checks against the registered CA (issuer, signature,
//! nextUpdate), CERT_REVOKED and its place in the order of reasons, and the workflow: a revoked device gets
//! `on_reject`, a bad CRL holds the device until it is fixed.

use std::sync::Arc;

use jitp_core::audit::Outcome;
use jitp_core::decide::{CheckReport, check};
use jitp_core::event::CertificateStatus;
use jitp_core::policy::AwsContext;
use jitp_core::provision::{Provisioner, Settings};
use jitp_core::reason::{Fault, ReasonCode};
use jitp_core::registry::IotRegistry;
use jitp_core::rules::Rules;
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
    let huge = vec![0x30u8; jitp_core::cert::MAX_CRL_BYTES + 1];
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
    // The issuing distribution point itself (critical, known) is fine.
    setup.file("dp.crl", &with_dp.der);
    assert!(run(&setup.rules(&["dp.crl"], ""), &Device::new(CN)).accepted());
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
    assert_eq!(profile.crl_policy, jitp_core::profile::CrlPolicy::Enforce);
}

// ---- the workflow ----------------------------------------------------------------------------------------------

struct World {
    registry: Arc<jitp_core::memory::MemoryRegistry>,
    ca_id: jitp_core::ids::CaCertificateId,
}

impl World {
    fn new() -> Self {
        let registry = Arc::new(jitp_core::memory::MemoryRegistry::new());
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

    fn register(&self, device: &Device) -> (jitp_core::ids::CertificateId, String) {
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

fn trusted(ca: &Ca) -> jitp_core::cert::TrustedCa {
    jitp_core::cert::TrustedCa::check(jitp_core::cert::Certificate::from_pem(ca.cert.pem.as_bytes()).unwrap()).unwrap()
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
    let crl = jitp_core::cert::Crl::from_bytes(&signer.crl_with(&CrlSpec::new(&[])).der).unwrap();
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
    let device = jitp_core::cert::Certificate::from_pem(ca_issue(CN).as_bytes()).unwrap();
    for i in 0..with_dp.der.len() {
        for byte in [0x00, 0xff, with_dp.der[i] ^ 0x01, 0x80] {
            let mut der = with_dp.der.clone();
            der[i] = byte;
            if let Ok(crl) = jitp_core::cert::Crl::from_bytes(&der)
                && let Ok(proof) = crl.verify(&ca)
            {
                let _ = crl.revocation(&device, proof);
            }
        }
        let _ = jitp_core::cert::Crl::from_bytes(&with_dp.der[..i]);
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

fn objects(pairs: &[(&str, &[u8])]) -> jitp_core::profile::CrlObjects {
    pairs.iter().map(|(uri, bytes)| (uri.parse().unwrap(), Arc::from(*bytes))).collect()
}

fn load_s3(path: &std::path::Path, objects: jitp_core::profile::CrlObjects) -> Result<Rules, String> {
    let overrides = jitp_core::profile::Overrides { crl_objects: objects, ..Default::default() };
    Rules::load_with(path, &overrides).map_err(|e| e.to_string())
}

#[test]
fn an_s3_crl_from_the_callers_bytes_revokes_through_the_same_pipeline() {
    let setup = Setup::new();
    setup.file("local.crl", &revoking(&[&serial(OTHER_CN)]).der);
    let path = s3_config(&setup, &[S3_URI, "crl/local.crl", S3_URI]);
    let listed = jitp_core::profile::Config::crl_objects(&path).unwrap();
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
    let huge = vec![0x30; jitp_core::cert::MAX_CRL_BYTES + 1];
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
            jitp_core::profile::Config::crl_objects(&path).unwrap_err().to_string(),
        ] {
            let value = format!("{uri:?}");
            assert!(error.contains("profiles[0].crl") && error.contains(&value), "{uri}: {error}");
            assert!(error.contains(rule), "{uri}: {rule:?} in {error}");
            assert!(error.contains(":7:"), "{uri}: the line in {error}");
        }
    }
    let long_key = format!("s3://acme-pki/{}", "k".repeat(1025));
    assert!(jitp_core::ids::S3Object::parse(&long_key).unwrap_err().contains("1024"));
    assert!(jitp_core::ids::S3Object::parse(&format!("s3://{}/k", "a".repeat(64))).is_err());
    for good in ["s3://acme-pki/k", "s3://a.b-c/crl/2026/acme(1).crl", "s3://123/x=y+z@a:b!_'"] {
        let object = jitp_core::ids::S3Object::parse(good).unwrap();
        assert_eq!(object.to_string(), good);
    }
}

#[test]
fn s3_uri_parsing_never_panics() {
    proptest::proptest!(|(s in "\\PC{0,80}", t in "s3://[a-z.-]{0,8}/[ -~]{0,12}")| {
        let _ = jitp_core::ids::S3Object::parse(&s);
        if let Ok(object) = jitp_core::ids::S3Object::parse(&t) {
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

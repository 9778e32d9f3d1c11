#![cfg(test)]
//! One test per reason code of the decision, plus the accepted key types, over certificates generated in
//! code (jitp-testkit) at a fixed clock.

use std::sync::OnceLock;

use jitp_core::decide::{CheckReport, check};
use jitp_core::rules::Rules;
use jitp_pki::ids::CaCertificateId;
use jitp_pki::reason::ReasonCode;
use jitp_policy::policy::AwsContext;
use jitp_profile::profile::Overrides;
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::{
    Alg, Ca, CaSpec, DAY, Device, Dn, Eku, NOW, corrupt_signature, oid, replace_all, rsa_public_key, to_pem,
};

fn repo_config() -> &'static Rules {
    static C: OnceLock<Rules> = OnceLock::new();
    C.get_or_init(|| Rules::load(jitp_testkit::repo_config_path()).unwrap())
}

fn ca() -> &'static Ca {
    static C: OnceLock<Ca> = OnceLock::new();
    C.get_or_init(|| Ca::new("Acme Device CA", Alg::P256))
}

/// A config written beside the repo's templates, with extra profile keys.
fn config_with(extra: &str) -> Rules {
    let dir = ConfigDir::new();
    dir.copy_policy("sensor.json.tera", "sensor.json.tera");
    let text = format!(
        "[defaults]\nclock_skew_seconds = 300\n[[profiles]]\nname = \"sensors\"\nca = [\"*\"]\ncommon_name = 'sensor-[0-9a-f]{{12}}'\norganization = [\"Acme\"]\nthing_name = \"{{{{ subject.cn }}}}\"\npolicy = \"policies/sensor.json.tera\"\n{extra}\n"
    );
    let path = dir.write_config(&text);
    Rules::load_with(&path, &Overrides::default()).unwrap()
}

fn run(config: &Rules, ca: &Ca, cert_pem: &str) -> CheckReport {
    check(config, ca.cert.pem.as_bytes(), cert_pem.as_bytes(), None, NOW, &AwsContext::default())
}

#[track_caller]
fn assert_reason(report: &CheckReport, expected: ReasonCode) {
    assert_eq!(report.reason, Some(expected), "{}", report.message);
    assert!(!report.message.is_empty());
}

const CN: &str = "sensor-0123456789ab";

#[test]
fn accepts_p256_and_names_the_thing_after_the_cn() {
    let report = run(repo_config(), ca(), &ca().issue(&Device::new(CN)).pem);
    assert!(report.accepted(), "{}", report.message);
    assert_eq!(report.thing_name.as_deref(), Some(CN));
    assert_eq!(report.profile.as_deref(), Some("sensors"));
    assert_eq!(report.policy_name.as_deref(), Some("jitp-sensor-0123456789ab"));
    let policy = report.policy.unwrap().to_string();
    assert!(policy.contains(&format!("client/{CN}")), "{policy}");
}

#[test]
fn accepts_every_supported_key_type() {
    for alg in [Alg::Rsa2048, Alg::Rsa3072, Alg::P256, Alg::P384, Alg::P521] {
        let report = run(repo_config(), ca(), &ca().issue(&Device::new(CN).alg(alg)).pem);
        assert!(report.accepted(), "{alg:?}: {}", report.message);
    }
}

#[test]
fn accepts_rsa_and_p384_cas() {
    for alg in [Alg::Rsa2048, Alg::P384] {
        let ca = Ca::new(&format!("CA {alg:?}"), alg);
        let report = run(repo_config(), &ca, &ca.issue(&Device::new(CN)).pem);
        assert!(report.accepted(), "{alg:?}: {}", report.message);
    }
}

#[test]
fn malformed_certificates() {
    let good = ca().issue(&Device::new(CN));
    let truncated = to_pem(&good.der[..good.der.len() - 10]);
    let mut trailing = good.der.clone();
    trailing.extend_from_slice(&[0, 0]);
    let cases = [
        String::new(),
        "not a certificate".into(),
        truncated,
        to_pem(&trailing),
        format!("{}{}", good.pem, good.pem),
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n".into(),
        "x".repeat(10 * 1024 * 1024),
    ];
    for case in cases {
        assert_reason(&run(repo_config(), ca(), &case), ReasonCode::MalformedCertificate);
    }
}

#[test]
fn issuer_mismatch_when_another_ca_signed_it() {
    let other = Ca::new("Someone Else CA", Alg::P256);
    assert_reason(&run(repo_config(), ca(), &other.issue(&Device::new(CN)).pem), ReasonCode::IssuerMismatch);
}

#[test]
fn signature_invalid_when_same_name_but_other_key() {
    let impostor = Ca::new("Acme Device CA", Alg::P256); // same subject, different key
    assert_reason(&run(repo_config(), ca(), &impostor.issue(&Device::new(CN)).pem), ReasonCode::SignatureInvalid);
    let flipped = corrupt_signature(&ca().issue(&Device::new(CN)).der);
    assert_reason(&run(repo_config(), ca(), &to_pem(&flipped)), ReasonCode::SignatureInvalid);
}

#[test]
fn unsupported_algorithms() {
    let rsa_ca = Ca::new("Acme RSA CA", Alg::Rsa2048);
    let good = rsa_ca.issue(&Device::new(CN));
    for bad in [oid::SHA1_RSA, oid::MD5_RSA] {
        let der = replace_all(&good.der, oid::SHA256_RSA, bad);
        assert_reason(&run(repo_config(), &rsa_ca, &to_pem(&der)), ReasonCode::UnsupportedAlgorithm);
    }
    let ed = ca().issue(&Device::new(CN).alg(Alg::Ed25519));
    assert_reason(&run(repo_config(), ca(), &ed.pem), ReasonCode::UnsupportedAlgorithm);
    let p192 = replace_all(&ca().issue(&Device::new(CN)).der, oid::P256, oid::P192);
    // The CA's own key is P-256 too, but the surgery only hits the device's SPKI (the CA key is not in it).
    assert_reason(&run(repo_config(), ca(), &to_pem(&p192)), ReasonCode::UnsupportedAlgorithm);
    let ed_ca = Ca::new("Ed CA", Alg::Ed25519);
    let report = run(repo_config(), &ed_ca, &ed_ca.issue(&Device::new(CN)).pem);
    assert_reason(&report, ReasonCode::CaInvalid);
}

#[test]
fn weak_rsa_keys() {
    let mut device = Device::new(CN);
    device.public_key = Some(rsa_public_key(1024));
    assert_reason(&run(repo_config(), ca(), &ca().issue(&device).pem), ReasonCode::WeakKey);
    let strict = config_with("min_rsa_bits = 3072");
    // Above AWS IoT's floor, the profile's own limit: KEY_TOO_SHORT, which a configuration change could accept.
    let report = run(&strict, ca(), &ca().issue(&Device::new(CN).alg(Alg::Rsa2048)).pem);
    assert_reason(&report, ReasonCode::KeyTooShort);
    assert!(report.message.contains("min_rsa_bits"), "{}", report.message);
    // Below the floor no profile accepts it: WEAK_KEY, whatever min_rsa_bits says.
    assert_reason(&run(&strict, ca(), &ca().issue(&device).pem), ReasonCode::WeakKey);
}

#[test]
fn validity_window_with_clock_skew() {
    let mut expired = Device::new(CN);
    expired.not_before = NOW - 30 * DAY;
    expired.not_after = NOW - 301;
    assert_reason(&run(repo_config(), ca(), &ca().issue(&expired).pem), ReasonCode::CertExpired);
    expired.not_after = NOW - 299;
    assert!(run(repo_config(), ca(), &ca().issue(&expired).pem).accepted(), "within skew");

    let mut future = Device::new(CN);
    future.not_before = NOW + 301;
    assert_reason(&run(repo_config(), ca(), &ca().issue(&future).pem), ReasonCode::CertNotYetValid);
    future.not_before = NOW + 200;
    assert!(run(repo_config(), ca(), &ca().issue(&future).pem).accepted(), "a device clock slightly ahead is fine");
}

#[test]
fn device_cert_that_is_a_ca() {
    let mut device = Device::new(CN);
    device.is_ca = true;
    assert_reason(&run(repo_config(), ca(), &ca().issue(&device).pem), ReasonCode::DeviceCertIsCa);
}

#[test]
fn validity_too_long() {
    let mut device = Device::new(CN);
    device.not_after = NOW + 30 * 365 * DAY;
    assert_reason(&run(repo_config(), ca(), &ca().issue(&device).pem), ReasonCode::ValidityTooLong);
}

#[test]
fn ca_that_is_not_a_ca() {
    let mut spec = CaSpec::new("Not A CA", Alg::P256);
    spec.is_ca = false;
    let not_ca = Ca::build(&spec, None);
    assert_reason(&run(repo_config(), &not_ca, &not_ca.issue(&Device::new(CN)).pem), ReasonCode::CaInvalid);
    let mut spec = CaSpec::new("No CertSign", Alg::P256);
    spec.key_usages = vec![jitp_testkit::KeyUsage::DigitalSignature];
    let no_sign = Ca::build(&spec, None);
    assert_reason(&run(repo_config(), &no_sign, &no_sign.issue(&Device::new(CN)).pem), ReasonCode::CaInvalid);
    let weak = jitp_testkit::Ca::with_public_key_for_tests(jitp_testkit::rsa_public_key(1024));
    let report = check(
        repo_config(),
        weak.as_bytes(),
        ca().issue(&Device::new(CN)).pem.as_bytes(),
        None,
        NOW,
        &AwsContext::default(),
    );
    assert_reason(&report, ReasonCode::CaInvalid);
    let garbage = check(
        repo_config(),
        b"garbage",
        ca().issue(&Device::new(CN)).pem.as_bytes(),
        None,
        NOW,
        &AwsContext::default(),
    );
    assert_reason(&garbage, ReasonCode::CaInvalid);
}

#[test]
fn ca_chain() {
    let root = Ca::new("Acme Root", Alg::P384);
    let issuing = Ca::build(&CaSpec::new("Acme Issuing", Alg::P256), Some(&root));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("root.pem"), &root.cert.pem).unwrap();
    let chained = config_with(&format!("ca_chain = [{:?}]", dir.path().join("root.pem").display().to_string()));
    assert!(run(&chained, &issuing, &issuing.issue(&Device::new(CN)).pem).accepted());
    assert_reason(&run(&chained, ca(), &ca().issue(&Device::new(CN)).pem), ReasonCode::CaInvalid);
}

#[test]
fn deny_list_by_serial_and_fingerprint() {
    let device = ca().issue(&Device::new(CN));
    let other = ca().issue(&Device::new("sensor-0000000000ff"));
    let dir = tempfile::tempdir().unwrap();
    let serial = hex_serial(&Device::new("sensor-0000000000ff").serial);
    let denied = dir.path().join("denied.txt");
    std::fs::write(&denied, format!("# lost devices\n{}\n{serial}\n", device.id().to_uppercase())).unwrap();
    let config = config_with(&format!("deny_list = {:?}", denied.display().to_string()));
    assert_reason(&run(&config, ca(), &device.pem), ReasonCode::CertDenied);
    assert_reason(&run(&config, ca(), &other.pem), ReasonCode::CertDenied);
    assert!(run(&config, ca(), &ca().issue(&Device::new("sensor-00000000aaaa")).pem).accepted());
}

/// Every entry form matches what it names: SHA-1 (the fingerprint most tools print) included; an entry that
/// could name two things, or nothing jitp can match, is refused with its line number.
#[test]
fn deny_list_by_sha1_and_refused_forms() {
    use sha1::Digest as _;
    let device = ca().issue(&Device::new(CN));
    let sha1 = hex::encode(sha1::Sha1::digest(&device.der));
    let dir = ConfigDir::new();
    dir.copy_policy("sensor.json.tera", "sensor.json.tera");
    let write = |text: String| {
        std::fs::write(dir.path().join("denied.txt"), text).unwrap();
        let toml = dir.write_config(
            "[[profiles]]\nname = \"sensors\"\nca = [\"*\"]\ncommon_name = 'sensor-[0-9a-f]{12}'\nthing_name = \"{{ subject.cn }}\"\npolicy = \"policies/sensor.json.tera\"\ndeny_list = \"denied.txt\"\n",
        );
        Rules::load(&toml)
    };
    let spaced: String =
        sha1.as_bytes().chunks(2).map(|c| std::str::from_utf8(c).unwrap().to_uppercase()).collect::<Vec<_>>().join(":");
    for entry in [format!("sha1:{sha1}"), format!("SHA-1:{spaced}")] {
        let config = write(format!("# lost\n{entry}\n")).unwrap();
        let report = run(&config, ca(), &device.pem);
        assert_reason(&report, ReasonCode::CertDenied);
        assert!(report.message.contains("SHA-1"), "{}", report.message);
    }
    for (entry, needle) in [(sha1.clone(), "sha1:"), ("1".repeat(41), "41 hex digits"), ("nothex".into(), "not hex")] {
        let err = write(format!("# lost\n\n{entry}\n")).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("denied.txt:3") && err.contains(needle), "{entry}: {err}");
    }
}

fn hex_serial(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<String>().trim_start_matches('0').to_owned()
}

/// A one-profile config with the sensor template, `ca` and `common_name` as given.
fn single_profile(ca: &str, common_name: &str) -> Rules {
    let dir = ConfigDir::new();
    dir.copy_policy("sensor.json.tera", "p.json.tera");
    let path = dir.write_config(&format!(
        "[[profiles]]\nname = \"p\"\nca = [{ca:?}]\ncommon_name = '{common_name}'\nthing_name = \"{{{{ subject.cn }}}}\"\npolicy = \"policies/p.json.tera\"\n"
    ));
    Rules::load(path).unwrap()
}

#[test]
fn unknown_ca() {
    let config = single_profile(&"ab".repeat(32), ".*");
    assert_reason(&run(&config, ca(), &ca().issue(&Device::new(CN)).pem), ReasonCode::UnknownCa);
    let id: CaCertificateId = "ab".repeat(32).parse().unwrap();
    let report = check(
        &config,
        ca().cert.pem.as_bytes(),
        ca().issue(&Device::new(CN)).pem.as_bytes(),
        Some(&id),
        NOW,
        &AwsContext::default(),
    );
    assert!(report.accepted(), "--ca-id selects the profile: {}", report.message);
}

#[test]
fn subject_mismatch() {
    let mut no_cn = Device::new(CN);
    no_cn.cn = None;
    for device in [
        Device::new("sensor-XYZ"),
        Device::new(&format!("x{CN}")),
        Device::new(&format!("{CN}\n")),
        no_cn,
        Device::new(CN).with(Dn::CustomDnType(vec![2, 5, 4, 3]), "sensor-0123456789ac"), // a second CN
        {
            let mut d = Device::new(CN);
            d.extra = vec![(Dn::OrganizationName, "Evil".into())];
            d
        },
    ] {
        assert_reason(&run(repo_config(), ca(), &ca().issue(&device).pem), ReasonCode::SubjectMismatch);
    }
}

#[test]
fn invalid_thing_name() {
    let config = single_profile("*", ".*");
    for cn in ["a/b", "sensor+1", "sensor#", "*", "${iot:ClientId}", "a b", "\"quoted\"", &"x".repeat(129)] {
        assert_reason(&run(&config, ca(), &ca().issue(&Device::new(cn)).pem), ReasonCode::InvalidThingName);
    }
}

#[test]
fn extended_key_usage_must_allow_client_auth() {
    let mut device = Device::new(CN);
    device.eku = vec![Eku::ServerAuth];
    assert_reason(&run(repo_config(), ca(), &ca().issue(&device).pem), ReasonCode::KeyUsageInvalid);
    device.eku = vec![Eku::ClientAuth];
    assert!(run(repo_config(), ca(), &ca().issue(&device).pem).accepted());
}

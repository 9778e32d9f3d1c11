#![cfg(test)]
//! X.509 versions (issue 21, item 1): a v1 device certificate, as OpenSSL 3's `x509 -req` makes it from AWS's
//! documentation, is judged as a v3 one would be, by the same checks; every malformed version is refused; the
//! registered CA must be v3. The class is every version field the DER can carry and every check a v1
//! certificate still goes through (signature, issuer, algorithms, validity, key, deny list, CRL).

use std::sync::OnceLock;

use jitp_core::decide::{CheckReport, check};
use jitp_core::rules::Rules;
use jitp_pki::cert::Certificate;
use jitp_pki::reason::{Fault, ReasonCode};
use jitp_policy::policy::AwsContext;
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::surgery::VersionEdit;
use jitp_testkit::{Alg, Ca, DAY, Device, NOW, corrupt_signature, oid, replace_all, to_pem};

const CN: &str = "sensor-0123456789ab";

fn repo_config() -> &'static Rules {
    static C: OnceLock<Rules> = OnceLock::new();
    C.get_or_init(|| Rules::load(jitp_testkit::repo_config_path()).unwrap())
}

fn ca() -> &'static Ca {
    static C: OnceLock<Ca> = OnceLock::new();
    C.get_or_init(|| Ca::new("Acme Device CA", Alg::P256))
}

fn run(ca: &Ca, pem: &str) -> CheckReport {
    check(repo_config(), ca.cert.pem.as_bytes(), pem.as_bytes(), None, NOW, &AwsContext::default())
}

#[track_caller]
fn refused(report: &CheckReport, reason: ReasonCode, words: &[&str]) {
    assert_eq!(report.reason, Some(reason), "{}", report.message);
    for w in words {
        assert!(report.message.contains(w), "{w:?} not in {:?}", report.message);
    }
}

#[test]
fn a_v1_device_certificate_is_accepted_as_its_v3_twin_is() {
    for alg in [Alg::P256, Alg::P384, Alg::P521, Alg::Rsa2048, Alg::Rsa3072] {
        for ca_alg in [Alg::P256, Alg::Rsa2048, Alg::P384] {
            let ca = Ca::new(&format!("V1 CA {ca_alg:?}"), ca_alg);
            let device = Device::new(CN).alg(alg);
            let v1 = ca.issue_version(&device, VersionEdit::V1);
            assert_eq!(Certificate::from_pem(v1.pem.as_bytes()).map(|c| c.version()).ok(), Some(1));
            let (v1, v3) = (run(&ca, &v1.pem), run(&ca, &ca.issue(&device).pem));
            assert!(v1.accepted(), "{alg:?} under {ca_alg:?}: {}", v1.message);
            assert_eq!((v1.thing_name, v1.policy), (v3.thing_name, v3.policy), "{alg:?} under {ca_alg:?}");
        }
    }
}

#[test]
fn every_malformed_version_is_refused_and_final() {
    let device = Device::new(CN);
    let cases: &[(VersionEdit, &str)] = &[
        (VersionEdit::ExplicitV1, "explicitly"),
        (VersionEdit::V1WithExtensions, "extensions"),
        (VersionEdit::V1WithUniqueId, "unique identifier"),
        (VersionEdit::Number(1), "v2"),
        (VersionEdit::Number(3), ""),
        (VersionEdit::Number(4), ""),
        (VersionEdit::Number(0x7f), ""),
    ];
    for (edit, words) in cases {
        let report = run(ca(), &ca().issue_version(&device, *edit).pem);
        refused(&report, ReasonCode::MalformedCertificate, &[words]);
    }
    assert_eq!(ReasonCode::MalformedCertificate.fault(), Fault::Device);
}

#[test]
fn a_v1_certificate_goes_through_every_check_a_v3_one_does() {
    let v1 = |d: &Device| ca().issue_version(d, VersionEdit::V1);
    // Signed by another key under the same name, or changed after signing.
    let impostor = Ca::new("Acme Device CA", Alg::P256);
    refused(
        &run(ca(), &impostor.issue_version(&Device::new(CN), VersionEdit::V1).pem),
        ReasonCode::SignatureInvalid,
        &[],
    );
    refused(&run(ca(), &to_pem(&corrupt_signature(&v1(&Device::new(CN)).der))), ReasonCode::SignatureInvalid, &[]);
    // Another CA's name.
    let other = Ca::new("Someone Else CA", Alg::P256);
    refused(&run(ca(), &other.issue_version(&Device::new(CN), VersionEdit::V1).pem), ReasonCode::IssuerMismatch, &[]);
    // A signature algorithm outside the accepted ones (in both places, so the structure is consistent).
    let rsa_ca = Ca::new("V1 RSA CA", Alg::Rsa2048);
    let sha1 =
        replace_all(&rsa_ca.issue_version(&Device::new(CN), VersionEdit::V1).der, oid::SHA256_RSA, oid::SHA1_RSA);
    refused(&run(&rsa_ca, &to_pem(&sha1)), ReasonCode::UnsupportedAlgorithm, &[]);
    // The validity window, the subject rules and the key.
    let mut expired = Device::new(CN);
    expired.not_before = NOW - 20 * DAY;
    expired.not_after = NOW - 10 * DAY;
    refused(&run(ca(), &v1(&expired).pem), ReasonCode::CertExpired, &[]);
    let mut early = Device::new(CN);
    early.not_before = NOW + DAY;
    refused(&run(ca(), &v1(&early).pem), ReasonCode::CertNotYetValid, &[]);
    refused(&run(ca(), &v1(&Device::new("sensor-XYZ")).pem), ReasonCode::SubjectMismatch, &[]);
    let mut weak = Device::new(CN);
    weak.public_key = Some(jitp_testkit::rsa_public_key(1024));
    refused(&run(ca(), &v1(&weak).pem), ReasonCode::WeakKey, &[]);
    let mut own = Device::new(CN);
    own.public_key = Some(ca().public_key());
    refused(&run(ca(), &v1(&own).pem), ReasonCode::DeviceKeyIsCaKey, &[]);
}

#[test]
fn a_v1_certificate_is_found_on_a_crl_and_a_deny_list() {
    let revoked = Device::new("sensor-00000000c001");
    let denied = Device::new("sensor-00000000c002");
    let (revoked_v1, denied_v1) =
        (ca().issue_version(&revoked, VersionEdit::V1), ca().issue_version(&denied, VersionEdit::V1));
    let dir = ConfigDir::new();
    dir.copy_policy("sensor.json.tera", "sensor.json.tera");
    std::fs::write(dir.path().join("ca.crl"), ca().crl(&[&revoked.serial], NOW - DAY, NOW + 7 * DAY).pem).unwrap();
    std::fs::write(dir.path().join("denied.txt"), format!("sha256:{}\n", denied_v1.id())).unwrap();
    let path = dir.write_config(&format!(
        "[[profiles]]\nname = \"p\"\nca = [\"{}\"]\ncommon_name = 'sensor-[0-9a-f]{{12}}'\n\
         thing_name = \"{{{{ subject.cn }}}}\"\npolicy = \"policies/sensor.json.tera\"\ncrl = [\"ca.crl\"]\n\
         deny_list = \"denied.txt\"\n",
        ca().id()
    ));
    let rules = Rules::load(path).unwrap();
    let decide = |pem: &str| check(&rules, ca().cert.pem.as_bytes(), pem.as_bytes(), None, NOW, &AwsContext::default());
    refused(&decide(&revoked_v1.pem), ReasonCode::CertRevoked, &[]);
    refused(&decide(&denied_v1.pem), ReasonCode::CertDenied, &[]);
    assert!(decide(&ca().issue_version(&Device::new(CN), VersionEdit::V1).pem).accepted());
}

#[test]
fn the_registered_ca_must_be_v3() {
    let fixture = |p: &str| {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/aws-docs").join(p),
        )
        .unwrap()
    };
    let at = 1_798_761_600; // 2027-01-01, inside the fixtures' validity
    let report = check(
        repo_config(),
        fixture("v1-ca.pem").as_bytes(),
        fixture("device-of-v1-ca.pem").as_bytes(),
        None,
        at,
        &AwsContext::default(),
    );
    refused(&report, ReasonCode::CaInvalid, &["v1", "must be v3"]);
    assert_eq!(ReasonCode::CaInvalid.fault(), Fault::Operator);
}

#![cfg(test)]
//! Real certificates (tests/fixtures/README.md says where each comes from): the exact commands of AWS's
//! documentation, which make X.509 v1 device certificates, and a vendor's secure element, each with a profile
//! an operator would write for it.

use jitp_core::decide::{CheckReport, check};
use jitp_core::rules::Rules;
use jitp_pki::reason::{Fault, ReasonCode};
use jitp_policy::policy::AwsContext;
use jitp_profile::profile::Overrides;
use jitp_testkit::config_dir::ConfigDir;

/// 2027-01-01T00:00:00Z: inside every fixture's validity.
const AT: i64 = 1_798_761_600;

fn fixture(path: &str) -> String {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// A configuration of one profile (`keys`, TOML lines) with the shipped sensor policy.
fn profile(keys: &str) -> (ConfigDir, Rules) {
    let dir = ConfigDir::new();
    dir.copy_policy("sensor.json.tera", "sensor.json.tera");
    let path = dir.write_config(&format!(
        "[[profiles]]\nname = \"devices\"\nca = [\"*\"]\npolicy = \"policies/sensor.json.tera\"\n{keys}\n"
    ));
    let rules = Rules::load_with(&path, &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
    (dir, rules)
}

fn decide(rules: &Rules, ca: &str, device: &str) -> CheckReport {
    check(rules, fixture(ca).as_bytes(), fixture(device).as_bytes(), None, AT, &AwsContext::default())
}

#[track_caller]
fn accepted(report: &CheckReport, thing: &str) {
    assert!(report.accepted(), "{:?}: {}", report.reason, report.message);
    assert_eq!(report.thing_name.as_deref(), Some(thing));
}

#[track_caller]
fn refused(report: &CheckReport, reason: ReasonCode, words: &[&str]) {
    assert_eq!(report.reason, Some(reason), "{}", report.message);
    for w in words {
        assert!(report.message.contains(w), "{w:?} not in {:?}", report.message);
    }
}

const AWS_CA: &str = "aws-docs/rootCA.pem";
const SENSOR_PROFILE: &str = "common_name = 'sensor-[0-9a-f]{12}'\nthing_name = \"{{ subject.cn }}\"";

#[test]
fn aws_documentation_v1_device_certificates_are_accepted() {
    let (_dir, rules) = profile(SENSOR_PROFILE);
    accepted(&decide(&rules, AWS_CA, "aws-docs/device.pem"), "sensor-0123456789ab");
    accepted(&decide(&rules, AWS_CA, "aws-docs/device-ec.pem"), "sensor-00000000000e");
}

#[test]
fn a_profile_may_require_v3_and_that_refusal_is_never_final() {
    let (_dir, rules) = profile(&format!("{SENSOR_PROFILE}\nrequire_v3 = true"));
    let report = decide(&rules, AWS_CA, "aws-docs/device.pem");
    refused(&report, ReasonCode::CertNotV3, &["X.509 v1", "require_v3", "remove it"]);
    assert_eq!(ReasonCode::CertNotV3.fault(), Fault::Profile);
    accepted(&decide(&rules, AWS_CA, "aws-docs/device-28y.pem"), "sensor-000000000028");
}

#[test]
fn no_cn_is_accepted_by_a_profile_that_does_not_need_one() {
    let (_dir, by_serial) = profile("thing_name = \"{{ subject.serial_number }}\"");
    accepted(&decide(&by_serial, AWS_CA, "aws-docs/device-nocn.pem"), "0123C0FFEE");
    let (_dir, by_id) = profile("common_name = '.*'\nthing_name = \"dev-{{ certificate.serial }}\"");
    let report = decide(&by_id, AWS_CA, "aws-docs/device-nocn.pem");
    assert!(report.accepted(), "{}", report.message);
    // A profile whose CN rule refuses the empty string, or whose thing name is the CN, needs one.
    let (_dir, by_cn) = profile(SENSOR_PROFILE);
    refused(&decide(&by_cn, AWS_CA, "aws-docs/device-nocn.pem"), ReasonCode::SubjectMismatch, &["no CN", "thing_name"]);
    let (_dir, cn_rule) = profile("common_name = 'sn[0-9A-F]+'\nthing_name = \"dev-{{ certificate.serial }}\"");
    refused(
        &decide(&cn_rule, AWS_CA, "aws-docs/device-nocn.pem"),
        ReasonCode::SubjectMismatch,
        &["no CN", "common_name", "leave common_name out"],
    );
}

#[test]
fn no_well_defined_expiration_is_named_and_accepted_only_explicitly() {
    let (_dir, bounded) = profile(&format!("{SENSOR_PROFILE}\nmax_validity_days = 9125"));
    let forever = "aws-docs/device-forever.pem";
    let (_dir, sn) =
        profile("common_name = 'sn[0-9A-F]{14}'\nthing_name = \"{{ subject.cn }}\"\nmax_validity_days = 9125");
    refused(
        &decide(&sn, AWS_CA, forever),
        ReasonCode::ValidityTooLong,
        &["no well-defined expiration", "99991231235959Z", "allow_no_expiration"],
    );
    let report = decide(&sn, AWS_CA, forever);
    assert!(!report.message.contains("2914"), "not a number of days: {}", report.message);
    let (_dir, allowed) = profile(
        "common_name = 'sn[0-9A-F]{14}'\nthing_name = \"{{ subject.cn }}\"\nmax_validity_days = 9125\nallow_no_expiration = true",
    );
    accepted(&decide(&allowed, AWS_CA, forever), "sn0123C0FFEE0001");
    // Allowing no expiration does not lift the bound on a real date.
    refused(&decide(&bounded, AWS_CA, "aws-docs/device-28y.pem"), ReasonCode::ValidityTooLong, &["10227 days", "9125"]);
}

#[test]
fn infineon_optiga_trust_m_with_the_profile_an_operator_writes() {
    let ca = "infineon-optiga-trust-m/ca-101.pem";
    let device = "infineon-optiga-trust-m/device.pem";
    // Every chip's CN is "Infineon IoT Node": the thing is named after the certificate itself.
    let (_dir, rules) = profile(
        "common_name = 'Infineon IoT Node'\nthing_name = \"optiga-{{ certificate.serial }}\"\nmax_validity_days = 9125",
    );
    accepted(&decide(&rules, ca, device), "optiga-32b7ea75");
    let (_dir, no_cn_rule) = profile("thing_name = \"{{ certificate.id }}\"");
    let report = decide(&no_cn_rule, ca, device);
    assert!(report.accepted(), "{}", report.message);
    assert_eq!(report.thing_name, report.certificate_id);
}

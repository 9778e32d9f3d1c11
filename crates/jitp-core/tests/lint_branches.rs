#![cfg(test)]
//! Issue 12 item 5 (first half): `jitp lint` covers every branch a template takes on a subject value. Each
//! hostile template below is too wide (or fails) only for some subjects the profile accepts; the lint must
//! fail and name the template line and the subject.

use jitp_core::decide::check;
use jitp_core::review::{TemplateReport, lint_templates};
use jitp_core::rules::Rules;
use jitp_pki::reason::ReasonCode;
use jitp_policy::policy::AwsContext;
use jitp_testkit::config_dir::ConfigDir;
use jitp_testkit::{Alg, Ca, Device, NOW, templates_dir};

/// A configuration and its directory, kept for as long as the configuration: the lint reads the template again.
struct Loaded {
    config: Rules,
    _dir: ConfigDir,
}

impl std::ops::Deref for Loaded {
    type Target = Rules;
    fn deref(&self) -> &Rules {
        &self.config
    }
}

/// A profile (`extra` lines added) over a policy template `policy`.
fn config(policy: &str, extra: &str) -> Loaded {
    let dir = ConfigDir::new();
    dir.write_policy("p.json.tera", policy);
    let toml = format!(
        "[[profiles]]\nname = \"p\"\nca = [\"*\"]\ncommon_name = 'sensor-[0-9a-f]{{12}}'\norganization = [\"Acme\"]\n\
         policy = \"policies/p.json.tera\"\n{extra}\n"
    );
    let toml =
        if extra.contains("thing_name") { toml } else { format!("{toml}thing_name = \"{{{{ subject.cn }}}}\"\n") };
    let config = Rules::load(dir.write_config(&toml)).unwrap();
    Loaded { config, _dir: dir }
}

fn lint(config: &Rules) -> TemplateReport {
    lint_templates(config, &AwsContext::default()).remove(0)
}

const ARN: &str = "arn:aws:iot:us-east-1:123456789012";

/// A safe policy with `open` before and `close` after a broad Subscribe statement, whose `"Effect"` is on
/// line 10.
fn guarded(open: &str, close: &str) -> String {
    format!(
        "{{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n    {{\n      \"Effect\": \"Allow\",\n      \
         \"Action\": \"iot:Connect\",\n      \"Resource\": \"{ARN}:client/{{{{ thing_name }}}}\"\n    }}{open},\n    \
         {{\n      \"Effect\": \"Allow\",\n      \"Action\": \"iot:Subscribe\",\n      \"Resource\": \
         \"{ARN}:topicfilter/#\"\n    }}{close}\n  ]\n}}\n"
    )
}

#[track_caller]
fn assert_fails(name: &str, report: &TemplateReport, reason: ReasonCode, line: usize, subject: &[&str]) {
    let hit = report.branches.iter().find(|b| b.reason == reason && b.line == Some(line));
    let Some(hit) = hit else {
        panic!("{name}: expected a {reason} branch finding at line {line}; got {:#?}", report.branches);
    };
    for s in subject {
        assert!(hit.subject.contains(s), "{name}: subject {:?} should contain {s:?}", hit.subject);
    }
    assert!(report.has_errors(), "{name}");
}

#[test]
fn the_measured_templates_fail_lint_naming_line_and_subject() {
    let r = lint(&config(&guarded("{% if subject.ou == \"ops\" %}", "{% endif %}"), ""));
    assert_fails("ou == ops", &r, ReasonCode::PolicyTooPermissive, 10, &["OU=\"ops\""]);
    let r = lint(&config(&guarded("{% if subject.st is undefined %}", "{% endif %}"), ""));
    assert_fails("st undefined", &r, ReasonCode::PolicyTooPermissive, 10, &["no ", "ST"]);
    let printed = format!(
        "{{\"Version\":\"2012-10-17\",\n\"Statement\":[{{\"Effect\":\"Allow\",\"Action\":\"iot:Publish\",\n\
         \"Resource\":\"{ARN}:topic/things/{{{{ thing_name }}}}/{{{{ subject.st }}}}\"}}]}}"
    );
    let r = lint(&config(&printed, ""));
    assert_fails("prints st", &r, ReasonCode::PolicyTemplateError, 3, &["ST"]);
}

#[test]
fn every_kind_of_branch_is_covered() {
    let table: &[(&str, &str, &str, &str, &[&str])] = &[
        ("ou != ops", "{% if subject.ou != \"ops\" %}", "{% endif %}", "", &[]),
        ("elif", "{% if subject.ou == \"a\" %}{% elif subject.ou == \"ops\" %}", "{% endif %}", "", &["OU=\"ops\""]),
        ("else", "{% if subject.st is defined %}{% else %}", "{% endif %}", "", &["ST"]),
        (
            "nested",
            "{% if subject.ou == \"ops\" %}{% if subject.st == \"CA\" %}",
            "{% endif %}{% endif %}",
            "",
            &["OU=\"ops\"", "ST=\"CA\""],
        ),
        ("not", "{% if not subject.ou %}", "{% endif %}", "", &[]),
        ("or", "{% if subject.ou == \"x\" or subject.c == \"DE\" %}", "{% endif %}", "", &[]),
        ("and", "{% if subject.ou == \"ops\" and subject.c == \"DE\" %}", "{% endif %}", "", &["C=\"DE\""]),
        ("in list", "{% if subject.ou in [\"ops\", \"dev\"] %}", "{% endif %}", "", &[]),
        ("in string", "{% if subject.ou is defined and \"ops\" in subject.ou %}", "{% endif %}", "", &["ops"]),
        ("filter in condition", "{% if subject.ou | upper == \"OPS\" %}", "{% endif %}", "", &["OU="]),
        (
            "trim in condition",
            "{% if subject.ou is defined and subject.ou | trim == \"ops\" %}",
            "{% endif %}",
            "",
            &[],
        ),
        ("starting_with", "{% if subject.ou is starting_with(pat=\"ops\") %}", "{% endif %}", "", &[]),
        ("ending_with", "{% if subject.ou is ending_with(pat=\"-ops\") %}", "{% endif %}", "", &[]),
        ("containing", "{% if subject.ou is containing(pat=\"ops\") %}", "{% endif %}", "", &[]),
        ("length", "{% if subject.ou | default(value=\"\") | length > 40 %}", "{% endif %}", "", &[]),
        (
            "set alias",
            "{% set unit = subject.ou | default(value=\"\") %}{% if unit == \"ops\" %}",
            "{% endif %}",
            "",
            &[],
        ),
        (
            "loop over subject",
            "{% for k, v in subject %}{% if k == \"st\" and v == \"ops\" %}",
            "{% endif %}{% endfor %}",
            "",
            &["ST=\"ops\""],
        ),
        (
            "cn prefix",
            "{% if subject.cn is starting_with(pat=\"sensor-ff\") %}",
            "{% endif %}",
            "",
            &["CN=\"sensor-ff"],
        ),
        ("thing_name suffix", "{% if thing_name is ending_with(pat=\"0042\") %}", "{% endif %}", "", &["0042"]),
        ("serial", "{% if subject.serial_number == \"M-1\" %}", "{% endif %}", "", &["serialNumber=\"M-1\""]),
        (
            "allow-listed ou",
            "{% if subject.ou == \"lab\" %}",
            "{% endif %}",
            "organizational_unit = [\"prod\", \"lab\"]",
            &["OU=\"lab\""],
        ),
        (
            "attribute alias",
            "{% if subject.o == \"Acme\" and subject.st == \"ops\" %}",
            "{% endif %}",
            "attributes = { site = \"{{ subject.st | default(value='none') }}\" }",
            &["ST=\"ops\""],
        ),
    ];
    for (name, open, close, extra, subject) in table {
        let r = lint(&config(&guarded(open, close), extra));
        let ok = r
            .branches
            .iter()
            .any(|b| matches!(b.reason, ReasonCode::PolicyTooPermissive | ReasonCode::PolicyTemplateError));
        assert!(ok && r.has_errors(), "{name}: lint should fail; got {:#?}", r.branches);
        if r.branches.iter().any(|b| b.reason == ReasonCode::PolicyTooPermissive) {
            assert_fails(name, &r, ReasonCode::PolicyTooPermissive, 10, subject);
        }
    }
}

#[test]
fn expressions_must_render_for_every_accepted_subject() {
    let safe = std::fs::read_to_string(templates_dir().join("policies/sensor.json.tera")).unwrap();
    let r = lint(&config(&safe, "thing_name = \"{{ subject.serial_number }}\""));
    let hit = r.branches.iter().find(|b| b.reason == ReasonCode::PolicyTemplateError && b.file == "jitp.toml");
    assert!(hit.is_some_and(|b| b.message.contains("thing_name") && b.subject.contains("serialNumber")), "{r:#?}");
    let r = lint(&config(&safe, "attributes = { site = \"{{ subject.st }}\" }"));
    let hit = r.branches.iter().find(|b| b.reason == ReasonCode::PolicyTemplateError);
    assert!(hit.is_some_and(|b| b.message.contains("\"site\"") && b.subject.contains("ST")), "{r:#?}");
}

#[test]
fn a_failing_expression_is_the_template_fault_not_the_device() {
    let safe = std::fs::read_to_string(templates_dir().join("policies/sensor.json.tera")).unwrap();
    let config = config(&safe, "thing_name = \"{{ subject.serial_number }}\"");
    let ca = Ca::new("Branches CA", Alg::P256);
    let cert = ca.issue(&Device::new("sensor-0123456789ab"));
    let report = check(&config, ca.cert.pem.as_bytes(), cert.pem.as_bytes(), None, NOW, &AwsContext::default());
    assert_eq!(report.reason, Some(ReasonCode::PolicyTemplateError), "{}", report.message);
    assert_eq!(ReasonCode::PolicyTemplateError.fault(), jitp_pki::reason::Fault::Operator);
}

#[test]
fn values_the_guard_refuses_are_expected_not_lint_errors() {
    // Printing an optional field with a default is safe: hostile values are refused per device
    // (INVALID_ATTRIBUTE), long and absent ones render.
    let policy = format!(
        "{{\"Version\":\"2012-10-17\",\"Statement\":[{{\"Effect\":\"Allow\",\"Action\":\"iot:Publish\",\
         \"Resource\":\"{ARN}:topic/things/{{{{ thing_name }}}}/{{{{ subject.ou | default(value='none') }}}}\"}}]}}"
    );
    let r = lint(&config(&policy, ""));
    assert!(r.branches.is_empty() && !r.has_errors(), "{r:#?}");
    assert!(r.subjects > 1);
}

#[test]
fn the_shipped_templates_pass_over_every_synthetic_subject() {
    let config = Rules::load(jitp_testkit::repo_config_path()).unwrap();
    let start = std::time::Instant::now();
    let reports = lint_templates(&config, &AwsContext::default());
    for r in &reports {
        assert!(!r.has_errors(), "{r:#?}");
        assert!(r.subjects >= 10, "{}: {} subjects", r.profile, r.subjects);
    }
    eprintln!("lint of the shipped templates: {:?}", start.elapsed());
}

#![cfg(test)]
//! The connect guard's lint rule through `jitp lint`'s code path (`review::lint_templates`): with `[guard]
//! domain_name` in jitp.toml, a template whose `iot:Connect` is not limited to that domain is an error naming the
//! statement; the shipped templates pass without `[guard]` and, with the condition their comment shows, with it.

use jitp_core::review::lint_templates;
use jitp_core::rules::Rules;
use jitp_policy::policy::AwsContext;
use jitp_testkit::config_dir::ConfigDir;

const PROFILE: &str = "[[profiles]]\nname = \"sensors\"\nca = [\"*\"]\ncommon_name = 'sensor-[0-9a-f]{12}'\nthing_name = \"{{ subject.cn }}\"\npolicy = \"policies/sensor.json.tera\"\n";

fn errors(dir: &ConfigDir) -> Vec<(String, Option<usize>, String)> {
    let rules = Rules::load(dir.config_path()).unwrap();
    lint_templates(&rules, &AwsContext::default())
        .into_iter()
        .flat_map(|t| t.findings)
        .filter(|f| f.finding.severity == jitp_policy::policy::lint::Severity::Error)
        .map(|f| (f.finding.rule.id().to_owned(), f.finding.statement, f.finding.message))
        .collect()
}

#[test]
fn with_the_guard_on_connect_must_be_limited_to_its_domain() {
    let dir = ConfigDir::new();
    dir.copy_policy("sensor.json.tera", "sensor.json.tera");
    // Without [guard]: the shipped template is clean.
    dir.write_config(PROFILE);
    assert_eq!(errors(&dir), []);
    // With it: the shipped template's ConnectAsOwnThing (statement 0) is named.
    dir.write_config(&format!("[guard]\ndomain_name = \"iot.example.com\"\n\n{PROFILE}"));
    let found = errors(&dir);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].0.as_str(), found[0].1), ("connect-outside-guarded-domain", Some(0)));
    assert!(found[0].2.contains("iot.example.com"), "{}", found[0].2);
    // The condition the template's comment shows: clean.
    dir.edit_policy_for_guard("iot.example.com");
    assert_eq!(errors(&dir), []);
    // Another domain in the condition: named.
    dir.write_config(&format!("[guard]\ndomain_name = \"iot.other.example.com\"\n\n{PROFILE}"));
    assert_eq!(errors(&dir).len(), 1);
}

#[test]
fn the_guarded_domain_must_be_a_domain_name() {
    let dir = ConfigDir::new();
    dir.copy_policy("sensor.json.tera", "sensor.json.tera");
    for bad in [
        "",
        "localhost",
        "iot..example.com",
        "-iot.example.com",
        "iot.example.com.",
        "*.example.com",
        "iot example.com",
    ] {
        dir.write_config(&format!("[guard]\ndomain_name = \"{bad}\"\n\n{PROFILE}"));
        let e = Rules::load(dir.config_path()).unwrap_err().to_string();
        assert!(e.contains("guard.domain_name") && e.contains("jitp.toml:2:"), "{bad:?}: {e}");
    }
    dir.write_config(&format!("[guard]\ndomain_name = \"iot.example.com\"\nmode = \"x\"\n\n{PROFILE}"));
    assert!(Rules::load(dir.config_path()).is_err(), "unknown keys are errors");
}

trait GuardTemplate {
    fn edit_policy_for_guard(&self, domain: &str);
}

impl GuardTemplate for ConfigDir {
    /// The shipped sensor template with its ConnectAsOwnThing limited to `domain`, as its comment says.
    fn edit_policy_for_guard(&self, domain: &str) {
        let path = self.path().join("policies/sensor.json.tera");
        let text = std::fs::read_to_string(&path).unwrap();
        let limited = text.replacen(
            "\"Resource\": \"{{ arn }}:client/{{ thing_name }}\"",
            &format!(
                "\"Resource\": \"{{{{ arn }}}}:client/{{{{ thing_name }}}}\",\n      \"Condition\": {{\"StringEquals\": {{\"iot:DomainName\": \"{domain}\"}}}}"
            ),
            1,
        );
        assert_ne!(limited, text, "the template's Connect statement moved");
        std::fs::write(path, limited).unwrap();
    }
}

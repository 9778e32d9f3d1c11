#![cfg(test)]
//! Rendered policies: snapshots of the shipped templates (a template change shows as a reviewable diff), and
//! the renderer's refusal of hostile certificate values.

use jitp_core::rules::Rules;
use jitp_pki::cert::Subject;
use jitp_pki::reason::{ReasonCode, Rejection};
use jitp_policy::policy::{AwsContext, DeviceContext, FORBIDDEN};
use jitp_profile::profile::{Overrides, PolicyMode};
use jitp_registry::thing::ThingName;
use jitp_testkit::config_dir::ConfigDir;

fn repo_config(mode: PolicyMode) -> Rules {
    Rules::load_with(jitp_testkit::repo_config_path(), &Overrides { policy_mode: Some(mode), ..Overrides::default() })
        .unwrap()
}

fn subject(cn: &str) -> Subject {
    Subject { cn: vec![cn.into()], o: vec!["Acme".into()], ou: vec!["line-3".into()], ..Subject::default() }
}

fn render(config: &Rules, profile: &str, thing: &str, subject: &Subject) -> Result<serde_json::Value, Rejection> {
    let thing = ThingName::try_from(thing.to_owned()).unwrap();
    let aws = AwsContext::default();
    let mut device =
        DeviceContext::new(config.profile(profile).unwrap(), subject, &"c".repeat(64), "01", &"a".repeat(64));
    device.name(thing);
    device.place(&aws);
    config.templates().render_policy(&device).map(|p| p.json())
}

#[test]
fn snapshot_shipped_templates() {
    for mode in [PolicyMode::PerThing, PolicyMode::Shared] {
        let config = repo_config(mode);
        for (profile, thing) in [("sensors", "sensor-0123456789ab"), ("gateways", "gw-eu-0001")] {
            let policy = render(&config, profile, thing, &subject(thing)).unwrap();
            insta::assert_json_snapshot!(format!("{profile}-{mode:?}"), policy);
        }
    }
}

/// A config whose one template prints `expr` inside a topic resource.
fn config_printing(expr: &str) -> Rules {
    let dir = ConfigDir::new();
    let template = format!(
        r#"{{"Version":"2012-10-17","Statement":[
{{"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:us-east-1:123456789012:client/{{{{ thing_name }}}}"}},
{{"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:us-east-1:123456789012:topic/things/{{{{ thing_name }}}}/{expr}"}}]}}"#
    );
    dir.write_policy("p.json.tera", &template);
    let path = dir.write_config(
        "[[profiles]]\nname = \"p\"\nca = [\"*\"]\ncommon_name = '.*'\nthing_name = \"{{ subject.cn }}\"\npolicy = \"policies/p.json.tera\"\n",
    );
    Rules::load(path).unwrap()
}

#[test]
fn every_forbidden_character_in_every_subject_field_is_refused() {
    let fields = ["cn", "o", "ou", "c", "st", "serial_number"];
    let mut hostile: Vec<String> = FORBIDDEN.iter().map(|(s, _)| format!("x{s}y")).collect();
    hostile.extend([
        "${iot:ClientId}".into(),
        "a\u{0}b".into(),
        "a\nb".into(),
        "a\u{7f}".into(),
        "\"},{\"Effect\":\"Allow\"".into(),
    ]);
    for field in fields {
        let config = config_printing(&format!("{{{{ subject.{field} }}}}"));
        for value in &hostile {
            let mut s = subject("dev-1");
            match field {
                "cn" => s.cn = vec![value.clone()],
                "o" => s.o = vec![value.clone()],
                "ou" => s.ou = vec![value.clone()],
                "c" => s.c = vec![value.clone()],
                "st" => s.st = vec![value.clone()],
                _ => s.serial_number = vec![value.clone()],
            }
            let result = render(&config, "p", "dev-1", &s);
            let err = result.expect_err(&format!("subject.{field} = {value:?} must be refused"));
            assert_eq!(err.reason, ReasonCode::InvalidAttribute, "{field} {value:?}: {}", err.message);
            assert!(err.message.contains(&format!("subject.{field}")), "names the field: {}", err.message);
        }
        // The same field with a clean value renders.
        let mut clean = subject("dev-1");
        clean.c = vec!["DE".into()];
        clean.st = vec!["Bavaria".into()];
        clean.serial_number = vec!["0042".into()];
        assert!(render(&config, "p", "dev-1", &clean).is_ok(), "{field}");
    }
}

#[test]
fn safe_and_escape_filters_cannot_bypass_the_guard() {
    for filter in ["safe", "escape", "escape_html", "escape_xml"] {
        let config = config_printing(&format!("{{{{ subject.ou | {filter} }}}}"));
        let mut s = subject("dev-1");
        s.ou = vec!["*".into()];
        let err = render(&config, "p", "dev-1", &s).unwrap_err();
        assert_eq!(err.reason, ReasonCode::InvalidAttribute, "{filter}");
    }
}

#[test]
fn a_computed_value_that_carries_a_forbidden_character_is_refused() {
    // No subject value is refused, yet the template prints a slash it computed: the guard refuses it all the same.
    let config = config_printing("{{ subject.ou ~ '/' ~ subject.o }}");
    let err = render(&config, "p", "dev-1", &subject("dev-1")).unwrap_err();
    assert_eq!(err.reason, ReasonCode::InvalidAttribute, "{}", err.message);
    assert!(err.message.contains("a computed value carries a forbidden character"), "{}", err.message);
}

#[test]
fn an_undefined_field_names_itself() {
    let config = config_printing("{{ subject.st }}");
    let err = render(&config, "p", "dev-1", &subject("dev-1")).unwrap_err();
    assert_eq!(err.reason, ReasonCode::PolicyTemplateError);
    assert!(err.message.contains("st"), "{}", err.message);
    let defaulted = config_printing("{{ subject.st | default(value='none') }}");
    assert!(render(&defaulted, "p", "dev-1", &subject("dev-1")).is_ok());
}

#[test]
fn oversized_and_invalid_documents() {
    let long = "a".repeat(2100);
    let config = config_printing(&long);
    assert_eq!(render(&config, "p", "dev-1", &subject("dev-1")).unwrap_err().reason, ReasonCode::PolicyTooLarge);
    let config = config_printing("\"]}, trailing");
    assert_eq!(render(&config, "p", "dev-1", &subject("dev-1")).unwrap_err().reason, ReasonCode::PolicyTemplateError);
}

#[test]
fn a_template_that_widens_is_refused_at_run_time() {
    let config = config_printing("*\"},{\"Effect\":\"Allow\",\"Action\":\"iot:Subscribe\",\"Resource\":\"*");
    let err = render(&config, "p", "dev-1", &subject("dev-1")).unwrap_err();
    assert_eq!(err.reason, ReasonCode::PolicyTooPermissive, "{}", err.message);
}

#[test]
fn shared_mode_templates_cannot_read_device_values() {
    let config = config_printing("{{ subject.ou }}");
    let profile = config.profile("p").unwrap();
    let mut profile = profile.clone();
    profile.policy_mode = PolicyMode::Shared;
    let thing = ThingName::try_from("dev-1".to_owned()).unwrap();
    let aws = AwsContext::default();
    let s = subject("dev-1");
    let mut device = DeviceContext::new(&profile, &s, "c", "01", "a");
    device.name(thing);
    device.place(&aws);
    let err = config.templates().render_policy(&device).unwrap_err();
    assert_eq!(err.reason, ReasonCode::PolicyTemplateError, "{}", err.message);
}

//! Policy tests: requests a profile's policy must allow and must deny, checked by `jitp lint` for every synthetic
//! subject it renders (see [`crate::review`]), with AWS IoT's semantics (`jitp_policy_eval`).
//!
//! Two sources:
//! - the security team's tests beside the template: `policies/sensor.json.tera` -> `policies/sensor.tests.toml`,
//!   `allow = ["ACTION NAME", ...]` and `deny = [...]`, where NAME is the resource's name (a topic, a topic filter
//!   for `iot:Subscribe`, a client id for `iot:Connect`, a thing name for the shadow and job actions) written with
//!   `{{ thing_name }}` (the device's own thing name) and `{{ other }}` (another device's);
//! - the tests every profile gets without writing them ([`builtin_denials`]): another device's client id, the
//!   other device's version of every resource the policy grants on the device's own name, its shadow, and broad
//!   filters (`#`, `+/#`, the device's name level as `+`) must all be denied.
//!
//! The device connects with its thing name as the client id, its thing attached exclusively (as jitp does).

use std::collections::HashSet;
use std::path::Path;

use jitp_policy_eval::{Account, Action, Context, Decision, Policy, Request, ResourceType, Thing};
use serde::{Deserialize, Serialize};

use jitp_policy::policy::AwsContext;

/// A failed expectation (or an unreadable tests file): a lint error.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyTestFinding {
    /// The tests file (relative to the config), or `built-in`.
    pub file: String,
    /// 1-based line of the expectation in `file`.
    pub line: Option<usize>,
    /// 1-based line in the template of the statement that decided, if one did.
    pub template_line: Option<usize>,
    /// The expectation as written (`may publish things/{{ thing_name }}/telemetry`).
    pub expectation: String,
    /// What happened, with the request, the decision and the statement that decided.
    pub message: String,
    /// The synthetic subject it failed for (the first one).
    pub subject: String,
}

/// What `file` says, or why it cannot be read (a finding).
#[derive(Debug, Clone)]
pub struct Suite {
    file: String,
    expectations: Vec<Expectation>,
}

#[derive(Debug, Clone)]
struct Expectation {
    allow: bool,
    action: Action,
    name: String,
    line: Option<usize>,
    written: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestsFile {
    #[serde(default)]
    allow: Vec<toml::Spanned<String>>,
    #[serde(default)]
    deny: Vec<toml::Spanned<String>>,
}

const OWN: &str = "{{ thing_name }}";
const OTHER: &str = "{{ other }}";
/// The label of the tests every profile gets.
pub const BUILT_IN: &str = "built-in";

/// The tests file beside a template: its name without `.json.tera` (or `.tera`), then `.tests.toml`.
pub fn tests_file(template: &str) -> String {
    let stem = template.strip_suffix(".json.tera").or_else(|| template.strip_suffix(".tera")).unwrap_or(template);
    format!("{stem}.tests.toml")
}

fn unreadable(file: &str, line: Option<usize>, message: String) -> Box<PolicyTestFinding> {
    Box::new(PolicyTestFinding {
        file: file.to_owned(),
        line,
        template_line: None,
        expectation: String::new(),
        message,
        subject: String::new(),
    })
}

impl Suite {
    /// The tests beside `template` in `config_dir`; none if the file does not exist.
    pub fn load(config_dir: &Path, template: &str) -> Result<Suite, Box<PolicyTestFinding>> {
        let file = tests_file(template);
        let text = match std::fs::read_to_string(config_dir.join(&file)) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Suite { file, expectations: Vec::new() }),
            Err(e) => return Err(unreadable(&file, None, format!("cannot read the policy tests: {e}"))),
        };
        let parsed: TestsFile = toml::from_str(&text).map_err(|e| {
            let line = e.span().map(|s| line_of(&text, s.start));
            unreadable(&file, line, format!("not a policy tests file (allow = [...], deny = [...]): {}", e.message()))
        })?;
        let mut expectations = Vec::new();
        for (allow, list) in [(true, &parsed.allow), (false, &parsed.deny)] {
            for entry in list {
                let line = Some(line_of(&text, entry.span().start));
                let written = entry.get_ref().clone();
                let Some((action, name)) = written.split_once(' ') else {
                    return Err(unreadable(&file, line, format!("{written:?}: expected \"ACTION NAME\"")));
                };
                let action: Action =
                    action.parse().map_err(|e| unreadable(&file, line, format!("{written:?}: {e}")))?;
                let stripped = name.replace(OWN, "").replace(OTHER, "");
                if stripped.contains("{{") || stripped.contains("}}") {
                    return Err(unreadable(
                        &file,
                        line,
                        format!("{written:?}: the only placeholders are {OWN} and {OTHER}, written exactly so"),
                    ));
                }
                expectations.push(Expectation { allow, action, name: name.to_owned(), line, written });
            }
        }
        Ok(Suite { file, expectations })
    }

    /// The tests file's name (relative to the config).
    pub fn file(&self) -> &str {
        &self.file
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(0, |t| t.matches('\n').count()) + 1
}

/// Another device's thing name: the device's own with its last character changed (same length and characters,
/// so a template's wildcard over the fleet's names would match it too).
pub fn other_name(own: &str) -> String {
    let mut other: String = own.chars().take(own.chars().count().saturating_sub(1)).collect();
    other.push(if own.ends_with('0') { '1' } else { '0' });
    other
}

/// The denials every profile gets, for a rendered policy and the device's own thing name: `(action, name, what)`.
/// `own_requests`: what the tests file says the device may do on its own name (`{{ thing_name }}`), which another
/// device's version of must be denied too.
pub fn builtin_denials(policy: &Policy, own: &str, own_requests: &[(Action, &str)]) -> Vec<(Action, String, String)> {
    let mut out: Vec<(Action, String, String)> = Vec::new();
    let mut push = |action: Action, name: String, what: &str| {
        if !out.iter().any(|(a, n, _)| *a == action && *n == name) {
            out.push((action, name, what.to_owned()));
        }
    };
    // A longer name sharing the prefix catches `{{ thing_name }}*`; the changed last character, `name-*`.
    let mut others = vec![other_name(own)];
    if own.len() < 128 {
        others.push(format!("{own}0"));
    }
    for other in &others {
        push(Action::Connect, other.clone(), "connect as another device's client id");
        push(Action::Publish, format!("$aws/things/{other}/shadow/update"), "update another device's shadow");
        push(
            Action::Subscribe,
            format!("$aws/things/{other}/shadow/update/accepted"),
            "subscribe to another device's shadow",
        );
        push(Action::Receive, format!("$aws/things/{other}/shadow/update/accepted"), "receive another device's shadow");
        push(Action::GetThingShadow, other.clone(), "read another device's shadow over HTTP");
        push(Action::UpdateThingShadow, other.clone(), "update another device's shadow over HTTP");
    }
    for (action, name) in own_requests {
        for other in &others {
            push(*action, name.replace(OWN, other), "what the tests allow the device, on another device's name");
        }
    }
    for filter in ["#", "+/#", "$aws/things/+/shadow/#", "$aws/things/+/jobs/#"] {
        push(Action::Subscribe, filter.to_owned(), "subscribe to a broad filter");
    }
    // The other device's version of every resource granted on the device's own name.
    let own_levels = [own, "${iot:Connection.Thing.ThingName}", "${iot:ClientId}"];
    for statement in policy.statements().iter().filter(|s| s.effect() == jitp_policy_eval::Effect::Allow) {
        for resource in statement.resources().unwrap_or_default() {
            let Some((kind, name)) = resource.splitn(6, ':').nth(5).and_then(|r| r.split_once('/')) else { continue };
            let levels: Vec<&str> = name.split('/').collect();
            // A level that is the device's name, or starts with it (`{{ thing_name }}*`, which the lint also flags).
            let own_prefix =
                |l: &str| own_levels.iter().find_map(|o| l.strip_prefix(o)).map(|rest| rest.replace(['*', '?'], "x"));
            if !levels.iter().any(|l| own_prefix(l).is_some()) {
                continue;
            }
            let concrete = |replacement: &str| -> String {
                levels
                    .iter()
                    .map(|l| match own_prefix(l) {
                        Some(_) if replacement == "+" => "+".to_owned(),
                        Some(rest) => format!("{replacement}{rest}"),
                        None => l.replace(['*', '?'], "x"),
                    })
                    .collect::<Vec<_>>()
                    .join("/")
            };
            for action in
                Action::ALL.iter().copied().filter(|a| a.resource_type().as_str() == kind && statement.covers(*a))
            {
                for other in &others {
                    push(action, concrete(other), "another device's resource");
                }
                if action.resource_type() == ResourceType::TopicFilter {
                    push(action, concrete("+"), "a broad + filter over the devices' names");
                }
            }
        }
    }
    out
}

/// Runs `suite` and the built-in denials against one rendered policy. `template_line` maps a statement index to its
/// line in the template. Returns how many checks ran.
#[allow(clippy::too_many_arguments)] // one device's facts, where findings go
pub fn run(
    suite: &Suite,
    policy_text: &str,
    own: &str,
    aws: &AwsContext,
    subject: &str,
    template_line: &dyn Fn(usize) -> Option<usize>,
    findings: &mut Vec<PolicyTestFinding>,
    seen: &mut HashSet<String>,
) -> usize {
    let policy = match Policy::parse(policy_text) {
        Ok(p) => p,
        Err(e) => {
            if seen.insert(format!("parse {e}")) {
                findings.push(*unreadable(BUILT_IN, None, format!("the rendered policy cannot be evaluated: {e}")));
            }
            return 0;
        }
    };
    let account =
        Account { partition: aws.partition.clone(), region: aws.region.clone(), account_id: aws.account_id.clone() };
    let mut ctx = Context::new(own);
    ctx.thing = Some(Thing { name: own.to_owned(), exclusive: true, ..Thing::default() });
    let other = other_name(own);
    let written = suite.expectations.iter().map(|e| {
        let name = e.name.replace(OWN, own).replace(OTHER, &other);
        (e.allow, e.action, name, suite.file.clone(), e.line, e.written.clone())
    });
    let own_requests: Vec<(Action, &str)> = suite
        .expectations
        .iter()
        .filter(|e| e.allow && e.name.contains(OWN) && !e.name.contains(OTHER))
        .map(|e| (e.action, e.name.as_str()))
        .collect();
    let builtin = builtin_denials(&policy, own, &own_requests).into_iter().map(|(action, name, what)| {
        let shown = name.replace(&other, OTHER).replace(own, OWN);
        (false, action, name, BUILT_IN.to_owned(), None, format!("{action} {shown} ({what})"))
    });
    let mut checks = 0;
    for (allow, action, name, file, line, written) in written.chain(builtin) {
        checks += 1;
        let verb = if allow { "may" } else { "may not" };
        let expectation = format!("{verb} {written}");
        let request = match Request::on(action, &account, &name) {
            Ok(r) => r,
            Err(e) => {
                if seen.insert(expectation.clone()) {
                    findings.push(PolicyTestFinding {
                        file,
                        line,
                        template_line: None,
                        expectation,
                        message: format!("not a request AWS IoT would authorize: {e}"),
                        subject: subject.to_owned(),
                    });
                }
                continue;
            }
        };
        let answer = jitp_policy_eval::evaluate(std::slice::from_ref(&policy), &request, &ctx);
        let passed = if allow { answer.is_allowed() } else { answer.is_denied() };
        if passed || !seen.insert(expectation.clone()) {
            continue;
        }
        let decided = answer.statement.as_ref().map(|s| {
            let sid = s.sid.as_deref().map(|sid| format!(" {sid:?}")).unwrap_or_default();
            (format!(", decided by statement #{}{sid}", s.statement), template_line(s.statement))
        });
        let why = match answer.decision {
            Decision::NotModelled => format!(
                " (not modelled: {})",
                answer.unmodelled.iter().flat_map(|u| u.reasons.iter()).cloned().collect::<Vec<_>>().join("; ")
            ),
            Decision::ImplicitDeny => " (no statement allows it)".to_owned(),
            _ => String::new(),
        };
        findings.push(PolicyTestFinding {
            file,
            line,
            template_line: decided.as_ref().and_then(|(_, l)| *l),
            expectation,
            message: format!(
                "{} {} is {}{}{why}",
                request.action(),
                request.resource(),
                answer.decision,
                decided.map(|(d, _)| d).unwrap_or_default()
            ),
            subject: subject.to_owned(),
        });
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENSOR: &str = r#"{"Version": "2012-10-17", "Statement": [
      {"Sid": "Connect", "Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:us-east-1:123456789012:client/s-01"},
      {"Sid": "Pub", "Effect": "Allow", "Action": "iot:Publish", "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/things/s-01/*"]},
      {"Sid": "Sub", "Effect": "Allow", "Action": "iot:Subscribe", "Resource": ["arn:aws:iot:us-east-1:123456789012:topicfilter/things/s-01/commands/*"]}]}"#;

    fn run_on(suite: &Suite, text: &str) -> Vec<PolicyTestFinding> {
        let mut findings = Vec::new();
        run(
            suite,
            text,
            "s-01",
            &AwsContext::default(),
            "CN=\"s-01\"",
            &|i| Some(i + 10),
            &mut findings,
            &mut HashSet::new(),
        );
        findings
    }

    fn suite(toml_text: &str) -> Result<Suite, Box<PolicyTestFinding>> {
        let dir = tempfile::tempdir().map_err(|e| unreadable("", None, e.to_string()))?;
        std::fs::create_dir_all(dir.path().join("policies")).map_err(|e| unreadable("", None, e.to_string()))?;
        std::fs::write(dir.path().join("policies/p.tests.toml"), toml_text)
            .map_err(|e| unreadable("", None, e.to_string()))?;
        Suite::load(dir.path(), "policies/p.json.tera")
    }

    #[test]
    fn a_scoped_policy_passes_the_builtins_and_its_own_tests() {
        let s = suite(
            r#"allow = ["iot:Publish things/{{ thing_name }}/telemetry", "iot:Connect {{ thing_name }}"]
               deny = ["iot:Subscribe things/{{ other }}/commands/#"]"#,
        );
        let Ok(s) = s else { panic!("{s:?}") };
        assert!(run_on(&s, SENSOR).is_empty(), "{:#?}", run_on(&s, SENSOR));
    }

    #[test]
    fn a_wide_policy_fails_with_the_statement_and_its_line() {
        let wide = SENSOR.replace("topicfilter/things/s-01/commands/*", "topicfilter/things/*");
        let Ok(s) = suite(
            r#"deny = ["iot:Subscribe things/{{ other }}/commands/#"]
               allow = ["iot:Subscribe things/{{ thing_name }}/commands/#"]"#,
        ) else {
            panic!()
        };
        let findings = run_on(&s, &wide);
        let mine = findings.iter().find(|f| f.file.ends_with("p.tests.toml"));
        let Some(f) = mine else { panic!("{findings:#?}") };
        assert_eq!(f.line, Some(1));
        assert_eq!(f.template_line, Some(12), "statement #2, line mapped by the caller");
        let derived =
            findings.iter().find(|f| f.file == BUILT_IN && f.expectation.contains("on another device's name"));
        assert!(derived.is_some(), "{findings:#?}");
        assert!(f.message.contains("ALLOWED") && f.message.contains("\"Sub\""), "{}", f.message);
        let prefix = SENSOR.replace("topic/things/s-01/*", "topic/things/s-01*");
        let Ok(empty) = suite("") else { panic!() };
        assert!(run_on(&empty, &prefix).iter().any(|f| f.file == BUILT_IN), "a prefix wildcard reaches s-010's topics");
        let named_level = SENSOR.replace("topicfilter/things/s-01/commands/*", "topicfilter/things/s-01/commands/*\", \"arn:aws:iot:us-east-1:123456789012:topicfilter/things/+/commands/*");
        assert!(
            run_on(&empty, &named_level).iter().any(|f| f.expectation.contains("broad + filter")),
            "{:#?}",
            run_on(&empty, &named_level)
        );
    }

    #[test]
    fn a_must_allow_that_is_denied_fails() {
        let Ok(s) = suite(
            r#"allow = ["iot:Publish things/{{ thing_name }}/x/y", "iot:Receive things/{{ thing_name }}/commands/a"]"#,
        ) else {
            panic!()
        };
        let findings = run_on(&s, SENSOR);
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert!(findings[0].message.contains("IMPLICIT_DENY"));
        assert_eq!(findings[0].line, Some(1));
    }

    #[test]
    fn unreadable_tests_files_are_findings_with_the_line() {
        for (text, line) in [
            ("allow = [\"iot:Publish\"]", Some(1)),
            ("\nallow = [\"iot:Publsh x\"]", Some(2)),
            ("deny = [\"iot:Publish {{ thing }}/x\"]", Some(1)),
            ("allowed = []", Some(1)),
        ] {
            match suite(text) {
                Err(f) => assert_eq!(f.line, line, "{text}: {f:?}"),
                Ok(s) => panic!("{text}: {s:?}"),
            }
        }
        assert_eq!(tests_file("policies/sensor.json.tera"), "policies/sensor.tests.toml");
        assert_eq!(other_name("sensor-0"), "sensor-1");
    }
}

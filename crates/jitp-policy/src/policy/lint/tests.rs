use serde_json::{Value, json};

use super::actions::{DATA_PLANE, glob_matches};
use super::*;

const ARN: &str = "arn:aws:iot:eu-west-1:123456789012";
const THING: Scope<'static> = Scope::Thing("sensor-1");
const VAR: &str = THING_NAME_VARIABLE;

/// A full ARN for `type/name`; `*`, ARNs and `raw:`-prefixed values stay as written.
fn arn(resource: &str) -> String {
    if let Some(raw) = resource.strip_prefix("raw:") {
        raw.to_owned()
    } else if resource == "*" || resource.starts_with("arn:") {
        resource.to_owned()
    } else {
        format!("{ARN}:{resource}")
    }
}

fn statement(effect: &str, actions: &[&str], resources: &[&str]) -> Value {
    let resources: Vec<String> = resources.iter().map(|r| arn(r)).collect();
    json!({ "Effect": effect, "Action": actions, "Resource": resources })
}

fn allow(actions: &[&str], resources: &[&str]) -> Value {
    statement("Allow", actions, resources)
}

fn deny(actions: &[&str], resources: &[&str]) -> Value {
    statement("Deny", actions, resources)
}

fn policy(statements: &[Value]) -> String {
    json!({ "Version": "2012-10-17", "Statement": statements }).to_string()
}

fn run(statements: &[Value], scope: Scope<'_>) -> Report {
    lint(&policy(statements), scope)
}

fn rules(report: &Report) -> Vec<&'static str> {
    report.findings.iter().map(|f| f.rule.id()).collect()
}

#[track_caller]
fn assert_clean(report: &Report) {
    assert!(report.is_clean(), "expected no findings, got {:#?}", report.findings);
}

#[track_caller]
fn assert_has(report: &Report, rule: Rule) -> &Finding {
    let found = report.findings.iter().find(|f| f.rule == rule);
    assert!(found.is_some(), "expected {rule}, got {:#?}", report.findings);
    let Some(finding) = found else { unreachable!("asserted above") };
    finding
}

#[track_caller]
fn assert_lacks(report: &Report, rule: Rule) {
    assert!(!report.findings.iter().any(|f| f.rule == rule), "unexpected {rule} in {:#?}", report.findings);
}

/// Exactly these rules, in order.
#[track_caller]
fn assert_rules(report: &Report, expected: &[Rule]) {
    let expected: Vec<&str> = expected.iter().map(|r| r.id()).collect();
    assert_eq!(rules(report), expected, "{:#?}", report.findings);
}

/// A least-privilege device policy for `t` (a thing name or the thing-name variable).
fn least_privilege(t: &str) -> Vec<Value> {
    vec![
        allow(&["iot:Connect"], &[&format!("client/{t}")]),
        allow(
            &["iot:Publish", "iot:Receive", "iot:RetainPublish"],
            &[
                &format!("topic/things/{t}/*"),
                &format!("topic/$aws/things/{t}/shadow/*"),
                &format!("topic/$aws/things/{t}/shadow/name/*"),
                &format!("topic/$aws/things/{t}/jobs/*"),
            ],
        ),
        allow(
            &["iot:Subscribe"],
            &[
                &format!("topicfilter/things/{t}/#"),
                &format!("topicfilter/$aws/things/{t}/shadow/+/accepted"),
                &format!("topicfilter/$aws/things/{t}/shadow/name/+/update/delta"),
                &format!("topicfilter/$aws/things/{t}/jobs/notify-next"),
            ],
        ),
        allow(
            &["iot:GetThingShadow", "iot:UpdateThingShadow", "iot:DeleteThingShadow"],
            &[&format!("thing/{t}"), &format!("thing/{t}/config")],
        ),
        allow(
            &[
                "iot:DescribeJobExecution",
                "iot:GetPendingJobExecutions",
                "iot:StartNextPendingJobExecution",
                "iot:UpdateJobExecution",
            ],
            &[&format!("thing/{t}")],
        ),
        allow(&["iot:GetRetainedMessage"], &[&format!("topic/things/{t}/config")]),
        deny(&["iot:Publish"], &[&format!("topic/things/{t}/admin/*")]),
    ]
}

// ---- clean policies

#[test]
fn least_privilege_per_thing_policy_is_clean() {
    assert_clean(&run(&least_privilege("sensor-1"), THING));
}

#[test]
fn least_privilege_shared_policy_is_clean() {
    assert_clean(&run(&least_privilege(VAR), Scope::Shared));
}

#[test]
fn per_thing_policy_may_use_the_thing_variable() {
    assert_clean(&run(&least_privilege(VAR), THING));
}

#[test]
fn thing_names_with_colons_and_underscores_are_clean() {
    assert_clean(&run(&least_privilege("plant:7_line-2"), Scope::Thing("plant:7_line-2")));
}

#[test]
fn least_privilege_for_another_thing_is_not_clean() {
    let report = run(&least_privilege("sensor-2"), THING);
    assert_has(&report, Rule::ConnectForeignClient);
    assert_has(&report, Rule::UnscopedTopicAccess);
    assert!(report.has_errors());
}

#[test]
fn literal_thing_name_in_a_shared_policy_is_unscoped() {
    let report = run(&least_privilege("sensor-1"), Scope::Shared);
    assert_has(&report, Rule::ConnectForeignClient);
    assert_has(&report, Rule::UnscopedTopicAccess);
}

// ---- invalid-document

#[track_caller]
fn assert_invalid(document: &str, needle: &str) {
    let report = lint(document, THING);
    let found = report.findings.iter().any(|f| f.rule == Rule::InvalidDocument && f.message.contains(needle));
    assert!(found, "expected invalid-document mentioning {needle:?}, got {:#?}", report.findings);
    assert!(report.has_errors());
}

#[test]
fn rejects_what_is_not_a_policy_object() {
    assert_invalid("", "not valid JSON");
    assert_invalid("{", "not valid JSON");
    assert_invalid(&format!("{} trailing", policy(&least_privilege("sensor-1"))), "not valid JSON");
    assert_invalid("[]", "not an object");
    assert_invalid("\"policy\"", "not an object");
    assert_invalid(&" ".repeat(MAX_DOCUMENT_BYTES + 1), "bytes");
    // Nesting deeper than serde_json's recursion limit is an error, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_invalid(&deep, "not valid JSON");
}

#[test]
fn rejects_duplicate_keys_anywhere() {
    let effect = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Effect":"Allow","Action":"iot:Connect","Resource":"{ARN}:client/sensor-1"}}]}}"#
    );
    assert_invalid(&effect, "duplicate key \"Effect\"");
    // An escaped key is the same key once decoded.
    assert_invalid(&effect.replacen("\"Effect\":\"Allow\"", "\"Eff\\u0065ct\":\"Allow\"", 1), "duplicate key");
    assert_invalid(r#"{"Version":"2012-10-17","Version":"2012-10-17","Statement":[]}"#, "duplicate key \"Version\"");
    let nested = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"iot:Connect","Resource":"{ARN}:client/sensor-1","Condition":{{"Bool":{{"a":"1","a":"2"}}}}}}]}}"#
    );
    assert_invalid(&nested, "duplicate key \"a\"");
}

#[test]
fn rejects_bad_version_and_statement() {
    let ok = allow(&["iot:Connect"], &["client/sensor-1"]);
    assert_invalid(&json!({ "Version": "2008-10-17", "Statement": [ok] }).to_string(), "\"2008-10-17\"");
    assert_invalid(&json!({ "Version": 2012, "Statement": [ok] }).to_string(), "number");
    assert_invalid(&json!({ "Statement": [ok] }).to_string(), "Version is missing");
    assert_invalid(&json!({ "Version": "2012-10-17" }).to_string(), "Statement is missing");
    assert_invalid(&json!({ "Version": "2012-10-17", "Statement": [] }).to_string(), "empty");
    assert_invalid(&json!({ "Version": "2012-10-17", "Statement": "Allow" }).to_string(), "not an array");
    assert_invalid(&json!({ "Version": "2012-10-17", "Statement": [ok, "x"] }).to_string(), "not an object");
    assert_invalid(&json!({ "Version": "2012-10-17", "Statement": [ok], "Extra": 1 }).to_string(), "\"Extra\"");
    assert_invalid(&json!({ "Version": "2012-10-17", "Statement": [ok], "Id": 7 }).to_string(), "Id");
}

#[test]
fn rejects_bad_statements() {
    let c = arn("client/sensor-1");
    let cases = [
        (json!({ "Effect": "allow", "Action": "iot:Connect", "Resource": c }), "not exactly"),
        (json!({ "Effect": ["Allow"], "Action": "iot:Connect", "Resource": c }), "Effect is a JSON array"),
        (json!({ "Action": "iot:Connect", "Resource": c }), "Effect is missing"),
        (json!({ "Effect": "Allow", "Action": 1, "Resource": c }), "Action is a JSON number"),
        (json!({ "Effect": "Allow", "Action": ["iot:Connect", 1], "Resource": c }), "strings only"),
        (json!({ "Effect": "Allow", "Action": [], "Resource": c }), "empty array"),
        (json!({ "Effect": "Allow", "Action": "iot:Connect" }), "neither Resource nor NotResource"),
        (json!({ "Effect": "Allow", "Resource": c }), "neither Action nor NotAction"),
        (json!({ "Effect": "Deny", "Action": "iot:Connect", "NotAction": "iot:Publish", "Resource": c }), "both"),
        (json!({ "Effect": "Allow", "Action": "iot:Connect", "Resource": {"a": 1} }), "Resource is a JSON object"),
        (json!({ "Effect": "Allow", "Principal": "*", "Action": "iot:Connect", "Resource": c }), "Principal"),
        (json!({ "Effect": "Deny", "NotPrincipal": {}, "Action": "iot:Connect", "Resource": c }), "NotPrincipal"),
        (json!({ "Effect": "Allow", "action": "iot:Connect", "Action": "iot:Connect", "Resource": c }), "\"action\""),
        (json!({ "Effect": "Allow", "Sid": 1, "Action": "iot:Connect", "Resource": c }), "Sid"),
        (json!({ "Effect": "Allow", "Condition": [], "Action": "iot:Connect", "Resource": c }), "Condition"),
        (json!({ "Effect": "Allow", "Action": "iot Connect", "Resource": c }), "\"iot Connect\""),
        (json!({ "Effect": "Allow", "Action": "iot:Conn${x}", "Resource": c }), "service:Action"),
    ];
    for (stmt, needle) in cases {
        assert_invalid(&policy(&[stmt]), needle);
    }
}

#[test]
fn rejects_malformed_arns_in_allow() {
    for (resource, needle) in [
        ("raw:topic/things/sensor-1/x", "neither"),
        ("arn:aws:iot:eu-west-1:123456789012", "form"),
        ("arn:aws:iot:eu-west-1:123456789012:topic", "type/name"),
        ("arn:aws:iot::123456789012:topic/things/sensor-1", "empty"),
        ("arn:aws:iot:eu-west-1:123456789012:topic/", "empty resource name"),
    ] {
        let report = run(&[allow(&["iot:Publish"], &[resource])], THING);
        let f = assert_has(&report, Rule::InvalidDocument);
        assert!(f.message.contains(needle), "{resource}: {}", f.message);
        assert_eq!(f.resource.as_deref(), Some(arn(resource).as_str()));
    }
}

#[test]
fn malformed_arn_in_deny_is_only_a_warning() {
    let report = run(&[deny(&["iot:Publish"], &["raw:topic/things/x"])], THING);
    assert_rules(&report, &[Rule::ResourceTypeMismatch, Rule::ResourceTypeMismatch]);
    assert!(report.findings[0].message.contains("neither"), "{}", report.findings[0].message);
}

#[test]
fn accepts_single_statement_object_string_or_array_and_conditions() {
    let single = json!({
        "Version": "2012-10-17",
        "Id": "device",
        "Statement": {
            "Sid": "Connect",
            "Effect": "Allow",
            "Action": "iot:Connect",
            "Resource": arn("client/sensor-1"),
            "Condition": { "Bool": { "iot:Connection.Thing.IsAttached": ["true"] }, "Null": { "x": [1, null, 2.5, {}] } }
        }
    });
    assert_clean(&lint(&single.to_string(), THING));
    let as_array = json!({ "Effect": "Allow", "Action": ["iot:Connect"], "Resource": [arn("client/sensor-1")] });
    assert_clean(&run(&[as_array], THING));
}

#[test]
fn a_bad_statement_does_not_hide_the_others() {
    let report = run(&[json!({ "Effect": "Permit" }), allow(&["iot:*"], &["client/sensor-1"])], THING);
    assert_eq!(report.findings[0].statement, Some(0));
    let f = assert_has(&report, Rule::AllowWildcardAction);
    assert_eq!(f.statement, Some(1));
}

// ---- allow-wildcard-action

#[test]
fn wildcard_actions_in_allow_are_errors() {
    for action in ["*", "iot:*", "IOT:*", "iot:Pub*", "iot:*Shadow", "iot:Publis?", "i*:Publish"] {
        let report = run(&[allow(&[action], &["topic/things/sensor-1/*"])], THING);
        let f = assert_has(&report, Rule::AllowWildcardAction);
        assert_eq!(f.action.as_deref(), Some(action));
        assert_eq!(f.severity, Severity::Error);
        assert!(f.message.contains(action), "{}", f.message);
    }
}

#[test]
fn exact_and_case_variant_actions_are_not_wildcards() {
    let report = run(&[allow(&["iot:Publish", "IoT:publish", "IOT:PUBLISH"], &["topic/things/sensor-1/data"])], THING);
    assert_clean(&report);
    let report = run(&[allow(&["IoT:publish"], &["topic/things/other/data"])], THING);
    assert_rules(&report, &[Rule::UnscopedTopicAccess]);
}

#[test]
fn wildcard_actions_in_deny_are_fine() {
    assert_clean(&run(&[deny(&["iot:*"], &["topic/things/other/*"]), deny(&["*"], &["*"])], THING));
}

#[test]
fn wildcard_actions_are_also_checked_as_what_they_match() {
    let report = run(&[allow(&["iot:*"], &["client/*"])], THING);
    assert_rules(&report, &[Rule::AllowWildcardAction, Rule::AllowWildcardResource, Rule::ConnectForeignClient]);
    let report = run(&[allow(&["iot:*Shadow"], &["thing/other"])], THING);
    assert_rules(&report, &[Rule::AllowWildcardAction, Rule::UnscopedTopicAccess]);
}

// ---- allow-wildcard-resource

#[test]
fn wildcard_resources_in_allow_are_errors() {
    for resource in [
        "*",
        "client/*",
        "topic/*",
        "topicfilter/*",
        "topicfilter/#",
        "topicfilter/+/telemetry",
        "thing/*",
        "thing/sens*",
        "topic/$aws/things/*",
        "topic/$aws/*",
        "topic/$aws/things/*/shadow/*",
        "arn:aws:iot:*",
        "arn:*",
        "arn:aws:iot:eu-west-1:123456789012:*",
        "arn:aws:iot:eu-west-1:123456789012:top*/things/sensor-1",
        "arn:aws:iot:*:*:topic/things/sensor-1/data",
        "arn:aws:*:eu-west-1:123456789012:topic/things/sensor-1/data",
    ] {
        let report = run(&[allow(&["iot:Publish"], &[resource])], THING);
        let f = assert_has(&report, Rule::AllowWildcardResource);
        assert_eq!(f.resource.as_deref(), Some(arn(resource).as_str()));
    }
}

#[test]
fn scoped_wildcards_are_not_wildcard_resources() {
    let report = run(&[allow(&["iot:Publish"], &["topic/things/sensor-1/*", "topic/things/*"])], THING);
    assert_rules(&report, &[Rule::UnscopedTopicAccess]);
    assert_eq!(report.findings[0].resource.as_deref(), Some(arn("topic/things/*").as_str()));
}

#[test]
fn list_retained_messages_on_star_is_account_wide() {
    let report = run(&[allow(&["iot:ListRetainedMessages"], &["*"])], THING);
    assert_rules(&report, &[Rule::AllowWildcardResource]);
    assert_clean(&run(&[allow(&["iot:ListRetainedMessages"], &["topic/things/sensor-1/x"])], THING));
}

#[test]
fn role_aliases_must_be_named() {
    let report = run(&[allow(&["iot:AssumeRoleWithCertificate"], &["rolealias/*"])], THING);
    assert_rules(&report, &[Rule::AllowWildcardResource]);
    assert_clean(&run(&[allow(&["iot:AssumeRoleWithCertificate"], &["rolealias/device-uploads"])], THING));
}

#[test]
fn star_resource_in_deny_is_fine() {
    assert_clean(&run(&[deny(&["iot:Publish"], &["*"])], THING));
}

// ---- connect-foreign-client

#[test]
fn connect_must_be_the_things_own_client_id() {
    for (resource, needle) in [
        ("client/*", "other than"),
        ("client/sensor-1*", "other than"),
        ("client/sensor-?", "other than"),
        ("client/${iot:ClientId}", "whatever client id"),
        ("client/other", "\"other\""),
        ("client/sensor-10", "\"sensor-10\""),
        ("client/things/sensor-1", "\"things/sensor-1\""),
        ("*", "other than"),
    ] {
        let report = run(&[allow(&["iot:Connect"], &[resource])], THING);
        let f = assert_has(&report, Rule::ConnectForeignClient);
        assert!(f.message.contains(needle), "{resource}: {}", f.message);
        assert_eq!((f.action.as_deref(), f.statement), (Some("iot:Connect"), Some(0)));
    }
}

#[test]
fn client_id_variable_in_connect_is_reported_once() {
    let report = run(&[allow(&["iot:Connect"], &["client/${iot:ClientId}"])], Scope::Shared);
    assert_rules(&report, &[Rule::ConnectForeignClient]);
}

#[test]
fn connect_on_own_client_id_is_clean_in_both_scopes() {
    assert_clean(&run(&[allow(&["iot:Connect"], &["client/sensor-1"])], THING));
    assert_clean(&run(&[allow(&["iot:Connect"], &[&format!("client/{VAR}")])], THING));
    assert_clean(&run(&[allow(&["iot:Connect"], &[&format!("client/{VAR}")])], Scope::Shared));
    let report = run(&[allow(&["iot:Connect"], &["client/sensor-1"])], Scope::Shared);
    assert_rules(&report, &[Rule::ConnectForeignClient]);
}

#[test]
fn invalid_scope_thing_name_fails_closed() {
    let report = run(&[allow(&["iot:Connect"], &["client/*"])], Scope::Thing("*"));
    assert_has(&report, Rule::ConnectForeignClient);
    let report = run(&[allow(&["iot:Publish"], &["topic/a/b/c"])], Scope::Thing("b/c"));
    assert_has(&report, Rule::UnscopedTopicAccess);
}

// ---- unscoped-topic-access

#[test]
fn topic_access_outside_the_thing_is_an_error() {
    for (action, resource) in [
        ("iot:Publish", "topic/things/*"),
        ("iot:Publish", "topic/things/other/data"),
        ("iot:Publish", "topic/things/sensor-1*"),
        ("iot:Publish", "topic/things/sensor-1?/data"),
        ("iot:Publish", "topic/things/#"),
        ("iot:RetainPublish", "topic/things/sensor-10/data"),
        ("iot:Publish", "topic/$aws/things/*/shadow/update"),
        ("iot:Publish", "topic/$aws/things/other-thing/shadow/update"),
        ("iot:Publish", "topic/$aws/things/other-thing/shadow/sensor-1"),
        ("iot:Publish", "topic/$aws/things/sensor-1*/shadow/update"),
        ("iot:GetRetainedMessage", "topic/things/other/config"),
        ("iot:Subscribe", "topicfilter/$aws/things/+/jobs/#"),
        ("iot:Subscribe", "topicfilter/things/+/sensor-1"),
        ("iot:Subscribe", "topicfilter/things/#"),
        ("iot:Subscribe", "topicfilter/$aws/things/other/shadow/#"),
        ("iot:Publish", &format!("topic/things/{VAR}-x/data")),
        ("iot:GetThingShadow", "thing/other"),
        ("iot:UpdateThingShadow", "thing/sensor-10"),
        ("iot:DeleteThingShadow", "thing/sensor-1*"),
        ("iot:ListNamedShadowsForThing", "*"),
        ("iot:UpdateJobExecution", "thing/*"),
        ("iot:DescribeJobExecution", "thing/other/sensor-1"),
    ] {
        let report = run(&[allow(&[action], &[resource])], THING);
        let f = assert_has(&report, Rule::UnscopedTopicAccess);
        assert_eq!((f.action.as_deref(), f.resource.as_deref()), (Some(action), Some(arn(resource).as_str())));
        assert!(f.message.contains("\"sensor-1\""), "{}", f.message);
    }
}

#[test]
fn topic_access_inside_the_thing_is_clean() {
    for (action, resource) in [
        ("iot:Publish", "topic/things/sensor-1"),
        ("iot:Publish", "topic/things/sensor-1/*"),
        ("iot:Publish", "topic/dt/app/sensor-1/data"),
        ("iot:Publish", "topic/sensor-1/#"),
        ("iot:Publish", "topic/$aws/things/sensor-1/shadow/name/*/update"),
        ("iot:Subscribe", "topicfilter/things/sensor-1/+/cmd"),
        ("iot:Subscribe", "topicfilter/$aws/things/sensor-1/jobs/#"),
        ("iot:GetThingShadow", "thing/sensor-1"),
        ("iot:GetThingShadow", "thing/sensor-1/*"),
        ("iot:Publish", "topic/fleet/${iot:Connection.Thing.ThingTypeName}/sensor-1"),
    ] {
        assert_clean(&run(&[allow(&[action], &[resource])], THING));
    }
}

#[test]
fn variable_is_a_level_only_when_whole() {
    let ok = format!("topic/things/{VAR}/${{iot:Connection.Thing.Attributes[site]}}/*");
    assert_clean(&run(&[allow(&["iot:Publish"], &[&ok])], Scope::Shared));
    let not_whole = format!("topic/things/x{VAR}/*");
    assert_has(&run(&[allow(&["iot:Publish"], &[&not_whole])], Scope::Shared), Rule::UnscopedTopicAccess);
}

// ---- not-action-or-resource

#[test]
fn not_action_and_not_resource_in_allow_are_errors() {
    let c = arn("client/sensor-1");
    let report = run(&[json!({ "Effect": "Allow", "NotAction": "iot:CreateThing", "Resource": c })], THING);
    assert_rules(&report, &[Rule::NotActionOrResource]);
    let report = run(&[json!({ "Effect": "Allow", "Action": "iot:Connect", "NotResource": c })], THING);
    assert_rules(&report, &[Rule::NotActionOrResource]);
}

#[test]
fn not_action_and_not_resource_in_deny_are_fine() {
    let t = arn("topic/things/sensor-1/*");
    assert_clean(&run(&[json!({ "Effect": "Deny", "NotAction": "iot:Publish", "NotResource": t })], THING));
}

// ---- control-plane-action

#[test]
fn control_plane_actions_in_allow_are_errors() {
    for action in [
        "iam:PassRole",
        "sts:AssumeRole",
        "s3:GetObject",
        "iot:CreateThing",
        "iot:DeleteThing",
        "iot:UpdateCertificate",
        "iot:AttachPolicy",
        "iot:DescribeThing",
        "iot:DeleteConnection",
        "iot:Publsh",
    ] {
        let report = run(&[allow(&[action], &["*"])], THING);
        let f = assert_has(&report, Rule::ControlPlaneAction);
        assert_eq!(f.action.as_deref(), Some(action));
    }
    let report = run(&[allow(&["iam:*"], &["arn:aws:iam::123456789012:role/x"])], THING);
    assert_rules(&report, &[Rule::AllowWildcardAction, Rule::ControlPlaneAction]);
}

#[test]
fn data_plane_actions_are_not_control_plane() {
    for d in &DATA_PLANE {
        assert_lacks(&run(&[allow(&[d.name], &["topic/things/sensor-1"])], THING), Rule::ControlPlaneAction);
    }
    assert_clean(&run(&[deny(&["iot:CreateThing", "iam:PassRole"], &["*"])], THING));
}

// ---- policy-variable-misuse

#[test]
fn untrusted_variables_in_allow_resources_are_errors() {
    for resource in [
        "topic/clients/${iot:ClientId}/data",
        "topic/things/sensor-1/${iot:Certificate.Subject.CommonName}",
        "topic/things/${iot:Connection.Thing.ThingName",
        "thing/${iot:Connection.Thing.Attributes[a*]}",
        "topic/things/${aws:username}/x",
    ] {
        let report = run(&[allow(&["iot:Publish"], &[resource])], THING);
        let f = assert_has(&report, Rule::PolicyVariableMisuse);
        assert_eq!(f.resource.as_deref(), Some(arn(resource).as_str()));
        assert!(f.message.contains("${"), "{}", f.message);
    }
}

#[test]
fn thing_variables_are_trusted_and_deny_is_not_judged() {
    let resource =
        format!("topic/{VAR}/${{iot:Connection.Thing.ThingTypeName}}/${{iot:Connection.Thing.Attributes[room/no#1]}}");
    assert_clean(&run(&[allow(&["iot:Publish"], &[&resource])], THING));
    assert_clean(&run(&[deny(&["iot:Publish"], &["topic/things/${iot:ClientId}/x"])], THING));
}

// ---- deny-mqtt-wildcard

#[test]
fn mqtt_wildcards_in_deny_are_warnings() {
    for (action, resource) in
        [("iot:Publish", "topic/things/sensor-1/admin/#"), ("iot:Subscribe", "topicfilter/things/+/admin")]
    {
        let report = run(&[deny(&[action], &[resource])], THING);
        assert_rules(&report, &[Rule::DenyMqttWildcard]);
        assert!(!report.has_errors());
        assert_eq!(report.warnings().count(), 1);
    }
    assert_clean(&run(&[deny(&["iot:Publish"], &["topic/things/sensor-1/admin/*"])], THING));
}

// ---- broad-receive

#[test]
fn unscoped_receive_is_a_warning() {
    let report = run(&[allow(&["iot:Receive"], &["topic/broadcast/*"])], THING);
    assert_rules(&report, &[Rule::BroadReceive]);
    assert!(!report.has_errors());
    assert_clean(&run(&[allow(&["iot:Receive"], &["topic/things/sensor-1/*"])], THING));
}

#[test]
fn receive_through_a_wildcard_action_is_folded_into_the_error() {
    let report = run(&[allow(&["iot:*"], &["topic/broadcast/x"])], THING);
    assert_rules(&report, &[Rule::AllowWildcardAction, Rule::UnscopedTopicAccess]);
}

// ---- resource-type-mismatch

#[test]
fn resources_of_the_wrong_type_are_warnings() {
    let report = run(&[allow(&["iot:Publish"], &["topicfilter/things/sensor-1/x"])], THING);
    assert_rules(&report, &[Rule::ResourceTypeMismatch, Rule::ResourceTypeMismatch]);
    assert!(!report.has_errors());
    assert_eq!(report.findings[0].resource.as_deref(), Some(arn("topicfilter/things/sensor-1/x").as_str()));
    assert_eq!(report.findings[1].action.as_deref(), Some("iot:Publish"));
    let report = run(&[allow(&["iot:GetThingShadow"], &["topic/$aws/things/sensor-1/shadow/get"])], THING);
    assert_has(&report, Rule::ResourceTypeMismatch);
    let report = run(&[allow(&["iot:Subscribe"], &["arn:aws:s3:::bucket/*"])], THING);
    assert_rules(&report, &[Rule::ResourceTypeMismatch, Rule::ResourceTypeMismatch]);
    let report = run(&[deny(&["iot:Connect"], &["topic/x"])], THING);
    assert!(!report.findings.is_empty(), "a Deny on the wrong resource type is reported too");
    assert!(report.findings.iter().all(|f| f.rule == Rule::ResourceTypeMismatch && f.message.contains("denies")));
}

#[test]
fn mixed_statements_with_matching_types_are_clean() {
    let report = run(
        &[allow(&["iot:Publish", "iot:Subscribe"], &["topic/things/sensor-1/x", "topicfilter/things/sensor-1/x"])],
        THING,
    );
    assert_clean(&report);
}

// ---- report plumbing

#[test]
fn rule_ids_are_stable_and_serialised() {
    for rule in Rule::ALL {
        assert_eq!(Rule::from_id(rule.id()), Some(rule));
        assert_eq!(rule.to_string(), rule.id());
        assert_eq!(serde_json::to_value(rule).ok(), Some(json!(rule.id())));
        assert!(rule.id().bytes().all(|b| b.is_ascii_lowercase() || b == b'-'));
        assert!(!rule.hint().is_empty());
    }
    assert_eq!(Rule::from_id("nope"), None);
}

#[test]
fn findings_serialise_for_the_cli() {
    let report = run(&[allow(&["iot:*"], &["client/sensor-1"])], THING);
    let value = serde_json::to_value(&report).ok();
    let expected = json!({
        "findings": [{
            "rule": "allow-wildcard-action",
            "severity": "error",
            "statement": 0,
            "action": "iot:*",
            "resource": null,
            "message": report.findings[0].message,
            "hint": Rule::AllowWildcardAction.hint(),
        }],
        "omitted": 0,
    });
    assert_eq!(value, Some(expected));
    assert!(report.findings[0].to_string().starts_with("error[allow-wildcard-action] statement 0: \"iot:*\""));
}

#[test]
fn messages_escape_hostile_values() {
    let report = run(&[allow(&["iot:Publish"], &["topic/things/other\n\u{1b}[31m/x"])], THING);
    let f = assert_has(&report, Rule::UnscopedTopicAccess);
    assert!(!f.message.contains('\n') && !f.message.contains('\u{1b}'), "{}", f.message);
    let long = format!("topic/{}", "a".repeat(1000));
    let report = run(&[allow(&["iot:Publish"], &[&long])], THING);
    assert!(report.findings[0].message.len() < 400);
}

#[test]
fn findings_are_capped_without_losing_errors() {
    // Enough warnings to fill the cap, then one error: it must still be reported.
    let many: Vec<String> = (0..150).map(|i| format!("topic/things/sensor-1/{i}/#")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let report = run(&[deny(&["iot:Publish"], &many), allow(&["iot:*"], &["client/sensor-1"])], THING);
    assert_eq!(report.warnings().count(), MAX_FINDINGS_PER_SEVERITY);
    assert_eq!(report.omitted, 50);
    assert!(report.has_errors());
    assert!(!report.is_clean());
}

#[test]
fn large_cross_products_stay_bounded() {
    // 150 case variants of iot:Publish x 150 unscoped topics: 22,500 distinct (action, resource) errors.
    let actions: Vec<String> = (0..150_u32)
        .map(|i| {
            "iot:publish"
                .chars()
                .enumerate()
                .map(|(b, c)| if i >> b & 1 == 1 { c.to_ascii_uppercase() } else { c })
                .collect()
        })
        .collect();
    let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
    let resources: Vec<String> = (0..150).map(|i| format!("topic/x/{i}")).collect();
    let resources: Vec<&str> = resources.iter().map(String::as_str).collect();
    let report = run(&[allow(&actions, &resources)], THING);
    assert_eq!(report.errors().count(), MAX_FINDINGS_PER_SEVERITY);
    assert!(report.omitted > 0);
}

#[test]
fn mutated_documents_never_panic() {
    let document = policy(&least_privilege("sensor-1"));
    let positions: Vec<usize> = document.char_indices().map(|(i, _)| i).step_by(3).collect();
    for at in positions {
        for insert in ["*", "\"", "}", "/", "${", "#", "\\u0000", ":"] {
            let mut mutated = document.clone();
            mutated.insert_str(at, insert);
            let report = lint(&mutated, THING);
            assert!(report.findings.iter().all(|f| f.severity == f.rule.severity()));
        }
    }
}

#[test]
fn glob_matches_like_iam() {
    assert!(glob_matches("iot:*", "iot:Publish"));
    assert!(glob_matches("IOT:pub*", "iot:Publish"));
    assert!(glob_matches("*Shadow", "iot:GetThingShadow"));
    assert!(glob_matches("iot:*Job*", "iot:StartNextPendingJobExecution"));
    assert!(glob_matches("iot:Publis?", "iot:Publish"));
    assert!(!glob_matches("iot:Publis?", "iot:Publis"));
    assert!(!glob_matches("iot:Pub", "iot:Publish"));
    assert!(!glob_matches("s3:*", "iot:Publish"));
    assert!(glob_matches("**", ""));
}

//! Properties of the evaluation for the class of policies, not the examples: Deny wins, no match is an implicit
//! deny, the unmodelled is never ALLOWED, wildcards match as a reference glob does, nothing panics.
#![cfg(test)]

use jitp_policy_eval::{Action, Context, Decision, Policy, Request, Thing, evaluate};
use proptest::prelude::*;

const ARN: &str = "arn:aws:iot:eu-west-1:123456789012";
const ACTIONS: [Action; 5] =
    [Action::Connect, Action::Publish, Action::Subscribe, Action::Receive, Action::RetainPublish];

fn level() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("sensor-1".to_owned()),
        Just("x:y".to_owned()),
        "[a-c]{1,3}"
    ]
}

fn pattern_level() -> impl Strategy<Value = String> {
    prop_oneof![
        level(),
        Just("*".to_owned()),
        Just("?".to_owned()),
        Just("a*".to_owned()),
        Just("+".to_owned()),
        Just("#".to_owned()),
        Just("${iot:ClientId}".to_owned()),
        Just("${iot:Connection.Thing.ThingName}".to_owned()),
    ]
}

fn name() -> impl Strategy<Value = String> {
    prop::collection::vec(level(), 1..4).prop_map(|l| l.join("/"))
}

fn pattern_name() -> impl Strategy<Value = String> {
    prop::collection::vec(pattern_level(), 1..4).prop_map(|l| l.join("/"))
}

fn action() -> impl Strategy<Value = Action> {
    prop::sample::select(ACTIONS.to_vec())
}

/// A statement as JSON: effect, actions, resources (full ARNs of the action's type, or "*").
fn statement() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        prop::collection::vec(action(), 1..3),
        prop::collection::vec((action(), pattern_name()), 1..3),
        any::<bool>(),
    )
        .prop_map(|(deny, actions, resources, everything)| {
            let actions: Vec<String> = actions.iter().map(|a| format!("{:?}", a.as_str())).collect();
            let resources: Vec<String> = if everything {
                vec!["\"*\"".to_owned()]
            } else {
                resources
                    .iter()
                    .map(|(a, n)| format!("{:?}", format!("{ARN}:{}/{n}", a.resource_type().as_str())))
                    .collect()
            };
            format!(
                r#"{{"Effect": "{}", "Action": [{}], "Resource": [{}]}}"#,
                if deny { "Deny" } else { "Allow" },
                actions.join(", "),
                resources.join(", ")
            )
        })
}

fn policy_text(statements: &[String]) -> String {
    format!(r#"{{"Version": "2012-10-17", "Statement": [{}]}}"#, statements.join(", "))
}

fn parse(text: &str) -> Policy {
    match Policy::parse(text) {
        Ok(p) => p,
        Err(e) => panic!("{e}: {text}"),
    }
}

fn request(action: Action, name: &str) -> Option<Request> {
    Request::new(action, &format!("{ARN}:{}/{name}", action.resource_type().as_str())).ok()
}

fn ctx(client: &str) -> Context {
    let mut ctx = Context::new(client);
    ctx.thing = Some(Thing { name: "sensor-1".into(), exclusive: true, ..Thing::default() });
    ctx
}

/// A reference glob: `*` any run, `?` one character, everything else literal; recursive, for short inputs.
fn glob(p: &[char], t: &[char]) -> bool {
    match p.split_first() {
        None => t.is_empty(),
        Some(('*', rest)) => (0..=t.len()).any(|i| glob(rest, &t[i..])),
        Some(('?', rest)) => !t.is_empty() && glob(rest, &t[1..]),
        Some((c, rest)) => t.first() == Some(c) && glob(rest, &t[1..]),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A Deny naming the request exactly wins over any Allow.
    #[test]
    fn a_deny_always_wins(statements in prop::collection::vec(statement(), 0..5), action in action(), name in name()) {
        let Some(req) = request(action, &name) else { return Ok(()) };
        let deny = format!(r#"{{"Effect": "Deny", "Action": "{}", "Resource": {:?}}}"#, action.as_str(), req.resource());
        let mut all = statements.clone();
        all.insert(0, r#"{"Effect": "Allow", "Action": "*", "Resource": "*"}"#.to_owned());
        all.push(deny);
        let got = evaluate(&[parse(&policy_text(&all))], &req, &ctx("sensor-1"));
        prop_assert_eq!(got.decision, Decision::ExplicitDeny);
        prop_assert!(got.is_denied());
    }

    /// Statements for other actions, or on another prefix with no wildcard, never match: IMPLICIT_DENY.
    #[test]
    fn a_request_no_statement_matches_is_an_implicit_deny(names in prop::collection::vec(name(), 1..5), action in action(), name in name()) {
        let Some(req) = request(action, &format!("zz/{name}")) else { return Ok(()) };
        let resources: Vec<String> = names.iter()
            .map(|n| format!("{:?}", format!("{ARN}:{}/{n}", action.resource_type().as_str())))
            .collect();
        let others: Vec<&str> = ACTIONS.iter().filter(|a| **a != action).map(|a| a.as_str()).collect();
        let text = policy_text(&[
            format!(r#"{{"Effect": "Allow", "Action": "{}", "Resource": [{}]}}"#, action.as_str(), resources.join(", ")),
            format!(r#"{{"Effect": "Allow", "Action": {:?}, "Resource": "*"}}"#, others),
        ]);
        let got = evaluate(&[parse(&text)], &req, &ctx("sensor-1"));
        prop_assert_eq!(got.decision, Decision::ImplicitDeny);
    }

    /// Adding an unmodelled condition to every Allow never leaves a request ALLOWED; adding one to a Deny never
    /// makes it ALLOWED either.
    #[test]
    fn the_unmodelled_is_never_allowed(
        statements in prop::collection::vec(statement(), 1..5),
        action in action(),
        name in name(),
        which in prop::sample::select(vec![
            (r#""NumericLessThan""#, r#""iot:ClientId""#),
            (r#""IpAddress""#, r#""aws:SourceIp""#),
            (r#""StringEquals""#, r#""aws:SourceIp""#),
            (r#""StringEquals""#, r#""iot:clientid""#),
            (r#""StringLike""#, r#""iot:Certificate.Subject.CommonName""#),
            (r#""DateGreaterThan""#, r#""aws:CurrentTime""#),
        ]),
    ) {
        let Some(req) = request(action, &name) else { return Ok(()) };
        let condition = format!(r#", "Condition": {{{}: {{{}: "x"}}}}}}"#, which.0, which.1);
        let guarded: Vec<String> = statements
            .iter()
            .map(|s| if s.contains("\"Allow\"") { format!("{}{condition}", &s[..s.len() - 1]) } else { s.clone() })
            .collect();
        let got = evaluate(&[parse(&policy_text(&guarded))], &req, &ctx("sensor-1"));
        prop_assert_ne!(got.decision, Decision::Allowed);
        // An unmodelled Deny beside an Allow of everything: not ALLOWED.
        let text = policy_text(&[
            r#"{"Effect": "Allow", "Action": "*", "Resource": "*"}"#.to_owned(),
            format!(r#"{{"Effect": "Deny", "Action": "*", "Resource": "*"{condition}"#),
        ]);
        let got = evaluate(&[parse(&text)], &req, &ctx("sensor-1"));
        prop_assert_eq!(got.decision, Decision::NotModelled);
        prop_assert!(!got.unmodelled.is_empty());
    }

    /// Adding an Allow never takes an ALLOWED away; adding a Deny never grants one.
    #[test]
    fn statements_act_monotonically(
        statements in prop::collection::vec(statement(), 0..5),
        extra in statement(),
        action in action(),
        name in name(),
    ) {
        let Some(req) = request(action, &name) else { return Ok(()) };
        let before = evaluate(&[parse(&policy_text(&statements))], &req, &ctx("a"));
        let mut more = statements.clone();
        more.push(extra.clone());
        let after = evaluate(&[parse(&policy_text(&more))], &req, &ctx("a"));
        if extra.contains("\"Allow\"") && before.is_allowed() {
            prop_assert!(after.is_allowed());
        }
        if extra.contains("\"Deny\"") && !before.is_allowed() {
            prop_assert!(!after.is_allowed());
        }
        // Two policies evaluate as their statements together.
        let split = evaluate(&[parse(&policy_text(&statements)), parse(&policy_text(&[extra]))], &req, &ctx("a"));
        prop_assert_eq!(split.decision, after.decision);
    }

    /// Without colons or variables both readings agree, and the answer is a plain glob's.
    #[test]
    fn wildcards_match_as_a_glob(pattern in "[ab*?+#/]{0,8}", topic in "[ab+#/]{1,8}") {
        let Some(req) = request(Action::Subscribe, &topic) else { return Ok(()) };
        let text = policy_text(&[format!(
            r#"{{"Effect": "Allow", "Action": "iot:Subscribe", "Resource": {:?}}}"#,
            format!("{ARN}:topicfilter/{pattern}")
        )]);
        let got = evaluate(&[parse(&text)], &req, &ctx("c"));
        let p: Vec<char> = pattern.chars().collect();
        let t: Vec<char> = topic.chars().collect();
        let expected = if glob(&p, &t) { Decision::Allowed } else { Decision::ImplicitDeny };
        prop_assert_eq!(got.decision, expected);
    }

    /// No input panics: any text as a policy, any resource, any client id.
    #[test]
    fn nothing_panics(text in ".{0,200}", resource in ".{0,80}", client in ".{0,20}") {
        if let Ok(policy) = Policy::parse(&text) {
            for action in ACTIONS {
                if let Some(req) = request(action, &resource) {
                    let _ = evaluate(std::slice::from_ref(&policy), &req, &Context::new(client.clone()));
                }
            }
        }
        let text = policy_text(&[format!(
            r#"{{"Effect": "Allow", "Action": "*", "Resource": {:?}, "Condition": {{"StringLike": {{"iot:ClientId": {:?}}}}}}}"#,
            resource, client
        )]);
        if let (Ok(policy), Some(req)) = (Policy::parse(&text), request(Action::Publish, "a")) {
            let _ = jitp_policy_eval::explain(&[policy], &req, &Context::new(client.clone()));
        }
    }
}

//! What a policy change means: the requests a device gains or loses, computed with the evaluator
//! (`jitp_policy_eval`) on the registry's document and today's, over the requests the two documents name (every
//! resource of every statement made concrete, `*` and `?` as `x`, for each action the statement covers) and the
//! built-in policy tests' requests (another device's resources, shadow and client id, broad filters:
//! [`crate::policy_tests::builtin_denials`]).
//!
//! The device connects with its thing name as the client id, its thing attached (as jitp attaches it); its
//! certificate is not described, so a condition on it is "not modelled". Requests are written with the device's
//! own thing name as `{{ thing_name }}` and another device's as `{{ other }}`, as the plan writes statements.

use jitp_policy_eval::{Account, Action, Context, Decision, Policy, Request, Thing, evaluate};
use serde::Serialize;

use crate::policy_tests::{builtin_denials, other_name};

/// The requests a change of policy document gives or takes away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessDiff {
    /// Requests today's document allows and the registry's does not (`iot:Publish things/{{ thing_name }}/x`).
    pub gained: Vec<String>,
    /// Requests the registry's document allows and today's does not.
    pub lost: Vec<String>,
    /// Requests whose answer under one of the documents depends on what the evaluator does not model.
    pub not_modelled: Vec<String>,
    /// Why the access could not be computed at all (a document the evaluator cannot read), if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

const OWN_VARIABLES: [&str; 2] = ["${iot:Connection.Thing.ThingName}", "${iot:ClientId}"];

/// The concrete requests a document names: `(action, name)`.
fn named_requests(policy: &Policy, own: &str) -> Vec<(Action, String)> {
    let mut out = Vec::new();
    for statement in policy.statements() {
        for resource in statement.resources().unwrap_or_default() {
            let Some((kind, name)) = resource.splitn(6, ':').nth(5).and_then(|r| r.split_once('/')) else { continue };
            let mut concrete = name.replace(['*', '?'], "x");
            for variable in OWN_VARIABLES {
                concrete = concrete.replace(variable, own);
            }
            if concrete.contains("${") {
                continue;
            }
            for action in Action::ALL.iter().copied() {
                if action.resource_type().as_str() == kind && statement.covers(action) {
                    out.push((action, concrete.clone()));
                }
            }
        }
    }
    out
}

/// Writes the device's own level `{{ thing_name }}`, another device's `{{ other }}`.
fn generalize(name: &str, own: &str, other: &str) -> String {
    name.split('/')
        .map(|level| {
            if level == own {
                "{{ thing_name }}".to_owned()
            } else if level == other {
                "{{ other }}".to_owned()
            } else if let Some(rest) = level.strip_prefix(own) {
                format!("{{{{ thing_name }}}}{rest}")
            } else {
                level.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The account the documents' ARNs name: the first resource ARN without a wildcard before its resource (jitp
/// renders every ARN with the same partition, region and account); a placeholder when none does (then every
/// resource is `*`, which any account matches).
fn account_of(policies: &[&Policy]) -> Account {
    let plain = |p: &str| !p.is_empty() && !p.contains(['*', '?', '$']);
    policies
        .iter()
        .flat_map(|p| p.statements())
        .flat_map(|s| s.resources().unwrap_or_default())
        .find_map(|r| match r.splitn(6, ':').collect::<Vec<_>>().as_slice() {
            ["arn", partition, "iot", region, account, _] if plain(partition) && plain(region) && plain(account) => {
                Some(Account {
                    partition: (*partition).to_owned(),
                    region: (*region).to_owned(),
                    account_id: (*account).to_owned(),
                })
            }
            _ => None,
        })
        .unwrap_or_else(|| Account {
            partition: "aws".to_owned(),
            region: "us-east-1".to_owned(),
            account_id: "123456789012".to_owned(),
        })
}

/// The access `rendered` (today's) gives `thing` that `current` (the registry's; `None`: no policy) does not, and
/// the reverse. Pure.
pub fn access_diff(current: Option<&str>, rendered: &str, thing: &str) -> AccessDiff {
    let empty = || Policy::parse(r#"{"Version": "2012-10-17", "Statement": []}"#);
    let (before, after) = match (current.map(Policy::parse).unwrap_or_else(empty), Policy::parse(rendered)) {
        (Ok(before), Ok(after)) => (before, after),
        (Err(e), _) | (_, Err(e)) => {
            return AccessDiff {
                gained: Vec::new(),
                lost: Vec::new(),
                not_modelled: Vec::new(),
                unreadable: Some(e.to_string()),
            };
        }
    };
    let account = &account_of(&[&after, &before]);
    let mut requests: Vec<(Action, String)> = Vec::new();
    for policy in [&before, &after] {
        requests.extend(named_requests(policy, thing));
        requests.extend(builtin_denials(policy, thing, &[]).into_iter().map(|(a, n, _)| (a, n)));
    }
    let mut ctx = Context::new(thing);
    ctx.thing = Some(Thing { name: thing.to_owned(), exclusive: true, ..Thing::default() });
    let other = other_name(thing);
    let mut diff = AccessDiff { gained: Vec::new(), lost: Vec::new(), not_modelled: Vec::new(), unreadable: None };
    let mut seen = std::collections::HashSet::new();
    for (action, name) in requests {
        if !seen.insert((action, name.clone())) {
            continue;
        }
        let Ok(request) = Request::on(action, account, &name) else { continue };
        let was = evaluate(std::slice::from_ref(&before), &request, &ctx);
        let is = evaluate(std::slice::from_ref(&after), &request, &ctx);
        let shown = format!("{action} {}", generalize(&name, thing, &other));
        if was.decision == Decision::NotModelled || is.decision == Decision::NotModelled {
            if was.decision != is.decision || !was.unmodelled.is_empty() {
                diff.not_modelled.push(shown);
            }
        } else if is.is_allowed() && !was.is_allowed() {
            diff.gained.push(shown);
        } else if was.is_allowed() && !is.is_allowed() {
            diff.lost.push(shown);
        }
    }
    for list in [&mut diff.gained, &mut diff.lost, &mut diff.not_modelled] {
        list.sort();
        list.dedup();
    }
    diff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(publish: &[&str]) -> String {
        let arn = "arn:aws:iot:us-east-1:123456789012";
        let resources: Vec<String> = publish.iter().map(|t| format!("\"{arn}:topic/{t}\"")).collect();
        format!(
            r#"{{"Version": "2012-10-17", "Statement": [
                {{"Effect": "Allow", "Action": "iot:Connect", "Resource": "{arn}:client/s-1"}},
                {{"Effect": "Allow", "Action": "iot:Publish", "Resource": [{}]}}]}}"#,
            resources.join(", ")
        )
    }

    #[test]
    fn a_narrowed_resource_is_lost_and_a_widened_one_gained() {
        let before = doc(&["things/s-1/telemetry", "things/s-1/events/*"]);
        let after = doc(&["things/s-1/telemetry"]);
        let d = access_diff(Some(&before), &after, "s-1");
        assert_eq!(d.lost, vec!["iot:Publish things/{{ thing_name }}/events/x"]);
        assert!(d.gained.is_empty() && d.not_modelled.is_empty(), "{d:?}");
        let d = access_diff(Some(&after), &before, "s-1");
        assert_eq!(d.gained, vec!["iot:Publish things/{{ thing_name }}/events/x"]);
        // A wildcard over the fleet: another device's topics are gained.
        let wide = doc(&["things/*"]);
        let d = access_diff(Some(&after), &wide, "s-1");
        assert!(d.gained.iter().any(|g| g.contains("{{ other }}")), "{d:?}");
    }

    #[test]
    fn a_missing_policy_gains_everything_and_an_unreadable_one_says_so() {
        let d = access_diff(None, &doc(&["things/s-1/telemetry"]), "s-1");
        assert!(d.gained.contains(&"iot:Connect {{ thing_name }}".to_owned()), "{d:?}");
        let d = access_diff(Some("{\"Statement\": 1}"), &doc(&[]), "s-1");
        assert!(d.unreadable.is_some());
        let same = doc(&["things/s-1/telemetry"]);
        let d = access_diff(Some(&same), &same, "s-1");
        assert!(d.gained.is_empty() && d.lost.is_empty());
    }
}

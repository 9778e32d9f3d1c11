//! The checks: the document, each statement, and each (action, resource) pair of an Allow.

use super::actions::{Action, Check, DataAction};
use super::findings::{Sink, quoted};
use super::json::{Document, Json, Root};
use super::resources::{
    Arn, Kind, Res, THING_NAME_VARIABLE, complete_levels, has_wildcard, parse_resource, untrusted_variables,
};
use super::rules::Rule;

/// Largest document the linter reads. AWS accepts at most 2048 characters excluding whitespace, so a
/// pretty-printed template stays far below this; it only bounds the work done on hostile input.
pub const MAX_DOCUMENT_BYTES: usize = 32 * 1024;

/// The only policy language version in which policy variables are substituted.
pub const POLICY_VERSION: &str = "2012-10-17";

/// Who the policy is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Per-thing policy: the document must be scoped to this thing name (already validated: 1..=128
    /// of `[A-Za-z0-9:_-]`; anything else matches nothing, so the lint fails closed).
    Thing(&'a str),
    /// Shared policy: scoping must come from the `${iot:Connection.Thing.ThingName}` policy variable.
    Shared,
}

pub(super) struct Ctx<'s> {
    /// The literal thing name a per-thing policy may use; `None` for shared policies and for an invalid
    /// name, which then matches nothing (fail closed).
    thing: Option<&'s str>,
    label: String,
}

impl<'s> Ctx<'s> {
    pub(super) fn new(scope: Scope<'s>) -> Self {
        match scope {
            Scope::Thing(name) => {
                let valid = (1..=128).contains(&name.len())
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'));
                Ctx { thing: valid.then_some(name), label: format!("thing {}", quoted(name)) }
            }
            Scope::Shared => Ctx { thing: None, label: format!("the connecting thing ({THING_NAME_VARIABLE})") },
        }
    }

    fn is_thing(&self, level: &str) -> bool {
        level == THING_NAME_VARIABLE || self.thing == Some(level)
    }

    /// Why a `topic/` or `topicfilter/` name is not scoped to the thing, if it is not.
    fn topic_problem(&self, name: &str, mqtt_wildcards: bool) -> Option<&'static str> {
        let (levels, _) = complete_levels(name, mqtt_wildcards);
        match levels.as_slice() {
            // Reserved per-thing topics: the third level says whose shadow or jobs they are.
            ["$aws", "things", rest @ ..] => match rest.first() {
                Some(level) if self.is_thing(level) => None,
                _ => Some("$aws/things/ topics must name this thing as their third level, before any wildcard"),
            },
            levels if levels.iter().any(|level| self.is_thing(level)) => None,
            _ => Some("the thing name must be a whole topic level before the first wildcard"),
        }
    }
}

#[derive(Debug)]
enum Clause<T> {
    Listed(Vec<T>),
    Negated,
}

pub(super) fn check_document(document: &Document, ctx: &Ctx<'_>, sink: &mut Sink) {
    if document.bytes > MAX_DOCUMENT_BYTES {
        let len = document.bytes;
        sink.invalid(None, format!("the document is {len} bytes, over the {MAX_DOCUMENT_BYTES} the linter reads"));
        return;
    }
    let root = match &document.root {
        Root::Parsed(root) => root,
        Root::Invalid(err) => {
            return sink.invalid(None, format!("the document is not valid JSON: {err}"));
        }
        // Unread only when over the limit, reported above.
        Root::Unread => return,
    };
    let Json::Object(top) = root else {
        return sink.invalid(None, format!("the document is {}, not an object", root.describe()));
    };
    let (mut version, mut statements) = (None, None);
    for (key, value) in top {
        match key.as_str() {
            "Version" => version = Some(value),
            "Statement" => statements = Some(value),
            "Id" if matches!(value, Json::String(_)) => {}
            "Id" => sink.invalid(None, format!("Id is {}, not a string", value.describe())),
            other => sink.invalid(None, format!("unknown top-level key {}", quoted(other))),
        }
    }
    match version {
        Some(Json::String(v)) if v == POLICY_VERSION => {}
        Some(other) => sink.invalid(
            None,
            format!(
                "Version is {}, not \"{POLICY_VERSION}\", the only version with policy variables",
                other.describe()
            ),
        ),
        None => sink.invalid(None, format!("Version is missing; it must be \"{POLICY_VERSION}\"")),
    }
    let list: Vec<&Json> = match statements {
        Some(Json::Array(items)) if !items.is_empty() => items.iter().collect(),
        // A single statement object is valid IAM grammar.
        Some(single @ Json::Object(_)) => vec![single],
        Some(Json::Array(_)) => {
            return sink.invalid(None, "Statement is an empty array".to_owned());
        }
        Some(other) => {
            let message = format!("Statement is {}, not an array of statements", other.describe());
            return sink.invalid(None, message);
        }
        None => return sink.invalid(None, "Statement is missing".to_owned()),
    };
    for (index, statement) in list.into_iter().enumerate() {
        check_statement(index, statement, ctx, sink);
    }
}

fn check_statement(index: usize, value: &Json, ctx: &Ctx<'_>, sink: &mut Sink) {
    let at = Some(index);
    let Json::Object(entries) = value else {
        return sink.invalid(at, format!("the statement is {}, not an object", value.describe()));
    };
    let (mut effect, mut action, mut not_action, mut resource, mut not_resource) = (None, None, None, None, None);
    for (key, value) in entries {
        match key.as_str() {
            "Effect" => effect = Some(value),
            "Action" => action = Some(value),
            "NotAction" => not_action = Some(value),
            "Resource" => resource = Some(value),
            "NotResource" => not_resource = Some(value),
            "Sid" if matches!(value, Json::String(_)) => {}
            "Condition" if matches!(value, Json::Object(_)) => {}
            "Sid" | "Condition" => {
                let expected = if key == "Sid" { "a string" } else { "an object" };
                sink.invalid(at, format!("{key} is {}, not {expected}", value.describe()));
            }
            "Principal" | "NotPrincipal" => {
                sink.invalid(at, format!("{key} is not valid in an IoT policy: the principal is the certificate"))
            }
            other => sink.invalid(at, format!("unknown statement key {}", quoted(other))),
        }
    }
    let allow = match effect {
        Some(Json::String(e)) if e == "Allow" => Some(true),
        Some(Json::String(e)) if e == "Deny" => Some(false),
        Some(other) => {
            sink.invalid(at, format!("Effect is {}, not exactly \"Allow\" or \"Deny\"", other.describe()));
            None
        }
        None => {
            sink.invalid(at, "Effect is missing".to_owned());
            None
        }
    };
    let actions = clause(index, ("Action", action), ("NotAction", not_action), sink).map(|clause| match clause {
        Clause::Listed(raws) => Clause::Listed(
            raws.into_iter()
                .filter_map(|raw| {
                    let parsed = Action::parse(raw);
                    if parsed.is_none() {
                        sink.invalid_action(index, raw);
                    }
                    parsed
                })
                .collect(),
        ),
        Clause::Negated => Clause::Negated,
    });
    let resources =
        clause(index, ("Resource", resource), ("NotResource", not_resource), sink).map(|clause| match clause {
            Clause::Listed(raws) => Clause::Listed(raws.into_iter().map(|raw| (raw, parse_resource(raw))).collect()),
            Clause::Negated => Clause::Negated,
        });
    // A statement whose effect or elements are unreadable cannot be judged further; it is an error already.
    let (Some(allow), Some(actions), Some(resources)) = (allow, actions, resources) else {
        return;
    };
    let listed = match (&actions, &resources) {
        (Clause::Listed(a), Clause::Listed(r)) => Some((a.as_slice(), r.as_slice())),
        _ => None,
    };
    if allow {
        check_allow(index, &actions, &resources, sink);
    } else {
        check_deny(index, &resources, sink);
    }
    if let Some((actions, resources)) = listed {
        check_types(index, allow, actions, resources, sink);
        if allow {
            check_scoping(index, actions, resources, ctx, sink);
        }
    }
}

/// Reads `Action`/`NotAction` (or `Resource`/`NotResource`): exactly one, a string or non-empty array
/// of strings. `NotAction` values are validated too, but only `Action` ones are returned.
fn clause<'j>(
    index: usize,
    (name, value): (&str, Option<&'j Json>),
    (not_name, not_value): (&str, Option<&'j Json>),
    sink: &mut Sink,
) -> Option<Clause<&'j str>> {
    let (name, value, negated) = match (value, not_value) {
        (Some(value), None) => (name, value, false),
        (None, Some(value)) => (not_name, value, true),
        (Some(_), Some(_)) => {
            return sink.invalid_none(index, format!("the statement has both {name} and {not_name}"));
        }
        (None, None) => {
            return sink.invalid_none(index, format!("the statement has neither {name} nor {not_name}"));
        }
    };
    let strings: Vec<&str> = match value {
        Json::String(s) => vec![s],
        Json::Array(items) if items.is_empty() => {
            return sink.invalid_none(index, format!("{name} is an empty array"));
        }
        Json::Array(items) => {
            let strings: Vec<&str> = items
                .iter()
                .filter_map(|item| if let Json::String(s) = item { Some(s.as_str()) } else { None })
                .collect();
            if strings.len() != items.len() {
                return sink.invalid_none(index, format!("{name} must be an array of strings only"));
            }
            strings
        }
        other => {
            return sink
                .invalid_none(index, format!("{name} is {}, not a string or array of strings", other.describe()));
        }
    };
    if negated {
        if name == "NotAction" {
            for raw in strings.iter().filter(|raw| Action::parse(raw).is_none()) {
                sink.invalid_action(index, raw);
            }
        }
        Some(Clause::Negated)
    } else {
        Some(Clause::Listed(strings))
    }
}

fn check_allow(index: usize, actions: &Clause<Action<'_>>, resources: &Clause<(&str, Res<'_>)>, sink: &mut Sink) {
    let at = Some(index);
    let actions = match actions {
        Clause::Listed(actions) => actions.as_slice(),
        Clause::Negated => {
            sink.push(Rule::NotActionOrResource, at, None, None, || {
                "NotAction in an Allow grants every action not listed, including control-plane ones".to_owned()
            });
            &[]
        }
    };
    for action in actions {
        let (raw, a) = (Some(action.raw), quoted(action.raw));
        if action.wildcard {
            sink.push(Rule::AllowWildcardAction, at, raw, None, || {
                format!("{a} is a wildcard: it grants every action it matches, today's and future ones")
            });
        }
        if action.is_control_plane() {
            sink.push(Rule::ControlPlaneAction, at, raw, None, || {
                format!("{a} is not an IoT device data-plane action")
            });
        }
    }
    let Clause::Listed(resources) = resources else {
        return sink.push(Rule::NotActionOrResource, at, None, None, || {
            "NotResource in an Allow grants the actions on every resource not listed".to_owned()
        });
    };
    // A statement of only other services' actions is reported as control-plane; its ARNs are not ours to parse.
    let grants_iot = matches!(actions, []) || actions.iter().any(Action::may_be_iot);
    for (raw, res) in resources {
        let (resource, r) = (Some(*raw), quoted(raw));
        match res {
            Res::Everything => sink.push(Rule::AllowWildcardResource, at, None, resource, || {
                format!("{r} matches every resource the statement's actions apply to")
            }),
            Res::Arn(arn) if arn.header_wildcard => sink.push(Rule::AllowWildcardResource, at, None, resource, || {
                format!("{r} has a wildcard before its resource type, which can match across ':'")
            }),
            Res::Arn(arn) => {
                if let Some(what) = arn.bare_wildcard() {
                    sink.push(Rule::AllowWildcardResource, at, None, resource, || format!("{r} matches {what}"));
                }
            }
            Res::Malformed(why) if grants_iot => {
                sink.push(Rule::InvalidDocument, at, None, resource, || format!("resource {r} {why}"))
            }
            _ => {}
        }
        // Client ids are checked exactly by connect-foreign-client, which names `${iot:ClientId}` itself.
        if matches!(res, Res::Arn(Arn { kind: Kind::Client, .. })) {
            continue;
        }
        let untrusted = untrusted_variables(raw);
        if !untrusted.is_empty() {
            sink.push(Rule::PolicyVariableMisuse, at, None, resource, || {
                let list: Vec<String> = untrusted.iter().map(|v| quoted(v)).collect();
                format!("{r} uses {}: only thing variables are trusted for scoping", list.join(", "))
            });
        }
    }
}

fn check_deny(index: usize, resources: &Clause<(&str, Res<'_>)>, sink: &mut Sink) {
    let Clause::Listed(resources) = resources else {
        return;
    };
    for (raw, res) in resources {
        if let Res::Arn(Arn { kind: Kind::Topic | Kind::TopicFilter, name, .. }) = res
            && name.contains(['+', '#'])
        {
            sink.push(Rule::DenyMqttWildcard, Some(index), None, Some(raw), || {
                format!("{} uses + or #, which are literal characters in a policy resource, so the Deny matches only that exact name", quoted(raw))
            });
        }
    }
}

/// Resources that no action of the statement applies to, and actions with no resource of their type:
/// the statement grants (or denies) nothing there, which is rarely what its author meant.
fn check_types(index: usize, allow: bool, actions: &[Action<'_>], resources: &[(&str, Res<'_>)], sink: &mut Sink) {
    if actions.is_empty() {
        return; // every action was unreadable: already an invalid-document error
    }
    let verb = if allow { "grants" } else { "denies" };
    let exact: Option<Vec<&DataAction>> = actions.iter().map(Action::exact_data).collect();
    // Only when every action is a known data-plane one: wildcards and other actions take any resource.
    if let Some(exact) = &exact {
        for (raw, res) in resources {
            if matches!(res, Res::Malformed(_)) && allow {
                continue; // already an invalid-document error
            }
            if !exact.iter().any(|d| d.applies_to(res)) {
                sink.push(Rule::ResourceTypeMismatch, Some(index), None, Some(raw), || match res {
                    Res::Malformed(why) => format!("{} {why}, so the statement {verb} nothing there", quoted(raw)),
                    _ => format!("no action of the statement applies to {}, so it {verb} nothing there", quoted(raw)),
                });
            }
        }
    }
    for action in actions {
        let Some(d) = action.exact_data() else {
            continue;
        };
        if let Some(kind) = d.kind
            && !resources.iter().any(|(_, res)| d.applies_to(res))
        {
            sink.push(Rule::ResourceTypeMismatch, Some(index), Some(action.raw), None, || {
                format!(
                    "{} needs a {} resource and the statement lists none, so it {verb} nothing",
                    quoted(action.raw),
                    kind.prefix()
                )
            });
        }
    }
}

/// Each (action, resource) pair of an Allow: is it confined to the thing?
fn check_scoping(index: usize, actions: &[Action<'_>], resources: &[(&str, Res<'_>)], ctx: &Ctx<'_>, sink: &mut Sink) {
    let at = Some(index);
    for action in actions {
        for (raw, res) in resources {
            let name = match res {
                Res::Arn(arn) => Some(arn.name),
                _ => None,
            };
            // Messages are built only for pairs that are reported: a statement may hold many pairs.
            let pair = || (quoted(action.raw), quoted(raw), &ctx.label);
            for d in action.data.iter().filter(|d| d.applies_to(res)) {
                match d.check {
                    Check::Client if name.is_some_and(|name| ctx.is_thing(name)) => {}
                    Check::Client => sink.push(Rule::ConnectForeignClient, at, Some(action.raw), Some(raw), || {
                        let (a, r, thing) = pair();
                        match name {
                            Some(name) if name.contains("${iot:ClientId}") => {
                                format!("{a} on {r} accepts whatever client id the device sends, so it can connect as another thing")
                            }
                            Some(name) if !has_wildcard(name) => {
                                format!("{a} on {r} lets the device connect as client {}, which is not {thing}", quoted(name))
                            }
                            _ => format!("{a} on {r} matches client ids other than the name of {thing}"),
                        }
                    }),
                    Check::Topic | Check::Receive => {
                        let mqtt = matches!(res, Res::Arn(Arn { kind: Kind::TopicFilter, .. }));
                        let Some(why) = name.map_or(Some("it matches every topic"), |n| ctx.topic_problem(n, mqtt)) else {
                            continue;
                        };
                        let rule = if d.check == Check::Receive { Rule::BroadReceive } else { Rule::UnscopedTopicAccess };
                        sink.push(rule, at, Some(action.raw), Some(raw), || {
                            let (a, r, thing) = pair();
                            format!("{a} on {r} is not scoped to {thing}: {why}")
                        });
                    }
                    Check::Thing => {
                        let (levels, _) = name.map(|n| complete_levels(n, false)).unwrap_or_default();
                        if levels.first().is_some_and(|level| ctx.is_thing(level)) {
                            continue;
                        }
                        sink.push(Rule::UnscopedTopicAccess, at, Some(action.raw), Some(raw), || {
                            let (a, r, thing) = pair();
                            format!("{a} on {r} is not scoped to {thing}: the resource must be thing/<thing name>, optionally /<shadow name>")
                        });
                    }
                    Check::None => {}
                }
            }
        }
    }
}

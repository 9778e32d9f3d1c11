//! Least-privilege lint for rendered AWS IoT Core policy documents.
//!
//! Modelled on AWS IoT Device Defender's `IOT_POLICY_OVERLY_PERMISSIVE_CHECK` and
//! `IOT_POLICY_POTENTIAL_MISCONFIGURATION_CHECK`. It runs on every policy jitp renders (before it reaches
//! AWS) and in CI on every template, so it treats the document as untrusted: the template may come from a
//! non-programmer and the values in it from a hostile certificate. It never panics, reads at most
//! [`MAX_DOCUMENT_BYTES`] and keeps at most [`MAX_FINDINGS_PER_SEVERITY`] findings of each severity.
//!
//! What it enforces: a device may connect only as its own thing, touch only topics, shadows and jobs
//! that carry its thing name (literally for a per-thing policy, or through
//! `${iot:Connection.Thing.ThingName}`), and call only device data-plane actions. Errors make
//! [`Report::has_errors`] true, which the caller maps to `POLICY_TOO_PERMISSIVE`; warnings point at
//! statements that grant or deny less than they seem to.
//!
//! Matching follows IAM: action names are case-insensitive, resources are case-sensitive, `*` and `?`
//! are wildcards (a `*` can span `/` and, at the end of an ARN segment, `:`), and MQTT's `+` and `#` are
//! literal characters except in `topicfilter/` resources, where they are the filter's own wildcards.
//! Conditions are not evaluated: they can only narrow a statement.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Serialize, Serializer};

/// The policy variable that AWS IoT replaces with the name of the thing attached to the connection.
pub const THING_NAME_VARIABLE: &str = "${iot:Connection.Thing.ThingName}";

/// Largest document the linter reads. AWS accepts at most 2048 characters excluding whitespace, so a
/// pretty-printed template stays far below this; it only bounds the work done on hostile input.
pub const MAX_DOCUMENT_BYTES: usize = 32 * 1024;

/// Findings kept per severity. Capped separately so that a flood of warnings can never push the
/// errors out of a report: a document with an error always reports at least one.
pub const MAX_FINDINGS_PER_SEVERITY: usize = 100;

/// The only policy language version in which policy variables are substituted.
const POLICY_VERSION: &str = "2012-10-17";

/// Who the policy is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Per-thing policy: the document must be scoped to this thing name (already validated: 1..=128
    /// of `[A-Za-z0-9:_-]`; anything else matches nothing, so the lint fails closed).
    Thing(&'a str),
    /// Shared policy: scoping must come from the `${iot:Connection.Thing.ThingName}` policy variable.
    Shared,
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The policy grants more than the device needs, or is not a valid policy: it must not be used.
    Error,
    /// Worth a look: the policy grants or denies less than it seems to, or grants something broad that
    /// Device Defender tolerates.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Error => "error",
            Self::Warning => "warning",
        })
    }
}

/// A lint rule. Its [`id`](Rule::id) is a stable public interface (CLI output, logs, audit records).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// Not JSON, duplicate keys, bad Version/Statement/Effect/Action/Resource, unknown keys, malformed ARN.
    InvalidDocument,
    /// An Allow of an action containing `*` or `?`.
    AllowWildcardAction,
    /// An Allow on `*`, on a bare wildcard name (`topic/*`, `thing/*`...), or with wildcards in the ARN header.
    AllowWildcardResource,
    /// `iot:Connect` allowed on a client id other than the thing's own.
    ConnectForeignClient,
    /// Topic, topic filter or thing access not scoped to the thing.
    UnscopedTopicAccess,
    /// `NotAction` or `NotResource` in an Allow.
    NotActionOrResource,
    /// An Allow of anything but an IoT device data-plane action.
    ControlPlaneAction,
    /// A policy variable other than the trusted thing variables in an Allow resource.
    PolicyVariableMisuse,
    /// MQTT `+`/`#` in a Deny resource, where they are literal characters.
    DenyMqttWildcard,
    /// `iot:Receive` on topics not scoped to the thing.
    BroadReceive,
    /// A resource whose type fits none of the statement's actions, or an action with no resource of its type.
    ResourceTypeMismatch,
}

impl Rule {
    /// Every rule, errors first.
    pub const ALL: [Rule; 11] = [
        Rule::InvalidDocument,
        Rule::AllowWildcardAction,
        Rule::AllowWildcardResource,
        Rule::ConnectForeignClient,
        Rule::UnscopedTopicAccess,
        Rule::NotActionOrResource,
        Rule::ControlPlaneAction,
        Rule::PolicyVariableMisuse,
        Rule::DenyMqttWildcard,
        Rule::BroadReceive,
        Rule::ResourceTypeMismatch,
    ];

    /// The stable kebab-case id.
    pub fn id(self) -> &'static str {
        match self {
            Rule::InvalidDocument => "invalid-document",
            Rule::AllowWildcardAction => "allow-wildcard-action",
            Rule::AllowWildcardResource => "allow-wildcard-resource",
            Rule::ConnectForeignClient => "connect-foreign-client",
            Rule::UnscopedTopicAccess => "unscoped-topic-access",
            Rule::NotActionOrResource => "not-action-or-resource",
            Rule::ControlPlaneAction => "control-plane-action",
            Rule::PolicyVariableMisuse => "policy-variable-misuse",
            Rule::DenyMqttWildcard => "deny-mqtt-wildcard",
            Rule::BroadReceive => "broad-receive",
            Rule::ResourceTypeMismatch => "resource-type-mismatch",
        }
    }

    /// The rule with this id.
    pub fn from_id(id: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|rule| rule.id() == id)
    }

    /// The severity of every finding of this rule.
    pub fn severity(self) -> Severity {
        match self {
            Rule::DenyMqttWildcard | Rule::BroadReceive | Rule::ResourceTypeMismatch => Severity::Warning,
            _ => Severity::Error,
        }
    }

    /// A one-line fix hint.
    pub fn hint(self) -> &'static str {
        match self {
            Rule::InvalidDocument => {
                "Write a JSON object with \"Version\": \"2012-10-17\" and a non-empty \"Statement\" of Allow/Deny statements with Action and Resource."
            }
            Rule::AllowWildcardAction => {
                "List the exact data-plane actions the device needs, e.g. \"iot:Publish\", \"iot:Subscribe\"."
            }
            Rule::AllowWildcardResource => {
                "Name the thing's own resources in full ARNs, e.g. arn:aws:iot:REGION:ACCOUNT:topic/things/${iot:Connection.Thing.ThingName}/*."
            }
            Rule::ConnectForeignClient => {
                "Allow iot:Connect only on client/${iot:Connection.Thing.ThingName} (or client/<thing name> in a per-thing policy)."
            }
            Rule::UnscopedTopicAccess => {
                "Put the thing name or ${iot:Connection.Thing.ThingName} as a whole topic level before any wildcard, e.g. $aws/things/${iot:Connection.Thing.ThingName}/shadow/*."
            }
            Rule::NotActionOrResource => {
                "Use Action and Resource in Allow statements; NotAction/NotResource allow everything not listed, including what AWS adds later."
            }
            Rule::ControlPlaneAction => {
                "Remove management actions from device policies; devices need only iot:Connect, Publish, Subscribe, Receive, shadow and job actions."
            }
            Rule::PolicyVariableMisuse => {
                "Scope resources with ${iot:Connection.Thing.ThingName}; client ids and certificate fields are not trusted thing identity."
            }
            Rule::DenyMqttWildcard => {
                "In policy resources + and # are literal characters: deny with * instead, e.g. topic/things/other/*."
            }
            Rule::BroadReceive => {
                "Restrict iot:Receive to the thing's own topics, with the thing name as a whole topic level."
            }
            Rule::ResourceTypeMismatch => {
                "Connect takes client/, Publish/Receive/RetainPublish/GetRetainedMessage take topic/, Subscribe takes topicfilter/, shadow and job actions take thing/."
            }
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.id())
    }
}

/// One problem found in a policy document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule; serialises as its stable id, e.g. `"allow-wildcard-action"`.
    pub rule: Rule,
    /// The rule's severity, repeated here for consumers of the JSON form.
    pub severity: Severity,
    /// 0-based index into `Statement` (`None` for document-level findings).
    pub statement: Option<usize>,
    /// The offending action, as written.
    pub action: Option<String>,
    /// The offending resource, as written.
    pub resource: Option<String>,
    /// One human sentence naming the offending value (values are quoted and escaped).
    pub message: String,
    /// One-line fix hint.
    pub hint: &'static str,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.severity, self.rule)?;
        if let Some(index) = self.statement {
            write!(f, " statement {index}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The outcome of linting one document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Findings in document order.
    pub findings: Vec<Finding>,
    /// Findings not recorded because [`MAX_FINDINGS_PER_SEVERITY`] was reached for their severity
    /// (counted without removing repeats).
    pub omitted: usize,
}

impl Report {
    /// Whether any finding is an error: the policy must not be used.
    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// Whether there is nothing to report at all.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty() && self.omitted == 0
    }

    /// The error findings.
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.severity == Severity::Error)
    }

    /// The warning findings.
    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.severity == Severity::Warning)
    }
}

/// Lints one rendered policy document for a thing (or for every thing, with [`Scope::Shared`]).
pub fn lint(document: &str, scope: Scope<'_>) -> Report {
    let mut sink = Sink::default();
    check_document(document, &Ctx::new(scope), &mut sink);
    sink.finish()
}

// ---------------------------------------------------------------------------------------------------
// JSON with duplicate keys rejected. serde_json::Value keeps the last of two equal keys, which would let
// `{"Effect":"Deny","Effect":"Allow"}` through as an Allow while a human reading it sees a Deny.

#[derive(Debug)]
enum Json {
    Null,
    Bool,
    Number,
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn type_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool => "boolean",
            Json::Number => "number",
            Json::String(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }

    /// How a message names the value: strings quoted, anything else by type.
    fn describe(&self) -> String {
        match self {
            Json::String(s) => quoted(s),
            other => format!("a JSON {}", other.type_name()),
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Json, E> {
        Ok(Json::Bool)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Json, E> {
        Ok(Json::Number)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Json, E> {
        Ok(Json::Number)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Json, E> {
        Ok(Json::Number)
    }
    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries: Vec<(String, Json)> = Vec::new();
        // Keys are compared after unescaping, so `"Eff\u0065ct"` is a duplicate of `"Effect"` too.
        // Linear search: the document is bounded by MAX_DOCUMENT_BYTES.
        while let Some(key) = map.next_key::<String>()? {
            if entries.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom(format_args!("duplicate key {}", quoted(&key))));
            }
            let value = map.next_value()?;
            entries.push((key, value));
        }
        Ok(Json::Object(entries))
    }
}

// ---------------------------------------------------------------------------------------------------
// Actions.

/// The resource type an action is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Client,
    Topic,
    TopicFilter,
    Thing,
    RoleAlias,
    Other,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Client => "client/",
            Kind::Topic => "topic/",
            Kind::TopicFilter => "topicfilter/",
            Kind::Thing => "thing/",
            Kind::RoleAlias => "rolealias/",
            Kind::Other => "other",
        }
    }
}

/// How a data-plane action must be scoped to the thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Exactly the thing's own client id.
    Client,
    /// Thing name as a whole topic level (error when not).
    Topic,
    /// Like `Topic`, but only a warning (Device Defender tolerates broad Receive).
    Receive,
    /// `thing/<thing>` or `thing/<thing>/<shadow name>`.
    Thing,
    /// Not scoped by thing (role aliases; `ListRetainedMessages` takes only `*`).
    None,
}

#[derive(Debug)]
struct DataAction {
    name: &'static str,
    /// `None`: any resource (AWS documents `*` as the only resource of `ListRetainedMessages`).
    kind: Option<Kind>,
    check: Check,
}

const fn data(name: &'static str, kind: Option<Kind>, check: Check) -> DataAction {
    DataAction { name, kind, check }
}

/// The IoT device data-plane actions and their resource types (AWS IoT developer guide, "AWS IoT Core
/// action resources"). Anything else in an Allow is a control-plane action.
const DATA_PLANE: [DataAction; 16] = [
    data("iot:Connect", Some(Kind::Client), Check::Client),
    data("iot:Publish", Some(Kind::Topic), Check::Topic),
    data("iot:RetainPublish", Some(Kind::Topic), Check::Topic),
    data("iot:Subscribe", Some(Kind::TopicFilter), Check::Topic),
    data("iot:GetRetainedMessage", Some(Kind::Topic), Check::Topic),
    data("iot:Receive", Some(Kind::Topic), Check::Receive),
    data("iot:ListRetainedMessages", None, Check::None),
    data("iot:GetThingShadow", Some(Kind::Thing), Check::Thing),
    data("iot:UpdateThingShadow", Some(Kind::Thing), Check::Thing),
    data("iot:DeleteThingShadow", Some(Kind::Thing), Check::Thing),
    data("iot:ListNamedShadowsForThing", Some(Kind::Thing), Check::Thing),
    data("iot:DescribeJobExecution", Some(Kind::Thing), Check::Thing),
    data("iot:GetPendingJobExecutions", Some(Kind::Thing), Check::Thing),
    data("iot:StartNextPendingJobExecution", Some(Kind::Thing), Check::Thing),
    data("iot:UpdateJobExecution", Some(Kind::Thing), Check::Thing),
    data("iot:AssumeRoleWithCertificate", Some(Kind::RoleAlias), Check::None),
];

impl DataAction {
    /// Whether a statement with this action grants (or denies) anything on `res`.
    fn applies_to(&self, res: &Res<'_>) -> bool {
        match res {
            Res::Everything => true,
            Res::Arn(arn) => self.kind.is_none_or(|kind| kind == arn.kind),
            Res::Foreign | Res::Malformed(_) => false,
        }
    }
}

#[derive(Debug)]
struct Action<'j> {
    raw: &'j str,
    wildcard: bool,
    /// Lower-cased service prefix, when it has no wildcard (`None` for `*` and `i*:...`).
    service: Option<String>,
    /// The data-plane action it names, or every one its wildcard matches.
    data: Vec<&'static DataAction>,
}

impl<'j> Action<'j> {
    /// `None` when `raw` is not `*` or `service:Name` (IAM action names are ASCII letters and digits).
    fn parse(raw: &'j str) -> Option<Self> {
        let is_wild = |b: u8| b == b'*' || b == b'?';
        let service = if raw == "*" {
            None
        } else {
            let (service, name) = raw.split_once(':')?;
            let service_ok = service.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || is_wild(b));
            let name_ok = name.bytes().all(|b| b.is_ascii_alphanumeric() || is_wild(b));
            if service.is_empty() || name.is_empty() || !service_ok || !name_ok {
                return None;
            }
            (!service.bytes().any(is_wild)).then(|| service.to_ascii_lowercase())
        };
        let wildcard = raw.bytes().any(is_wild);
        let data = DATA_PLANE
            .iter()
            .filter(|d| if wildcard { glob_matches(raw, d.name) } else { d.name.eq_ignore_ascii_case(raw) })
            .collect();
        Some(Action { raw, wildcard, service, data })
    }

    /// Exactly one known data-plane action, no wildcard.
    fn exact_data(&self) -> Option<&'static DataAction> {
        match self.data.as_slice() {
            [only] if !self.wildcard => Some(only),
            _ => None,
        }
    }

    fn is_control_plane(&self) -> bool {
        if self.wildcard {
            // `iot:*` is reported as a wildcard; `iam:*` is both.
            self.service.as_deref().is_some_and(|s| s != "iot")
        } else {
            self.data.is_empty()
        }
    }

    fn may_be_iot(&self) -> bool {
        self.service.as_deref().is_none_or(|s| s == "iot")
    }
}

/// IAM wildcard match (`*` any run, `?` one character), ASCII case-insensitive as action names are.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while let Some(&tc) = text.get(t) {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&pc) if pc == b'?' || pc.eq_ignore_ascii_case(&tc) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    star = Some((sp, st + 1));
                    p = sp + 1;
                    t = st + 1;
                }
                None => return false,
            },
        }
    }
    pattern.get(p..).is_some_and(|rest| rest.iter().all(|&b| b == b'*'))
}

// ---------------------------------------------------------------------------------------------------
// Resources.

#[derive(Debug)]
enum Res<'j> {
    /// `*`, or an ARN whose wildcard covers its resource type (`arn:aws:iot:*`, `arn:...:*`).
    Everything,
    Arn(Arn<'j>),
    /// An ARN of another service: no IoT action applies to it.
    Foreign,
    Malformed(&'static str),
}

#[derive(Debug)]
struct Arn<'j> {
    /// A wildcard in partition, service, region or account.
    header_wildcard: bool,
    kind: Kind,
    /// The resource type as written, for messages.
    type_name: &'j str,
    /// The resource name after `<type>/`.
    name: &'j str,
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?'])
}

fn parse_resource(raw: &str) -> Res<'_> {
    if raw == "*" {
        return Res::Everything;
    }
    let Some(after) = raw.strip_prefix("arn:") else {
        return Res::Malformed("is neither \"*\" nor an ARN");
    };
    let parts: Vec<&str> = after.splitn(5, ':').collect();
    let [partition, service, region, account, resource] = parts.as_slice() else {
        // IAM lets a `*` at the end of a segment run across `:`, so `arn:aws:iot:*` is everything.
        return if has_wildcard(after) {
            Res::Everything
        } else {
            Res::Malformed("does not have the form arn:partition:iot:region:account:type/name")
        };
    };
    if *service != "iot" && !has_wildcard(service) {
        return Res::Foreign;
    }
    let header = [partition, service, region, account];
    if header.iter().any(|part| part.is_empty()) {
        return Res::Malformed("has an empty partition, region or account");
    }
    let Some((type_name, name)) = resource.split_once('/') else {
        return if has_wildcard(resource) { Res::Everything } else { Res::Malformed("has no type/name resource part") };
    };
    if has_wildcard(type_name) {
        return Res::Everything;
    }
    if name.is_empty() {
        return Res::Malformed("has an empty resource name");
    }
    let kind = match type_name {
        "client" => Kind::Client,
        "topic" => Kind::Topic,
        "topicfilter" => Kind::TopicFilter,
        "thing" => Kind::Thing,
        "rolealias" => Kind::RoleAlias,
        _ => Kind::Other,
    };
    let header_wildcard = header.iter().any(|part| has_wildcard(part));
    Res::Arn(Arn { header_wildcard, kind, type_name, name })
}

/// The `/`-separated levels of `name` that end before its first wildcard, and whether it has one.
///
/// `*` and `?` are wildcards everywhere; `+` and `#` only in topic filters. A policy variable is
/// substituted before matching, so its characters are neither separators nor wildcards.
fn complete_levels(name: &str, mqtt_wildcards: bool) -> (Vec<&str>, bool) {
    let mut levels = Vec::new();
    let mut start = 0;
    let mut chars = name.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '$' if chars.peek().is_some_and(|&(_, next)| next == '{') => {
                // An unterminated `${` runs to the end: opaque, and reported as a variable misuse.
                for (_, c) in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                }
            }
            '/' => {
                levels.push(name.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            '*' | '?' => return (levels, true),
            '+' | '#' if mqtt_wildcards => return (levels, true),
            _ => {}
        }
    }
    levels.push(name.get(start..).unwrap_or_default());
    (levels, false)
}

impl Arn<'_> {
    /// What a wildcard before any level that could name a thing matches (`client/*`, `topic/*`,
    /// `thing/t*`, `topic/$aws/things/*`), or `None` when the name has no such wildcard.
    fn bare_wildcard(&self) -> Option<String> {
        let (levels, wildcard) = complete_levels(self.name, self.kind == Kind::TopicFilter);
        match levels.as_slice() {
            _ if !wildcard => None,
            [] => Some(format!("every {} resource", self.type_name)),
            ["$aws"] | ["$aws", "things"] => Some("the reserved $aws topics of every thing".to_owned()),
            _ => None,
        }
    }
}

/// The policy variables in `s` that are not trusted thing variables (`${iot:ClientId}`, certificate
/// fields, unknown or unterminated ones), as written.
fn untrusted_variables(s: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        let tail = rest.get(start..).unwrap_or_default();
        let Some(end) = tail.find('}') else {
            found.push(tail);
            break;
        };
        let variable = tail.get(..=end).unwrap_or_default();
        if !is_trusted_variable(variable) {
            found.push(variable);
        }
        rest = tail.get(end + 1..).unwrap_or_default();
    }
    found
}

/// Variables AWS IoT fills from the thing registry entry attached to the connection, which jitp wrote.
fn is_trusted_variable(variable: &str) -> bool {
    if variable == THING_NAME_VARIABLE || variable == "${iot:Connection.Thing.ThingTypeName}" {
        return true;
    }
    // Attribute names are 1..=128 of [a-zA-Z0-9_.,@/:#-] (AWS IoT CreateThing).
    variable.strip_prefix("${iot:Connection.Thing.Attributes[").and_then(|rest| rest.strip_suffix("]}")).is_some_and(
        |attr| {
            (1..=128).contains(&attr.len())
                && attr.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.,@/:#-".contains(&b))
        },
    )
}

// ---------------------------------------------------------------------------------------------------
// The checks.

struct Ctx<'s> {
    /// The literal thing name a per-thing policy may use; `None` for shared policies and for an invalid
    /// name, which then matches nothing (fail closed).
    thing: Option<&'s str>,
    label: String,
}

impl<'s> Ctx<'s> {
    fn new(scope: Scope<'s>) -> Self {
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

fn check_document(document: &str, ctx: &Ctx<'_>, sink: &mut Sink) {
    if document.len() > MAX_DOCUMENT_BYTES {
        let len = document.len();
        sink.invalid(None, format!("the document is {len} bytes, over the {MAX_DOCUMENT_BYTES} the linter reads"));
        return;
    }
    let root = match serde_json::from_str::<Json>(document) {
        Ok(root) => root,
        Err(err) => {
            return sink.invalid(None, format!("the document is not valid JSON: {err}"));
        }
    };
    let Json::Object(top) = &root else {
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

// ---------------------------------------------------------------------------------------------------
// Collecting findings.

#[derive(Debug, Default)]
struct Sink {
    findings: Vec<Finding>,
    errors: usize,
    warnings: usize,
    omitted: usize,
}

impl Sink {
    fn push(
        &mut self,
        rule: Rule,
        statement: Option<usize>,
        action: Option<&str>,
        resource: Option<&str>,
        message: impl FnOnce() -> String,
    ) {
        // Past the cap nothing is compared any more, so the work per pair stays constant.
        let full = match rule.severity() {
            Severity::Error => self.errors,
            Severity::Warning => self.warnings,
        } >= MAX_FINDINGS_PER_SEVERITY;
        if full {
            self.omitted += 1;
            return;
        }
        let same_place = |f: &Finding| {
            f.rule == rule
                && f.statement == statement
                && f.action.as_deref() == action
                && f.resource.as_deref() == resource
        };
        // One finding per rule and place: a wildcard action expands to several data-plane actions that
        // would otherwise repeat it. Document errors differ by message, so they are kept apart.
        if rule != Rule::InvalidDocument && self.findings.iter().any(same_place) {
            return;
        }
        let message = message();
        if rule == Rule::InvalidDocument && self.findings.iter().any(|f| same_place(f) && f.message == message) {
            return;
        }
        let count = match rule.severity() {
            Severity::Error => &mut self.errors,
            Severity::Warning => &mut self.warnings,
        };
        *count += 1;
        self.findings.push(Finding {
            rule,
            severity: rule.severity(),
            statement,
            action: action.map(str::to_owned),
            resource: resource.map(str::to_owned),
            message,
            hint: rule.hint(),
        });
    }

    fn invalid(&mut self, statement: Option<usize>, message: String) {
        self.push(Rule::InvalidDocument, statement, None, None, || message);
    }

    /// Reports a statement-level document error and yields `None`, for early returns.
    fn invalid_none<T>(&mut self, index: usize, message: String) -> Option<T> {
        self.invalid(Some(index), message);
        None
    }

    fn invalid_action(&mut self, index: usize, raw: &str) {
        self.push(Rule::InvalidDocument, Some(index), Some(raw), None, || {
            format!("action {} is not of the form service:Action", quoted(raw))
        });
    }

    fn finish(mut self) -> Report {
        // Receive on a pair already reported as unscoped (e.g. through `iot:*`) adds nothing.
        let unscoped: Vec<(Option<usize>, Option<String>, Option<String>)> = self
            .findings
            .iter()
            .filter(|f| f.rule == Rule::UnscopedTopicAccess)
            .map(|f| (f.statement, f.action.clone(), f.resource.clone()))
            .collect();
        self.findings.retain(|f| {
            f.rule != Rule::BroadReceive
                || !unscoped.iter().any(|(s, a, r)| *s == f.statement && *a == f.action && *r == f.resource)
        });
        Report { findings: self.findings, omitted: self.omitted }
    }
}

/// Quotes an untrusted value for a message: escaped (no control characters reach logs) and shortened.
fn quoted(s: &str) -> String {
    const MAX_CHARS: usize = 120;
    match s.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{:?}...", s.get(..cut).unwrap_or_default()),
        None => format!("{s:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

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
        assert_invalid(
            r#"{"Version":"2012-10-17","Version":"2012-10-17","Statement":[]}"#,
            "duplicate key \"Version\"",
        );
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
            (
                json!({ "Effect": "Allow", "action": "iot:Connect", "Action": "iot:Connect", "Resource": c }),
                "\"action\"",
            ),
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
        let report =
            run(&[allow(&["iot:Publish", "IoT:publish", "IOT:PUBLISH"], &["topic/things/sensor-1/data"])], THING);
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
        let resource = format!(
            "topic/{VAR}/${{iot:Connection.Thing.ThingTypeName}}/${{iot:Connection.Thing.Attributes[room/no#1]}}"
        );
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
}

//! Resources: ARNs, resource types, topic levels and policy variables.

/// The policy variable that AWS IoT replaces with the name of the thing attached to the connection.
pub const THING_NAME_VARIABLE: &str = "${iot:Connection.Thing.ThingName}";

/// The resource type an action is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Client,
    Topic,
    TopicFilter,
    Thing,
    RoleAlias,
    Other,
}

impl Kind {
    pub(super) fn prefix(self) -> &'static str {
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
#[derive(Debug)]
pub(super) enum Res<'j> {
    /// `*`, or an ARN whose wildcard covers its resource type (`arn:aws:iot:*`, `arn:...:*`).
    Everything,
    Arn(Arn<'j>),
    /// An ARN of another service: no IoT action applies to it.
    Foreign,
    Malformed(&'static str),
}

#[derive(Debug)]
pub(super) struct Arn<'j> {
    /// A wildcard in partition, service, region or account.
    pub(super) header_wildcard: bool,
    pub(super) kind: Kind,
    /// The resource type as written, for messages.
    pub(super) type_name: &'j str,
    /// The resource name after `<type>/`.
    pub(super) name: &'j str,
}

pub(super) fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?'])
}

pub(super) fn parse_resource(raw: &str) -> Res<'_> {
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
pub(super) fn complete_levels(name: &str, mqtt_wildcards: bool) -> (Vec<&str>, bool) {
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
    pub(super) fn bare_wildcard(&self) -> Option<String> {
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
pub(super) fn untrusted_variables(s: &str) -> Vec<&str> {
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

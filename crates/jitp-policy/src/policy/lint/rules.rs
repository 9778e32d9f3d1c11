//! The rule catalogue: every rule's stable id, severity and fix hint.

use std::fmt;

use serde::{Serialize, Serializer};

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
    /// With the connect guard on (`[guard]` in jitp.toml), `iot:Connect` allowed without limiting it to the
    /// guarded domain (`iot:DomainName`): the device could connect where the guard does not run.
    ConnectOutsideGuardedDomain,
}

impl Rule {
    /// Every rule, errors first.
    pub const ALL: [Rule; 12] = [
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
        Rule::ConnectOutsideGuardedDomain,
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
            Rule::ConnectOutsideGuardedDomain => "connect-outside-guarded-domain",
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
            Rule::ConnectOutsideGuardedDomain => {
                "Add \"Condition\": {\"StringEquals\": {\"iot:DomainName\": \"<[guard] domain_name>\"}} to the statement that allows iot:Connect (the shipped templates show it); AWS IoT runs the guard only on that domain."
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

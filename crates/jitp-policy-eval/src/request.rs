//! A request to authorize: one of AWS IoT's data-plane actions on the resource ARN its action takes (developer
//! guide, "AWS IoT Core action resources").

use crate::Error;
use crate::error::shorten;

/// AWS IoT's limit on a topic name or filter (AWS IoT Core quotas: "Topic size", 256 bytes, UTF-8).
pub const MAX_TOPIC_BYTES: usize = 256;

/// The resource type an action is authorized on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceType {
    /// `client/<client id>`
    Client,
    /// `topic/<topic name>`
    Topic,
    /// `topicfilter/<topic filter>`
    TopicFilter,
    /// `thing/<thing name>[/<shadow name>]`
    Thing,
    /// `rolealias/<alias>`
    RoleAlias,
    /// `*` only (`iot:ListRetainedMessages`)
    Any,
}

impl ResourceType {
    /// The ARN's resource-type word (`topicfilter`); `*` for [`ResourceType::Any`].
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::Client => "client",
            ResourceType::Topic => "topic",
            ResourceType::TopicFilter => "topicfilter",
            ResourceType::Thing => "thing",
            ResourceType::RoleAlias => "rolealias",
            ResourceType::Any => "*",
        }
    }
}

macro_rules! actions {
    ($($variant:ident => $name:literal, $resource:ident;)*) => {
        /// An AWS IoT data-plane action.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Action {
            $(#[doc = concat!("`", $name, "`")] $variant,)*
        }

        impl Action {
            /// Every action, in AWS's order.
            pub const ALL: &'static [Action] = &[$(Action::$variant,)*];
            /// Every action's name.
            pub const NAMES: &'static [&'static str] = &[$($name,)*];

            /// The action's name (`iot:Publish`).
            pub fn as_str(self) -> &'static str {
                match self { $(Action::$variant => $name,)* }
            }

            /// The resource type the action is authorized on.
            pub fn resource_type(self) -> ResourceType {
                match self { $(Action::$variant => ResourceType::$resource,)* }
            }
        }
    };
}

actions! {
    Connect => "iot:Connect", Client;
    Publish => "iot:Publish", Topic;
    RetainPublish => "iot:RetainPublish", Topic;
    Subscribe => "iot:Subscribe", TopicFilter;
    Receive => "iot:Receive", Topic;
    GetRetainedMessage => "iot:GetRetainedMessage", Topic;
    ListRetainedMessages => "iot:ListRetainedMessages", Any;
    GetThingShadow => "iot:GetThingShadow", Thing;
    UpdateThingShadow => "iot:UpdateThingShadow", Thing;
    DeleteThingShadow => "iot:DeleteThingShadow", Thing;
    ListNamedShadowsForThing => "iot:ListNamedShadowsForThing", Thing;
    DescribeJobExecution => "iot:DescribeJobExecution", Thing;
    GetPendingJobExecutions => "iot:GetPendingJobExecutions", Thing;
    StartNextPendingJobExecution => "iot:StartNextPendingJobExecution", Thing;
    UpdateJobExecution => "iot:UpdateJobExecution", Thing;
    AssumeRoleWithCertificate => "iot:AssumeRoleWithCertificate", RoleAlias;
}

impl std::str::FromStr for Action {
    type Err = Error;

    /// Action names are case-insensitive in IAM: `iot:publish` is `iot:Publish`.
    fn from_str(s: &str) -> Result<Self, Error> {
        Action::ALL
            .iter()
            .copied()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::UnknownAction(shorten(s)))
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the policy lives: the ARN prefix of its resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// `aws`, `aws-cn`, `aws-us-gov`
    pub partition: String,
    /// `eu-west-1`
    pub region: String,
    /// 12 digits
    pub account_id: String,
}

/// An action on a resource, checked as AWS IoT checks a request before it authorizes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    action: Action,
    resource: String,
    /// The name after `<type>/` (the client id, topic, filter, thing), for checks against the context.
    name_start: usize,
}

impl Request {
    /// A request on a resource ARN (`arn:aws:iot:eu-west-1:123456789012:topic/things/sensor-1/telemetry`).
    pub fn new(action: Action, resource: &str) -> Result<Request, Error> {
        let bad = |reason: String| Error::Request { field: "resource", value: shorten(resource), reason };
        let expected = action.resource_type();
        if expected == ResourceType::Any {
            if resource != "*" {
                return Err(bad(format!("{action} is authorized on the resource \"*\" only")));
            }
            return Ok(Request { action, resource: resource.to_owned(), name_start: resource.len() });
        }
        let parts: Vec<&str> = resource.splitn(6, ':').collect();
        let [arn, partition, service, region, account, rest] = parts.as_slice() else {
            return Err(bad("not an ARN arn:PARTITION:iot:REGION:ACCOUNT:TYPE/NAME".to_owned()));
        };
        if *arn != "arn" || partition.is_empty() || *service != "iot" || region.is_empty() || account.is_empty() {
            return Err(bad("not an AWS IoT ARN arn:PARTITION:iot:REGION:ACCOUNT:TYPE/NAME".to_owned()));
        }
        let ok_part = |p: &str| p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok_part(partition) || !ok_part(region) || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(
                "the partition, region and account id must be plain (no wildcards: a request names one resource)"
                    .to_owned(),
            ));
        }
        let Some((kind, name)) = rest.split_once('/') else {
            return Err(bad(format!("no {}/NAME after the account id", expected.as_str())));
        };
        if kind != expected.as_str() {
            return Err(bad(format!("{action} is authorized on a {} resource, not {kind}", expected.as_str())));
        }
        check_name(action, name).map_err(bad)?;
        let name_start = resource.len() - name.len();
        Ok(Request { action, resource: resource.to_owned(), name_start })
    }

    /// A request on the named resource in `account` (`name`: the client id, topic, topic filter or thing name).
    pub fn on(action: Action, account: &Account, name: &str) -> Result<Request, Error> {
        if action.resource_type() == ResourceType::Any {
            return Request::new(action, "*");
        }
        Request::new(
            action,
            &format!(
                "arn:{}:iot:{}:{}:{}/{name}",
                account.partition,
                account.region,
                account.account_id,
                action.resource_type().as_str()
            ),
        )
    }

    /// The action.
    pub fn action(&self) -> Action {
        self.action
    }

    /// The resource ARN.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The resource's name: the client id, topic, topic filter or thing name after `TYPE/`.
    pub fn name(&self) -> &str {
        &self.resource[self.name_start..]
    }
}

/// What AWS IoT refuses before authorizing: a topic name with MQTT wildcards, a malformed topic filter, sizes
/// over AWS's limits, U+0000 (MQTT 3.1.1 section 1.5.3).
fn check_name(action: Action, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name after TYPE/ is empty".to_owned());
    }
    if name.contains('\0') {
        return Err("MQTT strings may not contain U+0000".to_owned());
    }
    match action.resource_type() {
        ResourceType::Topic | ResourceType::TopicFilter if name.len() > MAX_TOPIC_BYTES => {
            Err(format!("AWS IoT topics and topic filters are at most {MAX_TOPIC_BYTES} bytes, this is {}", name.len()))
        }
        ResourceType::Topic if name.contains(['+', '#']) => {
            Err(format!("{action} takes a topic name; + and # are topic-filter wildcards (MQTT 3.1.1 section 4.7)"))
        }
        ResourceType::TopicFilter => {
            let levels: Vec<&str> = name.split('/').collect();
            for (i, level) in levels.iter().enumerate() {
                let whole = *level == "+" || (*level == "#" && i == levels.len() - 1);
                if level.contains(['+', '#']) && !whole {
                    return Err(format!(
                        "level {level:?} is not a valid topic filter level: + must be a whole level and # the whole \
                         last level (MQTT 3.1.1 section 4.7.1)"
                    ));
                }
            }
            Ok(())
        }
        ResourceType::Client if name.len() > crate::context::MAX_CLIENT_ID_BYTES => Err(format!(
            "AWS IoT client ids are at most {} bytes, this is {}",
            crate::context::MAX_CLIENT_ID_BYTES,
            name.len()
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:iot:us-east-1:123456789012";

    #[test]
    fn requests_name_one_resource_of_their_actions_type() {
        assert!(Request::new(Action::Publish, &format!("{ARN}:topic/a/b")).is_ok());
        assert!(Request::new(Action::Subscribe, &format!("{ARN}:topicfilter/a/+/c/#")).is_ok());
        assert!(Request::new(Action::Subscribe, &format!("{ARN}:topic/a")).is_err());
        assert!(Request::new(Action::Publish, &format!("{ARN}:topic/a/+")).is_err());
        assert!(Request::new(Action::Publish, &format!("{ARN}:topic/a/#")).is_err());
        assert!(Request::new(Action::Subscribe, &format!("{ARN}:topicfilter/a/#/b")).is_err());
        assert!(Request::new(Action::Subscribe, &format!("{ARN}:topicfilter/a+")).is_err());
        assert!(Request::new(Action::Publish, &format!("{ARN}:topic/{}", "a".repeat(257))).is_err());
        assert!(Request::new(Action::Publish, "arn:aws:iot:*:123456789012:topic/a").is_err());
        assert!(Request::new(Action::Connect, &format!("{ARN}:client/{}", "c".repeat(129))).is_err());
        assert!(Request::new(Action::ListRetainedMessages, "*").is_ok());
        let r = Request::new(Action::Connect, &format!("{ARN}:client/a:b")).map(|r| r.name().to_owned());
        assert_eq!(r.as_deref(), Ok("a:b"));
    }

    #[test]
    fn action_names_are_case_insensitive() {
        assert_eq!("iot:publish".parse::<Action>(), Ok(Action::Publish));
        assert!("iot:Publish2".parse::<Action>().is_err());
    }
}

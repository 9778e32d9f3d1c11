//! Actions: the IoT device data-plane actions with their resource types, and IAM's wildcard match.

use super::resources::{Kind, Res};

/// How a data-plane action must be scoped to the thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Check {
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
pub(super) struct DataAction {
    pub(super) name: &'static str,
    /// `None`: any resource (AWS documents `*` as the only resource of `ListRetainedMessages`).
    pub(super) kind: Option<Kind>,
    pub(super) check: Check,
}

const fn data(name: &'static str, kind: Option<Kind>, check: Check) -> DataAction {
    DataAction { name, kind, check }
}

/// The IoT device data-plane actions and their resource types (AWS IoT developer guide, "AWS IoT Core
/// action resources"). Anything else in an Allow is a control-plane action.
pub(super) const DATA_PLANE: [DataAction; 16] = [
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
    pub(super) fn applies_to(&self, res: &Res<'_>) -> bool {
        match res {
            Res::Everything => true,
            Res::Arn(arn) => self.kind.is_none_or(|kind| kind == arn.kind),
            Res::Foreign | Res::Malformed(_) => false,
        }
    }
}

#[derive(Debug)]
pub(super) struct Action<'j> {
    pub(super) raw: &'j str,
    pub(super) wildcard: bool,
    /// Lower-cased service prefix, when it has no wildcard (`None` for `*` and `i*:...`).
    pub(super) service: Option<String>,
    /// The data-plane action it names, or every one its wildcard matches.
    pub(super) data: Vec<&'static DataAction>,
}

impl<'j> Action<'j> {
    /// `None` when `raw` is not `*` or `service:Name` (IAM action names are ASCII letters and digits).
    pub(super) fn parse(raw: &'j str) -> Option<Self> {
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
    pub(super) fn exact_data(&self) -> Option<&'static DataAction> {
        match self.data.as_slice() {
            [only] if !self.wildcard => Some(only),
            _ => None,
        }
    }

    pub(super) fn is_control_plane(&self) -> bool {
        if self.wildcard {
            // `iot:*` is reported as a wildcard; `iam:*` is both.
            self.service.as_deref().is_some_and(|s| s != "iot")
        } else {
            self.data.is_empty()
        }
    }

    pub(super) fn may_be_iot(&self) -> bool {
        self.service.as_deref().is_none_or(|s| s == "iot")
    }
}

/// IAM wildcard match (`*` any run, `?` one character), ASCII case-insensitive as action names are.
pub(super) fn glob_matches(pattern: &str, text: &str) -> bool {
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

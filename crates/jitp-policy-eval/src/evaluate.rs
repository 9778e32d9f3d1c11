//! The decision: every statement of every policy attached to the principal, Deny winning, implicit deny otherwise
//! (IAM's evaluation logic, which AWS IoT policies follow).
//!
//! Each statement matches, does not, or cannot be decided (an unmodelled key, operator or variable, or one of
//! AWS's ambiguities). A request is ALLOWED only when some Allow matches for certain and no Deny could match; an
//! EXPLICIT_DENY needs a Deny that matches for certain; IMPLICIT_DENY needs every statement to certainly not
//! match. Anything else is NOT_MODELLED, with the reasons.

use crate::context::Context;
use crate::document::{Effect, Policy, Statement, Targets};
use crate::pattern::{Tri, action_matches};
use crate::request::Request;
use crate::variables::Resolution;
use serde::Serialize;

/// The answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Decision {
    /// An Allow statement matches and no Deny does.
    Allowed,
    /// No statement matches.
    ImplicitDeny,
    /// A Deny statement matches.
    ExplicitDeny,
    /// The answer depends on something this evaluator does not model (see [`Evaluation::unmodelled`]).
    NotModelled,
}

impl Decision {
    /// `ALLOWED`, `IMPLICIT_DENY`, `EXPLICIT_DENY`, `NOT_MODELLED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "ALLOWED",
            Decision::ImplicitDeny => "IMPLICIT_DENY",
            Decision::ExplicitDeny => "EXPLICIT_DENY",
            Decision::NotModelled => "NOT_MODELLED",
        }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A statement, located: which policy (index in the list evaluated) and which statement in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatementRef {
    /// Index of the policy in the slice given to [`evaluate`].
    pub policy: usize,
    /// Index of the statement in its policy.
    pub statement: usize,
    /// Its `Sid`, if any.
    pub sid: Option<String>,
    /// Allow or Deny.
    pub effect: Effect,
}

/// Something the evaluator could not decide, in one statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unmodelled {
    /// The statement.
    pub statement: StatementRef,
    /// Why (one line per unknown).
    pub reasons: Vec<String>,
}

/// A variable the statements relevant to the request name, as it resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedVariable {
    /// As written (`${iot:Connection.Thing.ThingName}`, or a condition key).
    pub name: String,
    /// What it resolved to.
    #[serde(flatten)]
    pub value: VariableValue,
}

/// What a variable resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VariableValue {
    /// One value.
    Value(String),
    /// Several (`.List`, `iot:ConnectAttributes`).
    Values(Vec<String>),
    /// AWS IoT leaves it unsubstituted; why.
    Unresolved(String),
    /// The evaluator cannot say; why.
    NotModelled(String),
}

/// The decision with what decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    /// The decision.
    pub decision: Decision,
    /// The statement that decided: the first certain Deny for EXPLICIT_DENY, the first certain Allow for ALLOWED.
    pub statement: Option<StatementRef>,
    /// For NOT_MODELLED: whether the request is denied whichever way the unknowns fall (no Allow could match).
    pub denied_either_way: bool,
    /// The statements that could not be decided, and why (empty unless something was unknown).
    pub unmodelled: Vec<Unmodelled>,
    /// The variables as resolved (filled by [`explain`]; empty from [`evaluate`]).
    pub variables: Vec<ResolvedVariable>,
}

impl Evaluation {
    /// ALLOWED for certain.
    pub fn is_allowed(&self) -> bool {
        self.decision == Decision::Allowed
    }

    /// Denied for certain (explicitly, implicitly, or either way).
    pub fn is_denied(&self) -> bool {
        matches!(self.decision, Decision::ImplicitDeny | Decision::ExplicitDeny)
            || (self.decision == Decision::NotModelled && self.denied_either_way)
    }
}

fn statement_ref(policy: usize, index: usize, statement: &Statement) -> StatementRef {
    StatementRef { policy, statement: index, sid: statement.sid.clone(), effect: statement.effect }
}

/// Whether a statement's action part covers the request (no unknowns: actions have no variables).
pub(crate) fn action_applies(statement: &Statement, action_lower: &str) -> bool {
    match &statement.actions {
        Targets::Listed(list) => list.iter().any(|a| action_matches(a, action_lower)),
        Targets::Not(list) => !list.iter().any(|a| action_matches(a, action_lower)),
    }
}

fn statement_matches(statement: &Statement, request: &Request, ctx: &Context, why: &mut Vec<String>) -> Tri {
    let resource = match &statement.resources {
        Targets::Listed(list) => {
            let mut any = Tri::No;
            for pattern in list {
                any = any.or(pattern.matches(request.resource(), ctx, why));
                if any == Tri::Yes {
                    break;
                }
            }
            any
        }
        Targets::Not(list) => {
            let mut any = Tri::No;
            for pattern in list {
                any = any.or(pattern.matches(request.resource(), ctx, why));
                if any == Tri::Yes {
                    break;
                }
            }
            any.not()
        }
    };
    if resource == Tri::No {
        return Tri::No;
    }
    let mut all = resource;
    for condition in &statement.conditions {
        all = all.and(condition.holds(ctx, why));
        if all == Tri::No {
            return Tri::No;
        }
    }
    all
}

/// Evaluates `request` from the connection `ctx` against every statement of `policies` (all the policies
/// attached to the principal).
pub fn evaluate(policies: &[Policy], request: &Request, ctx: &Context) -> Evaluation {
    let action_lower = request.action().as_str().to_ascii_lowercase();
    let mut first_deny = None;
    let mut first_allow = None;
    let mut deny_unknown = false;
    let mut allow_unknown = false;
    let mut unmodelled = Vec::new();
    let mut why = Vec::new();
    for (p, policy) in policies.iter().enumerate() {
        for (s, statement) in policy.statements.iter().enumerate() {
            if !action_applies(statement, &action_lower) {
                continue;
            }
            why.clear();
            match (statement_matches(statement, request, ctx, &mut why), statement.effect) {
                (Tri::Yes, Effect::Deny) => {
                    first_deny.get_or_insert_with(|| statement_ref(p, s, statement));
                }
                (Tri::Yes, Effect::Allow) => {
                    first_allow.get_or_insert_with(|| statement_ref(p, s, statement));
                }
                (Tri::Unknown, effect) => {
                    match effect {
                        Effect::Deny => deny_unknown = true,
                        Effect::Allow => allow_unknown = true,
                    }
                    let mut reasons = std::mem::take(&mut why);
                    reasons.dedup();
                    unmodelled.push(Unmodelled { statement: statement_ref(p, s, statement), reasons });
                }
                (Tri::No, _) => {}
            }
        }
    }
    let (decision, statement, denied_either_way) = if let Some(deny) = first_deny {
        // A certain Deny decides whatever else is unknown.
        unmodelled.clear();
        (Decision::ExplicitDeny, Some(deny), true)
    } else if deny_unknown {
        let could_allow = first_allow.is_some() || allow_unknown;
        (Decision::NotModelled, None, !could_allow)
    } else if let Some(allow) = first_allow {
        unmodelled.clear();
        (Decision::Allowed, Some(allow), false)
    } else if allow_unknown {
        (Decision::NotModelled, None, false)
    } else {
        (Decision::ImplicitDeny, None, true)
    };
    Evaluation { decision, statement, denied_either_way, unmodelled, variables: Vec::new() }
}

/// [`evaluate`], with the variables of the statements whose action covers the request, as they resolved.
pub fn explain(policies: &[Policy], request: &Request, ctx: &Context) -> Evaluation {
    let mut evaluation = evaluate(policies, request, ctx);
    let action_lower = request.action().as_str().to_ascii_lowercase();
    let mut variables: Vec<ResolvedVariable> = Vec::new();
    for policy in policies {
        for statement in policy.statements.iter().filter(|s| action_applies(s, &action_lower)) {
            let resources = match &statement.resources {
                Targets::Listed(list) | Targets::Not(list) => list,
            };
            let names = resources
                .iter()
                .flat_map(|r| r.variables())
                .chain(statement.conditions.iter().flat_map(|c| c.variables()));
            for (name, var) in names {
                if variables.iter().any(|v| v.name == name) {
                    continue;
                }
                let value = match var.resolve(ctx) {
                    Resolution::One(v) => VariableValue::Value(v.to_owned()),
                    Resolution::Many(vs) => VariableValue::Values(vs.into_iter().map(str::to_owned).collect()),
                    Resolution::Absent(why) => VariableValue::Unresolved(why),
                    Resolution::Unknown(why) => VariableValue::NotModelled(why),
                };
                variables.push(ResolvedVariable { name: name.to_owned(), value });
            }
        }
    }
    evaluation.variables = variables;
    evaluation
}

//! A policy document, read once: `Version` 2012-10-17 (the only version with policy variables), statements with
//! `Sid`, `Effect`, `Action` or `NotAction`, `Resource` or `NotResource`, and `Condition`.
//!
//! A key AWS IoT policies do not have (`Principal`, a misspelt `Efect`) is an error naming it, not ignored: a
//! statement read differently from how AWS reads it would answer the wrong question.

use crate::Error;
use crate::condition::Condition;
use crate::json::Json;
use crate::pattern::Pattern;

/// Allow or Deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Effect {
    /// `"Effect": "Allow"`
    Allow,
    /// `"Effect": "Deny"`
    Deny,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Targets<T> {
    /// `Action` / `Resource`: the request must match one.
    Listed(Vec<T>),
    /// `NotAction` / `NotResource`: the request must match none.
    Not(Vec<T>),
}

/// One statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The statement as compact JSON, for showing it.
    pub(crate) text: String,
    pub(crate) sid: Option<String>,
    pub(crate) effect: Effect,
    /// Action patterns, lower-cased (IAM compares action names without case).
    pub(crate) actions: Targets<String>,
    pub(crate) resources: Targets<Pattern>,
    pub(crate) conditions: Vec<Condition>,
}

impl Statement {
    /// The `Sid`, if the statement has one.
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    /// Allow or Deny.
    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// The statement as compact JSON (keys in document order).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the statement's `Action` (or `NotAction`) covers `action`.
    pub fn covers(&self, action: crate::Action) -> bool {
        crate::evaluate::action_applies(self, &action.as_str().to_ascii_lowercase())
    }

    /// The `Resource` patterns as written; `None` for a `NotResource` statement.
    pub fn resources(&self) -> Option<Vec<&str>> {
        match &self.resources {
            Targets::Listed(list) => Some(list.iter().map(Pattern::source).collect()),
            Targets::Not(_) => None,
        }
    }
}

/// A parsed policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub(crate) statements: Vec<Statement>,
}

impl Policy {
    /// Parses a policy document.
    pub fn parse(text: &str) -> Result<Policy, Error> {
        let json = crate::json::parse(text)?;
        let Json::Object(top) = json else {
            return Err(doc("the document", &json, "must be a JSON object"));
        };
        let mut version = None;
        let mut statement = None;
        for (key, value) in &top {
            match key.as_str() {
                "Version" => version = Some(value),
                "Statement" => statement = Some(value),
                "Id" => {}
                other => {
                    return Err(doc(
                        &format!("key {other:?}"),
                        value,
                        "is not a policy element (Version, Statement, Id)",
                    ));
                }
            }
        }
        match version {
            Some(Json::String(v)) if v == "2012-10-17" => {}
            Some(v) => {
                return Err(doc(
                    "Version",
                    v,
                    "must be \"2012-10-17\", the version whose policy variables AWS IoT reads",
                ));
            }
            None => {
                return Err(Error::Document {
                    field: "Version".to_owned(),
                    value: "(missing)".to_owned(),
                    reason: "must be \"2012-10-17\"".to_owned(),
                });
            }
        }
        let statements = match statement {
            Some(Json::Array(items)) => items.iter().collect::<Vec<_>>(),
            Some(one @ Json::Object(_)) => vec![one],
            Some(other) => return Err(doc("Statement", other, "must be an object or an array of objects")),
            None => {
                return Err(Error::Document {
                    field: "Statement".to_owned(),
                    value: "(missing)".to_owned(),
                    reason: "a policy needs at least one statement".to_owned(),
                });
            }
        };
        let statements =
            statements.into_iter().enumerate().map(|(i, s)| parse_statement(i, s)).collect::<Result<_, _>>()?;
        Ok(Policy { statements })
    }

    /// The statements, in document order.
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }
}

fn doc(field: &str, value: &Json, reason: &str) -> Error {
    Error::Document { field: field.to_owned(), value: value.describe(), reason: reason.to_owned() }
}

fn strings(field: &str, value: &Json) -> Result<Vec<String>, Error> {
    match value {
        Json::String(s) => Ok(vec![s.clone()]),
        Json::Array(items) => items
            .iter()
            .map(|item| match item {
                Json::String(s) => Ok(s.clone()),
                other => Err(doc(field, other, "must be a string")),
            })
            .collect(),
        other => Err(doc(field, other, "must be a string or an array of strings")),
    }
}

/// Condition values: strings, and booleans and numbers as their text (IAM accepts `"Bool": {"k": true}`).
fn condition_values(field: &str, value: &Json) -> Result<Vec<String>, Error> {
    let scalar = |item: &Json| match item {
        Json::String(s) => Ok(s.clone()),
        Json::Bool(b) => Ok(b.to_string()),
        Json::Number(n) => Ok(n.clone()),
        other => Err(doc(field, other, "must be a string, a boolean or a number")),
    };
    match value {
        Json::Array(items) => items.iter().map(scalar).collect(),
        other => Ok(vec![scalar(other)?]),
    }
}

fn parse_statement(index: usize, json: &Json) -> Result<Statement, Error> {
    let at = |key: &str| format!("Statement[{index}].{key}");
    let Json::Object(entries) = json else {
        return Err(doc(&format!("Statement[{index}]"), json, "must be an object"));
    };
    let mut sid = None;
    let mut effect = None;
    let mut actions = None;
    let mut resources = None;
    let mut conditions = Vec::new();
    for (key, value) in entries {
        match key.as_str() {
            "Sid" => match value {
                Json::String(s) => sid = Some(s.clone()),
                other => return Err(doc(&at("Sid"), other, "must be a string")),
            },
            "Effect" => match value {
                Json::String(s) if s == "Allow" => effect = Some(Effect::Allow),
                Json::String(s) if s == "Deny" => effect = Some(Effect::Deny),
                other => return Err(doc(&at("Effect"), other, "must be \"Allow\" or \"Deny\"")),
            },
            "Action" | "NotAction" => {
                if actions.is_some() {
                    return Err(doc(&at(key), value, "a statement has either Action or NotAction, once"));
                }
                let list = strings(&at(key), value)?;
                for a in &list {
                    let valid = a == "*"
                        || a.split_once(':').is_some_and(|(service, name)| {
                            let ok = |s: &str| {
                                !s.is_empty()
                                    && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?' || c == '-')
                            };
                            ok(service) && ok(name)
                        });
                    if !valid {
                        return Err(doc(&at(key), &Json::String(a.clone()), "must be \"*\" or \"service:ActionName\""));
                    }
                }
                let lower = list.iter().map(|a| a.to_ascii_lowercase()).collect();
                actions = Some(if key == "Action" { Targets::Listed(lower) } else { Targets::Not(lower) });
            }
            "Resource" | "NotResource" => {
                if resources.is_some() {
                    return Err(doc(&at(key), value, "a statement has either Resource or NotResource, once"));
                }
                let list = strings(&at(key), value)?.iter().map(|r| Pattern::parse(r, true, true)).collect();
                resources = Some(if key == "Resource" { Targets::Listed(list) } else { Targets::Not(list) });
            }
            "Condition" => {
                let Json::Object(operators) = value else {
                    return Err(doc(&at("Condition"), value, "must be an object of operators"));
                };
                for (operator, keys) in operators {
                    let Json::Object(keys) = keys else {
                        return Err(doc(
                            &at(&format!("Condition.{operator}")),
                            keys,
                            "must be an object of condition keys",
                        ));
                    };
                    for (k, values) in keys {
                        let field = at(&format!("Condition.{operator}.{k}"));
                        conditions.push(Condition::new(operator, k, &condition_values(&field, values)?));
                    }
                }
            }
            other => {
                return Err(doc(
                    &at(other),
                    value,
                    "is not an element of an AWS IoT policy statement (Sid, Effect, Action, NotAction, Resource, \
                     NotResource, Condition)",
                ));
            }
        }
    }
    let missing = |what: &str| Error::Document {
        field: at(what),
        value: "(missing)".to_owned(),
        reason: "is required".to_owned(),
    };
    Ok(Statement {
        text: json.to_text(),
        sid,
        effect: effect.ok_or_else(|| missing("Effect"))?,
        actions: actions.ok_or_else(|| missing("Action"))?,
        resources: resources.ok_or_else(|| missing("Resource"))?,
        conditions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_that_are_not_policies_are_refused_with_the_field() {
        let cases = [
            (r#"[]"#, "the document"),
            (r#"{"Statement": []}"#, "Version"),
            (r#"{"Version": "2008-10-17", "Statement": []}"#, "Version"),
            (r#"{"Version": "2012-10-17"}"#, "Statement"),
            (
                r#"{"Version": "2012-10-17", "Statement": [{"Effect": "allow", "Action": "*", "Resource": "*"}]}"#,
                "Statement[0].Effect",
            ),
            (
                r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*"}]}"#,
                "Statement[0].Resource",
            ),
            (
                r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Principal": "*"}]}"#,
                "Statement[0].Principal",
            ),
            (
                r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "NotAction": "iot:Connect", "Resource": "*"}]}"#,
                "Statement[0].NotAction",
            ),
            (
                r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "Publish", "Resource": "*"}]}"#,
                "Statement[0].Action",
            ),
            (
                r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": 1, "Resource": "*"}]}"#,
                "Statement[0].Action",
            ),
        ];
        for (text, field) in cases {
            match Policy::parse(text) {
                Err(Error::Document { field: f, .. }) => assert_eq!(f, field, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_single_statement_object_and_condition_scalars_are_read() {
        let p = Policy::parse(
            r#"{"Version": "2012-10-17", "Id": "x", "Statement": {"Sid": "s", "Effect": "Deny", "NotAction": ["iot:Connect"],
                "NotResource": "*", "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": false}}}}"#,
        );
        let Ok(p) = p else { panic!("{p:?}") };
        assert_eq!(p.statements().len(), 1);
        assert_eq!(p.statements()[0].sid(), Some("s"));
        assert_eq!(p.statements()[0].effect(), Effect::Deny);
    }
}

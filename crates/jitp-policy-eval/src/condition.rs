//! Condition blocks: the operators and keys jitp's templates and AWS IoT's examples use, with IAM's semantics.
//!
//! Modelled operators: `StringEquals`, `StringNotEquals`, `StringEqualsIgnoreCase`, `StringNotEqualsIgnoreCase`,
//! `StringLike`, `StringNotLike`, `Bool`, `Null`, `ArnEquals`, `ArnNotEquals`, `ArnLike`, `ArnNotLike`, each with
//! `...IfExists` and the `ForAnyValue:` / `ForAllValues:` qualifiers. Anything else (numeric, date, IP address,
//! binary operators) is unmodelled: the condition is Unknown, never true.
//!
//! IAM's rules (IAM User Guide, "Condition operators" and "Multivalued context keys"):
//! - several keys under one operator, and several operators, must all hold (AND); several values for one key:
//!   any of them (OR), and for a negated operator none of them;
//! - a key absent from the request: the condition is false, except for a negated operator (true), `...IfExists`
//!   (true) and `Null`;
//! - `ForAnyValue:` holds if some value of the key satisfies the operator (an absent or empty key: false);
//!   `ForAllValues:` if every value does (an absent or empty key: true).

use crate::context::Context;
use crate::pattern::{Pattern, Tri};
use crate::variables::{Resolution, Variable};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    Bool,
    Null,
    Arn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Set {
    Single,
    ForAnyValue,
    ForAllValues,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Operator {
    Modelled { base: Base, negated: bool, set: Set, if_exists: bool },
    Unmodelled(String),
}

/// One key under one operator, with its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Condition {
    operator_text: String,
    operator: Operator,
    key_text: String,
    key: Variable,
    values: Vec<Pattern>,
}

fn parse_operator(text: &str) -> Operator {
    let (set, rest) = if let Some(rest) = text.strip_prefix("ForAnyValue:") {
        (Set::ForAnyValue, rest)
    } else if let Some(rest) = text.strip_prefix("ForAllValues:") {
        (Set::ForAllValues, rest)
    } else {
        (Set::Single, text)
    };
    let (rest, if_exists) = match rest.strip_suffix("IfExists") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let (base, negated) = match rest {
        "StringEquals" => (Base::StringEquals, false),
        "StringNotEquals" => (Base::StringEquals, true),
        "StringEqualsIgnoreCase" => (Base::StringEqualsIgnoreCase, false),
        "StringNotEqualsIgnoreCase" => (Base::StringEqualsIgnoreCase, true),
        "StringLike" => (Base::StringLike, false),
        "StringNotLike" => (Base::StringLike, true),
        "Bool" => (Base::Bool, false),
        "Null" if !if_exists && set == Set::Single => (Base::Null, false),
        "ArnEquals" | "ArnLike" => (Base::Arn, false),
        "ArnNotEquals" | "ArnNotLike" => (Base::Arn, true),
        _ => {
            return Operator::Unmodelled(format!("the condition operator {text:?} is not modelled by this evaluator"));
        }
    };
    if if_exists && set != Set::Single {
        return Operator::Unmodelled(format!("{text:?}: IfExists with a set qualifier is not documented for AWS IoT"));
    }
    Operator::Modelled { base, negated, set, if_exists }
}

impl Condition {
    /// A condition from its operator, key and values (strings as written; JSON booleans and numbers as text).
    pub(crate) fn new(operator: &str, key: &str, values: &[String]) -> Condition {
        let parsed = parse_operator(operator);
        let (wildcards, final_star_crosses) = match parsed {
            Operator::Modelled { base: Base::StringLike, .. } => (true, true),
            // "Each of the six colon-delimited components of the ARN is checked separately."
            Operator::Modelled { base: Base::Arn, .. } => (true, false),
            _ => (false, false),
        };
        Condition {
            operator_text: operator.to_owned(),
            operator: parsed,
            key_text: key.to_owned(),
            key: Variable::parse(key),
            values: values.iter().map(|v| Pattern::parse(v, wildcards, final_star_crosses)).collect(),
        }
    }

    /// The key and the variables of the values, as written and parsed.
    pub(crate) fn variables(&self) -> impl Iterator<Item = (&str, &Variable)> {
        std::iter::once((self.key_text.as_str(), &self.key)).chain(self.values.iter().flat_map(Pattern::variables))
    }

    /// Whether the condition holds for this connection.
    pub(crate) fn holds(&self, ctx: &Context, why: &mut Vec<String>) -> Tri {
        let (base, negated, set, if_exists) = match &self.operator {
            Operator::Modelled { base, negated, set, if_exists } => (*base, *negated, *set, *if_exists),
            Operator::Unmodelled(reason) => {
                why.push(reason.clone());
                return Tri::Unknown;
            }
        };
        let key = self.key.resolve(ctx);
        if let Resolution::Unknown(reason) = &key {
            why.push(format!("condition key {}: {reason}", self.key_text));
            return Tri::Unknown;
        }
        if base == Base::Null {
            let present = match &key {
                Resolution::One(_) => true,
                Resolution::Absent(_) => false,
                _ => {
                    why.push(format!("Null on the multi-valued key {} is not documented", self.key_text));
                    return Tri::Unknown;
                }
            };
            // "true": the key is absent; "false": it is present. Several values: any of them.
            let mut out = Tri::No;
            for value in &self.values {
                let wanted = value.source();
                if wanted.eq_ignore_ascii_case("true") {
                    out = out.or(if present { Tri::No } else { Tri::Yes });
                } else if wanted.eq_ignore_ascii_case("false") {
                    out = out.or(if present { Tri::Yes } else { Tri::No });
                }
            }
            return out;
        }
        let one = |v: &str, why: &mut Vec<String>| -> Tri {
            let mut any = Tri::No;
            for value in &self.values {
                any = any.or(compare(base, value, v, ctx, why));
                if any == Tri::Yes {
                    break;
                }
            }
            if negated { any.not() } else { any }
        };
        match (set, &key) {
            (_, Resolution::Unknown(_)) => Tri::Unknown,
            (Set::Single, Resolution::Absent(_)) => {
                if if_exists || negated {
                    Tri::Yes
                } else {
                    Tri::No
                }
            }
            (Set::Single, Resolution::Many(_)) => {
                why.push(format!(
                    "{} holds several values; {} without ForAnyValue:/ForAllValues: on it is not documented",
                    self.key_text, self.operator_text
                ));
                Tri::Unknown
            }
            (_, Resolution::One(v)) => one(v, why),
            (Set::ForAnyValue, Resolution::Absent(_)) => Tri::No,
            (Set::ForAllValues, Resolution::Absent(_)) => Tri::Yes,
            // AWS's example says `ForAllValues:StringEquals` on `...Organization.List` restricts publishing to
            // certificates with one of the listed values; IAM's ForAllValues holds for a certificate without any.
            (Set::ForAllValues, Resolution::Many(vs)) if vs.is_empty() && matches!(self.key, Variable::Dn { .. }) => {
                why.push(format!(
                    "the certificate has no {} value: IAM's ForAllValues holds, AWS's example says it restricts",
                    self.key_text
                ));
                Tri::Unknown
            }
            (Set::ForAnyValue, Resolution::Many(vs)) => vs.iter().fold(Tri::No, |acc, v| acc.or(one(v, why))),
            (Set::ForAllValues, Resolution::Many(vs)) => vs.iter().fold(Tri::Yes, |acc, v| acc.and(one(v, why))),
        }
    }
}

/// One policy value against one request value.
fn compare(base: Base, pattern: &Pattern, value: &str, ctx: &Context, why: &mut Vec<String>) -> Tri {
    match base {
        Base::StringEquals | Base::StringLike | Base::Arn => pattern.matches(value, ctx, why),
        Base::StringEqualsIgnoreCase | Base::Bool => {
            // IAM does not say which case folding it uses: ASCII is unambiguous, anything else is not answered; nor
            // whether a variable is substituted before or after folding.
            if pattern.variables().next().is_some() {
                why.push(format!(
                    "a case-insensitive comparison with a variable ({}) is not modelled",
                    pattern.source()
                ));
                Tri::Unknown
            } else if !value.is_ascii() || !pattern.source().is_ascii() {
                why.push(format!("case-insensitive comparison of non-ASCII {value:?} is not documented"));
                Tri::Unknown
            } else if pattern.source().eq_ignore_ascii_case(value) {
                Tri::Yes
            } else {
                Tri::No
            }
        }
        Base::Null => Tri::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Thing;

    fn holds(op: &str, key: &str, values: &[&str], ctx: &Context) -> Tri {
        let values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        Condition::new(op, key, &values).holds(ctx, &mut Vec::new())
    }

    fn attached() -> Context {
        let mut ctx = Context::new("sensor-1");
        ctx.thing = Some(Thing {
            name: "sensor-1".into(),
            thing_type: Some("sensor".into()),
            attributes: vec![("site".into(), "lyon".into())],
            exclusive: true,
        });
        ctx.connect_attributes = Some(vec!["PersistentConnect".into()]);
        ctx
    }

    #[test]
    fn string_and_bool_operators() {
        let ctx = attached();
        assert_eq!(holds("StringEquals", "iot:ClientId", &["sensor-1"], &ctx), Tri::Yes);
        assert_eq!(holds("StringEquals", "iot:ClientId", &["x", "sensor-1"], &ctx), Tri::Yes);
        assert_eq!(
            holds("StringEquals", "iot:ClientId", &["sensor-*"], &ctx),
            Tri::No,
            "StringEquals has no wildcards"
        );
        assert_eq!(holds("StringLike", "iot:ClientId", &["sensor-*"], &ctx), Tri::Yes);
        assert_eq!(holds("StringNotEquals", "iot:ClientId", &["x", "y"], &ctx), Tri::Yes);
        assert_eq!(holds("StringNotEquals", "iot:ClientId", &["x", "sensor-1"], &ctx), Tri::No);
        assert_eq!(holds("StringEqualsIgnoreCase", "iot:ClientId", &["SENSOR-1"], &ctx), Tri::Yes);
        assert_eq!(holds("Bool", "iot:Connection.Thing.IsAttached", &["true"], &ctx), Tri::Yes);
        assert_eq!(holds("Bool", "iot:Connection.Thing.IsAttached", &["false"], &ctx), Tri::No);
        assert_eq!(
            holds("StringEquals", "iot:ClientId", &["${iot:Connection.Thing.ThingName}"], &ctx),
            Tri::Yes,
            "variables in condition values"
        );
        assert_eq!(holds("StringEquals", "iot:Connection.Thing.Attributes[site]", &["lyon"], &ctx), Tri::Yes);
        assert_eq!(holds("StringEquals", "iot:Connection.Thing.ThingTypeName", &["gateway"], &ctx), Tri::No);
    }

    #[test]
    fn absent_keys_follow_iam() {
        let ctx = Context::new("c");
        let key = "iot:Connection.Thing.ThingTypeName";
        assert_eq!(holds("StringEquals", key, &["t"], &ctx), Tri::No);
        assert_eq!(holds("StringNotEquals", key, &["t"], &ctx), Tri::Yes);
        assert_eq!(holds("StringEqualsIfExists", key, &["t"], &ctx), Tri::Yes);
        assert_eq!(holds("Null", key, &["true"], &ctx), Tri::Yes);
        assert_eq!(holds("Null", key, &["false"], &ctx), Tri::No);
        assert_eq!(holds("Null", "iot:ClientId", &["false"], &ctx), Tri::Yes);
    }

    #[test]
    fn set_qualifiers_on_connect_attributes() {
        let ctx = attached();
        let k = "iot:ConnectAttributes";
        assert_eq!(holds("ForAllValues:StringEquals", k, &["PersistentConnect"], &ctx), Tri::Yes);
        assert_eq!(holds("ForAllValues:StringEquals", k, &["LastWill"], &ctx), Tri::No);
        assert_eq!(holds("ForAnyValue:StringEquals", k, &["PersistentConnect", "LastWill"], &ctx), Tri::Yes);
        assert_eq!(holds("ForAllValues:StringNotEquals", k, &["PersistentConnect"], &ctx), Tri::No);
        let mut clean = attached();
        clean.connect_attributes = Some(vec![]);
        assert_eq!(holds("ForAllValues:StringEquals", k, &[], &clean), Tri::Yes, "default features only");
        assert_eq!(holds("ForAnyValue:StringEquals", k, &["PersistentConnect"], &clean), Tri::No);
        assert_eq!(holds("StringEquals", k, &["PersistentConnect"], &ctx), Tri::Unknown);
        assert_eq!(holds("StringEquals", k, &["x"], &Context::new("c")), Tri::Unknown, "not described");
    }

    #[test]
    fn unmodelled_operators_and_keys_are_unknown() {
        let ctx = attached();
        for (op, key) in [
            ("NumericLessThan", "iot:ClientId"),
            ("IpAddress", "aws:SourceIp"),
            ("DateLessThan", "aws:CurrentTime"),
            ("StringEquals", "aws:SourceIp"),
            ("StringEquals", "iot:LastWillTopic"),
            ("stringequals", "iot:ClientId"),
            ("ForAnyValue:StringEqualsIfExists", "iot:ClientId"),
        ] {
            assert_eq!(holds(op, key, &["x"], &ctx), Tri::Unknown, "{op} {key}");
        }
    }
}

//! `connect-outside-guarded-domain`: with the connect guard on (`[guard] domain_name` in jitp.toml), every
//! statement that allows `iot:Connect` must limit it to the guarded domain.
//!
//! AWS IoT calls the guard (custom client certificate validation) only for connections to the domain
//! configuration that names it; the account's default endpoint cannot carry the callback. A policy that lets a
//! device connect on any domain lets a revoked device skip the guard by connecting to the default endpoint. The
//! `iot:DomainName` condition key (the domain the device connected to) closes that: an Allow of `iot:Connect` is
//! accepted only with `"Condition": {"StringEquals": {"iot:DomainName": "<domain>"}}` (the domain, or an array
//! holding only it). Condition keys are compared without case, as IAM does; the operator and the value exactly.
//! Other forms that would also narrow the grant (a Deny with `StringNotEquals`, `StringLike` patterns) are not
//! recognised: the rule asks for the one form it can prove.

use super::actions::glob_matches;
use super::findings::{Report, Sink, quoted};
use super::json::{Document, Json, Root};
use super::rules::Rule;

/// The condition key AWS IoT sets to the domain name a device connected to.
pub const DOMAIN_NAME_KEY: &str = "iot:DomainName";

/// The findings of `document` (already parsed) for a fleet guarded on `domain`: one per statement that allows
/// `iot:Connect` without limiting it to `domain`. A document that does not parse has none here (the lint proper
/// reports it).
pub fn lint_guard_domain(document: &Document, domain: &str) -> Report {
    let mut sink = Sink::default();
    let Root::Parsed(Json::Object(top)) = &document.root else { return sink.finish() };
    let statements: Vec<&Json> = match top.iter().find(|(k, _)| k == "Statement").map(|(_, v)| v) {
        Some(Json::Array(items)) => items.iter().collect(),
        Some(single @ Json::Object(_)) => vec![single],
        _ => return sink.finish(),
    };
    for (index, statement) in statements.into_iter().enumerate() {
        let Json::Object(entries) = statement else { continue };
        let get = |key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        if !matches!(get("Effect"), Some(Json::String(e)) if e == "Allow") {
            continue;
        }
        let actions: Vec<&str> = match get("Action") {
            Some(Json::String(a)) => vec![a.as_str()],
            Some(Json::Array(items)) => {
                items.iter().filter_map(|a| if let Json::String(a) = a { Some(a.as_str()) } else { None }).collect()
            }
            _ => continue,
        };
        let Some(connect) = actions.into_iter().find(|a| glob_matches(a, "iot:Connect")) else { continue };
        match domain_condition(get("Condition")) {
            Limit::To(values) if !values.is_empty() && values.iter().all(|v| *v == domain) => {}
            Limit::To(values) => {
                let shown: Vec<String> = values.iter().map(|v| quoted(v)).collect();
                sink.push(Rule::ConnectOutsideGuardedDomain, Some(index), Some(connect), None, || {
                    format!(
                        "{} is allowed on {DOMAIN_NAME_KEY} [{}], not only on the guarded domain {}",
                        quoted(connect),
                        shown.join(", "),
                        quoted(domain)
                    )
                });
            }
            Limit::None => {
                sink.push(Rule::ConnectOutsideGuardedDomain, Some(index), Some(connect), None, || {
                    format!(
                        "{} is allowed on every domain: a device could connect on the account's default endpoint, where the connect guard does not run; limit it to {} with {DOMAIN_NAME_KEY}",
                        quoted(connect),
                        quoted(domain)
                    )
                });
            }
        }
    }
    sink.finish()
}

/// What a statement's Condition says of the domain.
enum Limit<'j> {
    /// No `StringEquals` on `iot:DomainName`.
    None,
    /// `StringEquals` on `iot:DomainName` with these values (a non-string value is kept as `""`: never the domain).
    To(Vec<&'j str>),
}

fn domain_condition(condition: Option<&Json>) -> Limit<'_> {
    let Some(Json::Object(operators)) = condition else { return Limit::None };
    for (operator, body) in operators {
        if operator != "StringEquals" {
            continue;
        }
        let Json::Object(keys) = body else { continue };
        for (key, value) in keys {
            if !key.eq_ignore_ascii_case(DOMAIN_NAME_KEY) {
                continue;
            }
            return Limit::To(match value {
                Json::String(v) => vec![v.as_str()],
                Json::Array(items) => {
                    items.iter().map(|v| if let Json::String(v) = v { v.as_str() } else { "" }).collect()
                }
                _ => vec![""],
            });
        }
    }
    Limit::None
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOMAIN: &str = "iot.example.com";

    fn findings(statement: &str) -> Vec<String> {
        let text = format!(r#"{{"Version": "2012-10-17", "Statement": [{statement}]}}"#);
        lint_guard_domain(&Document::parse(&text), DOMAIN).findings.iter().map(|f| f.message.clone()).collect()
    }

    #[test]
    fn connect_must_carry_the_guarded_domain() {
        let resource = r#""Resource": "arn:aws:iot:us-east-1:123456789012:client/t""#;
        let limited = |condition: &str| {
            format!(r#"{{"Effect": "Allow", "Action": "iot:Connect", {resource}, "Condition": {condition}}}"#)
        };
        // Accepted: the domain, or an array of only it; the key in any case.
        for ok in [
            limited(r#"{"StringEquals": {"iot:DomainName": "iot.example.com"}}"#),
            limited(r#"{"StringEquals": {"iot:domainname": ["iot.example.com"]}}"#),
            limited(
                r#"{"StringEquals": {"iot:DomainName": "iot.example.com", "iot:ClientId": "t"}, "Bool": {"x": "true"}}"#,
            ),
            // Not Connect, or a Deny: nothing to say.
            r#"{"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:us-east-1:123456789012:topic/t"}"#
                .to_owned(),
            format!(r#"{{"Effect": "Deny", "Action": "iot:Connect", {resource}}}"#),
        ] {
            assert_eq!(findings(&ok), Vec::<String>::new(), "{ok}");
        }
        // Refused, each naming the statement's action and the domain.
        for (bad, says) in [
            (format!(r#"{{"Effect": "Allow", "Action": "iot:Connect", {resource}}}"#), "every domain"),
            (format!(r#"{{"Effect": "Allow", "Action": ["iot:Publish", "iot:Conn*"], {resource}}}"#), "every domain"),
            (format!(r#"{{"Effect": "Allow", "Action": "IOT:CONNECT", {resource}}}"#), "every domain"),
            (limited(r#"{"StringLike": {"iot:DomainName": "iot.example.com"}}"#), "every domain"),
            (limited(r#"{"StringEquals": {"iot:DomainName": "other.example.com"}}"#), "other.example.com"),
            (
                limited(r#"{"StringEquals": {"iot:DomainName": ["iot.example.com", "x.amazonaws.com"]}}"#),
                "x.amazonaws.com",
            ),
            (limited(r#"{"StringEquals": {"iot:DomainName": []}}"#), "not only"),
            (limited(r#"{"StringEquals": {"iot:DomainName": "IOT.example.com"}}"#), "IOT.example.com"),
            (limited(r#"{"StringEquals": {"iot:DomainName": 5}}"#), "not only"),
        ] {
            let found = findings(&bad);
            assert_eq!(found.len(), 1, "{bad}");
            assert!(found[0].contains(says) && found[0].contains(DOMAIN), "{bad}: {}", found[0]);
        }
    }

    #[test]
    fn a_document_that_does_not_parse_has_no_finding_here() {
        assert!(lint_guard_domain(&Document::parse("not json"), DOMAIN).is_clean());
        assert!(lint_guard_domain(&Document::parse("[]"), DOMAIN).is_clean());
    }
}

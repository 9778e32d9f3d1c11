//! `jitp explain` and `POST /v1/explain`: may this device, or a connection under this policy, do this?
//!
//! Two forms over one evaluator (`jitp_policy_eval`):
//! - a **device**: its CA and certificate go through [`crate::decide::check`], exactly as provisioning decides
//!   them (profile, thing name, attributes, the policy rendered and guarded); the connection is the thing jitp
//!   would create, attached exclusively as jitp attaches it, with the certificate's subject;
//! - any **policy document**, with the connection described field by field ([`Query`]).
//!
//! This module is the only place jitp's decision meets the evaluator, so the CLI and the server share it.

use jitp_policy_eval::{
    Account, Action, Certificate, Context, DnField, Error, Evaluation, Policy, Request, ResourceType, Thing,
};
use serde::{Deserialize, Serialize};

use crate::decide::check;
use crate::rules::Rules;
use jitp_pki::ids::CaCertificateId;
use jitp_pki::reason::{Fault, ReasonCode};
use jitp_policy::policy::AwsContext;

/// What is asked: the action, the resource, and the connection (the device form takes the thing and the
/// certificate from the certificate itself, so it refuses those fields).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    /// `iot:Publish`, `iot:Subscribe`, ... (case-insensitive).
    pub action: String,
    /// The resource ARN. Either this or `topic`.
    #[serde(default)]
    pub resource: Option<String>,
    /// The resource's name in the account (a topic, a topic filter for `iot:Subscribe`, a client id for
    /// `iot:Connect`, a thing name for the shadow and job actions). Default: the client id for `iot:Connect`, the
    /// thing name for the thing actions.
    #[serde(default)]
    pub topic: Option<String>,
    /// The MQTT client id. Default (device form): the thing name.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The thing (policy form).
    #[serde(default)]
    pub thing_name: Option<String>,
    /// The thing is attached to the certificate (policy form).
    #[serde(default)]
    pub thing_attached: bool,
    /// Attached exclusively, as jitp attaches it (policy form; implies attached).
    #[serde(default)]
    pub thing_exclusive: bool,
    /// The thing's type (policy form).
    #[serde(default)]
    pub thing_type: Option<String>,
    /// The thing's attributes, `NAME=VALUE` (policy form).
    #[serde(default)]
    pub thing_attributes: Vec<String>,
    /// The domain configuration's name (`iot:DomainName`).
    #[serde(default)]
    pub domain_name: Option<String>,
    /// Subject attributes as AWS's certificate variables name them, `Organization=Acme` (policy form; repeat a
    /// field for several values).
    #[serde(default)]
    pub subject_fields: Vec<String>,
    /// Issuer attributes, likewise (policy form).
    #[serde(default)]
    pub issuer_fields: Vec<String>,
    /// The certificate id (policy form).
    #[serde(default)]
    pub certificate_id: Option<String>,
    /// The CONNECT's features (`PersistentConnect`, `LastWill`).
    #[serde(default)]
    pub connect_attributes: Option<Vec<String>>,
}

/// The device as provisioning decided it (device form).
#[derive(Debug, Clone, Serialize)]
pub struct DeviceFacts {
    /// The profile that accepted it.
    pub profile: Option<String>,
    /// Its thing name.
    pub thing_name: Option<String>,
    /// Its policy's name.
    pub policy_name: Option<String>,
    /// The certificate id.
    pub certificate_id: Option<String>,
}

/// A device provisioning refuses: it gets no policy, and AWS IoT refuses its connections (its certificate is not
/// ACTIVE), so nothing is allowed.
#[derive(Debug, Clone, Serialize)]
pub struct Refused {
    /// The reason code.
    pub reason: ReasonCode,
    /// Whose fault.
    pub fault: Fault,
    /// Why, for people.
    pub message: String,
}

/// The answer, with what it was asked about.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The action.
    pub action: &'static str,
    /// The resource ARN.
    pub resource: String,
    /// The client id evaluated.
    pub client_id: String,
    /// Decision, deciding statement, variables, what was not modelled.
    #[serde(flatten)]
    pub evaluation: Evaluation,
    /// The device (device form).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceFacts>,
    /// Provisioning refuses the device (device form): the decision is then IMPLICIT_DENY.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refused>,
    /// The policy document evaluated, for showing the deciding statement.
    #[serde(skip)]
    pub policy: Option<Policy>,
}

fn bad(field: &'static str, value: &str, reason: &str) -> Error {
    Error::Request { field, value: value.to_owned(), reason: reason.to_owned() }
}

fn account(aws: &AwsContext) -> Account {
    Account { partition: aws.partition.clone(), region: aws.region.clone(), account_id: aws.account_id.clone() }
}

/// The request: `resource` as given, or `topic` (or the default name) in the account.
fn request(query: &Query, aws: &AwsContext, client_id: &str, thing: Option<&str>) -> Result<Request, Error> {
    let action: Action = query.action.parse()?;
    match (&query.resource, &query.topic) {
        (Some(_), Some(_)) => Err(bad("resource", "", "give the resource ARN or the topic (its name), not both")),
        (Some(arn), None) => Request::new(action, arn),
        (None, Some(name)) => Request::on(action, &account(aws), name),
        (None, None) => match action.resource_type() {
            ResourceType::Client => Request::on(action, &account(aws), client_id),
            ResourceType::Thing if thing.is_some() => Request::on(action, &account(aws), thing.unwrap_or_default()),
            ResourceType::Any => Request::new(action, "*"),
            _ => Err(bad("resource", "", &format!("{action} needs a resource: the ARN, or the topic (its name)"))),
        },
    }
}

fn pairs(field: &'static str, values: &[String]) -> Result<Vec<(String, String)>, Error> {
    values
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(bad(field, kv, "expected NAME=VALUE (the value used exactly as written)")),
        })
        .collect()
}

fn dn(field: &'static str, values: &[String]) -> Result<Vec<(DnField, String)>, Error> {
    pairs(field, values)?.into_iter().map(|(k, v)| Ok((k.parse::<DnField>()?, v))).collect()
}

/// Evaluates `query` against a policy document (the policy form).
pub fn explain_policy(policy_text: &str, query: &Query, aws: &AwsContext) -> Result<Explanation, Error> {
    let policy = Policy::parse(policy_text)?;
    let Some(client_id) = query.client_id.clone() else {
        return Err(bad("client id", "", "the policy form needs the client id the device connects with"));
    };
    let attached = query.thing_attached || query.thing_exclusive;
    let thing = match &query.thing_name {
        Some(name) if attached => Some(Thing {
            name: name.clone(),
            thing_type: query.thing_type.clone(),
            attributes: pairs("thing attribute", &query.thing_attributes)?,
            exclusive: query.thing_exclusive,
        }),
        Some(_) => None,
        None if attached || query.thing_type.is_some() || !query.thing_attributes.is_empty() => {
            return Err(bad("thing name", "", "a thing's type, attributes or attachment need its name"));
        }
        None => None,
    };
    let described =
        !query.subject_fields.is_empty() || !query.issuer_fields.is_empty() || query.certificate_id.is_some();
    let certificate = described
        .then(|| -> Result<Certificate, Error> {
            Ok(Certificate {
                id: query.certificate_id.clone(),
                serial_number: None,
                subject: dn("subject field", &query.subject_fields)?,
                issuer: dn("issuer field", &query.issuer_fields)?,
                subject_fields: None,
                // No issuer field given: the issuer was not described (not "has no attributes").
                issuer_fields: query.issuer_fields.is_empty().then(Vec::new),
            })
        })
        .transpose()?;
    let ctx = Context {
        client_id,
        thing,
        certificate,
        domain_name: query.domain_name.clone(),
        connect_attributes: query.connect_attributes.clone(),
    };
    ctx.validate()?;
    let thing_name = ctx.thing.as_ref().map(|t| t.name.as_str());
    let request = request(query, aws, &ctx.client_id, thing_name)?;
    Ok(answer(policy, request, &ctx, None, None))
}

fn answer(
    policy: Policy,
    request: Request,
    ctx: &Context,
    device: Option<DeviceFacts>,
    refused: Option<Refused>,
) -> Explanation {
    let evaluation = jitp_policy_eval::explain(std::slice::from_ref(&policy), &request, ctx);
    Explanation {
        action: request.action().as_str(),
        resource: request.resource().to_owned(),
        client_id: ctx.client_id.clone(),
        evaluation,
        device,
        refused,
        policy: Some(policy),
    }
}

/// The device's subject as AWS's certificate variables name its fields; jitp reads these six, so the others are
/// "not described", never "absent".
fn subject_of(certificate_pem: &[u8]) -> Option<Certificate> {
    let cert = jitp_pki::cert::Certificate::from_pem(certificate_pem).ok()?;
    let s = cert.subject();
    let fields = [
        (DnField::CommonName, &s.cn),
        (DnField::Organization, &s.o),
        (DnField::OrganizationalUnit, &s.ou),
        (DnField::Country, &s.c),
        (DnField::State, &s.st),
        (DnField::SerialNumber, &s.serial_number),
    ];
    Some(Certificate {
        id: Some(cert.fingerprint_hex()),
        // AWS does not document how it writes iot:Certificate.SerialNumber (hex? decimal?): not described.
        serial_number: None,
        subject: fields.iter().flat_map(|(f, vs)| vs.iter().map(|v| (*f, v.clone()))).collect(),
        issuer: Vec::new(),
        subject_fields: Some(fields.iter().map(|(f, _)| *f).collect()),
        issuer_fields: Some(Vec::new()),
    })
}

/// Evaluates `query` for the device `certificate_pem` issued by `ca_pem`, with the policy provisioning would give
/// it (the device form).
#[allow(clippy::too_many_arguments)] // check()'s inputs and the query
pub fn explain_device(
    rules: &Rules,
    ca_pem: &[u8],
    certificate_pem: &[u8],
    ca_id: Option<&CaCertificateId>,
    now: i64,
    aws: &AwsContext,
    query: &Query,
) -> Result<Explanation, Error> {
    let from_certificate = [
        ("thing name", query.thing_name.is_some()),
        ("thing type", query.thing_type.is_some()),
        ("thing attribute", !query.thing_attributes.is_empty()),
        ("thing attached", query.thing_attached || query.thing_exclusive),
        ("subject field", !query.subject_fields.is_empty()),
        ("issuer field", !query.issuer_fields.is_empty()),
        ("certificate id", query.certificate_id.is_some()),
    ];
    if let Some((field, _)) = from_certificate.iter().find(|(_, given)| *given) {
        return Err(bad(field, "", "comes from the certificate and the configuration in the device form"));
    }
    let report = check(rules, ca_pem, certificate_pem, ca_id, now, aws);
    let device = DeviceFacts {
        profile: report.profile.clone(),
        thing_name: report.thing_name.clone(),
        policy_name: report.policy_name.clone(),
        certificate_id: report.certificate_id.clone(),
    };
    let client_id = query.client_id.clone().or_else(|| report.thing_name.clone()).unwrap_or_default();
    let (Some(policy), Some(thing_name)) = (&report.policy, &report.thing_name) else {
        // Refused: no policy; the answer is still asked for the request, which must be well formed.
        let ctx = Context::new(if client_id.is_empty() { "-".to_owned() } else { client_id });
        let request = request(query, aws, &ctx.client_id, None)?;
        let empty = Policy::parse(r#"{"Version": "2012-10-17", "Statement": []}"#)?;
        let refused = report.reason.map(|reason| Refused {
            reason,
            fault: report.fault.unwrap_or(Fault::None),
            message: report.message.clone(),
        });
        return Ok(answer(empty, request, &ctx, Some(device), refused));
    };
    let mut attributes: Vec<(String, String)> =
        report.attributes.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    if let Some(id) = &report.certificate_id {
        attributes.push((jitp_registry::thing::CERTIFICATE_ATTRIBUTE.to_owned(), id.clone()));
    }
    let ctx = Context {
        client_id,
        thing: Some(Thing {
            name: thing_name.clone(),
            thing_type: report.thing_type.clone(),
            attributes,
            exclusive: true,
        }),
        certificate: subject_of(certificate_pem),
        domain_name: query.domain_name.clone(),
        connect_attributes: query.connect_attributes.clone(),
    };
    ctx.validate()?;
    let request = request(query, aws, &ctx.client_id, Some(thing_name))?;
    let policy = Policy::parse(&policy.to_string())?;
    Ok(answer(policy, request, &ctx, Some(device), None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jitp_policy_eval::Decision;

    const POLICY: &str = r#"{"Version": "2012-10-17", "Statement": [
        {"Sid": "Own", "Effect": "Allow", "Action": "iot:Publish",
         "Resource": "arn:aws:iot:us-east-1:123456789012:topic/things/${iot:Connection.Thing.ThingName}/*"},
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:us-east-1:123456789012:client/*",
         "Condition": {"StringEquals": {"iot:Certificate.Subject.Organization": "Acme"}}}]}"#;

    fn query(action: &str) -> Query {
        Query { action: action.into(), client_id: Some("s-1".into()), ..Query::default() }
    }

    #[test]
    fn the_policy_form_describes_the_connection_field_by_field() {
        let aws = AwsContext::default();
        let mut q = query("iot:Publish");
        q.topic = Some("things/s-1/x".into());
        q.thing_name = Some("s-1".into());
        q.thing_attached = true;
        let e = explain_policy(POLICY, &q, &aws).map(|e| e.evaluation.decision);
        assert_eq!(e, Ok(Decision::Allowed));
        q.thing_attached = false;
        let e = explain_policy(POLICY, &q, &aws).map(|e| e.evaluation.decision);
        assert_eq!(e, Ok(Decision::ImplicitDeny), "an unattached thing's variables do not resolve");

        let mut q = query("iot:Connect");
        let e = explain_policy(POLICY, &q, &aws).map(|e| e.evaluation.decision);
        assert_eq!(e, Ok(Decision::NotModelled), "the subject was not described");
        q.subject_fields = vec!["Organization=Acme".into()];
        let e = explain_policy(POLICY, &q, &aws).map(|e| e.evaluation.decision);
        assert_eq!(e, Ok(Decision::Allowed));
        q.subject_fields = vec!["CommonName=x".into()];
        let e = explain_policy(POLICY, &q, &aws).map(|e| e.evaluation.decision);
        assert_eq!(e, Ok(Decision::ImplicitDeny), "a described subject without O has no O");
    }

    #[test]
    fn malformed_queries_are_errors_naming_the_field() {
        let aws = AwsContext::default();
        for (q, field) in [
            (Query { action: "iot:Publish".into(), ..Query::default() }, "client id"),
            (Query { subject_fields: vec!["Org=Acme".into()], ..query("iot:Connect") }, "subject field"),
            (Query { subject_fields: vec!["Acme".into()], ..query("iot:Connect") }, "subject field"),
            (Query { thing_attached: true, ..query("iot:Connect") }, "thing name"),
            (query("iot:Publish"), "resource"),
            (Query { topic: Some("a/+".into()), ..query("iot:Publish") }, "resource"),
            (Query { client_id: Some(String::new()), ..query("iot:Connect") }, "client id"),
        ] {
            match explain_policy(POLICY, &q, &aws) {
                Err(Error::Request { field: f, .. }) => assert_eq!(f, field, "{q:?}"),
                other => panic!("{q:?}: {other:?}"),
            }
        }
        assert!(matches!(explain_policy(POLICY, &query("iot:Pub"), &aws), Err(Error::UnknownAction(_))));
    }
}

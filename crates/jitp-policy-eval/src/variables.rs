//! Policy variables and condition keys: which names this evaluator models, and what each resolves to for a
//! connection.
//!
//! A name resolves to a value, to several (`.List`, `iot:ConnectAttributes`), to nothing (AWS IoT leaves the
//! variable unsubstituted: the thing is not attached, the certificate has no such field), or to "unknown": a name
//! this evaluator does not model, a value the connection's description lacks, or a case where AWS's documentation
//! allows two readings that give different answers. Unknown is never answered ALLOWED.

use crate::context::{Context, DnField};

/// Which value of a multi-valued certificate attribute a variable names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Select {
    /// `iot:Certificate.Subject.Organization`: the first value.
    First,
    /// `...Organization.1`: AWS calls the index one-based, and gives `.1` as the second value (see README).
    Index(u32),
    /// `...Organization.List`: every value (at most five).
    List,
}

/// A policy variable (`${...}`) or condition key, parsed once when the policy is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Variable {
    ClientId,
    DomainName,
    CertificateId,
    CertificateSerialNumber,
    ThingName,
    ThingTypeName,
    ThingAttribute(String),
    ThingIsAttached,
    Dn {
        issuer: bool,
        field: DnField,
        select: Select,
    },
    /// `iot:ConnectAttributes` (a condition key only).
    ConnectAttributes,
    /// A name AWS may know and this evaluator does not model: never answered ALLOWED.
    Unmodelled(String),
}

/// What a variable resolves to for one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolution<'a> {
    One(&'a str),
    Many(Vec<&'a str>),
    /// AWS IoT leaves the variable unsubstituted (and a condition on the key finds it absent); the reason.
    Absent(String),
    /// The evaluator cannot say; the reason.
    Unknown(String),
}

/// AWS IoT substitutes no certificate value containing one of these ("X.509 Certificate policy variable
/// limitations: Wildcards").
const CERT_WILDCARDS: [char; 5] = ['*', '$', '+', '?', '#'];
/// AWS IoT substitutes no certificate value longer than this ("String length").
const CERT_MAX_CHARS: usize = 1024;
/// AWS IoT reads at most five values of a multi-valued attribute ("Array fields").
const CERT_MAX_VALUES: usize = 5;
/// AWS says these "must be prefixed with a backslash when used in a policy variable"; what a value carrying one
/// is then compared with is not documented, so it is never answered ("Special Characters").
const CERT_ESCAPED: [char; 7] = [',', '"', '\\', '=', '<', '>', ';'];

const THING_ATTRIBUTES: &str = "iot:Connection.Thing.Attributes[";

impl Variable {
    /// Parses a variable or condition key name exactly as AWS documents it. A name that is one of those but for
    /// letter case is unmodelled: whether AWS IoT reads it the same is not documented.
    pub(crate) fn parse(name: &str) -> Variable {
        if let Some(v) = Variable::parse_exact(name) {
            return v;
        }
        let lower = name.to_ascii_lowercase();
        let known_prefixes = [
            "iot:clientid",
            "iot:domainname",
            "iot:certificateid",
            "iot:certificate.",
            "iot:connection.thing.",
            "iot:connectattributes",
        ];
        if known_prefixes.iter().any(|p| lower.starts_with(p)) {
            return Variable::Unmodelled(format!(
                "{name:?} is not spelt as AWS documents its variables (letter case, index or field); whether AWS IoT \
                 reads it is not documented"
            ));
        }
        Variable::Unmodelled(format!("{name:?} is not a policy variable or condition key this evaluator models"))
    }

    fn parse_exact(name: &str) -> Option<Variable> {
        Some(match name {
            "iot:ClientId" => Variable::ClientId,
            "iot:DomainName" => Variable::DomainName,
            "iot:CertificateId" => Variable::CertificateId,
            "iot:Certificate.SerialNumber" => Variable::CertificateSerialNumber,
            "iot:Connection.Thing.ThingName" => Variable::ThingName,
            "iot:Connection.Thing.ThingTypeName" => Variable::ThingTypeName,
            "iot:Connection.Thing.IsAttached" => Variable::ThingIsAttached,
            "iot:ConnectAttributes" => Variable::ConnectAttributes,
            _ => {
                if let Some(rest) = name.strip_prefix(THING_ATTRIBUTES) {
                    let attribute = rest.strip_suffix(']')?;
                    if attribute.is_empty() || attribute.contains(['[', ']']) {
                        return None;
                    }
                    return Some(Variable::ThingAttribute(attribute.to_owned()));
                }
                let (issuer, rest) = if let Some(rest) = name.strip_prefix("iot:Certificate.Subject.") {
                    (false, rest)
                } else {
                    (true, name.strip_prefix("iot:Certificate.Issuer.")?)
                };
                let (field, select) = match rest.split_once('.') {
                    None => (rest, Select::First),
                    Some((field, "List")) => (field, Select::List),
                    Some((field, index)) => {
                        // Digits only: "+1" or "01" are not what AWS writes.
                        if index.is_empty()
                            || !index.bytes().all(|b| b.is_ascii_digit())
                            || index.starts_with('0') && index.len() > 1
                        {
                            return None;
                        }
                        (field, Select::Index(index.parse().ok()?))
                    }
                };
                Variable::Dn { issuer, field: DnField::from_name(field)?, select }
            }
        })
    }

    /// Resolves the variable for a connection.
    pub(crate) fn resolve<'a>(&'a self, ctx: &'a Context) -> Resolution<'a> {
        match self {
            Variable::ClientId => Resolution::One(&ctx.client_id),
            Variable::DomainName => match &ctx.domain_name {
                Some(d) => Resolution::One(d),
                None => Resolution::Unknown("the domain name the client connected to was not given".to_owned()),
            },
            Variable::CertificateId => match ctx.certificate.as_ref().and_then(|c| c.id.as_deref()) {
                Some(id) => Resolution::One(id),
                None => Resolution::Unknown("the certificate id was not given".to_owned()),
            },
            Variable::CertificateSerialNumber => {
                match ctx.certificate.as_ref().and_then(|c| c.serial_number.as_deref()) {
                    Some(serial) => Resolution::One(serial),
                    None => Resolution::Unknown("the certificate's serial number was not given".to_owned()),
                }
            }
            Variable::ThingName | Variable::ThingTypeName | Variable::ThingAttribute(_) => {
                let Some(thing) = ctx.policy_thing() else {
                    return Resolution::Absent(no_thing_reason(ctx));
                };
                match self {
                    Variable::ThingName => Resolution::One(&thing.name),
                    Variable::ThingTypeName => match &thing.thing_type {
                        Some(t) => Resolution::One(t),
                        None => Resolution::Absent(format!("the thing {:?} has no thing type", thing.name)),
                    },
                    Variable::ThingAttribute(name) => match thing.attributes.iter().find(|(n, _)| n == name) {
                        Some((_, value)) => Resolution::One(value),
                        None => Resolution::Absent(format!("the thing {:?} has no attribute {name:?}", thing.name)),
                    },
                    _ => Resolution::Unknown("unreachable".to_owned()),
                }
            }
            Variable::ThingIsAttached => Resolution::One(if ctx.policy_thing().is_some() { "true" } else { "false" }),
            Variable::Dn { issuer, field, select } => resolve_dn(ctx, *issuer, *field, *select),
            Variable::ConnectAttributes => match &ctx.connect_attributes {
                Some(features) => Resolution::Many(features.iter().map(String::as_str).collect()),
                None => Resolution::Unknown("the CONNECT's features (iot:ConnectAttributes) were not given".to_owned()),
            },
            Variable::Unmodelled(why) => Resolution::Unknown(why.clone()),
        }
    }
}

fn no_thing_reason(ctx: &Context) -> String {
    match &ctx.thing {
        None => "no thing is attached to the certificate".to_owned(),
        Some(thing) => format!(
            "the thing {:?} is attached non-exclusively and the client id {:?} is not its name",
            thing.name, ctx.client_id
        ),
    }
}

fn resolve_dn<'a>(ctx: &'a Context, issuer: bool, field: DnField, select: Select) -> Resolution<'a> {
    let Some(cert) = &ctx.certificate else {
        return Resolution::Unknown("the certificate's subject and issuer were not given".to_owned());
    };
    let side = if issuer { &cert.issuer } else { &cert.subject };
    let which = if issuer { "issuer" } else { "subject" };
    let described = if issuer { &cert.issuer_fields } else { &cert.subject_fields };
    if described.as_ref().is_some_and(|fields| !fields.contains(&field)) {
        return Resolution::Unknown(format!("the certificate's {which} {} was not given", field.as_str()));
    }
    let values: Vec<&'a str> =
        side.iter().filter(|(f, _)| *f == field).map(|(_, v)| v.as_str()).take(CERT_MAX_VALUES).collect();
    let one = |value: Option<&&'a str>| -> Resolution<'a> {
        match value {
            None => Resolution::Absent(format!("the certificate's {which} has no such {} value", field.as_str())),
            Some(v) => checked(v),
        }
    };
    match select {
        Select::First => one(values.first()),
        Select::Index(n) => {
            // AWS: "a one-based index. For example, iot:Certificate.Subject.Country.1 is replaced by the second
            // country name". Both readings are tried; where they differ the answer is not known.
            let as_example = values.get(n as usize);
            let one_based = (n as usize).checked_sub(1).and_then(|i| values.get(i));
            if as_example == one_based {
                one(as_example)
            } else {
                Resolution::Unknown(format!(
                    "AWS documents .{n} both as one-based and as the value after the first; for this certificate the \
                     two readings differ"
                ))
            }
        }
        Select::List => {
            for v in &values {
                if let Resolution::Absent(why) | Resolution::Unknown(why) = checked(v) {
                    return Resolution::Unknown(format!("a {} value: {why}", field.as_str()));
                }
            }
            Resolution::Many(values)
        }
    }
}

/// A certificate value as AWS IoT substitutes it, or why it does not.
fn checked(value: &str) -> Resolution<'_> {
    if value.contains(CERT_WILDCARDS) {
        Resolution::Absent(format!(
            "the value {:?} contains one of * $ + ? #, which AWS IoT does not substitute",
            crate::error::shorten(value)
        ))
    } else if value.chars().count() > CERT_MAX_CHARS {
        Resolution::Absent(format!("the value is longer than AWS IoT's {CERT_MAX_CHARS} characters"))
    } else if value.contains(CERT_ESCAPED) {
        Resolution::Unknown(format!(
            "the value {:?} contains a character AWS IoT escapes with a backslash (, \" \\ = < > ;); what it is then \
             compared with is not documented",
            crate::error::shorten(value)
        ))
    } else {
        Resolution::One(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Certificate, Thing};

    fn ctx_with_subject(subject: Vec<(DnField, &str)>) -> Context {
        Context {
            client_id: "c".into(),
            certificate: Some(Certificate {
                subject: subject.into_iter().map(|(f, v)| (f, v.to_owned())).collect(),
                ..Certificate::default()
            }),
            ..Context::default()
        }
    }

    #[test]
    fn names_parse_exactly_and_other_spellings_are_unmodelled() {
        assert_eq!(Variable::parse("iot:ClientId"), Variable::ClientId);
        assert_eq!(Variable::parse("iot:Connection.Thing.Attributes[site]"), Variable::ThingAttribute("site".into()));
        assert_eq!(
            Variable::parse("iot:Certificate.Subject.Organization.List"),
            Variable::Dn { issuer: false, field: DnField::Organization, select: Select::List }
        );
        assert_eq!(
            Variable::parse("iot:Certificate.Issuer.CommonName.2"),
            Variable::Dn { issuer: true, field: DnField::CommonName, select: Select::Index(2) }
        );
        for other in [
            "iot:clientid",
            "iot:Thing.ThingName", // in AWS's own examples, undocumented
            "iot:Certificate.Subject.Locality",
            "iot:Certificate.Subject.CommonName.01",
            "iot:Connection.Thing.Attributes[]",
            "aws:SourceIp",
            "iot:Certificate.Subject.AlternativeName.DNSName",
        ] {
            assert!(matches!(Variable::parse(other), Variable::Unmodelled(_)), "{other}");
        }
    }

    #[test]
    fn thing_variables_resolve_only_for_an_exclusive_thing_or_the_client_ids_thing() {
        let mut ctx = Context::new("sensor-1");
        ctx.thing = Some(Thing { name: "sensor-1".into(), ..Thing::default() });
        assert_eq!(Variable::ThingName.resolve(&ctx), Resolution::One("sensor-1"));
        ctx.client_id = "other".into();
        assert!(matches!(Variable::ThingName.resolve(&ctx), Resolution::Absent(_)));
        assert_eq!(Variable::ThingIsAttached.resolve(&ctx), Resolution::One("false"));
        if let Some(t) = ctx.thing.as_mut() {
            t.exclusive = true;
        }
        assert_eq!(Variable::ThingName.resolve(&ctx), Resolution::One("sensor-1"));
        assert_eq!(Variable::ThingIsAttached.resolve(&ctx), Resolution::One("true"));
    }

    #[test]
    fn certificate_values_follow_awss_limitations() {
        let first = Variable::parse("iot:Certificate.Subject.OrganizationalUnit");
        let ctx = ctx_with_subject(vec![(DnField::OrganizationalUnit, "a"), (DnField::OrganizationalUnit, "b")]);
        assert_eq!(first.resolve(&ctx), Resolution::One("a"));
        // .1 is "b" by AWS's example and "a" one-based: not answered.
        assert!(matches!(
            Variable::parse("iot:Certificate.Subject.OrganizationalUnit.1").resolve(&ctx),
            Resolution::Unknown(_)
        ));
        // .5 is absent both ways.
        assert!(matches!(
            Variable::parse("iot:Certificate.Subject.OrganizationalUnit.5").resolve(&ctx),
            Resolution::Absent(_)
        ));
        for wild in ["a*", "a+b", "#", "$x", "?"] {
            let ctx = ctx_with_subject(vec![(DnField::OrganizationalUnit, wild)]);
            assert!(matches!(first.resolve(&ctx), Resolution::Absent(_)), "{wild}");
        }
        let ctx = ctx_with_subject(vec![(DnField::OrganizationalUnit, "Acme, Inc.")]);
        assert!(matches!(first.resolve(&ctx), Resolution::Unknown(_)));
        let long = "x".repeat(1025);
        let ctx = ctx_with_subject(vec![(DnField::OrganizationalUnit, long.as_str())]);
        assert!(matches!(first.resolve(&ctx), Resolution::Absent(_)));
        let six: Vec<_> = ["1", "2", "3", "4", "5", "6"].iter().map(|v| (DnField::OrganizationalUnit, *v)).collect();
        let ctx = ctx_with_subject(six);
        assert_eq!(
            Variable::parse("iot:Certificate.Subject.OrganizationalUnit.List").resolve(&ctx),
            Resolution::Many(vec!["1", "2", "3", "4", "5"])
        );
    }

    #[test]
    fn an_undescribed_certificate_is_unknown_not_absent() {
        let ctx = Context::new("c");
        assert!(matches!(Variable::parse("iot:Certificate.Subject.CommonName").resolve(&ctx), Resolution::Unknown(_)));
        assert!(matches!(Variable::DomainName.resolve(&ctx), Resolution::Unknown(_)));
    }
}

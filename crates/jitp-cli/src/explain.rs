//! `jitp explain`: may a device, or a connection under a policy document, do this? Exit 0 allowed, 1 denied (or
//! not answerable offline: NOT_MODELLED), 2 usage or configuration error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use jitp_core::explain::{Explanation, Query, explain_device, explain_policy};
use jitp_pki::cert::MAX_PEM_BYTES;
use jitp_pki::ids::CaCertificateId;
use jitp_pki::unix_time::now;

use crate::common::{Format, Source, parse_time, read_bounded};

/// AWS IoT's limit on a policy document (2048 characters without whitespace); a file much larger than that is
/// not a policy.
const MAX_POLICY_FILE_BYTES: usize = 64 * 1024;

#[derive(Debug, Args)]
pub(crate) struct ExplainArgs {
    /// A policy document to evaluate (instead of a device's: --ca and --cert).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["ca", "cert", "ca_id", "at"], required_unless_present = "cert")]
    policy: Option<PathBuf>,
    /// The registered CA certificate (PEM): the device's policy is rendered exactly as provisioning would.
    #[arg(long, requires = "cert")]
    ca: Option<PathBuf>,
    /// The device certificate (PEM).
    #[arg(long, requires = "ca")]
    cert: Option<PathBuf>,
    /// The CA's id in AWS IoT (default: SHA-256 of its DER).
    #[arg(long)]
    ca_id: Option<CaCertificateId>,
    /// Decide the device as of this time (RFC 3339; default: now).
    #[arg(long, value_parser = parse_time)]
    at: Option<i64>,
    /// The action: iot:Connect, iot:Publish, iot:Subscribe, iot:Receive, iot:RetainPublish, shadow and job actions.
    #[arg(long)]
    action: String,
    /// The resource's name in the account: a topic (a topic filter for iot:Subscribe), a client id, a thing name.
    #[arg(long, conflicts_with = "resource")]
    topic: Option<String>,
    /// The resource ARN (arn:aws:iot:REGION:ACCOUNT:topic/...).
    #[arg(long)]
    resource: Option<String>,
    /// The MQTT client id (device form default: the thing name).
    #[arg(long, required_unless_present = "cert")]
    client_id: Option<String>,
    /// The thing the certificate is attached to (policy form).
    #[arg(long, conflicts_with = "cert")]
    thing_name: Option<String>,
    /// The thing is attached to the certificate (non-exclusively: its variables resolve when the client id is its
    /// name).
    #[arg(long, requires = "thing_name")]
    thing_attached: bool,
    /// The thing is attached exclusively, as jitp attaches it (its variables resolve whatever the client id).
    #[arg(long, requires = "thing_name")]
    thing_exclusive: bool,
    /// The thing's type.
    #[arg(long, requires = "thing_name")]
    thing_type: Option<String>,
    /// A thing attribute, NAME=VALUE; repeat for several.
    #[arg(long = "thing-attribute", value_name = "NAME=VALUE", requires = "thing_name")]
    thing_attributes: Vec<String>,
    /// The domain configuration's name (iot:DomainName).
    #[arg(long)]
    domain_name: Option<String>,
    /// A subject attribute as AWS's certificate variables name it (Organization=Acme, CommonName=...); repeat for
    /// several, and a field for several values.
    #[arg(long = "subject-field", value_name = "FIELD=VALUE", conflicts_with = "cert")]
    subject_fields: Vec<String>,
    /// An issuer attribute, likewise.
    #[arg(long = "issuer-field", value_name = "FIELD=VALUE", conflicts_with = "cert")]
    issuer_fields: Vec<String>,
    /// The certificate id (iot:CertificateId; policy form).
    #[arg(long, conflicts_with = "cert")]
    certificate_id: Option<String>,
    /// A feature of the CONNECT (iot:ConnectAttributes): PersistentConnect, LastWill; repeat for several.
    #[arg(long = "connect-attribute", value_name = "FEATURE")]
    connect_attributes: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    source: Source,
}

impl ExplainArgs {
    fn query(&self) -> Query {
        Query {
            action: self.action.clone(),
            resource: self.resource.clone(),
            topic: self.topic.clone(),
            client_id: self.client_id.clone(),
            thing_name: self.thing_name.clone(),
            thing_attached: self.thing_attached,
            thing_exclusive: self.thing_exclusive,
            thing_type: self.thing_type.clone(),
            thing_attributes: self.thing_attributes.clone(),
            domain_name: self.domain_name.clone(),
            subject_fields: self.subject_fields.clone(),
            issuer_fields: self.issuer_fields.clone(),
            certificate_id: self.certificate_id.clone(),
            connect_attributes: (!self.connect_attributes.is_empty()).then(|| self.connect_attributes.clone()),
        }
    }
}

pub(crate) async fn run(args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let aws = args.source.aws.context();
    let query = args.query();
    let explanation = match (&args.policy, &args.ca, &args.cert) {
        (Some(path), _, _) => {
            let bytes = read_bounded(path, MAX_POLICY_FILE_BYTES)?;
            if bytes.len() > MAX_POLICY_FILE_BYTES {
                anyhow::bail!("{}: larger than {MAX_POLICY_FILE_BYTES} bytes, not a policy document", path.display());
            }
            let text = String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{}: not UTF-8", path.display()))?;
            explain_policy(&text, &query, &aws).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        (None, Some(ca), Some(cert)) => {
            let rules = args.source.load().await?;
            let ca = read_bounded(ca, MAX_PEM_BYTES)?;
            let cert = read_bounded(cert, MAX_PEM_BYTES)?;
            let at = args.at.unwrap_or_else(now);
            explain_device(&rules, &ca, &cert, args.ca_id.as_ref(), at, &aws, &query)?
        }
        _ => anyhow::bail!("give --policy FILE, or --ca and --cert (with --config)"),
    };
    match args.format {
        Format::Json => outln!("{}", serde_json::to_string(&explanation)?),
        Format::Text => print_text(&explanation),
    }
    Ok(if explanation.evaluation.is_allowed() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn print_text(e: &Explanation) {
    outln!("{}  {} {}", e.evaluation.decision, e.action, e.resource);
    outln!("  client id       {}", e.client_id);
    if let Some(device) = &e.device {
        let line = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                outln!("  {k:<15} {v}");
            }
        };
        line("profile", &device.profile);
        line("thing name", &device.thing_name);
        line("policy name", &device.policy_name);
    }
    if let Some(refused) = &e.refused {
        outln!(
            "  refused         {}: {} (no policy: AWS IoT refuses the device's connections)",
            refused.reason,
            refused.message
        );
    }
    if let Some(s) = &e.evaluation.statement {
        let statement = e.policy.as_ref().and_then(|p| p.statements().get(s.statement));
        let sid = s.sid.as_deref().map(|sid| format!(" {sid:?}")).unwrap_or_default();
        outln!("  statement       #{}{sid} ({:?})", s.statement, s.effect);
        if let Some(statement) = statement {
            outln!("                  {}", statement.text());
        }
    }
    if e.evaluation.decision == jitp_policy_eval::Decision::NotModelled && e.evaluation.denied_either_way {
        outln!("  (denied either way: no Allow statement could match)");
    }
    for v in &e.evaluation.variables {
        let value = match &v.value {
            jitp_policy_eval::VariableValue::Value(v) => format!("= {v:?}"),
            jitp_policy_eval::VariableValue::Values(vs) => format!("= {vs:?}"),
            jitp_policy_eval::VariableValue::Unresolved(why) => format!("unresolved: {why}"),
            jitp_policy_eval::VariableValue::NotModelled(why) => format!("not modelled: {why}"),
        };
        outln!("  variable        {} {value}", v.name);
    }
    for u in &e.evaluation.unmodelled {
        let sid = u.statement.sid.as_deref().map(|sid| format!(" {sid:?}")).unwrap_or_default();
        for reason in &u.reasons {
            outln!("  not modelled    statement #{}{sid} ({:?}): {reason}", u.statement.statement, u.statement.effect);
        }
    }
}

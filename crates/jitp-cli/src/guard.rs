//! `jitp guard`: the connect guard's decision offline, for operators and tests: what the guard Lambda would
//! answer for a device certificate connecting with the CA `--ca` registered (and ACTIVE) in AWS IoT.
//!
//! The same code path as the Lambda ([`jitp_guard::decide`], the certificate parsed as an element of AWS's
//! `clientCertificateChain`). Exit 0 allow, 1 deny, 2 a usage or configuration error (jitp.toml, an S3 CRL that
//! cannot be fetched, a CA file that is not a certificate).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use jitp_guard::judge::{CaCertificateId, CaDescription, CaStatus, Certificate, Config, MAX_PEM_BYTES};
use jitp_guard::{CaSet, Decision, decide};
use serde_json::json;

use crate::common::{Format, Source, parse_time, read_bounded};

#[derive(Debug, Args)]
pub(crate) struct GuardArgs {
    /// The CA certificate registered (ACTIVE) in AWS IoT (PEM).
    #[arg(long)]
    ca: PathBuf,
    /// The device certificate the client presents (PEM, or base64 DER as AWS's event may carry it).
    #[arg(long)]
    cert: PathBuf,
    /// Decide as of this time (RFC 3339; default: now).
    #[arg(long, value_parser = parse_time)]
    at: Option<i64>,
    /// Output format: json prints {"decision": "allow" | "deny", "reason": CODE or null, "message": ...}.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    source: Source,
}

pub(crate) async fn run(args: &GuardArgs) -> anyhow::Result<ExitCode> {
    // The profiles alone, as the guard Lambda loads them: a template is not the guard's business.
    let config: Config = args.source.load().await?;
    let ca_pem = read_bounded(&args.ca, MAX_PEM_BYTES)?;
    let ca = match Certificate::from_pem(&ca_pem) {
        Ok(ca) => ca,
        Err(why) => bail!("--ca {}: {}", args.ca.display(), why.message),
    };
    let pem = String::from_utf8(ca_pem).with_context(|| format!("--ca {}: not PEM text", args.ca.display()))?;
    let described =
        CaDescription { id: CaCertificateId::of_der(ca.der()), pem, status: CaStatus::Active, auto_registration: true };
    let cas = CaSet::new(&config, vec![described]);
    let cert = read_bounded(&args.cert, MAX_PEM_BYTES)?;
    let now = args.at.unwrap_or_else(jitp_pki::unix_time::now);
    let decision = match String::from_utf8(cert) {
        Ok(text) => match jitp_guard::event::parse(&json!({ "clientCertificateChain": [text] })) {
            Ok(event) => decide(&config, &cas, &event.device, now),
            Err(rejection) => Decision::refused(rejection),
        },
        Err(_) => Decision::refused(jitp_guard::judge::Rejection::new(
            jitp_guard::judge::ReasonCode::MalformedCertificate,
            "the certificate file is not PEM text (it is not UTF-8)",
        )),
    };
    match args.format {
        Format::Json => {
            outln!("{}", json!({"decision": decision.decision, "reason": decision.reason, "message": decision.message}))
        }
        Format::Text => match decision.reason {
            None => outln!("ALLOW  {}", decision.message),
            Some(reason) => outln!("DENY   {reason}: {}", decision.message),
        },
    }
    Ok(if decision.allowed() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

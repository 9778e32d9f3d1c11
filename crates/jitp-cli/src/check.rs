//! `jitp check` and `jitp render`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use jitp_core::decide::{CheckReport, check};
use jitp_pki::cert::MAX_PEM_BYTES;
use jitp_pki::ids::CaCertificateId;
use jitp_pki::reason::Fault;

use jitp_pki::unix_time::now;

use crate::common::{Format, Source, parse_time, read_bounded};

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The registered CA certificate (PEM).
    #[arg(long)]
    ca: PathBuf,
    /// The device certificate (PEM).
    #[arg(long)]
    cert: PathBuf,
    /// The CA's id in AWS IoT (default: SHA-256 of its DER, as AWS IoT computes it).
    #[arg(long)]
    ca_id: Option<CaCertificateId>,
    /// Decide as of this time (RFC 3339; default: now).
    #[arg(long, value_parser = parse_time)]
    at: Option<i64>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    source: Source,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Mode {
    Check,
    Render,
}

pub(crate) async fn run(args: &CheckArgs, mode: Mode) -> anyhow::Result<ExitCode> {
    let config = args.source.load().await?;
    let aws = args.source.aws.context();
    let ca = read_bounded(&args.ca, MAX_PEM_BYTES)?;
    let cert = read_bounded(&args.cert, MAX_PEM_BYTES)?;
    let report = check(&config, &ca, &cert, args.ca_id.as_ref(), args.at.unwrap_or_else(now), &aws);
    match (mode, args.format) {
        (Mode::Check, Format::Json) => outln!("{}", serde_json::to_string(&report)?),
        (Mode::Check, Format::Text) => print_text(&report),
        (Mode::Render, _) => match &report.policy {
            Some(policy) => outln!("{}", serde_json::to_string_pretty(policy)?),
            None => eprintln!("jitp: rejected: {} {}", report.reason.map(|r| r.as_str()).unwrap_or(""), report.message),
        },
    }
    Ok(if report.accepted() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn print_text(r: &CheckReport) {
    match r.reason {
        None => outln!("ACCEPT  {}", r.message),
        Some(reason) => outln!("REJECT  {reason}: {}", r.message),
    }
    let line = |k: &str, v: Option<&str>| {
        if let Some(v) = v {
            outln!("  {k:<15} {v}");
        }
    };
    line(
        "fault",
        r.fault.map(|fault| match fault {
            Fault::Device => "device: no configuration accepts it (the profile's on_reject applies)",
            Fault::Profile => "profile: its own rules refuse it; a configuration change could accept it (held)",
            Fault::Operator => "operator: the setup stops it (held until fixed)",
            Fault::None => "none",
        }),
    );
    line("profile", r.profile.as_deref());
    line("thing name", r.thing_name.as_deref());
    line("policy name", r.policy_name.as_deref());
    line("certificate id", r.certificate_id.as_deref());
    line("CA id", r.ca_id.as_deref());
    line("thing type", r.thing_type.as_deref());
    for (k, v) in &r.attributes {
        outln!("  attribute       {k} = {v}");
    }
    for c in &r.crls {
        outln!("  crl             {}: {} ({} revoked, next update {})", c.file, c.status, c.revoked, c.next_update);
    }
    for w in &r.warnings {
        outln!("  warning         [{}] {}", w.rule, w.message);
    }
    if let Some(policy) = &r.policy {
        outln!("  policy:");
        for l in serde_json::to_string_pretty(policy).unwrap_or_default().lines() {
            outln!("    {l}");
        }
    }
}

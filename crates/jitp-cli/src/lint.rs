//! `jitp lint`.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use jitp_core::review::{LintReport, crl_reports, lint_templates};
use jitp_pki::unix_time::now;
use jitp_profile::profile::{CrlPolicy, CrlSource};

use crate::common::{Format, Source, parse_time};

#[derive(Debug, Args)]
pub(crate) struct LintArgs {
    /// Judge the CRLs' freshness (nextUpdate) as of this time (RFC 3339; default: now).
    #[arg(long, value_parser = parse_time)]
    at: Option<i64>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    source: Source,
}

pub(crate) async fn run(args: &LintArgs) -> anyhow::Result<ExitCode> {
    let config = args.source.load().await?;
    let report = LintReport::new(
        lint_templates(&config, &args.source.aws.context()),
        crl_reports(&config, args.at.unwrap_or_else(now)),
    );
    let failed = !report.ok;
    if args.format == Format::Json {
        outln!("{}", serde_json::to_string(&report)?);
    } else {
        let dir = config.config().path.parent().map(|d| d.display().to_string()).unwrap_or_default();
        for r in &report.templates {
            let file = if dir.is_empty() { r.template.clone() } else { format!("{dir}/{}", r.template) };
            if let Some(e) = &r.error {
                outln!("{file}: error: {}: {} (profile {})", e.reason, e.message, r.profile);
            }
            for f in &r.findings {
                let at = f.line.map(|l| format!("{file}:{l}")).unwrap_or_else(|| file.clone());
                let sev = format!("{:?}", f.finding.severity).to_lowercase();
                outln!("{at}: {sev}[{}]: {} (profile {})", f.finding.rule, f.finding.message, r.profile);
                outln!("    hint: {}", f.finding.hint);
            }
            for b in &r.branches {
                let path = if dir.is_empty() { b.file.clone() } else { format!("{dir}/{}", b.file) };
                let at = b.line.map(|l| format!("{path}:{l}")).unwrap_or(path);
                outln!("{at}: error[branch]: {}: {} (profile {})", b.reason, b.message, r.profile);
                if !b.subject.is_empty() {
                    outln!("    subject: {}", b.subject);
                }
            }
            for t in &r.policy_tests {
                let path = if t.file == jitp_core::policy_tests::BUILT_IN || dir.is_empty() {
                    t.file.clone()
                } else {
                    format!("{dir}/{}", t.file)
                };
                let at = t.line.map(|l| format!("{path}:{l}")).unwrap_or(path);
                let expectation = if t.expectation.is_empty() { String::new() } else { format!("{}: ", t.expectation) };
                outln!("{at}: error[policy-test]: {expectation}{} (profile {})", t.message, r.profile);
                if let Some(line) = t.template_line {
                    outln!("    statement: {file}:{line}");
                }
                if !t.subject.is_empty() {
                    outln!("    subject: {}", t.subject);
                }
            }
            if !r.has_errors() && r.findings.is_empty() {
                outln!(
                    "{file}: ok (profile {}, policy {}, {} synthetic subjects, {} policy-test checks)",
                    r.profile,
                    r.policy_name.as_deref().unwrap_or("?"),
                    r.subjects,
                    r.policy_checks
                );
            }
        }
        for c in &report.crls {
            // An S3 CRL is named by its URI; a file by its path beside jitp.toml.
            let s3 = matches!(CrlSource::parse(&c.file, Path::new("")), Ok(CrlSource::S3(_)));
            let file = if dir.is_empty() || s3 { c.file.clone() } else { format!("{dir}/{}", c.file) };
            let what = format!(
                "CRL of {}, {} revoked, issued {}, next update {} (profile {}; its signature is checked against the \
                 registered CA when the CA is loaded)",
                c.issuer, c.revoked, c.this_update, c.next_update, c.profile
            );
            let enforce = c.policy == CrlPolicy::Enforce;
            match (c.stale, enforce) {
                (false, _) if c.has_errors() => outln!("{file}: {what}"),
                (false, _) => outln!("{file}: ok: {what}"),
                (true, true) => outln!(
                    "{file}: error[crl]: stale, past its nextUpdate: the profile's devices are held (crl_policy = \
                     \"enforce\"): {what}"
                ),
                (true, false) => {
                    outln!("{file}: warning[crl]: stale, past its nextUpdate: ignored (crl_policy = \"warn\"): {what}")
                }
            }
            outln!("    covers: {}", c.scope);
            if let Some(deltas) = &c.freshest_crl {
                let (severity, effect) = if c.has_errors() {
                    ("error", "the devices it covers are held (crl_policy = \"enforce\")")
                } else {
                    ("warning", "used without them (crl_policy = \"warn\")")
                };
                outln!(
                    "{file}: {severity}[crl-delta]: it advertises delta CRLs (freshestCRL: {deltas}) that jitp does \
                     not read, so revocations after its thisUpdate may be missing: {effect}; publish full CRLs \
                     without delta CRLs"
                );
            }
            if c.on_hold > 0 {
                outln!(
                    "{file}: note[crl-hold]: {} certificate(s) on hold (certificateHold): held pending, never \
                     revoked, until the CA lifts the hold",
                    c.on_hold
                );
            }
            if c.removed_from_crl > 0 {
                outln!(
                    "{file}: warning[crl-remove]: {} removeFromCRL entr(ies), which RFC 5280 allows only in delta \
                     CRLs: read as not revoked",
                    c.removed_from_crl
                );
            }
        }
        outln!("{}", if failed { "lint failed" } else { "lint passed" });
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

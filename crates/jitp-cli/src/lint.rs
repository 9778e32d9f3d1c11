//! `jitp lint`.

use std::process::ExitCode;

use clap::Args;
use jitp_core::review::lint_templates;

use jitp_wiring::{AwsArgs, ConfigArgs};

use crate::common::Format;

#[derive(Debug, Args)]
pub(crate) struct LintArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    aws: AwsArgs,
}

pub(crate) fn run(args: &LintArgs) -> anyhow::Result<ExitCode> {
    let config = args.config.load()?;
    let reports = lint_templates(&config, &args.aws.context());
    let failed = reports.iter().any(|r| r.has_errors());
    if args.format == Format::Json {
        println!("{}", serde_json::to_string(&serde_json::json!({ "ok": !failed, "templates": reports }))?);
    } else {
        let dir = config.config().path.parent().map(|d| d.display().to_string()).unwrap_or_default();
        for r in &reports {
            let file = if dir.is_empty() { r.template.clone() } else { format!("{dir}/{}", r.template) };
            if let Some(e) = &r.error {
                println!("{file}: error: {}: {} (profile {})", e.reason, e.message, r.profile);
            }
            for f in &r.findings {
                let at = f.line.map(|l| format!("{file}:{l}")).unwrap_or_else(|| file.clone());
                let sev = format!("{:?}", f.finding.severity).to_lowercase();
                println!("{at}: {sev}[{}]: {} (profile {})", f.finding.rule, f.finding.message, r.profile);
                println!("    hint: {}", f.finding.hint);
            }
            for b in &r.branches {
                let path = if dir.is_empty() { b.file.clone() } else { format!("{dir}/{}", b.file) };
                let at = b.line.map(|l| format!("{path}:{l}")).unwrap_or(path);
                println!("{at}: error[branch]: {}: {} (profile {})", b.reason, b.message, r.profile);
                if !b.subject.is_empty() {
                    println!("    subject: {}", b.subject);
                }
            }
            if !r.has_errors() && r.findings.is_empty() {
                println!(
                    "{file}: ok (profile {}, policy {}, {} synthetic subjects)",
                    r.profile,
                    r.policy_name.as_deref().unwrap_or("?"),
                    r.subjects
                );
            }
        }
        println!("{}", if failed { "lint failed" } else { "lint passed" });
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

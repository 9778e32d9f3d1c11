//! `jitp reconcile`: what today's configuration would change on the devices jitp already provisioned
//! (`jitp_core::reconcile`). `--plan` (the default) only reads; `--apply` is not there yet.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use jitp_core::reconcile::{Change, Group, Plan, Reconciler};
use jitp_core::unix_time::now;
use jitp_wiring::{RegistryArg, Settings};

use crate::common::{Format, parse_time};

/// Distinct groups the text output shows per section; `--format json` lists them all.
const SHOWN: usize = 20;

#[derive(Debug, Args)]
pub(crate) struct ReconcileArgs {
    /// Show what today's configuration would change, and change nothing (the default, and for now the only mode).
    #[arg(long)]
    plan: bool,
    /// Apply the plan (not yet: run --plan).
    #[arg(long, conflicts_with = "plan")]
    apply: bool,
    /// Output format: text for a person, json for scripts (its shape is documented in the README).
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Decide at this time instead of now (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    at: Option<i64>,
    #[command(flatten)]
    settings: Settings,
}

/// Exit status: 0 no drift, 2 drift found (any group but unchanged), 1 an error (the plan could not be made, or
/// is incomplete: some devices could not be looked at).
pub(crate) async fn run(args: &ReconcileArgs) -> ExitCode {
    match plan(args).await {
        Ok(plan) => {
            match args.format {
                Format::Json => println!("{}", serde_json::to_string(&plan).unwrap_or_default()),
                Format::Text => print!("{}", text(&plan)),
            }
            if !plan.errors.is_empty() {
                ExitCode::from(1)
            } else if plan.drift {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("jitp: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn plan(args: &ReconcileArgs) -> anyhow::Result<Plan> {
    if args.apply {
        anyhow::bail!(
            "jitp reconcile --apply is not yet: run jitp reconcile --plan to see what today's configuration would change"
        );
    }
    let settings = &args.settings;
    let choice = settings.registry_or(RegistryArg::Aws);
    match &choice {
        RegistryArg::Memory(None) => {
            anyhow::bail!("--registry memory is empty: plan over aws, or over a file (memory:PATH)")
        }
        RegistryArg::Memory(Some(path)) if !path.exists() => {
            anyhow::bail!("--registry memory:{}: no such file, nothing to plan over", path.display())
        }
        _ => {}
    }
    let rules = Arc::new(settings.config.load()?);
    let opened =
        jitp_wiring::registry::open(&choice, settings.endpoint_url.as_deref(), settings.aws.region.as_deref()).await?;
    let workflow = settings.workflow(settings.aws_context(&opened, None));
    let reconciler = Reconciler::new(rules, opened.registry.clone(), workflow);
    // Read-only: the registry is never saved.
    Ok(reconciler.plan(args.at.unwrap_or_else(now)).await?)
}

fn devices(n: u64) -> String {
    if n == 1 { "1 device".to_owned() } else { format!("{n} devices") }
}

fn examples<K>(group: &Group<K>) -> String {
    let mut out = devices(group.devices);
    if !group.examples.is_empty() {
        let _ = write!(out, ", e.g. {}", group.examples.join(", "));
    }
    out
}

fn shown(v: &Option<String>) -> String {
    v.as_ref().map_or_else(|| "(none)".to_owned(), |s| format!("{s:?}"))
}

fn change(c: &Change) -> String {
    format!("{} -> {}", shown(&c.from), shown(&c.to))
}

fn more(out: &mut String, total: usize) {
    if total > SHOWN {
        let _ = writeln!(out, "  ... and {} more distinct groups (--format json lists them all)", total - SHOWN);
    }
}

/// The plan for a person reading 100,000 devices: counts per group, each distinct change once.
fn text(plan: &Plan) -> String {
    let c = &plan.counts;
    let mut out = String::new();
    let _ = writeln!(out, "jitp reconcile --plan: {} at {} with {}", devices(c.devices), plan.at, plan.config);
    for (name, n, distinct) in [
        ("unchanged", c.unchanged, None),
        ("policy changes", c.policy_changes, Some(plan.policy_changes.len())),
        ("thing changes", c.thing_changes, Some(plan.thing_changes.len())),
        ("would reject", c.would_reject, Some(plan.would_reject.len())),
        ("retired", c.retired, None),
        ("unaccounted", c.unaccounted, None),
        ("errors", c.errors, None),
    ] {
        let _ = write!(out, "  {name:<15} {n:>8}");
        if let Some(d) = distinct.filter(|_| n > 0) {
            let _ = write!(out, "  ({d} distinct)");
        }
        out.push('\n');
    }
    if !plan.policy_changes.is_empty() {
        out.push_str("\nPolicy changes (statements; the device's own thing name is written {{ thing_name }}):\n");
        for group in plan.policy_changes.iter().take(SHOWN) {
            let _ = writeln!(out, "  {}", examples(group));
            if group.change.missing {
                out.push_str("    (no policy of that name exists: every statement is added)\n");
            }
            for s in &group.change.removed {
                let _ = writeln!(out, "    - {s}");
            }
            for s in &group.change.added {
                let _ = writeln!(out, "    + {s}");
            }
        }
        more(&mut out, plan.policy_changes.len());
    }
    if !plan.thing_changes.is_empty() {
        out.push_str("\nThing changes:\n");
        for group in plan.thing_changes.iter().take(SHOWN) {
            let _ = writeln!(out, "  {}", examples(group));
            if let Some(c) = &group.change.name {
                let _ = writeln!(out, "    thing name: {}", change(c));
            }
            if let Some(c) = &group.change.thing_type {
                let _ = writeln!(out, "    thing type: {}", change(c));
            }
            for (name, c) in &group.change.attributes {
                let _ = writeln!(out, "    attribute {name}: {}", change(c));
            }
        }
        more(&mut out, plan.thing_changes.len());
    }
    if !plan.would_reject.is_empty() {
        out.push_str("\nWould reject (ACTIVE certificates today's configuration refuses):\n");
        for group in &plan.would_reject {
            let _ = writeln!(out, "  {}: {}", group.change.reason, examples(group));
            let _ = writeln!(out, "    {}", group.change.message);
        }
    }
    for (title, groups) in [
        (
            "Retired (INACTIVE or REVOKED certificates, left alone)",
            plan.retired.iter().map(|g| (g.change.status.to_string(), examples(g))).collect::<Vec<_>>(),
        ),
        (
            "Unaccounted (things with jitp_certificate that jitp cannot account for)",
            plan.unaccounted
                .iter()
                .map(|g| {
                    (
                        serde_json::to_value(g.change.why)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default(),
                        examples(g),
                    )
                })
                .collect(),
        ),
    ] {
        if !groups.is_empty() {
            let _ = writeln!(out, "\n{title}:");
            for (key, line) in groups {
                let _ = writeln!(out, "  {key}: {line}");
            }
        }
    }
    if !plan.errors.is_empty() {
        out.push_str("\nErrors (these devices could not be looked at; the plan is incomplete):\n");
        for e in plan.errors.iter().take(SHOWN) {
            let _ = writeln!(out, "  {}: {}", e.thing, e.message);
        }
        if plan.errors.len() > SHOWN {
            let _ = writeln!(out, "  ... and {} more (--format json lists them all)", plan.errors.len() - SHOWN);
        }
    }
    let total: u32 = plan.calls.values().sum();
    let calls: Vec<String> = plan.calls.iter().map(|(op, n)| format!("{op} {n}")).collect();
    let _ = writeln!(out, "\n{total} calls: {}", calls.join(", "));
    out.push_str(if plan.drift { "Drift found.\n" } else { "No drift.\n" });
    out
}

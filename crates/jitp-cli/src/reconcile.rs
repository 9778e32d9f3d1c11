//! `jitp reconcile`: what today's configuration would change on the devices jitp already provisioned
//! (`jitp_core::reconcile`). `--plan` (the default) only reads; `--apply` makes it so (`--canary N`, `--revoke`),
//! `--rollback` undoes its policy changes (`jitp_core::reconcile::apply`).

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use jitp_core::audit::ReconcileRecord;
use jitp_core::reconcile::apply::{Applied, Mode, Options};
use jitp_core::reconcile::{Change, Group, Plan, PolicyDiff, Reconciler};
use jitp_pki::unix_time::now;
use jitp_wiring::{RegistryArg, Settings};

use crate::common::{Format, parse_time};

/// Distinct groups the text output shows per section; `--format json` lists them all.
const SHOWN: usize = 20;

#[derive(Debug, Args)]
pub(crate) struct ReconcileArgs {
    /// Show what today's configuration would change, and change nothing (the default).
    #[arg(long)]
    plan: bool,
    /// Make the plan so: policies' new default versions, things updated (compare-and-set); would-reject devices
    /// are reported (see --revoke). Re-run to continue after a failure: the plan is the resume point.
    #[arg(long, conflicts_with = "plan")]
    apply: bool,
    /// Set the default policy version back to the one before today's document, for the devices at it.
    #[arg(long, conflicts_with_all = ["plan", "apply"])]
    rollback: bool,
    /// With --apply: give the would-reject devices whose rejection is the device's fault (CERT_DENIED,
    /// CERT_REVOKED, CERT_EXPIRED...) their profile's on_reject. An operator's fault is never acted on.
    #[arg(long, requires = "apply")]
    revoke: bool,
    /// With --apply or --rollback: act on the first N devices (by thing name) that have something to change.
    #[arg(long, value_name = "N")]
    canary: Option<usize>,
    /// With --apply or --rollback: only the things in this thing group (a shared policy, which reaches devices
    /// outside it, is reported, not changed).
    #[arg(long, value_name = "GROUP")]
    thing_group: Option<String>,
    /// Output format: text for a person, json for scripts (its shape is documented in the README).
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Decide at this time instead of now (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    at: Option<i64>,
    #[command(flatten)]
    settings: Settings,
}

/// Exit status, as `jitp check`'s (0 the good answer, 1 the other one, 2 trouble): 0 no drift, 1 drift found
/// (any group but unchanged), 2 an error (the plan could not be made, or is incomplete: some devices could not be
/// looked at), like a usage error.
pub(crate) async fn run(args: &ReconcileArgs) -> ExitCode {
    if args.apply || args.rollback {
        return apply(args).await;
    }
    if args.canary.is_some() || args.thing_group.is_some() {
        eprintln!("jitp: --canary and --thing-group go with --apply or --rollback");
        return ExitCode::from(2);
    }
    match plan(args).await {
        Ok(plan) => {
            match args.format {
                Format::Json => outln!("{}", serde_json::to_string(&plan).unwrap_or_default()),
                Format::Text => out!("{}", text(&plan)),
            }
            if !plan.errors.is_empty() {
                ExitCode::from(2)
            } else if plan.drift {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("jitp: {}", jitp_pki::report::chain(e.as_ref()));
            ExitCode::from(2)
        }
    }
}

/// `--apply` / `--rollback`. Exit status: 0 everything converged, 2 an error (some devices failed: they are
/// listed; re-run to continue). Each change's audit line (`eventType` `jitp.reconcile`) goes to standard error
/// as it is made, the summary to standard output.
async fn apply(args: &ReconcileArgs) -> ExitCode {
    match applied(args).await {
        Ok(applied) => {
            match args.format {
                Format::Json => outln!("{}", serde_json::to_string(&applied).unwrap_or_default()),
                Format::Text => out!("{}", applied_text(&applied)),
            }
            if applied.converged { ExitCode::SUCCESS } else { ExitCode::from(2) }
        }
        Err(e) => {
            eprintln!("jitp: {}", jitp_pki::report::chain(e.as_ref()));
            ExitCode::from(2)
        }
    }
}

async fn applied(args: &ReconcileArgs) -> anyhow::Result<Applied> {
    let (reconciler, opened) = reconciler(args).await?;
    let options = Options {
        mode: if args.rollback { Mode::Rollback } else { Mode::Apply },
        revoke: args.revoke,
        canary: args.canary,
        thing_group: args.thing_group.as_deref(),
    };
    let audit = |record: &ReconcileRecord| eprintln!("{}", record.line("cli"));
    let applied = reconciler.apply(args.at.unwrap_or_else(now), options, &audit).await;
    // What was done is kept, even when the run stopped early.
    opened.save()?;
    Ok(applied?)
}

async fn plan(args: &ReconcileArgs) -> anyhow::Result<Plan> {
    let (reconciler, _) = reconciler(args).await?;
    // Read-only: the registry is never saved.
    Ok(reconciler.plan(args.at.unwrap_or_else(now)).await?)
}

async fn reconciler(args: &ReconcileArgs) -> anyhow::Result<(Reconciler, jitp_wiring::registry::Opened)> {
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
    let opened =
        jitp_wiring::registry::open(&choice, settings.endpoint.endpoint_url.as_deref(), settings.aws.region.as_deref())
            .await?;
    // S3 CRLs are fetched once (over aws): a plan or an apply decides on the CRLs of its start.
    let (rules, _) = settings.load_rules(&settings.config.path(None, None), &opened).await?;
    let rules = Arc::new(rules);
    let workflow = settings.workflow(settings.aws_context(&opened, None));
    let reconciler = Reconciler::new(rules, opened.registry.clone(), workflow);
    Ok((reconciler, opened))
}

/// What an apply or a rollback did, for a person: counts, then each kind of change once per policy or reason.
fn applied_text(applied: &Applied) -> String {
    let c = &applied.counts;
    let mode = match applied.mode {
        Mode::Apply => "--apply",
        Mode::Rollback => "--rollback",
    };
    let mut out = String::new();
    let _ = writeln!(out, "jitp reconcile {mode}: {} at {} with {}", devices(c.devices), applied.at, applied.config);
    for (name, n) in [
        ("changed", c.changed),
        ("policy versions", c.policies),
        ("things updated", c.things),
        ("certificates", c.certificates),
        ("unchanged", c.unchanged),
        ("reported", c.reported),
        ("deferred", c.deferred),
        ("errors", c.errors),
    ] {
        let _ = writeln!(out, "  {name:<15} {n:>8}");
    }
    if !applied.changes.is_empty() {
        out.push_str("\nChanges (each also an audit line on standard error):\n");
        for r in applied.changes.iter().take(SHOWN) {
            let _ = writeln!(out, "  {}", r.message);
        }
        if applied.changes.len() > SHOWN {
            let _ = writeln!(out, "  ... and {} more (--format json lists them all)", applied.changes.len() - SHOWN);
        }
    }
    if !applied.reported.is_empty() {
        out.push_str("\nReported, left as they were:\n");
        for r in applied.reported.iter().take(SHOWN) {
            let reason = r.reason.map(|r| format!("{r}: ")).unwrap_or_default();
            let _ = writeln!(out, "  {}: {reason}{}", r.thing, r.message);
        }
        if applied.reported.len() > SHOWN {
            let _ = writeln!(out, "  ... and {} more (--format json lists them all)", applied.reported.len() - SHOWN);
        }
    }
    if !applied.errors.is_empty() {
        out.push_str("\nErrors (these devices were not converged; re-run to continue):\n");
        for e in applied.errors.iter().take(SHOWN) {
            let _ = writeln!(out, "  {}: {}", e.thing, e.message);
        }
        if applied.errors.len() > SHOWN {
            let _ = writeln!(out, "  ... and {} more (--format json lists them all)", applied.errors.len() - SHOWN);
        }
    }
    if c.deferred > 0 {
        let _ = writeln!(out, "\n{} left by --canary: run again without it to continue.", devices(c.deferred));
    }
    let total: u32 = applied.calls.values().sum();
    let calls: Vec<String> = applied.calls.iter().map(|(op, n)| format!("{op} {n}")).collect();
    let _ = writeln!(out, "\n{total} calls: {}", calls.join(", "));
    out.push_str(if applied.converged { "Converged.\n" } else { "Not converged: re-run to continue.\n" });
    out
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

/// What a policy change means, next to its statements: the requests the group's devices gain and lose.
fn access(out: &mut String, group: &Group<PolicyDiff>) {
    let a = &group.change.access;
    let n = devices(group.devices);
    if let Some(why) = &a.unreadable {
        let _ = writeln!(out, "    access: not computed ({why})");
    }
    let one = group.devices == 1;
    for (verb, list) in [(if one { "gains" } else { "gain" }, &a.gained), (if one { "loses" } else { "lose" }, &a.lost)]
    {
        for request in list {
            let _ = writeln!(out, "    {n} {verb} {request}");
        }
    }
    for request in &a.not_modelled {
        let _ = writeln!(out, "    {n}: {request} cannot be answered offline (jitp explain says why)");
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
        ("orphaned", c.orphaned, None),
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
            access(&mut out, group);
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
        (
            "Orphaned (ACTIVE certificates with a jitp policy that no thing jitp made names; --apply --revoke deactivates them)",
            plan.orphaned.iter().map(|g| (g.change.policies.join(", "), examples(g))).collect(),
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

//! `jitp`: the command line of the jitp provisioning service. A dispatcher over the library crates: it parses,
//! sets up what the subcommand needs (tracing, a runtime) and calls it.

/// `print!` to standard output that ends the process quietly when standard output is closed
/// (`jitp check ... | head`): see [`write_stdout`].
macro_rules! out {
    ($($arg:tt)*) => { $crate::write_stdout(format_args!($($arg)*), false) };
}

/// `println!`, ending the process quietly when standard output is closed: see [`write_stdout`].
macro_rules! outln {
    () => { $crate::write_stdout(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::write_stdout(format_args!($($arg)*), true) };
}

mod check;
mod common;
mod demo;
mod explain;
mod guard;
mod handover;
mod lint;
mod provision;
mod reconcile;
#[cfg(feature = "server")]
mod serve;

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};
use jitp_wiring::log::{Target, init_tracing};

/// Just-in-time provisioning for AWS IoT Core.
#[derive(Debug, Parser)]
#[command(name = "jitp", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decide offline whether a device certificate would be provisioned, and as what.
    Check(check::CheckArgs),
    /// Print only the policy document a device certificate would get.
    Render(check::CheckArgs),
    /// May this device (or a connection under this policy) connect, publish, subscribe, receive? Evaluates the
    /// policy offline with AWS IoT's semantics. Exit 0 allowed, 1 denied or not answerable offline, 2 an error.
    Explain(Box<explain::ExplainArgs>),
    /// Render every profile's template for a synthetic device and lint it.
    Lint(lint::LintArgs),
    /// Run one certificate-registered event through the workflow and print its audit record.
    Provision(provision::ProvisionArgs),
    /// Register a CA and a device certificate in the embedded registry, as AWS IoT does on first connection.
    Register(provision::RegisterArgs),
    /// Show what today's configuration would change on the devices already provisioned (--plan; read-only).
    /// Exit 0 no drift, 1 drift found, 2 an error (as `jitp check`: 0 the good answer, 1 the other, 2 trouble).
    Reconcile(reconcile::ReconcileArgs),
    /// Hand a thing to a certificate by the operator's decision (a name held by a retired or foreign owner, a
    /// rotation rolled back): compare-and-set on the thing, audited.
    Handover(handover::HandoverArgs),
    /// Decide offline what the connect guard would answer for a device certificate (allow or deny, with the
    /// reason code). Exit 0 allow, 1 deny, 2 a usage or configuration error.
    Guard(guard::GuardArgs),
    /// Provision a fleet of generated devices (and some bad ones) offline, and summarise.
    Demo(demo::DemoArgs),
    /// Run the HTTP server: event intake (IoT rule HTTP action), previews, lint, health, metrics.
    #[cfg(feature = "server")]
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match jitp_wiring::parse::setting_error(&e, &Cli::command()) {
            // A bad value: name its variable too, since it may have come from there.
            Some(explained) => {
                eprintln!("jitp: {explained}");
                return ExitCode::from(2);
            }
            // Help, version, an unknown flag: clap's own output and status (2 for usage errors).
            None => e.exit(),
        },
    };
    let rust_log = std::env::var("RUST_LOG").ok();
    let log = |target| init_tracing(rust_log.as_deref(), None, target);
    let result = match cli.command {
        Command::Check(args) => runtime().and_then(|rt| rt.block_on(check::run(&args, check::Mode::Check))),
        Command::Render(args) => runtime().and_then(|rt| rt.block_on(check::run(&args, check::Mode::Render))),
        Command::Lint(args) => runtime().and_then(|rt| rt.block_on(lint::run(&args))),
        Command::Explain(args) => runtime().and_then(|rt| rt.block_on(explain::run(&args))),
        Command::Provision(args) => {
            // Standard output is the audit record; the log goes to standard error.
            log(Target::Stderr);
            runtime().and_then(|rt| rt.block_on(provision::run(&args)))
        }
        Command::Handover(args) => {
            log(Target::Stderr);
            runtime().and_then(|rt| rt.block_on(handover::run(&args)))
        }
        Command::Register(args) => runtime().and_then(|rt| rt.block_on(provision::register(&args))),
        Command::Reconcile(args) => {
            // Standard output is the plan; the log goes to standard error.
            log(Target::Stderr);
            // No runtime is an error (2), not "drift found" (1).
            runtime().map(|rt| rt.block_on(reconcile::run(&args)))
        }
        Command::Guard(args) => runtime().and_then(|rt| rt.block_on(guard::run(&args))),
        Command::Demo(args) => runtime().and_then(|rt| rt.block_on(demo::run(&args))),
        #[cfg(feature = "server")]
        Command::Serve(args) => {
            log(Target::Stdout);
            runtime().and_then(|rt| rt.block_on(serve::run(&args)))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("jitp: {}", jitp_pki::report::chain(e.as_ref()));
            ExitCode::from(2)
        }
    }
}

/// Standard output's status when a reader closed it (`| head`): 128 + SIGPIPE, what a shell reports for a tool
/// SIGPIPE ended, so `set -o pipefail` scripts see the same as for other tools.
const CLOSED_PIPE_STATUS: i32 = 141;

/// Write `args` (and a newline) to standard output. Rust ignores SIGPIPE, so a closed pipe is an error on the
/// write, on which `println!` panics ("failed printing to stdout"): here the command ends at once, quietly,
/// with [`CLOSED_PIPE_STATUS`]; any other write error ends it with a one-line message and status 2.
fn write_stdout(args: std::fmt::Arguments<'_>, newline: bool) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| if newline { out.write_all(b"\n") } else { Ok(()) });
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(CLOSED_PIPE_STATUS),
        Err(e) => {
            eprintln!("jitp: cannot write to standard output: {e}");
            std::process::exit(2);
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

//! `jitp serve`: the HTTP server (event intake, previews, lint, health, metrics).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use jitp_core::rules::Rules;
use jitp_server::{AppState, Intake, Options};
use jitp_wiring::crl::CrlRefresh;
use jitp_wiring::{RegistryArg, Settings};

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    settings: Settings,
    /// Address to listen on.
    #[arg(long, env = "JITP_LISTEN", value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The intake secret POST /v1/events (and, unless --public-previews, the previews) need in x-jitp-token:
    /// 16 to 1024 printable characters. Prefer the variable: a flag's value shows in the process list.
    #[arg(long, env = "JITP_HTTP_TOKEN", value_name = "SECRET", hide_env_values = true)]
    http_token: Option<String>,
    /// Serve previews, lint, health and metrics only: no POST /v1/events, no JITP_HTTP_TOKEN needed.
    #[arg(long, env = "JITP_NO_INTAKE", value_parser = jitp_wiring::switch)]
    no_intake: bool,
    /// Serve POST /v1/preview and GET /v1/lint without the intake secret. They show the account's policies, so
    /// by default, with intake on, they need x-jitp-token like POST /v1/events. (Without intake they are open.)
    #[arg(long, env = "JITP_PUBLIC_PREVIEWS", value_parser = jitp_wiring::switch)]
    public_previews: bool,
    /// Seconds a /v1 request may take before a 503, 1 to 900; keep it above the retry deadline.
    #[arg(long, env = "JITP_REQUEST_TIMEOUT_SECS", value_name = "SECS", default_value_t = 30, value_parser = jitp_wiring::count_in(1, 900))]
    request_timeout: usize,
    /// /v1 requests handled at once, 1 to 4096; beyond, 503.
    #[arg(long, env = "JITP_MAX_CONCURRENCY", value_name = "N", default_value_t = 64, value_parser = jitp_wiring::count_in(1, 4096))]
    max_concurrency: usize,
}

pub(crate) async fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let settings = &args.settings;
    // Everything that can be wrong with the setup fails here, before the first request.
    let intake = Intake::new(args.no_intake, args.http_token.as_deref())?;
    let opened = settings.open_registry(RegistryArg::Aws).await?;
    // The S3 CRLs are fetched here: one that cannot be fetched or parsed fails the start, as in the Lambda.
    let (rules, crls) = settings.load_rules(&settings.config.path(None, None), &opened).await?;
    let workflow = settings.workflow(settings.aws_context(&opened, None));
    let state = AppState::new(Arc::new(rules), opened.registry.clone(), workflow, intake).with_options(Options {
        request_timeout: Duration::from_secs(args.request_timeout as u64),
        max_concurrency: args.max_concurrency,
        public_previews: args.public_previews,
        ..Options::default()
    });
    let refresher = (!crls.objects().is_empty()).then(|| tokio::spawn(refresh_crls(state.clone(), crls)));
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(listen = %listener.local_addr()?, registry = %opened.description, "jitp serve: listening");
    let served = jitp_server::serve(listener, state, jitp_server::shutdown_signal()).await;
    if let Some(task) = refresher {
        task.abort();
    }
    served?;
    opened.save()?;
    Ok(ExitCode::SUCCESS)
}

/// Fetch the S3 CRLs again every `JITP_CRL_REFRESH_SECONDS` and swap the new rules in whole.
///
/// Unlike the Lambda, which checks the TTL at the start of each invocation because a frozen sandbox runs no
/// timer, a server process keeps running between requests: a background task on an interval of the TTL keeps
/// the CRLs current even when no event comes in (`GET /v1/lint` and the previews then show the CRL in force),
/// and no request ever waits for a GetObject. One task, so one refresh at a time; requests go on deciding on
/// the snapshot they loaded while it runs. A failure keeps the last good rules (logged once per failure
/// streak by [`CrlRefresh`]); new rules a cached CA does not verify are refused the same way.
async fn refresh_crls(state: AppState, crls: CrlRefresh) {
    let every = crls.every();
    // The load just fetched them: the first refresh is one period from now. The ticks' own instants are
    // passed (exactly a period apart), so a late tick never makes the next one look early and skip it.
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let at = ticks.tick().await.into_std();
        let current = state.rules();
        let accept = |rules: Arc<Rules>| state.replace_rules(rules).map_err(|e| e.to_string());
        crls.refresh_with(&*current, at, accept).await;
    }
}

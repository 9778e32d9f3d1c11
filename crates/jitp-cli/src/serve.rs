//! `jitp serve`: the HTTP server (event intake, previews, lint, health, metrics).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use jitp_core::provision::Settings;
use jitp_server::{AppState, Intake, Options};

use crate::common::{AwsArgs, ConfigArgs};
use crate::registry::{RegistryArg, open};

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where the things live: aws, memory or memory:PATH.
    #[arg(long, default_value = "aws")]
    registry: RegistryArg,
    /// AWS IoT endpoint override (an emulator), for --registry aws.
    #[arg(long, env = "JITP_AWS_ENDPOINT_URL")]
    endpoint_url: Option<String>,
    /// Serve previews, lint, health and metrics only: no POST /v1/events, no JITP_HTTP_TOKEN needed.
    #[arg(long)]
    no_intake: bool,
    /// Serve POST /v1/preview and GET /v1/lint without the intake secret. They show the account's policies, so
    /// by default, with intake on, they need x-jitp-token like POST /v1/events. (Without intake they are open.)
    #[arg(long)]
    public_previews: bool,
    /// Seconds a /v1 request may take before a 503.
    #[arg(long, default_value_t = 30)]
    request_timeout: u64,
    /// /v1 requests handled at once; beyond, 503.
    #[arg(long, default_value_t = 64)]
    max_concurrency: usize,
    #[command(flatten)]
    aws: AwsArgs,
}

pub(crate) async fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    // Everything that can be wrong with the setup fails here, before the first request.
    let intake = Intake::from_env(args.no_intake)?;
    let config = Arc::new(args.config.load()?);
    let opened = open(&args.registry, args.endpoint_url.clone()).await?;
    let settings = Settings { aws: args.aws.context()?, ..Settings::default() };
    let state = AppState::new(config, opened.registry.clone(), settings, intake).with_options(Options {
        request_timeout: Duration::from_secs(args.request_timeout),
        max_concurrency: args.max_concurrency,
        public_previews: args.public_previews,
        ..Options::default()
    });
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(listen = %listener.local_addr()?, "jitp serve: listening");
    jitp_server::serve(listener, state, jitp_server::shutdown_signal()).await?;
    opened.save()?;
    Ok(ExitCode::SUCCESS)
}

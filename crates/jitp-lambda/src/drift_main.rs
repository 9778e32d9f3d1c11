//! `jitp-drift`: the scheduled drift report's Lambda function. Wiring only: the environment is read here, the
//! logic is in the library (`jitp_lambda::drift`).

use std::path::PathBuf;
use std::process::ExitCode;

use jitp_lambda::drift::{self, DriftSettings};

#[tokio::main]
async fn main() -> ExitCode {
    let var = |name: &str| std::env::var(name).ok();
    jitp_wiring::lambda::run(var("RUST_LOG").as_deref(), var("AWS_LAMBDA_LOG_LEVEL").as_deref(), init()).await
}

async fn init() -> Result<drift::DriftHandler, jitp_wiring::Error> {
    // No arguments: Lambda runs the binary bare, and the environment is the configuration.
    let settings: DriftSettings = jitp_wiring::parse::from_vars(["jitp-drift"], std::env::vars_os())?;
    let task_root = std::env::var_os("LAMBDA_TASK_ROOT").map(PathBuf::from);
    let exe = std::env::current_exe().ok();
    let config_path = settings.common.config.path(task_root.as_deref(), exe.as_deref());
    let handler = drift::build(&settings, &config_path).await?;
    tracing::info!(
        config = %config_path.display(),
        profiles = handler.rules().config().profiles.len(),
        s3_crls = handler.crl_refresh().objects().len(),
        registry = %settings.common.registry_or(jitp_wiring::RegistryArg::Aws),
        namespace = %settings.metric_namespace,
        stack = %settings.stack,
        "jitp-drift ready"
    );
    Ok(handler)
}

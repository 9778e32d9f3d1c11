//! `bootstrap`: the jitp Lambda function. Wiring only: the environment is read here, the logic is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use jitp_lambda::LambdaSettings;

#[tokio::main]
async fn main() -> ExitCode {
    let var = |name: &str| std::env::var(name).ok();
    jitp_wiring::lambda::run(var("RUST_LOG").as_deref(), var("AWS_LAMBDA_LOG_LEVEL").as_deref(), init()).await
}

async fn init() -> Result<jitp_lambda::Handler, jitp_wiring::Error> {
    // No arguments: Lambda runs `bootstrap` bare, and the environment is the configuration.
    let settings: LambdaSettings = jitp_wiring::parse::from_vars(["jitp-lambda"], std::env::vars_os())?;
    let task_root = std::env::var_os("LAMBDA_TASK_ROOT").map(PathBuf::from);
    let exe = std::env::current_exe().ok();
    let config_path = settings.common.config.path(task_root.as_deref(), exe.as_deref());
    let handler = jitp_lambda::build(&settings, &config_path).await?;
    tracing::info!(
        config = %config_path.display(),
        profiles = handler.rules().config().profiles.len(),
        s3_crls = handler.crl_refresh().objects().len(),
        registry = %settings.common.registry_or(jitp_wiring::RegistryArg::Aws),
        sqs_concurrency = settings.sqs_concurrency,
        "jitp-lambda ready"
    );
    Ok(handler)
}

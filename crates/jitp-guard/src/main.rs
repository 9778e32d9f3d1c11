//! `bootstrap`: the jitp connect guard. Wiring only: the environment is read here, the logic is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use jitp_guard::GuardSettings;

#[tokio::main]
async fn main() -> ExitCode {
    let var = |name: &str| std::env::var(name).ok();
    // A failed init exits before the first `next` request: Lambda reports the init error, and no connect is
    // allowed by a guard that could not load what it checks.
    jitp_wiring::lambda::run(var("RUST_LOG").as_deref(), var("AWS_LAMBDA_LOG_LEVEL").as_deref(), init()).await
}

async fn init() -> Result<jitp_guard::Guard, jitp_guard::GuardError> {
    // No arguments: Lambda runs `bootstrap` bare, and the environment is the configuration.
    let settings: GuardSettings = jitp_wiring::parse::from_vars(["jitp-guard"], std::env::vars_os())?;
    let task_root = std::env::var_os("LAMBDA_TASK_ROOT").map(PathBuf::from);
    let exe = std::env::current_exe().ok();
    let config_path = settings.common.config.path(task_root.as_deref(), exe.as_deref());
    let guard = jitp_guard::build(&settings, &config_path).await?;
    let snapshot = guard.snapshot();
    tracing::info!(
        config = %config_path.display(),
        profiles = snapshot.config.profiles.len(),
        cas = snapshot.cas.len(),
        s3_crls = guard.crl_refresh().objects().len(),
        mode = ?settings.mode,
        registry = %settings.common.registry_or(jitp_wiring::RegistryArg::Aws),
        "jitp-guard ready"
    );
    Ok(guard)
}

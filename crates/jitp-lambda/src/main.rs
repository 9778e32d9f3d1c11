//! `bootstrap`: the jitp Lambda function. Wiring only; the logic is in the library.

use std::process::ExitCode;

use jitp_lambda::{LambdaConfig, RegistryChoice, audit_log};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> ExitCode {
    audit_log::init_tracing();
    let handler = match init().await {
        Ok(handler) => handler,
        Err(e) => {
            // Exiting before the first `next` request fails the init phase: Lambda reports it and retries the
            // event later, and no device is touched by a misconfigured function.
            tracing::error!(error = %error_chain(e.as_ref()), "jitp-lambda init failed");
            return ExitCode::FAILURE;
        }
    };
    let run = lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| handler.handle(event)));
    match run.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %error_chain(e.as_ref()), "lambda runtime stopped");
            ExitCode::FAILURE
        }
    }
}

async fn init() -> Result<jitp_lambda::Handler, Box<dyn std::error::Error + Send + Sync>> {
    let lambda = LambdaConfig::from_env()?;
    let registry = match &lambda.registry {
        RegistryChoice::Aws { endpoint_url: None } => "aws".to_owned(),
        RegistryChoice::Aws { endpoint_url: Some(url) } => format!("aws at {url}"),
        RegistryChoice::Memory(None) => "memory".to_owned(),
        RegistryChoice::Memory(Some(path)) => format!("memory:{}", path.display()),
    };
    let handler = jitp_lambda::build(lambda.clone()).await?;
    tracing::info!(
        config = %lambda.config_path.display(),
        profiles = handler.config().profiles.len(),
        registry,
        sqs_concurrency = lambda.sqs_concurrency,
        "jitp-lambda ready"
    );
    Ok(handler)
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

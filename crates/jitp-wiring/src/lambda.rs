//! The `main` of every Lambda binary, written once (feature `lambda`): tracing as Lambda wants it, the binary's init
//! (which reads its environment, in the binary), then the Runtime API loop over [`Function::handle`].

use std::future::Future;
use std::process::ExitCode;

use crate::log::{Target, init_tracing};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde::Serialize;
use serde_json::Value;

/// A Lambda function: jitp-lambda's provisioning `Handler` and drift report `DriftHandler`, jitp-guard's `Guard`.
pub trait Function: Send + Sync {
    /// The binary's name, in its log lines.
    const NAME: &'static str;
    /// What an invocation answers.
    type Response: Serialize + Send;
    /// Why an invocation fails (the Runtime API reports it, and the platform retries or fails the event).
    type Error: Into<Diagnostic> + std::fmt::Debug + Send;

    /// Answer one invocation.
    fn handle(&self, event: LambdaEvent<Value>) -> impl Future<Output = Result<Self::Response, Self::Error>> + Send;
}

/// Set up tracing (`rust_log` and `lambda_log_level`: the RUST_LOG and AWS_LAMBDA_LOG_LEVEL variables, which the
/// binary reads), run `init`, then serve invocations until the runtime stops. A failed init is logged and ends
/// the process with a failure, so that Lambda reports the init error instead of failing the first device.
pub async fn run<F: Function, E: std::error::Error + 'static>(
    rust_log: Option<&str>,
    lambda_log_level: Option<&str>,
    init: impl Future<Output = Result<F, E>>,
) -> ExitCode {
    init_tracing(rust_log, lambda_log_level, Target::Stdout);
    let function = match init.await {
        Ok(function) => function,
        Err(e) => {
            tracing::error!(error = %jitp_pki::report::chain(&e), "{} init failed", F::NAME);
            return ExitCode::FAILURE;
        }
    };
    match lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| function.handle(event))).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %jitp_pki::report::chain(e.as_ref()), "{}: the Lambda runtime stopped", F::NAME);
            ExitCode::FAILURE
        }
    }
}

//! The function's settings: the shared [`jitp_wiring::Settings`] plus its own, read once at init from its
//! environment by the binary ([`jitp_wiring::parse::from_vars`]).
//!
//! Every variable is optional; a value that is set but wrong (empty included) is an error naming the variable, so
//! a typo fails the deployment at init instead of silently falling back to a default.

use clap::Parser;

/// Default records of one SQS batch in flight at once: enough to overlap the registry's latency, few enough to
/// stay under AWS IoT's 10-15 requests per second quotas per API with a small batch.
pub const DEFAULT_SQS_CONCURRENCY: usize = 8;
/// Upper bound on `JITP_SQS_CONCURRENCY`: far above what AWS IoT's API quotas can serve.
pub const MAX_SQS_CONCURRENCY: usize = 256;

/// Everything the function takes from its environment.
#[derive(Debug, Clone, Parser)]
#[command(name = "jitp-lambda", about = "The jitp Lambda function; configured by its environment variables.")]
pub struct LambdaSettings {
    /// What `jitp serve` and `jitp provision` take too.
    #[command(flatten)]
    pub common: jitp_wiring::Settings,
    /// Records of one SQS batch handled at once, 1 to 256.
    #[arg(
        long,
        env = "JITP_SQS_CONCURRENCY",
        value_name = "N",
        default_value_t = DEFAULT_SQS_CONCURRENCY,
        value_parser = jitp_wiring::count_in(1, MAX_SQS_CONCURRENCY)
    )]
    pub sqs_concurrency: usize,
}

//! Arguments and helpers shared by subcommands (the settings they share with the Lambda are jitp-wiring's).

use std::io::Read as _;
use std::path::Path;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use jitp_wiring::crl::{CrlObjectArgs, Loadable, review_fetcher};
use jitp_wiring::{AwsArgs, ConfigArgs, EndpointArgs};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// For people.
    Text,
    /// One JSON object on stdout.
    Json,
}

/// Read at most `limit + 1` bytes: enough for the parser to say "too large" without reading a huge file.
pub(crate) fn read_bounded(path: &Path, limit: usize) -> anyhow::Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1).read_to_end(&mut bytes).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(bytes)
}

/// Parse `--at`.
pub(crate) fn parse_time(s: &str) -> Result<i64, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|e| format!("not an RFC 3339 time ({e}); e.g. 2026-01-01T00:00:00Z"))
}

/// Where `jitp check`, `lint`, `explain` and `guard` read jitp.toml from: `--config` (else ./templates/jitp.toml)
/// with its overrides, the policy context (`--account-id`, `--region`, `--partition`), and its S3 CRLs from the
/// `--crl-object` files, the others fetched from S3 (at `--endpoint-url`, in `--region`) unless `--offline`.
#[derive(Debug, Args)]
pub(crate) struct Source {
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    #[command(flatten)]
    pub(crate) aws: AwsArgs,
    #[command(flatten)]
    pub(crate) crls: CrlObjectArgs,
    #[command(flatten)]
    pub(crate) endpoint: EndpointArgs,
}

impl Source {
    /// The workflow's `Rules` (templates compiled) or, for `jitp guard`, the profiles alone (`Config`).
    pub(crate) async fn load<L: Loadable>(&self) -> Result<L, jitp_wiring::Error> {
        let path = self.config.path(None, None);
        let (endpoint, region) = (self.endpoint.endpoint_url.clone(), self.aws.region.clone());
        self.crls.load(&self.config, &path, || review_fetcher(endpoint, region)).await
    }
}

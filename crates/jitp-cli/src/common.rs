//! Arguments and helpers shared by subcommands.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use jitp_core::policy::AwsContext;
use jitp_core::rules::Rules;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// For people.
    Text,
    /// One JSON object on stdout.
    Json,
}

/// `--config`.
#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    /// The CA profiles (jitp.toml).
    #[arg(long, default_value = "templates/jitp.toml", env = "JITP_CONFIG")]
    pub config: PathBuf,
}

impl ConfigArgs {
    pub(crate) fn load(&self) -> anyhow::Result<Rules> {
        Ok(Rules::load(&self.config)?)
    }
}

/// The template context's `aws.*`.
#[derive(Debug, Args)]
pub(crate) struct AwsArgs {
    /// Account id for the policy ARNs.
    #[arg(long, default_value = "123456789012")]
    pub account_id: String,
    /// Region for the policy ARNs.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Partition for the policy ARNs.
    #[arg(long, default_value = "aws")]
    pub partition: String,
}

impl AwsArgs {
    pub(crate) fn context(&self) -> anyhow::Result<AwsContext> {
        let ok = |s: &str| !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        anyhow::ensure!(
            self.account_id.len() == 12 && self.account_id.bytes().all(|b| b.is_ascii_digit()),
            "--account-id must be 12 digits"
        );
        anyhow::ensure!(ok(&self.region), "--region {:?} is not a region name", self.region);
        anyhow::ensure!(ok(&self.partition), "--partition {:?} is not a partition name", self.partition);
        Ok(AwsContext {
            partition: self.partition.clone(),
            region: self.region.clone(),
            account_id: self.account_id.clone(),
        })
    }
}

/// Read at most `limit + 1` bytes: enough for the parser to say "too large" without reading a huge file.
pub(crate) fn read_bounded(path: &Path, limit: usize) -> anyhow::Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1).read_to_end(&mut bytes).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(bytes)
}

/// Now, Unix seconds.
pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Parse `--at`.
pub(crate) fn parse_time(s: &str) -> Result<i64, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|e| format!("not an RFC 3339 time ({e}); e.g. 2026-01-01T00:00:00Z"))
}

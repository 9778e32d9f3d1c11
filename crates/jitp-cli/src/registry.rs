//! `--registry memory:PATH | memory | aws`: which IotRegistry a subcommand talks to.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use jitp_core::memory::MemoryRegistry;
use jitp_core::registry::IotRegistry;

/// A registry choice as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RegistryArg {
    /// The embedded registry, optionally persisted to a file.
    Memory(Option<PathBuf>),
    /// AWS IoT (or an emulator via --endpoint-url).
    Aws,
}

impl FromStr for RegistryArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "aws" => Ok(Self::Aws),
            "memory" => Ok(Self::Memory(None)),
            _ => match s.strip_prefix("memory:") {
                Some(path) if !path.is_empty() => Ok(Self::Memory(Some(PathBuf::from(path)))),
                _ => Err(format!("{s:?}: expected aws, memory or memory:PATH")),
            },
        }
    }
}

/// An opened registry; `save` persists a memory registry's file.
pub(crate) struct Opened {
    pub registry: Arc<dyn IotRegistry>,
    pub memory: Option<Arc<MemoryRegistry>>,
}

impl Opened {
    pub(crate) fn save(&self) -> anyhow::Result<()> {
        if let Some(m) = &self.memory {
            m.save()?;
        }
        Ok(())
    }
}

pub(crate) async fn open(arg: &RegistryArg, endpoint_url: Option<String>) -> anyhow::Result<Opened> {
    match arg {
        RegistryArg::Memory(path) => {
            let memory = Arc::new(match path {
                Some(p) => MemoryRegistry::open(p)?,
                None => MemoryRegistry::new(),
            });
            Ok(Opened { registry: memory.clone(), memory: Some(memory) })
        }
        RegistryArg::Aws => aws(endpoint_url).await,
    }
}

async fn aws(endpoint_url: Option<String>) -> anyhow::Result<Opened> {
    // Credentials and region come from the default chain (environment, profile, instance role).
    let registry = jitp_aws::AwsRegistry::from_env(endpoint_url).await;
    Ok(Opened { registry: Arc::new(registry), memory: None })
}

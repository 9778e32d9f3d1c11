//! `aws | memory | memory:PATH`: which [`IotRegistry`] a binary talks to, opened from explicit values.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use jitp_registry::memory::MemoryRegistry;
use jitp_registry::registry::IotRegistry;

use crate::Error;

/// A registry choice, as `--registry` / `JITP_REGISTRY` spell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryArg {
    /// AWS IoT (or the emulator at `--endpoint-url`), through the AWS SDK.
    Aws,
    /// The embedded registry (tests, demos), optionally read from and saved to a file.
    Memory(Option<PathBuf>),
}

impl FromStr for RegistryArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "aws" => Ok(Self::Aws),
            "memory" => Ok(Self::Memory(None)),
            _ => match s.strip_prefix("memory:") {
                Some(path) if !path.is_empty() => Ok(Self::Memory(Some(PathBuf::from(path)))),
                _ => Err("aws, memory or memory:PATH".to_owned()),
            },
        }
    }
}

impl fmt::Display for RegistryArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Aws => f.write_str("aws"),
            Self::Memory(None) => f.write_str("memory"),
            Self::Memory(Some(path)) => write!(f, "memory:{}", path.display()),
        }
    }
}

/// An opened registry.
#[derive(Clone)]
pub struct Opened {
    /// The registry the workflow talks to.
    pub registry: Arc<dyn IotRegistry>,
    /// The same registry when it is the embedded one, for [`Opened::save`] and for `jitp register`.
    pub memory: Option<Arc<MemoryRegistry>>,
    /// The region the AWS SDK resolved, when the registry is AWS IoT.
    pub sdk_region: Option<String>,
    /// What was opened, for the start-up log line (`aws`, `aws at http://...`, `memory:PATH`).
    pub description: String,
    /// The memory registry's file.
    file: Option<PathBuf>,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened").field("registry", &self.description).finish_non_exhaustive()
    }
}

impl Opened {
    /// Is it AWS IoT (or an emulator of it)?
    pub fn is_aws(&self) -> bool {
        self.memory.is_none()
    }

    /// Write a file-backed memory registry back to its file; nothing for the others.
    pub fn save(&self) -> Result<(), Error> {
        match &self.memory {
            Some(memory) => memory
                .save()
                .map_err(|source| Error::MemoryRegistry { path: self.file.clone().unwrap_or_default(), source }),
            None => Ok(()),
        }
    }
}

/// Open `choice`. For `aws`: credentials from the SDK's default chain, `endpoint_url` instead of AWS IoT's if
/// given, `region` instead of the SDK's own if given. This does not fail for `aws` (credentials are looked up on
/// the first call); a memory registry's file that is not one is an error.
pub async fn open(choice: &RegistryArg, endpoint_url: Option<&str>, region: Option<&str>) -> Result<Opened, Error> {
    match choice {
        RegistryArg::Memory(path) => {
            let memory = match path {
                Some(p) => {
                    MemoryRegistry::open(p).map_err(|source| Error::MemoryRegistry { path: p.clone(), source })?
                }
                None => MemoryRegistry::new(),
            };
            let memory = Arc::new(memory);
            Ok(Opened {
                registry: memory.clone(),
                memory: Some(memory),
                sdk_region: None,
                description: choice.to_string(),
                file: path.clone(),
            })
        }
        RegistryArg::Aws => aws(endpoint_url, region).await,
    }
}

#[cfg(feature = "aws")]
async fn aws(endpoint_url: Option<&str>, region: Option<&str>) -> Result<Opened, Error> {
    let registry = jitp_aws::AwsRegistry::builder()
        .set_endpoint_url(endpoint_url.map(str::to_owned))
        .set_region(region.map(str::to_owned))
        .build()
        .await;
    let description = match endpoint_url {
        Some(url) => format!("aws at {url}"),
        None => "aws".to_owned(),
    };
    let sdk_region = registry.region().map(str::to_owned);
    Ok(Opened { registry: Arc::new(registry), memory: None, sdk_region, description, file: None })
}

#[cfg(not(feature = "aws"))]
async fn aws(_endpoint_url: Option<&str>, _region: Option<&str>) -> Result<Opened, Error> {
    Err(Error::NoAws)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_round_trip() {
        for s in ["aws", "memory", "memory:/tmp/registry.json"] {
            assert_eq!(s.parse::<RegistryArg>().map(|c| c.to_string()).as_deref(), Ok(s));
        }
        for bad in ["", "AWS", "memory:", "file:/tmp/x", "moto"] {
            assert_eq!(bad.parse::<RegistryArg>(), Err("aws, memory or memory:PATH".to_owned()), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn a_memory_registry_opens_and_saves() {
        let dir = std::env::temp_dir().join(format!("jitp-wiring-open-{}", std::process::id()));
        let file = dir.join("registry.json");
        let opened = open(&RegistryArg::Memory(Some(file.clone())), None, None).await;
        let opened = opened.ok();
        assert!(opened.as_ref().is_some_and(|o| !o.is_aws() && o.sdk_region.is_none()));
        // The directory does not exist: saving names the file.
        let err = opened.map(|o| o.save().err().map(|e| e.to_string()));
        assert!(err.flatten().is_some_and(|e| e.contains("registry.json")));
    }

    #[cfg(not(feature = "aws"))]
    #[tokio::test]
    async fn aws_needs_the_feature() {
        assert!(matches!(open(&RegistryArg::Aws, None, None).await, Err(Error::NoAws)));
    }
}

//! The rules jitp decides by: the configuration ([`Config`], plain validated data) and the templates compiled
//! from it ([`Engine`]), loaded together, with the checks that need both (policy names: no name AWS would
//! refuse, no name two devices could share; see `naming`).
//!
//! The layer above `profile` and `policy`, below `decide`: the configuration knows nothing of templates, the
//! templates read the configuration, and everything that decides takes a [`Rules`].

use std::path::Path;
use std::sync::Arc;

use jitp_policy::policy::Engine;
use jitp_profile::ConfigError;
use jitp_profile::profile::{Config, CrlObjects, Overrides, Profile};

/// A configuration and its compiled templates, consistent with each other. Built only by [`Rules::compile`]
/// and the loaders, so every `Rules` has passed the policy-name checks.
#[derive(Debug)]
pub struct Rules {
    config: Config,
    /// Shared by the rules a CRL refresh derives ([`Rules::with_crl_objects`]): the templates do not change.
    templates: Arc<Engine>,
}

impl Rules {
    /// Load `path` and everything it names, with no overrides.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Self::compile(Config::load(path)?)
    }

    /// Load `path` and everything it names, applying deployment overrides to `[defaults]`.
    pub fn load_with(path: impl AsRef<Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::compile(Config::load_with(path, overrides)?)
    }

    /// Parse configuration text as if read from `path` (relative paths resolve beside it).
    pub fn from_str_at(source: &str, path: &Path, overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::compile(Config::from_str_at(source, path, overrides)?)
    }

    /// Check `config`'s policy names and compile its templates (read beside `config.path`).
    pub fn compile(config: Config) -> Result<Self, ConfigError> {
        jitp_policy::naming::check_config(&config)?;
        let templates = Engine::compile(&config)?;
        Ok(Self { config, templates: Arc::new(templates) })
    }

    /// These rules with their S3 CRLs parsed again from a refresh's `objects` ([`Config::with_crl_objects`]):
    /// the same templates (the policy-name checks do not depend on CRLs), new CRLs. On an error `self` stands.
    pub fn with_crl_objects(&self, objects: &CrlObjects) -> Result<Self, ConfigError> {
        Ok(Self { config: self.config.with_crl_objects(objects)?, templates: self.templates.clone() })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The compiled templates.
    pub fn templates(&self) -> &Engine {
        &self.templates
    }

    /// The profile called `name`.
    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.config.profile(name)
    }
}

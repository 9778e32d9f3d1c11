//! A configuration directory of a test's own: `jitp.toml` beside `policies/`, in a fresh temporary directory
//! that is removed when the value is dropped. Loading it is left to the test (`Config::load(dir.config_path())`).
//!
//! Keep the value alive for as long as anything may read the directory: the configuration's templates are read at
//! load, but `lint_templates` reads a template's source again, and deny lists or CA chains named by path are the
//! test's own files.

use std::path::{Path, PathBuf};

use crate::templates_dir;

/// A temporary configuration directory, removed on drop.
#[derive(Debug)]
pub struct ConfigDir(tempfile::TempDir);

impl Default for ConfigDir {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfigDir {
    /// An empty configuration directory (with an empty `policies/`).
    pub fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("jitp-config-").tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("policies")).unwrap();
        Self(dir)
    }

    /// A copy of the shipped configuration: `templates/jitp.toml` and every template in `templates/policies/`.
    pub fn shipped() -> Self {
        let dir = Self::new();
        for entry in std::fs::read_dir(templates_dir().join("policies")).unwrap() {
            let name = entry.unwrap().file_name();
            dir.copy_policy(name.to_str().unwrap(), name.to_str().unwrap());
        }
        std::fs::copy(templates_dir().join("jitp.toml"), dir.config_path()).unwrap();
        dir
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// Its `jitp.toml` (written or not).
    pub fn config_path(&self) -> PathBuf {
        self.path().join("jitp.toml")
    }

    /// Write `jitp.toml`; returns its path.
    pub fn write_config(&self, toml: &str) -> PathBuf {
        let path = self.config_path();
        std::fs::write(&path, toml).unwrap();
        path
    }

    /// Rewrite `jitp.toml` through `edit`; returns its path.
    pub fn edit_config(&self, edit: impl FnOnce(String) -> String) -> PathBuf {
        let toml = std::fs::read_to_string(self.config_path()).unwrap();
        self.write_config(&edit(toml))
    }

    /// Write `policies/<name>`.
    pub fn write_policy(&self, name: &str, template: &str) -> &Self {
        std::fs::write(self.path().join("policies").join(name), template).unwrap();
        self
    }

    /// Copy the shipped `templates/policies/<shipped>` to `policies/<name>`.
    pub fn copy_policy(&self, shipped: &str, name: &str) -> &Self {
        std::fs::copy(templates_dir().join("policies").join(shipped), self.path().join("policies").join(name)).unwrap();
        self
    }
}

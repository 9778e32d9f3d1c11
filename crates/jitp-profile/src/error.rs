//! The crate's one error: a configuration, or a file it names, is wrong.
//!
//! A certificate that fails a rule is not an error but a [`jitp_pki::reason::Rejection`]. The policy templates
//! are part of the configuration: jitp-policy reports its faults with this type too.

use std::path::PathBuf;

/// A configuration or a file it names is wrong, or cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration or a file it names is wrong; `line` is 1-based where known.
    #[error("{}{}: {key}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Config {
        /// The file at fault.
        file: PathBuf,
        /// Its line, when known.
        line: Option<usize>,
        /// The key (e.g. `profiles[1].common_name`).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl ConfigError {
    /// A configuration error.
    pub fn config(
        file: impl Into<PathBuf>,
        line: Option<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Config { file: file.into(), line, key: key.into(), message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jitp_pki::report::chain;

    #[test]
    fn a_chain_says_each_fact_once() {
        let config = ConfigError::config(std::path::Path::new("/etc/jitp.toml"), Some(3), "profiles[0].name", "bad");
        assert_eq!(chain(&config), "/etc/jitp.toml:3: profiles[0].name: bad");
        let io = ConfigError::Io {
            path: "/x/p.tera".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "No such file"),
        };
        assert_eq!(chain(&io), "cannot read /x/p.tera: No such file");
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let outer = Outer(std::io::Error::other("inner"));
        assert_eq!(chain(&outer), "outer: inner", "a source the message does not hold is added");
    }
}

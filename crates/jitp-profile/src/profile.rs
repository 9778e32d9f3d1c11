//! CA profiles from `templates/jitp.toml`: which CA, which subject rules, which templates.
//!
//! The configuration as plain validated data: loaded once at start-up, regexes compiled, deny lists, CA chains
//! and CRLs read, template files checked to exist. Every mistake is a [`ConfigError::Config`] naming the file, the
//! key and the line. The templates are compiled from it one layer up, in `policy::Engine`, and the two are loaded
//! together as `rules::Rules`.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::ConfigError;
use jitp_pki::cert::{Certificate, Crl, MAX_CRL_BYTES};
use jitp_pki::ids::{CaCertificateId, S3Object};
use jitp_registry::registry::Operation;
use jitp_registry::thing::{AttributeName, CERTIFICATE_ATTRIBUTE};

/// What to do with a rejected certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnReject {
    /// UpdateCertificate to REVOKED: the device can never use it.
    Revoke,
    /// UpdateCertificate to INACTIVE: an operator may still activate it.
    Deactivate,
    /// Leave it PENDING_ACTIVATION (AWS keeps dropping the device's connections).
    Leave,
}

/// Per-thing policies, or one shared policy per template scoped by policy variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyMode {
    /// `jitp-<thing>`: one policy per device, the thing name written into it.
    PerThing,
    /// `jitp-<template>`: one policy for every device of a template, using `${iot:Connection.Thing.ThingName}`.
    Shared,
}

/// What to do when the thing already has another ACTIVE certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDuplicate {
    /// Reject with DUPLICATE_THING.
    Reject,
    /// Attach the new certificate too and leave the old one for the operator.
    Rotate,
}

/// What a bad or stale CRL of a profile does: see [`Profile::crl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CrlPolicy {
    /// A CRL that does not verify against the CA, or is past its nextUpdate, holds the profile's devices
    /// (CA_INVALID, the operator's fault) until it is fixed.
    #[default]
    Enforce,
    /// Such a CRL is ignored, with a warning in the log; the profile's valid CRLs still apply.
    Warn,
}

macro_rules! parse_enum_str {
    ($t:ty) => {
        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                <$t>::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(s))
                    .map_err(|e| e.to_string())
            }
        }
    };
}
parse_enum_str!(OnReject);
parse_enum_str!(PolicyMode);
parse_enum_str!(OnDuplicate);
parse_enum_str!(CrlPolicy);

/// Settings an operator may impose at deployment (Lambda environment, CLI flags), over `[defaults]`.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Replaces `defaults.policy_mode`.
    pub policy_mode: Option<PolicyMode>,
    /// Replaces `defaults.policy_prefix`.
    pub policy_prefix: Option<String>,
    /// Replaces `defaults.on_reject`.
    pub on_reject: Option<OnReject>,
    /// The bytes of the S3 CRLs the configuration lists ([`Config::crl_objects`]), fetched by the caller:
    /// jitp-core reads no S3. An `s3://` entry missing here is a configuration error.
    pub crl_objects: CrlObjects,
}

/// The fetched bytes of S3 CRL objects, by object.
pub type CrlObjects = BTreeMap<S3Object, std::sync::Arc<[u8]>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    profiles: Vec<RawProfile>,
    #[serde(default)]
    quotas: BTreeMap<String, f64>,
    guard: Option<RawGuard>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGuard {
    domain_name: Spanned<String>,
}

/// The `[guard]` table: the connect guard (jitp-guard) is on for this fleet. Its devices connect through the
/// domain configuration whose client certificate validation calls the guard, `domain_name`; AWS IoT calls the
/// guard on no other endpoint, so `jitp lint` requires every policy's `iot:Connect` to be limited to that domain
/// (the `iot:DomainName` condition key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardSection {
    /// The guarded domain's name, e.g. `iot.example.com`.
    pub domain_name: String,
}

/// Why `name` is not a domain name AWS IoT's domain configurations take (a fully qualified name of 1 to 253
/// characters, dot-separated labels of 1 to 63 letters, digits and hyphens, not starting or ending with one).
fn domain_name_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > 253 {
        return Some(format!("{name:?} is {} characters long; a domain name has 1 to 253", name.len()));
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Some(format!("{name:?} is not a fully qualified domain name (e.g. iot.example.com)"));
    }
    for label in labels {
        let ok = (1..=63).contains(&label.len())
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Some(format!(
                "{name:?} has the label {label:?}; each label is 1 to 63 letters, digits and hyphens, not starting or ending with a hyphen"
            ));
        }
    }
    None
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    #[serde(default = "default_skew")]
    clock_skew_seconds: u32,
    #[serde(default = "default_on_reject")]
    on_reject: OnReject,
    #[serde(default = "default_policy_mode")]
    policy_mode: PolicyMode,
    #[serde(default = "default_prefix")]
    policy_prefix: String,
    #[serde(default = "default_on_duplicate")]
    on_duplicate: OnDuplicate,
}

impl Default for RawDefaults {
    fn default() -> Self {
        Self {
            clock_skew_seconds: default_skew(),
            on_reject: default_on_reject(),
            policy_mode: default_policy_mode(),
            policy_prefix: default_prefix(),
            on_duplicate: default_on_duplicate(),
        }
    }
}

fn default_skew() -> u32 {
    300
}
fn default_on_reject() -> OnReject {
    OnReject::Revoke
}
fn default_policy_mode() -> PolicyMode {
    PolicyMode::PerThing
}
fn default_prefix() -> String {
    "jitp-".to_owned()
}
fn default_on_duplicate() -> OnDuplicate {
    OnDuplicate::Reject
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    name: Spanned<String>,
    ca: Vec<Spanned<String>>,
    common_name: Option<Spanned<String>>,
    organization: Option<Vec<String>>,
    organizational_unit: Option<Vec<String>>,
    country: Option<Vec<String>>,
    thing_name: Spanned<String>,
    policy: Spanned<String>,
    min_rsa_bits: Option<Spanned<u32>>,
    max_validity_days: Option<u32>,
    #[serde(default)]
    allow_no_expiration: bool,
    #[serde(default)]
    require_v3: bool,
    #[serde(default)]
    ca_chain: Vec<Spanned<String>>,
    deny_list: Option<Spanned<String>>,
    #[serde(default)]
    crl: Vec<Spanned<String>>,
    crl_policy: Option<CrlPolicy>,
    thing_type: Option<Spanned<String>>,
    #[serde(default)]
    thing_groups: Vec<Spanned<String>>,
    #[serde(default)]
    attributes: BTreeMap<String, Spanned<String>>,
    on_reject: Option<OnReject>,
    policy_mode: Option<PolicyMode>,
    policy_prefix: Option<Spanned<String>>,
    on_duplicate: Option<OnDuplicate>,
}

/// Which CAs a profile serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaMatch {
    /// `"*"`: any registered CA.
    Any,
    /// These CA certificate ids.
    Ids(Vec<CaCertificateId>),
}

impl CaMatch {
    /// Does this profile serve `id`?
    pub fn matches(&self, id: &CaCertificateId) -> bool {
        match self {
            Self::Any => true,
            Self::Ids(ids) => ids.contains(id),
        }
    }
}

/// The loaded configuration: defaults and profiles (its templates are compiled by `rules::Rules`).
#[derive(Debug, Clone)]
pub struct Config {
    /// The jitp.toml it came from.
    pub path: PathBuf,
    /// The `[defaults]` table, overrides applied.
    pub defaults: Defaults,
    /// Profiles in file order: the first whose CA and subject rules match wins.
    pub profiles: Vec<Profile>,
    /// The `[quotas]` table: the account's API quotas (requests per second) where they differ from AWS's
    /// defaults ([`jitp_registry::pacing::Quotas::aws_defaults`]), for an account with raised quotas.
    pub quotas: BTreeMap<Operation, f64>,
    /// The `[guard]` table, if the connect guard is on.
    pub guard: Option<GuardSection>,
}

/// The `[defaults]` table.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// Tolerance for device clocks.
    pub clock_skew_seconds: u32,
    /// What to do on a rejection that no profile governs (e.g. UNKNOWN_CA).
    pub on_reject: OnReject,
    /// The default policy mode.
    pub policy_mode: PolicyMode,
    /// Policy name prefix.
    pub policy_prefix: String,
    /// The default duplicate handling.
    pub on_duplicate: OnDuplicate,
}

/// One `[[profiles]]` entry, resolved against the defaults.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Its name (in audit records and metrics).
    pub name: String,
    /// Which CAs it serves.
    pub ca: CaMatch,
    /// The whole CN must match (the regex is anchored at both ends by jitp). Absent from jitp.toml: `.*`.
    pub common_name: Regex,
    /// Why a device of this profile must have a CN, as a sentence with the fix; `None`: a subject without CN is
    /// accepted (no `common_name` refusing the empty string, no template reading `subject.cn`).
    pub needs_cn: Option<String>,
    /// Allow-lists; `None` means any (or none).
    pub organization: Option<Vec<String>>,
    /// See `organization`.
    pub organizational_unit: Option<Vec<String>>,
    /// See `organization`.
    pub country: Option<Vec<String>>,
    /// Tera expression for the thing name.
    pub thing_name: String,
    /// The policy template, relative to the config file (also its template name).
    pub policy: String,
    /// RSA keys below this are KEY_TOO_SHORT (at least 2048; below 2048 is WEAK_KEY whatever the profile says).
    pub min_rsa_bits: usize,
    /// notAfter - notBefore above this is VALIDITY_TOO_LONG.
    pub max_validity_days: Option<u32>,
    /// Accept a certificate with no well-defined expiration date (notAfter 99991231235959Z, RFC 5280 4.1.2.5)
    /// whatever `max_validity_days` says.
    pub allow_no_expiration: bool,
    /// Refuse X.509 v1 device certificates (CERT_NOT_V3); by default they are accepted, as AWS IoT does.
    pub require_v3: bool,
    /// The registered CA must chain to one of these (roots and intermediates).
    pub ca_chain: Vec<Certificate>,
    /// Denied serials and fingerprints.
    pub deny: DenyList,
    /// Certificate revocation lists of the profile's CA, read at load. Each is verified against the CA when
    /// the CA enters the workflow's cache (`crate::judge::RegisteredCa`); a device on a valid one is CERT_REVOKED.
    pub crl: Vec<ProfileCrl>,
    /// What a CRL that does not verify against the CA, or is past its nextUpdate, does.
    pub crl_policy: CrlPolicy,
    /// Thing type for new things.
    pub thing_type: Option<String>,
    /// Thing groups for new things.
    pub thing_groups: Vec<String>,
    /// Attribute name -> Tera expression.
    pub attributes: BTreeMap<AttributeName, String>,
    /// Resolved settings.
    pub on_reject: OnReject,
    /// Resolved settings.
    pub policy_mode: PolicyMode,
    /// Resolved settings.
    pub policy_prefix: String,
    /// Resolved settings.
    pub on_duplicate: OnDuplicate,
}

/// A CRL a profile lists: the entry as written in jitp.toml (for messages), where it comes from, and the
/// parsed list.
#[derive(Debug, Clone)]
pub struct ProfileCrl {
    /// The entry as written in `crl = [...]`: a path relative to jitp.toml, or an `s3://bucket/key` URI.
    pub file: String,
    /// Where the bytes come from.
    pub source: CrlSource,
    /// The list.
    pub crl: Crl,
}

/// Where a CRL of `crl = [...]` comes from. An entry whose text before its first `/` holds a `:` is a URI,
/// and the only URI jitp reads is `s3://bucket/key` ([`S3Object::parse`]); anything else is a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrlSource {
    /// A file, relative to jitp.toml, read at load.
    File(PathBuf),
    /// An S3 object, fetched by the caller ([`Overrides::crl_objects`]) and refreshed by it
    /// ([`Config::with_crl_objects`]).
    S3(S3Object),
}

impl CrlSource {
    /// Classify one entry of `crl = [...]`; `dir` is jitp.toml's directory. The error is one sentence.
    pub fn parse(entry: &str, dir: &Path) -> Result<Self, String> {
        let head = entry.split('/').next().unwrap_or("");
        if head.contains(':') {
            S3Object::parse(entry).map(Self::S3).map_err(|why| format!("{}: {why}", jitp_pki::ids::shown(entry)))
        } else {
            Ok(Self::File(dir.join(entry)))
        }
    }
}

/// A profile's deny list: serial numbers, SHA-256 and SHA-1 fingerprints of the DER, each entry matching
/// exactly what it names (see [`DenyList::parse_entry`]).
#[derive(Debug, Clone, Default)]
pub struct DenyList {
    serials: HashSet<String>,
    sha256: HashSet<String>,
    sha1: HashSet<String>,
}

/// Which kind of value a deny-list entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyKind {
    /// The certificate's serial number.
    Serial,
    /// SHA-256 of the DER (AWS IoT's certificate id).
    Sha256,
    /// SHA-1 of the DER (the fingerprint many tools print).
    Sha1,
}

/// RFC 5280 4.1.2.2: a serial number is at most 20 octets.
const MAX_SERIAL_HEX: usize = 40;

impl DenyList {
    /// Parse one entry: `serial:HEX`, `sha256:HEX` (64 digits), `sha1:HEX` (40 digits), or bare hex: 64 digits
    /// are a SHA-256, up to 39 a serial. Bare 40 digits are refused (a 20-octet serial and a SHA-1 look alike),
    /// as is anything else: every entry either matches what it names or is refused. Hex may carry `:` or spaces
    /// between digits and either case.
    pub fn parse_entry(entry: &str) -> Result<(DenyKind, String), String> {
        let lowered = entry.to_ascii_lowercase();
        let (kind, hex_text) = match lowered.split_once(':') {
            Some(("serial", rest)) => (Some(DenyKind::Serial), rest),
            Some(("sha256" | "sha-256", rest)) => (Some(DenyKind::Sha256), rest),
            Some(("sha1" | "sha-1", rest)) => (Some(DenyKind::Sha1), rest),
            _ => (None, lowered.as_str()),
        };
        let digits: String = hex_text.chars().filter(|c| *c != ':' && *c != ' ').collect();
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{entry:?} is not hex (write serial:HEX, sha256:HEX or sha1:HEX)"));
        }
        let kind = match (kind, digits.len()) {
            (Some(DenyKind::Sha256), 64) | (None, 64) => DenyKind::Sha256,
            (Some(DenyKind::Sha1), 40) => DenyKind::Sha1,
            (Some(k @ (DenyKind::Sha256 | DenyKind::Sha1)), n) => {
                let want = if k == DenyKind::Sha256 { 64 } else { 40 };
                return Err(format!("{entry:?} has {n} hex digits; a {k:?} fingerprint has {want}"));
            }
            (Some(DenyKind::Serial), n) if n <= 2 * MAX_SERIAL_HEX => DenyKind::Serial,
            (None, 40) => {
                return Err(format!(
                    "{entry:?} is 40 hex digits: a SHA-1 fingerprint or a 20-octet serial number; write sha1:{digits} or serial:{digits}"
                ));
            }
            (None, n) if n < MAX_SERIAL_HEX => DenyKind::Serial,
            (_, n) => {
                return Err(format!(
                    "{entry:?} has {n} hex digits: longer than a serial number (at most {MAX_SERIAL_HEX}) and not a 64-digit SHA-256"
                ));
            }
        };
        let value = if kind == DenyKind::Serial { normalize_serial(&digits) } else { digits };
        Ok((kind, value))
    }

    fn insert(&mut self, kind: DenyKind, value: String) {
        match kind {
            DenyKind::Serial => self.serials.insert(value),
            DenyKind::Sha256 => self.sha256.insert(value),
            DenyKind::Sha1 => self.sha1.insert(value),
        };
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.serials.len() + self.sha256.len() + self.sha1.len()
    }

    /// No entries?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What matched `cert`, if anything: `serial ab12`, `SHA-256 …`, `SHA-1 …`.
    pub fn matches(&self, cert: &Certificate) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        let serial = cert.serial_hex();
        if self.serials.contains(&serial) {
            return Some(format!("serial {serial}"));
        }
        let sha256 = cert.fingerprint_hex();
        if self.sha256.contains(&sha256) {
            return Some(format!("SHA-256 {sha256}"));
        }
        if !self.sha1.is_empty() {
            use sha1::Digest as _;
            let sha1 = hex::encode(sha1::Sha1::digest(cert.der()));
            if self.sha1.contains(&sha1) {
                return Some(format!("SHA-1 {sha1}"));
            }
        }
        None
    }
}

/// The minimum RSA modulus AWS IoT accepts; a profile may only raise it.
pub const MIN_RSA_BITS_FLOOR: u32 = jitp_pki::cert::MIN_RSA_BITS;

/// AWS IoT's limits on thing attributes: 3 for a thing without a type, 50 with one (jitp's own included).
const MAX_ATTRIBUTES_UNTYPED: usize = 3;
const MAX_ATTRIBUTES_TYPED: usize = 50;

impl Profile {
    /// The common_name pattern as written in jitp.toml (jitp anchors it as `^(?:…)$`; absent, `.*`).
    pub fn common_name_source(&self) -> &str {
        let anchored = self.common_name.as_str();
        anchored.strip_prefix("^(?:").and_then(|s| s.strip_suffix(")$")).unwrap_or(anchored)
    }
}

impl Config {
    /// Load `path` and everything it names, with no overrides. The configuration alone: `rules::Rules::load`
    /// gives the configuration with its templates compiled and its policy names checked, which decisions take.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Self::load_with(path, &Overrides::default())
    }

    /// Load `path` and everything it names, applying deployment overrides to `[defaults]`.
    pub fn load_with(path: impl AsRef<Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let path = path.as_ref().to_path_buf();
        let source = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io { path: path.clone(), source })?;
        Self::from_str_at(&source, &path, overrides)
    }

    /// Parse configuration text as if read from `path` (relative paths resolve beside it).
    pub fn from_str_at(source: &str, path: &Path, overrides: &Overrides) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(source).map_err(|e| {
            let line = e.span().map(|s| line_of(source, s.start));
            ConfigError::config(path, line, "jitp.toml", e.message().to_owned())
        })?;
        let mut defaults = raw.defaults;
        if let Some(mode) = overrides.policy_mode {
            defaults.policy_mode = mode;
        }
        if let Some(prefix) = &overrides.policy_prefix {
            defaults.policy_prefix = prefix.clone();
        }
        if let Some(on_reject) = overrides.on_reject {
            defaults.on_reject = on_reject;
        }
        let ctx =
            Loader { source, path: path.to_path_buf(), dir: path.parent().map(Path::to_path_buf).unwrap_or_default() };
        ctx.check_prefix(&defaults.policy_prefix, None, "defaults.policy_prefix")?;
        if raw.profiles.is_empty() {
            return Err(ConfigError::config(
                path,
                None,
                "profiles",
                "no [[profiles]]: jitp would reject every certificate",
            ));
        }
        let mut profiles = Vec::with_capacity(raw.profiles.len());
        let mut names = HashSet::new();
        for (i, p) in raw.profiles.into_iter().enumerate() {
            let profile = ctx.profile(i, p, &defaults, &overrides.crl_objects)?;
            if !names.insert(profile.name.clone()) {
                return Err(ConfigError::config(
                    path,
                    None,
                    format!("profiles[{i}].name"),
                    format!("duplicate profile name {:?}", profile.name),
                ));
            }
            profiles.push(profile);
        }
        let mut quotas = BTreeMap::new();
        for (name, rate) in raw.quotas {
            let key = format!("quotas.{name}");
            let op: Operation = name.parse().map_err(|_| {
                let known: Vec<&str> = Operation::ALL.iter().map(|op| op.as_str()).collect();
                ConfigError::config(
                    path,
                    None,
                    key.clone(),
                    format!("{name:?} is not an AWS IoT operation jitp calls ({})", known.join(", ")),
                )
            })?;
            let rate =
                jitp_registry::pacing::check_quota(op, rate).map_err(|m| ConfigError::config(path, None, key, m))?;
            quotas.insert(op, rate);
        }
        let defaults = Defaults {
            clock_skew_seconds: defaults.clock_skew_seconds,
            on_reject: defaults.on_reject,
            policy_mode: defaults.policy_mode,
            policy_prefix: defaults.policy_prefix,
            on_duplicate: defaults.on_duplicate,
        };
        let guard = match raw.guard {
            None => None,
            Some(RawGuard { domain_name }) => {
                if let Some(why) = domain_name_problem(domain_name.get_ref()) {
                    let line = Some(line_of(source, domain_name.span().start));
                    return Err(ConfigError::config(path, line, "guard.domain_name", why));
                }
                Some(GuardSection { domain_name: domain_name.into_inner() })
            }
        };
        Ok(Self { path: path.to_path_buf(), defaults, profiles, quotas, guard })
    }

    /// The profile called `name`.
    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.name == name)
    }

    /// The S3 objects jitp.toml at `path` lists as CRLs, each once, in order: what the caller fetches before
    /// loading ([`Overrides::crl_objects`]). A malformed `s3://` entry is the configuration error loading
    /// would give (the other keys are checked by the load).
    pub fn crl_objects(path: impl AsRef<Path>) -> Result<Vec<S3Object>, ConfigError> {
        let path = path.as_ref();
        let source =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.to_path_buf(), source })?;
        Self::crl_objects_in(&source, path)
    }

    /// [`Config::crl_objects`] of configuration text as if read from `path`.
    pub fn crl_objects_in(source: &str, path: &Path) -> Result<Vec<S3Object>, ConfigError> {
        let raw: RawConfig = toml::from_str(source).map_err(|e| {
            let line = e.span().map(|s| line_of(source, s.start));
            ConfigError::config(path, line, "jitp.toml", e.message().to_owned())
        })?;
        let ctx =
            Loader { source, path: path.to_path_buf(), dir: path.parent().map(Path::to_path_buf).unwrap_or_default() };
        let mut objects = Vec::new();
        for (i, p) in raw.profiles.iter().enumerate() {
            for entry in &p.crl {
                if let CrlSource::S3(object) = ctx.crl_source(entry, &format!("profiles[{i}].crl"))?
                    && !objects.contains(&object)
                {
                    objects.push(object);
                }
            }
        }
        Ok(objects)
    }

    /// The S3 objects this configuration's profiles list as CRLs, each once, in order.
    pub fn s3_crls(&self) -> Vec<S3Object> {
        let mut objects: Vec<S3Object> = Vec::new();
        for listed in self.profiles.iter().flat_map(|p| &p.crl) {
            if let CrlSource::S3(object) = &listed.source
                && !objects.contains(object)
            {
                objects.push(object.clone());
            }
        }
        objects
    }

    /// This configuration with its S3 CRLs parsed again from `objects` (a refresh's fetch), through the same
    /// parsing as the load ([`Crl::from_bytes`]); file CRLs and everything else are kept. An object missing
    /// from `objects` or that does not parse is the error a load would give, naming the profile's key and the
    /// URI; `self` is then unchanged and still the rules to use.
    pub fn with_crl_objects(&self, objects: &CrlObjects) -> Result<Self, ConfigError> {
        let mut next = self.clone();
        for (i, profile) in next.profiles.iter_mut().enumerate() {
            for listed in &mut profile.crl {
                if let CrlSource::S3(object) = &listed.source {
                    listed.crl = s3_crl(object, objects)
                        .map_err(|why| ConfigError::config(&self.path, None, format!("profiles[{i}].crl"), why))?;
                }
            }
        }
        Ok(next)
    }

    /// What to do with a rejection governed by `profile` (or by the defaults when none was selected).
    pub fn on_reject(&self, profile: Option<&Profile>) -> OnReject {
        profile.map_or(self.defaults.on_reject, |p| p.on_reject)
    }
}

struct Loader<'a> {
    source: &'a str,
    path: PathBuf,
    dir: PathBuf,
}

impl Loader<'_> {
    fn err<T>(
        &self,
        span: Option<std::ops::Range<usize>>,
        key: String,
        message: impl Into<String>,
    ) -> Result<T, ConfigError> {
        Err(ConfigError::config(&self.path, span.map(|s| line_of(self.source, s.start)), key, message))
    }

    fn check_prefix(&self, prefix: &str, span: Option<std::ops::Range<usize>>, key: &str) -> Result<(), ConfigError> {
        let ok = prefix.len() <= 64
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'=' | b',' | b'.' | b'@' | b'-'));
        if ok {
            Ok(())
        } else {
            self.err(
                span,
                key.to_owned(),
                format!("{prefix:?} is not a valid policy name prefix (at most 64 of [A-Za-z0-9_+=,.@-])"),
            )
        }
    }

    fn resolve(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn profile(&self, i: usize, p: RawProfile, d: &RawDefaults, objects: &CrlObjects) -> Result<Profile, ConfigError> {
        let key = |k: &str| format!("profiles[{i}].{k}");
        let name = p.name.get_ref().clone();
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
        if !name_ok {
            return self.err(
                Some(p.name.span()),
                key("name"),
                format!("{name:?} is not a valid profile name (1 to 64 of [A-Za-z0-9_-])"),
            );
        }
        let ca = if p.ca.iter().any(|c| c.get_ref() == "*") {
            if p.ca.len() > 1 {
                return self.err(Some(p.ca[0].span()), key("ca"), "\"*\" matches every CA; list it alone");
            }
            CaMatch::Any
        } else if p.ca.is_empty() {
            return self.err(Some(p.name.span()), key("ca"), "at least one CA certificate id (or \"*\") is required");
        } else {
            let mut ids = Vec::new();
            for c in &p.ca {
                match c.get_ref().parse::<CaCertificateId>() {
                    Ok(id) => ids.push(id),
                    Err(e) => return self.err(Some(c.span()), key("ca"), e.to_string()),
                }
            }
            CaMatch::Ids(ids)
        };
        let cn_source = p.common_name.as_ref().map_or(ANY_CN, |c| c.get_ref().as_str());
        let cn_span = p.common_name.as_ref().map(Spanned::span);
        // jitp anchors the pattern as ^(?:…)$; a pattern that is not a regex on its own (an unbalanced `)`)
        // could close that group and escape the anchors, so it must parse alone first.
        if let Err(e) = regex_syntax::Parser::new().parse(cn_source) {
            return self.err(
                cn_span,
                key("common_name"),
                format!("invalid regex (it must be a complete pattern on its own; jitp anchors it at both ends): {e}"),
            );
        }
        let common_name = regex::RegexBuilder::new(&format!("^(?:{cn_source})$"))
            .size_limit(1 << 20)
            .build()
            .or_else(|e| self.err(cn_span.clone(), key("common_name"), format!("invalid regex: {e}")))?;
        let policy_text = std::fs::read_to_string(self.resolve(p.policy.get_ref())).unwrap_or_default();
        let needs_cn = if reads_cn(p.thing_name.get_ref()) {
            Some("its thing_name reads subject.cn".to_owned())
        } else if let Some((name, _)) = p.attributes.iter().find(|(_, v)| reads_cn(v.get_ref())) {
            Some(format!("its attribute {name} reads subject.cn"))
        } else if reads_cn(&policy_text) {
            Some(format!("its policy template {} reads subject.cn", p.policy.get_ref()))
        } else if !common_name.is_match("") {
            Some(format!(
                "its common_name {} does not match an empty CN (leave common_name out if the thing name does not \
                 come from the CN)",
                jitp_pki::ids::shown(cn_source)
            ))
        } else {
            None
        };
        let min_rsa_bits = match &p.min_rsa_bits {
            Some(bits) if *bits.get_ref() < MIN_RSA_BITS_FLOOR => {
                return self.err(
                    Some(bits.span()),
                    key("min_rsa_bits"),
                    format!("must be at least {MIN_RSA_BITS_FLOOR} (AWS IoT's minimum)"),
                );
            }
            Some(bits) => *bits.get_ref(),
            None => MIN_RSA_BITS_FLOOR,
        };
        let policy_path = self.resolve(p.policy.get_ref());
        if !policy_path.is_file() {
            return self.err(
                Some(p.policy.span()),
                key("policy"),
                format!("template {} not found", policy_path.display()),
            );
        }
        let mut ca_chain = Vec::new();
        for file in &p.ca_chain {
            let full = self.resolve(file.get_ref());
            let text = std::fs::read(&full).map_err(|source| ConfigError::Io { path: full.clone(), source })?;
            let certs = pem::parse_many(&text)
                .or_else(|e| self.err(Some(file.span()), key("ca_chain"), format!("{}: {e}", full.display())))?;
            if certs.is_empty() {
                return self.err(
                    Some(file.span()),
                    key("ca_chain"),
                    format!("{} holds no certificate", full.display()),
                );
            }
            for block in certs {
                let cert = Certificate::from_der(block.into_contents()).or_else(|e| {
                    self.err(Some(file.span()), key("ca_chain"), format!("{}: {}", full.display(), e.message))
                })?;
                ca_chain.push(cert);
            }
        }
        let deny = match &p.deny_list {
            Some(file) => self.deny_list(file, &key("deny_list"))?,
            None => DenyList::default(),
        };
        let crl = p.crl.iter().map(|entry| self.crl(entry, &key("crl"), objects)).collect::<Result<Vec<_>, _>>()?;
        let thing_type = match p.thing_type {
            Some(t) => Some(self.aws_name(t, &key("thing_type"))?),
            None => None,
        };
        let thing_groups =
            p.thing_groups.into_iter().map(|g| self.aws_name(g, &key("thing_groups"))).collect::<Result<_, _>>()?;
        let mut attributes = BTreeMap::new();
        let limit = if thing_type.is_some() { MAX_ATTRIBUTES_TYPED } else { MAX_ATTRIBUTES_UNTYPED };
        if p.attributes.len() + 1 > limit {
            return self.err(
                Some(p.name.span()),
                key("attributes"),
                format!(
                    "{} attributes plus jitp's own ({}) make {}; AWS IoT allows {limit} for a thing {}",
                    p.attributes.len(),
                    CERTIFICATE_ATTRIBUTE,
                    p.attributes.len() + 1,
                    if thing_type.is_some() {
                        "with a thing type"
                    } else {
                        "without a thing type (set thing_type for up to 50)"
                    }
                ),
            );
        }
        if let Some(v) = p.attributes.get(CERTIFICATE_ATTRIBUTE) {
            return self.err(
                Some(v.span()),
                key("attributes"),
                format!(
                    "{} is jitp's own attribute (it records which certificate owns the thing)",
                    CERTIFICATE_ATTRIBUTE
                ),
            );
        }
        for (k, v) in p.attributes {
            let name =
                AttributeName::try_from(k).or_else(|e| self.err(Some(v.span()), key("attributes"), e.to_string()))?;
            attributes.insert(name, v.into_inner());
        }
        let policy_prefix = match p.policy_prefix {
            Some(prefix) => {
                self.check_prefix(prefix.get_ref(), Some(prefix.span()), &key("policy_prefix"))?;
                prefix.into_inner()
            }
            None => d.policy_prefix.clone(),
        };
        Ok(Profile {
            name,
            ca,
            common_name,
            needs_cn,
            organization: p.organization,
            organizational_unit: p.organizational_unit,
            country: p.country,
            thing_name: p.thing_name.into_inner(),
            policy: p.policy.into_inner(),
            min_rsa_bits: min_rsa_bits as usize,
            max_validity_days: p.max_validity_days,
            allow_no_expiration: p.allow_no_expiration,
            require_v3: p.require_v3,
            ca_chain,
            deny,
            crl,
            crl_policy: p.crl_policy.unwrap_or_default(),
            thing_type,
            thing_groups,
            attributes,
            on_reject: p.on_reject.unwrap_or(d.on_reject),
            policy_mode: p.policy_mode.unwrap_or(d.policy_mode),
            policy_prefix,
            on_duplicate: p.on_duplicate.unwrap_or(d.on_duplicate),
        })
    }

    fn aws_name(&self, value: Spanned<String>, key: &str) -> Result<String, ConfigError> {
        let v = value.get_ref();
        let ok = (1..=128).contains(&v.len())
            && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'));
        if ok {
            Ok(value.into_inner())
        } else {
            self.err(
                Some(value.span()),
                key.to_owned(),
                format!("{v:?} is not a valid name (1 to 128 of [A-Za-z0-9:_-])"),
            )
        }
    }

    fn crl_source(&self, entry: &Spanned<String>, key: &str) -> Result<CrlSource, ConfigError> {
        CrlSource::parse(entry.get_ref(), &self.dir).or_else(|why| {
            self.err(
                Some(entry.span()),
                key.to_owned(),
                format!("{why} (a CRL is a file beside jitp.toml or s3://bucket/key)"),
            )
        })
    }

    /// Read and parse one CRL of `crl = [...]`: a file (read here, at most [`MAX_CRL_BYTES`]) or an S3 object
    /// (from the caller's `objects`); both through [`Crl::from_bytes`].
    fn crl(&self, entry: &Spanned<String>, key: &str, objects: &CrlObjects) -> Result<ProfileCrl, ConfigError> {
        use std::io::Read as _;
        let full = match self.crl_source(entry, key)? {
            CrlSource::File(full) => full,
            CrlSource::S3(object) => {
                let crl = s3_crl(&object, objects).or_else(|why| self.err(Some(entry.span()), key.to_owned(), why))?;
                return Ok(ProfileCrl { file: entry.get_ref().clone(), source: CrlSource::S3(object), crl });
            }
        };
        let file = entry;
        let mut bytes = Vec::new();
        if let Err(e) =
            std::fs::File::open(&full).and_then(|f| f.take(MAX_CRL_BYTES as u64 + 1).read_to_end(&mut bytes))
        {
            return self.err(Some(file.span()), key.to_owned(), format!("cannot read {}: {e}", full.display()));
        }
        if bytes.len() > MAX_CRL_BYTES {
            return self.err(
                Some(file.span()),
                key.to_owned(),
                format!("{}: the file is over the {MAX_CRL_BYTES}-byte limit for a CRL", full.display()),
            );
        }
        match Crl::from_bytes(&bytes) {
            Ok(crl) => Ok(ProfileCrl { file: file.get_ref().clone(), source: CrlSource::File(full), crl }),
            Err(why) => self.err(Some(file.span()), key.to_owned(), format!("{}: {why}", full.display())),
        }
    }

    fn deny_list(&self, file: &Spanned<String>, key: &str) -> Result<DenyList, ConfigError> {
        let full = self.resolve(file.get_ref());
        let text = std::fs::read_to_string(&full).map_err(|source| ConfigError::Io { path: full.clone(), source })?;
        let mut list = DenyList::default();
        for (n, line) in text.lines().enumerate() {
            let entry = line.split('#').next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            let (kind, value) = DenyList::parse_entry(entry)
                .map_err(|message| ConfigError::config(&full, Some(n + 1), key, message))?;
            list.insert(kind, value);
        }
        Ok(list)
    }
}

/// An S3 CRL's list from the caller's fetched bytes; the error names the URI.
fn s3_crl(object: &S3Object, objects: &CrlObjects) -> Result<Crl, String> {
    let bytes = objects
        .get(object)
        .ok_or_else(|| format!("{object}: not fetched (the binary fetches S3 CRLs before loading; this one cannot)"))?;
    Crl::from_bytes(bytes).map_err(|why| format!("{object}: {why}"))
}

/// The common_name of a profile that sets none: any CN, or none.
const ANY_CN: &str = ".*";

/// Can a template text read the subject's CN? Every `subject` not followed by `.` and another field's name
/// counts (`subject.cn`, `subject["cn"]`, `subject | ...`, `for k, v in subject`): an over-approximation, so a
/// profile whose templates might read the CN requires one and the device is refused with a clear
/// SUBJECT_MISMATCH rather than held on an undefined variable.
fn reads_cn(text: &str) -> bool {
    text.match_indices("subject").any(|(at, word)| {
        let rest = &text[at + word.len()..];
        let Some(field) = rest.strip_prefix('.') else { return true };
        let name: String = field.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        name == "cn"
    })
}

/// A serial's lowercase hex as [`Certificate::serial_hex`] prints it: no leading zero bytes, an even number of
/// digits, so `00:0A:BC`, `0abc` and `abc` compare equal.
fn normalize_serial(digits: &str) -> String {
    let trimmed = digits.trim_start_matches('0');
    let trimmed = if trimmed.is_empty() { "0" } else { trimmed };
    if trimmed.len() % 2 == 1 { format!("0{trimmed}") } else { trimmed.to_owned() }
}

/// The 1-based line of byte offset `at` in `source`.
pub fn line_of(source: &str, at: usize) -> usize {
    source.get(..at).map_or(1, |s| s.matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_entries_name_one_kind_or_are_refused() {
        let ok = |e: &str| DenyList::parse_entry(e).unwrap_or((DenyKind::Serial, "ERR".into()));
        assert_eq!(ok("00:AB:cd"), (DenyKind::Serial, "abcd".into()));
        assert_eq!(ok("0abc"), (DenyKind::Serial, "0abc".into()));
        assert_eq!(ok("abc"), (DenyKind::Serial, "0abc".into()));
        assert_eq!(ok("serial:00:0a:bc"), (DenyKind::Serial, "0abc".into()));
        assert_eq!(ok(&"A".repeat(64)), (DenyKind::Sha256, "a".repeat(64)));
        assert_eq!(ok(&format!("SHA256:{}", "b".repeat(64))), (DenyKind::Sha256, "b".repeat(64)));
        assert_eq!(ok(&format!("sha1:{}", "C".repeat(40))), (DenyKind::Sha1, "c".repeat(40)));
        assert_eq!(ok(&format!("serial:{}", "1".repeat(40))), (DenyKind::Serial, "1".repeat(40)));
        for bad in [
            "xyz".to_owned(),
            "".to_owned(),
            "sha1:".to_owned(),
            "1".repeat(40), // SHA-1 or 20-octet serial: ambiguous
            "1".repeat(41), // neither
            "1".repeat(63),
            format!("sha1:{}", "1".repeat(64)),
            format!("sha256:{}", "1".repeat(40)),
            format!("md5:{}", "1".repeat(32)),
        ] {
            assert!(DenyList::parse_entry(&bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn line_numbers() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 1);
    }

    #[test]
    fn enums_parse_from_their_config_spelling() {
        assert_eq!("per-thing".parse::<PolicyMode>(), Ok(PolicyMode::PerThing));
        assert_eq!("revoke".parse::<OnReject>(), Ok(OnReject::Revoke));
        assert!("nope".parse::<OnDuplicate>().is_err());
    }
}

//! The shared state: configuration, workflow, secret, metrics. Built once at start-up (the rules and the workflow
//! over them swapped whole when new S3 CRLs come in), cloned per request.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jitp_core::engine::Settings;
use jitp_core::provision::Provisioner;
use jitp_core::review::{TemplateReport, lint_templates};
use jitp_core::rules::Rules;
use jitp_policy::policy::AwsContext;
use jitp_registry::registry::IotRegistry;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::confirmation::{Confirmations, DEFAULT_MAX_CONFIRMATIONS};
use crate::metrics::Metrics;

/// The environment variable `jitp serve` reads the intake secret from (named in [`TokenError::Missing`]).
pub const TOKEN_ENV: &str = "JITP_HTTP_TOKEN";
/// The request header that carries the intake secret.
pub const TOKEN_HEADER: &str = "x-jitp-token";
/// The largest event body accepted: the same bound as the parser's ([`jitp_registry::event::MAX_EVENT_BYTES`]);
/// a real event is about 300 bytes.
pub const EVENT_BODY_LIMIT: usize = jitp_registry::event::MAX_EVENT_BYTES;
/// The largest preview body accepted: a CA and a device certificate in PEM are a few KiB.
pub const PREVIEW_BODY_LIMIT: usize = 64 * 1024;

/// Shortest secret accepted: 16 bytes of a random token is 128 bits if generated well; shorter is a password.
const MIN_TOKEN_BYTES: usize = 16;
/// Longest secret accepted: header values beyond this are a mistake (a file's content, a certificate).
const MAX_TOKEN_BYTES: usize = 1024;

/// The clock: Unix seconds. Tests pin it (`Arc::new(|| jitp_testkit::NOW)`).
pub use jitp_pki::unix_time::Clock;

/// The intake secret is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Intake enabled but no secret given.
    #[error(
        "{TOKEN_ENV} is not set: set it to a shared secret of at least {MIN_TOKEN_BYTES} characters (the IoT rule's HTTP action sends it in the {TOKEN_HEADER} header), or serve without event intake (--no-intake)"
    )]
    Missing,
    /// Too short or too long.
    #[error("the intake secret is {len} bytes; it must be {MIN_TOKEN_BYTES} to {MAX_TOKEN_BYTES}")]
    Length {
        /// Its length.
        len: usize,
    },
    /// Not something an HTTP header can carry unchanged.
    #[error("the intake secret must be printable ASCII without spaces (it travels in an HTTP header)")]
    Characters,
}

/// The shared secret of event intake. Only its SHA-256 is kept; `Debug` shows nothing of it.
#[derive(Clone)]
pub struct IntakeToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for IntakeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IntakeToken(<redacted>)")
    }
}

impl IntakeToken {
    /// Check and keep a secret.
    pub fn new(secret: &str) -> Result<Self, TokenError> {
        let len = secret.len();
        if !(MIN_TOKEN_BYTES..=MAX_TOKEN_BYTES).contains(&len) {
            return Err(TokenError::Length { len });
        }
        if !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::Characters);
        }
        Ok(Self { digest: Sha256::digest(secret.as_bytes()).into() })
    }

    /// Does `presented` match? Constant time: both sides are hashed first, so neither the content nor the
    /// length of the secret shows in the timing.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented).into();
        bool::from(self.digest.ct_eq(&presented))
    }
}

/// Whether `POST /v1/events` is served, and with which secret.
#[derive(Debug, Clone)]
pub enum Intake {
    /// Events are accepted with this secret in `x-jitp-token`.
    Enabled(IntakeToken),
    /// Previews, lint, health and metrics only: `/v1/events` and `/v1/confirmation` are not routed (404).
    Disabled,
}

impl Intake {
    /// Intake with `secret`.
    pub fn token(secret: &str) -> Result<Self, TokenError> {
        IntakeToken::new(secret).map(Self::Enabled)
    }

    /// What `jitp serve` does: disabled with `--no-intake`, else intake with `secret` (`JITP_HTTP_TOKEN`), which
    /// must be given and not empty: the server refuses to start with open intake.
    pub fn new(no_intake: bool, secret: Option<&str>) -> Result<Self, TokenError> {
        match (no_intake, secret) {
            (true, _) => Ok(Self::Disabled),
            (false, Some(secret)) if !secret.is_empty() => Self::token(secret),
            (false, _) => Err(TokenError::Missing),
        }
    }
}

/// Tunables of the server.
#[derive(Debug, Clone)]
pub struct Options {
    /// A `/v1/*` request running longer is answered 503 with `Retry-After`. Keep it above the workflow's
    /// `Settings::retry_deadline` (20 s by default), so that a slow registry shows as the workflow's own transient
    /// ERROR record rather than as a bare timeout. An event cut off this way still runs to its end in the
    /// background; every step of the workflow is safe to repeat when the platform delivers it again.
    pub request_timeout: Duration,
    /// `/v1/*` requests handled at once; beyond, 503 with `Retry-After` at once (load shedding, no queue).
    pub max_concurrency: usize,
    /// The `Retry-After` advertised on 503 answers.
    pub retry_after: Duration,
    /// How long a successful readiness probe is reused, so that a busy health checker does not spend the
    /// DescribeCertificate quota the workflow needs. Failures are never reused.
    pub ready_cache: Duration,
    /// Bound on the readiness probe.
    pub ready_timeout: Duration,
    /// Destination confirmations kept (the first ones received; later ones are counted, never stored in their
    /// place). Default [`DEFAULT_MAX_CONFIRMATIONS`].
    pub max_confirmations: usize,
    /// Serve `POST /v1/preview` and `GET /v1/lint` without the intake secret even when intake is on
    /// (`jitp serve --public-previews`). They show the account's policies, so by default, with intake on, they
    /// need `x-jitp-token` like `POST /v1/events`. Without intake there is no secret and they are open anyway.
    pub public_previews: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            max_concurrency: 64,
            retry_after: Duration::from_secs(5),
            ready_cache: Duration::from_secs(10),
            ready_timeout: Duration::from_secs(5),
            max_confirmations: DEFAULT_MAX_CONFIRMATIONS,
            public_previews: false,
        }
    }
}

impl Options {
    /// `Retry-After` in whole seconds, at least 1.
    pub(crate) fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs().max(1)
    }
}

/// The rules in force and the workflow over them, swapped together when new S3 CRLs come in
/// ([`AppState::replace_rules`]): a request loads one snapshot and decides on it from start to end.
pub(crate) struct Snapshot {
    pub(crate) rules: Arc<Rules>,
    pub(crate) provisioner: Arc<Provisioner>,
}

/// Everything built once (the rules' CRLs swappable): the configuration (templates compiled), the workflow,
/// the lint report.
pub(crate) struct Shared {
    pub(crate) current: ArcSwap<Snapshot>,
    pub(crate) registry: Arc<dyn IotRegistry>,
    pub(crate) aws: AwsContext,
    pub(crate) intake: Intake,
    /// The templates' lint reports (fixed at start-up: a CRL refresh changes only the CRLs; `GET /v1/lint` adds
    /// the current CRLs' as of its request).
    pub(crate) lint: Vec<TemplateReport>,
    pub(crate) metrics: Metrics,
    /// Every destination confirmation received (the first `Options::max_confirmations` kept).
    pub(crate) confirmations: Mutex<Confirmations>,
    /// When the registry last answered the readiness probe.
    pub(crate) ready_at: Mutex<Option<Instant>>,
    /// Events being handled, so that shutdown waits for them even when their client has gone.
    pub(crate) tasks: TaskTracker,
}

/// The state every handler gets. Cheap to clone: a few `Arc`s.
#[derive(Clone)]
pub struct AppState {
    pub(crate) shared: Arc<Shared>,
    pub(crate) options: Arc<Options>,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) clock: Clock,
    /// Where audit lines go (stdout unless replaced).
    pub(crate) audit: jitp_core::audit::Sink,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.shared.current.load().rules.config().path)
            .field("intake", &self.shared.intake)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// The state for `rules` (loaded once, templates compiled) over `registry`, with the workflow `settings`
    /// (whose `aws` context previews and lint use too), default [`Options`] and the system clock.
    pub fn new(rules: Arc<Rules>, registry: Arc<dyn IotRegistry>, settings: Settings, intake: Intake) -> Self {
        let aws = settings.aws.clone();
        let lint = lint_templates(&rules, &aws);
        if lint.iter().any(TemplateReport::has_errors) {
            tracing::warn!(config = %rules.config().path.display(), "the loaded templates have lint errors; see GET /v1/lint");
        }
        let provisioner = Arc::new(Provisioner::new(rules.clone(), registry.clone(), settings));
        let options = Options::default();
        let permits = Arc::new(Semaphore::new(options.max_concurrency));
        let shared = Shared {
            current: ArcSwap::from_pointee(Snapshot { rules, provisioner }),
            registry,
            aws,
            intake,
            lint,
            metrics: Metrics::default(),
            confirmations: Mutex::new(Confirmations::default()),
            ready_at: Mutex::new(None),
            tasks: TaskTracker::new(),
        };
        Self {
            shared: Arc::new(shared),
            options: Arc::new(options),
            permits,
            clock: jitp_pki::unix_time::system_clock(),
            audit: jitp_core::audit::stdout(),
        }
    }

    /// Replace the [`Options`].
    pub fn with_options(mut self, options: Options) -> Self {
        self.permits = Arc::new(Semaphore::new(options.max_concurrency.max(1)));
        self.options = Arc::new(options);
        self
    }

    /// Write audit lines to `sink` instead of stdout (tests capture them).
    pub fn with_audit_sink(mut self, sink: jitp_core::audit::Sink) -> Self {
        self.audit = sink;
        self
    }

    /// Replace the clock (tests pin `jitp_testkit::NOW`).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Is `POST /v1/events` served?
    pub fn intake_enabled(&self) -> bool {
        matches!(self.shared.intake, Intake::Enabled(_))
    }

    /// The rules in force (the configuration with its current CRLs).
    pub fn rules(&self) -> Arc<Rules> {
        self.shared.current.load().rules.clone()
    }

    /// Put `rules` (the rules in force with new S3 CRLs, `Rules::with_crl_objects`) in force, with a workflow
    /// over them that keeps the CA cache ([`Provisioner::with_rules`]). Refused, nothing changes, if a CA
    /// already cached does not verify a new CRL. A request already running finishes on the snapshot it loaded;
    /// the next one loads the new.
    pub fn replace_rules(&self, rules: Arc<Rules>) -> Result<(), jitp_core::Error> {
        let current = self.shared.current.load_full();
        let provisioner = Arc::new(current.provisioner.with_rules(rules.clone())?);
        self.shared.current.store(Arc::new(Snapshot { rules, provisioner }));
        Ok(())
    }

    /// One consistent view of the rules and the workflow over them, for one request.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.current.load_full()
    }

    /// The options in force.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The secret `POST /v1/preview` and `GET /v1/lint` need: the intake secret, unless intake is off or the
    /// operator made them public ([`Options::public_previews`]).
    pub(crate) fn preview_token(&self) -> Option<&IntakeToken> {
        match &self.shared.intake {
            Intake::Enabled(token) if !self.options.public_previews => Some(token),
            Intake::Enabled(_) | Intake::Disabled => None,
        }
    }

    pub(crate) fn now(&self) -> i64 {
        (self.clock)()
    }

    pub(crate) fn tasks(&self) -> TaskTracker {
        self.shared.tasks.clone()
    }
}

/// Lock, shrugging off poisoning: every value behind these locks is replaced whole, never left half-written.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_rules() {
        assert!(IntakeToken::new("0123456789abcdef").is_ok());
        assert_eq!(IntakeToken::new("short").err(), Some(TokenError::Length { len: 5 }));
        assert_eq!(IntakeToken::new(&"x".repeat(2000)).err(), Some(TokenError::Length { len: 2000 }));
        assert_eq!(IntakeToken::new("0123456789abcdef ").err(), Some(TokenError::Characters));
        assert_eq!(IntakeToken::new("0123456789abcdef\n").err(), Some(TokenError::Characters));
    }

    #[test]
    fn token_matches_only_itself() {
        let token = IntakeToken::new("0123456789abcdef").ok();
        let token = token.as_ref();
        assert_eq!(token.map(|t| t.matches(b"0123456789abcdef")), Some(true));
        for other in [&b""[..], b"0123456789abcdeF", b"0123456789abcdef0", b"0123456789abcde"] {
            assert_eq!(token.map(|t| t.matches(other)), Some(false), "{other:?}");
        }
    }

    #[test]
    fn intake_needs_a_secret_unless_it_is_off() {
        assert!(matches!(Intake::new(true, None), Ok(Intake::Disabled)));
        assert!(matches!(Intake::new(true, Some("short")), Ok(Intake::Disabled)));
        assert!(matches!(Intake::new(false, Some("0123456789abcdef")), Ok(Intake::Enabled(_))));
        assert_eq!(Intake::new(false, None).err(), Some(TokenError::Missing));
        assert_eq!(Intake::new(false, Some("")).err(), Some(TokenError::Missing));
        assert_eq!(Intake::new(false, Some("short")).err(), Some(TokenError::Length { len: 5 }));
    }

    #[test]
    fn token_debug_is_redacted() {
        let token = IntakeToken::new("0123456789abcdef").map(|t| format!("{t:?}"));
        assert_eq!(token.as_deref(), Ok("IntakeToken(<redacted>)"));
    }
}

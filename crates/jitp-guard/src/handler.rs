//! The Lambda handler: one invocation is one connection attempt ([`crate::event`]); the answer is
//! `{"isAuthenticated": bool}`.
//!
//! The warm path makes no AWS call: the rules (profiles, CRLs, deny lists) and the registered CAs are one
//! [`Snapshot`], loaded once per invocation from an `ArcSwap`. A refresh (the S3 CRLs every
//! `JITP_CRL_REFRESH_SECONDS`, through jitp-wiring's `CrlRefresh`, the provisioning Lambda's; the registered CAs
//! every `JITP_CA_CACHE_TTL_SECS`) is started by the invocation that finds it due and runs beside it as a Tokio
//! task: no connect waits for S3 or AWS IoT, the one that starts it included (it decides on the snapshot in
//! force). The refresh builds the next snapshot whole and swaps it in; one runs at a time. This differs from the
//! provisioning Lambda, which refreshes before its event (a provisioning event can wait 50 ms; a connect should
//! not). Lambda freezes the sandbox between invocations, so a refresh may be paused mid-way and resume at the next
//! thaw; a fetch that outlives `FETCH_TIMEOUT` there fails like any other, and the last good snapshot stays.
//!
//! Failures: a malformed event is refused (MALFORMED_EVENT / MALFORMED_CERTIFICATE), never allowed, and never an
//! invocation error; nothing in the decision can fail otherwise. A refresh that fails keeps the last good
//! snapshot (one warning per failure streak). An init that cannot load the configuration, the S3 CRLs or the
//! registered CAs exits before the first event: Lambda reports the init error and every connect to the guarded
//! domain fails until it is fixed (the guard fails closed, see infra/README.md).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jitp_wiring::crl::CrlRefresh;
use lambda_runtime::LambdaEvent;
use serde_json::Value;

use crate::cas::CaSet;
use crate::decision::{Decision, decide};
use crate::event::{ConnectAnswer, connection_of, parse};
use crate::judge::{Clock, Config, IotRegistry, chain, system_clock};
use crate::record::{Counts, MetricTarget, refusal_line};
use crate::record::{Sink, stdout};
use crate::settings::{GuardSettings, Mode};

/// What a decision reads: the profiles and the registered CAs checked for them, swapped together.
#[derive(Debug)]
pub struct Snapshot {
    /// jitp.toml's profiles and their CRLs (not its templates: the guard does not render policies).
    pub config: Arc<Config>,
    /// The registered CAs, checked for `config`.
    pub cas: Arc<CaSet>,
}

/// The guard function. Cheap to clone.
#[derive(Clone)]
pub struct Guard {
    inner: Arc<Inner>,
}

struct Inner {
    snapshot: ArcSwap<Snapshot>,
    crls: CrlRefresh,
    registry: Arc<dyn IotRegistry>,
    /// The CA refresh period and when the CAs were last asked for.
    ca_every: Duration,
    cas_checked: Mutex<Instant>,
    /// In a CA refresh failure streak (its first failure was logged).
    ca_failing: AtomicBool,
    refreshing: AtomicBool,
    mode: Mode,
    clock: Clock,
    sink: Sink,
    counts: Counts,
    target: MetricTarget,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let snapshot = self.inner.snapshot.load();
        f.debug_struct("Guard")
            .field("config", &snapshot.config.path)
            .field("cas", &snapshot.cas.len())
            .field("mode", &self.inner.mode)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Guard`].
pub struct GuardBuilder {
    config: Arc<Config>,
    cas: CaSet,
    registry: Arc<dyn IotRegistry>,
    crls: CrlRefresh,
    ca_every: Duration,
    mode: Mode,
    clock: Clock,
    sink: Sink,
    metrics_every: Duration,
    target: MetricTarget,
}

impl std::fmt::Debug for GuardBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardBuilder").field("config", &self.config.path).finish_non_exhaustive()
    }
}

impl GuardBuilder {
    /// Use this clock instead of the system's.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Write lines here instead of stdout.
    pub fn sink(mut self, sink: Sink) -> Self {
        self.sink = sink;
        self
    }

    /// Refresh the S3 CRLs with this (from [`jitp_wiring::Settings::load_rules`]); default: none.
    pub fn crl_refresh(mut self, crls: CrlRefresh) -> Self {
        self.crls = crls;
        self
    }

    /// Ask the registry for the CAs again every `every` (default: the settings' `JITP_CA_CACHE_TTL_SECS`).
    pub fn ca_refresh(mut self, every: Duration) -> Self {
        self.ca_every = every;
        self
    }

    /// Enforce or report.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// The guard.
    pub fn build(self) -> Guard {
        Guard {
            inner: Arc::new(Inner {
                snapshot: ArcSwap::from_pointee(Snapshot { config: self.config, cas: Arc::new(self.cas) }),
                crls: self.crls,
                registry: self.registry,
                ca_every: self.ca_every,
                cas_checked: Mutex::new(Instant::now()),
                ca_failing: AtomicBool::new(false),
                refreshing: AtomicBool::new(false),
                mode: self.mode,
                clock: self.clock,
                sink: self.sink,
                counts: Counts::new(self.metrics_every),
                target: self.target,
            }),
        }
    }
}

impl jitp_wiring::lambda::Function for Guard {
    const NAME: &'static str = "jitp-guard";
    type Response = ConnectAnswer;
    type Error = std::convert::Infallible;

    fn handle(
        &self,
        event: LambdaEvent<Value>,
    ) -> impl std::future::Future<Output = Result<ConnectAnswer, std::convert::Infallible>> + Send {
        Guard::handle(self, event)
    }
}

impl Guard {
    /// A guard deciding with the profiles of `config` and the registered CAs `cas` (learnt from `registry`,
    /// which refreshes them), with the settings' mode, periods and metric target, the system clock and stdout.
    pub fn builder(
        config: Arc<Config>,
        cas: CaSet,
        registry: Arc<dyn IotRegistry>,
        settings: &GuardSettings,
    ) -> GuardBuilder {
        GuardBuilder {
            config,
            cas,
            registry,
            crls: CrlRefresh::none(),
            ca_every: Duration::from_secs(settings.common.ca_cache_ttl_secs),
            mode: settings.mode,
            clock: system_clock(),
            sink: stdout(),
            metrics_every: Duration::from_secs(u64::try_from(settings.metrics_seconds).unwrap_or(60)),
            target: MetricTarget { namespace: settings.metric_namespace.clone(), stack: settings.stack.clone() },
        }
    }

    /// The snapshot in force.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.snapshot.load_full()
    }

    /// The S3 CRLs' refresh (its rebuild count, for tests and the start-up line).
    pub fn crl_refresh(&self) -> &CrlRefresh {
        &self.inner.crls
    }

    /// Is a refresh running?
    pub fn refreshing(&self) -> bool {
        self.inner.refreshing.load(Ordering::Acquire)
    }

    /// One invocation: the decision, its record, the answer. Never an error: a malformed event is refused.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<ConnectAnswer, std::convert::Infallible> {
        Ok(self.answer(&event.payload, &event.context.request_id))
    }

    /// [`Guard::handle`] without the runtime: decide about `payload`, record it, answer.
    pub fn answer(&self, payload: &Value, request_id: &str) -> ConnectAnswer {
        let instant = Instant::now();
        self.start_refresh_if_due(instant);
        let now = (self.inner.clock)();
        let (decision, connection) = match parse(payload) {
            Ok(event) => {
                let snapshot = self.inner.snapshot.load();
                let decision = decide(&snapshot.config, &snapshot.cas, &event.device, now);
                (decision, event.connection())
            }
            Err(rejection) => (Decision::refused(rejection), connection_of(payload)),
        };
        let enforced = self.inner.mode == Mode::Enforce;
        let allowed = decision.allowed() || !enforced;
        if decision.allowed() {
            self.inner.counts.allowed();
        } else {
            if !enforced {
                self.inner.counts.allowed_report_only();
            }
            (self.inner.sink)(&refusal_line(&decision, &connection, enforced, request_id, now, &self.inner.target));
        }
        if let Some(line) = self.inner.counts.take_due(instant, now, &self.inner.target) {
            (self.inner.sink)(&line);
        }
        ConnectAnswer { is_authenticated: allowed }
    }

    /// The allow counts now, whatever their period (a test; a shutdown).
    pub fn flush_counts(&self) {
        let line = self.inner.counts.take((self.inner.clock)(), &self.inner.target);
        (self.inner.sink)(&line);
    }

    fn cas_due(&self, now: Instant) -> bool {
        self.inner.cas_checked.lock().is_ok_and(|t| now.saturating_duration_since(*t) >= self.inner.ca_every)
    }

    /// Start a refresh beside this invocation if one is due and none is running (needs a Tokio runtime; without
    /// one nothing starts and the next invocation tries again).
    fn start_refresh_if_due(&self, now: Instant) {
        if !(self.inner.crls.due(now) || self.cas_due(now)) || self.refreshing() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let guard = self.clone();
        runtime.spawn(async move { guard.refresh().await });
    }

    /// Refresh what is due (the S3 CRLs, the registered CAs), build the next snapshot and swap it in. One at a
    /// time: a call while another runs returns at once.
    pub async fn refresh(&self) {
        if self.inner.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let current = self.inner.snapshot.load_full();
        let mut next: Option<Snapshot> = None;
        // New CRLs are taken only with the CAs re-checked for them (a CRL that no longer verifies against a
        // registered CA refuses them, and the last good ones stay), as the provisioning Lambda's provisioner does.
        let accept = |config: Arc<Config>| current.cas.for_config(&config).map(|cas| (config, Arc::new(cas)));
        if let Some((config, cas)) = self.inner.crls.refresh_with(current.config.as_ref(), Instant::now(), accept).await
        {
            next = Some(Snapshot { config, cas });
        }
        let now = Instant::now();
        if self.cas_due(now) {
            if let Ok(mut checked) = self.inner.cas_checked.lock() {
                *checked = now;
            }
            let config = next.as_ref().map_or_else(|| current.config.clone(), |s| s.config.clone());
            match CaSet::load(self.inner.registry.as_ref(), &config).await {
                Ok(cas) => {
                    if self.inner.ca_failing.swap(false, Ordering::Relaxed) {
                        tracing::info!("registered CA refresh succeeded again");
                    }
                    next = Some(Snapshot { config, cas: Arc::new(cas) });
                }
                Err(e) => {
                    if !self.inner.ca_failing.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            error = %chain(&e),
                            retry_in_secs = self.inner.ca_every.as_secs(),
                            "registered CA refresh failed: the last good CAs stay in force (logged once until a refresh succeeds)"
                        );
                    }
                }
            }
        }
        if let Some(next) = next {
            self.inner.snapshot.store(Arc::new(next));
        }
        self.inner.refreshing.store(false, Ordering::Release);
    }
}

//! The scheduled drift report (`jitp-drift`): `jitp reconcile --plan` run by a Step Functions state machine on a
//! schedule, in shards, its totals written as CloudWatch metrics, so that drift is seen without anyone running a
//! command.
//!
//! A plan of 100,000 devices takes about 2 h 47 min at AWS's quotas (ListThingPrincipals, 10 a second, sets the
//! pace): far beyond one invocation's 15 minutes. So the inventory is planned in shards
//! ([`jitp_core::reconcile::Shard`], the things whose `jitp_certificate` starts with a prefix), one shard per
//! invocation, and the state machine retries a shard alone when it fails. Three events, told apart by their one
//! key ([`DriftEvent`]):
//!
//! - `{"shards": 2}`: the shards of 2 hex digits, `{"shards": ["00", ..., "ff"]}`, for the state machine's Map;
//! - `{"shard": "3f"}`: that shard's plan, [`ShardReport`] (its counts, and its devices with drift);
//! - `{"summarize": [ShardReport, ...]}`: the totals, [`Summary`], checked to be every shard of one length
//!   exactly once, and written as ONE CloudWatch Embedded Metric Format line ([`emf_line`]) to stdout: Lambda's
//!   log group turns it into metrics, so the function needs no `cloudwatch:PutMetricData`.
//!
//! The function is its own binary, not the provisioning function's with one more event shape: it runs under a
//! read-only role (`drift_actions` in infra/iam-actions.json: exactly the calls a plan makes), and its code
//! builds no `Provisioner`, so no event can make it write. A plan is read-only, so a retried shard is safe.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::{ArcSwap, ArcSwapOption};

use clap::Parser;
use jitp_core::audit::{self, Sink};
use jitp_core::engine::Settings;
use jitp_core::reconcile::{Counts, Reconciler, Shard};
use jitp_core::rules::Rules;
use jitp_pki::unix_time::Clock;
use jitp_registry::registry::IotRegistry;
use jitp_wiring::AwsArgs;
use jitp_wiring::crl::CrlRefresh;
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The metrics' default namespace.
pub const DEFAULT_NAMESPACE: &str = "jitp/Drift";
/// The name of the one dimension: the deployment (the stack's name).
pub const DIMENSION: &str = "Stack";
/// Errors of one shard's devices logged per invocation at most (the counts have them all).
const LOGGED_ERRORS: usize = 20;

/// Everything the drift function takes from its environment (read once at init by the binary,
/// [`jitp_wiring::parse::from_vars`]). Set `JITP_QUOTA_INSTANCES` to count this function's concurrency and the
/// provisioning function's together: both spend the account's quotas.
#[derive(Debug, Clone, Parser)]
#[command(name = "jitp-drift", about = "The jitp drift report function; configured by its environment variables.")]
pub struct DriftSettings {
    /// What every jitp binary takes: configuration, registry, policy context, retries, pacing.
    #[command(flatten)]
    pub common: jitp_wiring::Settings,
    /// The CloudWatch namespace of the drift metrics.
    #[arg(long, env = "JITP_DRIFT_NAMESPACE", default_value = DEFAULT_NAMESPACE,
          value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub metric_namespace: String,
    /// The value of the metrics' one dimension, `Stack`: the deployment's name.
    #[arg(long, env = "JITP_DRIFT_STACK", default_value = "jitp",
          value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub stack: String,
}

/// Open the registry (default `aws`), load jitp.toml from `config_path` (templates compiled, S3 CRLs fetched:
/// one that cannot be is an init error, as for the provisioning function) with the settings' overrides, and build
/// the drift handler (system clock, stdout), which refreshes the S3 CRLs every `JITP_CRL_REFRESH_SECONDS`.
pub async fn build(
    settings: &DriftSettings,
    config_path: &std::path::Path,
) -> Result<DriftHandler, jitp_wiring::Error> {
    let opened = settings.common.open_registry(jitp_wiring::RegistryArg::Aws).await?;
    let (rules, crls) = settings.common.load_rules(config_path, &opened).await?;
    Ok(DriftHandler::with(
        Arc::new(rules),
        opened.registry.clone(),
        settings,
        opened.sdk_region.clone(),
        jitp_pki::unix_time::system_clock(),
        audit::stdout(),
        crls,
    ))
}

/// One invocation's event: exactly one of its keys.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum DriftEvent {
    /// List the shards of this many hex digits (1 to [`Shard::MAX_DIGITS`]).
    Shards(usize),
    /// Plan this shard.
    Shard(Shard),
    /// Sum these shards' reports.
    Summarize(Vec<ShardReport>),
}

impl DriftEvent {
    /// Parse an event, with a message that says what the three shapes are.
    pub fn parse(payload: Value) -> Result<Self, DriftError> {
        serde_json::from_value(payload).map_err(|e| {
            DriftError::BadEvent(format!(
                "{e}; a drift event is {{\"shards\": DIGITS}}, {{\"shard\": \"HEX\"}} or {{\"summarize\": [REPORT, ...]}}"
            ))
        })
    }
}

/// What one shard's plan found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardReport {
    /// The shard.
    pub shard: Shard,
    /// Devices per group.
    pub counts: Counts,
    /// Devices with drift, each once ([`Counts::drifted`]).
    pub drifted: u64,
}

/// The totals over every shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Shards summed.
    pub shards: usize,
    /// Devices per group, over all shards.
    pub counts: Counts,
    /// Devices with drift, each once.
    pub drifted: u64,
}

/// What an invocation returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum DriftResponse {
    /// `{"shards": [...]}`.
    Shards {
        /// The shards, in order.
        shards: Vec<Shard>,
    },
    /// One shard's report.
    Shard(ShardReport),
    /// The totals.
    Summary(Summary),
}

/// An invocation that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DriftError {
    /// The event is not one of the three shapes, or its content is wrong: no retry can fix it.
    #[error("bad drift event: {0}")]
    BadEvent(String),
    /// A call kept failing in a way a retry may fix (throttled, unavailable): retry the shard.
    #[error("transient failure, plan the shard again: {0}")]
    Transient(String),
    /// The plan could not be made (a permissions problem, a registry answer jitp cannot work with).
    #[error("the plan failed: {0}")]
    Plan(String),
}

impl DriftError {
    /// The `errorType` reported to the Runtime API (what the state machine's Retry matches).
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::BadEvent(_) => "jitp.BadDriftEvent",
            Self::Transient(_) => "jitp.TransientFailure",
            Self::Plan(_) => "jitp.PlanFailed",
        }
    }
}

impl From<DriftError> for Diagnostic {
    fn from(e: DriftError) -> Self {
        Diagnostic { error_type: e.error_type().to_owned(), error_message: e.to_string() }
    }
}

/// Sum `reports`: every shard of one length exactly once, or an error naming what is wrong (a shard counted
/// twice, or missing, would make the totals lie).
pub fn summarize(reports: &[ShardReport]) -> Result<Summary, DriftError> {
    let Some(first) = reports.first() else {
        return Err(DriftError::BadEvent("summarize: no shard reports".to_owned()));
    };
    let digits = first.shard.as_str().len();
    let mut seen = BTreeSet::new();
    let mut counts = Counts::default();
    for report in reports {
        if report.shard.as_str().len() != digits {
            return Err(DriftError::BadEvent(format!(
                "summarize: shard {} is not of {digits} digits like shard {}",
                report.shard, first.shard
            )));
        }
        if !seen.insert(report.shard.clone()) {
            return Err(DriftError::BadEvent(format!("summarize: shard {} is reported twice", report.shard)));
        }
        counts.add(&report.counts);
    }
    let missing: Vec<Shard> = Shard::all(digits).into_iter().filter(|s| !seen.contains(s)).collect();
    if let Some(shard) = missing.first() {
        return Err(DriftError::BadEvent(format!(
            "summarize: {} of the {} shards of {digits} digits are missing (the first: {shard})",
            missing.len(),
            Shard::all(digits).len()
        )));
    }
    let drifted = counts.drifted();
    Ok(Summary { shards: seen.len(), counts, drifted })
}

/// The metrics of a summary, name and value, in the order the EMF line lists them.
pub fn metrics(summary: &Summary) -> [(&'static str, u64); 9] {
    let c = &summary.counts;
    [
        ("Devices", c.devices),
        ("DevicesUnchanged", c.unchanged),
        ("DevicesPolicyChange", c.policy_changes),
        ("DevicesThingChange", c.thing_changes),
        ("DevicesWouldReject", c.would_reject),
        ("DevicesRetired", c.retired),
        ("DevicesUnaccounted", c.unaccounted),
        ("DevicesErrored", c.errors),
        ("DevicesDrifted", summary.drifted),
    ]
}

/// The summary as one CloudWatch Embedded Metric Format line: `_aws` names the metrics (unit Count) in
/// `namespace` with the one dimension [`DIMENSION`] = `stack`, and the values are top-level keys beside it, with
/// `eventType` `jitp.drift` and the shard count so a person reading the log sees what the metrics came from.
/// `at` is when the totals were made, Unix seconds (EMF's Timestamp is milliseconds).
///
/// Hand-written with serde_json: the EMF crates on crates.io (metrics_cloudwatch_embedded) are a `metrics`
/// recorder flushed per invocation through their own Lambda layer, for counters scattered through a program;
/// this is one line of nine gauges, built in one place, whose shape a test pins.
pub fn emf_line(summary: &Summary, namespace: &str, stack: &str, at: i64) -> String {
    let metrics = metrics(summary);
    let definitions: Vec<Value> = metrics.iter().map(|(name, _)| json!({"Name": name, "Unit": "Count"})).collect();
    let mut line = serde_json::Map::new();
    line.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": at.saturating_mul(1000),
            "CloudWatchMetrics": [{"Namespace": namespace, "Dimensions": [[DIMENSION]], "Metrics": definitions}],
        }),
    );
    line.insert(DIMENSION.to_owned(), json!(stack));
    line.insert("eventType".to_owned(), json!("jitp.drift"));
    line.insert("shards".to_owned(), json!(summary.shards));
    for (name, value) in metrics {
        line.insert(name.to_owned(), json!(value));
    }
    Value::Object(line).to_string()
}

/// The drift function: the configuration, the registry, the clock and the metric line's sink, built once at
/// init. Cheap to clone.
#[derive(Clone)]
pub struct DriftHandler {
    inner: Arc<Inner>,
}

struct Inner {
    /// The rules in force; replaced whole by a CRL refresh, which also drops the reconciler built on the old ones.
    rules: ArcSwap<Rules>,
    /// The S3 CRLs' refresh, checked at the start of each shard's invocation.
    crls: CrlRefresh,
    registry: Arc<dyn IotRegistry>,
    aws: AwsArgs,
    sdk_region: Option<String>,
    settings: Settings,
    /// Built on the first invocation unless the policy context is configured (the function's ARN fills it), and
    /// again after a CRL refresh changed the rules.
    reconciler: ArcSwapOption<Reconciler>,
    clock: Clock,
    sink: Sink,
    namespace: String,
    stack: String,
}

impl std::fmt::Debug for DriftHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriftHandler")
            .field("config", &self.inner.rules.load().config().path)
            .field("namespace", &self.inner.namespace)
            .field("stack", &self.inner.stack)
            .finish_non_exhaustive()
    }
}

impl jitp_wiring::lambda::Function for DriftHandler {
    const NAME: &'static str = "jitp-drift";
    type Response = DriftResponse;
    type Error = DriftError;

    fn handle(&self, event: LambdaEvent<Value>) -> impl Future<Output = Result<DriftResponse, DriftError>> + Send {
        DriftHandler::handle(self, event)
    }
}

impl DriftHandler {
    /// A handler over `registry` with today's `rules` and the settings' pacing, retries and policy context; the
    /// system clock, the metric line to stdout.
    pub fn new(rules: Arc<Rules>, registry: Arc<dyn IotRegistry>, settings: &DriftSettings) -> Self {
        Self::with(
            rules,
            registry,
            settings,
            None,
            jitp_pki::unix_time::system_clock(),
            audit::stdout(),
            CrlRefresh::none(),
        )
    }

    /// As [`DriftHandler::new`], with the SDK's region (used in policies when the settings name none), a clock
    /// and a sink of its own (tests), and the S3 CRLs' refresh (from [`jitp_wiring::Settings::load_rules`]).
    pub fn with(
        rules: Arc<Rules>,
        registry: Arc<dyn IotRegistry>,
        settings: &DriftSettings,
        sdk_region: Option<String>,
        clock: Clock,
        sink: Sink,
        crls: CrlRefresh,
    ) -> Self {
        let aws = settings.common.aws.clone();
        let mut workflow = settings.common.workflow(jitp_policy::policy::AwsContext::default());
        let reconciler = ArcSwapOption::empty();
        if aws.is_complete() {
            workflow.aws = aws.context();
            reconciler.store(Some(Arc::new(Reconciler::new(rules.clone(), registry.clone(), workflow.clone()))));
        }
        Self {
            inner: Arc::new(Inner {
                rules: ArcSwap::new(rules),
                crls,
                registry,
                aws,
                sdk_region,
                settings: workflow,
                reconciler,
                clock,
                sink,
                namespace: settings.metric_namespace.clone(),
                stack: settings.stack.clone(),
            }),
        }
    }

    /// The rules in force (the configuration, its templates, the S3 CRLs of the last good refresh).
    pub fn rules(&self) -> Arc<Rules> {
        self.inner.rules.load_full()
    }

    /// The S3 CRLs' refresh (its rebuild count, for tests and the start-up line).
    pub fn crl_refresh(&self) -> &CrlRefresh {
        &self.inner.crls
    }

    /// Refresh the S3 CRLs if their TTL has passed, before a shard is planned: at the start of an invocation,
    /// not in a background task, for the reason the provisioning function gives (Lambda freezes the sandbox
    /// between invocations). A shard is planned on one rule set: the reconciler built on the old rules is
    /// dropped, and the next one is built on the new.
    async fn refresh_crls(&self) {
        if !self.inner.crls.due(Instant::now()) {
            return;
        }
        let current = self.inner.rules.load_full();
        if let Some(rules) = self.inner.crls.refresh(&*current, Instant::now()).await {
            self.inner.rules.store(rules);
            self.inner.reconciler.store(None);
        }
    }

    fn reconciler(&self, ctx: &Context) -> Arc<Reconciler> {
        if let Some(built) = self.inner.reconciler.load_full() {
            return built;
        }
        let built = Arc::new({
            let sdk_region = self.inner.sdk_region.as_deref();
            let aws = jitp_wiring::aws::for_function(&self.inner.aws, &ctx.invoked_function_arn, sdk_region);
            let settings = Settings { aws, ..self.inner.settings.clone() };
            Reconciler::new(self.inner.rules.load_full(), self.inner.registry.clone(), settings)
        });
        self.inner.reconciler.store(Some(built.clone()));
        built
    }

    /// Handle one invocation.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<DriftResponse, DriftError> {
        let (payload, ctx) = event.into_parts();
        match DriftEvent::parse(payload)? {
            DriftEvent::Shards(digits) => {
                if !(1..=Shard::MAX_DIGITS).contains(&digits) {
                    return Err(DriftError::BadEvent(format!(
                        "shards: {digits} digits; a shard is 1 to {} hex digits",
                        Shard::MAX_DIGITS
                    )));
                }
                Ok(DriftResponse::Shards { shards: Shard::all(digits) })
            }
            DriftEvent::Shard(shard) => {
                self.refresh_crls().await;
                self.plan_shard(&shard, &ctx).await.map(DriftResponse::Shard)
            }
            DriftEvent::Summarize(reports) => {
                let summary = summarize(&reports)?;
                let now = (self.inner.clock)();
                (self.inner.sink)(&emf_line(&summary, &self.inner.namespace, &self.inner.stack, now));
                Ok(DriftResponse::Summary(summary))
            }
        }
    }

    async fn plan_shard(&self, shard: &Shard, ctx: &Context) -> Result<ShardReport, DriftError> {
        let now = (self.inner.clock)();
        let plan = self.reconciler(ctx).plan_shard(shard, now).await.map_err(|e| {
            let text = jitp_pki::report::chain(&e);
            if e.is_transient() { DriftError::Transient(text) } else { DriftError::Plan(text) }
        })?;
        for error in plan.errors.iter().take(LOGGED_ERRORS) {
            tracing::warn!(shard = %shard, thing = %error.thing, error = %error.message, "a device the plan could not look at");
        }
        let drifted = plan.counts.drifted();
        tracing::info!(shard = %shard, devices = plan.counts.devices, drifted, errors = plan.counts.errors, "shard planned");
        Ok(ShardReport { shard: shard.clone(), counts: plan.counts, drifted })
    }
}

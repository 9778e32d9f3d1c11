//! The handler: one invocation is either one certificate-registered event (the IoT rule's Lambda action) or a
//! batch of them (the rule's SQS action, consumed through an event source mapping).
//!
//! What the platform sees:
//! - Direct event: PROVISIONED, ALREADY_PROVISIONED and REJECTED are final and return success (the verdict is
//!   in the audit log); a transient failure returns an error, so Lambda's asynchronous invocation retries it; a
//!   malformed event is logged with MALFORMED_EVENT and returns success, since no retry can fix it.
//! - SQS batch: a partial batch response (`batchItemFailures`) naming the messages that failed transiently, so
//!   only those come back; a poison message (malformed body) is logged and deleted, never reported. A batch
//!   whose records do not parse as SQS messages at all fails whole, so its messages reach the dead-letter queue.
//!
//! One audit line per event goes to stdout as a JSON object whose top-level keys are the [`AuditRecord`]'s, with
//! `trigger` (`direct` or `sqs`), `requestId` and the SQS `messageId`, so CloudWatch metric filters such as
//! `{ $.outcome = "REJECTED" }` match it. The function's own log is tracing's, JSON lines on stdout too
//! ([`jitp_wiring::log::init_tracing`]).

use std::sync::Arc;
use std::time::Instant;

use arc_swap::{ArcSwap, ArcSwapOption};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt as _;
use jitp_core::audit::AuditRecord;
use jitp_core::engine::Settings;
use jitp_core::provision::Provisioner;
use jitp_core::rules::Rules;
use jitp_pki::reason::Rejection;
use jitp_registry::event::RegistrationEvent;
use jitp_registry::memory::MemoryRegistry;
use jitp_registry::registry::IotRegistry;
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::Value;
use tracing::Instrument as _;

use jitp_core::audit::{self, Sink};
use jitp_wiring::AwsArgs;
use jitp_wiring::crl::CrlRefresh;

use crate::settings::LambdaSettings;

/// The current time, Unix seconds: jitp-core's clock. The binary reads the system clock; tests pass a fixed one.
pub use jitp_pki::unix_time::Clock;

/// What an invocation returns.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Response {
    /// A direct event's audit record (ignored by asynchronous invocations; handy for `aws lambda invoke`).
    Direct(Box<AuditRecord>),
    /// An SQS batch's partial batch response.
    Batch(SqsBatchResponse),
}

/// An invocation that should be delivered again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// A transient failure (throttling, AWS IoT unavailable) outlasted the retry budget.
    #[error("transient failure for certificate {certificate}, deliver the event again: {message}")]
    Transient {
        /// The certificate id from the event.
        certificate: String,
        /// The cause.
        message: String,
    },
    /// An operator's mistake (a template, a CA, an unmanaged thing) or the profile's own rules (outcome HELD) stop
    /// a device a configuration change could accept. Its certificate stays PENDING; the event fails so that
    /// Lambda's retries, then the on-failure destination or dead-letter queue, keep it until the mistake is fixed
    /// and it is redriven.
    #[error("held for an operator's fix, certificate {certificate} left PENDING_ACTIVATION: {reason}: {message}")]
    Held {
        /// The certificate id from the event.
        certificate: String,
        /// The reason code.
        reason: String,
        /// What the operator must fix.
        message: String,
    },
    /// An event shaped like an SQS batch (`Records` from `aws:sqs`) whose records do not parse.
    #[error("an SQS batch whose records do not parse: {0}")]
    MalformedBatch(String),
    /// SQS messages failed transiently but carry no messageId to report: fail the whole batch instead.
    #[error("{0} SQS message(s) failed transiently and have no messageId; failing the whole batch")]
    UnreportableBatch(usize),
}

impl HandlerError {
    /// The `errorType` reported to the Runtime API.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Transient { .. } => "jitp.TransientFailure",
            Self::Held { .. } => "jitp.HeldForOperator",
            Self::MalformedBatch(_) => "jitp.MalformedBatch",
            Self::UnreportableBatch(_) => "jitp.UnreportableBatch",
        }
    }
}

impl From<HandlerError> for Diagnostic {
    fn from(e: HandlerError) -> Self {
        Diagnostic { error_type: e.error_type().to_owned(), error_message: e.to_string() }
    }
}

/// Does `payload` look like an SQS event: an object whose `Records` are all `"eventSource": "aws:sqs"`?
pub fn is_sqs_batch(payload: &Value) -> bool {
    match payload.get("Records").and_then(Value::as_array) {
        Some(records) if !records.is_empty() => {
            records.iter().all(|r| r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs"))
        }
        _ => false,
    }
}

/// The function: templates, registry, clock and log sink, built once at init. Cheap to clone.
#[derive(Clone)]
pub struct Handler {
    inner: Arc<Inner>,
}

struct Inner {
    /// The rules in force; replaced whole by a CRL refresh, with the provisioner below.
    rules: ArcSwap<Rules>,
    /// The S3 CRLs' refresh, checked at the start of each invocation ([`Handler::handle`]).
    crls: Arc<CrlRefresh>,
    registry: Arc<dyn IotRegistry>,
    /// The configured part of the policy context; the function's ARN fills the rest.
    aws: AwsArgs,
    /// The region the AWS SDK resolved, if the registry is AWS IoT.
    sdk_region: Option<String>,
    sqs_concurrency: usize,
    settings: Settings,
    /// Built on the first invocation unless the `aws.*` context is fully configured: the account and partition
    /// then come from the function's own ARN. Replaced whole when a CRL refresh changes the rules (its CA cache
    /// holds the old CRLs' proofs): an event loads it once and runs on that one.
    provisioner: ArcSwapOption<Provisioner>,
    clock: Clock,
    sink: Sink,
    /// Saved after each invocation (`JITP_REGISTRY=memory:PATH`).
    memory: Option<Arc<MemoryRegistry>>,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("config", &self.inner.rules.load().config().path)
            .field("sqs_concurrency", &self.inner.sqs_concurrency)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Handler`].
pub struct HandlerBuilder {
    rules: Arc<Rules>,
    crls: CrlRefresh,
    registry: Arc<dyn IotRegistry>,
    aws: AwsArgs,
    sdk_region: Option<String>,
    sqs_concurrency: usize,
    settings: Settings,
    clock: Clock,
    sink: Sink,
    memory: Option<Arc<MemoryRegistry>>,
}

impl std::fmt::Debug for HandlerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerBuilder").field("config", &self.rules.config().path).finish_non_exhaustive()
    }
}

impl HandlerBuilder {
    /// Use this clock instead of the system's.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Write audit lines here instead of stdout.
    pub fn sink(mut self, sink: Sink) -> Self {
        self.sink = sink;
        self
    }

    /// Workflow tunables (`aws` is replaced by the one derived from the [`LambdaSettings`] and the function's ARN).
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// The region the AWS SDK resolved, used in policies when the settings name none.
    pub fn sdk_region(mut self, region: Option<String>) -> Self {
        self.sdk_region = region;
        self
    }

    /// Refresh the S3 CRLs with this (from [`jitp_wiring::Settings::load_rules`]); default: none.
    pub fn crl_refresh(mut self, crls: CrlRefresh) -> Self {
        self.crls = crls;
        self
    }

    /// Save this memory registry after each invocation.
    pub fn save_after_each_invocation(mut self, memory: Arc<MemoryRegistry>) -> Self {
        self.memory = Some(memory);
        self
    }

    /// The handler.
    pub fn build(self) -> Handler {
        let provisioner = ArcSwapOption::empty();
        let mut settings = self.settings;
        if self.aws.is_complete() {
            settings.aws = self.aws.context();
            provisioner.store(Some(Arc::new(Provisioner::new(
                self.rules.clone(),
                self.registry.clone(),
                settings.clone(),
            ))));
        }
        Handler {
            inner: Arc::new(Inner {
                rules: ArcSwap::new(self.rules),
                crls: Arc::new(self.crls),
                registry: self.registry,
                aws: self.aws,
                sdk_region: self.sdk_region,
                sqs_concurrency: self.sqs_concurrency,
                settings,
                provisioner,
                clock: self.clock,
                sink: self.sink,
                memory: self.memory,
            }),
        }
    }
}

/// Where an event came from, for the audit line.
#[derive(Debug, Clone, Copy)]
enum Trigger<'a> {
    Direct,
    Sqs { message_id: Option<&'a str> },
}

impl<'a> Trigger<'a> {
    fn name(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Sqs { .. } => "sqs",
        }
    }

    fn message_id(self) -> Option<&'a str> {
        match self {
            Self::Direct => None,
            Self::Sqs { message_id } => message_id,
        }
    }
}

impl jitp_wiring::lambda::Function for Handler {
    const NAME: &'static str = "jitp-lambda";
    type Response = Response;
    type Error = HandlerError;

    fn handle(&self, event: LambdaEvent<Value>) -> impl Future<Output = Result<Response, HandlerError>> + Send {
        Handler::handle(self, event)
    }
}

impl Handler {
    /// A handler over `registry` with the profiles and templates of `rules`, the system clock and stdout.
    pub fn builder(rules: Arc<Rules>, registry: Arc<dyn IotRegistry>, settings: &LambdaSettings) -> HandlerBuilder {
        HandlerBuilder {
            rules,
            crls: CrlRefresh::none(),
            registry,
            aws: settings.common.aws.clone(),
            sdk_region: None,
            sqs_concurrency: settings.sqs_concurrency,
            settings: settings.common.workflow(jitp_policy::policy::AwsContext::default()),
            clock: jitp_pki::unix_time::system_clock(),
            sink: audit::stdout(),
            memory: None,
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

    /// Refresh the S3 CRLs if their TTL has passed, before this invocation decides anything.
    ///
    /// Why here and not in a background task: Lambda freezes the sandbox between invocations, so a task's sleep
    /// would not run on time, and a refresh caught by the freeze mid-fetch would thaw with a stale connection at
    /// some later invocation. Checked at the start of each invocation, the refresh happens exactly when the
    /// TTL has passed and an event needs the rules; the invocation that finds it due pays the conditional
    /// GetObject (a 304 when nothing changed). A sandbox runs one invocation at a time, so no event of this
    /// function is in flight during the swap; the swap is still whole (rules and provisioner loaded once per
    /// event), so an SQS batch decides all its messages on one rule set.
    async fn refresh_crls(&self) {
        if !self.inner.crls.due(Instant::now()) {
            return;
        }
        let current = self.inner.rules.load_full();
        let provisioner = self.inner.provisioner.load_full();
        // The new rules are taken only with a provisioner whose cached CAs verify the new CRLs.
        let accept = |rules: Arc<Rules>| match &provisioner {
            Some(p) => p.with_rules(rules.clone()).map(|p| (rules, Some(Arc::new(p)))).map_err(|e| e.to_string()),
            None => Ok((rules, None)),
        };
        if let Some((rules, next)) = self.inner.crls.refresh_with(&*current, Instant::now(), accept).await {
            self.inner.rules.store(rules);
            if next.is_some() {
                self.inner.provisioner.store(next);
            }
        }
    }

    fn provisioner(&self, ctx: &Context) -> Arc<Provisioner> {
        if let Some(built) = self.inner.provisioner.load_full() {
            return built;
        }
        let built = Arc::new({
            let sdk_region = self.inner.sdk_region.as_deref();
            let aws = jitp_wiring::aws::for_function(&self.inner.aws, &ctx.invoked_function_arn, sdk_region);
            let settings = Settings { aws, ..self.inner.settings.clone() };
            Provisioner::new(self.inner.rules.load_full(), self.inner.registry.clone(), settings)
        });
        // Kept only if no other call stored one first (the first one stored wins; they are equivalent).
        let previous = self.inner.provisioner.compare_and_swap(&None::<Arc<Provisioner>>, Some(built.clone()));
        match &*previous {
            Some(first) => first.clone(),
            None => built,
        }
    }

    /// Handle one invocation: an SQS batch or a direct event, told apart by shape.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Response, HandlerError> {
        let (payload, ctx) = event.into_parts();
        self.refresh_crls().await;
        let result = if is_sqs_batch(&payload) {
            match serde_json::from_value::<SqsEvent>(payload) {
                Ok(batch) => self.handle_sqs(batch, &ctx).await.map(Response::Batch),
                // Not from SQS (whose every field fits): fail the whole batch rather than drop it, so that its
                // messages end in the queue's dead-letter queue for someone to look at.
                Err(e) => Err(HandlerError::MalformedBatch(e.to_string())),
            }
        } else {
            self.handle_direct(payload, &ctx).await.map(|r| Response::Direct(Box::new(r)))
        };
        if let Some(Err(e)) = self.inner.memory.as_ref().map(|memory| memory.save()) {
            tracing::error!(error = %e, "cannot save the memory registry");
        }
        result
    }

    /// Handle a direct event: success unless the failure is transient or held for an operator.
    pub async fn handle_direct(&self, payload: Value, ctx: &Context) -> Result<AuditRecord, HandlerError> {
        // The runtime has decoded the payload already: parse the value, not its bytes again. Its size is bounded
        // by Lambda's payload limit; the parser's byte limit guards the paths that hand over bytes (SQS, HTTP).
        let record = self.run(jitp_registry::event::from_value(payload), ctx, Trigger::Direct).await;
        if record.outcome == jitp_core::audit::Outcome::Held {
            return Err(HandlerError::Held {
                certificate: record.certificate_id.clone().unwrap_or_default(),
                reason: record.reason.map(|r| r.as_str().to_owned()).unwrap_or_default(),
                message: record.message,
            });
        }
        if record.is_retryable() {
            return Err(HandlerError::Transient {
                certificate: record.certificate_id.clone().unwrap_or_default(),
                message: record.message,
            });
        }
        Ok(record)
    }

    /// Handle an SQS batch, up to `JITP_SQS_CONCURRENCY` messages at once; report the transient failures.
    pub async fn handle_sqs(&self, batch: SqsEvent, ctx: &Context) -> Result<SqsBatchResponse, HandlerError> {
        let concurrency = self.inner.sqs_concurrency.max(1);
        let results: Vec<(Option<String>, bool)> = futures::stream::iter(batch.records)
            .map(|message| async move {
                let retry = self.handle_message(&message, ctx).await;
                (message.message_id, retry)
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let mut response = SqsBatchResponse::default();
        let mut unreportable = 0;
        for (message_id, retry) in results {
            match (retry, message_id) {
                (false, _) => {}
                (true, Some(id)) => response.add_failure(id),
                (true, None) => unreportable += 1,
            }
        }
        if unreportable > 0 {
            return Err(HandlerError::UnreportableBatch(unreportable));
        }
        Ok(response)
    }

    /// One SQS message; `true` if it should come back.
    async fn handle_message(&self, message: &SqsMessage, ctx: &Context) -> bool {
        let trigger = Trigger::Sqs { message_id: message.message_id.as_deref() };
        // The IoT rule's SQS action writes the event JSON as the body (its `useBase64` must be off).
        let body = message.body.as_deref().unwrap_or_default();
        self.run(jitp_registry::event::parse(body.as_bytes()), ctx, trigger).await.is_retryable()
    }

    async fn run(
        &self,
        event: Result<RegistrationEvent, Rejection>,
        ctx: &Context,
        trigger: Trigger<'_>,
    ) -> AuditRecord {
        let span = match trigger {
            Trigger::Direct => tracing::info_span!("jitp.event", trigger = "direct", request_id = %ctx.request_id),
            Trigger::Sqs { message_id } => tracing::info_span!(
                "jitp.event",
                trigger = "sqs",
                request_id = %ctx.request_id,
                message_id = message_id.unwrap_or_default()
            ),
        };
        let now = (self.inner.clock)();
        let record = self.provisioner(ctx).handle_parsed(event, now).instrument(span).await;
        let origin = audit::Origin {
            trigger: trigger.name(),
            request_id: Some(&ctx.request_id),
            message_id: trigger.message_id(),
        };
        (self.inner.sink)(&record.line(&origin));
        record.count();
        record
    }
}

//! The handlers, and the answer of the admission layers in front of `/v1/*` when they refuse (`refused`).

use std::net::SocketAddr;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use http_body_util::LengthLimitError;
use jitp_core::audit::{self, AuditRecord, Outcome};
use jitp_core::decide::check;
use jitp_core::review::{LintReport, crl_reports};
use jitp_pki::ReasonCode;
use jitp_pki::ids::{CaCertificateId, CertificateId};
use jitp_registry::registry::RegistryError;
use serde::Deserialize;
use tracing::Instrument as _;

use crate::confirmation::{self, Kept, Origin, Recognised};
use crate::error::AppError;
use crate::metrics::Refusal;
use crate::state::{AppState, EVENT_BODY_LIMIT, Intake, IntakeToken, PREVIEW_BODY_LIMIT, TOKEN_HEADER, lock};

/// The span every request's log lines carry: method, path and request id (never headers: the secret is one).
pub(crate) fn request_span(request: &Request) -> tracing::Span {
    let id = request.headers().get(crate::REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("-");
    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
}

/// What the admission layers in front of `/v1/*` ([`crate::app`]: tower's load shedding over a concurrency limit
/// over a timeout) refused, as the 503 with `Retry-After` the client gets, counted and logged.
pub(crate) fn refused(state: &AppState, error: &tower::BoxError) -> AppError {
    let retry_after = state.options.retry_after_secs();
    if error.is::<tower::load_shed::error::Overloaded>() {
        state.shared.metrics.refused(Refusal::Overloaded);
        tracing::warn!(limit = state.options.max_concurrency, "concurrency limit reached; shedding");
        return AppError::Overloaded { retry_after };
    }
    if error.is::<tower::timeout::error::Elapsed>() {
        let timeout = state.options.request_timeout;
        state.shared.metrics.refused(Refusal::Timeout);
        tracing::warn!(timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX), "request timed out");
        return AppError::Timeout { after: timeout, retry_after };
    }
    AppError::Internal(format!("admission: {error}"))
}

/// Read a body of at most `limit` bytes: a declared length over it is refused before reading anything.
///
/// Not tower-http's `RequestBodyLimitLayer`: a layer answers before the handler, so a stranger would learn a
/// preview's limit before its secret is checked (tests/access.rs), and its 413 is not the JSON error naming what
/// and the limit that every other refusal is. The streamed limit is http-body-util's `Limited`, through axum.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    what: &'static str,
) -> Result<Bytes, AppError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(AppError::PayloadTooLarge { what, limit });
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let inner = e.into_inner();
        if inner.is::<LengthLimitError>() {
            AppError::PayloadTooLarge { what, limit }
        } else {
            AppError::BadRequest(format!("cannot read the request body: {inner}"))
        }
    })
}

/// `POST /v1/events`: one certificate-registered event (or the destination confirmation) from an IoT rule.
pub(crate) async fn event(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let Intake::Enabled(token) = &state.shared.intake else {
        return Err(AppError::NotFound);
    };
    let bytes = read_body(&headers, body, EVENT_BODY_LIMIT, "event").await.inspect_err(|e| {
        if matches!(e, AppError::PayloadTooLarge { .. }) {
            state.shared.metrics.refused(Refusal::TooLarge);
        }
    })?;
    let authenticated = headers.get(TOKEN_HEADER).is_some_and(|v| token.matches(v.as_bytes()));
    match confirmation::recognise(&bytes) {
        Recognised::NotConfirmation => {}
        Recognised::Valid(message) => {
            let origin = Origin::new(peer.map(|Extension(ConnectInfo(addr))| addr), &headers);
            return Ok(record_confirmation(&state, message, origin, authenticated));
        }
        Recognised::Invalid(why) if authenticated => return Err(AppError::BadRequest(why)),
        // Unauthenticated and not even a well-formed confirmation: say no more than to any stranger.
        Recognised::Invalid(_) => {}
    }
    if !authenticated {
        state.shared.metrics.refused(Refusal::Unauthorized);
        tracing::warn!(header_present = headers.contains_key(TOKEN_HEADER), "event refused: wrong or missing secret");
        return Err(AppError::Unauthorized);
    }
    let request_id = headers.get(crate::REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let record = handle_event(&state, bytes, request_id).await?;
    match record.outcome {
        Outcome::Error | Outcome::Held => {
            Err(AppError::Retry { record: Box::new(record), retry_after: state.options.retry_after_secs() })
        }
        Outcome::Rejected if record.reason == Some(ReasonCode::MalformedEvent) => {
            Err(AppError::MalformedEvent(Box::new(record)))
        }
        Outcome::Provisioned | Outcome::AlreadyProvisioned | Outcome::Rejected => Ok(Json(record).into_response()),
    }
}

/// Run the workflow in a tracked task: it finishes even if the client goes away or the request times out (a
/// half-done convergence is safe but pointless), shutdown waits for it, and its audit line and metrics are
/// written either way.
async fn handle_event(state: &AppState, bytes: Bytes, request_id: Option<String>) -> Result<AuditRecord, AppError> {
    let now = state.now();
    let worker = state.clone();
    let work = async move {
        let record = worker.snapshot().provisioner.handle_bytes(&bytes, now).await;
        let origin = audit::Origin { trigger: "http", request_id: request_id.as_deref(), message_id: None };
        (worker.audit)(&record.line(&origin));
        worker.shared.metrics.event(&record);
        record
    };
    state
        .shared
        .tasks
        .spawn(work.instrument(tracing::Span::current()))
        .await
        .map_err(|e| AppError::Internal(format!("the event task failed: {e}")))
}

/// Check the secret in `x-jitp-token`: 401 (and counted) when missing or wrong.
pub(crate) fn authenticate(state: &AppState, token: &IntakeToken, headers: &HeaderMap) -> Result<(), AppError> {
    if headers.get(TOKEN_HEADER).is_some_and(|v| token.matches(v.as_bytes())) {
        return Ok(());
    }
    state.shared.metrics.refused(Refusal::Unauthorized);
    tracing::warn!(header_present = headers.contains_key(TOKEN_HEADER), "refused: wrong or missing secret");
    Err(AppError::Unauthorized)
}

fn record_confirmation(
    state: &AppState,
    message: confirmation::Confirmation,
    origin: Origin,
    authenticated: bool,
) -> Response {
    state.shared.metrics.confirmation();
    let received_at = jitp_pki::unix_time::rfc3339(state.now());
    let arn = message.arn.clone();
    let limit = state.options.max_confirmations;
    let peer = origin.peer.clone().unwrap_or_else(|| "-".into());
    let kept = lock(&state.shared.confirmations).record(message, received_at, origin, authenticated, limit);
    let body = match kept {
        Kept::Yes(seq) => {
            tracing::warn!(
                seq,
                %arn,
                %peer,
                token_verified = authenticated,
                "IoT rule destination confirmation received; read it with GET /v1/confirmation and confirm the destination"
            );
            serde_json::json!({
                "status": "recorded",
                "seq": seq,
                "arn": arn,
                "message": "destination confirmation recorded, not acted on: an operator confirms it (GET /v1/confirmation)",
            })
        }
        Kept::Dropped(seq) => {
            state.shared.metrics.confirmation_dropped();
            tracing::warn!(
                seq,
                %arn,
                %peer,
                token_verified = authenticated,
                limit,
                "IoT rule destination confirmation NOT kept: the first {limit} are kept already; see GET /v1/confirmation"
            );
            serde_json::json!({
                "status": "dropped",
                "seq": seq,
                "arn": arn,
                "message": format!("destination confirmation not kept: {limit} were received before it and are kept"),
            })
        }
    };
    Json(body).into_response()
}

/// What `GET /v1/confirmation` tells the operator before the list.
const CONFIRMATION_NOTE: &str = "Anyone who can reach this server can post a destination confirmation, and jitp \
cannot tell AWS's from a forgery: these are every one received since start, oldest first, none acted on. Confirm \
only the one whose arn is the topic rule destination you created (aws iot list-topic-rule-destinations), and never \
one whose enableUrl or confirmationToken you do not expect. AWS's own message comes without the secret \
(token_verified false); origin.headers are the sender's claims. If dropped is above 0 and none matches, restart \
jitp serve and have AWS send a new one (aws iot update-topic-rule-destination --arn ARN --status IN_PROGRESS).";

/// `GET /v1/confirmation`: every destination confirmation kept, oldest first, for the operator (needs the secret).
pub(crate) async fn confirmation(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    let Intake::Enabled(token) = &state.shared.intake else {
        return Err(AppError::NotFound);
    };
    authenticate(&state, token, &headers)?;
    let store = lock(&state.shared.confirmations);
    if store.received() == 0 {
        return Err(AppError::NoConfirmation);
    }
    let mut entries = Vec::with_capacity(store.kept().len());
    for stored in store.kept() {
        let mut entry = serde_json::to_value(stored).map_err(|e| AppError::Internal(e.to_string()))?;
        if let Some(map) = entry.as_object_mut() {
            map.insert(
                "confirm_with".into(),
                format!(
                    "aws iot confirm-topic-rule-destination --confirmation-token '{}' (or open enableUrl), only if arn is your destination",
                    stored.message.confirmation_token
                )
                .into(),
            );
        }
        entries.push(entry);
    }
    let body = serde_json::json!({
        "note": CONFIRMATION_NOTE,
        "limit": state.options.max_confirmations,
        "received": store.received(),
        "kept": entries.len(),
        "dropped": store.dropped(),
        "confirmations": entries,
    });
    Ok(Json(body).into_response())
}

/// The body of `POST /v1/preview`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewRequest {
    /// The registered CA certificate, PEM.
    ca_pem: String,
    /// The device certificate, PEM.
    cert_pem: String,
    /// The CA's id in AWS IoT (default: SHA-256 of its DER).
    #[serde(default)]
    ca_id: Option<String>,
    /// Decide as of this time, RFC 3339 (default: now).
    #[serde(default)]
    at: Option<String>,
}

/// A preview's optional `ca_id` (64 hex) and `at` (RFC 3339; default: now), shared with `POST /v1/explain`.
pub(crate) fn ca_id_and_time(
    state: &AppState,
    ca_id: Option<&str>,
    at: Option<&str>,
) -> Result<(Option<CaCertificateId>, i64), AppError> {
    let ca_id = ca_id
        .map(str::parse::<CaCertificateId>)
        .transpose()
        .map_err(|e| AppError::BadRequest(format!("ca_id: {e}")))?;
    let now = match at {
        None => state.now(),
        Some(at) => time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
            .map(|t| t.unix_timestamp())
            .map_err(|e| AppError::BadRequest(format!("at: not an RFC 3339 time ({e}); e.g. 2026-01-01T00:00:00Z")))?,
    };
    Ok((ca_id, now))
}

/// `POST /v1/preview`: what `jitp check --format json` says about a certificate. No side effects. Needs the
/// secret when intake is on, unless `Options::public_previews`.
pub(crate) async fn preview(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    // Before reading the body: a stranger gets nothing, not even a parse error.
    if let Some(token) = state.preview_token() {
        authenticate(&state, token, &headers)?;
    }
    let bytes = read_body(&headers, body, PREVIEW_BODY_LIMIT, "preview request").await?;
    let request: PreviewRequest = serde_json::from_slice(&bytes).map_err(|e| {
        AppError::BadRequest(format!(
            "the body must be {{\"ca_pem\": PEM, \"cert_pem\": PEM, \"ca_id\"?: 64 hex, \"at\"?: RFC 3339}}: {e}"
        ))
    })?;
    let (ca_id, now) = ca_id_and_time(&state, request.ca_id.as_deref(), request.at.as_deref())?;
    let report = check(
        &state.snapshot().rules,
        request.ca_pem.as_bytes(),
        request.cert_pem.as_bytes(),
        ca_id.as_ref(),
        now,
        &state.shared.aws,
    );
    state.shared.metrics.preview(report.decision);
    Ok(Json(report).into_response())
}

/// `GET /v1/lint`: the lint report of the templates loaded at start-up and of the CRLs in force (the S3 ones as
/// last refreshed), as `jitp lint --format json`
/// prints it: the CRLs' freshness (nextUpdate) as of the request, so a CRL going stale under a running server
/// shows here (and `ok` turns false under `crl_policy = "enforce"`). Needs the secret when previews do
/// ([`AppState::preview_token`]).
pub(crate) async fn lint(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    if let Some(token) = state.preview_token() {
        authenticate(&state, token, &headers)?;
    }
    let crls = crl_reports(&state.rules(), state.now());
    Ok(Json(LintReport::new(state.shared.lint.clone(), crls)).into_response())
}

/// `GET /healthz`: the process is up.
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: configuration loaded (it is, or the state would not exist) and the registry reachable.
///
/// The probe is a DescribeCertificate of an id no certificate has: NotFound (or any answer from AWS IoT) means
/// reachable; Unavailable, a timeout or InvalidRequest (credentials, permissions, region) mean not ready.
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Response, AppError> {
    let fresh = lock(&state.shared.ready_at).is_some_and(|at| at.elapsed() < state.options.ready_cache);
    if !fresh {
        let zero: CertificateId = "0".repeat(64).parse().map_err(|e| AppError::Internal(format!("probe id: {e}")))?;
        let probe =
            tokio::time::timeout(state.options.ready_timeout, state.shared.registry.describe_certificate(&zero));
        let ready = match probe.await {
            Ok(Ok(_) | Err(RegistryError::NotFound(_) | RegistryError::Throttled(_))) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", state.options.ready_timeout)),
        };
        if let Err(why) = ready {
            *lock(&state.shared.ready_at) = None;
            tracing::warn!(error = %why, "not ready: registry probe failed");
            return Err(AppError::NotReady);
        }
        *lock(&state.shared.ready_at) = Some(Instant::now());
    }
    let body = serde_json::json!({
        "status": "ready",
        "profiles": state.rules().config().profiles.len(),
        "intake": state.intake_enabled(),
    });
    Ok(Json(body).into_response())
}

/// `GET /metrics`: Prometheus text exposition.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let in_flight = state.options.max_concurrency.max(1).saturating_sub(state.permits.available_permits());
    let text = state.shared.metrics.render(in_flight);
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// Anything else.
pub(crate) async fn not_found() -> AppError {
    AppError::NotFound
}

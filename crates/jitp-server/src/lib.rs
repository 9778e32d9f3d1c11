//! jitp-server: the HTTP face of jitp, an axum [`Router`] built by [`app`] and run by [`serve`].
//!
//! Two users. Platforms that run jitp as a container fed by an AWS IoT rule's HTTP action post each
//! certificate-registered event to `POST /v1/events` (authenticated by a shared secret in `x-jitp-token`), and
//! the security team previews what a certificate would get (`POST /v1/preview`), asks whether a device or a
//! policy document allows a request (`POST /v1/explain`, as `jitp explain`) and lints the loaded templates
//! (`GET /v1/lint`); these show the account's policies, so they need the same secret when intake is on (unless
//! [`Options::public_previews`]). `GET /healthz`, `GET /readyz` and `GET /metrics` serve the orchestrator and Prometheus.
//!
//! Everything that decides lives in jitp-core: an event goes through the same [`Provisioner`] as in the Lambda,
//! a preview through the same [`jitp_core::decide::check`] as `jitp check`, an explanation through
//! [`jitp_core::explain`] as `jitp explain`. This crate only maps HTTP onto them:
//! bounded bodies, authentication, a concurrency limit and a timeout that answer 503 with `Retry-After`, a request
//! id on every log line, and one error type ([`AppError`]) for every non-2xx answer.
//!
//! [`Provisioner`]: jitp_core::provision::Provisioner

mod confirmation;
mod error;
mod explain;
mod handlers;
mod metrics;
mod state;

use std::future::Future;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::HeaderName;
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub use confirmation::{Confirmation, DEFAULT_MAX_CONFIRMATIONS, MAX_ORIGIN_VALUE, ORIGIN_HEADERS, Origin};
pub use error::AppError;
pub use state::{
    AppState, Clock, EVENT_BODY_LIMIT, Intake, IntakeToken, Options, PREVIEW_BODY_LIMIT, TOKEN_ENV, TOKEN_HEADER,
    TokenError,
};

/// The request id header, set when the client did not send one and echoed on the response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The service: every route, with request ids, tracing, and (on `/v1/*`) the concurrency limit and the timeout.
///
/// `/v1/events` and `/v1/confirmation` exist only when intake is enabled ([`Intake::Enabled`]); without it they
/// answer 404 like any unknown path.
pub fn app(state: AppState) -> Router {
    let mut api = Router::new()
        .route("/v1/preview", post(handlers::preview))
        .route("/v1/explain", post(explain::explain))
        .route("/v1/lint", get(handlers::lint));
    if state.intake_enabled() {
        api = api.route("/v1/events", post(handlers::event)).route("/v1/confirmation", get(handlers::confirmation));
    }
    // Admission, tower's: a request over the concurrency limit is shed at once (no queue), one past the request
    // timeout is dropped (its event task goes on, see handlers::handle_event); both answer 503 with Retry-After
    // (handlers::refused). One semaphore for every /v1/* route (GlobalConcurrencyLimit: a route_layer builds one
    // service per route), the one /metrics reads jitp_http_in_flight from. route_layer: the limit and the timeout
    // guard the work routes only, so health checks and scrapes are still answered when the server is saturated.
    let refused = {
        let state = state.clone();
        move |error: tower::BoxError| {
            let answer = handlers::refused(&state, &error);
            std::future::ready(answer)
        }
    };
    let admission = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(refused))
        .load_shed()
        .layer(GlobalConcurrencyLimitLayer::with_semaphore(state.permits.clone()))
        .timeout(state.options.request_timeout);
    let api = api.route_layer(admission);
    let token_header = HeaderName::from_static(TOKEN_HEADER);
    Router::new()
        .merge(api)
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .route("/metrics", get(handlers::metrics))
        .fallback(handlers::not_found)
        .with_state(state)
        // Layers run outermost last-added: the token is marked sensitive before anything can log headers, the
        // request id is set before the span that carries it is opened, and copied onto the response inside it.
        .layer(PropagateRequestIdLayer::new(HeaderName::from_static(REQUEST_ID_HEADER)))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(handlers::request_span)
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(HeaderName::from_static(REQUEST_ID_HEADER), MakeRequestUuid))
        .layer(SetSensitiveRequestHeadersLayer::new([token_header]))
}

/// Serve [`app`] on `listener` until `shutdown` completes, then finish in-flight requests and events and return.
///
/// The graceful part: after `shutdown`, no new connection is accepted, idle keep-alive connections are closed,
/// requests already running are answered, and events whose client went away are still carried to the end (each
/// is bounded by the workflow's own retry deadline). Pass [`shutdown_signal`] for SIGTERM and ctrl-c.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tasks = state.tasks();
    match listener.local_addr() {
        Ok(addr) => tracing::info!(%addr, intake = state.intake_enabled(), "jitp server listening"),
        Err(e) => tracing::warn!(error = %e, "jitp server listening on an unknown address"),
    }
    if state.preview_token().is_none() {
        let why = if state.intake_enabled() {
            "--public-previews"
        } else {
            "no intake (--no-intake), so no secret to ask for"
        };
        tracing::warn!(
            why,
            "POST /v1/preview and GET /v1/lint are open to anyone who can reach this server: they show the account's policies"
        );
    }
    // With connect info, so that destination confirmations record the peer they came from.
    let service = app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(shutdown).await?;
    tasks.close();
    if !tasks.is_empty() {
        tracing::info!(events = tasks.len(), "waiting for in-flight events");
    }
    tasks.wait().await;
    tracing::info!("jitp server stopped");
    Ok(())
}

/// Completes on SIGTERM (what container orchestrators send) or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}

//! `POST /v1/explain`: `jitp explain` over HTTP, with the previews' token rules (the secret in `x-jitp-token`
//! when previews need one, checked before the body is read).
//!
//! Body: the query (action, topic or resource, client id...: `jitp_core::explain::Query`) under `"query"`, and
//! either `"policy"` (a policy document, as JSON or as a string) or the device's `"ca_pem"` and `"cert_pem"`
//! (`"ca_id"`?, `"at"`?), whose policy is rendered from the loaded templates exactly as provisioning would.
//! Answer: 200 with `{"decision": ..., ...}` whatever the decision; 400 for a malformed body, query or policy.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use jitp_core::explain::{Query, explain_device, explain_policy};
use serde::Deserialize;

use crate::error::AppError;
use crate::handlers::{authenticate, ca_id_and_time, read_body};
use crate::state::{AppState, PREVIEW_BODY_LIMIT};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplainRequest {
    query: Query,
    /// A policy document: a JSON object, or its text.
    #[serde(default)]
    policy: Option<serde_json::Value>,
    #[serde(default)]
    ca_pem: Option<String>,
    #[serde(default)]
    cert_pem: Option<String>,
    #[serde(default)]
    ca_id: Option<String>,
    #[serde(default)]
    at: Option<String>,
}

const SHAPE: &str = "the body must be {\"query\": {\"action\": ..., \"topic\"|\"resource\": ..., \"client_id\"?: ...}, \
                     and \"policy\": DOCUMENT or \"ca_pem\": PEM, \"cert_pem\": PEM (\"ca_id\"?, \"at\"?)}";

pub(crate) async fn explain(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    if let Some(token) = state.preview_token() {
        authenticate(&state, token, &headers)?;
    }
    let bytes = read_body(&headers, body, PREVIEW_BODY_LIMIT, "explain request").await?;
    let request: ExplainRequest =
        serde_json::from_slice(&bytes).map_err(|e| AppError::BadRequest(format!("{SHAPE}: {e}")))?;
    let aws = &state.shared.aws;
    let explanation = match (&request.policy, &request.ca_pem, &request.cert_pem) {
        (Some(policy), None, None) if request.ca_id.is_none() && request.at.is_none() => {
            let text = match policy {
                serde_json::Value::String(text) => text.clone(),
                document => document.to_string(),
            };
            explain_policy(&text, &request.query, aws)
        }
        (None, Some(ca), Some(cert)) => {
            let (ca_id, now) = ca_id_and_time(&state, request.ca_id.as_deref(), request.at.as_deref())?;
            let rules = &state.snapshot().rules;
            explain_device(rules, ca.as_bytes(), cert.as_bytes(), ca_id.as_ref(), now, aws, &request.query)
        }
        _ => return Err(AppError::BadRequest(SHAPE.to_owned())),
    }
    .map_err(|e| AppError::BadRequest(e.to_string()))?;
    Ok(Json(explanation).into_response())
}

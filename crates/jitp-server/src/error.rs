//! The one error type of the server: every non-2xx answer is an [`AppError`].

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jitp_core::audit::AuditRecord;
use jitp_pki::ReasonCode;

use crate::state::TOKEN_HEADER;

/// Why a request was not answered 200.
///
/// Bad input gets a 4xx and a JSON body saying what was wrong, `{"error": "...", "reason"?: CODE}`; a transient
/// condition gets a 503 with `Retry-After`; an internal fault gets a generic `{"error": "internal error"}` and
/// an error line in the log with the details.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The intake secret is missing or wrong. 401.
    #[error("missing or wrong {TOKEN_HEADER} header")]
    Unauthorized,
    /// No such route. 404.
    #[error("no such resource")]
    NotFound,
    /// No destination confirmation has arrived yet. 404.
    #[error("no topic rule destination confirmation has been received since the server started")]
    NoConfirmation,
    /// The body is over its limit. 413.
    #[error("the {what} is over the {limit}-byte limit")]
    PayloadTooLarge {
        /// What the body is (`event`, `preview request`).
        what: &'static str,
        /// The limit, bytes.
        limit: usize,
    },
    /// The body is not what the endpoint takes. 400.
    #[error("{0}")]
    BadRequest(String),
    /// The event is not a certificate-registered event (MALFORMED_EVENT). 400, with the audit record.
    #[error("{}", .0.message)]
    MalformedEvent(Box<AuditRecord>),
    /// The workflow hit a transient failure: deliver the event again. 503 with `Retry-After` and the record.
    #[error("the event could not be handled now ({}); deliver it again", .record.message)]
    Retry {
        /// The ERROR record.
        record: Box<AuditRecord>,
        /// Seconds.
        retry_after: u64,
    },
    /// The concurrency limit is reached. 503 with `Retry-After`.
    #[error("the server is handling as many requests as it may; retry later")]
    Overloaded {
        /// Seconds.
        retry_after: u64,
    },
    /// The request ran past the request timeout. 503 with `Retry-After`.
    #[error("the request took longer than {after:?}; retry later")]
    Timeout {
        /// The request timeout.
        after: std::time::Duration,
        /// Seconds.
        retry_after: u64,
    },
    /// The registry cannot be reached. 503.
    #[error("not ready: the registry is not reachable")]
    NotReady,
    /// A fault of the server itself; the message is logged, never sent. 500.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound | Self::NoConfirmation => StatusCode::NOT_FOUND,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BadRequest(_) | Self::MalformedEvent(_) => StatusCode::BAD_REQUEST,
            Self::Retry { .. } | Self::Overloaded { .. } | Self::Timeout { .. } | Self::NotReady => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Retry { retry_after, .. } | Self::Overloaded { retry_after } | Self::Timeout { retry_after, .. } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = self.retry_after();
        let mut body = serde_json::Map::new();
        match &self {
            Self::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                body.insert("error".into(), "internal error".into());
            }
            Self::MalformedEvent(record) => {
                body.insert("error".into(), self.to_string().into());
                body.insert("reason".into(), ReasonCode::MalformedEvent.as_str().into());
                body.insert("record".into(), serde_json::to_value(record).unwrap_or_default());
            }
            Self::Retry { record, .. } => {
                body.insert("error".into(), self.to_string().into());
                body.insert("record".into(), serde_json::to_value(record).unwrap_or_default());
            }
            _ => {
                body.insert("error".into(), self.to_string().into());
            }
        }
        let mut response = (status, Json(serde_json::Value::Object(body))).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

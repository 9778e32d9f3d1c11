//! SDK errors to [`RegistryError`], written once for every operation.
//!
//! The modeled error code (`ProvideErrorMetadata::code`, taken from `x-amzn-ErrorType` or the body) decides
//! first; where the code is absent or unknown the raw HTTP status decides. Errors that never reached the
//! service (timeouts, connection failures) are transient; a request the SDK could not even build is not, nor
//! is a success answer that cannot be read (the same request gets the same answer: a retry only burns the
//! deadline, 22 attempts over 20 s, before the same error).

use aws_sdk_iot::config::http::HttpResponse;
use aws_sdk_iot::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_iot::operation::RequestId;
use jitp_registry::registry::{Operation, RegistryError};

/// Map one SDK error of `op`. `E` is the operation's modeled error type.
pub(crate) fn map_sdk_error<E>(op: Operation, err: &SdkError<E, HttpResponse>) -> RegistryError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let kind = classify(e.code(), status);
            let message = detail(op, e.code(), e.message(), status, err.request_id());
            kind(message)
        }
        // The service answered, but not in the shape of the API: judge by the status. A 2xx or 3xx that cannot
        // be parsed is Unreadable (not retried); an error status keeps its meaning (a 5xx is still transient).
        SdkError::ResponseError(_) => {
            let kind = classify(None, status);
            kind(format!("{op}: unreadable response (HTTP {}): {}", shown_status(status), DisplayErrorContext(err)))
        }
        // The request was never sent: a bug in what jitp asked for, not something a retry fixes.
        SdkError::ConstructionFailure(_) => {
            RegistryError::InvalidRequest(format!("{op}: request not built: {}", DisplayErrorContext(err)))
        }
        SdkError::TimeoutError(_) => {
            RegistryError::Unavailable(format!("{op}: timed out: {}", DisplayErrorContext(err)))
        }
        SdkError::DispatchFailure(_) => {
            RegistryError::Unavailable(format!("{op}: request not delivered: {}", DisplayErrorContext(err)))
        }
        // `SdkError` is non-exhaustive; whatever comes next is treated as a retryable failure.
        _ => RegistryError::Unavailable(format!("{op}: {}", DisplayErrorContext(err))),
    }
}

/// The variant for a service error code, falling back to the HTTP status.
fn classify(code: Option<&str>, status: Option<u16>) -> fn(String) -> RegistryError {
    match code {
        Some("ThrottlingException" | "LimitExceededException" | "TooManyRequestsException") => RegistryError::Throttled,
        Some(
            "ServiceUnavailableException"
            | "InternalFailureException"
            | "InternalException"
            | "InternalServerException",
        ) => RegistryError::Unavailable,
        Some("ResourceAlreadyExistsException") => RegistryError::AlreadyExists,
        Some("ResourceNotFoundException") => RegistryError::NotFound,
        Some("VersionsLimitExceededException") => RegistryError::VersionsLimitExceeded,
        Some("VersionConflictException") => RegistryError::VersionConflict,
        Some("InvalidRequestException" | "UnauthorizedException") => RegistryError::InvalidRequest,
        Some(
            "CertificateStateException"
            | "ConflictException"
            | "DeleteConflictException"
            | "ConflictingResourceUpdateException",
        ) => RegistryError::Conflict,
        // No code: a 2xx or 3xx here is a success body the SDK could not parse (it reports that as an unmodeled
        // service error).
        _ => match status {
            Some(429) => RegistryError::Throttled,
            Some(400..=499) => RegistryError::InvalidRequest,
            Some(200..=399) => RegistryError::Unreadable,
            _ => RegistryError::Unavailable,
        },
    }
}

fn detail(
    op: Operation,
    code: Option<&str>,
    message: Option<&str>,
    status: Option<u16>,
    request_id: Option<&str>,
) -> String {
    let mut out = format!("{op}: {} (HTTP {})", code.unwrap_or("unknown error"), shown_status(status));
    if let Some(m) = message.filter(|m| !m.is_empty()) {
        out.push_str(": ");
        out.push_str(m);
    }
    if let Some(id) = request_id {
        out.push_str(" [request id ");
        out.push_str(id);
        out.push(']');
    }
    out
}

fn shown_status(status: Option<u16>) -> String {
    status.map_or_else(|| "-".to_owned(), |s| s.to_string())
}

/// A short name for an outcome, for logs.
pub(crate) fn outcome(err: &RegistryError) -> &'static str {
    match err {
        RegistryError::NotFound(_) => "not_found",
        RegistryError::AlreadyExists(_) => "already_exists",
        RegistryError::Conflict(_) => "conflict",
        RegistryError::VersionConflict(_) => "version_conflict",
        RegistryError::VersionsLimitExceeded(_) => "versions_limit_exceeded",
        RegistryError::Throttled(_) => "throttled",
        RegistryError::Unavailable(_) => "unavailable",
        RegistryError::InvalidRequest(_) => "invalid_request",
        RegistryError::Unreadable(_) => "unreadable",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(code: Option<&str>, status: Option<u16>) -> &'static str {
        outcome(&classify(code, status)(String::new()))
    }

    #[test]
    fn codes_decide_before_status() {
        assert_eq!(kind(Some("ThrottlingException"), Some(400)), "throttled");
        assert_eq!(kind(Some("LimitExceededException"), Some(410)), "throttled");
        assert_eq!(kind(Some("ServiceUnavailableException"), Some(503)), "unavailable");
        assert_eq!(kind(Some("InternalFailureException"), Some(500)), "unavailable");
        assert_eq!(kind(Some("InternalException"), Some(500)), "unavailable");
        assert_eq!(kind(Some("ResourceAlreadyExistsException"), Some(409)), "already_exists");
        assert_eq!(kind(Some("ResourceNotFoundException"), Some(404)), "not_found");
        assert_eq!(kind(Some("VersionsLimitExceededException"), Some(409)), "versions_limit_exceeded");
        assert_eq!(kind(Some("InvalidRequestException"), Some(400)), "invalid_request");
        assert_eq!(kind(Some("UnauthorizedException"), Some(401)), "invalid_request");
        assert_eq!(kind(Some("CertificateStateException"), Some(406)), "conflict");
        assert_eq!(kind(Some("ConflictException"), Some(409)), "conflict");
        assert_eq!(kind(Some("DeleteConflictException"), Some(409)), "conflict");
        assert_eq!(kind(Some("VersionConflictException"), Some(409)), "version_conflict");
    }

    #[test]
    fn unknown_codes_fall_back_to_status() {
        assert_eq!(kind(Some("SomethingNewException"), Some(429)), "throttled");
        assert_eq!(kind(None, Some(403)), "invalid_request");
        assert_eq!(kind(None, Some(500)), "unavailable");
        assert_eq!(kind(None, Some(502)), "unavailable");
        assert_eq!(kind(None, Some(200)), "unreadable", "a success body that did not parse");
        assert_eq!(kind(None, Some(304)), "unreadable");
        assert_eq!(kind(None, None), "unavailable");
    }
}

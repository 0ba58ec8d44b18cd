//! [`SofaError`]: everything a FHIR endpoint answers with, a status and an OperationOutcome
//! (REQ REL-03). A [`StoreError`] becomes one through [`SofaError::store`].

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use halo_model::fhir::media::FHIR_JSON_R4;
use halo_model::outcome::{Issue, IssueType, OperationOutcome};

use crate::store::StoreError;

/// An error answer of a FHIR endpoint: an HTTP status and the OperationOutcome explaining it.
#[derive(Debug, Clone)]
pub struct SofaError {
    status: StatusCode,
    outcome: Box<OperationOutcome>,
    bearer_challenge: bool,
    /// Seconds for `Retry-After`.
    retry_after: Option<u64>,
}

impl SofaError {
    /// An error with a status and a ready OperationOutcome.
    pub fn new(status: StatusCode, outcome: OperationOutcome) -> SofaError {
        SofaError {
            status,
            outcome: Box::new(outcome),
            bearer_challenge: false,
            retry_after: None,
        }
    }

    /// 429: over a rate limit; `Retry-After` says when to try again, in whole seconds
    /// (REQ HARD-04).
    pub fn too_many_requests(wait: std::time::Duration) -> SofaError {
        SofaError {
            retry_after: Some(retry_after_seconds(wait)),
            ..SofaError::new(
                StatusCode::TOO_MANY_REQUESTS,
                OperationOutcome::error(IssueType::Throttled, "too many requests; retry later"),
            )
        }
    }

    fn single(status: StatusCode, code: IssueType, message: impl Into<String>) -> SofaError {
        SofaError::new(status, OperationOutcome::error(code, message))
    }

    /// 400: the request is malformed or breaks a FHIR or HALO structural rule.
    pub fn bad_request(code: IssueType, message: impl Into<String>) -> SofaError {
        SofaError::single(StatusCode::BAD_REQUEST, code, message)
    }

    /// 400 with every issue found.
    pub fn invalid(issues: Vec<Issue>) -> SofaError {
        SofaError::new(StatusCode::BAD_REQUEST, issues.into_iter().collect())
    }

    /// 401 with `WWW-Authenticate: Bearer` (REQ RS-02).
    pub fn unauthorized(message: impl Into<String>) -> SofaError {
        let mut error = SofaError::single(StatusCode::UNAUTHORIZED, IssueType::Login, message);
        error.bearer_challenge = true;
        error
    }

    /// 403: authenticated, but not allowed.
    pub fn forbidden(message: impl Into<String>) -> SofaError {
        SofaError::single(StatusCode::FORBIDDEN, IssueType::Forbidden, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> SofaError {
        SofaError::single(StatusCode::NOT_FOUND, IssueType::NotFound, message)
    }

    /// 405.
    pub fn method_not_allowed(message: impl Into<String>) -> SofaError {
        SofaError::single(
            StatusCode::METHOD_NOT_ALLOWED,
            IssueType::NotSupported,
            message,
        )
    }

    /// 406: no requested response format can be produced.
    pub fn not_acceptable(message: impl Into<String>) -> SofaError {
        SofaError::single(StatusCode::NOT_ACCEPTABLE, IssueType::NotSupported, message)
    }

    /// 409 with `business-rule`: the request is well-formed but the server's state forbids it.
    pub fn conflict(message: impl Into<String>) -> SofaError {
        SofaError::single(StatusCode::CONFLICT, IssueType::BusinessRule, message)
    }

    /// 413.
    pub fn too_large(message: impl Into<String>) -> SofaError {
        SofaError::single(StatusCode::PAYLOAD_TOO_LARGE, IssueType::TooCostly, message)
    }

    /// 415.
    pub fn unsupported_media_type(message: impl Into<String>) -> SofaError {
        SofaError::single(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IssueType::NotSupported,
            message,
        )
    }

    /// 500 or 503 for a storage failure; the message names no internals beyond the cause.
    pub fn store(error: StoreError) -> SofaError {
        match error {
            StoreError::Unavailable(_) => SofaError::single(
                StatusCode::SERVICE_UNAVAILABLE,
                IssueType::Transient,
                "the store is busy; retry shortly",
            ),
            other => {
                tracing::error!(code = other.code(), error = %other, "storage failure");
                SofaError::single(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    IssueType::Exception,
                    format!("storage failure ({})", other.code()),
                )
            }
        }
    }

    /// 500 for a failure that is the server's, not the caller's.
    pub fn internal(message: impl Into<String>) -> SofaError {
        SofaError::single(
            StatusCode::INTERNAL_SERVER_ERROR,
            IssueType::Exception,
            message,
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The OperationOutcome.
    pub fn outcome(&self) -> &OperationOutcome {
        &self.outcome
    }
}

impl std::fmt::Display for SofaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.status)?;
        for issue in &self.outcome.issues {
            write!(f, "; {}", issue.message())?;
        }
        Ok(())
    }
}

impl std::error::Error for SofaError {}

impl From<StoreError> for SofaError {
    fn from(error: StoreError) -> SofaError {
        SofaError::store(error)
    }
}

/// A wait as `Retry-After` seconds: whole seconds, rounded up, at least one.
pub(crate) fn retry_after_seconds(wait: std::time::Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

impl IntoResponse for SofaError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON_R4))],
            self.outcome.to_vec(),
        )
            .into_response();
        if self.bearer_challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"sofa\""),
            );
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

//! The authorization server's JSON answers: no-store headers on token and introspection
//! answers (REQ AS-06), RFC 6749 §5.2 errors with their statuses, and `Retry-After` when the
//! store is busy.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use halo_model::oauth::OAuthErrorCode;
use serde_json::Value;

/// A JSON answer (discovery documents, the JWKS).
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
}

/// When a client may retry after the store was busy or down.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// Token and introspection answers must not be cached (REQ AS-06).
pub(crate) fn no_store(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::PRAGMA, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// An RFC 6749 §5.2 error answer to a client's request, with no-store headers. A 401 carries a
/// `Basic` challenge only when the client tried HTTP Basic (§5.2): a challenge to a client that
/// authenticated otherwise makes some clients (openid-client) hide the error description.
pub(crate) fn oauth_error(headers: &HeaderMap, error: &halo_model::oauth::OAuthError) -> Response {
    // The server's own trouble is not the client's error: a store that is busy or down is a
    // 503 the client may retry, a failure of the server a 500 (RFC 6749 leaves both to the host).
    let status = match error.error {
        OAuthErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        OAuthErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
    };
    let mut response = no_store(status, error.to_json());
    if status == StatusCode::SERVICE_UNAVAILABLE {
        // A busy store clears in moments (its writers queue with a deadline): the client may
        // retry after a second.
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(crate::error::retry_after_seconds(STORE_RETRY)),
        );
    }
    let tried_basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.len() >= 6 && v[..6].eq_ignore_ascii_case("basic "));
    if status == StatusCode::UNAUTHORIZED && tried_basic {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"sofa\""),
        );
    }
    response
}

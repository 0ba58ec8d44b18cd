//! The handlers of the core routes.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::AppState;
use crate::auth::Caller;
use crate::error::SofaError;
use crate::http::{authenticate, fhir_json, format_parameter, read_fhir_json, response_format};

/// `GET /metadata` (REQ RS-01).
pub(super) async fn metadata(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: RawQuery,
) -> Result<Response, SofaError> {
    let format = format_parameter(query.0.as_deref());
    response_format(&headers, format.as_deref())?;
    let statement = state
        .capabilities
        .to_capability_statement(&state.config, state.clock.now());
    Ok(fhir_json(StatusCode::OK, &statement))
}

/// `POST /$set-context`.
pub(super) async fn set_context(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: RawQuery,
    body: Body,
) -> Result<Response, SofaError> {
    let (caller, body) = context_request(&state, &headers, &query, body).await?;
    let output = state.context.set_context(&caller, &body).await?;
    Ok(fhir_json(StatusCode::OK, &output))
}

/// `POST /$clear-context`.
pub(super) async fn clear_context(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: RawQuery,
    body: Body,
) -> Result<Response, SofaError> {
    let (caller, body) = context_request(&state, &headers, &query, body).await?;
    let output = state.context.clear_context(&caller, &body).await?;
    Ok(fhir_json(StatusCode::OK, &output))
}

/// A context operation's caller and body, checked in order: the token, the answer format,
/// then the body (so an unauthenticated request learns nothing else).
async fn context_request(
    state: &AppState,
    headers: &HeaderMap,
    query: &RawQuery,
    body: Body,
) -> Result<(Caller, Value), SofaError> {
    let caller = authenticate(state.tokens.as_ref(), headers).await?;
    let format = format_parameter(query.0.as_deref());
    response_format(headers, format.as_deref())?;
    let body = read_fhir_json(headers, body, state.config.json_limits).await?;
    Ok((caller, body))
}

/// Anything not routed: 404 OperationOutcome.
pub(super) async fn not_found() -> SofaError {
    SofaError::not_found("no such endpoint on this server")
}

/// A route with another method: 405 OperationOutcome.
pub(super) async fn method_not_allowed() -> SofaError {
    SofaError::method_not_allowed("this endpoint does not accept this HTTP method")
}

//! Reading requests and writing answers, in one place for every FHIR endpoint: the bearer
//! token, content negotiation (`Content-Type`, `Accept`, `_format`), the bounded body (SEC-03)
//! and the FHIR JSON answer.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use halo_model::fhir::media::{self, Format, MediaType, MediaTypeError};
use halo_model::fhir::{JsonError, JsonLimits, parse_json};
use halo_model::outcome::IssueType;
use halo_validation::xml::FhirXml;
use serde_json::Value;
use std::sync::OnceLock;

use crate::auth::{Caller, TokenError, TokenValidator};
use crate::error::SofaError;

/// The caller behind the request's `Authorization: Bearer` token; 401 otherwise (RS-02).
pub async fn authenticate(
    tokens: &dyn TokenValidator,
    headers: &HeaderMap,
) -> Result<Caller, SofaError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| SofaError::unauthorized("a bearer access token is required"))?;
    let token = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            SofaError::unauthorized("the Authorization header must be `Bearer <token>`")
        })?;
    tokens.validate(token).await.map_err(|e| match e {
        TokenError::Invalid => SofaError::unauthorized(e.to_string()),
        TokenError::Unavailable(_) => SofaError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            halo_model::outcome::OperationOutcome::error(IssueType::Transient, e.to_string()),
        ),
        TokenError::RateLimited { retry_after } => SofaError::too_many_requests(retry_after),
    })
}

/// The response format from `_format` and `Accept`: JSON or XML (406 for anything else). The
/// handlers always answer JSON; the router's XML layer writes it as XML when that was chosen.
pub fn response_format(headers: &HeaderMap, format: Option<&str>) -> Result<Format, SofaError> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    media::negotiate(accept, format).map_err(|e| SofaError::not_acceptable(e.to_string()))
}

/// The `_format` query parameter, which every FHIR endpoint understands.
pub(crate) fn format_parameter(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(name, _)| name == "_format")
        .map(|(_, value)| value.into_owned())
}

/// A FHIR JSON answer (R4 media type); the router's XML layer rewrites it when XML was asked
/// for.
pub(crate) fn fhir_json(status: StatusCode, body: &Value) -> Response {
    fhir_json_bytes(status, serde_json::to_vec(body).unwrap_or_default())
}

/// A FHIR JSON answer already serialised (a stored resource written straight from its map,
/// with no copy into a `Value` first).
pub(crate) fn fhir_json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(media::FHIR_JSON_R4),
        )],
        body,
    )
        .into_response()
}

/// The request body, at most `max_bytes` (413 otherwise): a declared length over the limit is
/// refused before a byte is read.
pub(crate) async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    max_bytes: usize,
) -> Result<Bytes, SofaError> {
    if headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|length| length > max_bytes)
    {
        return Err(too_large(max_bytes));
    }
    axum::body::to_bytes(body, max_bytes).await.map_err(|e| {
        let inner = e.into_inner();
        if inner.is::<http_body_util::LengthLimitError>() {
            too_large(max_bytes)
        } else {
            // The body did not arrive whole: the read deadline passed or the client went away.
            SofaError::new(
                StatusCode::REQUEST_TIMEOUT,
                halo_model::outcome::OperationOutcome::error(
                    IssueType::Timeout,
                    "the request body did not arrive in time",
                ),
            )
        }
    })
}

fn too_large(max_bytes: usize) -> SofaError {
    SofaError::too_large(format!(
        "the body is larger than the {max_bytes} bytes accepted"
    ))
}

/// The FHIR XML converter, built once from the embedded definitions.
pub(crate) fn fhir_xml() -> &'static FhirXml {
    static XML: OnceLock<FhirXml> = OnceLock::new();
    XML.get_or_init(FhirXml::embedded)
}

/// Reads a FHIR request body as JSON: `Content-Type` must be FHIR JSON, plain JSON or FHIR XML
/// (415), the body at most `limits.max_bytes` (413), nested at most `limits.max_depth` (400),
/// and well-formed (400). An XML body is turned into FHIR JSON here (REQ RS-06), so handlers,
/// validation and storage see one format. Handlers call it after the bearer token is checked,
/// so nothing of a body is read or parsed for a caller without one (REQ HARD-04).
pub async fn read_fhir_json(
    headers: &HeaderMap,
    body: Body,
    limits: JsonLimits,
) -> Result<Value, SofaError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            SofaError::unsupported_media_type("send the body as application/fhir+json")
        })?;
    match MediaType::parse(content_type) {
        Ok(MediaType {
            format: Format::Json,
            ..
        }) => {}
        Ok(MediaType {
            format: Format::Xml,
            ..
        }) => {
            let bytes = read_limited(headers, body, limits.max_bytes).await?;
            return fhir_xml().from_xml(&bytes).map_err(|e| {
                SofaError::bad_request(IssueType::Structure, format!("the XML body: {e}"))
            });
        }
        Err(e @ (MediaTypeError::Unsupported(_) | MediaTypeError::WrongVersion(_))) => {
            return Err(SofaError::unsupported_media_type(e.to_string()));
        }
        Err(e) => return Err(SofaError::unsupported_media_type(e.to_string())),
    }
    let bytes = read_limited(headers, body, limits.max_bytes).await?;
    parse_json(&bytes, limits).map_err(|e| match e {
        JsonError::TooLarge { .. } => too_large(limits.max_bytes),
        JsonError::TooDeep { .. } => SofaError::bad_request(IssueType::TooCostly, e.to_string()),
        JsonError::Syntax(_) => SofaError::bad_request(IssueType::Structure, e.to_string()),
    })
}

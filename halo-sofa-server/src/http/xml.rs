//! FHIR XML answers on every FHIR endpoint (REQ RS-06, D-13), as one layer around the router: a
//! FHIR JSON answer becomes XML when `_format` or `Accept` asks for it. XML request bodies are
//! read by [`read_fhir_json`](super::read_fhir_json), after the bearer token is checked. Handlers,
//! validation and storage only ever see JSON, so both formats behave identically by
//! construction.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use halo_model::fhir::media::{self, FHIR_XML_R4, Format, MediaType};

use super::body::fhir_xml;
use crate::error::SofaError;

/// The middleware: runs the handler, converts the answer.
pub(crate) async fn convert(request: Request, next: Next) -> Response {
    let wants_xml = wants_xml(request.headers(), request.uri().query());
    let response = next.run(request).await;
    answer(response, wants_xml).await
}

/// Whether the answer should be XML: `_format` first, then `Accept` (the same negotiation the
/// handlers run; a request they will refuse with 406 is left to them).
fn wants_xml(headers: &HeaderMap, query: Option<&str>) -> bool {
    let format = super::format_parameter(query);
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    matches!(media::negotiate(accept, format.as_deref()), Ok(Format::Xml))
}

/// The handler's answer, as XML when asked for and when it is FHIR JSON.
async fn answer(response: Response, wants_xml: bool) -> Response {
    let is_fhir_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| MediaType::parse(v).ok())
        .is_some_and(|m| m.format == Format::Json && m.fhir_specific);
    if !wants_xml || !is_fhir_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // The SoFA's own answer: its size is bounded by what it stores and serves.
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return SofaError::internal("the answer could not be read").into_response();
    };
    let written = serde_json::from_slice(&bytes)
        .map_err(|e| e.to_string())
        .and_then(|json| fhir_xml().to_xml(&json).map_err(|e| e.to_string()));
    match written {
        Ok(xml) => {
            parts
                .headers
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_XML_R4));
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(xml))
        }
        Err(error) => {
            tracing::warn!(%error, "an answer has no XML form");
            SofaError::not_acceptable(format!(
                "this answer has no XML form ({error}); ask for application/fhir+json"
            ))
            .into_response()
        }
    }
}

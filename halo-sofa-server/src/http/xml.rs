//! FHIR XML on every FHIR endpoint (REQ RS-06, D-13), as one layer around the router: an XML
//! request body becomes JSON before any handler sees it, and a FHIR JSON answer becomes XML
//! when `_format` or `Accept` asks for it. Handlers, validation and storage only ever see JSON,
//! so both formats behave identically by construction.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use halo_model::fhir::JsonLimits;
use halo_model::fhir::media::{self, FHIR_JSON, FHIR_XML_R4, Format, MediaType};
use halo_model::outcome::IssueType;
use halo_validation::xml::FhirXml;

use crate::error::SofaError;

/// What the layer needs: the converter and the body limit.
#[derive(Clone)]
pub(crate) struct XmlLayer {
    pub(crate) xml: Arc<FhirXml>,
    pub(crate) limits: JsonLimits,
}

/// The middleware: converts the request, runs the handler, converts the answer.
pub(crate) async fn convert(
    State(layer): State<XmlLayer>,
    request: Request,
    next: Next,
) -> Response {
    let wants_xml = wants_xml(request.headers(), request.uri().query());
    let request = match xml_request_to_json(&layer, request).await {
        Ok(request) => request,
        Err(error) => return answer(&layer, error.into_response(), wants_xml).await,
    };
    let response = next.run(request).await;
    answer(&layer, response, wants_xml).await
}

/// Whether the answer should be XML: `_format` first, then `Accept` (the same negotiation the
/// handlers run; a request they will refuse with 406 is left to them).
fn wants_xml(headers: &HeaderMap, query: Option<&str>) -> bool {
    let format = super::format_parameter(query);
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    matches!(media::negotiate(accept, format.as_deref()), Ok(Format::Xml))
}

/// An XML body, read within the body limit and turned into FHIR JSON; other requests pass
/// through untouched.
async fn xml_request_to_json(layer: &XmlLayer, request: Request) -> Result<Request, SofaError> {
    let media_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| MediaType::parse(v).ok());
    let Some(media_type) = media_type.filter(|m| m.format == Format::Xml) else {
        return Ok(request);
    };
    let (mut parts, body) = request.into_parts();
    let bytes = super::read_limited(&parts.headers, body, layer.limits.max_bytes).await?;
    let json = layer
        .xml
        .from_xml(&bytes)
        .map_err(|e| SofaError::bad_request(IssueType::Structure, format!("the XML body: {e}")))?;
    let bytes = serde_json::to_vec(&json)
        .map_err(|e| SofaError::bad_request(IssueType::Structure, e.to_string()))?;
    let content_type = match media_type.fhir_version {
        Some(version) => format!("{FHIR_JSON}; fhirVersion={version}"),
        None => FHIR_JSON.to_owned(),
    };
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type).unwrap_or(HeaderValue::from_static(FHIR_JSON)),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// The handler's answer, as XML when asked for and when it is FHIR JSON.
async fn answer(layer: &XmlLayer, response: Response, wants_xml: bool) -> Response {
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
        .and_then(|json| layer.xml.to_xml(&json).map_err(|e| e.to_string()));
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

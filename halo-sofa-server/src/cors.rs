//! The CORS policies (REQ SEC-06): discovery documents are readable from any origin; the FHIR
//! API, the Subscription routes, the context operations, and the token and introspection
//! endpoints answer only the origins the operator registered (`cors_allowed_origins`), so a
//! browser SMART app or a web EMR on a registered origin can call them and no other page can.

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

/// Read-only discovery (`metadata`, the well-knowns, the JWKS): any origin, `GET` only.
pub fn open() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET])
        .allow_headers([header::ACCEPT])
}

/// Everything that takes a token or a credential: the registered origins only, with the
/// methods and headers a FHIR client sends and the headers it must read.
pub fn registered(origins: &[String]) -> CorsLayer {
    let origins = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect::<Vec<_>>();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::IF_MATCH,
            HeaderName::from_static("prefer"),
        ])
        .expose_headers([
            header::LOCATION,
            header::ETAG,
            header::LAST_MODIFIED,
            header::CONTENT_LOCATION,
            header::RETRY_AFTER,
        ])
}

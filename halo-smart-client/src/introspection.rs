//! Token introspection (RFC 7662 with SMART's fields): reading the answer.
//!
//! The request is built by [`crate::token::introspection_request`]; the HTTP call is
//! [`crate::SmartClient::introspect`].

use halo_model::smart::IntrospectionResponse;

use crate::error::{Result, SmartError};
use crate::token::oauth_error;

/// Reads an introspection answer: 2xx JSON with `active`; `{"active": false}` is a valid answer,
/// not an error.
pub fn read_introspection_response(status: u16, body: &[u8]) -> Result<IntrospectionResponse> {
    const ENDPOINT: &str = "introspection endpoint";
    if !(200..300).contains(&status) {
        return Err(match oauth_error(body) {
            Some(failure) => SmartError::TokenRefused { status, failure },
            None => SmartError::HttpStatus {
                endpoint: ENDPOINT.into(),
                status,
            },
        });
    }
    IntrospectionResponse::from_json(body)
        .map_err(|e| SmartError::invalid_response(ENDPOINT, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: APP-16
    #[test]
    fn spec_example_inactive_and_errors() {
        let body = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/smart/introspection-response.json"
        ))
        .unwrap();
        let r = read_introspection_response(200, &body).unwrap();
        assert!(r.active);
        assert_eq!(r.launch_context().patient.as_deref(), Some("456"));
        assert_eq!(r.exp, Some(1_597_678_964));
        assert!(
            !read_introspection_response(200, br#"{"active":false}"#)
                .unwrap()
                .active
        );
        assert_eq!(
            read_introspection_response(401, br#"{"error":"invalid_client"}"#)
                .unwrap_err()
                .code(),
            "token_refused"
        );
        assert_eq!(
            read_introspection_response(200, b"<html>")
                .unwrap_err()
                .code(),
            "response_invalid"
        );
    }
}

//! OAuth 2.0 error responses (RFC 6749 §4.1.2.1 and §5.2).
//!
//! The same type serves both places an OAuth error travels: as JSON in the body of a token (or
//! introspection) endpoint response, and as query parameters on the redirect back to the app
//! after a refused authorization request.
//!
//! ```
//! use halo_model::oauth::{OAuthError, OAuthErrorCode};
//!
//! // Token endpoint: JSON body and status.
//! let error = OAuthError::invalid_client("the client assertion signature does not verify");
//! assert_eq!(error.http_status(), 401);
//! let body = error.to_json();
//! assert_eq!(OAuthError::from_json(body.as_bytes())?, error);
//!
//! // Authorize endpoint: redirect query parameters, `state` echoed back.
//! let denied = OAuthError::new(OAuthErrorCode::AccessDenied).with_state("af0ifjsldkj");
//! assert_eq!(
//!     denied.to_query_pairs(),
//!     vec![("error", "access_denied".to_owned()), ("state", "af0ifjsldkj".to_owned())]
//! );
//! # Ok::<(), halo_model::smart::SmartDocumentError>(())
//! ```

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::smart::SmartDocumentError;

/// An RFC 6749 error code. Codes from other specifications are kept as
/// [`Other`](Self::Other).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OAuthErrorCode {
    /// `invalid_request`: a parameter is missing, repeated or malformed.
    InvalidRequest,
    /// `invalid_client`: client authentication failed (HTTP 401).
    InvalidClient,
    /// `invalid_grant`: the code, refresh token or credentials are invalid, expired or revoked.
    InvalidGrant,
    /// `unauthorized_client`: the client may not use this grant or response type.
    UnauthorizedClient,
    /// `unsupported_grant_type`: the server does not support the grant type.
    UnsupportedGrantType,
    /// `invalid_scope`: the scope is invalid, unknown or exceeds what was granted.
    InvalidScope,
    /// `access_denied`: the user or server refused the request.
    AccessDenied,
    /// `unsupported_response_type`: the server does not support the response type.
    UnsupportedResponseType,
    /// `server_error`: the server failed unexpectedly.
    ServerError,
    /// `temporarily_unavailable`: the server is overloaded or down for maintenance.
    TemporarilyUnavailable,
    /// Any other code, kept as sent.
    Other(String),
}

const CODES: &[(OAuthErrorCode, &str)] = &[
    (OAuthErrorCode::InvalidRequest, "invalid_request"),
    (OAuthErrorCode::InvalidClient, "invalid_client"),
    (OAuthErrorCode::InvalidGrant, "invalid_grant"),
    (OAuthErrorCode::UnauthorizedClient, "unauthorized_client"),
    (
        OAuthErrorCode::UnsupportedGrantType,
        "unsupported_grant_type",
    ),
    (OAuthErrorCode::InvalidScope, "invalid_scope"),
    (OAuthErrorCode::AccessDenied, "access_denied"),
    (
        OAuthErrorCode::UnsupportedResponseType,
        "unsupported_response_type",
    ),
    (OAuthErrorCode::ServerError, "server_error"),
    (
        OAuthErrorCode::TemporarilyUnavailable,
        "temporarily_unavailable",
    ),
];

impl OAuthErrorCode {
    /// The code as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Other(code) => code,
            known => CODES
                .iter()
                .find(|(c, _)| c == known)
                .map_or("", |(_, name)| name),
        }
    }
}

impl From<&str> for OAuthErrorCode {
    fn from(s: &str) -> Self {
        CODES
            .iter()
            .find(|(_, name)| *name == s)
            .map_or_else(|| Self::Other(s.to_owned()), |(c, _)| c.clone())
    }
}

impl std::str::FromStr for OAuthErrorCode {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::from(s))
    }
}

impl fmt::Display for OAuthErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for OAuthErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for OAuthErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Ok(Self::from(s.as_str()))
    }
}

/// An OAuth 2.0 error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthError {
    /// The error code.
    pub error: OAuthErrorCode,
    /// A sentence for the developer (not the end user) saying what went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
    /// A page explaining the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_uri: Option<String>,
    /// The client's `state`, echoed back on authorization errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

const DOC: &str = "OAuth error response";

impl OAuthError {
    /// An error with just a code.
    pub fn new(error: OAuthErrorCode) -> Self {
        Self {
            error,
            error_description: None,
            error_uri: None,
            state: None,
        }
    }

    fn described(error: OAuthErrorCode, description: impl Into<String>) -> Self {
        Self::new(error).with_description(description)
    }

    /// `invalid_request` with a description.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::described(OAuthErrorCode::InvalidRequest, description)
    }

    /// `invalid_client` with a description (answered with HTTP 401).
    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self::described(OAuthErrorCode::InvalidClient, description)
    }

    /// `invalid_grant` with a description.
    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::described(OAuthErrorCode::InvalidGrant, description)
    }

    /// `unauthorized_client` with a description.
    pub fn unauthorized_client(description: impl Into<String>) -> Self {
        Self::described(OAuthErrorCode::UnauthorizedClient, description)
    }

    /// `unsupported_grant_type` with a description.
    pub fn unsupported_grant_type(description: impl Into<String>) -> Self {
        Self::described(OAuthErrorCode::UnsupportedGrantType, description)
    }

    /// `invalid_scope` with a description.
    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::described(OAuthErrorCode::InvalidScope, description)
    }

    /// `access_denied` with a description.
    pub fn access_denied(description: impl Into<String>) -> Self {
        Self::described(OAuthErrorCode::AccessDenied, description)
    }

    /// `unsupported_response_type` with a description.
    pub fn unsupported_response_type(description: impl Into<String>) -> Self {
        Self::described(OAuthErrorCode::UnsupportedResponseType, description)
    }

    /// `server_error` with a description.
    pub fn server_error(description: impl Into<String>) -> Self {
        Self::described(OAuthErrorCode::ServerError, description)
    }

    /// `temporarily_unavailable` with a description.
    pub fn temporarily_unavailable(description: impl Into<String>) -> Self {
        Self::described(OAuthErrorCode::TemporarilyUnavailable, description)
    }

    /// Sets `error_description`.
    #[must_use]
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.error_description = Some(description.into());
        self
    }

    /// Sets `error_uri`.
    #[must_use]
    pub fn with_uri(mut self, uri: impl Into<String>) -> Self {
        self.error_uri = Some(uri.into());
        self
    }

    /// Sets `state` (authorization errors echo the request's `state`).
    #[must_use]
    pub fn with_state(mut self, state: impl Into<String>) -> Self {
        self.state = Some(state.into());
        self
    }

    /// The HTTP status for this error in a JSON response (RFC 6749 §5.2): 401 for
    /// `invalid_client`, 400 for every other code. `server_error` and
    /// `temporarily_unavailable` stay 400 too, as the token endpoint rules ask; a host that
    /// wants 500/503 for them chooses so itself.
    pub fn http_status(&self) -> u16 {
        match self.error {
            OAuthErrorCode::InvalidClient => 401,
            _ => 400,
        }
    }

    /// The JSON body of a token endpoint error response.
    pub fn to_json(&self) -> String {
        Value::Object(self.to_map()).to_string()
    }

    fn to_map(&self) -> Map<String, Value> {
        self.to_query_pairs()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::String(v)))
            .collect()
    }

    /// Reads an error response body. Unknown keys are ignored.
    pub fn from_json(bytes: &[u8]) -> Result<Self, SmartDocumentError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|source| SmartDocumentError::InvalidJson {
                document: DOC,
                source,
            })?;
        let Value::Object(map) = value else {
            return Err(SmartDocumentError::NotAnObject {
                document: DOC,
                found: crate::smart::describe_json(&value),
            });
        };
        let field = |key: &'static str| -> Result<Option<String>, SmartDocumentError> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(SmartDocumentError::InvalidField {
                    document: DOC,
                    field: key.to_owned(),
                    expected: "a string",
                    found: crate::smart::describe_json(other).to_owned(),
                }),
            }
        };
        let error = field("error")?.ok_or(SmartDocumentError::MissingField {
            document: DOC,
            field: "error",
        })?;
        Ok(Self {
            error: OAuthErrorCode::from(error.as_str()),
            error_description: field("error_description")?,
            error_uri: field("error_uri")?,
            state: field("state")?,
        })
    }

    /// The query parameters of an authorization error redirect (RFC 6749 §4.1.2.1), in the
    /// order `error`, `error_description`, `error_uri`, `state`; absent ones are left out.
    pub fn to_query_pairs(&self) -> Vec<(&'static str, String)> {
        [
            ("error", Some(self.error.as_str().to_owned())),
            ("error_description", self.error_description.clone()),
            ("error_uri", self.error_uri.clone()),
            ("state", self.state.clone()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }

    /// Reads an authorization error from the redirect's query parameters (already decoded).
    /// Returns `None` when there is no `error` parameter, i.e. the redirect is not an error.
    pub fn from_query_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Option<Self>
    where
        K: AsRef<str>,
        V: Into<String>,
    {
        let mut error = None;
        let mut result = Self::new(OAuthErrorCode::Other(String::new()));
        for (key, value) in pairs {
            // The first occurrence wins; a repeated parameter is the sender's mistake.
            let slot = match key.as_ref() {
                "error" => &mut error,
                "error_description" => &mut result.error_description,
                "error_uri" => &mut result.error_uri,
                "state" => &mut result.state,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value.into());
            }
        }
        result.error = OAuthErrorCode::from(error?.as_str());
        Some(result)
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OAuth error `{}`", self.error)?;
        if let Some(description) = &self.error_description {
            write!(f, ": {description}")?;
        }
        Ok(())
    }
}

impl std::error::Error for OAuthError {}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ALL: [OAuthErrorCode; 10] = [
        OAuthErrorCode::InvalidRequest,
        OAuthErrorCode::InvalidClient,
        OAuthErrorCode::InvalidGrant,
        OAuthErrorCode::UnauthorizedClient,
        OAuthErrorCode::UnsupportedGrantType,
        OAuthErrorCode::InvalidScope,
        OAuthErrorCode::AccessDenied,
        OAuthErrorCode::UnsupportedResponseType,
        OAuthErrorCode::ServerError,
        OAuthErrorCode::TemporarilyUnavailable,
    ];

    #[test]
    fn codes_are_the_rfc_strings() {
        let names: Vec<_> = ALL.iter().map(OAuthErrorCode::as_str).collect();
        assert_eq!(
            names,
            [
                "invalid_request",
                "invalid_client",
                "invalid_grant",
                "unauthorized_client",
                "unsupported_grant_type",
                "invalid_scope",
                "access_denied",
                "unsupported_response_type",
                "server_error",
                "temporarily_unavailable",
            ]
        );
        for code in &ALL {
            assert_eq!(&OAuthErrorCode::from(code.as_str()), code);
            assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
        }
        let other = OAuthErrorCode::from("invalid_dpop_proof");
        assert_eq!(other, OAuthErrorCode::Other("invalid_dpop_proof".into()));
        assert_eq!(other.to_string(), "invalid_dpop_proof");
    }

    #[test]
    fn status_is_400_except_invalid_client() {
        for code in ALL {
            let expected = if code == OAuthErrorCode::InvalidClient {
                401
            } else {
                400
            };
            assert_eq!(
                OAuthError::new(code.clone()).http_status(),
                expected,
                "{code}"
            );
        }
        assert_eq!(
            OAuthError::new(OAuthErrorCode::Other("x".into())).http_status(),
            400
        );
    }

    #[test]
    fn json_round_trip_leaves_out_absent_fields() {
        let error = OAuthError::invalid_grant("the authorization code has expired")
            .with_uri("https://sofa.example.ca/errors#expired-code");
        let body = error.to_json();
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            json!({
                "error": "invalid_grant",
                "error_description": "the authorization code has expired",
                "error_uri": "https://sofa.example.ca/errors#expired-code"
            })
        );
        assert_eq!(OAuthError::from_json(body.as_bytes()).unwrap(), error);
        assert_eq!(serde_json::to_string(&error).unwrap(), body);
        assert_eq!(serde_json::from_str::<OAuthError>(&body).unwrap(), error);
        assert_eq!(
            OAuthError::new(OAuthErrorCode::InvalidScope).to_json(),
            r#"{"error":"invalid_scope"}"#
        );
    }

    #[test]
    fn constructors_set_code_and_description() {
        let made = [
            OAuthError::invalid_request("d"),
            OAuthError::invalid_client("d"),
            OAuthError::invalid_grant("d"),
            OAuthError::unauthorized_client("d"),
            OAuthError::unsupported_grant_type("d"),
            OAuthError::invalid_scope("d"),
            OAuthError::access_denied("d"),
            OAuthError::unsupported_response_type("d"),
            OAuthError::server_error("d"),
            OAuthError::temporarily_unavailable("d"),
        ];
        for (error, code) in made.iter().zip(ALL) {
            assert_eq!(error.error, code);
            assert_eq!(error.error_description.as_deref(), Some("d"));
            assert_eq!(error.to_string(), format!("OAuth error `{code}`: d"));
        }
    }

    #[test]
    fn bad_error_bodies_are_typed_errors() {
        let err = OAuthError::from_json(b"<html>502</html>").unwrap_err();
        assert!(matches!(err, SmartDocumentError::InvalidJson { .. }));
        let err = OAuthError::from_json(br#"{"error_description": "x"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the OAuth error response has no `error`, which is required"
        );
        let err = OAuthError::from_json(br#"{"error": 400}"#).unwrap_err();
        assert!(
            matches!(err, SmartDocumentError::InvalidField { .. }),
            "{err}"
        );
        let err = OAuthError::from_json(br#""invalid_grant""#).unwrap_err();
        assert!(matches!(
            err,
            SmartDocumentError::NotAnObject {
                found: "a string",
                ..
            }
        ));
        let tolerant =
            OAuthError::from_json(br#"{"error": "invalid_grant", "trace_id": 7}"#).unwrap();
        assert_eq!(tolerant, OAuthError::new(OAuthErrorCode::InvalidGrant));
    }

    #[test]
    fn redirect_query_pairs_round_trip() {
        let error = OAuthError::access_denied("the user declined")
            .with_uri("https://sofa.example.ca/help")
            .with_state("s-123");
        let pairs = error.to_query_pairs();
        assert_eq!(
            pairs,
            [
                ("error", "access_denied".to_owned()),
                ("error_description", "the user declined".to_owned()),
                ("error_uri", "https://sofa.example.ca/help".to_owned()),
                ("state", "s-123".to_owned()),
            ]
        );
        assert_eq!(OAuthError::from_query_pairs(pairs), Some(error));
        // The query of a redirect, as `url` decodes it.
        let url = url::Url::parse(
            "https://app.example.org/cb?state=s-1&error=invalid_scope&error_description=no+user%2F+scopes&error=ignored",
        )
        .unwrap();
        let read = OAuthError::from_query_pairs(url.query_pairs()).unwrap();
        assert_eq!(read.error, OAuthErrorCode::InvalidScope);
        assert_eq!(read.error_description.as_deref(), Some("no user/ scopes"));
        assert_eq!(read.state.as_deref(), Some("s-1"));
        // A successful redirect is not an error.
        assert_eq!(
            OAuthError::from_query_pairs([("code", "abc"), ("state", "s-1")]),
            None
        );
    }
}

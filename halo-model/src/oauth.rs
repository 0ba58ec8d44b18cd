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
    /// `invalid_client`, 500 for `server_error`, 503 for `temporarily_unavailable` (those two
    /// codes exist because a redirect cannot carry 500/503; a JSON response can) and 400 for
    /// everything else.
    pub fn http_status(&self) -> u16 {
        match self.error {
            OAuthErrorCode::InvalidClient => 401,
            OAuthErrorCode::ServerError => 500,
            OAuthErrorCode::TemporarilyUnavailable => 503,
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

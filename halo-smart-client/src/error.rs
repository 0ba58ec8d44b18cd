//! The one error type of the crate.
//!
//! Every failure carries a stable machine code ([`SmartError::code`]) for logs and metrics, and a
//! message ([`SmartError::user_message`]) short and plain enough to show a clinician in the app's
//! UI. The `Display` text is for developers and may name the failing URL or field; no variant ever
//! holds a token, secret, code or private key, so neither text can leak one (SEC-01).

use std::fmt;

/// Result alias used throughout the crate.
pub type Result<T, E = SmartError> = std::result::Result<T, E>;

/// An OAuth 2.0 error as returned on the redirect (RFC 6749 §4.1.2.1) or by the token endpoint
/// (§5.2). Only the standard fields are kept; none of them is secret.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthFailure {
    /// The `error` code, e.g. `access_denied` or `invalid_client`.
    pub error: String,
    /// `error_description`, when the server sent one.
    pub description: Option<String>,
    /// `error_uri`, when the server sent one.
    pub uri: Option<String>,
}

impl fmt::Debug for OAuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthFailure")
            .field("error", &self.error)
            .field("description", &self.description)
            .field("uri", &self.uri)
            .finish()
    }
}

impl fmt::Display for OAuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.error)?;
        if let Some(d) = &self.description {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong in a SMART launch, a token call or a FHIR call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SmartError {
    /// The launch request (`iss`, `launch`) is missing or malformed.
    #[error("invalid launch request: {reason}")]
    InvalidLaunch {
        /// What is wrong with it.
        reason: String,
    },
    /// The launching server is not on the app's allow-list.
    #[error("issuer {iss} is not on the allow-list")]
    IssuerNotAllowed {
        /// The `iss` that was refused.
        iss: String,
    },
    /// The app's own configuration is unusable (bad URL, bad key, missing secret).
    #[error("configuration error: {reason}")]
    Config {
        /// What is wrong with it.
        reason: String,
    },
    /// The server's `.well-known/smart-configuration` is missing, malformed or unsafe.
    #[error("discovery document from {iss} rejected: {reason}")]
    Discovery {
        /// The FHIR base the document was fetched for.
        iss: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The redirect back to the app has no `state`, or one that is unknown, expired or used.
    #[error("authorization callback rejected: {reason}")]
    InvalidState {
        /// Why it was rejected (never the state value itself).
        reason: String,
    },
    /// The redirect back to the app did not come from the browser that started the launch: the
    /// browser binding of the pending launch (see [`crate::binding`]) is missing or different.
    /// Either someone tried to make this browser complete their sign-in (login CSRF), or the
    /// browser did not keep the app's cookie (blocked storage in an embedding frame).
    #[error("authorization callback rejected: {reason}")]
    BrowserMismatch {
        /// Why it was rejected (never the binding value itself).
        reason: String,
    },
    /// The redirect back to the app is malformed (no `code`, bad query string).
    #[error("authorization callback malformed: {reason}")]
    InvalidCallback {
        /// What is missing or wrong.
        reason: String,
    },
    /// The authorization server refused the request on the redirect.
    #[error("authorization refused: {0}")]
    AuthorizationDenied(OAuthFailure),
    /// The token endpoint answered with an OAuth error.
    #[error("token endpoint refused the request (HTTP {status}): {failure}")]
    TokenRefused {
        /// HTTP status.
        status: u16,
        /// The OAuth error body.
        failure: OAuthFailure,
    },
    /// A server answered with something that is not what the protocol says it must be.
    #[error("unexpected response from {endpoint}: {reason}")]
    InvalidResponse {
        /// Which endpoint (`token`, `discovery`, a URL…).
        endpoint: String,
        /// What was wrong.
        reason: String,
    },
    /// A server answered with an HTTP status the call cannot use.
    #[error("{endpoint} answered HTTP {status}")]
    HttpStatus {
        /// Which endpoint.
        endpoint: String,
        /// HTTP status.
        status: u16,
    },
    /// The network call failed (connection, TLS, body read).
    #[error("could not reach {endpoint}: {reason}")]
    Transport {
        /// Which endpoint.
        endpoint: String,
        /// The transport's description (never includes headers or bodies).
        reason: String,
    },
    /// The call took longer than allowed.
    #[error("{endpoint} did not answer in time")]
    Timeout {
        /// Which endpoint.
        endpoint: String,
    },
    /// The id_token failed verification.
    #[error("id_token rejected: {reason}")]
    IdToken {
        /// Why.
        reason: String,
    },
    /// `openid` was granted but the token response carries no id_token, so the user's identity is
    /// unknown. [`crate::ClientConfig::allow_missing_id_token`] accepts this for servers known to
    /// omit it.
    #[error("openid was granted but the token response has no id_token")]
    IdTokenMissing,
    /// Context the app needs (patient, encounter, …) is not in the launch.
    #[error("launch context is missing {what}")]
    MissingContext {
        /// What is missing, e.g. `patient`.
        what: String,
    },
    /// A context resource is not of the expected type.
    #[error("context resource has type {found}, expected {expected}")]
    WrongContextType {
        /// The type the app needs.
        expected: String,
        /// The type that arrived.
        found: String,
    },
    /// The session has expired and cannot be refreshed.
    #[error("session expired: {reason}")]
    SessionExpired {
        /// Why no refresh was possible.
        reason: String,
    },
    /// A FHIR request would send the bearer token to a server other than the session's own.
    #[error("refusing to send the access token to {url}: not under the session's FHIR base")]
    ForeignUrl {
        /// The URL that was refused.
        url: String,
    },
    /// The FHIR server answered with an error (its OperationOutcome summarised).
    #[error("FHIR server answered HTTP {status}: {summary}")]
    Fhir {
        /// HTTP status.
        status: u16,
        /// The OperationOutcome's diagnostics, or a short description.
        summary: String,
        /// The OperationOutcome (or other body) as sent, when it was JSON.
        outcome: Option<serde_json::Value>,
    },
    /// An asynchronous FHIR request did not finish before the deadline.
    #[error("asynchronous request at {status_url} did not finish in time")]
    AsyncDeadline {
        /// The polling URL.
        status_url: String,
    },
    /// Signing or key handling failed.
    #[error("cryptographic failure: {reason}")]
    Crypto {
        /// Why (never key material).
        reason: String,
    },
    /// The launch store failed.
    #[error("launch store failure: {reason}")]
    Store {
        /// Why.
        reason: String,
    },
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

impl SmartError {
    /// A stable, machine-readable code for this error (for logs, metrics and API answers).
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidLaunch { .. } => "launch_invalid",
            Self::IssuerNotAllowed { .. } => "issuer_not_allowed",
            Self::Config { .. } => "config_invalid",
            Self::Discovery { .. } => "discovery_invalid",
            Self::InvalidState { .. } => "state_invalid",
            Self::BrowserMismatch { .. } => "browser_mismatch",
            Self::InvalidCallback { .. } => "callback_invalid",
            Self::AuthorizationDenied(_) => "authorization_denied",
            Self::TokenRefused { .. } => "token_refused",
            Self::InvalidResponse { .. } => "response_invalid",
            Self::HttpStatus { .. } => "http_status",
            Self::Transport { .. } => "transport",
            Self::Timeout { .. } => "timeout",
            Self::IdToken { .. } => "id_token_invalid",
            Self::IdTokenMissing => "id_token_missing",
            Self::MissingContext { .. } => "context_missing",
            Self::WrongContextType { .. } => "context_wrong_type",
            Self::SessionExpired { .. } => "session_expired",
            Self::ForeignUrl { .. } => "foreign_url",
            Self::Fhir { .. } => "fhir_error",
            Self::AsyncDeadline { .. } => "async_deadline",
            Self::Crypto { .. } => "crypto",
            Self::Store { .. } => "store",
            Self::Random => "random",
        }
    }

    /// A message fit to show a clinician: what happened and what to do, without jargon or detail
    /// that only a developer can act on.
    pub fn user_message(&self) -> String {
        match self {
            Self::InvalidLaunch { .. } => {
                "This app was not opened correctly. Please open it again from your clinical system."
                    .into()
            }
            Self::IssuerNotAllowed { .. } => {
                "This app is not set up to work with the system that opened it. Please contact \
                 your support team."
                    .into()
            }
            Self::Config { .. } | Self::Crypto { .. } | Self::Random | Self::Store { .. } => {
                "The app could not start because of an internal problem. Please contact your \
                 support team."
                    .into()
            }
            Self::Discovery { .. } => {
                "The clinical system's sign-in settings could not be read or are not safe to use. \
                 Please contact your support team."
                    .into()
            }
            Self::InvalidState { .. } | Self::InvalidCallback { .. } => {
                "The sign-in could not be completed (it may have expired or been used already). \
                 Please open the app again from your clinical system."
                    .into()
            }
            Self::AuthorizationDenied(f) => match f.error.as_str() {
                "access_denied" => "Access to this app was not granted. Open the app again if \
                                    you want to allow it."
                    .into(),
                "temporarily_unavailable" | "server_error" => {
                    "The sign-in service is temporarily unavailable. Please try again in a few \
                     minutes."
                        .into()
                }
                _ => "The sign-in service refused this app's request. Please contact your \
                      support team."
                    .into(),
            },
            Self::BrowserMismatch { .. } => {
                "The sign-in could not be completed in this browser window. If the app is shown \
                 inside your clinical system, your browser may be blocking its cookies. Please \
                 open the app again from your clinical system; if this keeps happening, contact \
                 your support team."
                    .into()
            }
            Self::TokenRefused { .. } | Self::IdToken { .. } | Self::IdTokenMissing => {
                "Sign-in could not be completed. Please open the app again from your clinical \
                 system."
                    .into()
            }
            Self::InvalidResponse { .. } | Self::HttpStatus { .. } => {
                "The clinical system sent an unexpected answer. Please try again; if it keeps \
                 happening, contact your support team."
                    .into()
            }
            Self::Transport { .. } | Self::Timeout { .. } | Self::AsyncDeadline { .. } => {
                "The clinical system could not be reached in time. Please try again.".into()
            }
            Self::MissingContext { what } => format!(
                "The app needs {} to be selected. Please select one in your clinical system and \
                 open the app again.",
                with_article(what)
            ),
            Self::WrongContextType { expected, .. } => format!(
                "The record opened with the app is not {}. Please open the app again from the \
                 right record.",
                with_article(expected)
            ),
            Self::SessionExpired { .. } => {
                "Your session has ended. Please open the app again from your clinical system."
                    .into()
            }
            Self::ForeignUrl { .. } => {
                "The app tried to reach a server it is not allowed to use with your session.".into()
            }
            // The status and the server's own text stay in `Display` for developers; a clinician
            // gets what it means for them and what to do.
            Self::Fhir { status, .. } => fhir_user_message(*status).into(),
        }
    }

    pub(crate) fn invalid_response(endpoint: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidResponse {
            endpoint: endpoint.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn config(reason: impl Into<String>) -> Self {
        Self::Config {
            reason: reason.into(),
        }
    }
}

/// `a patient`, `an encounter`, `an Observation`: the article English wants before `word`.
fn with_article(word: &str) -> String {
    let vowel = word
        .chars()
        .next()
        .is_some_and(|c| matches!(c.to_ascii_lowercase(), 'a' | 'e' | 'i' | 'o' | 'u'));
    format!("{} {word}", if vowel { "an" } else { "a" })
}

/// What a FHIR error status means to a clinician. A 401 is an expired or revoked token (RFC 6750
/// §3.1), which is a session that ended, not a missing permission.
fn fhir_user_message(status: u16) -> &'static str {
    match status {
        401 => "Your session has ended. Please open the app again from your clinical system.",
        403 => "You do not have permission for this action in the clinical system.",
        404 | 410 => "The requested record was not found.",
        409 | 412 => {
            "The record was changed by someone else in the meantime. Please reload it and try \
             again."
        }
        400 | 422 => {
            "The clinical system did not accept the information sent. Please check it and try \
             again; if it keeps happening, contact your support team."
        }
        429 | 502..=504 => {
            "The clinical system is busy or temporarily unavailable. Please try again in a few \
             minutes."
        }
        _ => {
            "The clinical system could not complete the request. Please try again; if it keeps \
             happening, contact your support team."
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: APP-17
    #[test]
    fn every_error_has_a_code_and_a_plain_message() {
        let errors = [
            SmartError::InvalidLaunch { reason: "x".into() },
            SmartError::AuthorizationDenied(OAuthFailure {
                error: "access_denied".into(),
                description: None,
                uri: None,
            }),
            SmartError::MissingContext {
                what: "patient".into(),
            },
            SmartError::Random,
        ];
        let codes: Vec<_> = errors.iter().map(SmartError::code).collect();
        assert_eq!(
            codes,
            [
                "launch_invalid",
                "authorization_denied",
                "context_missing",
                "random"
            ]
        );
        for e in &errors {
            let m = e.user_message();
            assert!(
                !m.is_empty() && !m.contains("OAuth") && !m.contains("HTTP"),
                "{m}"
            );
        }
        assert!(errors[2].user_message().contains("patient"));
    }

    /// A gateway in front of a SMART server answered 502 with its own HTML page: the clinician
    /// saw "could not complete the request: HTTP 502". No status, no server text, whatever the
    /// status; the developer detail keeps both.
    // REQ: APP-17
    #[test]
    fn fhir_errors_speak_to_clinicians_without_status_codes_or_server_text() {
        let gateway = crate::fhir::fhir_error(
            502,
            b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center>\
              <h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.25.3</center>\r\n\
              </body>\r\n</html>\r\n",
        );
        assert_eq!(
            gateway.user_message(),
            "The clinical system is busy or temporarily unavailable. Please try again in a few \
             minutes."
        );
        assert!(gateway.to_string().contains("HTTP 502"), "{gateway}");
        let outcome = br#"{"resourceType":"OperationOutcome","issue":[{"severity":"error",
            "code":"processing","diagnostics":"HAPI-0389: Failed to call access method"}]}"#;
        for status in 400..600 {
            let e = crate::fhir::fhir_error(status, outcome);
            let m = e.user_message();
            assert!(
                !m.contains("HTTP") && !m.contains(&status.to_string()) && !m.contains("HAPI"),
                "{status}: {m}"
            );
            assert!(m.ends_with('.'), "{status}: {m}");
            assert!(e.to_string().contains("HAPI-0389"), "{e}");
        }
    }

    /// "The app needs a encounter".
    // REQ: APP-14
    #[test]
    fn context_messages_use_the_right_article() {
        let missing = |what: &str| SmartError::MissingContext { what: what.into() }.user_message();
        assert!(missing("encounter").starts_with("The app needs an encounter to be selected"));
        assert!(missing("patient").starts_with("The app needs a patient to be selected"));
        assert!(missing("Observation").starts_with("The app needs an Observation "));
        assert!(missing("List").starts_with("The app needs a List "));
        let wrong = SmartError::WrongContextType {
            expected: "Encounter".into(),
            found: "Group".into(),
        };
        assert!(wrong.user_message().contains("is not an Encounter."));
    }
}

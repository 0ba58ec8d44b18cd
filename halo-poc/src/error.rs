//! The one error type of the crate: a stable machine code and a message a person can act on.

use std::time::Duration;

/// Everything that can go wrong on the PoC side.
///
/// [`PocError::code`] is stable across releases (log it, match on it, show it to support);
/// the `Display` text says what happened and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PocError {
    /// A configured URL (launch URL, SoFA base, `iss`) cannot be used.
    #[error(
        "the URL '{url}' cannot be used: {reason}; check the App Catalog entry or the PoC configuration"
    )]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed; the launch was not started")]
    Randomness,
    /// The clinician's context lacks something the app needs.
    #[error(
        "the app needs a {what} in its launch context but none is open; select one and launch again"
    )]
    MissingContext {
        /// What is missing (`Patient`, `Encounter`, `fhirUser`, ...).
        what: String,
    },
    /// The EMR could not supply a local resource.
    #[error("the EMR could not supply {reference}: {reason}")]
    LocalResource {
        /// The local reference (`Type/id`).
        reference: String,
        /// Why.
        reason: String,
    },
    /// The `$set-context` request could not be built from the local resources.
    #[error("the $set-context request could not be built: {0}")]
    Build(String),
    /// No bearer token could be obtained for a call to the SoFA.
    #[error("no access token for the SoFA: {0}; check the PoC's client registration and key")]
    Token(String),
    /// An outbound call did not finish in time.
    #[error("{operation} did not answer within {timeout:?}; the SoFA may be down, try again later")]
    Timeout {
        /// Which call (`$set-context`, `$status`, ...).
        operation: String,
        /// The limit.
        timeout: Duration,
    },
    /// An outbound call failed before an answer arrived.
    #[error("{operation} could not reach the SoFA: {detail}")]
    Network {
        /// Which call.
        operation: String,
        /// The transport error.
        detail: String,
    },
    /// The SoFA answered with an error status.
    #[error("{operation} was refused by the SoFA with HTTP {status}: {detail}")]
    Rejected {
        /// Which call.
        operation: String,
        /// The HTTP status.
        status: u16,
        /// The OperationOutcome's diagnostics, or the start of the body.
        detail: String,
    },
    /// The SoFA answered 2xx with something that is not what the operation defines.
    #[error(
        "{operation} answered with something unexpected: {detail}; report this to the SoFA operator"
    )]
    InvalidResponse {
        /// Which call.
        operation: String,
        /// What is wrong.
        detail: String,
    },
    /// A subscription did not become (or stopped being) `active`.
    #[error("subscription {id} is '{status}', not active{}", .error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default())]
    SubscriptionNotActive {
        /// The subscription id (empty before the SoFA assigned one).
        id: String,
        /// Its status.
        status: String,
        /// The SoFA's `Subscription.error` note.
        error: Option<String>,
    },
    /// A notification arrived without the header the PoC put on its subscription.
    #[error("the notification does not carry the expected {header} header; it was ignored")]
    Unauthenticated {
        /// The header name.
        header: String,
    },
    /// A notification could not be read.
    #[error("the notification could not be read: {0}")]
    InvalidNotification(String),
    /// The host refused or failed to apply a change.
    #[error("the EMR could not apply the change: {0}")]
    Host(String),
    /// The id mapping store failed.
    #[error("the id mapping store failed: {0}")]
    Store(String),
    /// A websocket could not be opened, bound or kept.
    #[error("the notification websocket failed: {0}")]
    Websocket(String),
}

impl PocError {
    /// The stable machine code (`poc.<kind>`).
    pub fn code(&self) -> &'static str {
        match self {
            PocError::InvalidUrl { .. } => "poc.invalid-url",
            PocError::Randomness => "poc.randomness",
            PocError::MissingContext { .. } => "poc.missing-context",
            PocError::LocalResource { .. } => "poc.local-resource",
            PocError::Build(_) => "poc.build",
            PocError::Token(_) => "poc.token",
            PocError::Timeout { .. } => "poc.timeout",
            PocError::Network { .. } => "poc.network",
            PocError::Rejected { .. } => "poc.rejected",
            PocError::InvalidResponse { .. } => "poc.invalid-response",
            PocError::SubscriptionNotActive { .. } => "poc.subscription-not-active",
            PocError::Unauthenticated { .. } => "poc.unauthenticated",
            PocError::InvalidNotification(_) => "poc.invalid-notification",
            PocError::Host(_) => "poc.host",
            PocError::Store(_) => "poc.store",
            PocError::Websocket(_) => "poc.websocket",
        }
    }

    /// Whether trying the same call again later may succeed (timeouts, network errors,
    /// 5xx and 429 answers).
    pub fn is_transient(&self) -> bool {
        match self {
            PocError::Timeout { .. } | PocError::Network { .. } | PocError::Websocket(_) => true,
            PocError::Rejected { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = PocError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_messages_name_the_operation() {
        let errors = [
            PocError::Randomness,
            PocError::Timeout {
                operation: "$set-context".into(),
                timeout: Duration::from_secs(10),
            },
            PocError::Rejected {
                operation: "$set-context".into(),
                status: 422,
                detail: "unsupported type".into(),
            },
            PocError::SubscriptionNotActive {
                id: "s1".into(),
                status: "error".into(),
                error: Some("handshake failed".into()),
            },
        ];
        let codes: std::collections::BTreeSet<_> = errors.iter().map(PocError::code).collect();
        assert_eq!(codes.len(), errors.len());
        assert!(errors[1].to_string().contains("$set-context"));
        assert!(errors[1].is_transient());
        assert!(!errors[2].is_transient());
        assert!(errors[3].to_string().contains("handshake failed"));
    }
}

//! Backend services (`client_credentials` with `private_key_jwt`): system-to-system tokens, e.g.
//! a PoC calling its SoFA.
//!
//! The request is [`crate::token::client_credentials_request`]; the HTTP shell with token caching
//! is [`crate::SmartClient::backend_token`] (feature `reqwest`).

use halo_model::smart::TokenResponse;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// A backend-services access token and when it expires.
#[derive(Clone, Serialize, Deserialize)]
pub struct BackendToken {
    /// The access token.
    pub access_token: Secret,
    /// The granted scopes.
    pub scope: String,
    /// Expiry (Unix seconds); backend tokens are short-lived and not refreshed, the client asks
    /// for a new one.
    pub expires_at: i64,
}

impl std::fmt::Debug for BackendToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendToken")
            .field("access_token", &self.access_token)
            .field("scope", &self.scope)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Lifetime assumed when the server leaves out `expires_in` (backend services make it required;
/// five minutes is the spec's upper recommendation).
const DEFAULT_LIFETIME_SECS: i64 = 300;

impl BackendToken {
    /// From a token response received at `now`.
    pub fn from_response(token: TokenResponse, now: i64) -> Self {
        let lifetime = token
            .expires_in
            .and_then(|s| i64::try_from(s).ok())
            .unwrap_or(DEFAULT_LIFETIME_SECS);
        Self {
            access_token: Secret::new(token.access_token),
            scope: token.scope.unwrap_or_default(),
            expires_at: now.saturating_add(lifetime),
        }
    }

    /// Still usable for at least `margin_secs`.
    pub fn fresh_at(&self, now: i64, margin_secs: i64) -> bool {
        self.expires_at - margin_secs > now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: APP-15
    #[test]
    fn backend_token_from_the_spec_example() {
        let body = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/smart/token-response.backend-services.json"
        ))
        .unwrap();
        let t = BackendToken::from_response(TokenResponse::from_json(&body).unwrap(), 100);
        assert_eq!(t.scope, "system/*.rs");
        assert_eq!(t.expires_at, 3700);
        assert!(t.fresh_at(3000, 60));
        assert!(!t.fresh_at(3650, 60));
        assert!(!format!("{t:?}").contains(t.access_token.expose()));
    }
}

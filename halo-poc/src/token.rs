//! Where the PoC's bearer token for the SoFA comes from.
//!
//! The SoFA needs `Context.write` for `$set-context`/`$clear-context` and
//! `system/Subscription.cruds` (or `user/...`) for subscriptions (decision D-06). How the PoC
//! gets such a token is its own business (a clinician's token from the jurisdictional IdP, or a
//! backend-services token), so it is a trait.

use std::fmt;

use crate::BoxFuture;
use crate::error::Result;

/// Gives the bearer token for the next call to the SoFA. Called before every call, so an
/// implementation caches and renews as it sees fit.
pub trait TokenSource: Send + Sync {
    /// The access token to send as `Authorization: Bearer <token>`.
    fn access_token(&self) -> BoxFuture<'_, Result<String>>;
}

/// A token the host already holds (for example the clinician's token from the jurisdictional
/// IdP, obtained with the authorization code flow). `Debug` does not show it.
#[derive(Clone)]
pub struct StaticToken(String);

impl StaticToken {
    /// Wraps `token`.
    pub fn new(token: impl Into<String>) -> StaticToken {
        StaticToken(token.into())
    }
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticToken(***)")
    }
}

impl TokenSource for StaticToken {
    fn access_token(&self) -> BoxFuture<'_, Result<String>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
}

#[cfg(feature = "backend-services")]
pub use backend::{BackendServicesTokens, ClinicianTokens};

#[cfg(feature = "backend-services")]
mod backend {
    use std::fmt;

    use halo_smart_client::keys::SigningKey;
    use halo_smart_client::{SessionHandle, SmartClient, SmartError};
    use url::Url;

    use super::TokenSource;
    use crate::BoxFuture;
    use crate::error::{PocError, Result};

    /// SMART backend services (`client_credentials` with a `private_key_jwt` assertion) through
    /// `halo-smart-client`, which caches the token until shortly before it expires.
    pub struct BackendServicesTokens {
        client: SmartClient,
        token_endpoint: Url,
        client_id: String,
        key: SigningKey,
        scope: String,
    }

    impl BackendServicesTokens {
        /// Tokens for `client_id` from `token_endpoint`, signed with `key`, asking for `scope`
        /// (for example `Context.write system/Subscription.cruds`, decision D-06).
        pub fn new(
            client: SmartClient,
            token_endpoint: Url,
            client_id: impl Into<String>,
            key: SigningKey,
            scope: impl Into<String>,
        ) -> BackendServicesTokens {
            BackendServicesTokens {
                client,
                token_endpoint,
                client_id: client_id.into(),
                key,
                scope: scope.into(),
            }
        }
    }

    impl fmt::Debug for BackendServicesTokens {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("BackendServicesTokens")
                .field("token_endpoint", &self.token_endpoint.as_str())
                .field("client_id", &self.client_id)
                .field("scope", &self.scope)
                .finish_non_exhaustive()
        }
    }

    impl TokenSource for BackendServicesTokens {
        fn access_token(&self) -> BoxFuture<'_, Result<String>> {
            Box::pin(async move {
                let token = self
                    .client
                    .backend_token(
                        &self.token_endpoint,
                        &self.client_id,
                        &self.key,
                        &self.scope,
                    )
                    .await
                    .map_err(|e: SmartError| PocError::Token(e.to_string()))?;
                Ok(token.access_token.expose().to_owned())
            })
        }
    }

    /// The signed-in clinician's token for `$set-context` and `$clear-context` (HALO SoFA step
    /// 2, D-18): the session of the authorization code flow with PKCE that the EMR ran at the
    /// jurisdictional IdP for its clinician ([`SmartClient::begin_sign_in`], then
    /// [`SmartClient::complete_launch`]), refreshed through `halo-smart-client` shortly before it
    /// expires. The launch the SoFA stores belongs to that clinician; subscriptions stay on the
    /// installation's own [`BackendServicesTokens`] (D-07).
    pub struct ClinicianTokens {
        session: SessionHandle,
    }

    impl ClinicianTokens {
        /// Tokens from the clinician's session.
        pub fn new(session: SessionHandle) -> ClinicianTokens {
            ClinicianTokens { session }
        }

        /// The session, for its id_token claims (who signed in) or to keep it.
        pub fn session(&self) -> &SessionHandle {
            &self.session
        }
    }

    impl fmt::Debug for ClinicianTokens {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("ClinicianTokens").finish_non_exhaustive()
        }
    }

    impl TokenSource for ClinicianTokens {
        fn access_token(&self) -> BoxFuture<'_, Result<String>> {
            Box::pin(async move {
                let token = self
                    .session
                    .access_token()
                    .await
                    .map_err(|e: SmartError| PocError::Token(e.to_string()))?;
                Ok(token.expose().to_owned())
            })
        }
    }
}

//! A live session: the `LaunchSession` plus automatic, de-duplicated refresh.

use std::sync::Arc;

use url::Url;

use super::{SmartClient, now, secs};
use crate::error::{Result, SmartError};
use crate::secret::Secret;
use crate::session::LaunchSession;
use crate::token::refresh_request;

/// A session in use. Clones share the same tokens, so concurrent requests that find the token
/// expiring (or get a 401) make one refresh request between them.
#[derive(Clone)]
pub struct SessionHandle {
    client: SmartClient,
    shared: Arc<Shared>,
}

struct Shared {
    session: std::sync::Mutex<LaunchSession>,
    // Held across the refresh call, so only one refresh runs at a time per session.
    refreshing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.shared.session.lock() {
            Ok(s) => f.debug_tuple("SessionHandle").field(&*s).finish(),
            Err(_) => f.write_str("SessionHandle(<poisoned>)"),
        }
    }
}

impl SessionHandle {
    pub(crate) fn new(client: SmartClient, session: LaunchSession) -> Self {
        Self {
            client,
            shared: Arc::new(Shared {
                session: std::sync::Mutex::new(session),
                refreshing: tokio::sync::Mutex::new(()),
            }),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, LaunchSession>> {
        self.shared.session.lock().map_err(|_| SmartError::Store {
            reason: "the session lock is poisoned".into(),
        })
    }

    /// A copy of the session as it is now (to persist it, or to read context and scopes).
    pub fn snapshot(&self) -> Result<LaunchSession> {
        Ok(self.lock()?.clone())
    }

    /// The client this session belongs to.
    pub fn client(&self) -> &SmartClient {
        &self.client
    }

    /// A FHIR client bound to this session's FHIR base.
    pub fn fhir(&self) -> super::FhirClient {
        super::FhirClient::new(self.clone())
    }

    /// A usable access token and the session generation it belongs to; refreshes first when the
    /// token expires within the refresh margin and a refresh token is available.
    pub(crate) async fn bearer(&self) -> Result<(Secret, u64)> {
        let margin = secs(self.client.options().refresh_margin);
        let (token, generation, expiring, refreshable) = {
            let s = self.lock()?;
            (
                s.access_token().clone(),
                s.generation,
                s.refresh_due(now(), margin),
                s.refresh_token().is_some(),
            )
        };
        if !expiring {
            return Ok((token, generation));
        }
        if !refreshable {
            // Not expired yet: use it for the time it has left. Expired: the caller cannot go on.
            if self.lock()?.expires_within(now(), 0) {
                return Err(SmartError::SessionExpired {
                    reason: "the access token expired and no refresh token was granted".into(),
                });
            }
            return Ok((token, generation));
        }
        self.refresh_from(generation).await?;
        let s = self.lock()?;
        Ok((s.access_token().clone(), s.generation))
    }

    /// A usable access token: the session's, refreshed first when it expires within the
    /// refresh margin and a refresh token was granted. For a caller that sends the token
    /// itself (a point of care's `$set-context` with its clinician's token).
    pub async fn access_token(&self) -> Result<Secret> {
        Ok(self.bearer().await?.0)
    }

    /// Refreshes now (`grant_type=refresh_token`), keeping the granted scopes.
    pub async fn refresh(&self) -> Result<()> {
        let generation = self.lock()?.generation;
        self.refresh_from(generation).await
    }

    /// Refreshes unless someone already did since `seen_generation` (then there is nothing to do:
    /// the token they got is newer than the one that failed).
    pub(crate) async fn refresh_from(&self, seen_generation: u64) -> Result<()> {
        let _guard = self.shared.refreshing.lock().await;
        let (fhir_base, client_id, token_endpoint, refresh_token) = {
            let s = self.lock()?;
            if s.generation != seen_generation {
                return Ok(());
            }
            let refresh = s
                .refresh_token()
                .cloned()
                .ok_or_else(|| SmartError::SessionExpired {
                    reason: "no refresh token was granted".into(),
                })?;
            (
                s.fhir_base.clone(),
                s.client_id.clone(),
                s.token_endpoint.clone(),
                refresh,
            )
        };
        let config = self.client.policy().check(&fhir_base)?;
        let url = Url::parse(&token_endpoint)
            .map_err(|_| SmartError::config("the session's token endpoint is not a URL"))?;
        let request = refresh_request(&url, &client_id, &config.auth, &refresh_token, None, now())?;
        let token = self
            .client
            .token_call(&request)
            .await
            .map_err(|e| match e {
                SmartError::TokenRefused { failure, .. } if failure.error == "invalid_grant" => {
                    SmartError::SessionExpired {
                        reason: "the refresh token was refused".into(),
                    }
                }
                other => other,
            })?;
        // OpenID Connect Core §12.2: an id_token in a refresh response is verified like the
        // launch's, and must name the same user; otherwise the whole response is dropped.
        let verified = match &token.id_token {
            Some(id_token) => Some(
                self.client
                    .verify_id_token(&fhir_base, &client_id, &Secret::new(id_token.clone()))
                    .await?,
            ),
            None => None,
        };
        self.lock()?.apply_refresh(token, verified, now())
    }
}

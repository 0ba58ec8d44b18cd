//! Grant families (REQ AS-05, AS-08, IDP-05): the refresh tokens and access tokens issued from
//! one authorization, revoked together when a code is replayed, a refresh token reused, or the
//! app signs out. A revocation is a row of the store, so it holds after a restart and on every
//! instance; it is kept until the last access token the family may hold has expired.

use std::sync::Arc;

use chrono::Duration;
use halo_model::oauth::OAuthError;

use super::decide::tokens::hash_secret;
use crate::clock::Clock;
use crate::store::{RefreshTokenRecord, Store, StoreError, Transaction};

/// The answer when the store is busy or down: the client may retry (503 with `Retry-After`).
pub(crate) fn unavailable(_: StoreError) -> OAuthError {
    OAuthError::temporarily_unavailable("the store is unavailable; retry shortly")
}

/// A store failure seen by an OAuth endpoint is [`unavailable`]: a write unit that answers
/// OAuth errors gets its commit failures as that too.
impl From<StoreError> for OAuthError {
    fn from(error: StoreError) -> Self {
        unavailable(error)
    }
}

/// Revokes grant families and finds refresh tokens.
#[derive(Clone)]
pub(crate) struct Families {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// How long an access token lives: a revoked family's row is kept that long.
    access_ttl: std::time::Duration,
}

impl Families {
    /// Families in `store`, whose access tokens live `access_ttl`.
    pub(crate) fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        access_ttl: std::time::Duration,
    ) -> Families {
        Families {
            store,
            clock,
            access_ttl,
        }
    }

    /// Revokes `family` within `tx` (nothing for an empty family).
    pub(crate) async fn revoke_in(
        &self,
        tx: &mut dyn Transaction,
        family: &str,
    ) -> Result<(), OAuthError> {
        if family.is_empty() {
            return Ok(());
        }
        let ttl = Duration::from_std(self.access_ttl).unwrap_or_else(|_| Duration::hours(1));
        tx.revoke_token_family(family).await.map_err(unavailable)?;
        tx.revoke_access_family(family, self.clock.now() + ttl)
            .await
            .map_err(unavailable)
    }

    /// Revokes `family` in a transaction of its own.
    pub(crate) async fn revoke(&self, family: &str) -> Result<(), OAuthError> {
        if family.is_empty() {
            return Ok(());
        }
        let (families, family) = (self.clone(), family.to_owned());
        self.store
            .write(move |tx| Box::pin(async move { families.revoke_in(tx, &family).await }))
            .await
    }

    /// The record of a presented refresh token, read outside any write.
    pub(crate) async fn find_refresh(
        &self,
        presented: &str,
    ) -> Result<Option<RefreshTokenRecord>, OAuthError> {
        let mut tx = self.store.begin_read().await.map_err(unavailable)?;
        let record = tx
            .get_refresh_token(&hash_secret(presented))
            .await
            .map_err(unavailable)?;
        let _ = tx.rollback().await;
        Ok(record)
    }
}

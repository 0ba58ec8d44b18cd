//! The signing keys as a service (REQ AS-02, IDP-06): the [`KeyRing`] this instance holds,
//! re-read from the store at an interval (and sooner when a token names a key id it has not
//! seen), rotated on request, and used to sign.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::keys::{KeyError, KeyRing, KeyUse, Rotation};
use crate::clock::Clock;
use crate::protect::KeyProtector;
use crate::store::Store;

/// The server's signing keys and what keeps them current.
pub(crate) struct SigningKeys {
    ring: RwLock<Arc<KeyRing>>,
    /// When the keys were last read from the store (real time: it paces store reads).
    read_at: Mutex<Instant>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    protector: Option<Arc<dyn KeyProtector>>,
    refresh_interval: Duration,
    rotation: Rotation,
}

impl SigningKeys {
    /// The keys `ring`, just read from `store`.
    pub(crate) fn new(
        ring: KeyRing,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        protector: Option<Arc<dyn KeyProtector>>,
        refresh_interval: Duration,
        rotation: Rotation,
    ) -> SigningKeys {
        SigningKeys {
            ring: RwLock::new(Arc::new(ring)),
            read_at: Mutex::new(Instant::now()),
            store,
            clock,
            protector,
            refresh_interval,
            rotation,
        }
    }

    /// The keys as last read.
    pub(crate) fn current(&self) -> Arc<KeyRing> {
        self.ring
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The keys, read again from the store when the last read is older than the refresh
    /// interval (or one second with `unknown_kid`: a token names a key this instance has not
    /// seen, perhaps rotated in by another). A failed read keeps the keys held and is logged.
    pub(crate) async fn fresh(&self, unknown_kid: bool) -> Arc<KeyRing> {
        let interval = if unknown_kid {
            Duration::from_secs(1).min(self.refresh_interval)
        } else {
            self.refresh_interval
        };
        let due = {
            let mut read_at = self.read_at.lock().unwrap_or_else(PoisonError::into_inner);
            let due = read_at.elapsed() >= interval;
            if due {
                // Claimed before the read, so concurrent requests do not all read.
                *read_at = Instant::now();
            }
            due
        };
        if due {
            let held = self.current();
            match held
                .reload(
                    self.store.as_ref(),
                    self.protector.as_deref(),
                    self.clock.now(),
                )
                .await
            {
                Ok(ring) => self.replace(ring),
                Err(e) => tracing::warn!(error = %e, "the signing keys could not be re-read"),
            }
        }
        self.current()
    }

    fn replace(&self, ring: KeyRing) {
        *self.ring.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(ring);
    }

    /// Rotates the key for `key_use` (REQ IDP-06) on this server's schedule.
    pub(crate) async fn rotate(&self, key_use: KeyUse) -> Result<(), KeyError> {
        let ring = KeyRing::rotate(
            self.store.as_ref(),
            self.protector.as_deref(),
            key_use,
            self.clock.now(),
            self.rotation,
        )
        .await?;
        self.replace(ring);
        Ok(())
    }

    /// The rotation schedule.
    pub(crate) fn rotation(&self) -> Rotation {
        self.rotation
    }

    /// Signs `claims` with the key for `key_use` current now.
    pub(crate) fn sign<T: Serialize>(
        &self,
        key_use: KeyUse,
        claims: &T,
    ) -> Result<String, KeyError> {
        self.current().sign_at(key_use, self.clock.now(), claims)
    }

    /// The public JWKS as last read.
    pub(crate) fn jwks(&self) -> Value {
        self.current().jwks(self.clock.now())
    }
}

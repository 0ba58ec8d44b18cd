//! Pending launches between the authorize redirect and the callback, keyed by `state`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Result, SmartError};
use crate::secret::Secret;

/// What the app must remember between sending the user to authorize and the callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingLaunch {
    /// The `state` sent on the authorize request (the store key).
    pub state: String,
    /// The launching FHIR base (`iss`), as received.
    pub iss: String,
    /// `aud` as sent (equal to `iss`).
    pub aud: String,
    /// The `launch` id, for an EHR launch.
    pub launch: Option<String>,
    /// `client_id` used.
    pub client_id: String,
    /// `redirect_uri` used; the token request must repeat it exactly.
    pub redirect_uri: String,
    /// The PKCE verifier.
    pub code_verifier: Secret,
    /// The token endpoint from discovery.
    pub token_endpoint: String,
    /// The scopes requested.
    pub scope: String,
    /// Context the app needs (APP-14).
    pub required_context: Vec<String>,
    /// When the pending launch stops being usable (Unix seconds).
    pub expires_at: i64,
    /// The digest of the browser binding ([`crate::binding::BrowserBinding::digest`]); the
    /// callback must present the value. Empty in launches stored before bindings existed, which
    /// then cannot complete.
    #[serde(default)]
    pub browser_binding: String,
}

/// A boxed future, so that `LaunchStore` can be used as `dyn LaunchStore`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// Where pending launches live. Implement it over the app's own session store or database when the
/// app runs on more than one instance; [`MemoryLaunchStore`] serves a single process.
///
/// Contract: `take` removes the entry (single use) and returns it only if it has not expired at
/// `now`; an unknown, used or expired `state` yields `Ok(None)`.
pub trait LaunchStore: Send + Sync {
    /// Stores a pending launch under its `state`.
    fn put(&self, pending: PendingLaunch) -> StoreFuture<'_, ()>;
    /// Removes and returns the pending launch for `state`, if present and not expired at `now`.
    fn take<'a>(&'a self, state: &'a str, now: i64) -> StoreFuture<'a, Option<PendingLaunch>>;
}

/// An in-process [`LaunchStore`].
#[derive(Debug, Default)]
pub struct MemoryLaunchStore {
    entries: Mutex<HashMap<String, PendingLaunch>>,
}

impl MemoryLaunchStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of pending launches (expired ones included until the next `put`).
    pub fn len(&self) -> usize {
        self.entries.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether no launch is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, PendingLaunch>>> {
        self.entries.lock().map_err(|_| SmartError::Store {
            reason: "the in-memory launch store is poisoned".into(),
        })
    }
}

impl LaunchStore for MemoryLaunchStore {
    fn put(&self, pending: PendingLaunch) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let mut map = self.lock()?;
            // Forget launches nobody came back for, so the map cannot grow without bound.
            let now = chrono::Utc::now().timestamp();
            map.retain(|_, p| p.expires_at > now);
            if map.contains_key(&pending.state) {
                return Err(SmartError::Store {
                    reason: "a pending launch with this state already exists".into(),
                });
            }
            map.insert(pending.state.clone(), pending);
            Ok(())
        })
    }

    fn take<'a>(&'a self, state: &'a str, now: i64) -> StoreFuture<'a, Option<PendingLaunch>> {
        Box::pin(async move {
            let taken = self.lock()?.remove(state);
            Ok(taken.filter(|p| p.expires_at > now))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn pending(state: &str, expires_at: i64) -> PendingLaunch {
        PendingLaunch {
            state: state.into(),
            iss: "https://ehr/fhir".into(),
            aud: "https://ehr/fhir".into(),
            launch: Some("l".into()),
            client_id: "app".into(),
            redirect_uri: "https://app/cb".into(),
            code_verifier: Secret::new("v".repeat(43)),
            token_endpoint: "https://ehr/token".into(),
            scope: "launch".into(),
            required_context: vec![],
            expires_at,
            browser_binding: String::new(),
        }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        // The memory store never awaits, so one poll completes it.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("memory store future was pending"),
        }
    }

    // REQ: APP-05
    #[test]
    fn entries_are_single_use_expire_and_do_not_interfere() {
        let store = MemoryLaunchStore::new();
        let far = chrono::Utc::now().timestamp() + 600;
        for i in 0..50 {
            block_on(store.put(pending(&format!("s{i}"), far))).unwrap();
        }
        assert!(block_on(store.put(pending("s1", far))).is_err());
        for i in (0..50).rev() {
            let p = block_on(store.take(&format!("s{i}"), 0)).unwrap().unwrap();
            assert_eq!(p.state, format!("s{i}"));
        }
        assert!(block_on(store.take("s3", 0)).unwrap().is_none());
        block_on(store.put(pending("late", far))).unwrap();
        assert!(block_on(store.take("late", far + 1)).unwrap().is_none());
        assert!(block_on(store.take("late", 0)).unwrap().is_none());
        assert!(store.is_empty());
    }
}

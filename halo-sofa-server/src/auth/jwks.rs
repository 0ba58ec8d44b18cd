//! One cached, backoff-limited fetcher of a JWKS, the SoFA's one JWKS cache type: an identity
//! provider's, shared by everything that verifies that provider's signatures (the federated
//! login's id_tokens, [`super::OidcLogin`], and the provider's access tokens,
//! [`super::ExternalJwtTokens`]), and each `private_key_jwt` client's JWKS URL (one cache per
//! URL, in the token endpoint's client authentication).
//!
//! A key id the cache does not know triggers a refetch (the provider rotated), but at most one
//! fetch runs at a time and fetches are spaced: `min_interval` after a success, doubling after
//! each failure up to `max_backoff`. So a stream of tokens with made-up `kid`s costs the
//! provider one request per interval, not one per token, and an unreachable provider is not
//! hammered. While a refetch is not due, the last good set keeps answering.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::JwkSet;

/// The most a JWKS may weigh (SEC-03).
const MAX_BODY: usize = 256 * 1024;

/// Why no key could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// The provider's JWKS has no usable key with that id.
    #[error("the JWKS has no key {0:?}")]
    UnknownKey(String),
    /// The JWKS could not be fetched and no earlier copy knows the key.
    #[error("the JWKS is unavailable: {0}")]
    Unavailable(String),
}

#[derive(Default)]
struct State {
    set: Option<(Instant, JwkSet)>,
    last_attempt: Option<Instant>,
    failures: u32,
}

/// A provider's JWKS, fetched on demand and cached (see the module documentation).
pub struct JwksCache {
    url: String,
    http: reqwest::Client,
    ttl: Duration,
    min_interval: Duration,
    max_backoff: Duration,
    state: Mutex<State>,
    /// One fetch at a time: concurrent misses wait for it and read its result.
    fetching: tokio::sync::Mutex<()>,
}

impl fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksCache")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    /// A cache of the JWKS at `url`, fetched with `http` (the caller decides which addresses it
    /// may reach and its timeout), kept `ttl`; refetches are at least `min_interval` apart,
    /// doubling after failures up to five minutes.
    pub fn new(
        url: impl Into<String>,
        http: reqwest::Client,
        ttl: Duration,
        min_interval: Duration,
    ) -> JwksCache {
        JwksCache {
            url: url.into(),
            http,
            ttl,
            min_interval,
            max_backoff: Duration::from_secs(300),
            state: Mutex::new(State::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// The JWKS URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached key `kid` if the cached set is fresh and has it; else whether a fetch is due.
    fn lookup(&self, kid: &str, now: Instant) -> Result<DecodingKey, bool> {
        let state = self.lock();
        let fresh = state
            .set
            .as_ref()
            .filter(|(at, _)| now.duration_since(*at) < self.ttl);
        if let Some(jwk) = fresh.and_then(|(_, set)| set.find(kid)) {
            return DecodingKey::from_jwk(jwk).map_err(|_| false);
        }
        let wait = match state.failures {
            0 => self.min_interval,
            n => self
                .min_interval
                .saturating_mul(1u32 << n.min(16))
                .min(self.max_backoff),
        };
        Err(state
            .last_attempt
            .is_none_or(|at| now.duration_since(at) >= wait))
    }

    /// Any key `kid` of the last good set, fresh or not (used while a refetch is not due).
    fn stale(&self, kid: &str) -> Option<DecodingKey> {
        let state = self.lock();
        let jwk = state.set.as_ref()?.1.find(kid)?;
        DecodingKey::from_jwk(jwk).ok()
    }

    /// The verification key `kid`.
    pub async fn key(&self, kid: &str) -> Result<DecodingKey, JwksError> {
        match self.lookup(kid, Instant::now()) {
            Ok(key) => return Ok(key),
            Err(false) => return self.stale(kid).ok_or_else(|| self.missing(kid)),
            Err(true) => {}
        }
        let _one = self.fetching.lock().await;
        // Another caller may have fetched while this one waited.
        match self.lookup(kid, Instant::now()) {
            Ok(key) => return Ok(key),
            Err(false) => return self.stale(kid).ok_or_else(|| self.missing(kid)),
            Err(true) => {}
        }
        let fetched = self.fetch().await;
        let now = Instant::now();
        let mut state = self.lock();
        state.last_attempt = Some(now);
        match fetched {
            Ok(set) => {
                state.failures = 0;
                state.set = Some((now, set));
            }
            Err(why) => {
                state.failures = state.failures.saturating_add(1);
                tracing::warn!(jwks = %self.url, "JWKS fetch failed: {why}");
            }
        }
        drop(state);
        self.stale(kid).ok_or_else(|| self.missing(kid))
    }

    /// The error for a key the cache cannot give: unknown when the last fetch succeeded.
    fn missing(&self, kid: &str) -> JwksError {
        let state = self.lock();
        if state.failures == 0 && state.set.is_some() {
            JwksError::UnknownKey(kid.chars().take(64).collect())
        } else {
            JwksError::Unavailable("no good copy of the JWKS".into())
        }
    }

    async fn fetch(&self) -> Result<JwkSet, String> {
        let response = self
            .http
            .get(&self.url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("unreachable: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        let body = crate::outbound::read_bounded(response, MAX_BODY)
            .await
            .map_err(|e| e.to_string())?;
        serde_json::from_slice(&body).map_err(|_| "not a JWKS".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A JWKS endpoint on loopback that counts its requests and serves `body`.
    async fn endpoint(body: &'static str) -> (String, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async move { body }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, hits)
    }

    const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256","use":"sig",
        "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

    // REQ: IDP-03
    #[tokio::test]
    async fn unknown_key_ids_refetch_at_most_once_per_interval() {
        let (url, hits) = endpoint(JWKS).await;
        let cache = JwksCache::new(
            url,
            reqwest::Client::new(),
            Duration::from_secs(300),
            Duration::from_secs(60),
        );
        assert!(cache.key("k1").await.is_ok());
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        // Cached: no second request for a known key.
        assert!(cache.key("k1").await.is_ok());
        // Made-up key ids: refused, and the endpoint is not asked again within the interval.
        for i in 0..20 {
            let err = cache.key(&format!("forged-{i}")).await.unwrap_err();
            assert!(matches!(err, JwksError::UnknownKey(_)), "{err:?}");
        }
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    // REQ: IDP-03
    #[tokio::test]
    async fn failures_back_off_and_are_unavailable_not_unknown() {
        let (url, hits) = endpoint("not json").await;
        let cache = JwksCache::new(
            url,
            reqwest::Client::new(),
            Duration::from_secs(300),
            Duration::from_millis(20),
        );
        assert!(matches!(
            cache.key("k1").await,
            Err(JwksError::Unavailable(_))
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = cache.key("k1").await;
        let _ = cache.key("k1").await;
        let _ = cache.key("k1").await;
        // The second failure doubled the wait; the calls right after it fetched nothing.
        assert!(hits.load(Ordering::SeqCst) <= 2, "{hits:?}");
    }
}

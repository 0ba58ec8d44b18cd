//! Rate limits (REQ HARD-04): a budget per client address for everything that writes or signs
//! in (every request but a safe-method read, and the authorize page), and a budget per
//! authenticated client for every request its tokens make and every token it obtains. Each is a
//! GCRA limiter (`governor`) keyed by address or client id: a steady rate with a burst. A
//! refusal is 429 with `Retry-After`, before the request does any work.
//!
//! The per-client key is known only once a token or a client credential is checked, so it is
//! counted there ([`RateLimitedTokens`](crate::auth::RateLimitedTokens) and the token endpoint), never from an unverified
//! claim: a forged token cannot spend another client's budget. The per-address key is the TCP
//! peer (a host serves with `into_make_service_with_connect_info::<SocketAddr>()`), or the
//! last entry of a forwarding header the operator names because its own proxy sets it.

use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

pub use crate::config::{Rate, RateLimits};
use crate::error::SofaError;

/// Keys a limiter remembers before it forgets those whose budget is full again.
const MAX_TRACKED_KEYS: usize = 50_000;

fn quota(rate: Rate) -> Option<Quota> {
    let steady = NonZeroU32::new(rate.per_second)?;
    let burst = NonZeroU32::new(rate.burst.max(rate.per_second)).unwrap_or(steady);
    Some(Quota::per_second(steady).allow_burst(burst))
}

/// One keyed limiter: per address (`IpAddr`, no allocation per request) or per client id.
pub(crate) struct Limiter<K: Hash + Eq + Clone = String> {
    limiter: Option<DefaultKeyedRateLimiter<K>>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    pub(crate) fn new(rate: Rate) -> Limiter<K> {
        Limiter {
            limiter: quota(rate).map(RateLimiter::keyed),
        }
    }

    /// Spends one request of `key`'s budget, or says how long until one is free.
    pub(crate) fn check(&self, key: &K) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if limiter.len() > MAX_TRACKED_KEYS {
            // Keys whose budget is full again carry no information; forgetting them bounds
            // the memory an address-spraying client can make the server hold.
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// The per-address limit as router middleware.
#[derive(Clone)]
pub(crate) struct AddressLimit {
    limiter: Arc<Limiter<IpAddr>>,
    address_header: Option<HeaderName>,
    /// The path suffix of the sign-in page, which spends the budget whatever its method.
    sign_in_path: &'static str,
}

impl AddressLimit {
    /// The limit `limits` sets; requests to a path ending in `sign_in_path` spend the budget
    /// whatever their method.
    pub(crate) fn new(limits: &RateLimits, sign_in_path: &'static str) -> AddressLimit {
        AddressLimit {
            sign_in_path,
            limiter: Arc::new(Limiter::new(limits.per_address)),
            address_header: limits
                .address_header
                .as_deref()
                .and_then(|h| HeaderName::try_from(h).ok()),
        }
    }

    fn address(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
        if let Some(name) = &self.address_header {
            return headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .last()
                .and_then(|a| a.trim().parse().ok());
        }
        peer.map(|p| p.ip())
    }
}

/// Whether a request spends the per-address budget: anything but a safe-method read, and the
/// authorize page (a sign-in attempt whatever its method).
fn limited(method: &Method, path: &str, sign_in_path: &str) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) || path.ends_with(sign_in_path)
}

/// The middleware: refuses a request over its address's budget before any handler runs.
pub(crate) async fn by_address(
    State(limit): State<AddressLimit>,
    request: Request,
    next: Next,
) -> Response {
    if limited(request.method(), request.uri().path(), limit.sign_in_path) {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        if let Some(address) = limit.address(request.headers(), peer)
            && let Err(wait) = limit.limiter.check(&address)
        {
            crate::metrics::rate_limit_refusal("address");
            return SofaError::too_many_requests(wait).into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn a_budget_is_a_burst_then_the_steady_rate_per_key() {
        let limiter = Limiter::new(Rate::new(1, 3));
        let (a, b) = ("a".to_string(), "b".to_string());
        for _ in 0..3 {
            assert!(limiter.check(&a).is_ok());
        }
        let wait = limiter.check(&a).unwrap_err();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        assert!(limiter.check(&b).is_ok(), "keys have their own budget");
        assert!(Limiter::new(Rate::OFF).check(&a).is_ok());
    }

    #[test]
    fn only_writes_and_sign_ins_spend_the_address_budget() {
        let sign_in = "/auth/authorize";
        assert!(limited(&Method::POST, "/Observation", sign_in));
        assert!(limited(&Method::DELETE, "/Observation/1", sign_in));
        assert!(limited(&Method::GET, "/auth/authorize", sign_in));
        assert!(!limited(&Method::GET, "/Observation", sign_in));
    }

    #[test]
    fn the_forwarded_address_is_the_last_one_the_proxy_appended() {
        let limit = AddressLimit::new(
            &RateLimits {
                address_header: Some("x-forwarded-for".into()),
                ..RateLimits::default()
            },
            "/auth/authorize",
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 198.51.100.7"),
        );
        assert_eq!(
            limit.address(&headers, None),
            Some("198.51.100.7".parse().unwrap())
        );
    }
}

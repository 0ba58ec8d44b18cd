//! The per-client rate limit on bearer tokens (REQ HARD-04): counted once a token is checked,
//! never from an unverified claim, so a forged token cannot spend another client's budget.

use std::sync::Arc;

use super::{Caller, TokenError, TokenValidator};
use crate::config::Rate;
use crate::limits::Limiter;
use crate::store::BoxFuture;

/// A [`TokenValidator`] that spends the token's client's budget on every request it admits.
pub struct RateLimitedTokens {
    inner: Arc<dyn TokenValidator>,
    limiter: Limiter,
}

impl RateLimitedTokens {
    /// Wraps `inner` with a budget of `rate` per client.
    pub fn new(inner: Arc<dyn TokenValidator>, rate: Rate) -> RateLimitedTokens {
        RateLimitedTokens {
            inner,
            limiter: Limiter::new(rate),
        }
    }
}

impl TokenValidator for RateLimitedTokens {
    fn validate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Caller, TokenError>> {
        Box::pin(async move {
            let caller = self.inner.validate(token).await?;
            self.limiter
                .check(&caller.client_id)
                .map_err(|retry_after| {
                    crate::metrics::rate_limit_refusal("client");
                    TokenError::RateLimited { retry_after }
                })?;
            Ok(caller)
        })
    }
}

//! Several token issuers at once: the built-in authorization server's tokens for apps, and
//! the jurisdiction's provider's for the point of care's clinician (D-19).

use std::fmt;
use std::sync::Arc;

use super::caller::{Caller, TokenError, TokenValidator};
use crate::store::BoxFuture;

/// Tries validators in order: the first that accepts the token decides. A token every
/// validator refuses is invalid; if one of them could not decide (its IdP unreachable), the
/// answer is that it could not be checked, so a caller retries instead of being told the token
/// is bad.
pub struct FirstValid {
    validators: Vec<Arc<dyn TokenValidator>>,
}

impl FirstValid {
    /// Tries `validators` in this order.
    pub fn new(validators: Vec<Arc<dyn TokenValidator>>) -> FirstValid {
        FirstValid { validators }
    }
}

impl fmt::Debug for FirstValid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FirstValid")
            .field("validators", &self.validators.len())
            .finish()
    }
}

impl TokenValidator for FirstValid {
    fn validate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Caller, TokenError>> {
        Box::pin(async move {
            let mut outcome = Err(TokenError::Invalid);
            for validator in &self.validators {
                match validator.validate(token).await {
                    Ok(caller) => return Ok(caller),
                    Err(TokenError::Invalid) => {}
                    Err(unavailable) => outcome = Err(unavailable),
                }
            }
            outcome
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::caller::StaticTokens;

    #[tokio::test]
    async fn the_first_validator_that_accepts_decides() {
        let a = StaticTokens::new().with("a", Caller::new("emr", Some("dr-a"), "Context.write"));
        let b = StaticTokens::new().with("b", Caller::new("app", Some("dr-b"), "patient/*.rs"));
        let both = FirstValid::new(vec![Arc::new(a), Arc::new(b)]);
        assert_eq!(both.validate("a").await.unwrap().client_id, "emr");
        assert_eq!(both.validate("b").await.unwrap().client_id, "app");
        assert_eq!(both.validate("c").await, Err(TokenError::Invalid));
    }
}

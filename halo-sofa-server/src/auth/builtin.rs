//! Checking the access tokens the built-in authorization server issued (REQ RS-02, SEC-05,
//! SC-12, D-12): ES256 only, signed by one of the server's keys named by `kid`, this issuer and
//! audience, not expired, its family not revoked, and its launch still live.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, Validation};

use super::caller::{Caller, TokenError, TokenValidator};
use super::decide::tokens::AccessClaims;
use super::keys::KeyUse;
use super::signing::SigningKeys;
use crate::clock::Clock;
use crate::store::{BoxFuture, LaunchRecord, Store};

/// A verified access token with its live launch.
pub(crate) struct Verified {
    pub(crate) claims: AccessClaims,
    pub(crate) launch: Option<LaunchRecord>,
}

/// The signature check of `token`: ES256 by a current key of this server, this issuer and
/// audience; its key id and claims.
async fn check_signature(
    verifier: &TokenVerifier,
    token: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(String, AccessClaims), TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
    // The algorithm is fixed, never read from the token: `none`, HS256 (with the public key
    // as secret) and RS256 are refused before any key is used (SEC-05).
    if header.alg != Algorithm::ES256 {
        return Err(TokenError::Invalid);
    }
    let kid = header.kid.ok_or(TokenError::Invalid)?;
    let mut keys = verifier.keys.fresh(false).await;
    if keys.verifier(KeyUse::AccessToken, &kid, now).is_none() {
        // Perhaps rotated in by another instance since the last read (REQ IDP-06).
        keys = verifier.keys.fresh(true).await;
    }
    let key = keys
        .verifier(KeyUse::AccessToken, &kid, now)
        .ok_or(TokenError::Invalid)?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[verifier.issuer.as_str()]);
    validation.set_audience(&[verifier.issuer.as_str()]);
    // Expiry against the server's clock, by the caller.
    validation.validate_exp = false;
    let claims: AccessClaims = jsonwebtoken::decode(token, key, &validation)
        .map_err(|_| TokenError::Invalid)?
        .claims;
    Ok((kid, claims))
}

/// Tokens whose signature this server has checked, by their exact text, until they expire.
///
/// An ECDSA verification is most of what a FHIR read costs the server, and an app presents
/// the same token on every request. Whether a given text verifies under a given key never
/// changes, so a text seen to verify needs only its key to be still current (checked on each
/// use) and its expiry (checked by the caller); the revocation and the launch are read from the
/// store every time. Only tokens that verified are kept, so a stranger's bytes never take a
/// place; the table holds at most [`CHECKED_LIMIT`] and drops expired entries first.
#[derive(Default)]
struct Checked {
    entries: std::sync::Mutex<std::collections::HashMap<String, (String, AccessClaims)>>,
}

/// Verified tokens kept at most (about 1 KiB each).
const CHECKED_LIMIT: usize = 10_000;

impl Checked {
    fn get(&self, token: &str) -> Option<(String, AccessClaims)> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(token)
            .cloned()
    }

    fn insert(
        &self,
        token: &str,
        kid: String,
        claims: &AccessClaims,
        now: chrono::DateTime<chrono::Utc>,
    ) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= CHECKED_LIMIT {
            entries.retain(|_, (_, claims)| claims.exp > now.timestamp());
            if entries.len() >= CHECKED_LIMIT {
                entries.clear();
            }
        }
        entries.insert(token.to_owned(), (kid, claims.clone()));
    }
}

/// Verifies this server's access tokens: its issuer, keys, clock, and the store's revoked
/// families and launches.
pub(crate) struct TokenVerifier {
    issuer: String,
    keys: Arc<SigningKeys>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    checked: Checked,
}

impl TokenVerifier {
    /// A verifier of tokens `issuer` signed with `keys`.
    pub(crate) fn new(
        issuer: String,
        keys: Arc<SigningKeys>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> TokenVerifier {
        TokenVerifier {
            issuer,
            keys,
            store,
            clock,
            checked: Checked::default(),
        }
    }

    /// Verifies an access token of this server; every refusal is [`TokenError::Invalid`].
    pub(crate) async fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        verify(self, token).await
    }
}

async fn verify(verifier: &TokenVerifier, token: &str) -> Result<Verified, TokenError> {
    let now = verifier.clock.now();
    let claims = match verifier.checked.get(token) {
        // The same text already verified, its key still one of the server's: the signature
        // holds as it did.
        Some((kid, claims))
            if verifier
                .keys
                .fresh(false)
                .await
                .verifier(KeyUse::AccessToken, &kid, now)
                .is_some() =>
        {
            claims
        }
        _ => {
            let (kid, claims) = check_signature(verifier, token, now).await?;
            verifier.checked.insert(token, kid, &claims, now);
            claims
        }
    };
    if claims.exp <= now.timestamp() {
        return Err(TokenError::Invalid);
    }
    if claims.fam.is_none() && claims.launch.is_none() {
        return Ok(Verified {
            claims,
            launch: None,
        });
    }
    // One read unit for both checks: the family not revoked (REQ IDP-05, a row every
    // instance sees) and the launch still live (REQ SC-12).
    let (family, launch_id) = (claims.fam.clone(), claims.launch.clone());
    let launch = verifier
        .store
        .read(move |tx| {
            Box::pin(async move {
                if let Some(family) = &family
                    && tx.access_family_revoked(family, now).await?
                {
                    return Err(TokenError::Invalid);
                }
                Ok(match &launch_id {
                    Some(launch_id) => tx.get_launch(launch_id).await?,
                    None => None,
                })
            })
        })
        .await?;
    let launch = match (&claims.launch, launch) {
        (None, _) => None,
        // REQ SC-12: cleared or expired, the launch takes its tokens with it.
        (Some(_), Some(l)) if !l.is_expired(now) => Some(l),
        (Some(_), _) => return Err(TokenError::Invalid),
    };
    Ok(Verified { claims, launch })
}

/// The [`TokenValidator`] for tokens of the built-in authorization server
/// ([`AuthServer::token_validator`](super::AuthServer::token_validator)).
pub(crate) struct BuiltinTokens {
    verifier: Arc<TokenVerifier>,
}

impl BuiltinTokens {
    pub(crate) fn new(verifier: Arc<TokenVerifier>) -> BuiltinTokens {
        BuiltinTokens { verifier }
    }
}

impl TokenValidator for BuiltinTokens {
    fn validate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Caller, TokenError>> {
        Box::pin(async move {
            let verified = self.verifier.verify(token).await?;
            let mut caller = Caller::new(
                verified.claims.client_id,
                verified.claims.user.as_deref(),
                &verified.claims.scope,
            );
            caller.launch_id = verified.claims.launch;
            caller.fhir_user = verified.claims.fhir_user;
            caller.checked_launch = verified.launch;
            Ok(caller)
        })
    }
}

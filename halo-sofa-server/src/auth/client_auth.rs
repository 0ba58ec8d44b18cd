//! Client authentication at the token, introspection and revocation endpoints (REQ AS-06):
//! public, `client_secret_basic`, `client_secret_post`, `tls_client_auth` and `private_key_jwt`
//! (RS384, ES384) with a `jti` replay store and the client's JWKS URL fetched through a
//! [`JwksCache`]. What is decided lives in [`super::decide::credentials`]; this shell reads the
//! registry, the client's keys and the store.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::http::{HeaderMap, header};
use halo_model::oauth::OAuthError;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};

use super::clients::{ClientAuthentication, ClientLookup, RegisteredClient};
use super::decide::credentials::{
    AssertionAudience, AssertionClaims, Presented, assertion_algorithm_accepted,
    authentication_failed, check_assertion_claims, form_credential_accepted, presented,
};
use super::families::unavailable;
use super::jwks::{JwksCache, JwksError};
use crate::clock::Clock;
use crate::config::url_allowed;
use crate::store::Store;
use crate::tls::PeerCertificate;

/// How many client JWKS URLs are cached before the cache starts over: URLs come only with
/// registrations, but a registry edited at run time must not grow it without bound.
const JWKS_URL_LIMIT: usize = 1024;

/// The client JWKS caches, one [`JwksCache`] per URL.
struct ClientJwks {
    http: reqwest::Client,
    ttl: Duration,
    development_mode: bool,
    caches: Mutex<HashMap<String, Arc<JwksCache>>>,
}

impl ClientJwks {
    fn cache(&self, url: &str) -> Arc<JwksCache> {
        let mut caches = self.caches.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(cache) = caches.get(url) {
            return cache.clone();
        }
        if caches.len() >= JWKS_URL_LIMIT {
            caches.clear();
        }
        // A kid the cached set lacks may be a rotated key: refetched, at most once a second
        // per URL so made-up kids cannot make the server hammer the client (REQ HARD-04).
        let cache = Arc::new(JwksCache::new(
            url,
            self.http.clone(),
            self.ttl,
            Duration::from_secs(1).min(self.ttl),
        ));
        caches.insert(url.to_string(), cache.clone());
        cache
    }
}

/// Authenticates clients: the registry, the clock and store for `jti` replay records, and the
/// client JWKS caches.
pub(crate) struct ClientAuthenticator {
    clients: Arc<ClientLookup>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    audience: AssertionAudience,
    jwks: ClientJwks,
}

impl ClientAuthenticator {
    /// An authenticator of the clients of `clients`. Client JWKS URLs are fetched with `http`
    /// (it decides which addresses may be reached, REQ HARD-03) and kept `jwks_ttl`.
    pub(crate) fn new(
        clients: Arc<ClientLookup>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        audience: AssertionAudience,
        http: reqwest::Client,
        jwks_ttl: Duration,
        development_mode: bool,
    ) -> ClientAuthenticator {
        ClientAuthenticator {
            clients,
            store,
            clock,
            audience,
            jwks: ClientJwks {
                http,
                ttl: jwks_ttl,
                development_mode,
                caches: Mutex::new(HashMap::new()),
            },
        }
    }

    /// The client with this id, configured or in the store (REQ OPS-05).
    pub(crate) async fn lookup(
        &self,
        client_id: &str,
    ) -> Result<Option<RegisteredClient>, OAuthError> {
        self.clients.get(client_id).await.map_err(unavailable)
    }

    /// The client the request authenticates as, or `invalid_client` (401).
    pub(crate) async fn authenticate(
        &self,
        headers: &HeaderMap,
        params: &[(String, String)],
        peer: Option<&PeerCertificate>,
    ) -> Result<RegisteredClient, OAuthError> {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match presented(authorization, params)? {
            Presented::Basic { client_id, secret } => {
                let client = self
                    .lookup(&client_id)
                    .await?
                    .ok_or_else(authentication_failed)?;
                if client.authentication.secret_matches(&secret) {
                    Ok(client)
                } else {
                    Err(authentication_failed())
                }
            }
            Presented::Assertion {
                assertion,
                client_id,
            } => self.verify_assertion(assertion, client_id).await,
            Presented::Form { client_id, secret } => {
                let client = self
                    .lookup(client_id)
                    .await?
                    .ok_or_else(authentication_failed)?;
                if form_credential_accepted(&client.authentication, secret, peer) {
                    Ok(client)
                } else {
                    Err(authentication_failed())
                }
            }
        }
    }

    /// `private_key_jwt` (REQ AS-06): RS384 or ES384 only, signed by a key of the client's
    /// JWKS named by `kid`, claims per [`check_assertion_claims`], and a `jti` never seen
    /// before.
    async fn verify_assertion(
        &self,
        assertion: &str,
        form_client: Option<&str>,
    ) -> Result<RegisteredClient, OAuthError> {
        let refused =
            |why: &str| OAuthError::invalid_client(format!("client assertion refused: {why}"));
        let header = jsonwebtoken::decode_header(assertion).map_err(|_| refused("malformed"))?;
        if !assertion_algorithm_accepted(header.alg) {
            return Err(refused("the algorithm must be RS384 or ES384"));
        }
        // The issuer names the client; the signature is checked against that client's keys.
        let unverified: AssertionClaims = jsonwebtoken::dangerous::insecure_decode(assertion)
            .map(|t| t.claims)
            .map_err(|_| refused("the claims are incomplete"))?;
        if form_client.is_some_and(|f| f != unverified.iss) {
            return Err(refused("client_id differs from the assertion issuer"));
        }
        let client = self
            .lookup(&unverified.iss)
            .await?
            .ok_or_else(|| refused("unknown client"))?;
        let kid = header.kid.as_deref().ok_or_else(|| refused("no kid"))?;
        let key = self.client_key(&client, kid).await?;

        let mut validation = Validation::new(header.alg);
        // The audience and expiry are decided by check_assertion_claims, against the server's
        // clock.
        validation.validate_aud = false;
        validation.set_issuer(&[client.client_id.as_str()]);
        validation.sub = Some(client.client_id.clone());
        validation.validate_exp = false;
        validation.required_spec_claims = HashSet::from(["exp".into(), "aud".into(), "iss".into()]);
        let claims: AssertionClaims = jsonwebtoken::decode(assertion, &key, &validation)
            .map(|t| t.claims)
            .map_err(|_| refused("the signature, issuer, subject or audience does not verify"))?;
        let now = self.clock.now();
        let expires_at = check_assertion_claims(&claims, &client.client_id, &self.audience, now)
            .map_err(refused)?;
        // REQ IDP-05: the `jti` is a row of the store until the assertion expires, so a replay
        // is refused after a restart and by every instance.
        let (issuer, jti) = (client.client_id.clone(), claims.jti.clone());
        let fresh = self
            .store
            .write(move |tx| {
                Box::pin(async move { tx.record_jti(&issuer, &jti, expires_at, now).await })
            })
            .await
            .map_err(unavailable)?;
        if !fresh {
            return Err(refused("the jti was already used"));
        }
        Ok(client)
    }

    async fn client_key(
        &self,
        client: &RegisteredClient,
        kid: &str,
    ) -> Result<DecodingKey, OAuthError> {
        let refused =
            |why: &str| OAuthError::invalid_client(format!("client assertion refused: {why}"));
        match &client.authentication {
            ClientAuthentication::PrivateKeyJwt { jwks } => {
                serde_json::from_value::<JwkSet>(jwks.clone())
                    .ok()
                    .and_then(|set| {
                        set.find(kid)
                            .and_then(|jwk| DecodingKey::from_jwk(jwk).ok())
                    })
                    .ok_or_else(|| refused("no registered key with this kid"))
            }
            ClientAuthentication::PrivateKeyJwtUrl { jwks_url } => {
                if !url_allowed(jwks_url, self.jwks.development_mode) {
                    return Err(OAuthError::invalid_client(
                        "client JWKS: the JWKS URL must be https",
                    ));
                }
                self.jwks
                    .cache(jwks_url)
                    .key(kid)
                    .await
                    .map_err(|e| match e {
                        JwksError::UnknownKey(_) => {
                            refused("no key with this kid at the client's JWKS URL")
                        }
                        JwksError::Unavailable(_) => {
                            OAuthError::invalid_client("client JWKS: unavailable")
                        }
                    })
            }
            _ => Err(refused("this client does not use private_key_jwt")),
        }
    }
}

/// Whether the request carries any client credential or identifier (an `Authorization`
/// header, `client_id`, `client_secret` or `client_assertion`).
pub(crate) fn presents_credentials(headers: &HeaderMap, params: &[(String, String)]) -> bool {
    headers.contains_key(header::AUTHORIZATION)
        || params.iter().any(|(k, _)| {
            matches!(
                k.as_str(),
                "client_id" | "client_secret" | "client_assertion" | "client_assertion_type"
            )
        })
}

//! Trusting a jurisdiction's IdP instead of the built-in authorization server (REQ AS-10):
//! JWT access tokens verified against the IdP's JWKS ([`ExternalJwtTokens`]), or opaque tokens
//! checked by RFC 7662 introspection ([`IntrospectionTokens`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use halo_model::smart::IntrospectionResponse;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::caller::{Caller, TokenError, TokenValidator};
use super::jwks::{JwksCache, JwksError};
use crate::config::url_allowed;
use crate::store::BoxFuture;

/// The most a JWKS or introspection answer may weigh (SEC-03).
const MAX_BODY: usize = 256 * 1024;

/// The client every call to the IdP goes through: the outbound guard (REQ HARD-03), so an IdP
/// URL naming an internal address is never reached outside development mode, and no redirect.
fn http_client(timeout: Duration, development_mode: bool) -> Result<reqwest::Client, TokenError> {
    crate::outbound::client_builder(development_mode)
        .timeout(timeout)
        .build()
        .map_err(|e| TokenError::Unavailable(e.to_string()))
}

/// An IdP URL the server may call (REQ HARD-03): https (http to loopback in development mode)
/// to a host that is not an internal address; an IP literal is checked here, since no resolver
/// sees it.
fn outbound_allowed(url: &str, development_mode: bool) -> Result<(), TokenError> {
    let parsed =
        url::Url::parse(url).map_err(|_| TokenError::Unavailable(format!("{url} is not a URL")))?;
    crate::outbound::check_url(&parsed, development_mode)
        .map_err(|why| TokenError::Unavailable(format!("the IdP URL {url} is refused: {why}")))
}

async fn bounded_body(response: reqwest::Response) -> Result<Vec<u8>, TokenError> {
    if !response.status().is_success() {
        return Err(TokenError::Unavailable(format!(
            "the IdP answered {}",
            response.status()
        )));
    }
    crate::outbound::read_bounded(response, MAX_BODY)
        .await
        .map_err(|e| TokenError::Unavailable(format!("the IdP's answer: {e}")))
}

/// Access tokens that are JWTs signed by a jurisdiction's IdP, verified against its JWKS
/// (fetched, cached, refetched for an unknown `kid`). The algorithms are fixed by
/// configuration, never taken from the token (SEC-05).
pub struct ExternalJwtTokens {
    issuer: String,
    audience: String,
    algorithms: Vec<Algorithm>,
    jwks: Arc<JwksCache>,
}

impl fmt::Debug for ExternalJwtTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalJwtTokens")
            .field("issuer", &self.issuer)
            .field("jwks_url", &self.jwks.url())
            .finish_non_exhaustive()
    }
}

impl ExternalJwtTokens {
    /// Trusts JWTs from `issuer` for `audience` (the FHIR base), signed with one of
    /// `algorithms` by a key of `jwks_url`. `development_mode` allows http on loopback
    /// (SEC-04); every fetch times out after `timeout` (SEC-03).
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        jwks_url: impl Into<String>,
        algorithms: Vec<Algorithm>,
        timeout: Duration,
        development_mode: bool,
    ) -> Result<ExternalJwtTokens, TokenError> {
        let jwks_url = jwks_url.into();
        let issuer = issuer.into();
        if !url_allowed(&issuer, development_mode) {
            return Err(TokenError::Unavailable(
                "the IdP's issuer must be https".into(),
            ));
        }
        outbound_allowed(&jwks_url, development_mode)?;
        let http = http_client(timeout, development_mode)?;
        Self::with_jwks(
            issuer,
            audience,
            Arc::new(JwksCache::new(
                jwks_url,
                http,
                Duration::from_secs(300),
                Duration::from_secs(10),
            )),
            algorithms,
        )
    }

    /// Trusts JWTs from `issuer` for `audience`, verified with the keys of `jwks`, a cache
    /// shared with the other users of the same provider's keys (the federated login's
    /// [`super::OidcLogin::access_tokens`]).
    pub fn with_jwks(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        jwks: Arc<JwksCache>,
        algorithms: Vec<Algorithm>,
    ) -> Result<ExternalJwtTokens, TokenError> {
        let algorithms: Vec<Algorithm> = algorithms
            .into_iter()
            .filter(|a| !matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
            .collect();
        if algorithms.is_empty() {
            return Err(TokenError::Unavailable(
                "at least one asymmetric algorithm is needed".into(),
            ));
        }
        Ok(ExternalJwtTokens {
            issuer: issuer.into(),
            audience: audience.into(),
            algorithms,
            jwks,
        })
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, TokenError> {
        self.jwks.key(kid).await.map_err(|e| match e {
            JwksError::UnknownKey(_) => TokenError::Invalid,
            JwksError::Unavailable(why) => TokenError::Unavailable(why),
        })
    }
}

impl TokenValidator for ExternalJwtTokens {
    fn validate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Caller, TokenError>> {
        Box::pin(async move {
            let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
            if !self.algorithms.contains(&header.alg) {
                return Err(TokenError::Invalid);
            }
            let key = self
                .key(header.kid.as_deref().ok_or(TokenError::Invalid)?)
                .await?;
            let mut validation = Validation::new(header.alg);
            validation.algorithms = vec![header.alg];
            validation.set_issuer(&[self.issuer.as_str()]);
            validation.set_audience(&[self.audience.as_str()]);
            validation.leeway = 30;
            let claims: Value = jsonwebtoken::decode(token, &key, &validation)
                .map_err(|_| TokenError::Invalid)?
                .claims;
            let text = |name: &str| claims.get(name).and_then(Value::as_str);
            let client = text("client_id")
                .or_else(|| text("azp"))
                .ok_or(TokenError::Invalid)?;
            let scope = text("scope").or_else(|| text("scp")).unwrap_or_default();
            let user = text("sub").filter(|sub| *sub != client);
            let mut caller = Caller::new(client, user, scope);
            caller.launch_id = text("launch").map(str::to_string);
            caller.fhir_user = text("fhirUser").map(str::to_string);
            Ok(caller)
        })
    }
}

/// Opaque tokens checked at a jurisdiction's RFC 7662 introspection endpoint, the resource
/// server authenticating with `client_secret_basic`.
pub struct IntrospectionTokens {
    endpoint: String,
    client_id: String,
    client_secret: String,
    http: reqwest::Client,
}

impl fmt::Debug for IntrospectionTokens {
    // SEC-01: the secret stays out of Debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionTokens")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl IntrospectionTokens {
    /// Introspects at `endpoint` as `client_id`/`client_secret`.
    pub fn new(
        endpoint: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        timeout: Duration,
        development_mode: bool,
    ) -> Result<IntrospectionTokens, TokenError> {
        let endpoint = endpoint.into();
        outbound_allowed(&endpoint, development_mode)?;
        Ok(IntrospectionTokens {
            endpoint,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            http: http_client(timeout, development_mode)?,
        })
    }
}

impl TokenValidator for IntrospectionTokens {
    fn validate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Caller, TokenError>> {
        Box::pin(async move {
            let response = self
                .http
                .post(&self.endpoint)
                .basic_auth(&self.client_id, Some(&self.client_secret))
                .form(&[("token", token)])
                .send()
                .await
                .map_err(|_| TokenError::Unavailable("the IdP is unreachable".into()))?;
            let answer = IntrospectionResponse::from_json(&bounded_body(response).await?)
                .map_err(|_| TokenError::Unavailable("the IdP's answer is unreadable".into()))?;
            if !answer.active {
                return Err(TokenError::Invalid);
            }
            if answer
                .exp
                .is_some_and(|exp| exp <= chrono::Utc::now().timestamp())
            {
                return Err(TokenError::Invalid);
            }
            let client = answer.client_id.as_deref().ok_or(TokenError::Invalid)?;
            let user = answer.sub.as_deref().or(answer.username.as_deref());
            let mut caller = Caller::new(client, user, answer.scope.as_deref().unwrap_or(""));
            caller.launch_id = answer
                .extra
                .get("launch")
                .and_then(Value::as_str)
                .map(str::to_string);
            caller.fhir_user = answer.fhir_user.clone();
            Ok(caller)
        })
    }
}

//! Federated login at the SoFA (REQ IDP-03, D-19): an OpenID Connect relying party that signs
//! the clinician in at the jurisdiction's OpenID provider, the same provider the point of care
//! signed them in at, so a clinician with a live session there is not asked again.
//!
//! The flow, on an authorize request with no single sign-on session:
//!
//! 1. [`OidcLogin::authenticate`] redirects the browser to the provider's authorization endpoint
//!    (authorization code, PKCE S256, a fresh `state` and `nonce`) and sets a login cookie,
//!    encrypted, holding the PKCE verifier, the nonce and the authorize request to resume, for
//!    ten minutes. Its name carries a digest of `state`, so logins in two tabs do not collide.
//! 2. The provider sends the browser to the callback route ([`paths::CALLBACK`]). The callback
//!    requires the login cookie of that `state`, records the `state` as used in the store
//!    (a replayed callback is refused, across processes and restarts), redeems the code with the
//!    client's secret and the PKCE verifier, and verifies the id_token: signature by a key of
//!    the provider's JWKS (cached, backoff-limited, [`JwksCache`]) with an algorithm fixed by
//!    configuration, `iss`, `aud` (and `azp` when there are several audiences), `exp`, and the
//!    `nonce` of this login.
//! 3. It sets the single sign-on session cookie (encrypted, HttpOnly, SameSite=Lax, Secure
//!    outside development mode, lifetime bounded by configuration) naming the user and their
//!    `fhirUser` as configured claims map them, and sends the browser back to the authorize
//!    request, which now finds the user.
//!
//! Both cookies are sealed with AES-256-GCM under the configured cookie key, with the cookie's
//! name as associated data (a login cookie cannot pass for a session); a session also names the
//! provider and the client it came through, so a session made for another relying party that
//! shares the key is refused. [`paths::LOGOUT`] ends the session and, when the provider offers
//! RP-initiated logout, sends the browser there.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::caller::TokenError;
use super::external::ExternalJwtTokens;
use super::jwks::{JwksCache, JwksError};
use super::paths as auth_paths;
use super::users::{AuthenticatedUser, Authentication, LoginRequest, UserAuthenticator, cookie};
use crate::outbound::read_bounded;
use crate::pages;
use crate::store::{BoxFuture, Store};

/// The federated login's routes, relative to the FHIR base.
pub mod paths {
    /// Where the provider sends the browser back (the relying party's `redirect_uri`).
    pub const CALLBACK: &str = "/auth/oidc/callback";
    /// Ends the single sign-on session (GET or POST).
    pub const LOGOUT: &str = "/auth/oidc/logout";
}

/// The single sign-on session cookie.
pub const SESSION_COOKIE: &str = "halo_sso";
/// The prefix of a login-in-progress cookie (followed by a digest of its `state`).
const LOGIN_COOKIE_PREFIX: &str = "halo_oidc_";
/// The most a provider's discovery document or token answer may weigh (SEC-03).
const MAX_ANSWER: usize = 64 * 1024;
/// The longest authorize request a login cookie carries back; browsers keep about 4 KiB a
/// cookie, and the sealed copy is a third larger.
const MAX_RESUME: usize = 2048;
/// The longest cookie value this module opens.
const MAX_COOKIE: usize = 4096;
/// The `issuer` the store's one-time records of used `state`s go under.
const STATE_RECORD_ISSUER: &str = "urn:halo:oidc-login-state";

/// The relying party's configuration.
#[derive(Clone)]
pub struct OidcSettings {
    /// The provider's issuer identifier; discovery is `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// The SoFA's client id at the provider (the id_token's `aud`).
    pub client_id: String,
    /// The client secret (`client_secret_basic` at the token endpoint).
    pub client_secret: String,
    /// The scopes asked for; must hold `openid`.
    pub scopes: String,
    /// The id_token claim that is the user id, compared with a launch's owner (D-18): the
    /// claim the point of care's token names the same clinician with (`sub` by default).
    pub user_claim: String,
    /// The id_token claim that is the user's FHIR resource (`fhirUser` by default).
    pub fhir_user_claim: Option<String>,
    /// How long a single sign-on session lasts (8 hours by default).
    pub session_lifetime: Duration,
    /// How long a sign-in at the provider may take (10 minutes by default).
    pub login_lifetime: Duration,
    /// The 32-byte key the cookies are sealed with. Every instance of a SoFA behind one
    /// address must share it; without one a random key is made at start (sessions end at a
    /// restart and are not shared).
    pub cookie_key: Option<[u8; 32]>,
    /// The id_token signature algorithms accepted (asymmetric only; RS256, PS256 and ES256 by
    /// default). Never taken from the token (SEC-05).
    pub algorithms: Vec<Algorithm>,
    /// Clock skew tolerated on `exp` and `iat` (60 s by default).
    pub leeway: Duration,
    /// The timeout of each call to the provider (SEC-03).
    pub timeout: Duration,
    /// Development mode: the provider may be plain http on loopback, and cookies are not
    /// marked Secure.
    pub development_mode: bool,
    /// Where the provider sends the browser after logout, if registered there.
    pub post_logout_redirect_uri: Option<String>,
}

impl OidcSettings {
    /// The defaults for a provider and a confidential client.
    pub fn new(
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> OidcSettings {
        OidcSettings {
            issuer: issuer.into().trim_end_matches('/').to_string(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            scopes: "openid fhirUser".into(),
            user_claim: "sub".into(),
            fhir_user_claim: Some("fhirUser".into()),
            session_lifetime: Duration::from_secs(8 * 60 * 60),
            login_lifetime: Duration::from_secs(10 * 60),
            cookie_key: None,
            algorithms: vec![Algorithm::RS256, Algorithm::PS256, Algorithm::ES256],
            leeway: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            development_mode: false,
            post_logout_redirect_uri: None,
        }
    }
}

impl fmt::Debug for OidcSettings {
    // SEC-01: neither the client secret nor the cookie key is printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .field("user_claim", &self.user_claim)
            .field("fhir_user_claim", &self.fhir_user_claim)
            .field("session_lifetime", &self.session_lifetime)
            .field("development_mode", &self.development_mode)
            .finish_non_exhaustive()
    }
}

/// Why the federated login could not start.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The configuration cannot work.
    #[error("OpenID Connect login: {0}")]
    Config(String),
    /// The provider's discovery document could not be had or is not acceptable.
    #[error("OpenID Connect discovery at {issuer}: {reason}")]
    Discovery {
        /// The configured issuer.
        issuer: String,
        /// What went wrong.
        reason: String,
    },
}

/// What the relying party uses of the provider's discovery document.
#[derive(Debug, Clone, Deserialize)]
struct ProviderMetadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    end_session_endpoint: Option<String>,
    #[serde(default)]
    code_challenge_methods_supported: Option<Vec<String>>,
}

/// A login in progress, sealed in its cookie.
#[derive(Serialize, Deserialize)]
struct PendingLogin {
    state: String,
    nonce: String,
    verifier: String,
    /// The authorize request to resume (an URL of the authorize endpoint).
    resume: String,
    /// Unix seconds.
    exp: i64,
}

/// A single sign-on session, sealed in its cookie.
#[derive(Serialize, Deserialize)]
struct Session {
    sub: String,
    #[serde(default)]
    fhir_user: Option<String>,
    /// The provider and the client the session came through.
    iss: String,
    cid: String,
    /// Unix seconds.
    exp: i64,
}

/// AES-256-GCM sealing of cookie values, the cookie's name as associated data.
struct Sealer(RandomizedNonceKey);

impl Sealer {
    fn new(key: &[u8; 32]) -> Result<Sealer, OidcError> {
        RandomizedNonceKey::new(&AES_256_GCM, key)
            .map(Sealer)
            .map_err(|_| OidcError::Config("the cookie key is not an AES-256 key".into()))
    }

    fn seal(&self, name: &str, value: &impl Serialize) -> Option<String> {
        let mut data = serde_json::to_vec(value).ok()?;
        let nonce = self
            .0
            .seal_in_place_append_tag(Aad::from(name.as_bytes()), &mut data)
            .ok()?;
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&data);
        Some(URL_SAFE_NO_PAD.encode(out))
    }

    fn open<T: for<'de> Deserialize<'de>>(&self, name: &str, text: &str) -> Option<T> {
        if text.len() > MAX_COOKIE {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(name.as_bytes()), &mut sealed)
            .ok()?;
        serde_json::from_slice(plain).ok()
    }
}

struct Inner {
    settings: OidcSettings,
    provider: ProviderMetadata,
    jwks: Arc<JwksCache>,
    http: reqwest::Client,
    sealer: Sealer,
    store: Arc<dyn Store>,
    /// The SoFA's authorize endpoint: the only place a login resumes.
    authorize_url: String,
    callback_url: String,
    /// The FHIR base's path: the session cookie is sent to it and below.
    cookie_path: String,
}

/// The OpenID Connect relying-party login (see the module documentation): a
/// [`UserAuthenticator`] for [`super::AuthServer`], plus the callback and logout routes to mount
/// next to it ([`OidcLogin::router`]).
#[derive(Clone)]
pub struct OidcLogin {
    inner: Arc<Inner>,
}

impl fmt::Debug for OidcLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcLogin")
            .field("issuer", &self.inner.provider.issuer)
            .field("client_id", &self.inner.settings.client_id)
            .finish_non_exhaustive()
    }
}

fn random_text<const N: usize>() -> Option<String> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

fn digest(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(text.as_bytes()))
}

impl OidcLogin {
    /// Reads the provider's discovery document and prepares the relying party of the SoFA at
    /// `sofa_base_url` (its FHIR base). Every call to the provider goes through the outbound
    /// guard ([`crate::outbound`]): https to public addresses, or http on loopback in development
    /// mode. Used `state`s are recorded in `store`.
    pub async fn discover(
        settings: OidcSettings,
        sofa_base_url: &str,
        store: Arc<dyn Store>,
    ) -> Result<OidcLogin, OidcError> {
        let discovery = |reason: String| OidcError::Discovery {
            issuer: settings.issuer.clone(),
            reason,
        };
        if !settings.scopes.split_whitespace().any(|s| s == "openid") {
            return Err(OidcError::Config("the scopes must include openid".into()));
        }
        if settings.client_id.is_empty() || settings.client_secret.is_empty() {
            return Err(OidcError::Config(
                "a client id and a client secret are needed".into(),
            ));
        }
        if settings
            .algorithms
            .iter()
            .any(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
            || settings.algorithms.is_empty()
        {
            return Err(OidcError::Config(
                "id_tokens are verified with asymmetric algorithms only".into(),
            ));
        }
        let dev = settings.development_mode;
        let checked = |url: &str| -> Result<(), OidcError> {
            let parsed =
                url::Url::parse(url).map_err(|_| discovery(format!("{url} is not a URL")))?;
            crate::outbound::check_url(&parsed, dev)
                .map_err(|why| discovery(format!("{url}: {why}")))
        };
        checked(&settings.issuer)?;
        let http = crate::outbound::client_builder(dev)
            .timeout(settings.timeout)
            .build()
            .map_err(|e| OidcError::Config(format!("the HTTP client: {e}")))?;
        let well_known = format!("{}/.well-known/openid-configuration", settings.issuer);
        let response = http
            .get(&well_known)
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| discovery(format!("unreachable: {e}")))?;
        if !response.status().is_success() {
            return Err(discovery(format!("answered {}", response.status())));
        }
        let body = read_bounded(response, MAX_ANSWER)
            .await
            .map_err(|e| discovery(e.to_string()))?;
        let provider: ProviderMetadata = serde_json::from_slice(&body)
            .map_err(|e| discovery(format!("not a discovery document: {e}")))?;
        // OpenID Connect Discovery §4.3: the document must name the issuer it was asked for.
        if provider.issuer.trim_end_matches('/') != settings.issuer {
            return Err(discovery(format!(
                "the document names another issuer, {}",
                provider.issuer
            )));
        }
        if provider
            .code_challenge_methods_supported
            .as_ref()
            .is_some_and(|methods| !methods.iter().any(|m| m == "S256"))
        {
            return Err(discovery("the provider does not offer PKCE S256".into()));
        }
        for url in [
            Some(&provider.authorization_endpoint),
            Some(&provider.token_endpoint),
            Some(&provider.jwks_uri),
            provider.end_session_endpoint.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            checked(url)?;
        }
        let key = match settings.cookie_key {
            Some(key) => key,
            None => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key)
                    .map_err(|_| OidcError::Config("no randomness for the cookie key".into()))?;
                key
            }
        };
        let base = sofa_base_url.trim_end_matches('/');
        let cookie_path = url::Url::parse(base)
            .map(|u| u.path().trim_end_matches('/').to_string())
            .map_err(|_| OidcError::Config(format!("{base} is not a URL")))?;
        let jwks = Arc::new(JwksCache::new(
            provider.jwks_uri.clone(),
            http.clone(),
            Duration::from_secs(300),
            Duration::from_secs(10),
        ));
        Ok(OidcLogin {
            inner: Arc::new(Inner {
                sealer: Sealer::new(&key)?,
                provider,
                jwks,
                http,
                store,
                authorize_url: format!("{base}{}", auth_paths::AUTHORIZE),
                callback_url: format!("{base}{}", paths::CALLBACK),
                cookie_path: if cookie_path.is_empty() {
                    "/".into()
                } else {
                    cookie_path
                },
                settings,
            }),
        })
    }

    /// The redirect URI to register for the SoFA at the provider.
    pub fn redirect_uri(&self) -> &str {
        &self.inner.callback_url
    }

    /// The provider's JWKS, shared with whatever else verifies its signatures.
    pub fn jwks(&self) -> Arc<JwksCache> {
        self.inner.jwks.clone()
    }

    /// A validator of the provider's JWT access tokens issued for `audience` (the FHIR base,
    /// as a resource indicator): how a point of care that signed its clinician in at the same
    /// provider calls `$set-context` with that clinician's token. It shares this login's JWKS
    /// cache.
    pub fn access_tokens(&self, audience: &str) -> Result<ExternalJwtTokens, TokenError> {
        ExternalJwtTokens::with_jwks(
            self.inner.provider.issuer.clone(),
            audience,
            self.inner.jwks.clone(),
            self.inner.settings.algorithms.clone(),
        )
    }

    /// The callback and logout routes, relative to the FHIR base (mount them with the
    /// authorization server's).
    pub fn router(&self) -> Router {
        Router::new()
            .route(paths::CALLBACK, get(callback))
            .route(paths::LOGOUT, get(logout).post(logout))
            .with_state(self.inner.clone())
    }
}

impl Inner {
    fn cookie(&self, name: &str, value: &str, path: &str, max_age: u64) -> Option<HeaderValue> {
        set_cookie(name, value, path, max_age, !self.settings.development_mode)
    }

    fn callback_path(&self) -> String {
        format!(
            "{}{}",
            self.cookie_path.trim_end_matches('/'),
            paths::CALLBACK
        )
    }

    /// The live session the request's cookie holds, if any.
    fn session(&self, request: &LoginRequest<'_>) -> Option<AuthenticatedUser> {
        let session: Session = self
            .sealer
            .open(SESSION_COOKIE, request.cookie(SESSION_COOKIE)?)?;
        let now = chrono::Utc::now().timestamp();
        let ours = session.iss == self.provider.issuer
            && session.cid == self.settings.client_id
            && session.exp > now;
        ours.then_some(AuthenticatedUser {
            id: session.sub,
            fhir_user: session.fhir_user,
        })
    }

    /// The redirect to the provider, with the login cookie.
    fn start_login(&self, request: &LoginRequest<'_>) -> Response {
        let mut resume = match url::Url::parse(&self.authorize_url) {
            Ok(url) => url,
            Err(_) => {
                return page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The sign-in is misconfigured.",
                );
            }
        };
        resume
            .query_pairs_mut()
            .extend_pairs(request.params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if resume.as_str().len() > MAX_RESUME {
            return page(
                StatusCode::BAD_REQUEST,
                "The authorization request is too large to sign in with.",
            );
        }
        let (Some(state), Some(nonce), Some(verifier)) = (
            random_text::<32>(),
            random_text::<32>(),
            random_text::<32>(),
        ) else {
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable; try again.",
            );
        };
        let lifetime = self.settings.login_lifetime.as_secs();
        let pending = PendingLogin {
            state: state.clone(),
            nonce: nonce.clone(),
            verifier: verifier.clone(),
            resume: resume.into(),
            exp: chrono::Utc::now().timestamp() + lifetime as i64,
        };
        let name = login_cookie_name(&state);
        let Some(sealed) = self.sealer.seal(&name, &pending) else {
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable; try again.",
            );
        };
        let Ok(mut to) = url::Url::parse(&self.provider.authorization_endpoint) else {
            return page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The sign-in is misconfigured.",
            );
        };
        to.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("redirect_uri", &self.callback_url)
            .append_pair("scope", &self.settings.scopes)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &digest(&verifier))
            .append_pair("code_challenge_method", "S256");
        let mut response = redirect(to.as_str());
        if let Some(cookie) = self.cookie(&name, &sealed, &self.callback_path(), lifetime) {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        response
    }

    /// Redeems the code and verifies the id_token; the user it names.
    async fn finish_login(
        &self,
        code: &str,
        pending: &PendingLogin,
    ) -> Result<AuthenticatedUser, String> {
        let answer = self
            .http
            .post(&self.provider.token_endpoint)
            .basic_auth(
                form_encode(&self.settings.client_id),
                Some(form_encode(&self.settings.client_secret)),
            )
            .header(header::ACCEPT, "application/json")
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", self.callback_url.as_str()),
                ("code_verifier", pending.verifier.as_str()),
            ])
            .send()
            .await
            .map_err(|_| "the provider's token endpoint is unreachable".to_string())?;
        let status = answer.status();
        let body = read_bounded(answer, MAX_ANSWER)
            .await
            .map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("the provider refused the code ({status})"));
        }
        let tokens: Value = serde_json::from_slice(&body)
            .map_err(|_| "the token answer is not JSON".to_string())?;
        let id_token = tokens
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or("the token answer has no id_token")?;
        let claims = self.verify_id_token(id_token, &pending.nonce).await?;
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_string);
        let id = text(&self.settings.user_claim)
            .filter(|id| !id.is_empty() && id.len() <= 256)
            .ok_or_else(|| format!("the id_token has no {} claim", self.settings.user_claim))?;
        let fhir_user = self
            .settings
            .fhir_user_claim
            .as_deref()
            .and_then(text)
            .filter(|f| f.len() <= 1024);
        Ok(AuthenticatedUser { id, fhir_user })
    }

    /// Verifies an id_token (OpenID Connect Core §3.1.3.7): signature by the provider's key
    /// with a configured algorithm, `iss`, `aud`, `azp`, `exp`, and the login's `nonce`.
    async fn verify_id_token(&self, id_token: &str, nonce: &str) -> Result<Value, String> {
        let header =
            jsonwebtoken::decode_header(id_token).map_err(|_| "the id_token is malformed")?;
        if !self.settings.algorithms.contains(&header.alg) {
            return Err("the id_token's algorithm is not accepted".into());
        }
        let kid = header.kid.as_deref().unwrap_or_default();
        let key = self.jwks.key(kid).await.map_err(|e| match e {
            JwksError::UnknownKey(_) => "the id_token is signed by an unknown key".to_string(),
            JwksError::Unavailable(why) => why,
        })?;
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.set_issuer(&[self.provider.issuer.as_str()]);
        validation.set_audience(&[self.settings.client_id.as_str()]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = self.settings.leeway.as_secs();
        let claims: Value = jsonwebtoken::decode(id_token, &key, &validation)
            .map_err(|e| format!("the id_token is not valid: {e}"))?
            .claims;
        if let Some(Value::Array(audiences)) = claims.get("aud")
            && audiences.len() > 1
            && claims.get("azp").and_then(Value::as_str) != Some(self.settings.client_id.as_str())
        {
            return Err(
                "the id_token is for several parties and not authorized for this one".into(),
            );
        }
        let presented = claims
            .get("nonce")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !bool::from(presented.as_bytes().ct_eq(nonce.as_bytes())) {
            return Err("the id_token's nonce is not this sign-in's".into());
        }
        Ok(claims)
    }
}

/// A `Set-Cookie` value: HttpOnly (no script reads it), SameSite=Lax (sent on the top-level
/// redirects of a sign-in, not on another site's subrequests), Secure unless `secure` is off
/// (development mode on plain http).
fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: u64,
    secure: bool,
) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    ))
    .ok()
}

/// `application/x-www-form-urlencoded` encoding of a client id or secret for HTTP Basic
/// (RFC 6749 §2.3.1).
fn form_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn login_cookie_name(state: &str) -> String {
    // 16 characters of the digest: distinct per login, and no `state` in a cookie name.
    format!("{LOGIN_COOKIE_PREFIX}{}", &digest(state)[..16])
}

fn redirect(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn page(status: StatusCode, message: &str) -> Response {
    let mut response = (status, pages::sign_in_message(message)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

impl UserAuthenticator for OidcLogin {
    fn authenticate<'a>(&'a self, request: LoginRequest<'a>) -> BoxFuture<'a, Authentication> {
        Box::pin(async move {
            match self.inner.session(&request) {
                Some(user) => Authentication::User(user),
                None => Authentication::Respond(self.inner.start_login(&request)),
            }
        })
    }
}

#[derive(Deserialize)]
struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    iss: Option<String>,
}

async fn callback(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return page(StatusCode::BAD_REQUEST, "The sign-in answer is malformed.");
    };
    let Some(state) = query.state.filter(|s| !s.is_empty() && s.len() <= 256) else {
        return page(StatusCode::BAD_REQUEST, "The sign-in answer has no state.");
    };
    let name = login_cookie_name(&state);
    let expired = "This sign-in has expired or was already used; open the app again.";
    let now = chrono::Utc::now();
    let Some(pending) = cookie(&headers, &name)
        .and_then(|value| inner.sealer.open::<PendingLogin>(&name, value))
        .filter(|p| bool::from(p.state.as_bytes().ct_eq(state.as_bytes())))
        .filter(|p| p.exp > now.timestamp())
    else {
        return page(StatusCode::BAD_REQUEST, expired);
    };
    let clear_login = inner.cookie(&name, "", &inner.callback_path(), 0);
    let with_cleared = |mut response: Response| {
        if let Some(cookie) = clear_login.clone() {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        response
    };
    // One use per state, whichever instance the browser reaches (IDP-05's one-time records).
    let expires = chrono::DateTime::from_timestamp(pending.exp, 0).unwrap_or(now);
    let first_use = async {
        let mut tx = inner.store.begin().await.ok()?;
        let new = tx
            .record_jti(STATE_RECORD_ISSUER, &digest(&state), expires, now)
            .await
            .ok()?;
        tx.commit().await.ok()?;
        Some(new)
    }
    .await;
    match first_use {
        Some(true) => {}
        Some(false) => return with_cleared(page(StatusCode::BAD_REQUEST, expired)),
        None => {
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable; try again.",
            );
        }
    }
    // RFC 9207: an `iss` in the answer must be our provider's (mix-up defence).
    if query
        .iss
        .as_deref()
        .is_some_and(|iss| iss != inner.provider.issuer)
    {
        return with_cleared(page(
            StatusCode::BAD_REQUEST,
            "The sign-in answer came from another provider.",
        ));
    }
    if let Some(error) = query.error {
        let error: String = error.chars().take(64).collect();
        return with_cleared(page(
            StatusCode::FORBIDDEN,
            &format!("The identity provider did not sign you in ({error})."),
        ));
    }
    let Some(code) = query.code.filter(|c| !c.is_empty() && c.len() <= 2048) else {
        return with_cleared(page(
            StatusCode::BAD_REQUEST,
            "The sign-in answer has no code.",
        ));
    };
    let user = match inner.finish_login(&code, &pending).await {
        Ok(user) => user,
        Err(why) => {
            tracing::warn!(issuer = %inner.provider.issuer, "federated sign-in refused: {why}");
            return with_cleared(page(
                StatusCode::FORBIDDEN,
                "The identity provider's answer could not be verified; you are not signed in.",
            ));
        }
    };
    let lifetime = inner.settings.session_lifetime.as_secs();
    let session = Session {
        sub: user.id,
        fhir_user: user.fhir_user,
        iss: inner.provider.issuer.clone(),
        cid: inner.settings.client_id.clone(),
        exp: now.timestamp() + lifetime as i64,
    };
    // The resume URL was sealed by this server, but it is still checked to be the authorize
    // endpoint: a login never sends the browser anywhere else.
    if !pending
        .resume
        .starts_with(&format!("{}?", inner.authorize_url))
    {
        return with_cleared(page(StatusCode::BAD_REQUEST, expired));
    }
    let mut response = with_cleared(redirect(&pending.resume));
    let sealed = inner.sealer.seal(SESSION_COOKIE, &session);
    match sealed.and_then(|s| inner.cookie(SESSION_COOKIE, &s, &inner.cookie_path, lifetime)) {
        Some(cookie) => {
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
        None => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in is unavailable; try again.",
        ),
    }
}

async fn logout(State(inner): State<Arc<Inner>>) -> Response {
    let mut response = match &inner.provider.end_session_endpoint {
        Some(end) => match url::Url::parse(end) {
            Ok(mut url) => {
                url.query_pairs_mut()
                    .append_pair("client_id", &inner.settings.client_id);
                if let Some(back) = &inner.settings.post_logout_redirect_uri {
                    url.query_pairs_mut()
                        .append_pair("post_logout_redirect_uri", back);
                }
                redirect(url.as_str())
            }
            Err(_) => page(StatusCode::OK, "You are signed out of this server."),
        },
        None => page(StatusCode::OK, "You are signed out of this server."),
    };
    if let Some(cookie) = inner.cookie(SESSION_COOKIE, "", &inner.cookie_path, 0) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: IDP-03
    #[test]
    fn cookies_are_http_only_lax_and_secure_outside_development() {
        let production = set_cookie(SESSION_COOKIE, "v", "/fhir", 28800, true).unwrap();
        let production = production.to_str().unwrap();
        for attribute in [
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
            "Max-Age=28800",
            "Path=/fhir",
        ] {
            assert!(production.contains(attribute), "{production}");
        }
        let development = set_cookie(SESSION_COOKIE, "v", "/fhir", 28800, false).unwrap();
        assert!(!development.to_str().unwrap().contains("Secure"));
        // A value that is not a header value makes no cookie, rather than a broken one.
        assert!(set_cookie(SESSION_COOKIE, "a\nb", "/", 1, true).is_none());
    }

    // REQ: IDP-03
    #[test]
    fn sealed_cookies_open_only_under_their_own_name_and_key() {
        let sealer = Sealer::new(&[7u8; 32]).unwrap();
        let session = Session {
            sub: "dr-a".into(),
            fhir_user: None,
            iss: "https://idp".into(),
            cid: "sofa".into(),
            exp: 1,
        };
        let sealed = sealer.seal(SESSION_COOKIE, &session).unwrap();
        assert!(sealer.open::<Session>(SESSION_COOKIE, &sealed).is_some());
        // Another name (a login cookie passed off as a session): refused.
        assert!(sealer.open::<Session>("halo_oidc_x", &sealed).is_none());
        // Another key: refused.
        let other = Sealer::new(&[8u8; 32]).unwrap();
        assert!(other.open::<Session>(SESSION_COOKIE, &sealed).is_none());
        // One bit changed: refused.
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = URL_SAFE_NO_PAD.encode(bytes);
        assert!(sealer.open::<Session>(SESSION_COOKIE, &tampered).is_none());
        // Garbage and oversize values: refused, no panic.
        assert!(sealer.open::<Session>(SESSION_COOKIE, "").is_none());
        assert!(sealer.open::<Session>(SESSION_COOKIE, "%%%").is_none());
        assert!(
            sealer
                .open::<Session>(SESSION_COOKIE, &"A".repeat(MAX_COOKIE + 1))
                .is_none()
        );
    }
}

//! The I/O shell: the sans-IO core driven over HTTP with reqwest.

mod fhir;
mod http;
mod session;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use halo_model::smart::{IntrospectionResponse, SmartConfiguration};
use jsonwebtoken::jwk::JwkSet;
use serde_json::Value;
use url::Url;

pub use fhir::FhirClient;
pub use session::SessionHandle;

use crate::authorize::{AuthorizeForm, AuthorizeRequest, Pkce, new_state, scope_with_launch};
use crate::backend::BackendToken;
use crate::binding::BrowserBinding;
use crate::callback::Callback;
use crate::discovery::{check_discovery, discovery_url, launch_endpoints, supports_authorize_post};
use crate::error::{Result, SmartError};
use crate::id_token::{IdTokenClaims, IdTokenError, JwksCache, parse_jwks, verify_id_token};
use crate::introspection::read_introspection_response;
use crate::keys::SigningKey;
use crate::launch::{IssuerPolicy, LaunchRequest};
use crate::secret::Secret;
use crate::session::LaunchSession;
use crate::store::{LaunchStore, PendingLaunch};
use crate::token::{
    ClientAuth, authorization_code_request, client_credentials_request, introspection_request,
    read_token_response,
};

/// Tunables of the HTTP shell. The defaults suit a production app.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Timeout of every single HTTP call.
    pub timeout: Duration,
    /// How long a pending launch waits for its callback.
    pub pending_launch_ttl: Duration,
    /// Refresh this long before the access token expires.
    pub refresh_margin: Duration,
    /// Overall deadline for an asynchronous FHIR request (202 polling).
    pub async_deadline: Duration,
    /// First polling delay when the server sends no `Retry-After` (doubles up to
    /// `max_poll_interval`).
    pub initial_poll_interval: Duration,
    /// Longest wait between two polls.
    pub max_poll_interval: Duration,
    /// How long a discovery document is reused for an issuer.
    pub discovery_ttl: Duration,
    /// Largest answer body accepted.
    pub max_body_bytes: usize,
    /// Use the POST form for the authorize request when the server advertises `authorize-post`.
    pub prefer_authorize_post: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(20),
            pending_launch_ttl: Duration::from_secs(600),
            refresh_margin: Duration::from_secs(60),
            async_deadline: Duration::from_secs(120),
            initial_poll_interval: Duration::from_millis(500),
            max_poll_interval: Duration::from_secs(10),
            discovery_ttl: Duration::from_secs(3600),
            max_body_bytes: 16 * 1024 * 1024,
            prefer_authorize_post: false,
        }
    }
}

/// Where to send the user's browser to authorize.
#[derive(Debug, Clone)]
pub enum Redirect {
    /// Redirect (302/303) to this URL.
    Get(Url),
    /// Answer with a page that posts this form (`authorize-post`); see [`AuthorizeForm::to_html`].
    Post(AuthorizeForm),
}

/// What [`SmartClient::begin_launch`] hands back: where to send the browser, and the binding to
/// store in that browser (a cookie: [`BrowserBinding::set_cookie`]) for
/// [`SmartClient::complete_launch`] to check.
#[derive(Debug, Clone)]
pub struct LaunchStart {
    /// Where to send the browser.
    pub redirect: Redirect,
    /// The value that ties the launch to this browser.
    pub binding: BrowserBinding,
}

/// A SMART app's client: launch, callback, refresh, FHIR access, backend services, introspection.
/// Cheap to clone; share one per app.
#[derive(Clone)]
pub struct SmartClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    policy: IssuerPolicy,
    store: Arc<dyn LaunchStore>,
    options: ClientOptions,
    discovery: Mutex<HashMap<String, (Arc<SmartConfiguration>, Instant)>>,
    jwks: JwksCache,
    backend_tokens: tokio::sync::Mutex<HashMap<String, BackendToken>>,
}

impl std::fmt::Debug for SmartClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmartClient")
            .field("policy", &self.inner.policy)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl SmartClient {
    /// A client with default options.
    pub fn new(policy: IssuerPolicy, store: Arc<dyn LaunchStore>) -> Result<Self> {
        Self::with_options(policy, store, ClientOptions::default())
    }

    /// A client with the given options.
    pub fn with_options(
        policy: IssuerPolicy,
        store: Arc<dyn LaunchStore>,
        options: ClientOptions,
    ) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| SmartError::config("the HTTP client could not be created"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                policy,
                store,
                options,
                discovery: Mutex::new(HashMap::new()),
                jwks: JwksCache::new(),
                backend_tokens: tokio::sync::Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The issuer policy.
    pub fn policy(&self) -> &IssuerPolicy {
        &self.inner.policy
    }

    /// The options.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// Fetches (or reuses) and checks `{iss}/.well-known/smart-configuration`. The issuer must be
    /// allowed by the policy; nothing is fetched otherwise.
    pub async fn discover(&self, iss: &str) -> Result<Arc<SmartConfiguration>> {
        self.inner.policy.check(iss)?;
        if let Ok(cache) = self.inner.discovery.lock()
            && let Some((config, at)) = cache.get(iss)
            && at.elapsed() < self.inner.options.discovery_ttl
        {
            return Ok(Arc::clone(config));
        }
        let url = discovery_url(iss)?;
        let answer = http::get_json(
            self.http(),
            &url,
            "smart-configuration",
            self.inner.options.max_body_bytes,
        )
        .await
        .map_err(|e| SmartError::Discovery {
            iss: iss.to_owned(),
            reason: e.to_string(),
        })?;
        let config = Arc::new(check_discovery(
            iss,
            answer.status,
            &answer.body,
            &self.inner.policy,
        )?);
        if let Ok(mut cache) = self.inner.discovery.lock() {
            cache.insert(iss.to_owned(), (Arc::clone(&config), Instant::now()));
        }
        Ok(config)
    }

    /// Handles a launch: checks `iss` against the policy, discovers, stores a pending launch under a
    /// fresh `state` and returns where to send the browser, with the browser binding the app must
    /// store in that browser (see [`crate::binding`]).
    pub async fn begin_launch(&self, launch: &LaunchRequest) -> Result<LaunchStart> {
        self.begin(&launch.iss, Some(&launch.launch)).await
    }

    /// Starts a sign-in without a launch (SMART standalone): the user signs in at `iss`'s
    /// authorization server and the session carries their tokens, with the configured scopes
    /// as they are (no `launch` added) and no context required. A point of care uses it to sign
    /// its clinician in at the jurisdictional IdP before `$set-context` (HALO SoFA step 2,
    /// D-18); it completes with [`complete_launch`](Self::complete_launch) like a launch.
    pub async fn begin_sign_in(&self, iss: &str) -> Result<LaunchStart> {
        self.begin(iss, None).await
    }

    async fn begin(&self, iss: &str, launch: Option<&str>) -> Result<LaunchStart> {
        let client = self.inner.policy.check(iss)?.clone();
        let config = self.discover(iss).await?;
        let endpoints = launch_endpoints(&config, iss)?;
        let pkce = Pkce::generate()?;
        let state = new_state()?;
        let binding = BrowserBinding::generate(&state)?;
        let (scope, required_context) = match launch {
            Some(_) => (scope_with_launch(&client.scope), client.required_context()),
            None => (client.scope.trim().to_owned(), Vec::new()),
        };
        let pending = PendingLaunch {
            state: state.clone(),
            iss: iss.to_owned(),
            aud: iss.to_owned(),
            launch: launch.map(str::to_owned),
            client_id: client.client_id.as_str().to_owned(),
            redirect_uri: client.redirect_uri.as_str().to_owned(),
            code_verifier: pkce.verifier().clone(),
            token_endpoint: endpoints.token.to_string(),
            scope: scope.clone(),
            required_context,
            expires_at: now() + secs(self.inner.options.pending_launch_ttl),
            browser_binding: binding.digest(),
        };
        self.inner.store.put(pending).await?;
        let request = AuthorizeRequest {
            authorization_endpoint: endpoints.authorization,
            client_id: client.client_id.into(),
            redirect_uri: client.redirect_uri.into(),
            scope,
            launch: launch.map(str::to_owned),
            aud: iss.to_owned(),
            state,
            code_challenge: pkce.challenge().to_owned(),
        };
        let redirect =
            if self.inner.options.prefer_authorize_post && supports_authorize_post(&config) {
                Redirect::Post(request.to_form())
            } else {
                Redirect::Get(request.to_url())
            };
        Ok(LaunchStart { redirect, binding })
    }

    /// [`begin_launch`](Self::begin_launch) from the launch URL's query string.
    pub async fn begin_launch_from_query(&self, query: &str) -> Result<LaunchStart> {
        self.begin_launch(&LaunchRequest::from_query(query)?).await
    }

    /// Handles the redirect back: checks `state` (single use) and that the browser presents the
    /// launch's `binding` (the value [`begin_launch`](Self::begin_launch) gave, read back with
    /// [`BrowserBinding::from_callback`]), exchanges the code, verifies the id_token (required
    /// when `openid` was granted), checks the required context, and returns the session.
    pub async fn complete_launch(
        &self,
        callback_query: &str,
        binding: Option<&str>,
    ) -> Result<SessionHandle> {
        let callback = Callback::from_query(callback_query)?;
        let pending = match &callback.state {
            Some(state) => self.inner.store.take(state, now()).await?,
            None => None,
        };
        let (pending, code) = callback.accept(pending, binding)?;
        let client = self.inner.policy.check(&pending.iss)?.clone();
        let token_url = Url::parse(&pending.token_endpoint)
            .map_err(|_| SmartError::config("stored token endpoint is not a URL"))?;
        let request = authorization_code_request(
            &token_url,
            &pending.client_id,
            &client.auth,
            code.expose(),
            &pending.redirect_uri,
            &pending.code_verifier,
            now(),
        )?;
        let token = self.token_call(&request).await?;
        let mut session = LaunchSession::from_token_response(
            pending.iss.clone(),
            pending.client_id.clone(),
            pending.token_endpoint.clone(),
            pending.scope.clone(),
            token,
            now(),
        );
        match session.id_token().cloned() {
            Some(id_token) => {
                let claims = self
                    .verify_id_token(&pending.iss, &pending.client_id, &id_token)
                    .await?;
                session.id_claims = Some(claims);
            }
            None if session.openid_granted() && !client.allow_missing_id_token => {
                return Err(SmartError::IdTokenMissing);
            }
            None => {}
        }
        session.check_required_context(&pending.required_context)?;
        Ok(SessionHandle::new(self.clone(), session))
    }

    /// Wraps a stored session (e.g. read back from the app's session storage) for use.
    pub fn resume(&self, session: LaunchSession) -> SessionHandle {
        SessionHandle::new(self.clone(), session)
    }

    pub(crate) async fn token_call(
        &self,
        request: &crate::token::TokenRequest,
    ) -> Result<halo_model::smart::TokenResponse> {
        let answer = http::post_form(
            self.http(),
            request,
            "token endpoint",
            self.inner.options.max_body_bytes,
        )
        .await?;
        read_token_response(answer.status, answer.content_type(), &answer.body)
    }

    /// Verifies an id_token of the server `iss` for `client_id` (signature against the server's
    /// published keys, issuer, audience, expiry).
    pub(crate) async fn verify_id_token(
        &self,
        iss: &str,
        client_id: &str,
        id_token: &Secret,
    ) -> Result<IdTokenClaims> {
        let config = self.discover(iss).await?;
        let issuer = config.issuer.clone().unwrap_or_else(|| iss.to_owned());
        let jwks_uri = match &config.jwks_uri {
            Some(uri) => uri.clone(),
            None => self.openid_jwks_uri(&issuer).await?,
        };
        let jwks_url = Url::parse(&jwks_uri)
            .ok()
            .filter(|u| self.inner.policy.url_scheme_ok(u))
            .ok_or_else(|| SmartError::IdToken {
                reason: "jwks_uri is not an https URL".into(),
            })?;
        let (set, cached) = match self.inner.jwks.get(&jwks_uri) {
            Some(set) => (set, true),
            None => (self.fetch_jwks(&jwks_url).await?, false),
        };
        match verify_id_token(id_token.expose(), &set, &issuer, client_id, now()) {
            Ok(claims) => Ok(claims),
            // Keys rotate: on an unknown kid, fetch the set again once.
            Err(IdTokenError::UnknownKey) if cached => {
                let fresh = self.fetch_jwks(&jwks_url).await?;
                verify_id_token(id_token.expose(), &fresh, &issuer, client_id, now()).map_err(|e| {
                    match e {
                        IdTokenError::UnknownKey => SmartError::IdToken {
                            reason: "signed by a key the server does not publish".into(),
                        },
                        IdTokenError::Invalid(e) => e,
                    }
                })
            }
            Err(IdTokenError::UnknownKey) => Err(SmartError::IdToken {
                reason: "signed by a key the server does not publish".into(),
            }),
            Err(IdTokenError::Invalid(e)) => Err(e),
        }
    }

    async fn fetch_jwks(&self, url: &Url) -> Result<JwkSet> {
        let answer = http::get_json(
            self.http(),
            url,
            "jwks_uri",
            self.inner.options.max_body_bytes,
        )
        .await?;
        if !(200..300).contains(&answer.status) {
            return Err(SmartError::HttpStatus {
                endpoint: "jwks_uri".into(),
                status: answer.status,
            });
        }
        let set = parse_jwks(&answer.body)?;
        self.inner.jwks.insert(url.as_str(), set.clone());
        Ok(set)
    }

    async fn openid_jwks_uri(&self, issuer: &str) -> Result<String> {
        let url = Url::parse(&format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ))
        .ok()
        .filter(|u| self.inner.policy.url_scheme_ok(u))
        .ok_or_else(|| SmartError::IdToken {
            reason: "the id_token issuer is not an https URL".into(),
        })?;
        let answer = http::get_json(
            self.http(),
            &url,
            "openid-configuration",
            self.inner.options.max_body_bytes,
        )
        .await?;
        let doc: Value = serde_json::from_slice(&answer.body).map_err(|_| {
            SmartError::invalid_response("openid-configuration", "the answer is not JSON")
        })?;
        doc.get("jwks_uri")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| SmartError::invalid_response("openid-configuration", "no jwks_uri"))
    }

    /// A backend-services access token (`client_credentials` with `private_key_jwt`), reused
    /// while it has more than the refresh margin left.
    pub async fn backend_token(
        &self,
        token_endpoint: &Url,
        client_id: &str,
        key: &SigningKey,
        scope: &str,
    ) -> Result<BackendToken> {
        let cache_key = format!("{token_endpoint} {client_id} {scope}");
        let mut cache = self.inner.backend_tokens.lock().await;
        let margin = secs(self.inner.options.refresh_margin);
        if let Some(t) = cache.get(&cache_key)
            && t.fresh_at(now(), margin)
        {
            return Ok(t.clone());
        }
        let request = client_credentials_request(token_endpoint, client_id, key, scope, now())?;
        let token = BackendToken::from_response(self.token_call(&request).await?, now());
        cache.insert(cache_key, token.clone());
        Ok(token)
    }

    /// Asks the introspection endpoint about `token`, authenticating as the app.
    pub async fn introspect(
        &self,
        introspection_endpoint: &Url,
        client_id: &str,
        auth: &ClientAuth,
        token: &Secret,
    ) -> Result<IntrospectionResponse> {
        let request = introspection_request(introspection_endpoint, client_id, auth, token, now())?;
        let answer = http::post_form(
            self.http(),
            &request,
            "introspection endpoint",
            self.inner.options.max_body_bytes,
        )
        .await?;
        read_introspection_response(answer.status, &answer.body)
    }
}

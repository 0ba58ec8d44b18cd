//! The built-in SMART authorization server: its shared state, routes and discovery documents
//! (REQ AS-01, AS-02).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use halo_model::oauth::OAuthErrorCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::builtin::BuiltinTokens;
use super::clients::{ClientLookup, ClientRegistry, RegisteredClient};
use super::keys::{KeyError, KeyRing, KeyUse, Rotation};
use super::users::UserAuthenticator;
use super::{TokenValidator, authorize, introspect, revoke, token};
use crate::clock::Clock;
use crate::config::{AuthConfig, OAuthUris, SofaConfig, url_allowed};
use crate::store::Store;

/// Paths of the authorization server's endpoints, relative to the FHIR base.
pub mod paths {
    /// `authorize` (GET and POST).
    pub const AUTHORIZE: &str = "/auth/authorize";
    /// `token`.
    pub const TOKEN: &str = "/auth/token";
    /// `introspect` (RFC 7662).
    pub const INTROSPECT: &str = "/auth/introspect";
    /// The JWKS.
    pub const JWKS: &str = "/auth/jwks";
    /// `revoke` (RFC 7009).
    pub const REVOKE: &str = "/auth/revoke";
}

/// The state every endpoint shares.
pub(crate) struct Inner {
    pub(crate) base_url: String,
    pub(crate) config: AuthConfig,
    /// The SoFA's userless mode (D-18, [`SofaConfig::userless_launches`]).
    pub(crate) userless_launches: bool,
    /// The origins whose pages may call the token and introspection endpoints (REQ SEC-06).
    pub(crate) cors_allowed_origins: Vec<String>,
    /// Each client's budget of token requests (REQ HARD-04).
    pub(crate) client_limit: crate::limits::Limiter,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) keys: RwLock<Arc<KeyRing>>,
    /// When the keys were last read from the store (real time: it paces store reads).
    pub(crate) keys_read_at: Mutex<Instant>,
    pub(crate) clients: ClientLookup,
    pub(crate) users: Arc<dyn UserAuthenticator>,
    /// Fetched client JWKS by URL, with when they were fetched.
    pub(crate) jwks_cache: Mutex<HashMap<String, (Instant, Value)>>,
    pub(crate) http: reqwest::Client,
}

impl Inner {
    pub(crate) fn keys(&self) -> Arc<KeyRing> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The keys, read again from the store when the last read is older than
    /// [`AuthConfig::key_refresh_interval`] (or one second with `unknown_kid`: a token names a
    /// key this instance has not seen, perhaps rotated in by another). A failed read keeps the
    /// keys held and is logged.
    pub(crate) async fn fresh_keys(&self, unknown_kid: bool) -> Arc<KeyRing> {
        let interval = if unknown_kid {
            Duration::from_secs(1).min(self.config.key_refresh_interval)
        } else {
            self.config.key_refresh_interval
        };
        let due = {
            let mut read_at = self
                .keys_read_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let due = read_at.elapsed() >= interval;
            if due {
                // Claimed before the read, so concurrent requests do not all read.
                *read_at = Instant::now();
            }
            due
        };
        if due {
            let held = self.keys();
            let protector = self.config.key_protector.as_deref();
            match held
                .reload(self.store.as_ref(), protector, self.clock.now())
                .await
            {
                Ok(ring) => {
                    *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(ring);
                }
                Err(e) => tracing::warn!(error = %e, "the signing keys could not be re-read"),
            }
        }
        self.keys()
    }

    /// The registered client with this id: configured, or registered at run time in the
    /// store (REQ OPS-05); a client disabled in the store is `None`.
    pub(crate) async fn client(
        &self,
        client_id: &str,
    ) -> Result<Option<RegisteredClient>, crate::store::StoreError> {
        self.clients.get(self.store.as_ref(), client_id).await
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}

/// Why the authorization server could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuthServerError {
    /// Keys could not be loaded or generated.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// The issuer is not https outside development mode (REQ SEC-04).
    #[error("the issuer {0} must be https (http only on loopback in development mode)")]
    Issuer(String),
    /// The outbound HTTP client could not be built.
    #[error("the HTTP client could not be built: {0}")]
    Http(String),
}

/// The SoFA's SMART authorization server.
///
/// ```no_run
/// use std::sync::Arc;
/// use halo_sofa_server::auth::{AesGcmKek, AuthServer, AutoApprove, ClientRegistry};
/// use halo_sofa_server::clock::SystemClock;
/// use halo_sofa_server::config::{AuthConfig, SofaConfig};
/// use halo_sofa_server::sofa::Sofa;
/// use halo_sofa_server::store::{MemoryStore, Store};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let mut config = SofaConfig::new("https://sofa.example.org/fhir")?;
/// config.oauth = Some(AuthServer::oauth_uris(&config.base_url));
/// let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
/// let auth_config = AuthConfig {
///     // Signing keys are stored sealed under it (REQ IDP-06).
///     key_protector: Some(Arc::new(AesGcmKek::from_file("/run/secrets/sofa-kek")?)),
///     ..AuthConfig::default()
/// };
/// let auth = AuthServer::start(
///     &config,
///     auth_config,
///     store.clone(),
///     Arc::new(SystemClock),
///     ClientRegistry::new(),
///     Arc::new(AutoApprove::new("dr-a", None)),
/// )
/// .await?;
/// let sofa = Sofa::builder(config)
///     .store(store)
///     .token_validator(auth.token_validator())
///     .mount(auth.router(), |_| {})
///     .build()?;
/// # let _ = sofa; Ok(()) }
/// ```
#[derive(Clone)]
pub struct AuthServer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthServer")
            .field("issuer", &self.inner.base_url)
            .finish_non_exhaustive()
    }
}

impl AuthServer {
    /// Starts the server: loads the signing keys from the store, generating them on first start.
    pub async fn start(
        sofa: &SofaConfig,
        config: AuthConfig,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        clients: ClientRegistry,
        users: Arc<dyn UserAuthenticator>,
    ) -> Result<AuthServer, AuthServerError> {
        // Outside development mode the keys are never stored in clear (REQ IDP-06).
        if config.key_protector.is_none() && !config.development_mode {
            return Err(AuthServerError::Keys(KeyError::Protection(
                "outside development mode the signing keys must be encrypted: configure a \
                 key-encryption key"
                    .into(),
            )));
        }
        if !url_allowed(&sofa.base_url, config.development_mode) {
            return Err(AuthServerError::Issuer(sofa.base_url.clone()));
        }
        let keys =
            KeyRing::load_or_generate(store.as_ref(), config.key_protector.as_deref(), clock.now())
                .await?;
        // Client JWKS URLs come with client registrations: fetched only from addresses the
        // server may reach, checked after resolution (REQ HARD-03).
        let http = crate::outbound::client_builder(config.development_mode)
            .timeout(config.outbound_timeout)
            .build()
            .map_err(|e| AuthServerError::Http(e.to_string()))?;
        let clients = ClientLookup::new(clients, config.client_refresh_interval);
        Ok(AuthServer {
            inner: Arc::new(Inner {
                base_url: sofa.base_url.clone(),
                config,
                userless_launches: sofa.userless_launches,
                cors_allowed_origins: sofa.cors_allowed_origins.clone(),
                client_limit: crate::limits::Limiter::new(sofa.rate_limits.per_client),
                store,
                clock,
                keys: RwLock::new(Arc::new(keys)),
                keys_read_at: Mutex::new(Instant::now()),
                clients,
                users,
                jwks_cache: Mutex::new(HashMap::new()),
                http,
            }),
        })
    }

    /// The endpoints to advertise in the CapabilityStatement for a server at `base_url`.
    pub fn oauth_uris(base_url: &str) -> OAuthUris {
        let base = base_url.trim_end_matches('/');
        OAuthUris {
            authorize: format!("{base}{}", paths::AUTHORIZE),
            token: format!("{base}{}", paths::TOKEN),
            introspect: Some(format!("{base}{}", paths::INTROSPECT)),
            revoke: Some(format!("{base}{}", paths::REVOKE)),
        }
    }

    /// The bearer-token check for access tokens this server issued (D-12): signature, issuer,
    /// audience, expiry, and the launch still live.
    pub fn token_validator(&self) -> Arc<dyn TokenValidator> {
        Arc::new(BuiltinTokens::new(self.inner.clone()))
    }

    /// Rotates the key for `key_use` (REQ IDP-06): the new key is in the JWKS at once and signs
    /// after [`AuthConfig::key_activation_delay`]; the old one signs until then and stays in
    /// the JWKS until its last token has expired. Other instances see it at their next read of
    /// the keys.
    pub async fn rotate_keys(&self, key_use: KeyUse) -> Result<(), KeyError> {
        let ring = KeyRing::rotate(
            self.inner.store.as_ref(),
            self.inner.config.key_protector.as_deref(),
            key_use,
            self.inner.clock.now(),
            self.rotation(),
        )
        .await?;
        *self
            .inner
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(ring);
        Ok(())
    }

    /// The schedule [`rotate_keys`](Self::rotate_keys) follows: this server's activation delay,
    /// and its token lifetime (access tokens and id_tokens live as long).
    pub fn rotation(&self) -> Rotation {
        Rotation {
            activation_delay: self.inner.config.key_activation_delay,
            token_lifetime: self.inner.config.access_token_ttl,
        }
    }

    /// The public JWKS, as last read from the store.
    pub fn jwks(&self) -> Value {
        self.inner.keys().jwks(self.inner.clock.now())
    }

    /// The routes, relative to the FHIR base: discovery and the JWKS (any origin, [`crate::cors::open`]),
    /// token, introspection and revocation (the registered origins only, [`crate::cors::registered`], REQ
    /// SEC-06), and authorize (a browser navigation, no CORS).
    pub fn router(&self) -> Router {
        let discovery = Router::new()
            .route("/.well-known/smart-configuration", get(smart_configuration))
            .route(
                "/.well-known/openid-configuration",
                get(openid_configuration),
            )
            .route(paths::JWKS, get(jwks))
            .layer(crate::cors::open());
        let credentials = Router::new()
            .route(paths::TOKEN, axum::routing::post(token::token))
            .route(
                paths::INTROSPECT,
                axum::routing::post(introspect::introspect),
            )
            .route(paths::REVOKE, axum::routing::post(revoke::revoke))
            .layer(crate::cors::registered(&self.inner.cors_allowed_origins));
        Router::new()
            .route(
                paths::AUTHORIZE,
                get(authorize::authorize_get).post(authorize::authorize_post),
            )
            .merge(discovery)
            .merge(credentials)
            .with_state(self.inner.clone())
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
}

/// Token and introspection answers must not be cached (REQ AS-06).
pub(crate) fn no_store(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::PRAGMA, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// An RFC 6749 §5.2 error answer to a client's request, with no-store headers. A 401 carries a
/// `Basic` challenge only when the client tried HTTP Basic (§5.2): a challenge to a client that
/// authenticated otherwise makes some clients (openid-client) hide the error description.
pub(crate) fn oauth_error(headers: &HeaderMap, error: &halo_model::oauth::OAuthError) -> Response {
    // The server's own trouble is not the client's error: a store that is busy or down is a
    // 503 the client may retry, a failure of the server a 500 (RFC 6749 leaves both to the host).
    let status = match error.error {
        OAuthErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        OAuthErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
    };
    let mut response = no_store(status, error.to_json());
    let tried_basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.len() >= 6 && v[..6].eq_ignore_ascii_case("basic "));
    if status == StatusCode::UNAUTHORIZED && tried_basic {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"sofa\""),
        );
    }
    response
}

/// SHA-256, base64url: how codes and refresh tokens are stored (never themselves).
pub(crate) fn hash_secret(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

/// 32 random bytes, base64url: codes, refresh tokens, token ids.
pub(crate) fn random_token() -> Result<String, halo_model::oauth::OAuthError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|_| halo_model::oauth::OAuthError::server_error("no randomness available"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// `GET /.well-known/smart-configuration` (REQ AS-01).
async fn smart_configuration(
    axum::extract::State(inner): axum::extract::State<Arc<Inner>>,
) -> Response {
    let body = json!({
        "issuer": inner.base_url,
        "jwks_uri": inner.url(paths::JWKS),
        "authorization_endpoint": inner.url(paths::AUTHORIZE),
        "token_endpoint": inner.url(paths::TOKEN),
        "introspection_endpoint": inner.url(paths::INTROSPECT),
        "revocation_endpoint": inner.url(paths::REVOKE),
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic", "client_secret_post", "private_key_jwt"
        ],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": [
            "openid", "fhirUser", "launch", "offline_access", "online_access",
            "patient/*.cruds", "user/*.cruds", "patient/*.read", "user/*.read",
            "patient/*.write", "user/*.write", "Context.write"
        ],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": [
            "launch-ehr", "authorize-post", "client-public", "client-confidential-symmetric",
            "client-confidential-asymmetric", "sso-openid-connect", "context-ehr-patient",
            "context-ehr-encounter", "context-banner", "context-style", "permission-offline",
            "permission-online", "permission-patient", "permission-user", "permission-v1",
            "permission-v2"
        ],
    });
    json_response(StatusCode::OK, &advertise_mutual_tls(&inner, body))
}

/// With mutual TLS on (REQ OPS-03, RFC 8705 §2.3, §3.3): `tls_client_auth` among the token
/// endpoint's methods, and certificate-bound access tokens.
fn advertise_mutual_tls(inner: &Inner, mut body: Value) -> Value {
    if inner.config.mutual_tls {
        if let Some(methods) = body["token_endpoint_auth_methods_supported"].as_array_mut() {
            methods.push(json!("tls_client_auth"));
        }
        body["tls_client_certificate_bound_access_tokens"] = json!(true);
    }
    body
}

/// `GET /.well-known/openid-configuration` (REQ AS-02).
async fn openid_configuration(
    axum::extract::State(inner): axum::extract::State<Arc<Inner>>,
) -> Response {
    let body = json!({
        "issuer": inner.base_url,
        "authorization_endpoint": inner.url(paths::AUTHORIZE),
        "token_endpoint": inner.url(paths::TOKEN),
        "introspection_endpoint": inner.url(paths::INTROSPECT),
        "revocation_endpoint": inner.url(paths::REVOKE),
        "jwks_uri": inner.url(paths::JWKS),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic", "client_secret_post", "private_key_jwt"
        ],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "fhirUser"],
        "scopes_supported": ["openid", "fhirUser"],
        "code_challenge_methods_supported": ["S256"],
    });
    json_response(StatusCode::OK, &advertise_mutual_tls(&inner, body))
}

/// `GET /auth/jwks` (REQ AS-02).
async fn jwks(axum::extract::State(inner): axum::extract::State<Arc<Inner>>) -> Response {
    let keys = inner.fresh_keys(false).await;
    json_response(StatusCode::OK, &keys.jwks(inner.clock.now()))
}

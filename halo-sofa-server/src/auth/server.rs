//! The built-in SMART authorization server: its shared state, routes and discovery documents
//! (REQ AS-01, AS-02).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

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
use super::clients::ClientRegistry;
use super::keys::{KeyError, KeyRing, KeyUse};
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
    pub(crate) clients: ClientRegistry,
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
/// use halo_sofa_server::auth::{AuthServer, AutoApprove, ClientRegistry};
/// use halo_sofa_server::clock::SystemClock;
/// use halo_sofa_server::config::{AuthConfig, SofaConfig};
/// use halo_sofa_server::http::Sofa;
/// use halo_sofa_server::store::{MemoryStore, Store};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let mut config = SofaConfig::new("https://sofa.example.org/fhir")?;
/// config.oauth = Some(AuthServer::oauth_uris(&config.base_url));
/// let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
/// let auth = AuthServer::start(
///     &config,
///     AuthConfig::default(),
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
        if !url_allowed(&sofa.base_url, config.development_mode) {
            return Err(AuthServerError::Issuer(sofa.base_url.clone()));
        }
        let keys = KeyRing::load_or_generate(store.as_ref(), clock.now()).await?;
        // Client JWKS URLs come with client registrations: fetched only from addresses the
        // server may reach, checked after resolution (REQ HARD-03).
        let http = crate::outbound::client_builder(config.development_mode)
            .timeout(config.outbound_timeout)
            .build()
            .map_err(|e| AuthServerError::Http(e.to_string()))?;
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

    /// Retires the current key for `key_use` and signs with a new one from now on; the old key
    /// stays in the JWKS so tokens it signed keep verifying.
    pub async fn rotate_keys(&self, key_use: KeyUse) -> Result<(), KeyError> {
        let ring =
            KeyRing::rotate(self.inner.store.as_ref(), key_use, self.inner.clock.now()).await?;
        *self
            .inner
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(ring);
        Ok(())
    }

    /// The public JWKS.
    pub fn jwks(&self) -> Value {
        self.inner.keys().jwks()
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
    json_response(StatusCode::OK, &inner.keys().jwks())
}

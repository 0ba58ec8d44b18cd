//! The built-in SMART authorization server: its shared state, routes and discovery documents
//! (REQ AS-01, AS-02).

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::answers::json_response;
use super::authorize::Authorizer;
use super::builtin::{BuiltinTokens, TokenVerifier};
use super::caller::TokenValidator;
use super::client_auth::ClientAuthenticator;
use super::clients::{ClientLookup, ClientRegistry};
use super::decide::credentials::AssertionAudience;
use super::decide::tokens::TokenSettings;
use super::families::Families;
use super::introspect::Introspection;
use super::keys::{KeyError, KeyRing, KeyUse, Rotation};
use super::paths;
use super::revoke::Revocation;
use super::signing::SigningKeys;
use super::token::TokenEndpoint;
use super::users::UserAuthenticator;
use super::{authorize, introspect, revoke, token};
use crate::clock::Clock;
use crate::config::{AuthConfig, OAuthUris, SofaConfig, url_allowed};
use crate::store::Store;

/// What the discovery documents and the JWKS endpoint need.
struct Discovery {
    base_url: String,
    mutual_tls: bool,
    keys: Arc<SigningKeys>,
}

impl Discovery {
    fn url(&self, path: &str) -> String {
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
///     .authorization(&auth)
///     .build()?;
/// # let _ = sofa; Ok(()) }
/// ```
///
/// Each endpoint owns the state it needs (the authorize endpoint, the token endpoint,
/// introspection, revocation, discovery); what several share (the signing keys, the client
/// registry and authenticator, the token verifier) is built once here and handed to each.
#[derive(Clone)]
pub struct AuthServer {
    discovery: Arc<Discovery>,
    keys: Arc<SigningKeys>,
    verifier: Arc<TokenVerifier>,
    authorizer: Arc<Authorizer>,
    tokens: Arc<TokenEndpoint>,
    introspection: Arc<Introspection>,
    revocation: Arc<Revocation>,
    cors_allowed_origins: Vec<String>,
}

impl std::fmt::Debug for AuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthServer")
            .field("issuer", &self.discovery.base_url)
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
        let issuer = sofa.base_url.clone();
        let url = |path: &str| format!("{issuer}{path}");
        let keys = Arc::new(SigningKeys::new(
            keys,
            store.clone(),
            clock.clone(),
            config.key_protector.clone(),
            config.key_refresh_interval,
            Rotation {
                activation_delay: config.key_activation_delay,
                token_lifetime: config.access_token_ttl,
            },
        ));
        let verifier = Arc::new(TokenVerifier::new(
            issuer.clone(),
            keys.clone(),
            store.clone(),
            clock.clone(),
        ));
        let registry = Arc::new(ClientLookup::new(
            clients,
            store.clone(),
            config.client_refresh_interval,
        ));
        let clients = Arc::new(ClientAuthenticator::new(
            registry.clone(),
            store.clone(),
            clock.clone(),
            AssertionAudience {
                token_url: url(paths::TOKEN),
                issuer: issuer.clone(),
                max_lifetime: config.assertion_max_lifetime,
            },
            http,
            config.jwks_cache_ttl,
            config.development_mode,
        ));
        let families = Families::new(store.clone(), clock.clone(), config.access_token_ttl);
        Ok(AuthServer {
            discovery: Arc::new(Discovery {
                base_url: issuer.clone(),
                mutual_tls: config.mutual_tls,
                keys: keys.clone(),
            }),
            authorizer: Arc::new(Authorizer {
                issuer: issuer.clone(),
                action: url(paths::AUTHORIZE),
                code_ttl: config.code_ttl,
                userless_launches: sofa.userless_launches,
                clients: registry,
                users,
                store: store.clone(),
                clock: clock.clone(),
            }),
            tokens: Arc::new(TokenEndpoint {
                settings: TokenSettings {
                    issuer: issuer.clone(),
                    access_ttl: config.access_token_ttl,
                    refresh_ttl: config.refresh_token_ttl,
                },
                clients: clients.clone(),
                keys: keys.clone(),
                families: families.clone(),
                client_limit: crate::limits::Limiter::new(sofa.rate_limits.per_client),
                store,
                clock,
            }),
            introspection: Arc::new(Introspection {
                clients: clients.clone(),
                verifier: verifier.clone(),
            }),
            revocation: Arc::new(Revocation {
                clients,
                verifier: verifier.clone(),
                families,
            }),
            keys,
            verifier,
            cors_allowed_origins: sofa.cors_allowed_origins.clone(),
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
        Arc::new(BuiltinTokens::new(self.verifier.clone()))
    }

    /// Rotates the key for `key_use` (REQ IDP-06): the new key is in the JWKS at once and signs
    /// after [`AuthConfig::key_activation_delay`]; the old one signs until then and stays in
    /// the JWKS until its last token has expired. Other instances see it at their next read of
    /// the keys.
    pub async fn rotate_keys(&self, key_use: KeyUse) -> Result<(), KeyError> {
        self.keys.rotate(key_use).await
    }

    /// The schedule [`rotate_keys`](Self::rotate_keys) follows: this server's activation delay,
    /// and its token lifetime (access tokens and id_tokens live as long).
    pub fn rotation(&self) -> Rotation {
        self.keys.rotation()
    }

    /// The public JWKS, as last read from the store.
    pub fn jwks(&self) -> Value {
        self.keys.jwks()
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
            .with_state(self.discovery.clone())
            .layer(crate::cors::open());
        let credentials = Router::new()
            .route(paths::TOKEN, axum::routing::post(token::token))
            .with_state(self.tokens.clone())
            .merge(
                Router::new()
                    .route(
                        paths::INTROSPECT,
                        axum::routing::post(introspect::introspect),
                    )
                    .with_state(self.introspection.clone()),
            )
            .merge(
                Router::new()
                    .route(paths::REVOKE, axum::routing::post(revoke::revoke))
                    .with_state(self.revocation.clone()),
            )
            .layer(crate::cors::registered(&self.cors_allowed_origins));
        Router::new()
            .route(
                paths::AUTHORIZE,
                get(authorize::authorize_get).post(authorize::authorize_post),
            )
            .with_state(self.authorizer.clone())
            .merge(discovery)
            .merge(credentials)
    }
}

/// `GET /.well-known/smart-configuration` (REQ AS-01).
async fn smart_configuration(
    axum::extract::State(discovery): axum::extract::State<Arc<Discovery>>,
) -> Response {
    let body = json!({
        "issuer": discovery.base_url,
        "jwks_uri": discovery.url(paths::JWKS),
        "authorization_endpoint": discovery.url(paths::AUTHORIZE),
        "token_endpoint": discovery.url(paths::TOKEN),
        "introspection_endpoint": discovery.url(paths::INTROSPECT),
        "revocation_endpoint": discovery.url(paths::REVOKE),
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
    json_response(StatusCode::OK, &advertise_mutual_tls(&discovery, body))
}

/// With mutual TLS on (REQ OPS-03, RFC 8705 §2.3, §3.3): `tls_client_auth` among the token
/// endpoint's methods, and certificate-bound access tokens.
fn advertise_mutual_tls(discovery: &Discovery, mut body: Value) -> Value {
    if discovery.mutual_tls {
        if let Some(methods) = body["token_endpoint_auth_methods_supported"].as_array_mut() {
            methods.push(json!("tls_client_auth"));
        }
        body["tls_client_certificate_bound_access_tokens"] = json!(true);
    }
    body
}

/// `GET /.well-known/openid-configuration` (REQ AS-02).
async fn openid_configuration(
    axum::extract::State(discovery): axum::extract::State<Arc<Discovery>>,
) -> Response {
    let body = json!({
        "issuer": discovery.base_url,
        "authorization_endpoint": discovery.url(paths::AUTHORIZE),
        "token_endpoint": discovery.url(paths::TOKEN),
        "introspection_endpoint": discovery.url(paths::INTROSPECT),
        "revocation_endpoint": discovery.url(paths::REVOKE),
        "jwks_uri": discovery.url(paths::JWKS),
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
    json_response(StatusCode::OK, &advertise_mutual_tls(&discovery, body))
}

/// `GET /auth/jwks` (REQ AS-02).
async fn jwks(axum::extract::State(discovery): axum::extract::State<Arc<Discovery>>) -> Response {
    discovery.keys.fresh(false).await;
    json_response(StatusCode::OK, &discovery.keys.jwks())
}

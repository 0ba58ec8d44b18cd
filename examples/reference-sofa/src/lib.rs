//! The HALO reference SoFA: every part of `halo-sofa-server` assembled into one server, plus a
//! jurisdictional App Catalog, configured from one TOML file (REQ EX-01).
//!
//! What it serves, under the root URL:
//!
//! | path | what |
//! |---|---|
//! | `/fhir/metadata`, `/fhir/$set-context`, `/fhir/$clear-context` | the Context Manager |
//! | `/fhir/.well-known/smart-configuration`, `/fhir/auth/...` | the SMART authorization server |
//! | `/fhir/Patient/...`, `/fhir/Observation`, ... | the resource server apps read and write |
//! | `/fhir/Subscription...`, the websocket | subscriptions, delivered before commit (D-08) |
//! | `/catalog` | the App Catalog, validated at start |
//! | `/healthz`, `/readyz` | liveness and readiness probes (OPS-01) |
//! | `/metrics`, on `metrics_listen` only | Prometheus metrics (OPS-02) |
//!
//! With a `[tls]` table it listens with HTTPS, and with mutual TLS for the clients registered
//! with a certificate when `tls.client_ca_file` is set (OPS-03).
//!
//! ```no_run
//! # async fn run() -> Result<(), reference_sofa::Error> {
//! let config = reference_sofa::Config::from_file("examples/reference-sofa/sofa.toml")?;
//! let sofa = reference_sofa::ReferenceSofa::start(config).await?;
//! println!("FHIR base: {}", sofa.fhir_base);
//! sofa.shutdown().await;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::MatchedPath;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;
use halo_catalog::{Catalog, Mode};
use halo_model::set_context::SupportedTypes;
use halo_sofa_server::audit::{FanOutAuditSink, StoreAuditSink, TracingAuditSink};
use halo_sofa_server::auth::RateLimitedTokens;
use halo_sofa_server::auth::{
    AuthServer, AuthServerError, AutoApprove, DevLogin, FirstValid, KeyError, TokenValidator,
    UserAuthenticator,
};
use halo_sofa_server::clock::SystemClock;
use halo_sofa_server::config::{AuthConfig, Rate, RateLimits, SofaConfig};
use halo_sofa_server::health::Readiness;
use halo_sofa_server::sofa::Sofa;
use halo_sofa_server::store::{MemoryStore, PostgresOptions, PostgresStore, SqliteStore, Store};
use halo_sofa_server::subscriptions::SubscriptionSettings;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub mod admin;
mod federated;
mod metrics;
mod overrides;
mod registry;
mod serve;
mod tls;

pub use metrics::METRICS_PATH;
pub use overrides::{ENV_PREFIX, REDACTED, redact_url};
pub use registry::registered_client;
pub use tls::TlsConfig;

/// The path the FHIR API is nested under.
pub const FHIR_PATH: &str = "/fhir";
/// The path of the App Catalog.
pub const CATALOG_PATH: &str = "/catalog";
/// The `database` value that keeps everything in memory (lost at exit).
pub const IN_MEMORY: &str = ":memory:";

/// Why the reference SoFA could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file could not be read or is not valid.
    #[error("configuration: {0}")]
    Config(String),
    /// The App Catalog could not be read or has errors.
    #[error("App Catalog: {0}")]
    Catalog(String),
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(String),
    /// The authorization server could not start.
    #[error("authorization server: {0}")]
    Auth(String),
    /// The listening socket could not be opened.
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
}

/// The whole configuration, as read from `sofa.toml` (see the documented sample next to this
/// crate's manifest).
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The socket address to listen on; port 0 picks a free port.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The root URL clients reach the server at (no trailing slash); by default
    /// `http://<listen address>`. The FHIR base is this plus `/fhir`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Where contexts, resources, subscriptions, tokens and the signing keys live: an SQLite
    /// file (the default, one instance), a PostgreSQL URL `postgres://user:password@host/db`
    /// (several instances behind a load balancer; add `?sslmode=require` for TLS), or
    /// `:memory:`.
    #[serde(default = "default_database")]
    pub database: PathBuf,
    /// The App Catalog served at `/catalog`: a path to a JSON file, or the entries inline.
    #[serde(default)]
    pub catalog: Option<CatalogSource>,
    /// Who is at the browser during authorization.
    #[serde(default)]
    pub login: Login,
    /// The users of the development login page (`login.mode = "dev-login"`).
    #[serde(default)]
    pub users: Vec<User>,
    /// Userless mode (D-18): `$set-context` accepts a PoC token that names no user
    /// (`client_credentials`), and any user who signs in at the app's authorization may
    /// redeem such a launch. Off by default: a launch belongs to the clinician the PoC signed
    /// in. Only for an installation whose PoC cannot sign its clinicians in.
    #[serde(default)]
    pub userless_launches: bool,
    /// The registered OAuth clients: SMART apps and PoCs.
    #[serde(default)]
    pub clients: Vec<Client>,
    /// Lifetimes and timeouts.
    #[serde(default)]
    pub lifetimes: Lifetimes,
    /// The resource types `$set-context` accepts; the D-14 list when absent.
    #[serde(default)]
    pub supported_types: Option<Vec<String>>,
    /// Development mode: plain http is accepted on loopback (issuer, rest-hook endpoints,
    /// JWKS URLs). Never in production.
    #[serde(default)]
    pub development_mode: bool,
    /// Browser origins allowed to call `$set-context` (web-based PoCs).
    #[serde(default)]
    pub cors_allowed_origins: Vec<String>,
    /// How long a store transaction waits for SQLite's write lock, or for a PostgreSQL
    /// connection or row lock, before the request is answered 503 (5 000 ms when absent).
    #[serde(default)]
    pub database_busy_timeout_ms: Option<u64>,
    /// PostgreSQL connections this instance keeps (16 when absent).
    #[serde(default)]
    pub database_pool_size: Option<usize>,
    /// The PostgreSQL schema for the tables (created when missing); the role's default when
    /// absent. Every instance of one SoFA names the same.
    #[serde(default)]
    pub database_schema: Option<String>,
    /// How log lines are written: `text` (the default, for a terminal) or `json` (one object a
    /// line, for a log collector).
    #[serde(default)]
    pub log_format: LogFormat,
    /// Rate limits (HARD-04).
    #[serde(default)]
    pub limits: Limits,
    /// Where `GET /metrics` (Prometheus text format, OPS-02) is served: its own address, so
    /// it is never public. Off when absent; keep it on loopback or a private network.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// TLS, and optionally mutual TLS for clients (OPS-03). Plain HTTP when absent.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// A file holding the key-encryption key of the token-signing keys: base64 of 32 random
    /// bytes (`openssl rand -base64 32`), e.g. a mounted secret (REQ IDP-06). Required outside
    /// development mode, unless `key_encryption_key_env` is given.
    #[serde(default)]
    pub key_encryption_key_file: Option<PathBuf>,
    /// The environment variable holding the key-encryption key instead.
    #[serde(default)]
    pub key_encryption_key_env: Option<String>,
}

/// Rate limits (HARD-04): a steady rate per second and a burst, per client address (writes,
/// `$set-context`, token, revocation, introspection, authorize) and per authenticated client
/// (every request its tokens make, its token requests). A rate of `0` turns that limit off.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Requests per second from one address.
    pub per_address_per_second: u32,
    /// Requests at once from one address above that rate.
    pub per_address_burst: u32,
    /// Requests per second by one client.
    pub per_client_per_second: u32,
    /// Requests at once by one client above that rate.
    pub per_client_burst: u32,
    /// A header your own proxy appends the client address to (`x-forwarded-for`); its last
    /// entry is the address. Absent: the TCP peer. Never name a header a client could set
    /// unchecked.
    pub address_header: Option<String>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            per_address_per_second: 100,
            per_address_burst: 500,
            per_client_per_second: 200,
            per_client_burst: 1000,
            address_header: None,
        }
    }
}

impl Limits {
    fn rate_limits(&self) -> RateLimits {
        RateLimits {
            per_address: Rate::new(self.per_address_per_second, self.per_address_burst),
            per_client: Rate::new(self.per_client_per_second, self.per_client_burst),
            address_header: self.address_header.clone(),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object a line (tracing-subscriber's json formatter).
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<LogFormat, String> {
        match text {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("`{other}` is not a log format (text or json)")),
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: default_listen(),
            public_url: None,
            database: default_database(),
            catalog: None,
            login: Login::default(),
            users: Vec::new(),
            userless_launches: false,
            clients: Vec::new(),
            lifetimes: Lifetimes::default(),
            supported_types: None,
            development_mode: false,
            cors_allowed_origins: Vec::new(),
            database_busy_timeout_ms: None,
            database_pool_size: None,
            database_schema: None,
            log_format: LogFormat::default(),
            limits: Limits::default(),
            metrics_listen: None,
            tls: None,
            key_encryption_key_file: None,
            key_encryption_key_env: None,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_database() -> PathBuf {
    PathBuf::from("sofa.db")
}

impl Config {
    /// Reads a TOML configuration; relative `database` and `catalog` paths are taken relative
    /// to the file's directory, so the server behaves the same from any working directory.
    ///
    /// The process's `HALO_SOFA__...` variables override the file's keys, and secrets are read
    /// from the files and variables the file names (REQ OPS-04; see
    /// [`from_file_with_env`](Self::from_file_with_env)).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, Error> {
        Config::from_file_with_env(path, &process_env())
    }

    /// [`from_file`](Self::from_file) with the environment given as `(name, value)` pairs.
    ///
    /// A variable `HALO_SOFA__<KEY>` sets `<key>` (lowercased), `__` separating nested keys
    /// and an index choosing an element of an array of tables
    /// (`HALO_SOFA__LIFETIMES__LAUNCH_SECS=600`, `HALO_SOFA__CLIENTS__0__SECRET=...`); its
    /// text is read as a TOML value, or as a string when it is not one. A client's
    /// `secret_file` / `secret_env` and a user's `password_file` / `password_env` name where
    /// the secret is. A secret written in the file itself is refused unless
    /// `development_mode` is on.
    pub fn from_file_with_env(
        path: impl AsRef<Path>,
        env: &[(String, String)],
    ) -> Result<Config, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut config = Config::from_toml_with_env(&text, dir, env)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        if config.database != Path::new(IN_MEMORY)
            && config.database_url().is_none()
            && config.database.is_relative()
        {
            config.database = dir.join(&config.database);
        }
        if let Some(tls) = &mut config.tls {
            tls.relative_to(dir);
        }
        if let Some(CatalogSource::File(file)) = &mut config.catalog
            && file.is_relative()
        {
            *file = dir.join(&*file);
        }
        if let Some(file) = &mut config.key_encryption_key_file
            && file.is_relative()
        {
            *file = dir.join(&*file);
        }
        Ok(config)
    }

    /// The PostgreSQL URL when `database` is one.
    pub fn database_url(&self) -> Option<&str> {
        self.database
            .to_str()
            .filter(|d| d.starts_with("postgres://") || d.starts_with("postgresql://"))
    }

    /// Parses a TOML configuration alone (no environment); paths are kept as written.
    pub fn from_toml(text: &str) -> Result<Config, Error> {
        Config::from_toml_with_env(text, Path::new("."), &[])
    }

    /// Parses a TOML configuration, applies the `HALO_SOFA__...` variables of `env` over it and
    /// reads the secrets it names (files relative to `dir`), as
    /// [`from_file_with_env`](Self::from_file_with_env) describes; other paths are kept as
    /// written.
    pub fn from_toml_with_env(
        text: &str,
        dir: &Path,
        env: &[(String, String)],
    ) -> Result<Config, Error> {
        let file: toml::Table = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        let mut table = file.clone();
        overrides::apply_env(&mut table, env)?;
        // The effective mode decides, so a deployment cannot be switched to development by
        // the same file that holds the secret.
        let development_mode = table
            .get("development_mode")
            .and_then(toml::Value::as_bool)
            .unwrap_or(false);
        overrides::refuse_file_secrets(&file, development_mode)?;
        overrides::resolve_secrets(&mut table, dir, env)?;
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| Error::Config(e.to_string()))
    }

    /// The configuration as TOML with every secret replaced by [`REDACTED`]: client secrets,
    /// user passwords and the password of a database URL (`--print-config`).
    pub fn to_redacted_toml(&self) -> Result<String, Error> {
        let mut shown = self.clone();
        for client in &mut shown.clients {
            if client.secret.is_some() {
                client.secret = Some(REDACTED.to_string());
            }
        }
        for user in &mut shown.users {
            user.password = REDACTED.to_string();
        }
        if let Login::Oidc {
            client_secret,
            cookie_key,
            ..
        } = &mut shown.login
        {
            *client_secret = REDACTED.to_string();
            if cookie_key.is_some() {
                *cookie_key = Some(REDACTED.to_string());
            }
        }
        if let Some(url) = shown.database.to_str() {
            shown.database = PathBuf::from(redact_url(url));
        }
        toml::to_string(&shown).map_err(|e| Error::Config(e.to_string()))
    }
}

/// The process's variables that are valid Unicode (the others cannot be configuration).
fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .collect()
}

/// Where the App Catalog comes from.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum CatalogSource {
    /// A JSON file: an array of app entries (the HALO App Catalog format).
    File(PathBuf),
    /// The entries themselves (what a program assembling the server passes).
    Inline(serde_json::Value),
}

/// How the authorization server decides who is at the browser.
#[derive(Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(tag = "mode", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Login {
    /// A login form for the configured `users`.
    #[default]
    DevLogin,
    /// Everyone is signed in as `user`, with no page shown: automated tests and demos only.
    AutoApprove {
        /// The user id (compared with the user that set a launch, when it set one).
        user: String,
        /// The user's FHIR resource, e.g. `Practitioner/123`.
        #[serde(default)]
        fhir_user: Option<String>,
    },
    /// Federated login (D-19, REQ IDP-03): the clinician signs in at the jurisdiction's
    /// OpenID provider, the one the PoC signs them in at, and stays signed in for the session.
    Oidc {
        /// The provider's issuer (discovery at `{issuer}/.well-known/openid-configuration`).
        issuer: String,
        /// The SoFA's client id at the provider; register `<FHIR base>/auth/oidc/callback` as
        /// its redirect URI there.
        client_id: String,
        /// The client secret (a secret: `client_secret_file`, `client_secret_env` or
        /// `HALO_SOFA__LOGIN__CLIENT_SECRET` outside development).
        client_secret: String,
        /// The 32-byte key the session cookies are sealed with, base64url (a secret, as
        /// above: `cookie_key_file`, `cookie_key_env`). Every instance of one SoFA shares it;
        /// without one a random key is made at start (sessions end with the process).
        #[serde(default)]
        cookie_key: Option<String>,
        /// The scopes asked for (`openid fhirUser` by default).
        #[serde(default)]
        scopes: Option<String>,
        /// The id_token claim that is the user id (`sub` by default): the one the PoC's
        /// token names the clinician with, since a launch belongs to that id.
        #[serde(default)]
        user_claim: Option<String>,
        /// The id_token claim that is the user's FHIR resource (`fhirUser` by default).
        #[serde(default)]
        fhir_user_claim: Option<String>,
        /// How long a sign-in lasts at the SoFA, in seconds (8 hours by default).
        #[serde(default)]
        session_secs: Option<u64>,
        /// Whether `$set-context` also accepts the provider's JWT access tokens issued for
        /// this FHIR base (a resource indicator): how a PoC calls with the token of the
        /// clinician it signed in at the same provider. On by default.
        #[serde(default = "yes")]
        accept_access_tokens: bool,
        /// Where the provider sends the browser after logout (registered there).
        #[serde(default)]
        post_logout_redirect_uri: Option<String>,
    },
}

fn yes() -> bool {
    true
}

impl Login {
    /// Federated login at `issuer` as `client_id`, every other setting at its default (a
    /// random cookie key: sessions end with the process).
    pub fn oidc(issuer: &str, client_id: &str, client_secret: &str) -> Login {
        Login::Oidc {
            issuer: issuer.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            cookie_key: None,
            scopes: None,
            user_claim: None,
            fhir_user_claim: None,
            session_secs: None,
            accept_access_tokens: true,
            post_logout_redirect_uri: None,
        }
    }
}

impl std::fmt::Debug for Login {
    // SEC-01: the OpenID client secret and cookie key stay out of Debug lines.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Login::DevLogin => f.write_str("DevLogin"),
            Login::AutoApprove { user, fhir_user } => f
                .debug_struct("AutoApprove")
                .field("user", user)
                .field("fhir_user", fhir_user)
                .finish(),
            Login::Oidc {
                issuer, client_id, ..
            } => f
                .debug_struct("Oidc")
                .field("issuer", issuer)
                .field("client_id", client_id)
                .finish_non_exhaustive(),
        }
    }
}

impl std::fmt::Debug for Config {
    // A configuration holds secrets (client secrets, passwords, a database URL's password):
    // it prints as its redacted TOML, so a log line never carries one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.to_redacted_toml() {
            Ok(text) => write!(f, "Config {{\n{text}}}"),
            Err(_) => f.write_str("Config { .. }"),
        }
    }
}

/// A user of the development login page.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The user id.
    pub id: String,
    /// The password (development only; kept in memory as its SHA-256).
    pub password: String,
    /// The user's FHIR resource, e.g. `Practitioner/123`.
    #[serde(default)]
    pub fhir_user: Option<String>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("password", &REDACTED)
            .field("fhir_user", &self.fhir_user)
            .finish_non_exhaustive()
    }
}

/// A registered OAuth client.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Client {
    /// The `client_id`.
    pub id: String,
    /// The client secret of a confidential client (PoCs use `client_credentials`); absent for
    /// a public SMART app (PKCE only).
    #[serde(default)]
    pub secret: Option<String>,
    /// The public keys of a `private_key_jwt` client (RS384 or ES384), inline as a JWK Set:
    /// `jwks = { keys = [{ kty = "EC", crv = "P-384", kid = "...", x = "...", y = "..." }] }`.
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    /// The URL of a `private_key_jwt` client's JWK Set, fetched and cached (https; http on
    /// loopback in development mode).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// The exact redirect URIs of a SMART app.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// The scopes the client may be granted (space-separated).
    pub scopes: String,
    /// The App Catalog entry id of the app, which ties a launch to the app it was set for.
    #[serde(default)]
    pub app_id: Option<String>,
    /// The app's launch URL.
    #[serde(default)]
    pub launch_url: Option<String>,
    /// `tls_client_auth` (RFC 8705, OPS-03): the client authenticates with a client certificate
    /// whose subject DN is this RFC 4514 string (`CN=emr.example.org,O=Example EMR`). Needs
    /// `tls.client_ca_file`; exclusive of `secret` and the other `tls_client_auth_*` keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_subject_dn: Option<String>,
    /// `tls_client_auth` by a dNSName subject alternative name of the certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_dns: Option<String>,
    /// `tls_client_auth` by a URI subject alternative name of the certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_uri: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("secret", &self.secret.as_ref().map(|_| REDACTED))
            .field("redirect_uris", &self.redirect_uris)
            .field("scopes", &self.scopes)
            .field("app_id", &self.app_id)
            .field("jwks_url", &self.jwks_url)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A public SMART app (PKCE, no secret) listed in the catalog as `app_id`, served from
    /// `app_base` with its launch at `{app_base}/launch` and its callback at
    /// `{app_base}/callback`.
    pub fn public_app(id: &str, app_id: &str, app_base: &str, scopes: &str) -> Client {
        Client {
            id: id.to_string(),
            secret: None,
            jwks: None,
            jwks_url: None,
            redirect_uris: vec![format!("{app_base}/callback")],
            scopes: scopes.to_string(),
            app_id: Some(app_id.to_string()),
            launch_url: Some(format!("{app_base}/launch")),
            tls_client_auth_subject_dn: None,
            tls_client_auth_san_dns: None,
            tls_client_auth_san_uri: None,
        }
    }

    /// A point of care using `client_credentials` with a secret.
    pub fn point_of_care(id: &str, secret: &str, scopes: &str) -> Client {
        Client {
            id: id.to_string(),
            secret: Some(secret.to_string()),
            jwks: None,
            jwks_url: None,
            redirect_uris: Vec::new(),
            scopes: scopes.to_string(),
            app_id: None,
            launch_url: None,
            tls_client_auth_subject_dn: None,
            tls_client_auth_san_dns: None,
            tls_client_auth_san_uri: None,
        }
    }
}

/// Lifetimes and timeouts, in seconds.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lifetimes {
    /// How long a `$set-context` launch lives (D-05).
    pub launch_secs: u64,
    /// Access token lifetime.
    pub access_token_secs: u64,
    /// Refresh token lifetime (a refresh token also dies with its launch).
    pub refresh_token_secs: u64,
    /// How long a rotated-in signing key is published before it signs (REQ IDP-06).
    pub key_activation_secs: u64,
    /// How often each instance re-reads the signing keys (and sees another's rotation), in
    /// milliseconds (5 000 when absent).
    pub key_refresh_ms: Option<u64>,
    /// How long each instance reuses a client read from the store (one registered or disabled
    /// by `reference-sofa admin`), in milliseconds (5 000 when absent).
    pub client_refresh_ms: Option<u64>,
    /// How often expired launches are purged.
    pub purge_interval_secs: u64,
    /// How long a notification may take when the Subscription sets no `backport-timeout`.
    pub delivery_timeout_secs: u64,
    /// The same in milliseconds, for finer timeouts (loopback tests); wins when set.
    pub delivery_timeout_ms: Option<u64>,
    /// On a shared database, how long past its delivery timeout another instance's write is
    /// given before its unsettled events are taken for a crash's and compensated, in
    /// milliseconds (30 000 when absent).
    pub settle_margin_ms: Option<u64>,
    /// How long a connection may take to send a request's headers, in milliseconds, before it
    /// is closed (10 000 when absent; HARD-04).
    pub header_read_timeout_ms: Option<u64>,
    /// How long a request body may take to arrive, all of it, in milliseconds, before the
    /// answer is 408 (30 000 when absent; HARD-04).
    pub body_read_timeout_ms: Option<u64>,
}

impl Default for Lifetimes {
    fn default() -> Lifetimes {
        Lifetimes {
            launch_secs: 12 * 60 * 60,
            access_token_secs: 60 * 60,
            refresh_token_secs: 12 * 60 * 60,
            key_activation_secs: 5 * 60,
            key_refresh_ms: None,
            client_refresh_ms: None,
            purge_interval_secs: 60,
            delivery_timeout_secs: 10,
            delivery_timeout_ms: None,
            settle_margin_ms: None,
            header_read_timeout_ms: None,
            body_read_timeout_ms: None,
        }
    }
}

/// Starts the reference SoFA.
#[derive(Debug)]
pub struct ReferenceSofa;

impl ReferenceSofa {
    /// Opens the store, loads the catalog and the clients, starts the authorization server,
    /// binds the socket and serves until [`RunningSofa::shutdown`].
    pub async fn start(config: Config) -> Result<RunningSofa, Error> {
        let catalog = load_catalog(config.catalog.as_ref())?;
        // REQ OPS-03: the certificate and key are read before anything listens.
        let tls = config
            .tls
            .as_ref()
            .map(TlsConfig::server_config)
            .transpose()?;
        let mutual_tls = config
            .tls
            .as_ref()
            .is_some_and(|t| t.client_ca_file.is_some());
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let root_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{local_addr}"))
            .trim_end_matches('/')
            .to_string();
        let fhir_base = format!("{root_url}{FHIR_PATH}");

        let mut sofa_config =
            SofaConfig::new(fhir_base.clone()).map_err(|e| Error::Config(e.to_string()))?;
        sofa_config.oauth = Some(AuthServer::oauth_uris(&sofa_config.base_url));
        sofa_config.launch_ttl = Duration::from_secs(config.lifetimes.launch_secs);
        sofa_config.purge_interval = Duration::from_secs(config.lifetimes.purge_interval_secs);
        sofa_config.cors_allowed_origins = config.cors_allowed_origins.clone();
        sofa_config.software_name = "HALO reference SoFA".to_string();
        sofa_config.userless_launches = config.userless_launches;
        sofa_config.rate_limits = config.limits.rate_limits();
        if let Some(ms) = config.lifetimes.body_read_timeout_ms {
            sofa_config.body_read_timeout = Duration::from_millis(ms);
        }
        if let Some(types) = &config.supported_types {
            sofa_config.supported_types = supported_types(types);
        }

        let (store, schema) = open_store(&config).await?;

        let auth_config = AuthConfig {
            access_token_ttl: Duration::from_secs(config.lifetimes.access_token_secs),
            refresh_token_ttl: Duration::from_secs(config.lifetimes.refresh_token_secs),
            development_mode: config.development_mode,
            mutual_tls,
            key_protector: registry::key_protector(&config, &|name| std::env::var(name).ok())?,
            key_activation_delay: Duration::from_secs(config.lifetimes.key_activation_secs),
            key_refresh_interval: config
                .lifetimes
                .key_refresh_ms
                .map_or(Duration::from_secs(5), Duration::from_millis),
            client_refresh_interval: config
                .lifetimes
                .client_refresh_ms
                .map_or(Duration::from_secs(5), Duration::from_millis),
            ..AuthConfig::default()
        };
        let federated = federated::login(&config, &fhir_base, store.clone()).await?;
        let users: Arc<dyn UserAuthenticator> = match &federated {
            Some((login, _)) => Arc::new(login.clone()),
            None => authenticator(&config)?,
        };
        // The signing keys are read from the store (generated there on first start), sealed
        // under the key-encryption key, which lives outside the database (REQ IDP-06).
        let auth = AuthServer::start(
            &sofa_config,
            auth_config,
            store.clone(),
            Arc::new(SystemClock),
            registry::client_registry(&config.clients, config.development_mode, mutual_tls)?,
            users,
        )
        .await
        .map_err(|e| match e {
            AuthServerError::Keys(KeyError::Protection(_)) => Error::Auth(format!(
                "{e} (key_encryption_key_file or key_encryption_key_env names it)"
            )),
            e => Error::Auth(e.to_string()),
        })?;
        // The SoFA's own tokens, and the jurisdiction's provider's for `$set-context`.
        let validator: Arc<dyn TokenValidator> = match &federated {
            Some((_, Some(provider_tokens))) => Arc::new(FirstValid::new(vec![
                auth.token_validator(),
                provider_tokens.clone(),
            ])),
            _ => auth.token_validator(),
        };
        // Every request a client's tokens make spends the client's budget (HARD-04).
        let tokens: Arc<dyn TokenValidator> = Arc::new(RateLimitedTokens::new(
            validator,
            sofa_config.rate_limits.per_client,
        ));
        let readiness = Readiness::new(store.clone()).signing_keys(&auth);
        let readiness = match &schema {
            Schema::None => Ok(readiness),
            Schema::Sqlite(sqlite) => readiness.sqlite_schema(sqlite).await,
            Schema::Postgres(postgres) => readiness.postgres_schema(postgres).await,
        }
        .map_err(|e| Error::Store(e.to_string()))?;

        // Audit events go to the log and to the store, where `admin audit export` reads them.
        let (stored_audit, audit_writer) = StoreAuditSink::spawn(store.clone());
        let audit = FanOutAuditSink(vec![Arc::new(TracingAuditSink), Arc::new(stored_audit)]);
        let sofa = Sofa::builder(sofa_config)
            .store(store.clone())
            .token_validator(tokens)
            .audit(Arc::new(audit))
            .authorization(&auth)
            .mount(
                federated
                    .as_ref()
                    .map(|(login, _)| login.router())
                    .unwrap_or_default(),
                |_| {},
            )
            .resource_server()
            .subscriptions(SubscriptionSettings {
                default_timeout: config.lifetimes.delivery_timeout_ms.map_or(
                    Duration::from_secs(config.lifetimes.delivery_timeout_secs),
                    Duration::from_millis,
                ),
                // Rest-hook endpoints on loopback over http are for development only.
                require_https: !config.development_mode,
                settle_margin: config
                    .lifetimes
                    .settle_margin_ms
                    .map_or(Duration::from_secs(30), Duration::from_millis),
                ..SubscriptionSettings::default()
            })
            // `Prefer: respond-async` on writes (ASY-01).
            .async_jobs()
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        let mut tasks = sofa.spawn_tasks();
        tasks.push(audit_writer);

        let catalog = Arc::new(catalog);
        let app = Router::new()
            .nest(FHIR_PATH, sofa.router())
            .route(
                CATALOG_PATH,
                get(move || {
                    let catalog = catalog.clone();
                    async move { serve_catalog(&catalog) }
                }),
            )
            // Probes at the root, outside the FHIR base: no authentication, no audit (OPS-01).
            .merge(readiness.router());
        // REQ OPS-03: a certificate-bound access token is taken only with its certificate, on
        // every route (over plain HTTP it is never taken).
        let app = app.layer(axum::middleware::from_fn(
            halo_sofa_server::tls::require_bound_certificate,
        ));
        // REQ OPS-02: counted by route template and status; only when metrics are served.
        let mut metrics_url = None;
        let app = match config.metrics_listen {
            Some(listen) => {
                metrics::install()?;
                let (address, serving) = metrics::serve(listen, store.clone()).await?;
                tasks.extend(serving);
                metrics_url = Some(format!("http://{address}{METRICS_PATH}"));
                app.layer(axum::middleware::from_fn(
                    halo_sofa_server::metrics::track_http,
                ))
            }
            None => app,
        };
        let app = with_request_ids(app);

        let (stop, stopped) = oneshot::channel::<()>();
        let header_read_timeout = config
            .lifetimes
            .header_read_timeout_ms
            .map_or(serve::HEADER_READ_TIMEOUT, Duration::from_millis);
        let server = tokio::spawn(serve::serve(
            listener,
            tls,
            header_read_timeout,
            app,
            stopped,
        ));
        Ok(RunningSofa {
            metrics_url,
            catalog_url: format!("{root_url}{CATALOG_PATH}"),
            root_url,
            fhir_base,
            local_addr,
            stop: Some(stop),
            server,
            sofa,
            store,
            tasks,
        })
    }
}

/// The header that carries a request's id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Gives every request an id : the caller's `X-Request-Id`
/// when it is well-formed ([`valid_request_id`]), a new UUID otherwise; echoes it in the
/// response's `X-Request-Id`; and opens the request's tracing span with the id, the method and
/// the route template. The template (`/fhir/Patient/{id}`), never the path, since a path holds
/// resource and launch ids that do not belong in logs.
fn with_request_ids(app: Router) -> Router {
    let header = HeaderName::from_static(REQUEST_ID_HEADER);
    let trace = TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str);
        let id = request
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        tracing::info_span!("request", request_id = %id, method = %request.method(), route = %route)
    });
    // One line per answered request (status, latency) at the default level: the access log.
    let trace = trace.on_response(DefaultOnResponse::new().level(tracing::Level::INFO));
    // Layers run outermost last: the id is checked, then set, then the span opens, and the
    // response gets the id on its way out.
    app.layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(trace)
        .layer(SetRequestIdLayer::new(header, MakeRequestUuid))
        .layer(axum::middleware::map_request(drop_malformed_request_id))
}

/// A caller's id is kept only when it is 1 to 64 characters of `[A-Za-z0-9-_.]`: anything
/// else could forge log fields or flood them.
pub fn valid_request_id(id: &[u8]) -> bool {
    (1..=64).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

async fn drop_malformed_request_id(mut request: axum::extract::Request) -> axum::extract::Request {
    let headers = request.headers_mut();
    let ids: Vec<&HeaderValue> = headers.get_all(REQUEST_ID_HEADER).iter().collect();
    if ids.len() > 1
        || ids
            .first()
            .is_some_and(|id| !valid_request_id(id.as_bytes()))
    {
        headers.remove(REQUEST_ID_HEADER);
    }
    request
}

/// Opens the store the configuration names (the server and the admin command line alike).
async fn open_store(config: &Config) -> Result<(Arc<dyn Store>, Schema), Error> {
    let busy_timeout = config
        .database_busy_timeout_ms
        .map_or(Duration::from_secs(5), Duration::from_millis);
    // The readiness probe reads the schema version back the way each store records it.
    let (store, schema): (Arc<dyn Store>, Schema) = if config.database == Path::new(IN_MEMORY) {
        (Arc::new(MemoryStore::new()), Schema::None)
    } else if let Some(url) = config.database_url() {
        let options = PostgresOptions {
            max_connections: config.database_pool_size.unwrap_or(16),
            wait_timeout: busy_timeout,
            schema: config.database_schema.clone(),
            ..PostgresOptions::default()
        };
        // The URL may hold a password: the error names the database, not the URL.
        let postgres = PostgresStore::connect_with(url, options)
            .await
            .map_err(|e| Error::Store(format!("PostgreSQL: {e}")))?;
        (Arc::new(postgres.clone()), Schema::Postgres(postgres))
    } else {
        let sqlite = SqliteStore::open_with_busy_timeout(&config.database, busy_timeout)
            .await
            .map_err(|e| Error::Store(format!("{}: {e}", config.database.display())))?;
        (Arc::new(sqlite.clone()), Schema::Sqlite(sqlite))
    };
    Ok((store, schema))
}

/// The store, kept by kind for the readiness probe's schema check.
enum Schema {
    None,
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

/// A running reference SoFA.
pub struct RunningSofa {
    /// The root URL (no trailing slash).
    pub root_url: String,
    /// The FHIR base: `iss` for apps, the base PoCs call.
    pub fhir_base: String,
    /// The App Catalog URL.
    pub catalog_url: String,
    /// The socket address the server listens on.
    pub local_addr: SocketAddr,
    /// `GET /metrics` on the metrics listener, when `metrics_listen` is set.
    pub metrics_url: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
    sofa: Sofa,
    store: Arc<dyn Store>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningSofa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningSofa")
            .field("root_url", &self.root_url)
            .field("fhir_base", &self.fhir_base)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl RunningSofa {
    /// The store the server runs on. A host that launches apps without `$set-context` (a
    /// plain SMART launch whose EMR registers the context with this authorization server)
    /// writes its launch records here.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// The URLs worth printing, labelled.
    pub fn urls(&self) -> Vec<(&'static str, String)> {
        let mut urls = vec![
            ("FHIR base (iss)", self.fhir_base.clone()),
            (
                "CapabilityStatement",
                format!("{}/metadata", self.fhir_base),
            ),
            (
                "SMART configuration",
                format!("{}/.well-known/smart-configuration", self.fhir_base),
            ),
            ("App Catalog", self.catalog_url.clone()),
        ];
        if let Some(metrics) = &self.metrics_url {
            urls.push(("Metrics (private)", metrics.clone()));
        }
        urls
    }

    /// Stops accepting connections, lets requests in flight finish, then waits for deliveries
    /// in flight so every app write is either committed or rolled back before returning.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.server).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the server stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "the server task failed"),
        }
        self.sofa.shutdown().await;
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for RunningSofa {
    fn drop(&mut self) {
        // Dropped without `shutdown` (a failed test): stop the background work anyway.
        for task in &self.tasks {
            task.abort();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Reads and validates the catalog; an entry with errors stops the start, since a PoC would
/// otherwise offer an app the SoFA cannot launch.
fn load_catalog(source: Option<&CatalogSource>) -> Result<serde_json::Value, Error> {
    let value = match source {
        None => return Ok(serde_json::Value::Array(Vec::new())),
        Some(CatalogSource::Inline(value)) => value.clone(),
        Some(CatalogSource::File(path)) => {
            let bytes = std::fs::read(path)
                .map_err(|e| Error::Catalog(format!("{}: {e}", path.display())))?;
            serde_json::from_slice(&bytes)
                .map_err(|e| Error::Catalog(format!("{}: {e}", path.display())))?
        }
    };
    let parsed =
        Catalog::from_value(&value, Mode::Lenient).map_err(|e| Error::Catalog(e.to_string()))?;
    let errors: Vec<String> = parsed.report.errors().map(ToString::to_string).collect();
    if !errors.is_empty() {
        return Err(Error::Catalog(errors.join("; ")));
    }
    for finding in &parsed.report.findings {
        tracing::warn!("catalog: {finding}");
    }
    serde_json::to_value(&parsed.catalog).map_err(|e| Error::Catalog(e.to_string()))
}

/// `GET /catalog`: the catalog as published, readable from any origin (it is public).
fn serve_catalog(catalog: &serde_json::Value) -> axum::response::Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            ),
        ],
        catalog.to_string(),
    )
        .into_response()
}

fn supported_types(types: &[String]) -> SupportedTypes {
    let mut supported = SupportedTypes::d14();
    let defaults: Vec<String> = supported.iter().map(str::to_string).collect();
    for t in defaults {
        supported.remove(&t);
    }
    for t in types {
        supported.insert(t.clone());
    }
    supported
}

fn authenticator(config: &Config) -> Result<Arc<dyn UserAuthenticator>, Error> {
    Ok(match &config.login {
        Login::AutoApprove { user, fhir_user } => {
            Arc::new(AutoApprove::new(user.clone(), fhir_user.as_deref()))
        }
        Login::Oidc { .. } => {
            return Err(Error::Config(
                "login.mode = \"oidc\" is started with its provider".into(),
            ));
        }
        Login::DevLogin => {
            if config.users.is_empty() {
                return Err(Error::Config(
                    "login.mode = \"dev-login\" needs at least one [[users]] entry".into(),
                ));
            }
            Arc::new(config.users.iter().fold(DevLogin::new(), |login, u| {
                login.user(u.id.clone(), &u.password, u.fhir_user.as_deref())
            }))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_configuration_parses() {
        let config = Config::from_file(concat!(env!("CARGO_MANIFEST_DIR"), "/sofa.toml")).unwrap();
        assert!(!config.clients.is_empty());
        assert!(matches!(config.catalog, Some(CatalogSource::File(ref p)) if p.is_absolute()));
        let catalog = load_catalog(config.catalog.as_ref()).unwrap();
        assert_eq!(catalog.as_array().map(Vec::len), Some(1));
        let app_id = catalog[0]["id"].as_str().unwrap();
        assert!(
            config
                .clients
                .iter()
                .any(|c| c.app_id.as_deref() == Some(app_id))
        );
    }

    // REQ: EX-01
    #[test]
    fn a_catalog_entry_with_errors_stops_the_start() {
        let sample: serde_json::Value =
            serde_json::from_str(include_str!("../catalog.json")).unwrap();
        let mut broken = sample.clone();
        broken[0]["contacts"] = serde_json::json!([{"url": "https://apps.example.org/help"}]);
        let error = load_catalog(Some(&CatalogSource::Inline(broken))).unwrap_err();
        assert!(error.to_string().contains("$[0].contacts"), "{error}");
        assert!(load_catalog(Some(&CatalogSource::Inline(sample))).is_ok());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = Config::from_toml("listne = \"127.0.0.1:1\"").unwrap_err();
        assert!(error.to_string().contains("listne"), "{error}");
    }

    // REQ: OPS-02, OPS-03
    #[test]
    fn tls_and_metrics_keys_parse_with_paths_relative_to_the_file() {
        let dir = std::env::temp_dir().join(format!("reference-sofa-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("sofa.toml");
        std::fs::write(
            &file,
            "metrics_listen = \"127.0.0.1:9464\"\n\
             [tls]\ncert_file = \"tls/sofa.pem\"\nkey_file = \"/etc/halo/key.pem\"\n\
             client_ca_file = \"ca.pem\"\n\
             [[clients]]\nid = \"emr\"\nscopes = \"Context.write\"\n\
             tls_client_auth_subject_dn = \"CN=emr.example.org,O=Example EMR\"\n",
        )
        .unwrap();
        let config = Config::from_file_with_env(&file, &[]).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            config.metrics_listen,
            Some("127.0.0.1:9464".parse().unwrap())
        );
        let tls = config.tls.as_ref().unwrap();
        assert_eq!(tls.cert_file, dir.join("tls/sofa.pem"));
        assert_eq!(tls.key_file, Path::new("/etc/halo/key.pem"));
        assert_eq!(
            tls.client_ca_file.as_deref(),
            Some(dir.join("ca.pem").as_path())
        );
        let registry = registry::client_registry(&config.clients, true, true).unwrap();
        use halo_sofa_server::auth::ClientAuthentication;
        use halo_sofa_server::tls::TlsClientIdentity;
        assert_eq!(
            registry.get("emr").unwrap().authentication,
            ClientAuthentication::TlsClientAuth(TlsClientIdentity::SubjectDn(
                "CN=emr.example.org,O=Example EMR".into()
            ))
        );
        // A secret and a certificate, or two certificate keys: one way only.
        let mut both = config.clients.clone();
        both[0].secret = Some("s".into());
        assert!(registry::client_registry(&both, true, true).is_err());
        let mut two = config.clients.clone();
        two[0].tls_client_auth_san_dns = Some("emr.example.org".into());
        assert!(registry::client_registry(&two, true, true).is_err());
    }

    #[test]
    fn dev_login_without_users_is_refused() {
        let config = Config::default();
        assert!(authenticator(&config).is_err());
    }
}

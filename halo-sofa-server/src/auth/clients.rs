//! The client registry (REQ AS-11): the apps and PoCs allowed to obtain tokens, from
//! configuration and from the store (registered or disabled at run time by the admin command
//! line, REQ OPS-05). Secrets are kept only as SHA-256 hashes and compared in constant time
//! (REQ SEC-02).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use halo_model::scope::ScopeSet;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::{ClientCredentials, ClientRecord, Store, StoreError};

/// How a client authenticates at the token endpoint.
#[derive(Clone, PartialEq)]
pub enum ClientAuthentication {
    /// A public client (browser or native app): PKCE only, no secret.
    Public,
    /// `client_secret_basic` or `client_secret_post`: the SHA-256 of the secret.
    Secret {
        /// SHA-256 of the secret.
        secret_sha256: [u8; 32],
    },
    /// `private_key_jwt` (RS384 or ES384) with keys from a registered JWKS.
    PrivateKeyJwt {
        /// The registered JWK Set.
        jwks: Value,
    },
    /// `private_key_jwt` with keys fetched from the client's JWKS URL (cached).
    PrivateKeyJwtUrl {
        /// The JWKS URL.
        jwks_url: String,
    },
    /// `tls_client_auth` (RFC 8705, REQ OPS-03): a client certificate with this subject or
    /// SAN, on a connection whose TLS verified the chain.
    TlsClientAuth(crate::tls::TlsClientIdentity),
}

impl fmt::Debug for ClientAuthentication {
    // SEC-01: the secret's hash is no more shown than the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientAuthentication::Public => f.write_str("Public"),
            ClientAuthentication::Secret { .. } => f.write_str("Secret(<redacted>)"),
            ClientAuthentication::PrivateKeyJwt { .. } => f.write_str("PrivateKeyJwt(jwks)"),
            ClientAuthentication::PrivateKeyJwtUrl { jwks_url } => {
                write!(f, "PrivateKeyJwtUrl({jwks_url})")
            }
            ClientAuthentication::TlsClientAuth(identity) => {
                write!(f, "TlsClientAuth({identity:?})")
            }
        }
    }
}

impl ClientAuthentication {
    /// A confidential symmetric client: the secret is hashed at once and never kept.
    pub fn secret(secret: &str) -> ClientAuthentication {
        ClientAuthentication::Secret {
            secret_sha256: Sha256::digest(secret.as_bytes()).into(),
        }
    }

    /// Whether `presented` is the client's secret, in constant time (REQ SEC-02).
    pub fn secret_matches(&self, presented: &str) -> bool {
        match self {
            ClientAuthentication::Secret { secret_sha256 } => {
                let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
                bool::from(hash.ct_eq(secret_sha256))
            }
            _ => false,
        }
    }

    /// Whether the client is confidential (may use `client_credentials`).
    pub fn is_confidential(&self) -> bool {
        !matches!(self, ClientAuthentication::Public)
    }
}

/// One registered client.
#[derive(Debug, Clone)]
pub struct RegisteredClient {
    /// `client_id`.
    pub client_id: String,
    /// How it authenticates.
    pub authentication: ClientAuthentication,
    /// Redirect URIs, compared exactly (REQ AS-03).
    pub redirect_uris: Vec<String>,
    /// The scopes it may be granted; requested scopes outside them are not granted.
    pub allowed_scopes: ScopeSet,
    /// The app's launch URL, for a PoC or catalog that launches it.
    pub launch_url: Option<String>,
    /// The catalog app id (`appID` of `$set-context`): a launch set for another app is refused.
    pub app_id: Option<String>,
}

impl RegisteredClient {
    /// A client with no redirect URIs and no scopes yet.
    pub fn new(client_id: impl Into<String>, authentication: ClientAuthentication) -> Self {
        RegisteredClient {
            client_id: client_id.into(),
            authentication,
            redirect_uris: Vec::new(),
            allowed_scopes: ScopeSet::new(),
            launch_url: None,
            app_id: None,
        }
    }

    /// Adds a redirect URI.
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uris.push(uri.into());
        self
    }

    /// Sets the scopes it may be granted (space-separated; unknown scopes are skipped).
    pub fn scopes(mut self, scopes: &str) -> Self {
        self.allowed_scopes = ScopeSet::parse_lenient(scopes).0;
        self
    }

    /// Sets the catalog app id.
    pub fn app_id(mut self, app_id: impl Into<String>) -> Self {
        self.app_id = Some(app_id.into());
        self
    }

    /// Sets the launch URL.
    pub fn launch_url(mut self, url: impl Into<String>) -> Self {
        self.launch_url = Some(url.into());
        self
    }
}

/// The registered clients, by id.
#[derive(Debug, Clone, Default)]
pub struct ClientRegistry {
    clients: HashMap<String, RegisteredClient>,
}

impl ClientRegistry {
    /// An empty registry.
    pub fn new() -> ClientRegistry {
        ClientRegistry::default()
    }

    /// Registers (or replaces) a client.
    pub fn with(mut self, client: RegisteredClient) -> ClientRegistry {
        self.clients.insert(client.client_id.clone(), client);
        self
    }

    /// The client with this id.
    pub fn get(&self, client_id: &str) -> Option<&RegisteredClient> {
        self.clients.get(client_id)
    }
}

impl ClientCredentials {
    /// The stored form of a secret: its SHA-256, never the secret (REQ SEC-02).
    pub fn secret(secret: &str) -> ClientCredentials {
        ClientCredentials::SecretSha256 {
            sha256: URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes())),
        }
    }
}

impl RegisteredClient {
    /// The client a store record registers; `None` for a disabled client or a record whose
    /// secret hash is unreadable (it then authenticates no one).
    pub fn from_record(record: &ClientRecord) -> Option<RegisteredClient> {
        if record.disabled {
            return None;
        }
        let authentication = match &record.credentials {
            ClientCredentials::Public => ClientAuthentication::Public,
            ClientCredentials::SecretSha256 { sha256 } => ClientAuthentication::Secret {
                secret_sha256: URL_SAFE_NO_PAD.decode(sha256).ok()?.try_into().ok()?,
            },
            ClientCredentials::Jwks { jwks } => {
                ClientAuthentication::PrivateKeyJwt { jwks: jwks.clone() }
            }
            ClientCredentials::JwksUrl { jwks_url } => ClientAuthentication::PrivateKeyJwtUrl {
                jwks_url: jwks_url.clone(),
            },
        };
        let mut client =
            RegisteredClient::new(record.client_id.clone(), authentication).scopes(&record.scopes);
        client.redirect_uris = record.redirect_uris.clone();
        client.app_id = record.app_id.clone();
        client.launch_url = record.launch_url.clone();
        Some(client)
    }
}

/// How many store lookups the cache holds before it starts over: unknown client ids sent by
/// strangers must not grow it without bound.
const CACHE_LIMIT: usize = 4096;

/// The configured clients and those in the store, read through a short cache so a client
/// registered or disabled by another process is seen within `ttl` without a store read on
/// every request. A store record takes precedence over a configured client of the same id (the
/// admin command line disables configured clients that way).
pub(crate) struct ClientLookup {
    configured: ClientRegistry,
    store: Arc<dyn Store>,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, Option<ClientRecord>)>>,
}

impl ClientLookup {
    pub(crate) fn new(
        configured: ClientRegistry,
        store: Arc<dyn Store>,
        ttl: Duration,
    ) -> ClientLookup {
        ClientLookup {
            configured,
            store,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The client with this id, as the store and the configuration have it now (within `ttl`);
    /// a client disabled in the store is `None` (REQ OPS-05).
    pub(crate) async fn get(
        &self,
        client_id: &str,
    ) -> Result<Option<RegisteredClient>, StoreError> {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(client_id)
            .filter(|(read_at, _)| read_at.elapsed() < self.ttl)
            .map(|(_, record)| record.clone());
        let record = match cached {
            Some(record) => record,
            None => {
                let mut tx = self.store.begin_read().await?;
                let record = tx.get_client(client_id).await?;
                tx.rollback().await?;
                let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
                if cache.len() >= CACHE_LIMIT {
                    cache.clear();
                }
                cache.insert(client_id.to_string(), (Instant::now(), record.clone()));
                record
            }
        };
        Ok(match record {
            Some(record) => RegisteredClient::from_record(&record),
            None => self.configured.get(client_id).cloned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: SEC-02, AS-11, SEC-01
    #[test]
    fn secrets_are_kept_hashed_and_compared_whole() {
        let auth = ClientAuthentication::secret("s3cret-value");
        assert!(auth.secret_matches("s3cret-value"));
        assert!(!auth.secret_matches("s3cret-valu"));
        assert!(!auth.secret_matches(""));
        assert!(!format!("{auth:?}").contains("s3cret"));
        assert!(!ClientAuthentication::Public.secret_matches(""));
    }
}

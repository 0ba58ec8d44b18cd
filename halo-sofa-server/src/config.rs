//! Server configuration: every HALO decision a host may change (D-05, D-06, D-07, D-14) and
//! the limits of SEC-03, with the project's defaults.

use std::sync::Arc;
use std::time::Duration;

use halo_model::fhir::JsonLimits;
use halo_model::scope::HALO_CONTEXT_WRITE;
use halo_model::set_context::SupportedTypes;

use crate::protect::KeyProtector;

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The FHIR base URL is not an absolute http(s) URL.
    #[error("the FHIR base URL `{0}` must be an absolute http(s) URL without query or fragment")]
    BaseUrl(String),
}

/// SMART OAuth endpoints, advertised in the CapabilityStatement's security service (the
/// `oauth-uris` extension) when set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OAuthUris {
    /// `authorize`.
    pub authorize: String,
    /// `token`.
    pub token: String,
    /// `introspect`, when offered.
    pub introspect: Option<String>,
    /// `revoke`, when offered.
    pub revoke: Option<String>,
}

/// The SoFA's configuration.
#[derive(Debug, Clone)]
pub struct SofaConfig {
    /// The FHIR base URL as apps and PoCs see it (`iss`), without a trailing slash.
    pub base_url: String,
    /// How long a launch context lives before it is purged (D-05: 12 hours).
    pub launch_ttl: Duration,
    /// How often the purge task looks for expired contexts.
    pub purge_interval: Duration,
    /// Body size and JSON nesting limits (SEC-03). The body limit is `json_limits.max_bytes`.
    pub json_limits: JsonLimits,
    /// Resource types accepted in `$set-context` and app writes (D-14).
    pub supported_types: SupportedTypes,
    /// The scope a PoC needs for `$set-context` and `$clear-context` (D-06: `Context.write`).
    pub context_scope: String,
    /// Whether `$set-context` requires an active Subscription to the SoFA Content Update topic
    /// (REQ SC-08; on by default, off only for a SoFA without subscriptions).
    pub require_active_subscription: bool,
    /// The topic the active subscription must be to (D-01).
    pub content_update_topic: String,
    /// Userless mode (D-18): `$set-context` accepts a token that names no user
    /// (`client_credentials`), and such a launch may be redeemed by any user who signs in at the
    /// app's authorization. Off by default: a launch belongs to the clinician the PoC signed in,
    /// and a userless token is refused (403, `security`). Only for an installation where the
    /// PoC cannot sign its clinicians in at the jurisdictional IdP.
    pub userless_launches: bool,
    /// Origins allowed to call the FHIR API from a browser (SEC-06); discovery and `metadata`
    /// allow any origin.
    pub cors_allowed_origins: Vec<String>,
    /// Rate limits per client address and per client (REQ HARD-04); off by default.
    pub rate_limits: RateLimits,
    /// How long a request body may take to arrive, all of it (REQ HARD-04): a client that
    /// trickles its body is answered 408 instead of holding a task (30 s).
    pub body_read_timeout: Duration,
    /// The SMART endpoints to advertise, when an authorization server is known.
    pub oauth: Option<OAuthUris>,
    /// The server's name and version in the CapabilityStatement.
    pub software_name: String,
}

impl SofaConfig {
    /// A configuration with the project's defaults for the given FHIR base URL.
    pub fn new(base_url: impl Into<String>) -> Result<SofaConfig, ConfigError> {
        let base_url = base_url.into();
        let trimmed = base_url.trim_end_matches('/').to_string();
        let scheme_ok = trimmed.starts_with("https://") || trimmed.starts_with("http://");
        let host_ok = trimmed
            .split_once("://")
            .is_some_and(|(_, rest)| !rest.is_empty() && !rest.starts_with('/'));
        if !scheme_ok || !host_ok || trimmed.contains(['?', '#', ' ']) {
            return Err(ConfigError::BaseUrl(base_url));
        }
        Ok(SofaConfig {
            base_url: trimmed,
            launch_ttl: Duration::from_secs(12 * 60 * 60),
            purge_interval: Duration::from_secs(60),
            json_limits: JsonLimits::default(),
            supported_types: SupportedTypes::d14(),
            context_scope: HALO_CONTEXT_WRITE.to_string(),
            require_active_subscription: true,
            content_update_topic: halo_model::canonical::SOFA_CONTENT_UPDATE_TOPIC.to_string(),
            userless_launches: false,
            cors_allowed_origins: Vec::new(),
            rate_limits: RateLimits::default(),
            body_read_timeout: Duration::from_secs(30),
            oauth: None,
            software_name: "HALO SDK SoFA".to_string(),
        })
    }
}

/// The built-in authorization server's settings (REQ AS-05, AS-06, SEC-03, SEC-04).
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Access token lifetime (`expires_in`).
    pub access_token_ttl: Duration,
    /// Refresh token lifetime; a refresh token also dies with its launch (REQ SC-12).
    pub refresh_token_ttl: Duration,
    /// Authorization code lifetime (REQ AS-05: at most 60 s).
    pub code_ttl: Duration,
    /// The longest a `private_key_jwt` client assertion may live (REQ AS-06: 5 minutes).
    pub assertion_max_lifetime: Duration,
    /// How long a client's fetched JWKS is reused before it is fetched again.
    pub jwks_cache_ttl: Duration,
    /// The timeout of every outbound call (JWKS URLs, an external IdP) (REQ SEC-03).
    pub outbound_timeout: Duration,
    /// Development mode: http on loopback is accepted for the issuer and JWKS URLs
    /// (REQ SEC-04), and signing keys may be stored in clear. Off by default.
    pub development_mode: bool,
    /// Mutual TLS is offered (REQ OPS-03): the host terminates TLS, asks for client
    /// certificates and hands them to the handlers ([`crate::tls::PeerCertificate`]). The
    /// discovery documents then advertise `tls_client_auth` and certificate-bound tokens.
    pub mutual_tls: bool,
    /// Seals the token-signing private keys in the store (REQ IDP-06), e.g.
    /// [`AesGcmKek`](crate::protect::AesGcmKek). Required outside development mode.
    pub key_protector: Option<Arc<dyn KeyProtector>>,
    /// How long a rotated-in key is published before it signs, so verifiers that cache the
    /// JWKS know it first (REQ IDP-06).
    pub key_activation_delay: Duration,
    /// How often an instance re-reads the signing keys from the store, so a rotation made by
    /// another process reaches it (a token naming an unknown key id re-reads at once, at most
    /// once a second).
    pub key_refresh_interval: Duration,
    /// How long a client read from the store is reused: a client registered or disabled by
    /// the admin command line reaches every instance within it (REQ OPS-05).
    pub client_refresh_interval: Duration,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            access_token_ttl: Duration::from_secs(60 * 60),
            refresh_token_ttl: Duration::from_secs(12 * 60 * 60),
            code_ttl: Duration::from_secs(60),
            assertion_max_lifetime: Duration::from_secs(5 * 60),
            jwks_cache_ttl: Duration::from_secs(5 * 60),
            outbound_timeout: Duration::from_secs(10),
            development_mode: false,
            mutual_tls: false,
            key_protector: None,
            key_activation_delay: Duration::from_secs(5 * 60),
            key_refresh_interval: Duration::from_secs(5),
            client_refresh_interval: Duration::from_secs(5),
        }
    }
}

/// Whether `url` may be used as an issuer, endpoint or JWKS URL (REQ SEC-04): https always;
/// http only on a loopback host in development mode.
pub fn url_allowed(url: &str, development_mode: bool) -> bool {
    match url::Url::parse(url) {
        Ok(parsed) if parsed.scheme() == "https" => parsed.host().is_some(),
        Ok(parsed) if parsed.scheme() == "http" && development_mode => {
            matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
        }
        _ => false,
    }
}

/// A steady rate with a burst; `per_second = 0` turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per second, sustained.
    pub per_second: u32,
    /// Requests allowed at once above the steady rate.
    pub burst: u32,
}

impl Rate {
    /// `per_second` sustained, `burst` at once.
    pub const fn new(per_second: u32, burst: u32) -> Rate {
        Rate { per_second, burst }
    }

    /// No limit.
    pub const OFF: Rate = Rate::new(0, 0);
}

/// The rate limits of a SoFA ([`crate::limits`], REQ HARD-04). The library default is off
/// (hosts and tests decide); the reference SoFA turns them on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// Per client address: writes, `$set-context`, token, revocation, introspection, authorize.
    pub per_address: Rate,
    /// Per authenticated client: every request with its tokens, and its token requests.
    pub per_client: Rate,
    /// A header carrying the client address that the operator's own proxy appends
    /// (`x-forwarded-for`); its last entry is used. `None`: the TCP peer.
    pub address_header: Option<String>,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            per_address: Rate::OFF,
            per_client: Rate::OFF,
            address_header: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_must_be_absolute_http() {
        assert_eq!(
            SofaConfig::new("https://sofa.example.org/fhir/")
                .unwrap()
                .base_url,
            "https://sofa.example.org/fhir"
        );
        for bad in [
            "sofa.example.org",
            "ftp://x",
            "https://",
            "https://x/fhir?a=1",
        ] {
            assert!(SofaConfig::new(bad).is_err(), "{bad}");
        }
    }

    // REQ: SEC-04
    #[test]
    fn http_only_on_loopback_in_development_mode() {
        assert!(url_allowed("https://idp.example.org/jwks", false));
        assert!(!url_allowed("http://127.0.0.1:8080/jwks", false));
        assert!(url_allowed("http://127.0.0.1:8080/jwks", true));
        assert!(!url_allowed("http://idp.example.org/jwks", true));
        assert!(!url_allowed("ftp://idp.example.org/jwks", true));
    }
}

//! `login.mode = "oidc"`: the reference SoFA signs clinicians in at the jurisdiction's OpenID
//! provider (D-19, REQ IDP-03) and accepts that provider's access tokens for its FHIR base.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use halo_sofa_server::auth::{OidcLogin, OidcSettings, TokenValidator};
use halo_sofa_server::store::Store;

use crate::{Config, Error, Login};

/// The federated login of `login.mode = "oidc"` (discovered at the provider now, so a wrong
/// issuer stops the start), with the validator of the provider's access tokens when they are
/// accepted.
pub(crate) async fn login(
    config: &Config,
    fhir_base: &str,
    store: Arc<dyn Store>,
) -> Result<Option<(OidcLogin, Option<Arc<dyn TokenValidator>>)>, Error> {
    let Login::Oidc {
        issuer,
        client_id,
        client_secret,
        cookie_key,
        scopes,
        user_claim,
        fhir_user_claim,
        session_secs,
        accept_access_tokens,
        post_logout_redirect_uri,
    } = &config.login
    else {
        return Ok(None);
    };
    let mut settings = OidcSettings::new(issuer, client_id, client_secret);
    settings.development_mode = config.development_mode;
    if let Some(key) = cookie_key {
        let bytes = URL_SAFE_NO_PAD
            .decode(key.trim_end_matches('='))
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| Error::Config("login.cookie_key must be 32 bytes, base64url".into()))?;
        settings.cookie_key = Some(bytes);
    } else if !config.development_mode {
        tracing::warn!(
            "login.cookie_key is not set: sessions end at a restart and are not shared between \
             instances"
        );
    }
    if let Some(scopes) = scopes {
        settings.scopes = scopes.clone();
    }
    if let Some(claim) = user_claim {
        settings.user_claim = claim.clone();
    }
    if let Some(claim) = fhir_user_claim {
        settings.fhir_user_claim = Some(claim.clone()).filter(|c| !c.is_empty());
    }
    if let Some(secs) = session_secs {
        settings.session_lifetime = Duration::from_secs(*secs);
    }
    settings.post_logout_redirect_uri = post_logout_redirect_uri.clone();
    let login = OidcLogin::discover(settings, fhir_base, store)
        .await
        .map_err(|e| Error::Auth(e.to_string()))?;
    let tokens = if *accept_access_tokens {
        let tokens = login
            .access_tokens(fhir_base)
            .map_err(|e| Error::Auth(e.to_string()))?;
        Some(Arc::new(tokens) as Arc<dyn TokenValidator>)
    } else {
        None
    };
    Ok(Some((login, tokens)))
}

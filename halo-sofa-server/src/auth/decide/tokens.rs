//! What the issued tokens say (REQ AS-07, SC-10, D-12, IDP-04): the access token's claims, the
//! id_token's, and the refresh token with the record to store for it, decided before any key
//! signs and before any store write.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use halo_model::oauth::OAuthError;
use halo_model::scope::ScopeSet;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::scopes::wants_refresh;
use crate::store::{LaunchRecord, RefreshTokenRecord};

/// SHA-256, base64url: how codes and refresh tokens are stored (never themselves).
pub(crate) fn hash_secret(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

/// 32 random bytes, base64url: codes, refresh tokens, token ids.
pub(crate) fn random_token() -> Result<String, OAuthError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| OAuthError::server_error("no randomness available"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AccessClaims {
    pub(crate) iss: String,
    pub(crate) sub: String,
    pub(crate) aud: String,
    pub(crate) exp: i64,
    pub(crate) iat: i64,
    pub(crate) jti: String,
    pub(crate) client_id: String,
    pub(crate) scope: String,
    /// The signed-in user, when there is one (`sub` is the client otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) launch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) fam: Option<String>,
    #[serde(default, rename = "fhirUser", skip_serializing_if = "Option::is_none")]
    pub(crate) fhir_user: Option<String>,
    /// The certificate binding (`{"x5t#S256": ...}`, RFC 8705 §3.1), when the token was asked
    /// for over mutual TLS; checked by [`crate::tls::require_bound_certificate`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cnf: Option<Value>,
}

/// The issuer and lifetimes every token decision uses.
#[derive(Debug, Clone)]
pub(crate) struct TokenSettings {
    /// The issuer: the FHIR base URL, also the access tokens' audience.
    pub(crate) issuer: String,
    /// Access token and id_token lifetime.
    pub(crate) access_ttl: std::time::Duration,
    /// Refresh token lifetime.
    pub(crate) refresh_ttl: std::time::Duration,
}

/// What a token response is issued for.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    /// The client.
    pub(crate) client_id: String,
    /// The signed-in user, when there is one.
    pub(crate) user: Option<String>,
    /// The scopes of the grant (a refresh may narrow the access token's).
    pub(crate) scope: ScopeSet,
    /// The live launch of an EHR launch.
    pub(crate) launch: Option<LaunchRecord>,
    /// The grant family: what a replay or reuse revokes.
    pub(crate) family: String,
    /// The OpenID `nonce` of the authorization.
    pub(crate) nonce: Option<String>,
    /// The `fhirUser` decided at authorization (D-18), relative or absolute.
    pub(crate) fhir_user: Option<String>,
    /// The certificate binding of the access token (RFC 8705), when there is one.
    pub(crate) cnf: Option<Value>,
}

/// A grant's tokens, decided but not yet signed: the claims, and the refresh token with the
/// record to store for it. Deciding needs no key and no store; signing needs no transaction,
/// so no store lock is held while RSA and ECDSA run.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// The access token's claims.
    pub(crate) claims: AccessClaims,
    /// The id_token's claims, when `openid` was granted to a user.
    pub(crate) id_claims: Option<Value>,
    /// The refresh token and its stored record, when one is issued.
    pub(crate) refresh: Option<(String, RefreshTokenRecord)>,
    /// `expires_in`.
    pub(crate) ttl: u64,
    /// The access token's scopes.
    pub(crate) scope: ScopeSet,
    /// The launch whose context the response carries.
    pub(crate) launch: Option<LaunchRecord>,
}

/// The absolute `fhirUser` URL of a reference under `issuer`.
fn fhir_user_url(issuer: &str, reference: Option<&str>) -> Option<String> {
    let reference = reference?;
    Some(
        if reference.starts_with("http://") || reference.starts_with("https://") {
            reference.to_string()
        } else {
            format!("{issuer}/{reference}")
        },
    )
}

/// Decides the tokens of `grant` at `now` (REQ AS-07, SC-10): an access token for
/// `access_scope` (the grant's scopes when `None`), an id_token when `openid` was granted to a
/// user (with `fhirUser` when that was granted too), and a new refresh token of the same family
/// when `offline_access` or `online_access` was.
pub(crate) fn prepare(
    settings: &TokenSettings,
    grant: Grant,
    access_scope: Option<ScopeSet>,
    now: DateTime<Utc>,
) -> Result<Prepared, OAuthError> {
    let issuer = settings.issuer.as_str();
    let ttl = settings.access_ttl.as_secs();
    let exp = now
        .timestamp()
        .saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX));
    let scope = access_scope.unwrap_or_else(|| grant.scope.clone());
    let fhir_user = fhir_user_url(issuer, grant.fhir_user.as_deref());
    let launch_id = grant.launch.as_ref().map(|l| l.launch_id.clone());
    let claims = AccessClaims {
        iss: issuer.to_string(),
        sub: grant
            .user
            .clone()
            .unwrap_or_else(|| grant.client_id.clone()),
        aud: issuer.to_string(),
        exp,
        iat: now.timestamp(),
        jti: random_token()?,
        client_id: grant.client_id.clone(),
        scope: scope.to_string(),
        user: grant.user.clone(),
        launch: launch_id.clone(),
        fam: Some(grant.family.clone()),
        fhir_user: fhir_user.clone(),
        cnf: grant.cnf.clone(),
    };
    let mut id_claims = None;
    if grant.scope.has_openid()
        && let Some(user) = &grant.user
    {
        let mut id = json!({
            "iss": issuer,
            "sub": user,
            "aud": grant.client_id,
            "exp": exp,
            "iat": now.timestamp(),
        });
        if let Some(nonce) = &grant.nonce {
            id["nonce"] = json!(nonce);
        }
        if grant.scope.has_fhir_user()
            && let Some(fhir_user) = &fhir_user
        {
            id["fhirUser"] = json!(fhir_user);
        }
        id_claims = Some(id);
    }
    let mut refresh = None;
    if wants_refresh(&grant.scope) {
        let token = random_token()?;
        let refresh_ttl =
            Duration::from_std(settings.refresh_ttl).unwrap_or_else(|_| Duration::hours(12));
        let record = RefreshTokenRecord {
            token_hash: hash_secret(&token),
            family_id: grant.family.clone(),
            client_id: grant.client_id.clone(),
            user: grant.user.clone(),
            scope: grant.scope.to_string(),
            launch_id,
            expires_at: now + refresh_ttl,
            revoked: false,
            details: json!({ "fhir_user": grant.fhir_user }),
        };
        refresh = Some((token, record));
    }
    Ok(Prepared {
        claims,
        id_claims,
        refresh,
        ttl,
        scope,
        launch: grant.launch,
    })
}

/// The claims of a `client_credentials` access token (D-06): the client is the subject; no
/// user, no launch, no family, no refresh token.
pub(crate) fn client_credentials_claims(
    settings: &TokenSettings,
    client_id: &str,
    scope: &ScopeSet,
    cnf: Option<Value>,
    now: DateTime<Utc>,
) -> Result<AccessClaims, OAuthError> {
    let ttl = i64::try_from(settings.access_ttl.as_secs()).unwrap_or(i64::MAX);
    Ok(AccessClaims {
        iss: settings.issuer.clone(),
        sub: client_id.to_string(),
        aud: settings.issuer.clone(),
        exp: now.timestamp().saturating_add(ttl),
        iat: now.timestamp(),
        jti: random_token()?,
        client_id: client_id.to_string(),
        scope: scope.to_string(),
        user: None,
        launch: None,
        fam: None,
        fhir_user: None,
        cnf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://sofa.example.org/fhir";

    fn settings() -> TokenSettings {
        TokenSettings {
            issuer: ISSUER.into(),
            access_ttl: std::time::Duration::from_secs(300),
            refresh_ttl: std::time::Duration::from_secs(3600),
        }
    }

    fn grant(scope: &str) -> Grant {
        Grant {
            client_id: "app".into(),
            user: Some("dr-a".into()),
            scope: ScopeSet::parse(scope).unwrap(),
            launch: None,
            family: "fam-1".into(),
            nonce: Some("n-1".into()),
            fhir_user: Some("Practitioner/p1".into()),
            cnf: None,
        }
    }

    // REQ: AS-07, IDP-04
    #[test]
    fn openid_brings_an_id_token_for_the_user_with_nonce_and_fhir_user() {
        let now = Utc::now();
        let p = prepare(
            &settings(),
            grant("openid fhirUser patient/*.rs"),
            None,
            now,
        )
        .unwrap();
        let id = p.id_claims.unwrap();
        assert_eq!(id["sub"], "dr-a");
        assert_eq!(id["aud"], "app");
        assert_eq!(id["iss"], ISSUER);
        assert_eq!(id["nonce"], "n-1");
        assert_eq!(id["fhirUser"], format!("{ISSUER}/Practitioner/p1"));
        assert_eq!(id["exp"], now.timestamp() + 300);
        assert_eq!(p.claims.sub, "dr-a");
        assert_eq!(p.claims.aud, ISSUER);
        assert_eq!(p.claims.fam.as_deref(), Some("fam-1"));
        assert_eq!(p.ttl, 300);
        assert!(p.refresh.is_none());
        // Without fhirUser granted, the id_token names none; without openid there is none.
        let p = prepare(&settings(), grant("openid"), None, now).unwrap();
        assert!(p.id_claims.unwrap().get("fhirUser").is_none());
        assert!(
            prepare(&settings(), grant("patient/*.rs"), None, now)
                .unwrap()
                .id_claims
                .is_none()
        );
        let mut userless = grant("openid");
        userless.user = None;
        let p = prepare(&settings(), userless, None, now).unwrap();
        assert!(p.id_claims.is_none());
        assert_eq!(p.claims.sub, "app");
    }

    // REQ: AS-07, AS-08
    #[test]
    fn offline_access_brings_a_refresh_token_of_the_same_family_stored_by_hash() {
        let now = Utc::now();
        let p = prepare(&settings(), grant("offline_access patient/*.rs"), None, now).unwrap();
        let (token, record) = p.refresh.unwrap();
        assert_eq!(record.token_hash, hash_secret(&token));
        assert_ne!(record.token_hash, token);
        assert_eq!(record.family_id, "fam-1");
        assert_eq!(record.expires_at, now + Duration::seconds(3600));
        assert!(!record.revoked);
        // A narrowed refresh keeps the grant's scopes in the new refresh token.
        let narrowed = ScopeSet::parse("patient/Observation.r").unwrap();
        let p = prepare(
            &settings(),
            grant("offline_access patient/*.rs"),
            Some(narrowed),
            now,
        )
        .unwrap();
        assert_eq!(p.claims.scope, "patient/Observation.r");
        assert_eq!(p.refresh.unwrap().1.scope, "offline_access patient/*.rs");
    }

    // REQ: AS-06
    #[test]
    fn client_credentials_tokens_name_the_client_and_no_user() {
        let now = Utc::now();
        let scope = ScopeSet::parse("Context.write").unwrap();
        let claims = client_credentials_claims(&settings(), "poc", &scope, None, now).unwrap();
        assert_eq!(claims.sub, "poc");
        assert!(claims.user.is_none() && claims.fam.is_none() && claims.launch.is_none());
        assert_eq!(claims.exp, now.timestamp() + 300);
        let other = client_credentials_claims(&settings(), "poc", &scope, None, now).unwrap();
        assert_ne!(claims.jti, other.jti);
    }
}

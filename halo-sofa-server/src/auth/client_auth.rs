//! Client authentication at the token and introspection endpoints (REQ AS-06): public,
//! `client_secret_basic`, `client_secret_post` and `private_key_jwt` (RS384, ES384) with a
//! `jti` replay store and a cached JWKS URL fetch.

use std::collections::HashSet;
use std::sync::PoisonError;
use std::time::Instant;

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use halo_model::oauth::OAuthError;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use super::clients::{ClientAuthentication, RegisteredClient};
use super::server::{Inner, paths};
use crate::config::url_allowed;
use crate::tls::PeerCertificate;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The most a fetched JWKS may weigh (SEC-03).
const MAX_JWKS_BYTES: usize = 64 * 1024;

/// Reads the single value of a form parameter.
pub(crate) fn form_value<'a>(
    params: &'a [(String, String)],
    name: &str,
) -> Result<Option<&'a str>, OAuthError> {
    let mut values = params.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
    let first = values.next();
    if values.next().is_some() {
        return Err(OAuthError::invalid_request(format!(
            "the parameter {name} is repeated"
        )));
    }
    Ok(first.map(String::as_str).filter(|v| !v.is_empty()))
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    aud: Value,
    exp: i64,
    jti: String,
}

/// Whether an assertion's `aud` names this server: a single value equal to the token URL (RFC
/// 7523) or to the issuer (what current OpenID guidance and openid-client send).
fn audience_accepted(aud: &Value, token_url: &str, issuer: &str) -> bool {
    let single = match aud {
        Value::String(one) => Some(one.as_str()),
        Value::Array(list) if list.len() == 1 => list[0].as_str(),
        _ => None,
    };
    single.is_some_and(|aud| aud == token_url || aud == issuer)
}

/// The client the request authenticates as, or `invalid_client` (401).
pub(crate) async fn authenticate_client(
    inner: &Inner,
    headers: &HeaderMap,
    params: &[(String, String)],
    peer: Option<&PeerCertificate>,
) -> Result<RegisteredClient, OAuthError> {
    let form_client = form_value(params, "client_id")?;
    let unknown = || OAuthError::invalid_client("client authentication failed");

    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let decoded = STANDARD
            .decode(basic.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(unknown)?;
        let (id, secret) = decoded.split_once(':').ok_or_else(unknown)?;
        let id = form_urldecode(id);
        let secret = form_urldecode(secret);
        if form_client.is_some_and(|f| f != id) {
            return Err(unknown());
        }
        let client = lookup(inner, &id).await?.ok_or_else(unknown)?;
        return if client.authentication.secret_matches(&secret) {
            Ok(client)
        } else {
            Err(unknown())
        };
    }

    if let Some(assertion) = form_value(params, "client_assertion")? {
        if form_value(params, "client_assertion_type")? != Some(JWT_BEARER) {
            return Err(OAuthError::invalid_request(
                "client_assertion_type must be jwt-bearer",
            ));
        }
        return verify_assertion(inner, assertion, form_client).await;
    }

    let id = form_client.ok_or_else(unknown)?;
    let client = lookup(inner, id).await?.ok_or_else(unknown)?;
    match (&client.authentication, form_value(params, "client_secret")?) {
        (ClientAuthentication::Public, None) => Ok(client),
        // REQ OPS-03: tls_client_auth, the certificate of this connection is the credential.
        (ClientAuthentication::TlsClientAuth(identity), None)
            if peer.is_some_and(|p| identity.matches(p)) =>
        {
            Ok(client)
        }
        (auth @ ClientAuthentication::Secret { .. }, Some(secret))
            if auth.secret_matches(secret) =>
        {
            Ok(client)
        }
        _ => Err(unknown()),
    }
}

/// Whether the request carries any client credential or identifier (an `Authorization`
/// header, `client_id`, `client_secret` or `client_assertion`).
pub(crate) fn presents_credentials(headers: &HeaderMap, params: &[(String, String)]) -> bool {
    headers.contains_key(header::AUTHORIZATION)
        || params.iter().any(|(k, _)| {
            matches!(
                k.as_str(),
                "client_id" | "client_secret" | "client_assertion" | "client_assertion_type"
            )
        })
}

/// The client with this id, configured or in the store (REQ OPS-05).
pub(crate) async fn lookup(
    inner: &Inner,
    client_id: &str,
) -> Result<Option<RegisteredClient>, OAuthError> {
    inner
        .client(client_id)
        .await
        .map_err(|_| OAuthError::temporarily_unavailable("the store is unavailable; retry shortly"))
}

fn form_urldecode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// `private_key_jwt` (REQ AS-06): RS384 or ES384 only, signed by a key of the client's JWKS
/// named by `kid`, `iss` = `sub` = the client, `aud` = the token URL, `exp` at most five minutes
/// ahead, and a `jti` never seen before.
async fn verify_assertion(
    inner: &Inner,
    assertion: &str,
    form_client: Option<&str>,
) -> Result<RegisteredClient, OAuthError> {
    let refused =
        |why: &str| OAuthError::invalid_client(format!("client assertion refused: {why}"));
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| refused("malformed"))?;
    if !matches!(header.alg, Algorithm::RS384 | Algorithm::ES384) {
        return Err(refused("the algorithm must be RS384 or ES384"));
    }
    // The issuer names the client; the signature is checked against that client's keys below.
    let unverified: AssertionClaims = jsonwebtoken::dangerous::insecure_decode(assertion)
        .map(|t| t.claims)
        .map_err(|_| refused("the claims are incomplete"))?;
    if form_client.is_some_and(|f| f != unverified.iss) {
        return Err(refused("client_id differs from the assertion issuer"));
    }
    let client = lookup(inner, &unverified.iss)
        .await?
        .ok_or_else(|| refused("unknown client"))?;
    let kid = header.kid.as_deref().ok_or_else(|| refused("no kid"))?;
    let key = client_key(inner, &client, kid).await?;

    let mut validation = Validation::new(header.alg);
    // The audience is checked below: jsonwebtoken accepts any one of several values.
    validation.validate_aud = false;
    validation.set_issuer(&[client.client_id.as_str()]);
    validation.sub = Some(client.client_id.clone());
    // Expiry is checked against the server's clock below.
    validation.validate_exp = false;
    validation.required_spec_claims = HashSet::from(["exp".into(), "aud".into(), "iss".into()]);
    let claims: AssertionClaims = jsonwebtoken::decode(assertion, &key, &validation)
        .map(|t| t.claims)
        .map_err(|_| refused("the signature, issuer, subject or audience does not verify"))?;
    if !audience_accepted(&claims.aud, &inner.url(paths::TOKEN), &inner.base_url) {
        return Err(refused(
            "aud must be one value: the token endpoint URL or the issuer",
        ));
    }
    let now = inner.clock.now().timestamp();
    let max = inner.config.assertion_max_lifetime.as_secs() as i64;
    if claims.exp <= now {
        return Err(refused("expired"));
    }
    if claims.exp > now + max {
        return Err(refused("exp is more than five minutes ahead"));
    }
    if claims.sub != client.client_id || claims.jti.is_empty() {
        return Err(refused("sub or jti"));
    }
    // REQ IDP-05: the `jti` is a row of the store until the assertion expires, so a replay is
    // refused after a restart and by every instance.
    let unavailable = |_| OAuthError::temporarily_unavailable("the store is unavailable");
    let expires_at =
        chrono::DateTime::from_timestamp(claims.exp, 0).ok_or_else(|| refused("exp"))?;
    let mut tx = inner.store.begin().await.map_err(unavailable)?;
    let fresh = tx
        .record_jti(
            &client.client_id,
            &claims.jti,
            expires_at,
            inner.clock.now(),
        )
        .await
        .map_err(unavailable)?;
    tx.commit().await.map_err(unavailable)?;
    if !fresh {
        return Err(refused("the jti was already used"));
    }
    Ok(client)
}

async fn client_key(
    inner: &Inner,
    client: &RegisteredClient,
    kid: &str,
) -> Result<DecodingKey, OAuthError> {
    let refused =
        |why: &str| OAuthError::invalid_client(format!("client assertion refused: {why}"));
    let find = |jwks: &Value| -> Option<DecodingKey> {
        let set: JwkSet = serde_json::from_value(jwks.clone()).ok()?;
        set.find(kid)
            .and_then(|jwk| DecodingKey::from_jwk(jwk).ok())
    };
    match &client.authentication {
        ClientAuthentication::PrivateKeyJwt { jwks } => {
            find(jwks).ok_or_else(|| refused("no registered key with this kid"))
        }
        ClientAuthentication::PrivateKeyJwtUrl { jwks_url } => {
            let cached = {
                let cache = inner
                    .jwks_cache
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                cache
                    .get(jwks_url)
                    .filter(|(at, _)| at.elapsed() < inner.config.jwks_cache_ttl)
                    .map(|(_, jwks)| jwks.clone())
            };
            if let Some(key) = cached.as_ref().and_then(find) {
                return Ok(key);
            }
            // A kid not in the cached set may be a rotated key: fetch once more.
            let fetched = fetch_jwks(inner, jwks_url).await?;
            let key = find(&fetched);
            inner
                .jwks_cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(jwks_url.clone(), (Instant::now(), fetched));
            key.ok_or_else(|| refused("no key with this kid at the client's JWKS URL"))
        }
        _ => Err(refused("this client does not use private_key_jwt")),
    }
}

async fn fetch_jwks(inner: &Inner, url: &str) -> Result<Value, OAuthError> {
    let refused = |why: &str| OAuthError::invalid_client(format!("client JWKS: {why}"));
    if !url_allowed(url, inner.config.development_mode) {
        return Err(refused("the JWKS URL must be https"));
    }
    let response = inner
        .http
        .get(url)
        .send()
        .await
        .map_err(|_| refused("unreachable"))?;
    if !response.status().is_success() {
        return Err(refused("the JWKS URL answered with an error"));
    }
    let body = crate::outbound::read_bounded(response, MAX_JWKS_BYTES)
        .await
        .map_err(|e| match e {
            crate::outbound::BodyError::TooLarge(_) => refused("too large"),
            crate::outbound::BodyError::Unreadable => refused("unreadable"),
        })?;
    serde_json::from_slice(&body).map_err(|_| refused("not JSON"))
}

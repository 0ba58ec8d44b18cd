//! The token endpoint (REQ AS-05..AS-08, SC-10, SC-12): `authorization_code` with PKCE,
//! `refresh_token` with rotation and family revocation, and `client_credentials` for PoCs.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::{Extension, Form};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use halo_model::oauth::OAuthError;
use halo_model::scope::{Scope, ScopeSet};
use halo_model::smart::TokenResponse;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::builtin::AccessClaims;
use super::client_auth::{authenticate_client, form_value, lookup, presents_credentials};
use super::clients::{ClientAuthentication, RegisteredClient};
use super::grant::{covered, narrow};
use super::keys::KeyUse;
use super::server::{Inner, hash_secret, no_store, oauth_error, random_token};
use crate::store::{LaunchRecord, RefreshTokenRecord, StoreError, Transaction};
use crate::tls::PeerCertificate;

type Params = Vec<(String, String)>;

pub(super) async fn token(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    peer: Option<Extension<PeerCertificate>>,
    form: Result<Form<Params>, FormRejection>,
) -> Response {
    let (grant_type, result) = match form {
        Ok(Form(params)) => {
            let result = grant(&inner, &headers, &params, peer.as_deref()).await;
            let grant_type = form_value(&params, "grant_type").ok().flatten();
            (grant_type.map(str::to_string), result)
        }
        Err(_) => (
            None,
            Err(Refusal::OAuth(OAuthError::invalid_request(
                "send the token request as application/x-www-form-urlencoded",
            ))),
        ),
    };
    // REQ OPS-02: every token request by grant type and outcome.
    crate::metrics::grant(
        grant_type.as_deref(),
        result.as_ref().map_or_else(
            |e| match e {
                Refusal::OAuth(error) => error.error.as_str(),
                Refusal::Throttled(_) => "rate_limited",
            },
            |_| "issued",
        ),
    );
    match result {
        Ok(body) => no_store(StatusCode::OK, body),
        Err(Refusal::OAuth(error)) => oauth_error(&headers, &error),
        Err(Refusal::Throttled(wait)) => {
            let error = OAuthError::temporarily_unavailable(
                "too many token requests by this client; retry later",
            );
            let mut response = no_store(StatusCode::TOO_MANY_REQUESTS, error.to_json());
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(crate::error::retry_after_seconds(wait)),
            );
            response
        }
    }
}

/// Why a token request gets no token.
enum Refusal {
    /// An RFC 6749 §5.2 error.
    OAuth(OAuthError),
    /// The client is over its rate limit (REQ HARD-04): 429 with `Retry-After`.
    Throttled(std::time::Duration),
}

impl From<OAuthError> for Refusal {
    fn from(error: OAuthError) -> Self {
        Refusal::OAuth(error)
    }
}

fn unavailable(_: StoreError) -> OAuthError {
    OAuthError::temporarily_unavailable("the store is unavailable; retry shortly")
}

async fn grant(
    inner: &Inner,
    headers: &HeaderMap,
    params: &Params,
    peer: Option<&PeerCertificate>,
) -> Result<String, Refusal> {
    // Tokens are signed with the keys as the store has them (a rotation by another instance).
    inner.fresh_keys(false).await;
    let grant_type = form_value(params, "grant_type")?;
    let client = match authenticate_client(inner, headers, params, peer).await {
        Ok(client) => client,
        // RFC 6749 §6: a public client may refresh without naming itself (client-js does);
        // the refresh token already says whose it is.
        Err(error)
            if grant_type == Some("refresh_token") && !presents_credentials(headers, params) =>
        {
            public_client_of_refresh(inner, params)
                .await?
                .ok_or(error)?
        }
        Err(error) => return Err(error.into()),
    };
    inner
        .client_limit
        .check(&client.client_id)
        .map_err(|wait| {
            crate::metrics::rate_limit_refusal("client");
            Refusal::Throttled(wait)
        })?;
    // REQ OPS-03 (RFC 8705 §3): a token asked for over a connection with a client certificate
    // is bound to it, whatever authenticated the client.
    let cnf = peer.map(PeerCertificate::confirmation);
    let response = match grant_type {
        Some("authorization_code") => code_grant(inner, &client, params, cnf).await?,
        Some("refresh_token") => refresh_grant(inner, &client, params, cnf).await?,
        Some("client_credentials") => client_credentials(inner, &client, params, cnf)?,
        Some(_) => {
            return Err(Refusal::OAuth(
                OAuthError::new(halo_model::oauth::OAuthErrorCode::UnsupportedGrantType)
                    .with_description(
                        "grant types: authorization_code, refresh_token, client_credentials",
                    ),
            ));
        }
        None => return Err(OAuthError::invalid_request("grant_type is missing").into()),
    };
    serde_json::to_string(&response).map_err(|_| OAuthError::server_error("encoding failed").into())
}

/// What a token response is issued for.
struct Grant<'a> {
    client: &'a RegisteredClient,
    user: Option<String>,
    scope: ScopeSet,
    launch: Option<LaunchRecord>,
    family: String,
    nonce: Option<String>,
    fhir_user: Option<String>,
    /// The certificate binding of the access token (RFC 8705), when there is one.
    cnf: Option<Value>,
}

async fn code_grant(
    inner: &Inner,
    client: &RegisteredClient,
    params: &Params,
    cnf: Option<Value>,
) -> Result<TokenResponse, OAuthError> {
    let code = form_value(params, "code")?
        .ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
    let mut tx = inner.store.begin().await.map_err(unavailable)?;
    let record = tx
        .consume_authorization_code(&hash_secret(code))
        .await
        .map_err(unavailable)?;
    // The code is spent whatever follows: a failed attempt cannot be retried with it.
    tx.commit().await.map_err(unavailable)?;
    let record = record.ok_or_else(|| OAuthError::invalid_grant("the code is unknown"))?;
    let family = record
        .details
        .get("family")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if record.consumed {
        // REQ AS-05: a replayed code revokes what its first use produced.
        revoke_family(inner, &family).await?;
        return Err(OAuthError::invalid_grant(
            "the code was already used; the tokens issued from it are revoked",
        ));
    }
    let now = inner.clock.now();
    if record.client_id != client.client_id {
        return Err(OAuthError::invalid_grant(
            "the code was issued to another client",
        ));
    }
    if now >= record.expires_at {
        return Err(OAuthError::invalid_grant("the code has expired"));
    }
    if form_value(params, "redirect_uri")? != Some(record.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant(
            "redirect_uri differs from the authorization request's",
        ));
    }
    let verifier = form_value(params, "code_verifier")?
        .ok_or_else(|| OAuthError::invalid_grant("code_verifier is missing (PKCE)"))?;
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if !bool::from(computed.as_bytes().ct_eq(record.code_challenge.as_bytes())) {
        return Err(OAuthError::invalid_grant(
            "code_verifier does not match the code_challenge",
        ));
    }
    let launch = {
        let mut tx = inner.store.begin_read().await.map_err(unavailable)?;
        let launch = live_launch(inner, tx.as_mut(), record.launch_id.as_deref()).await?;
        let _ = tx.rollback().await;
        launch
    };
    let detail = |name: &str| {
        record
            .details
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let prepared = prepare(
        inner,
        Grant {
            client,
            user: record.user.clone(),
            scope: ScopeSet::parse_lenient(&record.scope).0,
            launch,
            family,
            nonce: detail("nonce"),
            fhir_user: detail("fhir_user"),
            cnf,
        },
        None,
    )?;
    // A launch cleared between the read and this write revokes the grant by launch id, and
    // every use of its tokens checks the launch again (REQ SC-12), so the read need not hold
    // the write lock.
    if prepared.refresh.is_some() {
        let mut tx = inner.store.begin().await.map_err(unavailable)?;
        store_refresh(tx.as_mut(), &prepared).await?;
        tx.commit().await.map_err(unavailable)?;
    }
    sign_prepared(inner, prepared)
}

/// The launch, if the grant has one, must still live (REQ SC-12).
async fn live_launch(
    inner: &Inner,
    tx: &mut dyn Transaction,
    launch_id: Option<&str>,
) -> Result<Option<LaunchRecord>, OAuthError> {
    let Some(launch_id) = launch_id else {
        return Ok(None);
    };
    match tx.get_launch(launch_id).await.map_err(unavailable)? {
        Some(launch) if !launch.is_expired(inner.clock.now()) => Ok(Some(launch)),
        _ => Err(OAuthError::invalid_grant(
            "the launch context was cleared or has expired",
        )),
    }
}

pub(super) async fn revoke_family(inner: &Inner, family: &str) -> Result<(), OAuthError> {
    if family.is_empty() {
        return Ok(());
    }
    // REQ IDP-05: the revocation is a row of the store, so it holds after a restart and on
    // every instance; it is kept until the last access token the family may hold has expired.
    let ttl =
        Duration::from_std(inner.config.access_token_ttl).unwrap_or_else(|_| Duration::hours(1));
    let mut tx = inner.store.begin().await.map_err(unavailable)?;
    tx.revoke_token_family(family).await.map_err(unavailable)?;
    tx.revoke_access_family(family, inner.clock.now() + ttl)
        .await
        .map_err(unavailable)?;
    tx.commit().await.map_err(unavailable)
}

/// The record of a presented refresh token, read outside any write.
pub(super) async fn find_refresh(
    inner: &Inner,
    presented: &str,
) -> Result<Option<RefreshTokenRecord>, OAuthError> {
    let mut tx = inner.store.begin_read().await.map_err(unavailable)?;
    let record = tx
        .get_refresh_token(&hash_secret(presented))
        .await
        .map_err(unavailable)?;
    let _ = tx.rollback().await;
    Ok(record)
}

/// The public client a presented refresh token was issued to, if it was issued to one.
async fn public_client_of_refresh(
    inner: &Inner,
    params: &Params,
) -> Result<Option<RegisteredClient>, OAuthError> {
    let Some(presented) = form_value(params, "refresh_token")? else {
        return Ok(None);
    };
    let Some(record) = find_refresh(inner, presented).await? else {
        return Ok(None);
    };
    Ok(lookup(inner, &record.client_id)
        .await?
        .filter(|c| c.authentication == ClientAuthentication::Public))
}

async fn refresh_grant(
    inner: &Inner,
    client: &RegisteredClient,
    params: &Params,
    cnf: Option<Value>,
) -> Result<TokenResponse, OAuthError> {
    let presented = form_value(params, "refresh_token")?
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
    let mut tx = inner.store.begin().await.map_err(unavailable)?;
    let record = tx
        .get_refresh_token(&hash_secret(presented))
        .await
        .map_err(unavailable)?
        .ok_or_else(|| OAuthError::invalid_grant("the refresh token is unknown"))?;
    if record.client_id != client.client_id {
        return Err(OAuthError::invalid_grant(
            "the refresh token was issued to another client",
        ));
    }
    if record.revoked {
        drop(tx);
        // REQ AS-08: reuse of a rotated token revokes the whole family.
        revoke_family(inner, &record.family_id).await?;
        return Err(OAuthError::invalid_grant(
            "the refresh token was already used or revoked; its family is revoked",
        ));
    }
    if inner.clock.now() >= record.expires_at {
        return Err(OAuthError::invalid_grant("the refresh token has expired"));
    }
    let launch = live_launch(inner, tx.as_mut(), record.launch_id.as_deref()).await?;
    let original = ScopeSet::parse_lenient(&record.scope).0;
    let access_scope = match form_value(params, "scope")? {
        None => None,
        Some(text) => {
            let requested =
                ScopeSet::parse(text).map_err(|e| OAuthError::invalid_scope(format!("{e}")))?;
            if let Some(extra) = requested.iter().find(|s| !covered(s, &original)) {
                return Err(OAuthError::invalid_scope(format!(
                    "{extra} was not granted; a refresh may only narrow the scopes"
                )));
            }
            Some(requested)
        }
    };
    tx.revoke_refresh_token(&record.token_hash)
        .await
        .map_err(unavailable)?;
    let detail = |name: &str| {
        record
            .details
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let prepared = prepare(
        inner,
        Grant {
            client,
            user: record.user.clone(),
            scope: original,
            launch,
            family: record.family_id.clone(),
            nonce: None,
            fhir_user: detail("fhir_user"),
            cnf,
        },
        access_scope,
    )?;
    // The rotation commits first; the signatures run after, with no lock held.
    store_refresh(tx.as_mut(), &prepared).await?;
    tx.commit().await.map_err(unavailable)?;
    sign_prepared(inner, prepared)
}

/// `client_credentials`: confidential clients only (PoCs and backend services); no user, no
/// launch, no refresh token (D-06).
fn client_credentials(
    inner: &Inner,
    client: &RegisteredClient,
    params: &Params,
    cnf: Option<Value>,
) -> Result<TokenResponse, OAuthError> {
    if !client.authentication.is_confidential() {
        return Err(OAuthError::unauthorized_client(
            "client_credentials is for confidential clients",
        ));
    }
    let scope = match form_value(params, "scope")? {
        Some(text) => narrow(
            &ScopeSet::parse(text).map_err(|e| OAuthError::invalid_scope(format!("{e}")))?,
            &client.allowed_scopes,
        ),
        None => client.allowed_scopes.clone(),
    };
    if scope.is_empty() {
        return Err(OAuthError::invalid_scope(
            "none of the requested scopes may be granted to this client",
        ));
    }
    let now = inner.clock.now();
    let ttl = inner.config.access_token_ttl.as_secs();
    let claims = AccessClaims {
        iss: inner.base_url.clone(),
        sub: client.client_id.clone(),
        aud: inner.base_url.clone(),
        exp: now.timestamp() + ttl as i64,
        iat: now.timestamp(),
        jti: random_token()?,
        client_id: client.client_id.clone(),
        scope: scope.to_string(),
        user: None,
        launch: None,
        fam: None,
        fhir_user: None,
        cnf,
    };
    let mut response = TokenResponse::bearer(sign(inner, KeyUse::AccessToken, &claims)?);
    response.expires_in = Some(ttl);
    response.scope = Some(scope.to_string());
    Ok(response)
}

fn sign<T: serde::Serialize>(
    inner: &Inner,
    key_use: KeyUse,
    claims: &T,
) -> Result<String, OAuthError> {
    inner
        .keys()
        .sign_at(key_use, inner.clock.now(), claims)
        .map_err(|_| OAuthError::server_error("the token could not be signed"))
}

/// The absolute `fhirUser` URL of the signed-in user (decided at authorization, D-18).
fn fhir_user_url(inner: &Inner, grant: &Grant<'_>) -> Option<String> {
    let reference = grant.fhir_user.clone()?;
    Some(
        if reference.starts_with("http://") || reference.starts_with("https://") {
            reference
        } else {
            format!("{}/{reference}", inner.base_url)
        },
    )
}

/// A grant's tokens, decided but not yet signed: the claims, and the refresh token with the
/// record to store for it. Deciding needs no key and no store; signing needs no transaction,
/// so no store lock is held while RSA and ECDSA run (issue: nothing slow under a lock).
struct Prepared {
    claims: AccessClaims,
    id_claims: Option<Value>,
    refresh: Option<(String, RefreshTokenRecord)>,
    ttl: u64,
    scope: ScopeSet,
    launch: Option<LaunchRecord>,
}

/// Decides the tokens of `grant` (REQ AS-07, SC-10).
fn prepare(
    inner: &Inner,
    grant: Grant<'_>,
    access_scope: Option<ScopeSet>,
) -> Result<Prepared, OAuthError> {
    let now = inner.clock.now();
    let ttl = inner.config.access_token_ttl.as_secs();
    let scope = access_scope.unwrap_or_else(|| grant.scope.clone());
    let fhir_user = fhir_user_url(inner, &grant);
    let launch_id = grant.launch.as_ref().map(|l| l.launch_id.clone());
    let claims = AccessClaims {
        iss: inner.base_url.clone(),
        sub: grant
            .user
            .clone()
            .unwrap_or_else(|| grant.client.client_id.clone()),
        aud: inner.base_url.clone(),
        exp: now.timestamp() + ttl as i64,
        iat: now.timestamp(),
        jti: random_token()?,
        client_id: grant.client.client_id.clone(),
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
            "iss": inner.base_url,
            "sub": user,
            "aud": grant.client.client_id,
            "exp": now.timestamp() + ttl as i64,
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
    let wants_refresh = grant
        .scope
        .iter()
        .any(|s| matches!(s, Scope::OfflineAccess | Scope::OnlineAccess));
    let mut refresh = None;
    if wants_refresh {
        let token = random_token()?;
        let refresh_ttl = Duration::from_std(inner.config.refresh_token_ttl)
            .unwrap_or_else(|_| Duration::hours(12));
        let record = RefreshTokenRecord {
            token_hash: hash_secret(&token),
            family_id: grant.family.clone(),
            client_id: grant.client.client_id.clone(),
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

/// Stores the refresh token a prepared grant carries, in `tx`.
async fn store_refresh(tx: &mut dyn Transaction, prepared: &Prepared) -> Result<(), OAuthError> {
    if let Some((_, record)) = &prepared.refresh {
        tx.insert_refresh_token(record.clone())
            .await
            .map_err(unavailable)?;
    }
    Ok(())
}

/// Signs a prepared grant's tokens, outside any transaction, into the token response.
fn sign_prepared(inner: &Inner, prepared: Prepared) -> Result<TokenResponse, OAuthError> {
    let mut response = TokenResponse::bearer(sign(inner, KeyUse::AccessToken, &prepared.claims)?);
    response.expires_in = Some(prepared.ttl);
    response.scope = Some(prepared.scope.to_string());
    if let Some(launch) = &prepared.launch {
        response = response.with_launch_context(launch.launch_context());
    }
    if let Some(id) = &prepared.id_claims {
        response.id_token = Some(sign(inner, KeyUse::IdToken, id)?);
    }
    response.refresh_token = prepared.refresh.map(|(token, _)| token);
    Ok(response)
}

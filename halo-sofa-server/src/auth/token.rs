//! The token endpoint (REQ AS-05..AS-08, SC-10, SC-12): `authorization_code` with PKCE,
//! `refresh_token` with rotation and family revocation, and `client_credentials` for PoCs.
//!
//! The decisions are [`super::decide`]'s; this shell reads and writes the store around them,
//! each exchange in one write unit, and signs the tokens after it commits, with no lock held.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::{Extension, Form};
use halo_model::oauth::OAuthError;
use halo_model::scope::ScopeSet;
use halo_model::smart::TokenResponse;
use serde_json::Value;

use super::answers::{no_store, oauth_error};
use super::client_auth::{ClientAuthenticator, presents_credentials};
use super::clients::{ClientAuthentication, RegisteredClient};
use super::decide::exchange::{Refused, check_code, check_refresh, detail, live_launch};
use super::decide::scopes::{client_credentials_scope, refresh_scope};
use super::decide::single;
use super::decide::tokens::{
    Grant, Prepared, TokenSettings, client_credentials_claims, hash_secret, prepare,
};
use super::families::{Families, unavailable};
use super::keys::KeyUse;
use super::signing::SigningKeys;
use crate::clock::Clock;
use crate::limits::Limiter;
use crate::store::{Store, StoreError, Transaction};
use crate::tls::PeerCertificate;

type Params = Vec<(String, String)>;

/// What the token endpoint needs.
pub(crate) struct TokenEndpoint {
    pub(crate) settings: TokenSettings,
    pub(crate) clients: Arc<ClientAuthenticator>,
    pub(crate) keys: Arc<SigningKeys>,
    pub(crate) families: Families,
    /// Each client's budget of token requests (REQ HARD-04).
    pub(crate) client_limit: Limiter,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
}

pub(super) async fn token(
    State(endpoint): State<Arc<TokenEndpoint>>,
    headers: HeaderMap,
    peer: Option<Extension<PeerCertificate>>,
    form: Result<Form<Params>, FormRejection>,
) -> Response {
    let (grant_type, result) = match form {
        Ok(Form(params)) => {
            let result = grant(&endpoint, &headers, &params, peer.as_deref()).await;
            let grant_type = single(&params, "grant_type").ok().flatten();
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

async fn grant(
    endpoint: &Arc<TokenEndpoint>,
    headers: &HeaderMap,
    params: &Params,
    peer: Option<&PeerCertificate>,
) -> Result<String, Refusal> {
    // Tokens are signed with the keys as the store has them (a rotation by another instance).
    endpoint.keys.fresh(false).await;
    let grant_type = single(params, "grant_type").map_err(OAuthError::from)?;
    let client = match endpoint.clients.authenticate(headers, params, peer).await {
        Ok(client) => client,
        // RFC 6749 §6: a public client may refresh without naming itself (client-js does);
        // the refresh token already says whose it is.
        Err(error)
            if grant_type == Some("refresh_token") && !presents_credentials(headers, params) =>
        {
            public_client_of_refresh(endpoint, params)
                .await?
                .ok_or(error)?
        }
        Err(error) => return Err(error.into()),
    };
    endpoint
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
        Some("authorization_code") => code_grant(endpoint, &client, params, cnf).await?,
        Some("refresh_token") => refresh_grant(endpoint, &client, params, cnf).await?,
        Some("client_credentials") => client_credentials(endpoint, &client, params, cnf)?,
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

/// Why an exchange's write unit wrote nothing.
enum Unwritten {
    /// The store failed or was busy: `temporarily_unavailable`.
    Store(StoreError),
    /// A refusal that spends nothing (the unit rolls back).
    Refused(OAuthError),
}

impl From<StoreError> for Unwritten {
    fn from(error: StoreError) -> Self {
        Unwritten::Store(error)
    }
}

/// What an exchange's unit keeps: the prepared tokens, or a refusal whose writes (a spent
/// code, a revoked family) commit all the same.
type Exchanged = Result<Prepared, OAuthError>;

/// Carries out a refusal within `tx` (a replay or reuse revokes its family); the unit then
/// commits and answers its error.
async fn refuse_in(
    tx: &mut dyn Transaction,
    families: &Families,
    refused: Refused,
) -> Result<Exchanged, Unwritten> {
    if let Refused::RevokeFamily { family, .. } = &refused {
        families
            .revoke_in(tx, family)
            .await
            .map_err(Unwritten::Refused)?;
    }
    Ok(Err(refused.error().clone()))
}

/// The launch a grant names, as stored (`None`: no launch, or none stored under its id).
async fn launch_of(
    tx: &mut dyn Transaction,
    launch_id: Option<&str>,
) -> Result<Option<crate::store::LaunchRecord>, StoreError> {
    match launch_id {
        Some(launch_id) => tx.get_launch(launch_id).await,
        None => Ok(None),
    }
}

/// Runs an exchange's unit and signs what it prepared, after its commit and with no lock held.
async fn exchange<F>(endpoint: &TokenEndpoint, unit: F) -> Result<TokenResponse, OAuthError>
where
    F: for<'t> FnOnce(
            &'t mut dyn Transaction,
        ) -> crate::store::BoxFuture<'t, Result<Exchanged, Unwritten>>
        + Send
        + 'static,
{
    match endpoint.store.write(unit).await {
        Ok(Ok(prepared)) => sign_prepared(endpoint, prepared),
        Ok(Err(refusal)) | Err(Unwritten::Refused(refusal)) => Err(refusal),
        Err(Unwritten::Store(error)) => Err(unavailable(error)),
    }
}

/// `authorization_code` (REQ AS-05): one write unit spends the code, revokes its family on a
/// replay, reads the launch and stores the refresh token; the tokens are signed after it
/// commits.
async fn code_grant(
    endpoint: &Arc<TokenEndpoint>,
    client: &RegisteredClient,
    params: &Params,
    cnf: Option<Value>,
) -> Result<TokenResponse, OAuthError> {
    let code =
        single(params, "code")?.ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
    let code_hash = hash_secret(code);
    let redirect_uri = single(params, "redirect_uri")?.map(str::to_owned);
    let verifier = single(params, "code_verifier")?.map(str::to_owned);
    let client_id = client.client_id.clone();
    let shared = endpoint.clone();
    exchange(endpoint, move |tx| {
        Box::pin(async move {
            let record = tx.consume_authorization_code(&code_hash).await?;
            let now = shared.clock.now();
            // The code is spent whatever follows: a refused attempt commits too, so the code
            // cannot be retried.
            let record = match check_code(
                record.as_ref(),
                &client_id,
                redirect_uri.as_deref(),
                verifier.as_deref(),
                now,
            ) {
                Ok(record) => record,
                Err(refused) => return refuse_in(tx, &shared.families, refused).await,
            };
            let launch = launch_of(tx, record.launch_id.as_deref()).await?;
            let launch = match live_launch(record.launch_id.as_deref(), launch, now) {
                Ok(launch) => launch,
                Err(error) => return refuse_in(tx, &shared.families, Refused::Plain(error)).await,
            };
            let prepared = prepare(
                &shared.settings,
                Grant {
                    client_id,
                    user: record.user.clone(),
                    scope: ScopeSet::parse_lenient(&record.scope).0,
                    launch,
                    family: detail(&record.details, "family").unwrap_or_default(),
                    nonce: detail(&record.details, "nonce"),
                    fhir_user: detail(&record.details, "fhir_user"),
                    cnf,
                },
                None,
                now,
            )
            .map_err(Unwritten::Refused)?;
            store_refresh(tx, &prepared).await?;
            Ok(Ok(prepared))
        })
    })
    .await
}

/// The public client a presented refresh token was issued to, if it was issued to one.
async fn public_client_of_refresh(
    endpoint: &TokenEndpoint,
    params: &Params,
) -> Result<Option<RegisteredClient>, OAuthError> {
    let Some(presented) = single(params, "refresh_token")? else {
        return Ok(None);
    };
    let Some(record) = endpoint.families.find_refresh(presented).await? else {
        return Ok(None);
    };
    Ok(endpoint
        .clients
        .lookup(&record.client_id)
        .await?
        .filter(|c| c.authentication == ClientAuthentication::Public))
}

/// `refresh_token` (REQ AS-08): one write unit reads the token, rotates it (or revokes its
/// family on a reuse) and stores the new one; the tokens are signed after it commits.
async fn refresh_grant(
    endpoint: &Arc<TokenEndpoint>,
    client: &RegisteredClient,
    params: &Params,
    cnf: Option<Value>,
) -> Result<TokenResponse, OAuthError> {
    let presented = single(params, "refresh_token")?
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
    let token_hash = hash_secret(presented);
    let requested_scope = single(params, "scope")?.map(str::to_owned);
    let client_id = client.client_id.clone();
    let shared = endpoint.clone();
    exchange(endpoint, move |tx| {
        Box::pin(async move {
            let record = tx.get_refresh_token(&token_hash).await?;
            let now = shared.clock.now();
            let record = match check_refresh(record.as_ref(), &client_id, now) {
                Ok(record) => record,
                Err(refused @ Refused::RevokeFamily { .. }) => {
                    return refuse_in(tx, &shared.families, refused).await;
                }
                // Nothing to write: the unit ends unused.
                Err(Refused::Plain(error)) => return Err(Unwritten::Refused(error)),
            };
            let launch = launch_of(tx, record.launch_id.as_deref()).await?;
            let launch = live_launch(record.launch_id.as_deref(), launch, now)
                .map_err(Unwritten::Refused)?;
            let original = ScopeSet::parse_lenient(&record.scope).0;
            let access_scope =
                refresh_scope(requested_scope.as_deref(), &original).map_err(Unwritten::Refused)?;
            tx.revoke_refresh_token(&record.token_hash).await?;
            let prepared = prepare(
                &shared.settings,
                Grant {
                    client_id,
                    user: record.user.clone(),
                    scope: original,
                    launch,
                    family: record.family_id.clone(),
                    nonce: None,
                    fhir_user: detail(&record.details, "fhir_user"),
                    cnf,
                },
                access_scope,
                now,
            )
            .map_err(Unwritten::Refused)?;
            // The rotation commits first; the signatures run after, with no lock held.
            store_refresh(tx, &prepared).await?;
            Ok(Ok(prepared))
        })
    })
    .await
}

/// `client_credentials`: confidential clients only (PoCs and backend services); no user, no
/// launch, no refresh token (D-06).
fn client_credentials(
    endpoint: &TokenEndpoint,
    client: &RegisteredClient,
    params: &Params,
    cnf: Option<Value>,
) -> Result<TokenResponse, OAuthError> {
    if !client.authentication.is_confidential() {
        return Err(OAuthError::unauthorized_client(
            "client_credentials is for confidential clients",
        ));
    }
    let scope = client_credentials_scope(single(params, "scope")?, &client.allowed_scopes)?;
    let claims = client_credentials_claims(
        &endpoint.settings,
        &client.client_id,
        &scope,
        cnf,
        endpoint.clock.now(),
    )?;
    let mut response = TokenResponse::bearer(sign(endpoint, KeyUse::AccessToken, &claims)?);
    response.expires_in = Some(endpoint.settings.access_ttl.as_secs());
    response.scope = Some(scope.to_string());
    Ok(response)
}

fn sign<T: serde::Serialize>(
    endpoint: &TokenEndpoint,
    key_use: KeyUse,
    claims: &T,
) -> Result<String, OAuthError> {
    endpoint
        .keys
        .sign(key_use, claims)
        .map_err(|_| OAuthError::server_error("the token could not be signed"))
}

/// Stores the refresh token a prepared grant carries, in `tx`.
async fn store_refresh(tx: &mut dyn Transaction, prepared: &Prepared) -> Result<(), StoreError> {
    if let Some((_, record)) = &prepared.refresh {
        tx.insert_refresh_token(record.clone()).await?;
    }
    Ok(())
}

/// Signs a prepared grant's tokens, outside any transaction, into the token response.
fn sign_prepared(
    endpoint: &TokenEndpoint,
    prepared: Prepared,
) -> Result<TokenResponse, OAuthError> {
    let mut response =
        TokenResponse::bearer(sign(endpoint, KeyUse::AccessToken, &prepared.claims)?);
    response.expires_in = Some(prepared.ttl);
    response.scope = Some(prepared.scope.to_string());
    if let Some(launch) = &prepared.launch {
        response = response.with_launch_context(launch.launch_context());
    }
    if let Some(id) = &prepared.id_claims {
        response.id_token = Some(sign(endpoint, KeyUse::IdToken, id)?);
    }
    response.refresh_token = prepared.refresh.map(|(token, _)| token);
    Ok(response)
}

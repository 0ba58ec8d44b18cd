//! The authorize endpoint, GET and POST (REQ AS-03, AS-04, AS-05, SC-09).
//!
//! An unknown client or unregistered redirect URI is shown to the user and never redirected
//! to; every later error goes back to the app per RFC 6749 §4.1.2.1 with its `state`.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Form, extract::rejection::FormRejection};
use chrono::Duration;
use halo_model::oauth::{OAuthError, OAuthErrorCode};
use halo_model::scope::ScopeSet;
use serde_json::json;

use super::grant::narrow;
use super::server::{Inner, hash_secret, paths, random_token};
use super::users::{AuthenticatedUser, Authentication, LoginRequest};
use crate::pages;
use crate::store::{AuthorizationCodeRecord, LaunchRecord};

type Params = Vec<(String, String)>;

pub(super) async fn authorize_get(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    query: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match query {
        Ok(Query(params)) => authorize(&inner, &Method::GET, &headers, params).await,
        Err(_) => error_page("the authorization request's query is malformed"),
    }
}

pub(super) async fn authorize_post(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    form: Result<Form<Params>, FormRejection>,
) -> Response {
    match form {
        Ok(Form(params)) => authorize(&inner, &Method::POST, &headers, params).await,
        Err(_) => error_page("send the authorization request as a form"),
    }
}

/// An error the user sees; nothing is redirected (REQ AS-03).
fn error_page(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, pages::authorization_error(message)).into_response()
}

/// The page a signed-in user sees for a launch that is not theirs (REQ IDP-04).
fn not_yours_page() -> Response {
    (StatusCode::FORBIDDEN, pages::not_your_launch()).into_response()
}

/// Whether `user` may launch an app with `launch` (D-18): only its owner, the clinician the
/// PoC signed in; a launch set in userless mode by anyone who signs in, and only while that
/// mode is on.
pub(crate) fn may_launch(user: &AuthenticatedUser, launch: &LaunchRecord, userless: bool) -> bool {
    match &launch.user {
        Some(owner) => *owner == user.id,
        None => userless,
    }
}

/// The `fhirUser` the tokens of an authorization carry (D-18, REQ IDP-04): the signed-in
/// user's own. When the sign-in names none and the user owns the launch, the owner's as the
/// PoC's token named it, else the launch's `fhirUser` parameter (the PoC's record of the same
/// clinician). Anyone else (userless mode) gets only their own: a launch's `fhirUser` never
/// names another person in a token.
pub(crate) fn token_fhir_user(
    user: &AuthenticatedUser,
    launch: Option<&LaunchRecord>,
) -> Option<String> {
    if user.fhir_user.is_some() {
        return user.fhir_user.clone();
    }
    let launch = launch?;
    if launch.user.as_deref() != Some(user.id.as_str()) {
        return None;
    }
    launch
        .owner_fhir_user
        .clone()
        .or_else(|| launch.fhir_user.clone())
}

fn redirect(redirect_uri: &str, pairs: &[(&str, String)]) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return error_page("the registered redirect URI is not a URL");
    };
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in pairs {
            query.append_pair(k, v);
        }
    }
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(location) = HeaderValue::from_str(url.as_str()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The one value of `name`; an error if it is repeated.
fn single<'a>(params: &'a Params, name: &str) -> Result<Option<&'a str>, String> {
    let mut values = params.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
    let first = values.next();
    if values.next().is_some() {
        return Err(format!("the parameter {name} is repeated"));
    }
    Ok(first.map(String::as_str).filter(|v| !v.is_empty()))
}

async fn authorize(
    inner: &Inner,
    method: &Method,
    headers: &HeaderMap,
    params: Params,
) -> Response {
    let client = match single(&params, "client_id") {
        Ok(Some(id)) => match inner.client(id).await {
            Ok(Some(client)) => client,
            Ok(None) => return error_page("the client_id is not registered with this server"),
            Err(_) => return error_page("the server is unavailable; retry shortly"),
        },
        Ok(None) => return error_page("the request has no client_id"),
        Err(e) => return error_page(&e),
    };
    let redirect_uri = match single(&params, "redirect_uri") {
        // Exact string comparison: no prefix, case or trailing-slash leniency (REQ AS-03).
        Ok(Some(uri)) if client.redirect_uris.iter().any(|r| r == uri) => uri.to_string(),
        Ok(None) if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        Ok(_) => return error_page("the redirect_uri is not registered for this client"),
        Err(e) => return error_page(&e),
    };
    let state = single(&params, "state").ok().flatten().map(str::to_string);
    let browser = Browser { method, headers };
    match checked(inner, &client, &redirect_uri, &params, browser).await {
        Ok(Step::Code(code)) => {
            let mut pairs = vec![("code", code)];
            if let Some(state) = state {
                pairs.push(("state", state));
            }
            redirect(&redirect_uri, &pairs)
        }
        Ok(Step::Respond(response)) => response,
        Err(mut error) => {
            if let Some(state) = state {
                error = error.with_state(state);
            }
            redirect(&redirect_uri, &error.to_query_pairs())
        }
    }
}

/// The parts of the request the user authenticator sees besides the parameters.
#[derive(Clone, Copy)]
struct Browser<'a> {
    method: &'a Method,
    headers: &'a HeaderMap,
}

enum Step {
    Code(String),
    Respond(Response),
}

async fn checked(
    inner: &Inner,
    client: &super::clients::RegisteredClient,
    redirect_uri: &str,
    params: &Params,
    browser: Browser<'_>,
) -> Result<Step, OAuthError> {
    let get = |name: &str| single(params, name).map_err(OAuthError::invalid_request);
    if get("response_type")? != Some("code") {
        return Err(OAuthError::new(OAuthErrorCode::UnsupportedResponseType)
            .with_description("only response_type=code is supported"));
    }
    // PKCE S256 only: `plain` or no challenge is refused (REQ AS-03).
    if get("code_challenge_method")? != Some("S256") {
        return Err(OAuthError::invalid_request(
            "PKCE is required with code_challenge_method=S256",
        ));
    }
    let challenge = get("code_challenge")?
        .filter(|c| {
            c.len() == 43
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .ok_or_else(|| OAuthError::invalid_request("code_challenge must be a S256 challenge"))?
        .to_string();
    let aud = get("aud")?.map(|a| a.trim_end_matches('/'));
    if aud != Some(inner.base_url.as_str()) {
        return Err(OAuthError::invalid_request(
            "aud must be this server's FHIR base URL",
        ));
    }
    let requested = ScopeSet::parse(get("scope")?.unwrap_or_default())
        .map_err(|e| OAuthError::invalid_scope(format!("{e}")))?;
    let granted = narrow(&requested, &client.allowed_scopes);
    if granted.is_empty() {
        return Err(OAuthError::invalid_scope(
            "none of the requested scopes may be granted to this client",
        ));
    }
    let launch = get("launch")?.map(str::to_string);
    if granted.has_launch() && launch.is_none() {
        return Err(OAuthError::invalid_request(
            "the launch scope needs the launch parameter (EHR launch)",
        ));
    }

    let action = inner.url(paths::AUTHORIZE);
    let user = match inner
        .users
        .authenticate(LoginRequest {
            method: browser.method,
            headers: browser.headers,
            params,
            action: &action,
        })
        .await
    {
        Authentication::User(user) => user,
        Authentication::Respond(response) => return Ok(Step::Respond(response)),
        Authentication::Denied => {
            return Err(OAuthError::access_denied("the user did not sign in"));
        }
    };

    let now = inner.clock.now();
    let mut tx = inner
        .store
        .begin()
        .await
        .map_err(|_| OAuthError::temporarily_unavailable("the store is unavailable"))?;
    let mut fhir_user = user.fhir_user.clone();
    if let Some(launch_id) = &launch {
        let record = tx
            .get_launch(launch_id)
            .await
            .map_err(|_| OAuthError::temporarily_unavailable("the store is unavailable"))?;
        // Unknown, expired and set for another app look the same to the app.
        let Some(record) = record.filter(|l| {
            !l.is_expired(now)
                && match (&l.app_id, &client.app_id) {
                    (Some(set_for), Some(app)) => set_for == app,
                    _ => true,
                }
        }) else {
            return Err(OAuthError::access_denied(
                "the launch is unknown, expired or set for another app",
            ));
        };
        // D-18, REQ IDP-04: someone else's launch gets an error page at the browser and no
        // code; the app learns nothing of it.
        if !may_launch(&user, &record, inner.userless_launches) {
            return Ok(Step::Respond(not_yours_page()));
        }
        fhir_user = token_fhir_user(&user, Some(&record));
    }
    let code = random_token()?;
    let ttl = Duration::from_std(inner.config.code_ttl).unwrap_or_else(|_| Duration::seconds(60));
    tx.insert_authorization_code(AuthorizationCodeRecord {
        code_hash: hash_secret(&code),
        client_id: client.client_id.clone(),
        redirect_uri: redirect_uri.to_string(),
        code_challenge: challenge,
        scope: granted.to_string(),
        user: Some(user.id.clone()),
        launch_id: launch,
        expires_at: now + ttl,
        consumed: false,
        details: json!({
            "nonce": get("nonce")?,
            "fhir_user": fhir_user,
            "family": random_token()?,
        }),
    })
    .await
    .map_err(|_| OAuthError::temporarily_unavailable("the store is unavailable"))?;
    tx.commit()
        .await
        .map_err(|_| OAuthError::temporarily_unavailable("the store is unavailable"))?;
    Ok(Step::Code(code))
}

//! The authorize endpoint, GET and POST (REQ AS-03, AS-04, AS-05, SC-09).
//!
//! An unknown client or unregistered redirect URI is shown to the user and never redirected
//! to; every later error goes back to the app per RFC 6749 §4.1.2.1 with its `state`.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::{Form, extract::rejection::FormRejection};
use chrono::Duration;
use halo_model::oauth::{OAuthError, OAuthErrorCode};
use halo_model::scope::ScopeSet;
use serde_json::json;

use super::grant::narrow;
use super::server::{Inner, hash_secret, paths, random_token};
use super::users::{Authentication, LoginRequest};
use crate::store::AuthorizationCodeRecord;

type Params = Vec<(String, String)>;

pub(super) async fn authorize_get(
    State(inner): State<Arc<Inner>>,
    query: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match query {
        Ok(Query(params)) => authorize(&inner, params).await,
        Err(_) => error_page("the authorization request's query is malformed"),
    }
}

pub(super) async fn authorize_post(
    State(inner): State<Arc<Inner>>,
    form: Result<Form<Params>, FormRejection>,
) -> Response {
    match form {
        Ok(Form(params)) => authorize(&inner, params).await,
        Err(_) => error_page("send the authorization request as a form"),
    }
}

/// An error the user sees; nothing is redirected (REQ AS-03).
fn error_page(message: &str) -> Response {
    let message = message.replace('&', "&amp;").replace('<', "&lt;");
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><html><head><title>Authorization error</title></head><body>\
             <h1>This app cannot be authorized</h1><p>{message}</p></body></html>"
        )),
    )
        .into_response()
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

async fn authorize(inner: &Inner, params: Params) -> Response {
    let client = match single(&params, "client_id") {
        Ok(Some(id)) => match inner.clients.get(id) {
            Some(client) => client,
            None => return error_page("the client_id is not registered with this server"),
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
    match checked(inner, client, &redirect_uri, &params).await {
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

enum Step {
    Code(String),
    Respond(Response),
}

async fn checked(
    inner: &Inner,
    client: &super::clients::RegisteredClient,
    redirect_uri: &str,
    params: &Params,
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
    if let Some(launch_id) = &launch {
        // Only the user who set the context may launch an app with it (REQ SC-09), and only
        // while it lives; an unknown, expired and someone else's launch look the same.
        let record = tx
            .get_launch(launch_id)
            .await
            .map_err(|_| OAuthError::temporarily_unavailable("the store is unavailable"))?;
        let usable = record.as_ref().is_some_and(|l| {
            !l.is_expired(now)
                && l.user.as_deref().is_none_or(|owner| owner == user.id)
                && match (&l.app_id, &client.app_id) {
                    (Some(set_for), Some(app)) => set_for == app,
                    _ => true,
                }
        });
        if !usable {
            return Err(OAuthError::access_denied(
                "the launch is unknown, expired or not this user's",
            ));
        }
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
            "fhir_user": user.fhir_user,
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

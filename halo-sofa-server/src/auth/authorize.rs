//! The authorize endpoint, GET and POST (REQ AS-03, AS-04, AS-05, SC-09).
//!
//! An unknown client or unregistered redirect URI is shown to the user and never redirected
//! to; every later error goes back to the app per RFC 6749 §4.1.2.1 with its `state`.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Form, extract::rejection::FormRejection};
use halo_model::oauth::OAuthError;

use super::clients::{ClientLookup, RegisteredClient};
use super::decide::authorize::{
    LaunchDecision, check_request, code_record, decide_launch, redirect_target,
};
use super::decide::single;
use super::decide::tokens::{hash_secret, random_token};
use super::families::unavailable;
use super::users::{Authentication, LoginRequest, UserAuthenticator};
use crate::clock::Clock;
use crate::pages;
use crate::store::{Store, StoreError};

type Params = Vec<(String, String)>;

/// What the authorize endpoint needs: the registry, the sign-in, the store for launches and
/// codes, and its own settings.
pub(crate) struct Authorizer {
    /// The FHIR base URL: `aud` must name it.
    pub(crate) issuer: String,
    /// The authorize endpoint's URL, where sign-in forms post.
    pub(crate) action: String,
    /// How long a code lives (REQ AS-05).
    pub(crate) code_ttl: std::time::Duration,
    /// The SoFA's userless mode (D-18).
    pub(crate) userless_launches: bool,
    pub(crate) clients: Arc<ClientLookup>,
    pub(crate) users: Arc<dyn UserAuthenticator>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
}

pub(super) async fn authorize_get(
    State(inner): State<Arc<Authorizer>>,
    headers: HeaderMap,
    query: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match query {
        Ok(Query(params)) => authorize(&inner, &Method::GET, &headers, params).await,
        Err(_) => error_page("the authorization request's query is malformed"),
    }
}

pub(super) async fn authorize_post(
    State(inner): State<Arc<Authorizer>>,
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

async fn authorize(
    inner: &Authorizer,
    method: &Method,
    headers: &HeaderMap,
    params: Params,
) -> Response {
    let client = match single(&params, "client_id") {
        Ok(Some(id)) => match inner.clients.get(id).await {
            Ok(Some(client)) => client,
            Ok(None) => return error_page("the client_id is not registered with this server"),
            Err(_) => return error_page("the server is unavailable; retry shortly"),
        },
        Ok(None) => return error_page("the request has no client_id"),
        Err(repeated) => return error_page(&repeated.message()),
    };
    let redirect_uri = match redirect_target(&client, &params) {
        Ok(uri) => uri,
        Err(why) => return error_page(&why),
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

/// Why an authorization stored no code.
enum NoCode {
    Store(StoreError),
    Refused(OAuthError),
    /// Someone else's launch: the error page, not a redirect.
    NotYours,
}

impl From<StoreError> for NoCode {
    fn from(error: StoreError) -> Self {
        NoCode::Store(error)
    }
}

/// The request checked ([`check_request`]), the user signed in, the launch read and decided
/// ([`decide_launch`]), and the code stored, in that order: no one is asked to sign in for a
/// request that would be refused anyway.
async fn checked(
    inner: &Authorizer,
    client: &RegisteredClient,
    redirect_uri: &str,
    params: &Params,
    browser: Browser<'_>,
) -> Result<Step, OAuthError> {
    let accepted = check_request(client, &inner.issuer, params)?;
    let user = match inner
        .users
        .authenticate(LoginRequest {
            method: browser.method,
            headers: browser.headers,
            params,
            action: &inner.action,
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
    let code = random_token()?;
    let family = random_token()?;
    let code_hash = hash_secret(&code);
    let (client, redirect_uri) = (client.clone(), redirect_uri.to_owned());
    let (userless, code_ttl) = (inner.userless_launches, inner.code_ttl);
    // One write unit reads the launch, decides, and stores the code.
    let stored = inner
        .store
        .write(move |tx| {
            Box::pin(async move {
                let record = match &accepted.launch {
                    Some(launch_id) => tx.get_launch(launch_id).await?,
                    None => None,
                };
                let fhir_user = match decide_launch(
                    &client,
                    &user,
                    accepted.launch.as_deref(),
                    record.as_ref(),
                    userless,
                    now,
                ) {
                    LaunchDecision::Allowed { fhir_user } => fhir_user,
                    LaunchDecision::Refused(error) => return Err(NoCode::Refused(error)),
                    LaunchDecision::NotYours => return Err(NoCode::NotYours),
                };
                let record = code_record(
                    code_hash,
                    &client,
                    &redirect_uri,
                    accepted,
                    &user,
                    fhir_user,
                    family,
                    now,
                    code_ttl,
                );
                tx.insert_authorization_code(record).await?;
                Ok(())
            })
        })
        .await;
    match stored {
        Ok(()) => {}
        Err(NoCode::Store(error)) => return Err(unavailable(error)),
        Err(NoCode::Refused(error)) => return Err(error),
        Err(NoCode::NotYours) => return Ok(Step::Respond(not_yours_page())),
    }
    Ok(Step::Code(code))
}

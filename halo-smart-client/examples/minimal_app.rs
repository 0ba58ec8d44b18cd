//! A complete minimal SMART app: the launch and callback handlers, and one page that reads the
//! patient in context.
//!
//! ```text
//! SMART_ISS=https://sofa.example.ca/fhir SMART_CLIENT_ID=my-app \
//! SMART_REDIRECT_URI=https://app.example.ca/callback cargo run --example minimal_app
//! ```
//!
//! Register `https://app.example.ca/launch` as the launch URL and the redirect URI above with the
//! authorization server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use halo_smart_client::binding::LAUNCH_COOKIE_MAX_AGE;
use halo_smart_client::store::MemoryLaunchStore;
use halo_smart_client::{
    BrowserBinding, ClientAuth, ClientConfig, ClientId, IssuerPolicy, RedirectUrl, SessionHandle,
    SmartClient, SmartError,
};
use maud::html;

/// What the handlers share: the SMART client and the signed-in sessions by cookie.
#[derive(Clone)]
struct App {
    smart: SmartClient,
    sessions: Arc<Mutex<HashMap<String, SessionHandle>>>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |k: &str| std::env::var(k).map_err(|_| format!("set {k}"));
    // One allowed issuer, with the app's registration there. Add more with `.allow(...)`.
    let policy = IssuerPolicy::new()
        .allow(
            env("SMART_ISS")?,
            ClientConfig::new(
                ClientId::new(env("SMART_CLIENT_ID")?)?,
                RedirectUrl::new(env("SMART_REDIRECT_URI")?)?,
                "launch openid fhirUser patient/Patient.rs patient/Observation.rs offline_access",
                ClientAuth::Public,
            ),
        )?
        .allow_http_loopback(std::env::var("SMART_DEV").is_ok());
    let app = App {
        smart: SmartClient::new(policy, Arc::new(MemoryLaunchStore::new()))?,
        sessions: Arc::default(),
    };
    let router = Router::new()
        .route("/launch", get(launch))
        .route("/callback", get(callback))
        .route("/", get(home))
        .with_state(app);
    let addr = std::env::var("APP_ADDR").unwrap_or_else(|_| "127.0.0.1:8000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("SMART app listening on http://{addr}");
    axum::serve(listener, router).await?;
    Ok(())
}

/// `GET /launch?iss=...&launch=...`: the EHR opens this. Send the browser to authorize.
async fn launch(State(app): State<App>, RawQuery(query): RawQuery) -> Response {
    let start = match app
        .smart
        .begin_launch_from_query(query.as_deref().unwrap_or(""))
        .await
    {
        Ok(start) => start,
        Err(e) => return error_page(&e),
    };
    // Only the browser holding this cookie can complete the launch (no login CSRF).
    let cookie = start.binding.set_cookie(LAUNCH_COOKIE_MAX_AGE);
    let next = match start.redirect {
        halo_smart_client::Redirect::Get(url) => Redirect::to(url.as_str()).into_response(),
        halo_smart_client::Redirect::Post(form) => Html(form.to_html()).into_response(),
    };
    ([(header::SET_COOKIE, cookie)], next).into_response()
}

/// `GET /callback?code=...&state=...`: the authorization server sends the browser back here.
async fn callback(
    State(app): State<App>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = query.unwrap_or_default();
    let cookies = headers.get(header::COOKIE).and_then(|c| c.to_str().ok());
    let binding = BrowserBinding::from_callback(&query, cookies);
    let session = match app.smart.complete_launch(&query, binding.as_deref()).await {
        Ok(session) => session,
        Err(e) => return error_page(&e),
    };
    let sid = match halo_smart_client::authorize::random_token(32) {
        Ok(sid) => sid,
        Err(e) => return error_page(&e),
    };
    if let Ok(mut sessions) = app.sessions.lock() {
        sessions.insert(sid.clone(), session);
    }
    // In an EHR frame on another site, browsers keep only partitioned cookies.
    let cookie = format!("__Host-sid={sid}; Path=/; HttpOnly; Secure; SameSite=None; Partitioned");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

/// `GET /`: the app itself, here a patient banner.
async fn home(State(app): State<App>, headers: HeaderMap) -> Response {
    let session = headers
        .get(header::COOKIE)
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.split("; ").find_map(|kv| kv.strip_prefix("__Host-sid=")))
        .and_then(|sid| app.sessions.lock().ok()?.get(sid).cloned());
    let Some(session) = session else {
        return (
            StatusCode::UNAUTHORIZED,
            "Please open the app from your EHR.",
        )
            .into_response();
    };
    match session.fhir().context_patient().await {
        Ok(patient) => {
            let name = patient["name"][0]["family"].as_str().unwrap_or("(no name)");
            // A maud template: `name` came from the server and is escaped like every value.
            Html(html! { h1 { "Patient: " (name) } }.into_string()).into_response()
        }
        Err(e) => error_page(&e),
    }
}

/// Clinicians see the plain message; the code and the developer detail go to the log for
/// support (neither ever holds a token).
fn error_page(e: &SmartError) -> Response {
    eprintln!("launch failed: {} ({e})", e.code());
    let status = match e {
        SmartError::InvalidLaunch { .. }
        | SmartError::InvalidState { .. }
        | SmartError::BrowserMismatch { .. }
        | SmartError::InvalidCallback { .. } => StatusCode::BAD_REQUEST,
        SmartError::SessionExpired { .. } => StatusCode::UNAUTHORIZED,
        SmartError::IssuerNotAllowed { .. } | SmartError::AuthorizationDenied(_) => {
            StatusCode::FORBIDDEN
        }
        _ => StatusCode::BAD_GATEWAY,
    };
    let page = html! { p { (e.user_message()) } };
    (status, Html(page.into_string())).into_response()
}

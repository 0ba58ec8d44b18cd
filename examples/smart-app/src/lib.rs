//! A small SMART on FHIR web app built only on `halo-smart-client` (REQ EX-02).
//!
//! - `GET /launch?iss=...&launch=...`: discovery, then a redirect to the authorization server,
//!   with the launch's browser binding in a cookie;
//! - `GET /callback?code=...&state=...`: checks the browser brought the binding back, the code
//!   exchange (PKCE), then a redirect to the session's page;
//! - `GET /s/{session}`: a patient banner when the SoFA asked for one (`need_patient_banner`),
//!   the patient's Observations, and a form that records a body weight;
//! - `POST /s/{session}/observations`: writes the Observation, then back to the page.
//!
//! Pages are server-rendered HTML from `maud` templates, which escape every interpolated value.
//! A failed launch, a launch without a patient and a refused authorization each get a page that
//! says what happened and what to do, and a log line with the error code and the developer detail
//! (never a token).
//!
//! **Inside an EMR's frame.** EMRs show apps in an iframe of their own page, on another site,
//! where browsers block third-party cookies. The app needs no such cookie: each session has its
//! own key in the page's URL (so two launches in one browser never mix patients), and the cookies
//! that tie a launch and a session to the browser are `Partitioned` (kept per embedding site,
//! which the frame gets back). When the browser refuses even those, the app says so plainly.
//! Every page names the EMR origins allowed to frame it (`frame-ancestors`).

// REQ: EX-02

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use halo_smart_client::binding::LAUNCH_COOKIE_MAX_AGE;
use halo_smart_client::store::MemoryLaunchStore;
use halo_smart_client::{
    BrowserBinding, ClientAuth, ClientConfig, ClientId, IssuerPolicy, Redirect, RedirectUrl,
    SessionHandle, SmartClient, SmartError,
};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;
use serde_json::{Value, json};

/// The scopes the app asks for.
pub const DEFAULT_SCOPES: &str =
    "launch launch/patient openid fhirUser patient/Patient.rs patient/Observation.crus";

/// How long a session's browser cookie lives: a clinician's working day.
const SESSION_COOKIE_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// Where the app's log lines go.
pub type LogSink = Arc<dyn Fn(&str) + Send + Sync>;

/// What the app runs with: its SMART client, which knows the FHIR servers it trusts, the EMR
/// origins that may show it in a frame, and where it logs.
#[derive(Clone)]
pub struct AppConfig {
    smart: SmartClient,
    frame_ancestors: Vec<String>,
    log: LogSink,
}

impl std::fmt::Debug for AppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppConfig").finish_non_exhaustive()
    }
}

impl AppConfig {
    /// A public client (`client_id`, no secret) served at `base_url`, trusting each of
    /// `issuers` (FHIR bases); `http://` is accepted on loopback only.
    pub fn public(
        base_url: &str,
        client_id: &str,
        scopes: &str,
        issuers: &[String],
    ) -> Result<AppConfig, SmartError> {
        let client_id = ClientId::new(client_id)?;
        let redirect_uri =
            RedirectUrl::new(format!("{}/callback", base_url.trim_end_matches('/')))?;
        let mut policy = IssuerPolicy::new().allow_http_loopback(true);
        for iss in issuers {
            policy = policy.allow(
                iss.clone(),
                ClientConfig::new(
                    client_id.clone(),
                    redirect_uri.clone(),
                    scopes,
                    ClientAuth::Public,
                ),
            )?;
        }
        Ok(AppConfig::with_client(SmartClient::new(
            policy,
            Arc::new(MemoryLaunchStore::new()),
        )?))
    }

    /// An app on a SMART client configured elsewhere.
    pub fn with_client(smart: SmartClient) -> AppConfig {
        AppConfig {
            smart,
            frame_ancestors: Vec::new(),
            log: Arc::new(|line: &str| eprintln!("{line}")),
        }
    }

    /// Lets the EMRs at `origins` (`https://emr.example.ca`, scheme, host and port only) show
    /// the app in a frame; nobody else may (`frame-ancestors`, against clickjacking). Without
    /// any, the app refuses every frame.
    pub fn framed_by<I, S>(mut self, origins: I) -> Result<AppConfig, SmartError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for origin in origins {
            let origin = origin.into();
            let parsed = url::Url::parse(&origin)
                .map_err(|_| config_error(format!("{origin:?} is not an origin")))?;
            let canonical = parsed.origin().ascii_serialization();
            if !matches!(parsed.scheme(), "http" | "https")
                || canonical != origin.trim_end_matches('/')
            {
                return Err(config_error(format!(
                    "{origin:?} is not an origin (scheme://host[:port])"
                )));
            }
            self.frame_ancestors.push(canonical);
        }
        Ok(self)
    }

    /// Sends the app's log lines to `sink` instead of standard error.
    pub fn log_to(mut self, sink: LogSink) -> AppConfig {
        self.log = sink;
        self
    }
}

fn config_error(reason: String) -> SmartError {
    SmartError::Config { reason }
}

/// One signed-in launch: its SMART session and the digest of the value its browser holds.
#[derive(Clone)]
struct Session {
    handle: SessionHandle,
    browser: String,
}

#[derive(Clone)]
struct App {
    smart: SmartClient,
    sessions: Arc<Mutex<HashMap<String, Session>>>,
    log: LogSink,
}

/// The app's routes.
pub fn router(config: AppConfig) -> Router {
    let app = App {
        smart: config.smart,
        sessions: Arc::default(),
        log: config.log,
    };
    let policy = if config.frame_ancestors.is_empty() {
        "frame-ancestors 'none'".to_string()
    } else {
        format!("frame-ancestors {}", config.frame_ancestors.join(" "))
    };
    let policy = HeaderValue::from_str(&policy)
        .unwrap_or(HeaderValue::from_static("frame-ancestors 'none'"));
    Router::new()
        .route("/", get(index))
        .route("/launch", get(launch))
        .route("/callback", get(callback))
        .route("/s/{session}", get(patient_page))
        .route("/s/{session}/observations", post(write_observation))
        .with_state(app)
        .layer(axum::middleware::map_response(
            move |mut response: Response| {
                let policy = policy.clone();
                async move {
                    let headers = response.headers_mut();
                    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
                    // Session keys are in page URLs: they must not leave in a Referer, nor
                    // stay in a cache.
                    headers.insert(
                        header::REFERRER_POLICY,
                        HeaderValue::from_static("no-referrer"),
                    );
                    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                    response
                }
            },
        ))
}

/// Just enough style for the banner to read as one; no scripts, no external assets.
const STYLE: &str = "<style>body{font-family:sans-serif;margin:1.5rem;max-width:60rem}\
.banner{background:#e8f0fe;border-left:.4rem solid #1a56db;padding:.6rem 1rem;margin-bottom:1rem}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}\
.error{color:#a61b1b}</style>";

fn page(title: &str, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            "\n"
            html lang="en" {
                head { meta charset="utf-8"; (PreEscaped(STYLE)) title { (title) } }
                body { h1 { (title) } "\n" (body) "\n" }
            }
            "\n"
        }
        .into_string(),
    )
}

/// An error page: a heading, what to do, and the stable error code for support.
fn error_page(status: StatusCode, title: &str, error: &SmartError) -> Response {
    let body = html! {
        p class="error" { (error.user_message()) }
        "\n"
        p { "Error code: " code { (error.code()) } }
    };
    (status, page(title, body)).into_response()
}

fn message_page(status: StatusCode, title: &str, message: &str) -> Response {
    (status, page(title, html! { p class="error" { (message) } })).into_response()
}

/// Whether `error` is the FHIR server or authorization server refusing the app.
fn refused(error: &SmartError) -> bool {
    matches!(
        error,
        SmartError::AuthorizationDenied(_) | SmartError::TokenRefused { .. }
    ) || matches!(error, SmartError::HttpStatus { status, .. } if *status == 401 || *status == 403)
        || matches!(error, SmartError::Fhir { status, .. } if *status == 403)
}

impl App {
    /// One log line for a failure: what was being done, the stable code, and the developer
    /// detail. `SmartError`'s texts never hold a token, code or secret (SEC-01).
    fn log_failure(&self, during: &str, error: &SmartError) {
        (self.log)(&format!(
            "{during} failed: code={} detail={error}",
            error.code()
        ));
    }
}

async fn index() -> Html<String> {
    page(
        "HALO example SMART app",
        html! { p { "Open this app from your clinical system; it starts at " code { "/launch" } "." } },
    )
}

async fn launch(State(app): State<App>, RawQuery(query): RawQuery) -> Response {
    let start = match app
        .smart
        .begin_launch_from_query(query.as_deref().unwrap_or(""))
        .await
    {
        Ok(start) => start,
        Err(e) => {
            app.log_failure("launch", &e);
            return error_page(StatusCode::BAD_REQUEST, "The app could not be launched", &e);
        }
    };
    // Only the browser holding this cookie can complete the launch (no login CSRF).
    let cookie = start.binding.set_cookie(LAUNCH_COOKIE_MAX_AGE);
    let next = match start.redirect {
        Redirect::Get(url) => {
            (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
        }
        Redirect::Post(form) => Html(form.to_html()).into_response(),
    };
    ([(header::SET_COOKIE, cookie)], next).into_response()
}

/// The request's `Cookie` header.
fn cookies(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::COOKIE).and_then(|c| c.to_str().ok())
}

/// What a clinician sees when the browser kept none of the app's cookies: most often a browser
/// that blocks every cookie of an app framed by another site.
fn storage_refused() -> Response {
    message_page(
        StatusCode::BAD_REQUEST,
        "Your browser blocked this app",
        "Your browser did not keep the small piece of data this app needs to know it is still \
         you. This happens when the app is shown inside your clinical system and the browser \
         blocks data for embedded apps. Please open the app again; if this keeps happening, ask \
         your support team to allow this app's cookies, or to open it in its own window.",
    )
}

async fn callback(
    State(app): State<App>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = query.unwrap_or_default();
    let binding = BrowserBinding::from_callback(&query, cookies(&headers));
    let handle = match app.smart.complete_launch(&query, binding.as_deref()).await {
        Ok(handle) => handle,
        Err(e) => {
            app.log_failure("sign-in", &e);
            return match e {
                SmartError::BrowserMismatch { .. } if binding.is_none() => storage_refused(),
                e if refused(&e) => error_page(StatusCode::FORBIDDEN, "Authorization failed", &e),
                e => error_page(StatusCode::BAD_REQUEST, "The app could not sign in", &e),
            };
        }
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    // The session's page is only served to the browser holding this cookie: the key in the URL
    // alone (a copied link, a screenshot) does not open the patient's data.
    let browser = match BrowserBinding::generate(&id) {
        Ok(browser) => browser,
        Err(e) => {
            app.log_failure("sign-in", &e);
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The app could not sign in",
                &e,
            );
        }
    };
    let session = Session {
        handle,
        browser: browser.digest(),
    };
    match app.sessions.lock() {
        Ok(mut sessions) => {
            sessions.insert(id.clone(), session);
        }
        Err(_) => {
            return message_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The app could not sign in",
                "An internal problem occurred. Please open the app again.",
            );
        }
    }
    let state = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let mut response = (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, format!("/s/{id}"))],
    )
        .into_response();
    for cookie in [
        browser.set_cookie(SESSION_COOKIE_MAX_AGE),
        BrowserBinding::clear_cookie(&state),
    ] {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// The session `id`, if this browser holds its cookie; otherwise the page to show instead.
fn session(app: &App, id: &str, headers: &HeaderMap) -> Result<SessionHandle, Box<Response>> {
    let found = app.sessions.lock().ok().and_then(|s| s.get(id).cloned());
    let Some(session) = found else {
        return Err(Box::new(no_session()));
    };
    let presented = cookies(headers).and_then(|c| BrowserBinding::from_cookie_header(id, c));
    if BrowserBinding::matches(&session.browser, presented.as_deref()) {
        return Ok(session.handle);
    }
    (app.log)(&format!(
        "session page refused: code=browser_mismatch detail=the browser presented {} for the \
         session",
        if presented.is_some() {
            "another value"
        } else {
            "no cookie"
        }
    ));
    Err(Box::new(if presented.is_none() {
        storage_refused()
    } else {
        no_session()
    }))
}

fn no_session() -> Response {
    message_page(
        StatusCode::NOT_FOUND,
        "No such session",
        "This page belongs to no open session. Please open the app again from your \
         clinical system.",
    )
}

fn fhir_failure(app: &App, error: &SmartError) -> Response {
    app.log_failure("FHIR request", error);
    if let SmartError::SessionExpired { .. } = error {
        error_page(StatusCode::UNAUTHORIZED, "Session ended", error)
    } else if refused(error) {
        error_page(StatusCode::FORBIDDEN, "Access refused", error)
    } else {
        error_page(
            StatusCode::BAD_GATEWAY,
            "The clinical system did not answer",
            error,
        )
    }
}

/// `Given Family`, from a Patient's first name.
fn display_name(patient: &Value) -> String {
    let name = &patient["name"][0];
    if let Some(text) = name["text"].as_str() {
        return text.to_string();
    }
    let given: Vec<&str> = name["given"]
        .as_array()
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut parts = given;
    if let Some(family) = name["family"].as_str() {
        parts.push(family);
    }
    if parts.is_empty() {
        "(no name)".to_string()
    } else {
        parts.join(" ")
    }
}

/// One row of the Observation list: what, value, when.
fn observation_row(observation: &Value) -> Markup {
    let code = &observation["code"];
    let what = code["text"]
        .as_str()
        .or_else(|| code["coding"][0]["display"].as_str())
        .or_else(|| code["coding"][0]["code"].as_str())
        .unwrap_or("(no code)");
    let quantity = &observation["valueQuantity"];
    let value = match (quantity.get("value"), quantity["unit"].as_str()) {
        (Some(v), unit) => format!("{v} {}", unit.unwrap_or_default()),
        (None, _) => observation["valueString"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    };
    let when = observation["effectiveDateTime"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    html! {
        tr {
            td { (observation["id"].as_str().unwrap_or_default()) }
            td { (what) }
            td { (value.trim()) }
            td { (when) }
        }
    }
}

async fn patient_page(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let handle = match session(&app, &id, &headers) {
        Ok(handle) => handle,
        Err(page) => return *page,
    };
    let snapshot = match handle.snapshot() {
        Ok(snapshot) => snapshot,
        Err(e) => return fhir_failure(&app, &e),
    };
    let Some(patient_id) = snapshot.patient_id().map(str::to_string) else {
        return message_page(
            StatusCode::BAD_REQUEST,
            "No patient in context",
            "The clinical system opened this app without a patient. Please open a patient's \
             chart first, then open the app again.",
        );
    };
    let fhir = handle.fhir();
    let banner = if snapshot.context.need_patient_banner == Some(true) {
        match fhir.context_patient().await {
            Ok(patient) => Some(patient),
            Err(e) => return fhir_failure(&app, &e),
        }
    } else {
        None
    };
    let observations = match fhir
        .search_all("Observation", &[("patient", patient_id.as_str())], 10)
        .await
    {
        Ok(observations) => observations,
        Err(e) => return fhir_failure(&app, &e),
    };
    let body = html! {
        @if let Some(patient) = &banner {
            div class="banner" {
                strong { (display_name(patient)) }
                " · " (patient["gender"].as_str().unwrap_or("unknown"))
                " · born " (patient["birthDate"].as_str().unwrap_or("?"))
                " · " code { "Patient/" (patient_id) }
            }
            "\n"
        }
        h2 { "Observations (" (observations.len()) ")" }
        "\n"
        @if observations.is_empty() {
            p { "No Observations yet." }
            "\n"
        } @else {
            table class="observations" {
                tr { th { "id" } th { "what" } th { "value" } th { "when" } }
                "\n"
                @for observation in &observations {
                    (observation_row(observation))
                    "\n"
                }
            }
            "\n"
        }
        h2 { "Record a body weight" }
        "\n"
        form method="post" action={ "/s/" (id) "/observations" } {
            label {
                "Weight (kg) "
                input name="weight_kg" type="number" step="0.1" min="0" required;
            }
            " "
            button type="submit" { "Save" }
        }
        "\n"
    };
    page("Patient", body).into_response()
}

/// The form's fields.
#[derive(Debug, Deserialize)]
struct WeightForm {
    weight_kg: String,
}

async fn write_observation(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<WeightForm>,
) -> Response {
    let handle = match session(&app, &id, &headers) {
        Ok(handle) => handle,
        Err(page) => return *page,
    };
    let weight: f64 = match form.weight_kg.trim().parse() {
        Ok(w) if w > 0.0 && f64::is_finite(w) => w,
        _ => {
            return message_page(
                StatusCode::BAD_REQUEST,
                "Not saved",
                "The weight must be a positive number of kilograms.",
            );
        }
    };
    let Some(patient_id) = handle
        .snapshot()
        .ok()
        .and_then(|s| s.patient_id().map(str::to_string))
    else {
        return message_page(
            StatusCode::BAD_REQUEST,
            "No patient in context",
            "The clinical system opened this app without a patient.",
        );
    };
    let observation = json!({
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}]},
        "subject": {"reference": format!("Patient/{patient_id}")},
        "valueQuantity": {"value": weight, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}
    });
    match handle.fhir().create(&observation).await {
        Ok(_) => (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, format!("/s/{id}"))],
        )
            .into_response(),
        Err(e) => fhir_failure(&app, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "<script>alert(\"x\")</script> & co";
    const ESCAPED: &str = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co";

    #[test]
    fn a_page_and_an_observation_row_escape_what_the_server_sent() {
        let Html(page) = page(HOSTILE, html! { p class="error" { (HOSTILE) } });
        assert!(!page.contains("<script"), "{page}");
        assert!(
            page.contains(&format!("<title>{ESCAPED}</title>")),
            "{page}"
        );
        assert!(page.contains(&format!("<h1>{ESCAPED}</h1>")), "{page}");
        assert!(
            page.contains(&format!("<p class=\"error\">{ESCAPED}</p>")),
            "{page}"
        );
        let row = observation_row(&json!({
            "id": HOSTILE,
            "code": {"text": HOSTILE},
            "valueString": HOSTILE,
            "effectiveDateTime": HOSTILE,
        }))
        .into_string();
        assert_eq!(
            row,
            format!("<tr>{}</tr>", format!("<td>{ESCAPED}</td>").repeat(4))
        );
    }
}

//! A small EMR (point of care) simulator web page built on `halo-poc` (REQ EX-03).
//!
//! - `GET /`: the jurisdiction's App Catalog, the clinician's sign-in, the chart's patients, a
//!   form to open an app for a patient (in the window, or in a frame of this page as EMRs show
//!   apps), and the open launches with a **Clear** button each;
//! - `GET /sign-in` and `GET /signed-in`: the clinician signs in at the jurisdictional IdP
//!   (authorization code with PKCE, `halo-smart-client`, the browser bound by a cookie); from
//!   then on `$set-context` and `$clear-context` go with that clinician's token, so each launch
//!   belongs to them (D-18). Not signed in, the page sets contexts with its installation token,
//!   which names no clinician: only a SoFA in userless mode accepts that. This simulator has one
//!   clinician at a time; a real EMR keeps one sign-in per user session;
//! - `POST /launch`: subscribes first if the EMR has no subscription yet (rest-hook to
//!   `/sofa/notify`), calls `$set-context` and redirects the browser to the app's launch URL;
//! - `GET /notifications`: each notification as it arrived, the SoFA's id mapped to the EMR's
//!   local id (the page refreshes itself every few seconds);
//! - `POST /clear`: `$clear-context` for one launch;
//! - `POST /sofa/notify`: the rest-hook endpoint the SoFA delivers to.
//!
//! The chart and its notifications live in memory. Pages are `maud` templates, which escape
//! every interpolated value.

// REQ: EX-03

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use halo_catalog::{AppEntry, CatalogClient};
use halo_model::subscription::{PayloadContent, SubscriptionStatus};
use halo_poc::{
    BoxFuture, Change, ChangeSink, ClinicalContext, ClinicianTokens, ContextPlan, HttpOptions,
    LocalResources, MemoryIdMap, NotificationReceiver, RestHookSecret, SofaClient, SofaLaunch,
    SofaLauncher, StaticToken, SubscriptionManager, rest_hook_channel,
};
use halo_smart_client::binding::{BrowserBinding, LAUNCH_COOKIE_MAX_AGE};
use halo_smart_client::secret::Secret;
use halo_smart_client::store::MemoryLaunchStore;
use halo_smart_client::{
    ClientAuth, ClientConfig, ClientId, IssuerPolicy, Redirect, RedirectUrl, SmartClient,
};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceExt;

/// The scopes the EMR asks the SoFA for with its installation token.
pub const EMR_SCOPES: &str = "Context.write system/Subscription.cruds";
/// The scopes the EMR asks for when its clinician signs in.
pub const CLINICIAN_SCOPES: &str = "openid fhirUser offline_access Context.write";
/// Where the IdP sends the browser back after the clinician signed in (below `base_url`;
/// register it as the EMR's redirect URI).
pub const SIGNED_IN_PATH: &str = "/signed-in";

/// What the EMR runs with.
#[derive(Debug, Clone)]
pub struct EmrConfig {
    /// The SoFA's FHIR base.
    pub fhir_base: String,
    /// The App Catalog's URL.
    pub catalog_url: String,
    /// The EMR's `client_id` at the SoFA.
    pub client_id: String,
    /// Its client secret.
    pub client_secret: String,
    /// Where this page is served, as the SoFA reaches it (`/sofa/notify` is appended).
    pub base_url: String,
    /// The clinician (`Practitioner/...`) opening apps.
    pub user: String,
}

/// One notification as the EMR filed it.
#[derive(Debug, Clone)]
struct Filed {
    event_number: u64,
    focus: String,
    local: String,
}

/// The EMR's chart: FHIR JSON under local ids, and the notifications it filed.
struct Chart {
    records: Mutex<BTreeMap<String, Value>>,
    filed: Mutex<Vec<Filed>>,
}

impl Chart {
    fn new() -> Chart {
        let records = BTreeMap::from([
            (
                "Patient/p7".to_string(),
                json!({"resourceType": "Patient", "id": "p7", "gender": "female",
                       "birthDate": "1984-03-02",
                       "name": [{"family": "Gagnon", "given": ["Marie"]}]}),
            ),
            (
                "Patient/p8".to_string(),
                json!({"resourceType": "Patient", "id": "p8", "gender": "male",
                       "birthDate": "1951-11-20",
                       "name": [{"family": "Roy", "given": ["Jean"]}]}),
            ),
            (
                "Practitioner/dr-1".to_string(),
                json!({"resourceType": "Practitioner", "id": "dr-1",
                       "name": [{"family": "Tremblay", "given": ["Luc"]}]}),
            ),
        ]);
        Chart {
            records: Mutex::new(records),
            filed: Mutex::default(),
        }
    }

    fn patients(&self) -> Vec<(String, String)> {
        self.records
            .lock()
            .map(|records| {
                records
                    .iter()
                    .filter(|(reference, _)| reference.starts_with("Patient/"))
                    .map(|(reference, patient)| (reference.clone(), display_name(patient)))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn lock_error() -> halo_poc::PocError {
    halo_poc::PocError::Host("the chart's lock is poisoned".into())
}

impl LocalResources for Chart {
    fn resource<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, halo_poc::Result<Option<Value>>> {
        Box::pin(async move {
            let records = self.records.lock().map_err(|_| lock_error())?;
            Ok(records.get(reference).cloned())
        })
    }

    fn related<'a>(
        &'a self,
        _plan: &'a ContextPlan,
    ) -> BoxFuture<'a, halo_poc::Result<Vec<Value>>> {
        Box::pin(async move { Ok(Vec::new()) })
    }
}

impl ChangeSink for Chart {
    fn apply(&self, change: Change) -> BoxFuture<'_, halo_poc::Result<Option<String>>> {
        Box::pin(async move {
            let Some(focus) = change.focus.clone() else {
                return Ok(None);
            };
            let mut records = self.records.lock().map_err(|_| lock_error())?;
            // An update of something the EMR knows keeps its id; a new resource gets one.
            let local = change.local.clone().unwrap_or_else(|| {
                let kind = focus.split('/').next().unwrap_or("Basic");
                format!("{kind}/emr-{}", records.len() + 1)
            });
            if let Some(mut resource) = change.resource {
                if let (Some(object), Some(id)) =
                    (resource.as_object_mut(), local.split('/').nth(1))
                {
                    object.insert("id".into(), json!(id));
                }
                records.insert(local.clone(), resource);
            }
            drop(records);
            self.filed.lock().map_err(|_| lock_error())?.push(Filed {
                event_number: change.event_number,
                focus,
                local: local.clone(),
            });
            Ok(change.local.is_none().then_some(local))
        })
    }
}

/// The EMR's connection to the SoFA, made on the first launch.
struct Connected {
    launcher: SofaLauncher,
    subscription_id: String,
}

/// The signed-in clinician: who, and the launcher on their token.
struct Clinician {
    name: String,
    launcher: Arc<SofaLauncher>,
}

#[derive(Clone)]
struct Emr {
    config: Arc<EmrConfig>,
    http: reqwest::Client,
    chart: Arc<Chart>,
    id_map: Arc<MemoryIdMap>,
    secret: Arc<RestHookSecret>,
    /// `halo-poc`'s rest-hook endpoint, once the EMR has subscribed.
    endpoint: Arc<Mutex<Option<Router>>>,
    connected: Arc<tokio::sync::Mutex<Option<Arc<Connected>>>>,
    launches: Arc<Mutex<Vec<(SofaLaunch, String, String)>>>,
    /// The EMR as a confidential client of the IdP, to sign its clinician in.
    smart: SmartClient,
    clinician: Arc<Mutex<Option<Clinician>>>,
}

/// Why the EMR could not start.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// The EMR's routes, `/sofa/notify` included.
pub fn router(config: EmrConfig) -> Result<Router, StartError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;
    let policy = IssuerPolicy::new()
        .allow(
            config.fhir_base.clone(),
            ClientConfig::new(
                ClientId::new(config.client_id.clone())?,
                RedirectUrl::new(format!(
                    "{}{SIGNED_IN_PATH}",
                    config.base_url.trim_end_matches('/')
                ))?,
                CLINICIAN_SCOPES,
                ClientAuth::ClientSecretBasic(Secret::new(config.client_secret.clone())),
            ),
        )?
        .allow_http_loopback(true);
    let emr = Emr {
        smart: SmartClient::new(policy, Arc::new(MemoryLaunchStore::new()))?,
        clinician: Arc::default(),
        config: Arc::new(config),
        http,
        chart: Arc::new(Chart::new()),
        id_map: Arc::new(MemoryIdMap::new()),
        secret: Arc::new(RestHookSecret::generate()?),
        endpoint: Arc::default(),
        connected: Arc::default(),
        launches: Arc::default(),
    };
    Ok(Router::new()
        .route("/", get(index))
        .route("/sign-in", get(sign_in))
        .route(SIGNED_IN_PATH, get(signed_in))
        .route("/launch", post(launch))
        .route("/notifications", get(notifications))
        .route("/clear", post(clear))
        .route("/sofa/notify", post(notify))
        .with_state(emr))
}

/// Just enough style to read comfortably; no scripts, no external assets.
const STYLE: &str = "<style>body{font-family:sans-serif;margin:1.5rem;max-width:60rem}\
label{margin-right:1rem}table{border-collapse:collapse}\
td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}.error{color:#a61b1b}\
.app-frame{width:100%;height:34rem;border:1px solid #ccc;margin-top:1rem}</style>";

fn page(title: &str, head: Markup, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            "\n"
            html lang="en" {
                head { meta charset="utf-8"; (head) (PreEscaped(STYLE)) title { (title) } }
                body {
                    h1 { (title) }
                    "\n"
                    p { a href="/" { "Chart" } " · " a href="/notifications" { "Notifications" } }
                    "\n" (body) "\n"
                }
            }
            "\n"
        }
        .into_string(),
    )
}

fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = html! { p class="error" { (message) } };
    (status, page(title, html! {}, body)).into_response()
}

fn display_name(patient: &Value) -> String {
    let name = &patient["name"][0];
    let mut parts: Vec<&str> = name["given"]
        .as_array()
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(family) = name["family"].as_str() {
        parts.push(family);
    }
    parts.join(" ")
}

impl Emr {
    /// The launcher on the signed-in clinician's token, if one signed in.
    fn clinician_launcher(&self) -> Option<Arc<SofaLauncher>> {
        self.clinician
            .lock()
            .ok()
            .and_then(|c| c.as_ref().map(|c| c.launcher.clone()))
    }

    /// The catalog's valid entries, and the errors of any entry left out.
    async fn catalog(&self) -> Result<(Vec<AppEntry>, Vec<String>), String> {
        let parsed = CatalogClient::new(&self.config.catalog_url)
            .map_err(|e| e.to_string())?
            .fetch()
            .await
            .map_err(|e| e.to_string())?;
        let errors = parsed.report.errors().map(ToString::to_string).collect();
        Ok((parsed.catalog.entries, errors))
    }

    /// The EMR's token (client_credentials at the token endpoint discovery names).
    async fn token(&self) -> Result<String, String> {
        let discovery: Value = self
            .http
            .get(format!(
                "{}/.well-known/smart-configuration",
                self.config.fhir_base
            ))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let token_url = discovery["token_endpoint"]
            .as_str()
            .ok_or("discovery has no token_endpoint")?;
        let response = self
            .http
            .post(token_url)
            .basic_auth(&self.config.client_id, Some(&self.config.client_secret))
            .form(&[("grant_type", "client_credentials"), ("scope", EMR_SCOPES)])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        body["access_token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("the token endpoint answered {status}: {body}"))
    }

    /// Connects on first use: token, rest-hook subscription (before the first `$set-context`).
    async fn connect(&self) -> Result<Arc<Connected>, String> {
        let mut slot = self.connected.lock().await;
        if let Some(connected) = slot.as_ref() {
            return Ok(connected.clone());
        }
        let token = self.token().await?;
        let client = SofaClient::new(
            &self.config.fhir_base,
            Arc::new(StaticToken::new(token)),
            HttpOptions::default(),
        )
        .map_err(|e| e.to_string())?;
        let receiver =
            NotificationReceiver::builder(client.clone(), self.id_map.clone(), self.chart.clone())
                .expect_header("Authorization", self.secret.header_value())
                .build();
        *self.endpoint.lock().map_err(|_| "poisoned lock")? =
            Some(halo_poc::rest_hook::router(receiver));
        let channel = rest_hook_channel(
            format!("{}/sofa/notify", self.config.base_url.trim_end_matches('/')),
            PayloadContent::FullResource,
            &self.secret,
            None,
        );
        let subscription = SubscriptionManager::new(client.clone())
            .subscribe(channel)
            .await
            .map_err(|e| e.to_string())?;
        if subscription.status != SubscriptionStatus::Active {
            return Err(format!("the subscription is {}", subscription.status));
        }
        let connected = Arc::new(Connected {
            launcher: SofaLauncher::new(client, self.chart.clone(), self.id_map.clone()),
            subscription_id: subscription.id.unwrap_or_default(),
        });
        *slot = Some(connected.clone());
        Ok(connected)
    }
}

async fn index(State(emr): State<Emr>) -> Response {
    let (catalog, errors) = match emr.catalog().await {
        Ok(catalog) => catalog,
        Err(e) => {
            return error_page(
                StatusCode::BAD_GATEWAY,
                "The App Catalog could not be read",
                &e,
            );
        }
    };
    let signed_in = emr
        .clinician
        .lock()
        .ok()
        .and_then(|c| c.as_ref().map(|c| c.name.clone()));
    let launches = emr.launches.lock().map(|l| l.clone()).unwrap_or_default();
    let patients = emr.chart.patients();
    let body = html! {
        @match &signed_in {
            Some(name) => {
                p class="clinician" { "Signed in as " strong { (name) } " at the IdP." }
            }
            None => {
                form method="get" action="/sign-in" class="clinician" {
                    "Not signed in "
                    button type="submit" { "Sign in at the IdP" }
                }
            }
        }
        "\n"
        h2 { "App Catalog" }
        "\n"
        ul class="catalog" {
            "\n"
            @for error in &errors {
                li class="error" { "left out: " (error) }
                "\n"
            }
            @for app in &catalog {
                li { strong { (app.name) } " — " (app.description_short) " " code { (app.id) } }
                "\n"
            }
        }
        "\n"
        h2 { "Open an app" }
        "\n"
        form method="post" action="/launch" {
            "\n"
            label {
                "Patient "
                select name="patient" {
                    @for (reference, name) in &patients {
                        option value=(reference) { (name) " (" (reference) ")" }
                    }
                }
            }
            "\n"
            label {
                "App "
                select name="app_id" {
                    @for app in &catalog {
                        option value=(app.id) { (app.name) }
                    }
                }
            }
            "\n"
            button type="submit" { "Open" }
            " "
            // EMRs show apps inside their own page: this button opens the app in the frame
            // below, where the app runs on another site than this page.
            button type="submit" formtarget="app-frame" { "Open in frame" }
        }
        "\n"
        iframe name="app-frame" title="App" class="app-frame" {}
        "\n"
        h2 { "Open launches" }
        "\n"
        @if launches.is_empty() {
            p { "None." }
            "\n"
        }
        @for (launch, app_name, patient) in &launches {
            form method="post" action="/clear" class="launch" {
                (app_name) " for " (patient) " · "
                a href=(launch.url.as_str()) { "open again" }
                " "
                input type="hidden" name="launch_id" value=(launch.launch_id);
                button type="submit" { "Clear" }
            }
            "\n"
        }
    };
    page("HALO example EMR", html! {}, body).into_response()
}

/// The open-an-app form.
#[derive(Debug, Deserialize)]
struct LaunchForm {
    patient: String,
    app_id: String,
}

async fn launch(State(emr): State<Emr>, Form(form): Form<LaunchForm>) -> Response {
    let catalog = match emr.catalog().await {
        Ok((catalog, _)) => catalog,
        Err(e) => {
            return error_page(
                StatusCode::BAD_GATEWAY,
                "The App Catalog could not be read",
                &e,
            );
        }
    };
    let Some(entry) = catalog
        .iter()
        .find(|e| e.id.eq_ignore_ascii_case(&form.app_id))
    else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "No such app",
            "That app is not in the App Catalog.",
        );
    };
    let Some((_, patient_name)) = emr
        .chart
        .patients()
        .into_iter()
        .find(|(reference, _)| *reference == form.patient)
    else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "No such patient",
            "That patient is not in the chart.",
        );
    };
    let connected = match emr.connect().await {
        Ok(connected) => connected,
        Err(e) => {
            return error_page(
                StatusCode::BAD_GATEWAY,
                "The EMR could not connect to the SoFA",
                &e,
            );
        }
    };
    let mut clinical = ClinicalContext::default()
        .with(form.patient.clone())
        .user(emr.config.user.clone());
    clinical.need_patient_banner = Some(true);
    // The clinician's own token when they signed in (the launch is theirs); otherwise the
    // installation's, which only a SoFA in userless mode accepts.
    let clinician = emr.clinician_launcher();
    let launched = match &clinician {
        Some(launcher) => launcher.launch(entry, &clinical).await,
        None => connected.launcher.launch(entry, &clinical).await,
    };
    let launch = match launched {
        Ok(launch) => launch,
        Err(e) => {
            return error_page(
                StatusCode::BAD_GATEWAY,
                "$set-context failed",
                &format!("[{}] {e}", e.code()),
            );
        }
    };
    let url = launch.url.to_string();
    if let Ok(mut launches) = emr.launches.lock() {
        launches.push((launch, entry.name.clone(), patient_name));
    }
    (StatusCode::SEE_OTHER, [(header::LOCATION, url)]).into_response()
}

async fn notifications(State(emr): State<Emr>) -> Response {
    let filed = emr
        .chart
        .filed
        .lock()
        .map(|f| f.clone())
        .unwrap_or_default();
    let subscription = match emr.connected.try_lock() {
        Ok(slot) => slot
            .as_ref()
            .map(|c| c.subscription_id.clone())
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    let subscription = if subscription.is_empty() {
        "none yet (made on the first launch)"
    } else {
        &subscription
    };
    let body = html! {
        p { "Subscription: " code { (subscription) } }
        "\n"
        @if filed.is_empty() {
            p { "No notifications yet." }
            "\n"
        } @else {
            table class="notifications" {
                tr { th { "event" } th { "SoFA" } th { "local" } }
                "\n"
                @for f in filed.iter().rev() {
                    tr { td { (f.event_number) } td { (f.focus) } td { (f.local) } }
                    "\n"
                }
            }
            "\n"
        }
    };
    page(
        "Notifications",
        html! { meta http-equiv="refresh" content="3"; },
        body,
    )
    .into_response()
}

/// The clear button's form.
#[derive(Debug, Deserialize)]
struct ClearForm {
    launch_id: String,
}

async fn clear(State(emr): State<Emr>, Form(form): Form<ClearForm>) -> Response {
    let launch = emr.launches.lock().ok().and_then(|launches| {
        launches
            .iter()
            .find(|(l, _, _)| l.launch_id == form.launch_id)
            .map(|(l, _, _)| l.clone())
    });
    let (Some(launch), Some(connected)) = (launch, emr.connected.lock().await.clone()) else {
        return error_page(
            StatusCode::NOT_FOUND,
            "No such launch",
            "That launch is not open.",
        );
    };
    let clinician = emr.clinician_launcher();
    let report = match &clinician {
        Some(launcher) => launcher.end(&launch).await,
        None => connected.launcher.end(&launch).await,
    };
    if let Err(e) = report.result {
        return error_page(
            StatusCode::BAD_GATEWAY,
            "$clear-context failed",
            &format!("[{}] {e}", e.code()),
        );
    }
    if let Ok(mut launches) = emr.launches.lock() {
        launches.retain(|(l, _, _)| l.launch_id != form.launch_id);
    }
    (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response()
}

/// The clinician clicks "Sign in": the browser goes to the IdP, bound to this browser by a
/// cookie (no login CSRF).
async fn sign_in(State(emr): State<Emr>) -> Response {
    let start = match emr.smart.begin_sign_in(&emr.config.fhir_base).await {
        Ok(start) => start,
        Err(e) => {
            return error_page(
                StatusCode::BAD_GATEWAY,
                "The IdP could not be reached",
                &e.to_string(),
            );
        }
    };
    let Redirect::Get(to) = start.redirect else {
        return error_page(
            StatusCode::BAD_GATEWAY,
            "The IdP could not be reached",
            "the IdP asks for a form post",
        );
    };
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                start.binding.set_cookie(LAUNCH_COOKIE_MAX_AGE),
            ),
            (header::LOCATION, to.to_string()),
        ],
    )
        .into_response()
}

/// The IdP sends the browser back: the code is redeemed, the id_token verified, and the
/// clinician's session kept for `$set-context`.
async fn signed_in(
    State(emr): State<Emr>,
    headers: axum::http::HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    let binding = BrowserBinding::from_callback(&query, cookies);
    let session = match emr.smart.complete_launch(&query, binding.as_deref()).await {
        Ok(session) => session,
        Err(e) => {
            return error_page(StatusCode::FORBIDDEN, "Sign-in failed", &e.to_string());
        }
    };
    let name = session
        .snapshot()
        .ok()
        .and_then(|s| s.id_claims)
        .map(|c| c.sub)
        .unwrap_or_default();
    let client = match SofaClient::new(
        &emr.config.fhir_base,
        Arc::new(ClinicianTokens::new(session)),
        HttpOptions::default(),
    ) {
        Ok(client) => client,
        Err(e) => return error_page(StatusCode::BAD_GATEWAY, "Sign-in failed", &e.to_string()),
    };
    let launcher = SofaLauncher::new(client, emr.chart.clone(), emr.id_map.clone());
    if let Ok(mut slot) = emr.clinician.lock() {
        *slot = Some(Clinician {
            name,
            launcher: Arc::new(launcher),
        });
    }
    (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response()
}

/// The rest-hook endpoint: handed to `halo-poc`'s receiver once the EMR has subscribed.
async fn notify(State(emr): State<Emr>, mut request: axum::extract::Request) -> Response {
    let endpoint = emr.endpoint.lock().ok().and_then(|r| r.clone());
    let Some(endpoint) = endpoint else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    // `halo-poc`'s router answers at its own root.
    *request.uri_mut() = axum::http::Uri::from_static("/");
    match endpoint.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_escapes_its_title_and_body() {
        let hostile = "<script>alert(\"x\")</script> & co";
        let escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co";
        let Html(page) = page(
            hostile,
            html! { meta http-equiv="refresh" content="3"; },
            html! { li { (hostile) } },
        );
        assert!(!page.contains("<script"), "{page}");
        assert!(
            page.contains(&format!("<title>{escaped}</title>")),
            "{page}"
        );
        assert!(page.contains(&format!("<h1>{escaped}</h1>")), "{page}");
        assert!(page.contains(&format!("<li>{escaped}</li>")), "{page}");
        assert!(
            page.contains("<meta http-equiv=\"refresh\" content=\"3\">"),
            "{page}"
        );
    }
}

//! The whole HALO SoFA launch on loopback, with an HTTP client in place of the browser
//! (REQ EX-04).
//!
//! Three parties run in this process, each on its own loopback port and talking to the others
//! only over HTTP:
//!
//! - the **reference SoFA** (`reference-sofa`), with a temporary SQLite file;
//! - an **EMR** (point of care) built on `halo-poc`, with a small in-memory chart, a
//!   rest-hook (or websocket) notification receiver and the SoFA launcher. It signs its
//!   clinician in at the IdP (the SoFA's built-in one, which auto-approves `dr-gagnon`) and
//!   sets contexts with that clinician's token, so each launch belongs to them (D-18); its
//!   subscription stays on its installation's `client_credentials` token;
//! - a **SMART app** built on `halo-smart-client`, with `/launch` and `/callback`.
//!
//! [`Demo::run`] walks the launch step by step and checks every answer; [`Report::succeeded`]
//! is true only when every step checked out.
//!
//! Beside them run the two web examples, for a person (or a browser test) to click through: the
//! example EMR page (`examples/poc`) at [`Demo::emr_page`] and the example SMART web app
//! (`examples/smart-app`), both registered with the same SoFA and listed in its catalog.

pub mod federated;

use std::collections::BTreeMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use halo_catalog::{AppEntry, CatalogClient};
use halo_model::subscription::{PayloadContent, SubscriptionStatus};
use halo_poc::{
    BoxFuture, Change, ChangeSink, ClinicalContext, ClinicianTokens, ContextPlan,
    CurrentSubscription, HttpOptions, LocalResources, MemoryIdMap, NotificationReceiver,
    RestHookSecret, SofaClient, SofaLaunch, SofaLauncher, StaticToken, SubscriptionManager,
    WebsocketConsumer, WebsocketOptions, rest_hook_channel, websocket_channel,
};
use halo_smart_client::secret::Secret;
use halo_smart_client::store::MemoryLaunchStore;
use halo_smart_client::{
    ClientAuth, ClientConfig, ClientId, IssuerPolicy, Redirect, RedirectUrl, SessionHandle,
    SmartClient,
};
use reference_sofa::{CatalogSource, Client, Config, Login, ReferenceSofa, RunningSofa};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

/// The demo app's catalog entry id (and its `app_id` at the SoFA).
pub const APP_ID: &str = "5e0f7a2c-3b1d-4c6e-9a8f-7d2b4e6c8a10";
/// The demo app's `client_id`.
pub const APP_CLIENT_ID: &str = "halo-demo-app";
/// The EMR's `client_id` at the SoFA.
pub const POC_CLIENT_ID: &str = "halo-demo-emr";
/// The scopes the app asks for (and is registered for).
pub const APP_SCOPES: &str =
    "launch launch/patient openid fhirUser patient/Patient.rs patient/Observation.crus";
const POC_SCOPES: &str = "Context.write system/Subscription.cruds";
/// What the EMR asks for when it signs its clinician in.
const CLINICIAN_SCOPES: &str = "openid fhirUser offline_access Context.write";
/// Where the IdP sends the EMR's browser back after the clinician signed in.
const SIGNED_IN_PATH: &str = "/signed-in";
const CLINICIAN: &str = "dr-gagnon";

/// The example web app's catalog entry id (and its `app_id` at the SoFA).
pub const WEB_APP_ID: &str = "9b2d4f6a-8c1e-4a3b-9d5f-7e0a2c4b6d8f";
/// The example web app's `client_id`.
pub const WEB_APP_CLIENT_ID: &str = "halo-example-app";
/// The example EMR page's `client_id` at the SoFA.
pub const WEB_EMR_CLIENT_ID: &str = "halo-example-emr";
const WEB_EMR_SECRET: &str = "halo-example-emr-secret";

/// How the EMR receives notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// The SoFA posts to the EMR's endpoint.
    #[default]
    RestHook,
    /// The EMR keeps a websocket open to the SoFA (no inbound HTTP).
    Websocket,
}

/// What the demo runs with.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// How the EMR receives notifications.
    pub transport: Transport,
    /// Where the SoFA listens; loopback with a free port when absent.
    pub listen: Option<SocketAddr>,
    /// The jurisdiction's IdP is an OpenID provider of its own (`oidc-provider` from npm, see
    /// [`federated`]) instead of the SoFA's built-in one: the EMR signs the clinician in there,
    /// and the SoFA signs them in there too (D-19), without a second sign-in page.
    pub oidc: bool,
}

/// The clinician's password at the OpenID provider of `--oidc`.
pub const CLINICIAN_PASSWORD: &str = "halo-demo-password";
/// The SoFA's client at the OpenID provider of `--oidc`.
const SOFA_OIDC_CLIENT: &str = "halo-demo-sofa";
const SOFA_OIDC_SECRET: &str = "halo-demo-sofa-secret";

/// One checked step of the flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What the step does.
    pub name: String,
    /// Whether it checked out.
    pub ok: bool,
    /// What was seen (on failure: what went wrong).
    pub detail: String,
}

impl Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = if self.ok { '✔' } else { '✘' };
        write!(f, "{mark} {}: {}", self.name, self.detail)
    }
}

/// The outcome of [`Demo::run`].
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The steps in order; the flow stops at the first failure.
    pub steps: Vec<Step>,
    /// The launch URL the EMR opened.
    pub launch_url: Option<String>,
    /// The app's Observation as the EMR filed it (local reference), once notified.
    pub filed_as: Option<String>,
    /// The status the SoFA answered the app after `$clear-context`.
    pub status_after_clear: Option<u16>,
}

impl Report {
    /// Whether the whole flow ran and every step checked out.
    pub fn succeeded(&self) -> bool {
        self.steps.len() == STEP_COUNT && self.steps.iter().all(|s| s.ok)
    }
}

/// How many steps a complete run has.
pub const STEP_COUNT: usize = 16;

/// The three parties, started and listening.
pub struct Demo {
    options: DemoOptions,
    sofa: Option<RunningSofa>,
    app: AppState,
    app_base: String,
    poc_listener: Option<TcpListener>,
    poc_base: String,
    chart: Arc<Chart>,
    emr_page: String,
    database: Option<PathBuf>,
    tasks: Vec<JoinHandle<()>>,
    stop_websocket: Option<oneshot::Sender<()>>,
    /// The OpenID provider of `--oidc`, and the browser that signs the clinician in there.
    provider: Option<federated::Provider>,
    browser: federated::Browser,
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demo")
            .field("options", &self.options)
            .field("app_base", &self.app_base)
            .field("poc_base", &self.poc_base)
            .field("emr_page", &self.emr_page)
            .finish_non_exhaustive()
    }
}

/// Why the demo could not start.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

impl Demo {
    /// Starts the SoFA (temporary SQLite file), binds the EMR's and the app's ports, and serves
    /// the app and the two web examples.
    pub async fn start(options: DemoOptions) -> Result<Demo, StartError> {
        let app_listener = TcpListener::bind("127.0.0.1:0").await?;
        let app_base = format!("http://{}", app_listener.local_addr()?);
        let poc_listener = TcpListener::bind("127.0.0.1:0").await?;
        let poc_base = format!("http://{}", poc_listener.local_addr()?);
        let web_app_listener = TcpListener::bind("127.0.0.1:0").await?;
        // `localhost`, not `127.0.0.1`: another site than the EMR page, as an app in an EMR's
        // frame is, so the browser treats the app's cookies as a third party's.
        let web_app_base = format!("http://localhost:{}", web_app_listener.local_addr()?.port());
        let web_emr_listener = TcpListener::bind("127.0.0.1:0").await?;
        let web_emr_base = format!("http://{}", web_emr_listener.local_addr()?);

        // With `--oidc` the provider must know the SoFA's address before the SoFA starts.
        let mut options = options;
        if options.oidc && options.listen.is_none() {
            let reserved = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
            options.listen = Some(reserved);
        }
        let provider = match (options.oidc, options.listen) {
            (true, Some(listen)) => {
                let config = provider_config(&format!("http://{listen}/fhir"), &poc_base);
                let started =
                    tokio::task::spawn_blocking(move || federated::Provider::start(&config))
                        .await?;
                Some(started?)
            }
            _ => None,
        };
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let database =
            std::env::temp_dir().join(format!("halo-demo-{}-{nanos}.db", std::process::id()));
        let mut config = sofa_config(
            &options,
            &app_base,
            &poc_base,
            (&web_app_base, &web_emr_base),
            database.clone(),
        );
        if let Some(provider) = &provider {
            config.login = Login::oidc(&provider.issuer, SOFA_OIDC_CLIENT, SOFA_OIDC_SECRET);
        }
        let sofa = ReferenceSofa::start(config).await?;
        let web = match web_examples(&sofa, &web_app_base, &web_emr_base) {
            Ok(web) => web,
            Err(e) => {
                sofa.shutdown().await;
                return Err(e);
            }
        };

        let policy = IssuerPolicy::new()
            .allow(
                sofa.fhir_base.clone(),
                ClientConfig::new(
                    ClientId::new(APP_CLIENT_ID)?,
                    RedirectUrl::new(format!("{app_base}/callback"))?,
                    APP_SCOPES,
                    ClientAuth::Public,
                ),
            )?
            .allow_http_loopback(true);
        let app = AppState {
            smart: SmartClient::new(policy, Arc::new(MemoryLaunchStore::new()))?,
            session: Arc::default(),
        };
        let router = axum::Router::new()
            .route("/launch", get(app_launch))
            .route("/callback", get(app_callback))
            .with_state(app.clone());
        let app_task = tokio::spawn(async move {
            let _ = axum::serve(app_listener, router).await;
        });
        let (web_app, web_emr) = web;
        let web_app_task = tokio::spawn(async move {
            let _ = axum::serve(web_app_listener, web_app).await;
        });
        let web_emr_task = tokio::spawn(async move {
            let _ = axum::serve(web_emr_listener, web_emr).await;
        });

        Ok(Demo {
            options,
            sofa: Some(sofa),
            app,
            poc_listener: Some(poc_listener),
            chart: Arc::new(Chart::new()),
            emr_page: format!("{web_emr_base}/"),
            database: Some(database),
            tasks: vec![app_task, web_app_task, web_emr_task],
            stop_websocket: None,
            browser: federated::Browser::leaving_at(&[
                &format!("{app_base}/"),
                &format!("{poc_base}/"),
            ])?,
            app_base,
            poc_base,
            provider,
        })
    }

    /// The running SoFA.
    pub fn sofa(&self) -> Option<&RunningSofa> {
        self.sofa.as_ref()
    }

    /// The example EMR page (`examples/poc`): where a person starts clicking through a launch
    /// of the example web app.
    pub fn emr_page(&self) -> &str {
        &self.emr_page
    }

    /// Runs the flow, calling `on_step` as each step completes.
    pub async fn run(&mut self, mut on_step: impl FnMut(&Step)) -> Report {
        let mut recorder = Recorder {
            report: Report::default(),
            on_step: &mut on_step,
        };
        // A failed step has already been recorded; the flow simply stops there.
        let _ = self.flow(&mut recorder).await;
        recorder.report
    }

    async fn flow(&mut self, r: &mut Recorder<'_>) -> Result<(), Stop> {
        let Some(sofa) = self.sofa.as_ref() else {
            return r.fail("reference SoFA", "not running");
        };
        let fhir_base = sofa.fhir_base.clone();
        let catalog_url = sofa.catalog_url.clone();
        let store = sofa.store();
        r.pass(
            "reference SoFA",
            format!("FHIR base {fhir_base}, catalog {catalog_url}"),
        );
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .build()
            .or_else(|e| r.fail("HTTP client", e))?;

        // 1. The EMR reads the jurisdiction's App Catalog.
        let entry = r.check("App Catalog", async {
            let parsed = CatalogClient::new(&catalog_url)
                .map_err(|e| e.to_string())?
                .fetch()
                .await
                .map_err(|e| e.to_string())?;
            let entry =
                parsed.catalog.get(APP_ID).cloned().ok_or_else(|| {
                    format!("no entry {APP_ID} in {} entries", parsed.catalog.len())
                })?;
            let detail = format!(
                "{} entr{} validated, picked \"{}\"",
                parsed.catalog.len(),
                if parsed.catalog.len() == 1 {
                    "y"
                } else {
                    "ies"
                },
                entry.name
            );
            Ok((entry, detail))
        });
        let entry: AppEntry = entry.await?;

        // 2. The EMR's installation token for its subscription (D-06): client_credentials,
        // from discovery. It names no clinician, so it cannot set a context (D-18).
        let poc_token = r.check("EMR token (client_credentials)", async {
            let discovery = get_json(
                &http,
                &format!("{fhir_base}/.well-known/smart-configuration"),
            )
            .await?;
            let token_url = discovery["token_endpoint"]
                .as_str()
                .ok_or("discovery has no token_endpoint")?;
            let response = http
                .post(token_url)
                .basic_auth(POC_CLIENT_ID, Some(POC_SECRET))
                .form(&[("grant_type", "client_credentials"), ("scope", POC_SCOPES)])
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let body: Value = response.json().await.map_err(|e| e.to_string())?;
            if status != reqwest::StatusCode::OK {
                return Err(format!("token endpoint answered {status}: {body}"));
            }
            let token = body["access_token"].as_str().ok_or("no access_token")?;
            let scope = body["scope"].as_str().unwrap_or_default();
            if !scope.contains("Context.write") {
                return Err(format!("Context.write not granted (scope: {scope})"));
            }
            Ok((token.to_string(), format!("200, scope \"{scope}\"")))
        });
        let poc_token = poc_token.await?;
        let client = SofaClient::new(
            &fhir_base,
            Arc::new(StaticToken::new(poc_token)),
            HttpOptions::default(),
        )
        .or_else(|e| r.fail("EMR SoFA client", e))?;
        let id_map = Arc::new(MemoryIdMap::new());

        // 2b. The clinician signs in at the IdP (D-18, HALO step 2): the EMR, a confidential
        // client, runs the authorization code flow with PKCE; the SoFA's built-in IdP is the
        // jurisdiction's here. `$set-context` goes with this clinician's token.
        let clinician = if let Some(provider) = &self.provider {
            r.check("clinician signs in at the IdP (OpenID provider)", async {
                let redirect_uri = format!("{}{SIGNED_IN_PATH}", self.poc_base);
                let client = federated::ProviderClient {
                    id: POC_CLIENT_ID,
                    secret: POC_SECRET,
                    redirect_uri: &redirect_uri,
                };
                let tokens = federated::emr_signs_in(
                    &self.browser,
                    &provider.issuer,
                    client,
                    &fhir_base,
                    (CLINICIAN, CLINICIAN_PASSWORD),
                )
                .await?;
                let token = tokens["access_token"]
                    .as_str()
                    .ok_or("the provider issued no access token")?;
                let client = SofaClient::new(
                    &fhir_base,
                    Arc::new(StaticToken::new(token)),
                    HttpOptions::default(),
                )
                .map_err(|e| e.to_string())?;
                Ok((
                    client,
                    format!(
                        "{CLINICIAN} at {} (authorization code + PKCE, a JWT for the SoFA)",
                        provider.issuer
                    ),
                ))
            })
            .await?
        } else {
            r.check("clinician signs in at the IdP", async {
                let session = self.sign_in_clinician(&http, &fhir_base).await?;
                let sub = session
                    .snapshot()
                    .map_err(|e| e.to_string())?
                    .id_claims
                    .map(|c| c.sub)
                    .ok_or("no id_token")?;
                if sub != CLINICIAN {
                    return Err(format!("signed in as {sub}, not {CLINICIAN}"));
                }
                let tokens = Arc::new(ClinicianTokens::new(session));
                let client = SofaClient::new(&fhir_base, tokens, HttpOptions::default())
                    .map_err(|e| e.to_string())?;
                Ok((
                    client,
                    format!("{sub} (authorization code + PKCE, id_token verified)"),
                ))
            })
            .await?
        };

        // 3. Subscribe before the first launch (D-07) and wait for `active`.
        let subscription_name = match self.options.transport {
            Transport::RestHook => "subscribe (rest-hook)",
            Transport::Websocket => "subscribe (websocket)",
        };
        let subscription = match self.options.transport {
            Transport::RestHook => {
                let secret =
                    RestHookSecret::generate().or_else(|e| r.fail(subscription_name, e))?;
                let receiver = NotificationReceiver::builder(
                    client.clone(),
                    id_map.clone(),
                    self.chart.clone(),
                )
                .expect_header("Authorization", secret.header_value())
                .build();
                let endpoint =
                    axum::Router::new().nest("/sofa/notify", halo_poc::rest_hook::router(receiver));
                let Some(listener) = self.poc_listener.take() else {
                    return r.fail(subscription_name, "the EMR's port is gone");
                };
                self.tasks.push(tokio::spawn(async move {
                    let _ = axum::serve(listener, endpoint).await;
                }));
                let channel = rest_hook_channel(
                    format!("{}/sofa/notify", self.poc_base),
                    PayloadContent::FullResource,
                    &secret,
                    None,
                );
                SubscriptionManager::new(client.clone())
                    .subscribe(channel)
                    .await
                    .map_err(|e| e.to_string())
            }
            Transport::Websocket => self.subscribe_websocket(&client, &id_map).await,
        };
        let subscription = subscription.or_else(|e| r.fail(subscription_name, e))?;
        if subscription.status != SubscriptionStatus::Active {
            return r.fail(subscription_name, format!("status {}", subscription.status));
        }
        r.pass(
            subscription_name,
            format!(
                "Subscription/{} active",
                subscription.id.as_deref().unwrap_or("?")
            ),
        );

        // 4. The clinician opens the app: `$set-context` with the chart's patient.
        let launcher = SofaLauncher::new(clinician, self.chart.clone(), id_map.clone());
        let clinical = ClinicalContext::default()
            .with("Patient/p7")
            .user("Practitioner/dr-1");
        let launch: SofaLaunch = r
            .check("$set-context", async {
                let launch = launcher
                    .launch(&entry, &clinical)
                    .await
                    .map_err(|e| format!("[{}] {e}", e.code()))?;
                let patient = launch
                    .mappings
                    .iter()
                    .find(|m| m.local == "Patient/p7")
                    .ok_or("no mapping for Patient/p7")?;
                let detail = format!(
                    "launch {}…, Patient/p7 is {} at the SoFA ({} resources mapped)",
                    launch.launch_id.chars().take(8).collect::<String>(),
                    patient.sofa,
                    launch.mappings.len()
                );
                Ok((launch, detail))
            })
            .await?;
        r.check("launch bound to the clinician", async {
            let mut tx = store.begin_read().await.map_err(|e| e.to_string())?;
            let record = tx
                .get_launch(&launch.launch_id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("the launch is not stored")?;
            match record.user.as_deref() {
                Some(CLINICIAN) => Ok(((), format!("owner {CLINICIAN}: only they may redeem it"))),
                other => Err(format!("owner {other:?}")),
            }
        })
        .await?;
        let sofa_patient = launch
            .mappings
            .iter()
            .find(|m| m.local == "Patient/p7")
            .map(|m| m.sofa.clone())
            .unwrap_or_default();

        // 5. The launch URL carries `iss` and `launch` to the app.
        r.check("launch URL", async {
            let query: BTreeMap<String, String> = launch.url.query_pairs().into_owned().collect();
            if !launch
                .url
                .as_str()
                .starts_with(&format!("{}/launch?", self.app_base))
            {
                return Err(format!("{} is not the app's launch URL", launch.url));
            }
            if query.get("iss") != Some(&fhir_base)
                || query.get("launch") != Some(&launch.launch_id)
            {
                return Err(format!("{} lacks iss or launch", launch.url));
            }
            Ok(((), launch.url.to_string()))
        })
        .await?;
        r.report.launch_url = Some(launch.url.to_string());

        // 6. The browser opens the launch URL; the app does discovery and redirects to authorize.
        let (authorize_url, binding_cookie) = r
            .check("app: discovery and authorize redirect", async {
                let response = http
                    .get(launch.url.clone())
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let location = redirect_target(&response)?;
                // The browser keeps the launch's binding cookie for the callback.
                let cookie = response
                    .headers()
                    .get(header::SET_COOKIE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split(';').next())
                    .map(str::to_string)
                    .ok_or("the app set no browser binding cookie")?;
                let discovery = self
                    .app
                    .smart
                    .discover(&fhir_base)
                    .await
                    .map_err(|e| e.to_string())?;
                let endpoint = discovery.authorization_endpoint.clone().unwrap_or_default();
                if endpoint.is_empty() || !location.starts_with(&endpoint) {
                    return Err(format!("redirected to {location}, not to {endpoint}"));
                }
                let detail = format!("{} → {endpoint}", response.status().as_u16());
                Ok(((location, cookie), detail))
            })
            .await?;

        // 7. The SoFA authorizes (auto-approve) and redirects back with a code.
        let authorize_step = if self.provider.is_some() {
            "authorize (single sign-on at the OpenID provider)"
        } else {
            "authorize (auto-approve)"
        };
        let callback_url = r
            .check(authorize_step, async {
                let (location, status) = if self.provider.is_some() {
                    // The same browser the clinician signed in with: the SoFA sends it to the
                    // provider and back, with no sign-in page on the way.
                    let seen = self.browser.pages_seen();
                    match self.browser.go(&authorize_url, None).await? {
                        federated::Nav::Left(url) if !self.browser.saw_sign_in_since(seen) => {
                            (url.to_string(), 303)
                        }
                        federated::Nav::Left(_) => return Err("a second sign-in was asked".into()),
                        federated::Nav::Page { status, body, .. } => {
                            return Err(format!("a page {status}: {body}"));
                        }
                    }
                } else {
                    let response = http
                        .get(&authorize_url)
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    (redirect_target(&response)?, response.status().as_u16())
                };
                let url = url::Url::parse(&location).map_err(|e| e.to_string())?;
                let has = |k: &str| url.query_pairs().any(|(key, _)| key == k);
                if !location.starts_with(&format!("{}/callback?", self.app_base))
                    || !has("code")
                    || !has("state")
                {
                    return Err(format!("redirected to {location}"));
                }
                Ok((
                    location,
                    format!("{status} → app callback with code and state"),
                ))
            })
            .await?;

        // 8. The app exchanges the code (PKCE) and gets the launch context.
        let session = r
            .check("token (authorization_code + PKCE)", async {
                let response = http
                    .get(&callback_url)
                    .header(header::COOKIE, &binding_cookie)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                if status != reqwest::StatusCode::OK {
                    return Err(format!("callback answered {status}: {body}"));
                }
                let session = self
                    .app
                    .session
                    .lock()
                    .ok()
                    .and_then(|s| s.clone())
                    .ok_or("the app holds no session")?;
                let snapshot = session.snapshot().map_err(|e| e.to_string())?;
                let patient = snapshot.patient_id().unwrap_or_default().to_string();
                if format!("Patient/{patient}") != sofa_patient {
                    return Err(format!(
                        "context patient {patient}, expected {sofa_patient}"
                    ));
                }
                let detail = format!(
                    "patient {patient} in context, scope \"{}\"",
                    snapshot.granted_scope
                );
                Ok((session, detail))
            })
            .await?;
        let fhir = session.fhir();

        // 9. The app reads the patient in context.
        r.check("app reads Patient", async {
            let patient = fhir.context_patient().await.map_err(|e| e.to_string())?;
            let family = patient["name"][0]["family"].as_str().unwrap_or_default();
            if family != "Gagnon" {
                return Err(format!("read {patient}"));
            }
            let id = patient["id"].as_str().unwrap_or_default();
            Ok((
                (),
                format!(
                    "Patient/{id}: {family}, born {}",
                    patient["birthDate"].as_str().unwrap_or("?")
                ),
            ))
        })
        .await?;

        // 10. The app writes an Observation; the SoFA delivers it to the EMR before committing.
        let observation_id = r
            .check("app writes Observation", async {
                let created = fhir
                    .create(&json!({
                        "resourceType": "Observation",
                        "status": "final",
                        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}]},
                        "subject": {"reference": sofa_patient},
                        "valueQuantity": {"value": 61.5, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}
                    }))
                    .await
                    .map_err(|e| e.to_string())?;
                let id = created["id"].as_str().ok_or("the created Observation has no id")?.to_string();
                Ok((id.clone(), format!("created Observation/{id}")))
            })
            .await?;

        // 11. The EMR was notified and filed it under its own ids.
        let filed = r
            .check("EMR notified", async {
                let focus = format!("Observation/{observation_id}");
                let filed = self
                    .chart
                    .wait_for(&focus, Duration::from_secs(5))
                    .await
                    .ok_or_else(|| format!("no notification for {focus}"))?;
                let subject = filed.resource["subject"]["reference"]
                    .as_str()
                    .unwrap_or_default();
                if subject != "Patient/p7" {
                    return Err(format!("subject {subject}, expected the EMR's Patient/p7"));
                }
                let detail = format!(
                    "event {}: {focus} filed as {}, subject Patient/p7",
                    filed.event_number, filed.local
                );
                Ok((filed.local, detail))
            })
            .await?;
        r.report.filed_as = Some(filed);

        // 12. The clinician closes the app.
        r.check("$clear-context", async {
            let report = launcher.end(&launch).await;
            match report.result {
                Ok(_) => Ok(((), "context cleared".to_string())),
                Err(e) => Err(format!("[{}] {e}", e.code())),
            }
        })
        .await?;

        // 13. The app's token died with the launch.
        let token = session
            .snapshot()
            .map(|s| s.access_token().expose().to_string())
            .unwrap_or_default();
        let status = r
            .check("app token refused after clear", async {
                let response = http
                    .get(format!("{fhir_base}/{sofa_patient}"))
                    .bearer_auth(&token)
                    .header(header::ACCEPT, "application/fhir+json")
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status().as_u16();
                if status != 401 {
                    return Err(format!(
                        "GET {sofa_patient} answered {status}, expected 401"
                    ));
                }
                Ok((status, format!("GET {sofa_patient} → 401")))
            })
            .await?;
        r.report.status_after_clear = Some(status);
        Ok(())
    }

    /// A websocket subscription turns `active` only once a socket is bound, so the consumer
    /// starts before waiting (`SubscriptionManager::subscribe` waits first and would time out).
    /// The EMR signs its clinician in at the IdP: the browser's redirects followed by hand.
    async fn sign_in_clinician(
        &self,
        http: &reqwest::Client,
        fhir_base: &str,
    ) -> Result<SessionHandle, String> {
        let policy = IssuerPolicy::new()
            .allow(
                fhir_base.to_string(),
                ClientConfig::new(
                    ClientId::new(POC_CLIENT_ID).map_err(|e| e.to_string())?,
                    RedirectUrl::new(format!("{}{SIGNED_IN_PATH}", self.poc_base))
                        .map_err(|e| e.to_string())?,
                    CLINICIAN_SCOPES,
                    ClientAuth::ClientSecretBasic(Secret::new(POC_SECRET)),
                ),
            )
            .map_err(|e| e.to_string())?
            .allow_http_loopback(true);
        let emr = SmartClient::new(policy, Arc::new(MemoryLaunchStore::new()))
            .map_err(|e| e.to_string())?;
        let start = emr
            .begin_sign_in(fhir_base)
            .await
            .map_err(|e| e.to_string())?;
        let Redirect::Get(authorize) = start.redirect else {
            return Err("the IdP wants a form post".into());
        };
        let response = http
            .get(authorize)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let back = url::Url::parse(&redirect_target(&response)?).map_err(|e| e.to_string())?;
        emr.complete_launch(
            back.query().unwrap_or_default(),
            Some(start.binding.value()),
        )
        .await
        .map_err(|e| e.to_string())
    }

    async fn subscribe_websocket(
        &mut self,
        client: &SofaClient,
        id_map: &Arc<MemoryIdMap>,
    ) -> Result<halo_model::subscription::Subscription, String> {
        let request = halo_model::subscription::Subscription::new(
            halo_model::canonical::SOFA_CONTENT_UPDATE_TOPIC,
            "HALO demo EMR",
            websocket_channel(PayloadContent::FullResource, None),
        );
        let created = client
            .create_subscription(&request)
            .await
            .map_err(|e| e.to_string())?;
        let id = created
            .id
            .clone()
            .ok_or("the SoFA gave the subscription no id")?;
        let receiver =
            NotificationReceiver::builder(client.clone(), id_map.clone(), self.chart.clone())
                .build();
        let consumer = WebsocketConsumer::new(
            client.clone(),
            receiver,
            CurrentSubscription::new(created),
            WebsocketOptions::default(),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        self.stop_websocket = Some(stop);
        self.tasks.push(tokio::spawn(async move {
            consumer
                .run(async {
                    let _ = stopped.await;
                })
                .await;
        }));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let current = client
                .read_subscription(&id)
                .await
                .map_err(|e| e.to_string())?;
            if current.status != SubscriptionStatus::Requested
                || tokio::time::Instant::now() >= deadline
            {
                return Ok(current);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops everything and removes the temporary database.
    pub async fn shutdown(mut self) {
        // Ends the provider's process.
        self.provider.take();
        if let Some(stop) = self.stop_websocket.take() {
            let _ = stop.send(());
        }
        if let Some(sofa) = self.sofa.take() {
            sofa.shutdown().await;
        }
        for task in &self.tasks {
            task.abort();
        }
        if let Some(database) = self.database.take() {
            for suffix in ["", "-wal", "-shm"] {
                let mut path = database.clone().into_os_string();
                path.push(suffix);
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Starts the demo with `options`, runs the flow and shuts everything down.
pub async fn run(options: DemoOptions, on_step: impl FnMut(&Step)) -> Result<Report, StartError> {
    let mut demo = Demo::start(options).await?;
    let report = demo.run(on_step).await;
    demo.shutdown().await;
    Ok(report)
}

const POC_SECRET: &str = "halo-demo-emr-secret";

/// The reference SoFA's configuration for the demo: auto-approve, the demo's app and EMR and
/// the two web examples registered, a catalog of the two apps.
fn sofa_config(
    options: &DemoOptions,
    app_base: &str,
    poc_base: &str,
    (web_app_base, web_emr_base): (&str, &str),
    database: PathBuf,
) -> Config {
    // The example EMR page signs its clinician in too (its sign-in button).
    let mut web_emr = Client::point_of_care(
        WEB_EMR_CLIENT_ID,
        WEB_EMR_SECRET,
        &format!(
            "{} {}",
            halo_poc_example::EMR_SCOPES,
            halo_poc_example::CLINICIAN_SCOPES
        ),
    );
    web_emr.redirect_uris = vec![format!(
        "{web_emr_base}{}",
        halo_poc_example::SIGNED_IN_PATH
    )];
    let mut emr = Client::point_of_care(
        POC_CLIENT_ID,
        POC_SECRET,
        &format!("{POC_SCOPES} openid fhirUser offline_access"),
    );
    emr.redirect_uris = vec![format!("{poc_base}{SIGNED_IN_PATH}")];
    Config {
        listen: options
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
        database,
        catalog: Some(CatalogSource::Inline(json!([
            catalog_entry(
                APP_ID,
                "HALO Demo Weight Tracker",
                "Reads the patient in context and records a body weight.",
                "Body weight",
                app_base,
                APP_SCOPES,
            ),
            catalog_entry(
                WEB_APP_ID,
                "HALO Example Weight & Height",
                "Shows the patient in context with their Observations and records a body weight.",
                "Patient banner and body weight",
                web_app_base,
                halo_smart_app_example::DEFAULT_SCOPES,
            ),
        ]))),
        login: Login::AutoApprove {
            user: CLINICIAN.to_string(),
            fhir_user: Some("Practitioner/dr-1".to_string()),
        },
        // The demo's EMR signs its clinician in, and so does the example EMR page once its
        // sign-in button is clicked; before that the page sets contexts with its
        // installation token, which names no clinician: the SoFA's userless mode (D-18) lets
        // a person click through without signing in.
        userless_launches: true,
        clients: vec![
            emr,
            Client::public_app(APP_CLIENT_ID, APP_ID, app_base, APP_SCOPES),
            web_emr,
            Client::public_app(
                WEB_APP_CLIENT_ID,
                WEB_APP_ID,
                web_app_base,
                halo_smart_app_example::DEFAULT_SCOPES,
            ),
        ],
        development_mode: true,
        ..Config::default()
    }
}

/// The OpenID provider's configuration for a SoFA at `fhir_base` and the demo's EMR at
/// `poc_base`: the clinician, the two clients, the SoFA as a resource.
fn provider_config(fhir_base: &str, poc_base: &str) -> Value {
    json!({
        "accounts": {
            CLINICIAN: {"password": CLINICIAN_PASSWORD, "fhirUser": format!("{fhir_base}/Practitioner/dr-1")},
        },
        "clients": [
            {"client_id": SOFA_OIDC_CLIENT, "client_secret": SOFA_OIDC_SECRET,
             "redirect_uris": [format!("{fhir_base}/auth/oidc/callback")]},
            {"client_id": POC_CLIENT_ID, "client_secret": POC_SECRET,
             "redirect_uris": [format!("{poc_base}{SIGNED_IN_PATH}")]},
        ],
        "resources": {fhir_base: "Context.write"},
    })
}

/// An App Catalog entry for an app served at `base` (its launch URL is `base/launch`).
fn catalog_entry(
    id: &str,
    name: &str,
    description: &str,
    short: &str,
    base: &str,
    scopes: &str,
) -> Value {
    json!({
        "id": id,
        "name": name,
        "description": description,
        "descriptionShort": short,
        "iconUrl": format!("https://apps.example.org/{id}/icon.png"),
        "privacyPolicyUrl": format!("https://apps.example.org/{id}/privacy"),
        "termsOfServiceUrl": format!("https://apps.example.org/{id}/terms"),
        "launchUrl": format!("{base}/launch"),
        "contacts": [
            {"url": format!("https://apps.example.org/{id}/help"), "title": "Help"},
            {"email": "support@example.org", "title": "Support"}
        ],
        "publisher": {"id": "0b8e2f4a-5d6c-4e7f-8a9b-1c2d3e4f5a6b", "name": "HALO SDK contributors"},
        "scopes": scopes.split(' ').collect::<Vec<_>>(),
    })
}

/// The example web app and EMR page, configured against the running SoFA.
fn web_examples(
    sofa: &RunningSofa,
    web_app_base: &str,
    web_emr_base: &str,
) -> Result<(axum::Router, axum::Router), StartError> {
    let app = halo_smart_app_example::router(
        halo_smart_app_example::AppConfig::public(
            web_app_base,
            WEB_APP_CLIENT_ID,
            halo_smart_app_example::DEFAULT_SCOPES,
            std::slice::from_ref(&sofa.fhir_base),
        )?
        .framed_by([web_emr_base])?,
    );
    let emr = halo_poc_example::router(halo_poc_example::EmrConfig {
        fhir_base: sofa.fhir_base.clone(),
        catalog_url: sofa.catalog_url.clone(),
        client_id: WEB_EMR_CLIENT_ID.into(),
        client_secret: WEB_EMR_SECRET.into(),
        base_url: web_emr_base.to_string(),
        user: "Practitioner/dr-1".into(),
    })?;
    Ok((app, emr))
}

/// Records steps and reports each one as it happens.
struct Recorder<'a> {
    report: Report,
    on_step: &'a mut dyn FnMut(&Step),
}

/// The flow stopped at a failed step (already recorded).
struct Stop;

impl Recorder<'_> {
    fn record(&mut self, name: &str, ok: bool, detail: String) {
        let step = Step {
            name: name.to_string(),
            ok,
            detail,
        };
        (self.on_step)(&step);
        self.report.steps.push(step);
    }

    fn pass(&mut self, name: &str, detail: String) {
        self.record(name, true, detail);
    }

    fn fail<T>(&mut self, name: &str, error: impl Display) -> Result<T, Stop> {
        self.record(name, false, error.to_string());
        Err(Stop)
    }

    async fn check<T>(
        &mut self,
        name: &str,
        step: impl Future<Output = Result<(T, String), String>>,
    ) -> Result<T, Stop> {
        match step.await {
            Ok((value, detail)) => {
                self.pass(name, detail);
                Ok(value)
            }
            Err(error) => self.fail(name, error),
        }
    }
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, String> {
    let response = http.get(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("GET {url} answered {}", response.status()));
    }
    response.json().await.map_err(|e| e.to_string())
}

/// The `Location` of a redirect; the browser's part, done by hand.
fn redirect_target(response: &reqwest::Response) -> Result<String, String> {
    if !response.status().is_redirection() {
        return Err(format!("expected a redirect, got {}", response.status()));
    }
    response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| "a redirect without Location".to_string())
}

/// The SMART app's state: its client and the one session the demo opens.
#[derive(Clone)]
struct AppState {
    smart: SmartClient,
    session: Arc<Mutex<Option<SessionHandle>>>,
}

/// `GET /launch?iss=...&launch=...`: discovery, then off to the authorization server.
async fn app_launch(State(app): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let start = match app
        .smart
        .begin_launch_from_query(query.as_deref().unwrap_or(""))
        .await
    {
        Ok(start) => start,
        Err(e) => return (StatusCode::BAD_REQUEST, e.user_message()).into_response(),
    };
    let cookie = start
        .binding
        .set_cookie(halo_smart_client::binding::LAUNCH_COOKIE_MAX_AGE);
    let next = match start.redirect {
        halo_smart_client::Redirect::Get(url) => {
            (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
        }
        halo_smart_client::Redirect::Post(form) => {
            axum::response::Html(form.to_html()).into_response()
        }
    };
    ([(header::SET_COOKIE, cookie)], next).into_response()
}

/// `GET /callback?code=...&state=...`: the code exchange; the session is kept for the demo.
async fn app_callback(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    headers: axum::http::HeaderMap,
) -> Response {
    let query = query.unwrap_or_default();
    let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    let binding = halo_smart_client::BrowserBinding::from_callback(&query, cookies);
    match app.smart.complete_launch(&query, binding.as_deref()).await {
        Ok(session) => {
            if let Ok(mut slot) = app.session.lock() {
                *slot = Some(session);
            }
            (StatusCode::OK, "signed in").into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            format!("{} ({})", e.user_message(), e.code()),
        )
            .into_response(),
    }
}

/// A change the EMR filed.
#[derive(Debug, Clone)]
struct Filed {
    event_number: u64,
    local: String,
    resource: Value,
}

/// The EMR's chart: FHIR JSON under local ids, and what the app's writes became.
struct Chart {
    records: Mutex<BTreeMap<String, Value>>,
    filed: Mutex<BTreeMap<String, Filed>>,
    arrived: Notify,
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
                "Practitioner/dr-1".to_string(),
                json!({"resourceType": "Practitioner", "id": "dr-1",
                       "name": [{"family": "Tremblay", "given": ["Luc"]}]}),
            ),
        ]);
        Chart {
            records: Mutex::new(records),
            filed: Mutex::default(),
            arrived: Notify::new(),
        }
    }

    /// Waits until a change for `focus` (the SoFA's `Type/id`) has been filed.
    async fn wait_for(&self, focus: &str, timeout: Duration) -> Option<Filed> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.arrived.notified();
            if let Some(filed) = self.filed.lock().ok()?.get(focus).cloned() {
                return Some(filed);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
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
            let (Some(focus), Some(mut resource)) = (change.focus.clone(), change.resource) else {
                return Ok(None);
            };
            let local = {
                let mut records = self.records.lock().map_err(|_| lock_error())?;
                // An update of something the EMR knows keeps its id; a new resource gets one.
                let local = change.local.clone().unwrap_or_else(|| {
                    let kind = focus.split('/').next().unwrap_or("Basic");
                    format!("{kind}/emr-{}", records.len() + 1)
                });
                if let (Some(object), Some(id)) =
                    (resource.as_object_mut(), local.split('/').nth(1))
                {
                    object.insert("id".into(), json!(id));
                }
                records.insert(local.clone(), resource.clone());
                local
            };
            self.filed.lock().map_err(|_| lock_error())?.insert(
                focus,
                Filed {
                    event_number: change.event_number,
                    local: local.clone(),
                    resource,
                },
            );
            self.arrived.notify_waiters();
            Ok(change.local.is_none().then_some(local))
        })
    }
}

//! Helpers for the subscription tests: a SoFA with the subscription service on loopback, PoC
//! receivers (answering 200, 500, hanging, going down and coming back), and a prepared write
//! over the real store.
// Test helpers may unwrap: a panic is a test failure with its message.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::Utc;
use halo_model::fhir::RawResource;
use halo_sofa_server::auth::{Caller, StaticTokens, TokenError, TokenValidator};
use halo_sofa_server::clock::{Clock, SystemClock};
use halo_sofa_server::config::SofaConfig;
use halo_sofa_server::error::SofaError;
use halo_sofa_server::fhir::notify::commit_events;
use halo_sofa_server::fhir::{
    ChangeAction, ChangeNotifier, CommittedWrite, PreparedWrite, ResourceChange, WriteError,
};
use halo_sofa_server::sofa::Sofa;
use halo_sofa_server::store::{
    BoxFuture, EventRecord, NewResource, SqliteStore, Store, meta_instant, stamp_meta,
};
use halo_sofa_server::subscriptions::{SubscriptionSettings, Subscriptions};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The scopes a PoC holds in these tests (D-06).
pub const POC_SCOPES: &str = "system/Subscription.cruds Context.write";

/// What a receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    Ok = 0,
    Fail = 1,
    Hang = 2,
    /// Answers 200 after a short delay (200 ms).
    Slow = 3,
}

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Value,
}

impl Received {
    pub fn kind(&self) -> String {
        status_parameter(&self.body, "type")
    }

    pub fn subscription_id(&self) -> String {
        let reference = self.body["entry"][0]["resource"]["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "subscription")
            .unwrap()["valueReference"]["reference"]
            .as_str()
            .unwrap()
            .to_string();
        reference.rsplit('/').next().unwrap().to_string()
    }

    /// The event numbers of the notification.
    pub fn event_numbers(&self) -> Vec<u64> {
        event_numbers(&self.body)
    }
}

pub fn status_parameter(bundle: &Value, name: &str) -> String {
    bundle["entry"][0]["resource"]["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .map(|p| {
            p.get("valueCode")
                .or(p.get("valueString"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default()
}

pub fn event_numbers(bundle: &Value) -> Vec<u64> {
    bundle["entry"][0]["resource"]["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "notification-event")
        .map(|p| {
            p["part"]
                .as_array()
                .unwrap()
                .iter()
                .find(|part| part["name"] == "event-number")
                .unwrap()["valueString"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

#[derive(Clone)]
struct ReceiverState {
    mode: Arc<AtomicU8>,
    received: Arc<Mutex<Vec<Received>>>,
}

/// A PoC's rest-hook endpoint on loopback.
pub struct Receiver {
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    received: Arc<Mutex<Vec<Received>>>,
    server: Mutex<Option<JoinHandle<()>>>,
}

async fn receive(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let mode = state.mode.load(Ordering::SeqCst);
    if mode == Mode::Hang as u8 {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    if mode == Mode::Slow as u8 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    state
        .received
        .lock()
        .unwrap()
        .push(Received { headers, body });
    if mode == Mode::Fail as u8 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

impl Receiver {
    pub async fn start(mode: Mode) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let receiver = Receiver {
            addr,
            mode: Arc::new(AtomicU8::new(mode as u8)),
            received: Arc::default(),
            server: Mutex::new(None),
        };
        receiver.serve(listener);
        receiver
    }

    fn serve(&self, listener: TcpListener) {
        let state = ReceiverState {
            mode: self.mode.clone(),
            received: self.received.clone(),
        };
        let app = Router::new()
            .route("/notify", post(receive))
            .with_state(state);
        let handle = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        *self.server.lock().unwrap() = Some(handle);
    }

    pub fn url(&self) -> String {
        format!("http://{}/notify", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Stops listening: connections are refused.
    pub async fn stop(&self) {
        if let Some(handle) = self.server.lock().unwrap().take() {
            handle.abort();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    /// Listens again on the same port, having forgotten everything it received.
    pub async fn restart(&self) {
        self.received.lock().unwrap().clear();
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn of_kind(&self, kind: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.kind() == kind)
            .collect()
    }

    /// Waits until a request of `kind` arrived.
    pub async fn wait_for(&self, kind: &str) -> Received {
        for _ in 0..200 {
            if let Some(found) = self.of_kind(kind).pop() {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no {kind} arrived");
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(handle) = self.server.lock().unwrap().take() {
            handle.abort();
        }
    }
}

/// A token table tests can add to while the server runs (app tokens for new launches).
#[derive(Default)]
pub struct SharedTokens(Mutex<std::collections::HashMap<String, Caller>>);

impl SharedTokens {
    pub fn add(&self, token: &str, caller: Caller) {
        self.0.lock().unwrap().insert(token.to_string(), caller);
    }
}

impl TokenValidator for SharedTokens {
    fn validate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Caller, TokenError>> {
        let found = self.0.lock().unwrap().get(token).cloned();
        Box::pin(async move { found.ok_or(TokenError::Invalid) })
    }
}

/// Short timeouts, plain http on loopback.
pub fn test_settings() -> SubscriptionSettings {
    SubscriptionSettings {
        default_timeout: Duration::from_millis(400),
        max_timeout: Duration::from_secs(2),
        retry_after_seconds: 2,
        binding_token_ttl: Duration::from_secs(5),
        heartbeat_tick: Duration::from_millis(50),
        require_https: false,
        ..SubscriptionSettings::default()
    }
}

/// The store a test SoFA runs on: SQLite at `db`, or, with `HALO_TEST_STORE=postgres`, a
/// PostgreSQL schema named after `db`'s directory (so a restart on the same `db` finds its
/// data), on `HALO_TEST_POSTGRES_URL`. CI runs these suites both ways (REQ CLU-01).
pub async fn test_store(db: &Path) -> Arc<dyn Store> {
    if std::env::var("HALO_TEST_STORE").as_deref() != Ok("postgres") {
        return Arc::new(SqliteStore::open(db).await.unwrap());
    }
    let url = std::env::var("HALO_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        "postgres://halo:halo-test@127.0.0.1:5432/halo_test?sslmode=disable".into()
    });
    let dir = db
        .parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .unwrap_or("harness");
    let schema: String = dir
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let options = halo_sofa_server::store::PostgresOptions {
        schema: Some(format!("t_{}", &schema[schema.len().saturating_sub(50)..])),
        max_connections: 8,
        ..Default::default()
    };
    Arc::new(
        halo_sofa_server::store::PostgresStore::connect_with(&url, options)
            .await
            .expect("HALO_TEST_STORE=postgres needs HALO_TEST_POSTGRES_URL"),
    )
}

/// A SoFA with the subscription service on loopback, over SQLite (or PostgreSQL, see
/// [`test_store`]).
pub struct Harness {
    pub base: String,
    pub store: Arc<dyn Store>,
    pub subscriptions: Subscriptions,
    pub sofa: Sofa,
    pub http: reqwest::Client,
    pub tokens: Arc<SharedTokens>,
    server: JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// PoC tokens `poc-0` .. `poc-{n-1}` for clients of the same name, and `nosub` without the
/// Subscription scope.
pub fn tokens(pocs: usize) -> Arc<StaticTokens> {
    let mut tokens =
        StaticTokens::new().with("nosub", Caller::new("nosub", Some("dr-a"), "Context.write"));
    for i in 0..pocs {
        let id = format!("poc-{i}");
        tokens = tokens.with(id.clone(), Caller::new(id, Some("dr-a"), POC_SCOPES));
    }
    Arc::new(tokens)
}

impl Harness {
    pub async fn start(db: &Path) -> Harness {
        Harness::start_with(db, Arc::new(SystemClock), test_settings()).await
    }

    pub async fn start_with(
        db: &Path,
        clock: Arc<dyn Clock>,
        settings: SubscriptionSettings,
    ) -> Harness {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}/fhir");
        let config = Arc::new(SofaConfig::new(base.clone()).unwrap());
        let store = test_store(db).await;
        let tokens = Arc::new(SharedTokens::default());
        tokens.add("nosub", Caller::new("nosub", Some("dr-a"), "Context.write"));
        for i in 0..12 {
            let id = format!("poc-{i}");
            tokens.add(&id, Caller::new(id.clone(), Some("dr-a"), POC_SCOPES));
        }
        let subscriptions = Subscriptions::new(
            store.clone(),
            tokens.clone(),
            clock.clone(),
            config.clone(),
            settings,
        );
        let sofa = Sofa::builder((*config).clone())
            .store(store.clone())
            .token_validator(tokens.clone())
            .clock(clock)
            .resource_server()
            .notifier(subscriptions.notifier())
            .mount(subscriptions.routes(), |caps| subscriptions.offers(caps))
            .build()
            .unwrap();
        let app = Router::new().nest("/fhir", sofa.router());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Harness {
            base,
            store,
            subscriptions,
            sofa,
            http: reqwest::Client::new(),
            tokens,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: &Value,
    ) -> (StatusCode, Value) {
        let response = self
            .http
            .request(method, self.url(path))
            .bearer_auth(token)
            .header("content-type", "application/fhir+json")
            .body(serde_json::to_vec(body).unwrap())
            .send()
            .await
            .unwrap();
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Creates a rest-hook subscription of `token`'s client to `endpoint`.
    pub async fn subscribe(
        &self,
        token: &str,
        endpoint: &str,
        content: &str,
    ) -> (StatusCode, Value) {
        self.send(
            reqwest::Method::POST,
            token,
            "/Subscription",
            &rest_hook(endpoint, content),
        )
        .await
    }

    /// Waits for the subscription's status to be `status`.
    pub async fn wait_status(&self, token: &str, id: &str, status: &str) -> Value {
        let mut last = Value::Null;
        for _ in 0..300 {
            let (_, body) = self.get(token, &format!("/Subscription/{id}")).await;
            if body["status"] == status {
                return body;
            }
            last = body;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("Subscription/{id} never became {status}: {last}");
    }

    /// Creates a subscription to a receiver and waits until it is active.
    pub async fn active_subscription(
        &self,
        token: &str,
        receiver: &Receiver,
        content: &str,
    ) -> String {
        let (status, body) = self.subscribe(token, &receiver.url(), content).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["id"].as_str().unwrap().to_string();
        self.wait_status(token, &id, "active").await;
        id
    }

    /// The notifier, driven directly with [`TestWrite`]s.
    pub fn notifier(&self) -> Arc<dyn ChangeNotifier> {
        self.subscriptions.notifier()
    }

    /// How many Patients and events are stored for a subscription.
    pub async fn counter(&self, subscription: &str) -> u64 {
        let mut tx = self.store.begin_read().await.unwrap();
        tx.get_subscription(subscription)
            .await
            .unwrap()
            .unwrap()
            .events_since_start
    }

    pub async fn patient_exists(&self, id: &str) -> bool {
        let mut tx = self.store.begin_read().await.unwrap();
        tx.read_resource("Patient", id).await.unwrap().is_some()
    }
}

/// A rest-hook Subscription to the content update topic with two headers.
pub fn rest_hook(endpoint: &str, content: &str) -> Value {
    json!({
        "resourceType": "Subscription",
        "meta": {"profile": ["http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription"]},
        "status": "requested",
        "reason": "PoC content updates",
        "criteria": halo_model::canonical::SOFA_CONTENT_UPDATE_TOPIC,
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": "application/fhir+json",
            "_payload": {"extension": [{
                "url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content",
                "valueCode": content
            }]},
            "header": ["Authorization: Bearer poc-notify-secret", "X-Poc: yes"]
        }
    })
}

/// An app's create of a Patient in a launch of `poc`, committed with its events in one
/// transaction over the real store.
pub struct TestWrite {
    pub store: Arc<dyn Store>,
    pub poc: String,
    pub patient_id: String,
    pub prepared: Option<ResourceChange>,
}

impl TestWrite {
    pub fn create(store: &Arc<dyn Store>, poc: &str, patient_id: &str) -> Box<TestWrite> {
        Box::new(TestWrite {
            store: store.clone(),
            poc: poc.to_string(),
            patient_id: patient_id.to_string(),
            prepared: None,
        })
    }
}

impl PreparedWrite for TestWrite {
    fn poc_client_id(&self) -> &str {
        &self.poc
    }

    fn prepare(&mut self) -> BoxFuture<'_, Result<ResourceChange, SofaError>> {
        Box::pin(async move {
            let mut resource = RawResource::from_value(
                json!({"resourceType": "Patient", "id": self.patient_id, "gender": "female"}),
            )
            .unwrap();
            stamp_meta(&mut resource, 1, Utc::now());
            let change = ResourceChange {
                launch_id: format!("launch-{}", self.poc),
                poc_client_id: self.poc.clone(),
                app_client_id: "app".into(),
                action: ChangeAction::Create,
                resource_type: "Patient".into(),
                id: self.patient_id.clone(),
                version: 1,
                resource: Some(resource),
                before: None,
            };
            self.prepared = Some(change.clone());
            Ok(change)
        })
    }

    fn commit(
        self: Box<Self>,
        events: Vec<EventRecord>,
    ) -> BoxFuture<'static, Result<CommittedWrite, SofaError>> {
        Box::pin(async move {
            let change = self.prepared.unwrap();
            let mut tx = self.store.begin().await?;
            let stored = tx
                .create_resource(NewResource {
                    resource: change.resource.unwrap(),
                    launch_id: Some(change.launch_id),
                    last_updated: Utc::now(),
                })
                .await?;
            commit_events(tx.as_mut(), &events).await?;
            tx.commit().await?;
            Ok(CommittedWrite {
                stored,
                action: ChangeAction::Create,
            })
        })
    }
}

/// Runs a [`TestWrite`] through the notifier.
pub async fn write(
    notifier: &Arc<dyn ChangeNotifier>,
    store: &Arc<dyn Store>,
    poc: &str,
    patient_id: &str,
) -> Result<CommittedWrite, WriteError> {
    notifier
        .deliver_then_commit(TestWrite::create(store, poc, patient_id))
        .await
}

pub fn now_instant() -> String {
    meta_instant(Utc::now())
}

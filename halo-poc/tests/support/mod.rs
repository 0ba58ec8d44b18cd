//! A scripted SoFA on loopback: just enough of `$set-context`, `$clear-context`, Subscription,
//! `$status`, `$events`, `$get-ws-binding-token` and a websocket endpoint to drive the PoC
//! side over real HTTP and websocket connections, with hooks to drop, duplicate and reorder
//! notifications and to close websockets.

// Each test file uses part of the harness.
#![allow(dead_code, unreachable_pub)]
// Test scaffolding: a broken fixture should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use halo_model::outcome::{IssueType, OperationOutcome};
use halo_model::set_context::{
    EntryResult, SetContextOutput, SetContextRequest, ValidationOptions, clear_context_output,
};
use halo_model::subscription::{
    BindingToken, ChannelType, EventsQuery, Notification, NotificationEntry, NotificationEvent,
    NotificationType, SOFA_CONTENT_UPDATE_TOPIC, Subscription, SubscriptionStatus,
    SubscriptionStatusParameters, parse_bind_message, status_bundle,
};
use serde_json::Value;
use tokio::sync::mpsc;

/// How `$clear-context` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClearShape {
    /// 200 with a Parameters of `outcome`s.
    Parameters,
    /// 200 with a bare OperationOutcome.
    Bare,
    /// 500 with an OperationOutcome.
    Fail,
}

/// One event the SoFA counted for a subscription.
#[derive(Debug, Clone)]
pub struct Event {
    pub number: u64,
    pub focus: String,
    pub resource: Value,
    pub method: &'static str,
}

#[derive(Debug)]
pub struct Sub {
    pub resource: Subscription,
    pub events: Vec<Event>,
}

#[derive(Default)]
pub struct Script {
    pub set_context_requests: Vec<Value>,
    pub clear_requests: Vec<Value>,
    pub clear_shape: Option<ClearShape>,
    pub subscriptions: BTreeMap<String, Sub>,
    pub next_id: u64,
    pub tokens: HashMap<String, String>,
    pub sockets: HashMap<String, mpsc::UnboundedSender<Option<String>>>,
    pub events_calls: Vec<(String, EventsQuery)>,
    pub status_calls: u32,
    pub bearer_tokens: Vec<String>,
    /// `$events` answers only these numbers (to simulate a SoFA that keeps a short log).
    pub events_log_from: u64,
    /// `$set-context` leaves out `resourcesResponse` (a defective SoFA).
    pub omit_resources_response: bool,
}

#[derive(Clone)]
pub struct ScriptedSofa {
    pub base: String,
    pub origin: String,
    pub script: Arc<Mutex<Script>>,
    http: reqwest::Client,
}

type Shared = Arc<Mutex<Script>>;

const NOW: &str = "2026-01-15T10:00:00Z";

impl ScriptedSofa {
    pub async fn start() -> ScriptedSofa {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let script: Shared = Arc::new(Mutex::new(Script::default()));
        let sofa = ScriptedSofa {
            base: format!("{origin}/fhir"),
            origin: origin.clone(),
            script: script.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
        };
        let app = Router::new()
            .route("/fhir/{op}", post(system_operation))
            .route("/fhir/Subscription", post(create_subscription))
            .route(
                "/fhir/Subscription/{id}",
                get(read_subscription).delete(delete_subscription),
            )
            .route(
                "/fhir/Subscription/{id}/{op}",
                get(instance_operation).post(instance_operation),
            )
            .route("/ws", get(websocket))
            .layer(axum::middleware::from_fn_with_state(
                script.clone(),
                record_bearer,
            ))
            .with_state(Ctx {
                script,
                origin,
                http: sofa.http.clone(),
            });
        tokio::spawn(async move { axum::serve(listener, app).await });
        sofa
    }

    pub fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap()
    }

    /// The only subscription's id.
    pub fn subscription_id(&self) -> String {
        self.script().subscriptions.keys().last().cloned().unwrap()
    }

    pub fn set_status(&self, id: &str, status: SubscriptionStatus) {
        self.script()
            .subscriptions
            .get_mut(id)
            .unwrap()
            .resource
            .status = status;
    }

    /// An app wrote `resource` (with `id`): the SoFA counts the event and gives its number.
    pub fn record_event(&self, id: &str, resource: Value, method: &'static str) -> u64 {
        let mut script = self.script();
        let sub = script.subscriptions.get_mut(id).unwrap();
        let number = sub.events.len() as u64 + 1;
        let focus = format!(
            "{}/{}",
            resource["resourceType"].as_str().unwrap(),
            resource["id"].as_str().unwrap()
        );
        sub.events.push(Event {
            number,
            focus,
            resource,
            method,
        });
        number
    }

    /// The event-notification Bundle carrying `numbers`.
    pub fn notification(&self, id: &str, numbers: &[u64]) -> Value {
        let script = self.script();
        event_bundle(
            &self.base,
            &script.subscriptions[id],
            numbers,
            NotificationType::EventNotification,
        )
        .to_json()
    }

    pub fn heartbeat(&self, id: &str) -> Value {
        let script = self.script();
        let sub = &script.subscriptions[id];
        status_only(&self.base, sub, NotificationType::Heartbeat).to_json()
    }

    /// Delivers a notification like the SoFA would: rest-hook POST with the channel's headers,
    /// or a frame on the bound websocket. Gives the HTTP status (200 for a websocket frame).
    pub async fn deliver(&self, id: &str, body: &Value) -> u16 {
        let (channel, socket) = {
            let script = self.script();
            (
                script.subscriptions[id].resource.channel.clone(),
                script.sockets.get(id).cloned(),
            )
        };
        match channel.channel_type {
            ChannelType::Websocket => match socket {
                Some(socket) if socket.send(Some(body.to_string())).is_ok() => 200,
                _ => 503,
            },
            _ => post_hook(&self.http, &channel, body).await,
        }
    }

    /// Closes every bound websocket.
    pub fn close_websockets(&self) {
        for (_, socket) in self.script().sockets.drain() {
            let _ = socket.send(None);
        }
    }

    pub fn has_socket(&self, id: &str) -> bool {
        self.script().sockets.contains_key(id)
    }
}

async fn post_hook(
    http: &reqwest::Client,
    channel: &halo_model::subscription::Channel,
    body: &Value,
) -> u16 {
    let mut request = http
        .post(channel.endpoint.clone().unwrap_or_default())
        .header("Content-Type", channel.payload.clone())
        .body(body.to_string());
    for (name, value) in channel.header_pairs() {
        request = request.header(name, value);
    }
    match request.send().await {
        Ok(response) => response.status().as_u16(),
        Err(_) => 599,
    }
}

fn subscription_url(base: &str, sub: &Sub) -> String {
    format!(
        "{base}/Subscription/{}",
        sub.resource.id.as_deref().unwrap()
    )
}

fn status_only(base: &str, sub: &Sub, kind: NotificationType) -> Notification {
    let url = subscription_url(base, sub);
    let mut status = SubscriptionStatusParameters::new(url.clone(), sub.resource.status, kind);
    status.topic = Some(SOFA_CONTENT_UPDATE_TOPIC.into());
    status.events_since_subscription_start = Some(sub.events.len() as u64);
    Notification::new(status, format!("{url}/$status"))
}

fn event_bundle(base: &str, sub: &Sub, numbers: &[u64], kind: NotificationType) -> Notification {
    let mut notification = status_only(base, sub, kind);
    for number in numbers {
        let event = &sub.events[(*number - 1) as usize];
        let full_url = format!("{base}/{}", event.focus);
        notification.status.events.push(NotificationEvent::new(
            event.number,
            NOW,
            Some(full_url.clone()),
        ));
        let kind = event.resource["resourceType"].as_str().unwrap();
        let id = event.resource["id"].as_str().unwrap();
        notification.entries.push(if event.method == "PUT" {
            NotificationEntry::updated(full_url, kind, id, Some(event.resource.clone()))
        } else {
            NotificationEntry::created(full_url, kind, Some(event.resource.clone()))
        });
    }
    notification.restrict_to(sub.resource.channel.content);
    notification
}

#[derive(Clone)]
struct Ctx {
    script: Shared,
    origin: String,
    http: reqwest::Client,
}

fn fhir(status: StatusCode, body: Value) -> Response {
    (
        status,
        [("content-type", "application/fhir+json")],
        body.to_string(),
    )
        .into_response()
}

fn outcome(status: StatusCode, code: IssueType, text: &str) -> Response {
    fhir(status, OperationOutcome::error(code, text).to_json())
}

async fn record_bearer(
    State(script): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(value) = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    {
        script.lock().unwrap().bearer_tokens.push(value.to_owned());
    }
    next.run(request).await
}

async fn system_operation(
    State(ctx): State<Ctx>,
    Path(op): Path<String>,
    body: String,
) -> Response {
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return outcome(StatusCode::BAD_REQUEST, IssueType::Structure, "not JSON");
    };
    match op.as_str() {
        "$set-context" => {
            let request = match SetContextRequest::parse(&body, &ValidationOptions::default()) {
                Ok(request) => request,
                Err(errors) => return fhir(StatusCode::BAD_REQUEST, errors.to_outcome().to_json()),
            };
            let mut script = ctx.script.lock().unwrap();
            script.set_context_requests.push(body);
            let results = request
                .resources
                .iter()
                .enumerate()
                .map(|(i, e)| EntryResult::created(&e.resource_type, format!("sofa-{i}"), NOW))
                .collect::<Vec<_>>();
            let output = SetContextOutput {
                launch_id: "L-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG".into(),
                resources_response: (!results.is_empty() && !script.omit_resources_response)
                    .then_some(results),
            };
            fhir(StatusCode::OK, output.to_json())
        }
        "$clear-context" => {
            let mut script = ctx.script.lock().unwrap();
            script.clear_requests.push(body);
            match script.clear_shape.unwrap_or(ClearShape::Parameters) {
                ClearShape::Parameters => fhir(
                    StatusCode::OK,
                    clear_context_output(&[OperationOutcome::information("context deleted")]),
                ),
                ClearShape::Bare => fhir(
                    StatusCode::OK,
                    OperationOutcome::information("context deleted").to_json(),
                ),
                ClearShape::Fail => outcome(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    IssueType::Exception,
                    "database unavailable",
                ),
            }
        }
        _ => outcome(
            StatusCode::NOT_FOUND,
            IssueType::NotSupported,
            "unknown operation",
        ),
    }
}

async fn create_subscription(State(ctx): State<Ctx>, body: String) -> Response {
    let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let mut subscription = match Subscription::from_json(&json) {
        Ok(s) => s,
        Err(e) => return fhir(StatusCode::BAD_REQUEST, e.to_outcome().to_json()),
    };
    if subscription.topic != SOFA_CONTENT_UPDATE_TOPIC {
        return outcome(
            StatusCode::BAD_REQUEST,
            IssueType::NotSupported,
            "unknown topic",
        );
    }
    let base = format!("{}/fhir", ctx.origin);
    let id = {
        let mut script = ctx.script.lock().unwrap();
        script.next_id += 1;
        let id = format!("sub-{}", script.next_id);
        subscription.id = Some(id.clone());
        // Websocket subscriptions are active at once; rest-hook ones after the handshake.
        subscription.status = match subscription.channel.channel_type {
            ChannelType::Websocket => SubscriptionStatus::Active,
            _ => SubscriptionStatus::Requested,
        };
        script.subscriptions.insert(
            id.clone(),
            Sub {
                resource: subscription.clone(),
                events: Vec::new(),
            },
        );
        id
    };
    if subscription.channel.channel_type == ChannelType::RestHook {
        let ctx = ctx.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let (channel, handshake) = {
                let script = ctx.script.lock().unwrap();
                let sub = &script.subscriptions[&id];
                (
                    sub.resource.channel.clone(),
                    status_only(&base, sub, NotificationType::Handshake).to_json(),
                )
            };
            let status = post_hook(&ctx.http, &channel, &handshake).await;
            let mut script = ctx.script.lock().unwrap();
            if let Some(sub) = script.subscriptions.get_mut(&id) {
                if (200..300).contains(&status) {
                    sub.resource.status = SubscriptionStatus::Active;
                } else {
                    sub.resource.status = SubscriptionStatus::Error;
                    sub.resource.error = Some(format!("handshake answered {status}"));
                }
            }
        });
    }
    fhir(StatusCode::CREATED, subscription.to_json())
}

async fn read_subscription(State(ctx): State<Ctx>, Path(id): Path<String>) -> Response {
    match ctx.script.lock().unwrap().subscriptions.get(&id) {
        Some(sub) => fhir(StatusCode::OK, sub.resource.to_json()),
        None => outcome(
            StatusCode::NOT_FOUND,
            IssueType::NotFound,
            "no such subscription",
        ),
    }
}

async fn delete_subscription(State(ctx): State<Ctx>, Path(id): Path<String>) -> Response {
    match ctx.script.lock().unwrap().subscriptions.remove(&id) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => outcome(
            StatusCode::NOT_FOUND,
            IssueType::NotFound,
            "no such subscription",
        ),
    }
}

async fn instance_operation(
    State(ctx): State<Ctx>,
    Path((id, op)): Path<(String, String)>,
    body: String,
) -> Response {
    let base = format!("{}/fhir", ctx.origin);
    let mut script = ctx.script.lock().unwrap();
    if !script.subscriptions.contains_key(&id) {
        return outcome(
            StatusCode::NOT_FOUND,
            IssueType::NotFound,
            "no such subscription",
        );
    }
    match op.as_str() {
        "$status" => {
            script.status_calls += 1;
            let sub = &script.subscriptions[&id];
            let status = status_only(&base, sub, NotificationType::QueryStatus).status;
            fhir(
                StatusCode::OK,
                status_bundle(
                    &[status],
                    &format!("{base}/Subscription/{id}/$status"),
                    "b1",
                    NOW,
                ),
            )
        }
        "$events" => {
            let query = EventsQuery::from_json(&serde_json::from_str(&body).unwrap_or(Value::Null))
                .unwrap_or_default();
            script.events_calls.push((id.clone(), query.clone()));
            let from = script.events_log_from;
            let sub = &script.subscriptions[&id];
            let numbers: Vec<u64> = sub
                .events
                .iter()
                .map(|e| e.number)
                .filter(|n| query.contains(*n) && *n >= from)
                .collect();
            fhir(
                StatusCode::OK,
                event_bundle(&base, sub, &numbers, NotificationType::QueryEvent).to_json(),
            )
        }
        "$get-ws-binding-token" => {
            let token = format!("token-{}-{}", id, script.tokens.len() + 1);
            script.tokens.insert(token.clone(), id.clone());
            let answer = BindingToken {
                token,
                expiration: "2099-01-01T00:00:00Z".into(),
                subscriptions: vec![id],
                websocket_url: format!("{}/ws", ctx.origin.replace("http://", "ws://")),
            };
            fhir(StatusCode::OK, answer.to_json())
        }
        _ => outcome(
            StatusCode::NOT_FOUND,
            IssueType::NotSupported,
            "unknown operation",
        ),
    }
}

async fn websocket(State(ctx): State<Ctx>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| bound_socket(ctx, socket))
}

async fn bound_socket(ctx: Ctx, mut socket: WebSocket) {
    let base = format!("{}/fhir", ctx.origin);
    let Some(Ok(Message::Text(bind))) = socket.recv().await else {
        return;
    };
    let Some(token) = parse_bind_message(bind.as_str()) else {
        return;
    };
    let (sender, mut frames) = mpsc::unbounded_channel();
    let handshake = {
        let mut script = ctx.script.lock().unwrap();
        // Single use.
        let Some(id) = script.tokens.remove(&token) else {
            return;
        };
        script.sockets.insert(id.clone(), sender);
        status_only(
            &base,
            &script.subscriptions[&id],
            NotificationType::Handshake,
        )
        .to_json()
    };
    if socket
        .send(Message::text(handshake.to_string()))
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Some(Some(text)) => {
                    if socket.send(Message::text(text)).await.is_err() {
                        return;
                    }
                }
                _ => {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            },
        }
    }
}

/// A resource as an app would write it (parsed from text so the decimal keeps its `1.50`).
pub fn observation(id: &str, patient: &str) -> Value {
    let text = format!(
        r#"{{"resourceType": "Observation", "id": "{id}", "status": "final",
            "code": {{"text": "heart rate"}}, "subject": {{"reference": "{patient}"}},
            "valueQuantity": {{"value": 1.50, "unit": "beats/min"}}}}"#
    );
    serde_json::from_str(&text).unwrap()
}

/// Waits until `check` holds, for at most 5 s.
pub async fn eventually(mut check: impl FnMut() -> bool) {
    for _ in 0..250 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition not reached within 5 s");
}

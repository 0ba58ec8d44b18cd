//! The websocket channel end to end: binding tokens, the three bind forms, handshake on bind,
//! event frames, a client that disconnects mid-stream, single-use and expiring tokens.

// Test helpers may unwrap: a panic is a test failure with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/subscriptions.rs"]
mod subs;
mod support;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use halo_model::subscription::BindingToken;
use halo_sofa_server::clock::ManualClock;
use halo_sofa_server::fhir::{NotifyError, WriteError};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use subs::{Harness, event_numbers, status_parameter, test_settings, write};
use support::TempDir;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn websocket_subscription() -> Value {
    let mut body = subs::rest_hook("", "id-only");
    body["channel"] = json!({
        "type": "websocket",
        "payload": "application/fhir+json",
        "_payload": {"extension": [{
            "url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content",
            "valueCode": "id-only"
        }]}
    });
    body
}

async fn create(h: &Harness) -> String {
    let (status, body) = h
        .send(
            Method::POST,
            "poc-0",
            "/Subscription",
            &websocket_subscription(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_string()
}

async fn token(h: &Harness, id: &str) -> BindingToken {
    let (status, body) = h
        .send(
            Method::POST,
            "poc-0",
            "/Subscription/$get-ws-binding-token",
            &halo_model::subscription::binding_token_input(&[id]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    BindingToken::from_json(&body).unwrap()
}

async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(2), socket.next())
            .await
            .expect("a frame")
            .expect("an open socket")
            .unwrap();
        if let Message::Text(text) = frame {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

async fn bind(binding: &BindingToken, message: String) -> (Socket, Value) {
    let (mut socket, _) = tokio_tungstenite::connect_async(binding.websocket_url.as_str())
        .await
        .unwrap();
    socket.send(Message::Text(message.into())).await.unwrap();
    let first = next_json(&mut socket).await;
    (socket, first)
}

#[tokio::test]
async fn a_bound_socket_gets_the_handshake_then_events_and_rebinds_after_a_drop() {
    let dir = TempDir::new("ws");
    let h = Harness::start(&dir.db()).await;
    let id = create(&h).await;
    // No socket, no handshake: the subscription waits.
    tokio::time::sleep(Duration::from_millis(50)).await;
    h.wait_status("poc-0", &id, "requested").await;

    // REQ: SUB-09
    let binding = token(&h, &id).await;
    assert!(binding.websocket_url.starts_with("ws://"));
    assert_eq!(binding.subscriptions, vec![id.clone()]);
    let (mut socket, handshake) =
        bind(&binding, format!("bind-with-token {}", binding.token)).await;
    assert_eq!(status_parameter(&handshake, "type"), "handshake");
    h.wait_status("poc-0", &id, "active").await;

    let notifier = h.notifier();
    let committed = {
        let (notifier, store) = (notifier.clone(), h.store.clone());
        tokio::spawn(async move { write(&notifier, &store, "poc-0", "p1").await })
    };
    let event = next_json(&mut socket).await;
    assert_eq!(status_parameter(&event, "type"), "event-notification");
    assert_eq!(event_numbers(&event), vec![1]);
    committed.await.unwrap().unwrap();

    // A token is single-use.
    let (mut reused, refused) = bind(&binding, format!("bind-with-token {}", binding.token)).await;
    assert_eq!(refused["resourceType"], "OperationOutcome");
    assert!(matches!(
        tokio::time::timeout(Duration::from_secs(1), reused.next()).await,
        Ok(None | Some(Ok(Message::Close(_))) | Some(Err(_)))
    ));

    // The client drops mid-stream: the next write cannot be delivered and does not commit.
    drop(socket);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let result = write(&notifier, &h.store, "poc-0", "p2").await;
    assert!(matches!(
        result,
        Err(WriteError::Notify(NotifyError::DeliveryFailed { .. }))
    ));
    assert!(!h.patient_exists("p2").await);

    // It rebinds with the `:` form, then the JSON form, and misses nothing.
    let again = token(&h, &id).await;
    let (socket, handshake) = bind(&again, format!("bind-with-token: {}", again.token)).await;
    assert_eq!(status_parameter(&handshake, "type"), "handshake");
    drop(socket);
    let json_form = token(&h, &id).await;
    let (mut socket, _) = bind(
        &json_form,
        json!({"type": "bind-with-token", "payload": {"token": json_form.token}}).to_string(),
    )
    .await;
    let committed = {
        let (notifier, store) = (notifier.clone(), h.store.clone());
        tokio::spawn(async move { write(&notifier, &store, "poc-0", "p3").await })
    };
    assert_eq!(event_numbers(&next_json(&mut socket).await), vec![2]);
    committed.await.unwrap().unwrap();
    let (_, events) = h.get("poc-0", &format!("/Subscription/{id}/$events")).await;
    assert_eq!(event_numbers(&events), vec![1, 2]);
}

#[tokio::test]
async fn binding_tokens_expire_and_belong_to_their_owner() {
    let dir = TempDir::new("ws-expiry");
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let h = Harness::start_with(&dir.db(), clock.clone(), test_settings()).await;
    let id = create(&h).await;
    // REQ: SUB-09
    let binding = token(&h, &id).await;
    clock.advance(chrono::Duration::seconds(10));
    let (_, refused) = bind(&binding, format!("bind-with-token {}", binding.token)).await;
    assert_eq!(refused["resourceType"], "OperationOutcome");
    let (_, garbage) = bind(&binding, "hello".to_string()).await;
    assert_eq!(garbage["resourceType"], "OperationOutcome");

    // REQ: SUB-10
    let (status, _) = h
        .send(
            Method::POST,
            "poc-1",
            "/Subscription/$get-ws-binding-token",
            &halo_model::subscription::binding_token_input(&[&id]),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A rest-hook subscription has nothing to bind.
    let receiver = subs::Receiver::start(subs::Mode::Ok).await;
    let rest = h.active_subscription("poc-0", &receiver, "empty").await;
    let (status, _) = h
        .send(
            Method::POST,
            "poc-0",
            &format!("/Subscription/{rest}/$get-ws-binding-token"),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Whether the server closed the socket (a close frame, the end of the stream or an error)
/// within two seconds, after any frames it sent first.
async fn closed(socket: &mut Socket) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return false,
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return true,
            Ok(Some(Ok(_))) => {}
        }
    }
}

// REQ: HARD-04
/// Websockets cost an attacker something: a socket that never binds is closed after the bind
/// timeout, a frame larger than a bind message closes the socket, a client has at most its
/// quota of bound sockets, and an instance holds at most its quota of open sockets (503).
#[tokio::test]
async fn unbound_oversized_and_excess_websockets_are_closed_or_refused() {
    let dir = TempDir::new("ws-limits");
    let mut settings = test_settings();
    settings.websocket_bind_timeout = Duration::from_millis(300);
    settings.websocket_max_per_client = 1;
    settings.websocket_max_sockets = 3;
    let h = Harness::start_with(
        &dir.db(),
        Arc::new(halo_sofa_server::clock::SystemClock),
        settings,
    )
    .await;
    let first = create(&h).await;
    let second = create(&h).await;
    let url = token(&h, &first).await.websocket_url;

    // Never binds: closed once the bind timeout passes, with an outcome saying why.
    let (mut silent, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let said = next_json(&mut silent).await;
    assert_eq!(said["issue"][0]["code"], "timeout", "{said}");
    assert!(closed(&mut silent).await);

    // A frame far larger than any bind message: the socket is closed.
    let (mut big, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let _ = big.send(Message::Text("x".repeat(64 * 1024).into())).await;
    assert!(closed(&mut big).await);

    // One bound socket per client here: the second bind is refused, the first keeps working.
    let binding = token(&h, &first).await;
    let (mut bound, handshake) = bind(&binding, format!("bind-with-token {}", binding.token)).await;
    assert_eq!(status_parameter(&handshake, "type"), "handshake");
    let other = token(&h, &second).await;
    let (mut refused, outcome) = bind(&other, format!("bind-with-token {}", other.token)).await;
    assert_eq!(outcome["issue"][0]["code"], "throttled", "{outcome}");
    assert!(closed(&mut refused).await);

    // Three open at most: with the bound one and two idle ones open, a fourth upgrade is 503.
    let (_idle_a, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let (_idle_b, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 503);
        }
        other => panic!("a fourth socket was let in: {other:?}"),
    }
    let _ = bound.close(None).await;
}

//! The websocket consumer over a real websocket: binding token, bind, receive, and reconnect
//! after the scripted SoFA closes the socket.

// Test scaffolding outside #[test] functions: a broken fixture should fail loudly.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use halo_model::subscription::{PayloadContent, SubscriptionStatus};
use halo_poc::{
    BoxFuture, Change, ChangeSink, CurrentSubscription, HttpOptions, MemoryIdMap,
    NotificationReceiver, Result, SofaClient, StaticToken, SubscriptionManager, WebsocketConsumer,
    WebsocketOptions, websocket_channel,
};
use support::{ScriptedSofa, eventually, observation};

#[derive(Default)]
struct Host(Mutex<Vec<Change>>);

impl ChangeSink for Host {
    fn apply(&self, change: Change) -> BoxFuture<'_, Result<Option<String>>> {
        Box::pin(async move {
            self.0.lock().unwrap().push(change);
            Ok(None)
        })
    }
}

impl Host {
    fn numbers(&self) -> Vec<u64> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.event_number)
            .collect()
    }
}

// REQ: LI-09
#[tokio::test]
async fn binds_receives_and_rebinds_after_the_sofa_closes_the_socket() {
    let sofa = ScriptedSofa::start().await;
    let client = SofaClient::new(
        &sofa.base,
        Arc::new(StaticToken::new("poc-token")),
        HttpOptions::default(),
    )
    .unwrap();
    let host = Arc::new(Host::default());
    let receiver =
        NotificationReceiver::builder(client.clone(), Arc::new(MemoryIdMap::new()), host.clone())
            .build();
    let manager = SubscriptionManager::new(client.clone());
    let subscription = manager
        .subscribe(websocket_channel(PayloadContent::FullResource, Some(30)))
        .await
        .unwrap();
    assert_eq!(subscription.status, SubscriptionStatus::Active);
    let id = subscription.id.clone().unwrap();
    receiver.track(&id, 0).await;
    let current = CurrentSubscription::new(subscription);
    let consumer = WebsocketConsumer::new(
        client.clone(),
        receiver.clone(),
        current.clone(),
        WebsocketOptions {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            connect_timeout: Duration::from_secs(2),
            idle_timeout: Some(Duration::from_secs(5)),
        },
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = {
        let consumer = consumer.clone();
        tokio::spawn(async move {
            consumer
                .run(async {
                    let _ = stopped.await;
                })
                .await
        })
    };

    // Bound with a single-use token from $get-ws-binding-token.
    eventually(|| sofa.has_socket(&id)).await;
    assert_eq!(consumer.connections(), 1);
    assert!(sofa.script().tokens.is_empty(), "the token was used");

    // Events arrive as frames; a duplicate frame is dropped.
    let n1 = sofa.record_event(&id, observation("obs-1", "Patient/x"), "POST");
    let frame = sofa.notification(&id, &[n1]);
    assert_eq!(sofa.deliver(&id, &frame).await, 200);
    assert_eq!(sofa.deliver(&id, &frame).await, 200);
    eventually(|| host.numbers() == [1]).await;

    // The SoFA closes the socket; events 2 and 3 happen while the PoC is away.
    sofa.close_websockets();
    eventually(|| !sofa.has_socket(&id)).await;
    sofa.record_event(&id, observation("obs-2", "Patient/x"), "POST");
    sofa.record_event(&id, observation("obs-3", "Patient/x"), "POST");
    // The consumer comes back with a new token; the handshake's count shows 2 and 3 missing
    // and they are fetched with $events.
    eventually(|| sofa.has_socket(&id)).await;
    eventually(|| host.numbers() == [1, 2, 3]).await;
    assert_eq!(consumer.connections(), 2);
    assert_eq!(sofa.script().events_calls.len(), 1);

    // Reordered frames: 5 before 4.
    let n4 = sofa.record_event(&id, observation("obs-4", "Patient/x"), "POST");
    let n5 = sofa.record_event(&id, observation("obs-5", "Patient/x"), "POST");
    assert_eq!(sofa.deliver(&id, &sofa.notification(&id, &[n5])).await, 200);
    assert_eq!(sofa.deliver(&id, &sofa.notification(&id, &[n4])).await, 200);
    eventually(|| host.numbers() == [1, 2, 3, 4, 5]).await;

    // The watchdog replaced the subscription: the consumer binds the new one.
    let replacement = manager
        .subscribe(websocket_channel(PayloadContent::FullResource, Some(30)))
        .await
        .unwrap();
    let new_id = replacement.id.clone().unwrap();
    current.set(replacement);
    eventually(|| sofa.has_socket(&new_id)).await;
    let n1 = sofa.record_event(&new_id, observation("obs-6", "Patient/x"), "POST");
    assert_eq!(
        sofa.deliver(&new_id, &sofa.notification(&new_id, &[n1]))
            .await,
        200
    );
    eventually(|| host.0.lock().unwrap().last().unwrap().subscription_id == new_id).await;

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(2), running)
        .await
        .unwrap()
        .unwrap();
}

// REQ: LI-09
#[tokio::test]
async fn a_sofa_that_refuses_the_binding_token_is_retried_with_backoff() {
    let sofa = ScriptedSofa::start().await;
    let client = SofaClient::new(
        &sofa.base,
        Arc::new(StaticToken::new("poc-token")),
        HttpOptions::default(),
    )
    .unwrap();
    let receiver = NotificationReceiver::builder(
        client.clone(),
        Arc::new(MemoryIdMap::new()),
        Arc::new(Host::default()),
    )
    .build();
    // A subscription the SoFA does not know: every $get-ws-binding-token is a 404.
    let mut missing = halo_model::subscription::Subscription::new(
        halo_model::canonical::SOFA_CONTENT_UPDATE_TOPIC,
        "r",
        websocket_channel(PayloadContent::IdOnly, None),
    );
    missing.id = Some("gone".into());
    let consumer = WebsocketConsumer::new(
        client,
        receiver,
        CurrentSubscription::new(missing),
        WebsocketOptions {
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(40),
            ..WebsocketOptions::default()
        },
    );
    let error = consumer.connect_once().await.unwrap_err();
    assert_eq!(error.code(), "poc.rejected");
    // run keeps trying (no panic, no busy loop) until shut down.
    tokio::time::timeout(
        Duration::from_secs(2),
        consumer.run(tokio::time::sleep(Duration::from_millis(300))),
    )
    .await
    .unwrap();
    assert_eq!(consumer.connections(), 0);
    let calls = sofa.script().bearer_tokens.len();
    assert!(
        (3..=20).contains(&calls),
        "{calls} binding-token calls in 300 ms"
    );
}

//! The rest-hook side over real HTTP: the PoC's axum endpoint on loopback receives from the
//! scripted SoFA, which drops, duplicates and reorders notifications.

// Test scaffolding outside #[test] functions: a broken fixture should fail loudly.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use halo_model::subscription::{PayloadContent, SubscriptionStatus};
use halo_poc::{
    BoxFuture, Change, ChangeSink, CurrentSubscription, HttpOptions, IdMapStore, IdMapping,
    MemoryIdMap, NotificationReceiver, PocError, Receipt, RestHookSecret, Result, SofaClient,
    StaticToken, SubscriptionManager, Watchdog, WatchdogVerdict, rest_hook_channel,
};
use serde_json::json;
use support::{ScriptedSofa, eventually, observation};

/// The EMR: records every change; stores new resources under `Type/local-N`.
#[derive(Default)]
pub(crate) struct Host {
    pub(crate) changes: Mutex<Vec<Change>>,
    pub(crate) missed: Mutex<Vec<(String, u64, u64)>>,
    pub(crate) failing: Mutex<bool>,
}

impl ChangeSink for Host {
    fn apply(&self, change: Change) -> BoxFuture<'_, Result<Option<String>>> {
        Box::pin(async move {
            if *self.failing.lock().unwrap() {
                return Err(PocError::Host("the chart is locked".into()));
            }
            let mut changes = self.changes.lock().unwrap();
            let stored = match (&change.local, &change.focus) {
                (None, Some(focus)) => Some(format!(
                    "{}/local-{}",
                    focus.split('/').next().unwrap(),
                    changes.len() + 1
                )),
                _ => None,
            };
            changes.push(change);
            Ok(stored)
        })
    }

    fn missed<'a>(
        &'a self,
        subscription_id: &'a str,
        from: u64,
        to: u64,
        _error: Option<&'a PocError>,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.missed
                .lock()
                .unwrap()
                .push((subscription_id.to_owned(), from, to));
        })
    }
}

impl Host {
    pub(crate) fn numbers(&self) -> Vec<u64> {
        self.changes
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.event_number)
            .collect()
    }
}

struct Poc {
    sofa: ScriptedSofa,
    client: SofaClient,
    host: Arc<Host>,
    id_map: Arc<MemoryIdMap>,
    receiver: NotificationReceiver,
    secret: RestHookSecret,
    endpoint: String,
}

/// A PoC whose rest-hook endpoint (axum, loopback) expects `expected` as its secret.
async fn poc(expected: Option<RestHookSecret>) -> Poc {
    let sofa = ScriptedSofa::start().await;
    let client = SofaClient::new(
        &sofa.base,
        Arc::new(StaticToken::new("poc-token")),
        HttpOptions {
            timeout: Duration::from_secs(2),
            ..HttpOptions::default()
        },
    )
    .unwrap();
    let host = Arc::new(Host::default());
    let id_map = Arc::new(MemoryIdMap::new());
    let secret = RestHookSecret::generate().unwrap();
    let expected = expected.unwrap_or_else(|| secret.clone());
    let receiver = NotificationReceiver::builder(client.clone(), id_map.clone(), host.clone())
        .expect_header("Authorization", expected.header_value())
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/sofa/notify", listener.local_addr().unwrap());
    let app = axum::Router::new().nest(
        "/sofa/notify",
        halo_poc::rest_hook::router(receiver.clone()),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Poc {
        sofa,
        client,
        host,
        id_map,
        receiver,
        secret,
        endpoint,
    }
}

fn manager(poc: &Poc) -> SubscriptionManager {
    SubscriptionManager::new(poc.client.clone())
        .activation(Duration::from_secs(3), Duration::from_millis(20))
}

// REQ: LI-05
#[tokio::test]
async fn subscription_becomes_active_after_the_handshake_reached_the_poc() {
    let poc = poc(None).await;
    let channel = rest_hook_channel(
        &poc.endpoint,
        PayloadContent::FullResource,
        &poc.secret,
        Some(60),
    );
    let subscription = manager(&poc).subscribe(channel).await.unwrap();
    assert_eq!(subscription.status, SubscriptionStatus::Active);
    let id = subscription.id.clone().unwrap();
    // What the SoFA stored: the topic, the PoC's header, heartbeat period and payload content.
    let stored = poc.sofa.script().subscriptions[&id].resource.clone();
    assert_eq!(
        stored.topic,
        halo_model::canonical::SOFA_CONTENT_UPDATE_TOPIC
    );
    assert_eq!(stored.channel.headers, [poc.secret.channel_header()]);
    assert_eq!(stored.channel.heartbeat_period, Some(60));
    assert_eq!(stored.channel.content, PayloadContent::FullResource);
    assert_eq!(poc.sofa.script().bearer_tokens[0], "Bearer poc-token");
    // The handshake started the event sequence.
    assert_eq!(poc.receiver.last_event(&id).await, Some(0));
    assert!(!format!("{:?}", poc.secret).contains(&poc.secret.header_value()[7..]));
}

// REQ: LI-05
#[tokio::test]
async fn a_handshake_the_poc_refuses_leaves_the_subscription_not_active() {
    // The endpoint expects another secret than the one the subscription carries.
    let poc = poc(Some(RestHookSecret::generate().unwrap())).await;
    let channel = rest_hook_channel(&poc.endpoint, PayloadContent::IdOnly, &poc.secret, None);
    let error = manager(&poc).subscribe(channel).await.unwrap_err();
    assert_eq!(error.code(), "poc.subscription-not-active");
    assert!(error.to_string().contains("401"), "{error}");
}

// REQ: LI-06
#[tokio::test]
async fn drops_duplicates_and_reorders_are_recovered_in_event_order() {
    let poc = poc(None).await;
    let channel = rest_hook_channel(
        &poc.endpoint,
        PayloadContent::FullResource,
        &poc.secret,
        None,
    );
    let id = manager(&poc).subscribe(channel).await.unwrap().id.unwrap();
    // The PoC sent this patient with $set-context.
    poc.id_map
        .record(
            "L1",
            vec![IdMapping {
                local: "Patient/p7".into(),
                sofa: "Patient/sofa-0".into(),
            }],
            SystemTime::now() + Duration::from_secs(60),
        )
        .await
        .unwrap();
    let sofa = &poc.sofa;

    // 1 arrives; then again (duplicate).
    let n1 = sofa.record_event(&id, observation("obs-1", "Patient/sofa-0"), "POST");
    let body = sofa.notification(&id, &[n1]);
    assert_eq!(sofa.deliver(&id, &body).await, 200);
    assert_eq!(sofa.deliver(&id, &body).await, 200);
    assert_eq!(poc.host.numbers(), [1]);
    {
        let changes = poc.host.changes.lock().unwrap();
        let change = &changes[0];
        assert_eq!(change.focus.as_deref(), Some("Observation/obs-1"));
        assert_eq!(change.local, None, "the app created it");
        assert_eq!(change.method.as_deref(), Some("POST"));
        assert_eq!(change.launch_id.as_deref(), Some("L1"));
        let resource = change.resource.as_ref().unwrap();
        assert_eq!(
            resource["subject"]["reference"], "Patient/p7",
            "mapped to the EMR's id"
        );
        assert_eq!(
            resource["valueQuantity"]["value"].to_string(),
            "1.50",
            "decimals kept"
        );
    }
    // The EMR stored it; the mapping is kept for later updates.
    assert_eq!(
        poc.id_map
            .local_for("Observation/obs-1")
            .await
            .unwrap()
            .as_deref(),
        Some("Observation/local-1")
    );

    // 2 is dropped; 3 arrives: 2 is fetched with $events first.
    sofa.record_event(&id, observation("obs-2", "Patient/sofa-0"), "POST");
    let n3 = sofa.record_event(&id, observation("obs-3", "Patient/sofa-0"), "POST");
    assert_eq!(sofa.deliver(&id, &sofa.notification(&id, &[n3])).await, 200);
    assert_eq!(poc.host.numbers(), [1, 2, 3]);
    assert!(poc.host.changes.lock().unwrap()[1].recovered);
    assert_eq!(sofa.script().events_calls.len(), 1);
    let (_, query) = sofa.script().events_calls[0].clone();
    assert_eq!((query.since, query.until), (Some(2), Some(2)));

    // 5 arrives before 4; then 4 arrives late and is a duplicate.
    let n4 = sofa.record_event(&id, observation("obs-1", "Patient/sofa-0"), "PUT");
    let n5 = sofa.record_event(&id, observation("obs-5", "Patient/sofa-0"), "POST");
    assert_eq!(sofa.deliver(&id, &sofa.notification(&id, &[n5])).await, 200);
    assert_eq!(sofa.deliver(&id, &sofa.notification(&id, &[n4])).await, 200);
    assert_eq!(poc.host.numbers(), [1, 2, 3, 4, 5]);
    {
        // The update of obs-1 maps to the record the EMR made for it.
        let changes = poc.host.changes.lock().unwrap();
        assert_eq!(changes[3].local.as_deref(), Some("Observation/local-1"));
        assert_eq!(changes[3].method.as_deref(), Some("PUT"));
    }

    // 6 is lost; a heartbeat counts it and the PoC catches up.
    sofa.record_event(&id, observation("obs-6", "Patient/sofa-0"), "POST");
    assert_eq!(sofa.deliver(&id, &sofa.heartbeat(&id)).await, 200);
    assert_eq!(poc.host.numbers(), [1, 2, 3, 4, 5, 6]);

    // 7 and 8 are lost and the SoFA no longer has them: reported, not fatal.
    sofa.script().events_log_from = 9;
    sofa.record_event(&id, observation("obs-7", "Patient/sofa-0"), "POST");
    sofa.record_event(&id, observation("obs-8", "Patient/sofa-0"), "POST");
    let n9 = sofa.record_event(&id, observation("obs-9", "Patient/sofa-0"), "POST");
    assert_eq!(sofa.deliver(&id, &sofa.notification(&id, &[n9])).await, 200);
    assert_eq!(poc.host.numbers(), [1, 2, 3, 4, 5, 6, 9]);
    assert_eq!(*poc.host.missed.lock().unwrap(), [(id.clone(), 7, 8)]);
    // 8 turns up after all: still applied, once.
    sofa.script().events_log_from = 0;
    assert_eq!(sofa.deliver(&id, &sofa.notification(&id, &[8])).await, 200);
    assert_eq!(sofa.deliver(&id, &sofa.notification(&id, &[8])).await, 200);
    assert_eq!(poc.host.numbers(), [1, 2, 3, 4, 5, 6, 9, 8]);
}

// REQ: LI-06
#[tokio::test]
async fn header_body_and_host_failures_get_their_http_status() {
    let poc = poc(None).await;
    let channel = rest_hook_channel(
        &poc.endpoint,
        PayloadContent::FullResource,
        &poc.secret,
        None,
    );
    let id = manager(&poc).subscribe(channel).await.unwrap().id.unwrap();
    let n1 = poc
        .sofa
        .record_event(&id, observation("obs-1", "Patient/x"), "POST");
    let body = poc.sofa.notification(&id, &[n1]);
    let http = reqwest::Client::new();

    // No header, a wrong header: 401, nothing applied.
    let status = http
        .post(&poc.endpoint)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    let status = http
        .post(&poc.endpoint)
        .header("Authorization", "Bearer guess")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    // Not a notification: 400.
    for garbage in [
        "",
        "{",
        "[1,2]",
        "{\"resourceType\":\"Bundle\",\"type\":\"history\"}",
    ] {
        let status = http
            .post(&poc.endpoint)
            .header("authorization", poc.secret.header_value())
            .body(garbage)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 400, "{garbage}");
    }
    // Deeply nested JSON is refused before parsing.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let status = http
        .post(&poc.endpoint)
        .header("authorization", poc.secret.header_value())
        .body(deep)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 400);
    assert!(poc.host.numbers().is_empty());

    // The EMR cannot apply: 500 (the SoFA rolls the write back), and the event is not consumed.
    *poc.host.failing.lock().unwrap() = true;
    assert_eq!(poc.sofa.deliver(&id, &body).await, 500);
    *poc.host.failing.lock().unwrap() = false;
    assert_eq!(poc.sofa.deliver(&id, &body).await, 200);
    assert_eq!(poc.host.numbers(), [1]);
}

// REQ: LI-06
#[tokio::test]
async fn backport_ig_notifications_are_read_at_every_content_level() {
    let poc = poc(None).await;
    let fixture = |name: &str| {
        std::fs::read_to_string(format!(
            "{}/../fixtures/subscriptions/r4/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let receiver = &poc.receiver;
    assert_eq!(
        receiver
            .handle_frame(&fixture("Bundle-r4-notification-handshake.json"))
            .await
            .unwrap(),
        Receipt::Handshake {
            subscription_id: "admission".into()
        }
    );
    // Event 2 after the handshake: 1 is missing and the SoFA (which does not know
    // "admission") cannot give it back; it is reported and 2 is applied.
    let receipt = receiver
        .handle_frame(&fixture("Bundle-r4-notification-full-resource.json"))
        .await
        .unwrap();
    assert_eq!(
        receipt,
        Receipt::Events {
            subscription_id: "admission".into(),
            applied: vec![2],
            recovered: vec![],
            duplicates: vec![],
        }
    );
    assert_eq!(
        *poc.host.missed.lock().unwrap(),
        [("admission".to_owned(), 1, 1)]
    );
    {
        let changes = poc.host.changes.lock().unwrap();
        assert_eq!(
            changes[0].focus.as_deref(),
            Some("Encounter/86009987-eabe-42bf-8c02-b112b18cb616")
        );
        assert_eq!(
            changes[0].resource.as_ref().unwrap()["resourceType"],
            "Encounter"
        );
    }
    // The same event at the other content levels: duplicates.
    for name in [
        "Bundle-r4-notification-id-only.json",
        "Bundle-r4-notification-id-only-with-auth.json",
        "Bundle-r4-notification-id-only-with-query.json",
        "Bundle-r4-notification-empty.json",
        "Bundle-r4-notification-empty-with-auth.json",
        "Bundle-r4-notification-full-resource-with-query.json",
        "Bundle-r4-notification-multi-resource.json",
    ] {
        let receipt = receiver.handle_frame(&fixture(name)).await.unwrap();
        assert!(
            matches!(&receipt, Receipt::Events { duplicates, applied, .. } if duplicates == &[2] && applied.is_empty()),
            "{name}: {receipt:?}"
        );
    }
    let receipt = receiver
        .handle_frame(&fixture("Bundle-r4-notification-heartbeat.json"))
        .await
        .unwrap();
    assert!(matches!(receipt, Receipt::Heartbeat { ref recovered, .. } if recovered.is_empty()));
    assert_eq!(
        receiver
            .handle_frame(&fixture("Bundle-r4-notification-error.json"))
            .await
            .unwrap(),
        Receipt::Ignored
    );
    assert_eq!(poc.host.numbers(), [2]);

    // An id-only event for a new subscription: the focus without a body.
    let mut id_only: serde_json::Value =
        serde_json::from_str(&fixture("Bundle-r4-notification-id-only.json")).unwrap();
    id_only["entry"][0]["resource"]["parameter"][0]["valueReference"]["reference"] =
        json!("https://example.org/fhir/Subscription/other");
    receiver.handle_frame(&id_only.to_string()).await.unwrap();
    let changes = poc.host.changes.lock().unwrap();
    assert_eq!(changes[1].subscription_id, "other");
    assert!(changes[1].resource.is_none());
    assert!(changes[1].focus.is_some());
}

// REQ: LI-07
#[tokio::test]
async fn watchdog_checks_status_after_silence_and_recreates_a_dead_subscription() {
    let poc = poc(None).await;
    let manager = manager(&poc);
    let channel = rest_hook_channel(
        &poc.endpoint,
        PayloadContent::FullResource,
        &poc.secret,
        Some(1),
    );
    let subscription = manager.subscribe(channel).await.unwrap();
    let first = subscription.id.clone().unwrap();
    let current = CurrentSubscription::new(subscription);
    let watchdog = Watchdog::new(manager, poc.receiver.clone(), current.clone())
        .grace(Duration::from_millis(100));

    // Just heard the handshake: alive, no $status call.
    assert_eq!(watchdog.check().await.unwrap(), WatchdogVerdict::Alive);
    assert_eq!(poc.sofa.script().status_calls, 0);

    // Silent past the heartbeat period, but active: events it counted are recovered.
    let n1 = poc
        .sofa
        .record_event(&first, observation("obs-1", "Patient/x"), "POST");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        watchdog.check().await.unwrap(),
        WatchdogVerdict::StillActive
    );
    assert_eq!(poc.sofa.script().status_calls, 1);
    assert_eq!(poc.host.numbers(), [n1]);

    // Silent again and the SoFA has put it in error: replaced by a new, active one.
    poc.sofa.set_status(&first, SubscriptionStatus::Error);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let verdict = watchdog.check().await.unwrap();
    let WatchdogVerdict::Recreated { old_id, new_id } = verdict else {
        panic!("{verdict:?}");
    };
    assert_eq!(old_id, first);
    assert_ne!(new_id, first);
    assert_eq!(current.id(), new_id);
    assert_eq!(current.get().status, SubscriptionStatus::Active);
    assert!(
        !poc.sofa.script().subscriptions.contains_key(&first),
        "old one deleted"
    );

    // A heartbeat on the new one keeps it alive.
    assert_eq!(
        poc.sofa
            .deliver(&new_id, &poc.sofa.heartbeat(&new_id))
            .await,
        200
    );
    assert_eq!(watchdog.check().await.unwrap(), WatchdogVerdict::Alive);

    // The spawned form runs the same check; a deleted subscription is recreated too.
    poc.sofa.script().subscriptions.remove(&new_id);
    let task = watchdog.spawn(Duration::from_millis(100));
    eventually(|| current.id() != new_id).await;
    task.abort();
}

// REQ: LI-06
#[tokio::test]
async fn hostile_notifications_are_errors_not_panics() {
    // A SoFA that cannot be reached: recovery fails fast, as an error.
    let client = SofaClient::new(
        "http://127.0.0.1:9/fhir",
        Arc::new(StaticToken::new("t")),
        HttpOptions {
            timeout: Duration::from_millis(300),
            connect_timeout: Duration::from_millis(100),
            ..HttpOptions::default()
        },
    )
    .unwrap();
    let host = Arc::new(Host::default());
    let receiver =
        NotificationReceiver::builder(client, Arc::new(MemoryIdMap::new()), host.clone()).build();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/subscriptions/r4/Bundle-r4-notification-full-resource.json"
    ))
    .unwrap();
    // Every prefix of a real notification.
    for end in (0..text.len()).step_by(7) {
        if let Some(prefix) = text.get(..end) {
            assert!(receiver.handle_frame(prefix).await.is_err());
        }
    }
    // Extreme event numbers and counts.
    for (case, (number, since)) in [
        ("18446744073709551615", "18446744073709551615"),
        ("1", "18446744073709551615"),
        ("0", "0"),
        ("-1", "2"),
        ("2", "x"),
    ]
    .into_iter()
    .enumerate()
    {
        // The fixture's first "2" is events-since-subscription-start, the second the event number.
        let body = text
            .replacen(
                "\"valueString\": \"2\"",
                &format!("\"valueString\": \"{since}\""),
                1,
            )
            .replacen(
                "\"valueString\": \"2\"",
                &format!("\"valueString\": \"{number}\""),
                1,
            );
        let body = body.replace("admission", &format!("case-{case}"));
        let _ = receiver.handle_frame(&body).await;
    }
    // REQ: SYNC-06
    // A gap the unreachable SoFA cannot fill is an error, not a skip: nothing is passed as
    // missed, so the events are applied in order once the SoFA answers; the receiver carries
    // on with other subscriptions.
    assert!(host.missed.lock().unwrap().is_empty());
    let receipt = receiver
        .handle_frame(&text.replace("admission", "fresh"))
        .await
        .unwrap();
    assert!(matches!(receipt, Receipt::Events { .. }));
}

// REQ: SYNC-03, SYNC-06
#[tokio::test]
async fn events_about_one_resource_apply_each_its_own_entry_in_order() {
    use halo_model::subscription::{
        Notification, NotificationEntry, NotificationEvent, NotificationType,
        SubscriptionStatusParameters,
    };
    let poc = poc(None).await;
    let base = poc.client.fhir_base().to_string();
    let url = format!("{base}/Observation/o1");
    let mut status = SubscriptionStatusParameters::new(
        format!("{base}/Subscription/s1"),
        SubscriptionStatus::Active,
        NotificationType::QueryEvent,
    );
    status.events_since_subscription_start = Some(3);
    let mut created = observation("o1", "Patient/p1");
    created["meta"] = json!({"versionId": "1"});
    let mut amended = created.clone();
    amended["meta"] = json!({"versionId": "2"});
    amended["status"] = json!("amended");
    let entries = vec![
        NotificationEntry::created(url.clone(), "Observation", Some(created)),
        NotificationEntry::updated(url.clone(), "Observation", "o1", Some(amended)),
        NotificationEntry {
            full_url: url.clone(),
            resource: None,
            method: "DELETE".into(),
            url: "Observation/o1".into(),
            status: "204".into(),
        },
    ];
    for number in 1..=3 {
        status.events.push(NotificationEvent::new(
            number,
            "2026-12-07T00:00:00Z",
            Some(url.clone()),
        ));
    }
    let mut notification = Notification::new(status, format!("{base}/Subscription/s1/$status"));
    notification.entries = entries;
    poc.receiver.track("s1", 0).await;
    poc.receiver
        .handle_frame(&notification.to_json().to_string())
        .await
        .unwrap();
    // A create, the update, then the delete (a compensation): each event with its own entry.
    let changes = poc.host.changes.lock().unwrap().clone();
    let seen: Vec<(u64, Option<String>, Option<String>)> = changes
        .iter()
        .map(|c| {
            (
                c.event_number,
                c.method.clone(),
                c.resource
                    .as_ref()
                    .and_then(|r| r["meta"]["versionId"].as_str().map(str::to_string)),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (1, Some("POST".into()), Some("1".into())),
            (2, Some("PUT".into()), Some("2".into())),
            (3, Some("DELETE".into()), None),
        ]
    );
}

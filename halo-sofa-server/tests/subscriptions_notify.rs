//! The deliver-before-commit notifier over the real SQLite store and real PoC receivers on
//! loopback: payloads, failures, isolation between PoCs, concurrency, `$events`, `$status`,
//! restart and graceful shutdown.

// Test helpers may unwrap: a panic is a test failure with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/subscriptions.rs"]
mod subs;
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use halo_sofa_server::fhir::{NotifyError, WriteError};
use reqwest::StatusCode;
use serde_json::{Value, json};
use subs::{Harness, Mode, Receiver, event_numbers, status_parameter, write};
use support::TempDir;

fn delivery_failed(result: Result<impl std::fmt::Debug, WriteError>) -> String {
    match result {
        Err(WriteError::Notify(NotifyError::DeliveryFailed {
            reason,
            retry_after_seconds,
        })) => {
            assert!(retry_after_seconds > 0);
            reason
        }
        other => panic!("expected a failed delivery, got {other:?}"),
    }
}

#[tokio::test]
async fn a_write_commits_after_the_poc_acknowledged_its_notification() {
    let dir = TempDir::new("notify-ok");
    let h = Harness::start(&dir.db()).await;
    let poc = Receiver::start(Mode::Ok).await;
    let id = h.active_subscription("poc-0", &poc, "full-resource").await;
    let notifier = h.notifier();
    // REQ: RS-08
    write(&notifier, &h.store, "poc-0", "p1").await.unwrap();
    write(&notifier, &h.store, "poc-0", "p2").await.unwrap();
    assert!(h.patient_exists("p1").await && h.patient_exists("p2").await);
    let events = poc.of_kind("event-notification");
    // REQ: SUB-05
    assert_eq!(events.len(), 2);
    for (i, event) in events.iter().enumerate() {
        let number = i as u64 + 1;
        assert_eq!(event.event_numbers(), vec![number]);
        assert_eq!(
            status_parameter(&event.body, "events-since-subscription-start"),
            number.to_string()
        );
        assert_eq!(status_parameter(&event.body, "status"), "active");
        assert_eq!(event.subscription_id(), id);
        assert_eq!(event.body["type"], "history");
        assert!(
            event.body["entry"][0]["request"]["url"]
                .as_str()
                .unwrap()
                .ends_with(&format!("Subscription/{id}/$status"))
        );
        let entry = &event.body["entry"][1];
        assert_eq!(entry["resource"]["resourceType"], "Patient");
        assert_eq!(entry["request"]["method"], "POST");
        assert_eq!(entry["response"]["status"], "201");
        assert_eq!(event.headers["authorization"], "Bearer poc-notify-secret");
        assert_eq!(event.headers["x-poc"], "yes");
        assert_eq!(event.headers["content-type"], "application/fhir+json");
    }
    assert_eq!(h.counter(&id).await, 2);
}

#[tokio::test]
async fn payload_content_is_honoured() {
    let dir = TempDir::new("notify-content");
    let h = Harness::start(&dir.db()).await;
    let empty = Receiver::start(Mode::Ok).await;
    let id_only = Receiver::start(Mode::Ok).await;
    h.active_subscription("poc-0", &empty, "empty").await;
    h.active_subscription("poc-0", &id_only, "id-only").await;
    write(&h.notifier(), &h.store, "poc-0", "p1").await.unwrap();
    // REQ: SUB-05
    let e = empty.wait_for("event-notification").await;
    assert_eq!(e.body["entry"].as_array().unwrap().len(), 1);
    assert_eq!(status_parameter(&e.body, "topic"), "");
    assert!(!e.body.to_string().contains("Patient/p1"));
    let i = id_only.wait_for("event-notification").await;
    let entries = i.body["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert!(entries[1].get("resource").is_none());
    assert!(
        entries[1]["fullUrl"]
            .as_str()
            .unwrap()
            .ends_with("/Patient/p1")
    );
    assert!(i.body.to_string().contains("Patient/p1"));
}

#[tokio::test]
async fn nothing_commits_without_an_acknowledged_notification() {
    let dir = TempDir::new("notify-fail");
    let h = Harness::start(&dir.db()).await;
    let poc = Receiver::start(Mode::Ok).await;
    let id = h.active_subscription("poc-0", &poc, "id-only").await;
    let notifier = h.notifier();
    write(&notifier, &h.store, "poc-0", "p1").await.unwrap();

    // REQ: SUB-06
    poc.set_mode(Mode::Fail);
    let reason = delivery_failed(write(&notifier, &h.store, "poc-0", "p2").await);
    assert!(reason.contains("500"), "{reason}");
    assert!(!h.patient_exists("p2").await);
    // REQ: SYNC-01, SYNC-02
    // Event 2 may have been applied by the PoC: it keeps its number, and event 3, queued in the
    // outbox, tells the PoC that p2 does not exist.
    assert_eq!(h.counter(&id).await, 3);

    // The queued compensation goes first: with the endpoint hanging, the next write is refused
    // before anything of it is logged or sent.
    poc.set_mode(Mode::Hang);
    let started = Instant::now();
    let reason = delivery_failed(write(&notifier, &h.store, "poc-0", "p3").await);
    assert!(reason.contains("did not answer"), "{reason}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(!h.patient_exists("p3").await);
    assert_eq!(h.counter(&id).await, 3);

    // The PoC answers again: the compensation, then the write, each under its own number.
    poc.set_mode(Mode::Ok);
    write(&notifier, &h.store, "poc-0", "p4").await.unwrap();
    let delivered: Vec<(u64, String, String)> = poc
        .of_kind("event-notification")
        .iter()
        .filter(|r| status_parameter(&r.body, "status") == "active")
        .map(|r| {
            let entry = &r.body["entry"][1];
            (
                r.event_numbers()[0],
                entry["request"]["method"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                entry["fullUrl"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let seen: Vec<(u64, &str, bool)> = delivered
        .iter()
        .map(|(n, method, url)| (*n, method.as_str(), url.ends_with("/Patient/p2")))
        .collect();
    // 2 was answered 500 (and may have been applied), 3 compensates it; a number never names
    // two events.
    assert_eq!(
        seen,
        [
            (1, "POST", false),
            (2, "POST", true),
            (3, "DELETE", true),
            (4, "POST", false)
        ]
    );
    assert_eq!(h.counter(&id).await, 4);

    // D-08: no active subscription, no write.
    let result = write(&notifier, &h.store, "poc-5", "p5").await;
    assert!(matches!(
        result,
        Err(WriteError::Notify(NotifyError::NoActiveSubscription))
    ));
    assert!(!h.patient_exists("p5").await);
}

#[tokio::test]
async fn a_hanging_poc_never_delays_another_pocs_writes() {
    let dir = TempDir::new("notify-isolation");
    let h = Harness::start(&dir.db()).await;
    let slow = Receiver::start(Mode::Ok).await;
    let fast = Receiver::start(Mode::Ok).await;
    h.active_subscription("poc-0", &slow, "id-only").await;
    h.active_subscription("poc-1", &fast, "id-only").await;
    slow.set_mode(Mode::Hang);
    let notifier = h.notifier();
    let hanging = {
        let (notifier, store) = (notifier.clone(), h.store.clone());
        tokio::spawn(async move { write(&notifier, &store, "poc-0", "slow").await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // REQ: SUB-12
    let started = Instant::now();
    for i in 0..5 {
        write(&notifier, &h.store, "poc-1", &format!("fast-{i}"))
            .await
            .unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert!(!hanging.is_finished());
    delivery_failed(hanging.await.unwrap());
}

#[tokio::test]
async fn fifty_launches_to_ten_pocs_get_exactly_their_own_gap_free_events() {
    let dir = TempDir::new("notify-concurrency");
    let h = Harness::start(&dir.db()).await;
    let mut receivers = Vec::new();
    let mut ids = Vec::new();
    for p in 0..10 {
        let receiver = Receiver::start(Mode::Ok).await;
        ids.push(
            h.active_subscription(&format!("poc-{p}"), &receiver, "id-only")
                .await,
        );
        receivers.push(receiver);
    }
    // One PoC fails some deliveries: its writes must leave nothing behind.
    receivers[3].set_mode(Mode::Fail);
    let notifier = h.notifier();
    let mut tasks = Vec::new();
    for launch in 0..50 {
        let (notifier, store) = (notifier.clone(), h.store.clone());
        tasks.push(tokio::spawn(async move {
            let poc = format!("poc-{}", launch % 10);
            let mut committed = Vec::new();
            for write_number in 0..3 {
                let id = format!("l{launch}-w{write_number}");
                if write(&notifier, &store, &poc, &id).await.is_ok() {
                    committed.push(id);
                }
            }
            (poc, committed)
        }));
    }
    let mut committed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for task in tasks {
        let (poc, ids) = task.await.unwrap();
        committed.entry(poc).or_default().extend(ids);
    }
    // REQ: REL-04
    for (p, receiver) in receivers.iter().enumerate() {
        let poc = format!("poc-{p}");
        let acknowledged: Vec<Value> = receiver
            .of_kind("event-notification")
            .into_iter()
            .map(|r| r.body)
            .collect();
        for body in &acknowledged {
            assert!(
                body.to_string().contains(&ids[p]),
                "a foreign event reached {poc}"
            );
        }
        let expected = committed.get(&poc).cloned().unwrap_or_default();
        for id in &expected {
            assert!(h.patient_exists(id).await);
        }
        let (status, events) = h
            .get(&poc, &format!("/Subscription/{}/$events", ids[p]))
            .await;
        assert_eq!(status, StatusCode::OK);
        let numbers = event_numbers(&events);
        if p == 3 {
            // REQ: SYNC-02
            // The failing PoC's first write was sent as event 1 and compensated by event 2, a
            // delete of the same id, which waits in the outbox; every later write was refused
            // before anything of it was logged, so nothing overtakes the compensation.
            assert!(expected.is_empty());
            assert_eq!(numbers, [1, 2], "{poc}");
            let entries = events["entry"].as_array().unwrap();
            assert_eq!(entries[1]["request"]["method"], "POST");
            assert_eq!(entries[2]["request"]["method"], "DELETE");
            assert_eq!(entries[1]["fullUrl"], entries[2]["fullUrl"]);
            continue;
        }
        // Every committed write has one event; numbers are 1..=n with no gaps.
        assert_eq!(
            numbers,
            (1..=expected.len() as u64).collect::<Vec<_>>(),
            "{poc}"
        );
        assert_eq!(h.counter(&ids[p]).await, expected.len() as u64);
        let mut focused: Vec<String> = events["entry"].as_array().unwrap()[1..]
            .iter()
            .map(|e| {
                e["fullUrl"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        focused.sort();
        let mut expected = expected;
        expected.sort();
        assert_eq!(focused, expected, "{poc}");
        assert_eq!(expected.len(), 15, "{poc}");
    }
    // Nothing else was committed: every stored Patient is a committed write.
    let total: usize = committed.values().map(Vec::len).sum();
    assert_eq!(total, 135, "the failing PoC's 15 writes must not commit");
    let mut tx = h.store.begin_read().await.unwrap();
    assert_eq!(tx.count_resources().await.unwrap(), total as u64);
}

#[tokio::test]
async fn a_poc_that_went_down_recovers_missed_events_through_events_and_status() {
    let dir = TempDir::new("notify-recover");
    let h = Harness::start(&dir.db()).await;
    let poc = Receiver::start(Mode::Ok).await;
    let id = h.active_subscription("poc-0", &poc, "full-resource").await;
    let notifier = h.notifier();
    for i in 1..=3 {
        write(&notifier, &h.store, "poc-0", &format!("p{i}"))
            .await
            .unwrap();
    }
    poc.stop().await;
    delivery_failed(write(&notifier, &h.store, "poc-0", "while-down").await);
    assert!(!h.patient_exists("while-down").await);
    // It comes back having lost what it had received. Event 4 (the write while it was down)
    // is compensated by event 5, delivered before the next write, event 6.
    poc.restart().await;
    write(&notifier, &h.store, "poc-0", "p4").await.unwrap();
    let numbers: Vec<u64> = poc
        .of_kind("event-notification")
        .iter()
        .flat_map(|r| r.event_numbers())
        .collect();
    assert_eq!(numbers, vec![5, 6]);

    // REQ: SUB-08
    let (status, bundle) = h.get("poc-0", &format!("/Subscription/{id}/$status")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bundle["type"], "searchset");
    let parameters = &bundle["entry"][0]["resource"];
    assert_eq!(parameters["resourceType"], "Parameters");
    let mut wrapped = serde_json::json!({"entry": [{"resource": parameters}]});
    assert_eq!(status_parameter(&wrapped, "type"), "query-status");
    assert_eq!(
        status_parameter(&wrapped, "events-since-subscription-start"),
        "6"
    );
    let (_, all) = h.get("poc-0", "/Subscription/$status?status=active").await;
    assert_eq!(all["entry"].as_array().unwrap().len(), 1);
    wrapped = serde_json::json!({"entry": [{"resource": all["entry"][0]["resource"]}]});
    assert_eq!(status_parameter(&wrapped, "status"), "active");

    // REQ: SUB-07
    let (status, missed) = h
        .get(
            "poc-0",
            &format!("/Subscription/{id}/$events?eventsSinceNumber=1&eventsUntilNumber=3"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{missed}");
    assert_eq!(missed["type"], "history");
    assert_eq!(status_parameter(&missed, "type"), "query-event");
    assert_eq!(event_numbers(&missed), vec![1, 2, 3]);
    let entries = missed["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[1]["resource"]["id"], "p1");
    let (_, id_only) = h
        .get(
            "poc-0",
            &format!("/Subscription/{id}/$events?eventsSinceNumber=2&content=id-only"),
        )
        .await;
    assert_eq!(event_numbers(&id_only), vec![2, 3, 4, 5, 6]);
    assert!(id_only["entry"][1].get("resource").is_none());
    // REQ: SYNC-03
    // The write that never committed and its compensation are both in the history, as sent.
    let (_, history) = h
        .get(
            "poc-0",
            &format!("/Subscription/{id}/$events?eventsSinceNumber=4&eventsUntilNumber=5"),
        )
        .await;
    let entries = history["entry"].as_array().unwrap();
    assert_eq!(entries[1]["request"]["method"], "POST");
    assert_eq!(entries[1]["resource"]["id"], "while-down");
    assert_eq!(entries[2]["request"]["method"], "DELETE");
    assert!(entries[2].get("resource").is_none());
    assert!(
        entries[2]["fullUrl"]
            .as_str()
            .unwrap()
            .ends_with("/Patient/while-down")
    );
    let (status, _) = h
        .get(
            "poc-0",
            &format!("/Subscription/{id}/$events?eventsSinceNumber=x"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = h
        .get(
            "poc-0",
            &format!("/Subscription/{id}/$events?content=everything"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_restart_on_the_same_database_continues_subscriptions_and_counters() {
    let dir = TempDir::new("notify-restart");
    let poc = Receiver::start(Mode::Ok).await;
    let id = {
        let h = Harness::start(&dir.db()).await;
        let id = h.active_subscription("poc-0", &poc, "id-only").await;
        write(&h.notifier(), &h.store, "poc-0", "before")
            .await
            .unwrap();
        h.subscriptions.shutdown().await;
        id
    };
    // REQ: SUB-11
    let h = Harness::start(&dir.db()).await;
    let (status, body) = h.get("poc-0", &format!("/Subscription/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "active");
    write(&h.notifier(), &h.store, "poc-0", "after")
        .await
        .unwrap();
    let numbers: Vec<u64> = poc
        .of_kind("event-notification")
        .iter()
        .flat_map(|r| r.event_numbers())
        .collect();
    assert_eq!(numbers, vec![1, 2]);
    let (_, events) = h.get("poc-0", &format!("/Subscription/{id}/$events")).await;
    assert_eq!(event_numbers(&events), vec![1, 2]);
}

#[tokio::test]
async fn shutdown_waits_for_deliveries_in_flight() {
    let dir = TempDir::new("notify-shutdown");
    let h = Harness::start(&dir.db()).await;
    let poc = Receiver::start(Mode::Ok).await;
    h.active_subscription("poc-0", &poc, "id-only").await;
    poc.set_mode(Mode::Slow);
    let notifier = h.notifier();
    let in_flight = {
        let (notifier, store) = (notifier.clone(), h.store.clone());
        tokio::spawn(async move { write(&notifier, &store, "poc-0", "in-flight").await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(h.subscriptions.in_flight(), 1);
    // REQ: REL-05
    h.subscriptions.shutdown().await;
    assert!(in_flight.is_finished());
    in_flight.await.unwrap().unwrap();
    assert!(h.patient_exists("in-flight").await);
    let reason = delivery_failed(write(&notifier, &h.store, "poc-0", "late").await);
    assert!(reason.contains("shutting down"));
}

#[tokio::test]
async fn events_a_crash_left_pending_are_compensated_at_the_next_start() {
    let dir = TempDir::new("notify-crash");
    let poc = Receiver::start(Mode::Ok).await;
    let id = {
        let h = Harness::start(&dir.db()).await;
        let id = h.active_subscription("poc-0", &poc, "full-resource").await;
        write(&h.notifier(), &h.store, "poc-0", "kept")
            .await
            .unwrap();
        // The process logged event 2 for a create and died before its commit: nothing of the
        // write is stored, the event stays pending.
        let mut tx = h.store.begin().await.unwrap();
        let number = tx.allocate_event_number(&id).await.unwrap();
        tx.append_event(halo_sofa_server::store::EventRecord {
            subscription_id: id.clone(),
            event_number: number,
            timestamp: chrono::Utc::now(),
            focus: Some("Patient/lost".into()),
            state: halo_sofa_server::store::EventState::Pending,
            details: json!({"action": "POST", "resourceType": "Patient", "id": "lost",
                "version": 1, "resource": {"resourceType": "Patient", "id": "lost"}}),
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
        id
    };
    // REQ: SYNC-04, SYNC-02
    // The next process resolves it at start: the write can never commit, so the PoC is told
    // that Patient/lost does not exist, under the next number.
    let h = Harness::start(&dir.db()).await;
    let outbox = h.subscriptions.spawn_outbox();
    let compensation = poc.wait_for("event-notification").await;
    for _ in 0..100 {
        if poc.of_kind("event-notification").len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let events = poc.of_kind("event-notification");
    let last = events.last().unwrap_or(&compensation);
    assert_eq!(last.event_numbers(), [3]);
    assert_eq!(last.body["entry"][1]["request"]["method"], "DELETE");
    assert!(
        last.body["entry"][1]["fullUrl"]
            .as_str()
            .unwrap()
            .ends_with("/Patient/lost")
    );
    // The PoC has the compensation before the outbox records its delivery: wait for that.
    use halo_sofa_server::store::EventState::{Aborted, Committed, Delivered};
    let mut states = Vec::new();
    for _ in 0..200 {
        let mut tx = h.store.begin_read().await.unwrap();
        states = tx
            .events(&id, 1, None)
            .await
            .unwrap()
            .iter()
            .map(|e| e.state)
            .collect();
        let settled = tx.unsettled_events(&id).await.unwrap().is_empty();
        tx.rollback().await.unwrap();
        if settled && states == [Committed, Aborted, Delivered] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(states, [Committed, Aborted, Delivered]);
    outbox.abort();
}

//! Heartbeats: only for subscriptions that asked, after a period of silence, driven by a query
//! over the store so they continue after a restart.

// Test helpers may unwrap: a panic is a test failure with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/subscriptions.rs"]
mod subs;
mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use halo_sofa_server::clock::ManualClock;
use reqwest::{Method, StatusCode};
use serde_json::json;
use subs::{Harness, Mode, Receiver, rest_hook, status_parameter, test_settings, write};
use support::TempDir;

#[tokio::test]
async fn heartbeats_go_only_where_asked_and_survive_a_restart() {
    let dir = TempDir::new("heartbeat");
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let with = Receiver::start(Mode::Ok).await;
    let without = Receiver::start(Mode::Ok).await;
    let id = {
        let h = Harness::start_with(&dir.db(), clock.clone(), test_settings()).await;
        let mut body = rest_hook(&with.url(), "empty");
        body["channel"]["extension"] = json!([{
            "url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period",
            "valueUnsignedInt": 60
        }]);
        let (status, created) = h.send(Method::POST, "poc-0", "/Subscription", &body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["id"].as_str().unwrap().to_string();
        h.wait_status("poc-0", &id, "active").await;
        h.active_subscription("poc-1", &without, "empty").await;

        // REQ: SUB-04
        assert_eq!(
            h.subscriptions.send_due_heartbeats().await,
            0,
            "not yet due"
        );
        clock.advance(chrono::Duration::seconds(30));
        write(&h.notifier(), &h.store, "poc-0", "p1").await.unwrap();
        clock.advance(chrono::Duration::seconds(40));
        assert_eq!(
            h.subscriptions.send_due_heartbeats().await,
            0,
            "an event restarts the period"
        );
        clock.advance(chrono::Duration::seconds(30));
        let task = h.subscriptions.spawn_heartbeats();
        let heartbeat = with.wait_for("heartbeat").await;
        task.abort();
        assert_eq!(
            status_parameter(&heartbeat.body, "events-since-subscription-start"),
            "1",
            "a heartbeat does not advance the count"
        );
        assert_eq!(
            heartbeat.headers["authorization"],
            "Bearer poc-notify-secret"
        );
        assert_eq!(h.counter(&id).await, 1);
        assert_eq!(h.subscriptions.send_due_heartbeats().await, 0);
        h.subscriptions.shutdown().await;
        id
    };
    assert_eq!(with.of_kind("heartbeat").len(), 1);

    // A new server on the same database knows when the last one was sent.
    let h = Harness::start_with(&dir.db(), clock.clone(), test_settings()).await;
    assert_eq!(h.subscriptions.send_due_heartbeats().await, 0);
    clock.advance(chrono::Duration::seconds(61));
    assert_eq!(h.subscriptions.send_due_heartbeats().await, 1);
    assert_eq!(with.of_kind("heartbeat").len(), 2);
    assert!(without.of_kind("heartbeat").is_empty());

    // A heartbeat the PoC does not acknowledge puts the subscription in error.
    with.set_mode(Mode::Fail);
    clock.advance(chrono::Duration::seconds(61));
    assert_eq!(h.subscriptions.send_due_heartbeats().await, 0);
    let errored = h.wait_status("poc-0", &id, "error").await;
    assert!(errored["error"].as_str().unwrap().contains("heartbeat"));
    tokio::time::sleep(Duration::from_millis(10)).await;
}

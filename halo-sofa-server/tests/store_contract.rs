//! The store contract, run against both backends: what commits stays, what does not leaves
//! nothing, and SQLite keeps it across a restart and a crash.

// Test helpers may unwrap: a panic is a test failure with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use chrono::{Duration, Utc};
use halo_model::fhir::RawResource;
use halo_sofa_server::store::StoreError;
use halo_sofa_server::store::{
    AuthorizationCodeRecord, ClientCredentials, ClientRecord, EventRecord, EventState,
    LaunchRecord, MemoryStore, NewResource, RefreshTokenRecord, ResourceQuery, SigningKeyRecord,
    SqliteStore, Store, SubscriptionRecord, SubscriptionStatus,
};
use serde_json::json;
use support::{TempDir, counts, patient};

/// Every backend, each fresh: the same contract runs unchanged against all of them
/// (REQ CLU-01).
async fn backends(label: &str) -> (TempDir, Vec<(&'static str, Arc<dyn Store>)>) {
    let dir = TempDir::new(label);
    let sqlite = SqliteStore::open(dir.db()).await.unwrap();
    let mut stores: Vec<(&'static str, Arc<dyn Store>)> = vec![
        ("memory", Arc::new(MemoryStore::new())),
        ("sqlite", Arc::new(sqlite)),
    ];
    if let Some(postgres) = support::postgres_store(label).await {
        stores.push(("postgres", Arc::new(postgres)));
    }
    (dir, stores)
}

fn launch(id: &str, client: &str, expires_in: Duration) -> LaunchRecord {
    let now = Utc::now();
    LaunchRecord {
        launch_id: id.into(),
        client_id: client.into(),
        user: Some("dr-a".into()),
        owner_fhir_user: None,
        app_id: None,
        patient: Some("Patient/p1".into()),
        encounter: None,
        fhir_user: None,
        fhir_context: vec!["Location/l1".into()],
        need_patient_banner: Some(true),
        intent: None,
        smart_style_url: None,
        tenant: None,
        created_at: now,
        expires_at: now + expires_in,
    }
}

fn subscription(id: &str, owner: &str, status: SubscriptionStatus) -> SubscriptionRecord {
    SubscriptionRecord {
        id: id.into(),
        owner_client_id: owner.into(),
        topic: halo_model::canonical::SOFA_CONTENT_UPDATE_TOPIC.into(),
        status,
        events_since_start: 0,
        resource: RawResource::from_value(json!({"resourceType": "Subscription", "id": id}))
            .unwrap(),
        updated_at: Utc::now(),
    }
}

// REQ: REL-02
// REQ: SC-04
#[tokio::test]
async fn a_transaction_failing_on_its_kth_write_leaves_nothing() {
    let (_dir, stores) = backends("kth").await;
    for (name, store) in stores {
        let mut tx = store.begin().await.unwrap();
        tx.create_resource(patient("existing")).await.unwrap();
        tx.commit().await.unwrap();
        let before = counts(&store).await;

        let k = 5;
        let mut tx = store.begin().await.unwrap();
        tx.insert_launch(launch("L1", "poc", Duration::hours(1)))
            .await
            .unwrap();
        let mut failure = None;
        for i in 0..10 {
            // The k-th entry collides with a stored resource.
            let id = if i == k {
                "existing".to_string()
            } else {
                format!("p{i}")
            };
            if let Err(e) = tx.create_resource(patient(&id)).await {
                failure = Some((i, e));
                break;
            }
        }
        let (at, error) = failure.expect("the k-th write fails");
        assert_eq!(at, k, "{name}");
        assert!(
            matches!(error, StoreError::AlreadyExists(_)),
            "{name}: {error}"
        );
        drop(tx);
        assert_eq!(counts(&store).await, before, "{name}: nothing partial");

        // An explicit rollback discards as well.
        let mut tx = store.begin().await.unwrap();
        tx.create_resource(patient("rolled-back")).await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(counts(&store).await, before, "{name}");
    }
}

// REQ: SC-04
#[tokio::test]
async fn a_batch_of_creates_is_stored_in_order_and_all_or_none() {
    let (_dir, stores) = backends("batch").await;
    for (name, store) in stores {
        let mut tx = store.begin().await.unwrap();
        let stored = tx
            .create_resources(vec![patient("b1"), patient("b2"), patient("b3")])
            .await
            .unwrap();
        let ids: Vec<&str> = stored.iter().map(|s| s.id()).collect();
        assert_eq!(ids, ["b1", "b2", "b3"], "{name}");
        assert!(stored.iter().all(|s| s.version == 1), "{name}");
        tx.commit().await.unwrap();
        let before = counts(&store).await;

        // A batch whose second entry collides fails whole, with the transaction.
        let mut tx = store.begin().await.unwrap();
        let error = tx
            .create_resources(vec![patient("b4"), patient("b2"), patient("b5")])
            .await
            .unwrap_err();
        assert!(
            matches!(error, StoreError::AlreadyExists(_)),
            "{name}: {error}"
        );
        drop(tx);
        assert_eq!(counts(&store).await, before, "{name}: nothing partial");
        let mut tx = store.begin_read().await.unwrap();
        assert!(
            tx.read_resource("Patient", "b4").await.unwrap().is_none(),
            "{name}"
        );
        tx.rollback().await.unwrap();
    }
}

#[tokio::test]
async fn resources_are_versioned_searched_and_deleted_by_launch() {
    let (_dir, stores) = backends("resources").await;
    for (name, store) in stores {
        let mut tx = store.begin().await.unwrap();
        let mut p = patient("p1");
        p.launch_id = Some("L1".into());
        let created = tx.create_resource(p).await.unwrap();
        assert_eq!(created.version, 1);
        assert_eq!(created.resource.get("meta").unwrap()["versionId"], "1");
        let observation = NewResource {
            resource: RawResource::from_slice(
                br#"{"resourceType": "Observation", "id": "o1", "status": "final",
                "code": {"text": "x"}, "subject": {"reference": "Patient/p1"},
                "valueQuantity": {"value": 1.50}}"#,
            )
            .unwrap(),
            launch_id: Some("L1".into()),
            last_updated: Utc::now(),
        };
        tx.create_resource(observation.clone()).await.unwrap();
        tx.create_resource(patient("other")).await.unwrap();
        let updated = tx
            .update_resource(observation.clone(), Some(1))
            .await
            .unwrap();
        assert_eq!(updated.version, 2, "{name}");
        assert!(matches!(
            tx.update_resource(observation, Some(1)).await,
            Err(StoreError::VersionConflict { found: 2, .. })
        ));
        tx.commit().await.unwrap();

        let mut tx = store.begin().await.unwrap();
        let read = tx
            .read_resource("Observation", "o1")
            .await
            .unwrap()
            .unwrap();
        // Lossless: the decimal keeps its written form.
        assert!(
            String::from_utf8(read.resource.to_vec())
                .unwrap()
                .contains("1.50")
        );
        let about_p1 = tx
            .search_resources(&ResourceQuery {
                references: Some("Patient/p1".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(about_p1.len(), 1, "{name}");
        assert_eq!(about_p1[0].id(), "o1");
        let in_launch = tx
            .search_resources(&ResourceQuery {
                launch_id: Some("L1".into()),
                limit: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(in_launch.len(), 1, "{name}");
        assert_eq!(tx.delete_launch_resources("L1").await.unwrap(), 2, "{name}");
        assert_eq!(tx.count_resources().await.unwrap(), 1);
        assert!(tx.delete_resource("Patient", "other").await.unwrap());
        assert!(!tx.delete_resource("Patient", "other").await.unwrap());
        tx.commit().await.unwrap();
    }
}

// REQ: RS-04, SC-11
#[tokio::test]
async fn past_versions_are_read_while_the_resource_lives_and_go_with_it() {
    let (_dir, stores) = backends("versions").await;
    for (name, store) in stores {
        let mut tx = store.begin().await.unwrap();
        let mut p = patient("pv");
        p.launch_id = Some("LV".into());
        tx.create_resource(p.clone()).await.unwrap();
        let mut second = p.clone();
        second.resource = RawResource::from_slice(
            br#"{"resourceType": "Patient", "id": "pv", "gender": "male"}"#,
        )
        .unwrap();
        tx.update_resource(second.clone(), Some(1)).await.unwrap();
        tx.update_resource(second, Some(2)).await.unwrap();
        tx.commit().await.unwrap();

        let mut tx = store.begin_read().await.unwrap();
        let history = tx.resource_history("Patient", "pv").await.unwrap();
        assert_eq!(
            history.iter().map(|v| v.version).collect::<Vec<_>>(),
            [3, 2, 1],
            "{name}"
        );
        let first = tx
            .read_resource_version("Patient", "pv", 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.resource.get("gender").unwrap(), "female", "{name}");
        assert_eq!(first.resource.get("meta").unwrap()["versionId"], "1");
        assert_eq!(first.launch_id.as_deref(), Some("LV"));
        assert!(
            tx.read_resource_version("Patient", "pv", 4)
                .await
                .unwrap()
                .is_none()
        );
        drop(tx);

        // Deleted, the resource takes its past versions with it; so does its launch.
        let mut tx = store.begin().await.unwrap();
        assert!(tx.delete_resource("Patient", "pv").await.unwrap());
        assert!(
            tx.read_resource_version("Patient", "pv", 1)
                .await
                .unwrap()
                .is_none(),
            "{name}"
        );
        assert!(
            tx.resource_history("Patient", "pv")
                .await
                .unwrap()
                .is_empty()
        );
        tx.create_resource(p.clone()).await.unwrap();
        assert_eq!(
            tx.resource_history("Patient", "pv").await.unwrap().len(),
            1,
            "{name}"
        );
        let mut again = p.clone();
        again.resource =
            RawResource::from_slice(br#"{"resourceType": "Patient", "id": "pv"}"#).unwrap();
        tx.update_resource(again, None).await.unwrap();
        assert_eq!(tx.delete_launch_resources("LV").await.unwrap(), 1);
        tx.create_resource(p).await.unwrap();
        assert_eq!(
            tx.resource_history("Patient", "pv").await.unwrap().len(),
            1,
            "{name}: the launch's past versions are gone"
        );
        tx.commit().await.unwrap();
    }
}

// REQ: SC-07
// REQ: SC-12
#[tokio::test]
async fn launches_expire_by_query_and_take_their_grants_with_them() {
    let (_dir, stores) = backends("launches").await;
    for (name, store) in stores {
        let mut tx = store.begin().await.unwrap();
        tx.insert_launch(launch("old", "poc", Duration::seconds(-5)))
            .await
            .unwrap();
        tx.insert_launch(launch("new", "poc", Duration::hours(1)))
            .await
            .unwrap();
        assert!(matches!(
            tx.insert_launch(launch("new", "poc", Duration::hours(1)))
                .await,
            Err(StoreError::AlreadyExists(_))
        ));
        tx.insert_refresh_token(RefreshTokenRecord {
            token_hash: "h1".into(),
            family_id: "f1".into(),
            client_id: "app".into(),
            user: None,
            scope: "launch".into(),
            launch_id: Some("old".into()),
            expires_at: Utc::now() + Duration::hours(1),
            revoked: false,
            details: json!({}),
        })
        .await
        .unwrap();
        tx.insert_authorization_code(AuthorizationCodeRecord {
            code_hash: "c1".into(),
            client_id: "app".into(),
            redirect_uri: "https://app/cb".into(),
            code_challenge: "x".into(),
            scope: "launch".into(),
            user: None,
            launch_id: Some("old".into()),
            expires_at: Utc::now(),
            consumed: false,
            details: json!({}),
        })
        .await
        .unwrap();
        assert_eq!(tx.expired_launches(Utc::now(), 10).await.unwrap(), ["old"]);
        assert_eq!(tx.revoke_launch_grants("old").await.unwrap(), 2, "{name}");
        assert!(tx.get_refresh_token("h1").await.unwrap().unwrap().revoked);
        assert!(tx.consume_authorization_code("c1").await.unwrap().is_none());
        let stored = tx.get_launch("new").await.unwrap().unwrap();
        assert_eq!(stored.launch_context().patient.as_deref(), Some("p1"));
        assert!(tx.delete_launch("old").await.unwrap());
        tx.commit().await.unwrap();
    }
}

// REQ: SC-08
#[tokio::test]
async fn active_subscription_check_and_event_numbers_roll_back() {
    let (_dir, stores) = backends("subscriptions").await;
    let topic = halo_model::canonical::SOFA_CONTENT_UPDATE_TOPIC;
    for (name, store) in stores {
        let mut tx = store.begin().await.unwrap();
        tx.insert_subscription(subscription("s1", "poc", SubscriptionStatus::Requested))
            .await
            .unwrap();
        assert!(!tx.has_active_subscription("poc", topic).await.unwrap());
        let mut active = subscription("s1", "poc", SubscriptionStatus::Active);
        active.updated_at = Utc::now();
        tx.update_subscription(active).await.unwrap();
        assert!(
            tx.has_active_subscription("poc", topic).await.unwrap(),
            "{name}"
        );
        assert!(!tx.has_active_subscription("other", topic).await.unwrap());
        assert_eq!(tx.allocate_event_number("s1").await.unwrap(), 1);
        tx.commit().await.unwrap();

        // Like every write, an allocation rolls back with its transaction; the write path
        // therefore allocates in a transaction that commits before delivery (D-09).
        let mut tx = store.begin().await.unwrap();
        assert_eq!(tx.allocate_event_number("s1").await.unwrap(), 2);
        tx.rollback().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        let n = tx.allocate_event_number("s1").await.unwrap();
        assert_eq!(n, 2, "{name}");
        tx.append_event(EventRecord {
            subscription_id: "s1".into(),
            event_number: n,
            timestamp: Utc::now(),
            focus: Some("Patient/p1".into()),
            state: EventState::Pending,
            details: json!({}),
        })
        .await
        .unwrap();
        assert_eq!(tx.events("s1", 1, None).await.unwrap().len(), 1);
        assert_eq!(
            tx.get_subscription("s1")
                .await
                .unwrap()
                .unwrap()
                .events_since_start,
            2
        );
        assert_eq!(tx.list_subscriptions(Some("poc")).await.unwrap().len(), 1);
        assert!(tx.delete_subscription("s1").await.unwrap());
        tx.commit().await.unwrap();
    }
}

// REQ: REL-01
#[tokio::test]
async fn sqlite_keeps_everything_across_a_restart() {
    let dir = TempDir::new("restart");
    {
        let store = SqliteStore::open(dir.db()).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        tx.create_resource(patient("p1")).await.unwrap();
        tx.insert_launch(launch("L1", "poc", Duration::hours(1)))
            .await
            .unwrap();
        tx.insert_subscription(subscription("s1", "poc", SubscriptionStatus::Active))
            .await
            .unwrap();
        tx.allocate_event_number("s1").await.unwrap();
        tx.insert_refresh_token(RefreshTokenRecord {
            token_hash: "h1".into(),
            family_id: "f1".into(),
            client_id: "app".into(),
            user: None,
            scope: "launch".into(),
            launch_id: None,
            expires_at: Utc::now(),
            revoked: false,
            details: json!({}),
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    let store = SqliteStore::open(dir.db()).await.unwrap();
    let mut tx = store.begin_read().await.unwrap();
    assert!(tx.read_resource("Patient", "p1").await.unwrap().is_some());
    assert_eq!(tx.get_launch("L1").await.unwrap().unwrap().client_id, "poc");
    let s = tx.get_subscription("s1").await.unwrap().unwrap();
    assert_eq!(
        (s.status, s.events_since_start),
        (SubscriptionStatus::Active, 1)
    );
    assert!(tx.get_refresh_token("h1").await.unwrap().is_some());
}

const CRASH_DB: &str = "HALO_SOFA_CRASH_DB";
const READY: &str = "HALO-SOFA-CHILD-READY";

/// Child half of the crash test: only does something when the parent runs it.
#[tokio::test]
async fn crash_child() {
    let Ok(path) = std::env::var(CRASH_DB) else {
        return;
    };
    let store = SqliteStore::open(&path).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.insert_launch(launch("doomed", "poc", Duration::hours(1)))
        .await
        .unwrap();
    for i in 0..2000 {
        tx.create_resource(patient(&format!("doomed-{i}")))
            .await
            .unwrap();
    }
    println!("{READY}");
    std::io::stdout().flush().unwrap();
    // Wait to be killed with the transaction open.
    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    panic!("the parent should have killed this process");
}

// REQ: REL-02
#[tokio::test]
async fn a_process_killed_mid_transaction_leaves_nothing_partial() {
    let dir = TempDir::new("crash");
    {
        let store = SqliteStore::open(dir.db()).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        tx.create_resource(patient("committed")).await.unwrap();
        tx.commit().await.unwrap();
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CRASH_DB, dir.db())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut ready = false;
    for line in BufReader::new(stdout).lines() {
        if line.unwrap().contains(READY) {
            ready = true;
            break;
        }
    }
    assert!(
        ready,
        "the child never reached the middle of its transaction"
    );
    // std's kill is SIGKILL on Unix: no destructor, no rollback, no cleanup runs.
    child.kill().unwrap();
    child.wait().unwrap();

    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.db()).await.unwrap());
    assert_eq!(counts(&store).await, (1, 0));
    let mut tx = store.begin_read().await.unwrap();
    assert!(
        tx.read_resource("Patient", "committed")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        tx.read_resource("Patient", "doomed-0")
            .await
            .unwrap()
            .is_none()
    );
    assert!(tx.get_launch("doomed").await.unwrap().is_none());
}

fn event(subscription: &str, number: u64, state: EventState) -> EventRecord {
    EventRecord {
        subscription_id: subscription.into(),
        event_number: number,
        timestamp: Utc::now(),
        focus: Some("Observation/o1".into()),
        state,
        details: json!({"action": "POST", "resourceType": "Observation", "id": "o1"}),
    }
}

#[tokio::test]
// REQ: SYNC-01, SYNC-04
async fn event_states_move_only_from_the_state_named() {
    let (_dir, stores) = backends("event-states").await;
    for (name, store) in stores {
        let mut tx = store.begin().await.unwrap();
        for id in ["s1", "s2"] {
            tx.insert_subscription(subscription(id, "poc", SubscriptionStatus::Active))
                .await
                .unwrap();
        }
        tx.append_event(event("s1", 1, EventState::Committed))
            .await
            .unwrap();
        tx.append_event(event("s1", 2, EventState::Pending))
            .await
            .unwrap();
        tx.append_event(event("s1", 3, EventState::Outbox))
            .await
            .unwrap();
        tx.append_event(event("s2", 1, EventState::Delivered))
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let mut tx = store.begin().await.unwrap();
        assert_eq!(
            tx.subscriptions_with_unsettled_events().await.unwrap(),
            ["s1"],
            "{name}"
        );
        let unsettled: Vec<(u64, EventState)> = tx
            .unsettled_events("s1")
            .await
            .unwrap()
            .iter()
            .map(|e| (e.event_number, e.state))
            .collect();
        assert_eq!(
            unsettled,
            [(2, EventState::Pending), (3, EventState::Outbox)],
            "{name}"
        );
        // A commit and a compensation race for event 2: the first move wins, the second finds
        // it gone and changes nothing.
        assert!(
            tx.transition_event("s1", 2, EventState::Pending, EventState::Committed)
                .await
                .unwrap()
        );
        assert!(
            !tx.transition_event("s1", 2, EventState::Pending, EventState::Aborted)
                .await
                .unwrap(),
            "{name}"
        );
        assert!(
            !tx.transition_event("s1", 9, EventState::Pending, EventState::Aborted)
                .await
                .unwrap()
        );
        tx.commit().await.unwrap();

        // A rolled-back move leaves the state as it was; the state reads back with the event.
        let mut tx = store.begin().await.unwrap();
        assert!(
            tx.transition_event("s1", 3, EventState::Outbox, EventState::Delivered)
                .await
                .unwrap()
        );
        tx.rollback().await.unwrap();
        let mut tx = store.begin_read().await.unwrap();
        let states: Vec<EventState> = tx
            .events("s1", 1, None)
            .await
            .unwrap()
            .iter()
            .map(|e| e.state)
            .collect();
        assert_eq!(
            states,
            [
                EventState::Committed,
                EventState::Committed,
                EventState::Outbox
            ],
            "{name}"
        );
    }
}

#[tokio::test]
// REQ: CLU-05
async fn a_version_one_database_is_upgraded_and_its_events_read_as_committed() {
    let dir = TempDir::new("schema-upgrade");
    {
        let c = rusqlite::Connection::open(dir.db()).unwrap();
        c.execute_batch(
            "CREATE TABLE subscriptions (id TEXT PRIMARY KEY, owner TEXT NOT NULL,
                 topic TEXT NOT NULL, status TEXT NOT NULL, events_since_start INTEGER NOT NULL,
                 record TEXT NOT NULL);
             CREATE TABLE events (subscription_id TEXT NOT NULL, event_number INTEGER NOT NULL,
                 record TEXT NOT NULL, PRIMARY KEY (subscription_id, event_number));
             PRAGMA user_version = 1;",
        )
        .unwrap();
        let old = json!({"subscription_id": "s1", "event_number": 1,
            "timestamp": "2026-01-01T00:00:00Z", "focus": "Patient/p1",
            "details": {"action": "POST", "resourceType": "Patient", "id": "p1", "version": 1}});
        c.execute(
            "INSERT INTO events (subscription_id, event_number, record) VALUES ('s1', 1, ?1)",
            [old.to_string()],
        )
        .unwrap();
    }
    let store = SqliteStore::open(dir.db()).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let events = tx.events("s1", 1, None).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].state, EventState::Committed);
    assert!(tx.unsettled_events("s1").await.unwrap().is_empty());
    tx.append_event(event("s1", 2, EventState::Pending))
        .await
        .unwrap();
    assert_eq!(tx.unsettled_events("s1").await.unwrap().len(), 1);
    tx.commit().await.unwrap();
    drop(store);
    // Opening again changes nothing.
    let store = SqliteStore::open(dir.db()).await.unwrap();
    let mut tx = store.begin_read().await.unwrap();
    assert_eq!(tx.events("s1", 1, None).await.unwrap().len(), 2);
}

// REQ: IDP-05
#[tokio::test]
async fn revoked_families_and_jti_records_hold_until_they_expire_then_are_purged() {
    let (_dir, stores) = backends("revocations").await;
    let now = Utc::now();
    for (name, store) in stores {
        let mut tx = store.begin().await.unwrap();
        assert!(
            !tx.access_family_revoked("f1", now).await.unwrap(),
            "{name}"
        );
        tx.revoke_access_family("f1", now + Duration::minutes(60))
            .await
            .unwrap();
        // Recorded again with an earlier expiry: the later one stays.
        tx.revoke_access_family("f1", now + Duration::minutes(5))
            .await
            .unwrap();
        tx.revoke_access_family("f2", now + Duration::minutes(1))
            .await
            .unwrap();
        assert!(
            tx.record_jti("app", "j1", now + Duration::minutes(5), now)
                .await
                .unwrap()
        );
        // The same id of another issuer is another record.
        assert!(
            tx.record_jti("other", "j1", now + Duration::minutes(5), now)
                .await
                .unwrap()
        );
        tx.commit().await.unwrap();

        let mut tx = store.begin().await.unwrap();
        assert!(tx.access_family_revoked("f1", now).await.unwrap(), "{name}");
        assert!(
            !tx.access_family_revoked("f3", now).await.unwrap(),
            "{name}"
        );
        // A replay inside the lifetime is refused and changes nothing.
        assert!(
            !tx.record_jti("app", "j1", now + Duration::hours(9), now)
                .await
                .unwrap(),
            "{name}"
        );
        tx.commit().await.unwrap();

        // A rolled-back record leaves nothing.
        let mut tx = store.begin().await.unwrap();
        assert!(
            tx.record_jti("app", "j2", now + Duration::minutes(5), now)
                .await
                .unwrap()
        );
        tx.rollback().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        assert!(
            tx.record_jti("app", "j2", now + Duration::minutes(5), now)
                .await
                .unwrap(),
            "{name}"
        );

        // Ten minutes on: f2 and the jtis have expired (j1's replay did not extend it), f1 has
        // not. Expired records no longer count, and the purge removes exactly them.
        let later = now + Duration::minutes(10);
        assert!(
            !tx.access_family_revoked("f2", later).await.unwrap(),
            "{name}"
        );
        assert!(
            tx.access_family_revoked("f1", later).await.unwrap(),
            "{name}"
        );
        assert!(
            tx.record_jti("app", "j1", later + Duration::minutes(5), later)
                .await
                .unwrap(),
            "{name}"
        );
        // f2, other/j1, app/j2 (app/j1 was just renewed).
        assert_eq!(
            tx.purge_expired_auth_records(later).await.unwrap(),
            3,
            "{name}"
        );
        assert_eq!(
            tx.purge_expired_auth_records(later).await.unwrap(),
            0,
            "{name}"
        );
        assert!(
            tx.access_family_revoked("f1", later).await.unwrap(),
            "{name}"
        );
        assert!(
            !tx.record_jti("app", "j1", later, later).await.unwrap(),
            "{name}"
        );
        tx.commit().await.unwrap();
    }
}

// REQ: IDP-05
#[tokio::test]
async fn sqlite_keeps_revocations_and_jti_records_across_a_restart() {
    let dir = TempDir::new("revocations-restart");
    let now = Utc::now();
    {
        let store = SqliteStore::open(dir.db()).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        tx.revoke_access_family("f1", now + Duration::hours(1))
            .await
            .unwrap();
        assert!(
            tx.record_jti("app", "j1", now + Duration::minutes(5), now)
                .await
                .unwrap()
        );
        tx.commit().await.unwrap();
    }
    let store = SqliteStore::open(dir.db()).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert!(tx.access_family_revoked("f1", now).await.unwrap());
    assert!(
        !tx.record_jti("app", "j1", now + Duration::minutes(5), now)
            .await
            .unwrap()
    );
}

#[tokio::test]
// REQ: CLU-01, SYNC-01
async fn racing_writers_get_distinct_event_numbers_and_readers_see_only_commits() {
    let (_dir, stores) = backends("races").await;
    for (name, store) in stores {
        let mut tx = store.begin().await.unwrap();
        tx.insert_subscription(subscription("s1", "poc", SubscriptionStatus::Active))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut writers = Vec::new();
        for _ in 0..8 {
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                let mut tx = store.begin().await.unwrap();
                let n = tx.allocate_event_number("s1").await.unwrap();
                tx.append_event(event("s1", n, EventState::Pending))
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
                tx.commit().await.unwrap();
                n
            }));
        }
        let mut numbers = Vec::new();
        for writer in writers {
            numbers.push(writer.await.unwrap());
        }
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=8).collect::<Vec<u64>>(), "{name}");

        // A reader beside an open write sees the state before it (backends with concurrent
        // readers; the memory store serialises every transaction instead).
        if name == "memory" {
            continue;
        }
        let mut writing = store.begin().await.unwrap();
        writing
            .insert_launch(launch("l-open", "poc", Duration::hours(1)))
            .await
            .unwrap();
        assert_eq!(writing.allocate_event_number("s1").await.unwrap(), 9);
        let mut reader = store.begin_read().await.unwrap();
        assert!(
            reader.get_launch("l-open").await.unwrap().is_none(),
            "{name}"
        );
        let counter = reader
            .get_subscription("s1")
            .await
            .unwrap()
            .unwrap()
            .events_since_start;
        assert_eq!(counter, 8, "{name}");
        drop(reader);
        writing.commit().await.unwrap();
        let mut reader = store.begin_read().await.unwrap();
        assert!(reader.get_launch("l-open").await.unwrap().is_some());
    }
}

#[tokio::test]
// REQ: SYNC-05
async fn a_clear_waits_for_a_write_that_holds_its_launch() {
    let (_dir, stores) = backends("clear-fence").await;
    for (name, store) in stores {
        let mut tx = store.begin().await.unwrap();
        tx.insert_launch(launch("l1", "poc", Duration::hours(1)))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        // The write path: read the launch in its transaction, then write into it.
        let mut writing = store.begin().await.unwrap();
        assert!(writing.get_launch("l1").await.unwrap().is_some());
        let mut resource = patient("p-late");
        resource.launch_id = Some("l1".into());
        writing.create_resource(resource).await.unwrap();
        // The clear, as `$clear-context` runs it: the launch row first, then its resources.
        let clearing = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.begin().await.unwrap();
                tx.delete_launch("l1").await.unwrap();
                let removed = tx.delete_launch_resources("l1").await.unwrap();
                tx.commit().await.unwrap();
                removed
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!clearing.is_finished(), "{name}: the clear did not wait");
        writing.commit().await.unwrap();
        // It waited, and took what the write committed with the rest: nothing is orphaned.
        assert_eq!(clearing.await.unwrap(), 1, "{name}");
        let mut tx = store.begin_read().await.unwrap();
        assert!(
            tx.read_resource("Patient", "p-late")
                .await
                .unwrap()
                .is_none()
        );
        assert!(tx.get_launch("l1").await.unwrap().is_none());
    }
}

#[tokio::test]
// REQ: CLU-05
async fn postgres_migrations_apply_once_when_instances_start_together() {
    let Some(url) = support::postgres_url() else {
        return;
    };
    let schema = format!("t_migrate_{}", uuid::Uuid::new_v4().simple());
    let mut starts = Vec::new();
    for _ in 0..4 {
        let (url, schema) = (url.clone(), schema.clone());
        starts.push(tokio::spawn(async move {
            let options = halo_sofa_server::store::PostgresOptions {
                schema: Some(schema),
                max_connections: 2,
                ..Default::default()
            };
            halo_sofa_server::store::PostgresStore::connect_with(&url, options)
                .await
                .unwrap()
        }));
    }
    let mut stores = Vec::new();
    for start in starts {
        stores.push(start.await.unwrap());
    }
    let applied = stores[0].migrations().await.unwrap();
    // Each migration once, in order, whatever the instances raced for.
    assert!(applied.starts_with(&[1, 2, 4]), "{applied:?}");
    assert!(applied.windows(2).all(|w| w[0] < w[1]), "{applied:?}");
    // Every instance works on the same tables.
    let mut tx = stores[1].begin().await.unwrap();
    tx.insert_launch(launch("shared", "poc", Duration::hours(1)))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = stores[3].begin_read().await.unwrap();
    assert!(tx.get_launch("shared").await.unwrap().is_some());
}

#[tokio::test]
// REQ: CLU-02, SYNC-01
async fn a_status_change_read_before_an_allocation_never_puts_the_counter_back() {
    let (_dir, stores) = backends("counter-kept").await;
    for (name, store) in stores {
        let mut tx = store.begin().await.unwrap();
        tx.insert_subscription(subscription("s1", "poc", SubscriptionStatus::Requested))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        // One instance reads the subscription to change its status...
        let mut tx = store.begin_read().await.unwrap();
        let mut read = tx.get_subscription("s1").await.unwrap().unwrap();
        drop(tx);
        // ...another allocates two numbers meanwhile...
        let mut tx = store.begin().await.unwrap();
        tx.allocate_event_number("s1").await.unwrap();
        tx.allocate_event_number("s1").await.unwrap();
        tx.commit().await.unwrap();
        // ...and the status change, written from the stale read, keeps the counter at 2.
        read.status = SubscriptionStatus::Active;
        let mut tx = store.begin().await.unwrap();
        tx.update_subscription(read).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = store.begin_read().await.unwrap();
        let stored = tx.get_subscription("s1").await.unwrap().unwrap();
        assert_eq!(
            (stored.status, stored.events_since_start),
            (SubscriptionStatus::Active, 2),
            "{name}"
        );
    }
}

// REQ: CLU-02, CLU-03
#[tokio::test]
async fn binding_tokens_socket_holders_and_delivery_requests_are_shared_and_expire() {
    use halo_sofa_server::store::BindingTokenRecord;
    let (_dir, stores) = backends("cluster-records").await;
    let now = Utc::now();
    for (name, store) in stores {
        let grant = BindingTokenRecord {
            owner_client_id: "emr".into(),
            subscriptions: vec!["s1".into(), "s2".into()],
            expires_at: now + Duration::minutes(1),
        };
        let mut tx = store.begin().await.unwrap();
        tx.insert_binding_token("h1", grant.clone()).await.unwrap();
        assert!(
            matches!(
                tx.insert_binding_token("h1", grant.clone()).await,
                Err(StoreError::AlreadyExists(_))
            ),
            "{name}"
        );
        tx.insert_binding_token(
            "h2",
            BindingTokenRecord {
                expires_at: now + Duration::seconds(5),
                ..grant.clone()
            },
        )
        .await
        .unwrap();
        tx.insert_binding_token("h3", grant.clone()).await.unwrap();
        tx.commit().await.unwrap();

        // Used once: the second take finds nothing; an expired token gives nothing either.
        let mut tx = store.begin().await.unwrap();
        assert_eq!(
            tx.take_binding_token("h1", now).await.unwrap(),
            Some(grant.clone()),
            "{name}"
        );
        assert_eq!(tx.take_binding_token("h1", now).await.unwrap(), None);
        assert_eq!(
            tx.take_binding_token("h2", now + Duration::seconds(6))
                .await
                .unwrap(),
            None,
            "{name}"
        );
        tx.commit().await.unwrap();
        // A take that rolls back leaves the token usable.
        let mut tx = store.begin().await.unwrap();
        assert!(tx.take_binding_token("h3", now).await.unwrap().is_some());
        tx.rollback().await.unwrap();

        let mut tx = store.begin().await.unwrap();
        tx.hold_socket("s1", "b", now + Duration::seconds(30))
            .await
            .unwrap();
        tx.hold_socket("s1", "a", now + Duration::seconds(2))
            .await
            .unwrap();
        // Renewal moves the lease on.
        tx.hold_socket("s1", "a", now + Duration::seconds(30))
            .await
            .unwrap();
        tx.hold_socket("s2", "c", now + Duration::seconds(1))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        assert_eq!(
            tx.socket_holders("s1", now + Duration::seconds(10))
                .await
                .unwrap(),
            vec!["a".to_string(), "b".to_string()],
            "{name}"
        );
        // A lease that ran out is no claim.
        assert!(
            tx.socket_holders("s2", now + Duration::seconds(2))
                .await
                .unwrap()
                .is_empty(),
            "{name}"
        );
        tx.release_socket("s1", "b").await.unwrap();
        assert_eq!(
            tx.socket_holders("s1", now).await.unwrap(),
            vec!["a".to_string()]
        );

        // Requests: open until confirmed or past their deadline; asking again re-opens. A holder
        // sees the requests of the subscriptions it holds, and only those.
        tx.request_socket_delivery("s1", 4, now + Duration::seconds(1))
            .await
            .unwrap();
        tx.request_socket_delivery("s1", 3, now + Duration::seconds(10))
            .await
            .unwrap();
        tx.request_socket_delivery("s2", 1, now + Duration::seconds(60))
            .await
            .unwrap();
        let open = |pairs: &[(&str, u64)]| -> Vec<(String, u64)> {
            pairs.iter().map(|(id, n)| (id.to_string(), *n)).collect()
        };
        assert_eq!(
            tx.socket_delivery_requests("a", now).await.unwrap(),
            open(&[("s1", 3), ("s1", 4)]),
            "{name}"
        );
        assert_eq!(
            tx.socket_delivery_requests("c", now).await.unwrap(),
            open(&[("s2", 1)]),
            "{name}"
        );
        assert!(
            tx.socket_delivery_requests("b", now)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(!tx.socket_delivered("s1", 3).await.unwrap());
        assert!(tx.confirm_socket_delivery("s1", 3).await.unwrap());
        assert!(!tx.confirm_socket_delivery("s1", 9).await.unwrap());
        assert!(tx.socket_delivered("s1", 3).await.unwrap(), "{name}");
        assert_eq!(
            tx.socket_delivery_requests("a", now).await.unwrap(),
            open(&[("s1", 4)])
        );
        assert!(
            tx.socket_delivery_requests("a", now + Duration::seconds(2))
                .await
                .unwrap()
                .is_empty()
        );
        tx.request_socket_delivery("s1", 3, now + Duration::seconds(60))
            .await
            .unwrap();
        assert!(!tx.socket_delivered("s1", 3).await.unwrap(), "{name}");
        tx.commit().await.unwrap();

        // Purge at +20 s: token h3 (1 min) stays; s2's lease, request 4 go; a's lease and
        // request 3 stay.
        let mut tx = store.begin().await.unwrap();
        let purged = tx
            .purge_cluster_records(now + Duration::seconds(20))
            .await
            .unwrap();
        assert_eq!(purged, 2, "{name}");
        assert!(tx.take_binding_token("h3", now).await.unwrap().is_some());
        assert_eq!(
            tx.socket_delivery_requests("a", now).await.unwrap(),
            vec![("s1".to_string(), 3)]
        );
        tx.commit().await.unwrap();
    }
}

// REQ: CLU-02
#[tokio::test]
async fn async_jobs_are_inserted_once_updated_only_while_there_and_purged() {
    use halo_sofa_server::store::{AsyncJobRecord, AsyncJobResult};
    let (_dir, stores) = backends("async-jobs").await;
    let now = Utc::now();
    for (name, store) in stores {
        let job = AsyncJobRecord {
            id: "j1".into(),
            client_id: "app".into(),
            launch_id: Some("l1".into()),
            lease_until: now + Duration::seconds(30),
            expires_at: now + Duration::minutes(10),
            result: None,
        };
        let mut tx = store.begin().await.unwrap();
        tx.insert_async_job(job.clone()).await.unwrap();
        assert!(
            matches!(
                tx.insert_async_job(job.clone()).await,
                Err(StoreError::AlreadyExists(_))
            ),
            "{name}"
        );
        tx.insert_async_job(AsyncJobRecord {
            id: "j2".into(),
            expires_at: now + Duration::seconds(1),
            ..job.clone()
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();

        let finished = AsyncJobRecord {
            result: Some(AsyncJobResult {
                status: 201,
                headers: vec![("location".into(), "Observation/1".into())],
                body_base64: "e30".into(),
            }),
            ..job.clone()
        };
        let mut tx = store.begin().await.unwrap();
        assert!(tx.update_async_job(finished.clone()).await.unwrap());
        assert_eq!(
            tx.get_async_job("j1").await.unwrap(),
            Some(finished.clone()),
            "{name}"
        );
        // A cancelled (deleted) job is not brought back by a late result.
        assert!(tx.delete_async_job("j1").await.unwrap());
        assert!(!tx.delete_async_job("j1").await.unwrap());
        assert!(!tx.update_async_job(finished).await.unwrap(), "{name}");
        assert_eq!(tx.get_async_job("j1").await.unwrap(), None);
        assert_eq!(
            tx.purge_cluster_records(now + Duration::seconds(2))
                .await
                .unwrap(),
            1,
            "{name}"
        );
        assert_eq!(tx.get_async_job("j2").await.unwrap(), None);
        tx.commit().await.unwrap();
    }
}

// REQ: CLU-02, CLU-04
#[tokio::test]
async fn one_transaction_at_a_time_leads_a_task() {
    let (_dir, stores) = backends("lead").await;
    for (name, store) in stores {
        let mut first = store.begin().await.unwrap();
        assert!(first.try_lead("purge").await.unwrap(), "{name}");
        if store.shared() {
            // Another instance's transaction meanwhile: not the leader, of this task only.
            let mut second = store.begin().await.unwrap();
            assert!(!second.try_lead("purge").await.unwrap(), "{name}");
            assert!(second.try_lead("other").await.unwrap(), "{name}");
            second.rollback().await.unwrap();
        }
        first.commit().await.unwrap();
        // Leadership ends with the transaction.
        let mut next = store.begin().await.unwrap();
        assert!(next.try_lead("purge").await.unwrap(), "{name}");
        next.rollback().await.unwrap();
    }
}

// REQ: IDP-06
#[tokio::test]
async fn signing_keys_keep_their_rotation_fields_and_are_deleted_by_id() {
    let (_dir, stores) = backends("signing-keys").await;
    let now = Utc::now();
    for (name, store) in stores {
        let key = |kid: &str, created: chrono::DateTime<Utc>| SigningKeyRecord {
            kid: kid.into(),
            algorithm: "ES256".into(),
            private_key_pem: String::new(),
            sealed_private_key: Some(format!("sealed-{kid}")),
            public_jwk: json!({"kid": kid}),
            created_at: created,
            retired: false,
            not_before: Some(created + Duration::minutes(5)),
            expires_at: None,
        };
        let mut tx = store.begin().await.unwrap();
        tx.put_signing_key(key("k1", now)).await.unwrap();
        tx.put_signing_key(key("k2", now + Duration::seconds(1)))
            .await
            .unwrap();
        tx.commit().await.unwrap();

        // A rotation replaces k1 with its retirement fields set.
        let mut retired = key("k1", now);
        retired.retired = true;
        retired.expires_at = Some(now + Duration::hours(1));
        let mut tx = store.begin().await.unwrap();
        tx.put_signing_key(retired.clone()).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = store.begin_read().await.unwrap();
        let keys = tx.signing_keys().await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(keys.len(), 2, "{name}");
        // Oldest first, every field as written (times to the stored precision).
        assert_eq!(keys[0].kid, "k1", "{name}");
        assert!(keys[0].retired, "{name}");
        assert_eq!(keys[0].sealed_private_key.as_deref(), Some("sealed-k1"));
        assert_eq!(
            keys[0].expires_at.map(|t| t.timestamp()),
            retired.expires_at.map(|t| t.timestamp()),
            "{name}"
        );
        assert_eq!(
            keys[1].not_before.map(|t| t.timestamp()),
            Some((now + Duration::seconds(1) + Duration::minutes(5)).timestamp()),
            "{name}"
        );

        // A delete rolled back leaves the key; committed, it is gone.
        let mut tx = store.begin().await.unwrap();
        assert!(tx.delete_signing_key("k1").await.unwrap(), "{name}");
        tx.rollback().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        assert_eq!(tx.signing_keys().await.unwrap().len(), 2, "{name}");
        assert!(tx.delete_signing_key("k1").await.unwrap(), "{name}");
        assert!(!tx.delete_signing_key("k1").await.unwrap(), "{name}");
        assert!(!tx.delete_signing_key("unknown").await.unwrap(), "{name}");
        tx.commit().await.unwrap();
        let mut tx = store.begin_read().await.unwrap();
        let kids: Vec<String> = tx
            .signing_keys()
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.kid)
            .collect();
        assert_eq!(kids, ["k2"], "{name}");
    }
}

// REQ: OPS-05
#[tokio::test]
async fn clients_launch_lists_and_the_audit_log_are_kept_for_the_admin_command_line() {
    let (_dir, stores) = backends("admin-records").await;
    let now = Utc::now();
    for (name, store) in stores {
        let client = |id: &str, disabled: bool| ClientRecord {
            client_id: id.into(),
            credentials: ClientCredentials::SecretSha256 {
                sha256: format!("hash-of-{id}"),
            },
            redirect_uris: vec!["https://app.example.org/cb".into()],
            scopes: "system/Patient.rs".into(),
            app_id: None,
            launch_url: None,
            disabled,
            updated_at: now,
        };
        let mut tx = store.begin().await.unwrap();
        tx.put_client(client("b-emr", false)).await.unwrap();
        tx.put_client(client("a-app", false)).await.unwrap();
        tx.insert_launch(launch("l2", "emr", Duration::minutes(5)))
            .await
            .unwrap();
        tx.insert_launch(launch("l1", "emr", Duration::minutes(-5)))
            .await
            .unwrap();
        for (offset, action) in [(-120, "old"), (0, "first"), (1, "second")] {
            tx.append_audit_event(
                now + Duration::seconds(offset),
                json!({"action": action}).to_string(),
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();

        // Disabling replaces the record; a rolled-back change leaves it.
        let mut tx = store.begin().await.unwrap();
        tx.put_client(client("b-emr", true)).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        tx.put_client(client("a-app", true)).await.unwrap();
        tx.append_audit_event(now, "{}".into()).await.unwrap();
        tx.rollback().await.unwrap();

        let mut tx = store.begin_read().await.unwrap();
        let listed = tx.list_clients().await.unwrap();
        let ids: Vec<(&str, bool)> = listed
            .iter()
            .map(|c| (c.client_id.as_str(), c.disabled))
            .collect();
        assert_eq!(ids, [("a-app", false), ("b-emr", true)], "{name}");
        assert_eq!(
            tx.get_client("a-app").await.unwrap().unwrap().credentials,
            client("a-app", false).credentials,
            "{name}"
        );
        assert!(tx.get_client("nobody").await.unwrap().is_none(), "{name}");
        // Every launch, expired or not, by id; the limit holds.
        let launches = tx.list_launches(10).await.unwrap();
        let ids: Vec<&str> = launches.iter().map(|l| l.launch_id.as_str()).collect();
        assert_eq!(ids, ["l1", "l2"], "{name}");
        assert_eq!(tx.list_launches(1).await.unwrap().len(), 1, "{name}");
        // The audit range is [from, to), in the order appended.
        let events = tx
            .audit_events(now - Duration::seconds(60), now + Duration::seconds(60), 10)
            .await
            .unwrap();
        assert_eq!(
            events,
            [
                json!({"action": "first"}).to_string(),
                json!({"action": "second"}).to_string()
            ],
            "{name}"
        );
        let events = tx
            .audit_events(now - Duration::seconds(600), now + Duration::seconds(1), 10)
            .await
            .unwrap();
        assert_eq!(events.len(), 2, "{name}: the end is excluded");
        assert_eq!(
            tx.audit_events(now - Duration::seconds(600), now + Duration::seconds(60), 1)
                .await
                .unwrap()
                .len(),
            1,
            "{name}"
        );
        tx.rollback().await.unwrap();
    }
}

/// A unit's own refusal, beside the store's errors.
#[derive(Debug)]
enum UnitError {
    Store(StoreError),
    Refused(usize),
}

impl From<StoreError> for UnitError {
    fn from(error: StoreError) -> Self {
        UnitError::Store(error)
    }
}

// REQ: SC-04, REL-02
#[tokio::test]
async fn write_units_keep_their_writes_on_ok_and_leave_nothing_on_err() {
    let (_dir, stores) = backends("units").await;
    for (name, store) in stores {
        let mut tx = store.begin().await.unwrap();
        tx.create_resource(patient("taken")).await.unwrap();
        tx.commit().await.unwrap();
        let before = counts(&store).await;
        // Units submitted at once (a backend may commit them together): every third refuses
        // after writing, every fifth collides with a stored resource after writing.
        let mut units = Vec::new();
        for n in 0..30usize {
            let store = store.clone();
            units.push(tokio::spawn(async move {
                store
                    .write(move |tx| {
                        Box::pin(async move {
                            tx.create_resource(patient(&format!("unit-{n}"))).await?;
                            if n % 5 == 4 {
                                tx.create_resource(patient("taken")).await?;
                            }
                            if n % 3 == 1 {
                                return Err(UnitError::Refused(n));
                            }
                            Ok(n)
                        })
                    })
                    .await
            }));
        }
        let mut kept = 0;
        for (n, unit) in units.into_iter().enumerate() {
            match unit.await.unwrap() {
                Ok(answer) => {
                    assert_eq!(answer, n, "{name}");
                    kept += 1;
                }
                Err(UnitError::Refused(m)) => assert_eq!((m, n % 3), (n, 1), "{name}"),
                Err(UnitError::Store(error)) => {
                    assert_eq!(n % 5, 4, "{name}: unit {n}: {error}");
                    assert!(
                        matches!(error, StoreError::AlreadyExists(_)),
                        "{name}: unit {n}: {error}"
                    );
                }
            }
        }
        let mut tx = store.begin_read().await.unwrap();
        for n in 0..30usize {
            let stored = tx
                .read_resource("Patient", &format!("unit-{n}"))
                .await
                .unwrap();
            let wanted = n % 3 != 1 && n % 5 != 4;
            assert_eq!(stored.is_some(), wanted, "{name}: unit-{n}");
        }
        tx.rollback().await.unwrap();
        assert_eq!(kept, (0..30).filter(|n| n % 3 != 1 && n % 5 != 4).count());
        assert_eq!(counts(&store).await.0, before.0 + kept as u64, "{name}");
    }
}

// REQ: SC-04
#[tokio::test]
async fn read_units_see_what_committed_and_nothing_of_a_rolled_back_write() {
    let (_dir, stores) = backends("read-units").await;
    for (name, store) in stores {
        let stored = store
            .write(|tx| {
                Box::pin(async move {
                    tx.create_resource(patient("seen")).await?;
                    Ok::<_, StoreError>(())
                })
            })
            .await;
        stored.unwrap();
        let refused = store
            .write(|tx| {
                Box::pin(async move {
                    tx.create_resource(patient("unseen")).await?;
                    Err::<(), _>(UnitError::Refused(0))
                })
            })
            .await;
        assert!(matches!(refused, Err(UnitError::Refused(0))), "{name}");
        let (seen, unseen) = store
            .read(|tx| {
                Box::pin(async move {
                    let seen = tx.read_resource("Patient", "seen").await?;
                    let unseen = tx.read_resource("Patient", "unseen").await?;
                    Ok::<_, StoreError>((seen.is_some(), unseen.is_some()))
                })
            })
            .await
            .unwrap();
        assert_eq!((seen, unseen), (true, false), "{name}");
    }
}

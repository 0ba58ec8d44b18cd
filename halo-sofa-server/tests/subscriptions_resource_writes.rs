//! App writes through the resource server's real endpoints, with the subscription notifier
//! plugged into the builder: deliver before commit end to end.

// Test helpers may unwrap: a panic is a test failure with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/subscriptions.rs"]
mod subs;
mod support;

use halo_sofa_server::auth::Caller;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use subs::{Harness, Mode, Receiver, event_numbers, status_parameter};
use support::{TempDir, fixture};

/// `$set-context` by `poc`, then an app token bound to the launch; (token, patient reference).
async fn launch(h: &Harness, poc: &str, app_token: &str) -> (String, String) {
    let (token, patient, _) = launch_with_id(h, poc, app_token).await;
    (token, patient)
}

/// [`launch`], with the launch id.
async fn launch_with_id(h: &Harness, poc: &str, app_token: &str) -> (String, String, String) {
    let (status, output) = h
        .send(
            Method::POST,
            poc,
            "/$set-context",
            &fixture("set-context-input-L.json"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{output}");
    let parameter = |name: &str| -> Value {
        output["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()
            .clone()
    };
    let launch = parameter("launchID")["valueString"]
        .as_str()
        .unwrap()
        .to_string();
    let patient = output.to_string();
    let patient = patient
        .split("Patient/")
        .nth(1)
        .map(|rest| format!("Patient/{}", &rest[..36]))
        .unwrap();
    h.tokens.add(
        app_token,
        Caller::new("app", Some("Practitioner/dr"), "launch patient/*.cruds")
            .in_launch(launch.clone()),
    );
    (app_token.to_string(), patient, launch)
}

fn observation(patient: &str) -> Value {
    json!({"resourceType": "Observation", "status": "final", "code": {"text": "heart rate"},
           "subject": {"reference": patient}})
}

#[tokio::test]
async fn an_app_write_reaches_the_poc_before_it_commits() {
    let dir = TempDir::new("rs-writes");
    let h = Harness::start(&dir.db()).await;
    let poc = Receiver::start(Mode::Ok).await;
    let id = h.active_subscription("poc-0", &poc, "full-resource").await;
    let (app, patient) = launch(&h, "poc-0", "app-0").await;

    // REQ: RS-08
    let (status, created) = h
        .send(Method::POST, &app, "/Observation", &observation(&patient))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let event = poc.wait_for("event-notification").await;
    assert_eq!(event.event_numbers(), vec![1]);
    assert_eq!(event.body["entry"][1]["resource"]["id"], created["id"]);

    let mut updated = created.clone();
    updated["status"] = json!("amended");
    let path = format!("/Observation/{}", created["id"].as_str().unwrap());
    let (status, _) = h.send(Method::PUT, &app, &path, &updated).await;
    assert_eq!(status, StatusCode::OK);

    // REQ: SUB-06
    poc.set_mode(Mode::Fail);
    let response = h
        .http
        .post(h.url("/Observation"))
        .bearer_auth(&app)
        .header("content-type", "application/fhir+json")
        .body(observation(&patient).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    let outcome: Value = response.json().await.unwrap();
    assert_eq!(outcome["issue"][0]["code"], "transient");
    let (_, search) = h.get(&app, "/Observation").await;
    assert_eq!(search["entry"].as_array().map_or(0, Vec::len), 1);

    poc.set_mode(Mode::Ok);
    let (status, _) = h
        .send(Method::POST, &app, "/Observation", &observation(&patient))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // REQ: SUB-07, SYNC-02
    // 1 create, 2 update, 3 the create that failed, 4 its compensation, 5 the last create.
    let (_, events) = h.get("poc-0", &format!("/Subscription/{id}/$events")).await;
    assert_eq!(event_numbers(&events), vec![1, 2, 3, 4, 5]);
    let entries = events["entry"].as_array().unwrap();
    let methods: Vec<&str> = entries[1..]
        .iter()
        .map(|e| e["request"]["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["POST", "PUT", "POST", "DELETE", "POST"]);
    assert_eq!(entries[3]["fullUrl"], entries[4]["fullUrl"]);
    // REQ: SYNC-03
    // Each event as it was sent: the create carries version 1 and its first status, although
    // the resource is at version 2 now.
    assert_eq!(entries[1]["request"]["method"], "POST");
    assert_eq!(entries[1]["response"]["status"], "201");
    assert_eq!(entries[1]["resource"]["meta"]["versionId"], "1");
    assert_eq!(entries[1]["resource"]["status"], created["status"]);
    assert_eq!(entries[2]["resource"]["meta"]["versionId"], "2");
    assert_eq!(entries[2]["resource"]["status"], "amended");
    let (_, bundle) = h.get("poc-0", &format!("/Subscription/{id}/$status")).await;
    let status = json!({"entry": [{"resource": bundle["entry"][0]["resource"]}]});
    assert_eq!(
        status_parameter(&status, "events-since-subscription-start"),
        "5"
    );
}

#[tokio::test]
async fn an_app_write_without_an_active_subscription_is_refused() {
    let dir = TempDir::new("rs-nosub");
    let h = Harness::start(&dir.db()).await;
    let poc = Receiver::start(Mode::Ok).await;
    let id = h.active_subscription("poc-0", &poc, "id-only").await;
    let (app, patient) = launch(&h, "poc-0", "app-0").await;
    let mut off = subs::rest_hook(&poc.url(), "id-only");
    off["id"] = json!(id);
    off["status"] = json!("off");
    let (status, _) = h
        .send(Method::PUT, "poc-0", &format!("/Subscription/{id}"), &off)
        .await;
    assert_eq!(status, StatusCode::OK);
    // REQ: SUB-06
    let (status, outcome) = h
        .send(Method::POST, &app, "/Observation", &observation(&patient))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{outcome}");
    assert_eq!(outcome["issue"][0]["code"], "business-rule");
    assert!(poc.of_kind("event-notification").is_empty());
}

/// The methods and resource versions of the event notifications `poc` received, in order.
fn received(poc: &Receiver) -> Vec<(u64, String, Option<String>)> {
    poc.of_kind("event-notification")
        .iter()
        .map(|r| {
            let entry = &r.body["entry"][1];
            (
                r.event_numbers()[0],
                entry["request"]["method"].as_str().unwrap().to_string(),
                entry["resource"]["meta"]["versionId"]
                    .as_str()
                    .map(str::to_string),
            )
        })
        .collect()
}

async fn wait_for_events(poc: &Receiver, n: usize) {
    for _ in 0..300 {
        if poc.of_kind("event-notification").len() >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{n} events never arrived: {:?}", received(poc));
}

async fn observations_of(h: &Harness) -> u64 {
    let mut tx = h.store.begin_read().await.unwrap();
    let query = halo_sofa_server::store::ResourceQuery {
        resource_type: Some("Observation".into()),
        ..Default::default()
    };
    tx.search_resources(&query).await.unwrap().len() as u64
}

#[tokio::test]
async fn a_clear_that_races_a_write_leaves_nothing_orphaned_and_the_poc_repaired() {
    let dir = TempDir::new("rs-clear-race");
    let h = Harness::start(&dir.db()).await;
    let _outbox = h.subscriptions.spawn_outbox();
    let poc = Receiver::start(Mode::Ok).await;
    h.active_subscription("poc-0", &poc, "full-resource").await;
    let (app, patient, launch) = launch_with_id(&h, "poc-0", "app-0").await;
    let (status, created) = h
        .send(Method::POST, &app, "/Observation", &observation(&patient))
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // REQ: SYNC-05
    // The PoC is slow to acknowledge; the launch is cleared while an update and a create wait
    // for their notifications.
    poc.set_mode(Mode::Slow);
    let mut amended = created.clone();
    amended["status"] = json!("amended");
    let path = format!("/Observation/{}", created["id"].as_str().unwrap());
    let writes = {
        let h_url = h.url("");
        let (http, app) = (h.http.clone(), app.clone());
        let new = observation(&patient);
        tokio::spawn(async move {
            let put = http
                .put(format!("{h_url}{path}"))
                .bearer_auth(&app)
                .header("content-type", "application/fhir+json")
                .body(amended.to_string())
                .send();
            let post = http
                .post(format!("{h_url}/Observation"))
                .bearer_auth(&app)
                .header("content-type", "application/fhir+json")
                .body(new.to_string())
                .send();
            let put = put.await.unwrap();
            let put = (put.status(), put.json::<Value>().await.unwrap());
            let post = post.await.unwrap();
            (put, post.status())
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    let (status, _) = h
        .send(
            Method::POST,
            "poc-0",
            "/$clear-context",
            &halo_model::set_context::clear_context_input(&launch),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let ((put_status, outcome), post_status) = writes.await.unwrap();
    // The write found its launch gone at commit: a clean 410, never a 5xx, nothing stored.
    assert_eq!(put_status, StatusCode::GONE, "{outcome}");
    assert_eq!(outcome["issue"][0]["code"], "deleted");
    assert!(
        post_status == StatusCode::GONE || post_status == StatusCode::UNAUTHORIZED,
        "{post_status}"
    );
    assert_eq!(observations_of(&h).await, 0);

    // REQ: SYNC-02
    // The PoC, which may have applied the update, is sent back version 1.
    poc.set_mode(Mode::Ok);
    wait_for_events(&poc, 3).await;
    let events = received(&poc);
    assert_eq!(events[0], (1, "POST".into(), Some("1".into())));
    assert_eq!(events[1], (2, "PUT".into(), Some("2".into())));
    assert!(
        events.contains(&(3, "PUT".into(), Some("1".into()))),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_write_whose_app_hung_up_after_delivery_still_commits() {
    let dir = TempDir::new("rs-cancelled");
    let h = Harness::start(&dir.db()).await;
    let poc = Receiver::start(Mode::Slow).await;
    let id = h.active_subscription("poc-0", &poc, "id-only").await;
    let (app, patient) = launch(&h, "poc-0", "app-0").await;
    // REQ: SYNC-04
    // The app gives up while the PoC is still acknowledging; the write goes on to its commit.
    let gave_up = h
        .http
        .post(h.url("/Observation"))
        .bearer_auth(&app)
        .header("content-type", "application/fhir+json")
        .body(observation(&patient).to_string())
        .timeout(std::time::Duration::from_millis(50))
        .send()
        .await;
    assert!(gave_up.unwrap_err().is_timeout());
    for _ in 0..100 {
        if observations_of(&h).await == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(observations_of(&h).await, 1);
    let (_, events) = h.get("poc-0", &format!("/Subscription/{id}/$events")).await;
    assert_eq!(event_numbers(&events), [1]);
    let mut tx = h.store.begin_read().await.unwrap();
    let logged = tx.events(&id, 1, None).await.unwrap();
    assert_eq!(
        logged[0].state,
        halo_sofa_server::store::EventState::Committed
    );
}

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
        Caller::new("app", Some("Practitioner/dr"), "launch patient/*.cruds").in_launch(launch),
    );
    (app_token.to_string(), patient)
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

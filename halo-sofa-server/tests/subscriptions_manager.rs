//! The Subscription manager over HTTP: topic, CapabilityStatement, create with validation,
//! handshake, owner-only access, lifecycle, and `$set-context`'s active-subscription check.

// Test helpers may unwrap: a panic is a test failure with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/subscriptions.rs"]
mod subs;
mod support;

use halo_model::canonical::SOFA_CONTENT_UPDATE_TOPIC;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use subs::{Harness, Mode, Receiver, rest_hook};
use support::{TempDir, fixture};

#[tokio::test]
async fn the_topic_is_served_as_basic_and_advertised() {
    let dir = TempDir::new("sub-topic");
    let h = Harness::start(&dir.db()).await;
    // REQ: SUB-01
    let response = h
        .http
        .get(h.url("/Basic/sofa-content-update"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let basic: Value = response.json().await.unwrap();
    assert_eq!(basic["resourceType"], "Basic");
    assert_eq!(basic["extension"][0]["valueUri"], SOFA_CONTENT_UPDATE_TOPIC);

    let metadata: Value = h
        .http
        .get(h.url("/metadata"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let subscription = metadata["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Subscription")
        .unwrap()
        .clone();
    let text = subscription.to_string();
    assert!(text.contains(SOFA_CONTENT_UPDATE_TOPIC), "{text}");
    assert!(text.contains("backport-subscription"), "{text}");
    assert!(text.contains("\"status\""), "{text}");
}

#[tokio::test]
async fn create_answers_requested_then_the_handshake_activates() {
    let dir = TempDir::new("sub-create");
    let h = Harness::start(&dir.db()).await;
    let poc = Receiver::start(Mode::Ok).await;
    // REQ: SUB-02
    let (status, body) = h.subscribe("poc-0", &poc.url(), "id-only").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"], "requested");
    let id = body["id"].as_str().unwrap();

    // REQ: SUB-03
    let handshake = poc.wait_for("handshake").await;
    assert_eq!(handshake.subscription_id(), id);
    assert_eq!(
        subs::status_parameter(&handshake.body, "status"),
        "requested"
    );
    assert_eq!(
        handshake.headers["authorization"],
        "Bearer poc-notify-secret"
    );
    assert_eq!(handshake.headers["x-poc"], "yes");
    assert!(
        handshake.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/fhir+json")
    );
    h.wait_status("poc-0", id, "active").await;
}

#[tokio::test]
async fn a_failing_handshake_leaves_the_subscription_in_error() {
    let dir = TempDir::new("sub-error");
    let h = Harness::start(&dir.db()).await;
    let failing = Receiver::start(Mode::Fail).await;
    let hanging = Receiver::start(Mode::Hang).await;
    for poc in [&failing, &hanging] {
        let (status, body) = h.subscribe("poc-0", &poc.url(), "empty").await;
        assert_eq!(status, StatusCode::CREATED);
        // REQ: SUB-03
        let errored = h
            .wait_status("poc-0", body["id"].as_str().unwrap(), "error")
            .await;
        assert!(
            errored["error"]
                .as_str()
                .unwrap()
                .contains("handshake failed"),
            "{errored}"
        );
    }
}

#[tokio::test]
async fn unsupported_subscriptions_are_refused() {
    let dir = TempDir::new("sub-refuse");
    let h = Harness::start(&dir.db()).await;
    let good = rest_hook("http://127.0.0.1:9/notify", "full-resource");
    let mut unknown_topic = good.clone();
    unknown_topic["criteria"] = json!("http://example.org/topic/other");
    let mut email = good.clone();
    email["channel"]["type"] = json!("email");
    let mut xml = good.clone();
    xml["channel"]["payload"] = json!("application/fhir+xml");
    let mut content = good.clone();
    content["channel"]["_payload"]["extension"][0]["valueCode"] = json!("everything");
    let mut filter = good.clone();
    filter["_criteria"] = json!({"extension": [{
        "url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria",
        "valueString": "Patient?gender=female"
    }]});
    let mut cross_version = good.clone();
    cross_version["_criteria"] = json!({"extension": [{
        "url": "http://hl7.org/fhir/5.0/subscriptions-backport/StructureDefinition/backport-filter-criteria",
        "valueString": "Patient?gender=female"
    }]});
    let mut no_endpoint = good.clone();
    no_endpoint["channel"]
        .as_object_mut()
        .unwrap()
        .remove("endpoint");
    let not_a_subscription = json!({"resourceType": "Patient"});
    // REQ: SUB-02
    for (name, body) in [
        ("unknown topic", unknown_topic),
        ("email channel", email),
        ("xml payload", xml),
        ("unknown content", content),
        ("unknown filter", filter),
        ("cross-version filter", cross_version),
        ("no endpoint", no_endpoint),
        ("not a Subscription", not_a_subscription),
    ] {
        let (status, outcome) = h.send(Method::POST, "poc-0", "/Subscription", &body).await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{name}: {status} {outcome}"
        );
        assert_eq!(outcome["resourceType"], "OperationOutcome", "{name}");
    }
    let response = h
        .http
        .post(h.url("/Subscription"))
        .bearer_auth("poc-0")
        .header("content-type", "application/fhir+json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // D-06: no Subscription scope, no subscription.
    let (status, _) = h.send(Method::POST, "nosub", "/Subscription", &good).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = h.send(Method::POST, "nobody", "/Subscription", &good).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn only_the_owner_sees_and_changes_its_subscriptions() {
    let dir = TempDir::new("sub-owner");
    let h = Harness::start(&dir.db()).await;
    let poc = Receiver::start(Mode::Ok).await;
    let id = h.active_subscription("poc-0", &poc, "id-only").await;
    // REQ: SUB-10
    for path in [
        format!("/Subscription/{id}"),
        format!("/Subscription/{id}/$status"),
        format!("/Subscription/{id}/$events"),
    ] {
        let (status, _) = h.get("poc-1", &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        let (status, _) = h.get("poc-0", &path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let (_, search) = h.get("poc-1", "/Subscription").await;
    assert_eq!(search["total"], 0);
    let (_, search) = h.get("poc-0", "/Subscription?status=active").await;
    assert_eq!(search["total"], 1);
    let (_, status_all) = h.get("poc-1", "/Subscription/$status").await;
    assert_eq!(status_all["entry"].as_array().unwrap().len(), 0);
    let (status, _) = h
        .send(
            Method::PUT,
            "poc-1",
            &format!("/Subscription/{id}"),
            &rest_hook(&poc.url(), "empty"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = h
        .send(
            Method::DELETE,
            "poc-1",
            &format!("/Subscription/{id}"),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = h
        .send(
            Method::POST,
            "poc-1",
            &format!("/Subscription/{id}/$get-ws-binding-token"),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let response = h
        .http
        .delete(h.url(&format!("/Subscription/{id}")))
        .bearer_auth("poc-0")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, _) = h.get("poc-0", &format!("/Subscription/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_lifecycle_goes_error_off_and_back_to_active() {
    let dir = TempDir::new("sub-life");
    let h = Harness::start(&dir.db()).await;
    let poc = Receiver::start(Mode::Fail).await;
    let (_, body) = h.subscribe("poc-0", &poc.url(), "id-only").await;
    let id = body["id"].as_str().unwrap().to_string();
    // REQ: SUB-11
    h.wait_status("poc-0", &id, "error").await;
    let mut off = rest_hook(&poc.url(), "id-only");
    off["id"] = json!(id);
    off["status"] = json!("off");
    let (status, body) = h
        .send(Method::PUT, "poc-0", &format!("/Subscription/{id}"), &off)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "off");
    poc.set_mode(Mode::Ok);
    let mut again = rest_hook(&poc.url(), "id-only");
    again["id"] = json!(id);
    let (status, body) = h
        .send(Method::PUT, "poc-0", &format!("/Subscription/{id}"), &again)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "requested");
    h.wait_status("poc-0", &id, "active").await;
    let mut wrong = again.clone();
    wrong["id"] = json!("another");
    let (status, _) = h
        .send(Method::PUT, "poc-0", &format!("/Subscription/{id}"), &wrong)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn set_context_needs_an_active_subscription_made_through_the_endpoints() {
    let dir = TempDir::new("sub-setctx");
    let h = Harness::start(&dir.db()).await;
    let request = fixture("set-context-input-L.json");
    // REQ: SC-08
    let (status, outcome) = h
        .send(Method::POST, "poc-0", "/$set-context", &request)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{outcome}");
    let failing = Receiver::start(Mode::Fail).await;
    let (_, body) = h.subscribe("poc-0", &failing.url(), "id-only").await;
    h.wait_status("poc-0", body["id"].as_str().unwrap(), "error")
        .await;
    let (status, _) = h
        .send(Method::POST, "poc-0", "/$set-context", &request)
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "an errored subscription does not count"
    );
    let poc = Receiver::start(Mode::Ok).await;
    h.active_subscription("poc-0", &poc, "id-only").await;
    let (status, output) = h
        .send(Method::POST, "poc-0", "/$set-context", &request)
        .await;
    assert_eq!(status, StatusCode::OK, "{output}");
    // Another PoC's subscription is not this one's.
    let (status, _) = h
        .send(Method::POST, "poc-1", "/$set-context", &request)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

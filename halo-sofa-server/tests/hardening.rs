//! Hostile requests answered cleanly over real HTTP: a panicking handler, numbers out of range.

// Test helpers may unwrap: a panic is a test failure with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/subscriptions.rs"]
mod subs;
mod support;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use halo_sofa_server::auth::StaticTokens;
use halo_sofa_server::config::SofaConfig;
use halo_sofa_server::sofa::Sofa;
use halo_sofa_server::store::MemoryStore;
use reqwest::StatusCode;
use serde_json::Value;
use subs::{Harness, Mode, Receiver};
use support::TempDir;

/// `$set-context` by `poc-0` with a third-party request: the launch id and the patient.
async fn set_context(h: &Harness) -> (String, String) {
    let (status, output) = h
        .send(
            reqwest::Method::POST,
            "poc-0",
            "/$set-context",
            &support::fixture("set-context-input-L.json"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{output}");
    let launch = output["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "launchID")
        .unwrap()["valueString"]
        .as_str()
        .unwrap()
        .to_string();
    let text = output.to_string();
    let rest = text.split("Patient/").nth(1).unwrap();
    (launch, format!("Patient/{}", &rest[..36]))
}

#[tokio::test]
// REQ: HARD-02
async fn a_panicking_handler_answers_500_with_an_operation_outcome() {
    let base = "http://127.0.0.1/fhir";
    let sofa = Sofa::builder(SofaConfig::new(base).unwrap())
        .store(Arc::new(MemoryStore::new()))
        .token_validator(Arc::new(StaticTokens::new()))
        .mount(
            Router::new().route(
                "/boom",
                get(|| async {
                    let parts: Vec<&str> = Vec::new();
                    parts[3].to_string()
                }),
            ),
            |_| {},
        )
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().nest("/fhir", sofa.router());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let response = reqwest::get(format!("http://{addr}/fhir/boom"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let outcome: Value = response.json().await.unwrap();
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert_eq!(outcome["issue"][0]["code"], "exception");
    let text = outcome.to_string();
    assert!(text.contains("request id"), "{text}");
    assert!(
        !text.contains("index out of bounds"),
        "internals leaked: {text}"
    );
    // The server is still there.
    let metadata = reqwest::get(format!("http://{addr}/fhir/metadata"))
        .await
        .unwrap();
    assert_eq!(metadata.status(), StatusCode::OK);
}

#[tokio::test]
// REQ: HARD-05
async fn numbers_out_of_range_are_400_not_500() {
    let dir = TempDir::new("out-of-range");
    let h = Harness::start(&dir.db()).await;
    let poc = Receiver::start(Mode::Ok).await;
    let id = h.active_subscription("poc-0", &poc, "id-only").await;
    let (launch, _) = set_context(&h).await;
    h.tokens.add(
        "app",
        halo_sofa_server::auth::Caller::new("app", Some("Practitioner/dr"), "launch user/*.rs")
            .in_launch(launch),
    );
    for path in [
        "/Observation?_offset=9223372036854775808".to_string(),
        "/Observation?_count=99999999999999999999".to_string(),
        format!("/Subscription/{id}/$events?eventsSinceNumber=9223372036854775808"),
        format!("/Subscription/{id}/$events?eventsUntilNumber=18446744073709551615"),
    ] {
        let token = if path.starts_with("/Subscription") {
            "poc-0"
        } else {
            "app"
        };
        let (status, outcome) = h.get(token, &path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {outcome}");
        assert_eq!(outcome["resourceType"], "OperationOutcome", "{path}");
        assert!(
            outcome.to_string().contains("9223372036854775807"),
            "{path}"
        );
    }
    // The largest number a store holds is still a number.
    let (status, _) = h
        .get("app", "/Observation?_offset=9223372036854775807")
        .await;
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
// REQ: HARD-03
async fn a_rest_hook_to_an_internal_address_is_never_connected_to() {
    let dir = TempDir::new("ssrf");
    let settings = halo_sofa_server::subscriptions::SubscriptionSettings {
        require_https: true,
        ..subs::test_settings()
    };
    let h = Harness::start_with(
        &dir.db(),
        Arc::new(halo_sofa_server::clock::SystemClock),
        settings,
    )
    .await;
    // Something listens on loopback; a production SoFA must never reach it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let connections = connections.clone();
        tokio::spawn(async move {
            while listener.accept().await.is_ok() {
                connections.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
    }
    for endpoint in [
        format!("https://127.0.0.1:{port}/notify"),
        format!("https://localhost:{port}/notify"),
        "https://10.255.255.1/notify".to_string(),
        "https://[fd00::dead]/notify".to_string(),
        "https://169.254.169.254/latest/meta-data".to_string(),
    ] {
        let (status, body) = h.subscribe("poc-0", &endpoint, "empty").await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let errored = h
            .wait_status("poc-0", body["id"].as_str().unwrap(), "error")
            .await;
        // The error says delivery failed and when, not what (if anything) answered.
        let error = errored["error"].as_str().unwrap();
        assert!(error.starts_with("handshake failed: the endpoint could not be reached at"));
        assert!(
            !error.contains("refused") && !error.contains("answered"),
            "{error}"
        );
    }
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the SoFA connected to loopback"
    );
}

#[tokio::test]
// REQ: HARD-06
async fn a_patient_scope_reaches_the_r4_compartment_not_any_reference() {
    let dir = TempDir::new("compartment");
    let h = Harness::start(&dir.db()).await;
    let poc = Receiver::start(Mode::Ok).await;
    h.active_subscription("poc-0", &poc, "id-only").await;
    let (launch, patient) = set_context(&h).await;
    h.tokens.add(
        "patient-app",
        halo_sofa_server::auth::Caller::new("app", Some("Practitioner/dr"), "patient/*.cruds")
            .in_launch(launch),
    );
    // Another patient's Observation that only mentions the launch patient as its focus.
    let escape = serde_json::json!({"resourceType": "Observation", "status": "final",
        "code": {"text": "x"}, "subject": {"reference": "Patient/someone-else"},
        "focus": [{"reference": patient}]});
    let (status, outcome) = h
        .send(
            reqwest::Method::POST,
            "patient-app",
            "/Observation",
            &escape,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{outcome}");
    let mut tx = h.store.begin_read().await.unwrap();
    let query = halo_sofa_server::store::ResourceQuery {
        resource_type: Some("Observation".into()),
        ..Default::default()
    };
    assert!(tx.search_resources(&query).await.unwrap().is_empty());
    drop(tx);
    // The launch patient's own Observation goes in.
    let own = serde_json::json!({"resourceType": "Observation", "status": "final",
        "code": {"text": "x"}, "subject": {"reference": patient}});
    let (status, created) = h
        .send(reqwest::Method::POST, "patient-app", "/Observation", &own)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
}

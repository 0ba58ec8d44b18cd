//! The resource server over real HTTP with tokens from the built-in authorization server:
//! scope enforcement, patient compartments, launch isolation, versions and `If-Match`,
//! validation on writes, and the notifier seam's answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/auth.rs"]
mod auth_support;

use std::sync::Arc;

use auth_support::*;
use halo_sofa_server::fhir::{
    ChangeNotifier, CommittedWrite, NotifyError, PreparedWrite, WriteError,
};
use halo_sofa_server::store::BoxFuture;
use reqwest::StatusCode;
use serde_json::{Value, json};

const PATIENT_SCOPE: &str = "launch openid fhirUser patient/*.cruds";

async fn send(
    server: &AuthServerUnderTest,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
    if_match: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = server
        .http
        .request(method, server.url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/fhir+json")
            .body(body.to_string());
    }
    if let Some(etag) = if_match {
        request = request.header("if-match", etag);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

fn ids(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap(),
                e["resource"]["id"].as_str().unwrap()
            )
        })
        .collect()
}

// REQ: RS-02
#[tokio::test]
async fn a_bearer_token_is_required() {
    let server = start().await;
    let response = server
        .http
        .get(server.url("/Patient"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let (status, _, body) = server.get("/Patient", "not-a-token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["issue"][0]["code"], "login");
}

// REQ: RS-03
#[tokio::test]
async fn patient_scopes_reach_only_the_launch_patient() {
    let server = start().await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let token = server.launch_token(&launch, PATIENT_SCOPE).await;
    let token = token.access_token();
    // The launch holds an Observation of another patient: a patient/ token never sees it.
    let (status, _, _) = server.get("/Observation/obs-p1", token).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = server.get("/Observation/other-obs-p1", token).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _, bundle) = server.get("/Observation", token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&bundle), ["Observation/obs-p1"]);
    let (_, _, bundle) = server
        .get("/Observation?patient=Patient/somebody-else", token)
        .await;
    assert!(ids(&bundle).is_empty());
    let (_, _, bundle) = server.get("/Patient", token).await;
    assert_eq!(ids(&bundle), ["Patient/p1"]);
    // Writing about another patient is refused.
    let (status, _, body) = send(
        &server,
        reqwest::Method::POST,
        "/Observation",
        token,
        Some(
            json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                    "subject": {"reference": "Patient/somebody-else"}}),
        ),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["issue"][0]["code"], "forbidden");
}

// REQ: RS-03
#[tokio::test]
async fn interactions_and_types_must_be_granted() {
    let server = start().await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let token = server
        .launch_token(&launch, "launch patient/Patient.r")
        .await;
    let token = token.access_token();
    let (status, _, _) = server.get("/Patient/p1", token).await;
    assert_eq!(status, StatusCode::OK);
    for path in ["/Patient", "/Observation/obs-p1"] {
        let (status, _, body) = server.get(path, token).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(body["resourceType"], "OperationOutcome");
    }
    let (status, _, _) = send(
        &server,
        reqwest::Method::PUT,
        "/Patient/p1",
        token,
        Some(json!({"resourceType": "Patient", "id": "p1", "gender": "male"})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = send(
        &server,
        reqwest::Method::DELETE,
        "/Patient/p1",
        token,
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

// REQ: RS-05
#[tokio::test]
async fn a_launch_never_sees_another_launchs_data() {
    let server = start().await;
    // Two launches of the same user for the same patient id: still isolated.
    let a = server.launch(Some("dr-a"), "same").await;
    let b = server.launch(Some("dr-a"), "p-b").await;
    let token_a = server.launch_token(&a, "launch user/*.cruds").await;
    let token_b = server.launch_token(&b, "launch user/*.cruds").await;
    let (_, _, bundle) = server.get("/Observation", token_a.access_token()).await;
    assert_eq!(
        ids(&bundle),
        ["Observation/obs-same", "Observation/other-obs-same"]
    );
    let (status, _, _) = server
        .get("/Observation/obs-same", token_b.access_token())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, _, bundle) = server
        .get("/Patient?_id=same", token_b.access_token())
        .await;
    assert!(ids(&bundle).is_empty());
    let (status, _, _) = send(
        &server,
        reqwest::Method::PUT,
        "/Patient/same",
        token_b.access_token(),
        Some(json!({"resourceType": "Patient", "id": "same", "gender": "male"})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A written resource belongs to the writer's launch only.
    let (status, headers, _) = send(
        &server,
        reqwest::Method::POST,
        "/Observation",
        token_a.access_token(),
        Some(
            json!({"resourceType": "Observation", "status": "final", "code": {"text": "bp"},
                    "subject": {"reference": "Patient/same"}}),
        ),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let location = headers["location"].to_str().unwrap().to_string();
    let path = location
        .strip_prefix(&server.base)
        .unwrap()
        .split("/_history")
        .next()
        .unwrap()
        .to_string();
    let (status, _, _) = server.get(&path, token_a.access_token()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = server.get(&path, token_b.access_token()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

// REQ: RS-04
#[tokio::test]
async fn versions_etags_and_if_match() {
    let server = start().await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let token = server.launch_token(&launch, PATIENT_SCOPE).await;
    let token = token.access_token();
    let (status, headers, body) = server.get("/Patient/p1", token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["etag"], "W/\"1\"");
    assert!(headers.contains_key("last-modified"));
    assert_eq!(body["meta"]["versionId"], "1");
    let update = json!({"resourceType": "Patient", "id": "p1", "gender": "male"});
    let (status, headers, body) = send(
        &server,
        reqwest::Method::PUT,
        "/Patient/p1",
        token,
        Some(update.clone()),
        Some("W/\"1\""),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["etag"], "W/\"2\"");
    assert_eq!(body["meta"]["versionId"], "2");
    assert_eq!(body["gender"], "male");
    // A stale If-Match: 412.
    let (status, _, body) = send(
        &server,
        reqwest::Method::PUT,
        "/Patient/p1",
        token,
        Some(update.clone()),
        Some("W/\"1\""),
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
    let (status, _, _) = send(
        &server,
        reqwest::Method::PUT,
        "/Patient/p1",
        token,
        Some(update),
        Some("nonsense"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Create: 201 with Location and version 1; delete: 204, then 404.
    let (status, headers, body) = send(
        &server,
        reqwest::Method::POST,
        "/Observation",
        token,
        Some(
            json!({"resourceType": "Observation", "status": "final", "code": {"text": "bp"},
                    "subject": {"reference": "Patient/p1"}}),
        ),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(headers["etag"], "W/\"1\"");
    let id = body["id"].as_str().unwrap().to_string();
    assert!(
        headers["location"]
            .to_str()
            .unwrap()
            .ends_with(&format!("/Observation/{id}/_history/1"))
    );
    let path = format!("/Observation/{id}");
    let (status, _, _) = send(&server, reqwest::Method::DELETE, &path, token, None, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = server.get(&path, token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

// REQ: RS-04
#[tokio::test]
async fn search_pages_with_count_and_next_links() {
    let server = start().await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let token = server.launch_token(&launch, "launch user/*.rs").await;
    let (_, _, page) = server
        .get("/Observation?_count=1", token.access_token())
        .await;
    assert_eq!(page["type"], "searchset");
    assert_eq!(ids(&page).len(), 1);
    let next = page["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, _, second) = server
        .get(
            next.strip_prefix(&server.base).unwrap(),
            token.access_token(),
        )
        .await;
    assert_eq!(ids(&second).len(), 1);
    assert_ne!(ids(&second), ids(&page));
    assert!(
        !second["link"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["relation"] == "next")
    );
    let (_, _, subject) = server
        .get("/Observation?subject=Patient/p1", token.access_token())
        .await;
    assert_eq!(ids(&subject), ["Observation/obs-p1"]);
    let (status, _, _) = server
        .get("/Observation?_count=x", token.access_token())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

// REQ: RS-07
#[tokio::test]
async fn writes_are_validated() {
    let server = start().await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let token = server.launch_token(&launch, PATIENT_SCOPE).await;
    let token = token.access_token();
    let (status, _, body) = send(
        &server,
        reqwest::Method::PUT,
        "/Patient/p1",
        token,
        Some(json!({"resourceType": "Patient", "id": "p1", "active": "yes"})),
        None,
    )
    .await;
    assert!(
        status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY,
        "{status} {body}"
    );
    assert_eq!(body["resourceType"], "OperationOutcome");
    let (status, _, _) = send(
        &server,
        reqwest::Method::POST,
        "/Observation",
        token,
        Some(json!({"resourceType": "Patient", "id": "x"})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = send(
        &server,
        reqwest::Method::POST,
        "/Claim",
        token,
        Some(json!({"resourceType": "Claim"})),
        None,
    )
    .await;
    assert!(status.is_client_error(), "{status}");
    // The stored Patient is unchanged.
    let (_, headers, _) = server.get("/Patient/p1", token).await;
    assert_eq!(headers["etag"], "W/\"1\"");
}

// REQ: SEC-03
#[tokio::test]
async fn oversized_and_deeply_nested_bodies_are_refused() {
    let server = start().await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let token = server.launch_token(&launch, PATIENT_SCOPE).await;
    let big = "x".repeat(halo_model::fhir::JsonLimits::default().max_bytes + 1);
    let (status, _, _) = send(
        &server,
        reqwest::Method::POST,
        "/Observation",
        token.access_token(),
        Some(json!({"resourceType": "Observation", "status": "final", "code": {"text": big}})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let mut nested = json!("leaf");
    for _ in 0..200 {
        nested = json!({ "extension": [{ "url": "x", "valueString": nested }] });
    }
    let (status, _, body) = send(
        &server,
        reqwest::Method::POST,
        "/Observation",
        token.access_token(),
        Some(json!({"resourceType": "Observation", "status": "final", "code": nested})),
        None,
    )
    .await;
    assert!(status.is_client_error(), "{status} {body}");
}

/// A notifier that refuses every write the way the subscriptions would.
struct Refusing(NotifyError);

impl ChangeNotifier for Refusing {
    fn deliver_then_commit(
        &self,
        mut write: Box<dyn PreparedWrite>,
    ) -> BoxFuture<'_, Result<CommittedWrite, WriteError>> {
        let error = self.0.clone();
        Box::pin(async move {
            write.prepare().await?;
            Err(error.into())
        })
    }
}

// REQ: RS-04
#[tokio::test]
async fn notifier_refusals_become_409_and_503_and_nothing_is_written() {
    for (error, status) in [
        (NotifyError::NoActiveSubscription, StatusCode::CONFLICT),
        (
            NotifyError::DeliveryFailed {
                reason: "timeout".into(),
                retry_after_seconds: 7,
            },
            StatusCode::SERVICE_UNAVAILABLE,
        ),
    ] {
        let server = start_with(Options {
            notifier: Some(Arc::new(Refusing(error)) as Arc<dyn ChangeNotifier>),
            ..Options::default()
        })
        .await;
        let launch = server.launch(Some("dr-a"), "p1").await;
        let token = server.launch_token(&launch, PATIENT_SCOPE).await;
        let (answer, headers, body) = send(
            &server,
            reqwest::Method::PUT,
            "/Patient/p1",
            token.access_token(),
            Some(json!({"resourceType": "Patient", "id": "p1", "gender": "male"})),
            None,
        )
        .await;
        assert_eq!(answer, status, "{body}");
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(headers["retry-after"], "7");
            assert_eq!(body["issue"][0]["code"], "transient");
        } else {
            assert_eq!(body["issue"][0]["code"], "business-rule");
        }
        let (_, headers, body) = server.get("/Patient/p1", token.access_token()).await;
        assert_eq!(headers["etag"], "W/\"1\"");
        assert_eq!(body["gender"], "female");
    }
}

// REQ: RS-04, RS-05
/// The `Location` a write answers can be followed: vread serves each version and `_history`
/// all of them, newest first, to the launch that owns the resource and to no other; a deleted
/// resource takes its versions with it.
#[tokio::test]
async fn locations_are_followed_to_vread_and_history() {
    let server = start().await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let other = server.launch(Some("dr-a"), "p9").await;
    let token = server.launch_token(&launch, PATIENT_SCOPE).await;
    let token = token.access_token();
    let stranger = server.launch_token(&other, PATIENT_SCOPE).await;
    let stranger = stranger.access_token();
    let (status, headers, _) = send(
        &server,
        reqwest::Method::PUT,
        "/Patient/p1",
        token,
        Some(json!({"resourceType": "Patient", "id": "p1", "gender": "male"})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let location = headers["location"].to_str().unwrap();
    let path = location.strip_prefix(&server.base).unwrap().to_string();
    assert_eq!(path, "/Patient/p1/_history/2");

    let (status, headers, body) = server.get(&path, token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["etag"], "W/\"2\"");
    assert_eq!(body["gender"], "male");
    let (status, _, body) = server.get("/Patient/p1/_history/1", token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["gender"].as_str(), body["meta"]["versionId"].as_str()),
        (Some("female"), Some("1"))
    );
    for missing in ["/Patient/p1/_history/3", "/Patient/p1/_history/x"] {
        let (status, _, _) = server.get(missing, token).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    }

    let (status, _, bundle) = server.get("/Patient/p1/_history", token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bundle["type"], "history");
    let versions: Vec<(&str, &str)> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["resource"]["meta"]["versionId"].as_str().unwrap(),
                e["request"]["method"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(versions, [("2", "PUT"), ("1", "POST")]);

    // Another launch sees neither the resource nor its past.
    for path in ["/Patient/p1/_history", "/Patient/p1/_history/1"] {
        let (status, _, _) = server.get(path, stranger).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, _, _) = send(
        &server,
        reqwest::Method::DELETE,
        "/Patient/p1",
        token,
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = server.get("/Patient/p1/_history/1", token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

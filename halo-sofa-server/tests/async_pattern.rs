//! The asynchronous request pattern (`Prefer: respond-async`) as a middleware, on a slow write
//! route and on the real SoFA router.

// Test helpers may unwrap: a panic is a test failure with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/subscriptions.rs"]
mod subs;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode as AxumStatus;
use axum::routing::post;
use halo_sofa_server::asynchronous::AsyncJobs;
use halo_sofa_server::auth::{Caller, StaticTokens, TokenValidator};
use halo_sofa_server::error::SofaError;
use halo_sofa_server::store::{AsyncJobRecord, MemoryStore, SqliteStore, Store};
use reqwest::StatusCode;
use serde_json::Value;
use subs::{Mode, Receiver, rest_hook, tokens};
use support::TempDir;

struct Server {
    base: String,
    done: Arc<AtomicUsize>,
    http: reqwest::Client,
}

async fn start() -> Server {
    start_on(Arc::new(MemoryStore::new()), tokens(3), None).await
}

/// A server of slow, failing and hanging write routes behind the middleware, its jobs in
/// `store` (several servers on one store are several instances).
async fn start_on(
    store: Arc<dyn Store>,
    tokens: Arc<dyn TokenValidator>,
    lease: Option<Duration>,
) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/fhir", listener.local_addr().unwrap());
    let done = Arc::new(AtomicUsize::new(0));
    let counter = done.clone();
    let writes = Router::new()
        .route(
            "/Observation",
            post(move |body: String| {
                let counter = counter.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    counter.fetch_add(1, Ordering::SeqCst);
                    (
                        AxumStatus::CREATED,
                        [("location", "Observation/1/_history/1")],
                        body,
                    )
                }
            }),
        )
        .route(
            "/Broken",
            post(|| async { SofaError::conflict("this write breaks a business rule") }),
        );
    let mut jobs = AsyncJobs::new(base.clone(), tokens, store, 1 << 20);
    if let Some(lease) = lease {
        jobs = jobs.with_lease(lease);
    }
    let app = Router::new().nest("/fhir", jobs.apply(writes));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server {
        base,
        done,
        http: reqwest::Client::new(),
    }
}

impl Server {
    async fn submit(&self, path: &str, body: &str) -> reqwest::Response {
        self.submit_as(path, body, "poc-0").await
    }

    async fn submit_as(&self, path: &str, body: &str, token: &str) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("prefer", "respond-async")
            .header("content-type", "application/fhir+json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    async fn poll(&self, url: &str, token: &str) -> reqwest::Response {
        self.http.get(url).bearer_auth(token).send().await.unwrap()
    }
}

fn content_location(response: &reqwest::Response) -> String {
    response.headers()["content-location"]
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_write_runs_behind_a_202_and_its_status_endpoint() {
    let server = start().await;
    // REQ: ASY-01
    let accepted = server
        .submit("/Observation", r#"{"resourceType":"Observation"}"#)
        .await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let status_url = content_location(&accepted);
    assert!(status_url.starts_with(&format!("{}/$async-status/", server.base)));

    let running = server.poll(&status_url, "poc-0").await;
    assert_eq!(running.status(), StatusCode::ACCEPTED);
    assert!(running.headers().contains_key("retry-after"));
    assert_eq!(
        server.poll(&status_url, "poc-1").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server.poll(&status_url, "nobody").await.status(),
        StatusCode::UNAUTHORIZED
    );

    let mut final_response = None;
    for _ in 0..100 {
        let response = server.poll(&status_url, "poc-0").await;
        if response.status() != StatusCode::ACCEPTED {
            final_response = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let response = final_response.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["location"], "Observation/1/_history/1");
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"resourceType":"Observation"}"#
    );

    // A failure's final answer is its OperationOutcome.
    let accepted = server.submit("/Broken", "{}").await;
    let status_url = content_location(&accepted);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let failed = server.poll(&status_url, "poc-0").await;
    assert_eq!(failed.status(), StatusCode::CONFLICT);
    let outcome: Value = failed.json().await.unwrap();
    assert_eq!(outcome["resourceType"], "OperationOutcome");

    // Without the preference the write answers synchronously.
    let sync = server
        .http
        .post(format!("{}/Observation", server.base))
        .bearer_auth("poc-0")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(sync.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn delete_cancels_a_running_write() {
    let server = start().await;
    let accepted = server.submit("/Observation", "{}").await;
    let status_url = content_location(&accepted);
    // REQ: ASY-01
    let other = server
        .http
        .delete(&status_url)
        .bearer_auth("poc-1")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    let cancelled = server
        .http
        .delete(&status_url)
        .bearer_auth("poc-0")
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        server.done.load(Ordering::SeqCst),
        0,
        "the write never finished"
    );
    assert_eq!(
        server.poll(&status_url, "poc-0").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_real_router_creates_a_subscription_asynchronously() {
    let dir = TempDir::new("async-real");
    let h = subs::Harness::start(&dir.db()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/fhir", listener.local_addr().unwrap());
    let jobs = AsyncJobs::new(base.clone(), tokens(3), h.store.clone(), 1 << 20);
    let app = Router::new().nest("/fhir", jobs.apply(h.sofa.router()));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let poc = Receiver::start(Mode::Ok).await;
    let http = reqwest::Client::new();
    // REQ: ASY-01
    let accepted = http
        .post(format!("{base}/Subscription"))
        .bearer_auth("poc-0")
        .header("prefer", "respond-async")
        .header("content-type", "application/fhir+json")
        .json(&rest_hook(&poc.url(), "id-only"))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let status_url = content_location(&accepted);
    let created = answer_of(&http, &status_url, "poc-0").await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let body: Value = created.json().await.unwrap();
    assert_eq!(body["resourceType"], "Subscription");
    poc.wait_for("handshake").await;
    // Reads are never made asynchronous.
    let metadata = http
        .get(format!("{base}/metadata"))
        .header("prefer", "respond-async")
        .send()
        .await
        .unwrap();
    assert_eq!(metadata.status(), StatusCode::OK);
}

/// Polls the status URL `url` with `token` until it stops answering 202.
async fn answer_of(http: &reqwest::Client, url: &str, token: &str) -> reqwest::Response {
    for _ in 0..200 {
        let response = http.get(url).bearer_auth(token).send().await.unwrap();
        if response.status() != StatusCode::ACCEPTED {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{url} never finished");
}

/// Polls `url` with `token` until it stops answering 202.
async fn final_answer(server: &Server, url: &str, token: &str) -> reqwest::Response {
    for _ in 0..200 {
        let response = server.poll(url, token).await;
        if response.status() != StatusCode::ACCEPTED {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{url} never finished");
}

#[tokio::test]
// REQ: ASY-01, CLU-02
async fn a_job_is_answered_and_cancelled_on_any_instance_of_the_store() {
    let dir = TempDir::new("async-instances");
    let a_store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.db()).await.unwrap());
    let b_store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.db()).await.unwrap());
    let lease = Some(Duration::from_millis(150));
    let a = start_on(a_store, tokens(3), lease).await;
    let b = start_on(b_store, tokens(3), lease).await;

    // Submitted on A, polled on B: running, then A's answer.
    let accepted = a
        .submit("/Observation", r#"{"resourceType":"Observation"}"#)
        .await;
    let on_b = content_location(&accepted).replace(&a.base, &b.base);
    assert_eq!(b.poll(&on_b, "poc-0").await.status(), StatusCode::ACCEPTED);
    assert_eq!(b.poll(&on_b, "poc-1").await.status(), StatusCode::NOT_FOUND);
    let answer = final_answer(&b, &on_b, "poc-0").await;
    assert_eq!(answer.status(), StatusCode::CREATED);
    assert_eq!(answer.headers()["location"], "Observation/1/_history/1");
    assert_eq!(
        answer.text().await.unwrap(),
        r#"{"resourceType":"Observation"}"#
    );

    // Cancelled on B, running on A: A aborts it at its next renewal, before it finishes.
    let done = a.done.load(Ordering::SeqCst);
    let accepted = a.submit("/Observation", "{}").await;
    let on_b = content_location(&accepted).replace(&a.base, &b.base);
    let cancelled = b
        .http
        .delete(&on_b)
        .bearer_auth("poc-0")
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        a.done.load(Ordering::SeqCst),
        done,
        "the cancelled write ran to its end"
    );
    assert_eq!(b.poll(&on_b, "poc-0").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
// REQ: ASY-01
async fn a_result_is_read_only_with_a_token_of_the_launch_that_asked() {
    let scopes = "launch patient/Observation.cru";
    let app = |launch: &str| Caller::new("app", Some("dr-a"), scopes).in_launch(launch);
    let tokens = Arc::new(
        StaticTokens::new()
            .with("app-l1", app("l1"))
            .with("app-l2", app("l2")),
    );
    let server = start_on(Arc::new(MemoryStore::new()), tokens, None).await;
    let accepted = server
        .submit_as(
            "/Observation",
            r#"{"resourceType":"Observation"}"#,
            "app-l1",
        )
        .await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let url = content_location(&accepted);
    // The same app, another launch: the result of launch l1 is not there for it, running or
    // finished, and it cannot cancel it.
    assert_eq!(
        server.poll(&url, "app-l2").await.status(),
        StatusCode::NOT_FOUND
    );
    let cancel = server
        .http
        .delete(&url)
        .bearer_auth("app-l2")
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), StatusCode::NOT_FOUND);
    let answer = final_answer(&server, &url, "app-l1").await;
    assert_eq!(answer.status(), StatusCode::CREATED);
    assert_eq!(
        server.poll(&url, "app-l2").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
// REQ: ASY-01, CLU-02
async fn a_job_whose_instance_died_reads_failed_once_its_lease_passed() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let server = start_on(store.clone(), tokens(3), Some(Duration::from_millis(150))).await;
    // A running job of an instance that stopped renewing it a moment ago...
    let now = chrono::Utc::now();
    let mut tx = store.begin().await.unwrap();
    tx.insert_async_job(AsyncJobRecord {
        id: "orphan".into(),
        client_id: "poc-0".into(),
        launch_id: None,
        lease_until: now - chrono::Duration::milliseconds(1),
        expires_at: now + chrono::Duration::minutes(10),
        result: None,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let url = format!("{}/$async-status/orphan", server.base);
    let failed = server.poll(&url, "poc-0").await;
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let outcome: Value = failed.json().await.unwrap();
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    // ...while one running here, renewed, stays in progress well past its first lease.
    let accepted = server.submit("/Observation", "{}").await;
    let url = content_location(&accepted);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        server.poll(&url, "poc-0").await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        final_answer(&server, &url, "poc-0").await.status(),
        StatusCode::CREATED
    );
}

// REQ: ASY-01
#[tokio::test]
async fn a_sofa_built_with_async_jobs_answers_a_set_context_later() {
    let dir = TempDir::new("async-builder");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/fhir", listener.local_addr().unwrap());
    let mut config = halo_sofa_server::config::SofaConfig::new(&base).unwrap();
    config.require_active_subscription = false;
    let sofa = halo_sofa_server::sofa::Sofa::builder(config)
        .store(Arc::new(SqliteStore::open(dir.db()).await.unwrap()))
        .token_validator(tokens(1))
        .async_jobs()
        .build()
        .unwrap();
    let app = Router::new().nest("/fhir", sofa.router());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::new();
    let parameters = r#"{"resourceType": "Parameters", "parameter": [
        {"name": "patient", "valueReference": {"reference": "urn:uuid:9d4c6b43-2c4f-4d8b-9a3e-1c0e6a7b8c9d"}},
        {"name": "resources", "resource": {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:9d4c6b43-2c4f-4d8b-9a3e-1c0e6a7b8c9d",
             "resource": {"resourceType": "Patient", "gender": "male"},
             "request": {"method": "POST", "url": "Patient"}}]}}]}"#;
    let accepted = http
        .post(format!("{base}/$set-context"))
        .bearer_auth("poc-0")
        .header("prefer", "respond-async")
        .header("content-type", "application/fhir+json")
        .body(parameters)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let status_url = content_location(&accepted);
    assert!(status_url.starts_with(&base), "{status_url}");
    let answer = answer_of(&http, &status_url, "poc-0").await;
    assert_eq!(answer.status(), StatusCode::OK);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["resourceType"], "Parameters");
    assert!(
        body["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "launchID"),
        "{body}"
    );
}

//! Rate limits over real HTTP on loopback (REQ HARD-04): per client address on writes, token
//! requests and sign-ins; per authenticated client on every request its tokens make and on its
//! token requests. A refused request is 429 with `Retry-After` and changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/auth.rs"]
mod auth_support;

use auth_support::*;
use halo_sofa_server::limits::{Rate, RateLimits};
use reqwest::StatusCode;

const SCOPE: &str = "launch openid fhirUser offline_access user/*.cruds";

fn limits(per_address: Rate, per_client: Rate) -> Options {
    Options {
        rate_limits: Some(RateLimits {
            per_address,
            per_client,
            address_header: None,
        }),
        ..Options::default()
    }
}

fn assert_throttled(status: StatusCode, headers: &reqwest::header::HeaderMap) {
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let seconds: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&seconds), "{seconds}");
}

// REQ: HARD-04
/// Writes from one address beyond its burst are refused before they are read, and nothing of
/// them is stored; reads are not counted against the address.
#[tokio::test]
async fn writes_from_one_address_beyond_the_budget_are_refused_and_change_nothing() {
    let server = start_with(limits(Rate::new(1, 6), Rate::OFF)).await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let token = server.launch_token(&launch, SCOPE).await;
    let token = token.access_token().to_string();
    let count = || async {
        let mut tx = server.store.begin_read().await.unwrap();
        tx.count_resources().await.unwrap()
    };
    let before = count().await;
    // The code exchange above spent part of the address's budget (authorize and token); the
    // writes spend the rest, then are refused.
    let mut statuses = Vec::new();
    for i in 0..8 {
        let response = server
            .http
            .post(server.url("/Observation"))
            .bearer_auth(&token)
            .header("content-type", "application/fhir+json")
            .body(
                serde_json::json!({
                    "resourceType": "Observation", "status": "final", "code": {"text": format!("n{i}")},
                    "subject": {"reference": "Patient/p1"}})
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_throttled(status, response.headers());
            let outcome: serde_json::Value = response.json().await.unwrap();
            assert_eq!(outcome["issue"][0]["code"], "throttled");
        }
        statuses.push(status);
    }
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count() as u64;
    assert!(created >= 1, "{statuses:?}");
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    assert_eq!(
        count().await,
        before + created,
        "a refused write stored nothing"
    );
    // Reads are not counted against the address.
    for _ in 0..10 {
        let (status, _, _) = server.get("/Patient/p1", &token).await;
        assert_eq!(status, StatusCode::OK);
    }
}

// REQ: HARD-04
/// One client's requests beyond its budget are refused; another client's are not. The token
/// endpoint counts per client too.
#[tokio::test]
async fn each_client_has_its_own_budget() {
    let server = start_with(limits(Rate::OFF, Rate::new(1, 4))).await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let public = server.launch_token(&launch, SCOPE).await;
    let public = public.access_token().to_string();
    let poc = server.poc_token().await;

    let mut refused = None;
    for _ in 0..6 {
        let (status, headers, _) = server.get("/Patient/p1", &public).await;
        if status != StatusCode::OK {
            refused = Some((status, headers));
            break;
        }
    }
    let (status, headers) = refused.expect("the app's budget ran out");
    assert_throttled(status, &headers);
    // The PoC's budget is its own.
    let (status, _, _) = server.get("/metadata", &poc).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server.try_set_context(&poc).await;
    assert_ne!(status, StatusCode::TOO_MANY_REQUESTS);

    // Token requests: the confidential PoC asks until its budget is gone.
    let mut last = None;
    for _ in 0..8 {
        let answer = server
            .token(&[
                ("grant_type", "client_credentials"),
                ("client_id", "poc"),
                ("client_secret", POC_SECRET),
                ("scope", "system/Subscription.cruds"),
            ])
            .await;
        if answer.status != StatusCode::OK {
            last = Some(answer);
            break;
        }
    }
    let answer = last.expect("the PoC's token budget ran out");
    assert_throttled(answer.status, &answer.headers);
    assert_eq!(answer.error(), "temporarily_unavailable");
    assert_eq!(answer.headers["cache-control"], "no-store");
}

// REQ: HARD-04
/// A body is parsed only after the bearer token is checked: a malformed XML body without a
/// token is a 401, not a parse error; with a token it is the parse error.
#[tokio::test]
async fn a_body_is_not_parsed_before_the_token_is_checked() {
    let server = start().await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let token = server.launch_token(&launch, SCOPE).await;
    let post = |token: Option<&str>| {
        let mut request = server
            .http
            .post(server.url("/Observation"))
            .header("content-type", "application/fhir+xml")
            .body("<Observation xmlns=\"http://hl7.org/fhir\"><status value=");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(post(None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        post(Some("not-a-token")).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(Some(token.access_token())).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
}

// REQ: HARD-04
/// A client that sends its headers and then trickles (or stops sending) its body is answered
/// 408 once the body deadline passes; nothing is stored.
#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = start_with(Options {
        body_read_timeout: Some(std::time::Duration::from_millis(300)),
        ..Options::default()
    })
    .await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let token = server.launch_token(&launch, SCOPE).await;
    let before = {
        let mut tx = server.store.begin_read().await.unwrap();
        tx.count_resources().await.unwrap()
    };
    let mut socket = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let head = format!(
        "POST /fhir/Observation HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/fhir+json\r\nContent-Length: 200\r\n\r\n{{\"resourceType\":",
        server.addr(),
        token.access_token()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), socket.read(&mut answer))
        .await
        .expect("answered before the test gave up")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("timeout"), "{answer}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
    let mut tx = server.store.begin_read().await.unwrap();
    assert_eq!(tx.count_resources().await.unwrap(), before);
}

//! Operating the reference SoFA over real HTTP on loopback: the probes on a real SQLite file
//! (REQ OPS-01) and request ids.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use reference_sofa::{Config, Login, ReferenceSofa, RunningSofa};

mod support;
use support::TempDir;

async fn start(database: &Path) -> RunningSofa {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database: database.to_path_buf(),
        login: Login::AutoApprove {
            user: "dr-a".into(),
            fhir_user: None,
        },
        development_mode: true,
        ..Config::default()
    };
    ReferenceSofa::start(config).await.unwrap()
}

async fn get(url: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

// REQ: OPS-01
#[tokio::test]
async fn healthz_and_readyz_answer_200_at_the_root_without_a_token() {
    let dir = TempDir::new("ready");
    let sofa = start(&dir.0.join("sofa.db")).await;
    let (status, body) = get(&format!("{}/healthz", sofa.root_url)).await;
    assert_eq!((status, body), (200, serde_json::json!({"status": "ok"})));
    let (status, body) = get(&format!("{}/readyz", sofa.root_url)).await;
    assert_eq!((status, body), (200, serde_json::json!({"status": "ok"})));
    // Outside the FHIR base.
    let status = reqwest::get(format!("{}/readyz", sofa.fhir_base))
        .await
        .unwrap()
        .status();
    assert_ne!(status.as_u16(), 200);
    sofa.shutdown().await;
}

// REQ: OPS-01
#[tokio::test]
async fn readyz_answers_503_naming_the_schema_while_the_database_file_is_gone_and_200_after() {
    let dir = TempDir::new("gone");
    let database = dir.0.join("sofa.db");
    let sofa = start(&database).await;
    let readyz = format!("{}/readyz", sofa.root_url);
    assert_eq!(get(&readyz).await.0, 200);

    // Tests may run as root, for whom chmod 000 hides nothing: move the file away instead.
    let away = dir.0.join("sofa.db.away");
    std::fs::rename(&database, &away).unwrap();
    let (status, body) = get(&readyz).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert!(
        body["failed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "schema"),
        "{body}"
    );
    // The body names the check, never the path.
    assert!(!body.to_string().contains("sofa.db"), "{body}");
    // Liveness is unaffected: restarting would not bring the file back.
    assert_eq!(get(&format!("{}/healthz", sofa.root_url)).await.0, 200);

    std::fs::rename(&away, &database).unwrap();
    let (status, body) = get(&readyz).await;
    assert_eq!(status, 200, "{body}");
    sofa.shutdown().await;
}

// Every request has an id: the caller's when well-formed, a new one otherwise, echoed back.
#[tokio::test]
async fn every_response_carries_the_request_id() {
    let sofa = start(Path::new(reference_sofa::IN_MEMORY)).await;
    let client = reqwest::Client::new();
    let url = format!("{}/metadata", sofa.fhir_base);

    let response = client
        .get(&url)
        .header("X-Request-Id", "emr-42.a_b")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "emr-42.a_b");

    let response = client.get(&url).send().await.unwrap();
    let generated = response.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(generated.len(), 36, "{generated}");

    // Malformed or too long: replaced, never echoed.
    for bad in ["a b", "x\"}{", &"a".repeat(65)] {
        let response = client
            .get(&url)
            .header("X-Request-Id", bad)
            .send()
            .await
            .unwrap();
        let echoed = response.headers()["x-request-id"].to_str().unwrap();
        assert_ne!(echoed, bad);
        assert!(reference_sofa::valid_request_id(echoed.as_bytes()));
    }

    // Outside the FHIR base and on an unknown path too.
    let response = client
        .get(format!("{}/nowhere", sofa.root_url))
        .header("X-Request-Id", "probe-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "probe-1");
    sofa.shutdown().await;
}

// REQ: HARD-04
/// A connection that sends part of its headers and then nothing is closed once the header read
/// timeout passes (slowloris), and a request whose body stops coming gets 408: neither holds
/// the server for longer than the operator allows.
#[tokio::test]
async fn slow_headers_are_cut_off_and_slow_bodies_get_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut config = support::flow_config(Path::new(reference_sofa::IN_MEMORY).to_path_buf());
    config.lifetimes.header_read_timeout_ms = Some(300);
    config.lifetimes.body_read_timeout_ms = Some(300);
    let sofa = ReferenceSofa::start(config).await.unwrap();
    let addr = sofa.local_addr;
    let wait = std::time::Duration::from_secs(10);
    let mut buffer = [0u8; 2048];

    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let read = tokio::time::timeout(wait, slow.read(&mut buffer))
        .await
        .expect("the server closed the connection before the test gave up");
    // Closed (0 bytes or a reset), or answered 408: never served.
    if let Ok(n) = read {
        let answer = String::from_utf8_lossy(&buffer[..n]);
        assert!(n == 0 || answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));

    let (status, answer) = support::token(
        &reqwest::Client::new(),
        &sofa.fhir_base,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "poc"),
            ("client_secret", support::POC_SECRET),
            ("scope", "Context.write"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let token = answer["access_token"].as_str().unwrap();
    let mut trickle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /fhir/$set-context HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/fhir+json\r\nContent-Length: 100\r\n\r\n{{"
    );
    trickle.write_all(head.as_bytes()).await.unwrap();
    let n = tokio::time::timeout(wait, trickle.read(&mut buffer))
        .await
        .expect("answered before the test gave up")
        .unwrap();
    let answer = String::from_utf8_lossy(&buffer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

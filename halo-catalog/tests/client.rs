//! The catalog client against a real HTTP server on loopback.
// Test helpers may unwrap: a panic is a test failure (clippy.toml allows it in #[test] only).
#![allow(clippy::unwrap_used)]
#![cfg(feature = "client")]

mod common;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::get;
use common::{clean_entry, spec_example_entry};
use halo_catalog::{CatalogClient, ClientError, Mode};
use serde_json::json;
use std::time::Duration;
use tokio::net::TcpListener;

async fn serve(app: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn catalog_body() -> String {
    let mut broken = clean_entry();
    broken["id"] = json!("3f2b8c1e-6d4a-4f7b-9a2e-1c5d7e9f0a3b");
    broken["launchUrl"] = json!("http://app.example.com/launch");
    serde_json::to_string(&json!([spec_example_entry(), broken])).unwrap()
}

// REQ: CAT-13
#[tokio::test]
async fn fetches_with_accept_json_and_validates() {
    let app = Router::new().route(
        "/apps",
        get(|headers: HeaderMap| async move {
            // Answer only a client that asks for JSON.
            if headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) != Some("application/json")
            {
                return (
                    StatusCode::NOT_ACCEPTABLE,
                    String::from("want application/json"),
                );
            }
            (StatusCode::OK, catalog_body())
        }),
    );
    let base = serve(app).await;
    let client = CatalogClient::new(&format!("{base}/apps")).unwrap();
    let parsed = client.fetch().await.unwrap();
    // Lenient by default: the valid entry, and the findings of the broken one.
    assert_eq!(parsed.catalog.len(), 1);
    assert_eq!(parsed.catalog.entries[0].name, "Heart Health Monitor");
    assert!(parsed.report.errors().any(|f| f.path == "$[1].launchUrl"));

    let strict = client.clone().with_mode(Mode::Strict).fetch().await;
    match strict {
        Err(e @ ClientError::InvalidEntries(_)) => {
            assert_eq!(e.code(), "invalid-entries");
            assert!(e.to_string().contains("1 invalid"), "{e}");
        }
        other => panic!("expected invalid entries, got {other:?}"),
    }
}

// REQ: CAT-13
#[tokio::test]
async fn typed_errors_for_status_json_shape_size_and_transport() {
    let app = Router::new()
        .route(
            "/missing",
            get(|| async { (StatusCode::NOT_FOUND, "no catalog here") }),
        )
        .route("/garbage", get(|| async { "[{\"id\": " }))
        .route("/object", get(|| async { "{\"apps\": []}" }))
        .route(
            "/big",
            get(|| async { format!("[{}]", " ".repeat(10_000)) }),
        );
    let base = serve(app).await;

    let err = CatalogClient::new(&format!("{base}/missing"))
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Status { status: 404, body, .. } if body == "no catalog here"),
        "{err:?}"
    );
    assert_eq!(err.code(), "http-status");
    assert!(err.to_string().contains("HTTP 404"));

    let err = CatalogClient::new(&format!("{base}/garbage"))
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid-json", "{err:?}");

    let err = CatalogClient::new(&format!("{base}/object"))
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::NotAnArray {
                found: "an object",
                ..
            }
        ),
        "{err:?}"
    );

    let err = CatalogClient::new(&format!("{base}/big"))
        .unwrap()
        .with_max_body(1024)
        .fetch()
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::TooLarge { limit: 1024, .. }),
        "{err:?}"
    );

    // Nothing listens on this port any more: a transport error, not a panic.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let err = CatalogClient::new(&format!("http://{closed}/apps"))
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    assert_eq!(err.code(), "transport", "{err:?}");

    for bad in ["not a url", "ftp://example.com/apps", "mailto:a@b.example"] {
        let err = CatalogClient::new(bad).unwrap_err();
        assert_eq!(err.code(), "invalid-base-url", "{bad}");
    }
}

// REQ: CAT-13
#[tokio::test]
async fn a_server_that_never_answers_hits_the_timeout() {
    let app = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "[]"
        }),
    );
    let base = serve(app).await;
    let started = std::time::Instant::now();
    let err = CatalogClient::new(&format!("{base}/slow"))
        .unwrap()
        .with_timeout(Duration::from_millis(300))
        .fetch()
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    assert_eq!(err.code(), "timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
}

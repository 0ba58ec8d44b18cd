//! `/readyz` over real HTTP on loopback follows the store: 503 naming `store` while its queries
//! fail, 200 again once they succeed (REQ OPS-01).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use halo_sofa_server::health::Readiness;
use halo_sofa_server::store::{
    BoxFuture, MemoryStore, Store, StoreError, StoreResult, Transaction,
};

/// A memory store that can be made to fail every transaction, as a database that went away
/// would.
struct Flaky {
    inner: MemoryStore,
    down: AtomicBool,
}

impl Store for Flaky {
    fn begin(&self) -> BoxFuture<'_, StoreResult<Box<dyn Transaction>>> {
        if self.down.load(Ordering::SeqCst) {
            Box::pin(async { Err(StoreError::Unavailable("the database is down".into())) })
        } else {
            self.inner.begin()
        }
    }
}

// REQ: OPS-01
#[tokio::test]
async fn readyz_answers_503_naming_the_store_while_its_queries_fail() {
    let store = Arc::new(Flaky {
        inner: MemoryStore::new(),
        down: AtomicBool::new(false),
    });
    let app = Readiness::new(store.clone()).router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let readyz = format!("http://{addr}/readyz");

    let response = reqwest::get(&readyz).await.unwrap();
    assert_eq!(response.status(), 200);

    store.down.store(true, Ordering::SeqCst);
    let response = reqwest::get(&readyz).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"status": "unavailable", "failed": ["store"]})
    );
    // Alive all the same.
    let response = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    store.down.store(false, Ordering::SeqCst);
    let response = reqwest::get(&readyz).await.unwrap();
    assert_eq!(response.status(), 200);
    server.abort();
}

//! The token endpoint's store work over real HTTP on loopback: a code exchange and a refresh
//! each take one write transaction (the signatures run after it), and a busy store is a 503
//! with `Retry-After` that spends nothing, so the same code works once the store answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/auth.rs"]
mod auth_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use auth_support::*;
use halo_sofa_server::store::{
    BoxFuture, MemoryStore, Store, StoreError, StoreResult, Transaction,
};
use reqwest::StatusCode;

const SCOPE: &str = "launch openid fhirUser offline_access patient/*.rs";

/// A memory store that counts its write transactions and can be made busy, as a database
/// whose writers are all taken would be.
#[derive(Default)]
struct Watched {
    inner: MemoryStore,
    writes: AtomicUsize,
    busy: AtomicBool,
}

impl Store for Watched {
    fn begin(&self) -> BoxFuture<'_, StoreResult<Box<dyn Transaction>>> {
        if self.busy.load(Ordering::SeqCst) {
            return Box::pin(async { Err(StoreError::Unavailable("the store is busy".into())) });
        }
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.begin()
    }

    fn begin_read(&self) -> BoxFuture<'_, StoreResult<Box<dyn Transaction>>> {
        self.inner.begin_read()
    }
}

impl Watched {
    fn writes_since(&self) -> usize {
        self.writes.swap(0, Ordering::SeqCst)
    }
}

// REQ: AS-05, AS-06, AS-08
#[tokio::test]
async fn each_exchange_is_one_write_and_a_busy_store_is_503_with_retry_after() {
    let store = Arc::new(Watched::default());
    let server = start_with(Options {
        store: Some(store.clone()),
        ..Options::default()
    })
    .await;
    let launch = server.launch(Some("dr-a"), "p1").await;
    let (code, verifier) = server.code("app-public", &launch, SCOPE).await;

    store.busy.store(true, Ordering::SeqCst);
    let busy = server.exchange("app-public", &code, &verifier).await;
    assert_eq!(
        busy.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        busy.body
    );
    assert_eq!(busy.error(), "temporarily_unavailable");
    assert_eq!(busy.headers["retry-after"], "1");
    assert_eq!(busy.headers["cache-control"], "no-store");
    store.busy.store(false, Ordering::SeqCst);

    // Nothing was spent: the same code is exchanged once the store answers, in one write.
    store.writes_since();
    let first = server.exchange("app-public", &code, &verifier).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(store.writes_since(), 1);
    assert!(first.body["id_token"].as_str().is_some());
    let refresh_token = first.body["refresh_token"].as_str().unwrap().to_string();

    // A replay is refused and revokes the family in the same single write.
    let replay = server.exchange("app-public", &code, &verifier).await;
    assert_eq!(replay.error(), "invalid_grant");
    assert_eq!(store.writes_since(), 1);
    let (status, _, _) = server.get("/Patient/p1", first.access_token()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A refresh of another, live grant: one write for the rotation.
    let (code, verifier) = server.code("app-public", &launch, SCOPE).await;
    let second = server.exchange("app-public", &code, &verifier).await;
    assert_eq!(second.status, StatusCode::OK);
    store.writes_since();
    let refreshed = server
        .token(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                second.body["refresh_token"].as_str().unwrap(),
            ),
            ("client_id", "app-public"),
        ])
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    assert_eq!(store.writes_since(), 1);
    // The revoked family's refresh token stays refused.
    let revoked = server
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
            ("client_id", "app-public"),
        ])
        .await;
    assert_eq!(revoked.error(), "invalid_grant");
}

//! `$set-context` throughput with the XL third-party request on the SQLite store, and on
//! PostgreSQL in the same run when `HALO_TEST_POSTGRES_URL` names a server, through the real
//! router (no socket); and the SQLite store's size on disk per 1,000 contexts.
//!
//! The XL fixture posts its MedicationStatement with `request.url` `Location`, which D-04
//! refuses; the bench fixes that one field so every request is a full seven-entry success.

// A bench is a test harness: a failure panics with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use halo_sofa_server::auth::{Caller, StaticTokens};
use halo_sofa_server::config::SofaConfig;
use halo_sofa_server::sofa::Sofa;
use halo_sofa_server::store::{
    PostgresOptions, PostgresStore, SqliteStore, Store, SubscriptionRecord, SubscriptionStatus,
};
use tower::ServiceExt;

fn xl_request() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/halo/third-party-zedwerks/set-context-input-XL.json"
    );
    let mut body: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("json");
    body["parameter"][11]["resource"]["entry"][6]["request"]["url"] =
        serde_json::json!("MedicationStatement");
    serde_json::to_vec(&body).expect("json")
}

async fn server(dir: &std::path::Path) -> (axum::Router, Arc<SqliteStore>) {
    let store = Arc::new(SqliteStore::open(dir.join("bench.db")).await.expect("open"));
    (router_on(store.clone()).await, store)
}

/// The PostgreSQL store at `HALO_TEST_POSTGRES_URL`, in a fresh schema, with a pool of
/// `POOL_SIZE` connections; `None` when no URL is set.
async fn postgres() -> Option<Arc<dyn Store>> {
    let url = std::env::var("HALO_TEST_POSTGRES_URL").ok()?;
    let options = PostgresOptions {
        schema: Some(format!("bench_{}", uuid::Uuid::new_v4().simple())),
        max_connections: POOL_SIZE,
        ..Default::default()
    };
    Some(Arc::new(
        PostgresStore::connect_with(&url, options)
            .await
            .expect("PostgreSQL at HALO_TEST_POSTGRES_URL"),
    ))
}

/// The PostgreSQL pool size the bench uses (the reference SoFA's default is 16).
const POOL_SIZE: usize = 8;

async fn router_on(store: Arc<dyn Store>) -> axum::Router {
    let mut tx = store.begin().await.expect("begin");
    tx.insert_subscription(SubscriptionRecord {
        id: "sub-1".into(),
        owner_client_id: "poc".into(),
        topic: halo_model::canonical::SOFA_CONTENT_UPDATE_TOPIC.into(),
        status: SubscriptionStatus::Active,
        events_since_start: 0,
        resource: halo_model::fhir::RawResource::from_slice(
            br#"{"resourceType":"Subscription","id":"sub-1"}"#,
        )
        .expect("subscription"),
        updated_at: chrono::Utc::now(),
    })
    .await
    .expect("subscription");
    tx.commit().await.expect("commit");
    let tokens = StaticTokens::new().with(
        "poc-token",
        Caller::new("poc", Some("dr-a"), "Context.write"),
    );
    let sofa = Sofa::builder(SofaConfig::new("http://127.0.0.1/fhir").expect("config"))
        .store(store)
        .token_validator(Arc::new(tokens))
        .audit(Arc::new(NoAudit))
        .build()
        .expect("the SoFA builds");
    sofa.router()
}

/// Audit lines would dominate a throughput figure measured without a subscriber anyway.
struct NoAudit;

impl halo_sofa_server::audit::AuditSink for NoAudit {
    fn record(
        &self,
        _event: halo_sofa_server::audit::AuditEvent,
    ) -> halo_sofa_server::store::BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

async fn post(router: &axum::Router, body: &[u8]) -> StatusCode {
    let request = Request::post("/$set-context")
        .header(header::CONTENT_TYPE, "application/fhir+json")
        .header(header::AUTHORIZATION, "Bearer poc-token")
        .body(Body::from(body.to_vec()))
        .expect("request");
    router
        .clone()
        .oneshot(request)
        .await
        .expect("infallible")
        .status()
}

fn disk_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

fn set_context(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("halo-sofa-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let body = xl_request();
    let (router, store) = runtime.block_on(server(&dir));

    // Size on disk per 1,000 contexts: a fresh database, 1,000 XL contexts, checkpointed.
    let size_dir = dir.join("size");
    std::fs::create_dir_all(&size_dir).expect("dir");
    runtime.block_on(async {
        let (router, store) = server(&size_dir).await;
        let empty = disk_size(&size_dir);
        for _ in 0..1000 {
            assert_eq!(post(&router, &body).await, StatusCode::OK);
        }
        drop(router);
        drop(store);
        let connection = rusqlite::Connection::open(size_dir.join("bench.db")).expect("open");
        connection
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .expect("checkpoint");
        drop(connection);
        let full = disk_size(&size_dir);
        println!(
            "on-disk size per 1,000 XL contexts (7 resources each): {:.1} MiB ({} bytes; empty {} bytes)",
            (full - empty) as f64 / (1024.0 * 1024.0),
            full - empty,
            empty
        );
    });

    let mut group = c.benchmark_group("set-context");
    group.throughput(Throughput::Elements(1));
    group.bench_function("XL fixture, SQLite", |b| {
        b.to_async(&runtime).iter(|| async {
            assert_eq!(post(&router, &body).await, StatusCode::OK);
        });
    });
    // The same requests on PostgreSQL, in the same run, when a server is named.
    if let Some(postgres) = runtime.block_on(postgres()) {
        let router = runtime.block_on(router_on(postgres));
        group.bench_function(format!("XL fixture, PostgreSQL (pool {POOL_SIZE})"), |b| {
            b.to_async(&runtime).iter(|| async {
                assert_eq!(post(&router, &body).await, StatusCode::OK);
            });
        });
    }
    group.finish();
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, set_context);
criterion_main!(benches);

//! A FHIR read of the launch Patient through the real router (no socket), with the rate limits
//! off and on, in one run: what the limits layer (per-address middleware and the per-client
//! token wrapper, budgets large enough never to refuse) costs a read (REQ HARD-04).

// A bench is a test harness: a failure panics with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use halo_sofa_server::auth::RateLimitedTokens;
use halo_sofa_server::auth::{Caller, StaticTokens, TokenValidator};
use halo_sofa_server::config::SofaConfig;
use halo_sofa_server::limits::{Rate, RateLimits};
use halo_sofa_server::sofa::Sofa;
use halo_sofa_server::store::{NewResource, SqliteStore, Store};
use tower::ServiceExt;

async fn router(store: Arc<SqliteStore>, limits: Option<RateLimits>) -> axum::Router {
    let mut config = SofaConfig::new("http://127.0.0.1/fhir").expect("config");
    let tokens: Arc<dyn TokenValidator> = Arc::new(StaticTokens::new().with(
        "app-token",
        Caller::new("app", Some("dr-a"), "launch user/*.rs").in_launch("L1"),
    ));
    let tokens = match &limits {
        Some(limits) => {
            config.rate_limits = limits.clone();
            Arc::new(RateLimitedTokens::new(tokens, limits.per_client)) as Arc<dyn TokenValidator>
        }
        None => tokens,
    };
    Sofa::builder(config)
        .store(store)
        .token_validator(tokens)
        .resource_server()
        // Reads only: no write reaches a notifier.
        .commit_writes_without_notifying_the_poc_for_tests()
        .build()
        .expect("the SoFA builds")
        .router()
}

async fn store(dir: &std::path::Path) -> Arc<SqliteStore> {
    let store = Arc::new(SqliteStore::open(dir.join("bench.db")).await.expect("open"));
    let now = chrono::Utc::now();
    let mut tx = store.begin().await.expect("begin");
    tx.insert_launch(halo_sofa_server::store::LaunchRecord {
        launch_id: "L1".into(),
        client_id: "poc".into(),
        user: Some("dr-a".into()),
        owner_fhir_user: None,
        app_id: None,
        patient: Some("Patient/p1".into()),
        encounter: None,
        fhir_user: None,
        fhir_context: Vec::new(),
        need_patient_banner: None,
        intent: None,
        smart_style_url: None,
        tenant: None,
        created_at: now,
        expires_at: now + chrono::Duration::hours(12),
    })
    .await
    .expect("launch");
    tx.create_resource(NewResource {
        resource: halo_model::fhir::RawResource::from_slice(
            br#"{"resourceType":"Patient","id":"p1","gender":"female","birthDate":"1970-01-01"}"#,
        )
        .expect("patient"),
        launch_id: Some("L1".into()),
        last_updated: now,
    })
    .await
    .expect("patient");
    tx.commit().await.expect("commit");
    store
}

async fn read(router: &axum::Router) -> StatusCode {
    let mut request = Request::get("/Patient/p1")
        .header(header::AUTHORIZATION, "Bearer app-token")
        .body(Body::empty())
        .expect("request");
    // As `into_make_service_with_connect_info` sets it.
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    router
        .clone()
        .oneshot(request)
        .await
        .expect("infallible")
        .status()
}

fn reads(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("halo-sofa-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let store = runtime.block_on(store(&dir));
    let huge = Rate::new(u32::MAX, u32::MAX);
    let limits = RateLimits {
        per_address: huge,
        per_client: huge,
        address_header: None,
    };
    let plain = runtime.block_on(router(store.clone(), None));
    let limited = runtime.block_on(router(store, Some(limits)));

    let mut group = c.benchmark_group("read Patient");
    group.throughput(Throughput::Elements(1));
    for (name, router) in [("limits off", &plain), ("limits on", &limited)] {
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| async {
                assert_eq!(read(router).await, StatusCode::OK);
            });
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, reads);
criterion_main!(benches);

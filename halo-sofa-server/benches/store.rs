//! The SQLite store's units of work on their own, without HTTP: a write of seven resources (the
//! size of an XL `$set-context`) and a read of one resource, each by 1, 8 and 32 concurrent
//! callers, each both as a transaction opened statement by statement (`begin`, `begin_read`)
//! and as a unit handed over whole (`write`, `read`: run on the writer or a reader thread,
//! writes committed in groups). The concurrent figures show what waiting for the one writer
//! costs and what group commit buys.

// A bench is a test harness: a failure panics with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use halo_model::fhir::RawResource;
use halo_sofa_server::store::{NewResource, SqliteStore, Store, StoreError};

/// Resources a write unit stores.
const PER_UNIT: u64 = 7;
/// Concurrent callers measured.
const CONCURRENCY: [u64; 3] = [1, 8, 32];

fn resource(id: u64) -> NewResource {
    let json = format!(
        r#"{{"resourceType":"Observation","id":"o{id}","status":"final",
        "code":{{"text":"bench"}},"subject":{{"reference":"Patient/p1"}},"valueInteger":{id}}}"#
    );
    NewResource {
        resource: RawResource::from_slice(json.as_bytes()).expect("resource"),
        launch_id: Some("L1".into()),
        last_updated: chrono::Utc::now(),
    }
}

/// One write transaction: seven new resources, committed together.
async fn write_transaction(store: &SqliteStore, next: &AtomicU64) {
    let mut tx = store.begin().await.expect("begin");
    for _ in 0..PER_UNIT {
        let id = next.fetch_add(1, Ordering::Relaxed);
        tx.create_resource(resource(id)).await.expect("create");
    }
    tx.commit().await.expect("commit");
}

/// The same seven resources as one write unit.
async fn write_unit(store: &Arc<dyn Store>, next: &AtomicU64) {
    let resources: Vec<_> = (0..PER_UNIT)
        .map(|_| resource(next.fetch_add(1, Ordering::Relaxed)))
        .collect();
    store
        .write(move |tx| {
            Box::pin(async move {
                for new in resources {
                    tx.create_resource(new).await?;
                }
                Ok::<_, StoreError>(())
            })
        })
        .await
        .expect("write unit");
}

/// One read transaction: the resource every read asks for.
async fn read_transaction(store: &SqliteStore) {
    let mut tx = store.begin_read().await.expect("begin_read");
    let found = tx.read_resource("Observation", "o0").await.expect("read");
    assert!(found.is_some());
    tx.commit().await.expect("end");
}

/// The same read as a read unit.
async fn read_unit(store: &Arc<dyn Store>) {
    let found = store
        .read(|tx| Box::pin(async move { tx.read_resource("Observation", "o0").await }))
        .await
        .expect("read unit");
    assert!(found.is_some());
}

/// Runs `iters` units split over `callers` tasks; the time they took together.
async fn concurrently<F, Fut>(iters: u64, callers: u64, unit: F) -> Duration
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|caller| {
            let unit = unit.clone();
            // The first callers take one more when `iters` does not divide evenly.
            let share = iters / callers + u64::from(caller < iters % callers);
            tokio::spawn(async move {
                for _ in 0..share {
                    unit().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    started.elapsed()
}

fn store_units(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("halo-store-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let store = Arc::new(
        runtime
            .block_on(SqliteStore::open(dir.join("bench.db")))
            .expect("open"),
    );
    let next = Arc::new(AtomicU64::new(0));
    runtime.block_on(write_transaction(&store, &next));
    let shared: Arc<dyn Store> = store.clone();

    let mut group = c.benchmark_group("sqlite-store");
    group.throughput(Throughput::Elements(1));
    for callers in CONCURRENCY {
        group.bench_function(
            format!("write transaction of {PER_UNIT}, c={callers}"),
            |b| {
                b.to_async(&runtime).iter_custom(|iters| {
                    let (store, next) = (store.clone(), next.clone());
                    concurrently(iters, callers, move || {
                        let (store, next) = (store.clone(), next.clone());
                        async move { write_transaction(&store, &next).await }
                    })
                });
            },
        );
        group.bench_function(format!("write unit of {PER_UNIT}, c={callers}"), |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                let (store, next) = (shared.clone(), next.clone());
                concurrently(iters, callers, move || {
                    let (store, next) = (store.clone(), next.clone());
                    async move { write_unit(&store, &next).await }
                })
            });
        });
    }
    for callers in CONCURRENCY {
        group.bench_function(format!("read transaction, c={callers}"), |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                let store = store.clone();
                concurrently(iters, callers, move || {
                    let store = store.clone();
                    async move { read_transaction(&store).await }
                })
            });
        });
        group.bench_function(format!("read unit, c={callers}"), |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                let store = shared.clone();
                concurrently(iters, callers, move || {
                    let store = store.clone();
                    async move { read_unit(&store).await }
                })
            });
        });
    }
    group.finish();
    drop((store, shared));
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, store_units);
criterion_main!(benches);

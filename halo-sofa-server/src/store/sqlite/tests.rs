//! Failure modes of the writer thread and its queue: what callers see when the writer dies,
//! when their turn does not come before the deadline, when a transaction is dropped open or a
//! statement panics; and the checkpointer's work and stop.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;

use super::SqliteStore;
use crate::store::{Store, StoreError, Transaction};

/// A temporary directory, removed with its database.
struct Dir(PathBuf);

impl Dir {
    fn new(label: &str) -> Dir {
        let path = std::env::temp_dir().join(format!(
            "halo-sqlite-{label}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&path).unwrap();
        Dir(path)
    }

    fn db(&self) -> PathBuf {
        self.0.join("sofa.db")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How long no answer counts as a hang.
const HANG: Duration = Duration::from_secs(10);

async fn audit_count(store: &SqliteStore) -> usize {
    let mut tx = store.begin_read().await.unwrap();
    let from = Utc::now() - chrono::Duration::days(1);
    let to = Utc::now() + chrono::Duration::days(1);
    tx.audit_events(from, to, 10_000).await.unwrap().len()
}

async fn write_one(tx: &mut Box<dyn Transaction>, text: &str) {
    tx.append_audit_event(Utc::now(), format!("{{\"e\":\"{text}\"}}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_dead_writer_is_a_clear_error_not_a_hang() {
    let dir = Dir::new("crash");
    let store = SqliteStore::open(dir.db()).await.unwrap();
    store.crash_writer().await;
    let begun = tokio::time::timeout(HANG, store.begin())
        .await
        .expect("a begin on a dead writer must not hang");
    match begun {
        Err(StoreError::Backend(message)) => assert!(message.contains("writer"), "{message}"),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a dead writer opened a transaction"),
    }
    // Reads do not need the writer.
    assert_eq!(audit_count(&store).await, 0);
}

#[tokio::test]
async fn a_write_waiting_past_its_deadline_is_told_the_store_is_busy() {
    let dir = Dir::new("deadline");
    let wait = Duration::from_millis(150);
    let store = SqliteStore::open_with_busy_timeout(dir.db(), wait)
        .await
        .unwrap();
    let mut holding = store.begin().await.unwrap();
    write_one(&mut holding, "held").await;
    let started = std::time::Instant::now();
    let queued = tokio::time::timeout(HANG, store.begin()).await.unwrap();
    let waited = started.elapsed();
    assert!(
        matches!(queued, Err(StoreError::Unavailable(_))),
        "a write past its deadline is `unavailable`"
    );
    assert!(waited >= wait, "it waited its whole turn ({waited:?})");
    assert!(waited < wait * 10, "and not much longer ({waited:?})");
    // The holder was not disturbed, and the writer serves the next one after it.
    holding.commit().await.unwrap();
    let mut next = store.begin().await.unwrap();
    write_one(&mut next, "next").await;
    next.commit().await.unwrap();
    assert_eq!(audit_count(&store).await, 2);
}

#[tokio::test]
// REQ: REL-02
async fn a_transaction_dropped_open_is_rolled_back_and_frees_the_writer() {
    let dir = Dir::new("dropped");
    let store = SqliteStore::open_with_busy_timeout(dir.db(), Duration::from_secs(2))
        .await
        .unwrap();
    let mut dropped = store.begin().await.unwrap();
    write_one(&mut dropped, "dropped").await;
    drop(dropped);
    let mut next = tokio::time::timeout(HANG, store.begin())
        .await
        .unwrap()
        .expect("the writer is free again");
    write_one(&mut next, "kept").await;
    next.commit().await.unwrap();
    assert_eq!(audit_count(&store).await, 1, "only the committed write");

    // A transaction whose caller gave up mid-statement (its future dropped) is dropped the
    // same way.
    let mut cancelled = store.begin().await.unwrap();
    write_one(&mut cancelled, "cancelled").await;
    // Polled once (the statement is on its way to the writer), then given up.
    let statement = cancelled.append_audit_event(Utc::now(), "{}".into());
    let _ = tokio::time::timeout(Duration::ZERO, statement).await;
    drop(cancelled);
    let next = tokio::time::timeout(HANG, store.begin()).await.unwrap();
    next.unwrap().commit().await.unwrap();
    assert_eq!(audit_count(&store).await, 1);
}

#[tokio::test]
// REQ: REL-02
async fn a_statement_that_panics_rolls_its_transaction_back_and_the_writer_goes_on() {
    let dir = Dir::new("panic");
    let store = SqliteStore::open(dir.db()).await.unwrap();
    let mut write = Box::new(store.begin_write().await.unwrap());
    write
        .call(|c| {
            super::ops::append_audit_event(c, Utc::now(), "{\"e\":\"before\"}")?;
            Ok(())
        })
        .await
        .unwrap();
    let failed = write
        .call(|_| -> crate::store::StoreResult<()> { panic!("a bug in a statement") })
        .await;
    assert!(matches!(failed, Err(StoreError::Backend(_))), "{failed:?}");
    // The transaction has ended: nothing more runs in it, and its commit says so.
    assert!(write.call(|_| Ok(())).await.is_err());
    assert!(write.commit().await.is_err());
    let mut next = tokio::time::timeout(HANG, store.begin())
        .await
        .unwrap()
        .unwrap();
    write_one(&mut next, "after").await;
    next.commit().await.unwrap();
    assert_eq!(
        audit_count(&store).await,
        1,
        "the panicked unit left nothing"
    );
}

#[tokio::test]
async fn writers_get_their_turn_in_the_order_they_asked() {
    let dir = Dir::new("fifo");
    let store = SqliteStore::open(dir.db()).await.unwrap();
    let holding = store.begin().await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut waiting = Vec::new();
    for n in 0..6 {
        let (store, order) = (store.clone(), order.clone());
        waiting.push(tokio::spawn(async move {
            let tx = store.begin().await.unwrap();
            order.lock().unwrap().push(n);
            tx.commit().await.unwrap();
        }));
        // Each is queued before the next asks.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    holding.commit().await.unwrap();
    for task in waiting {
        tokio::time::timeout(HANG, task).await.unwrap().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..6).collect::<Vec<_>>());
}

fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[tokio::test]
async fn commits_are_checkpointed_in_the_background_and_the_checkpointer_stops_with_the_store() {
    let dir = Dir::new("checkpoint");
    let db = dir.db();
    let store = SqliteStore::open(&db).await.unwrap();
    let before = file_len(&db);
    let mut tx = store.begin().await.unwrap();
    let padding = "x".repeat(1000);
    for n in 0..200 {
        write_one(&mut tx, &format!("{n}{padding}")).await;
    }
    tx.commit().await.unwrap();
    // Far below SQLite's auto-checkpoint (1,000 pages), and auto-checkpoint is off anyway:
    // only the checkpointer moves these pages into the database file.
    let mut grown = false;
    for _ in 0..100 {
        if file_len(&db) >= before + 150_000 {
            grown = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(grown, "the WAL was copied into the database file");

    // Dropping the store stops the writer and the checkpointer and closes every connection
    // before it returns: the last close removes the WAL file.
    drop(store);
    assert!(
        !dir.0.join("sofa.db-wal").exists(),
        "every connection of the dropped store was closed"
    );
}

#[tokio::test]
async fn the_wal_starts_over_under_a_steady_write_load() {
    let dir = Dir::new("wal-bound");
    let store = SqliteStore::open(dir.db()).await.unwrap();
    let wal = dir.0.join("sofa.db-wal");
    let padding = "x".repeat(4000);
    // About 48 MiB of records written back to back: a checkpoint beside the writer alone
    // would never copy every frame, and the WAL would hold it all.
    let mut largest = 0;
    for unit in 0..300 {
        let mut tx = store.begin().await.unwrap();
        for n in 0..40 {
            write_one(&mut tx, &format!("{unit}-{n}{padding}")).await;
        }
        tx.commit().await.unwrap();
        largest = largest.max(file_len(&wal));
    }
    assert!(
        largest < 32 * 1024 * 1024,
        "the WAL grew to {largest} bytes for 48 MiB written"
    );
}

/// A write unit that appends one audit record and answers `n`, or fails after writing when
/// `fail` (its write must then vanish).
fn audit_unit(
    store: &SqliteStore,
    n: usize,
    fail: bool,
) -> tokio::task::JoinHandle<Result<usize, StoreError>> {
    let store: Arc<dyn Store> = Arc::new(store.clone());
    tokio::spawn(async move {
        store
            .write(move |tx| {
                Box::pin(async move {
                    tx.append_audit_event(Utc::now(), format!("{{\"unit\":{n}}}"))
                        .await?;
                    if fail {
                        return Err(StoreError::NotFound(format!("unit {n}")));
                    }
                    Ok(n)
                })
            })
            .await
    })
}

#[tokio::test]
// REQ: REL-02
async fn units_queued_together_commit_together_and_a_failed_one_leaves_nothing() {
    let dir = Dir::new("group");
    let store = SqliteStore::open(dir.db()).await.unwrap();
    // A session holds the writer, so the units queue up behind it and form one group.
    let holding = store.begin().await.unwrap();
    let units: Vec<_> = (0..20).map(|n| audit_unit(&store, n, n % 3 == 1)).collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    holding.commit().await.unwrap();
    for (n, unit) in units.into_iter().enumerate() {
        let answer = tokio::time::timeout(HANG, unit).await.unwrap().unwrap();
        if n % 3 == 1 {
            assert!(matches!(answer, Err(StoreError::NotFound(_))), "{answer:?}");
        } else {
            assert_eq!(answer.unwrap(), n);
        }
    }
    assert!(
        store.inner.wal.largest_group.load(Ordering::Relaxed) >= 10,
        "the queued units were committed as a group"
    );
    // 20 units, 7 of them failed after writing: only the other 13 writes are there.
    assert_eq!(audit_count(&store).await, 13);
}

#[tokio::test]
// REQ: REL-02
async fn a_unit_that_panics_or_awaits_something_else_is_rolled_back_alone() {
    let dir = Dir::new("unit-misuse");
    let store = SqliteStore::open(dir.db()).await.unwrap();
    let shared: Arc<dyn Store> = Arc::new(store.clone());
    let holding = store.begin().await.unwrap();
    let before = audit_unit(&store, 1, false);
    let panicking = {
        let store = shared.clone();
        tokio::spawn(async move {
            store
                .write(|tx| {
                    Box::pin(async move {
                        tx.append_audit_event(Utc::now(), "{\"unit\":\"panic\"}".into())
                            .await?;
                        if tx.count_launches().await? == 0 {
                            panic!("a bug in a unit");
                        }
                        Ok::<_, StoreError>(())
                    })
                })
                .await
        })
    };
    let waiting = {
        let store = shared.clone();
        tokio::spawn(async move {
            store
                .write(|tx| {
                    Box::pin(async move {
                        tx.append_audit_event(Utc::now(), "{\"unit\":\"sleeps\"}".into())
                            .await?;
                        // Nothing on the writer's thread would ever wake this.
                        std::future::pending::<()>().await;
                        Ok::<_, StoreError>(())
                    })
                })
                .await
        })
    };
    let after = audit_unit(&store, 2, false);
    tokio::time::sleep(Duration::from_millis(100)).await;
    holding.commit().await.unwrap();
    let panicked = tokio::time::timeout(HANG, panicking)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&panicked, Err(StoreError::Backend(m)) if m.contains("panicked")),
        "{panicked:?}"
    );
    let waited = tokio::time::timeout(HANG, waiting).await.unwrap().unwrap();
    assert!(
        matches!(&waited, Err(StoreError::Backend(m)) if m.contains("awaited something other")),
        "{waited:?}"
    );
    assert_eq!(before.await.unwrap().unwrap(), 1);
    assert_eq!(after.await.unwrap().unwrap(), 2);
    assert_eq!(
        audit_count(&store).await,
        2,
        "only the two sound units wrote"
    );
}

#[tokio::test]
async fn a_unit_past_its_deadline_is_told_the_store_is_busy_and_never_runs() {
    let dir = Dir::new("unit-deadline");
    let wait = Duration::from_millis(150);
    let store = SqliteStore::open_with_busy_timeout(dir.db(), wait)
        .await
        .unwrap();
    let holding = store.begin().await.unwrap();
    let late = audit_unit(&store, 1, false);
    tokio::time::sleep(wait * 2).await;
    holding.commit().await.unwrap();
    let answer = tokio::time::timeout(HANG, late).await.unwrap().unwrap();
    assert!(
        matches!(answer, Err(StoreError::Unavailable(_))),
        "{answer:?}"
    );
    assert_eq!(audit_count(&store).await, 0, "the late unit did not run");
    // The writer goes on with the next.
    assert_eq!(audit_unit(&store, 2, false).await.unwrap().unwrap(), 2);
}

/// The audit records as a read unit sees them.
async fn audit_count_read(store: &SqliteStore) -> Result<usize, StoreError> {
    let store: Arc<dyn Store> = Arc::new(store.clone());
    store
        .read(|tx| {
            Box::pin(async move {
                let from = Utc::now() - chrono::Duration::days(1);
                let to = Utc::now() + chrono::Duration::days(1);
                Ok(tx.audit_events(from, to, 10_000).await?.len())
            })
        })
        .await
}

#[tokio::test]
// REQ: REL-02
async fn read_units_see_commits_refuse_writes_and_survive_a_panicking_unit() {
    let dir = Dir::new("read-units");
    let store = SqliteStore::open(dir.db()).await.unwrap();
    let shared: Arc<dyn Store> = Arc::new(store.clone());
    assert_eq!(audit_unit(&store, 1, false).await.unwrap().unwrap(), 1);
    // An open write is not seen; the commit is.
    let mut open = store.begin().await.unwrap();
    write_one(&mut open, "uncommitted").await;
    assert_eq!(audit_count_read(&store).await.unwrap(), 1);
    open.commit().await.unwrap();
    assert_eq!(audit_count_read(&store).await.unwrap(), 2);
    // A write through a read unit is refused and leaves nothing.
    let wrote = shared
        .read(|tx| {
            Box::pin(async move {
                tx.append_audit_event(Utc::now(), "{}".into()).await?;
                Ok::<_, StoreError>(())
            })
        })
        .await;
    assert!(wrote.is_err(), "a read unit wrote");
    // Panicking units (more than there are readers) leave every reader serving.
    for _ in 0..2 * super::readers::threads() {
        let panicked = shared
            .read(|tx| {
                Box::pin(async move {
                    if tx.count_launches().await? == 0 {
                        panic!("a bug in a read unit");
                    }
                    Ok::<_, StoreError>(())
                })
            })
            .await;
        assert!(
            matches!(&panicked, Err(StoreError::Backend(m)) if m.contains("panicked")),
            "{panicked:?}"
        );
    }
    for _ in 0..2 * super::readers::threads() {
        assert_eq!(audit_count_read(&store).await.unwrap(), 2);
    }
    // The readers stop with the store, closing their connections before the writer's: the
    // last close removes the WAL.
    drop((store, shared));
    assert!(!dir.0.join("sofa.db-wal").exists());
}

//! The embedded SQLite store: the default, in WAL mode.
//!
//! Writes go to one writer thread that owns the only write connection ([`writer`]): write
//! transactions queue for it in order, with the busy timeout as their deadline, instead of
//! fighting for SQLite's write lock; write units run whole on it and commit in groups. Read
//! units run on reader threads that keep read-only connections ([`readers`]); read
//! transactions opened one statement at a time use a pool of read-only connections kept open
//! beside it, every SQLite call of theirs on a blocking thread so the async runtime never waits
//! on disk. WAL readers see a consistent snapshot while the writer works. A checkpointer
//! thread copies the WAL back into the database off the request path.

mod cluster;
mod ops;
mod readers;
mod schema;
#[cfg(test)]
mod tests;
mod writer;

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::{
    AuditOps, AuthOps, AuthorizationCodeRecord, BoxFuture, ClientRecord, EventRecord, EventState,
    LaunchOps, LaunchRecord, NewResource, ReadUnit, RefreshTokenRecord, ResourceOps, ResourceQuery,
    SigningKeyRecord, Store, StoreError, StoreResult, StoredResource, SubscriptionOps,
    SubscriptionRecord, Transaction, WriteUnit,
};
use crate::metrics;
use writer::{Job, Session};

/// How long a transaction waits for its turn at the writer before reporting the store
/// unavailable (503), unless the host sets another ([`SqliteStore::open_with_busy_timeout`]).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Prepared statements each connection keeps (the store has about a hundred distinct ones).
const STATEMENT_CACHE: usize = 128;

/// Read connections kept open for reuse: enough for the requests a machine of this size serves
/// at once, so none is opened per request. Beyond it a read opens a connection of its own and
/// closes it after.
fn reader_pool_size() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    (cores * 16).clamp(16, 64)
}

/// The embedded SQLite [`Store`] (rusqlite, bundled SQLite, WAL).
///
/// Data survives a restart (REQ REL-01) and a crash mid-transaction leaves nothing of it
/// (REQ REL-02). `synchronous = NORMAL` in WAL mode: a committed transaction survives a process
/// crash; after a power loss the database is consistent but the last commits may be missing.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    busy_timeout: Duration,
    /// The writer thread's queue; dropping it (with the store) stops the writer, then the
    /// checkpointer.
    writer: mpsc::Sender<Job>,
    idle_readers: Mutex<Vec<Connection>>,
    readers_kept: usize,
    /// The writer and checkpointer threads, joined when the store goes.
    threads: Vec<std::thread::JoinHandle<()>>,
    /// The reader threads' queue; dropping it (with the store) stops them.
    readers: std::sync::mpsc::SyncSender<readers::QueuedRead>,
    /// The reader threads, joined before the writer is stopped.
    reader_threads: Vec<std::thread::JoinHandle<()>>,
    /// What the writer shares with the checkpointer (tests read the writer's grouping).
    #[cfg(test)]
    wal: Arc<writer::WalState>,
}

impl Drop for Inner {
    /// Stops the writer and the checkpointer and waits for them, so the store's connections are
    /// all closed when it is gone (the last close copies the WAL back and removes it), as they
    /// were when the store was a pool. No transaction is open (each holds the store), so the
    /// wait is for at most one unit's end and the closes.
    fn drop(&mut self) {
        // Readers first: their connections close before the writer's, so two closes never
        // race to be the last (the last copies the WAL back and removes it).
        let (closed, _) = std::sync::mpsc::sync_channel(1);
        drop(std::mem::replace(&mut self.readers, closed));
        for thread in self.reader_threads.drain(..) {
            let _ = thread.join();
        }
        self.idle_readers
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.writer, closed));
        for thread in self.threads.drain(..) {
            // A writer that panicked has nothing left to close.
            let _ = thread.join();
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub async fn open(path: impl AsRef<Path>) -> StoreResult<SqliteStore> {
        SqliteStore::open_with_busy_timeout(path, BUSY_TIMEOUT).await
    }

    /// [`open`](Self::open), with how long a transaction waits for its turn to write before
    /// the store reports itself unavailable (5 s by default).
    pub async fn open_with_busy_timeout(
        path: impl AsRef<Path>,
        busy_timeout: Duration,
    ) -> StoreResult<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let opened = path.clone();
        let wal = Arc::new(writer::WalState::default());
        let watched = wal.clone();
        let (write, checkpoint) = blocking(move || {
            let write = connect_writer(&opened, &watched)?;
            write.busy_timeout(busy_timeout).map_err(ops::error)?;
            migrate(&write)?;
            let checkpoint = Connection::open(&opened).map_err(ops::error)?;
            checkpoint
                .execute_batch("PRAGMA synchronous = NORMAL;")
                .map_err(ops::error)?;
            Ok((write, checkpoint))
        })
        .await?;
        let (queue, jobs) = mpsc::channel(writer::QUEUE);
        let (wake, wakeups) = std::sync::mpsc::sync_channel(1);
        let name = |role: &str| format!("sqlite-{role}");
        #[cfg(test)]
        let shared = wal.clone();
        let watched = wal.clone();
        let checkpointer = std::thread::Builder::new()
            .name(name("checkpoint"))
            .spawn(move || writer::run_checkpointer(checkpoint, wakeups, watched))
            .map_err(|e| StoreError::Backend(format!("cannot start the checkpointer: {e}")))?;
        let writer_path = path.clone();
        let writer = std::thread::Builder::new()
            .name(name("writer"))
            .spawn(move || writer::run_writer(write, writer_path, jobs, wake, wal))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer: {e}")))?;
        let (readers, reads) = std::sync::mpsc::sync_channel(readers::QUEUE);
        let reads: readers::Jobs = Arc::new(Mutex::new(reads));
        let mut reader_threads = Vec::new();
        for n in 0..readers::threads() {
            let (path, reads) = (path.clone(), reads.clone());
            let thread = std::thread::Builder::new()
                .name(name(&format!("reader-{n}")))
                .spawn(move || readers::run_reader(path, busy_timeout, reads))
                .map_err(|e| StoreError::Backend(format!("cannot start a reader: {e}")))?;
            reader_threads.push(thread);
        }
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                readers,
                reader_threads,
                path,
                busy_timeout,
                writer: queue,
                idle_readers: Mutex::new(Vec::new()),
                readers_kept: reader_pool_size(),
                // The writer first: the checkpointer stops after it.
                threads: vec![writer, checkpointer],
                #[cfg(test)]
                wal: shared,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Waits, in order and at most the busy timeout, for the writer to open a transaction.
    async fn begin_write(&self) -> StoreResult<SqliteTransaction> {
        let waited = self.inner.busy_timeout;
        let deadline = Instant::now() + waited;
        let (reply, answer) = oneshot::channel();
        let turn = async {
            self.inner
                .writer
                .send(Job::Begin { deadline, reply })
                .await
                .map_err(|_| writer::stopped())?;
            answer.await.map_err(|_| writer::stopped())?
        };
        // Timing out drops the reply: a session the writer sends after that is dropped with
        // it, which rolls it back and frees the writer.
        let session = tokio::time::timeout_at(deadline.into(), turn)
            .await
            .map_err(|_| writer::busy(waited))??;
        Ok(SqliteTransaction {
            side: Side::Write(Some(session)),
        })
    }

    /// Queues a write unit for the writer, which runs it (with the units queued beside it) and
    /// answers. The deadline bounds only the wait for a turn: the writer answers a unit it
    /// comes to late with `Unavailable` without running it, and one it has begun with its
    /// outcome, so a caller never gives up on a unit that may have committed.
    async fn submit(&self, unit: WriteUnit) -> StoreResult<Box<dyn Any + Send>> {
        let waited = self.inner.busy_timeout;
        let deadline = Instant::now() + waited;
        let (reply, answer) = oneshot::channel();
        let job = Job::Unit(writer::QueuedUnit {
            deadline,
            unit,
            reply,
        });
        tokio::time::timeout_at(deadline.into(), self.inner.writer.send(job))
            .await
            .map_err(|_| writer::busy(waited))?
            .map_err(|_| writer::stopped())?;
        answer.await.map_err(|_| writer::stopped())?
    }

    async fn begin_reader(&self) -> StoreResult<Box<dyn Transaction>> {
        let connection = match self.inner.take_idle() {
            Some(connection) => connection,
            None => {
                let path = self.inner.path.clone();
                let busy_timeout = self.inner.busy_timeout;
                blocking(move || connect_reader(&path, busy_timeout)).await?
            }
        };
        // `BEGIN` goes with the first statement: a deferred transaction takes its snapshot
        // only there anyway, and it saves a trip to a blocking thread.
        Ok(Box::new(SqliteTransaction {
            side: Side::Read {
                connection: Some(connection),
                begun: false,
                store: self.inner.clone(),
            },
        }))
    }

    /// Stops the writer thread as a crash would.
    #[cfg(test)]
    async fn crash_writer(&self) {
        let _ = self.inner.writer.send(Job::Crash).await;
    }
}

impl Inner {
    fn take_idle(&self) -> Option<Connection> {
        self.idle_readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
    }

    fn give_back(&self, connection: Connection) {
        let mut idle = self.idle_readers.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.readers_kept {
            idle.push(connection);
        }
    }
}

impl Store for SqliteStore {
    fn begin(&self) -> BoxFuture<'_, StoreResult<Box<dyn Transaction>>> {
        Box::pin(metrics::store_call("sqlite", "begin", async {
            Ok(Box::new(self.begin_write().await?) as Box<dyn Transaction>)
        }))
    }

    fn run_unit(&self, unit: WriteUnit) -> BoxFuture<'_, StoreResult<Box<dyn Any + Send>>> {
        Box::pin(metrics::store_call("sqlite", "unit", self.submit(unit)))
    }

    fn run_read(&self, unit: ReadUnit) -> BoxFuture<'_, StoreResult<Box<dyn Any + Send>>> {
        Box::pin(metrics::store_call("sqlite", "read", async move {
            let (reply, answer) = oneshot::channel();
            self.inner
                .readers
                .try_send(readers::QueuedRead { unit, reply })
                .map_err(readers::refused)?;
            answer.await.map_err(|_| readers::stopped())?
        }))
    }

    fn begin_read(&self) -> BoxFuture<'_, StoreResult<Box<dyn Transaction>>> {
        // DEFERRED: WAL readers run beside the writer on a consistent snapshot.
        Box::pin(metrics::store_call(
            "sqlite",
            "begin_read",
            self.begin_reader(),
        ))
    }
}

/// The settings every connection shares.
fn configure(connection: &Connection) -> StoreResult<()> {
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    connection
        .execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
        .map_err(ops::error)
}

/// The writer's connection. The writer waits for no one in this store; the busy timeout it
/// gets per transaction bounds a wait for another process on the same file. Auto-checkpoint is
/// off: the checkpointer thread does it off the request path.
fn connect_writer(path: &Path, wal: &Arc<writer::WalState>) -> StoreResult<Connection> {
    let mut connection = Connection::open(path).map_err(ops::error)?;
    connection
        .execute_batch("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;")
        .map_err(ops::error)?;
    writer::watch_wal(&mut connection, wal).map_err(ops::error)?;
    configure(&connection)?;
    Ok(connection)
}

/// A read connection: `query_only`, so a write through a read transaction is an error (the
/// store contract allows it) and never competes with the writer for the lock.
fn connect_reader(path: &Path, busy_timeout: Duration) -> StoreResult<Connection> {
    let connection = Connection::open(path).map_err(ops::error)?;
    connection.busy_timeout(busy_timeout).map_err(ops::error)?;
    configure(&connection)?;
    connection
        .execute_batch("PRAGMA query_only = ON;")
        .map_err(ops::error)?;
    Ok(connection)
}

fn migrate(connection: &Connection) -> StoreResult<()> {
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(ops::error)?;
    if version > schema::VERSION {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {version}, newer than this server's {}",
            schema::VERSION
        )));
    }
    // Each step after the first brings a database of the version before it up to date; a new
    // database gets the whole current schema from `CREATE` and skips them.
    let steps = if version == 0 {
        String::new()
    } else {
        schema::UPGRADES
            .iter()
            .filter(|(to, _)| *to > version)
            .map(|(_, sql)| *sql)
            .collect::<Vec<_>>()
            .join(" ")
    };
    connection
        .execute_batch(&format!(
            "BEGIN IMMEDIATE; {} {steps} {} PRAGMA user_version = {}; COMMIT;",
            schema::CREATE,
            schema::INDEXES,
            schema::VERSION
        ))
        .map_err(ops::error)
}

/// Runs SQLite work on the blocking pool.
async fn blocking<R: Send + 'static>(
    work: impl FnOnce() -> StoreResult<R> + Send + 'static,
) -> StoreResult<R> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Backend(format!("the storage thread failed: {e}")))?
}

/// Where a transaction's statements run.
enum Side {
    /// On the writer thread, which this transaction holds while it is open.
    Write(Option<Session>),
    /// On a read connection of its own, on the blocking pool.
    Read {
        connection: Option<Connection>,
        /// Whether `BEGIN` has run on it.
        begun: bool,
        /// The pool it goes back to.
        store: Arc<Inner>,
    },
    /// On the writer thread itself, for a write unit: the writer lends its connection and
    /// takes it back when the unit is done (see [`writer`]).
    Lent(Option<Connection>),
}

/// A transaction. Dropped without commit, it rolls back: a write transaction's session tells
/// the writer so, which frees it for the next; a read connection rolls back on a blocking
/// thread and goes back to the pool. If a read is dropped while a statement runs, its
/// connection closes with the transaction open, which SQLite also rolls back.
struct SqliteTransaction {
    side: Side,
}

impl SqliteTransaction {
    /// A transaction on the writer's own connection, already begun by the writer.
    fn lent(connection: Connection) -> SqliteTransaction {
        SqliteTransaction {
            side: Side::Lent(Some(connection)),
        }
    }

    /// The connection lent by [`lent`](Self::lent), back to the writer.
    fn give_back_lent(mut self) -> Option<Connection> {
        match &mut self.side {
            Side::Lent(connection) => connection.take(),
            _ => None,
        }
    }

    async fn call<R: Send + 'static>(
        &mut self,
        work: impl FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    ) -> StoreResult<R> {
        match &mut self.side {
            Side::Write(session) => {
                let session = session.as_ref().ok_or_else(writer::ended)?;
                session.run(work).await
            }
            Side::Lent(connection) => work(connection.as_ref().ok_or_else(writer::ended)?),
            Side::Read {
                connection, begun, ..
            } => {
                let taken = connection.take().ok_or_else(writer::ended)?;
                let first = !*begun;
                let (taken, result) = tokio::task::spawn_blocking(move || {
                    let result = if first {
                        taken
                            .execute_batch("BEGIN DEFERRED")
                            .map_err(ops::error)
                            .and_then(|()| work(&taken))
                    } else {
                        work(&taken)
                    };
                    (taken, result)
                })
                .await
                .map_err(|e| StoreError::Backend(format!("the storage thread failed: {e}")))?;
                *begun = !taken.is_autocommit();
                *connection = Some(taken);
                result
            }
        }
    }

    fn finish(&mut self, commit: bool) -> BoxFuture<'static, StoreResult<()>> {
        match &mut self.side {
            Side::Write(session) => {
                let session = session.take();
                Box::pin(async move { session.ok_or_else(writer::ended)?.end(commit).await })
            }
            // The writer ends a unit's transaction itself.
            Side::Lent(_) => Box::pin(async {
                Err(StoreError::Backend(
                    "a write unit's transaction is ended by the store".into(),
                ))
            }),
            // A read transaction has nothing to make durable: its end (the same for a commit
            // and a rollback) runs on its own, as a drop does, and the caller goes on.
            Side::Read { connection, .. } => {
                let result = if connection.is_some() {
                    Ok(())
                } else {
                    Err(writer::ended())
                };
                Box::pin(async move { result })
            }
        }
    }
}

impl Drop for SqliteTransaction {
    fn drop(&mut self) {
        // A write session ends with its drop; a read connection goes back to the pool.
        let Side::Read {
            connection, store, ..
        } = &mut self.side
        else {
            return;
        };
        let Some(connection) = connection.take() else {
            return;
        };
        let store = store.clone();
        if connection.is_autocommit() {
            store.give_back(connection);
            return;
        }
        let roll_back = move || {
            if connection.execute_batch("ROLLBACK").is_ok() {
                store.give_back(connection);
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(roll_back);
            }
            Err(_) => roll_back(),
        }
    }
}

impl Transaction for SqliteTransaction {
    fn commit(mut self: Box<Self>) -> BoxFuture<'static, StoreResult<()>> {
        Box::pin(metrics::store_call("sqlite", "commit", self.finish(true)))
    }

    fn rollback(mut self: Box<Self>) -> BoxFuture<'static, StoreResult<()>> {
        Box::pin(metrics::store_call(
            "sqlite",
            "rollback",
            self.finish(false),
        ))
    }
}

impl ResourceOps for SqliteTransaction {
    fn create_resource(&mut self, new: NewResource) -> BoxFuture<'_, StoreResult<StoredResource>> {
        Box::pin(self.call(move |c| ops::create_resource(c, new)))
    }

    fn create_resources(
        &mut self,
        new: Vec<NewResource>,
    ) -> BoxFuture<'_, StoreResult<Vec<StoredResource>>> {
        // One message to the writer for the whole list, not one round trip per resource.
        Box::pin(self.call(move |c| {
            new.into_iter()
                .map(|resource| ops::create_resource(c, resource))
                .collect()
        }))
    }

    fn read_resource<'a>(
        &'a mut self,
        resource_type: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<StoredResource>>> {
        let (resource_type, id) = (resource_type.to_owned(), id.to_owned());
        Box::pin(self.call(move |c| ops::read_resource(c, &resource_type, &id)))
    }

    fn update_resource(
        &mut self,
        new: NewResource,
        expected_version: Option<u64>,
    ) -> BoxFuture<'_, StoreResult<StoredResource>> {
        Box::pin(self.call(move |c| ops::update_resource(c, new, expected_version)))
    }

    fn delete_resource<'a>(
        &'a mut self,
        resource_type: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        let (resource_type, id) = (resource_type.to_owned(), id.to_owned());
        Box::pin(self.call(move |c| ops::delete_resource(c, &resource_type, &id)))
    }

    fn search_resources<'a>(
        &'a mut self,
        query: &'a ResourceQuery,
    ) -> BoxFuture<'a, StoreResult<Vec<StoredResource>>> {
        let query = query.clone();
        Box::pin(self.call(move |c| ops::search_resources(c, &query)))
    }

    fn delete_launch_resources<'a>(
        &'a mut self,
        launch_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<u64>> {
        let launch_id = launch_id.to_owned();
        Box::pin(self.call(move |c| ops::delete_launch_resources(c, &launch_id)))
    }

    fn count_resources(&mut self) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(self.call(|c| ops::count(c, "resources")))
    }

    fn read_resource_version<'a>(
        &'a mut self,
        resource_type: &'a str,
        id: &'a str,
        version: u64,
    ) -> BoxFuture<'a, StoreResult<Option<StoredResource>>> {
        let (resource_type, id) = (resource_type.to_owned(), id.to_owned());
        Box::pin(self.call(move |c| {
            Ok(
                ops::resource_versions(c, &resource_type, &id, Some(version))?
                    .into_iter()
                    .next(),
            )
        }))
    }

    fn resource_history<'a>(
        &'a mut self,
        resource_type: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<StoredResource>>> {
        let (resource_type, id) = (resource_type.to_owned(), id.to_owned());
        Box::pin(self.call(move |c| ops::resource_versions(c, &resource_type, &id, None)))
    }
}

impl LaunchOps for SqliteTransaction {
    fn insert_launch(&mut self, launch: LaunchRecord) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(self.call(move |c| ops::insert_launch(c, &launch)))
    }

    fn get_launch<'a>(
        &'a mut self,
        launch_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<LaunchRecord>>> {
        let launch_id = launch_id.to_owned();
        Box::pin(self.call(move |c| ops::get_launch(c, &launch_id)))
    }

    fn delete_launch<'a>(&'a mut self, launch_id: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        let launch_id = launch_id.to_owned();
        Box::pin(self.call(move |c| ops::delete_launch(c, &launch_id)))
    }

    fn expired_launches(
        &mut self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(self.call(move |c| ops::expired_launches(c, now, limit)))
    }

    fn count_launches(&mut self) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(self.call(|c| ops::count(c, "launches")))
    }

    fn list_launches(&mut self, limit: u64) -> BoxFuture<'_, StoreResult<Vec<LaunchRecord>>> {
        Box::pin(self.call(move |c| ops::list_launches(c, limit)))
    }
}

impl SubscriptionOps for SqliteTransaction {
    fn insert_subscription(
        &mut self,
        subscription: SubscriptionRecord,
    ) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(self.call(move |c| ops::insert_subscription(c, &subscription)))
    }

    fn get_subscription<'a>(
        &'a mut self,
        id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<SubscriptionRecord>>> {
        let id = id.to_owned();
        Box::pin(self.call(move |c| ops::get_subscription(c, &id)))
    }

    fn update_subscription(
        &mut self,
        subscription: SubscriptionRecord,
    ) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(self.call(move |c| ops::update_subscription(c, &subscription)))
    }

    fn delete_subscription<'a>(&'a mut self, id: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        let id = id.to_owned();
        Box::pin(self.call(move |c| ops::delete_subscription(c, &id)))
    }

    fn list_subscriptions<'a>(
        &'a mut self,
        owner_client_id: Option<&'a str>,
    ) -> BoxFuture<'a, StoreResult<Vec<SubscriptionRecord>>> {
        let owner = owner_client_id.map(str::to_owned);
        Box::pin(self.call(move |c| ops::list_subscriptions(c, owner.as_deref())))
    }

    fn has_active_subscription<'a>(
        &'a mut self,
        owner_client_id: &'a str,
        topic: &'a str,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        let (owner, topic) = (owner_client_id.to_owned(), topic.to_owned());
        Box::pin(self.call(move |c| ops::has_active_subscription(c, &owner, &topic)))
    }

    fn allocate_event_number<'a>(
        &'a mut self,
        subscription_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<u64>> {
        let id = subscription_id.to_owned();
        Box::pin(self.call(move |c| ops::allocate_event_number(c, &id)))
    }

    fn append_event(&mut self, event: EventRecord) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(self.call(move |c| ops::append_event(c, &event)))
    }

    fn events<'a>(
        &'a mut self,
        subscription_id: &'a str,
        since: u64,
        until: Option<u64>,
    ) -> BoxFuture<'a, StoreResult<Vec<EventRecord>>> {
        let id = subscription_id.to_owned();
        Box::pin(self.call(move |c| ops::events(c, &id, since, until)))
    }

    fn transition_event<'a>(
        &'a mut self,
        subscription_id: &'a str,
        event_number: u64,
        from: EventState,
        to: EventState,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        let id = subscription_id.to_owned();
        Box::pin(self.call(move |c| ops::transition_event(c, &id, event_number, from, to)))
    }

    fn unsettled_events<'a>(
        &'a mut self,
        subscription_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<EventRecord>>> {
        let id = subscription_id.to_owned();
        Box::pin(self.call(move |c| ops::unsettled_events(c, &id)))
    }

    fn subscriptions_with_unsettled_events(&mut self) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(self.call(ops::subscriptions_with_unsettled_events))
    }
}

impl AuthOps for SqliteTransaction {
    fn insert_authorization_code(
        &mut self,
        code: AuthorizationCodeRecord,
    ) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(self.call(move |c| ops::insert_code(c, &code)))
    }

    fn consume_authorization_code<'a>(
        &'a mut self,
        code_hash: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<AuthorizationCodeRecord>>> {
        let hash = code_hash.to_owned();
        Box::pin(self.call(move |c| ops::consume_code(c, &hash)))
    }

    fn insert_refresh_token(
        &mut self,
        token: RefreshTokenRecord,
    ) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(self.call(move |c| ops::insert_refresh_token(c, &token)))
    }

    fn get_refresh_token<'a>(
        &'a mut self,
        token_hash: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<RefreshTokenRecord>>> {
        let hash = token_hash.to_owned();
        Box::pin(self.call(move |c| ops::get_refresh_token(c, &hash)))
    }

    fn revoke_refresh_token<'a>(
        &'a mut self,
        token_hash: &'a str,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        let hash = token_hash.to_owned();
        Box::pin(
            self.call(move |c| ops::revoke_refresh_tokens(c, "token_hash", &hash).map(|n| n > 0)),
        )
    }

    fn revoke_token_family<'a>(
        &'a mut self,
        family_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<u64>> {
        let family = family_id.to_owned();
        Box::pin(self.call(move |c| ops::revoke_refresh_tokens(c, "family_id", &family)))
    }

    fn revoke_launch_grants<'a>(
        &'a mut self,
        launch_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<u64>> {
        let launch_id = launch_id.to_owned();
        Box::pin(self.call(move |c| ops::revoke_launch_grants(c, &launch_id)))
    }

    fn revoke_access_family<'a>(
        &'a mut self,
        family_id: &'a str,
        expires_at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        let family = family_id.to_owned();
        Box::pin(self.call(move |c| ops::revoke_access_family(c, &family, expires_at)))
    }

    fn access_family_revoked<'a>(
        &'a mut self,
        family_id: &'a str,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        let family = family_id.to_owned();
        Box::pin(self.call(move |c| ops::access_family_revoked(c, &family, now)))
    }

    fn record_jti<'a>(
        &'a mut self,
        issuer: &'a str,
        jti: &'a str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        let (issuer, jti) = (issuer.to_owned(), jti.to_owned());
        Box::pin(self.call(move |c| ops::record_jti(c, &issuer, &jti, expires_at, now)))
    }

    fn purge_expired_auth_records(
        &mut self,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(self.call(move |c| ops::purge_expired_auth_records(c, now)))
    }

    fn put_signing_key(&mut self, key: SigningKeyRecord) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(self.call(move |c| ops::put_signing_key(c, &key)))
    }

    fn signing_keys(&mut self) -> BoxFuture<'_, StoreResult<Vec<SigningKeyRecord>>> {
        Box::pin(self.call(ops::signing_keys))
    }

    fn delete_signing_key<'a>(&'a mut self, kid: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        let kid = kid.to_string();
        Box::pin(self.call(move |c| ops::delete_signing_key(c, &kid)))
    }

    fn put_client(&mut self, client: ClientRecord) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(self.call(move |c| ops::put_client(c, &client)))
    }

    fn get_client<'a>(
        &'a mut self,
        client_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<ClientRecord>>> {
        let client_id = client_id.to_string();
        Box::pin(self.call(move |c| ops::get_client(c, &client_id)))
    }

    fn list_clients(&mut self) -> BoxFuture<'_, StoreResult<Vec<ClientRecord>>> {
        Box::pin(self.call(ops::list_clients))
    }
}

impl AuditOps for SqliteTransaction {
    fn append_audit_event(
        &mut self,
        time: DateTime<Utc>,
        event_json: String,
    ) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(self.call(move |c| ops::append_audit_event(c, time, &event_json)))
    }

    fn audit_events(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u64,
    ) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(self.call(move |c| ops::audit_events(c, from, to, limit)))
    }
}

//! The embedded SQLite store: the default. WAL journal, one connection per open transaction
//! (taken from a small pool), every SQLite call on a blocking thread so the async runtime never
//! waits on disk or on the write lock.

mod cluster;
mod ops;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::{
    AuditOps, AuthOps, AuthorizationCodeRecord, BoxFuture, ClientRecord, EventRecord, EventState,
    LaunchOps, LaunchRecord, NewResource, RefreshTokenRecord, ResourceOps, ResourceQuery,
    SigningKeyRecord, Store, StoreError, StoreResult, StoredResource, SubscriptionOps,
    SubscriptionRecord, Transaction,
};
use crate::metrics;

/// Idle connections kept for reuse; more are opened when needed and closed when returned.
const POOL_SIZE: usize = 8;
/// How long a transaction waits for SQLite's single write lock before reporting the store
/// unavailable (503), unless the host sets another ([`SqliteStore::open_with_busy_timeout`]).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

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
    idle: Mutex<Vec<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub async fn open(path: impl AsRef<Path>) -> StoreResult<SqliteStore> {
        SqliteStore::open_with_busy_timeout(path, BUSY_TIMEOUT).await
    }

    /// [`open`](Self::open), with how long a transaction waits for the write lock before the
    /// store reports itself unavailable (5 s by default).
    pub async fn open_with_busy_timeout(
        path: impl AsRef<Path>,
        busy_timeout: Duration,
    ) -> StoreResult<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let opened = path.clone();
        let connection = blocking(move || {
            let connection = connect(&opened, busy_timeout)?;
            migrate(&connection)?;
            Ok(connection)
        })
        .await?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                busy_timeout,
                idle: Mutex::new(vec![connection]),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn transaction(&self, begin: &'static str) -> StoreResult<Box<dyn Transaction>> {
        let idle = self.inner.take_idle();
        let path = self.inner.path.clone();
        let busy_timeout = self.inner.busy_timeout;
        let connection = blocking(move || {
            let connection = match idle {
                Some(connection) => connection,
                None => connect(&path, busy_timeout)?,
            };
            connection.execute_batch(begin).map_err(ops::error)?;
            Ok(connection)
        })
        .await?;
        Ok(Box::new(SqliteTransaction {
            connection: Some(connection),
            store: self.inner.clone(),
        }))
    }
}

impl Inner {
    fn take_idle(&self) -> Option<Connection> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn give_back(&self, connection: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < POOL_SIZE {
            idle.push(connection);
        }
    }
}

impl Store for SqliteStore {
    fn begin(&self) -> BoxFuture<'_, StoreResult<Box<dyn Transaction>>> {
        // IMMEDIATE takes the write lock now, so a transaction never fails half-way on a lock
        // upgrade.
        Box::pin(metrics::store_call(
            "sqlite",
            "begin",
            self.transaction("BEGIN IMMEDIATE"),
        ))
    }

    fn begin_read(&self) -> BoxFuture<'_, StoreResult<Box<dyn Transaction>>> {
        // DEFERRED: WAL readers run beside the writer on a consistent snapshot.
        Box::pin(metrics::store_call(
            "sqlite",
            "begin_read",
            self.transaction("BEGIN DEFERRED"),
        ))
    }
}

fn connect(path: &Path, busy_timeout: Duration) -> StoreResult<Connection> {
    let connection = Connection::open(path).map_err(ops::error)?;
    connection.busy_timeout(busy_timeout).map_err(ops::error)?;
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        )
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

/// A transaction on its own connection. Dropped without commit, it rolls back; if it is dropped
/// while a statement runs, the connection closes with the transaction open, which SQLite also
/// rolls back.
struct SqliteTransaction {
    connection: Option<Connection>,
    store: Arc<Inner>,
}

impl SqliteTransaction {
    async fn call<R: Send + 'static>(
        &mut self,
        work: impl FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    ) -> StoreResult<R> {
        let connection = self
            .connection
            .take()
            .ok_or_else(|| StoreError::Backend("the transaction has ended".into()))?;
        let (connection, result) = tokio::task::spawn_blocking(move || {
            let result = work(&connection);
            (connection, result)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("the storage thread failed: {e}")))?;
        self.connection = Some(connection);
        result
    }

    fn finish(&mut self, statement: &'static str) -> BoxFuture<'static, StoreResult<()>> {
        let connection = self.connection.take();
        let store = self.store.clone();
        Box::pin(async move {
            let Some(connection) = connection else {
                return Err(StoreError::Backend("the transaction has ended".into()));
            };
            let (connection, result) = tokio::task::spawn_blocking(move || {
                let result = connection.execute_batch(statement).map_err(ops::error);
                (connection, result)
            })
            .await
            .map_err(|e| StoreError::Backend(format!("the storage thread failed: {e}")))?;
            if result.is_ok() {
                store.give_back(connection);
            }
            result
        })
    }
}

impl Drop for SqliteTransaction {
    fn drop(&mut self) {
        let Some(connection) = self.connection.take() else {
            return;
        };
        let store = self.store.clone();
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
        Box::pin(metrics::store_call(
            "sqlite",
            "commit",
            self.finish("COMMIT"),
        ))
    }

    fn rollback(mut self: Box<Self>) -> BoxFuture<'static, StoreResult<()>> {
        Box::pin(metrics::store_call(
            "sqlite",
            "rollback",
            self.finish("ROLLBACK"),
        ))
    }
}

impl ResourceOps for SqliteTransaction {
    fn create_resource(&mut self, new: NewResource) -> BoxFuture<'_, StoreResult<StoredResource>> {
        Box::pin(self.call(move |c| ops::create_resource(c, new)))
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

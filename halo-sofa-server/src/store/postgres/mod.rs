//! The PostgreSQL store (REQ CLU-01): the one several SoFA instances share behind a load
//! balancer. A pool of connections (deadpool), one per open transaction; statements prepared
//! once per connection; TLS through rustls when the URL asks for it (`sslmode=require`).
//!
//! Where the SQLite store relies on its single writer, this one takes row locks: an event
//! number is an `UPDATE ... RETURNING` on the subscription's row; a code is consumed and a
//! resource updated under `SELECT ... FOR UPDATE`; reading a launch in a read-write transaction
//! takes `FOR SHARE`, which a `$clear-context` (deleting the row) waits for, the write path's
//! clear fence (REQ SYNC-05). Inserts use `ON CONFLICT DO NOTHING`, so a duplicate is an
//! ordinary answer and never aborts the caller's transaction.

mod cluster;
mod schema;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use halo_model::fhir::RawResource;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, config::SslMode};

use super::meta::{from_json, int, references_of, stamp_meta, to_json, uint};
use super::{
    AuditOps, AuthOps, AuthorizationCodeRecord, BoxFuture, ClientRecord, EventRecord, EventState,
    LaunchOps, LaunchRecord, NewResource, RefreshTokenRecord, ResourceOps, ResourceQuery,
    SigningKeyRecord, Store, StoreError, StoreResult, StoredResource, SubscriptionOps,
    SubscriptionRecord, SubscriptionStatus, Transaction,
};
use crate::metrics;

/// How a [`PostgresStore`] connects.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Connections in the pool: the most transactions open at once in this process.
    pub max_connections: usize,
    /// How long a transaction waits for a free connection before the store reports itself
    /// unavailable (503), and the longest a statement may wait for a lock.
    pub wait_timeout: Duration,
    /// The schema to keep the tables in (created if missing); the connection's default when
    /// `None`. Lets several SoFAs, or tests, share one database.
    pub schema: Option<String>,
    /// A PEM file of certificate authorities trusted for the server's certificate, beside the
    /// system's, when the URL asks for TLS.
    pub ca_file: Option<PathBuf>,
}

impl Default for PostgresOptions {
    fn default() -> PostgresOptions {
        PostgresOptions {
            max_connections: 16,
            wait_timeout: Duration::from_secs(5),
            schema: None,
            ca_file: None,
        }
    }
}

/// The PostgreSQL [`Store`] (tokio-postgres, pooled with deadpool).
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    options: Arc<PostgresOptions>,
    listener: Arc<cluster::Listener>,
}

impl std::fmt::Debug for PostgresStore {
    // The URL may carry a password: only the pool's shape is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("max_connections", &self.options.max_connections)
            .field("schema", &self.options.schema)
            .finish_non_exhaustive()
    }
}

/// Whether `name` can be a schema name without quoting (letters, digits, `_`, not leading
/// with a digit, at most 63 bytes).
fn plain_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

fn tls(options: &PostgresOptions) -> StoreResult<tokio_postgres_rustls::MakeRustlsConnect> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in rustls_native_certs::load_native_certs().certs {
        // A system certificate rustls cannot use is skipped, as browsers do.
        let _ = roots.add(certificate);
    }
    if let Some(file) = &options.ca_file {
        use rustls_pki_types::pem::PemObject;
        let certificates = rustls_pki_types::CertificateDer::pem_file_iter(file)
            .map_err(|e| StoreError::Backend(format!("{}: {e}", file.display())))?;
        for certificate in certificates {
            let certificate =
                certificate.map_err(|e| StoreError::Backend(format!("{}: {e}", file.display())))?;
            roots
                .add(certificate)
                .map_err(|e| StoreError::Backend(format!("{}: {e}", file.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Backend(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`, libpq's
    /// keys such as `sslmode=require` as query parameters) and applies the migrations it
    /// lacks.
    pub async fn connect(url: &str) -> StoreResult<PostgresStore> {
        PostgresStore::connect_with(url, PostgresOptions::default()).await
    }

    /// [`connect`](Self::connect) with options.
    pub async fn connect_with(url: &str, options: PostgresOptions) -> StoreResult<PostgresStore> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Backend(format!("the database URL is invalid: {e}")))?;
        let lock_timeout = options.wait_timeout.as_millis();
        let mut settings = format!("-c lock_timeout={lock_timeout}");
        if let Some(schema) = &options.schema {
            if !plain_identifier(schema) {
                return Err(StoreError::Backend(format!(
                    "`{schema}` is not a plain schema name (letters, digits and _)"
                )));
            }
            settings.push_str(&format!(" -c search_path={schema}"));
        }
        config.options(&settings);
        if config.get_ssl_mode() == SslMode::Prefer && !url.contains("sslmode=") {
            // libpq's default tries TLS and falls back to clear text: a server that offers
            // TLS with a certificate nobody trusts would then fail every connection. Clear
            // text unless asked for; production URLs say `sslmode=require`.
            config.ssl_mode(SslMode::Disable);
        }
        let tls = tls(&options)?;
        let listener = Arc::new(cluster::Listener::new(
            config.clone(),
            tls.clone(),
            options.schema.as_deref(),
        ));
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(1))
            .wait_timeout(Some(options.wait_timeout))
            .create_timeout(Some(options.wait_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let store = PostgresStore {
            pool,
            options: Arc::new(options),
            listener,
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> StoreResult<Object> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    /// Applies the migrations the database lacks (REQ CLU-05), under a session advisory lock
    /// so instances starting together take turns (the lock goes with the session if the
    /// process dies).
    async fn migrate(&self) -> StoreResult<()> {
        let client = self.client().await?;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&schema::MIGRATION_LOCK])
            .await
            .map_err(error)?;
        let result = self.migrate_locked(&client).await;
        if client
            .execute("SELECT pg_advisory_unlock($1)", &[&schema::MIGRATION_LOCK])
            .await
            .is_err()
        {
            // The lock must not outlive this call: the connection goes, and the lock with it.
            drop(Object::take(client));
        }
        result
    }

    async fn migrate_locked(&self, client: &Object) -> StoreResult<()> {
        if let Some(schema) = &self.options.schema {
            client
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .await
                .map_err(error)?;
        }
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS halo_schema_migrations (
                     version BIGINT PRIMARY KEY,
                     applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            )
            .await
            .map_err(error)?;
        let applied: Vec<i64> = client
            .query("SELECT version FROM halo_schema_migrations", &[])
            .await
            .map_err(error)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let known = schema::MIGRATIONS.last().map_or(0, |(v, _)| *v);
        if let Some(newest) = applied.iter().max()
            && *newest > known
        {
            return Err(StoreError::Corrupt(format!(
                "the database has schema version {newest}, newer than this server's {known}"
            )));
        }
        for (version, sql) in schema::MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            // Each migration with its record, all or nothing.
            let migration = format!(
                "BEGIN; {sql}; INSERT INTO halo_schema_migrations (version) VALUES ({version}); \
                 COMMIT;"
            );
            if let Err(e) = client.batch_execute(&migration).await {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(error(e));
            }
        }
        Ok(())
    }

    /// The schema versions applied, oldest first.
    pub async fn migrations(&self) -> StoreResult<Vec<i64>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT version FROM halo_schema_migrations ORDER BY version",
                &[],
            )
            .await
            .map_err(error)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn transaction(&self, read_only: bool) -> StoreResult<Box<dyn Transaction>> {
        let client = self.client().await?;
        client
            .batch_execute(if read_only {
                "BEGIN READ ONLY"
            } else {
                "BEGIN"
            })
            .await
            .map_err(error)?;
        Ok(Box::new(PgTransaction {
            client: Some(client),
            read_only,
        }))
    }
}

impl Store for PostgresStore {
    fn begin(&self) -> BoxFuture<'_, StoreResult<Box<dyn Transaction>>> {
        Box::pin(metrics::store_call(
            "postgres",
            "begin",
            self.transaction(false),
        ))
    }

    fn begin_read(&self) -> BoxFuture<'_, StoreResult<Box<dyn Transaction>>> {
        Box::pin(metrics::store_call(
            "postgres",
            "begin_read",
            self.transaction(true),
        ))
    }

    fn shared(&self) -> bool {
        true
    }

    fn wake<'a>(&'a self, payload: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(cluster::notify(self, payload))
    }

    fn wakeups(&self) -> Option<tokio::sync::broadcast::Receiver<super::Wakeup>> {
        Some(self.listener.subscribe())
    }
}

/// Maps a driver error to the backend-neutral cases: what a retry may cure is `Unavailable`.
fn error(e: tokio_postgres::Error) -> StoreError {
    let retryable = [
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::QUERY_CANCELED,
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::TOO_MANY_CONNECTIONS,
    ];
    // The server's own message says what went wrong; the driver's Display only "db error".
    let message = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    };
    match e.code() {
        Some(code) if retryable.contains(code) => StoreError::Unavailable(message),
        None if e.is_closed() => StoreError::Unavailable(message),
        _ => StoreError::Backend(message),
    }
}

/// A transaction on its own pooled connection. Dropped without commit, it is rolled back on
/// the runtime before the connection goes back to the pool (or the connection is closed).
struct PgTransaction {
    client: Option<Object>,
    read_only: bool,
}

impl Drop for PgTransaction {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if client.batch_execute("ROLLBACK").await.is_err() {
                        drop(Object::take(client));
                    }
                });
            }
            Err(_) => drop(Object::take(client)),
        }
    }
}

impl PgTransaction {
    fn client(&self) -> StoreResult<&Object> {
        self.client
            .as_ref()
            .ok_or_else(|| StoreError::Backend("the transaction has ended".into()))
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<u64> {
        let client = self.client()?;
        let statement = client.prepare_cached(sql).await.map_err(error)?;
        client.execute(&statement, params).await.map_err(error)
    }

    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Vec<Row>> {
        let client = self.client()?;
        let statement = client.prepare_cached(sql).await.map_err(error)?;
        client.query(&statement, params).await.map_err(error)
    }

    async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Option<Row>> {
        let client = self.client()?;
        let statement = client.prepare_cached(sql).await.map_err(error)?;
        client.query_opt(&statement, params).await.map_err(error)
    }

    fn finish(&mut self, statement: &'static str) -> BoxFuture<'static, StoreResult<()>> {
        let client = self.client.take();
        Box::pin(async move {
            let client =
                client.ok_or_else(|| StoreError::Backend("the transaction has ended".into()))?;
            match client.batch_execute(statement).await {
                Ok(()) => Ok(()),
                Err(e) => {
                    // Whatever state the connection is in, it does not go back to the pool.
                    drop(Object::take(client));
                    Err(error(e))
                }
            }
        })
    }

    /// The current and past versions of a live resource, newest first; one or all.
    async fn resource_versions(
        &self,
        resource_type: &str,
        id: &str,
        version: Option<i64>,
    ) -> StoreResult<Vec<StoredResource>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {RESOURCE_COLUMNS} FROM resources
                       WHERE resource_type = $1 AND id = $2 AND ($3::BIGINT IS NULL OR version = $3)
                     UNION ALL
                     SELECT {RESOURCE_COLUMNS} FROM resource_versions v
                       WHERE v.resource_type = $1 AND v.id = $2
                       AND ($3::BIGINT IS NULL OR v.version = $3)
                       AND EXISTS (SELECT 1 FROM resources r
                                   WHERE r.resource_type = $1 AND r.id = $2)
                     ORDER BY version DESC"
                ),
                &[&resource_type, &id, &version],
            )
            .await?;
        rows.iter().map(stored).collect()
    }

    async fn write_resource(
        &self,
        new: NewResource,
        version: u64,
        launch_id: Option<String>,
        insert: bool,
    ) -> StoreResult<StoredResource> {
        let mut resource = new.resource;
        let id = resource
            .id()
            .ok_or_else(|| StoreError::Backend("a resource to store needs an id".into()))?
            .to_string();
        let resource_type = resource.resource_type().to_string();
        stamp_meta(&mut resource, version, new.last_updated);
        let json = resource.to_vec();
        let v = int(version)?;
        // RFC 3339 text keeps the instant exactly (a timestamp column keeps microseconds).
        let last_updated = new.last_updated.to_rfc3339();
        if insert {
            let inserted = self
                .execute(
                    "INSERT INTO resources (resource_type, id, version, last_updated, launch_id, json)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    &[
                        &resource_type,
                        &id,
                        &v,
                        &last_updated,
                        &launch_id,
                        &json,
                    ],
                )
                .await?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists(format!("{resource_type}/{id}")));
            }
        } else {
            self.execute(
                "UPDATE resources SET version = $3, last_updated = $4, json = $5
                 WHERE resource_type = $1 AND id = $2",
                &[&resource_type, &id, &v, &last_updated, &json],
            )
            .await?;
            self.execute(
                "DELETE FROM resource_refs WHERE resource_type = $1 AND id = $2",
                &[&resource_type, &id],
            )
            .await?;
        }
        for reference in references_of(&resource) {
            self.execute(
                "INSERT INTO resource_refs (resource_type, id, reference) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&resource_type, &id, &reference],
            )
            .await?;
        }
        Ok(StoredResource {
            resource,
            version,
            last_updated: new.last_updated,
            launch_id,
        })
    }
}

fn stored(row: &Row) -> StoreResult<StoredResource> {
    let json: Vec<u8> = row.get("json");
    let value = serde_json::from_slice(&json).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let resource =
        RawResource::from_value(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let last_updated: String = row.get("last_updated");
    let last_updated = DateTime::parse_from_rfc3339(&last_updated)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?
        .with_timezone(&Utc);
    Ok(StoredResource {
        resource,
        version: uint(row.get("version")),
        last_updated,
        launch_id: row.get("launch_id"),
    })
}

/// The indexed columns are authoritative: the event counter changes without the JSON.
fn subscription(row: &Row) -> StoreResult<SubscriptionRecord> {
    let mut s: SubscriptionRecord = from_json(row.get("record"))?;
    let status: String = row.get("status");
    s.status = serde_json::from_value(serde_json::Value::String(status))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    s.events_since_start = uint(row.get("events_since_start"));
    Ok(s)
}

/// The state column is the truth; the JSON keeps the state the event was logged with.
fn event(row: &Row) -> StoreResult<EventRecord> {
    let mut event: EventRecord = from_json(row.get("record"))?;
    let state: String = row.get("state");
    event.state = EventState::from_code(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown event state `{state}`")))?;
    Ok(event)
}

impl Transaction for PgTransaction {
    fn commit(mut self: Box<Self>) -> BoxFuture<'static, StoreResult<()>> {
        Box::pin(metrics::store_call(
            "postgres",
            "commit",
            self.finish("COMMIT"),
        ))
    }

    fn rollback(mut self: Box<Self>) -> BoxFuture<'static, StoreResult<()>> {
        Box::pin(metrics::store_call(
            "postgres",
            "rollback",
            self.finish("ROLLBACK"),
        ))
    }
}

const RESOURCE_COLUMNS: &str = "version, last_updated, launch_id, json";

impl ResourceOps for PgTransaction {
    fn create_resource(&mut self, new: NewResource) -> BoxFuture<'_, StoreResult<StoredResource>> {
        Box::pin(async move {
            let launch_id = new.launch_id.clone();
            self.write_resource(new, 1, launch_id, true).await
        })
    }

    fn read_resource<'a>(
        &'a mut self,
        resource_type: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<StoredResource>>> {
        Box::pin(async move {
            self.query_opt(
                "SELECT version, last_updated, launch_id, json FROM resources
                 WHERE resource_type = $1 AND id = $2",
                &[&resource_type, &id],
            )
            .await?
            .as_ref()
            .map(stored)
            .transpose()
        })
    }

    fn update_resource(
        &mut self,
        new: NewResource,
        expected_version: Option<u64>,
    ) -> BoxFuture<'_, StoreResult<StoredResource>> {
        Box::pin(async move {
            let resource_type = new.resource.resource_type().to_string();
            let id = new.resource.id().unwrap_or_default().to_string();
            let current = self
                .query_opt(
                    "SELECT version, launch_id FROM resources
                     WHERE resource_type = $1 AND id = $2 FOR UPDATE",
                    &[&resource_type, &id],
                )
                .await?;
            let Some(current) = current else {
                return Err(StoreError::NotFound(format!("{resource_type}/{id}")));
            };
            let version = uint(current.get("version"));
            let launch_id: Option<String> = current.get("launch_id");
            if let Some(expected) = expected_version
                && expected != version
            {
                return Err(StoreError::VersionConflict {
                    what: format!("{resource_type}/{id}"),
                    expected,
                    found: version,
                });
            }
            // The version being replaced becomes a past version (vread, `_history`).
            self.execute(
                "INSERT INTO resource_versions
                   (resource_type, id, version, last_updated, launch_id, json)
                 SELECT resource_type, id, version, last_updated, launch_id, json FROM resources
                 WHERE resource_type = $1 AND id = $2",
                &[&resource_type, &id],
            )
            .await?;
            self.write_resource(new, version + 1, launch_id, false)
                .await
        })
    }

    fn delete_resource<'a>(
        &'a mut self,
        resource_type: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            for table in ["resource_refs", "resource_versions"] {
                self.execute(
                    &format!("DELETE FROM {table} WHERE resource_type = $1 AND id = $2"),
                    &[&resource_type, &id],
                )
                .await?;
            }
            let n = self
                .execute(
                    "DELETE FROM resources WHERE resource_type = $1 AND id = $2",
                    &[&resource_type, &id],
                )
                .await?;
            Ok(n > 0)
        })
    }

    fn search_resources<'a>(
        &'a mut self,
        query: &'a ResourceQuery,
    ) -> BoxFuture<'a, StoreResult<Vec<StoredResource>>> {
        Box::pin(async move {
            let mut sql = format!("SELECT {RESOURCE_COLUMNS} FROM resources r WHERE TRUE");
            let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
            let mut arg = |sql: &mut String, clause: &str, value: Box<dyn ToSql + Sync + Send>| {
                args.push(value);
                sql.push_str(&clause.replace('?', &format!("${}", args.len())));
            };
            if let Some(t) = &query.resource_type {
                arg(&mut sql, " AND r.resource_type = ?", Box::new(t.clone()));
            }
            if let Some(l) = &query.launch_id {
                arg(&mut sql, " AND r.launch_id = ?", Box::new(l.clone()));
            }
            if !query.ids.is_empty() {
                arg(&mut sql, " AND r.id = ANY(?)", Box::new(query.ids.clone()));
            }
            if let Some(target) = &query.references {
                arg(
                    &mut sql,
                    " AND EXISTS (SELECT 1 FROM resource_refs x WHERE x.resource_type =
                       r.resource_type AND x.id = r.id AND x.reference = ?)",
                    Box::new(target.clone()),
                );
            }
            sql.push_str(" ORDER BY r.resource_type, r.id");
            if query.limit > 0 {
                arg(&mut sql, " LIMIT ?", Box::new(int(query.limit)?));
            }
            arg(&mut sql, " OFFSET ?", Box::new(int(query.offset)?));
            let params: Vec<&(dyn ToSql + Sync)> = args
                .iter()
                .map(|a| a.as_ref() as &(dyn ToSql + Sync))
                .collect();
            let rows = self.query(&sql, &params).await?;
            rows.iter().map(stored).collect()
        })
    }

    fn delete_launch_resources<'a>(
        &'a mut self,
        launch_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<u64>> {
        Box::pin(async move {
            self.execute(
                "DELETE FROM resource_refs x USING resources r WHERE r.launch_id = $1
                 AND x.resource_type = r.resource_type AND x.id = r.id",
                &[&launch_id],
            )
            .await?;
            self.execute(
                "DELETE FROM resource_versions WHERE launch_id = $1",
                &[&launch_id],
            )
            .await?;
            self.execute("DELETE FROM resources WHERE launch_id = $1", &[&launch_id])
                .await
        })
    }

    fn count_resources(&mut self) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(async move {
            let row = self.query("SELECT COUNT(*) FROM resources", &[]).await?;
            Ok(row.first().map_or(0, |r| uint(r.get(0))))
        })
    }

    fn read_resource_version<'a>(
        &'a mut self,
        resource_type: &'a str,
        id: &'a str,
        version: u64,
    ) -> BoxFuture<'a, StoreResult<Option<StoredResource>>> {
        Box::pin(async move {
            Ok(self
                .resource_versions(resource_type, id, Some(int(version)?))
                .await?
                .into_iter()
                .next())
        })
    }

    fn resource_history<'a>(
        &'a mut self,
        resource_type: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<StoredResource>>> {
        Box::pin(async move { self.resource_versions(resource_type, id, None).await })
    }
}

impl LaunchOps for PgTransaction {
    fn insert_launch(&mut self, launch: LaunchRecord) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let inserted = self
                .execute(
                    "INSERT INTO launches (launch_id, client_id, expires_at, record)
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    &[
                        &launch.launch_id,
                        &launch.client_id,
                        &launch.expires_at,
                        &to_json(&launch)?,
                    ],
                )
                .await?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists("launch".into()));
            }
            Ok(())
        })
    }

    fn get_launch<'a>(
        &'a mut self,
        launch_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<LaunchRecord>>> {
        Box::pin(async move {
            // In a read-write transaction the row is held against a concurrent delete until
            // this transaction ends: the clear fence (REQ SYNC-05).
            let sql = if self.read_only {
                "SELECT record FROM launches WHERE launch_id = $1"
            } else {
                "SELECT record FROM launches WHERE launch_id = $1 FOR SHARE"
            };
            let row = self.query_opt(sql, &[&launch_id]).await?;
            row.map(|r| from_json(r.get("record"))).transpose()
        })
    }

    fn delete_launch<'a>(&'a mut self, launch_id: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let n = self
                .execute("DELETE FROM launches WHERE launch_id = $1", &[&launch_id])
                .await?;
            Ok(n > 0)
        })
    }

    fn expired_launches(
        &mut self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT launch_id FROM launches WHERE expires_at <= $1
                     ORDER BY expires_at LIMIT $2",
                    &[&now, &int(limit)?],
                )
                .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn count_launches(&mut self) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(async move {
            let row = self.query("SELECT COUNT(*) FROM launches", &[]).await?;
            Ok(row.first().map_or(0, |r| uint(r.get(0))))
        })
    }

    fn list_launches(&mut self, limit: u64) -> BoxFuture<'_, StoreResult<Vec<LaunchRecord>>> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT record FROM launches ORDER BY launch_id LIMIT $1",
                    &[&int(limit)?],
                )
                .await?;
            rows.iter().map(|r| from_json(r.get("record"))).collect()
        })
    }
}

const SUBSCRIPTION_COLUMNS: &str = "status, events_since_start, record";

impl SubscriptionOps for PgTransaction {
    fn insert_subscription(
        &mut self,
        subscription: SubscriptionRecord,
    ) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let inserted = self
                .execute(
                    "INSERT INTO subscriptions (id, owner, topic, status, events_since_start, record)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    &[
                        &subscription.id,
                        &subscription.owner_client_id,
                        &subscription.topic,
                        &subscription.status.as_str(),
                        &int(subscription.events_since_start)?,
                        &to_json(&subscription)?,
                    ],
                )
                .await?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists(format!(
                    "Subscription/{}",
                    subscription.id
                )));
            }
            Ok(())
        })
    }

    fn get_subscription<'a>(
        &'a mut self,
        id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<SubscriptionRecord>>> {
        Box::pin(async move {
            // In a read-write transaction the row is held until it ends: a read-then-write of
            // the subscription (a status change, a heartbeat's claim) is one at a time across
            // instances.
            let lock = if self.read_only { "" } else { " FOR UPDATE" };
            let sql =
                format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE id = $1{lock}");
            self.query_opt(&sql, &[&id])
                .await?
                .as_ref()
                .map(subscription)
                .transpose()
        })
    }

    fn update_subscription(
        &mut self,
        subscription: SubscriptionRecord,
    ) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let n = self
                .execute(
                    "UPDATE subscriptions SET owner = $2, topic = $3, status = $4, record = $5
                     WHERE id = $1",
                    &[
                        &subscription.id,
                        &subscription.owner_client_id,
                        &subscription.topic,
                        &subscription.status.as_str(),
                        &to_json(&subscription)?,
                    ],
                )
                .await?;
            if n == 0 {
                return Err(StoreError::NotFound(format!(
                    "Subscription/{}",
                    subscription.id
                )));
            }
            Ok(())
        })
    }

    fn delete_subscription<'a>(&'a mut self, id: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            self.execute("DELETE FROM events WHERE subscription_id = $1", &[&id])
                .await?;
            let n = self
                .execute("DELETE FROM subscriptions WHERE id = $1", &[&id])
                .await?;
            Ok(n > 0)
        })
    }

    fn list_subscriptions<'a>(
        &'a mut self,
        owner_client_id: Option<&'a str>,
    ) -> BoxFuture<'a, StoreResult<Vec<SubscriptionRecord>>> {
        Box::pin(async move {
            let sql = format!(
                "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions
                 WHERE $1::TEXT IS NULL OR owner = $1 ORDER BY id"
            );
            let rows = self.query(&sql, &[&owner_client_id]).await?;
            rows.iter().map(subscription).collect()
        })
    }

    fn has_active_subscription<'a>(
        &'a mut self,
        owner_client_id: &'a str,
        topic: &'a str,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let found = self
                .query_opt(
                    "SELECT 1 FROM subscriptions WHERE owner = $1 AND topic = $2 AND status = $3
                     LIMIT 1",
                    &[
                        &owner_client_id,
                        &topic,
                        &SubscriptionStatus::Active.as_str(),
                    ],
                )
                .await?;
            Ok(found.is_some())
        })
    }

    fn allocate_event_number<'a>(
        &'a mut self,
        subscription_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<u64>> {
        Box::pin(async move {
            // The row lock this update takes serialises allocations for the subscription
            // across every instance until the transaction ends.
            let row = self
                .query_opt(
                    "UPDATE subscriptions SET events_since_start = events_since_start + 1
                     WHERE id = $1 RETURNING events_since_start",
                    &[&subscription_id],
                )
                .await?;
            row.map(|r| uint(r.get(0)))
                .ok_or_else(|| StoreError::NotFound(format!("Subscription/{subscription_id}")))
        })
    }

    fn append_event(&mut self, event: EventRecord) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let inserted = self
                .execute(
                    "INSERT INTO events (subscription_id, event_number, state, record)
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    &[
                        &event.subscription_id,
                        &int(event.event_number)?,
                        &event.state.as_str(),
                        &to_json(&event)?,
                    ],
                )
                .await?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists(format!(
                    "event {} of Subscription/{}",
                    event.event_number, event.subscription_id
                )));
            }
            Ok(())
        })
    }

    fn events<'a>(
        &'a mut self,
        subscription_id: &'a str,
        since: u64,
        until: Option<u64>,
    ) -> BoxFuture<'a, StoreResult<Vec<EventRecord>>> {
        Box::pin(async move {
            let until = until.map(int).transpose()?.unwrap_or(i64::MAX);
            let rows = self
                .query(
                    "SELECT state, record FROM events WHERE subscription_id = $1
                     AND event_number >= $2 AND event_number <= $3 ORDER BY event_number",
                    &[&subscription_id, &int(since)?, &until],
                )
                .await?;
            rows.iter().map(event).collect()
        })
    }

    fn transition_event<'a>(
        &'a mut self,
        subscription_id: &'a str,
        event_number: u64,
        from: EventState,
        to: EventState,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            // A concurrent move of the same event waits for this row and then finds it no
            // longer in `from`.
            let n = self
                .execute(
                    "UPDATE events SET state = $4 WHERE subscription_id = $1
                     AND event_number = $2 AND state = $3",
                    &[
                        &subscription_id,
                        &int(event_number)?,
                        &from.as_str(),
                        &to.as_str(),
                    ],
                )
                .await?;
            Ok(n == 1)
        })
    }

    fn unsettled_events<'a>(
        &'a mut self,
        subscription_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<EventRecord>>> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT state, record FROM events WHERE subscription_id = $1
                     AND state IN ('pending', 'outbox') ORDER BY event_number",
                    &[&subscription_id],
                )
                .await?;
            rows.iter().map(event).collect()
        })
    }

    fn subscriptions_with_unsettled_events(&mut self) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT DISTINCT subscription_id FROM events
                     WHERE state IN ('pending', 'outbox') ORDER BY subscription_id",
                    &[],
                )
                .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }
}

impl AuthOps for PgTransaction {
    fn insert_authorization_code(
        &mut self,
        code: AuthorizationCodeRecord,
    ) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let inserted = self
                .execute(
                    "INSERT INTO authorization_codes (code_hash, launch_id, consumed, record)
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    &[
                        &code.code_hash,
                        &code.launch_id,
                        &code.consumed,
                        &to_json(&code)?,
                    ],
                )
                .await?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists("authorization code".into()));
            }
            Ok(())
        })
    }

    fn consume_authorization_code<'a>(
        &'a mut self,
        code_hash: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<AuthorizationCodeRecord>>> {
        Box::pin(async move {
            // FOR UPDATE: of two exchanges racing with one code, the second waits and then
            // sees it consumed (a replay).
            let row = self
                .query_opt(
                    "SELECT consumed, record FROM authorization_codes WHERE code_hash = $1
                     FOR UPDATE",
                    &[&code_hash],
                )
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let mut code: AuthorizationCodeRecord = from_json(row.get("record"))?;
            code.consumed = row.get("consumed");
            self.execute(
                "UPDATE authorization_codes SET consumed = TRUE WHERE code_hash = $1",
                &[&code_hash],
            )
            .await?;
            Ok(Some(code))
        })
    }

    fn insert_refresh_token(
        &mut self,
        token: RefreshTokenRecord,
    ) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let inserted = self
                .execute(
                    "INSERT INTO refresh_tokens (token_hash, family_id, launch_id, revoked, record)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    &[
                        &token.token_hash,
                        &token.family_id,
                        &token.launch_id,
                        &token.revoked,
                        &to_json(&token)?,
                    ],
                )
                .await?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists("refresh token".into()));
            }
            Ok(())
        })
    }

    fn get_refresh_token<'a>(
        &'a mut self,
        token_hash: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<RefreshTokenRecord>>> {
        Box::pin(async move {
            let sql = if self.read_only {
                "SELECT revoked, record FROM refresh_tokens WHERE token_hash = $1"
            } else {
                // A refresh reads, then rotates: two racing refreshes with one token are
                // serialised here, and the second sees it revoked (a reuse).
                "SELECT revoked, record FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE"
            };
            let row = self.query_opt(sql, &[&token_hash]).await?;
            row.map(|r| {
                let mut token: RefreshTokenRecord = from_json(r.get("record"))?;
                token.revoked = r.get("revoked");
                Ok(token)
            })
            .transpose()
        })
    }

    fn revoke_refresh_token<'a>(
        &'a mut self,
        token_hash: &'a str,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let n = self
                .execute(
                    "UPDATE refresh_tokens SET revoked = TRUE WHERE token_hash = $1 AND NOT revoked",
                    &[&token_hash],
                )
                .await?;
            Ok(n > 0)
        })
    }

    fn revoke_token_family<'a>(
        &'a mut self,
        family_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<u64>> {
        Box::pin(async move {
            self.execute(
                "UPDATE refresh_tokens SET revoked = TRUE WHERE family_id = $1 AND NOT revoked",
                &[&family_id],
            )
            .await
        })
    }

    fn revoke_launch_grants<'a>(
        &'a mut self,
        launch_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<u64>> {
        Box::pin(async move {
            let codes = self
                .execute(
                    "DELETE FROM authorization_codes WHERE launch_id = $1",
                    &[&launch_id],
                )
                .await?;
            let tokens = self
                .execute(
                    "UPDATE refresh_tokens SET revoked = TRUE WHERE launch_id = $1 AND NOT revoked",
                    &[&launch_id],
                )
                .await?;
            Ok(codes + tokens)
        })
    }

    fn revoke_access_family<'a>(
        &'a mut self,
        family_id: &'a str,
        expires_at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            self.execute(
                "INSERT INTO revoked_families (family_id, expires_at) VALUES ($1, $2)
                 ON CONFLICT (family_id) DO UPDATE
                 SET expires_at = GREATEST(revoked_families.expires_at, EXCLUDED.expires_at)",
                &[&family_id, &expires_at],
            )
            .await?;
            Ok(())
        })
    }

    fn access_family_revoked<'a>(
        &'a mut self,
        family_id: &'a str,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let row = self
                .query_opt(
                    "SELECT 1 FROM revoked_families WHERE family_id = $1 AND expires_at > $2",
                    &[&family_id, &now],
                )
                .await?;
            Ok(row.is_some())
        })
    }

    fn record_jti<'a>(
        &'a mut self,
        issuer: &'a str,
        jti: &'a str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            // One statement: a live record leaves the row as it is, and of two instances
            // recording the same id the primary key lets one in.
            let changed = self
                .execute(
                    "INSERT INTO used_jtis (issuer, jti, expires_at) VALUES ($1, $2, $3)
                     ON CONFLICT (issuer, jti) DO UPDATE SET expires_at = EXCLUDED.expires_at
                     WHERE used_jtis.expires_at <= $4",
                    &[&issuer, &jti, &expires_at, &now],
                )
                .await?;
            Ok(changed == 1)
        })
    }

    fn purge_expired_auth_records(
        &mut self,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(async move {
            let families = self
                .execute(
                    "DELETE FROM revoked_families WHERE expires_at <= $1",
                    &[&now],
                )
                .await?;
            let jtis = self
                .execute("DELETE FROM used_jtis WHERE expires_at <= $1", &[&now])
                .await?;
            Ok(families + jtis)
        })
    }

    fn put_signing_key(&mut self, key: SigningKeyRecord) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            self.execute(
                "INSERT INTO signing_keys (kid, created_at, record) VALUES ($1, $2, $3)
                 ON CONFLICT (kid) DO UPDATE SET created_at = EXCLUDED.created_at,
                 record = EXCLUDED.record",
                &[&key.kid, &key.created_at, &to_json(&key)?],
            )
            .await?;
            Ok(())
        })
    }

    fn signing_keys(&mut self) -> BoxFuture<'_, StoreResult<Vec<SigningKeyRecord>>> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT record FROM signing_keys ORDER BY created_at, kid",
                    &[],
                )
                .await?;
            rows.iter().map(|r| from_json(r.get("record"))).collect()
        })
    }

    fn delete_signing_key<'a>(&'a mut self, kid: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            Ok(self
                .execute("DELETE FROM signing_keys WHERE kid = $1", &[&kid])
                .await?
                > 0)
        })
    }

    fn put_client(&mut self, client: ClientRecord) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            self.execute(
                "INSERT INTO clients (client_id, disabled, record) VALUES ($1, $2, $3)
                 ON CONFLICT (client_id) DO UPDATE SET disabled = EXCLUDED.disabled,
                 record = EXCLUDED.record",
                &[&client.client_id, &client.disabled, &to_json(&client)?],
            )
            .await?;
            Ok(())
        })
    }

    fn get_client<'a>(
        &'a mut self,
        client_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<ClientRecord>>> {
        Box::pin(async move {
            let row = self
                .query_opt(
                    "SELECT record FROM clients WHERE client_id = $1",
                    &[&client_id],
                )
                .await?;
            row.map(|r| from_json(r.get("record"))).transpose()
        })
    }

    fn list_clients(&mut self) -> BoxFuture<'_, StoreResult<Vec<ClientRecord>>> {
        Box::pin(async move {
            let rows = self
                .query("SELECT record FROM clients ORDER BY client_id", &[])
                .await?;
            rows.iter().map(|r| from_json(r.get("record"))).collect()
        })
    }
}

impl AuditOps for PgTransaction {
    fn append_audit_event(
        &mut self,
        time: DateTime<Utc>,
        event_json: String,
    ) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            self.execute(
                "INSERT INTO audit_events (time, record) VALUES ($1, $2)",
                &[&time, &event_json],
            )
            .await?;
            Ok(())
        })
    }

    fn audit_events(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u64,
    ) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT record FROM audit_events WHERE time >= $1 AND time < $2
                     ORDER BY time, seq LIMIT $3",
                    &[&from, &to, &int(limit)?],
                )
                .await?;
            Ok(rows.iter().map(|r| r.get::<_, String>("record")).collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers_only() {
        assert!(plain_identifier("halo_test_1"));
        for bad in ["", "1abc", "a-b", "a;drop", "a b", &"x".repeat(64)] {
            assert!(!plain_identifier(bad), "{bad}");
        }
    }
}

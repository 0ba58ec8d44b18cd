//! Liveness and readiness probes for an orchestrator (REQ OPS-01).
//!
//! - `GET /healthz` answers 200 while the process serves requests: it checks nothing else, so
//!   an orchestrator restarts the process only when it no longer answers at all.
//! - `GET /readyz` answers 200 when this instance can do its work, and 503 with
//!   `{"status":"unavailable","failed":[...]}` naming each failing check otherwise, so a load
//!   balancer sends no traffic to it until it recovers. The checks:
//!   - `store`: a read transaction that counts the live launches, a real query on the store;
//!   - `signing_keys`: the authorization server holds an ES256 and an RS256 key to sign with;
//!   - `schema`: the database, opened as a new connection would open it, is at the schema
//!     version this server brought it to when it started (a file that was removed or replaced,
//!     or a schema a newer server has migrated, fails).
//!
//! The routes sit outside the FHIR base, take no authentication and are not audited: a probe
//! every few seconds would otherwise fill the audit log. The body names checks only; the
//! reasons (paths, host names) go to the log, since anyone reaching the port may read it.
//!
//! The checks are plain async functions ([`Readiness::check`]); [`Readiness::router`] is a thin
//! axum shell over them.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use halo_sofa_server::{auth::AuthServer, health::Readiness, store::SqliteStore};
//! # async fn run(sqlite: SqliteStore, auth: AuthServer, fhir: axum::Router) -> Result<(), Box<dyn std::error::Error>> {
//! let readiness = Readiness::new(Arc::new(sqlite.clone()))
//!     .signing_keys(&auth)
//!     .sqlite_schema(&sqlite)
//!     .await?;
//! let app = axum::Router::new().nest("/fhir", fhir).merge(readiness.router());
//! # let _ = app; Ok(()) }
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::auth::AuthServer;
#[cfg(feature = "postgres")]
use crate::store::PostgresStore;
use crate::store::{SqliteStore, Store, StoreError, StoreResult};

/// The liveness probe's path.
pub const HEALTHZ_PATH: &str = "/healthz";
/// The readiness probe's path.
pub const READYZ_PATH: &str = "/readyz";
/// How long the readiness checks may take together before they count as failed: under an
/// orchestrator's usual probe timeout, so a hung store reads as "not ready" rather than as a
/// probe that never answered.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// One readiness check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// A read transaction counting the live launches.
    Store,
    /// The token-signing keys are loaded.
    SigningKeys,
    /// The database schema is the version this server runs on.
    Schema,
}

impl Check {
    /// The name used in the 503 body and the log.
    pub fn name(self) -> &'static str {
        match self {
            Check::Store => "store",
            Check::SigningKeys => "signing_keys",
            Check::Schema => "schema",
        }
    }
}

/// A failed check and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The check that failed.
    pub check: Check,
    /// Why, for the log (never sent to the caller).
    pub reason: String,
}

/// How the schema version is read back.
#[derive(Clone)]
enum SchemaProbe {
    Sqlite {
        path: PathBuf,
        expected: i64,
    },
    #[cfg(feature = "postgres")]
    Postgres {
        store: PostgresStore,
        expected: i64,
    },
}

/// What `/readyz` checks, built by the host from its store and authorization server.
#[derive(Clone)]
pub struct Readiness {
    store: Arc<dyn Store>,
    keys: Option<AuthServer>,
    schema: Option<SchemaProbe>,
    timeout: Duration,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("signing_keys", &self.keys.is_some())
            .field("schema", &self.schema.is_some())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Readiness {
    /// Readiness on `store` alone; add the other checks with the builder methods.
    pub fn new(store: Arc<dyn Store>) -> Readiness {
        Readiness {
            store,
            keys: None,
            schema: None,
            timeout: DEFAULT_CHECK_TIMEOUT,
        }
    }

    /// Also checks that `auth` holds its signing keys.
    pub fn signing_keys(mut self, auth: &AuthServer) -> Readiness {
        self.keys = Some(auth.clone());
        self
    }

    /// Also checks the SQLite database's schema version: the version it has now, just after
    /// [`SqliteStore::open`] migrated it, is the one later probes expect.
    pub async fn sqlite_schema(mut self, store: &SqliteStore) -> StoreResult<Readiness> {
        let path = store.path().to_path_buf();
        let expected = sqlite_schema_version(path.clone()).await?;
        self.schema = Some(SchemaProbe::Sqlite { path, expected });
        Ok(self)
    }

    /// Also checks the PostgreSQL schema: the newest migration applied now, just after
    /// [`PostgresStore::connect`] applied what it knows, is the one later probes expect, so an
    /// instance whose schema a newer server has migrated reports itself not ready.
    #[cfg(feature = "postgres")]
    pub async fn postgres_schema(mut self, store: &PostgresStore) -> StoreResult<Readiness> {
        let expected = newest(&store.migrations().await?);
        self.schema = Some(SchemaProbe::Postgres {
            store: store.clone(),
            expected,
        });
        Ok(self)
    }

    /// How long the checks may take together ([`DEFAULT_CHECK_TIMEOUT`] by default).
    pub fn timeout(mut self, timeout: Duration) -> Readiness {
        self.timeout = timeout;
        self
    }

    /// Runs every check; the failures, empty when ready.
    pub async fn check(&self) -> Vec<Failure> {
        let checks = async {
            let mut failures = Vec::new();
            if let Err(reason) = check_store(self.store.as_ref()).await {
                failures.push(Failure {
                    check: Check::Store,
                    reason,
                });
            }
            if let Some(auth) = &self.keys
                && let Err(reason) = check_signing_keys(&auth.jwks())
            {
                failures.push(Failure {
                    check: Check::SigningKeys,
                    reason,
                });
            }
            if let Some(schema) = &self.schema
                && let Err(reason) = check_schema(schema).await
            {
                failures.push(Failure {
                    check: Check::Schema,
                    reason,
                });
            }
            failures
        };
        match tokio::time::timeout(self.timeout, checks).await {
            Ok(failures) => failures,
            // Which check hung is unknown once the future is dropped; the store is the one
            // that waits on anything outside the process.
            Err(_) => vec![Failure {
                check: Check::Store,
                reason: format!("the checks took longer than {:?}", self.timeout),
            }],
        }
    }

    /// `GET /healthz` and `GET /readyz`, to merge at the root of the host's router.
    pub fn router(self) -> Router {
        let readiness = Arc::new(self);
        Router::new()
            .route(HEALTHZ_PATH, get(|| async { probe_response(&[]) }))
            .route(
                READYZ_PATH,
                get(move || {
                    let readiness = readiness.clone();
                    async move {
                        let failures = readiness.check().await;
                        for failure in &failures {
                            tracing::warn!(
                                check = failure.check.name(),
                                reason = %failure.reason,
                                "not ready"
                            );
                        }
                        probe_response(&failures)
                    }
                }),
            )
    }
}

/// The JSON body of a probe's answer: `{"status":"ok"}`, or the failing checks by name.
pub fn probe_body(failures: &[Failure]) -> Value {
    if failures.is_empty() {
        json!({"status": "ok"})
    } else {
        json!({
            "status": "unavailable",
            "failed": failures.iter().map(|f| f.check.name()).collect::<Vec<_>>(),
        })
    }
}

fn probe_response(failures: &[Failure]) -> Response {
    let status = if failures.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            // A cached "ok" would hide the next failure.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        probe_body(failures).to_string(),
    )
        .into_response()
}

/// A read transaction counting the live launches: cheap, and it goes through the same
/// connection pool and locks as every request.
pub async fn check_store(store: &dyn Store) -> Result<(), String> {
    let mut tx = store.begin_read().await.map_err(|e| e.to_string())?;
    let counted = tx.count_launches().await.map_err(|e| e.to_string());
    // The count is all that was wanted; a failed rollback of a read changes nothing.
    let _ = tx.rollback().await;
    counted.map(|_| ())
}

/// The JWKS holds a key for access tokens (ES256) and one for id_tokens (RS256).
pub fn check_signing_keys(jwks: &Value) -> Result<(), String> {
    let algs: Vec<&str> = jwks["keys"]
        .as_array()
        .map(|keys| keys.iter().filter_map(|k| k["alg"].as_str()).collect())
        .unwrap_or_default();
    let missing: Vec<&str> = ["ES256", "RS256"]
        .into_iter()
        .filter(|alg| !algs.contains(alg))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("no {} signing key is loaded", missing.join(" or ")))
    }
}

/// `found` is the `expected` schema version.
pub fn check_schema_version(found: i64, expected: i64) -> Result<(), String> {
    match found.cmp(&expected) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Less => Err(format!(
            "the database has schema version {found}, older than this server's {expected}"
        )),
        std::cmp::Ordering::Greater => Err(format!(
            "the database has schema version {found}, newer than this server's {expected}"
        )),
    }
}

async fn check_schema(probe: &SchemaProbe) -> Result<(), String> {
    match probe {
        SchemaProbe::Sqlite { path, expected } => {
            let found = sqlite_schema_version(path.clone())
                .await
                .map_err(|e| e.to_string())?;
            check_schema_version(found, *expected)
        }
        #[cfg(feature = "postgres")]
        SchemaProbe::Postgres { store, expected } => {
            let found = newest(&store.migrations().await.map_err(|e| e.to_string())?);
            check_schema_version(found, *expected)
        }
    }
}

#[cfg(feature = "postgres")]
fn newest(versions: &[i64]) -> i64 {
    versions.iter().copied().max().unwrap_or(0)
}

/// Opens the file as the store's pool would for a new connection, but never creates it: a
/// pooled connection keeps reading a file that was removed or replaced, while every new one
/// would start on an empty database.
async fn sqlite_schema_version(path: PathBuf) -> StoreResult<i64> {
    tokio::task::spawn_blocking(move || {
        use rusqlite::OpenFlags;
        let failed =
            |e: rusqlite::Error| StoreError::Unavailable(format!("{}: {e}", path.display()));
        let connection = rusqlite::Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(failed)?;
        connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(failed)
    })
    .await
    .map_err(|e| StoreError::Backend(format!("the storage thread failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_signing_keys_are_needed() {
        let both = json!({"keys": [{"alg": "ES256"}, {"alg": "RS256"}]});
        assert_eq!(check_signing_keys(&both), Ok(()));
        let one = json!({"keys": [{"alg": "ES256"}]});
        assert!(check_signing_keys(&one).unwrap_err().contains("RS256"));
        assert!(check_signing_keys(&json!({})).is_err());
    }

    #[test]
    fn the_schema_must_be_the_expected_version() {
        assert_eq!(check_schema_version(3, 3), Ok(()));
        assert!(check_schema_version(0, 3).unwrap_err().contains("older"));
        assert!(check_schema_version(4, 3).unwrap_err().contains("newer"));
    }

    #[test]
    fn the_body_names_failing_checks_only() {
        assert_eq!(probe_body(&[]), json!({"status": "ok"}));
        let failures = [Failure {
            check: Check::Schema,
            reason: "/var/lib/sofa.db: unable to open".into(),
        }];
        let body = probe_body(&failures);
        assert_eq!(body, json!({"status": "unavailable", "failed": ["schema"]}));
    }
}

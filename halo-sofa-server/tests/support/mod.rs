//! Shared test helpers: temporary databases, fixtures, a running server.
// Test helpers may unwrap: a panic is a test failure with its message.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use halo_model::fhir::RawResource;
use halo_sofa_server::store::{NewResource, Store};
use serde_json::{Value, json};

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "halo-sofa-{label}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn db(&self) -> PathBuf {
        self.0.join("sofa.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn fixture(name: &str) -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/halo/third-party-zedwerks/"
    );
    serde_json::from_slice(&std::fs::read(format!("{path}{name}")).unwrap()).unwrap()
}

pub fn patient(id: &str) -> NewResource {
    NewResource {
        resource: RawResource::from_value(
            json!({"resourceType": "Patient", "id": id, "gender": "female"}),
        )
        .unwrap(),
        launch_id: None,
        last_updated: Utc::now(),
    }
}

pub async fn counts(store: &Arc<dyn Store>) -> (u64, u64) {
    let mut tx = store.begin_read().await.unwrap();
    let resources = tx.count_resources().await.unwrap();
    let launches = tx.count_launches().await.unwrap();
    tx.rollback().await.unwrap();
    (resources, launches)
}

/// The PostgreSQL test server: `HALO_TEST_POSTGRES_URL`, or the one
/// `scripts/start-test-postgres` creates.
pub fn postgres_url() -> Option<String> {
    if std::env::var_os("HALO_SKIP_POSTGRES_TESTS").is_some_and(|v| v == "1") {
        return None;
    }
    Some(std::env::var("HALO_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        "postgres://halo:halo-test@127.0.0.1:5432/halo_test?sslmode=disable".to_string()
    }))
}

/// A PostgreSQL store in a schema of its own, so tests run in parallel on one database; `None`
/// when PostgreSQL tests are skipped on purpose (`HALO_SKIP_POSTGRES_TESTS=1`).
pub async fn postgres_store(label: &str) -> Option<halo_sofa_server::store::PostgresStore> {
    let url = postgres_url()?;
    let schema = format!(
        "t_{}_{}",
        label.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
        uuid::Uuid::new_v4().simple()
    );
    let options = halo_sofa_server::store::PostgresOptions {
        schema: Some(schema),
        max_connections: 8,
        ..Default::default()
    };
    match halo_sofa_server::store::PostgresStore::connect_with(&url, options).await {
        Ok(store) => Some(store),
        Err(e) => panic!(
            "no PostgreSQL server for the tests at HALO_TEST_POSTGRES_URL ({e}); start one with \
             `HALO_TEST_POSTGRES_URL=$(scripts/start-test-postgres)`, or skip these tests \
             with HALO_SKIP_POSTGRES_TESTS=1"
        ),
    }
}

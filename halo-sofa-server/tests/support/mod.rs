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

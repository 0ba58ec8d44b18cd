//! Helpers every backend shares, so they store the same JSON.

use chrono::{DateTime, SecondsFormat, Utc};
use halo_model::fhir::RawResource;
use halo_model::set_context::references_in;
use serde_json::{Map, Value};

/// A new server-assigned resource id: a UUID version 7, whose first 48 bits are the time of its
/// making and whose other 74 are random. Ids made one after the other sort one after the
/// other, so a store's indexes take new resources at their end (a few pages written per
/// commit) instead of at random places (a page per index per resource); they stay as hard to
/// guess as access needs (a resource is reached only through its launch, D-10).
pub fn new_resource_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A FHIR `instant` for `time` (milliseconds, `Z`).
pub fn instant(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Sets `meta.versionId` and `meta.lastUpdated`, keeping every other `meta` element.
pub fn stamp_meta(resource: &mut RawResource, version: u64, last_updated: DateTime<Utc>) {
    let map = resource.as_map_mut();
    let meta = map
        .entry("meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    if let Value::Object(meta) = meta {
        meta.insert("versionId".into(), Value::String(version.to_string()));
        meta.insert("lastUpdated".into(), Value::String(instant(last_updated)));
    }
}

/// The relative references (`Type/id`) a resource holds anywhere in its JSON, deduplicated, for
/// reference searches (`patient`, `subject`).
pub fn references_of(resource: &RawResource) -> Vec<String> {
    let mut found: Vec<String> = references_in(&resource.to_value())
        .into_iter()
        .map(|r| r.reference)
        .filter(|r| {
            let mut parts = r.split('/');
            matches!((parts.next(), parts.next(), parts.next()), (Some(t), Some(id), None)
                if !t.is_empty() && !id.is_empty() && !t.contains(':'))
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

/// A record as the JSON text a backend keeps.
pub(super) fn to_json<T: serde::Serialize>(record: &T) -> super::StoreResult<String> {
    serde_json::to_string(record).map_err(|e| super::StoreError::Backend(e.to_string()))
}

/// A record back from its JSON text; what does not read is corruption.
pub(super) fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> super::StoreResult<T> {
    serde_json::from_str(text).map_err(|e| super::StoreError::Corrupt(e.to_string()))
}

/// A count or number as the signed integer SQL columns hold.
pub(super) fn int(value: u64) -> super::StoreResult<i64> {
    i64::try_from(value).map_err(|_| super::StoreError::Backend(format!("{value} is out of range")))
}

/// A stored signed integer as the unsigned count it is (never negative when written by us).
pub(super) fn uint(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

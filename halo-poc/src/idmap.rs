//! The id mapping (REQ LI-04): the PoC's local ids against the ids the SoFA gave the same
//! resources, kept while notifications about them can still arrive.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::BoxFuture;
use crate::error::{PocError, Result};

/// One resource known on both sides, as `Type/id` references.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdMapping {
    /// The PoC's reference (`Patient/local-7`).
    pub local: String,
    /// The SoFA's reference (`Patient/8f1c...`).
    pub sofa: String,
}

/// Where the PoC keeps its id mappings. A host with several processes implements it over its
/// database; [`MemoryIdMap`] is the single-process default.
///
/// Mappings are grouped by launch id so they can be kept for as long as that launch can cause
/// notifications, and dropped after (the SoFA's ids are meaningless once it purged the context).
pub trait IdMapStore: Send + Sync {
    /// Records mappings for a launch, kept at least until `keep_until`. Recording a pair again
    /// replaces it.
    fn record(
        &self,
        launch_id: &str,
        mappings: Vec<IdMapping>,
        keep_until: SystemTime,
    ) -> BoxFuture<'_, Result<()>>;
    /// The local reference for a SoFA reference.
    fn local_for<'a>(&'a self, sofa: &'a str) -> BoxFuture<'a, Result<Option<String>>>;
    /// The SoFA reference for a local reference (the most recent, when several launches
    /// carried the same local resource).
    fn sofa_for<'a>(&'a self, local: &'a str) -> BoxFuture<'a, Result<Option<String>>>;
    /// Changes how long a launch's mappings are kept (for example at `$clear-context`).
    fn keep_until<'a>(&'a self, launch_id: &'a str, until: SystemTime)
    -> BoxFuture<'a, Result<()>>;
    /// The launch that recorded a SoFA reference (to attribute app-created resources).
    fn launch_of<'a>(&'a self, sofa: &'a str) -> BoxFuture<'a, Result<Option<String>>>;
    /// Drops every mapping whose time is up at `now`; gives how many were dropped.
    fn purge(&self, now: SystemTime) -> BoxFuture<'_, Result<usize>>;
}

/// `now + after`, or the far future when that does not fit in a `SystemTime`.
pub(crate) fn from_now(after: Duration) -> SystemTime {
    let now = SystemTime::now();
    now.checked_add(after)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

/// How long mappings are kept (decisions D-05, D-15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// While the launch is open: the SoFA's context lifetime (12 hours by default, D-05).
    pub context_lifetime: Duration,
    /// After `$clear-context` for an app without `offline_access`: notifications already in
    /// flight can still arrive.
    pub after_clear: Duration,
    /// After `$clear-context` for an app with `offline_access`: it may keep writing until the
    /// SoFA's context lifetime ends (D-15).
    pub after_clear_offline: Duration,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            context_lifetime: Duration::from_secs(12 * 3600),
            after_clear: Duration::from_secs(10 * 60),
            after_clear_offline: Duration::from_secs(12 * 3600),
        }
    }
}

#[derive(Debug)]
struct Group {
    mappings: Vec<IdMapping>,
    keep_until: SystemTime,
}

/// The in-memory [`IdMapStore`].
#[derive(Debug, Default)]
pub struct MemoryIdMap {
    groups: Mutex<HashMap<String, Group>>,
}

impl MemoryIdMap {
    /// An empty map.
    pub fn new() -> MemoryIdMap {
        MemoryIdMap::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Group>) -> T) -> Result<T> {
        let mut groups = self
            .groups
            .lock()
            .map_err(|_| PocError::Store("the id map lock is poisoned".into()))?;
        Ok(f(&mut groups))
    }

    fn find(&self, pick: impl Fn(&IdMapping) -> Option<&String>) -> Result<Option<String>> {
        self.with(|groups| {
            groups
                .values()
                .filter_map(|g| {
                    g.mappings
                        .iter()
                        .rev()
                        .find_map(&pick)
                        .map(|found| (g.keep_until, found.clone()))
                })
                .max_by_key(|(until, _)| *until)
                .map(|(_, found)| found)
        })
    }
}

impl IdMapStore for MemoryIdMap {
    fn record(
        &self,
        launch_id: &str,
        mappings: Vec<IdMapping>,
        keep_until: SystemTime,
    ) -> BoxFuture<'_, Result<()>> {
        let launch_id = launch_id.to_owned();
        Box::pin(async move {
            self.with(|groups| {
                let group = groups.entry(launch_id).or_insert(Group {
                    mappings: Vec::new(),
                    keep_until,
                });
                group.keep_until = group.keep_until.max(keep_until);
                for mapping in mappings {
                    group
                        .mappings
                        .retain(|m| m.local != mapping.local && m.sofa != mapping.sofa);
                    group.mappings.push(mapping);
                }
            })
        })
    }

    fn local_for<'a>(&'a self, sofa: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move { self.find(|m| (m.sofa == sofa).then_some(&m.local)) })
    }

    fn sofa_for<'a>(&'a self, local: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move { self.find(|m| (m.local == local).then_some(&m.sofa)) })
    }

    fn keep_until<'a>(
        &'a self,
        launch_id: &'a str,
        until: SystemTime,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.with(|groups| {
                if let Some(group) = groups.get_mut(launch_id) {
                    group.keep_until = until;
                }
            })
        })
    }

    fn launch_of<'a>(&'a self, sofa: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            self.with(|groups| {
                groups
                    .iter()
                    .find(|(_, g)| g.mappings.iter().any(|m| m.sofa == sofa))
                    .map(|(id, _)| id.clone())
            })
        })
    }

    fn purge(&self, now: SystemTime) -> BoxFuture<'_, Result<usize>> {
        Box::pin(async move {
            self.with(|groups| {
                let before: usize = groups.values().map(|g| g.mappings.len()).sum();
                groups.retain(|_, g| g.keep_until > now);
                before - groups.values().map(|g| g.mappings.len()).sum::<usize>()
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(local: &str, sofa: &str) -> IdMapping {
        IdMapping {
            local: local.into(),
            sofa: sofa.into(),
        }
    }

    // REQ: LI-04
    #[tokio::test]
    async fn maps_both_ways_and_keeps_mappings_until_their_time() {
        let map = MemoryIdMap::new();
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        map.record("L1", vec![pair("Patient/p7", "Patient/s1")], now + hour)
            .await
            .unwrap();
        map.record("L2", vec![pair("Patient/p7", "Patient/s9")], now + 2 * hour)
            .await
            .unwrap();
        assert_eq!(
            map.local_for("Patient/s1").await.unwrap().as_deref(),
            Some("Patient/p7")
        );
        // The most recent launch wins for local → SoFA.
        assert_eq!(
            map.sofa_for("Patient/p7").await.unwrap().as_deref(),
            Some("Patient/s9")
        );
        assert_eq!(
            map.launch_of("Patient/s9").await.unwrap().as_deref(),
            Some("L2")
        );
        assert_eq!(map.local_for("Patient/none").await.unwrap(), None);

        // L1 cleared with a short grace period: gone once that passes, L2 stays.
        map.keep_until("L1", now + Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(map.purge(now + Duration::from_secs(30)).await.unwrap(), 0);
        assert_eq!(map.purge(now + Duration::from_secs(61)).await.unwrap(), 1);
        assert_eq!(map.local_for("Patient/s1").await.unwrap(), None);
        assert!(map.local_for("Patient/s9").await.unwrap().is_some());
    }
}

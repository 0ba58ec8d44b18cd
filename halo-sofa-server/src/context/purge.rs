//! Expiry (D-05, REQ SC-07): contexts past their lifetime are purged with their resources by a
//! query over `expires_at`, so any number of instances may run the task side by side; of those
//! whose rounds meet, one leads (a PostgreSQL advisory lock) and the others skip the round.

use std::sync::Arc;

use tokio::task::JoinHandle;

use super::ContextManager;
use super::clear::remove_launch;
use crate::audit::{AuditAction, AuditOutcome};
use crate::error::SofaError;

/// Launches removed per transaction, to keep write-lock holds short.
const PURGE_BATCH: u64 = 100;
/// The purge's name for [`try_lead`](crate::store::ClusterOps::try_lead).
const PURGE_TASK: &str = "purge";

impl ContextManager {
    /// Purges every context expired now; how many.
    pub async fn purge_expired(&self) -> Result<u64, SofaError> {
        let mut purged = 0;
        loop {
            let now = self.clock.now();
            let mut tx = self.store.begin().await?;
            // One instance purges at a time (REQ CLU-02): the others skip the round.
            if !tx.try_lead(PURGE_TASK).await? {
                return Ok(purged);
            }
            let expired = tx.expired_launches(now, PURGE_BATCH).await?;
            if expired.is_empty() {
                // Revocation and `jti` records past their expiry go with the same round
                // (REQ IDP-05); they are not launches, so they are not counted.
                tx.purge_expired_auth_records(now).await?;
                // So are binding tokens, socket claims and delivery requests (REQ CLU-03).
                tx.purge_cluster_records(now).await?;
                tx.commit().await?;
                return Ok(purged);
            }
            for launch_id in &expired {
                remove_launch(tx.as_mut(), launch_id).await?;
            }
            tx.commit().await?;
            for launch_id in expired {
                purged += 1;
                self.audit(
                    None,
                    AuditAction::PurgeContext,
                    Some(launch_id),
                    Vec::new(),
                    AuditOutcome::Success,
                )
                .await;
            }
        }
    }

    /// Removes one launch with its resources and grants at an operator's request (the admin
    /// command line, REQ OPS-05), as `$clear-context` would; whether it existed. Audited as a
    /// clear with no calling client.
    pub async fn clear_launch_by_operator(&self, launch_id: &str) -> Result<bool, SofaError> {
        let mut tx = self.store.begin().await?;
        let existed = tx.get_launch(launch_id).await?.is_some();
        if existed {
            remove_launch(tx.as_mut(), launch_id).await?;
        }
        tx.commit().await?;
        if existed {
            self.audit(
                None,
                AuditAction::ClearContext,
                Some(launch_id.to_string()),
                Vec::new(),
                AuditOutcome::Success,
            )
            .await;
        }
        Ok(existed)
    }

    /// Runs [`purge_expired`](Self::purge_expired) every `purge_interval` until the handle is
    /// aborted or the runtime stops. A failed round is logged and retried next round.
    pub fn spawn_purge_task(self: &Arc<Self>) -> JoinHandle<()> {
        let manager = self.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(manager.config.purge_interval);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                match manager.purge_expired().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(purged = n, "expired launch contexts purged"),
                    Err(e) => tracing::warn!(error = %e, "purging expired launch contexts failed"),
                }
            }
        })
    }
}

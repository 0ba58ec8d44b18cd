//! The heartbeat watchdog (REQ LI-07): when the SoFA has been silent for longer than the
//! heartbeat period, ask `$status`; recreate the subscription if it is no longer active, and
//! recover missed events if it is.

use std::time::Duration;

use halo_model::subscription::SubscriptionStatus;
use tokio::task::JoinHandle;

use super::manager::{CurrentSubscription, SubscriptionManager};
use super::receiver::NotificationReceiver;
use crate::error::{PocError, Result};

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchdogVerdict {
    /// Heard from within the heartbeat period.
    Alive,
    /// Silent, but `$status` says `active`; any events counted there were recovered.
    StillActive,
    /// Silent and not active (or unknown to the SoFA): replaced.
    Recreated {
        /// The dead subscription.
        old_id: String,
        /// Its replacement.
        new_id: String,
    },
}

/// Watches one subscription.
#[derive(Debug, Clone)]
pub struct Watchdog {
    manager: SubscriptionManager,
    receiver: NotificationReceiver,
    current: CurrentSubscription,
    grace: Duration,
}

impl Watchdog {
    /// Watches `current`, whose notifications go to `receiver`. A subscription without a
    /// heartbeat period is checked with `$status` on every check.
    pub fn new(
        manager: SubscriptionManager,
        receiver: NotificationReceiver,
        current: CurrentSubscription,
    ) -> Watchdog {
        Watchdog {
            manager,
            receiver,
            current,
            grace: Duration::from_secs(5),
        }
    }

    /// Extra silence tolerated past the heartbeat period (network and scheduling delays).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The subscription being watched.
    pub fn current(&self) -> &CurrentSubscription {
        &self.current
    }

    /// One check.
    pub async fn check(&self) -> Result<WatchdogVerdict> {
        let subscription = self.current.get();
        let id = subscription.id.clone().unwrap_or_default();
        if let Some(period) = subscription.channel.heartbeat_period {
            let limit = Duration::from_secs(u64::from(period)).saturating_add(self.grace);
            match self.receiver.silence(&id).await {
                Some(silence) if silence <= limit => return Ok(WatchdogVerdict::Alive),
                Some(_) => {}
                None => {
                    // Not tracked yet: start the clock now.
                    self.receiver.track(&id, 0).await;
                    return Ok(WatchdogVerdict::Alive);
                }
            }
        }
        match self.manager.sofa().status(&id).await {
            Ok(status) if status.status == SubscriptionStatus::Active => {
                self.receiver
                    .reconcile(&id, status.events_since_subscription_start)
                    .await?;
                return Ok(WatchdogVerdict::StillActive);
            }
            // Not active, or unknown to the SoFA: replace it.
            Ok(_)
            | Err(PocError::Rejected {
                status: 404 | 410, ..
            }) => {}
            Err(error) => return Err(error),
        }
        let replacement = self.manager.recreate(&subscription).await?;
        let new_id = replacement.id.clone().unwrap_or_default();
        self.receiver.track(&new_id, 0).await;
        self.current.set(replacement);
        Ok(WatchdogVerdict::Recreated { old_id: id, new_id })
    }

    /// Checks every `every` until the task is aborted; errors are logged and retried at the
    /// next check.
    pub fn spawn(self, every: Duration) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                match self.check().await {
                    Ok(WatchdogVerdict::Alive) => {}
                    Ok(verdict) => tracing::info!(?verdict, "subscription watchdog"),
                    Err(error) => {
                        tracing::warn!(code = error.code(), %error, "subscription watchdog")
                    }
                }
            }
        })
    }
}

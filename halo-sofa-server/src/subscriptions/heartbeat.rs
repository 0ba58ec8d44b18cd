//! Heartbeats (REQ SUB-04): only for subscriptions with a `backport-heartbeat-period`, after
//! that long without a notification. Due subscriptions are found by a query over the store
//! (last change or heartbeat, last event), so the timers survive a restart and any instance
//! can send them.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::Duration as ChronoDuration;
use chrono::{DateTime, Utc};
use halo_model::subscription::{ChannelType, NotificationType, Subscription};
use tokio::task::JoinSet;

use super::Inner;
use super::delivery::ParsedSubscriptions;
use crate::error::SofaError;
use crate::store::{SubscriptionRecord, SubscriptionStatus, Transaction};

/// Subscriptions whose heartbeat is being sent, so a slow endpoint is not sent a second one
/// while the next passes go on for everyone else (REQ SUB-12).
#[derive(Default)]
pub(crate) struct Sending(Mutex<HashSet<String>>);

impl Sending {
    fn start(&self, id: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string())
    }

    fn done(&self, id: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

pub(super) fn spawn(inner: Arc<Inner>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(inner.settings.heartbeat_tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // Each pass runs on its own: a pass waiting on a slow endpoint does not hold up
            // the next tick.
            let inner = inner.clone();
            tokio::spawn(async move { pass(&inner).await });
        }
    })
}

/// Sends every heartbeat due now, concurrently; how many were delivered.
pub(super) async fn pass(inner: &Arc<Inner>) -> usize {
    let due = match due(inner).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "heartbeat query failed");
            return 0;
        }
    };
    let mut sends = JoinSet::new();
    for id in due {
        if !inner.heartbeats.start(&id) {
            continue;
        }
        let Some(guard) = inner.tracker.enter() else {
            inner.heartbeats.done(&id);
            break;
        };
        let inner = inner.clone();
        sends.spawn(async move {
            let _guard = guard;
            let sent = send(&inner, &id).await;
            inner.heartbeats.done(&id);
            sent
        });
    }
    let mut sent = 0;
    while let Some(result) = sends.join_next().await {
        if matches!(result, Ok(true)) {
            sent += 1;
        }
    }
    sent
}

/// The typed subscription of `record` if its heartbeat is due at `now`: active, with a
/// heartbeat period, and nothing sent (status change, heartbeat or event) for that long.
async fn due_at(
    tx: &mut dyn Transaction,
    parsed: &ParsedSubscriptions,
    record: &SubscriptionRecord,
    now: DateTime<Utc>,
) -> Result<Option<Subscription>, SofaError> {
    if record.status != SubscriptionStatus::Active {
        return Ok(None);
    }
    let Some(subscription) = parsed.typed(record) else {
        return Ok(None);
    };
    let Some(period) = subscription.channel.heartbeat_period else {
        return Ok(None);
    };
    let mut last = record.updated_at;
    if record.events_since_start > 0 {
        let n = record.events_since_start;
        if let Some(event) = tx.events(&record.id, n, Some(n)).await?.pop() {
            last = last.max(event.timestamp);
        }
    }
    Ok((now - last >= ChronoDuration::seconds(i64::from(period))).then_some(subscription))
}

/// Ids of the active subscriptions with a heartbeat period and nothing sent for that long.
async fn due(inner: &Inner) -> Result<Vec<String>, SofaError> {
    let now = inner.clock.now();
    let mut tx = inner.store.begin_read().await?;
    let records = tx.list_subscriptions(None).await?;
    let mut due = Vec::new();
    for record in records {
        if due_at(tx.as_mut(), &inner.parsed, &record, now)
            .await?
            .is_some()
        {
            due.push(record.id);
        }
    }
    Ok(due)
}

/// Sends one heartbeat and records when; a rest-hook that fails puts the subscription in
/// `error`. A websocket subscription with no socket bound is skipped.
async fn send(inner: &Arc<Inner>, id: &str) -> bool {
    let (record, subscription) = match inner.claim_heartbeat(id).await {
        Ok(Some(claimed)) => claimed,
        Ok(None) => return false,
        Err(e) => {
            tracing::warn!(subscription = %id, error = %e, "heartbeat not claimed");
            return false;
        }
    };
    let body = inner.bare_notification(&record, &subscription, NotificationType::Heartbeat);
    let result = match inner.deliver(id, &subscription, &body, None).await {
        Ok(()) => Ok(true),
        Err(reason) => {
            tracing::info!(subscription = %id, %reason, "heartbeat not delivered");
            inner
                .set_status(
                    id,
                    SubscriptionStatus::Error,
                    Some(format!(
                        "heartbeat failed: the endpoint could not be reached at {}",
                        crate::store::meta_instant(inner.clock.now())
                    )),
                )
                .await
                .map(|_| false)
        }
    };
    result.unwrap_or_else(|e| {
        tracing::warn!(subscription = %id, error = %e, "heartbeat not recorded");
        false
    })
}

impl Inner {
    /// Claims the heartbeat of `id` if it is still due and this instance can send it (a
    /// websocket needs its socket here): its clock restarts now, in a transaction that holds
    /// the subscription's row, so of several instances that found it due only the first sends
    /// it (REQ CLU-02). The record and its typed view, when this one won.
    async fn claim_heartbeat(
        &self,
        id: &str,
    ) -> Result<Option<(SubscriptionRecord, Subscription)>, SofaError> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let Some(mut record) = tx.get_subscription(id).await? else {
            return Ok(None);
        };
        let Some(subscription) = due_at(tx.as_mut(), &self.parsed, &record, now).await? else {
            return Ok(None);
        };
        if subscription.channel.channel_type == ChannelType::Websocket && !self.hub.is_bound(id) {
            // No socket here: the instance holding the socket claims and sends it.
            return Ok(None);
        }
        record.updated_at = now;
        tx.update_subscription(record.clone()).await?;
        tx.commit().await?;
        Ok(Some((record, subscription)))
    }
}

//! The outbox (D-16, REQ SYNC-02, SYNC-04): settling a PoC's unsettled events, and the worker
//! that does it in the background.
//!
//! Settling a PoC, under its lock, does two things in order:
//!
//! 1. every event of its subscriptions still `pending` belongs to a write that can no longer
//!    commit (the write path holds the same lock from logging its events to settling them, so
//!    a pending event seen here was left by a crash or by a compensation the store refused);
//!    each is compensated;
//! 2. the compensating events in the outbox are delivered to their (active) subscription in
//!    event-number order; each acknowledgement turns its event `delivered`. The first failure
//!    on a subscription stops that subscription's queue, so the PoC never receives a later
//!    number before an earlier one.
//!
//! The write path settles its PoC before each write, so a write never overtakes a compensation.
//! The worker settles every PoC with unsettled events: at start (which resolves what a crash
//! left), when a compensation is queued, and on a short tick, backing off exponentially with
//! jitter per PoC while its endpoint fails. A PoC whose outbox has not drained for
//! [`SubscriptionSettings::outbox_error_after`](super::SubscriptionSettings::outbox_error_after)
//! has its subscriptions turned `error`; reactivated, they drain again, and the PoC can recover
//! what it missed with `$events`, which lists every event.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::Inner;
use super::delivery::typed;
use crate::error::SofaError;
use crate::store::{EventState, SubscriptionStatus};

/// The worker's state: its wake-up call and each PoC's retry schedule.
#[derive(Default)]
pub(crate) struct Outbox {
    wake: Notify,
    /// PoCs being settled by a worker task now.
    settling: Mutex<HashSet<String>>,
    /// PoCs whose last settling failed.
    retries: Mutex<HashMap<String, Retry>>,
}

#[derive(Debug, Clone, Copy)]
struct Retry {
    failures: u32,
    first_failure: Instant,
    next: Instant,
}

impl Outbox {
    /// Asks the worker for a pass now.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    fn start(&self, poc: &str) -> bool {
        self.settling
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(poc.to_string())
    }

    fn done(&self, poc: &str) {
        self.settling
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(poc);
    }

    fn due(&self, poc: &str, now: Instant) -> bool {
        self.retries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(poc)
            .is_none_or(|r| r.next <= now)
    }

    /// Records a failed settling; how long the PoC has been failing.
    fn failed(&self, poc: &str, now: Instant, first: Duration, max: Duration) -> Duration {
        let mut retries = self.retries.lock().unwrap_or_else(|p| p.into_inner());
        let retry = retries.entry(poc.to_string()).or_insert(Retry {
            failures: 0,
            first_failure: now,
            next: now,
        });
        retry.failures = retry.failures.saturating_add(1);
        retry.next = now + backoff(retry.failures, first, max, jitter());
        now.saturating_duration_since(retry.first_failure)
    }

    fn succeeded(&self, poc: &str) {
        self.retries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(poc);
    }
}

/// The wait after the `failures`-th failure in a row: `first` doubled each time up to `max`,
/// then scaled by `jitter` (in `0.5..=1.0`) so PoCs that failed together do not retry together.
pub(crate) fn backoff(failures: u32, first: Duration, max: Duration, jitter: f64) -> Duration {
    let doubled = first.saturating_mul(1 << failures.saturating_sub(1).min(20));
    doubled.min(max).mul_f64(jitter.clamp(0.5, 1.0))
}

fn jitter() -> f64 {
    let mut byte = [0u8; 1];
    // Without randomness the retry is only less spread out.
    let _ = getrandom::fill(&mut byte);
    0.5 + f64::from(byte[0]) / 510.0
}

impl Inner {
    /// Settles `poc` (see the module documentation). The caller holds the PoC's lock. `Err`
    /// says why an outbox could not drain.
    pub(crate) async fn settle(&self, poc: &str) -> Result<(), String> {
        // One read unit (every write settles first): the PoC's subscriptions and what each
        // has unsettled.
        let owner = poc.to_owned();
        let found = self
            .store
            .read(move |tx| {
                Box::pin(async move {
                    let mut found = Vec::new();
                    for record in tx.list_subscriptions(Some(&owner)).await? {
                        let unsettled = tx.unsettled_events(&record.id).await?;
                        found.push((record, unsettled));
                    }
                    Ok::<_, crate::store::StoreError>(found)
                })
            })
            .await
            .map_err(|e| e.to_string())?;
        let mut first_error = None;
        for (record, unsettled) in found {
            if let Err(reason) = self.settle_subscription(&record, unsettled).await {
                first_error.get_or_insert(reason);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn settle_subscription(
        &self,
        record: &crate::store::SubscriptionRecord,
        unsettled: Vec<crate::store::EventRecord>,
    ) -> Result<(), String> {
        if unsettled.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let pending: Vec<_> = unsettled
            .iter()
            .filter(|e| e.state == EventState::Pending && self.orphaned(e, now))
            .cloned()
            .collect();
        let outbox = if pending.is_empty() {
            unsettled
        } else {
            self.log_compensations(&pending)
                .await
                .map_err(|e| e.to_string())?;
            self.unsettled(&record.id).await?
        };
        // A subscription that is not active gets nothing now; once reactivated it drains, and
        // its PoC can recover the numbers it missed with `$events`.
        if record.status != SubscriptionStatus::Active {
            return Ok(());
        }
        let Some(subscription) = typed(record) else {
            return Ok(());
        };
        for event in outbox.iter().filter(|e| e.state == EventState::Outbox) {
            let body = self.event_notification(record, &subscription, event);
            self.deliver(&record.id, &subscription, &body, Some(event.event_number))
                .await
                .map_err(|reason| format!("Subscription/{}: {reason}", record.id))?;
            let mut tx = self.store.begin().await.map_err(|e| e.to_string())?;
            tx.transition_event(
                &record.id,
                event.event_number,
                EventState::Outbox,
                EventState::Delivered,
            )
            .await
            .map_err(|e| e.to_string())?;
            tx.commit().await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Whether a pending event's write can no longer commit: not in progress here, and
    /// either no other process shares the store (so its writer is dead) or its deadline has
    /// passed. A live write elsewhere that is compensated by mistake only fails its commit
    /// (`commit_events`), so this decides how soon, never whether the copies agree.
    fn orphaned(
        &self,
        event: &crate::store::EventRecord,
        now: chrono::DateTime<chrono::Utc>,
    ) -> bool {
        let key = (event.subscription_id.clone(), event.event_number);
        if self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&key)
        {
            return false;
        }
        if !self.store.shared() {
            return true;
        }
        super::notifier::EventContent::of(event)
            .and_then(|c| c.settle_after)
            .is_none_or(|deadline| now >= deadline)
    }

    async fn unsettled(&self, id: &str) -> Result<Vec<crate::store::EventRecord>, String> {
        let id = id.to_owned();
        self.store
            .read(move |tx| Box::pin(async move { tx.unsettled_events(&id).await }))
            .await
            .map_err(|e| e.to_string())
    }

    /// The PoCs that own subscriptions with unsettled events.
    pub(crate) async fn unsettled_pocs(&self) -> Result<BTreeSet<String>, SofaError> {
        let mut tx = self.store.begin_read().await?;
        let mut pocs = BTreeSet::new();
        for id in tx.subscriptions_with_unsettled_events().await? {
            if let Some(record) = tx.get_subscription(&id).await? {
                pocs.insert(record.owner_client_id);
            }
        }
        Ok(pocs)
    }
}

/// Starts the worker: a pass now, then on every wake-up and tick.
pub(super) fn spawn(inner: Arc<Inner>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let wake = inner.outbox.wake.notified();
            tokio::pin!(wake);
            wake.as_mut().enable();
            pass(&inner).await;
            tokio::select! {
                () = wake => {}
                () = tokio::time::sleep(inner.settings.outbox_tick) => {}
            }
        }
    })
}

/// Starts settling every PoC with unsettled events that is due; how many were started. Each
/// PoC is settled in a task of its own, so a slow endpoint holds up nobody else (REQ SUB-12).
pub(super) async fn pass(inner: &Arc<Inner>) -> usize {
    let pocs = match inner.unsettled_pocs().await {
        Ok(pocs) => pocs,
        Err(e) => {
            tracing::warn!(error = %e, "outbox query failed");
            return 0;
        }
    };
    let now = Instant::now();
    let mut started = 0;
    for poc in pocs {
        if !inner.outbox.due(&poc, now) || !inner.outbox.start(&poc) {
            continue;
        }
        let Some(guard) = inner.tracker.enter() else {
            inner.outbox.done(&poc);
            break;
        };
        started += 1;
        let inner = inner.clone();
        tokio::spawn(async move {
            let _guard = guard;
            settle_in_background(&inner, &poc).await;
            inner.outbox.done(&poc);
        });
    }
    started
}

/// Settles `poc` under its lock; a failure schedules its retry and, after
/// `outbox_error_after`, turns its subscriptions `error`.
pub(super) async fn settle_in_background(inner: &Arc<Inner>, poc: &str) {
    let result = {
        let _serialised = inner.locks.lock(poc).await;
        inner.settle(poc).await
    };
    let Err(reason) = result else {
        inner.outbox.succeeded(poc);
        return;
    };
    let settings = &inner.settings;
    let failing = inner.outbox.failed(
        poc,
        Instant::now(),
        settings.outbox_retry,
        settings.outbox_retry_max,
    );
    tracing::info!(poc = %poc, %reason, "outbox not drained; retrying later");
    if failing < settings.outbox_error_after {
        return;
    }
    // Given up on for now: the subscriptions turn `error` (without the endpoint's answer,
    // which is for the log only) and the PoC recovers with `$events` once it reactivates them.
    let records = match inner.store.begin_read().await {
        Ok(mut tx) => tx.list_subscriptions(Some(poc)).await.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    for record in records {
        if record.status != SubscriptionStatus::Active {
            continue;
        }
        let has_outbox = inner
            .unsettled(&record.id)
            .await
            .is_ok_and(|events| events.iter().any(|e| e.state == EventState::Outbox));
        if has_outbox {
            let error = "notifications could not be delivered; recover them with $events after \
                         reactivating the subscription";
            if let Err(e) = inner
                .set_status(&record.id, SubscriptionStatus::Error, Some(error.into()))
                .await
            {
                tracing::warn!(subscription = %record.id, error = %e, "status not recorded");
            }
        }
    }
    inner.outbox.succeeded(poc);
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: SYNC-02
    #[test]
    fn retries_back_off_exponentially_with_jitter_up_to_a_cap() {
        let (first, max) = (Duration::from_millis(100), Duration::from_secs(5));
        assert_eq!(backoff(1, first, max, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(2, first, max, 1.0), Duration::from_millis(200));
        assert_eq!(backoff(4, first, max, 1.0), Duration::from_millis(800));
        assert_eq!(backoff(40, first, max, 1.0), max);
        assert_eq!(backoff(3, first, max, 0.5), Duration::from_millis(200));
        // Jitter outside its range is clamped, never zero.
        assert_eq!(backoff(1, first, max, 0.0), Duration::from_millis(50));
        for _ in 0..100 {
            assert!((0.5..=1.0).contains(&jitter()));
        }
        let outbox = Outbox::default();
        let now = Instant::now();
        assert!(outbox.due("poc", now));
        outbox.failed("poc", now, first, max);
        assert!(!outbox.due("poc", now));
        assert!(outbox.due("poc", now + Duration::from_millis(100)));
        let failing = outbox.failed("poc", now + Duration::from_secs(2), first, max);
        assert_eq!(failing, Duration::from_secs(2));
        outbox.succeeded("poc");
        assert!(outbox.due("poc", now));
    }
}

//! Cross-instance websocket delivery (REQ CLU-03).
//!
//! A socket is bound on one instance; a write for its PoC may land on any. The instance that
//! holds a socket records it in the store under a lease it renews (a dead instance's claim runs
//! out). An instance without the socket delivers a logged event by:
//!
//! 1. recording a socket delivery request (subscription, event number, deadline) — the event
//!    itself is already in the log as `pending`;
//! 2. waking the instances on the store (PostgreSQL `NOTIFY`, a wake-up only);
//! 3. polling the request until a socket wrote the frame or the deadline passed — the same
//!    timeout as a local socket, after which the write is refused and compensated as usual.
//!
//! The holder, woken or on its own short tick (a `NOTIFY` sent while its listener reconnects is
//! lost), reads its subscriptions' open requests, renders each event from the log, writes it to
//! the socket and confirms the request in the store.
//!
//! On a store no other process shares (SQLite, memory), none of this runs: every socket is
//! local.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use chrono::Duration as ChronoDuration;
use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;

use super::Inner;
use super::delivery::typed;
use crate::error::SofaError;
use crate::store::Wakeup;

/// How long a socket holder's claim lasts without renewal.
const LEASE: Duration = Duration::from_secs(30);
/// How often the holder renews its claims.
const RENEW_EVERY: Duration = Duration::from_secs(10);
/// How often the holder looks for requests when no wake-up came.
const RESCAN_EVERY: Duration = Duration::from_millis(250);
/// How often an instance waiting on another's socket looks at its request.
const POLL_EVERY: Duration = Duration::from_millis(15);

/// This process's part in cross-instance delivery.
pub(crate) struct Relay {
    /// This instance's id in the store's socket holder records.
    pub(crate) instance: String,
    started: AtomicBool,
    /// Subscriptions whose requested frames are being written now: one writer per
    /// subscription, so its frames leave in event-number order.
    busy: Mutex<HashSet<String>>,
    /// Asks the relay for another look (a subscription's writer finished).
    again: Arc<Notify>,
}

impl Default for Relay {
    fn default() -> Relay {
        Relay {
            instance: uuid::Uuid::new_v4().to_string(),
            started: AtomicBool::new(false),
            busy: Mutex::default(),
            again: Arc::default(),
        }
    }
}

impl Relay {
    fn start_writing(&self, id: &str) -> bool {
        self.busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string())
    }

    fn done_writing(&self, id: &str) {
        self.busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        self.again.notify_one();
    }
}

fn lease() -> ChronoDuration {
    ChronoDuration::from_std(LEASE).unwrap_or(ChronoDuration::seconds(30))
}

impl Inner {
    /// Records that this instance holds sockets of `ids` (on a shared store), and starts the
    /// relay that answers other instances' requests.
    pub(crate) async fn hold_sockets(self: &Arc<Self>, ids: &[String]) {
        if !self.store.shared() || ids.is_empty() {
            return;
        }
        self.start_relay();
        if let Err(e) = self.renew(ids).await {
            tracing::warn!(error = %e, "socket holder not recorded; the next renewal retries");
        }
    }

    async fn renew(&self, ids: &[String]) -> Result<(), SofaError> {
        let lease_until = self.clock.now() + lease();
        let mut tx = self.store.begin().await?;
        for id in ids {
            tx.hold_socket(id, &self.relay.instance, lease_until)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Forgets this instance's claims on `ids` (their last socket here closed).
    pub(crate) async fn release_sockets(&self, ids: &[String]) {
        if !self.store.shared() || ids.is_empty() {
            return;
        }
        let released = async {
            let mut tx = self.store.begin().await?;
            for id in ids {
                tx.release_socket(id, &self.relay.instance).await?;
            }
            tx.commit().await
        };
        if let Err(e) = released.await {
            // The lease runs out on its own.
            tracing::warn!(error = %e, "socket holder not released");
        }
    }

    /// Whether a socket bound to the subscription can be reached: here, or on another
    /// instance whose claim is live.
    pub(crate) async fn socket_reachable(&self, id: &str) -> bool {
        if self.hub.is_bound(id) {
            return true;
        }
        if !self.store.shared() {
            return false;
        }
        let holders = async {
            let mut tx = self.store.begin_read().await?;
            tx.socket_holders(id, self.clock.now()).await
        };
        holders.await.is_ok_and(|h| !h.is_empty())
    }

    /// Has the socket bound on another instance write logged event `event_number` of `id`
    /// within `timeout`; `Err` says why it was not acknowledged.
    pub(crate) async fn deliver_remotely(
        &self,
        id: &str,
        event_number: u64,
        timeout: Duration,
    ) -> Result<(), String> {
        if !self.socket_reachable(id).await {
            return Err("no websocket is bound to the subscription".to_string());
        }
        let until = Instant::now() + timeout;
        let deadline = self.clock.now()
            + ChronoDuration::from_std(timeout).unwrap_or(ChronoDuration::seconds(10));
        let requested = async {
            let mut tx = self.store.begin().await?;
            tx.request_socket_delivery(id, event_number, deadline)
                .await?;
            tx.commit().await
        };
        requested
            .await
            .map_err(|e| format!("the delivery request could not be recorded: {e}"))?;
        if let Err(e) = self.store.wake(id).await {
            // The holder finds the request on its next tick.
            tracing::info!(error = %e, "wake-up not sent");
        }
        loop {
            tokio::time::sleep(POLL_EVERY).await;
            let delivered = async {
                let mut tx = self.store.begin_read().await?;
                tx.socket_delivered(id, event_number).await
            };
            if delivered.await.unwrap_or(false) {
                return Ok(());
            }
            if Instant::now() >= until {
                return Err(format!(
                    "the websocket bound on another instance did not take the frame within {} ms",
                    timeout.as_millis()
                ));
            }
        }
    }

    fn start_relay(self: &Arc<Self>) {
        if self.relay.started.swap(true, Ordering::SeqCst) {
            return;
        }
        // A shared store without wake-ups still works, on the re-scan tick alone.
        tokio::spawn(run(Arc::downgrade(self), self.store.wakeups()));
    }

    /// Finds the open requests for the sockets held here (one query) and starts a writer for
    /// each subscription that has none.
    async fn scan(self: &Arc<Self>) -> Result<(), SofaError> {
        if self.hub.bound_ids().is_empty() {
            return Ok(());
        }
        let requests = {
            let mut tx = self.store.begin_read().await?;
            tx.socket_delivery_requests(&self.relay.instance, self.clock.now())
                .await?
        };
        let mut by_subscription: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for (id, number) in requests {
            by_subscription.entry(id).or_default().push(number);
        }
        for (id, numbers) in by_subscription {
            if !self.hub.is_bound(&id) || !self.relay.start_writing(&id) {
                continue;
            }
            let inner = self.clone();
            tokio::spawn(async move {
                if let Err(e) = inner.write_requested(&id, &numbers).await {
                    tracing::warn!(subscription = %id, error = %e, "socket requests not served");
                }
                inner.relay.done_writing(&id);
            });
        }
        Ok(())
    }

    /// Writes requested events `numbers` of `id` to the sockets bound here, in order,
    /// confirming each in the store.
    async fn write_requested(&self, id: &str, numbers: &[u64]) -> Result<(), SofaError> {
        let (record, events) = {
            let mut tx = self.store.begin_read().await?;
            let Some(record) = tx.get_subscription(id).await? else {
                return Ok(());
            };
            let mut events = Vec::with_capacity(numbers.len());
            for &number in numbers {
                events.extend(tx.events(id, number, Some(number)).await?);
            }
            (record, events)
        };
        let Some(subscription) = typed(&record) else {
            return Ok(());
        };
        let timeout = self.timeout_of(&subscription);
        for event in events {
            let number = event.event_number;
            let body = self.event_notification(&record, &subscription, &event);
            match self.hub.send(id, body.to_string(), timeout).await {
                Ok(()) => self.confirm(id, number).await?,
                Err(reason) => {
                    // The writer times out and compensates; later frames would overtake it.
                    tracing::info!(subscription = %id, event = number, %reason,
                        "requested frame not written");
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    async fn confirm(&self, id: &str, number: u64) -> Result<(), SofaError> {
        let mut tx = self.store.begin().await?;
        tx.confirm_socket_delivery(id, number).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The relay: looks for requests when woken, on a re-scan tick and after a subscription's
/// writer finishes, and renews this instance's socket claims; ends with the service.
async fn run(inner: Weak<Inner>, mut wakeups: Option<tokio::sync::broadcast::Receiver<Wakeup>>) {
    let mut rescan = tokio::time::interval(RESCAN_EVERY);
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut renew = tokio::time::interval(RENEW_EVERY);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The wake-up call only: holding the service here would keep it alive for ever.
    let Some(again) = inner.upgrade().map(|i| i.relay.again.clone()) else {
        return;
    };
    loop {
        let woken = async {
            match wakeups.as_mut() {
                Some(wakeups) => wakeups.recv().await,
                None => std::future::pending().await,
            }
        };
        let renewing = tokio::select! {
            wakeup = woken => match wakeup {
                // Any wake-up means a look at every request for a socket held here: one query.
                Ok(_) | Err(RecvError::Lagged(_)) => false,
                // The listener is gone with the store: go on with the ticks.
                Err(RecvError::Closed) => {
                    wakeups = None;
                    false
                }
            },
            () = again.notified() => false,
            _ = rescan.tick() => false,
            _ = renew.tick() => true,
        };
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if renewing {
            if let Err(e) = inner.renew(&inner.hub.bound_ids()).await {
                tracing::warn!(error = %e, "socket holders not renewed");
            }
        } else if let Err(e) = inner.scan().await {
            tracing::warn!(error = %e, "socket requests not read");
        }
    }
}

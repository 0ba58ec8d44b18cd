//! Per-PoC serialisation of writes and subscription changes, and the tracker of in-flight work
//! that graceful shutdown waits on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, OwnedMutexGuard};

/// One async mutex per PoC client. Everything that reads and then writes a PoC's subscription
/// counters or statuses holds it, so event numbers are allocated without gaps or races while
/// different PoCs never wait on each other (REQ SUB-12).
#[derive(Default)]
pub(crate) struct PocLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl PocLocks {
    /// Waits for and takes the lock of `poc_client_id`.
    pub(crate) async fn lock(&self, poc_client_id: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            // Forget idle PoCs now and then so the map does not grow without bound.
            if locks.len() > 1024 {
                locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            }
            locks.entry(poc_client_id.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }
}

/// Counts in-flight work; once closed, refuses new work and lets [`Tracker::close_and_wait`]
/// return when the count reaches zero.
#[derive(Default)]
pub(crate) struct Tracker {
    count: AtomicUsize,
    closed: AtomicBool,
    idle: Notify,
}

/// Held while one piece of work is in flight.
pub(crate) struct TrackerGuard {
    tracker: Arc<Tracker>,
}

impl Tracker {
    /// Registers work; `None` once shutdown has begun.
    pub(crate) fn enter(self: &Arc<Self>) -> Option<TrackerGuard> {
        self.count.fetch_add(1, Ordering::SeqCst);
        if self.closed.load(Ordering::SeqCst) {
            self.leave();
            return None;
        }
        Some(TrackerGuard {
            tracker: self.clone(),
        })
    }

    fn leave(&self) {
        if self.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    pub(crate) async fn close_and_wait(&self) {
        self.closed.store(true, Ordering::SeqCst);
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.count() == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl Drop for TrackerGuard {
    fn drop(&mut self) {
        self.tracker.leave();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_waits_for_work_in_flight() {
        let tracker = Arc::new(Tracker::default());
        let work = {
            let tracker = tracker.clone();
            tokio::spawn(async move {
                let _guard = tracker.enter().unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        tracker.close_and_wait().await;
        assert!(work.is_finished() || tracker.count() == 0);
        assert!(tracker.enter().is_none());
        work.await.unwrap();
    }

    #[tokio::test]
    async fn different_pocs_do_not_share_a_lock() {
        let locks = PocLocks::default();
        let _a = locks.lock("poc-a").await;
        let b = tokio::time::timeout(std::time::Duration::from_millis(100), locks.lock("poc-b"));
        assert!(b.await.is_ok());
        let a_again =
            tokio::time::timeout(std::time::Duration::from_millis(50), locks.lock("poc-a"));
        assert!(a_again.await.is_err());
    }
}

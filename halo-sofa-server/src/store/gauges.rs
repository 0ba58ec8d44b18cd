//! The store's gauges for the metrics a host scrapes (REQ OPS-02).

use super::{Store, StoreResult};
use crate::metrics;

/// Samples the gauges that are counts in the store ([`LIVE_LAUNCHES`](metrics::LIVE_LAUNCHES), [`OUTBOX_DEPTH`](metrics::OUTBOX_DEPTH)) with
/// one read transaction; a host calls it before rendering a scrape. On a store error the
/// gauges keep their last value, and the error is returned for the host to log.
pub async fn sample_metrics(store: &dyn Store) -> StoreResult<()> {
    let mut tx = store.begin_read().await?;
    let launches = tx.count_launches().await?;
    let mut depth = 0usize;
    for subscription in tx.subscriptions_with_unsettled_events().await? {
        depth += tx.unsettled_events(&subscription).await?.len();
    }
    let _ = tx.rollback().await;
    // Counts far below 2^52: exact as f64.
    ::metrics::gauge!(metrics::LIVE_LAUNCHES).set(launches as f64);
    ::metrics::gauge!(metrics::OUTBOX_DEPTH).set(depth as f64);
    Ok(())
}

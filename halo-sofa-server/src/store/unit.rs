//! Units: a whole transaction handed to the store as one piece of work, to write
//! ([`WriteUnit`]) or to read ([`ReadUnit`]).
//!
//! A unit is a closure that gets the transaction and does all its reads and writes through it,
//! awaiting nothing else. Handing the store the whole unit, rather than opening a transaction
//! and sending it one statement at a time, lets a backend run it where its connection is: the
//! SQLite store runs units on its writer thread, without a thread hop per statement, and
//! commits several queued units together (group commit), each still all-or-nothing. A backend
//! that cannot do better runs it in an ordinary transaction ([`run_in_transaction`]). A read
//! unit is the same for reads: the SQLite store runs it on a reader thread that keeps its
//! connection, one hop for the whole request's reads.
//!
//! ```
//! # async fn example(store: std::sync::Arc<dyn halo_sofa_server::store::Store>) {
//! use halo_sofa_server::store::{LaunchOps, StoreError};
//!
//! // Removes a launch if it exists; whether it did. An `Err` leaves nothing written.
//! let removed: Result<bool, StoreError> = store
//!     .write(|tx| Box::pin(async move { tx.delete_launch("launch-1").await }))
//!     .await;
//! # let _ = removed;
//! # }
//! ```

use std::any::Any;

use super::{BoxFuture, Store, StoreError, StoreResult, Transaction};

/// What a unit ended with: its answer, and whether its writes are kept.
pub struct UnitOutcome {
    /// The unit's answer, handed back to whoever submitted it.
    pub value: Box<dyn Any + Send>,
    /// Whether the unit's writes are committed (`false`: rolled back, the answer still given).
    pub keep: bool,
}

/// A write unit, type-erased so that [`Store::run_unit`] can take it through `dyn Store`. It
/// must await nothing but its transaction: a backend may poll it where nothing else runs.
pub type WriteUnit =
    Box<dyn for<'t> FnOnce(&'t mut dyn Transaction) -> BoxFuture<'t, UnitOutcome> + Send>;

/// The plain way to run a unit: one transaction of its own, committed if the unit keeps its
/// writes, rolled back otherwise. [`Store::run_unit`]'s default.
pub async fn run_in_transaction(
    store: &(impl Store + ?Sized),
    unit: WriteUnit,
) -> StoreResult<Box<dyn Any + Send>> {
    let mut tx = store.begin().await?;
    let outcome = unit(tx.as_mut()).await;
    if outcome.keep {
        tx.commit().await?;
    } else {
        // Nothing was kept; a failed rollback leaves nothing either.
        let _ = tx.rollback().await;
    }
    Ok(outcome.value)
}

/// A read unit: like a [`WriteUnit`], over a transaction whose writes are refused or rolled
/// back, and which answers without a keep-or-not.
pub type ReadUnit =
    Box<dyn for<'t> FnOnce(&'t mut dyn Transaction) -> BoxFuture<'t, Box<dyn Any + Send>> + Send>;

/// The plain way to run a read unit: a read transaction of its own
/// ([`Store::begin_read`]), ended after it. [`Store::run_read`]'s default.
pub async fn read_in_transaction(
    store: &(impl Store + ?Sized),
    unit: ReadUnit,
) -> StoreResult<Box<dyn Any + Send>> {
    let mut tx = store.begin_read().await?;
    let value = unit(tx.as_mut()).await;
    let _ = tx.rollback().await;
    Ok(value)
}

impl dyn Store {
    /// Runs `unit` as one write transaction: committed if it answers `Ok`, rolled back if it
    /// answers `Err`. A failure to commit is the unit's error too (`E: From<StoreError>`), so
    /// an `Ok` answer means the writes are durable.
    ///
    /// The unit awaits only its transaction's operations: it may run on the thread that owns
    /// the database connection, where nothing else is polled. A unit that awaits something
    /// else there is rolled back with [`StoreError::Backend`].
    pub async fn write<R, E, F>(&self, unit: F) -> Result<R, E>
    where
        F: for<'t> FnOnce(&'t mut dyn Transaction) -> BoxFuture<'t, Result<R, E>> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let erased: WriteUnit = Box::new(move |tx| {
            let work = unit(tx);
            Box::pin(async move {
                let answer = work.await;
                UnitOutcome {
                    keep: answer.is_ok(),
                    value: Box::new(answer),
                }
            })
        });
        typed(self.run_unit(erased).await?)
    }

    /// Runs `unit` in one read transaction (one snapshot) and hands back its answer; a store
    /// that cannot run it is the unit's error too. The unit awaits only its transaction, as a
    /// [`write`](Self::write) unit does.
    pub async fn read<R, E, F>(&self, unit: F) -> Result<R, E>
    where
        F: for<'t> FnOnce(&'t mut dyn Transaction) -> BoxFuture<'t, Result<R, E>> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let erased: ReadUnit = Box::new(move |tx| {
            let work = unit(tx);
            Box::pin(async move { Box::new(work.await) as Box<dyn Any + Send> })
        });
        typed(self.run_read(erased).await?)
    }
}

/// A unit's erased answer as the typed one its submitter built it with.
fn typed<R: 'static, E: From<StoreError> + 'static>(value: Box<dyn Any + Send>) -> Result<R, E> {
    match value.downcast::<Result<R, E>>() {
        Ok(answer) => *answer,
        Err(_) => Err(StoreError::Backend("a unit answered with another type".into()).into()),
    }
}

//! Reader threads: read units run on a few threads that each keep a read-only connection of
//! their own, fed by one bounded queue. A request's reads then cost one hand-over to a reader
//! and one answer back, where a read transaction on the blocking pool costs a hop per statement
//! and one more to end.

use std::any::Any;
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::writer::run_lent;
use crate::store::{ReadUnit, StoreError, StoreResult};

/// Read units waiting for a reader at most; past it a read is told the store is busy.
pub(super) const QUEUE: usize = 4096;

/// Reader threads: twice the cores (a read waits on the page cache or the disk now and then),
/// at least two.
pub(super) fn threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    (cores * 2).clamp(2, 16)
}

/// A read unit waiting for a reader.
pub(super) struct QueuedRead {
    pub(super) unit: ReadUnit,
    pub(super) reply: oneshot::Sender<StoreResult<Box<dyn Any + Send>>>,
}

/// The queue every reader thread takes from.
pub(super) type Jobs = Arc<Mutex<std_mpsc::Receiver<QueuedRead>>>;

/// No reader took the unit: the queue is full or the readers have stopped.
pub(super) fn refused(error: std_mpsc::TrySendError<QueuedRead>) -> StoreError {
    match error {
        std_mpsc::TrySendError::Full(_) => {
            StoreError::Unavailable("the database is busy: too many reads waiting".into())
        }
        std_mpsc::TrySendError::Disconnected(_) => stopped(),
    }
}

/// The reader threads are gone.
pub(super) fn stopped() -> StoreError {
    StoreError::Backend("the storage readers have stopped".into())
}

/// A reader thread: serves read units until the store is dropped. Its connection is opened at
/// its first unit and kept; one that fails is replaced at the next.
pub(super) fn run_reader(path: PathBuf, busy_timeout: Duration, jobs: Jobs) {
    let mut kept: Option<Connection> = None;
    loop {
        // The lock is held only while this thread waits for the next unit; the others wait
        // for the lock meanwhile.
        let job = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(QueuedRead { unit, reply }) = job else {
            return;
        };
        if reply.is_closed() {
            continue;
        }
        let connection = match kept.take() {
            Some(connection) => connection,
            None => match super::connect_reader(&path, busy_timeout) {
                Ok(connection) => connection,
                Err(error) => {
                    let _ = reply.send(Err(error));
                    continue;
                }
            },
        };
        // One snapshot for the whole unit.
        if let Err(error) = connection.execute_batch("BEGIN DEFERRED") {
            let _ = reply.send(Err(super::ops::error(error)));
            continue;
        }
        let mut tx = super::SqliteTransaction::lent(connection);
        let answer = run_lent(&mut tx, unit);
        if let Some(connection) = tx.give_back_lent()
            && (connection.is_autocommit() || connection.execute_batch("ROLLBACK").is_ok())
        {
            kept = Some(connection);
        }
        let _ = reply.send(answer);
    }
}

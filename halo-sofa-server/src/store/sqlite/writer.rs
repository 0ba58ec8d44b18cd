//! The single writer: one thread owns the database's only write connection and serves write
//! transactions one after the other, in the order they asked (a FIFO queue with a deadline).
//!
//! SQLite has one writer at a time. Letting every transaction fight for the write lock on its
//! own connection meant SQLite's busy handler, which sleeps (up to 100 ms a try) and wakes in no
//! order: the multi-second tails under load. Here the lock is taken once per transaction by the
//! one thread that holds the connection, and waiting is a place in a queue. A transaction keeps
//! the writer while it is open (its caller awaits other things between statements, so the
//! trait cannot hand the whole unit over as one closure); each statement is a message to the
//! writer thread, which runs it on its connection with its prepared-statement cache warm.
//!
//! Committed writes wake the [`checkpointer`](run_checkpointer): the writer's connection has
//! auto-checkpoint off, so no commit pays for copying the WAL back into the database.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::ops;
use crate::store::{StoreError, StoreResult};

/// How many write transactions may wait for the writer; more wait to join the queue (in
/// order, within the same deadline).
pub(super) const QUEUE: usize = 1024;
/// A checkpoint runs at most this often, and this long after the first commit it follows, so
/// the WAL holds at most this much of the write load.
const CHECKPOINT_PERIOD: Duration = Duration::from_millis(200);

/// One statement of an open transaction, run on the writer's connection. It sends its own
/// result back.
pub(super) type Statement = Box<dyn FnOnce(&Connection) + Send>;

/// A request to the writer thread.
pub(super) enum Job {
    /// Open a write transaction for the requester, unless `deadline` has passed before the
    /// writer comes to it.
    Begin {
        deadline: Instant,
        reply: oneshot::Sender<StoreResult<Session>>,
    },
    /// Stops the writer thread as a crash would (tests of what callers see then).
    #[cfg(test)]
    Crash,
}

/// A message of an open transaction to the writer.
enum Message {
    Run(Statement),
    End {
        commit: bool,
        reply: oneshot::Sender<StoreResult<()>>,
    },
}

/// An open write transaction's line to the writer thread. Dropping it rolls the transaction
/// back and frees the writer for the next in the queue.
pub(super) struct Session {
    messages: std_mpsc::Sender<Message>,
}

impl Session {
    /// Runs `work` on the writer's connection inside this transaction.
    pub(super) async fn run<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    ) -> StoreResult<R> {
        let (reply, answer) = oneshot::channel();
        let statement: Statement = Box::new(move |connection| {
            let _ = reply.send(work(connection));
        });
        self.messages
            .send(Message::Run(statement))
            .map_err(|_| ended())?;
        // The reply is dropped unsent only if the statement panicked, which ends the
        // transaction (rolled back).
        answer.await.map_err(|_| {
            StoreError::Backend(
                "a statement failed on the storage writer; the transaction was rolled back".into(),
            )
        })?
    }

    /// Commits (`commit`) or rolls back the transaction.
    pub(super) async fn end(self, commit: bool) -> StoreResult<()> {
        let (reply, answer) = oneshot::channel();
        self.messages
            .send(Message::End { commit, reply })
            .map_err(|_| ended())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The transaction's writer session is gone (a failed statement ended it).
pub(super) fn ended() -> StoreError {
    StoreError::Backend("the transaction has ended".into())
}

/// The writer thread is gone.
pub(super) fn stopped() -> StoreError {
    StoreError::Backend("the storage writer has stopped".into())
}

/// No turn at the writer within the busy timeout.
pub(super) fn busy(waited: Duration) -> StoreError {
    StoreError::Unavailable(format!(
        "the database is busy: no write turn within {} ms",
        waited.as_millis()
    ))
}

/// The writer thread: serves the queue until every sender is gone (the store was dropped),
/// then closes its connection, which stops the checkpointer too.
pub(super) fn run_writer(
    mut connection: Connection,
    path: PathBuf,
    mut queue: mpsc::Receiver<Job>,
    checkpoints: std_mpsc::SyncSender<()>,
) {
    while let Some(job) = queue.blocking_recv() {
        match job {
            Job::Begin { deadline, reply } => {
                serve(&connection, deadline, reply, &checkpoints);
                // A unit always ends with the connection out of any transaction; if a
                // ROLLBACK itself failed, a fresh connection replaces the stuck one.
                if !connection.is_autocommit()
                    && let Ok(fresh) = super::connect_writer(&path)
                {
                    connection = fresh;
                }
            }
            #[cfg(test)]
            Job::Crash => panic!("the storage writer was told to crash"),
        }
    }
}

/// Serves one write transaction from `BEGIN` to its end.
fn serve(
    connection: &Connection,
    deadline: Instant,
    reply: oneshot::Sender<StoreResult<Session>>,
    checkpoints: &std_mpsc::SyncSender<()>,
) {
    if reply.is_closed() {
        // The requester stopped waiting (its deadline, or it was cancelled).
        return;
    }
    let now = Instant::now();
    let Some(left) = deadline
        .checked_duration_since(now)
        .filter(|d| !d.is_zero())
    else {
        let _ = reply.send(Err(StoreError::Unavailable(
            "the database is busy: the write waited past its deadline".into(),
        )));
        return;
    };
    // Inside this store nobody else writes; another process on the same file may, and its
    // lock is waited out only until the requester's deadline.
    let _ = connection.busy_timeout(left);
    // IMMEDIATE takes the write lock now, so a transaction never fails half-way on a lock
    // upgrade.
    if let Err(e) = connection.execute_batch("BEGIN IMMEDIATE") {
        let _ = reply.send(Err(ops::error(e)));
        return;
    }
    let (sender, messages) = std_mpsc::channel();
    if reply.send(Ok(Session { messages: sender })).is_err() {
        roll_back(connection);
        return;
    }
    loop {
        match messages.recv() {
            Ok(Message::Run(statement)) => {
                if catch_unwind(AssertUnwindSafe(|| statement(connection))).is_err() {
                    roll_back(connection);
                    return;
                }
            }
            Ok(Message::End { commit, reply }) => {
                let sql = if commit { "COMMIT" } else { "ROLLBACK" };
                let result = connection.execute_batch(sql).map_err(ops::error);
                if result.is_err() {
                    roll_back(connection);
                } else if commit {
                    // Coalesced: a wake-up already pending is enough.
                    let _ = checkpoints.try_send(());
                }
                let _ = reply.send(result);
                return;
            }
            // The transaction was dropped without an end.
            Err(_) => {
                roll_back(connection);
                return;
            }
        }
    }
}

fn roll_back(connection: &Connection) {
    if !connection.is_autocommit() {
        let _ = connection.execute_batch("ROLLBACK");
    }
}

/// The checkpointer thread: copies the WAL back into the database (`PASSIVE`: it never waits
/// for, nor blocks, the writer or readers) a little after commits, at most every
/// [`CHECKPOINT_PERIOD`]. It runs a last checkpoint and stops when the writer has stopped.
pub(super) fn run_checkpointer(connection: Connection, wakeups: std_mpsc::Receiver<()>) {
    let checkpoint = || {
        // A failure (a busy lock held by another process) is retried on the next wake-up.
        let _ = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    };
    let mut last = Instant::now();
    // Wait for a commit; none will come once the writer has stopped.
    while wakeups.recv().is_ok() {
        // Let more commits gather behind this one, then copy them all in one checkpoint.
        let until = last + CHECKPOINT_PERIOD;
        let mut stopping = false;
        loop {
            let wait = until.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                break;
            }
            match wakeups.recv_timeout(wait) {
                Ok(()) => {}
                Err(std_mpsc::RecvTimeoutError::Timeout) => break,
                Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                    stopping = true;
                    break;
                }
            }
        }
        checkpoint();
        last = Instant::now();
        if stopping {
            break;
        }
    }
}

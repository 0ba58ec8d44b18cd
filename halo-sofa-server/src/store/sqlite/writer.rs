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
//! auto-checkpoint off, so no commit pays for copying the WAL back into the database. Only when
//! the WAL has grown past [`RESTART_FRAMES`] does the writer finish a checkpoint itself,
//! between two transactions, so that SQLite can start the WAL over.

use std::ffi::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
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
/// WAL frames (pages) past which a commit wakes the checkpointer at once instead of letting
/// commits gather (SQLite's own auto-checkpoint threshold).
const URGENT_FRAMES: i32 = 1000;
/// WAL frames past which the writer finishes a checkpoint itself between two transactions, so
/// the WAL starts over (about 16 MiB with 4 KiB pages). A checkpoint beside the writer never
/// catches up under a steady write load (frames arrive while it copies), and SQLite starts the
/// WAL over only after a checkpoint that copied every frame; the writer's, run while no
/// transaction is open, mostly has the few frames the checkpointer left.
const RESTART_FRAMES: i32 = 4096;

/// What the writer and the checkpointer share about the WAL.
#[derive(Debug, Default)]
pub(super) struct WalState {
    /// Frames in the WAL after the writer's last commit (SQLite's WAL hook).
    frames: AtomicI32,
    /// The checkpointer should not wait for more commits.
    urgent: AtomicBool,
    /// Held by whichever of the two runs a checkpoint: SQLite runs one at a time and a second
    /// `PASSIVE` one gives up at once, so the writer's would mostly lose to the checkpointer's.
    checkpointing: Mutex<()>,
}

/// Registers the WAL hook on the writer's connection (after `wal_autocheckpoint = 0`, which
/// would replace it).
pub(super) fn watch_wal(connection: &mut Connection, wal: &Arc<WalState>) -> rusqlite::Result<()> {
    let wal = wal.clone();
    connection.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, frames: c_int| {
        wal.frames.store(frames, Ordering::Relaxed);
        Ok(())
    }))
}

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
    wal: Arc<WalState>,
) {
    while let Some(job) = queue.blocking_recv() {
        match job {
            Job::Begin { deadline, reply } => {
                if serve(&connection, deadline, reply) {
                    let frames = wal.frames.load(Ordering::Relaxed);
                    if frames >= URGENT_FRAMES {
                        wal.urgent.store(true, Ordering::Relaxed);
                    }
                    // Coalesced: a wake-up already pending is enough.
                    let _ = checkpoints.try_send(());
                    if frames >= RESTART_FRAMES && passive_checkpoint(&connection, &wal) {
                        wal.frames.store(0, Ordering::Relaxed);
                    }
                }
                // A unit always ends with the connection out of any transaction; if a
                // ROLLBACK itself failed, a fresh connection replaces the stuck one.
                if !connection.is_autocommit()
                    && let Ok(fresh) = super::connect_writer(&path, &wal)
                {
                    connection = fresh;
                }
            }
            #[cfg(test)]
            Job::Crash => panic!("the storage writer was told to crash"),
        }
    }
    // Closed before the checkpointer is told to stop, so its connection is the last and its
    // close copies the WAL back and removes it (two closing at once would each leave it to
    // the other).
    drop(connection);
    drop(checkpoints);
}

/// Serves one write transaction from `BEGIN` to its end; whether it committed.
fn serve(
    connection: &Connection,
    deadline: Instant,
    reply: oneshot::Sender<StoreResult<Session>>,
) -> bool {
    if reply.is_closed() {
        // The requester stopped waiting (its deadline, or it was cancelled).
        return false;
    }
    let now = Instant::now();
    let Some(left) = deadline
        .checked_duration_since(now)
        .filter(|d| !d.is_zero())
    else {
        let _ = reply.send(Err(StoreError::Unavailable(
            "the database is busy: the write waited past its deadline".into(),
        )));
        return false;
    };
    // Inside this store nobody else writes; another process on the same file may, and its
    // lock is waited out only until the requester's deadline.
    let _ = connection.busy_timeout(left);
    // IMMEDIATE takes the write lock now, so a transaction never fails half-way on a lock
    // upgrade.
    if let Err(e) = connection.execute_batch("BEGIN IMMEDIATE") {
        let _ = reply.send(Err(ops::error(e)));
        return false;
    }
    let (sender, messages) = std_mpsc::channel();
    if reply.send(Ok(Session { messages: sender })).is_err() {
        roll_back(connection);
        return false;
    }
    loop {
        match messages.recv() {
            Ok(Message::Run(statement)) => {
                if catch_unwind(AssertUnwindSafe(|| statement(connection))).is_err() {
                    roll_back(connection);
                    return false;
                }
            }
            Ok(Message::End { commit, reply }) => {
                let sql = if commit { "COMMIT" } else { "ROLLBACK" };
                let result = connection.execute_batch(sql).map_err(ops::error);
                let committed = commit && result.is_ok();
                if result.is_err() {
                    roll_back(connection);
                }
                let _ = reply.send(result);
                return committed;
            }
            // The transaction was dropped without an end.
            Err(_) => {
                roll_back(connection);
                return false;
            }
        }
    }
}

fn roll_back(connection: &Connection) {
    if !connection.is_autocommit() {
        let _ = connection.execute_batch("ROLLBACK");
    }
}

/// `PRAGMA wal_checkpoint(PASSIVE)`, after any other checkpoint of this store; whether it
/// copied every frame. It never waits for, nor blocks, a writer or a reader.
fn passive_checkpoint(connection: &Connection, wal: &WalState) -> bool {
    let _turn = wal.checkpointing.lock().unwrap_or_else(|e| e.into_inner());
    // (busy, frames in the WAL, frames copied): done when nothing was busy and every frame
    // was copied. A failure (a lock held by another process) is retried later.
    let result = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, i64>(2)?,
        ))
    });
    matches!(result, Ok((0, frames, copied)) if frames == copied)
}

/// The checkpointer thread: copies the WAL back into the database a little after commits, at
/// most every [`CHECKPOINT_PERIOD`], or at once when the WAL has passed [`URGENT_FRAMES`]. It
/// runs a last checkpoint and stops when the writer has stopped.
pub(super) fn run_checkpointer(
    connection: Connection,
    wakeups: std_mpsc::Receiver<()>,
    wal: Arc<WalState>,
) {
    // A failure (a lock held by another process) is retried on the next wake-up.
    let checkpoint = || {
        passive_checkpoint(&connection, &wal);
    };
    let mut last = Instant::now();
    // Wait for a commit; none will come once the writer has stopped.
    while wakeups.recv().is_ok() {
        // Let more commits gather behind this one, then copy them all in one checkpoint.
        let until = last + CHECKPOINT_PERIOD;
        let mut stopping = false;
        while !wal.urgent.load(Ordering::Relaxed) {
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
        wal.urgent.store(false, Ordering::Relaxed);
        checkpoint();
        last = Instant::now();
        if stopping {
            break;
        }
    }
}

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

use std::any::Any;
use std::ffi::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::ops;
use crate::store::{StoreError, StoreResult, WriteUnit};

/// Write units committed together at most: one `COMMIT` (and one WAL append of the pages they
/// share) for all of them.
const GROUP: usize = 64;
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
    /// The most units one group commit has carried (tests of the grouping).
    #[cfg(test)]
    pub(super) largest_group: std::sync::atomic::AtomicUsize,
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
    /// Run a write unit, in a group with the units queued behind it.
    Unit(QueuedUnit),
    /// Stops the writer thread as a crash would (tests of what callers see then).
    #[cfg(test)]
    Crash,
}

/// A write unit waiting for the writer.
pub(super) struct QueuedUnit {
    /// Past this, the writer answers `Unavailable` without running the unit.
    pub(super) deadline: Instant,
    pub(super) unit: WriteUnit,
    pub(super) reply: oneshot::Sender<StoreResult<Box<dyn Any + Send>>>,
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
    // A job taken from the queue while gathering a group, served next.
    let mut next = None;
    loop {
        let Some(job) = next.take().or_else(|| queue.blocking_recv()) else {
            break;
        };
        let committed = match job {
            Job::Begin { deadline, reply } => serve(&connection, deadline, reply),
            Job::Unit(first) => {
                // Every unit already queued joins the group (up to GROUP); a session or
                // anything else waits for the group's commit.
                let mut group = vec![first];
                while group.len() < GROUP {
                    match queue.try_recv() {
                        Ok(Job::Unit(unit)) => group.push(unit),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                #[cfg(test)]
                wal.largest_group.fetch_max(group.len(), Ordering::Relaxed);
                let (back, committed) = run_group(connection, group);
                match back.map_or_else(|| super::connect_writer(&path, &wal), Ok) {
                    Ok(back) => connection = back,
                    // No connection to write with: the writer stops, and every caller is
                    // told the store is unavailable.
                    Err(_) => return,
                }
                committed
            }
            #[cfg(test)]
            Job::Crash => panic!("the storage writer was told to crash"),
        };
        if committed {
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
        // A unit always ends with the connection out of any transaction; if a ROLLBACK itself
        // failed, a fresh connection replaces the stuck one.
        if !connection.is_autocommit()
            && let Ok(fresh) = super::connect_writer(&path, &wal)
        {
            connection = fresh;
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

/// Runs a group of write units in one transaction, each inside its own savepoint, and commits
/// them with one `COMMIT` (group commit). A unit that does not keep its writes is rolled back
/// to its savepoint, so it changes nothing for the others; the answers go out after the commit,
/// so an `Ok` is never sent for writes that might still be lost. Gives the connection back
/// (`None` only if it was lost) and whether anything committed.
fn run_group(mut connection: Connection, group: Vec<QueuedUnit>) -> (Option<Connection>, bool) {
    let now = Instant::now();
    let mut waiting = Vec::with_capacity(group.len());
    for queued in group {
        if queued.reply.is_closed() {
            // The requester is gone (its deadline, or it was cancelled): nothing to run for.
            continue;
        }
        if queued.deadline <= now {
            let _ = queued.reply.send(Err(StoreError::Unavailable(
                "the database is busy: the write waited past its deadline".into(),
            )));
            continue;
        }
        waiting.push(queued);
    }
    let Some(latest) = waiting.iter().map(|queued| queued.deadline).max() else {
        return (Some(connection), false);
    };
    // Inside this store nobody else writes; another process on the same file may, and its lock
    // is waited out only until the last requester's deadline.
    let _ = connection.busy_timeout(latest.saturating_duration_since(now));
    // Answers wait here for the group's commit: (reply, answer, whether its writes are in the
    // open transaction).
    let mut answers: Vec<Answer> = Vec::with_capacity(waiting.len());
    let mut open = false;
    for queued in waiting {
        if !open {
            if let Err(e) = connection.execute_batch("BEGIN IMMEDIATE") {
                let _ = queued.reply.send(Err(ops::error(e)));
                continue;
            }
            open = true;
        }
        if let Err(e) = connection.execute_batch("SAVEPOINT unit") {
            let _ = queued.reply.send(Err(ops::error(e)));
            continue;
        }
        let mut tx = super::SqliteTransaction::lent(connection);
        let (answer, keep) = poll_unit(queued.unit, &mut tx);
        let Some(back) = tx.give_back_lent() else {
            // Unreachable by construction; a fresh connection replaces it and nothing of the
            // group was committed.
            lose(&mut answers, "the writer's connection was lost");
            let _ = queued
                .reply
                .send(Err(lost("the writer's connection was lost")));
            return (None, false);
        };
        connection = back;
        let end = if keep {
            "RELEASE unit"
        } else {
            "ROLLBACK TO unit; RELEASE unit"
        };
        let ended = connection.execute_batch(end);
        if ended.is_err() || connection.is_autocommit() {
            // SQLite rolled the whole transaction back (an I/O error, a full disk): the units
            // before this one lost their writes with it. The next unit begins anew.
            let why = ended.err().map_or_else(
                || "SQLite rolled the transaction back".to_owned(),
                |e| e.to_string(),
            );
            roll_back(&connection);
            open = false;
            lose(&mut answers, &why);
            let answer = if keep { Err(lost(&why)) } else { answer };
            let _ = queued.reply.send(answer);
            continue;
        }
        answers.push(Answer {
            reply: queued.reply,
            answer,
            kept: keep,
        });
    }
    let mut committed = false;
    if open {
        match connection.execute_batch("COMMIT") {
            Ok(()) => committed = answers.iter().any(|a| a.kept),
            Err(e) => {
                roll_back(&connection);
                lose(&mut answers, &e.to_string());
            }
        }
    }
    for Answer { reply, answer, .. } in answers {
        let _ = reply.send(answer);
    }
    (Some(connection), committed)
}

/// A unit's answer, held until its group commits.
struct Answer {
    reply: oneshot::Sender<StoreResult<Box<dyn Any + Send>>>,
    answer: StoreResult<Box<dyn Any + Send>>,
    /// Whether its writes are in the group's open transaction.
    kept: bool,
}

/// The group's transaction is gone: every answer whose writes were in it becomes an error.
fn lose(answers: &mut [Answer], why: &str) {
    for answer in answers.iter_mut().filter(|a| a.kept) {
        answer.answer = Err(lost(why));
        answer.kept = false;
    }
}

fn lost(why: &str) -> StoreError {
    StoreError::Backend(format!(
        "the write was rolled back with the transaction it shared: {why}"
    ))
}

/// Runs a unit to its end on this thread: its answer and whether to keep its writes.
fn poll_unit(
    unit: WriteUnit,
    tx: &mut super::SqliteTransaction,
) -> (StoreResult<Box<dyn Any + Send>>, bool) {
    match run_lent(tx, unit) {
        Ok(outcome) => (Ok(outcome.value), outcome.keep),
        Err(error) => (Err(error), false),
    }
}

/// Runs a unit on this thread over a lent transaction. Every operation of a lent transaction
/// completes at once, so one poll finishes a unit that awaits only its transaction; one that
/// waits on anything else is an error (nothing here would wake it), and so is a panic. Either
/// way the caller rolls back what the unit did.
pub(super) fn run_lent<T>(
    tx: &mut super::SqliteTransaction,
    unit: impl for<'t> FnOnce(&'t mut dyn crate::store::Transaction) -> crate::store::BoxFuture<'t, T>,
) -> StoreResult<T> {
    let polled = catch_unwind(AssertUnwindSafe(|| {
        let mut work = unit(tx);
        match work
            .as_mut()
            .poll(&mut Context::from_waker(std::task::Waker::noop()))
        {
            Poll::Ready(answer) => Some(answer),
            Poll::Pending => None,
        }
    }));
    match polled {
        Ok(Some(answer)) => Ok(answer),
        Ok(None) => Err(StoreError::Backend(
            "a unit awaited something other than its transaction; it was rolled back".into(),
        )),
        Err(_) => Err(StoreError::Backend(
            "a unit failed (panicked); it was rolled back".into(),
        )),
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

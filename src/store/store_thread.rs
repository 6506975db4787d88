//! The log store on a thread of its own (`sluice-log-store`), called by the writer
//! ([`super::batcher`]) with a bounded wait.
//!
//! The store's calls are synchronous and some have no timeout of their own: a PostgreSQL that
//! takes packets but never answers (a server hung on its disk, a stopped process whose kernel
//! still acknowledges) holds a call for as long as it stays that way. Were the writer to make
//! that call itself, the queue would fill behind it and every request would then wait for
//! room. Here the writer waits at most the bound for an answer; past it the call is
//! *stalled*: the writer spills the batch (and every batch after it) to the local file, and
//! the store gets new work only once the stalled call has come back.
//!
//! A stalled append may still commit when the store wakes up, after its rows were spilled. A
//! bound is therefore only set for a store whose append skips rows it already holds
//! ([`LogStore::skips_rows_it_holds`], PostgreSQL by `row_uid`): the replay of those rows
//! then writes nothing twice. Other stores (SQLite) are waited for without a bound, as before.

use super::StoreError;
use super::backend::{LogStore, PreparedRow};
use super::chain::Purged;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::time::Duration;

/// Longest the writer waits for one store call of a store that skips rows it holds.
pub const STORE_WAIT: Duration = Duration::from_secs(5);

/// A call to the store.
enum Job {
    Append(Arc<Vec<PreparedRow>>),
    Purge(i64),
}

/// What a call did.
enum Done {
    Appended(usize),
    Purged(Purged),
}

/// The handle the writer keeps: sends one call at a time and waits for its answer.
pub(super) struct StoreThread {
    jobs: SyncSender<Job>,
    done: Receiver<Result<Done, StoreError>>,
    /// A call whose answer has not come back within the bound.
    stalled: bool,
    bound: Option<Duration>,
    backend: &'static str,
}

impl StoreThread {
    /// Moves `store` to a new thread; `bound` is used only when the store skips rows it
    /// holds (else calls are waited for without a bound).
    ///
    /// Errors: the thread cannot start.
    pub(super) fn start(
        store: Box<dyn LogStore>,
        bound: Duration,
    ) -> Result<StoreThread, StoreError> {
        let bound = store.skips_rows_it_holds().then_some(bound);
        let backend = store.backend();
        let (jobs, job_rx) = std::sync::mpsc::sync_channel::<Job>(1);
        let (done_tx, done) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("sluice-log-store".into())
            .spawn(move || serve(store, job_rx, done_tx))
            .map_err(|e| StoreError::Io(format!("cannot start the log store thread: {e}")))?;
        Ok(StoreThread {
            jobs,
            done,
            stalled: false,
            bound,
            backend,
        })
    }

    /// Appends `rows` (see [`LogStore::append`]); the rows written.
    ///
    /// Errors: the store's, or [`StoreError::Stalled`] when this call or an earlier one has
    /// not come back within the bound.
    pub(super) fn append(&mut self, rows: Arc<Vec<PreparedRow>>) -> Result<usize, StoreError> {
        match self.call(Job::Append(rows))? {
            Done::Appended(n) => Ok(n),
            Done::Purged(_) => Err(self.mixed_up()),
        }
    }

    /// Deletes rows older than `cutoff_ms` (see [`LogStore::purge_before`]).
    ///
    /// Errors: as [`StoreThread::append`].
    pub(super) fn purge_before(&mut self, cutoff_ms: i64) -> Result<Purged, StoreError> {
        match self.call(Job::Purge(cutoff_ms))? {
            Done::Purged(p) => Ok(p),
            Done::Appended(_) => Err(self.mixed_up()),
        }
    }

    /// Rows a stalled append wrote when it came back (they were spilled too; the replay
    /// skips them). `None` while it has not come back, or when none was stalled.
    pub(super) fn late_rows(&mut self) -> Option<usize> {
        if !self.stalled {
            return None;
        }
        match self.done.try_recv() {
            Ok(r) => {
                self.stalled = false;
                tracing::info!(
                    backend = self.backend,
                    "request log store answered its stalled call"
                );
                match r {
                    Ok(Done::Appended(n)) => Some(n),
                    _ => Some(0),
                }
            }
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                self.stalled = false;
                Some(0)
            }
        }
    }

    fn call(&mut self, job: Job) -> Result<Done, StoreError> {
        if self.stalled {
            self.late_rows();
            if self.stalled {
                return Err(self.stall_error());
            }
        }
        self.jobs.send(job).map_err(|_| self.gone())?;
        match self.bound {
            None => self.done.recv().map_err(|_| self.gone())?,
            Some(b) => match self.done.recv_timeout(b) {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout) => {
                    self.stalled = true;
                    tracing::error!(
                        backend = self.backend,
                        wait_ms = b.as_millis() as u64,
                        "request log store did not answer in time; spilling until it does"
                    );
                    Err(self.stall_error())
                }
                Err(RecvTimeoutError::Disconnected) => Err(self.gone()),
            },
        }
    }

    fn stall_error(&self) -> StoreError {
        let wait = self.bound.unwrap_or_default().as_secs_f64();
        StoreError::Stalled(format!(
            "{}: a call has not answered within {wait} s",
            self.backend
        ))
    }

    fn gone(&self) -> StoreError {
        StoreError::Io("the log store thread is gone".into())
    }

    fn mixed_up(&self) -> StoreError {
        StoreError::Io("the log store answered another call".into())
    }
}

/// The store thread: one call at a time, each answered; ends when the writer drops its handle.
fn serve(
    mut store: Box<dyn LogStore>,
    jobs: Receiver<Job>,
    done: SyncSender<Result<Done, StoreError>>,
) {
    super::batcher::lower_priority();
    while let Ok(job) = jobs.recv() {
        let r = match job {
            Job::Append(rows) => store.append(&rows).map(Done::Appended),
            Job::Purge(cutoff) => store.purge_before(cutoff).map(Done::Purged),
        };
        if done.send(r).is_err() {
            return;
        }
    }
}

//! The writer thread behind [`super::writer::LogSender`]: gathers batches, writes them to the
//! store (retrying), spills what the store refuses and replays the spill file when the store
//! is back, and runs retention.
//!
//! The thread keeps a small current-thread tokio runtime only to wait on the queue; every
//! store call happens outside it (the PostgreSQL client runs its own runtime).

use super::backend::PreparedRow;
use super::spill::Spill;
use super::store_thread::StoreThread;
use super::writer::{
    BATCH_ROWS, BATCH_WINDOW, Msg, REPLAY_EVERY, RETENTION_EVERY, RETRIES, Shared, WriterState,
};
use super::{StoreError, now_ms, row};
use crate::config::LogMode;
use crate::policy::pii::Detector;
use crate::store::record::RequestRecord;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Gives the calling thread (the writer) a lower CPU priority (nice 10) than the request
/// path: when both want the CPU, requests go first and the batch waits a little longer (the
/// bounded queue still holds every row). Best effort: ignored where it is not allowed.
pub(super) fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain syscalls on the current thread's own id, no memory handed over.
        unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
        }
    }
}

/// Rows (with their queue permits) and flush acknowledgements gathered for one transaction.
#[derive(Default)]
struct Batch {
    rows: Vec<Msg>,
    acks: Vec<oneshot::Sender<()>>,
    closed: bool,
}

/// The writer: owns the store, the spill file and the queue's receiving end.
pub(super) struct Writer {
    /// The store, on its own thread: calls wait a bounded time when it skips rows it holds.
    pub(super) store: StoreThread,
    pub(super) spill: Spill,
    pub(super) rx: mpsc::Receiver<Msg>,
    pub(super) default_mode: LogMode,
    pub(super) retention_days: Option<u32>,
    pub(super) pii: Detector,
    pub(super) shared: Arc<Shared>,
}

impl Writer {
    pub(super) fn run(mut self) {
        lower_priority();
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "request log writer cannot start its runtime");
                return;
            }
        };
        let mut next_retention = Instant::now();
        let mut next_replay = Instant::now();
        loop {
            if Instant::now() >= next_retention {
                self.retention();
                next_retention = Instant::now() + RETENTION_EVERY;
            }
            if self.pending() && Instant::now() >= next_replay {
                self.replay();
                next_replay = Instant::now() + REPLAY_EVERY;
            }
            let mut until = next_retention;
            if self.pending() {
                until = until.min(next_replay);
            }
            let wait = until.saturating_duration_since(Instant::now());
            let rx = &mut self.rx;
            let first = match rt.block_on(async { tokio::time::timeout(wait, rx.recv()).await }) {
                Err(_) => continue,
                Ok(None) => return,
                Ok(Some(m)) => m,
            };
            let batch = rt.block_on(self.collect(first));
            if let Some(m) = &self.shared.metrics {
                m.log_queue_depth.set(self.rx.len() as i64);
            }
            if !batch.rows.is_empty() {
                let t = Instant::now();
                let was_pending = self.pending();
                self.store_rows(batch.rows);
                if !was_pending && self.pending() {
                    // Just refused: the first replay waits its interval too.
                    next_replay = Instant::now() + REPLAY_EVERY;
                }
                if let Some(m) = &self.shared.metrics {
                    m.log_write_seconds.observe(t.elapsed().as_secs_f64());
                }
            }
            for a in batch.acks {
                let _ = a.send(());
            }
            if batch.closed {
                return;
            }
        }
    }

    /// Gathers a batch starting with `first`: up to BATCH_ROWS rows, BATCH_WINDOW long, cut
    /// short by a flush or the channel closing. The writer sleeps through the window and then
    /// takes what is queued, instead of waking for each row: one wake-up per batch, not per
    /// request, keeps this thread off the request path's CPU.
    async fn collect(&mut self, first: Msg) -> Batch {
        let mut batch = Batch::default();
        match first {
            Msg::Row(..) => batch.rows.push(first),
            Msg::Flush(a) => {
                batch.acks.push(a);
                return batch;
            }
        }
        let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
        if self.drain(&mut batch) {
            return batch;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {}
            _ = self.shared.flush_requested.notified() => {}
        }
        self.drain(&mut batch);
        batch
    }

    /// Moves queued messages into `batch` without waiting; true when the batch must close now
    /// (full, a flush, or the channel closed).
    fn drain(&mut self, batch: &mut Batch) -> bool {
        while batch.rows.len() < BATCH_ROWS {
            match self.rx.try_recv() {
                Ok(m @ Msg::Row(..)) => batch.rows.push(m),
                Ok(Msg::Flush(a)) => {
                    batch.acks.push(a);
                    return true;
                }
                Err(mpsc::error::TryRecvError::Empty) => return false,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    batch.closed = true;
                    return true;
                }
            }
        }
        true
    }

    /// Shapes the rows by their logging mode and stores them: in the store (retried), else
    /// in the spill file; while the spill file holds rows, new rows go behind them there, so
    /// they reach the store in order. The queue permits are released once the rows are safe.
    fn store_rows(&mut self, msgs: Vec<Msg>) {
        // The records move into their rows; the permits are held until this returns.
        let mut permits = Vec::with_capacity(msgs.len());
        let rows: Vec<PreparedRow> = msgs
            .into_iter()
            .filter_map(|m| match m {
                Msg::Row(mut r, permit) => {
                    permits.push(permit);
                    self.prepare(&mut r)
                }
                Msg::Flush(_) => None,
            })
            .collect();
        self.store_prepared(rows);
        drop(permits);
    }

    /// [`Self::store_rows`] once the rows are made.
    fn store_prepared(&mut self, rows: Vec<PreparedRow>) {
        if rows.is_empty() {
            return;
        }
        let rows = Arc::new(rows);
        let mut error = self.shared.last_error.lock().ok().and_then(|g| g.clone());
        if !self.pending() {
            let mut backoff = Duration::from_millis(100);
            for attempt in 1..=RETRIES {
                match self.store.append(rows.clone()) {
                    Ok(n) => {
                        self.shared
                            .rows_written
                            .fetch_add(n as u64, Ordering::Relaxed);
                        if self.shared.state() != WriterState::Ok {
                            self.shared.set_state(WriterState::Ok, None);
                        }
                        return;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, rows = rows.len(), attempt,
                            "request log write failed");
                        error = Some(e.to_string());
                        if matches!(e, StoreError::Busy(_) | StoreError::Stalled(_)) {
                            // Another session holds the lock, or the store is not answering:
                            // another try would wait as long again. Spilled now, replayed
                            // when it is free.
                            break;
                        }
                        if attempt < RETRIES {
                            std::thread::sleep(backoff);
                            backoff *= 2;
                        }
                    }
                }
            }
        }
        self.spill_rows(&rows, error);
    }

    /// Whether the spill file holds rows (kept in the shared flag, not read from disk).
    fn pending(&self) -> bool {
        self.shared.spill_pending.load(Ordering::SeqCst)
    }

    fn prepare(&self, r: &mut RequestRecord) -> Option<PreparedRow> {
        let mode = row::effective_mode(r, self.default_mode);
        row::prepare_owned(r, mode, &self.pii)
    }

    /// Appends `rows` to the spill file; when that fails too, keeps trying the store and the
    /// file (backing off to 5 s) — senders meanwhile drop new rows instead of waiting.
    fn spill_rows(&mut self, rows: &Arc<Vec<PreparedRow>>, error: Option<String>) {
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.spill.append(rows) {
                Ok(()) => {
                    let n = rows.len() as u64;
                    self.shared.rows_spilled.fetch_add(n, Ordering::Relaxed);
                    if let Some(m) = &self.shared.metrics {
                        m.log_rows_spilled.inc_by(n);
                    }
                    self.shared.spill_pending.store(true, Ordering::SeqCst);
                    if self.shared.state() != WriterState::Spilling {
                        self.shared.set_state(WriterState::Spilling, error);
                        tracing::warn!(file = %self.spill.path().display(), rows = n,
                            "request log store refuses writes; spilling rows to the local file");
                    }
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "request log spill failed too; retrying");
                    self.shared
                        .set_state(WriterState::Failing, Some(e.to_string()));
                }
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
            if !self.pending() && self.store.append(rows.clone()).is_ok() {
                self.shared
                    .rows_written
                    .fetch_add(rows.len() as u64, Ordering::Relaxed);
                self.shared.set_state(WriterState::Ok, None);
                return;
            }
        }
    }

    /// Sends the spill file's rows to the store; back to [`WriterState::Ok`] when all are in.
    fn replay(&mut self) {
        if let Some(n) = self.store.late_rows() {
            self.shared
                .rows_written
                .fetch_add(n as u64, Ordering::Relaxed);
        }
        let store = &mut self.store;
        match self
            .spill
            .replay(&mut |rows| store.append(Arc::new(rows)), BATCH_ROWS)
        {
            Ok(done) => {
                self.shared
                    .rows_written
                    .fetch_add(done.rows, Ordering::Relaxed);
                // A line that could not be read back is a row lost: counted as dropped.
                self.shared
                    .rows_dropped
                    .fetch_add(done.bad_lines, Ordering::Relaxed);
                if let Some(m) = &self.shared.metrics {
                    m.log_rows_dropped.inc_by(done.bad_lines);
                }
                let pending = self.spill.pending();
                self.shared.spill_pending.store(pending, Ordering::SeqCst);
                if !pending {
                    if done.rows > 0 || done.bad_lines > 0 {
                        tracing::info!(
                            rows = done.rows,
                            bad_lines = done.bad_lines,
                            "request log store is back; spilled rows replayed"
                        );
                    }
                    self.shared.set_state(WriterState::Ok, None);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "request log store still refuses the spilled rows");
                let state = self.shared.state();
                let state = if state == WriterState::Ok {
                    WriterState::Spilling
                } else {
                    state
                };
                self.shared.set_state(state, Some(e.to_string()));
            }
        }
    }

    fn retention(&mut self) {
        let Some(days) = self.retention_days else {
            return;
        };
        let cutoff = now_ms() as i64 - i64::from(days) * 86_400_000;
        match self.store.purge_before(cutoff) {
            Ok(p) if p.rows > 0 => {
                tracing::info!(
                    rows = p.rows,
                    anchor_seq = p.anchor_seq,
                    anchor_hash = %p.anchor_hash,
                    "log retention: deleted old rows; the chain is now anchored at this row"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "log retention failed"),
        }
    }
}

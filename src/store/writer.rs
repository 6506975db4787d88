//! The queue in front of the log and its one writer.
//!
//! The request path hands each finished [`RequestRecord`] to a bounded tokio channel
//! ([`LogSender`]), bounded twice: in rows (`log.queue_capacity`) and in bytes
//! (`log.queue_bytes`, the records' approximate size, so a few huge bodies cannot fill the
//! memory). A dedicated thread (`sluice-log-writer`, so the store never runs on the request
//! runtime; see [`super::batcher`]) takes rows off it and writes them in batches, one
//! transaction each: a batch closes at [`BATCH_ROWS`] rows or [`BATCH_WINDOW`] after its
//! first row, whichever comes first (or at once on a flush).
//!
//! When the queue is full, [`LogSender::send`] waits (backpressure, counted in [`LogStats`]).
//! A batch the store refuses is retried [`RETRIES`] times, then appended to the spill file
//! ([`super::spill`]) and replayed into the store when it takes writes again: a row is never
//! silently dropped. Only when the store *and* the spill file fail ([`WriterState::Failing`])
//! do new rows get dropped instead of waiting — each counted in `sluice_log_rows_dropped_total`
//! and reported — so the gateway keeps answering.
//!
//! Retention (`log.retention_days`) runs on the same thread: at start and hourly.

use super::{StoreError, row};
use crate::config::{LogConfig, LogMode, PiiConfig};
use crate::policy::pii::Detector;
use crate::store::record::RequestRecord;
use crate::telemetry::metrics::Metrics;
use futures_util::future::BoxFuture;
use serde::Serialize;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

/// Most rows in one transaction.
pub const BATCH_ROWS: usize = 500;
/// Longest a batch stays open after its first row.
pub const BATCH_WINDOW: Duration = Duration::from_millis(50);
/// How often retention runs.
pub const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// Attempts at writing a batch before it is spilled (waits 100, 200, 400 ms between them).
pub const RETRIES: u32 = 3;
/// How often the writer tries to replay the spill file while it holds rows.
pub const REPLAY_EVERY: Duration = Duration::from_secs(1);
/// Bytes counted per record besides its bodies (ids, names, numbers).
const RECORD_OVERHEAD: usize = 512;
/// How often a sender waiting for room looks whether the writer has failed.
const WAIT_CHECK: Duration = Duration::from_millis(100);

pub(super) enum Msg {
    Row(Box<RequestRecord>, OwnedSemaphorePermit),
    Flush(oneshot::Sender<()>),
}

/// Counters of the log queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Rows committed to the store since start (replayed spilled rows included).
    pub rows_written: u64,
    /// Times a request found the queue full and waited.
    pub backpressure_waits: u64,
    /// Total time requests spent waiting for room in the queue, µs.
    pub backpressure_wait_us: u64,
    /// Rows appended to the spill file since start.
    pub rows_spilled: u64,
    /// Rows lost (neither the store nor the spill file took them).
    pub rows_dropped: u64,
}

/// What the writer is doing, for `/health/ready` and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WriterState {
    /// The store takes every batch.
    Ok,
    /// The store refuses writes; rows go to the spill file and are replayed when it is back.
    Spilling,
    /// Neither the store nor the spill file takes rows: new rows are dropped (counted).
    Failing,
}

/// The writer's health as `/health/ready` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WriterHealth {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// See [`WriterState`].
    pub state: WriterState,
    /// Whether the spill file holds rows not yet in the store.
    pub spill_pending: bool,
    /// Rows spilled since start.
    pub rows_spilled: u64,
    /// Rows dropped since start.
    pub rows_dropped: u64,
    /// The last store or spill error, while not [`WriterState::Ok`].
    pub last_error: Option<String>,
}

#[derive(Default)]
pub(super) struct Shared {
    /// Rows handed to background sends (from sync contexts) not yet in the queue.
    in_flight: AtomicUsize,
    idle: Notify,
    /// Wakes the writer out of a batch window when a flush is queued.
    pub(super) flush_requested: Notify,
    pub(super) rows_written: AtomicU64,
    waits: AtomicU64,
    wait_us: AtomicU64,
    pub(super) rows_spilled: AtomicU64,
    pub(super) rows_dropped: AtomicU64,
    /// [`WriterState`] as 0, 1, 2.
    state: AtomicU8,
    pub(super) spill_pending: std::sync::atomic::AtomicBool,
    pub(super) last_error: Mutex<Option<String>>,
    pub(super) metrics: Option<Arc<Metrics>>,
}

impl Shared {
    pub(super) fn set_state(&self, s: WriterState, error: Option<String>) {
        self.state.store(s as u8, Ordering::SeqCst);
        if let Ok(mut g) = self.last_error.lock() {
            *g = if s == WriterState::Ok { None } else { error };
        }
        if let Some(m) = &self.metrics {
            m.log_writer_healthy.set(i64::from(s == WriterState::Ok));
        }
    }

    pub(super) fn state(&self) -> WriterState {
        match self.state.load(Ordering::SeqCst) {
            0 => WriterState::Ok,
            1 => WriterState::Spilling,
            _ => WriterState::Failing,
        }
    }
}

/// The request path's handle on the log queue. Cheap to clone.
#[derive(Clone)]
pub struct LogSender {
    tx: mpsc::Sender<Msg>,
    default_mode: LogMode,
    bytes: Arc<Semaphore>,
    queue_bytes: usize,
    /// `log.max_body_bytes`: bodies are cut to it before they are queued.
    max_body_bytes: usize,
    backend: &'static str,
    shared: Arc<Shared>,
}

/// Opens the log of `cfg` (creating it), and starts the writer thread, which replays a
/// leftover spill file and applies retention at once, then hourly. `pii` (the config's `pii:`
/// block) drives `redacted` mode.
///
/// Errors: the store cannot be opened, reached or migrated (or its schema is newer), a `pii`
/// detector does not build, or the thread cannot start.
pub fn start(cfg: &LogConfig, pii: &PiiConfig) -> Result<LogSender, StoreError> {
    start_with_metrics(cfg, pii, None)
}

/// [`start`], also feeding the Prometheus metrics `log_queue_depth`, `log_write_seconds`
/// (per batch), `log_wait_seconds` (backpressure per waiting request), `log_rows_spilled`,
/// `log_rows_dropped` and `log_writer_healthy`.
///
/// Errors: as [`start`].
pub fn start_with_metrics(
    cfg: &LogConfig,
    pii: &PiiConfig,
    metrics: Option<Arc<Metrics>>,
) -> Result<LogSender, StoreError> {
    // Opened on a plain thread: the PostgreSQL client runs its own small runtime, which must
    // not start inside the caller's.
    let store = std::thread::scope(|s| {
        s.spawn(|| super::connect(cfg))
            .join()
            .unwrap_or_else(|_| Err(StoreError::Io("the log store panicked at open".into())))
    })?;
    start_on(store, cfg, pii, metrics)
}

/// [`start_with_metrics`] on an already open `store` (tests inject a failing one).
///
/// Errors: a `pii` detector does not build, or the thread cannot start.
pub fn start_on(
    store: Box<dyn super::backend::LogStore>,
    cfg: &LogConfig,
    pii: &PiiConfig,
    metrics: Option<Arc<Metrics>>,
) -> Result<LogSender, StoreError> {
    let pii = Detector::new(pii).map_err(StoreError::Invalid)?;
    let (tx, rx) = mpsc::channel(cfg.queue_capacity.max(1));
    let shared = Arc::new(Shared {
        metrics,
        ..Default::default()
    });
    let spill = super::spill::Spill::new(cfg.spill_file());
    shared
        .spill_pending
        .store(spill.pending(), Ordering::SeqCst);
    let backend = store.backend();
    let store = super::store_thread::StoreThread::start(store, super::store_thread::STORE_WAIT)?;
    let w = super::batcher::Writer {
        store,
        spill,
        rx,
        default_mode: cfg.prompts,
        retention_days: cfg.retention_days,
        pii,
        shared: shared.clone(),
    };
    std::thread::Builder::new()
        .name("sluice-log-writer".into())
        .spawn(move || w.run())
        .map_err(|e| StoreError::Io(format!("cannot start the log writer: {e}")))?;
    let queue_bytes = cfg.queue_bytes.max(1);
    Ok(LogSender {
        tx,
        default_mode: cfg.prompts,
        bytes: Arc::new(Semaphore::new(queue_bytes)),
        queue_bytes,
        max_body_bytes: cfg.max_body_bytes,
        backend,
        shared,
    })
}

/// Approximate bytes a record holds in the queue: its request body, response text, tool
/// calls and error message, plus [`RECORD_OVERHEAD`].
pub fn record_bytes(r: &RequestRecord) -> usize {
    RECORD_OVERHEAD
        + r.request_body.as_ref().map_or(0, |b| b.get().len())
        + r.response.content.len()
        + r.response
            .tool_calls
            .iter()
            .map(|t| t.arguments.len() + t.name.len())
            .sum::<usize>()
        + r.error_message.as_ref().map_or(0, String::len)
}

impl LogSender {
    /// Queues one row, waiting while the queue is full (unless the writer is failing: then
    /// the row is dropped and counted). A record whose effective mode is `off` is queued only
    /// as its spend ([`row::spend_record`]: no text, no row), when it cost a key something.
    pub async fn send(&self, r: impl Into<Box<RequestRecord>>) {
        if let Some(wait) = self.send_or_wait(r) {
            wait.await;
        }
    }

    /// [`LogSender::send`] without a future to hold the row: the row is queued at once when
    /// there is room (or dropped as `send` would); else the wait for room comes back, boxed
    /// with the row inside it. A caller's future then holds a pointer instead of the
    /// ~900-byte record at each of its await levels.
    pub fn send_or_wait(&self, r: impl Into<Box<RequestRecord>>) -> Option<BoxFuture<'_, ()>> {
        let (r, need) = self.try_queue(r.into())?;
        Some(Box::pin(self.enqueue_waiting(r, need)))
    }

    /// Queues the row at once when the byte budget and the channel have room (or drops it
    /// as [`LogSender::send`] would: not kept, or the writer gone). `Some((row, bytes))` when
    /// it must wait for room: the row back, with the bytes it needs.
    fn try_queue(&self, r: Box<RequestRecord>) -> Option<(Box<RequestRecord>, u32)> {
        let r = self.kept(r)?;
        let need = self.need(&r);
        let r = match self.bytes.clone().try_acquire_many_owned(need) {
            Ok(p) => match self.tx.try_send(Msg::Row(r, p)) {
                Ok(()) => return None,
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.gone();
                    return None;
                }
                Err(mpsc::error::TrySendError::Full(Msg::Row(r, permit))) => {
                    // Its bytes go back to the budget; the wait takes them again.
                    drop(permit);
                    r
                }
                Err(mpsc::error::TrySendError::Full(Msg::Flush(_))) => return None,
            },
            Err(_) => r,
        };
        Some((r, need))
    }

    /// Queues one row from a synchronous context (a stream's end, in `Drop`): at once when
    /// there is room, else by a background task that waits for room ([`LogSender::flush`]
    /// waits for those tasks too). A task its runtime drops before it ran (at shutdown) hands
    /// the row to a plain thread instead.
    pub fn send_now(&self, r: impl Into<Box<RequestRecord>>) {
        let Some(row) = self.try_queue(r.into()) else {
            return;
        };
        self.shared.in_flight.fetch_add(1, Ordering::SeqCst);
        let waiting = Waiting {
            sender: self.clone(),
            row: Some(row),
            count: Some(Counted(self.shared.clone())),
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(waiting.send());
            }
            // No runtime here (a stream dropped outside one): dropping it starts the thread.
            Err(_) => drop(waiting),
        }
    }

    /// What of `r` goes to the queue: its bodies cut to `log.max_body_bytes`
    /// ([`RequestRecord::bound_bodies`]), or for mode `off` its spend only.
    fn kept(&self, mut r: Box<RequestRecord>) -> Option<Box<RequestRecord>> {
        if row::effective_mode(&r, self.default_mode) == LogMode::Off {
            return row::spend_record(&r).map(Box::new);
        }
        r.bound_bodies(self.max_body_bytes);
        Some(r)
    }

    fn need(&self, r: &RequestRecord) -> u32 {
        record_bytes(r).min(self.queue_bytes).min(u32::MAX as usize) as u32
    }

    /// Waits for `need` bytes and a slot, checking every [`WAIT_CHECK`] whether the writer
    /// has failed (then the row is dropped, counted, instead of waiting forever).
    async fn enqueue_waiting(&self, r: Box<RequestRecord>, need: u32) {
        let t = Instant::now();
        let permit = loop {
            if self.shared.state() == WriterState::Failing {
                return self.dropped(&r);
            }
            match tokio::time::timeout(WAIT_CHECK, self.bytes.clone().acquire_many_owned(need))
                .await
            {
                Ok(Ok(p)) => break p,
                Ok(Err(_)) => return self.gone(),
                Err(_) => {}
            }
        };
        let mut msg = Msg::Row(r, permit);
        loop {
            match self.tx.send_timeout(msg, WAIT_CHECK).await {
                Ok(()) => break,
                Err(mpsc::error::SendTimeoutError::Closed(_)) => return self.gone(),
                Err(mpsc::error::SendTimeoutError::Timeout(m)) => {
                    if self.shared.state() == WriterState::Failing {
                        if let Msg::Row(r, _) = &m {
                            self.dropped(r);
                        }
                        return;
                    }
                    msg = m;
                }
            }
        }
        self.count_wait(t);
    }

    fn dropped(&self, r: &RequestRecord) {
        self.shared.rows_dropped.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &self.shared.metrics {
            m.log_rows_dropped.inc();
        }
        tracing::error!(request_id = %crate::telemetry::log_safe(&r.id),
            "request log row dropped: neither the log store nor the spill file takes rows");
    }

    fn gone(&self) {
        tracing::error!("request log writer is gone; a row was not written");
    }

    /// Waits until every row queued before this call is committed or spilled (used on
    /// shutdown; bound it with a timeout there).
    pub async fn flush(&self) {
        loop {
            let idle = self.shared.idle.notified();
            if self.shared.in_flight.load(Ordering::SeqCst) == 0 {
                break;
            }
            idle.await;
        }
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Flush(ack)).await.is_ok() {
            self.shared.flush_requested.notify_one();
            let _ = done.await;
        }
    }

    /// The queue's counters.
    pub fn stats(&self) -> LogStats {
        LogStats {
            rows_written: self.shared.rows_written.load(Ordering::Relaxed),
            backpressure_waits: self.shared.waits.load(Ordering::Relaxed),
            backpressure_wait_us: self.shared.wait_us.load(Ordering::Relaxed),
            rows_spilled: self.shared.rows_spilled.load(Ordering::Relaxed),
            rows_dropped: self.shared.rows_dropped.load(Ordering::Relaxed),
        }
    }

    /// The writer's health.
    pub fn health(&self) -> WriterHealth {
        let s = self.stats();
        WriterHealth {
            backend: self.backend,
            state: self.shared.state(),
            spill_pending: self.shared.spill_pending.load(Ordering::SeqCst),
            rows_spilled: s.rows_spilled,
            rows_dropped: s.rows_dropped,
            last_error: self.shared.last_error.lock().ok().and_then(|g| g.clone()),
        }
    }

    /// Bytes free in the queue now (of `log.queue_bytes`).
    pub fn free_bytes(&self) -> usize {
        self.bytes.available_permits()
    }

    fn count_wait(&self, since: Instant) {
        let waited = since.elapsed();
        self.shared.waits.fetch_add(1, Ordering::Relaxed);
        self.shared
            .wait_us
            .fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
        if let Some(m) = &self.shared.metrics {
            m.log_wait_seconds.observe(waited.as_secs_f64());
        }
    }
}

/// Writes `rows` to a SQLite connection in one transaction, continuing the chain from its
/// head (tests and tools). Returns the number of rows written (rows whose mode is `off` add
/// their cost to `spend` and leave no row).
///
/// Errors: any SQLite error (nothing is written then).
pub fn write_batch(
    conn: &mut rusqlite::Connection,
    rows: &[Box<RequestRecord>],
    default_mode: LogMode,
    pii: &Detector,
) -> Result<usize, StoreError> {
    let prepared: Vec<_> = rows
        .iter()
        .filter_map(|r| row::prepare(r, row::effective_mode(r, default_mode), pii))
        .collect();
    super::sqlite::append(conn, &prepared)
}

impl std::fmt::Debug for LogSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSender")
            .field("default_mode", &self.default_mode)
            .field("stats", &self.stats())
            .finish()
    }
}

/// One row counted in [`Shared::in_flight`] while this lives.
struct Counted(Arc<Shared>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.idle.notify_waiters();
    }
}

/// A row waiting for room in the queue ([`LogSender::send_now`]), counted until it is queued
/// or given up. Dropped before it ran (its runtime shut down, or there was none), it waits on
/// a plain thread instead.
struct Waiting {
    sender: LogSender,
    row: Option<(Box<RequestRecord>, u32)>,
    count: Option<Counted>,
}

impl Waiting {
    async fn send(mut self) {
        if let Some((r, need)) = self.row.take() {
            self.sender.enqueue_waiting(r, need).await;
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let (Some((r, need)), Some(count)) = (self.row.take(), self.count.take()) else {
            return;
        };
        let sender = self.sender.clone();
        let spawned = std::thread::Builder::new()
            .name("sluice-log-send".into())
            .spawn(move || {
                let _count = count;
                match tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                {
                    Ok(rt) => rt.block_on(sender.enqueue_waiting(r, need)),
                    Err(e) => tracing::error!(error = %e, "a request log row was not written"),
                }
            });
        if spawned.is_err() {
            tracing::error!("cannot start a thread; a request log row was not written");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writer thread runs at nice 10 (field 19 of `/proc/self/task/<tid>/stat`).
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_writer_thread_runs_at_a_lower_priority() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            path: dir.path().join("log.db"),
            ..Default::default()
        };
        let log = start(&cfg, &PiiConfig::default()).unwrap();
        log.flush().await;
        let mut nices = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let stat =
                std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap_or_default();
            // `pid (comm) state …`: fields after the `)` start at field 3.
            let Some((head, rest)) = stat.rsplit_once(") ") else {
                continue;
            };
            if head.ends_with("(sluice-log-writ") {
                nices.push(rest.split(' ').nth(16).unwrap().to_string());
            }
        }
        assert!(!nices.is_empty());
        assert!(nices.iter().all(|n| n == "10"), "{nices:?}");
    }

    /// A row handed to a task that its runtime dropped before it ran (at shutdown) still
    /// reaches the log, and a flush does not wait for it forever.
    #[test]
    fn a_row_whose_task_was_dropped_unrun_still_reaches_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            path: dir.path().join("log.db"),
            ..Default::default()
        };
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        let first = runtime();
        let log = first
            .block_on(async { start(&cfg, &PiiConfig::default()) })
            .unwrap();
        let r = RequestRecord {
            id: "01a24000-0000-7000-8000-000000000001".into(),
            ..Default::default()
        };
        let need = log.need(&r);
        log.shared.in_flight.fetch_add(1, Ordering::SeqCst);
        let waiting = Waiting {
            sender: log.clone(),
            row: Some((Box::new(r), need)),
            count: Some(Counted(log.shared.clone())),
        };
        first.spawn(waiting.send());
        drop(first);
        runtime()
            .block_on(async { tokio::time::timeout(Duration::from_secs(10), log.flush()).await })
            .expect("the flush waited for a task that was dropped");
        let c = rusqlite::Connection::open(&cfg.path).unwrap();
        let n: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM requests WHERE id = '01a24000-0000-7000-8000-000000000001'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn a_record_counts_its_bodies_in_bytes() {
        let mut r = RequestRecord {
            error_message: Some("e".repeat(10)),
            ..Default::default()
        };
        r.response.content = "c".repeat(100);
        r.request_body = serde_json::value::RawValue::from_string("\"bbbb\"".into()).ok();
        assert_eq!(record_bytes(&r), RECORD_OVERHEAD + 6 + 100 + 10);
    }
}

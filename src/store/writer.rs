//! The queue in front of the log and its one writer.
//!
//! The request path hands each finished [`RequestRecord`] to a bounded tokio channel
//! ([`LogSender`]); a dedicated thread (`sluice-log-writer`, so SQLite never runs on the
//! request runtime) takes rows off it and writes them in batches, one transaction each: a batch
//! closes at [`BATCH_ROWS`] rows or [`BATCH_WINDOW`] after its first row, whichever comes
//! first (or at once on a flush). When the queue is full, [`LogSender::send`] waits
//! (backpressure, counted in [`LogStats`]); no row is ever dropped. A failed write is retried
//! with backoff until it succeeds, and the queue fills behind it meanwhile.
//!
//! Retention (`log.retention_days`) runs on the same thread: at start and hourly.

use super::{StoreError, chain, now_ms, row};
use crate::config::{LogConfig, LogMode, PiiConfig};
use crate::policy::pii::Detector;
use crate::store::record::RequestRecord;
use crate::telemetry::metrics::Metrics;
use rusqlite::{Connection, TransactionBehavior};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, oneshot};

/// Most rows in one transaction.
pub const BATCH_ROWS: usize = 500;
/// Longest a batch stays open after its first row.
pub const BATCH_WINDOW: Duration = Duration::from_millis(50);
/// How often retention runs.
pub const RETENTION_EVERY: Duration = Duration::from_secs(3600);

enum Msg {
    Row(Box<RequestRecord>),
    Flush(oneshot::Sender<()>),
}

/// Counters of the log queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Rows committed since start.
    pub rows_written: u64,
    /// Times a request found the queue full and waited.
    pub backpressure_waits: u64,
    /// Total time requests spent waiting for room in the queue, µs.
    pub backpressure_wait_us: u64,
}

#[derive(Default)]
struct Shared {
    /// Rows handed to background sends (from sync contexts) not yet in the queue.
    in_flight: AtomicUsize,
    idle: Notify,
    /// Wakes the writer out of a batch window when a flush is queued.
    flush_requested: Notify,
    rows_written: AtomicU64,
    waits: AtomicU64,
    wait_us: AtomicU64,
    metrics: Option<Arc<Metrics>>,
}

/// The request path's handle on the log queue. Cheap to clone.
#[derive(Clone)]
pub struct LogSender {
    tx: mpsc::Sender<Msg>,
    default_mode: LogMode,
    shared: Arc<Shared>,
}

/// Opens the log of `cfg` (creating it), and starts the writer thread, which applies
/// retention at once and hourly. `pii` (the config's `pii:` block) drives `redacted` mode.
///
/// Errors: the database cannot be opened or migrated, a `pii` detector does not build, or the
/// thread cannot start.
pub fn start(cfg: &LogConfig, pii: &PiiConfig) -> Result<LogSender, StoreError> {
    start_with_metrics(cfg, pii, None)
}

/// [`start`], also feeding the Prometheus metrics `log_queue_depth`, `log_write_seconds`
/// (per batch) and `log_wait_seconds` (backpressure per waiting request).
///
/// Errors: as [`start`].
pub fn start_with_metrics(
    cfg: &LogConfig,
    pii: &PiiConfig,
    metrics: Option<Arc<Metrics>>,
) -> Result<LogSender, StoreError> {
    let pii = Detector::new(pii).map_err(StoreError::Invalid)?;
    let conn = super::open(&cfg.path)?;
    let (tx, rx) = mpsc::channel(cfg.queue_capacity.max(1));
    let shared = Arc::new(Shared {
        metrics,
        ..Default::default()
    });
    let w = Writer {
        conn,
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
    Ok(LogSender {
        tx,
        default_mode: cfg.prompts,
        shared,
    })
}

impl LogSender {
    /// Queues one row, waiting while the queue is full. Rows whose effective mode is `off`
    /// are not queued.
    pub async fn send(&self, r: RequestRecord) {
        if row::effective_mode(&r, self.default_mode) == LogMode::Off {
            return;
        }
        match self.tx.try_send(Msg::Row(Box::new(r))) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(msg)) => {
                let t = Instant::now();
                let sent = self.tx.send(msg).await;
                self.count_wait(t);
                if sent.is_err() {
                    tracing::error!("request log writer is gone; a row was not written");
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("request log writer is gone; a row was not written");
            }
        }
    }

    /// Queues one row from a synchronous context (a stream's end, in `Drop`): at once when
    /// there is room, else by a background task that waits for room ([`LogSender::flush`]
    /// waits for those tasks too).
    pub fn send_now(&self, r: RequestRecord) {
        if row::effective_mode(&r, self.default_mode) == LogMode::Off {
            return;
        }
        let msg = match self.tx.try_send(Msg::Row(Box::new(r))) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("request log writer is gone; a row was not written");
                return;
            }
            Err(mpsc::error::TrySendError::Full(msg)) => msg,
        };
        self.shared.in_flight.fetch_add(1, Ordering::SeqCst);
        let this = self.clone();
        let job = async move {
            let t = Instant::now();
            if this.tx.send(msg).await.is_err() {
                tracing::error!("request log writer is gone; a row was not written");
            }
            this.count_wait(t);
            this.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            this.shared.idle.notify_waiters();
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(job);
            }
            Err(_) => {
                // No runtime here (a stream dropped outside one): a plain thread waits.
                let spawned = std::thread::Builder::new()
                    .name("sluice-log-send".into())
                    .spawn(move || {
                        let rt = tokio::runtime::Builder::new_current_thread().build();
                        match rt {
                            Ok(rt) => rt.block_on(job),
                            Err(e) => {
                                tracing::error!(error = %e, "a request log row was not written")
                            }
                        }
                    });
                if spawned.is_err() {
                    tracing::error!("cannot start a thread; a request log row was not written");
                }
            }
        }
    }

    /// Waits until every row queued before this call is committed (used on shutdown).
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
        }
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

/// Gives the calling thread (the writer) a lower CPU priority (nice 10) than the request
/// path: when both want the CPU, requests go first and the batch waits a little longer (the
/// bounded queue still holds every row). Best effort: ignored where it is not allowed.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain syscalls on the current thread's own id, no memory handed over.
        unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
        }
    }
}

/// Rows and flush acknowledgements gathered for one transaction. Rows stay boxed as they
/// came through the channel (a small `Msg`), so gathering them moves pointers, not records.
#[derive(Default)]
#[allow(clippy::vec_box)]
struct Batch {
    rows: Vec<Box<RequestRecord>>,
    acks: Vec<oneshot::Sender<()>>,
    closed: bool,
}

impl Batch {
    #[allow(clippy::vec_box)]
    fn into_parts(self) -> (Vec<Box<RequestRecord>>, Vec<oneshot::Sender<()>>, bool) {
        (self.rows, self.acks, self.closed)
    }
}

struct Writer {
    conn: Connection,
    rx: mpsc::Receiver<Msg>,
    default_mode: LogMode,
    retention_days: Option<u32>,
    pii: Detector,
    shared: Arc<Shared>,
}

impl Writer {
    fn run(mut self) {
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
        rt.block_on(self.serve());
    }

    async fn serve(&mut self) {
        let mut next_retention = Instant::now();
        loop {
            if Instant::now() >= next_retention {
                self.retention();
                next_retention = Instant::now() + RETENTION_EVERY;
            }
            let wait = next_retention.saturating_duration_since(Instant::now());
            let first = match tokio::time::timeout(wait, self.rx.recv()).await {
                Err(_) => continue,
                Ok(None) => return,
                Ok(Some(m)) => m,
            };
            let (rows, acks, closed) = self.collect(first).await;
            if let Some(m) = &self.shared.metrics {
                m.log_queue_depth.set(self.rx.len() as i64);
            }
            if !rows.is_empty() {
                let t = Instant::now();
                self.write_with_retry(&rows).await;
                if let Some(m) = &self.shared.metrics {
                    m.log_write_seconds.observe(t.elapsed().as_secs_f64());
                }
            }
            for a in acks {
                let _ = a.send(());
            }
            if closed {
                return;
            }
        }
    }

    /// Gathers a batch starting with `first`: up to BATCH_ROWS rows, BATCH_WINDOW long, cut
    /// short by a flush or the channel closing. The writer sleeps through the window and then
    /// takes what is queued, instead of waking for each row: one wake-up per batch, not per
    /// request, keeps this thread off the request path's CPU.
    async fn collect(
        &mut self,
        first: Msg,
    ) -> (Vec<Box<RequestRecord>>, Vec<oneshot::Sender<()>>, bool) {
        let mut batch = Batch::default();
        match first {
            Msg::Row(r) => batch.rows.push(r),
            Msg::Flush(a) => return (batch.rows, vec![a], false),
        }
        let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
        if self.drain(&mut batch) {
            return batch.into_parts();
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {}
            _ = self.shared.flush_requested.notified() => {}
        }
        self.drain(&mut batch);
        batch.into_parts()
    }

    /// Moves queued messages into `batch` without waiting; true when the batch must close now
    /// (full, a flush, or the channel closed).
    fn drain(&mut self, batch: &mut Batch) -> bool {
        while batch.rows.len() < BATCH_ROWS {
            match self.rx.try_recv() {
                Ok(Msg::Row(r)) => batch.rows.push(r),
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

    async fn write_with_retry(&mut self, rows: &[Box<RequestRecord>]) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match write_batch(&mut self.conn, rows, self.default_mode, &self.pii) {
                Ok(n) => {
                    self.shared
                        .rows_written
                        .fetch_add(n as u64, Ordering::Relaxed);
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, rows = rows.len(), retry_ms = backoff.as_millis() as u64,
                        "request log write failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    fn retention(&mut self) {
        let Some(days) = self.retention_days else {
            return;
        };
        let cutoff = now_ms() as i64 - i64::from(days) * 86_400_000;
        match chain::purge_before(&mut self.conn, cutoff) {
            Ok(p) if p.rows > 0 => {
                tracing::info!(
                    rows = p.rows,
                    anchor_seq = p.anchor_seq,
                    "log retention: deleted old rows"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "log retention failed"),
        }
    }
}

/// Writes `rows` in one transaction, continuing the chain from its head. Returns the number of
/// rows written (rows whose mode is `off` are skipped).
///
/// Errors: any SQLite error (nothing is written then).
pub fn write_batch(
    conn: &mut Connection,
    rows: &[Box<RequestRecord>],
    default_mode: LogMode,
    pii: &Detector,
) -> Result<usize, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let head = chain::state(&tx)?;
    let mut seq = head.head_seq;
    let mut prev = head.head_hash;
    {
        let mut stmt = tx.prepare_cached(&insert_sql())?;
        for r in rows {
            let mode = row::effective_mode(r, default_mode);
            let Some(mut values) = row::to_values(r, seq + 1, mode, pii) else {
                continue;
            };
            seq += 1;
            let hash = chain::hash_values(&prev, &values);
            values.push(rusqlite::types::Value::Text(std::mem::take(&mut prev)));
            values.push(rusqlite::types::Value::Text(hash.clone()));
            values.extend(row::repro_values(r));
            values.extend(row::route_values(r));
            stmt.execute(rusqlite::params_from_iter(values))?;
            prev = hash;
        }
    }
    let written = (seq - head.head_seq) as usize;
    chain::set_head(&tx, seq, &prev)?;
    tx.commit()?;
    Ok(written)
}

fn insert_sql() -> String {
    let cols = format!(
        "{}, {}, {}",
        row::select_list(),
        row::REPRO_COLUMNS.join(", "),
        row::ROUTE_COLUMNS.join(", ")
    );
    let width = row::HASHED_COLUMNS.len() + 2 + row::REPRO_COLUMNS.len() + row::ROUTE_COLUMNS.len();
    let marks = vec!["?"; width].join(", ");
    format!("INSERT INTO requests ({cols}) VALUES ({marks})")
}

impl std::fmt::Debug for LogSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSender")
            .field("default_mode", &self.default_mode)
            .field("stats", &self.stats())
            .finish()
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
}

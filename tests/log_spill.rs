//! The log queue under a store that fails (issue 16, "the log never wedges the gateway"), on
//! SQLite with an injected failing store: the queue is bounded in bytes, a refused batch is
//! spilled to the local file and replayed (every row, in one verifiable chain) when the store
//! takes writes again, and when the spill file fails too rows are dropped — counted — instead
//! of the senders hanging.

use sluice::config::LogConfig;
use sluice::store::StoreError;
use sluice::store::backend::{KeyRow, LogStore, PreparedRow, SpendDay, UsageFact};
use sluice::store::chain::{Purged, Verdict};
use sluice::store::query::{Bucket, GroupBy, LogFilter};
use sluice::store::record::RequestRecord;
use sluice::store::row::LogRow;
use sluice::store::sqlite::SqliteStore;
use sluice::store::writer::{LogSender, WriterState};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// SQLite that refuses appends while `fail` is set (as a lock not granted in time while
/// `busy` is set too), blocks them while `hold` is set, and counts them.
struct Injected {
    inner: SqliteStore,
    fail: Arc<AtomicBool>,
    hold: Arc<AtomicBool>,
    busy: Arc<AtomicBool>,
    appends: Arc<std::sync::atomic::AtomicUsize>,
}

impl LogStore for Injected {
    fn backend(&self) -> &'static str {
        "sqlite"
    }
    fn append(&mut self, rows: &[PreparedRow]) -> Result<usize, StoreError> {
        self.appends.fetch_add(1, Ordering::SeqCst);
        while self.hold.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        if self.fail.load(Ordering::SeqCst) && self.busy.load(Ordering::SeqCst) {
            return Err(StoreError::Busy(
                "canceling statement due to lock timeout (55P03)".into(),
            ));
        }
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Io("disk full (injected)".into()));
        }
        self.inner.append(rows)
    }
    fn purge_before(&mut self, c: i64) -> Result<Purged, StoreError> {
        self.inner.purge_before(c)
    }
    fn verify(&mut self) -> Result<Verdict, StoreError> {
        self.inner.verify()
    }
    fn list(&mut self, f: &LogFilter) -> Result<Vec<LogRow>, StoreError> {
        self.inner.list(f)
    }
    fn get(&mut self, id: &str) -> Result<Option<LogRow>, StoreError> {
        self.inner.get(id)
    }
    fn all_since(&mut self, s: Option<i64>) -> Result<Vec<LogRow>, StoreError> {
        self.inner.all_since(s)
    }
    fn usage_facts(
        &mut self,
        s: Option<i64>,
        by: Option<GroupBy>,
    ) -> Result<Vec<UsageFact>, StoreError> {
        self.inner.usage_facts(s, by)
    }
    fn timeline(&mut self, s: i64, b: i64) -> Result<Vec<Bucket>, StoreError> {
        self.inner.timeline(s, b)
    }
    fn insert_key(&mut self, k: &KeyRow) -> Result<bool, StoreError> {
        self.inner.insert_key(k)
    }
    fn keys(&mut self) -> Result<Vec<KeyRow>, StoreError> {
        self.inner.keys()
    }
    fn revoke_key(&mut self, id: &str) -> Result<bool, StoreError> {
        self.inner.revoke_key(id)
    }
    fn spend_since(&mut self, f: i64) -> Result<Vec<SpendDay>, StoreError> {
        self.inner.spend_since(f)
    }
    fn replay_rows(
        &mut self,
        sel: &sluice::store::backend::ReplaySelect,
    ) -> Result<Vec<Vec<rusqlite::types::Value>>, StoreError> {
        self.inner.replay_rows(sel)
    }
    fn series(
        &mut self,
        q: &sluice::store::series::SeriesQuery,
    ) -> Result<Vec<sluice::store::series::Point>, StoreError> {
        self.inner.series(q)
    }
    fn put_response(
        &mut self,
        r: &sluice::store::responses::StoredResponse,
    ) -> Result<bool, StoreError> {
        self.inner.put_response(r)
    }
    fn get_response(
        &mut self,
        id: &str,
        owner: &str,
    ) -> Result<Option<sluice::store::responses::StoredResponse>, StoreError> {
        self.inner.get_response(id, owner)
    }
    fn delete_response(&mut self, id: &str, owner: &str) -> Result<bool, StoreError> {
        self.inner.delete_response(id, owner)
    }
    fn cached(
        &mut self,
        q: &sluice::store::backend::CacheQuery,
    ) -> Result<Option<sluice::store::backend::CachedRow>, StoreError> {
        self.inner.cached(q)
    }
}

struct Rig {
    log: LogSender,
    fail: Arc<AtomicBool>,
    hold: Arc<AtomicBool>,
    busy: Arc<AtomicBool>,
    appends: Arc<std::sync::atomic::AtomicUsize>,
    cfg: LogConfig,
    _dir: tempfile::TempDir,
}

fn rig(edit: impl FnOnce(&mut LogConfig)) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = LogConfig {
        path: dir.path().join("log.db"),
        ..Default::default()
    };
    edit(&mut cfg);
    let fail = Arc::new(AtomicBool::new(false));
    let hold = Arc::new(AtomicBool::new(false));
    let busy = Arc::new(AtomicBool::new(false));
    let appends = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let store = Injected {
        inner: SqliteStore::new(sluice::store::open(&cfg.path).unwrap()),
        fail: fail.clone(),
        hold: hold.clone(),
        busy: busy.clone(),
        appends: appends.clone(),
    };
    let log =
        sluice::store::writer::start_on(Box::new(store), &cfg, &Default::default(), None).unwrap();
    Rig {
        log,
        fail,
        hold,
        busy,
        appends,
        cfg,
        _dir: dir,
    }
}

fn record(id: &str, body_bytes: usize) -> RequestRecord {
    RequestRecord {
        id: id.into(),
        started_ms: sluice::store::now_ms(),
        status: 200,
        request_body: Some(
            serde_json::value::RawValue::from_string(format!("\"{}\"", "x".repeat(body_bytes)))
                .unwrap(),
        ),
        ..Default::default()
    }
}

fn ids(cfg: &LogConfig) -> Vec<String> {
    let c = rusqlite::Connection::open(&cfg.path).unwrap();
    let mut stmt = c.prepare("SELECT id FROM requests ORDER BY seq").unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

async fn until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "{what}: not within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_failing_store_spills_every_row_and_they_all_arrive_once_it_is_back() {
    let r = rig(|_| {});
    r.fail.store(true, Ordering::SeqCst);
    let t = Instant::now();
    for i in 0..20 {
        r.log.send(record(&format!("r{i}"), 100)).await;
    }
    r.log.flush().await;
    // Three tries (100 + 200 ms apart), then the spill file: the senders never waited long.
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let h = r.log.health();
    assert_eq!(h.state, WriterState::Spilling);
    assert!(h.spill_pending);
    assert_eq!((h.rows_spilled, h.rows_dropped), (20, 0));
    assert_eq!(
        h.last_error.as_deref(),
        Some("disk full (injected)"),
        "{h:?}"
    );
    let spill = r.cfg.spill_file();
    assert_eq!(std::fs::read_to_string(&spill).unwrap().lines().count(), 20);
    assert!(ids(&r.cfg).is_empty());
    // Rows that come while the file holds rows go behind them, in order.
    r.log.send(record("r20", 100)).await;
    r.fail.store(false, Ordering::SeqCst);
    until(10, "replayed", || r.log.health().state == WriterState::Ok).await;
    r.log.flush().await;
    let want: Vec<String> = (0..21).map(|i| format!("r{i}")).collect();
    assert_eq!(ids(&r.cfg), want);
    assert!(!spill.exists());
    assert_eq!(r.log.stats().rows_written, 21);
    let c = rusqlite::Connection::open(&r.cfg.path).unwrap();
    assert!(matches!(
        sluice::store::chain::verify(&c).unwrap(),
        Verdict::Ok { rows: 21, .. }
    ));
}

#[tokio::test]
async fn the_queue_is_bounded_in_bytes() {
    // Room for two ~3.5 KB records (3000-byte bodies + 512 per record), not three.
    let r = rig(|c| c.queue_bytes = 8 * 1024);
    r.hold.store(true, Ordering::SeqCst);
    r.log.send(record("a", 3000)).await;
    r.log.send(record("b", 3000)).await;
    assert!(r.log.free_bytes() < 3600, "{}", r.log.free_bytes());
    let log = r.log.clone();
    let third = tokio::spawn(async move { log.send(record("c", 3000)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !third.is_finished(),
        "a third record fits only when bytes are freed"
    );
    assert_eq!(r.log.stats().backpressure_waits, 0);
    r.hold.store(false, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(10), third)
        .await
        .unwrap()
        .unwrap();
    r.log.flush().await;
    assert_eq!(ids(&r.cfg), ["a", "b", "c"]);
    assert_eq!(r.log.stats().backpressure_waits, 1);
    assert_eq!(r.log.free_bytes(), 8 * 1024);
    // One record bigger than the whole queue still goes through, alone.
    r.log.send(record("huge", 64 * 1024)).await;
    r.log.flush().await;
    assert_eq!(ids(&r.cfg).last().map(String::as_str), Some("huge"));
}

#[tokio::test]
async fn when_the_spill_file_fails_too_rows_are_dropped_counted_and_nobody_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "").unwrap();
    let spill = blocker.join("spill.jsonl"); // under a regular file: cannot be created
    let r = rig(|c| {
        c.spill_path = Some(spill.clone());
        c.queue_capacity = 10;
    });
    r.fail.store(true, Ordering::SeqCst);
    // The first batch fails in the store (three tries), then in the spill file.
    for i in 0..5 {
        r.log.send(record(&format!("r{i}"), 100)).await;
    }
    until(10, "failing", || {
        r.log.health().state == WriterState::Failing
    })
    .await;
    // Now the queue (10 rows) fills and every row past it is dropped at once.
    let t = Instant::now();
    for i in 5..50 {
        r.log.send(record(&format!("r{i}"), 100)).await;
    }
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let h = r.log.health();
    assert_eq!(h.state, WriterState::Failing, "{h:?}");
    assert_eq!(h.rows_dropped, 35, "{h:?}");
    assert!(h.last_error.unwrap().contains("spill file"));
    // Flushing cannot finish while nothing takes rows; the server bounds it by its grace.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), r.log.flush())
            .await
            .is_err()
    );
    // The store comes back: the rows the writer held arrive, and it is healthy again.
    r.fail.store(false, Ordering::SeqCst);
    until(15, "healthy again", || {
        r.log.health().state == WriterState::Ok
    })
    .await;
    r.log.flush().await;
    let kept = ids(&r.cfg).len() as u64;
    assert_eq!(kept + r.log.health().rows_dropped, 50);
}

/// A batch refused because a lock was not granted in time (another session holds the chain's
/// head row) is spilled after that one try, not tried twice more: each try would wait the
/// whole lock timeout again. Replayed once the lock is free.
#[tokio::test]
async fn a_lock_not_granted_in_time_spills_after_one_try() {
    let r = rig(|_| {});
    r.fail.store(true, Ordering::SeqCst);
    r.busy.store(true, Ordering::SeqCst);
    r.log.send(record("held", 10)).await;
    r.log.flush().await;
    assert_eq!(r.appends.load(Ordering::SeqCst), 1);
    let h = r.log.health();
    assert_eq!((h.rows_spilled, h.state), (1, WriterState::Spilling));
    r.fail.store(false, Ordering::SeqCst);
    until(10, "replayed", || ids(&r.cfg) == ["held"]).await;
}

/// A log file removed while Sluice runs: rows went on into the unlinked file (lost at exit)
/// while the writer said all was well. Now the store notices, the writer spills and says
/// why (a tester found this by deleting the log's directory).
#[tokio::test]
async fn a_log_file_removed_while_running_is_noticed_and_rows_spill() {
    let r = rig(|_| {});
    r.log.send(record("kept", 100)).await;
    r.log.flush().await;
    assert_eq!(ids(&r.cfg), ["kept"]);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", r.cfg.path.display()));
    }
    r.log.send(record("after", 100)).await;
    r.log.flush().await;
    let h = r.log.health();
    assert_eq!(
        (h.state, h.rows_spilled, h.rows_dropped),
        (WriterState::Spilling, 1, 0)
    );
    assert!(
        h.last_error
            .as_deref()
            .is_some_and(|e| e.contains("was removed or replaced")),
        "{h:?}"
    );
    let spilled = std::fs::read_to_string(r.cfg.spill_file()).unwrap();
    assert!(spilled.contains("\"after\""), "{spilled}");
}

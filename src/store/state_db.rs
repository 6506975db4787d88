//! The store the request path reads and writes besides the log (the Responses API state and
//! the response cache's lookups): the log's SQLite file, or PostgreSQL shared by every
//! replica, one connection behind one lock.
//!
//! A use never waits longer than the caller's bound, however the store behaves: a PostgreSQL
//! that stopped answering without closing anything (a hung server, a partition) holds the
//! connection for as long as it is silent, and the next callers give up on the lock after
//! their bound instead of queuing behind it (waiting for the lock is async, so nobody holds
//! a blocking thread while waiting). The store work itself runs on tokio's blocking pool.

use super::StoreError;
use super::backend::LogStore;
use std::sync::Arc;
use std::time::Duration;

/// How long a response cache lookup may take before it counts as a miss.
pub const CACHE_LOOKUP_WAIT: Duration = Duration::from_millis(250);
/// How long a Responses state read (`previous_response_id`, `GET`, `DELETE`) may take before
/// it is a 503.
pub const STATE_READ_WAIT: Duration = Duration::from_secs(2);
/// How long a background Responses state write may take before it is given up (logged).
pub const STATE_WRITE_WAIT: Duration = Duration::from_secs(30);

/// Why a use of the store gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum StateDbError {
    /// The store did not answer within the bound (busy, or not answering).
    #[error("the state store did not answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The store answered with an error.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The blocking task running the use failed (panicked or was cancelled).
    #[error("the state store task failed: {0}")]
    Task(String),
}

/// The shared state store (cheap to clone).
#[derive(Clone)]
pub struct StateDb {
    inner: Arc<tokio::sync::Mutex<Box<dyn LogStore>>>,
    /// When the use holding the store started, or `None`.
    busy_since: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

impl StateDb {
    /// Wraps an open store.
    pub fn new(store: Box<dyn LogStore>) -> StateDb {
        StateDb {
            inner: Arc::new(tokio::sync::Mutex::new(store)),
            busy_since: Arc::default(),
        }
    }

    /// Runs `f` on the store, waiting at most `wait` in all (for the lock and for `f`). Past
    /// `wait` the caller gets [`StateDbError::Timeout`]; `f`, once started, still runs to its
    /// end on its blocking thread and keeps the lock until then. When the use holding the
    /// store has already run longer than `wait`, the caller gets the timeout at once: a store
    /// that stopped answering costs each later caller nothing, not its whole bound.
    ///
    /// Errors: [`StateDbError`].
    pub async fn run<T: Send + 'static>(
        &self,
        wait: Duration,
        f: impl FnOnce(&mut dyn LogStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StateDbError> {
        if self.held_for().is_some_and(|held| held > wait) {
            return Err(StateDbError::Timeout(wait));
        }
        let (inner, busy) = (self.inner.clone(), self.busy_since.clone());
        let work = async move {
            let mut guard = inner.lock_owned().await;
            tokio::task::spawn_blocking(move || {
                let _busy = Busy::start(busy);
                f(&mut **guard)
            })
            .await
            .map_err(|e| StateDbError::Task(e.to_string()))?
            .map_err(StateDbError::Store)
        };
        tokio::time::timeout(wait, work)
            .await
            .map_err(|_| StateDbError::Timeout(wait))?
    }

    /// How long the use holding the store has run, if one does.
    fn held_for(&self) -> Option<Duration> {
        let since = *self.busy_since.lock().unwrap_or_else(|e| e.into_inner());
        since.map(|t| t.elapsed())
    }
}

/// Marks the store busy from its creation to its drop (a panicking use included).
struct Busy(Arc<std::sync::Mutex<Option<std::time::Instant>>>);

impl Busy {
    fn start(slot: Arc<std::sync::Mutex<Option<std::time::Instant>>>) -> Busy {
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now());
        Busy(slot)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    fn store() -> (tempfile::TempDir, StateDb) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let conn = crate::store::open(&dir.path().join("log.db")).unwrap_or_else(|e| panic!("{e}"));
        (dir, StateDb::new(Box::new(SqliteStore::new(conn))))
    }

    /// A use stuck in the store (here: blocked until the test lets it go) makes the next
    /// callers give up after their bound, and then the store answers again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stuck_use_costs_the_others_their_bound_only() {
        let (_dir, db) = store();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let stuck = db.clone();
        let first = tokio::spawn(async move {
            stuck
                .run(Duration::from_secs(60), move |_| {
                    held.recv().map_err(|e| StoreError::Invalid(e.to_string()))
                })
                .await
        });
        // Until `first` holds the lock, a use can still get it: wait for that moment.
        while db.inner.try_lock().is_ok() {
            tokio::task::yield_now().await;
        }
        let t = std::time::Instant::now();
        let second = db.run(Duration::from_millis(100), |_| Ok(1)).await;
        assert!(
            matches!(second, Err(StateDbError::Timeout(d)) if d == Duration::from_millis(100)),
            "{second:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        // The holder has now run longer than the next caller's bound (it held the store
        // through the whole 100 ms above): that caller gives up at once.
        let t = std::time::Instant::now();
        let fourth = db.run(Duration::from_millis(50), |_| Ok(4)).await;
        assert!(
            matches!(fourth, Err(StateDbError::Timeout(_))),
            "{fourth:?}"
        );
        assert!(db.held_for().is_some_and(|h| h > Duration::from_millis(50)));
        assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());
        release.send(()).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(first.await, Ok(Ok(()))));
        let third = db.run(Duration::from_secs(5), |_| Ok(3)).await;
        assert!(matches!(third, Ok(3)), "{third:?}");
        assert_eq!(db.held_for(), None);
    }

    #[tokio::test]
    async fn a_store_error_is_passed_on() {
        let (_dir, db) = store();
        let r: Result<(), _> = db
            .run(Duration::from_secs(5), |_| {
                Err(StoreError::Invalid("no".into()))
            })
            .await;
        assert_eq!(r.map_err(|e| e.to_string()), Err("no".to_string()));
    }
}

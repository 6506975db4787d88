//! Which upstream connection pool a thread uses.
//!
//! `sluice serve` runs one single-threaded runtime per request thread (see
//! `cli::runtime`). A pooled upstream connection is driven by a task on the runtime that
//! opened it, so a request on one thread that took a connection opened by another would
//! hand its I/O across threads. Each request thread therefore has its own pools:
//! [`Upstreams`](super::Upstreams) keeps one set of clients per thread, and a thread picks
//! its set by the index it [`enter`]s with. Threads that never enter (tests, the
//! `shared` runtime, the blocking pool) use set 0.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many request threads the process runs (1 until [`set_threads`]).
static THREADS: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// Records how many request threads the process runs, before its gateway (and so its
/// [`Upstreams`](super::Upstreams)) is built. `0` counts as 1.
pub fn set_threads(n: usize) {
    THREADS.store(n.max(1), Ordering::Relaxed);
}

/// How many sets of upstream clients to build: the request threads, at least 1.
pub fn threads() -> usize {
    THREADS.load(Ordering::Relaxed).max(1)
}

/// Marks the calling thread as request thread `index` (0-based).
pub fn enter(index: usize) {
    INDEX.with(|i| i.set(index));
}

/// The set of clients the calling thread uses: its index, wrapped into `0..sets` (`sets`
/// of 0 gives 0).
pub fn current(sets: usize) -> usize {
    INDEX.with(|i| i.get()).checked_rem(sets).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_uses_the_set_it_entered_with() {
        let picked = std::thread::spawn(|| {
            let before = current(4);
            enter(3);
            (before, current(4), current(2), current(0))
        })
        .join()
        .ok();
        assert_eq!(picked, Some((0, 3, 1, 0)));
    }

    #[test]
    fn zero_threads_counts_as_one() {
        // 1 is also the default, so other tests in this binary see no change.
        set_threads(0);
        assert_eq!(threads(), 1);
    }
}

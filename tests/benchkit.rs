//! The benchmark's support code (`benches/benchkit/`, never compiled into the product): its
//! unit tests run here.
#[allow(dead_code)]
#[path = "../benches/benchkit/mod.rs"]
mod benchkit;

use benchkit::load::percentile;

#[test]
fn nearest_rank_percentiles() {
    let v = || (1..=100u64).collect::<Vec<_>>().into_iter();
    assert_eq!(percentile(v(), 50.0), 50);
    assert_eq!(percentile(v(), 99.0), 99);
    assert_eq!(percentile(v(), 100.0), 100);
    assert_eq!(percentile(std::iter::empty(), 50.0), 0);
}

/// Open-loop pacing sends every request, and none before its scheduled time (a request sent
/// early would hide queueing delay; one sent late is counted from its scheduled time).
#[test]
fn paced_requests_are_all_sent_and_never_early() {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let early = Arc::new(Mutex::new(Vec::new()));
    let seen = early.clone();
    let started = Instant::now();
    let tasks = rt.block_on(benchkit::load::paced(
        started,
        Duration::from_millis(2),
        25,
        move |n, scheduled| {
            let seen = seen.clone();
            async move {
                let now = Instant::now();
                seen.lock().unwrap().push((n, now >= scheduled));
            }
        },
    ));
    assert_eq!(tasks.len(), 25);
    rt.block_on(async {
        for t in tasks {
            t.await.unwrap();
        }
    });
    let mut got = early.lock().unwrap().clone();
    got.sort();
    assert_eq!(got, (0..25).map(|n| (n, true)).collect::<Vec<_>>());
    assert!(started.elapsed() >= Duration::from_millis(48));
}

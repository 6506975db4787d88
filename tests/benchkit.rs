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

/// The bridged-vs-chat CPU ratio weighs chat's per-shape CPU by the bridged row's request
/// counts: the same per-shape costs give 1.0 whatever the mixes, where overall averages differ.
#[test]
fn bridged_cpu_is_compared_at_the_same_load_shape() {
    use benchkit::report::like_for_like;
    // Chat: 0.4 ms at c=1 (3000 requests), 0.1 ms at c=16 (30000); bridged: the same costs
    // but 1000 and 6000 requests. Overall averages: 0.127 vs 0.143 ms (1.12×).
    let chat = [(0.4, 3000), (0.1, 30000)];
    assert!((like_for_like([(0.4, 1000), (0.1, 6000)], chat) - 1.0).abs() < 1e-12);
    // Bridged 1.5× at both shapes → 1.5×.
    assert!((like_for_like([(0.6, 1000), (0.15, 6000)], chat) - 1.5).abs() < 1e-12);
    // 2× at c=1 only: (0.8·1000 + 0.1·6000) / (0.4·1000 + 0.1·6000) = 1.4.
    assert!((like_for_like([(0.8, 1000), (0.1, 6000)], chat) - 1.4).abs() < 1e-12);
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

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

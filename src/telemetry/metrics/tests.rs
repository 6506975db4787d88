//! Tests of the metrics: exact `/metrics` lines.

use super::*;
use crate::store::record::RequestRecord;

fn answered(model: &str, deployment: &str, hosting: &'static str, prompt: u64) -> RequestRecord {
    let mut r = RequestRecord {
        requested_model: model.into(),
        deployment: Some(deployment.into()),
        hosting: Some(hosting),
        status: 200,
        duration_ms: 3,
        upstream_us: Some(2_000),
        overhead_us: Some(40),
        ..Default::default()
    };
    r.usage.prompt_tokens = prompt;
    r.usage.completion_tokens = 5;
    r
}

/// The lines of `/metrics` that count requests and tokens, sorted.
fn counted(m: &Metrics) -> Vec<String> {
    let mut lines: Vec<String> = m
        .render()
        .lines()
        .filter(|l| {
            l.starts_with("sluice_requests_total{")
                || l.starts_with("sluice_tokens_total{")
                || l.starts_with("sluice_request_duration_seconds_count{")
                || l.starts_with("sluice_upstream_duration_seconds_count{")
                || l.starts_with("sluice_gateway_overhead_seconds_count{")
        })
        .map(String::from)
        .collect();
    lines.sort();
    lines
}

#[test]
fn a_route_kept_for_answered_requests_counts_what_the_families_count() {
    let m = Metrics::with_names(vec!["m".into()], vec!["d".into()]);
    m.observe(&answered("m", "d", "local", 10));
    m.observe(&answered("m", "d", "local", 7));
    // Not answered whole: counted through the families, next to the kept series.
    let mut failed = answered("m", "d", "local", 0);
    failed.status = 502;
    failed.usage.completion_tokens = 0;
    m.observe(&failed);
    // A hosting the config does not name is never kept.
    m.observe(&answered("m", "d", "edge", 1));
    // A name the config does not know is `unknown`, kept like any other.
    m.observe(&answered("other", "d", "remote", 2));
    assert_eq!(
        counted(&m),
        [
            r#"sluice_gateway_overhead_seconds_count{deployment="d"} 5"#,
            r#"sluice_request_duration_seconds_count{model="m",deployment="d"} 4"#,
            r#"sluice_request_duration_seconds_count{model="unknown",deployment="d"} 1"#,
            r#"sluice_requests_total{model="m",deployment="d",status="200"} 3"#,
            r#"sluice_requests_total{model="m",deployment="d",status="502"} 1"#,
            r#"sluice_requests_total{model="unknown",deployment="d",status="200"} 1"#,
            r#"sluice_tokens_total{deployment="d",hosting="edge",direction="input"} 1"#,
            r#"sluice_tokens_total{deployment="d",hosting="edge",direction="output"} 5"#,
            r#"sluice_tokens_total{deployment="d",hosting="local",direction="input"} 17"#,
            r#"sluice_tokens_total{deployment="d",hosting="local",direction="output"} 10"#,
            r#"sluice_tokens_total{deployment="d",hosting="remote",direction="input"} 2"#,
            r#"sluice_tokens_total{deployment="d",hosting="remote",direction="output"} 5"#,
            r#"sluice_upstream_duration_seconds_count{deployment="d"} 5"#,
        ]
    );
    assert_eq!(m.routes.read().map(|r| r.len()).ok(), Some(2));
}

#[test]
fn no_series_appears_before_it_counts_something() {
    let m = Metrics::with_names(vec!["m".into()], vec!["d".into()]);
    let mut failed = answered("m", "d", "local", 0);
    failed.status = 500;
    failed.usage.completion_tokens = 0;
    m.observe(&failed);
    assert_eq!(
        counted(&m),
        [
            r#"sluice_gateway_overhead_seconds_count{deployment="d"} 1"#,
            r#"sluice_request_duration_seconds_count{model="m",deployment="d"} 1"#,
            r#"sluice_requests_total{model="m",deployment="d",status="500"} 1"#,
            r#"sluice_upstream_duration_seconds_count{deployment="d"} 1"#,
        ]
    );
}

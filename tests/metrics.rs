//! `/metrics` after known traffic: exact counts.

mod support;

use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::HashMap;
use support::*;

fn completion() -> Value {
    json!({"id":"x","object":"chat.completion","created":1,"model":"upstream-model",
           "choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],
           "usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}})
}

fn stream() -> Vec<Bytes> {
    let c = |delta: Value, fin: Value| json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"upstream-model","choices":[{"index":0,"delta":delta,"finish_reason":fin}]});
    vec![
        sse(&c(json!({"role":"assistant","content":"a"}), Value::Null)),
        sse(&c(json!({}), json!("stop"))),
        sse(
            &json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"upstream-model","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}),
        ),
        done(),
    ]
}

/// Parses the text format into `name{labels}` → value (comments skipped).
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn metrics_count_known_traffic_exactly() {
    let mock = Mock::start(|r| match r.body["messages"][0]["content"].as_str() {
        Some("fail") => MockReply::Text(500, "boom"),
        _ if r.body["stream"] == true => MockReply::Sse(stream()),
        _ => MockReply::Json(200, completion()),
    })
    .await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    let c = client();
    let ask = |content: &str, stream: bool| json!({"model":"default","stream":stream,"messages":[{"role":"user","content":content}]});
    for _ in 0..2 {
        let r = c
            .post(s.url("/v1/chat/completions"))
            .json(&ask("hi", false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    let r = c
        .post(s.url("/v1/chat/completions"))
        .json(&ask("hi", true))
        .send()
        .await
        .unwrap();
    r.text().await.unwrap();
    let r = c
        .post(s.url("/v1/chat/completions"))
        .json(&ask("fail", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);

    let resp = c.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = resp.text().await.unwrap();
    let m = samples(&text);
    let get = |k: &str| *m.get(k).unwrap_or_else(|| panic!("missing {k} in\n{text}"));
    assert_eq!(
        get(r#"sluice_requests_total{model="default",deployment="up",status="200"}"#),
        3.0
    );
    assert_eq!(
        get(r#"sluice_requests_total{model="default",deployment="up",status="502"}"#),
        1.0
    );
    assert_eq!(
        get(r#"sluice_tokens_total{deployment="up",hosting="local",direction="input"}"#),
        13.0
    );
    assert_eq!(
        get(r#"sluice_tokens_total{deployment="up",hosting="local",direction="output"}"#),
        5.0
    );
    assert_eq!(
        get(r#"sluice_request_duration_seconds_count{model="default",deployment="up"}"#),
        4.0
    );
    assert_eq!(
        get(r#"sluice_time_to_first_token_seconds_count{model="default",deployment="up"}"#),
        1.0
    );
    assert_eq!(
        get(r#"sluice_upstream_duration_seconds_count{deployment="up"}"#),
        4.0
    );
    assert_eq!(
        get(r#"sluice_gateway_overhead_seconds_count{deployment="up"}"#),
        3.0
    );
    assert_eq!(get("sluice_open_streams"), 0.0);
    assert!(text.ends_with("# EOF\n"));
    s.stop().await;
}

/// Every metric the Grafana dashboard queries exists.
#[test]
fn grafana_dashboard_uses_only_existing_metrics() {
    let dash = std::fs::read_to_string("deploy/grafana/sluice-dashboard.json").unwrap();
    // Families without samples are not rendered, so check the registered names.
    let source = std::fs::read_to_string("src/telemetry/metrics/mod.rs").unwrap();
    let re = regex::Regex::new(r"sluice_[a-z_]+").unwrap();
    let mut checked = 0;
    for m in re.find_iter(&dash) {
        let name = m.as_str();
        let base = name
            .trim_end_matches("_bucket")
            .trim_end_matches("_count")
            .trim_end_matches("_sum")
            .trim_end_matches("_total");
        if base == "sluice_overview" {
            continue;
        }
        let registered = format!("\"{}\"", base.trim_start_matches("sluice_"));
        assert!(
            source.contains(&registered),
            "{name} is not a Sluice metric"
        );
        checked += 1;
    }
    assert!(checked >= 14);
}

//! A client that sends a streaming request and goes away before the upstream's first byte
//! still leaves its row (status 499) and its spend, on the OpenAI, Messages and Responses
//! routes (and a non-stream request on the Responses route too).

mod support;

use serde_json::{Value, json};
use support::*;

const MASTER: &str = "sk-master-cut";

fn chunks() -> Vec<bytes::Bytes> {
    let c = |delta: Value, fin: Value| json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":delta,"finish_reason":fin}]});
    vec![
        sse(&c(
            json!({"role":"assistant","content":"Paris"}),
            Value::Null,
        )),
        sse(&c(json!({}), json!("stop"))),
        sse(
            &json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":40,"total_tokens":50}}),
        ),
        done(),
    ]
}

async fn metrics_text(s: &Sluice) -> String {
    support::get_text(&s.url("/metrics"), Some(MASTER)).await
}

/// Polls `/metrics` until it contains `needle` (at most 2,000 times).
async fn until_metric(s: &Sluice, needle: &str) {
    for _ in 0..2000 {
        if metrics_text(s).await.contains(needle) {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("/metrics never showed {needle}\n{}", metrics_text(s).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_before_its_first_chunk_leaves_a_row_and_its_spend() {
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    let g = gate.clone();
    let mock = Mock::start(move |r| {
        if r.body["stream"] == true {
            MockReply::SseAfter(g.clone(), chunks())
        } else {
            MockReply::JsonAfter(
                g.clone(),
                200,
                json!({"id":"x","object":"chat.completion","created":1,"model":"m",
                       "choices":[{"index":0,"message":{"role":"assistant","content":"Paris"},"finish_reason":"stop"}],
                       "usage":{"prompt_tokens":10,"completion_tokens":40,"total_tokens":50}}),
            )
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let yaml = format!(
        "server:\n  master_key: {MASTER}\nlog:\n  path: {}\ndeployments:\n  - name: paid\n    provider: openai\n    base_url: {}\n    model: m\n    hosting: remote\n    price: {{input: 1000, output: 1000}}\nmodels:\n  - name: default\n    deployments: [paid]\nkeys:\n  - name: capped\n    key: sk-capped\n    budget: {{usd: 5, period: day}}\n",
        db.display(),
        mock.url("/v1"),
    );
    let s = Sluice::start_logged(&yaml).await;
    let routes = [
        (
            "/v1/chat/completions",
            json!({"model":"default","stream":true,"max_tokens":100,"messages":[{"role":"user","content":"hi"}]}),
        ),
        (
            "/v1/messages",
            json!({"model":"default","stream":true,"max_tokens":100,"messages":[{"role":"user","content":"hi"}]}),
        ),
        (
            "/v1/responses",
            json!({"model":"default","stream":true,"max_output_tokens":100,"input":"hi"}),
        ),
        // Not streamed, on the Responses route (the OpenAI routes' case is in tests/spend.rs).
        (
            "/v1/responses",
            json!({"model":"default","max_output_tokens":100,"input":"hi","store":false}),
        ),
    ];
    for (i, (path, body)) in routes.into_iter().enumerate() {
        post_then_leave(s.url(path), "sk-capped", body, &mock, i + 1).await;
        until_metric(
            &s,
            &format!("\nsluice_client_disconnects_total {}\n", i + 1),
        )
        .await;
        // The upstream answers after the client left.
        gate.notify_one();
        until_metric(
            &s,
            &format!(
                "\nsluice_requests_total{{model=\"default\",deployment=\"paid\",status=\"499\"}} {}\n",
                i + 1
            ),
        )
        .await;
    }
    s.stop().await;
    let c = rusqlite::Connection::open(&db).unwrap();
    let mut q = c
        .prepare("SELECT endpoint, status, error_type, cost_usd FROM requests WHERE api_key_id = 'cfg:capped' ORDER BY seq")
        .unwrap();
    let rows: Vec<(String, i64, String, f64)> = q
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 4, "{rows:?}");
    for (endpoint, status, error, cost) in &rows {
        assert_eq!(
            (*status, error.as_str()),
            (499, "client_closed"),
            "{endpoint}"
        );
        // (10 prompt + 40 completion tokens) × 1000 USD/1M: the upstream's own count, read
        // to the end of its stream after the client left.
        assert!((cost - 0.05).abs() < 1e-9, "{endpoint}: {cost}");
    }
    let endpoints: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(endpoints, ["chat", "messages", "responses", "responses"]);
}

/// Such a stream is read for its usage within the deployment's `timeout_ms`, not for as long
/// as the upstream keeps it open: an upstream that never ends it (a trickle never trips the
/// idle timeout) is let go after `timeout_ms`, and the row is written then (found by an
/// attacker test: the upstream connection stayed open with no row for as long as it sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_client_left_is_read_within_the_deployments_timeout() {
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    let (tx, gone) = tokio::sync::oneshot::channel();
    let gone_tx = std::sync::Arc::new(std::sync::Mutex::new(Some(tx)));
    let (g, t) = (gate.clone(), gone_tx.clone());
    let first = chunks()[0].clone();
    let mock = Mock::start(move |_| {
        MockReply::SseAfterThenHang(g.clone(), vec![first.clone()], t.clone())
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let yaml = format!(
        "server:\n  master_key: {MASTER}\nlog:\n  path: {}\ndeployments:\n  - name: paid\n    provider: openai\n    base_url: {}\n    model: m\n    timeout_ms: 1000\nmodels:\n  - name: default\n    deployments: [paid]\n",
        db.display(),
        mock.url("/v1"),
    );
    let s = Sluice::start_logged(&yaml).await;
    let body = json!({"model":"default","stream":true,"messages":[{"role":"user","content":"hi"}]});
    post_then_leave(s.url("/v1/chat/completions"), MASTER, body, &mock, 1).await;
    until_metric(&s, "\nsluice_client_disconnects_total 1\n").await;
    gate.notify_one();
    // Let go within the timeout (and a margin), not when the upstream stops.
    tokio::time::timeout(std::time::Duration::from_secs(10), gone)
        .await
        .expect("the upstream stream was still held")
        .unwrap();
    until_metric(
        &s,
        "\nsluice_requests_total{model=\"default\",deployment=\"paid\",status=\"499\"} 1\n",
    )
    .await;
    s.stop().await;
}

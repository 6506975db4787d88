//! Prices for cached prompt tokens (`price.cached_input`, `price.cache_write`, the catalog's
//! list prices) are what spend is made of, and a response-cache hit costs nothing.

mod support;

use bytes::Bytes;
use serde_json::{Value, json};
use support::*;

fn ev(name: &str, data: Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// An Anthropic stream whose prompt was 4 plain tokens + `read` cache reads + `written` cache
/// writes, answering 23 output tokens.
fn cached_stream(read: u64, written: u64) -> Vec<Bytes> {
    vec![
        ev(
            "message_start",
            json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-3-5-haiku-20241022",
                   "content":[],"stop_reason":null,"stop_sequence":null,
                   "usage":{"input_tokens":4,"cache_creation_input_tokens":written,"cache_read_input_tokens":read,"output_tokens":1}}}),
        ),
        ev(
            "content_block_start",
            json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        ),
        ev(
            "content_block_delta",
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Paris."}}),
        ),
        ev(
            "content_block_stop",
            json!({"type":"content_block_stop","index":0}),
        ),
        ev(
            "message_delta",
            json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":23}}),
        ),
        ev("message_stop", json!({"type":"message_stop"})),
    ]
}

fn costs(db: &std::path::Path) -> Vec<(i64, f64)> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut q = c
        .prepare("SELECT prompt_tokens, cost_usd FROM requests ORDER BY seq")
        .unwrap();
    q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Issue 16's example: an Anthropic stream with 2,455 cache-read tokens of 2,459 at Claude 3.5
/// Haiku's catalog prices (0.80 in, 0.08 cached, 1.00 cache write, 4.00 out per 1M) costs
/// $0.0002916, not $0.0020592; cache writes are priced at `cache_write`.
#[tokio::test]
async fn cached_prompt_tokens_are_charged_at_their_own_price() {
    let mock = Mock::start(|r| {
        if String::from_utf8_lossy(&r.raw).contains("\"write\"") {
            MockReply::Sse(cached_stream(0, 2455))
        } else {
            MockReply::Sse(cached_stream(2455, 0))
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let yaml = format!(
        "deployments:\n  - name: haiku\n    provider: anthropic\n    base_url: {}\n    model: claude-3-5-haiku-20241022\n    api_key: sk-ant-test\n    hosting: remote\nmodels:\n  - name: default\n    deployments: [haiku]\nlog:\n  path: {}\n",
        mock.url(""),
        db.display()
    );
    let s = Sluice::start_logged(&yaml).await;
    for text in ["read", "write"] {
        let r = post(
            &s,
            "/v1/chat/completions",
            json!({"model":"default","stream":true,"stream_options":{"include_usage":true},
                   "messages":[{"role":"user","content":text}]}),
        )
        .await;
        assert_eq!(r.status(), 200);
        let body = r.text().await.unwrap();
        let events = data_events(&body);
        let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
        assert_eq!(usage["usage"]["prompt_tokens"], 2459, "{text}");
    }
    s.stop().await;
    let rows = costs(&db);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].0, 2459);
    assert!((rows[0].1 - 0.0002916).abs() < 1e-12, "{rows:?}");
    // 4 × 0.80 + 2,455 × 1.00 + 23 × 4.00 per 1M.
    assert!((rows[1].1 - 0.0025502).abs() < 1e-12, "{rows:?}");
}

/// An OpenAI-shaped answer's `prompt_tokens_details.cached_tokens` at a configured
/// `price.cached_input`.
#[tokio::test]
async fn openai_cached_tokens_use_the_configured_cached_price() {
    let mock = Mock::start(|_| {
        MockReply::Json(
            200,
            json!({"id":"x","object":"chat.completion","created":1,"model":"m",
                   "choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],
                   "usage":{"prompt_tokens":1000,"completion_tokens":100,"total_tokens":1100,
                            "prompt_tokens_details":{"cached_tokens":800}}}),
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let yaml = format!(
        "deployments:\n  - name: up\n    provider: openai\n    base_url: {}\n    model: m\n    hosting: remote\n    price: {{input: 2, output: 8, cached_input: 0.5}}\nmodels:\n  - name: default\n    deployments: [up]\nlog:\n  path: {}\n",
        mock.url("/v1"),
        db.display()
    );
    let s = Sluice::start_logged(&yaml).await;
    let r = post(
        &s,
        "/v1/chat/completions",
        json!({"model":"default","messages":[{"role":"user","content":"hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    // The client sees the upstream's usage as sent.
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 800);
    s.stop().await;
    // 200 × 2 + 800 × 0.5 + 100 × 8 per 1M.
    let rows = costs(&db);
    assert!((rows[0].1 - 0.0016).abs() < 1e-12, "{rows:?}");
}

/// A budget that holds one paid answer: the repeated deterministic request is answered from the
/// response cache again and again (JSON and SSE) — if hits were charged, the third request
/// would be refused with `budget_exceeded`.
#[tokio::test]
async fn response_cache_hits_cost_nothing_and_spend_no_budget() {
    let mock = Mock::start(|_| {
        MockReply::Json(
            200,
            json!({"id":"x","object":"chat.completion","created":1,"model":"m",
                   "choices":[{"index":0,"message":{"role":"assistant","content":"four"},"finish_reason":"stop"}],
                   "usage":{"prompt_tokens":1000,"completion_tokens":1000,"total_tokens":2000}}),
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let yaml = format!(
        "server:\n  master_key: sk-master-prices\nkeys:\n  - name: capped\n    key: sk-capped\n    budget: {{usd: 0.004, period: day}}\ndeployments:\n  - name: cloud\n    provider: openai\n    base_url: {}\n    model: m\n    hosting: remote\n    price: {{input: 1.0, output: 2.0}}\n    sampling: {{deterministic: true, seed: 1}}\nmodels:\n  - name: default\n    deployments: [cloud]\nlog:\n  path: {}\ncache: {{enabled: true, ttl_s: 3600}}\n",
        mock.url("/v1"),
        db.display()
    );
    let config = sluice::config::parse("t.yaml", &yaml).unwrap();
    let gw = sluice::gateway::Gateway::with_request_log(config).unwrap();
    let s = Sluice::start_gateway(gw.clone()).await;
    let ask = |stream: bool| {
        client()
            .post(s.url("/v1/chat/completions"))
            .bearer_auth("sk-capped")
            .json(&json!({"model":"default","max_tokens":10,"stream":stream,
                          "messages":[{"role":"user","content":"2+2?"}]}))
            .send()
    };
    let r = ask(false).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-sluice-cache"], "miss");
    r.text().await.unwrap();
    gw.flush_log().await;
    for (i, stream) in [false, true, false, true, false].into_iter().enumerate() {
        let r = ask(stream).await.unwrap();
        assert_eq!(r.status(), 200, "request {i}");
        assert_eq!(r.headers()["x-sluice-cache"], "hit", "request {i}");
        assert!(r.text().await.unwrap().contains("four"));
        gw.flush_log().await;
    }
    assert_eq!(mock.calls(), 1);
    s.stop().await;
    let rows = costs(&db);
    let spent: Vec<f64> = rows.iter().map(|r| r.1).collect();
    // 1000 × 1 + 1000 × 2 per 1M for the miss, 0 for each hit.
    assert_eq!(spent, [0.003, 0.0, 0.0, 0.0, 0.0, 0.0]);
}

//! Two conveniences for real clients, in front of a mock upstream:
//! - `tools: drop_optional`: Open WebUI's browser chats send its 36 built-in tools with every
//!   message; a deployment that cannot call tools gets the request without them (instead of a
//!   400) while `tool_choice` leaves them optional;
//! - `encoding_format: "base64"` (the SDKs' default) answered with floats by an
//!   OpenAI-compatible backend is packed into base64 by Sluice.

mod support;

use serde_json::{Value, json};
use support::*;

fn completion() -> Value {
    json!({"id":"c","object":"chat.completion","created":1,"model":"m",
           "choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],
           "usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}})
}

fn config(base: &str) -> String {
    format!(
        "deployments:
  - name: plain
    provider: openai
    base_url: {base}
    model: m
    supports: [seed]
    tools: drop_optional
  - name: strict
    provider: openai
    base_url: {base}
    model: m
    supports: [seed]
models:
  - name: default
    deployments: [plain]
"
    )
}

/// 36 function tools, as Open WebUI's default browser chat sends.
fn open_webui_tools() -> Vec<Value> {
    (0..36)
        .map(|i| {
            json!({"type": "function", "function": {"name": format!("builtin_tool_{i}"),
            "description": "An Open WebUI built-in tool",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}})
        })
        .collect()
}

#[tokio::test]
async fn optional_tools_are_dropped_for_a_backend_without_tools() {
    let mock = Mock::start(|_| MockReply::Json(200, completion())).await;
    let s = Sluice::start(&config(&mock.url("/v1"))).await;
    for choice in [None, Some(json!("auto"))] {
        let mut body = json!({"model": "default", "tools": open_webui_tools(), "parallel_tool_calls": true,
                              "messages": [{"role": "user", "content": "hi"}]});
        if let Some(c) = &choice {
            body["tool_choice"] = c.clone();
        }
        let r = post(&s, "/v1/chat/completions", body).await;
        assert_eq!(r.status(), 200, "tool_choice {choice:?}");
        let sent = mock.last().body;
        assert_eq!(
            sent,
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
            "tool_choice {choice:?}"
        );
    }
    let calls = mock.calls();
    // Required tools are not optional: still refused, and nothing is sent.
    let r = post(
        &s,
        "/v1/chat/completions",
        json!({"model": "plain", "tools": open_webui_tools(),
        "tool_choice": "required", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(
        (e["error"]["param"].as_str(), e["error"]["code"].as_str()),
        (Some("tools"), Some("unsupported_parameter"))
    );
    // Without `tools: drop_optional` the deployment refuses as before.
    let r = post(
        &s,
        "/v1/chat/completions",
        json!({"model": "strict", "tools": open_webui_tools(),
        "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(mock.calls(), calls);
    s.stop().await;
}

#[tokio::test]
async fn float_embeddings_are_packed_when_base64_was_asked() {
    let mock = Mock::start(|_| {
        MockReply::Json(
            200,
            json!({"object": "list", "model": "m",
            "data": [{"object": "embedding", "index": 0, "embedding": [1.0, -2.0]}],
            "usage": {"prompt_tokens": 2, "total_tokens": 2}}),
        )
    })
    .await;
    let s = Sluice::start(&config(&mock.url("/v1"))).await;
    let r = post(
        &s,
        "/v1/embeddings",
        json!({"model": "default", "input": "hi", "encoding_format": "base64"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    // 1.0f32 = 00 00 80 3f, -2.0f32 = 00 00 00 c0, little-endian.
    assert_eq!(v["data"][0]["embedding"], "AACAPwAAAMA=");
    assert_eq!(v["usage"]["prompt_tokens"], 2);
    assert_eq!(mock.last().body["encoding_format"], "base64");
    let r = post(
        &s,
        "/v1/embeddings",
        json!({"model": "default", "input": "hi"}),
    )
    .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"][0]["embedding"], json!([1.0, -2.0]));
    s.stop().await;
}

//! The response cache: a repeated deterministic request is answered from the log without
//! calling the backend (mock call counts), as JSON or as SSE.

mod support;

use serde_json::{Value, json};
use support::*;

#[tokio::test]
async fn a_repeated_deterministic_request_is_a_hit_without_a_backend_call() {
    let mock = Mock::start(|_| {
        MockReply::Json(
            200,
            json!({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gemma",
                   "choices":[{"index":0,"message":{"role":"assistant","content":"four"},"finish_reason":"stop"}],
                   "usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}),
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "deployments:
  - name: local
    provider: openai
    base_url: {}
    model: gemma
    sampling: {{deterministic: true, seed: 42}}
  - name: plain
    provider: openai
    base_url: {}
    model: gemma
log:
  path: {}
cache: {{enabled: true, ttl_s: 3600}}
",
        mock.url("/v1"),
        mock.url("/v1"),
        dir.path().join("log.db").display()
    );
    let config = sluice::config::parse("t.yaml", &yaml).unwrap();
    let gw = sluice::gateway::Gateway::with_request_log(config).unwrap();
    let s = Sluice::start_gateway(gw.clone()).await;
    let ask = |model: &str, text: &str, temperature: f64, stream: bool| {
        json!({"model": model, "temperature": temperature, "stream": stream,
               "messages":[{"role":"user","content": text}]})
    };
    let post = |b: Value| client().post(s.url("/v1/chat/completions")).json(&b).send();

    let r = post(ask("local", "2+2?", 1.3, false)).await.unwrap();
    assert_eq!(r.headers()["x-sluice-cache"], "miss");
    assert_eq!(mock.calls(), 1);
    gw.flush_log().await;

    // Another client temperature: the effective (deterministic) request is the same.
    let r = post(ask("local", "2+2?", 0.2, false)).await.unwrap();
    assert_eq!(r.headers()["x-sluice-cache"], "hit");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "four");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["total_tokens"], 4);
    assert_eq!(mock.calls(), 1);

    let r = post(ask("local", "2+2?", 0.2, true)).await.unwrap();
    assert_eq!(r.headers()["x-sluice-cache"], "hit");
    let events = data_events(&r.text().await.unwrap());
    assert_eq!(events.len(), 3);
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["choices"][0]["delta"]["content"], "four");
    let fin: Value = serde_json::from_str(&events[1]).unwrap();
    assert_eq!(fin["choices"][0]["finish_reason"], "stop");
    assert_eq!(events[2], "[DONE]");
    assert_eq!(mock.calls(), 1);

    // Another prompt, or a deployment without deterministic sampling: the backend answers.
    let r = post(ask("local", "3+3?", 0.2, false)).await.unwrap();
    assert_eq!(r.headers()["x-sluice-cache"], "miss");
    assert_eq!(mock.calls(), 2);
    let r = post(ask("plain", "2+2?", 0.0, false)).await.unwrap();
    assert!(r.headers().get("x-sluice-cache").is_none());
    assert_eq!(mock.calls(), 3);
    s.stop().await;
}

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

/// Echoes the last user message (as the deployment received it) as the answer.
fn echo(r: &Received) -> MockReply {
    let text = r.body["messages"][0]["content"].as_str().unwrap_or("");
    MockReply::Json(
        200,
        json!({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini",
               "choices":[{"index":0,"message":{"role":"assistant","content":format!("echo: {text}")},"finish_reason":"stop"}],
               "usage":{"prompt_tokens":1000,"completion_tokens":1000,"total_tokens":2000}}),
    )
}

/// Two keys, redaction, a deterministic remote route and the cache: the redacted bodies of
/// "reply to anna@…" and "reply to bob@…" are the same, yet each caller gets their own value
/// back (a redacted request is neither served from nor stored into the cache), and a caller
/// sending the placeholder text itself never gets another caller's restored answer. A row
/// answers only its own key (found by an attacker test: key B's request was a hit from key
/// A's row). A real hit costs 0.
#[tokio::test]
async fn the_cache_never_crosses_callers_and_a_hit_costs_nothing() {
    let mock = Mock::start(echo).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let yaml = format!(
        "server:
  master_key: sk-master-test
keys:
  - name: alice
    key: sk-alice-1
  - name: bob
    key: sk-bob-1
deployments:
  - name: cloud
    provider: openai
    base_url: {}
    model: gpt-4o-mini
    hosting: remote
    price: {{input: 1.0, output: 2.0}}
    sampling: {{deterministic: true, seed: 1}}
models:
  - name: default
    deployments: [cloud]
policies:
  - name: redact-pii
    when: {{pii: any}}
    pii_action: redact
log:
  path: {}
cache: {{enabled: true, ttl_s: 3600}}
",
        mock.url("/v1"),
        db.display()
    );
    let config = sluice::config::parse("t.yaml", &yaml).unwrap();
    let gw = sluice::gateway::Gateway::with_request_log(config).unwrap();
    let s = Sluice::start_gateway(gw.clone()).await;
    let ask = |key: &'static str, text: &str| {
        client()
            .post(s.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&json!({"model": "default", "messages": [{"role": "user", "content": text}]}))
            .send()
    };
    let answer = |v: &Value| {
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_string()
    };

    let r = ask("sk-alice-1", "Draft a reply to anna@corp.com")
        .await
        .unwrap();
    assert!(r.headers().get("x-sluice-cache").is_none());
    let v: Value = r.json().await.unwrap();
    assert_eq!(answer(&v), "echo: Draft a reply to anna@corp.com");
    gw.flush_log().await;

    let r = ask("sk-bob-1", "Draft a reply to bob@corp.com")
        .await
        .unwrap();
    assert!(r.headers().get("x-sluice-cache").is_none());
    let v: Value = r.json().await.unwrap();
    assert_eq!(answer(&v), "echo: Draft a reply to bob@corp.com");
    gw.flush_log().await;

    // The placeholder text itself, without PII: the same effective request as Alice's, but
    // her row is never served.
    let r = ask("sk-bob-1", "Draft a reply to [EMAIL_1]").await.unwrap();
    assert_eq!(r.headers()["x-sluice-cache"], "miss");
    let v: Value = r.json().await.unwrap();
    assert_eq!(answer(&v), "echo: Draft a reply to [EMAIL_1]");
    assert_eq!(mock.calls(), 3);
    for got in mock.received.lock().unwrap().iter() {
        let raw = String::from_utf8_lossy(&got.raw);
        assert!(!raw.contains("@corp.com"), "{raw}");
    }
    gw.flush_log().await;

    // Without PII the cache works for the key whose row it is: Bob's row does not answer Alice
    // (a hit would tell her that Bob asked exactly this), her own row does, and costs nothing.
    for (status, calls) in [("miss", 4), ("hit", 4)] {
        let r = ask("sk-alice-1", "Draft a reply to [EMAIL_1]")
            .await
            .unwrap();
        assert_eq!(r.headers()["x-sluice-cache"], status);
        let v: Value = r.json().await.unwrap();
        assert_eq!(answer(&v), "echo: Draft a reply to [EMAIL_1]");
        assert_eq!(mock.calls(), calls);
        gw.flush_log().await;
    }
    s.stop().await;

    let c = rusqlite::Connection::open(&db).unwrap();
    let mut q = c
        .prepare("SELECT api_key_id, pii_kinds, cost_usd FROM requests ORDER BY seq")
        .unwrap();
    let rows: Vec<(String, String, f64)> = q
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    // 1000 tokens in at 1 USD/1M + 1000 out at 2 USD/1M.
    assert_eq!(
        rows,
        vec![
            ("cfg:alice".into(), "[\"email\"]".into(), 0.003),
            ("cfg:bob".into(), "[\"email\"]".into(), 0.003),
            ("cfg:bob".into(), "[]".into(), 0.003),
            ("cfg:alice".into(), "[]".into(), 0.003),
            ("cfg:alice".into(), "[]".into(), 0.0),
        ]
    );
}

/// Found by an attacker test, each served from the cache before: a hit's own row answered
/// later hits (so `ttl_s` never ran out: a hit's row now is no source); a request asking for
/// log probabilities got a hit without them (such a request is not looked up); and after the
/// deployment was pointed at another model under the same name, the old model's answer (the
/// request hash now names the backend: provider, base URL, model).
#[tokio::test]
async fn the_cache_answers_only_for_what_it_kept_from_the_same_backend() {
    let mock = Mock::start(|r: &Received| {
        MockReply::Json(
            200,
            json!({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":r.body["model"],
                   "choices":[{"index":0,"message":{"role":"assistant","content":format!("I am {}", r.body["model"])},"finish_reason":"stop"}],
                   "usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}),
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let yaml = |model: &str| {
        format!(
            "deployments:\n  - name: local\n    provider: openai\n    base_url: {}\n    model: {model}\n    sampling: {{deterministic: true, seed: 42}}\nlog:\n  path: {}\ncache: {{enabled: true, ttl_s: 3600}}\n",
            mock.url("/v1"),
            db.display()
        )
    };
    let ask = json!({"model": "local", "messages":[{"role":"user","content":"who are you?"}]});
    let start = |model: &'static str| {
        let config = sluice::config::parse("t.yaml", &yaml(model)).unwrap();
        sluice::gateway::Gateway::with_request_log(config).unwrap()
    };
    let gw = start("gemma");
    let s = Sluice::start_gateway(gw.clone()).await;
    let post = |s: &Sluice, b: Value| client().post(s.url("/v1/chat/completions")).json(&b).send();
    let r = post(&s, ask.clone()).await.unwrap();
    assert_eq!(r.headers()["x-sluice-cache"], "miss");
    gw.flush_log().await;
    let r = post(&s, ask.clone()).await.unwrap();
    assert_eq!(r.headers()["x-sluice-cache"], "hit");
    let mut with_logprobs = ask.clone();
    with_logprobs["logprobs"] = json!(true);
    let r = post(&s, with_logprobs).await.unwrap();
    assert!(r.headers().get("x-sluice-cache").is_none());
    assert_eq!(mock.calls(), 2);
    s.stop().await;
    gw.flush_log().await;
    let marks: Vec<Option<i64>> = rusqlite::Connection::open(&db)
        .unwrap()
        .prepare("SELECT deterministic FROM requests ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // The miss is a source; the hit is not; the logprobs request ran deterministically.
    assert_eq!(marks, vec![Some(1), None, Some(1)]);

    let gw = start("gemma-2");
    let s = Sluice::start_gateway(gw.clone()).await;
    let r = post(&s, ask.clone()).await.unwrap();
    assert_eq!(r.headers()["x-sluice-cache"], "miss");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "I am \"gemma-2\"");
    assert_eq!(mock.calls(), 3);
    s.stop().await;
}

//! Token limits count the answer's tokens; budgets reserve before the call and settle after.

mod support;

use serde_json::{Value, json};
use support::*;

const MASTER: &str = "sk-master-spend";

fn completion(completion_tokens: u64) -> Value {
    json!({"id":"x","object":"chat.completion","created":1,"model":"m",
           "choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],
           "usage":{"prompt_tokens":10,"completion_tokens":completion_tokens,"total_tokens":10 + completion_tokens}})
}

fn stream(completion_tokens: u64) -> MockReply {
    let c = |delta: Value, fin: Value| json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":delta,"finish_reason":fin}]});
    MockReply::Sse(vec![
        sse(&c(json!({"role":"assistant","content":"ok"}), Value::Null)),
        sse(&c(json!({}), json!("stop"))),
        sse(
            &json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":completion_tokens,"total_tokens":10 + completion_tokens}}),
        ),
        done(),
    ])
}

async fn chat(s: &Sluice, key: &str, stream: bool) -> reqwest::Response {
    client()
        .post(s.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(
            &json!({"model":"default","stream":stream,"messages":[{"role":"user","content":"hi"}]}),
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_tpm_key_is_charged_with_the_answers_tokens() {
    let mock = Mock::start(|r| {
        if r.body["stream"] == true {
            stream(50_000)
        } else {
            MockReply::Json(200, completion(50_000))
        }
    })
    .await;
    let yaml = format!(
        "server:\n  master_key: {MASTER}\n{}keys:\n  - name: whole\n    key: sk-whole\n    tpm: 1000\n  - name: streamed\n    key: sk-streamed\n    tpm: 1000\n",
        one_deployment(&mock.url("/v1"))
    );
    let s = Sluice::start(&yaml).await;
    for (key, stream) in [("sk-whole", false), ("sk-streamed", true)] {
        let r = chat(&s, key, stream).await;
        assert_eq!(r.status(), 200, "{key}");
        r.text().await.unwrap();
        let r = chat(&s, key, stream).await;
        assert_eq!(r.status(), 429, "{key}");
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        // 50,010 tokens used of 1,000 per minute: about 49 minutes of debt.
        assert!((2900..=3001).contains(&retry), "{key}: {retry}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "rate_limit_exceeded");
    }
    assert_eq!(mock.calls(), 2);
    s.stop().await;
}

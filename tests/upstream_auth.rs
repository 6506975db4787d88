//! An upstream that refuses Sluice's credentials (401/403) is the operator's problem: the
//! client gets a 502 naming the deployment, never the upstream's text, and a fallback runs.

mod support;

use serde_json::{Value, json};
use support::*;

fn completion() -> Value {
    json!({"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"from fallback"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}})
}

fn refusal() -> Value {
    json!({"error":{"message":"Incorrect API key provided: sk-proj-abc***xyz","type":"invalid_request_error","code":"invalid_api_key"}})
}

fn two(first: &Mock, second: &Mock) -> String {
    format!(
        "deployments:\n  - name: primary\n    provider: openai\n    base_url: {}\n    model: m\n  - name: backup\n    provider: openai\n    base_url: {}\n    model: m\nmodels:\n  - name: default\n    deployments: [primary, backup]\n  - name: alone\n    deployments: [primary]\n",
        first.url("/v1"),
        second.url("/v1")
    )
}

async fn chat(s: &Sluice, model: &str) -> reqwest::Response {
    client()
        .post(s.url("/v1/chat/completions"))
        .json(&json!({"model":model,"messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn upstream_401_and_403_fall_back_and_never_leak_the_upstream_text() {
    for status in [401u16, 403] {
        let bad = Mock::start(move |_| MockReply::Json(status, refusal())).await;
        let good = Mock::start(|_| MockReply::Json(200, completion())).await;
        let s = Sluice::start(&two(&bad, &good)).await;
        let r = chat(&s, "default").await;
        assert_eq!(r.status(), 200, "{status}");
        assert_eq!(r.headers()["x-sluice-deployment"], "backup");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "from fallback");
        assert_eq!((bad.calls(), good.calls()), (1, 1));

        let r = chat(&s, "alone").await;
        assert_eq!(r.status(), 502, "{status}");
        let text = r.text().await.unwrap();
        assert!(
            !text.contains("sk-proj") && !text.contains("Incorrect"),
            "{text}"
        );
        let e: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            e["error"],
            json!({
                "message": format!("deployment `primary` refused Sluice's credentials (HTTP {status}); the operator should check its api_key."),
                "type": "server_error",
                "param": null,
                "code": "upstream_error"
            })
        );
        s.stop().await;
    }
}

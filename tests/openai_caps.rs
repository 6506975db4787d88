//! `provider: openai` with capabilities: what an OpenAI-compatible backend receives depends on
//! what it can do (shared cases C13, C14, C21), and an upstream's own 400 keeps its `param`
//! and `code`.

mod support;

use serde_json::{Value, json};
use support::*;

fn completion() -> Value {
    json!({"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m",
           "choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],
           "usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}})
}

fn config(base: &str) -> String {
    format!(
        "deployments:\n  - name: local\n    provider: openai\n    base_url: {base}\n    model: qwen3-8b\n  - name: openai-like\n    provider: openai\n    base_url: {base}\n    model: o4-mini\n    supports: [seed, logprobs, n, tools, json_schema, images, message_name, developer_role, max_completion_tokens]\n"
    )
}

async fn post(s: &Sluice, body: Value) -> reqwest::Response {
    client()
        .post(s.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// C21's replayed history and samplers.
fn c21(model: &str) -> Value {
    json!({"model":model,"top_k":20,"min_p":0.05,"max_completion_tokens":50,"parallel_tool_calls":false,
        "messages":[
            {"role":"developer","content":"Be brief."},
            {"role":"user","content":"Weather in NYC?"},
            {"role":"assistant","content":null,"refusal":null,"function_call":null,"sender":"Agent",
             "tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"NYC\"}"}}]},
            {"role":"tool","tool_call_id":"call_1","content":"64F, sunny"}],
        "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"location":{"type":"string"}}}}}]})
}

#[tokio::test]
async fn a_local_server_gets_system_max_tokens_and_its_samplers() {
    let mock = Mock::start(|_| MockReply::Json(200, completion())).await;
    let s = Sluice::start(&config(&mock.url("/v1"))).await;
    assert_eq!(post(&s, c21("local")).await.status(), 200);
    let up = mock.last().body;
    assert_eq!(
        up["messages"][0],
        json!({"role":"system","content":"Be brief."})
    );
    assert_eq!(
        up["messages"][2],
        json!({"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"NYC\"}"}}]})
    );
    assert_eq!(up["top_k"], 20);
    assert_eq!(up["min_p"], 0.05);
    assert_eq!(up["max_tokens"], 50);
    assert!(up.get("max_completion_tokens").is_none());
    assert_eq!(up["parallel_tool_calls"], false);
    s.stop().await;
}

#[tokio::test]
async fn an_openai_like_backend_gets_developer_and_no_local_samplers() {
    let mock = Mock::start(|_| MockReply::Json(200, completion())).await;
    let s = Sluice::start(&config(&mock.url("/v1"))).await;
    assert_eq!(post(&s, c21("openai-like")).await.status(), 200);
    let up = mock.last().body;
    assert_eq!(up["messages"][0]["role"], "developer");
    assert!(up.get("top_k").is_none());
    assert!(up.get("min_p").is_none());
    assert!(up.get("parallel_tool_calls").is_none());
    assert_eq!(up["max_completion_tokens"], 50);
    assert!(up.get("max_tokens").is_none());
    assert!(up["messages"][2].get("sender").is_none());
    assert!(up["messages"][2].get("refusal").is_none());
    s.stop().await;
}

/// C14: the upstream's own 400 is the client's 400, `param` and `code` kept.
#[tokio::test]
async fn an_upstream_400_keeps_param_and_code() {
    let mock = Mock::start(|_| {
        MockReply::Json(
            400,
            json!({"error":{"message":"Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
                            "type":"invalid_request_error","param":"max_tokens","code":"unsupported_parameter"}}),
        )
    })
    .await;
    let s = Sluice::start(&config(&mock.url("/v1"))).await;
    let resp = post(&s, json!({"model":"openai-like","max_tokens":1000,"messages":[{"role":"user","content":"water in spanish?"}]})).await;
    assert_eq!(resp.status(), 400);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["param"], "max_tokens");
    assert_eq!(e["error"]["code"], "unsupported_parameter");
    assert_eq!(e["error"]["type"], "invalid_request_error");
    s.stop().await;
}

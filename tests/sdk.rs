//! The official `openai` Python package as the client: Sluice in front of a mock upstream,
//! the SDK pointed at it through `OPENAI_BASE_URL`. Needs `SLUICE_PYTHON` (set by
//! `tests/run.sh`, which makes the virtual environment).

mod support;

use bytes::Bytes;
use serde_json::{Value, json};
use support::*;

fn chunk(delta: Value, finish: Value) -> Value {
    json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"upstream-model",
           "choices":[{"index":0,"delta":delta,"finish_reason":finish}]})
}

fn upstream(r: &Received) -> MockReply {
    if r.path == "/v1/embeddings" {
        return MockReply::Json(
            200,
            json!({"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.25,-0.5,1.0]}],"model":"upstream-model","usage":{"prompt_tokens":3,"total_tokens":3}}),
        );
    }
    let has_tools = r.body.get("tools").is_some();
    let last_is_tool = r.body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .map(|m| m["role"] == "tool")
        .unwrap_or(false);
    if r.body["stream"] == true {
        let mut chunks = vec![chunk(json!({"role":"assistant","content":""}), Value::Null)];
        if has_tools && !last_is_tool {
            chunks.push(chunk(json!({"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\":"}}]}), Value::Null));
            chunks.push(chunk(json!({"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{\"tz\":\"CET\"}"}}]}), Value::Null));
            chunks.push(chunk(
                json!({"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}),
                Value::Null,
            ));
            chunks.push(chunk(json!({}), json!("tool_calls")));
        } else {
            for p in ["Hello", " from", " the", " mock", "!"] {
                chunks.push(chunk(json!({"content": p}), Value::Null));
            }
            chunks.push(chunk(json!({}), json!("stop")));
        }
        chunks.push(json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"upstream-model","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":5,"total_tokens":16}}));
        let mut frames: Vec<Bytes> = chunks.iter().map(sse).collect();
        frames.push(done());
        return MockReply::Sse(frames);
    }
    let message = if has_tools && !last_is_tool {
        json!({"role":"assistant","content":null,"tool_calls":[{"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]})
    } else if last_is_tool {
        json!({"role":"assistant","content":"It is 21 degrees in Paris."})
    } else {
        json!({"role":"assistant","content":"Hello from the mock!"})
    };
    let finish = if message["tool_calls"].is_array() {
        "tool_calls"
    } else {
        "stop"
    };
    MockReply::Json(
        200,
        json!({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"upstream-model",
        "choices":[{"index":0,"message":message,"logprobs":null,"finish_reason":finish}],
        "usage":{"prompt_tokens":11,"completion_tokens":5,"total_tokens":16}}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_openai_python_sdk_against_sluice() {
    let python = std::env::var("SLUICE_PYTHON")
        .expect("SLUICE_PYTHON is not set: run the tests with tests/run.sh, which installs the openai package");
    let mock = Mock::start(upstream).await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    let base = s.url("/v1");
    let out = tokio::process::Command::new(python)
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/sdk/test_openai_sdk.py",
        ])
        .env("OPENAI_BASE_URL", &base)
        .env("OPENAI_API_KEY", "sk-test")
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pytest failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("5 passed"), "{stdout}");
    // The tool round trip sent the tool result back upstream as a `tool` message.
    let tool_turn = mock.received.lock().unwrap().iter().any(|r| {
        r.body["messages"].as_array().is_some_and(|m| {
            m.iter()
                .any(|x| x["role"] == "tool" && x["tool_call_id"] == "call_a")
        })
    });
    assert!(tool_turn);
    s.stop().await;
}

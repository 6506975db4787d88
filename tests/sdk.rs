//! The official `openai` Python package as the client: Sluice in front of a mock upstream,
//! the SDK pointed at it through `OPENAI_BASE_URL`. Needs `SLUICE_PYTHON` (set by
//! `tests/run.sh`, which makes the virtual environment).

mod support;

use bytes::Bytes;
use serde_json::{Value, json};
use support::*;

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
    let mut cmd = tokio::process::Command::new(python);
    cmd.args([
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/sdk/test_openai_sdk.py",
    ])
    .env("OPENAI_BASE_URL", &base)
    .env("OPENAI_API_KEY", "sk-test")
    .env("NO_PROXY", "127.0.0.1");
    let out = output_within(cmd, 300).await;
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

/// Ollama-native mock: text or two tool calls, whole or as NDJSON; the turn after tool
/// results is text.
fn ollama_upstream(r: &Received) -> MockReply {
    let msgs = r.body["messages"].as_array().cloned().unwrap_or_default();
    let wants_tools =
        r.body.get("tools").is_some() && msgs.last().is_some_and(|m| m["role"] != "tool");
    let call = |name: &str, args: Value| json!({"function":{"name":name,"arguments":args}});
    let piece = |content: &str, calls: Option<Value>| {
        let mut m = json!({"role":"assistant","content":content});
        if let Some(c) = calls {
            m["tool_calls"] = c;
        }
        json!({"model":"llama3.2","created_at":"2025-06-01T10:00:00Z","message":m,"done":false})
    };
    let done = |content: &str, calls: Option<Value>| {
        let mut d = piece(content, calls);
        d["done"] = json!(true);
        d["done_reason"] = json!("stop");
        d["prompt_eval_count"] = json!(11);
        d["eval_count"] = json!(5);
        d
    };
    let weather = call("get_weather", json!({"city":"Paris"}));
    let time = call("get_time", json!({"tz":"CET"}));
    if r.body["stream"] == true {
        let lines: Vec<Value> = if wants_tools {
            vec![
                piece("", Some(json!([weather]))),
                piece("", Some(json!([time]))),
                done("", None),
            ]
        } else {
            let mut l: Vec<Value> = ["Hello", " from", " the", " mock", "!"]
                .iter()
                .map(|p| piece(p, None))
                .collect();
            l.push(done("", None));
            l
        };
        return MockReply::Chunks(
            "application/x-ndjson",
            lines
                .iter()
                .map(|l| Bytes::from(format!("{l}\n")))
                .collect(),
        );
    }
    if wants_tools {
        MockReply::Json(200, done("", Some(json!([weather, time]))))
    } else {
        MockReply::Json(200, done("Hello from the mock!", None))
    }
}

/// Anthropic Messages mock: text or two tool_use blocks, whole or as SSE.
fn anthropic_upstream(r: &Received) -> MockReply {
    let msgs = r.body["messages"].as_array().cloned().unwrap_or_default();
    let last_is_result = msgs.last().is_some_and(|m| {
        m["content"]
            .as_array()
            .is_some_and(|c| c.iter().any(|b| b["type"] == "tool_result"))
    });
    let wants_tools = r.body.get("tools").is_some() && !last_is_result;
    let ev = |name: &str, data: Value| Bytes::from(format!("event: {name}\ndata: {data}\n\n"));
    if r.body["stream"] == true {
        let mut out = vec![
            ev(
                "message_start",
                json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"usage":{"input_tokens":11,"output_tokens":1}}}),
            ),
            ev("ping", json!({"type":"ping"})),
        ];
        if wants_tools {
            for (i, id, name, parts) in [
                (
                    0,
                    "toolu_A",
                    "get_weather",
                    vec!["{\"city\":", " \"Paris\"}"],
                ),
                (1, "toolu_B", "get_time", vec!["{\"tz\": \"CET\"}"]),
            ] {
                out.push(ev("content_block_start", json!({"type":"content_block_start","index":i,"content_block":{"type":"tool_use","id":id,"name":name,"input":{}}})));
                for p in parts {
                    out.push(ev("content_block_delta", json!({"type":"content_block_delta","index":i,"delta":{"type":"input_json_delta","partial_json":p}})));
                }
                out.push(ev(
                    "content_block_stop",
                    json!({"type":"content_block_stop","index":i}),
                ));
            }
        } else {
            out.push(ev("content_block_start", json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})));
            for p in ["Hello", " from", " the", " mock", "!"] {
                out.push(ev("content_block_delta", json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":p}})));
            }
            out.push(ev(
                "content_block_stop",
                json!({"type":"content_block_stop","index":0}),
            ));
        }
        let reason = if wants_tools { "tool_use" } else { "end_turn" };
        out.push(ev("message_delta", json!({"type":"message_delta","delta":{"stop_reason":reason,"stop_sequence":null},"usage":{"output_tokens":5}})));
        out.push(ev("message_stop", json!({"type":"message_stop"})));
        return MockReply::Sse(out);
    }
    let (content, reason) = if wants_tools {
        (
            json!([{"type":"tool_use","id":"toolu_A","name":"get_weather","input":{"city":"Paris"}},
                   {"type":"tool_use","id":"toolu_B","name":"get_time","input":{"tz":"CET"}}]),
            "tool_use",
        )
    } else {
        (
            json!([{"type":"text","text":"Hello from the mock!"}]),
            "end_turn",
        )
    };
    MockReply::Json(
        200,
        json!({"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":content,
               "stop_reason":reason,"stop_sequence":null,"usage":{"input_tokens":11,"output_tokens":5}}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_openai_python_sdk_through_ollama_and_anthropic() {
    let python = std::env::var("SLUICE_PYTHON")
        .expect("SLUICE_PYTHON is not set: run the tests with tests/run.sh, which installs the openai package");
    let ollama = Mock::start(ollama_upstream).await;
    let anthropic = Mock::start(anthropic_upstream).await;
    let yaml = format!(
        "deployments:\n  - name: via-ollama\n    provider: ollama\n    base_url: {}\n    model: llama3.2\n  - name: via-anthropic\n    provider: anthropic\n    base_url: {}\n    model: claude-sonnet-4-5\n    api_key: sk-ant-test\n",
        ollama.url(""),
        anthropic.url("")
    );
    let s = Sluice::start(&yaml).await;
    let mut cmd = tokio::process::Command::new(python);
    cmd.args([
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/sdk/test_native_providers.py",
    ])
    .env("OPENAI_BASE_URL", s.url("/v1"))
    .env("OPENAI_API_KEY", "sk-test")
    .env("NO_PROXY", "127.0.0.1");
    let out = output_within(cmd, 300).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pytest failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("8 passed"), "{stdout}");
    // The tool round trip reached each backend in its own shape.
    let ollama_tool_turn = ollama.received.lock().unwrap().iter().any(|r| {
        r.body["messages"].as_array().is_some_and(|m| {
            m.iter().any(|x| {
                x["role"] == "tool" && x["tool_name"] == "get_time" && x["content"] == "10:00"
            })
        })
    });
    assert!(ollama_tool_turn);
    let anthropic_tool_turn = anthropic.received.lock().unwrap().iter().any(|r| {
        r.body["messages"].as_array().and_then(|m| m.last()).is_some_and(|m| {
            m["content"][1] == json!({"type":"tool_result","tool_use_id":"toolu_B","content":[{"type":"text","text":"10:00"}]})
        })
    });
    assert!(anthropic_tool_turn);
    s.stop().await;
}

//! The official SDKs against Sluice's native routes: the `anthropic` Python package
//! (tests/sdk/test_anthropic_sdk.py) against a mock that answers as Anthropic's Messages API
//! behind an `anthropic` deployment, and the `openai` Python package's Responses calls
//! (tests/sdk/test_responses_sdk.py) against a mock that answers as OpenAI's Responses API
//! behind a `supports: [responses]` deployment. The mocks give the same contents as the chat
//! mocks of the bridged runs, so the same assertions hold, exactly.

mod support;

use bytes::Bytes;
use serde_json::{Value, json};
use support::*;

fn ev(data: &Value) -> Bytes {
    let name = data["type"].as_str().unwrap_or("message");
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

const HELLO: [&str; 5] = ["Hello", " from", " the", " mock", "!"];

// ---------- Anthropic Messages ----------

fn anthropic_native(r: &Received) -> MockReply {
    assert_eq!(r.path, "/v1/messages");
    let msgs = r.body["messages"].as_array().cloned().unwrap_or_default();
    let last = msgs.last().cloned().unwrap_or(Value::Null);
    let answered = last["content"]
        .as_array()
        .is_some_and(|b| b.iter().any(|b| b["type"] == "tool_result"));
    let tool = r.body.get("tools").is_some() && !answered;
    let block = if tool {
        json!({"type":"tool_use","id":"toolu_01","name":"get_weather","input":{"city":"Paris"}})
    } else {
        json!({"type":"text","text":HELLO.concat()})
    };
    let stop = if tool { "tool_use" } else { "end_turn" };
    let usage = json!({"input_tokens":11,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":5});
    if r.body["stream"] != true {
        return MockReply::Json(
            200,
            json!({"id":"msg_01","type":"message","role":"assistant","model":"claude-x",
                   "content":[block],"stop_reason":stop,"stop_sequence":null,"usage":usage}),
        );
    }
    let mut events = vec![
        json!({"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","model":"claude-x",
               "content":[],"stop_reason":null,"stop_sequence":null,
               "usage":{"input_tokens":11,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}),
    ];
    if tool {
        events.push(json!({"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_01","name":"get_weather","input":{}}}));
        for p in ["{\"city\":", "\"Paris\"}"] {
            events.push(json!({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":p}}));
        }
    } else {
        events.push(json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}));
        events.push(json!({"type":"ping"}));
        for p in HELLO {
            events.push(json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":p}}));
        }
    }
    events.push(json!({"type":"content_block_stop","index":0}));
    events.push(json!({"type":"message_delta","delta":{"stop_reason":stop,"stop_sequence":null},"usage":{"output_tokens":5}}));
    events.push(json!({"type":"message_stop"}));
    MockReply::Sse(events.iter().map(ev).collect())
}

// ---------- OpenAI Responses ----------

/// The answer's output items for a request: a structured-output object, tool calls (two on a
/// stream, as the bridged mock does), the tool result's sentence, or the greeting.
fn outputs(body: &Value) -> Vec<Value> {
    let input = body["input"].as_array().cloned().unwrap_or_default();
    let answered = input
        .last()
        .is_some_and(|i| i["type"] == "function_call_output");
    let message = |text: &str| {
        json!({"id":"msg_1","type":"message","status":"completed","role":"assistant",
               "content":[{"type":"output_text","text":text,"annotations":[]}]})
    };
    let call = |id: &str, name: &str, args: &str| json!({"id":format!("fc_{id}"),"type":"function_call","status":"completed","call_id":id,"name":name,"arguments":args});
    if body["text"]["format"]["type"] == "json_schema" {
        vec![message("{\"name\":\"Anna\",\"age\":31}")]
    } else if answered {
        vec![message("It is 21 degrees in Paris.")]
    } else if body.get("tools").is_some() && body["stream"] == true {
        vec![
            call("call_a", "get_weather", "{\"city\":\"Paris\"}"),
            call("call_b", "get_time", "{\"tz\":\"CET\"}"),
        ]
    } else if body.get("tools").is_some() {
        vec![call("call_a", "get_weather", "{\"city\":\"Paris\"}")]
    } else {
        vec![message(&HELLO.concat())]
    }
}

/// A Response object as OpenAI's API makes it, echoing the request's settings.
fn response(id: &str, body: &Value, status: &str, output: Vec<Value>, usage: Value) -> Value {
    let get = |k: &str, d: Value| body.get(k).cloned().unwrap_or(d);
    json!({"id":id,"object":"response","created_at":1_700_000_000,"status":status,"error":null,
           "incomplete_details":null,"instructions":get("instructions", Value::Null),
           "max_output_tokens":null,"model":"m","output":output,"parallel_tool_calls":true,
           "previous_response_id":get("previous_response_id", Value::Null),"reasoning":{"effort":null,"summary":null},
           "store":get("store", json!(true)),"temperature":1.0,"text":get("text", json!({"format":{"type":"text"}})),
           "tool_choice":"auto","tools":get("tools", json!([])),"top_p":1.0,"truncation":"disabled",
           "usage":usage,"user":null,"metadata":get("metadata", json!({}))})
}

fn responses_native(r: &Received) -> MockReply {
    assert_eq!(r.path, "/v1/responses");
    let n = r.body["input"].to_string().len();
    let id = format!("resp_native{n:04}");
    let usage = json!({"input_tokens":11,"input_tokens_details":{"cached_tokens":0},"output_tokens":5,
                       "output_tokens_details":{"reasoning_tokens":0},"total_tokens":16});
    let out = outputs(&r.body);
    if r.body["stream"] != true {
        return MockReply::Json(200, response(&id, &r.body, "completed", out, usage));
    }
    let mut seq = 0u64;
    let mut events = Vec::new();
    let mut push = |mut e: Value| {
        e["sequence_number"] = json!(seq);
        seq += 1;
        events.push(e);
    };
    let start = response(&id, &r.body, "in_progress", vec![], Value::Null);
    push(json!({"type":"response.created","response":start}));
    push(json!({"type":"response.in_progress","response":start}));
    for (i, item) in out.iter().enumerate() {
        let item_id = item["id"].clone();
        if item["type"] == "message" {
            let text = item["content"][0]["text"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let mut open = item.clone();
            open["status"] = json!("in_progress");
            open["content"] = json!([]);
            push(json!({"type":"response.output_item.added","output_index":i,"item":open}));
            push(
                json!({"type":"response.content_part.added","item_id":item_id,"output_index":i,"content_index":0,
                        "part":{"type":"output_text","text":"","annotations":[]}}),
            );
            let pieces: Vec<String> = if text == HELLO.concat() {
                HELLO.iter().map(|s| s.to_string()).collect()
            } else {
                vec![text.clone()]
            };
            for p in pieces {
                push(
                    json!({"type":"response.output_text.delta","item_id":item_id,"output_index":i,"content_index":0,"delta":p,"logprobs":[]}),
                );
            }
            push(
                json!({"type":"response.output_text.done","item_id":item_id,"output_index":i,"content_index":0,"text":text,"logprobs":[]}),
            );
            push(
                json!({"type":"response.content_part.done","item_id":item_id,"output_index":i,"content_index":0,
                        "part":item["content"][0]}),
            );
        } else {
            let mut open = item.clone();
            open["status"] = json!("in_progress");
            open["arguments"] = json!("");
            push(json!({"type":"response.output_item.added","output_index":i,"item":open}));
            push(
                json!({"type":"response.function_call_arguments.delta","item_id":item_id,"output_index":i,"delta":item["arguments"]}),
            );
            push(
                json!({"type":"response.function_call_arguments.done","item_id":item_id,"output_index":i,"arguments":item["arguments"]}),
            );
        }
        push(json!({"type":"response.output_item.done","output_index":i,"item":item}));
    }
    let done = response(&id, &r.body, "completed", out, usage);
    push(json!({"type":"response.completed","response":done}));
    MockReply::Sse(events.iter().map(ev).collect())
}

/// An OpenAI-compatible chat mock answering "Hello from the mock!" (11 + 5 tokens).
fn chat_native(r: &Received) -> MockReply {
    let usage = json!({"prompt_tokens":11,"completion_tokens":5,"total_tokens":16});
    if r.body["stream"] != true {
        return MockReply::Json(
            200,
            json!({"id":"c","object":"chat.completion","created":1,"model":"m","usage":usage,
                   "choices":[{"index":0,"message":{"role":"assistant","content":HELLO.concat()},"finish_reason":"stop"}]}),
        );
    }
    let mut frames: Vec<Bytes> = HELLO
        .iter()
        .map(|p| sse(&chunk(json!({"content":p}), Value::Null)))
        .collect();
    frames.push(sse(&chunk(json!({}), json!("stop"))));
    frames.push(sse(&json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":usage})));
    frames.push(done());
    MockReply::Sse(frames)
}

async fn pytest(file: &str, envs: &[(&str, String)]) -> String {
    let python = std::env::var("SLUICE_PYTHON").expect(
        "SLUICE_PYTHON is not set: run the tests with tests/run.sh, which installs the SDKs",
    );
    let mut cmd = tokio::process::Command::new(python);
    cmd.args(["-m", "pytest", "-q", "-p", "no:cacheprovider", file])
        .env("NO_PROXY", "127.0.0.1")
        .env("SLUICE_NATIVE", "1");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = output_within(cmd, 240).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pytest failed:\n{stdout}\n{stderr}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_anthropic_python_sdk_native() {
    let mock = Mock::start(anthropic_native).await;
    let yaml = format!(
        "deployments:\n  - name: claude\n    provider: anthropic\n    base_url: {}\n    model: claude-x\n    api_key: sk-ant-secret\nmodels:\n  - name: default\n    deployments: [claude]\n",
        mock.url("")
    );
    let s = Sluice::start(&yaml).await;
    let stdout = pytest(
        "tests/sdk/test_anthropic_sdk.py",
        &[
            ("ANTHROPIC_BASE_URL", s.url("")),
            ("ANTHROPIC_API_KEY", "sk-test".into()),
        ],
    )
    .await;
    assert!(stdout.contains("5 passed"), "{stdout}");
    // Every call went to the Messages API natively; the round trip's tool_result reached it.
    let got = mock.received.lock().unwrap().clone();
    assert!(got.iter().all(|r| r.path == "/v1/messages"));
    assert!(got.iter().any(|r| r.body["messages"][2]["content"][0]
        == json!({"type":"tool_result","tool_use_id":"toolu_01","content":"18C"})));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_openai_python_sdk_responses_native() {
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(responses_native).await;
    let yaml = format!(
        "deployments:\n  - name: native\n    provider: openai\n    base_url: {}\n    model: m\n    supports: [responses]\nmodels:\n  - name: default\n    deployments: [native]\nlog:\n  path: {}\n  prompts: full\n",
        mock.url("/v1"),
        dir.path().join("l.db").display()
    );
    let s = Sluice::start_logged(&yaml).await;
    let stdout = pytest(
        "tests/sdk/test_responses_sdk.py",
        &[
            ("OPENAI_BASE_URL", s.url("/v1")),
            ("OPENAI_API_KEY", "sk-test".into()),
        ],
    )
    .await;
    assert!(stdout.contains("8 passed"), "{stdout}");
    // The second turn of the round trip carried the stored conversation, not the id.
    let got = mock.received.lock().unwrap().clone();
    let second = got
        .iter()
        .find(|r| r.body["input"].as_array().is_some_and(|i| i.len() == 3))
        .expect("a continued conversation");
    assert!(second.body.get("previous_response_id").is_none());
    assert_eq!(second.body["input"][1]["call_id"], "call_a");
    assert_eq!(second.body["input"][2]["output"], "21C");
    s.stop().await;
}

/// openai-node (installed by tests/run.sh under ~/.cache/sluice/node, or where
/// SLUICE_OPENAI_NODE points): `responses.create` whole and streamed, natively and bridged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_openai_node_responses_native_and_bridged() {
    let package = std::env::var("SLUICE_OPENAI_NODE").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/sluice/node/node_modules/openai/index.mjs")
    });
    assert!(
        std::path::Path::new(&package).exists(),
        "{package} is missing: run the tests with tests/run.sh, which installs openai-node"
    );
    let native = Mock::start(responses_native).await;
    let chat = Mock::start(chat_native).await;
    let yaml = format!(
        "deployments:\n  - name: native\n    provider: openai\n    base_url: {}\n    model: m\n    supports: [responses]\n  - name: chat\n    provider: openai\n    base_url: {}\n    model: m\nmodels:\n  - name: default\n    deployments: [native]\n  - name: bridged\n    deployments: [chat]\n",
        native.url("/v1"),
        chat.url("/v1")
    );
    let s = Sluice::start(&yaml).await;
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg("tests/sdk/responses_node.mjs")
        .env("OPENAI_BASE_URL", s.url("/v1"))
        .env("OPENAI_API_KEY", "sk-test")
        .env("SLUICE_OPENAI_NODE", &package)
        .env("NO_PROXY", "127.0.0.1");
    let out = output_within(cmd, 120).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "default: ok\nbridged: ok\n");
    assert_eq!((native.calls(), chat.calls()), (2, 2));
    s.stop().await;
}

//! `provider: ollama` over HTTP: Sluice in front of a mock that answers like Ollama's native
//! API (bodies recorded from Ollama 0.12: `/api/chat`, `/api/generate`, `/api/embed`, NDJSON
//! streams, `{"error":"…"}` bodies). Every mapping is checked both ways: the body Ollama
//! received, and what the OpenAI client got.

mod support;

use bytes::Bytes;
use serde_json::{Value, json};
use support::*;

fn config(base: &str, extra: &str) -> String {
    format!(
        "deployments:\n  - name: llama\n    provider: ollama\n    base_url: {base}\n    model: llama3.1:8b\n{extra}models:\n  - name: default\n    deployments: [llama]\n"
    )
}

/// A final `/api/chat` object as Ollama sends it.
fn chat_done(content: &str, reason: &str, prompt: u64, eval: u64) -> Value {
    json!({"model":"llama3.1:8b","created_at":"2025-06-01T10:00:00.123456Z",
           "message":{"role":"assistant","content":content},
           "done_reason":reason,"done":true,"total_duration":4883583458u64,"load_duration":1334875,
           "prompt_eval_count":prompt,"prompt_eval_duration":342546000,"eval_count":eval,"eval_duration":4535599000u64})
}

fn line(v: &Value) -> Bytes {
    Bytes::from(format!("{v}\n"))
}

fn piece(content: &str) -> Value {
    json!({"model":"llama3.1:8b","created_at":"2025-06-01T10:00:00.1Z","message":{"role":"assistant","content":content},"done":false})
}

fn ndjson(lines: &[Value]) -> MockReply {
    MockReply::Chunks("application/x-ndjson", lines.iter().map(line).collect())
}

fn events(text: &str) -> Vec<Value> {
    let ev = data_events(text);
    assert_eq!(ev.last().map(String::as_str), Some("[DONE]"), "{text}");
    ev[..ev.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}

/// C16: sampling under `options`, nothing at the top level; temperature 0 kept; reply mapped.
#[tokio::test]
async fn chat_non_stream_maps_options_and_the_answer() {
    let mock =
        Mock::start(|_| MockReply::Json(200, chat_done("A cat is a small feline.", "stop", 26, 7)))
            .await;
    let s = Sluice::start(&config(&mock.url(""), "")).await;
    let resp = post(
        &s,
        "/v1/chat/completions",
        json!({"model":"default","seed":42,"temperature":0.7,"top_p":0.9,"max_tokens":64,
        "messages":[{"role":"user","content":"Write a description of a cat."}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-sluice-deployment"], "llama");
    let got: Value = resp.json().await.unwrap();
    assert!(got["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(got["object"], "chat.completion");
    assert_eq!(got["model"], "llama3.1:8b");
    assert_eq!(
        got["choices"][0]["message"],
        json!({"role":"assistant","content":"A cat is a small feline."})
    );
    assert_eq!(got["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        got["usage"],
        json!({"prompt_tokens":26,"completion_tokens":7,"total_tokens":33})
    );
    let up = mock.last();
    assert_eq!(up.path, "/api/chat");
    assert_eq!(
        up.body,
        json!({"model":"llama3.1:8b","messages":[{"role":"user","content":"Write a description of a cat."}],"stream":false,
               "options":{"temperature":0.7,"top_p":0.9,"seed":42,"num_predict":64}})
    );
    let resp = post(&s, "/v1/chat/completions", json!({"model":"default","temperature":0,"stop":"\n\n","messages":[{"role":"user","content":"x"}]})).await;
    assert_eq!(resp.status(), 200);
    let up = mock.last();
    assert_eq!(up.body["options"]["temperature"].as_f64(), Some(0.0));
    assert_eq!(up.body["options"]["stop"], json!(["\n\n"]));
    s.stop().await;
}

/// The stream: role first, content deltas in order, one finish, the usage chunk only when asked.
#[tokio::test]
async fn chat_stream_with_and_without_usage() {
    let mock = Mock::start(|_| {
        ndjson(&[
            piece("Hello"),
            piece(" from"),
            piece(" Ollama!"),
            chat_done("", "stop", 12, 4),
        ])
    })
    .await;
    let s = Sluice::start(&config(&mock.url(""), "")).await;
    for include in [true, false] {
        let resp = post(
            &s,
            "/v1/chat/completions",
            json!({"model":"default","stream":true,"stream_options":{"include_usage":include},
            "messages":[{"role":"user","content":"Say hello."}]}),
        )
        .await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let chunks = events(&resp.text().await.unwrap());
        assert_eq!(
            chunks[0]["choices"][0]["delta"],
            json!({"role":"assistant","content":""})
        );
        let deltas: Vec<Value> = chunks
            .iter()
            .filter(|c| !c["choices"].as_array().unwrap().is_empty())
            .map(|c| c["choices"][0]["delta"].clone())
            .collect();
        assert_eq!(
            deltas,
            vec![
                json!({"role":"assistant","content":""}),
                json!({"content":"Hello"}),
                json!({"content":" from"}),
                json!({"content":" Ollama!"}),
                json!({})
            ]
        );
        let finishes: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c["choices"].get(0))
            .map(|c| &c["finish_reason"])
            .filter(|f| !f.is_null())
            .collect();
        assert_eq!(finishes, vec![&json!("stop")]);
        let ids: std::collections::HashSet<&str> =
            chunks.iter().map(|c| c["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 1);
        let usage: Vec<&Value> = chunks
            .iter()
            .filter(|c| c["usage"].is_object())
            .map(|c| &c["usage"])
            .collect();
        if include {
            assert_eq!(
                usage,
                vec![&json!({"prompt_tokens":12,"completion_tokens":4,"total_tokens":16})]
            );
            assert_eq!(chunks.last().unwrap()["choices"], json!([]));
        } else {
            assert!(usage.is_empty());
        }
        assert_eq!(mock.last().body["stream"], true);
    }
    s.stop().await;
}

fn file_write_call(path: &str, content: &str) -> Value {
    json!({"model":"qwen2.5-coder:7b","created_at":"2025-06-01T10:00:01Z","message":{"role":"assistant","content":"",
        "tool_calls":[{"function":{"name":"file_write","arguments":{"path":path,"content":content}}}]},"done":false})
}

fn c07_request(stream: bool) -> Value {
    json!({"model":"default","stream":stream,
        "messages":[{"role":"user","content":"Create a.txt containing A and b.txt containing B. Call the tool once per file."}],
        "tools":[{"type":"function","function":{"name":"file_write",
           "parameters":{"type":"object","properties":{"path":{"type":"string"},"content":{"type":"string"}},"required":["path","content"]}}}]})
}

/// C07: two calls in two NDJSON lines → index 0 and 1, distinct ids, string arguments,
/// `finish_reason: "tool_calls"` although Ollama said `stop`.
#[tokio::test]
async fn parallel_tool_calls_get_their_own_indexes() {
    let mock = Mock::start(|r| {
        if r.body["stream"] == true {
            ndjson(&[
                file_write_call("a.txt", "A"),
                file_write_call("b.txt", "B"),
                chat_done("", "stop", 80, 40),
            ])
        } else {
            let mut done = chat_done("", "stop", 80, 40);
            done["message"]["tool_calls"] = json!([
                {"function":{"name":"file_write","arguments":{"path":"a.txt","content":"A"}}},
                {"function":{"name":"file_write","arguments":{"path":"b.txt","content":"B"}}}]);
            MockReply::Json(200, done)
        }
    })
    .await;
    let s = Sluice::start(&config(&mock.url(""), "")).await;
    let resp = post(&s, "/v1/chat/completions", c07_request(true)).await;
    let chunks = events(&resp.text().await.unwrap());
    let mut calls: Vec<(u64, String, String, String)> = Vec::new();
    for c in &chunks {
        for tc in c["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            calls.push((
                tc["index"].as_u64().unwrap(),
                tc["id"].as_str().unwrap().into(),
                tc["function"]["name"].as_str().unwrap().into(),
                tc["function"]["arguments"].as_str().unwrap().into(),
            ));
            assert_eq!(tc["type"], "function");
        }
    }
    assert_eq!(calls.len(), 2);
    assert_eq!((calls[0].0, calls[1].0), (0, 1));
    assert_ne!(calls[0].1, calls[1].1);
    assert!(calls[0].1.starts_with("call_"));
    assert_eq!(
        serde_json::from_str::<Value>(&calls[0].3).unwrap(),
        json!({"path":"a.txt","content":"A"})
    );
    assert_eq!(
        serde_json::from_str::<Value>(&calls[1].3).unwrap(),
        json!({"path":"b.txt","content":"B"})
    );
    let finish: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0))
        .map(|c| &c["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, vec![&json!("tool_calls")]);
    assert_eq!(
        mock.last().body["tools"][0]["function"]["name"],
        "file_write"
    );

    let got: Value = post(&s, "/v1/chat/completions", c07_request(false))
        .await
        .json()
        .await
        .unwrap();
    let m = &got["choices"][0]["message"];
    assert_eq!(m["content"], Value::Null);
    assert_eq!(m["tool_calls"].as_array().unwrap().len(), 2);
    assert_eq!(
        serde_json::from_str::<Value>(
            m["tool_calls"][1]["function"]["arguments"]
                .as_str()
                .unwrap()
        )
        .unwrap(),
        json!({"path":"b.txt","content":"B"})
    );
    assert_eq!(got["choices"][0]["finish_reason"], "tool_calls");
    s.stop().await;
}

/// C25: `done_reason: "length"` stays `length` in both modes, with the real counts.
#[tokio::test]
async fn length_cut_is_reported_as_length() {
    let mock = Mock::start(|r| {
        if r.body["stream"] == true {
            ndjson(&[
                piece("A neural network learns by"),
                chat_done("", "length", 15, 20),
            ])
        } else {
            MockReply::Json(
                200,
                chat_done("A neural network learns by", "length", 15, 20),
            )
        }
    })
    .await;
    let s = Sluice::start(&config(&mock.url(""), "")).await;
    let req = |stream: bool| {
        json!({"model":"default","max_tokens":20,"stream":stream,"stream_options":{"include_usage":true},
        "messages":[{"role":"user","content":"Explain in detail how a neural network learns."}]})
    };
    let mut plain = req(false);
    plain.as_object_mut().unwrap().remove("stream_options");
    let got: Value = post(&s, "/v1/chat/completions", plain)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["choices"][0]["finish_reason"], "length");
    assert_eq!(got["usage"]["completion_tokens"], 20);
    assert_eq!(mock.last().body["options"]["num_predict"], 20);
    let chunks = events(
        &post(&s, "/v1/chat/completions", req(true))
            .await
            .text()
            .await
            .unwrap(),
    );
    let finish: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0))
        .map(|c| &c["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, vec![&json!("length")]);
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 20);
    s.stop().await;
}

/// C17 and keep_alive: `num_ctx` from the client's `options` or the deployment config.
#[tokio::test]
async fn num_ctx_and_keep_alive_reach_ollama() {
    let mock = Mock::start(|_| MockReply::Json(200, chat_done("ok", "stop", 6100, 2))).await;
    let s = Sluice::start(&config(
        &mock.url(""),
        "    num_ctx: 8192\n    keep_alive: 30m\n",
    ))
    .await;
    let got: Value = post(
        &s,
        "/v1/chat/completions",
        json!({"model":"default","options":{"num_ctx":16384},
        "messages":[{"role":"user","content":"Summarise."}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(got["usage"]["prompt_tokens"], 6100);
    let up = mock.last();
    assert_eq!(up.body["options"], json!({"num_ctx":16384}));
    assert_eq!(up.body["keep_alive"], "30m");
    post(
        &s,
        "/v1/chat/completions",
        json!({"model":"default","keep_alive":0,"messages":[{"role":"user","content":"x"}]}),
    )
    .await;
    let up = mock.last();
    assert_eq!(up.body["options"], json!({"num_ctx":8192}));
    assert_eq!(up.body["keep_alive"], 0);
    s.stop().await;
}

/// C15: `json_schema` → `format` = the schema; `json_object` → `"json"`; a schema-less
/// `json_schema` is a 400 before any upstream call.
#[tokio::test]
async fn response_format_becomes_format() {
    let mock = Mock::start(|_| {
        MockReply::Json(
            200,
            chat_done("{\"age\":22,\"available\":false}", "stop", 30, 9),
        )
    })
    .await;
    let s = Sluice::start(&config(&mock.url(""), "")).await;
    let schema = json!({"type":"object","properties":{"age":{"type":"integer"},"available":{"type":"boolean"}},"required":["age","available"],"additionalProperties":false});
    let got: Value = post(&s, "/v1/chat/completions", json!({"model":"default","temperature":0,
        "messages":[{"role":"user","content":"Ollama is 22 years old and busy saving the world. Return JSON."}],
        "response_format":{"type":"json_schema","json_schema":{"name":"status","strict":true,"schema":schema}}})).await.json().await.unwrap();
    let content: Value =
        serde_json::from_str(got["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content, json!({"age":22,"available":false}));
    assert_eq!(mock.last().body["format"], schema);
    post(&s, "/v1/chat/completions", json!({"model":"default","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"x"}]})).await;
    assert_eq!(mock.last().body["format"], "json");
    let calls = mock.calls();
    let resp = post(&s, "/v1/chat/completions", json!({"model":"default","response_format":{"type":"json_schema","json_schema":{"name":"x"}},"messages":[{"role":"user","content":"x"}]})).await;
    assert_eq!(resp.status(), 400);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["param"], "response_format");
    assert_eq!(mock.calls(), calls);
    s.stop().await;
}

/// C10, C13, C21: a replayed tool round with `content: null`, null extras and an unknown key;
/// `developer` → `system`; images as base64; `tool` messages carry the function name.
#[tokio::test]
async fn history_with_tool_round_is_translated() {
    let mock =
        Mock::start(|_| MockReply::Json(200, chat_done("Sunny and 24C in Paris.", "stop", 50, 8)))
            .await;
    let s = Sluice::start(&config(&mock.url(""), "")).await;
    let resp = post(&s, "/v1/chat/completions", json!({"model":"default","top_k":20,
        "messages":[
            {"role":"developer","content":"Be brief."},
            {"role":"user","content":[{"type":"text","text":"What's the weather in Paris?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]},
            {"role":"assistant","content":null,"refusal":null,"function_call":null,"sender":"Agent","tool_calls":[{"id":"call_123","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"Paris\"}"}}]},
            {"role":"tool","tool_call_id":"call_123","content":"Sunny, 24C"}],
        "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}}}]})).await;
    assert_eq!(resp.status(), 200);
    let got: Value = resp.json().await.unwrap();
    assert_eq!(
        got["choices"][0]["message"]["content"],
        "Sunny and 24C in Paris."
    );
    let up = mock.last();
    assert_eq!(
        up.body["messages"],
        json!([
        {"role":"system","content":"Be brief."},
        {"role":"user","content":"What's the weather in Paris?","images":["iVBORw0KGgo="]},
        {"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_weather","arguments":{"location":"Paris"}}}]},
        {"role":"tool","content":"Sunny, 24C","tool_name":"get_weather"}])
    );
    assert_eq!(up.body["options"], json!({"top_k":20}));
    // Arguments that are not JSON: 400 naming the message, no upstream call.
    let calls = mock.calls();
    let resp = post(&s, "/v1/chat/completions", json!({"model":"default","messages":[
        {"role":"user","content":"q"},
        {"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"path\":\"a.txt\"}{\"path\":\"b.txt\"}"}}]}]})).await;
    assert_eq!(resp.status(), 400);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(
        e["error"]["param"],
        "messages[1].tool_calls[0].function.arguments"
    );
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert_eq!(mock.calls(), calls);
    s.stop().await;
}

/// C09: `tool_choice: "none"` sends no tools; a named function sends only that one.
#[tokio::test]
async fn tool_choice_limits_the_tools_sent() {
    let mock = Mock::start(|_| MockReply::Json(200, chat_done("Hello.", "stop", 5, 2))).await;
    let s = Sluice::start(&config(&mock.url(""), "")).await;
    let tools = json!([{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{}}}},
                       {"type":"function","function":{"name":"get_date","parameters":{"type":"object","properties":{}}}}]);
    post(&s, "/v1/chat/completions", json!({"model":"default","tools":tools,"tool_choice":"none","messages":[{"role":"user","content":"What time is it? Use get_time."}]})).await;
    assert!(mock.last().body.get("tools").is_none());
    post(&s, "/v1/chat/completions", json!({"model":"default","tools":tools,"tool_choice":{"type":"function","function":{"name":"get_time"}},"messages":[{"role":"user","content":"Say hello."}]})).await;
    let sent = mock.last().body["tools"].clone();
    assert_eq!(sent.as_array().unwrap().len(), 1);
    assert_eq!(sent[0]["function"]["name"], "get_time");
    s.stop().await;
}

/// Ollama's error bodies: 404 unknown model → OpenAI's `model_not_found`; 500 → 502 naming
/// the deployment; an error line mid-stream → one error event, no `[DONE]`.
#[tokio::test]
async fn ollama_errors_become_openai_errors() {
    let mock = Mock::start(|r| match r.body["messages"][0]["content"].as_str() {
        Some("missing") => MockReply::Json(
            404,
            json!({"error":"model \"llama3.1:8b\" not found, try pulling it first"}),
        ),
        Some("crash") => MockReply::Json(
            500,
            json!({"error":"llama runner process has terminated: exit status 2"}),
        ),
        _ => ndjson(&[
            piece("Partial"),
            json!({"error":"an error was encountered while running the model: CUDA error"}),
        ]),
    })
    .await;
    let s = Sluice::start(&config(&mock.url(""), "")).await;
    let msg = |c: &str, stream: bool| json!({"model":"default","stream":stream,"messages":[{"role":"user","content":c}]});
    let resp = post(&s, "/v1/chat/completions", msg("missing", false)).await;
    assert_eq!(resp.status(), 404);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(
        e,
        json!({"error":{"message":"model \"llama3.1:8b\" not found, try pulling it first","type":"invalid_request_error","param":"model","code":"model_not_found"}})
    );
    let resp = post(&s, "/v1/chat/completions", msg("crash", false)).await;
    assert_eq!(resp.status(), 502);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(
        e["error"]["message"],
        "deployment `llama` failed with HTTP 500: llama runner process has terminated: exit status 2"
    );
    let resp = post(&s, "/v1/chat/completions", msg("mid", true)).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let ev = data_events(&text);
    assert_eq!(ev.len(), 3, "{text}");
    let last: Value = serde_json::from_str(&ev[2]).unwrap();
    assert_eq!(
        last["error"]["message"],
        "deployment `llama`: an error was encountered while running the model: CUDA error"
    );
    assert_eq!(last["error"]["type"], "server_error");
    s.stop().await;
}

/// `/v1/completions` → `/api/generate` and `/v1/embeddings` → `/api/embed`, floats and base64.
#[tokio::test]
async fn completions_and_embeddings() {
    let mock = Mock::start(|r| match r.path.as_str() {
        "/api/generate" if r.body["stream"] == true => ndjson(&[
            json!({"model":"llama3.1:8b","created_at":"2025-06-01T10:00:00Z","response":"Once","done":false}),
            json!({"model":"llama3.1:8b","created_at":"2025-06-01T10:00:00Z","response":" upon a time","done":false}),
            json!({"model":"llama3.1:8b","created_at":"2025-06-01T10:00:00Z","response":"","done":true,"done_reason":"length","context":[1,2,3],"prompt_eval_count":4,"eval_count":3}),
        ]),
        "/api/generate" => MockReply::Json(200, json!({"model":"llama3.1:8b","created_at":"2025-06-01T10:00:00Z","response":"Once upon a time","done":true,"done_reason":"stop","context":[1,2],"prompt_eval_count":4,"eval_count":4})),
        "/api/embed" => MockReply::Json(200, json!({"model":"nomic-embed-text","embeddings":[[0.5,-1.0],[0.25,2.0]],"total_duration":14143917,"load_duration":1019500,"prompt_eval_count":8})),
        _ => MockReply::Json(404, json!({"error":"404 page not found"})),
    })
    .await;
    let s = Sluice::start(&config(&mock.url(""), "")).await;
    let got: Value = post(
        &s,
        "/v1/completions",
        json!({"model":"default","prompt":"Tell a story:","max_tokens":8,"stop":["\n"]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(got["object"], "text_completion");
    assert_eq!(got["choices"][0]["text"], "Once upon a time");
    assert_eq!(got["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        got["usage"],
        json!({"prompt_tokens":4,"completion_tokens":4,"total_tokens":8})
    );
    assert_eq!(
        mock.last().body,
        json!({"model":"llama3.1:8b","prompt":"Tell a story:","stream":false,"options":{"num_predict":8,"stop":["\n"]}})
    );
    let resp = post(&s, "/v1/completions", json!({"model":"default","prompt":"Tell a story:","stream":true,"stream_options":{"include_usage":true}})).await;
    let chunks = events(&resp.text().await.unwrap());
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0))
        .filter_map(|c| c["text"].as_str())
        .collect();
    assert_eq!(text, "Once upon a time");
    assert_eq!(chunks[2]["choices"][0]["finish_reason"], "length");
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 7);
    let got: Value = post(
        &s,
        "/v1/embeddings",
        json!({"model":"default","input":["a","b"]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        got,
        json!({"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-1.0]},{"object":"embedding","index":1,"embedding":[0.25,2.0]}],
        "model":"nomic-embed-text","usage":{"prompt_tokens":8,"total_tokens":8}})
    );
    assert_eq!(
        mock.last().body,
        json!({"model":"llama3.1:8b","input":["a","b"]})
    );
    let got: Value = post(
        &s,
        "/v1/embeddings",
        json!({"model":"default","input":"a","encoding_format":"base64"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(got["data"][0]["embedding"], "AAAAPwAAgL8=");
    s.stop().await;
}

/// Capabilities: what the backend cannot do is a 400 naming the param (no upstream call), or
/// the model's next deployment that can.
#[tokio::test]
async fn capabilities_refuse_or_route() {
    let small = Mock::start(|_| MockReply::Json(200, chat_done("small", "stop", 1, 1))).await;
    let big = Mock::start(|_| MockReply::Json(200, chat_done("big", "stop", 1, 1))).await;
    let yaml = format!(
        "deployments:\n  - name: small\n    provider: ollama\n    base_url: {}\n    model: gemma3:270m\n    supports: [seed, top_k]\n  - name: big\n    provider: ollama\n    base_url: {}\n    model: qwen3:8b\nmodels:\n  - name: default\n    deployments: [small, big]\n  - name: only-small\n    deployments: [small]\n",
        small.url(""),
        big.url("")
    );
    let s = Sluice::start(&yaml).await;
    let tools = json!([{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{}}}}]);
    let resp = post(
        &s,
        "/v1/chat/completions",
        json!({"model":"only-small","tools":tools,"messages":[{"role":"user","content":"x"}]}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(
        e,
        json!({"error":{"message":"deployment `small` (ollama) does not support tools","type":"invalid_request_error","param":"tools","code":"unsupported_parameter"}})
    );
    let resp = post(
        &s,
        "/v1/chat/completions",
        json!({"model":"only-small","n":2,"messages":[{"role":"user","content":"x"}]}),
    )
    .await;
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["param"], "n");
    assert_eq!(small.calls(), 0);
    let resp = post(
        &s,
        "/v1/chat/completions",
        json!({"model":"default","tools":tools,"messages":[{"role":"user","content":"x"}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-sluice-deployment"], "big");
    let resp = post(
        &s,
        "/v1/chat/completions",
        json!({"model":"default","messages":[{"role":"user","content":"x"}]}),
    )
    .await;
    assert_eq!(resp.headers()["x-sluice-deployment"], "small");
    s.stop().await;
}

/// C20: Ollama's `logprobs` are asked for and come back in OpenAI's shape.
#[tokio::test]
async fn logprobs_are_passed_and_converted() {
    let mock = Mock::start(|_| {
        let mut d = chat_done("Dune", "stop", 9, 1);
        d["logprobs"] = json!([{"token":"Dune","logprob":-0.25,"bytes":[68,117,110,101],
            "top_logprobs":[{"token":"Dune","logprob":-0.25,"bytes":[68,117,110,101]},{"token":"The","logprob":-1.5,"bytes":[84,104,101]}]}]);
        MockReply::Json(200, d)
    })
    .await;
    let s = Sluice::start(&config(&mock.url(""), "")).await;
    let got: Value = post(
        &s,
        "/v1/chat/completions",
        json!({"model":"default","logprobs":true,"top_logprobs":2,
        "messages":[{"role":"user","content":"What is the best book"}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(mock.last().body["logprobs"], true);
    assert_eq!(mock.last().body["top_logprobs"], 2);
    assert_eq!(
        got["choices"][0]["logprobs"],
        json!({"content":[{"token":"Dune","logprob":-0.25,"bytes":[68,117,110,101],
        "top_logprobs":[{"token":"Dune","logprob":-0.25,"bytes":[68,117,110,101]},{"token":"The","logprob":-1.5,"bytes":[84,104,101]}]}]})
    );
    s.stop().await;
}

/// C09: Ollama does not enforce `tool_choice`; a forced call answered with prose is asked
/// again once, then refused with an explicit error instead of a 200 with prose.
#[tokio::test]
async fn forced_tool_choice_is_checked() {
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = counter.clone();
    let mock = Mock::start(move |r| {
        let n = c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let stubborn = r.body["messages"][0]["content"] == "stubborn";
        if n == 0 || stubborn {
            MockReply::Json(200, chat_done("Hello there!", "stop", 9, 3))
        } else {
            let mut d = chat_done("", "stop", 9, 3);
            d["message"]["tool_calls"] = json!([{"function":{"name":"get_time","arguments":{}}}]);
            MockReply::Json(200, d)
        }
    })
    .await;
    let s = Sluice::start(&config(&mock.url(""), "")).await;
    let req = |text: &str| {
        json!({"model":"default","messages":[{"role":"user","content":text}],
        "tools":[{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{}}}}],
        "tool_choice":{"type":"function","function":{"name":"get_time"}}})
    };
    let got: Value = post(&s, "/v1/chat/completions", req("Say hello."))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        got["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_time"
    );
    assert_eq!(got["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(mock.calls(), 2);
    let resp = post(&s, "/v1/chat/completions", req("stubborn")).await;
    assert_eq!(resp.status(), 502);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["code"], "tool_call_missing");
    assert_eq!(mock.calls(), 4);
    s.stop().await;
}

/// A skipped deployment's 400 does not hide the failure of one that was tried.
#[tokio::test]
async fn a_tried_deployments_failure_beats_a_skipped_ones_400() {
    let down = Mock::start(|_| MockReply::Json(500, json!({"error":"llama runner crashed"}))).await;
    let small = Mock::start(|_| MockReply::Json(200, chat_done("small", "stop", 1, 1))).await;
    let yaml = format!(
        "deployments:\n  - name: down\n    provider: ollama\n    base_url: {}\n    model: qwen3:8b\n  - name: small\n    provider: ollama\n    base_url: {}\n    model: gemma3:270m\n    supports: [seed]\nmodels:\n  - name: default\n    deployments: [down, small]\n",
        down.url(""),
        small.url("")
    );
    let s = Sluice::start(&yaml).await;
    let resp = post(
        &s,
        "/v1/chat/completions",
        json!({"model":"default","messages":[{"role":"user","content":"x"}],
        "tools":[{"type":"function","function":{"name":"f"}}]}),
    )
    .await;
    assert_eq!(resp.status(), 502);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(
        e["error"]["message"],
        "deployment `down` failed with HTTP 500: llama runner crashed"
    );
    assert_eq!((down.calls(), small.calls()), (1, 0));
    s.stop().await;
}

/// C09: Ollama saying the model cannot use tools is a 400 naming `tools`.
#[tokio::test]
async fn a_model_without_tools_is_a_400_naming_tools() {
    let mock = Mock::start(|_| {
        MockReply::Json(
            400,
            json!({"error":"registry.ollama.ai/library/gemma3:270m does not support tools"}),
        )
    })
    .await;
    let s = Sluice::start(&config(&mock.url(""), "")).await;
    let resp = post(
        &s,
        "/v1/chat/completions",
        json!({"model":"default","messages":[{"role":"user","content":"x"}],
        "tools":[{"type":"function","function":{"name":"f"}}]}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(
        e,
        json!({"error":{"message":"registry.ollama.ai/library/gemma3:270m does not support tools",
        "type":"invalid_request_error","param":"tools","code":"unsupported_parameter"}})
    );
    s.stop().await;
}

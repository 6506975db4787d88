//! `provider: anthropic` over HTTP: Sluice in front of a mock that answers like Anthropic's
//! Messages API (bodies and SSE events as the real service sends them, `event:` lines
//! included). Both directions are checked: what Anthropic received, what the client got.

mod support;

use bytes::Bytes;
use serde_json::{Value, json};
use support::*;

fn config(base: &str, extra: &str) -> String {
    format!(
        "deployments:\n  - name: claude\n    provider: anthropic\n    base_url: {base}\n    model: claude-sonnet-4-5-20250929\n    api_key: sk-ant-test\n{extra}models:\n  - name: default\n    deployments: [claude]\n"
    )
}

fn message(content: Value, stop_reason: &str, input: u64, output: u64) -> Value {
    json!({"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
           "content":content,"stop_reason":stop_reason,"stop_sequence":null,
           "usage":{"input_tokens":input,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":output,"service_tier":"standard"}})
}

fn ev(name: &str, data: Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

fn message_start(input: u64) -> Bytes {
    ev(
        "message_start",
        json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
        "content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":input,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}),
    )
}

fn text_stream(parts: &[&str], stop_reason: &str, output: u64) -> Vec<Bytes> {
    let mut out = vec![
        message_start(25),
        ev(
            "content_block_start",
            json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        ),
        ev("ping", json!({"type":"ping"})),
    ];
    for p in parts {
        out.push(ev(
            "content_block_delta",
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":p}}),
        ));
    }
    out.push(ev(
        "content_block_stop",
        json!({"type":"content_block_stop","index":0}),
    ));
    out.push(ev("message_delta", json!({"type":"message_delta","delta":{"stop_reason":stop_reason,"stop_sequence":null},"usage":{"output_tokens":output}})));
    out.push(ev("message_stop", json!({"type":"message_stop"})));
    out
}

/// C08's recorded stream: text, then two tool_use blocks at Anthropic indexes 1 and 2.
fn c08_stream() -> Vec<Bytes> {
    vec![
        message_start(50),
        ev(
            "content_block_start",
            json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        ),
        ev(
            "content_block_delta",
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Checking both."}}),
        ),
        ev(
            "content_block_stop",
            json!({"type":"content_block_stop","index":0}),
        ),
        ev(
            "content_block_start",
            json!({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_A","name":"get_weather","input":{}}}),
        ),
        ev(
            "content_block_delta",
            json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Par"}}),
        ),
        ev("ping", json!({"type":"ping"})),
        ev(
            "content_block_delta",
            json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"is\"}"}}),
        ),
        ev(
            "content_block_stop",
            json!({"type":"content_block_stop","index":1}),
        ),
        ev(
            "content_block_start",
            json!({"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_B","name":"get_weather","input":{}}}),
        ),
        ev(
            "content_block_delta",
            json!({"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Tokyo\"}"}}),
        ),
        ev(
            "content_block_stop",
            json!({"type":"content_block_stop","index":2}),
        ),
        ev(
            "message_delta",
            json!({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":60}}),
        ),
        ev("message_stop", json!({"type":"message_stop"})),
    ]
}

fn events(text: &str) -> Vec<Value> {
    let ev = data_events(text);
    assert_eq!(ev.last().map(String::as_str), Some("[DONE]"), "{text}");
    ev[..ev.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}

fn finishes(chunks: &[Value]) -> Vec<Value> {
    chunks
        .iter()
        .filter_map(|c| c["choices"].get(0))
        .map(|c| c["finish_reason"].clone())
        .filter(|f| !f.is_null())
        .collect()
}

/// C24: system messages hoisted, `max_tokens` from the deployment default, headers; the answer
/// mapped to OpenAI's shape.
#[tokio::test]
async fn non_stream_hoists_system_and_maps_the_answer() {
    let mock = Mock::start(|_| {
        MockReply::Json(
            200,
            message(
                json!([{"type":"text","text":"Use bisect."}]),
                "end_turn",
                21,
                4,
            ),
        )
    })
    .await;
    let s = Sluice::start(&config(&mock.url(""), "    max_tokens_default: 16000\n")).await;
    let resp = post(&s, "/v1/chat/completions", json!({"model":"default",
        "messages":[{"role":"system","content":"you are a helpful AI assistant"},
                    {"role":"user","content":[{"type":"text","text":"How to write binary search in python?"}]}]})).await;
    assert_eq!(resp.status(), 200);
    let got: Value = resp.json().await.unwrap();
    assert_eq!(got["object"], "chat.completion");
    assert_eq!(got["model"], "claude-sonnet-4-5-20250929");
    assert_eq!(
        got["choices"][0]["message"],
        json!({"role":"assistant","content":"Use bisect."})
    );
    assert_eq!(got["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        got["usage"],
        json!({"prompt_tokens":21,"completion_tokens":4,"total_tokens":25})
    );
    let up = mock.last();
    assert_eq!(up.path, "/v1/messages");
    assert_eq!(up.headers["x-api-key"], "sk-ant-test");
    assert_eq!(up.headers["anthropic-version"], "2023-06-01");
    assert!(up.headers.get("authorization").is_none());
    assert_eq!(
        up.body,
        json!({"model":"claude-sonnet-4-5-20250929","max_tokens":16000,
        "system":[{"type":"text","text":"you are a helpful AI assistant"}],
        "messages":[{"role":"user","content":[{"type":"text","text":"How to write binary search in python?"}]}]})
    );
    // The client's cap wins; stop → stop_sequences; temperature clamped to 1; top_k passed.
    post(&s, "/v1/chat/completions", json!({"model":"default","max_tokens":300,"max_completion_tokens":200,"stop":"END","temperature":1.5,"top_k":10,
        "messages":[{"role":"user","content":"hi"},{"role":"developer","content":"late rule"}]})).await;
    let up = mock.last();
    assert_eq!(up.body["max_tokens"], 200);
    assert_eq!(up.body["stop_sequences"], json!(["END"]));
    assert_eq!(up.body["temperature"].as_f64(), Some(1.0));
    assert_eq!(up.body["top_k"], 10);
    assert_eq!(
        up.body["system"],
        json!([{"type":"text","text":"late rule"}])
    );
    assert_eq!(
        up.body["messages"],
        json!([{"role":"user","content":[{"type":"text","text":"hi"}]}])
    );
    s.stop().await;
}

/// An OpenAI client that sends no `max_tokens` (most don't) and no `max_tokens_default`:
/// 200, with Anthropic's required `max_tokens` filled with the documented 4096.
#[tokio::test]
async fn no_max_tokens_anywhere_sends_the_default() {
    let mock = Mock::start(|_| {
        MockReply::Json(
            200,
            message(json!([{"type":"text","text":"hi"}]), "end_turn", 1, 1),
        )
    })
    .await;
    let s = Sluice::start(&config(&mock.url(""), "")).await;
    let resp = post(
        &s,
        "/v1/chat/completions",
        json!({"model":"default","messages":[{"role":"user","content":"hi"}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let got: Value = resp.json().await.unwrap();
    assert_eq!(got["choices"][0]["message"]["content"], "hi");
    assert_eq!(mock.calls(), 1);
    // The catalog's `max_output` for Claude Sonnet 4.x (4096 only when the model is unknown).
    assert_eq!(mock.last().body["max_tokens"], 64000);
    s.stop().await;
}

/// C08: the stream through Sluice — role first, tool indexes 0 and 1, argument fragments in
/// order, one `tool_calls` finish, usage from message_start + message_delta.
#[tokio::test]
async fn stream_with_two_tool_calls() {
    let mock = Mock::start(|_| MockReply::Sse(c08_stream())).await;
    let s = Sluice::start(&config(&mock.url(""), "")).await;
    let resp = post(&s, "/v1/chat/completions", json!({"model":"default","stream":true,"max_tokens":512,"stream_options":{"include_usage":true},
        "messages":[{"role":"user","content":"Weather in Paris and in Tokyo? Call the tool once per city."}],
        "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]})).await;
    assert_eq!(resp.status(), 200);
    let chunks = events(&resp.text().await.unwrap());
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role":"assistant","content":""})
    );
    let roles = chunks
        .iter()
        .filter(|c| c["choices"][0]["delta"].get("role").is_some())
        .count();
    assert_eq!(roles, 1);
    let mut calls: Vec<(String, String, String)> = vec![Default::default(), Default::default()];
    let mut text = String::new();
    for c in &chunks {
        let d = &c["choices"][0]["delta"];
        text.push_str(d["content"].as_str().unwrap_or(""));
        for tc in d["tool_calls"].as_array().into_iter().flatten() {
            let slot = &mut calls[tc["index"].as_u64().unwrap() as usize];
            slot.0.push_str(tc["id"].as_str().unwrap_or(""));
            slot.1
                .push_str(tc["function"]["name"].as_str().unwrap_or(""));
            slot.2
                .push_str(tc["function"]["arguments"].as_str().unwrap_or(""));
        }
    }
    assert_eq!(text, "Checking both.");
    assert_eq!(
        (calls[0].0.as_str(), calls[0].1.as_str()),
        ("toolu_A", "get_weather")
    );
    assert_eq!(
        serde_json::from_str::<Value>(&calls[0].2).unwrap(),
        json!({"city":"Paris"})
    );
    assert_eq!(
        (calls[1].0.as_str(), calls[1].1.as_str()),
        ("toolu_B", "get_weather")
    );
    assert_eq!(
        serde_json::from_str::<Value>(&calls[1].2).unwrap(),
        json!({"city":"Tokyo"})
    );
    assert_eq!(finishes(&chunks), vec![json!("tool_calls")]);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"],
        json!({"prompt_tokens":50,"completion_tokens":60,"total_tokens":110})
    );
    let up = mock.last();
    assert_eq!(up.body["stream"], true);
    assert_eq!(
        up.body["tools"],
        json!([{"name":"get_weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}])
    );
    s.stop().await;
}

/// C25: `max_tokens` → `length`, `refusal` → `content_filter`, `stop_sequence` → `stop`, in
/// both modes; no usage chunk when not asked.
#[tokio::test]
async fn stop_reasons_map_in_both_modes() {
    let mock = Mock::start(|r| {
        let reason = match r.body["messages"][0]["content"][0]["text"].as_str() {
            Some("long") => "max_tokens",
            Some("bad") => "refusal",
            _ => "stop_sequence",
        };
        if r.body["stream"] == true {
            MockReply::Sse(text_stream(&["A neural", " network"], reason, 20))
        } else {
            MockReply::Json(
                200,
                message(
                    json!([{"type":"text","text":"A neural network"}]),
                    reason,
                    25,
                    20,
                ),
            )
        }
    })
    .await;
    let s = Sluice::start(&config(&mock.url(""), "    max_tokens_default: 20\n")).await;
    for (prompt, want) in [("long", "length"), ("bad", "content_filter"), ("x", "stop")] {
        let got: Value = post(
            &s,
            "/v1/chat/completions",
            json!({"model":"default","messages":[{"role":"user","content":prompt}]}),
        )
        .await
        .json()
        .await
        .unwrap();
        assert_eq!(got["choices"][0]["finish_reason"], want);
        assert_eq!(got["usage"]["completion_tokens"], 20);
        let chunks = events(&post(&s, "/v1/chat/completions", json!({"model":"default","stream":true,"messages":[{"role":"user","content":prompt}]})).await.text().await.unwrap());
        assert_eq!(finishes(&chunks), vec![json!(want)]);
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "A neural network");
        assert!(
            chunks
                .iter()
                .all(|c| c.get("usage").is_none_or(Value::is_null))
        );
    }
    s.stop().await;
}

/// C10: a replayed tool round — assistant `content: null` with calls, two `tool` results —
/// becomes tool_use blocks and one user message of tool_result blocks.
#[tokio::test]
async fn tool_round_history_is_translated() {
    let mock = Mock::start(|_| {
        MockReply::Json(
            200,
            message(
                json!([{"type":"text","text":"Paris is sunny, Tokyo rainy."}]),
                "end_turn",
                90,
                9,
            ),
        )
    })
    .await;
    let s = Sluice::start(&config(&mock.url(""), "    max_tokens_default: 1024\n")).await;
    let resp = post(&s, "/v1/chat/completions", json!({"model":"default","messages":[
        {"role":"user","content":"Weather in Paris and Tokyo?"},
        {"role":"assistant","content":null,"refusal":null,"tool_calls":[
            {"id":"toolu_A","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
            {"id":"toolu_B","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Tokyo\"}"}}]},
        {"role":"tool","tool_call_id":"toolu_A","content":"Sunny, 24C"},
        {"role":"tool","tool_call_id":"toolu_B","content":[{"type":"text","text":"Rain, 18C"}]}],
        "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]})).await;
    assert_eq!(resp.status(), 200);
    let got: Value = resp.json().await.unwrap();
    assert_eq!(
        got["choices"][0]["message"]["content"],
        "Paris is sunny, Tokyo rainy."
    );
    assert_eq!(
        mock.last().body["messages"],
        json!([
        {"role":"user","content":[{"type":"text","text":"Weather in Paris and Tokyo?"}]},
        {"role":"assistant","content":[
            {"type":"tool_use","id":"toolu_A","name":"get_weather","input":{"city":"Paris"}},
            {"type":"tool_use","id":"toolu_B","name":"get_weather","input":{"city":"Tokyo"}}]},
        {"role":"user","content":[
            {"type":"tool_result","tool_use_id":"toolu_A","content":[{"type":"text","text":"Sunny, 24C"}]},
            {"type":"tool_result","tool_use_id":"toolu_B","content":[{"type":"text","text":"Rain, 18C"}]}]}])
    );
    s.stop().await;
}

/// Non-stream tool use: `content: null`, `tool_calls` with JSON-text arguments.
#[tokio::test]
async fn non_stream_tool_use() {
    let mock = Mock::start(|_| {
        MockReply::Json(
            200,
            message(
                json!([
        {"type":"tool_use","id":"toolu_A","name":"get_weather","input":{"city":"Paris"}},
        {"type":"tool_use","id":"toolu_B","name":"get_time","input":{"tz":"CET"}}]),
                "tool_use",
                70,
                30,
            ),
        )
    })
    .await;
    let s = Sluice::start(&config(&mock.url(""), "    max_tokens_default: 1024\n")).await;
    let got: Value = post(&s, "/v1/chat/completions", json!({"model":"default","tool_choice":"required","parallel_tool_calls":true,"messages":[{"role":"user","content":"x"}],
        "tools":[{"type":"function","function":{"name":"get_weather"}},{"type":"function","function":{"name":"get_time"}}]})).await.json().await.unwrap();
    let m = &got["choices"][0]["message"];
    assert_eq!(m["content"], Value::Null);
    assert_eq!(
        m["tool_calls"],
        json!([
        {"id":"toolu_A","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
        {"id":"toolu_B","type":"function","function":{"name":"get_time","arguments":"{\"tz\":\"CET\"}"}}])
    );
    assert_eq!(got["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(mock.last().body["tool_choice"], json!({"type":"any"}));
    s.stop().await;
}

/// Anthropic's errors: HTTP 4xx keeps status and type; 529 overloaded → 502; an `error` event
/// as the first event → an HTTP error; mid-stream → an error event and no `[DONE]`.
#[tokio::test]
async fn anthropic_errors_become_openai_errors() {
    let mock = Mock::start(|r| match r.body["messages"][0]["content"][0]["text"].as_str() {
        Some("bad") => MockReply::Json(400, json!({"type":"error","error":{"type":"invalid_request_error","message":"messages.0.content.0.text: text content blocks must be non-empty"}})),
        Some("busy") => MockReply::Json(529, json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})),
        Some("first") => MockReply::Sse(vec![ev("error", json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}))]),
        _ => {
            let mut s = text_stream(&["Hel"], "end_turn", 2);
            s.truncate(4);
            s.push(ev("error", json!({"type":"error","error":{"type":"api_error","message":"Internal server error"}})));
            MockReply::Sse(s)
        }
    })
    .await;
    let s = Sluice::start(&config(&mock.url(""), "    max_tokens_default: 64\n")).await;
    let msg = |c: &str, stream: bool| json!({"model":"default","stream":stream,"messages":[{"role":"user","content":c}]});
    let resp = post(&s, "/v1/chat/completions", msg("bad", false)).await;
    assert_eq!(resp.status(), 400);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert_eq!(
        e["error"]["message"],
        "messages.0.content.0.text: text content blocks must be non-empty"
    );
    let resp = post(&s, "/v1/chat/completions", msg("busy", false)).await;
    assert_eq!(resp.status(), 502);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(
        e["error"]["message"],
        "deployment `claude` failed with HTTP 529: Overloaded"
    );
    let resp = post(&s, "/v1/chat/completions", msg("first", true)).await;
    assert_eq!(resp.status(), 502);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["code"], "overloaded_error");
    let resp = post(&s, "/v1/chat/completions", msg("mid", true)).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let ev = data_events(&text);
    assert_eq!(ev.len(), 3, "{text}");
    let last: Value = serde_json::from_str(&ev[2]).unwrap();
    assert_eq!(
        last["error"]["message"],
        "deployment `claude`: Internal server error"
    );
    s.stop().await;
}

/// C20 and friends: what Anthropic cannot do is a 400 naming the param, before any call;
/// completions and embeddings are not served by an anthropic deployment.
#[tokio::test]
async fn capabilities_refuse_what_anthropic_cannot_do() {
    let mock = Mock::start(|_| MockReply::Json(200, message(json!([]), "end_turn", 1, 1))).await;
    let s = Sluice::start(&config(&mock.url(""), "    max_tokens_default: 64\n")).await;
    let base = json!({"model":"default","messages":[{"role":"user","content":"x"}]});
    for (field, value, param) in [
        ("logprobs", json!(true), "logprobs"),
        ("n", json!(3), "n"),
        (
            "response_format",
            json!({"type":"json_schema","json_schema":{"name":"s","schema":{"type":"object"}}}),
            "response_format",
        ),
    ] {
        let mut b = base.clone();
        b[field] = value;
        let resp = post(&s, "/v1/chat/completions", b).await;
        assert_eq!(resp.status(), 400, "{field}");
        let e: Value = resp.json().await.unwrap();
        assert_eq!(e["error"]["param"], param);
        assert_eq!(e["error"]["code"], "unsupported_parameter");
    }
    let resp = post(
        &s,
        "/v1/completions",
        json!({"model":"default","prompt":"x"}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(
        e["error"]["message"],
        "deployment `claude` (anthropic) does not support `/v1/completions`"
    );
    assert_eq!(mock.calls(), 0);
    s.stop().await;
}

/// `GET /health/ready` probes Anthropic at `/v1/models` with its headers, Ollama at
/// `/api/version`.
#[tokio::test]
async fn readiness_probes_use_each_api() {
    let anthropic =
        Mock::start(|_| MockReply::Json(200, json!({"data":[],"has_more":false}))).await;
    let ollama = Mock::start(|_| MockReply::Json(200, json!({"version":"0.12.11"}))).await;
    let yaml = format!(
        "{}  - name: llama\n    provider: ollama\n    base_url: {}\n    model: llama3.2\n",
        config(&anthropic.url(""), "").replace(
            "models:\n  - name: default\n    deployments: [claude]\n",
            ""
        ),
        ollama.url("")
    );
    let s = Sluice::start(&yaml).await;
    let resp = client().get(s.url("/health/ready")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let a = anthropic.last();
    assert_eq!((a.method.as_str(), a.path.as_str()), ("GET", "/v1/models"));
    assert_eq!(a.headers["x-api-key"], "sk-ant-test");
    assert_eq!(a.headers["anthropic-version"], "2023-06-01");
    let o = ollama.last();
    assert_eq!(
        (o.method.as_str(), o.path.as_str()),
        ("GET", "/api/version")
    );
    s.stop().await;
}

/// Cache reads reach the OpenAI client as `usage.prompt_tokens_details.cached_tokens`,
/// streamed and not, whether Anthropic reports them in `message_start` or (cumulatively, as
/// newer API versions do) in `message_delta`.
#[tokio::test]
async fn cached_tokens_are_reported_from_start_and_delta() {
    let mock = Mock::start(|r| {
        let cached = json!({"input_tokens":5,"cache_creation_input_tokens":0,"cache_read_input_tokens":40});
        let none = json!({"input_tokens":5,"cache_creation_input_tokens":0,"cache_read_input_tokens":0});
        if r.body["stream"] != true {
            let mut m = message(json!([{"type":"text","text":"ok"}]), "end_turn", 5, 7);
            m["usage"]["cache_read_input_tokens"] = json!(40);
            return MockReply::Json(200, m);
        }
        let in_start = r.body["metadata"]["user_id"] == "start";
        let mut start_usage = if in_start { cached.clone() } else { none };
        start_usage["output_tokens"] = json!(1);
        let mut delta_usage = if in_start { json!({}) } else { cached };
        delta_usage["output_tokens"] = json!(7);
        MockReply::Sse(vec![
            ev("message_start", json!({"type":"message_start","message":{"id":"msg_c","type":"message","role":"assistant",
                "model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":start_usage}})),
            ev("content_block_start", json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})),
            ev("content_block_delta", json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"ok"}})),
            ev("content_block_stop", json!({"type":"content_block_stop","index":0})),
            ev("message_delta", json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":delta_usage})),
            ev("message_stop", json!({"type":"message_stop"})),
        ])
    })
    .await;
    let s = Sluice::start(&config(&mock.url(""), "")).await;
    let want = json!({"prompt_tokens":45,"completion_tokens":7,"total_tokens":52,"prompt_tokens_details":{"cached_tokens":40}});
    for user in ["start", "delta"] {
        let resp = post(
            &s,
            "/v1/chat/completions",
            json!({"model":"default","stream":true,"user":user,"max_tokens":64,
            "stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}),
        )
        .await;
        assert_eq!(resp.status(), 200);
        let chunks = events(&resp.text().await.unwrap());
        assert_eq!(chunks.last().unwrap()["usage"], want, "{user}");
    }
    let resp = post(
        &s,
        "/v1/chat/completions",
        json!({"model":"default","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}),
    )
    .await;
    let got: Value = resp.json().await.unwrap();
    assert_eq!(got["usage"], want);
    s.stop().await;
}

/// A tool without parameters: Anthropic streams `input: {}` and no fragment; the OpenAI
/// client's `arguments` add up to `"{}"`, not `""`.
#[tokio::test]
async fn no_argument_tool_streams_an_empty_object() {
    let mock = Mock::start(|_| {
        MockReply::Sse(vec![
            message_start(12),
            ev("content_block_start", json!({"type":"content_block_start","index":0,
                "content_block":{"type":"tool_use","id":"toolu_T","name":"get_time","input":{}}})),
            ev("content_block_delta", json!({"type":"content_block_delta","index":0,
                "delta":{"type":"input_json_delta","partial_json":""}})),
            ev("content_block_stop", json!({"type":"content_block_stop","index":0})),
            ev("message_delta", json!({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":9}})),
            ev("message_stop", json!({"type":"message_stop"})),
        ])
    })
    .await;
    let s = Sluice::start(&config(&mock.url(""), "")).await;
    let resp = post(&s, "/v1/chat/completions", json!({"model":"default","stream":true,"max_tokens":64,
        "messages":[{"role":"user","content":"What time is it?"}],
        "tools":[{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{}}}}]})).await;
    assert_eq!(resp.status(), 200);
    let chunks = events(&resp.text().await.unwrap());
    let args: String = chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0/function/arguments"))
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(args, "{}");
    assert_eq!(finishes(&chunks), vec![json!("tool_calls")]);
    s.stop().await;
}

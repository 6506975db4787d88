//! The Anthropic Messages API inbound (`POST /v1/messages`, `/v1/messages/count_tokens`)
//! bridged to OpenAI-compatible deployments: mocks on 127.0.0.1 record the chat bodies they
//! receive; the client side is checked event by event in Anthropic's shapes.

mod support;

use rusqlite::Connection;
use serde_json::{Value, json};
use support::*;

const CREATED: u64 = 1_700_000_000;

fn chunk(delta: Value, finish: Value) -> Value {
    json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":CREATED,"model":"upstream-model",
           "choices":[{"index":0,"delta":delta,"finish_reason":finish}]})
}

fn usage_chunk() -> Value {
    json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":CREATED,"model":"upstream-model",
           "choices":[],"usage":{"prompt_tokens":11,"completion_tokens":5,"total_tokens":16}})
}

/// An OpenAI-compatible upstream: "Hello from the mock!" (11 + 5 tokens), or — when tools are
/// offered and the last turn is not a tool result — one `get_weather` call for Paris, its
/// arguments split over two chunks when streamed.
fn chat_upstream(r: &Received) -> MockReply {
    let msgs = r.body["messages"].as_array().cloned().unwrap_or_default();
    let wants_tool =
        r.body.get("tools").is_some() && msgs.last().is_some_and(|m| m["role"] != "tool");
    if r.body["stream"] != true {
        let (message, finish) = if wants_tool {
            (
                json!({"role":"assistant","content":null,"tool_calls":[{"id":"call_a","type":"function",
                       "function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]}),
                "tool_calls",
            )
        } else {
            (
                json!({"role":"assistant","content":"Hello from the mock!"}),
                "stop",
            )
        };
        return MockReply::Json(
            200,
            json!({"id":"chatcmpl-1","object":"chat.completion","created":CREATED,"model":"upstream-model",
                   "choices":[{"index":0,"message":message,"finish_reason":finish}],
                   "usage":{"prompt_tokens":11,"completion_tokens":5,"total_tokens":16}}),
        );
    }
    let mut out = vec![sse(&chunk(
        json!({"role":"assistant","content":""}),
        Value::Null,
    ))];
    if wants_tool {
        out.push(sse(&chunk(
            json!({"tool_calls":[{"index":0,"id":"call_a","type":"function",
            "function":{"name":"get_weather","arguments":""}}]}),
            Value::Null,
        )));
        for part in ["{\"city\":", " \"Paris\"}"] {
            out.push(sse(&chunk(
                json!({"tool_calls":[{"index":0,"function":{"arguments":part}}]}),
                Value::Null,
            )));
        }
        out.push(sse(&chunk(json!({}), json!("tool_calls"))));
    } else {
        for p in ["Hello", " from", " the mock!"] {
            out.push(sse(&chunk(json!({"content": p}), Value::Null)));
        }
        out.push(sse(&chunk(json!({}), json!("stop"))));
    }
    if r.body["stream_options"]["include_usage"] == true {
        out.push(sse(&usage_chunk()));
    }
    out.push(done());
    MockReply::Sse(out)
}

/// `method path` with a key and an empty JSON object.
async fn empty_request(s: &Sluice, method: reqwest::Method, path: &str) -> reqwest::Response {
    client()
        .request(method, s.url(path))
        .header("x-api-key", "sk-anything")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap()
}

async fn post(s: &Sluice, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(s.url(path))
        .header("x-api-key", "sk-anything")
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

fn hello(stream: bool) -> Value {
    json!({"model":"default","max_tokens":64,"stream":stream,"system":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}],
           "messages":[{"role":"user","content":"Say hello."}],
           "thinking":{"type":"enabled","budget_tokens":1024},"context_management":{"edits":[]}})
}

/// `event: X\ndata: {…}` frames → (name, data), checking each name matches its `type`.
fn anthropic_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|f| {
            let (ev, data) = f.split_once('\n').unwrap();
            let name = ev.strip_prefix("event: ").unwrap().to_string();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], name.as_str());
            (name, data)
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

#[tokio::test]
async fn non_stream_text_and_what_the_backend_got() {
    let mock = Mock::start(chat_upstream).await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    let resp = post(&s, "/v1/messages", &hello(false)).await;
    assert_eq!(resp.status(), 200);
    let got: Value = resp.json().await.unwrap();
    assert_eq!(
        got,
        json!({"id":"msg_1","type":"message","role":"assistant","model":"upstream-model",
               "content":[{"type":"text","text":"Hello from the mock!"}],
               "stop_reason":"end_turn","stop_sequence":null,
               "usage":{"input_tokens":11,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":5}})
    );
    // Thinking, cache_control and context_management never reach a chat backend.
    assert_eq!(
        mock.last().body,
        json!({"model":"upstream-model","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Say hello."}],"max_tokens":64})
    );
    s.stop().await;
}

#[tokio::test]
async fn stream_text_in_anthropic_order_with_real_usage() {
    let mock = Mock::start(chat_upstream).await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    for path in ["/v1/messages?beta=true", "/messages"] {
        let resp = post(&s, path, &hello(true)).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let events = anthropic_events(&resp.text().await.unwrap());
        assert_eq!(
            names(&events),
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ],
            "{path}"
        );
        let start = &events[0].1["message"];
        assert_eq!(start["content"], json!([]));
        assert!(start["usage"]["input_tokens"].as_u64().unwrap() > 0);
        let text: String = events
            .iter()
            .filter_map(|(_, d)| d["delta"]["text"].as_str())
            .collect();
        assert_eq!(text, "Hello from the mock!");
        assert_eq!(
            events[6].1,
            json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},
                   "usage":{"input_tokens":11,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":5}})
        );
        let up = mock.last().body;
        assert_eq!(up["stream"], true);
        assert_eq!(up["stream_options"], json!({"include_usage":true}));
    }
    s.stop().await;
}

#[tokio::test]
async fn tool_round_trip_streamed() {
    let mock = Mock::start(chat_upstream).await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    let tools = json!([{"name":"get_weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}},
                       {"type":"web_search_20250305","name":"web_search"}]);
    let first = json!({"model":"default","max_tokens":64,"stream":true,"tools":tools,
        "messages":[{"role":"user","content":"Weather in Paris?"}]});
    let resp = post(&s, "/v1/messages", &first).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-sluice-dropped-tools"], "web_search");
    let events = anthropic_events(&resp.text().await.unwrap());
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(
        events[1].1["content_block"],
        json!({"type":"tool_use","id":"call_a","name":"get_weather","input":{}})
    );
    let args: String = events
        .iter()
        .filter_map(|(_, d)| d["delta"]["partial_json"].as_str())
        .collect();
    assert_eq!(args, "{\"city\": \"Paris\"}");
    assert_eq!(events[5].1["delta"]["stop_reason"], "tool_use");
    // The server tool was not sent.
    assert_eq!(
        mock.last().body["tools"],
        json!([{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}])
    );
    let second = json!({"model":"default","max_tokens":64,"stream":true,"tools":tools,"messages":[
        {"role":"user","content":"Weather in Paris?"},
        {"role":"assistant","content":[{"type":"tool_use","id":"call_a","name":"get_weather","input":{"city":"Paris"}}]},
        {"role":"user","content":[{"type":"tool_result","tool_use_id":"call_a","content":"18C"}]}]});
    let resp = post(&s, "/v1/messages", &second).await;
    let events = anthropic_events(&resp.text().await.unwrap());
    assert_eq!(
        events[events.len() - 2].1["delta"]["stop_reason"],
        "end_turn"
    );
    assert_eq!(
        mock.last().body["messages"],
        json!([{"role":"user","content":"Weather in Paris?"},
               {"role":"assistant","content":null,"tool_calls":[{"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
               {"role":"tool","content":"18C","tool_call_id":"call_a"}])
    );
    // Forcing the server tool is a 400 naming it.
    let mut forced = first.clone();
    forced["tool_choice"] = json!({"type":"tool","name":"web_search"});
    let resp = post(&s, "/v1/messages", &forced).await;
    assert_eq!(resp.status(), 400);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`web_search`")
    );
    s.stop().await;
}

/// Streams `chunks` from a chat mock through the Messages bridge and returns each content
/// block as (type, id (tool blocks), its deltas joined), checking that one block is open at a
/// time and that no delta goes to a closed block.
async fn blocks_of(chunks: Vec<bytes::Bytes>) -> Vec<(String, String, String)> {
    let mock = Mock::start(move |_| MockReply::Sse(chunks.clone())).await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    let resp = post(&s, "/v1/messages", &hello(true)).await;
    let events = anthropic_events(&resp.text().await.unwrap());
    s.stop().await;
    assert_eq!(names(&events).last(), Some(&"message_stop"), "{events:?}");
    let mut open: Option<u64> = None;
    let mut blocks = Vec::new();
    for (name, d) in &events {
        match name.as_str() {
            "content_block_start" => {
                assert!(open.is_none(), "{events:?}");
                open = d["index"].as_u64();
                let block = &d["content_block"];
                let text = |k: &str| block[k].as_str().unwrap_or("").to_string();
                blocks.push((text("type"), text("id"), String::new()));
            }
            "content_block_delta" => {
                assert_eq!(
                    d["index"].as_u64(),
                    open,
                    "a delta to a closed block: {events:?}"
                );
                let delta = &d["delta"];
                let part = delta["partial_json"]
                    .as_str()
                    .or(delta["text"].as_str())
                    .unwrap();
                let last: &mut (String, String, String) = blocks.last_mut().unwrap();
                last.2.push_str(part);
            }
            "content_block_stop" => open = None,
            _ => {}
        }
    }
    blocks
}

/// Calls a backend interleaves (both headers first, then each one's arguments, the first
/// call's in two pieces around the second's) or sends without `index` (told apart by `id`)
/// come out as one `tool_use` block after another, each with its own whole input. Found by an
/// attacker test: a delta went to a closed block (`{}{"city":"Paris"}`), and calls without
/// `index` were merged into one.
#[tokio::test]
async fn interleaved_and_unnumbered_tool_calls_stay_apart() {
    let call = |index: Option<u64>, id: Option<&str>, args: &str| {
        let mut c = json!({"function": {"arguments": args}});
        if let Some(i) = index {
            c["index"] = json!(i);
        }
        if let Some(id) = id {
            c["id"] = json!(id);
            c["type"] = json!("function");
            c["function"]["name"] = json!("get_weather");
        }
        c
    };
    let streams = [
        vec![
            json!([
                call(Some(0), Some("call_a"), ""),
                call(Some(1), Some("call_b"), "")
            ]),
            json!([call(Some(0), None, "{\"city\":")]),
            json!([call(Some(1), None, "{\"city\":\"Rome\"}")]),
            json!([call(Some(0), None, "\"Paris\"}")]),
        ],
        vec![
            json!([call(None, Some("call_a"), "{\"city\":\"Paris\"}")]),
            json!([call(None, Some("call_b"), "{\"city\":\"Rome\"}")]),
        ],
    ];
    for calls in streams {
        let mut chunks: Vec<bytes::Bytes> = calls
            .into_iter()
            .map(|c| sse(&chunk(json!({"tool_calls": c}), Value::Null)))
            .collect();
        chunks.push(sse(&chunk(json!({}), json!("tool_calls"))));
        chunks.push(done());
        let tool =
            |id: &str, args: &str| ("tool_use".to_string(), id.to_string(), args.to_string());
        assert_eq!(
            blocks_of(chunks).await,
            vec![
                tool("call_a", "{\"city\":\"Paris\"}"),
                tool("call_b", "{\"city\":\"Rome\"}"),
            ]
        );
    }
}

/// Text a backend sends while a tool call's arguments are still coming waits until they are
/// whole: opening its block would close the tool block, and the rest of the arguments would go
/// to a closed block (found by a review).
#[tokio::test]
async fn text_in_the_middle_of_a_tool_call_follows_it() {
    let tool = |args: &str, head: bool| {
        let mut c = json!({"index": 0, "function": {"arguments": args}});
        if head {
            c["id"] = json!("call_a");
            c["type"] = json!("function");
            c["function"]["name"] = json!("get_weather");
        }
        sse(&chunk(json!({"tool_calls": [c]}), Value::Null))
    };
    let chunks = vec![
        tool("{\"city\":", true),
        sse(&chunk(json!({"content": "Let me check."}), Value::Null)),
        tool("\"Paris\"}", false),
        sse(&chunk(json!({}), json!("tool_calls"))),
        done(),
    ];
    assert_eq!(
        blocks_of(chunks).await,
        vec![
            (
                "tool_use".to_string(),
                "call_a".to_string(),
                "{\"city\":\"Paris\"}".to_string()
            ),
            (
                "text".to_string(),
                String::new(),
                "Let me check.".to_string()
            ),
        ]
    );
}

/// A failure before the first byte falls back to the next deployment; the client never sees it.
#[tokio::test]
async fn error_before_first_byte_falls_back() {
    let bad = Mock::start(|_| MockReply::Json(500, json!({"error":{"message":"boom"}}))).await;
    let good = Mock::start(chat_upstream).await;
    let yaml = format!(
        "deployments:\n  - name: bad\n    provider: openai\n    base_url: {}\n    model: upstream-model\n  - name: good\n    provider: openai\n    base_url: {}\n    model: upstream-model\nmodels:\n  - name: default\n    deployments: [bad, good]\n",
        bad.url("/v1"),
        good.url("/v1")
    );
    let s = Sluice::start(&yaml).await;
    let resp = post(&s, "/v1/messages", &hello(true)).await;
    assert_eq!(resp.status(), 200);
    let events = anthropic_events(&resp.text().await.unwrap());
    assert_eq!(names(&events).last(), Some(&"message_stop"));
    assert_eq!(bad.calls(), 1);
    assert_eq!(good.calls(), 1);
    s.stop().await;
}

/// The upstream stream breaks after some text: an `error` event, never a clean `end_turn`.
#[tokio::test]
async fn error_mid_stream_is_an_error_event() {
    let mock = Mock::start(|_| {
        MockReply::Sse(vec![
            sse(&chunk(
                json!({"role":"assistant","content":""}),
                Value::Null,
            )),
            sse(&chunk(json!({"content":"Partial"}), Value::Null)),
        ])
    })
    .await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    a_streamed_hello_ends_in_an_api_error(&s).await;
    s.stop().await;
}

/// A streamed `hello` to `s` that starts a text block and ends with an `api_error` event.
async fn a_streamed_hello_ends_in_an_api_error(s: &Sluice) {
    let resp = post(s, "/v1/messages", &hello(true)).await;
    assert_eq!(resp.status(), 200);
    let events = anthropic_events(&resp.text().await.unwrap());
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "error"
        ]
    );
    assert_eq!(events[3].1["error"]["type"], "api_error");
}

#[tokio::test]
async fn bad_input_gets_anthropic_errors() {
    let mock = Mock::start(chat_upstream).await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    let cases = [
        (
            json!({"model":"default","messages":[{"role":"user","content":"hi"}]}),
            400,
            "invalid_request_error",
            "max_tokens",
        ),
        (
            json!({"model":"default","max_tokens":5,"messages":[{"role":"robot","content":"hi"}]}),
            400,
            "invalid_request_error",
            "messages[0].role",
        ),
        (
            json!({"model":"nope","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}),
            404,
            "not_found_error",
            "nope",
        ),
    ];
    for (body, status, kind, words) in cases {
        let resp = post(&s, "/v1/messages", &body).await;
        assert_eq!(resp.status(), status, "{body}");
        let e: Value = resp.json().await.unwrap();
        assert_eq!(e["type"], "error", "{body}");
        assert_eq!(e["error"]["type"], kind, "{body}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(words),
            "{e}"
        );
    }
    let resp = client()
        .post(s.url("/v1/messages"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert_eq!(mock.calls(), 0);
    s.stop().await;
}

/// An empty conversation is Anthropic's 400 before any backend is called; another method on
/// the Messages routes, and a path under `/v1/messages/` Sluice does not serve, answer in
/// Anthropic's envelope (never OpenAI's).
#[tokio::test]
async fn empty_messages_wrong_methods_and_unknown_paths_get_anthropic_errors() {
    let mock = Mock::start(chat_upstream).await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    let resp = post(
        &s,
        "/v1/messages",
        &json!({"model":"default","max_tokens":5,"messages":[]}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"type":"error","error":{"type":"invalid_request_error",
               "message":"messages: at least one message is required"}})
    );
    for (method, path) in [
        (reqwest::Method::GET, "/v1/messages"),
        (reqwest::Method::DELETE, "/messages"),
        (reqwest::Method::GET, "/v1/messages/count_tokens"),
    ] {
        let resp = empty_request(&s, method.clone(), path).await;
        assert_eq!(resp.status(), 405, "{method} {path}");
        assert_eq!(resp.headers()["allow"], "POST");
        assert_eq!(
            resp.json::<Value>().await.unwrap(),
            json!({"type":"error","error":{"type":"invalid_request_error",
                   "message":format!("Method {method} is not allowed on {path}; use POST")}})
        );
    }
    for (method, path) in [
        (reqwest::Method::POST, "/v1/messages/batches"),
        (
            reqwest::Method::GET,
            "/v1/messages/batches/msgbatch_1/results",
        ),
        (reqwest::Method::POST, "/v1/messages/"),
    ] {
        let resp = empty_request(&s, method.clone(), path).await;
        assert_eq!(resp.status(), 404, "{method} {path}");
        assert_eq!(
            resp.json::<Value>().await.unwrap(),
            json!({"type":"error","error":{"type":"not_found_error",
                   "message":format!("Unknown request URL: {method} {path}")}})
        );
    }
    assert_eq!(mock.calls(), 0);
    s.stop().await;
}

#[tokio::test]
async fn probes_and_count_tokens() {
    let mock = Mock::start(chat_upstream).await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    let head = client().head(s.url("/")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    let get = client().get(s.url("/")).send().await.unwrap();
    assert_eq!(get.status(), 200);
    // 4 bytes per token: "Be brief." + "Say hello." = 19 bytes → 5.
    let body = json!({"model":"default","system":"Be brief.","messages":[{"role":"user","content":"Say hello."}]});
    for path in [
        "/v1/messages/count_tokens",
        "/messages/count_tokens?beta=true",
    ] {
        let resp = post(&s, path, &body).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(
            resp.json::<Value>().await.unwrap(),
            json!({"input_tokens":5})
        );
    }
    assert_eq!(mock.calls(), 0);
    s.stop().await;
}

/// Keys: `x-api-key` or `Authorization: Bearer`; a bad key is Anthropic's 401.
#[tokio::test]
async fn keys_by_either_header_and_anthropic_401() {
    let mock = Mock::start(chat_upstream).await;
    let yaml = format!(
        "server:\n  master_key: sk-master\nkeys:\n  - name: app\n    key: sk-app-1\n{}",
        one_deployment(&mock.url("/v1"))
    );
    let s = Sluice::start(&yaml).await;
    let send = |h: &'static str, v: &'static str| {
        client()
            .post(s.url("/v1/messages"))
            .header(h, v)
            .json(&hello(false))
            .send()
    };
    assert_eq!(send("x-api-key", "sk-app-1").await.unwrap().status(), 200);
    assert_eq!(
        send("authorization", "Bearer sk-app-1")
            .await
            .unwrap()
            .status(),
        200
    );
    let resp = send("x-api-key", "sk-wrong").await.unwrap();
    assert_eq!(resp.status(), 401);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "authentication_error");
    s.stop().await;
}

/// The log row says which dialect the client spoke.
#[tokio::test]
async fn the_log_row_records_the_dialect() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mock = Mock::start(chat_upstream).await;
    let yaml = format!(
        "{}log:\n  path: {}\n",
        one_deployment(&mock.url("/v1")),
        db.display()
    );
    let s = Sluice::start_logged(&yaml).await;
    assert_eq!(post(&s, "/v1/messages", &hello(true)).await.status(), 200);
    s.stop().await;
    let c = Connection::open(&db).unwrap();
    let (endpoint, status, prompt, completion): (String, i64, i64, i64) = c
        .query_row(
            "SELECT endpoint, status, prompt_tokens, completion_tokens FROM requests",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (endpoint.as_str(), status, prompt, completion),
        ("messages", 200, 11, 5)
    );
}

/// A bridged stream whose backend sends `[DONE]` without a finish reason cannot end as a
/// Messages stream (`message_delta` carries `stop_reason`): the client gets an `error` event,
/// and the row says 502 with the same error (it said 200 before: the row and what the client
/// saw disagreed).
#[tokio::test]
async fn a_stream_done_without_a_finish_reason_is_an_error_in_the_row_too() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mock = Mock::start(|_| {
        MockReply::Sse(vec![
            sse(&chunk(
                json!({"role":"assistant","content":"Part"}),
                Value::Null,
            )),
            done(),
        ])
    })
    .await;
    let yaml = format!(
        "{}log:\n  path: {}\n",
        one_deployment(&mock.url("/v1")),
        db.display()
    );
    let s = Sluice::start_logged(&yaml).await;
    a_streamed_hello_ends_in_an_api_error(&s).await;
    s.stop().await;
    let c = Connection::open(&db).unwrap();
    let (status, error_type, message): (i64, String, String) = c
        .query_row(
            "SELECT status, error_type, error_message FROM requests",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (status, error_type.as_str(), message.as_str()),
        (
            502,
            "server_error",
            "the backend's stream ended before it was complete (no finish reason)"
        )
    );
}

/// A bridged answer the Messages shape cannot give (no choices; tool arguments that are not
/// an object) is a 502 in Anthropic's envelope, and the row says 502 with the same message
/// (found by an attacker test: the row said 200).
#[tokio::test]
async fn an_untranslatable_answer_is_a_502_in_the_row_too() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let answers = [
        json!({"id":"c","object":"chat.completion","created":1,"model":"x","choices":[],
               "usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}),
        json!({"id":"c","object":"chat.completion","created":1,"model":"x",
               "choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","content":null,
               "tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{bad"}}]}}]}),
    ];
    let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = n.clone();
    let mock = Mock::start(move |_| {
        let i = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        MockReply::Json(200, answers[i % 2].clone())
    })
    .await;
    let yaml = format!(
        "{}log:\n  path: {}\n",
        one_deployment(&mock.url("/v1")),
        db.display()
    );
    let s = Sluice::start_logged(&yaml).await;
    let mut messages = Vec::new();
    for _ in 0..2 {
        let resp = post(&s, "/v1/messages", &hello(false)).await;
        assert_eq!(resp.status(), 502);
        let e: Value = resp.json().await.unwrap();
        assert_eq!(e["type"], "error");
        messages.push(e["error"]["message"].as_str().unwrap().to_string());
    }
    s.stop().await;
    let c = Connection::open(&db).unwrap();
    let rows: Vec<(i64, String)> = c
        .prepare("SELECT status, error_message FROM requests ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        vec![(502, messages[0].clone()), (502, messages[1].clone())]
    );
    assert!(
        messages[0].ends_with("the answer has no choices"),
        "{messages:?}"
    );
    assert!(
        messages[1].contains("are not a JSON object: {bad"),
        "{messages:?}"
    );
}

/// A PII value in a Messages `system` block never reaches the remote deployment under
/// `pii: any → hosting: local`.
#[tokio::test]
async fn pii_in_a_system_block_stays_local() {
    let remote = Mock::start(chat_upstream).await;
    let local = Mock::start(chat_upstream).await;
    let yaml = format!(
        "deployments:\n  - name: far\n    provider: openai\n    base_url: {}\n    model: m\n    hosting: remote\n  - name: near\n    provider: openai\n    base_url: {}\n    model: m\n    hosting: local\nmodels:\n  - name: default\n    deployments: [far, near]\npolicies:\n  - name: personal-data-stays-local\n    when: {{pii: any}}\n    require: {{hosting: local}}\n",
        remote.url("/v1"),
        local.url("/v1")
    );
    let s = Sluice::start(&yaml).await;
    let body = json!({"model":"default","max_tokens":16,"stream":true,
        "system":[{"type":"text","text":"The user is anna.berg@example.com."}],
        "messages":[{"role":"user","content":"Say hello."}]});
    assert_eq!(post(&s, "/v1/messages", &body).await.status(), 200);
    assert_eq!(remote.calls(), 0);
    assert_eq!(local.calls(), 1);
    s.stop().await;
}

/// The official `anthropic` Python package against Sluice, bridged to an OpenAI-compatible
/// mock (tests/sdk/test_anthropic_sdk.py): create, stream, a streamed tool round trip,
/// count_tokens and an error, with exact contents and usage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_anthropic_python_sdk_bridged() {
    let python = std::env::var("SLUICE_PYTHON").expect(
        "SLUICE_PYTHON is not set: run the tests with tests/run.sh, which installs the anthropic package",
    );
    let mock = Mock::start(chat_upstream).await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    let out = tokio::process::Command::new(python)
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/sdk/test_anthropic_sdk.py",
        ])
        .env("ANTHROPIC_BASE_URL", s.url(""))
        .env("ANTHROPIC_API_KEY", "sk-test")
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pytest failed:\n{stdout}\n{stderr}");
    println!("{stdout}");
    assert!(stdout.contains("5 passed"), "{stdout}");
    // The tool round trip reached the backend as a `tool` message answering the call.
    let tool_turn = mock.received.lock().unwrap().iter().any(|r| {
        r.body["messages"].as_array().is_some_and(|m| {
            m.iter().any(|x| {
                x["role"] == "tool" && x["tool_call_id"] == "call_a" && x["content"] == "18C"
            })
        })
    });
    assert!(tool_turn);
    s.stop().await;
}

/// Every deployment failing (502, `api_error`), then every one cooling down: Sluice's 503
/// `no_available_deployment` is Anthropic's 529 `overloaded_error`, `Retry-After` kept.
#[tokio::test]
async fn cooldowns_are_overloaded_errors() {
    let a = Mock::start(|_| MockReply::Json(500, json!({"error":{"message":"boom"}}))).await;
    let b = Mock::start(|_| MockReply::Json(500, json!({"error":{"message":"boom"}}))).await;
    let yaml = format!(
        "deployments:\n  - name: a\n    provider: openai\n    base_url: {}\n    model: m\n  - name: b\n    provider: openai\n    base_url: {}\n    model: m\nmodels:\n  - name: default\n    deployments: [a, b]\n",
        a.url("/v1"),
        b.url("/v1")
    );
    let s = Sluice::start(&yaml).await;
    let resp = post(&s, "/v1/messages", &hello(false)).await;
    assert_eq!(resp.status(), 502);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["type"], "api_error");
    let resp = post(&s, "/v1/messages", &hello(true)).await;
    assert_eq!(resp.status().as_u16(), 529);
    assert!(resp.headers().get("retry-after").is_some());
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "overloaded_error");
    s.stop().await;
}

/// An answer the borrowed view refuses (a key given twice, a `reasoning` that is not text)
/// is translated from its parsed tree; a view-read answer with a missing tool-call id gets a
/// generated one, as the tree path always did.
#[tokio::test]
async fn an_answer_the_view_refuses_is_translated_from_its_tree() {
    const ODD: &str = r#"{"id":"chatcmpl-odd","object":"chat.completion","model":"a","model":"b","choices":[{"index":0,"message":{"role":"assistant","content":"Read from the tree","reasoning":{"odd":1}},"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;
    const NO_ID: &str = r#"{"id":"chatcmpl-v","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},"finish_reason":"tool_calls"}]}"#;
    for (answer, expected) in [
        (
            ODD,
            json!({"id":"msg_odd","type":"message","role":"assistant","model":"b",
                   "content":[{"type":"text","text":"Read from the tree"}],
                   "stop_reason":"max_tokens","stop_sequence":null,
                   "usage":{"input_tokens":3,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":2}}),
        ),
        (
            NO_ID,
            json!({"id":"msg_v","type":"message","role":"assistant","model":"m",
                   "content":[{"type":"tool_use","id":"toolu_0","name":"f","input":{"a":1}}],
                   "stop_reason":"tool_use","stop_sequence":null,
                   "usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}),
        ),
    ] {
        let mock = Mock::start(move |_: &Received| MockReply::Text(200, answer)).await;
        let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
        let r = post(&s, "/v1/messages", &hello(false)).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v, expected);
        s.stop().await;
    }
}

/// `anthropic-beta` is forwarded on the native route, so it must be beta names: an address in
/// it reached a remote backend unscanned before. Now it is Anthropic's 400 before any call;
/// Claude Code's list still passes.
#[tokio::test]
async fn anthropic_beta_must_be_a_list_of_beta_names() {
    let mock = Mock::start(chat_upstream).await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    let body = json!({"model": "default", "max_tokens": 8,
        "messages": [{"role": "user", "content": "hi"}]});
    let send = |beta: &'static str| {
        client()
            .post(s.url("/v1/messages"))
            .header("x-api-key", "sk-anything")
            .header("anthropic-version", "2023-06-01")
            .header("anthropic-beta", beta)
            .json(&body)
            .send()
    };
    let r = send("cust-anna.berg@example.com").await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(mock.calls(), 0);
    let ok = send("claude-code-20250219,interleaved-thinking-2025-05-14, fine-grained-tool-streaming-2025-05-14")
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(mock.calls(), 1);
    s.stop().await;
}

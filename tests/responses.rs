//! `/v1/responses` end to end against chat-completions mocks on 127.0.0.1 (every request is
//! bridged through chat): JSON and stream replies, a tool round trip with
//! `previous_response_id`, state per key and per log mode, fallback before the first byte, an
//! error mid-stream, bad input, hosted tools, `input_tokens`, and the official openai Python
//! SDK (`SLUICE_PYTHON`, set by tests/run.sh).

mod support;

use bytes::Bytes;
use serde_json::{Value, json};
use support::*;

fn usage_chunk() -> Value {
    json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"upstream-model","choices":[],
           "usage":{"prompt_tokens":11,"completion_tokens":5,"total_tokens":16}})
}

fn completion(message: Value, finish: &str) -> MockReply {
    MockReply::Json(
        200,
        json!({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"upstream-model",
               "choices":[{"index":0,"message":message,"logprobs":null,"finish_reason":finish}],
               "usage":{"prompt_tokens":11,"completion_tokens":5,"total_tokens":16}}),
    )
}

/// A chat backend: text, or tool calls when tools are offered and the last message is not a
/// tool result, or JSON when a schema is asked for; streams when asked.
fn upstream(r: &Received) -> MockReply {
    let msgs = r.body["messages"].as_array().cloned().unwrap_or_default();
    let last = msgs.last().cloned().unwrap_or(Value::Null);
    let last_text = last["content"].as_str().unwrap_or("").to_string();
    let wants_tools = r.body.get("tools").is_some() && last["role"] != "tool";
    if last_text == "break mid-stream" {
        let raw = format!(
            "data: {}\n\ndata: {}\n\ndata: {}\n\n",
            chunk(json!({"role":"assistant","content":"Once"}), Value::Null),
            chunk(json!({"content":" upon"}), Value::Null),
            json!({"error":{"message":"engine queue full","type":"server_error","param":null,"code":"overloaded"}})
        );
        return MockReply::Sse(vec![Bytes::from(raw)]);
    }
    if r.body["stream"] == true {
        let mut chunks = vec![chunk(json!({"role":"assistant","content":""}), Value::Null)];
        if wants_tools {
            chunks.push(chunk(json!({"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\":"}}]}), Value::Null));
            chunks.push(chunk(
                json!({"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}),
                Value::Null,
            ));
            chunks.push(chunk(json!({"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{\"tz\":\"CET\"}"}}]}), Value::Null));
            chunks.push(chunk(json!({}), json!("tool_calls")));
        } else {
            for p in ["Hello", " from", " the", " mock", "!"] {
                chunks.push(chunk(json!({"content": p}), Value::Null));
            }
            chunks.push(chunk(json!({}), json!("stop")));
        }
        chunks.push(usage_chunk());
        let mut frames: Vec<Bytes> = chunks.iter().map(sse).collect();
        frames.push(done());
        return MockReply::Sse(frames);
    }
    if r.body["response_format"]["type"] == "json_schema" {
        return completion(
            json!({"role":"assistant","content":"{\"name\":\"Anna\",\"age\":31}"}),
            "stop",
        );
    }
    if wants_tools {
        return completion(
            json!({"role":"assistant","content":null,"tool_calls":[{"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]}),
            "tool_calls",
        );
    }
    if last["role"] == "tool" {
        return completion(
            json!({"role":"assistant","content":"It is 21 degrees in Paris."}),
            "stop",
        );
    }
    completion(
        json!({"role":"assistant","content":"Hello from the mock!"}),
        "stop",
    )
}

fn config(base: &str, db: &std::path::Path, extra: &str) -> String {
    format!(
        "log:\n  path: {}\n{extra}{}",
        db.display(),
        one_deployment(base)
    )
}

/// `(event, data)` of each frame of a Responses SSE body.
fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|f| {
            let (ev, data) = f.split_once('\n').unwrap();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            let ev = ev.strip_prefix("event: ").unwrap().to_string();
            assert_eq!(data["type"], ev.as_str());
            (ev, data)
        })
        .collect()
}

#[tokio::test]
async fn json_reply_is_a_response_object_and_the_upstream_got_chat() {
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(upstream).await;
    let s = Sluice::start_logged(&config(&mock.url("/v1"), &dir.path().join("l.db"), "")).await;
    for path in ["/v1/responses", "/responses"] {
        let r = post(&s, path, json!({"model":"default","instructions":"Be kind.","input":"Say hello.","max_output_tokens":50,"metadata":{"case":"json"}})).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert!(v["id"].as_str().unwrap().starts_with("resp_"));
        assert_eq!(v["object"], "response");
        assert_eq!(v["status"], "completed");
        assert_eq!(v["metadata"], json!({"case": "json"}));
        assert_eq!(
            v["output"][0]["content"][0],
            json!({"type":"output_text","text":"Hello from the mock!","annotations":[],"logprobs":[]})
        );
        assert_eq!(
            v["usage"],
            json!({"input_tokens":11,"input_tokens_details":{"cached_tokens":0},"output_tokens":5,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":16})
        );
    }
    let got = mock.last();
    assert_eq!(got.path, "/v1/chat/completions");
    assert_eq!(
        got.body["messages"],
        json!([{"role":"system","content":"Be kind."},{"role":"user","content":"Say hello."}])
    );
    assert_eq!(got.body["max_tokens"], 50);
    // `metadata` is the Response object's, not the chat backend's.
    assert_eq!(got.body.get("metadata"), None);
    s.stop().await;
}

#[tokio::test]
async fn stream_is_translated_event_by_event() {
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(upstream).await;
    let s = Sluice::start_logged(&config(&mock.url("/v1"), &dir.path().join("l.db"), "")).await;
    let r = post(
        &s,
        "/v1/responses",
        json!({"model":"default","input":"Say hello.","stream":true}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let ev = events(&r.text().await.unwrap());
    let names: Vec<&str> = ev.iter().map(|(e, _)| e.as_str()).collect();
    let mut want = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ];
    want.extend(["response.output_text.delta"; 5]);
    want.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(names, want);
    for (i, (_, d)) in ev.iter().enumerate() {
        assert_eq!(d["sequence_number"], i as u64);
    }
    let done = &ev.last().unwrap().1["response"];
    assert_eq!(
        done["output"][0]["content"][0]["text"],
        "Hello from the mock!"
    );
    assert_eq!(done["usage"]["total_tokens"], 16);
    assert_eq!(
        mock.last().body["stream_options"],
        json!({"include_usage": true})
    );
    s.stop().await;
}

#[tokio::test]
async fn tool_round_trip_with_previous_response_id_and_state_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(upstream).await;
    let keys = "server:\n  master_key: sk-master\nkeys:\n  - name: alice\n    key: sk-alice\n  - name: bob\n    key: sk-bob\n";
    let s = Sluice::start_logged(&config(&mock.url("/v1"), &dir.path().join("l.db"), keys)).await;
    let as_key = |key: &str, path: &str, body: Value| {
        client()
            .post(s.url(path))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    let tools = json!([{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}},{"type":"web_search"}]);
    let r = as_key(
        "sk-alice",
        "/v1/responses",
        json!({"model":"default","input":"Weather in Paris?","tools":tools}),
    )
    .await
    .unwrap();
    assert_eq!(r.headers()["x-sluice-dropped-tools"], "web_search");
    let first: Value = r.json().await.unwrap();
    assert_eq!(
        first["output"],
        json!([{"type":"function_call","id":format!("fc_{}_0", &first["id"].as_str().unwrap()[5..]),"call_id":"call_a","name":"get_weather","arguments":"{\"city\":\"Paris\"}","status":"completed"}])
    );
    let id = first["id"].as_str().unwrap().to_string();
    // Stored rows are written in the background: wait (bounded) until alice can read it.
    let mut found = false;
    for _ in 0..100 {
        let g = client()
            .get(s.url(&format!("/v1/responses/{id}")))
            .bearer_auth("sk-alice")
            .send()
            .await
            .unwrap();
        if g.status() == 200 {
            found = true;
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(found, "the response was never stored");
    let follow = json!({"model":"default","previous_response_id":id,"input":[{"type":"function_call_output","call_id":"call_a","output":"21C"}],"tools":tools});
    let second: Value = as_key("sk-alice", "/v1/responses", follow.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        second["output"][0]["content"][0]["text"],
        "It is 21 degrees in Paris."
    );
    assert_eq!(second["previous_response_id"], id.as_str());
    assert_eq!(
        mock.last().body["messages"],
        json!([{"role":"user","content":"Weather in Paris?"},
               {"role":"assistant","content":null,"tool_calls":[{"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
               {"role":"tool","content":"21C","tool_call_id":"call_a"}])
    );
    // Bob sees none of it.
    let g = client()
        .get(s.url(&format!("/v1/responses/{id}")))
        .bearer_auth("sk-bob")
        .send()
        .await
        .unwrap();
    assert_eq!(g.status(), 404);
    let e: Value = g.json().await.unwrap();
    assert_eq!(
        e["error"]["message"],
        format!("No response found with id '{id}'.")
    );
    let r = as_key("sk-bob", "/v1/responses", follow).await.unwrap();
    assert_eq!(r.status(), 400);
    let d = client()
        .delete(s.url(&format!("/v1/responses/{id}")))
        .bearer_auth("sk-bob")
        .send()
        .await
        .unwrap();
    assert_eq!(d.status(), 404);
    // Alice lists the input and deletes it.
    let items: Value = client()
        .get(s.url(&format!("/responses/{id}/input_items")))
        .bearer_auth("sk-alice")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        items["data"][0]["content"],
        json!([{"type":"input_text","text":"Weather in Paris?"}])
    );
    assert_eq!(items["has_more"], false);
    let d: Value = client()
        .delete(s.url(&format!("/v1/responses/{id}")))
        .bearer_auth("sk-alice")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        d,
        json!({"id": id, "object": "response.deleted", "deleted": true})
    );
    s.stop().await;
}

#[tokio::test]
async fn with_metadata_logging_nothing_is_kept_and_previous_response_id_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(upstream).await;
    let s = Sluice::start_logged(
        &config(&mock.url("/v1"), &dir.path().join("l.db"), "")
            .replace("log:\n", "log:\n  prompts: metadata\n"),
    )
    .await;
    let v: Value = post(&s, "/v1/responses", json!({"model":"default","input":"hi"}))
        .await
        .json()
        .await
        .unwrap();
    let id = v["id"].as_str().unwrap();
    let r = post(
        &s,
        "/v1/responses",
        json!({"model":"default","input":"again","previous_response_id":id}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["param"], "previous_response_id");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("log.prompts is `metadata` or `off`"),
        "{e}"
    );
    assert_eq!(
        client()
            .get(s.url(&format!("/v1/responses/{id}")))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    s.stop().await;
}

#[tokio::test]
async fn error_before_the_first_byte_falls_back_to_the_next_deployment() {
    let down = Mock::start(|_| {
        MockReply::Json(
            500,
            json!({"error":{"message":"boom","type":"server_error"}}),
        )
    })
    .await;
    let up = Mock::start(upstream).await;
    let yaml = format!(
        "deployments:\n  - name: a\n    provider: openai\n    base_url: {}\n    model: m\n  - name: b\n    provider: openai\n    base_url: {}\n    model: m\nmodels:\n  - name: default\n    deployments: [a, b]\n",
        down.url("/v1"),
        up.url("/v1")
    );
    let s = Sluice::start(&yaml).await;
    let r = post(
        &s,
        "/v1/responses",
        json!({"model":"default","input":"Say hello.","stream":true}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-sluice-deployment"], "b");
    let ev = events(&r.text().await.unwrap());
    assert_eq!(ev.last().unwrap().0, "response.completed");
    assert_eq!(down.calls(), 1);
    s.stop().await;
}

#[tokio::test]
async fn an_error_mid_stream_is_an_error_event_then_response_failed() {
    let mock = Mock::start(upstream).await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    let r = post(
        &s,
        "/v1/responses",
        json!({"model":"default","input":"break mid-stream","stream":true}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let ev = events(&r.text().await.unwrap());
    let names: Vec<&str> = ev.iter().map(|(e, _)| e.as_str()).collect();
    assert!(!names.contains(&"response.completed"));
    let n = ev.len();
    assert_eq!(ev[n - 2].0, "error");
    assert_eq!(ev[n - 2].1["message"], "engine queue full");
    assert_eq!(ev[n - 1].0, "response.failed");
    assert_eq!(
        ev[n - 1].1["response"]["error"],
        json!({"code":"overloaded","message":"engine queue full"})
    );
    assert_eq!(
        ev[n - 1].1["response"]["output"][0]["content"][0]["text"],
        "Once upon"
    );
    s.stop().await;
}

#[tokio::test]
async fn bad_input_gets_openai_errors() {
    let mock = Mock::start(upstream).await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    let r = client()
        .post(s.url("/v1/responses"))
        .body("{nope")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["type"], "invalid_request_error");
    let r = post(
        &s,
        "/v1/responses",
        json!({"model":"default","input":[{"type":"function_call","name":"f"}]}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = post(&s, "/v1/responses", json!({"model":"default","input":"x","tools":[{"type":"web_search"}],"tool_choice":{"type":"web_search"}})).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["param"], "tool_choice");
    let r = post(&s, "/v1/responses", json!({"model":"nope","input":"x"})).await;
    assert_eq!(r.status(), 404);
    // Unknown items are no reason to refuse: Codex's items pass (left out of the chat request).
    let r = post(&s, "/v1/responses", json!({"model":"default","input":[{"type":"item_reference","id":"x"},{"role":"user","content":"hi"}]})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(mock.calls(), 1);
    let n: Value = post(
        &s,
        "/v1/responses/input_tokens",
        json!({"model":"default","input":"abcdefgh","instructions":"abcd"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        n,
        json!({"object":"response.input_tokens","input_tokens":3})
    );
    s.stop().await;
}

/// Known items and parts a chat request cannot carry are a 400 in OpenAI's envelope naming
/// their `param`, before any backend is called — never dropped into an empty or `null`
/// message the backend would refuse.
#[tokio::test]
async fn items_the_bridge_cannot_carry_are_400s_naming_their_param() {
    let mock = Mock::start(upstream).await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    let user =
        |part: Value| json!([{"role":"user","content":[{"type":"input_text","text":"see"}, part]}]);
    let cases = [
        (
            json!([{"role":"tool","content":"hi"}]),
            "input[0].role",
            "Invalid value: 'tool'. Supported values are: 'assistant', 'system', 'developer', and 'user'.",
            Some("invalid_value"),
        ),
        (
            user(json!({"type":"input_image"})),
            "input[0].content[1].image_url",
            "Missing required parameter: 'input[0].content[1].image_url': the image has neither `image_url` nor `file_id`; send the image as an http(s) or `data:` URL.",
            None,
        ),
        (
            user(json!({"type":"input_image","file_id":"file-1"})),
            "input[0].content[1].image_url",
            "Missing required parameter: 'input[0].content[1].image_url': an uploaded file (`file_id`) cannot be sent to this model's backend; send the image as an http(s) or `data:` URL.",
            None,
        ),
        (
            user(json!({"type":"input_file","filename":"a.pdf"})),
            "input[0].content[1].file_data",
            "Missing required parameter: 'input[0].content[1].file_data': the file has neither `file_data` nor `file_id`; send its content as `file_data`.",
            None,
        ),
        (
            user(json!({"type":"bogus"})),
            "input[0].content[1].type",
            "Invalid value: 'bogus'. Supported values are: 'input_text', 'input_image', 'input_file', 'output_text' and 'refusal'.",
            Some("invalid_value"),
        ),
        (
            user(json!({"type":"input_text"})),
            "input[0].content[1].text",
            "Missing required parameter: 'input[0].content[1].text'.",
            None,
        ),
        // Found by an attacker test: these went upstream as `messages: []` or were dropped.
        (
            json!([]),
            "input",
            "input: at least one item the model can read (a message, a function call or its output) is required",
            None,
        ),
        (
            json!([{"type":"item_reference","id":"msg_1"}]),
            "input",
            "input: at least one item the model can read (a message, a function call or its output) is required",
            None,
        ),
        (
            json!([{"role":"user","content":"hi"}, null]),
            "input[1]",
            "input[1]: an input item is an object, not null",
            None,
        ),
        (
            json!([5]),
            "input[0]",
            "input[0]: an input item is an object, not a number",
            None,
        ),
    ];
    for (input, param, message, code) in cases {
        let r = post(
            &s,
            "/v1/responses",
            json!({"model":"default","input":input}),
        )
        .await;
        assert_eq!(r.status(), 400, "{param}");
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"error":{"message":message,"type":"invalid_request_error","param":param,"code":code}})
        );
    }
    // Found by an attacker test: these tool choices went upstream as they were, or were
    // dropped with the hosted tools and the answer came back without a call.
    let weather = json!([{"type":"function","name":"get_weather","parameters":{"type":"object"}}]);
    for (tools, choice, param, message) in [
        (
            weather.clone(),
            json!({"type":"function"}),
            "tool_choice.name",
            "Missing required parameter: 'tool_choice.name'.".to_string(),
        ),
        (
            weather.clone(),
            json!({"type":"function","name":"g"}),
            "tool_choice.name",
            "`tool_choice` names the tool `g`, which is not in `tools`".to_string(),
        ),
        (
            json!([{"type":"web_search"}]),
            json!("required"),
            "tool_choice",
            "`tool_choice` is `required`, but no tool is left for the chat backend behind this model (hosted tools are removed on a bridged route)".to_string(),
        ),
    ] {
        let r = post(
            &s,
            "/v1/responses",
            json!({"model":"default","input":"x","tools":tools,"tool_choice":choice}),
        )
        .await;
        assert_eq!(r.status(), 400, "{choice}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(
            (&e["error"]["param"], &e["error"]["message"]),
            (&json!(param), &json!(message)),
            "{e}"
        );
    }
    let r = post(
        &s,
        "/v1/responses",
        json!({"model":"default","input":"x","text":{"format":{"type":"json_schema","name":"r"}}}),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error":{"message":"Missing required parameter: 'text.format.schema'.",
               "type":"invalid_request_error","param":"text.format.schema","code":null}})
    );
    assert_eq!(mock.calls(), 0);
    s.stop().await;
}

#[tokio::test]
async fn the_log_row_names_the_responses_dialect() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("l.db");
    let mock = Mock::start(upstream).await;
    let s = Sluice::start_logged(&config(&mock.url("/v1"), &db, "")).await;
    let r = client()
        .post(s.url("/v1/responses"))
        .header("x-request-id", "resp-row-1")
        .json(&json!({"model":"default","input":"Say hello.","stream":true}))
        .send()
        .await
        .unwrap();
    r.text().await.unwrap();
    s.stop().await;
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (endpoint, status, content): (String, i64, String) = conn
        .query_row(
            "SELECT endpoint, status, response_content FROM requests WHERE id = 'resp-row-1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (endpoint.as_str(), status, content.as_str()),
        ("responses", 200, "Hello from the mock!")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_openai_python_sdk_responses() {
    let python = std::env::var("SLUICE_PYTHON")
        .expect("SLUICE_PYTHON is not set: run the tests with tests/run.sh, which installs the openai package");
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(upstream).await;
    let s = Sluice::start_logged(&config(&mock.url("/v1"), &dir.path().join("l.db"), "")).await;
    let out = tokio::process::Command::new(python)
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/sdk/test_responses_sdk.py",
        ])
        .env("OPENAI_BASE_URL", s.url("/v1"))
        .env("OPENAI_API_KEY", "sk-test")
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pytest failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("8 passed"), "{stdout}");
    s.stop().await;
}

/// Issue 15 for this dialect: a PII value in the texts a Responses request carries reaches
/// the policy through the chat request it becomes, so under `pii: any → hosting: local` it
/// never reaches the remote mock. `cases` are sent one by one; returns how many went where.
async fn pii_cases(cases: &[Value]) -> (usize, usize) {
    let remote = Mock::start(upstream).await;
    let local = Mock::start(upstream).await;
    let yaml = format!(
        "deployments:\n  - name: remote\n    provider: openai\n    base_url: {}\n    model: m\n    hosting: remote\n  - name: local\n    provider: openai\n    base_url: {}\n    model: m\n    hosting: local\nmodels:\n  - name: default\n    deployments: [remote, local]\npolicies:\n  - name: personal-data-stays-local\n    when: {{pii: any}}\n    require: {{hosting: local}}\n",
        remote.url("/v1"),
        local.url("/v1")
    );
    let s = Sluice::start(&yaml).await;
    for (i, b) in cases.iter().enumerate() {
        let r = post(&s, "/v1/responses", b.clone()).await;
        assert_eq!(r.status(), 200, "case {i}");
        r.text().await.unwrap();
    }
    // Without PII the first choice, the remote deployment, serves.
    let r = post(&s, "/v1/responses", json!({"model":"default","input":"hi"})).await;
    assert_eq!(r.headers()["x-sluice-deployment"], "remote");
    s.stop().await;
    (remote.calls() - 1, local.calls())
}

const EMAIL: &str = "anna.berg@example.com";

#[tokio::test]
async fn pii_in_input_text_instructions_and_tool_output_stays_local() {
    let cases = [
        json!({"model":"default","input":[{"role":"user","content":[{"type":"input_text","text":format!("Mail {EMAIL}")}]}]}),
        json!({"model":"default","instructions":format!("Sign as {EMAIL}"),"input":"hi","stream":true}),
        json!({"model":"default","input":[{"role":"user","content":"hi"},{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":EMAIL}]}),
        json!({"model":"default","input":[{"role":"user","content":"hi"},{"type":"custom_tool_call","call_id":"c","name":"patch","input":EMAIL}]}),
    ];
    assert_eq!(pii_cases(&cases).await, (0, cases.len()));
}

/// Fields outside the messages: a tool's description, `user`. The bridged
/// request is a chat request, so `api::visit` (issue 15) sees them.
#[tokio::test]
async fn pii_in_tool_descriptions_and_user_stays_local() {
    let cases = [
        json!({"model":"default","input":"hi","tools":[{"type":"function","name":"f","description":format!("mails {EMAIL}")}]}),
        json!({"model":"default","input":"hi","user":EMAIL}),
    ];
    assert_eq!(pii_cases(&cases).await, (0, cases.len()));
}

/// An answer the borrowed view refuses (a key given twice, a `refusal` that is not text) is
/// translated from its parsed tree: reasoning, text, finish and usage all reach the client,
/// and the log row has the text.
#[tokio::test]
async fn an_answer_the_view_refuses_is_translated_from_its_tree() {
    const ODD: &str = r#"{"id":"c1","object":"chat.completion","model":"a","model":"b","choices":[{"index":0,"message":{"role":"assistant","content":"Read from the tree","reasoning_content":"Think.","refusal":{"odd":1}},"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(|_: &Received| MockReply::Text(200, ODD)).await;
    let db = dir.path().join("l.db");
    let s = Sluice::start_logged(&config(&mock.url("/v1"), &db, "")).await;
    let r = post(
        &s,
        "/v1/responses",
        json!({"model":"default","input":"Hi","store":false}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let id = v["id"]
        .as_str()
        .unwrap()
        .strip_prefix("resp_")
        .unwrap()
        .to_string();
    assert_eq!(
        (v["status"].clone(), v["incomplete_details"].clone()),
        (json!("incomplete"), json!({"reason": "max_output_tokens"}))
    );
    assert_eq!(
        v["output"],
        json!([
            {"type":"reasoning","id":format!("rs_{id}_0"),"summary":[{"type":"summary_text","text":"Think."}],"status":"completed"},
            {"type":"message","id":format!("msg_{id}_1"),"status":"incomplete","role":"assistant",
             "content":[{"type":"output_text","text":"Read from the tree","annotations":[],"logprobs":[]}]}
        ])
    );
    assert_eq!(v["usage"]["total_tokens"], 5);
    s.stop().await;
    let conn = rusqlite::Connection::open(&db).unwrap();
    let row: (String, String) = conn
        .query_row(
            "SELECT response_content, finish_reason FROM requests",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        row,
        ("Read from the tree".to_string(), "length".to_string())
    );
}

/// A policy's `log:` mode holds for the stored Response as for the row (found by an attacker
/// test: under a `log: metadata` policy the row had no text, but the `responses` table kept
/// the input and the answer, address included, and `GET /v1/responses/{id}` gave them back).
/// `metadata` keeps nothing; `redacted` keeps it redacted.
#[tokio::test]
async fn a_policys_log_mode_holds_for_the_stored_response() {
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(upstream).await;
    let policies = "policies:\n  - name: mail-meta\n    when: {pii: [email]}\n    log: metadata\n  - name: phone-redacted\n    when: {pii: [phone]}\n    log: redacted\n";
    let s = Sluice::start_logged(&config(
        &mock.url("/v1"),
        &dir.path().join("l.db"),
        policies,
    ))
    .await;
    let id_of = |v: Value| v["id"].as_str().unwrap().to_string();
    let ask = |input: &'static str| {
        post(
            &s,
            "/v1/responses",
            json!({"model":"default","input":input}),
        )
    };
    let mail = id_of(
        ask("write to anna.secret@example.com")
            .await
            .json()
            .await
            .unwrap(),
    );
    let phone = id_of(ask("call +34 612 345 678").await.json().await.unwrap());
    let clean = id_of(ask("say hi").await.json().await.unwrap());
    let get = |id: String| {
        client()
            .get(s.url(&format!("/v1/responses/{id}/input_items")))
            .send()
    };
    // Stored in the background: wait for the last one (bounded), the others were earlier.
    let mut status = 0;
    for _ in 0..200 {
        status = get(clean.clone()).await.unwrap().status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(status, 200);
    let items = |id: String| async move { get(id).await.unwrap().text().await.unwrap() };
    for _ in 0..200 {
        if items(phone.clone()).await.contains("\"data\"") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let stored = items(phone.clone()).await;
    assert!(
        stored.contains("\"data\"") && !stored.contains("612 345 678"),
        "{stored}"
    );
    assert_eq!(get(mail).await.unwrap().status(), 404);
    s.stop().await;
}

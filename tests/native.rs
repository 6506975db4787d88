//! The native routes (docs/api.md "Native and bridged routes"): `/v1/messages` to an
//! `anthropic` deployment and `/v1/responses` to an `openai` deployment with
//! `supports: [responses]` reach the backend's own API with the client's body (only `model`
//! rewritten) and the answer comes back byte for byte; errors before the first byte fall back
//! (to a bridged deployment too), errors after it are error events; the log row says
//! `route: native|bridged`, the dialect and the usage the backend streamed.

mod support;

use bytes::Bytes;
use rusqlite::Connection;
use serde_json::{Value, json};
use std::path::Path;
use support::*;

fn ev(name: &str, data: Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// A Messages stream as Anthropic sends it (ping and `\r\n` line ends included).
fn anthropic_stream(text: &[&str]) -> Vec<Bytes> {
    let mut out = vec![
        ev(
            "message_start",
            json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":20,"cache_creation_input_tokens":3,"cache_read_input_tokens":7,"output_tokens":1}}}),
        ),
        ev(
            "content_block_start",
            json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        ),
        Bytes::from_static(b"event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n"),
    ];
    for t in text {
        out.push(ev(
            "content_block_delta",
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":t}}),
        ));
    }
    out.push(ev(
        "content_block_stop",
        json!({"type":"content_block_stop","index":0}),
    ));
    out.push(ev("message_delta", json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":9}})));
    out.push(ev("message_stop", json!({"type":"message_stop"})));
    out
}

fn anthropic_message(text: &str) -> Value {
    json!({"id":"msg_1","type":"message","role":"assistant","model":"claude-x",
           "content":[{"type":"text","text":text}],"stop_reason":"end_turn","stop_sequence":null,
           "usage":{"input_tokens":20,"cache_creation_input_tokens":0,"cache_read_input_tokens":5,"output_tokens":4}})
}

fn chat_answer(text: &str) -> Value {
    json!({"id":"c1","object":"chat.completion","created":1,"model":"m",
           "choices":[{"index":0,"message":{"role":"assistant","content":text},"finish_reason":"stop"}],
           "usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})
}

fn config(deployments: &str, order: &str, extra: &str, log: &Path) -> String {
    format!(
        "deployments:\n{deployments}models:\n  - name: default\n    deployments: [{order}]\n{extra}log:\n  path: {}\n  prompts: full\n",
        log.display()
    )
}

fn anthropic_dep(name: &str, base: &str) -> String {
    format!(
        "  - name: {name}\n    provider: anthropic\n    base_url: {base}\n    model: claude-x\n    api_key: sk-ant-secret\n"
    )
}

fn openai_dep(name: &str, base: &str, supports: &str) -> String {
    format!(
        "  - name: {name}\n    provider: openai\n    base_url: {base}\n    model: m\n{supports}"
    )
}

/// (route, dropped_tools, endpoint, status, prompt_tokens, completion_tokens, attempts) of
/// every row, once `n` rows are there (polled, bounded).
type Row = (Option<String>, Option<String>, String, i64, i64, i64, i64);

async fn rows(db: &Path, n: usize) -> Vec<Row> {
    for _ in 0..200 {
        if let Ok(c) = Connection::open(db) {
            let got: Vec<Row> = c
                .prepare("SELECT route, dropped_tools, endpoint, status, prompt_tokens, completion_tokens, attempts FROM requests ORDER BY seq")
                .and_then(|mut s| {
                    s.query_map([], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
                    })?
                    .collect()
                })
                .unwrap_or_default();
            if got.len() >= n {
                return got;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("fewer than {n} rows in the log");
}

async fn post_messages(s: &Sluice, body: &Value, beta: Option<&str>) -> reqwest::Response {
    let mut req = client()
        .post(s.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .header("x-api-key", "client-key")
        .json(body);
    if let Some(b) = beta {
        req = req.header("anthropic-beta", b);
    }
    req.send().await.unwrap()
}

/// The Messages body a client such as Claude Code sends: server tools, unknown fields.
fn claude_code_body(stream: bool) -> Value {
    json!({"model":"default","max_tokens":32000,"stream":stream,
        "system":[{"type":"text","text":"You are helpful.","cache_control":{"type":"ephemeral"}}],
        "messages":[{"role":"user","content":[{"type":"text","text":"Hi there"}]}],
        "tools":[{"type":"web_search_20250305","name":"web_search","max_uses":2},
                 {"name":"get_weather","description":"d","input_schema":{"type":"object","properties":{}}}],
        "thinking":{"type":"adaptive"},"context_management":{"edits":[]},"output_config":{"effort":"low"},
        "metadata":{"user_id":"user-7"}})
}

#[tokio::test]
async fn messages_native_whole_answer_passes_through_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let answer = anthropic_message("Hello!");
    let sent = answer.to_string();
    let mock = Mock::start(move |_| MockReply::Json(200, answer.clone())).await;
    let yaml = config(&anthropic_dep("claude", &mock.url("")), "claude", "", &db);
    let s = Sluice::start_logged(&yaml).await;
    let body = claude_code_body(false);
    let resp = post_messages(&s, &body, Some("claude-code-20250219,context-1m")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-sluice-route"], "native");
    assert!(resp.headers().get("x-sluice-dropped-tools").is_none());
    assert_eq!(
        resp.text().await.unwrap(),
        sent,
        "the backend's bytes, unchanged"
    );
    let got = mock.last();
    assert_eq!(got.path, "/v1/messages");
    assert_eq!(got.headers["x-api-key"], "sk-ant-secret");
    assert_eq!(got.headers["anthropic-version"], "2023-06-01");
    assert_eq!(
        got.headers["anthropic-beta"],
        "claude-code-20250219,context-1m"
    );
    let mut want = body.clone();
    want["model"] = json!("claude-x");
    assert_eq!(
        got.body, want,
        "the client's body, only the model rewritten"
    );
    let row = &rows(&db, 1).await[0];
    assert_eq!(
        row,
        &(
            Some("native".into()),
            None,
            "messages".into(),
            200,
            25,
            4,
            1
        )
    );
    s.stop().await;
}

#[tokio::test]
async fn messages_native_stream_is_relayed_byte_for_byte_with_its_usage() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let events = anthropic_stream(&["Hel", "lo"]);
    let expected: Vec<u8> = events.iter().flat_map(|b| b.to_vec()).collect();
    let mock = Mock::start(move |_| MockReply::Sse(events.clone())).await;
    let policy = "policies:\n  - name: repro\n    when: {}\n    sampling: {deterministic: true}\n";
    let yaml = config(
        &anthropic_dep("claude", &mock.url("")),
        "claude",
        policy,
        &db,
    );
    let s = Sluice::start_logged(&yaml).await;
    let mut body = claude_code_body(true);
    body["temperature"] = json!(0.8);
    body["top_p"] = json!(0.5);
    // With extended thinking Anthropic takes no forced sampling (below); without, it is forced.
    let thinking = body.as_object_mut().unwrap().remove("thinking").unwrap();
    let resp = post_messages(&s, &body, None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(
        resp.headers()["x-sluice-overridden"],
        "temperature=0.8,top_p=0.5"
    );
    assert_eq!(resp.bytes().await.unwrap().to_vec(), expected);
    let got = mock.last().body;
    // Claude refuses `temperature` beside `top_p`: the client's `top_p` is not sent.
    assert_eq!(
        (
            got["temperature"].clone(),
            got["top_k"].clone(),
            got.get("top_p")
        ),
        (json!(0.0), json!(1), None)
    );
    // Found by an attacker test: with `thinking` (Claude Code sends `adaptive`), a forced
    // `temperature: 0` and `top_k: 1` make Anthropic refuse the request; nothing is forced and
    // the answer says it is not deterministic.
    body["thinking"] = thinking;
    let resp = post_messages(&s, &body, None).await;
    assert_eq!(
        resp.headers()["x-sluice-sampling"],
        "not-deterministic (thinking); no-seed"
    );
    resp.bytes().await.unwrap();
    let got = mock.last().body;
    assert_eq!(
        (
            got["temperature"].clone(),
            got.get("top_k"),
            got["top_p"].clone()
        ),
        (json!(0.8), None, json!(0.5))
    );
    assert_eq!(mock.calls(), 2);
    assert!(got.get("seed").is_none() && got.get("n").is_none());
    assert!(mock.last().headers.get("anthropic-beta").is_none());
    // input 20 + cache creation 3 + cache read 7; output from message_delta.
    let row = &rows(&db, 1).await[0];
    assert_eq!(
        (row.0.as_deref(), row.3, row.4, row.5),
        (Some("native"), 200, 30, 9)
    );
    s.stop().await;
}

#[tokio::test]
async fn an_error_before_the_first_byte_falls_back_to_a_bridged_deployment() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let down = Mock::start(|_| {
        MockReply::Json(
            529,
            json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
        )
    })
    .await;
    let chat = Mock::start(|_| MockReply::Json(200, chat_answer("From chat."))).await;
    let deps = anthropic_dep("claude", &down.url("")) + &openai_dep("local", &chat.url("/v1"), "");
    let s = Sluice::start_logged(&config(&deps, "claude, local", "", &db)).await;
    let resp = post_messages(&s, &claude_code_body(false), None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-sluice-route"], "bridged");
    assert_eq!(resp.headers()["x-sluice-dropped-tools"], "web_search");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["content"], json!([{"type":"text","text":"From chat."}]));
    assert_eq!(down.calls(), 1);
    let up = chat.last().body;
    assert_eq!(
        up["tools"].as_array().unwrap().len(),
        1,
        "the server tool is removed"
    );
    let row = &rows(&db, 1).await[0];
    assert_eq!(
        (row.0.as_deref(), row.1.as_deref(), row.6),
        (Some("bridged"), Some(r#"["web_search"]"#), 2)
    );
    s.stop().await;
}

/// OpenAI opens every Responses stream with `response.created`: a failure right after it
/// (`error`, then `response.failed`) falls back to the next deployment, since nothing said
/// anything yet (found by an attacker test: no fallback could ever run on native Responses).
#[tokio::test]
async fn a_failure_right_after_the_opening_events_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let ev = |v: Value| {
        bytes::Bytes::from(format!(
            "event: {}\ndata: {v}\n\n",
            v["type"].as_str().unwrap()
        ))
    };
    let opening = [
        ev(
            json!({"type":"response.created","sequence_number":0,"response":{"id":"resp_1","status":"in_progress"}}),
        ),
        ev(
            json!({"type":"response.in_progress","sequence_number":1,"response":{"id":"resp_1","status":"in_progress"}}),
        ),
        ev(
            json!({"type":"error","sequence_number":2,"code":"server_error","message":"The server had an error"}),
        ),
        ev(
            json!({"type":"response.failed","sequence_number":3,"response":{"id":"resp_1","status":"failed","error":{"code":"server_error","message":"The server had an error"}}}),
        ),
    ];
    // In one piece, as one network read brings them.
    let opening = vec![bytes::Bytes::from(opening.concat())];
    let down = Mock::start(move |_| MockReply::Sse(opening.clone())).await;
    let chat = Mock::start(|_| {
        MockReply::Sse(vec![
            support::sse(&json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m",
                "choices":[{"index":0,"delta":{"role":"assistant","content":"From chat."},"finish_reason":null}]})),
            support::sse(&json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m",
                "choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})),
            support::done(),
        ])
    })
    .await;
    let deps = openai_dep("native", &down.url("/v1"), "    supports: [responses]\n")
        + &openai_dep("local", &chat.url("/v1"), "");
    let s = Sluice::start_logged(&config(&deps, "native, local", "", &db)).await;
    let resp = post(
        &s,
        "/v1/responses",
        json!({"model":"default","input":"hi","stream":true,"store":false}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-sluice-route"], "bridged");
    let text = resp.text().await.unwrap();
    assert!(text.contains("response.completed"), "{text}");
    assert!(!text.contains("The server had an error"), "{text}");
    assert_eq!((down.calls(), chat.calls()), (1, 1));
    s.stop().await;
}

#[tokio::test]
async fn a_stream_that_breaks_off_ends_with_an_error_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mut events = anthropic_stream(&["partial"]);
    events.truncate(4); // message_start, block start, ping, one delta: no message_stop.
    let first: Vec<u8> = events.iter().flat_map(|b| b.to_vec()).collect();
    let mock = Mock::start(move |_| MockReply::Sse(events.clone())).await;
    let yaml = config(&anthropic_dep("claude", &mock.url("")), "claude", "", &db);
    let s = Sluice::start_logged(&yaml).await;
    let resp = post_messages(&s, &claude_code_body(true), None).await;
    assert_eq!(resp.status(), 200);
    let got = resp.bytes().await.unwrap().to_vec();
    assert!(
        got.starts_with(&first),
        "the events before the failure, unchanged"
    );
    let tail = String::from_utf8(got[first.len()..].to_vec()).unwrap();
    assert!(tail.starts_with("event: error\ndata: "), "{tail}");
    let e: Value = serde_json::from_str(tail.trim_end().split_once("data: ").unwrap().1).unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "api_error");
    assert!(!tail.contains("message_stop"));
    let row = &rows(&db, 1).await[0];
    assert_eq!((row.0.as_deref(), row.3), (Some("native"), 502));
    s.stop().await;
}

/// A Responses stream as the OpenAI API sends it.
fn responses_stream(id: &str, text: &str) -> Vec<Bytes> {
    let resp = |status: &str, output: Value, usage: Value| json!({"id":id,"object":"response","created_at":1700000000,"status":status,"model":"m","output":output,"usage":usage});
    let item = json!({"id":"msg_1","type":"message","status":"completed","role":"assistant",
                      "content":[{"type":"output_text","text":text,"annotations":[]}]});
    vec![
        ev(
            "response.created",
            json!({"type":"response.created","sequence_number":0,"response":resp("in_progress", json!([]), Value::Null)}),
        ),
        ev(
            "response.output_text.delta",
            json!({"type":"response.output_text.delta","sequence_number":1,"item_id":"msg_1","output_index":0,"content_index":0,"delta":text}),
        ),
        ev(
            "response.completed",
            json!({"type":"response.completed","sequence_number":2,
            "response":resp("completed", json!([item]), json!({"input_tokens":12,"output_tokens":3,"total_tokens":15}))}),
        ),
    ]
}

#[tokio::test]
async fn responses_native_stream_whole_answer_and_stored_state() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mock = Mock::start(|r| {
        if r.body["stream"] == true {
            MockReply::Sse(responses_stream("resp_up1", "Paris."))
        } else {
            MockReply::Json(200, json!({"id":"resp_up2","object":"response","created_at":1700000001,"status":"completed","model":"m",
                "output":[{"id":"msg_2","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Lyon too.","annotations":[]}]}],
                "usage":{"input_tokens":30,"output_tokens":4,"total_tokens":34}}))
        }
    })
    .await;
    let deps = openai_dep("native", &mock.url("/v1"), "    supports: [responses]\n");
    let s = Sluice::start_logged(&config(&deps, "native", "", &db)).await;
    let expected: Vec<u8> = responses_stream("resp_up1", "Paris.")
        .iter()
        .flat_map(|b| b.to_vec())
        .collect();
    let body = json!({"model":"default","input":"Capital of France?","stream":true,
        "tools":[{"type":"web_search"}],"include":["reasoning.encrypted_content"],"client_metadata":{"x":"y"}});
    let resp = post(&s, "/v1/responses", body.clone()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-sluice-route"], "native");
    assert_eq!(resp.bytes().await.unwrap().to_vec(), expected);
    let got = mock.last();
    assert_eq!(got.path, "/v1/responses");
    let mut want = body.clone();
    want["model"] = json!("m");
    assert_eq!(got.body, want);
    // The next turn continues Sluice's stored conversation: the backend gets it as input.
    let resp = post(
        &s,
        "/v1/responses",
        json!({"model":"default","input":"And another?","previous_response_id":"resp_up1"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["id"], "resp_up2");
    let up = mock.last().body;
    assert!(up.get("previous_response_id").is_none());
    let roles: Vec<(&str, &str)> = up["input"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["type"].as_str().unwrap_or(""),
                i["role"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            ("message", "user"),
            ("message", "assistant"),
            ("message", "user")
        ]
    );
    assert_eq!(up["input"][2]["content"], "And another?");
    // Retrieve and delete by the backend's id.
    let got: Value = client()
        .get(s.url("/v1/responses/resp_up2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["output"][0]["content"][0]["text"], "Lyon too.");
    let del = client()
        .delete(s.url("/v1/responses/resp_up2"))
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 200);
    let rows = rows(&db, 2).await;
    assert_eq!(
        rows.iter()
            .map(|r| (r.0.as_deref(), r.2.as_str(), r.4, r.5))
            .collect::<Vec<_>>(),
        [
            (Some("native"), "responses", 12, 3),
            (Some("native"), "responses", 30, 4)
        ]
    );
    s.stop().await;
}

#[tokio::test]
async fn redaction_restores_text_in_native_events() {
    let mock = Mock::start(|r| {
        // Echo the placeholder Sluice sent, split across two deltas.
        let text = r.raw.clone();
        let text = String::from_utf8_lossy(&text).to_string();
        let start = text.find("[EMAIL_").unwrap();
        let ph = &text[start..start + text[start..].find(']').unwrap() + 1];
        let (a, b) = ph.split_at(4);
        MockReply::Sse(anthropic_stream(&["Mail ", a, &format!("{b} now")]))
    })
    .await;
    let yaml = format!(
        "deployments:\n{}    hosting: remote\nmodels:\n  - name: default\n    deployments: [claude]\npolicies:\n  - name: mask\n    when: {{pii: [email]}}\n    pii_action: redact\n",
        anthropic_dep("claude", &mock.url(""))
    );
    let s = Sluice::start(&yaml).await;
    let body = json!({"model":"default","max_tokens":50,"stream":true,
        "system":"Write to anna.berg@example.com","messages":[{"role":"user","content":"ok"}]});
    let resp = post_messages(&s, &body, None).await;
    let text = resp.text().await.unwrap();
    assert!(!String::from_utf8_lossy(&mock.raw_bytes()).contains("anna.berg@example.com"));
    let said: String = text
        .replace("\r\n", "\n")
        .split("\n\n")
        .filter_map(|f| f.split_once("data: "))
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["delta"]["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(said, "Mail anna.berg@example.com now");
    s.stop().await;
}

/// Claude Code asks for `max_tokens: 32000`; a small bridged backend with
/// `max_output_tokens: 512` gets 512 instead of answering 400.
#[tokio::test]
async fn output_caps_lower_max_tokens_on_a_bridged_route() {
    let chat = Mock::start(|_| MockReply::Json(200, chat_answer("ok"))).await;
    let dir = tempfile::tempdir().unwrap();
    let deps = openai_dep("small", &chat.url("/v1"), "    max_output_tokens: 512\n");
    let s = Sluice::start(&config(&deps, "small", "", &dir.path().join("log.db"))).await;
    let resp = post_messages(&s, &claude_code_body(false), None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(chat.last().body["max_tokens"], 512);
    let resp = post(
        &s,
        "/v1/chat/completions",
        json!({"model":"default","max_tokens":100,
        "messages":[{"role":"user","content":"hi"}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        chat.last().body["max_tokens"],
        100,
        "below the cap: unchanged"
    );
    s.stop().await;
}

/// The client's `anthropic-beta` header leaves with a native Messages request: personal data
/// in it is personal data of the request. Under a policy that keeps it local the request goes
/// to the local deployment (it went to the remote one, header and all); under `pii_action:
/// redact` the header leaves with a placeholder. Raw bytes at the remote mock: no card.
#[tokio::test]
async fn personal_data_in_the_anthropic_beta_header_stays_local() {
    const CARD: &str = "4111111111111111";
    let beta = format!("prompt-caching-2024-07-31,{CARD}");
    let body =
        json!({"model":"default","max_tokens":8,"messages":[{"role":"user","content":"hello"}]});
    let dir = tempfile::tempdir().unwrap();
    // Routed: the remote deployment first, a local one after it.
    let remote = Mock::start(|_| MockReply::Json(200, anthropic_message("remote"))).await;
    let local = Mock::start(|_| MockReply::Json(200, anthropic_message("local"))).await;
    let deps = format!(
        "{}    hosting: remote\n{}    hosting: local\n",
        anthropic_dep("remote", &remote.url("")),
        anthropic_dep("local", &local.url(""))
    );
    let policy =
        "policies:\n  - name: stay-local\n    when: {pii: any}\n    require: {hosting: local}\n";
    let s = Sluice::start(&config(
        &deps,
        "remote, local",
        policy,
        &dir.path().join("a.db"),
    ))
    .await;
    let r = post_messages(&s, &body, Some(&beta)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-sluice-deployment"], "local");
    assert_eq!((remote.calls(), local.calls()), (0, 1));
    assert_eq!(local.last().headers["anthropic-beta"], beta.as_str());
    s.stop().await;
    // Redacted: only the remote deployment.
    let remote = Mock::start(|_| MockReply::Json(200, anthropic_message("remote"))).await;
    let deps = format!(
        "{}    hosting: remote\n",
        anthropic_dep("remote", &remote.url(""))
    );
    let policy = "policies:\n  - name: redact\n    when: {pii: any}\n    pii_action: redact\n";
    let s = Sluice::start(&config(&deps, "remote", policy, &dir.path().join("b.db"))).await;
    let r = post_messages(&s, &body, Some(&beta)).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let raw = String::from_utf8_lossy(&remote.raw_bytes()).to_string();
    assert!(!raw.contains(CARD), "{raw}");
    let sent = remote.last().headers["anthropic-beta"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        sent.starts_with("prompt-caching-2024-07-31,") && sent != beta,
        "{sent}"
    );
    s.stop().await;
}

/// A native Messages stream the client leaves before `message_delta` (which carries the real
/// output count) is charged at least what was streamed: `message_start` says
/// `output_tokens: 1`, and that was the row's count for a whole answer (found by an attacker
/// test: a client could read everything and close before the usage came).
#[tokio::test]
async fn a_messages_stream_left_before_its_usage_is_charged_what_was_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let text = "x".repeat(400);
    let parts: Vec<&str> = vec![text.as_str(); 20];
    // The stream up to its last text delta; then the backend waits.
    let events: Vec<Bytes> = anthropic_stream(&parts).into_iter().take(3 + 20).collect();
    let mock = Mock::start(move |_| {
        let gone = std::sync::Arc::new(std::sync::Mutex::new(Some(
            tokio::sync::oneshot::channel().0,
        )));
        MockReply::SseThenHang(events.clone(), gone)
    })
    .await;
    let yaml = config(&anthropic_dep("claude", &mock.url("")), "claude", "", &db);
    let s = Sluice::start_logged(&yaml).await;
    let body = json!({"model":"default","max_tokens":4000,"stream":true,
        "messages":[{"role":"user","content":"hi"}]});
    let mut resp = post_messages(&s, &body, None).await;
    assert_eq!(resp.status(), 200);
    let mut seen = 0;
    while seen < 20 * 400 {
        let chunk = resp.chunk().await.unwrap().unwrap();
        seen += chunk.iter().filter(|b| **b == b'x').count();
    }
    drop(resp);
    let row = &rows(&db, 1).await[0];
    assert_eq!((row.3, row.5), (499, 2000), "{row:?}");
    s.stop().await;
}

//! Golden corpus: the captured request bodies of `tests/fixtures/messages/*.json` translated
//! to chat requests, and the chat chunk sequences of `tests/fixtures/messages/streams/*.jsonl`
//! replayed through [`StreamTranslator`], each snapshotted with insta
//! (`src/bridge/messages/snapshots/`). Every replayed stream is also checked against
//! Anthropic's event grammar.

use super::{StreamTranslator, from_chat, to_chat};
use crate::api::messages::MessagesRequest;
use crate::api::parse_body;
use serde_json::{Value, json};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/messages")
}

fn request(name: &str) -> MessagesRequest {
    let bytes = std::fs::read(fixtures().join(format!("{name}.json"))).unwrap();
    parse_body(&bytes).unwrap()
}

fn bridged(name: &str) -> Value {
    let b = to_chat(&request(name)).unwrap();
    json!({"request": b.request, "dropped_fields": b.dropped_fields, "dropped_tools": b.dropped_tools})
}

macro_rules! request_golden {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            insta::assert_json_snapshot!(concat!("request_", stringify!($name)), bridged(stringify!($name)));
        }
    )*};
}

request_golden!(
    claude_code_prompt,
    claude_code_tool_result,
    sdk_text,
    sdk_system_blocks,
    sdk_image,
    sdk_tool_round_trip,
    sdk_tool_choice_tool,
    sdk_server_tool,
    sdk_thinking,
    sdk_stream,
    sdk_count_tokens,
);

/// Replays a chunk file; each line is one chat chunk.
fn replay(name: &str, stops: &[&str]) -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join(format!("streams/{name}.jsonl"))).unwrap();
    let mut t = StreamTranslator::new(
        "msg_test".into(),
        "gemma-3-270m".into(),
        17,
        stops.iter().map(|s| s.to_string()).collect(),
    );
    let mut frames = t.start();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let chunk: Value = serde_json::from_str(line).unwrap();
        frames.extend(t.push(&chunk));
    }
    frames.extend(t.finish());
    assert!(t.is_ended());
    let events: Vec<Value> = frames.iter().map(|f| parse_frame(f)).collect();
    check_grammar(&events);
    events
}

/// `event: X\ndata: {…}\n\n` → `{"event": X, "data": {…}}`, checking the name matches `type`.
fn parse_frame(frame: &[u8]) -> Value {
    let text = std::str::from_utf8(frame).unwrap();
    let rest = text.strip_prefix("event: ").unwrap();
    let (name, rest) = rest.split_once("\ndata: ").unwrap();
    let data: Value = serde_json::from_str(rest.strip_suffix("\n\n").unwrap()).unwrap();
    assert_eq!(data["type"], name);
    json!({"event": name, "data": data})
}

/// Anthropic's order: `message_start`, blocks (start, deltas of the block's kind, stop; indexes
/// 0, 1, … in order), `message_delta`, `message_stop` — or an `error` as the last event.
fn check_grammar(events: &[Value]) {
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], "message_start", "{names:?}");
    let mut open: Option<(u64, String)> = None;
    let mut next = 0;
    for (i, e) in events.iter().enumerate().skip(1) {
        let d = &e["data"];
        match names[i] {
            "content_block_start" => {
                assert!(open.is_none(), "block opened inside a block: {names:?}");
                assert_eq!(d["index"], next);
                next += 1;
                let kind = d["content_block"]["type"].as_str().unwrap().to_string();
                open = Some((d["index"].as_u64().unwrap(), kind));
            }
            "content_block_delta" => {
                let (index, kind) = open.clone().expect("delta outside a block");
                assert_eq!(d["index"], index);
                let want = match kind.as_str() {
                    "text" => "text_delta",
                    "thinking" => "thinking_delta",
                    _ => "input_json_delta",
                };
                assert_eq!(d["delta"]["type"], want);
            }
            "content_block_stop" => {
                let (index, _) = open.take().expect("stop outside a block");
                assert_eq!(d["index"], index);
            }
            "message_delta" => {
                assert!(open.is_none());
                assert_eq!(names[i + 1..], ["message_stop"], "{names:?}");
            }
            "message_stop" => assert_eq!(i, names.len() - 1),
            "error" => assert_eq!(i, names.len() - 1, "{names:?}"),
            other => panic!("unexpected event {other}"),
        }
    }
    let last = *names.last().unwrap();
    assert!(last == "message_stop" || last == "error", "{names:?}");
}

/// The arguments a client assembles for each tool_use block.
fn tool_inputs(events: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for e in events {
        let d = &e["data"];
        match e["event"].as_str().unwrap() {
            "content_block_start" if d["content_block"]["type"] == "tool_use" => {
                current = Some(String::new())
            }
            "content_block_delta" if d["delta"]["type"] == "input_json_delta" => current
                .as_mut()
                .unwrap()
                .push_str(d["delta"]["partial_json"].as_str().unwrap()),
            "content_block_stop" => {
                if let Some(s) = current.take() {
                    out.push(serde_json::from_str(&s).unwrap());
                }
            }
            _ => {}
        }
    }
    out
}

macro_rules! stream_golden {
    ($($name:ident : $stops:expr),* $(,)?) => {$(
        #[test]
        fn $name() {
            let events = replay(stringify!($name), &$stops);
            insta::assert_json_snapshot!(concat!("stream_", stringify!($name)), events);
        }
    )*};
}

stream_golden!(
    text_usage_last: [],
    tool_split_arguments: [],
    tool_empty_arguments: [],
    reasoning_then_text: [],
    stop_sequence: ["END"],
    error_mid_stream: [],
    ended_early: [],
);

#[test]
fn split_and_empty_tool_arguments_assemble_to_objects() {
    let events = replay("tool_split_arguments", &[]);
    assert_eq!(
        tool_inputs(&events),
        vec![json!({"city":"Paris"}), json!({"city":"Tokyo"})]
    );
    let events = replay("tool_empty_arguments", &[]);
    assert_eq!(tool_inputs(&events), vec![json!({})]);
}

#[test]
fn usage_is_never_both_zero_when_reported() {
    let events = replay("text_usage_last", &[]);
    assert_eq!(
        events[0]["data"]["message"]["usage"],
        json!({"input_tokens":17,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0})
    );
    let delta = &events[events.len() - 2]["data"];
    assert_eq!(
        delta["usage"],
        json!({"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":8,"output_tokens":5})
    );
}

#[test]
fn a_failure_is_an_error_event_never_a_clean_end() {
    for name in ["error_mid_stream", "ended_early"] {
        let events = replay(name, &[]);
        let names: Vec<&str> = events
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert_eq!(names.last(), Some(&"error"), "{name}");
        assert!(!names.contains(&"message_stop"), "{name}");
    }
}

/// Sluice's own error frames name their kind in `code`: a stream that timed out is
/// Anthropic's `timeout_error`, as everywhere else (it was an `api_error`).
#[test]
fn the_gateways_error_frames_keep_their_kind() {
    for (code, kind) in [
        ("upstream_timeout", "timeout_error"),
        ("rate_limit_exceeded", "rate_limit_error"),
        ("upstream_error", "api_error"),
    ] {
        let mut t = StreamTranslator::new("msg_1".into(), "m".into(), 1, Vec::new());
        let frame =
            json!({"error": {"message": "x", "type": "server_error", "param": null, "code": code}});
        let out = t.push(&frame);
        let event = parse_frame(out.last().unwrap());
        assert_eq!(event["data"]["error"]["type"], kind, "{code}");
    }
}

#[test]
fn whole_answer_golden() {
    let chat = json!({"id":"chatcmpl-9","object":"chat.completion","created":1,"model":"gemma-3-270m",
        "choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","content":"Checking.",
            "reasoning_content":"Need the weather.",
            "tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
                          {"id":"call_2","type":"function","function":{"name":"get_time","arguments":""}}]}}],
        "usage":{"prompt_tokens":40,"completion_tokens":20,"total_tokens":60}});
    let from_tree = from_chat(&chat, "claude-sonnet-4-5", &[]).unwrap();
    // The gateway's path: the same bytes read through the borrowed view.
    let bytes = serde_json::to_vec(&chat).unwrap();
    let view = crate::api::answer_view::ChatAnswer::parse(&bytes).unwrap();
    assert_eq!(
        super::from_answer(&view, "claude-sonnet-4-5", &[]).unwrap(),
        from_tree
    );
    insta::assert_json_snapshot!("response_tool_use", from_tree);
}

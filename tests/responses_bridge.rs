//! Golden corpus of the Responses ↔ chat bridge (pure translation, no server).
//!
//! - every request captured from Codex CLI and the openai SDK under
//!   `tests/fixtures/responses/*.json` → the chat request a bridged backend receives
//!   (`snapshots/responses/request__<case>.snap`);
//! - chat completions under `fixtures/responses/chat/` → Response objects (the same from the
//!   parsed tree and from the bytes' borrowed view);
//! - chat chunk streams under `fixtures/responses/streams/` (one chunk per line; an optional
//!   first line `{"__request__": …}` gives the Responses request, a line `{"__error__": …}`
//!   ends the stream with that error) → the Responses events, frame by frame, checked for the
//!   invariants clients rely on (order, sequence numbers, stable item ids, final output).
//!
//! Strings longer than 600 characters (Codex's instructions, tool descriptions) are shown
//! abbreviated in snapshots, with their length.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sluice::api::answer_view::ChatAnswer;
use sluice::api::responses::{InputItem, ResponseObject, ResponsesRequest};
use sluice::api::{ApiError, ChatCompletionRequest, parse_body};
use sluice::bridge::responses::{StreamTranslator, from_answer, from_chat, to_chat};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/responses")
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

fn stem(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

fn abbreviate(v: &mut Value) {
    match v {
        Value::String(s) if s.chars().count() > 600 => {
            let head: String = s.chars().take(80).collect();
            *s = format!("{head}… ({} chars)", s.chars().count());
        }
        Value::Array(a) => a.iter_mut().for_each(abbreviate),
        Value::Object(m) => m.values_mut().for_each(abbreviate),
        _ => {}
    }
}

fn snapshot(name: &str, mut v: Value) {
    abbreviate(&mut v);
    insta::with_settings!({snapshot_path => "snapshots/responses", prepend_module_to_snapshot => false}, {
        insta::assert_json_snapshot!(name, v);
    });
}

/// The conversation a `previous_response_id` fixture continues: the first turn's input and
/// the capture server's answer.
fn history_for(case: &str) -> Vec<InputItem> {
    if case != "sdk_previous_response_id" {
        return Vec::new();
    }
    serde_json::from_value(json!([
        {"role": "user", "content": "Remember: blue."},
        {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "Hello.", "annotations": []}]}
    ]))
    .unwrap()
}

#[test]
fn captured_requests_translate_to_chat() {
    let files = files(&fixtures(), "json");
    assert!(files.len() >= 15, "fixtures missing: {files:?}");
    for f in files {
        let case = stem(&f);
        let body = std::fs::read(&f).unwrap();
        let req: ResponsesRequest = parse_body(&body).unwrap_or_else(|e| panic!("{case}: {e:?}"));
        let out = match to_chat(&req, &history_for(&case)) {
            Ok(b) => {
                // A chat request is the same after a round trip through a JSON tree: what lets
                // the bridge skip that trip when there are no extras to retype.
                let tree = serde_json::to_value(&b.chat).unwrap();
                let again: ChatCompletionRequest = serde_json::from_value(tree.clone()).unwrap();
                assert_eq!(serde_json::to_value(&again).unwrap(), tree, "{case}");
                json!({
                "chat": b.chat,
                "dropped": b.dropped,
                "dropped_tools": b.dropped_tools,
                "tool_map": b.tools.entries().iter().map(|(flat, o)| json!({
                    "function": flat, "name": o.name, "namespace": o.namespace, "custom": o.custom,
                })).collect::<Vec<_>>(),
                })
            }
            Err(e) => json!({"error": e.body, "status": e.status.as_u16()}),
        };
        snapshot(&format!("request__{case}"), out);
    }
}

fn request_line(lines: &mut Vec<Value>) -> ResponsesRequest {
    match lines.first().and_then(|l| l.get("__request__")).cloned() {
        Some(r) => {
            lines.remove(0);
            serde_json::from_value(r).unwrap()
        }
        None => serde_json::from_value(json!({"model": "m", "input": "hi"})).unwrap(),
    }
}

#[test]
fn chat_completions_translate_to_response_objects() {
    for f in files(&fixtures().join("chat"), "json") {
        let case = stem(&f);
        let chat: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        let mut lines = vec![chat.clone()];
        let req = request_line(&mut lines);
        let tools = to_chat(&req, &[]).unwrap().tools;
        let resp = from_chat(&chat, ResponseObject::start("resp_test", 0, &req), &tools);
        // The gateway's path: the same bytes read through the borrowed view.
        let bytes = std::fs::read(&f).unwrap();
        let view = ChatAnswer::parse(&bytes).expect("the view reads every fixture");
        let viewed = from_answer(&view, ResponseObject::start("resp_test", 0, &req), &tools);
        assert_eq!(
            serde_json::to_value(&viewed).unwrap(),
            serde_json::to_value(&resp).unwrap(),
            "{case}"
        );
        snapshot(
            &format!("response__{case}"),
            serde_json::to_value(&resp).unwrap(),
        );
    }
}

/// Runs one stream fixture; returns the frames as `{"event", "data"}` objects.
fn run_stream(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let req = request_line(&mut lines);
    let bridged = to_chat(&req, &[]).unwrap();
    let mut t = StreamTranslator::new(ResponseObject::start("resp_test", 0, &req), bridged.tools);
    let mut frames = t.start();
    let mut ended = false;
    for line in &lines {
        if let Some(e) = line.get("__error__") {
            let status =
                axum::http::StatusCode::from_u16(e["status"].as_u64().unwrap() as u16).unwrap();
            let err = ApiError::new(
                status,
                e["type"].as_str().unwrap(),
                e["message"].as_str().unwrap(),
            )
            .with_code(e["code"].as_str().unwrap());
            frames.extend(t.finish_error(&err));
            ended = true;
            break;
        }
        frames.extend(t.push(line));
    }
    if !ended {
        frames.extend(t.finish());
    }
    // Nothing more once the stream ended.
    assert!(t.finish().is_empty());
    frames.iter().map(|b| parse_frame(b)).collect()
}

fn parse_frame(b: &[u8]) -> Value {
    let s = std::str::from_utf8(b).unwrap();
    let s = s
        .strip_suffix("\n\n")
        .expect("frame ends with a blank line");
    let (event, data) = s.split_once('\n').unwrap();
    let event = event.strip_prefix("event: ").unwrap();
    let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(data["type"], event, "event line and data.type agree");
    json!({"event": event, "data": data})
}

/// What every stream must satisfy, whatever the fixture.
fn check_invariants(case: &str, frames: &[Value]) {
    let events: Vec<&str> = frames
        .iter()
        .map(|f| f["event"].as_str().unwrap())
        .collect();
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(
            f["data"]["sequence_number"], i as u64,
            "{case}: sequence_number"
        );
    }
    assert_eq!(
        &events[..2],
        ["response.created", "response.in_progress"],
        "{case}"
    );
    let last = *events.last().unwrap();
    assert!(
        [
            "response.completed",
            "response.incomplete",
            "response.failed"
        ]
        .contains(&last),
        "{case}: ends with {last}"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e.starts_with("response.completed")
                || **e == "response.incomplete"
                || **e == "response.failed")
            .count(),
        1,
        "{case}: one terminal event"
    );
    if last == "response.failed" {
        assert_eq!(
            events[events.len() - 2],
            "error",
            "{case}: error before response.failed"
        );
    }
    // Items: added … done, with one id and one output_index throughout, in output order.
    let mut open: Option<(String, u64)> = None;
    let mut next_index = 0;
    let mut deltas = String::new();
    for f in frames {
        let d = &f["data"];
        match f["event"].as_str().unwrap() {
            "response.output_item.added" => {
                assert!(open.is_none(), "{case}: item added while another is open");
                assert_eq!(
                    d["output_index"], next_index,
                    "{case}: output_index in order"
                );
                open = Some((d["item"]["id"].as_str().unwrap().to_string(), next_index));
                next_index += 1;
            }
            "response.output_item.done" => {
                let (id, idx) = open.take().expect("done without added");
                assert_eq!(d["item"]["id"], id.as_str(), "{case}: stable item id");
                assert_eq!(d["output_index"], idx, "{case}");
            }
            e if d.get("item_id").is_some() => {
                let (id, idx) = open
                    .as_ref()
                    .unwrap_or_else(|| panic!("{case}: {e} outside an item"));
                assert_eq!(d["item_id"], id.as_str(), "{case}: {e} item id");
                assert_eq!(d["output_index"], *idx, "{case}: {e} output_index");
                if e == "response.output_text.delta" {
                    deltas.push_str(d["delta"].as_str().unwrap());
                }
            }
            _ => {}
        }
    }
    // A function call's streamed arguments, its `…arguments.done`, its `output_item.done`
    // and the final response agree (they did not for calls a backend interleaves).
    let final_response = &frames.last().unwrap()["data"]["response"];
    let mut streamed: std::collections::BTreeMap<u64, String> = Default::default();
    for f in frames {
        let d = &f["data"];
        let index = d["output_index"].as_u64().unwrap_or(u64::MAX);
        match f["event"].as_str().unwrap() {
            "response.function_call_arguments.delta" => {
                streamed
                    .entry(index)
                    .or_default()
                    .push_str(d["delta"].as_str().unwrap());
            }
            "response.function_call_arguments.done" => {
                assert_eq!(
                    d["arguments"],
                    streamed[&index].as_str(),
                    "{case}: done {index}"
                );
                assert_eq!(
                    final_response["output"][index as usize]["arguments"],
                    streamed[&index].as_str(),
                    "{case}: final {index}"
                );
            }
            "response.output_item.done" if d["item"]["type"] == "function_call" => {
                assert_eq!(d["item"]["arguments"], streamed[&index].as_str(), "{case}");
            }
            _ => {}
        }
    }
    let final_text: String = final_response["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "message")
        .flat_map(|i| i["content"].as_array().unwrap().iter())
        .filter_map(|c| c["text"].as_str())
        .collect();
    assert_eq!(
        final_text, deltas,
        "{case}: the final output holds the streamed text"
    );
    if last != "response.failed" {
        assert!(open.is_none(), "{case}: an item left open");
    }
}

#[test]
fn chat_streams_translate_to_responses_events() {
    let files = files(&fixtures().join("streams"), "jsonl");
    assert!(files.len() >= 8, "{files:?}");
    for f in files {
        let case = stem(&f);
        let frames = run_stream(&f);
        check_invariants(&case, &frames);
        snapshot(&format!("stream__{case}"), Value::Array(frames));
    }
}

#[test]
fn a_text_stream_has_the_exact_event_order() {
    let frames = run_stream(&fixtures().join("streams/text.jsonl"));
    let events: Vec<&str> = frames
        .iter()
        .map(|f| f["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    let done = &frames[9]["data"]["response"];
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello.");
    assert_eq!(
        done["usage"],
        json!({"input_tokens":12,"input_tokens_details":{"cached_tokens":4},"output_tokens":3,
               "output_tokens_details":{"reasoning_tokens":0},"total_tokens":15})
    );
}

#[test]
fn an_error_mid_stream_is_an_error_event_then_response_failed() {
    let frames = run_stream(&fixtures().join("streams/error_mid_stream.jsonl"));
    let n = frames.len();
    assert_eq!(frames[n - 2]["event"], "error");
    assert_eq!(frames[n - 2]["data"]["code"], "upstream_error");
    let failed = &frames[n - 1]["data"]["response"];
    assert_eq!(failed["status"], "failed");
    assert_eq!(
        failed["error"],
        json!({"code": "upstream_error", "message": "deployment `local`: connection reset while streaming"})
    );
    assert_eq!(failed["output"][0]["status"], "incomplete");
    assert_eq!(
        failed["output"][0]["content"][0]["text"],
        "Once upon a time"
    );
    assert!(!frames.iter().any(|f| f["event"] == "response.completed"));
}

/// Images in function call outputs follow the run of tool messages in one user message, as the
/// Messages bridge does with a `tool_result`'s images: a chat `tool` message carries text, and
/// strict servers refuse parts there (found by an attacker test: they went in the tool message).
#[test]
fn images_in_tool_outputs_follow_in_a_user_message() {
    let img =
        |n: u8| json!({"type":"input_image","image_url":format!("data:image/png;base64,QUJD{n}")});
    let req: ResponsesRequest = serde_json::from_value(json!({"model":"m","input":[
        {"role":"user","content":"look at both"},
        {"type":"function_call","call_id":"a","name":"shot","arguments":"{}"},
        {"type":"function_call","call_id":"b","name":"shot","arguments":"{}"},
        {"type":"function_call_output","call_id":"a","output":[{"type":"input_text","text":"first"}, img(1)]},
        {"type":"function_call_output","call_id":"b","output":[img(2)]},
        {"role":"user","content":"which is bigger?"}
    ]}))
    .unwrap();
    let chat = serde_json::to_value(to_chat(&req, &[]).unwrap().chat).unwrap();
    let roles: Vec<&str> = chat["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "tool", "tool", "user", "user"]);
    assert_eq!(chat["messages"][2]["content"], "first");
    assert_eq!(chat["messages"][3]["content"], "");
    assert_eq!(
        chat["messages"][4]["content"],
        json!([{"type":"image_url","image_url":{"url":"data:image/png;base64,QUJD1"}},
               {"type":"image_url","image_url":{"url":"data:image/png;base64,QUJD2"}}])
    );
}

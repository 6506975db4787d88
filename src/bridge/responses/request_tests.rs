//! Tests of [`super`]: Responses requests translated to chat.
use super::*;
use crate::api::parse_body;

fn bridge(body: &str) -> Result<BridgedRequest, ApiError> {
    let req: ResponsesRequest = parse_body(body.as_bytes()).unwrap();
    to_chat(&req, &[])
}

#[test]
fn codex_shaped_input_becomes_one_system_then_alternating_turns() {
    let b = bridge(
        r#"{"model":"m","instructions":"I","input":[
        {"type":"message","role":"developer","content":[{"type":"input_text","text":"D1"}]},
        {"type":"message","role":"developer","content":[{"type":"input_text","text":"D2"}]},
        {"type":"message","role":"user","content":[{"type":"input_text","text":"ctx"}]},
        {"type":"message","role":"user","content":[{"type":"input_text","text":"Run it"}]},
        {"type":"reasoning","summary":[],"encrypted_content":"x"},
        {"type":"function_call","call_id":"c1","name":"exec","arguments":""},
        {"type":"function_call","call_id":"c2","name":"get","arguments":"{\"a\":1}","namespace":"ns"},
        {"type":"function_call_output","call_id":"c1","output":"ok"},
        {"type":"function_call_output","call_id":"c2","output":[{"type":"input_text","text":"fine"}]}
        ],"include":["reasoning.encrypted_content"],"client_metadata":{"k":"v"}}"#,
    )
    .unwrap();
    let m = serde_json::to_value(&b.chat.messages).unwrap();
    assert_eq!(
        m,
        json!([
            {"role":"system","content":"I\n\nD1\n\nD2"},
            {"role":"user","content":"ctx\n\nRun it"},
            {"role":"assistant","content":null,"tool_calls":[
                {"id":"c1","type":"function","function":{"name":"exec","arguments":"{}"}},
                {"id":"c2","type":"function","function":{"name":"ns__get","arguments":"{\"a\":1}"}}]},
            {"role":"tool","content":"ok","tool_call_id":"c1"},
            {"role":"tool","content":"fine","tool_call_id":"c2"}
        ])
    );
    assert_eq!(b.dropped, ["input[4]", "include", "client_metadata"]);
    assert!(b.chat.extra.get("client_metadata").is_none());
}

#[test]
fn a_forced_hosted_tool_is_a_400_and_hosted_tools_are_named() {
    let e = bridge(r#"{"model":"m","input":"x","tools":[{"type":"web_search"}],"tool_choice":{"type":"web_search"}}"#)
        .unwrap_err();
    assert_eq!(e.status.as_u16(), 400);
    assert_eq!(e.body.param.as_deref(), Some("tool_choice"));
    let b =
        bridge(r#"{"model":"m","input":"x","tools":[{"type":"web_search"}],"tool_choice":"auto"}"#)
            .unwrap();
    assert_eq!(b.dropped_tools, ["web_search"]);
    assert_eq!(b.chat.tools, None);
    assert_eq!(b.chat.tool_choice, None);
}

#[test]
fn parameters_map_to_their_chat_names() {
    let b = bridge(
        r#"{"model":"m","input":"x","max_output_tokens":9,"reasoning":{"effort":"low"},
        "text":{"format":{"type":"json_object"}},"stream":true,"top_k":3,"seed":1}"#,
    )
    .unwrap();
    let c = serde_json::to_value(&b.chat).unwrap();
    assert_eq!(c["max_completion_tokens"], 9);
    assert_eq!(c["reasoning_effort"], "low");
    assert_eq!(c["response_format"], json!({"type":"json_object"}));
    assert_eq!(c["stream_options"], json!({"include_usage": true}));
    assert_eq!(b.chat.top_k, Some(3));
    assert_eq!(c["seed"], 1);
    assert!(b.dropped.is_empty(), "{:?}", b.dropped);
}

//! Unit tests of [`super`] (the Messages → chat request translation).

use super::*;
use crate::api::parse_body;

fn bridge(body: Value) -> Result<Bridged, ApiError> {
    to_chat(&parse_body(body.to_string().as_bytes()).unwrap())
}

fn chat(body: Value) -> Value {
    serde_json::to_value(bridge(body).unwrap().request).unwrap()
}

#[test]
fn forcing_a_server_tool_is_a_400_naming_it() {
    let tools = json!([{"type":"web_search_20250305","name":"web_search"}]);
    let e = bridge(json!({"model":"m","messages":[],"tools":tools,
        "tool_choice":{"type":"tool","name":"web_search"}}))
    .unwrap_err();
    assert_eq!(e.status.as_u16(), 400);
    assert_eq!(e.body.param.as_deref(), Some("tool_choice.name"));
    assert!(
        e.body.message.contains("`web_search`"),
        "{}",
        e.body.message
    );
    let e = bridge(json!({"model":"m","messages":[],"tools":tools,"tool_choice":{"type":"any"}}))
        .unwrap_err();
    assert_eq!(e.body.param.as_deref(), Some("tool_choice"));
    // `auto` with only server tools: no tools, no tool_choice, the tool named as dropped.
    let b = bridge(json!({"model":"m","messages":[],"tools":tools,"tool_choice":{"type":"auto"}}))
        .unwrap();
    assert_eq!(b.request.tools, None);
    assert_eq!(b.request.tool_choice, None);
    assert_eq!(b.dropped_tools, ["web_search"]);
}

#[test]
fn blocks_the_bridge_cannot_carry_are_400s_with_their_path() {
    let cases = [
        (
            json!({"type":"server_tool_use","id":"s","name":"web_search","input":{}}),
            "user",
            "messages[0].content[0]",
            "`server_tool_use`",
        ),
        (
            json!({"type":"tool_use","name":"f"}),
            "assistant",
            "messages[0].content[0]",
            "invalid `tool_use` block",
        ),
        (
            json!({"type":"tool_result","tool_use_id":"t"}),
            "assistant",
            "messages[0].content[0]",
            "not allowed in an assistant turn",
        ),
        (
            json!({"type":"document","source":{"type":"url","url":"https://x/a.pdf"}}),
            "user",
            "messages[0].content[0].source",
            "`url`",
        ),
    ];
    for (block, role, param, words) in cases {
        let e =
            bridge(json!({"model":"m","messages":[{"role":role,"content":[block]}]})).unwrap_err();
        assert_eq!(e.status.as_u16(), 400, "{block}");
        assert_eq!(e.body.param.as_deref(), Some(param), "{block}");
        assert!(e.body.message.contains(words), "{}", e.body.message);
    }
}

#[test]
fn system_turns_are_hoisted_and_pdfs_become_file_parts() {
    let c = chat(json!({"model":"m","system":"S0","messages":[
        {"role":"user","content":"hi"},
        {"role":"system","content":[{"type":"text","text":"S1"}]},
        {"role":"user","content":[{"type":"document","title":"a.pdf","source":{"type":"base64","media_type":"application/pdf","data":"JVBE"}}]}]}));
    assert_eq!(
        c["messages"],
        json!([{"role":"system","content":"S0\n\nS1"},{"role":"user","content":"hi"},
               {"role":"user","content":[{"type":"file","file":{"file_data":"data:application/pdf;base64,JVBE","filename":"a.pdf"}}]}])
    );
}

#[test]
fn tool_results_come_first_and_their_images_follow() {
    let c = chat(json!({"model":"m","messages":[
        {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"shot","input":{}}]},
        {"role":"user","content":[
            {"type":"text","text":"Here:"},
            {"type":"tool_result","tool_use_id":"t1","content":[
                {"type":"text","text":"a screenshot"},
                {"type":"image","source":{"type":"base64","media_type":"image/png","data":"AA=="}}]}]}]}));
    assert_eq!(
        c["messages"],
        json!([
            {"role":"assistant","content":null,"tool_calls":[{"id":"t1","type":"function","function":{"name":"shot","arguments":"{}"}}]},
            {"role":"tool","content":"a screenshot","tool_call_id":"t1"},
            {"role":"user","content":[{"type":"text","text":"Here:"},
                {"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]}])
    );
}

#[test]
fn max_tokens_is_required_for_create() {
    let req: MessagesRequest = parse_body(br#"{"model":"m","messages":[]}"#).unwrap();
    let e = require_max_tokens(&req).unwrap_err();
    assert_eq!(e.body.param.as_deref(), Some("max_tokens"));
}

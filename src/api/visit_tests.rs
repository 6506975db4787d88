use super::*;
use serde_json::json;

fn chat(v: Value) -> RequestBody {
    RequestBody::Chat(serde_json::from_value(v).unwrap())
}

#[test]
fn every_string_of_a_chat_request_is_visited_with_its_path() {
    let body = chat(json!({
        "model": "m",
        "messages": [
            {"role": "system", "content": "sys", "name": "nm"},
            {"role": "user", "content": [
                {"type": "text", "text": "hi"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                {"type": "file", "file": {"filename": "f.pdf", "file_data": "data:application/pdf;base64,AAAA"}}
            ]},
            {"role": "assistant", "content": null, "reasoning_content": "r", "refusal": "no",
             "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
             "function_call": {"name": "g", "arguments": "{\"a\":1}"}},
            {"role": "tool", "tool_call_id": "c1", "content": "42"}
        ],
        "stop": ["END"],
        "tools": [{"type": "function", "function": {"name": "f", "description": "d",
                   "parameters": {"type": "object", "properties": {"a": {"description": "pa"}}}}}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"description": "sd"}}},
        "user": "u",
        "metadata": {"k": "mv"},
        "prediction": {"type": "content", "content": "pc"},
        "notes": {"deep": ["x"]}
    }));
    let got: Vec<(String, Leaf, &str)> = strings(&body);
    let want = vec![
        ("messages[0].content", Leaf::Content, "sys"),
        ("messages[0].name", Leaf::Other, "nm"),
        ("messages[1].content[0].text", Leaf::Content, "hi"),
        (
            "messages[1].content[1].image_url.url",
            Leaf::Other,
            "https://x/y.png",
        ),
        ("messages[1].content[2].file.filename", Leaf::Other, "f.pdf"),
        ("messages[2].tool_calls[0].id", Leaf::Other, "c1"),
        ("messages[2].tool_calls[0].function.name", Leaf::Other, "f"),
        (
            "messages[2].tool_calls[0].function.arguments",
            Leaf::Content,
            "{}",
        ),
        ("messages[2].reasoning_content", Leaf::Other, "r"),
        ("messages[2].refusal", Leaf::Other, "no"),
        ("messages[2].function_call.name", Leaf::Other, "g"),
        (
            "messages[2].function_call.arguments",
            Leaf::Other,
            "{\"a\":1}",
        ),
        ("messages[3].content", Leaf::Content, "42"),
        ("messages[3].tool_call_id", Leaf::Other, "c1"),
        ("stop[0]", Leaf::Other, "END"),
        ("tools[0].function.name", Leaf::Other, "f"),
        ("tools[0].function.description", Leaf::Other, "d"),
        ("tools[0].function.parameters.type", Leaf::Other, "object"),
        (
            "tools[0].function.parameters.properties.a.description",
            Leaf::Other,
            "pa",
        ),
        ("response_format.json_schema.name", Leaf::Other, "s"),
        (
            "response_format.json_schema.schema.description",
            Leaf::Other,
            "sd",
        ),
        ("user", Leaf::Other, "u"),
        ("metadata.k", Leaf::Other, "mv"),
        ("prediction.type", Leaf::Other, "content"),
        ("prediction.content", Leaf::Other, "pc"),
        ("notes.deep[0]", Leaf::Other, "x"),
    ];
    let want: Vec<(String, Leaf, &str)> = want
        .into_iter()
        .map(|(p, l, t)| (p.to_string(), l, t))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn skipped_fields_are_exactly_these() {
    // model, roles and the typed `type` tags are the only strings not visited.
    let body = chat(json!({"model": "secret@model.io", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "t"}]}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "response_format": {"type": "json_object"}}));
    let paths: Vec<String> = strings(&body).into_iter().map(|(p, _, _)| p).collect();
    assert_eq!(
        paths,
        vec!["messages[0].content[0].text", "tools[0].function.name"]
    );
}

#[test]
fn binary_payloads_are_reported_not_read() {
    struct B(Vec<String>, Vec<String>);
    impl<'a> Visit<'a> for B {
        fn text(&mut self, path: &str, _: Leaf, _: &'a str) {
            self.0.push(path.into());
        }
        fn binary(&mut self, path: &str) {
            self.1.push(path.into());
        }
    }
    let b64 = "QUJD".repeat(20);
    let body = chat(
        json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{b64}")}},
        {"type": "input_audio", "input_audio": {"data": b64, "format": "wav"}}]}]}),
    );
    let mut v = B(Vec::new(), Vec::new());
    visit(&body, &mut v);
    assert_eq!(v.0, vec!["messages[0].content[1].input_audio.format"]);
    assert_eq!(
        v.1,
        vec![
            "messages[0].content[0].image_url.url",
            "messages[0].content[1].input_audio.data"
        ]
    );
}

#[test]
fn generic_requests_visit_every_extra_field() {
    let body = RequestBody::Generic(
        serde_json::from_value(json!({"model": "m", "prompt": ["a", "b"], "suffix": "s",
            "user": "u", "extra_body": {"x": "y"}}))
        .unwrap(),
    );
    let got: Vec<(String, Leaf)> = strings(&body).into_iter().map(|(p, l, _)| (p, l)).collect();
    assert_eq!(
        got,
        vec![
            ("prompt[0]".to_string(), Leaf::Content),
            ("prompt[1]".to_string(), Leaf::Content),
            ("suffix".to_string(), Leaf::Other),
            ("user".to_string(), Leaf::Other),
            ("extra_body.x".to_string(), Leaf::Other),
        ]
    );
}

#[test]
fn native_bodies_visit_every_string_but_the_model() {
    let body = RequestBody::Native(Box::new(crate::api::native::NativeRequest {
        dialect: crate::api::native::Dialect::Messages,
        body: json!({"model": "m", "system": "s", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "hi"}, {"type": "tool_result", "tool_use_id": "t", "content": "r"}]}],
            "tools": [{"type": "web_search_20250305", "name": "web_search", "user_location": {"city": "c"}}],
            "context_management": {"note": "n"}})
        .as_object()
        .cloned()
        .unwrap(),
        bridged: Err(crate::api::ApiError::invalid_request("x")),
        dropped_tools: Vec::new(),
        anthropic_beta: None,
    }));
    let got: Vec<(String, Leaf, &str)> = strings(&body);
    let got: Vec<(&str, Leaf)> = got.iter().map(|(p, l, _)| (p.as_str(), *l)).collect();
    assert_eq!(
        got,
        vec![
            ("system", Leaf::Content),
            ("messages[0].role", Leaf::Other),
            ("messages[0].content[0].type", Leaf::Other),
            ("messages[0].content[0].text", Leaf::Content),
            ("messages[0].content[1].type", Leaf::Other),
            ("messages[0].content[1].tool_use_id", Leaf::Other),
            ("messages[0].content[1].content", Leaf::Content),
            ("tools[0].type", Leaf::Other),
            ("tools[0].name", Leaf::Other),
            ("tools[0].user_location.city", Leaf::Other),
            ("context_management.note", Leaf::Other),
        ]
    );
    assert_eq!(body.texts(), vec!["s", "hi", "r"]);
}

#[test]
fn rewriting_visits_the_same_leaves_in_the_same_order() {
    struct Upper;
    impl VisitMut for Upper {
        fn text(&mut self, _: &str, _: Leaf, t: &mut String) {
            *t = t.to_uppercase();
        }
    }
    let mut body = chat(json!({"model": "m", "messages": [
        {"role": "user", "content": "hi", "name": "ann"}], "notes": "n"}));
    let before: Vec<String> = strings(&body).into_iter().map(|(p, _, _)| p).collect();
    visit_mut(&mut body, &mut Upper);
    let after: Vec<(String, Leaf, &str)> = strings(&body);
    assert_eq!(
        after.iter().map(|(p, _, _)| p.clone()).collect::<Vec<_>>(),
        before
    );
    assert_eq!(
        after.iter().map(|(_, _, t)| *t).collect::<Vec<_>>(),
        vec!["HI", "ANN", "N"]
    );
    let RequestBody::Chat(c) = &body else {
        unreachable!()
    };
    assert_eq!(c.model, "m");
}

#[test]
fn indexes_of_several_digits_are_written_whole() {
    let messages: Vec<Value> = (0..12)
        .map(|i| json!({"role": "user", "content": format!("m{i}")}))
        .collect();
    let body = chat(json!({"model": "m", "messages": messages}));
    let got = strings(&body);
    assert_eq!(got.len(), 12);
    assert_eq!(got[10].0, "messages[10].content");
    assert_eq!(
        got[11],
        ("messages[11].content".to_string(), Leaf::Content, "m11")
    );
}

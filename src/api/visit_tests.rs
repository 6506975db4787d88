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
        ("messages[1].content[0].type", Leaf::Other, "text"),
        ("messages[1].content[0].text", Leaf::Content, "hi"),
        ("messages[1].content[1].type", Leaf::Other, "image_url"),
        (
            "messages[1].content[1].image_url.url",
            Leaf::Other,
            "https://x/y.png",
        ),
        ("messages[1].content[2].type", Leaf::Other, "file"),
        ("messages[1].content[2].file.filename", Leaf::Other, "f.pdf"),
        ("messages[2].tool_calls[0].id", Leaf::Other, "c1"),
        ("messages[2].tool_calls[0].type", Leaf::Other, "function"),
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
        ("tools[0].type", Leaf::Other, "function"),
        ("tools[0].function.name", Leaf::Other, "f"),
        ("tools[0].function.description", Leaf::Other, "d"),
        ("tools[0].function.parameters.type", Leaf::Other, "object"),
        (
            "tools[0].function.parameters.properties.a.description",
            Leaf::Other,
            "pa",
        ),
        ("response_format.type", Leaf::Other, "json_schema"),
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
    // The model and a message's role are the only strings not visited: the typed `type`
    // tags are (a tester put an address in `tools[].type`; the guard saw it, the route
    // decision did not).
    let body = chat(json!({"model": "secret@model.io", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "t"}]}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "response_format": {"type": "json_object"}}));
    let paths: Vec<String> = strings(&body).into_iter().map(|(p, _, _)| p).collect();
    assert_eq!(
        paths,
        vec![
            "messages[0].content[0].type",
            "messages[0].content[0].text",
            "tools[0].type",
            "tools[0].function.name",
            "response_format.type"
        ]
    );
}

/// Everything a reader gets, as `kind path value` lines.
struct All(Vec<String>);

impl<'a> Visit<'a> for All {
    fn text(&mut self, path: &str, _: Leaf, text: &'a str) {
        self.0.push(format!("text {path} {text}"));
    }
    fn binary(&mut self, path: &str, payload: &'a str) {
        self.0.push(format!("binary {path} {}", payload.len()));
    }
    fn number(&mut self, path: &str, text: &str) {
        self.0.push(format!("number {path} {text}"));
    }
    fn key(&mut self, path: &str, key: &'a str) {
        self.0.push(format!("key {path} {key}"));
    }
}

/// Numbers (typed fields too) and the keys of untyped objects reach readers: a card number
/// sent as a JSON number, or an address used as a metadata key, went to a remote deployment
/// unscanned before.
#[test]
fn numbers_and_keys_are_visited() {
    let body = chat(
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
        "seed": 4111111111111111_i64, "temperature": 0.5,
        "metadata": {"card": 4111111111111111_u64, "ana@example.com": "vip"},
        "logit_bias": {"50256": -100}}),
    );
    let mut all = All(Vec::new());
    visit(&body, &mut all);
    assert_eq!(
        all.0,
        vec![
            "text messages[0].content hi",
            "number temperature 0.5",
            "number seed 4111111111111111",
            "key metadata.card card",
            "number metadata.card 4111111111111111",
            "key metadata.ana@example.com ana@example.com",
            "text metadata.ana@example.com vip",
            "key logit_bias logit_bias",
            "key logit_bias.50256 50256",
            "number logit_bias.50256 -100",
        ]
    );
    let mut json = All(Vec::new());
    visit_json(&json!({"a": {"b": [1, "x"]}}), &mut json);
    assert_eq!(
        json.0,
        vec!["key a a", "key a.b b", "number a.b[0] 1", "text a.b[1] x"]
    );
}

/// A rewriter gets an untyped number as text; rewritten, it becomes a string. Typed numbers
/// keep their type.
#[test]
fn a_rewritten_number_becomes_a_string() {
    struct Mask;
    impl VisitMut for Mask {
        fn text(&mut self, _: &str, _: Leaf, t: &mut String) {
            if t.len() > 12 {
                *t = "[CARD_1]".into();
            }
        }
    }
    let mut body = chat(
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
        "seed": 4111111111111111_i64, "metadata": {"card": 4111111111111111_u64, "n": 3}}),
    );
    visit_mut(&mut body, &mut Mask);
    let RequestBody::Chat(c) = &body else {
        unreachable!()
    };
    assert_eq!(c.seed, Some(4111111111111111));
    assert_eq!(
        c.metadata.as_ref().map(|m| Value::Object(m.clone())),
        Some(json!({"card": "[CARD_1]", "n": 3}))
    );
}

/// Token ids are text in the model's own encoding: unscannable, like base64.
#[test]
fn token_ids_are_binary() {
    for body in [
        json!({"model": "m", "input": [[6194, 25, 21041]]}),
        json!({"model": "m", "prompt": [6194, 25]}),
    ] {
        let body = RequestBody::Generic(serde_json::from_value(body).unwrap());
        let mut all = All(Vec::new());
        visit(&body, &mut all);
        let key = if all.0[0].contains("input") {
            "input"
        } else {
            "prompt"
        };
        assert_eq!(
            all.0,
            vec![format!("key {key} {key}"), format!("binary {key} 0")]
        );
    }
    let mut all = All(Vec::new());
    visit_json(&json!({"input": ["a", 1]}), &mut all);
    assert_eq!(
        all.0,
        vec!["key input input", "text input[0] a", "number input[1] 1"]
    );
}

/// Only a real base64 payload after `;base64,` is binary; text dressed as a data URL is
/// scanned. A multi-byte character at byte 200 of a `data:` string does not panic.
#[test]
fn a_data_url_is_binary_only_when_its_payload_is_base64() {
    assert!(is_binary(None, "data:image/png;base64,iVBORw0KGgo="));
    assert!(!is_binary(
        None,
        "data:text/plain;base64, please mail ana.lopez@example.com"
    ));
    let long = format!("data:{}é;base64,AAAA", "x".repeat(194));
    assert!(long.is_char_boundary(199) && !long.is_char_boundary(200));
    assert!(!is_binary(None, &long));
}

/// Line breaks are base64's only as an encoder wraps it (lines of one length, the last no
/// longer): a plain-text document of short lines (an Anthropic `text` source's `data`) is
/// text. Found by an attacker test: one card or phone number a line passed for a payload.
#[test]
fn line_breaks_are_base64_only_as_wrapping() {
    let wrapped = format!("{}\n{}\n{}", "QUJD".repeat(19), "QUJD".repeat(19), "QUJD");
    assert!(is_binary(Some("data"), &wrapped));
    assert!(is_binary(Some("data"), &format!("{wrapped}\r\n")));
    assert!(is_binary(
        Some("data"),
        &format!("{}\r\n{}", "QUJD".repeat(19), "QUJD".repeat(19))
    ));
    let lines = "4111111111111111\n5555555555554444\n378282246310005\n6011111111111117\n078-05-1120\n+34612345678\n";
    assert!(!is_binary(Some("data"), lines));
    assert!(!is_binary(
        None,
        "data:;base64,Customer\ncard\n4111111111111111\nphone\n+34612345678"
    ));
    assert!(!is_binary(
        Some("data"),
        &format!("{}\n\n{}", "QUJD".repeat(19), "QUJD")
    ));
    assert!(!is_binary(
        Some("data"),
        &format!("{}\n{}", "QUJD", "QUJD".repeat(19))
    ));
}

/// A payload comes with its text: what it encodes is unread, its own characters are not.
#[test]
fn binary_payloads_come_with_their_text() {
    let payload = format!("data:image/png;base64,{}4111111111111111", "QUJD".repeat(4));
    let body = chat(
        json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": payload}}]}]}),
    );
    let mut all = All(Vec::new());
    visit(&body, &mut all);
    assert!(
        all.0.contains(&format!(
            "binary messages[0].content[0].image_url.url {}",
            payload.len()
        )),
        "{:?}",
        all.0
    );
    struct Mark;
    impl VisitMut for Mark {
        fn text(&mut self, _: &str, _: Leaf, _: &mut String) {}
        fn binary(&mut self, _: &str, payload: &mut String) {
            *payload = payload.replace("4111111111111111", "[CARD_1]");
        }
    }
    let mut v = json!({"image_url": {"url": payload}});
    visit_json_mut(&mut v, &mut Mark);
    assert_eq!(
        v["image_url"]["url"],
        format!("data:image/png;base64,{}[CARD_1]", "QUJD".repeat(4))
    );
}

#[test]
fn binary_payloads_are_reported_not_read() {
    struct B(Vec<String>, Vec<String>);
    impl<'a> Visit<'a> for B {
        fn text(&mut self, path: &str, _: Leaf, _: &'a str) {
            self.0.push(path.into());
        }
        fn binary(&mut self, path: &str, _: &'a str) {
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
    assert_eq!(
        v.0,
        vec![
            "messages[0].content[0].type",
            "messages[0].content[1].type",
            "messages[0].content[1].input_audio.format"
        ]
    );
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

proptest::proptest! {
    /// A typed number is scanned as the text `serde_json` writes for it.
    #[test]
    fn typed_numbers_are_seen_as_serde_json_writes_them(
        a in proptest::prelude::any::<i64>(),
        b in proptest::prelude::any::<u32>(),
        c in proptest::prelude::any::<f64>(),
    ) {
        let mut seen = Vec::new();
        a.with_json_text(|t| seen.push(t.to_string()));
        b.with_json_text(|t| seen.push(t.to_string()));
        c.with_json_text(|t| seen.push(t.to_string()));
        let c_text = serde_json::Number::from_f64(c).map_or_else(String::new, |n| n.to_string());
        proptest::prop_assert_eq!(
            seen,
            vec![serde_json::Number::from(a).to_string(), serde_json::Number::from(b).to_string(), c_text]
        );
    }
}

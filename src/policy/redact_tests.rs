use super::*;
use crate::config::PiiConfig;
use serde_json::json;

fn detector() -> &'static Detector {
    static D: std::sync::LazyLock<Detector> =
        std::sync::LazyLock::new(|| Detector::new(&PiiConfig::default()).unwrap());
    &D
}

fn chat(text: &str) -> RequestBody {
    RequestBody::Chat(
        serde_json::from_value(json!({"model":"m","messages":[
            {"role":"user","content": text}]}))
        .unwrap(),
    )
}

#[test]
fn same_value_same_placeholder_and_kinds_count_separately() {
    let body = chat("mail ana@example.com or bob@example.org; again ana@example.com, ip 8.8.8.8");
    let kinds = vec!["email".to_string(), "ip".to_string()];
    let (out, r) = redact(detector(), &body, &kinds);
    assert_eq!(
        out.texts(),
        vec!["mail [EMAIL_1] or [EMAIL_2]; again [EMAIL_1], ip [IP_1]"]
    );
    assert_eq!(r.len(), 3);
    assert_eq!(
        r.restore_text("to [EMAIL_2] and [EMAIL_1] from [IP_1]"),
        "to bob@example.org and ana@example.com from 8.8.8.8"
    );
}

#[test]
fn only_the_given_kinds_and_existing_placeholders_are_skipped() {
    let body = chat("[EMAIL_1] is literal; ana@example.com; 8.8.8.8");
    let (out, _) = redact(detector(), &body, &["email".to_string()]);
    assert_eq!(
        out.texts(),
        vec!["[EMAIL_1] is literal; [EMAIL_2]; 8.8.8.8"]
    );
}

fn delta(content: &str, finish: Option<&str>) -> Value {
    json!({"choices":[{"index":0,"delta":{"content":content},"finish_reason":finish}]})
}

#[test]
fn stream_restores_placeholders_split_across_deltas() {
    let body = chat("ana@example.com");
    let (_, r) = redact(detector(), &body, &["email".to_string()]);
    let parts = [
        "Write to [EM",
        "AIL",
        "_1",
        "] now [",
        "not a placeholder] [EMAIL_",
        "1",
    ];
    let mut s = StreamRestorer::new(r);
    let mut out = String::new();
    for p in parts {
        let mut c = delta(p, None);
        s.apply(&mut c);
        out.push_str(c["choices"][0]["delta"]["content"].as_str().unwrap());
    }
    let mut fin = json!({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]});
    s.apply(&mut fin);
    out.push_str(fin["choices"][0]["delta"]["content"].as_str().unwrap_or(""));
    assert_eq!(
        out,
        "Write to ana@example.com now [not a placeholder] [EMAIL_1"
    );
}

#[test]
fn a_stream_that_ends_without_a_finish_chunk_gets_its_held_back_tail() {
    let (_, r) = redact(
        detector(),
        &chat("mail ana@example.com"),
        &["email".to_string()],
    );
    let mut s = StreamRestorer::new(r);
    assert_eq!(s.drain(), None);
    let mut c = json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": {"content": "to [EMA"}, "finish_reason": null}]});
    s.apply(&mut c);
    assert_eq!(c["choices"][0]["delta"]["content"], "to ");
    assert_eq!(
        s.drain(),
        Some(
            json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": "[EMA"}, "finish_reason": null}]})
        )
    );
    assert_eq!(s.drain(), None);
}

#[test]
fn stream_restores_tool_arguments_and_text_completions() {
    let body = chat("ana@example.com");
    let (_, r) = redact(detector(), &body, &["email".to_string()]);
    let mut s = StreamRestorer::new(r);
    let mut c = json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"to\":\"[EMAIL"}}]},"finish_reason":null}]});
    s.apply(&mut c);
    assert_eq!(
        c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
        "{\"to\":\""
    );
    let mut c = json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"_1]\"}"}}]},"finish_reason":null}]});
    s.apply(&mut c);
    assert_eq!(
        c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
        "ana@example.com\"}"
    );
    let mut t = json!({"choices":[{"index":0,"text":"hi [EMAIL_1]","finish_reason":"stop"}]});
    s.apply(&mut t);
    assert_eq!(t["choices"][0]["text"], "hi ana@example.com");
}

proptest::proptest! {
    /// However a text is cut into deltas, the restored stream equals the restored whole.
    #[test]
    fn any_split_of_a_stream_restores_like_the_whole(
        parts in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::strategy::Just("[EMAIL_1]".to_string()),
                proptest::strategy::Just("[EMAIL_2]".to_string()),
                proptest::strategy::Just("[".to_string()),
                proptest::strategy::Just("[EMAIL_".to_string()),
                "[a-zé ]{0,6}",
            ],
            0..12,
        ),
        cuts in proptest::collection::vec(0usize..200, 0..8),
    ) {
        let body = chat("ana@example.com and bob@example.org");
        let (_, r) = redact(detector(), &body, &["email".to_string()]);
        let whole: String = parts.concat();
        let mut bounds: Vec<usize> = cuts
            .into_iter()
            .map(|c| c.min(whole.len()))
            .filter(|c| whole.is_char_boundary(*c))
            .collect();
        bounds.push(0);
        bounds.push(whole.len());
        bounds.sort();
        bounds.dedup();
        let mut s = StreamRestorer::new(r.clone());
        let mut out = String::new();
        for w in bounds.windows(2) {
            let mut c = delta(&whole[w[0]..w[1]], None);
            s.apply(&mut c);
            out.push_str(c["choices"][0]["delta"]["content"].as_str().unwrap());
        }
        let mut fin = json!({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]});
        s.apply(&mut fin);
        out.push_str(fin["choices"][0]["delta"]["content"].as_str().unwrap_or(""));
        proptest::prop_assert_eq!(out, r.restore_text(&whole));
    }
}

/// Tool-call arguments are JSON inside a string: an original holding line breaks (a
/// private key block) or `"` goes back escaped, so the arguments stay valid JSON and
/// parse to the original (before, raw line breaks made them invalid: the Messages bridge
/// answered 502). Whole answers, chat stream deltas, and native Messages and Responses
/// deltas alike; plain text keeps the original as it is.
#[test]
fn originals_go_back_into_tool_call_arguments_escaped() {
    let key = "-----BEGIN PRIVATE KEY-----\nMIIEvQ\\x\"y\n-----END PRIVATE KEY-----";
    let original = key.to_string();
    let (_, r) = redact(
        detector(),
        &chat(&format!("use {original}")),
        &["secret".into()],
    );
    let placeholder = r.placeholders().next().unwrap().to_string();
    let args = format!("{{\"k\":\"{placeholder}\"}}");
    let parsed = |s: &Value| -> Value { serde_json::from_str(s.as_str().unwrap()).unwrap() };
    let want = json!({"k": original});
    // Whole answers: chat and Responses `arguments`, plain content unescaped.
    let mut v = json!({"choices":[{"message":{"content": placeholder.clone(),
        "tool_calls":[{"function":{"name":"f","arguments": args.clone()}}]}}],
        "output":[{"type":"function_call","name":"f","arguments": args.clone()}]});
    r.restore_json(&mut v);
    assert_eq!(
        parsed(&v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]),
        want
    );
    assert_eq!(parsed(&v["output"][0]["arguments"]), want);
    assert_eq!(v["choices"][0]["message"]["content"], original.as_str());
    // A chat stream, the placeholder split over two deltas.
    let mut s = StreamRestorer::new(r.clone());
    let (a, b) = args.split_at(args.len() - 5);
    let mut out = String::new();
    for (part, fin) in [(a, Value::Null), (b, json!("tool_calls"))] {
        let mut c = json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,
            "function":{"arguments": part}}]},"finish_reason": fin}]});
        s.apply(&mut c);
        out.push_str(
            c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap(),
        );
    }
    assert_eq!(parsed(&Value::from(out)), want);
    // Native deltas: Messages `partial_json`, Responses function-call arguments.
    use crate::policy::redact_native::NativeRestorer;
    let mut m = NativeRestorer::new(r.clone(), crate::api::native::Dialect::Messages);
    let ev = json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json": args.clone()}});
    let got = m.apply(&ev).unwrap();
    assert_eq!(parsed(&got[0]["delta"]["partial_json"]), want);
    let mut m = NativeRestorer::new(r.clone(), crate::api::native::Dialect::Responses);
    let ev = json!({"type":"response.function_call_arguments.delta","item_id":"fc_1","output_index":0,"delta": args.clone()});
    let got = m.apply(&ev).unwrap();
    assert_eq!(parsed(&got[0]["delta"]), want);
    let ev = json!({"type":"response.output_text.delta","item_id":"m_1","output_index":0,"content_index":0,"delta": placeholder});
    assert_eq!(m.apply(&ev).unwrap()[0]["delta"], original.as_str());
}

/// An original taken from JSON text (a tool call's `arguments` in the history, escaped
/// there) goes back into arguments as it was, not escaped twice, and into plain text as
/// the text it stands for.
#[test]
fn originals_from_arguments_are_not_escaped_twice() {
    let body = RequestBody::Chat(
        serde_json::from_value(json!({"model":"m","messages":[
            {"role":"user","content":"mail her"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
              "function":{"name":"send","arguments":"{\"to\":\"ana\\u0040example.com\"}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"sent"}]}))
        .unwrap(),
    );
    let (_, r) = redact(detector(), &body, &["email".to_string()]);
    let p = r.placeholders().next().unwrap().to_string();
    let mut v = json!({"choices":[{"message":{"content": format!("to {p}"),
        "tool_calls":[{"function":{"name":"send","arguments": format!("{{\"to\":\"{p}\"}}")}}]}}]});
    r.restore_json(&mut v);
    let args: Value = serde_json::from_str(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(args, json!({"to": "ana@example.com"}));
    assert_eq!(v["choices"][0]["message"]["content"], "to ana@example.com");
    // A tool's input object with a plain `arguments` property is plain text.
    let (_, r) = redact(
        detector(),
        &chat("say \"ana@example.com\""),
        &["email".to_string()],
    );
    let p = r.placeholders().next().unwrap().to_string();
    let mut input = json!({"type":"tool_use","input":{"arguments": format!("a \"{p}\"")}});
    r.restore_json(&mut input);
    assert_eq!(input["input"]["arguments"], "a \"ana@example.com\"");
}

#[test]
fn whole_responses_are_restored() {
    let body = chat("ana@example.com");
    let (_, r) = redact(detector(), &body, &["email".to_string()]);
    let mut v = json!({"choices":[{"message":{"content":"Hi [EMAIL_1]!"}}]});
    r.restore_json(&mut v);
    assert_eq!(v["choices"][0]["message"]["content"], "Hi ana@example.com!");
}

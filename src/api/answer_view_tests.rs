//! Tests of [`super`]: the borrowed view and the tree read answers alike.
use super::*;

/// Found by an attacker test: an answer whose `content` is an array of text parts was
/// logged and bridged as empty text.
#[test]
fn content_given_as_parts_is_read_as_their_text() {
    let v = serde_json::json!({"choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant",
        "content":[{"type":"text","text":"The answer "},{"type":"text","text":"is 42."}]}}]});
    assert_eq!(
        ChatAnswer::from_tree(&v).content.as_deref(),
        Some("The answer is 42.")
    );
    assert_eq!(
        crate::api::summary::ResponseSummary::from_response(&v).content,
        "The answer is 42."
    );
}
use proptest::prelude::*;
use serde_json::{Value, json};

/// A value of one of several shapes: the expected type most of the time, else another.
fn text_or_odd() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => "[a-z \"\\\\é\n]{0,8}".prop_map(Value::from),
        1 => Just(Value::Null),
        1 => any::<i64>().prop_map(Value::from),
        1 => Just(json!({"x": 1})),
        1 => Just(json!(["a"])),
    ]
}

fn maybe(obj: &mut serde_json::Map<String, Value>, key: &str, v: Option<Value>) {
    if let Some(v) = v {
        obj.insert(key.into(), v);
    }
}

fn answer() -> impl Strategy<Value = Value> {
    let tool = (
        proptest::option::of(text_or_odd()),
        proptest::option::of(text_or_odd()),
        proptest::option::of(text_or_odd()),
    )
        .prop_map(|(id, name, args)| {
            let mut f = serde_json::Map::new();
            maybe(&mut f, "name", name);
            maybe(&mut f, "arguments", args);
            let mut t = serde_json::Map::new();
            maybe(&mut t, "id", id);
            t.insert("type".into(), "function".into());
            t.insert("function".into(), Value::Object(f));
            Value::Object(t)
        });
    let reasoning = (
        proptest::option::of(text_or_odd()),
        proptest::option::of(text_or_odd()),
        proptest::option::of(text_or_odd()),
    )
        .prop_map(|(rc, r, refusal)| {
            [
                ("reasoning_content", rc),
                ("reasoning", r),
                ("refusal", refusal),
            ]
        });
    let choice = (
        (
            proptest::option::of(text_or_odd()),
            proptest::option::of(proptest::collection::vec(tool, 0..3)),
            reasoning,
        ),
        proptest::option::of(text_or_odd()),
        proptest::option::of(text_or_odd()),
        any::<bool>(),
    )
        .prop_map(|((content, tools, reasoning), text, finish, has_message)| {
            let mut m = serde_json::Map::new();
            m.insert("role".into(), "assistant".into());
            maybe(&mut m, "content", content);
            for (key, v) in reasoning {
                maybe(&mut m, key, v);
            }
            maybe(&mut m, "tool_calls", tools.map(Value::from));
            let mut c = serde_json::Map::new();
            c.insert("index".into(), 0.into());
            if has_message {
                c.insert("message".into(), Value::Object(m));
            }
            maybe(&mut c, "text", text);
            maybe(&mut c, "finish_reason", finish.clone());
            // vLLM's matched stop sequence, here the finish text again (or odd).
            maybe(&mut c, "stop_reason", finish);
            Value::Object(c)
        });
    let usage = prop_oneof![
        Just(json!({"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8})),
        Just(json!({"prompt_tokens": 3, "prompt_tokens_details": {"cached_tokens": 2}})),
        Just(
            json!({"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 20,
                    "completion_tokens_details": {"reasoning_tokens": 3},
                    "prompt_tokens_details": {"cached_tokens": 5, "audio_tokens": 0},
                    "cache_creation_input_tokens": 2})
        ),
        Just(json!({"prompt_tokens": null, "prompt_tokens_details": null})),
        Just(Value::Null),
        Just(json!(7)),
    ];
    (
        proptest::option::of(text_or_odd()),
        proptest::option::of(text_or_odd()),
        proptest::option::of(usage),
        proptest::collection::vec(choice, 0..3),
        any::<bool>(),
    )
        .prop_map(|(model, fp, usage, choices, extra)| {
            let mut a = serde_json::Map::new();
            a.insert("id".into(), "chatcmpl-1".into());
            a.insert("object".into(), "chat.completion".into());
            maybe(&mut a, "model", model);
            maybe(&mut a, "system_fingerprint", fp);
            maybe(&mut a, "usage", usage);
            a.insert("choices".into(), Value::from(choices));
            if extra {
                a.insert("service_tier".into(), json!({"deep": [1, "x", null]}));
            }
            Value::Object(a)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Where the view accepts an answer, it reads what the tree reading reads and gives
    /// the tree's summary; every well-typed answer is accepted.
    #[test]
    fn view_agrees_with_the_tree(v in answer()) {
        let bytes = serde_json::to_vec(&v).unwrap();
        let tree = ResponseSummary::from_response(&v);
        match summarize(&bytes) {
            Some(s) => prop_assert_eq!(s, tree),
            None => prop_assert!(!well_typed(&v), "refused a well-typed answer: {}", v),
        }
        if let Some(a) = ChatAnswer::parse(&bytes) {
            prop_assert_eq!(a, ChatAnswer::from_tree(&v));
        }
    }
}

/// Every field the view reads has its expected type (text or null; objects and arrays
/// where those belong).
fn well_typed(v: &Value) -> bool {
    let text = |x: Option<&Value>| x.is_none_or(|x| x.is_string() || x.is_null());
    let top = text(v.get("model")) && text(v.get("system_fingerprint"));
    let choices = v["choices"].as_array().into_iter().flatten().all(|c| {
        let m = &c["message"];
        text(c.get("text"))
            && text(c.get("finish_reason"))
            && text(c.get("stop_reason"))
            && text(m.get("content"))
            && text(m.get("reasoning_content"))
            && text(m.get("reasoning"))
            && text(m.get("refusal"))
            && m["tool_calls"].as_array().into_iter().flatten().all(|t| {
                text(t.get("id"))
                    && text(t["function"].get("name"))
                    && text(t["function"].get("arguments"))
            })
    });
    top && choices
}

/// Thinking text is the first non-empty string of `reasoning_content` and `reasoning`
/// (vLLM may send `reasoning_content: null` beside `reasoning`).
#[test]
fn reasoning_is_the_first_non_empty_of_its_two_names() {
    assert_eq!(
        reasoning(&json!({"reasoning_content": "a", "reasoning": "b"})),
        Some("a")
    );
    assert_eq!(
        reasoning(&json!({"reasoning_content": null, "reasoning": "b"})),
        Some("b")
    );
    assert_eq!(
        reasoning(&json!({"reasoning_content": "", "reasoning": "b"})),
        Some("b")
    );
    assert_eq!(reasoning(&json!({"reasoning_content": 5})), None);
    assert_eq!(reasoning(&json!({})), None);
}

#[test]
fn refuses_what_it_cannot_read_as_the_tree_does() {
    // A key given twice: the tree keeps the last one, the view refuses.
    assert!(summarize(br#"{"model":"a","model":"b","choices":[]}"#).is_none());
    // Not an answer with choices: an error object, an embeddings list, not an object.
    assert!(summarize(br#"{"error":{"message":"x"}}"#).is_none());
    assert!(summarize(br#"{"data":[{"embedding":[0.1]}]}"#).is_none());
    assert!(summarize(br#"[1]"#).is_none());
    assert!(summarize(br#"{"choices":[{"message":{"content":[{"type":"text"}]}}]}"#).is_none());
}

#[test]
fn reads_an_openai_answer() {
    let bytes = br#"{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi \"there\"","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}"#;
    let s = summarize(bytes).unwrap();
    assert_eq!(s.content, "Hi \"there\"");
    assert_eq!(s.model.as_deref(), Some("m"));
    assert_eq!(s.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(s.tool_calls[0].arguments, "{\"a\":1}");
    assert_eq!(s.usage.map(|u| u.prompt_tokens), Some(3));
    let tree: Value = serde_json::from_slice(bytes).unwrap();
    assert_eq!(s, ResponseSummary::from_response(&tree));
}

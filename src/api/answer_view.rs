//! A whole chat completion answer read through a borrowed, typed view, for its summary
//! only: the parts [`ResponseSummary::from_response`] reads (`model`, `system_fingerprint`,
//! `usage`, and choice 0's message content, tool calls, `text` and `finish_reason`). Text is
//! borrowed unless it has escapes; unknown fields are skipped, never stored.
//!
//! The view accepts only well-typed answers: a field of another type than expected, a key
//! given twice or a top level that is not an object makes [`summarize`] return `None`, and
//! the caller parses the tree as before. Where it accepts, it gives the tree's summary
//! (property-tested below).

use super::Usage;
use super::summary::{ResponseSummary, ToolCallSummary};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

#[derive(Deserialize)]
struct AnswerView<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    system_fingerprint: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
    #[serde(borrow, default)]
    choices: Option<Vec<ChoiceView<'a>>>,
}

#[derive(Deserialize)]
struct ChoiceView<'a> {
    #[serde(borrow, default)]
    message: Option<MessageView<'a>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct MessageView<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolCallView<'a>>>,
}

#[derive(Deserialize)]
struct ToolCallView<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    function: Option<FunctionView<'a>>,
}

#[derive(Deserialize)]
struct FunctionView<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arguments: Option<Cow<'a, str>>,
}

/// The summary of a chat completion answer with a `choices` array, read through the view.
///
/// `None` when the view refuses the bytes (see the module docs) or the answer has no
/// `choices` array (an error object, an embeddings list): the caller then parses the tree.
pub fn summarize(bytes: &[u8]) -> Option<ResponseSummary> {
    let view: AnswerView<'_> = serde_json::from_slice(bytes).ok()?;
    let choices = view.choices?;
    let mut s = ResponseSummary {
        model: view.model.map(Cow::into_owned),
        system_fingerprint: view.system_fingerprint.map(Cow::into_owned),
        ..ResponseSummary::default()
    };
    if let Some(raw) = view.usage.filter(|u| u.get().starts_with('{')) {
        let usage: serde_json::Value = serde_json::from_str(raw.get()).ok()?;
        s.usage = Some(Usage::from_openai(&usage));
    }
    let Some(c0) = choices.into_iter().next() else {
        return Some(s);
    };
    if let Some(msg) = c0.message {
        if let Some(t) = msg.content {
            s.content.push_str(&t);
        }
        for tc in msg.tool_calls.into_iter().flatten() {
            let (name, arguments) = match tc.function {
                Some(f) => (f.name, f.arguments),
                None => (None, None),
            };
            s.tool_calls.push(ToolCallSummary {
                id: tc.id.map(Cow::into_owned).unwrap_or_default(),
                name: name.map(Cow::into_owned).unwrap_or_default(),
                arguments: arguments.map(Cow::into_owned).unwrap_or_default(),
            });
        }
    }
    if let Some(t) = c0.text {
        s.content.push_str(&t);
    }
    s.finish_reason = c0.finish_reason.map(Cow::into_owned);
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let choice = (
            proptest::option::of(text_or_odd()),
            proptest::option::of(proptest::collection::vec(tool, 0..3)),
            proptest::option::of(text_or_odd()),
            proptest::option::of(text_or_odd()),
            any::<bool>(),
        )
            .prop_map(|(content, tools, text, finish, has_message)| {
                let mut m = serde_json::Map::new();
                m.insert("role".into(), "assistant".into());
                maybe(&mut m, "content", content);
                maybe(&mut m, "tool_calls", tools.map(Value::from));
                let mut c = serde_json::Map::new();
                c.insert("index".into(), 0.into());
                if has_message {
                    c.insert("message".into(), Value::Object(m));
                }
                maybe(&mut c, "text", text);
                maybe(&mut c, "finish_reason", finish);
                Value::Object(c)
            });
        let usage = prop_oneof![
            Just(json!({"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8})),
            Just(json!({"prompt_tokens": 3, "prompt_tokens_details": {"cached_tokens": 2}})),
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

        /// Where the view accepts an answer, it gives the tree's summary; every well-typed
        /// answer is accepted.
        #[test]
        fn view_agrees_with_the_tree(v in answer()) {
            let bytes = serde_json::to_vec(&v).unwrap();
            let tree = ResponseSummary::from_response(&v);
            match summarize(&bytes) {
                Some(s) => prop_assert_eq!(s, tree),
                None => prop_assert!(!well_typed(&v), "refused a well-typed answer: {}", v),
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
                && text(m.get("content"))
                && m["tool_calls"].as_array().into_iter().flatten().all(|t| {
                    text(t.get("id"))
                        && text(t["function"].get("name"))
                        && text(t["function"].get("arguments"))
                })
        });
        top && choices
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
}

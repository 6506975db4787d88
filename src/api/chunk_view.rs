//! A borrowed, typed read of one chat completion chunk: the few fields the gateway reads on
//! every chunk of a stream it forwards (whether `choices` is there, the first choice's text,
//! tool-call fragments and finish reason, `model`, `system_fingerprint`, whether `usage` is
//! set) and those the dialect translators add (`error`, reasoning text, `stop_reason`; see
//! [`crate::api::chat_delta`]), taken from the chunk's JSON text without building a JSON tree (no map per object, no
//! string per key, text borrowed unless it has escapes).
//!
//! The view is strict: a field of a type the gateway does not expect (a number where text
//! belongs, `choices` that is not a list, a key given twice) fails the parse, and the caller
//! reads the chunk as a `serde_json::Value` instead. So a view that parses always means what
//! the tree would: `ResponseSummary::add_view` and `ResponseSummary::add_chunk` agree on every
//! chunk both accept (property test in `summary`). Unknown fields are skipped (still checked
//! to be valid JSON).

use serde::Deserialize;
use serde::de::{Deserializer, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// The parts of a chunk object the gateway reads (see the module docs).
#[derive(Debug, Clone, Default, Deserialize, yoke::Yokeable)]
pub struct ChunkView<'a> {
    /// `model`.
    #[serde(borrow, default)]
    pub model: Option<Text<'a>>,
    /// `system_fingerprint`.
    #[serde(borrow, default)]
    pub system_fingerprint: Option<Text<'a>>,
    /// `usage` as its JSON text; `None` when absent or `null`.
    #[serde(borrow, default)]
    pub usage: Option<&'a RawValue>,
    /// `choices`; `None` when absent or `null`.
    #[serde(borrow, default)]
    pub choices: Option<Vec<ChoiceView<'a>>>,
    /// `error` as its JSON text; `None` when absent or `null`.
    #[serde(borrow, default)]
    pub error: Option<&'a RawValue>,
}

/// One element of `choices`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ChoiceView<'a> {
    /// `delta` (chat chunks).
    #[serde(borrow, default)]
    pub delta: Option<DeltaView<'a>>,
    /// `text` (text completion chunks).
    #[serde(borrow, default)]
    pub text: Option<Text<'a>>,
    /// `finish_reason`; `None` while the choice goes on.
    #[serde(borrow, default)]
    pub finish_reason: Option<Text<'a>>,
    /// `stop_reason` (vLLM, llama.cpp): the stop sequence that matched.
    #[serde(borrow, default)]
    pub stop_reason: Option<Text<'a>>,
}

/// A choice's `delta`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DeltaView<'a> {
    /// `content`.
    #[serde(borrow, default)]
    pub content: Option<Text<'a>>,
    /// `reasoning_content` (llama.cpp, DeepSeek): thinking text.
    #[serde(borrow, default)]
    pub reasoning_content: Option<Text<'a>>,
    /// `reasoning` (vLLM, OpenRouter): thinking text.
    #[serde(borrow, default)]
    pub reasoning: Option<Text<'a>>,
    /// `tool_calls` fragments.
    #[serde(borrow, default)]
    pub tool_calls: Option<Vec<ToolCallView<'a>>>,
}

/// One `tool_calls` fragment of a delta.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ToolCallView<'a> {
    /// `index`: which call this fragment belongs to.
    #[serde(default)]
    pub index: Option<u64>,
    /// `id` (on a call's first fragment).
    #[serde(borrow, default)]
    pub id: Option<Text<'a>>,
    /// `function`.
    #[serde(borrow, default)]
    pub function: Option<FunctionView<'a>>,
}

/// A fragment's `function`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FunctionView<'a> {
    /// `name` (on a call's first fragment).
    #[serde(borrow, default)]
    pub name: Option<Text<'a>>,
    /// A piece of `arguments` (JSON text, cut anywhere).
    #[serde(borrow, default)]
    pub arguments: Option<Text<'a>>,
}

/// A JSON string: borrowed from the chunk's text when it has no escapes, else decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Str;
        impl<'de> Visitor<'de> for Str {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(Str)
    }
}

impl<'a> ChunkView<'a> {
    /// Reads `text` (one chunk object); `None` when it is not JSON, not an object, or has a
    /// field the view does not accept (then read it as a JSON tree).
    pub fn parse(text: &'a [u8]) -> Option<Self> {
        if !is_object(text) {
            // serde reads a struct from a list too, by position.
            return None;
        }
        super::json::from_bytes(text).ok()
    }

    /// Whether `choices` is a non-empty list.
    pub fn has_choices(&self) -> bool {
        self.choices.as_ref().is_some_and(|c| !c.is_empty())
    }

    /// Whether any choice has a `finish_reason`.
    pub fn has_finish_reason(&self) -> bool {
        self.choices
            .iter()
            .flatten()
            .any(|c| c.finish_reason.is_some())
    }

    /// The first choice, if any.
    pub fn first_choice(&self) -> Option<&ChoiceView<'a>> {
        self.choices.as_ref()?.first()
    }

    /// `usage` when it is an object (what the summary reads).
    pub fn usage_object(&self) -> Option<serde_json::Value> {
        let raw = self.usage?;
        if !raw.get().starts_with('{') {
            return None;
        }
        serde_json::from_str(raw.get()).ok()
    }
}

/// Whether the JSON `text` is an object: its first byte after white space is `{`.
pub fn is_object(text: &[u8]) -> bool {
    text.trim_ascii_start().first() == Some(&b'{')
}

/// The fields of a stream's first chunk that its trailing usage chunk repeats.
pub const META_FIELDS: [&str; 5] = ["id", "object", "created", "model", "system_fingerprint"];

/// [`META_FIELDS`] of the chunk object `chunk`, each as it is there (`null` kept).
pub fn meta_of_tree(chunk: &serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    let mut meta = serde_json::Map::new();
    for k in META_FIELDS {
        if let Some(v) = chunk.get(k) {
            meta.insert(k.into(), v.clone());
        }
    }
    meta
}

/// The chunk fields the trailing usage chunk repeats, each as its JSON text (`null` kept).
#[derive(Deserialize)]
struct MetaView<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    object: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    created: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    model: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    system_fingerprint: Option<&'a RawValue>,
}

/// A field that is there, `null` included (`Option` alone would read `null` as absent).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue as Deserialize>::deserialize(d).map(Some)
}

/// [`META_FIELDS`] of the chunk `text`, the same map [`meta_of_tree`] reads from its tree;
/// `None` when the text is not one JSON object with each of them at most once.
pub fn meta_of_text(text: &[u8]) -> Option<serde_json::Map<String, serde_json::Value>> {
    if !is_object(text) {
        return None;
    }
    let m: MetaView<'_> = super::json::from_bytes(text).ok()?;
    let mut meta = serde_json::Map::new();
    let values = [m.id, m.object, m.created, m.model, m.system_fingerprint];
    for (k, v) in META_FIELDS.into_iter().zip(values) {
        if let Some(raw) = v {
            meta.insert(k.into(), serde_json::from_str(raw.get()).ok()?);
        }
    }
    Some(meta)
}

/// A chunk's JSON text (the SSE event's data) together with its view, which borrows it: the
/// view is parsed once where the chunk arrives and read again downstream without parsing.
/// `None` inside when the text is not a chunk the view accepts.
pub type ViewedChunk = yoke::Yoke<Option<ChunkView<'static>>, String>;

/// `text` with its view attached (see [`ViewedChunk`]).
pub fn viewed(text: String) -> ViewedChunk {
    yoke::Yoke::attach_to_cart(text, |t: &str| ChunkView::parse(t.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_and_borrows_plain_text() {
        let text = br#"{"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"hi","tool_calls":[{"index":1,"id":"t","function":{"name":"f","arguments":"{\"a\""}}]},"finish_reason":null}],"usage":null}"#;
        let v = ChunkView::parse(text).unwrap();
        assert_eq!(v.model.as_deref(), Some("m"));
        assert!(v.usage.is_none());
        assert!(v.has_choices());
        assert!(!v.has_finish_reason());
        let c0 = v.first_choice().unwrap();
        let d = c0.delta.as_ref().unwrap();
        assert!(matches!(d.content, Some(Text(Cow::Borrowed("hi")))));
        let tc = &d.tool_calls.as_ref().unwrap()[0];
        assert_eq!(tc.index, Some(1));
        let f = tc.function.as_ref().unwrap();
        assert_eq!(f.arguments.as_deref(), Some("{\"a\""));
    }

    /// Anything the JSON tree would read differently is refused, so the caller uses the tree.
    #[test]
    fn unexpected_shapes_are_refused() {
        for text in [
            r#"{"choices":{"0":{}}}"#,
            r#"{"choices":[{"delta":{"content":5}}]}"#,
            r#"{"choices":[{"delta":"x"}]}"#,
            r#"{"choices":[{"finish_reason":1}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":1.0}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":-1}]}}]}"#,
            r#"{"model":"a","model":"b","choices":[]}"#,
            r#"{"model":7,"choices":[]}"#,
            r#"[1]"#,
            r#"[null,null,null,null,null]"#,
            r#"{"choices":[]} x"#,
        ] {
            assert!(ChunkView::parse(text.as_bytes()).is_none(), "{text}");
        }
    }

    #[test]
    fn usage_is_read_only_as_an_object() {
        let v = ChunkView::parse(br#"{"choices":[],"usage":{"prompt_tokens":1}}"#).unwrap();
        assert_eq!(v.usage_object().unwrap()["prompt_tokens"], 1);
        let v = ChunkView::parse(br#"{"choices":[],"usage":7}"#).unwrap();
        assert!(v.usage.is_some() && v.usage_object().is_none());
    }

    /// The meta read from a chunk's text is what the tree gives, for every shape of those
    /// fields (absent, `null`, other types, escapes); a text the tree would read differently
    /// (a key twice, a list) gives none.
    #[test]
    fn the_meta_read_from_the_text_is_the_trees() {
        for text in [
            r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"fp","choices":[]}"#,
            r#"{"id":"c","object":"chat.completion.chunk","created":1733000000,"model":"m","system_fingerprint":null,"choices":[{"index":0,"delta":{"content":"x"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"x"}}],"model":"m\u00e9 \"q\""}"#,
            r#"{"id":7,"created":1.5,"model":{"a":[1,2]},"object":null,"extra":{"id":"nested"}}"#,
            r#"{}"#,
        ] {
            let tree = meta_of_tree(&serde_json::from_str(text).unwrap());
            assert_eq!(meta_of_text(text.as_bytes()), Some(tree), "{text}");
        }
        assert_eq!(
            meta_of_text(br#"{"model":"m\u00e9","system_fingerprint":null}"#),
            Some(
                serde_json::json!({"model": "m\u{e9}", "system_fingerprint": null})
                    .as_object()
                    .unwrap()
                    .clone()
            )
        );
        assert_eq!(meta_of_text(br#"{"id":"a","id":"b"}"#), None);
        assert_eq!(meta_of_text(b"[1]"), None);
        assert_eq!(meta_of_text(br#"["c","o",1,"m","fp"]"#), None);
    }
}

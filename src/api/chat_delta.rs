//! What the dialect translators (Messages, Responses) read of one chat completion chunk, from
//! either of its two forms: the borrowed view a usual chunk comes with
//! ([`crate::api::chunk_view`]), or the JSON tree of a chunk Sluice made or rewrote (or one
//! the view refused). Both give the same [`ChatDelta`] for the same chunk (property test
//! below), so a translator has one reading and never parses a chunk again.
//!
//! Reading rules (the tree's, which the view's strictness keeps): text fields count only when
//! they are strings; `usage` only when it is an object; `error` when present and not `null`;
//! a tool call's `index` is as sent (a missing one is resolved by the bridges'
//! `tool_order`, which tells calls apart by `id`); only the first choice is read (the bridges ask the
//! backend for one).

use super::chunk_view::{ChunkView, ToolCallView};
use serde_json::Value;

/// The parts of a chat chunk a translator reads (see the module docs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatDelta<'a> {
    /// `error`, when the chunk carries one (not `null`): the stream ends with it.
    pub error: Option<Value>,
    /// `usage`, when it is an object (the backend's real token counts).
    pub usage: Option<Value>,
    /// `model`.
    pub model: Option<&'a str>,
    /// The first element of `choices`, if any.
    pub choice: Option<ChoiceDelta<'a>>,
}

/// The first choice of a chunk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChoiceDelta<'a> {
    /// `delta.reasoning_content`, else `delta.reasoning` (the first that is a non-empty
    /// string): llama.cpp and vLLM's names for thinking text.
    pub reasoning: Option<&'a str>,
    /// `delta.content`.
    pub content: Option<&'a str>,
    /// `delta.tool_calls`, in order.
    pub tool_calls: Vec<ToolCallDelta<'a>>,
    /// `finish_reason`.
    pub finish_reason: Option<&'a str>,
    /// `stop_reason` (vLLM and llama.cpp: the stop sequence that matched), when a string.
    pub stop_reason: Option<&'a str>,
}

/// One `delta.tool_calls` fragment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolCallDelta<'a> {
    /// `index`, when sent.
    pub index: Option<u64>,
    /// `id` (on a call's first fragment).
    pub id: Option<&'a str>,
    /// `function.name` (on a call's first fragment).
    pub name: Option<&'a str>,
    /// A piece of `function.arguments`.
    pub arguments: Option<&'a str>,
}

impl<'a> ChatDelta<'a> {
    /// From a chunk's view.
    pub fn from_view(v: &'a ChunkView<'_>) -> Self {
        ChatDelta {
            error: v
                .error
                .and_then(|raw| serde_json::from_str(raw.get()).ok())
                .filter(|e: &Value| !e.is_null()),
            usage: v.usage_object(),
            model: v.model.as_deref(),
            choice: v.first_choice().map(|c| {
                let delta = c.delta.as_ref();
                ChoiceDelta {
                    reasoning: delta.and_then(|d| {
                        first_text([d.reasoning_content.as_deref(), d.reasoning.as_deref()])
                    }),
                    content: delta.and_then(|d| d.content.as_deref()),
                    tool_calls: delta
                        .and_then(|d| d.tool_calls.as_ref())
                        .map(|calls| calls.iter().map(tool_from_view).collect())
                        .unwrap_or_default(),
                    finish_reason: c.finish_reason.as_deref(),
                    stop_reason: c.stop_reason.as_deref(),
                }
            }),
        }
    }

    /// From a chunk's JSON tree (anything: fields of other types count as absent).
    pub fn from_tree(v: &'a Value) -> Self {
        let text = |v: &'a Value, key: &str| v.get(key).and_then(Value::as_str);
        ChatDelta {
            error: v.get("error").filter(|e| !e.is_null()).cloned(),
            usage: v.get("usage").filter(|u| u.is_object()).cloned(),
            model: text(v, "model"),
            choice: v.pointer("/choices/0").map(|c| {
                let delta = c.get("delta").unwrap_or(&Value::Null);
                ChoiceDelta {
                    reasoning: first_text([
                        text(delta, "reasoning_content"),
                        text(delta, "reasoning"),
                    ]),
                    content: text(delta, "content"),
                    tool_calls: delta
                        .get("tool_calls")
                        .and_then(Value::as_array)
                        .map(|calls| calls.iter().map(tool_from_tree).collect())
                        .unwrap_or_default(),
                    finish_reason: text(c, "finish_reason"),
                    stop_reason: text(c, "stop_reason"),
                }
            }),
        }
    }
}

fn first_text<const N: usize>(candidates: [Option<&str>; N]) -> Option<&str> {
    candidates.into_iter().flatten().find(|t| !t.is_empty())
}

fn tool_from_view<'a>(t: &'a ToolCallView<'_>) -> ToolCallDelta<'a> {
    let f = t.function.as_ref();
    ToolCallDelta {
        index: t.index,
        id: t.id.as_deref(),
        name: f.and_then(|f| f.name.as_deref()),
        arguments: f.and_then(|f| f.arguments.as_deref()),
    }
}

fn tool_from_tree(t: &Value) -> ToolCallDelta<'_> {
    let f = |key: &str| t.get("function")?.get(key)?.as_str();
    ToolCallDelta {
        index: t.get("index").and_then(Value::as_u64),
        id: t.get("id").and_then(Value::as_str),
        name: f("name"),
        arguments: f("arguments"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn reads_every_part() {
        let v = json!({
            "model": "m",
            "usage": {"prompt_tokens": 3},
            "choices": [{
                "delta": {"reasoning": "think", "content": "hi",
                          "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{"}}]},
                "finish_reason": "stop", "stop_reason": "END"
            }, {"delta": {"content": "second choice"}}]
        });
        let d = ChatDelta::from_tree(&v);
        let c = d.choice.clone().unwrap();
        assert_eq!(d.model, Some("m"));
        assert_eq!(d.usage, Some(json!({"prompt_tokens": 3})));
        assert_eq!(c.reasoning, Some("think"));
        assert_eq!(c.content, Some("hi"));
        assert_eq!(
            c.tool_calls,
            vec![ToolCallDelta {
                index: None,
                id: Some("t"),
                name: Some("f"),
                arguments: Some("{")
            }]
        );
        assert_eq!(
            (c.finish_reason, c.stop_reason),
            (Some("stop"), Some("END"))
        );
        let text = v.to_string();
        let view = ChunkView::parse(text.as_bytes()).unwrap();
        assert_eq!(ChatDelta::from_view(&view), d);
    }

    /// `error: null` is no error; `reasoning_content: null` (or empty) falls to `reasoning`.
    #[test]
    fn null_error_and_empty_reasoning_content_are_absent() {
        let v = json!({"error": null, "choices": [{"delta": {"reasoning_content": null, "reasoning": "r"}}]});
        let d = ChatDelta::from_tree(&v);
        assert_eq!(d.error, None);
        assert_eq!(d.choice.unwrap().reasoning, Some("r"));
        let v = json!({"choices": [{"delta": {"reasoning_content": "", "reasoning": "r"}}]});
        assert_eq!(
            ChatDelta::from_tree(&v).choice.unwrap().reasoning,
            Some("r")
        );
    }

    /// A text field: strings and `null`, plus (when `odd`) values of other types.
    fn maybe_text(odd: bool) -> BoxedStrategy<Value> {
        let text = prop_oneof![
            Just(Value::Null),
            Just(json!("")),
            "[a-z\"\\\\é]{0,6}".prop_map(Value::from),
        ];
        if odd {
            prop_oneof![4 => text, 1 => Just(json!(5)), 1 => Just(json!({"x": 1}))].boxed()
        } else {
            text.boxed()
        }
    }

    fn chunk(odd: bool) -> impl Strategy<Value = Value> {
        let index = if odd {
            prop_oneof![
                Just(Value::Null),
                Just(json!(1)),
                Just(json!(-1)),
                Just(json!(2.5))
            ]
            .boxed()
        } else {
            prop_oneof![Just(Value::Null), Just(json!(1))].boxed()
        };
        let tool = (index, maybe_text(odd), maybe_text(odd), maybe_text(odd)).prop_map(
            |(index, id, name, arguments)| {
                json!({"index": index, "id": id, "function": {"name": name, "arguments": arguments}})
            },
        );
        let choice = (
            maybe_text(odd),
            maybe_text(odd),
            maybe_text(odd),
            proptest::collection::vec(tool, 0..3),
            maybe_text(odd),
            maybe_text(odd),
        )
            .prop_map(|(rc, r, content, tools, finish, stop)| {
                json!({"delta": {"reasoning_content": rc, "reasoning": r, "content": content,
                                 "tool_calls": tools},
                       "finish_reason": finish, "stop_reason": stop})
            });
        (
            maybe_text(odd),
            prop_oneof![Just(Value::Null), Just(json!({"prompt_tokens": 1})), Just(json!(7))],
            prop_oneof![Just(Value::Null), Just(json!({"message": "m"})), Just(json!("e"))],
            proptest::collection::vec(choice, 0..2),
        )
            .prop_map(|(model, usage, error, choices)| {
                json!({"model": model, "usage": usage, "error": error, "choices": choices})
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// The view accepts every well-typed chunk and reads it as the tree does.
        #[test]
        fn view_and_tree_agree(v in chunk(false)) {
            let text = v.to_string();
            let view = ChunkView::parse(text.as_bytes());
            prop_assert!(view.is_some(), "refused {}", text);
            if let Some(view) = view {
                prop_assert_eq!(ChatDelta::from_view(&view), ChatDelta::from_tree(&v));
            }
        }

        /// Whenever the view accepts an odd chunk (fields of other types), it still reads it
        /// as the tree does; otherwise the tree is read.
        #[test]
        fn view_and_tree_agree_on_odd_chunks(v in chunk(true)) {
            let text = v.to_string();
            if let Some(view) = ChunkView::parse(text.as_bytes()) {
                prop_assert_eq!(ChatDelta::from_view(&view), ChatDelta::from_tree(&v));
            }
        }
    }
}

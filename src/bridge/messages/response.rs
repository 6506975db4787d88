//! Chat completion (JSON) → Messages answer.
//!
//! Blocks in Anthropic's order: `thinking` (from `reasoning_content`, or `reasoning` as vLLM
//! and Ollama name it; signature empty), `text` (left out when empty and there are tool
//! calls), `tool_use` (arguments parsed; an empty text is `{}`). `stop_reason`: see
//! [`stop_reason`]. Usage: `input_tokens` = `prompt_tokens` − cached tokens
//! (`prompt_tokens_details.cached_tokens`, reported as `cache_read_input_tokens`: Anthropic's
//! `input_tokens` leaves cache reads out), `output_tokens` = `completion_tokens`.

use crate::api::ApiError;
use crate::api::answer_view::{ChatAnswer, ChatUsage};
use crate::api::messages::{MessagesResponse, MessagesUsage, ResponseBlock};
use serde_json::{Map, Value};

/// Anthropic's `stop_reason` (and `stop_sequence`) for a chat choice.
///
/// `length` → `max_tokens`; `tool_calls` / `function_call`, or any finish with tool calls →
/// `tool_use`; `content_filter` → `refusal`; `stop` → `stop_sequence` with the sequence when
/// the backend says which one matched (vLLM's `stop_reason` string, when it is one of
/// `stop_sequences`), else `end_turn`; anything else → `end_turn`.
pub fn stop_reason(
    finish_reason: Option<&str>,
    matched: Option<&str>,
    has_tool_calls: bool,
    stop_sequences: &[String],
) -> (String, Option<String>) {
    let reason = match finish_reason {
        _ if has_tool_calls => "tool_use",
        Some("length") => "max_tokens",
        Some("tool_calls") | Some("function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => match matched.filter(|m| stop_sequences.iter().any(|s| s == m)) {
            Some(seq) => return ("stop_sequence".into(), Some(seq.to_string())),
            None => "end_turn",
        },
    };
    (reason.to_string(), None)
}

/// Anthropic usage from a chat `usage` object (absent → zeros).
pub fn usage(u: Option<&Value>) -> MessagesUsage {
    messages_usage(&u.map(ChatUsage::from_tree).unwrap_or_default())
}

/// Anthropic usage from chat usage counts: cached tokens (capped at the prompt) are
/// `cache_read_input_tokens` and left out of `input_tokens`.
pub fn messages_usage(u: &ChatUsage) -> MessagesUsage {
    let cached = u.cached_tokens.min(u.prompt_tokens);
    MessagesUsage {
        input_tokens: u.prompt_tokens - cached,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: cached,
        output_tokens: u.completion_tokens,
    }
}

/// A tool call's `arguments` text as an object (`""` → `{}`).
///
/// Errors: the text when it is not a JSON object.
pub fn tool_input(arguments: &str) -> Result<Value, String> {
    if arguments.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(arguments.to_string()),
    }
}

/// A chat completion (a parsed answer of any shape) → a Messages answer; see
/// [`from_answer`].
pub fn from_chat(
    chat: &Value,
    model: &str,
    stop_sequences: &[String],
) -> Result<MessagesResponse, ApiError> {
    from_answer(&ChatAnswer::from_tree(chat), model, stop_sequences)
}

/// A chat completion (read through [`crate::api::answer_view`] or from a tree) → a Messages
/// answer with id `msg_<chat id>`; `model` is used when the chat answer names none.
///
/// Errors: 502 when the answer has no choice, or a tool call's arguments are not a JSON
/// object (Anthropic's `input` must be one).
pub fn from_answer(
    chat: &ChatAnswer<'_>,
    model: &str,
    stop_sequences: &[String],
) -> Result<MessagesResponse, ApiError> {
    if !chat.has_choice {
        return Err(bad_answer("the answer has no choices"));
    }
    let mut content = Vec::new();
    if let Some(t) = &chat.reasoning {
        content.push(ResponseBlock::Thinking {
            thinking: t.to_string(),
            signature: String::new(),
        });
    }
    let calls = &chat.tool_calls;
    // A refusal is the answer's text when there is no other (it was an empty text block).
    let text = chat
        .content
        .as_deref()
        .filter(|t| !t.is_empty())
        .or(chat.refusal.as_deref())
        .unwrap_or("");
    if !text.is_empty() || calls.is_empty() {
        content.push(ResponseBlock::Text {
            text: text.to_string(),
        });
    }
    for (i, c) in calls.iter().enumerate() {
        let input = tool_input(&c.arguments).map_err(|raw| {
            bad_answer(&format!(
                "the arguments of tool call `{}` are not a JSON object: {raw}",
                c.name
            ))
        })?;
        content.push(ResponseBlock::ToolUse {
            id: c
                .id
                .as_deref()
                .map_or_else(|| format!("toolu_{i}"), str::to_string),
            name: c.name.to_string(),
            input,
        });
    }
    let (stop_reason, stop_sequence) = stop_reason(
        chat.finish_reason.as_deref(),
        chat.stop_reason.as_deref(),
        !calls.is_empty(),
        stop_sequences,
    );
    Ok(MessagesResponse {
        id: message_id(chat.id.as_deref().unwrap_or("")),
        kind: "message".into(),
        role: "assistant".into(),
        model: chat.model.as_deref().unwrap_or(model).to_string(),
        content,
        stop_reason: Some(stop_reason),
        stop_sequence,
        usage: messages_usage(&chat.usage.unwrap_or_default()),
    })
}

/// `msg_<id>` for a chat id (`chatcmpl-` prefix left out).
pub fn message_id(chat_id: &str) -> String {
    format!(
        "msg_{}",
        chat_id.strip_prefix("chatcmpl-").unwrap_or(chat_id)
    )
}

/// Whether [`from_answer`] can give the answer `s` summarizes as a Messages answer: it has a
/// choice, and each tool call's arguments are a JSON object (or empty). The gateway asks,
/// from the summary it already has, before it records the request, so the row and the
/// client's answer agree.
///
/// Errors: 502 `upstream_error` naming what cannot be given.
pub fn check(s: &crate::api::summary::ResponseSummary) -> Result<(), ApiError> {
    if !s.answered {
        return Err(bad_answer("the answer has no choices"));
    }
    for c in &s.tool_calls {
        tool_input(&c.arguments).map_err(|raw| {
            bad_answer(&format!(
                "the arguments of tool call `{}` are not a JSON object: {raw}",
                c.name
            ))
        })?;
    }
    Ok(())
}

fn bad_answer(detail: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::BAD_GATEWAY,
        "server_error",
        format!("the backend's answer cannot be given as a Messages answer: {detail}"),
    )
    .with_code("upstream_error")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chat(message: Value, finish: &str, usage: Value) -> Value {
        json!({"id":"chatcmpl-abc","object":"chat.completion","created":1,"model":"gemma-3-270m",
               "choices":[{"index":0,"message":message,"finish_reason":finish}],"usage":usage})
    }

    #[test]
    fn text_thinking_and_cached_usage() {
        let c = chat(
            json!({"role":"assistant","content":"Hello.","reasoning_content":"Greet."}),
            "stop",
            json!({"prompt_tokens":30,"completion_tokens":4,"total_tokens":34,"prompt_tokens_details":{"cached_tokens":20}}),
        );
        let m = serde_json::to_value(from_chat(&c, "claude", &[]).unwrap()).unwrap();
        assert_eq!(
            m,
            json!({"id":"msg_abc","type":"message","role":"assistant","model":"gemma-3-270m",
                "content":[{"type":"thinking","thinking":"Greet.","signature":""},{"type":"text","text":"Hello."}],
                "stop_reason":"end_turn","stop_sequence":null,
                "usage":{"input_tokens":10,"cache_creation_input_tokens":0,"cache_read_input_tokens":20,"output_tokens":4}})
        );
    }

    #[test]
    fn tool_calls_parse_and_empty_arguments_are_an_object() {
        let c = chat(
            json!({"role":"assistant","content":null,"tool_calls":[
                {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
                {"id":"call_2","type":"function","function":{"name":"get_time","arguments":""}}]}),
            "tool_calls",
            json!({"prompt_tokens":9,"completion_tokens":7,"total_tokens":16}),
        );
        let m = from_chat(&c, "claude", &[]).unwrap();
        assert_eq!(
            serde_json::to_value(&m.content).unwrap(),
            json!([{"type":"tool_use","id":"call_1","name":"get_weather","input":{"city":"Paris"}},
                   {"type":"tool_use","id":"call_2","name":"get_time","input":{}}])
        );
        assert_eq!(m.stop_reason.as_deref(), Some("tool_use"));
        let bad = chat(
            json!({"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f","arguments":"[1"}}]}),
            "tool_calls",
            Value::Null,
        );
        let e = from_chat(&bad, "claude", &[]).unwrap_err();
        assert_eq!(e.status.as_u16(), 502);
        assert!(
            e.body.message.contains("tool call `f`"),
            "{}",
            e.body.message
        );
    }

    /// An answer without a choice is a 502 in Anthropic's words, read as a tree or through
    /// the view.
    #[test]
    fn an_answer_without_a_choice_is_a_bad_gateway() {
        let bytes = br#"{"id":"chatcmpl-x","object":"chat.completion","model":"m","choices":[]}"#;
        let tree: Value = serde_json::from_slice(bytes).unwrap();
        let view = ChatAnswer::parse(bytes).unwrap();
        for e in [
            from_chat(&tree, "claude", &[]).unwrap_err(),
            from_answer(&view, "claude", &[]).unwrap_err(),
        ] {
            assert_eq!(e.status.as_u16(), 502);
            assert_eq!(
                e.body.message,
                "the backend's answer cannot be given as a Messages answer: the answer has no choices"
            );
        }
    }

    #[test]
    fn stop_reasons() {
        let seqs = vec!["END".to_string()];
        let cases = [
            (Some("stop"), None, false, ("end_turn", None)),
            (Some("length"), None, false, ("max_tokens", None)),
            (Some("tool_calls"), None, false, ("tool_use", None)),
            (Some("stop"), None, true, ("tool_use", None)),
            (Some("content_filter"), None, false, ("refusal", None)),
            (
                Some("stop"),
                Some("END"),
                false,
                ("stop_sequence", Some("END")),
            ),
            (Some("stop"), Some("OTHER"), false, ("end_turn", None)),
            (None, None, false, ("end_turn", None)),
        ];
        for (finish, matched, tools, (reason, seq)) in cases {
            assert_eq!(
                stop_reason(finish, matched, tools, &seqs),
                (reason.to_string(), seq.map(str::to_string)),
                "{finish:?} {matched:?}"
            );
        }
    }
}

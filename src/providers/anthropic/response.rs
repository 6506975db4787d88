//! Anthropic Messages answers → OpenAI `chat.completion`
//! (<https://docs.anthropic.com/en/api/messages>).
//!
//! Text blocks are joined into `message.content` (`null` when there is none but tool calls),
//! `tool_use` blocks become `tool_calls` (`input` as a compact JSON text), `thinking` blocks
//! `reasoning_content`. `stop_reason` → `finish_reason`: `end_turn`, `stop_sequence`,
//! `pause_turn` → `stop`; `max_tokens` → `length`; `tool_use` → `tool_calls`; `refusal` →
//! `content_filter`. Usage: `prompt_tokens` = `input_tokens` + cache creation + cache read
//! tokens (OpenAI counts cached tokens as prompt tokens), `completion_tokens` =
//! `output_tokens`, `prompt_tokens_details.cached_tokens` = cache read tokens,
//! `cache_creation_input_tokens` = cache write tokens (when not 0; LiteLLM's name), so the
//! cost can price each part (see [`crate::policy::DeploymentAttrs::cost_of`]).

use crate::api::ApiError;
use crate::api::error::ErrorBody;
use crate::providers::upstream::compact;
use axum::http::StatusCode;
use serde_json::{Map, Value, json};

/// The OpenAI `finish_reason` for an Anthropic `stop_reason`.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// Token counts gathered from `message_start` / `message_delta` or a whole message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// `input_tokens`.
    pub input: u64,
    /// `cache_creation_input_tokens`.
    pub cache_creation: u64,
    /// `cache_read_input_tokens`.
    pub cache_read: u64,
    /// `output_tokens`.
    pub output: u64,
}

impl Tokens {
    /// Overwrites the counts present in an Anthropic `usage` object (later events carry
    /// cumulative counts).
    pub fn update(&mut self, usage: &Value) {
        let get = |k: &str| usage.get(k).and_then(Value::as_u64);
        if let Some(n) = get("input_tokens") {
            self.input = n;
        }
        if let Some(n) = get("cache_creation_input_tokens") {
            self.cache_creation = n;
        }
        if let Some(n) = get("cache_read_input_tokens") {
            self.cache_read = n;
        }
        if let Some(n) = get("output_tokens") {
            self.output = n;
        }
    }

    /// OpenAI's `usage` object.
    pub fn to_openai(self) -> Value {
        let prompt = self.input + self.cache_creation + self.cache_read;
        let mut u = json!({"prompt_tokens": prompt, "completion_tokens": self.output,
                           "total_tokens": prompt + self.output});
        if self.cache_read > 0 {
            u["prompt_tokens_details"] = json!({"cached_tokens": self.cache_read});
        }
        if self.cache_creation > 0 {
            u["cache_creation_input_tokens"] = json!(self.cache_creation);
        }
        u
    }
}

/// A whole Anthropic message → `chat.completion` (created at `created`, seconds).
pub fn chat_completion(v: &Value, created: u64, model: &str) -> Value {
    let mut text = String::new();
    let mut thinking = String::new();
    let mut calls = Vec::new();
    for b in v
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("thinking") => {
                thinking.push_str(b.get("thinking").and_then(Value::as_str).unwrap_or(""))
            }
            Some("tool_use") => calls.push(json!({
                "id": b.get("id").cloned().unwrap_or(Value::from("")),
                "type": "function",
                "function": {"name": b.get("name").cloned().unwrap_or(Value::from("")),
                             "arguments": compact(b.get("input").unwrap_or(&Value::Null))},
            })),
            _ => {}
        }
    }
    let mut message = Map::new();
    message.insert("role".into(), Value::from("assistant"));
    message.insert(
        "content".into(),
        if text.is_empty() && !calls.is_empty() {
            Value::Null
        } else {
            Value::from(text)
        },
    );
    if !thinking.is_empty() {
        message.insert("reasoning_content".into(), Value::from(thinking));
    }
    if !calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    let mut tokens = Tokens::default();
    if let Some(u) = v.get("usage") {
        tokens.update(u);
    }
    json!({
        "id": v.get("id").and_then(Value::as_str).unwrap_or("msg"),
        "object": "chat.completion", "created": created,
        "model": v.get("model").and_then(Value::as_str).unwrap_or(model),
        "choices": [{"index": 0, "message": message, "logprobs": null,
                     "finish_reason": finish_reason(v.get("stop_reason").and_then(Value::as_str))}],
        "usage": tokens.to_openai(),
    })
}

/// An Anthropic error object (`{"type": "overloaded_error", "message": …}`, as in `error`
/// stream events) → the client's error: 4xx types keep their status and type; `api_error`
/// and `overloaded_error` become 502 `server_error` with the Anthropic type as `code`.
pub fn error(deployment: &str, err: &Value) -> ApiError {
    let kind = err
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("api_error");
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("upstream error")
        .to_string();
    let status = match kind {
        "invalid_request_error" => StatusCode::BAD_REQUEST,
        "authentication_error" => StatusCode::UNAUTHORIZED,
        "permission_error" => StatusCode::FORBIDDEN,
        "not_found_error" => StatusCode::NOT_FOUND,
        "request_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "rate_limit_error" => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::BAD_GATEWAY,
    };
    if status == StatusCode::BAD_GATEWAY {
        return ApiError {
            status,
            body: ErrorBody {
                message: format!("deployment `{deployment}`: {message}"),
                kind: "server_error".into(),
                param: None,
                code: Some(Value::from(kind)),
            },
            retry_after_s: None,
        };
    }
    ApiError::new(status, kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reasons() {
        let cases = [
            (Some("end_turn"), "stop"),
            (Some("stop_sequence"), "stop"),
            (Some("max_tokens"), "length"),
            (Some("tool_use"), "tool_calls"),
            (Some("refusal"), "content_filter"),
            (None, "stop"),
        ];
        for (r, want) in cases {
            assert_eq!(finish_reason(r), want);
        }
    }

    #[test]
    fn message_with_text_and_tool_use() {
        let v = json!({"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
            "content":[{"type":"text","text":"Checking both."},
                       {"type":"tool_use","id":"toolu_A","name":"get_weather","input":{"city":"Paris"}},
                       {"type":"tool_use","id":"toolu_B","name":"get_weather","input":{"city":"Tokyo"}}],
            "stop_reason":"tool_use","stop_sequence":null,
            "usage":{"input_tokens":50,"cache_creation_input_tokens":0,"cache_read_input_tokens":10,"output_tokens":60}});
        let out = chat_completion(&v, 9, "m");
        assert_eq!(out["id"], "msg_01");
        assert_eq!(out["model"], "claude-sonnet-4-5-20250929");
        let m = &out["choices"][0]["message"];
        assert_eq!(m["content"], "Checking both.");
        assert_eq!(
            m["tool_calls"][1],
            json!({"id":"toolu_B","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Tokyo\"}"}})
        );
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens":60,"completion_tokens":60,"total_tokens":120,"prompt_tokens_details":{"cached_tokens":10}})
        );
    }

    #[test]
    fn errors() {
        let e = error(
            "c",
            &json!({"type":"overloaded_error","message":"Overloaded"}),
        );
        assert_eq!(e.status.as_u16(), 502);
        assert_eq!(e.body.message, "deployment `c`: Overloaded");
        assert_eq!(e.body.code, Some(Value::from("overloaded_error")));
        let e = error(
            "c",
            &json!({"type":"rate_limit_error","message":"slow down"}),
        );
        assert_eq!(e.status.as_u16(), 429);
        assert_eq!(e.body.kind, "rate_limit_error");
    }
}

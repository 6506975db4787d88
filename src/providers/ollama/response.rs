//! Ollama native answers → OpenAI responses: `/api/chat` → `chat.completion`,
//! `/api/generate` → `text_completion`, `/api/embed` → the embeddings list.
//!
//! `done_reason` → `finish_reason`: `length` stays `length` (even when tool calls were cut);
//! otherwise any tool call gives `tool_calls`, else `stop`. Tool-call `arguments` objects
//! become compact JSON texts; calls without an id get `call_<24 hex>`. Usage:
//! `prompt_eval_count` → `prompt_tokens`, `eval_count` → `completion_tokens`.

use crate::providers::upstream::{compact, synth_call_id};
use base64::Engine;
use serde_json::{Map, Value, json};

/// The OpenAI `finish_reason` for Ollama's `done_reason`.
pub fn finish_reason(done_reason: Option<&str>, had_tool_calls: bool) -> &'static str {
    match done_reason {
        Some("length") => "length",
        _ if had_tool_calls => "tool_calls",
        _ => "stop",
    }
}

/// `usage` from the final object's counters (0 when missing).
pub fn usage(v: &Value) -> Value {
    let p = v
        .get("prompt_eval_count")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let c = v.get("eval_count").and_then(Value::as_u64).unwrap_or(0);
    json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c})
}

/// OpenAI tool calls (with `index` when `first_index` is given, as stream deltas need) from an
/// Ollama message's `tool_calls`.
pub fn tool_calls(message: &Value, first_index: Option<usize>) -> Vec<Value> {
    let calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    calls
        .iter()
        .enumerate()
        .map(|(k, tc)| {
            let id = tc
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .unwrap_or_else(synth_call_id);
            let f = tc.get("function").cloned().unwrap_or(Value::Null);
            let mut o = Map::new();
            if let Some(first) = first_index {
                o.insert("index".into(), Value::from(first + k));
            }
            o.insert("id".into(), Value::from(id));
            o.insert("type".into(), Value::from("function"));
            o.insert(
                "function".into(),
                json!({
                    "name": f.get("name").and_then(Value::as_str).unwrap_or(""),
                    "arguments": compact(f.get("arguments").unwrap_or(&Value::Null)),
                }),
            );
            Value::Object(o)
        })
        .collect()
}

/// Ollama's `logprobs` list as OpenAI's `{"content": […]}`, when present.
pub fn logprobs(v: &Value) -> Value {
    match v.get("logprobs").and_then(Value::as_array) {
        Some(list) => json!({"content": list.iter().map(token_logprob).collect::<Vec<_>>()}),
        None => Value::Null,
    }
}

fn token_logprob(t: &Value) -> Value {
    let top: Vec<Value> = t
        .get("top_logprobs")
        .and_then(Value::as_array)
        .map(|l| l.iter().map(token_only).collect())
        .unwrap_or_default();
    let mut o = token_only(t);
    if let Value::Object(m) = &mut o {
        m.insert("top_logprobs".into(), Value::Array(top));
    }
    o
}

fn token_only(t: &Value) -> Value {
    json!({
        "token": t.get("token").cloned().unwrap_or(Value::from("")),
        "logprob": t.get("logprob").cloned().unwrap_or(Value::from(0.0)),
        "bytes": t.get("bytes").cloned().unwrap_or(Value::Null),
    })
}

/// `/api/chat` final object → `chat.completion`.
pub fn chat_completion(v: &Value, id: &str, created: u64, model: &str) -> Value {
    let msg = v.get("message").cloned().unwrap_or(Value::Null);
    let calls = tool_calls(&msg, None);
    let text = msg.get("content").and_then(Value::as_str).unwrap_or("");
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
    if let Some(t) = msg
        .get("thinking")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        message.insert("reasoning_content".into(), Value::from(t));
    }
    let finish = finish_reason(
        v.get("done_reason").and_then(Value::as_str),
        !calls.is_empty(),
    );
    if !calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    json!({
        "id": id, "object": "chat.completion", "created": created,
        "model": v.get("model").and_then(Value::as_str).unwrap_or(model),
        "choices": [{"index": 0, "message": message, "logprobs": logprobs(v), "finish_reason": finish}],
        "usage": usage(v),
    })
}

/// `/api/generate` final object → `text_completion`.
pub fn text_completion(v: &Value, id: &str, created: u64, model: &str) -> Value {
    let finish = finish_reason(v.get("done_reason").and_then(Value::as_str), false);
    json!({
        "id": id, "object": "text_completion", "created": created,
        "model": v.get("model").and_then(Value::as_str).unwrap_or(model),
        "choices": [{"index": 0, "text": v.get("response").and_then(Value::as_str).unwrap_or(""),
                     "logprobs": null, "finish_reason": finish}],
        "usage": usage(v),
    })
}

/// `/api/embed` answer → OpenAI's embeddings list; `base64` packs each vector as
/// little-endian `f32`s (what `encoding_format: "base64"` means in OpenAI's API).
pub fn embeddings(v: &Value, model: &str, base64: bool) -> Value {
    let vectors = v
        .get("embeddings")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let embedding = if base64 {
                let mut bytes = Vec::new();
                for x in e.as_array().map(Vec::as_slice).unwrap_or(&[]) {
                    bytes.extend_from_slice(&(x.as_f64().unwrap_or(0.0) as f32).to_le_bytes());
                }
                Value::from(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                e.clone()
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let p = v
        .get("prompt_eval_count")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    json!({
        "object": "list", "data": data,
        "model": v.get("model").and_then(Value::as_str).unwrap_or(model),
        "usage": {"prompt_tokens": p, "total_tokens": p},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_reasons() {
        assert_eq!(finish_reason(Some("stop"), false), "stop");
        assert_eq!(finish_reason(Some("length"), false), "length");
        assert_eq!(finish_reason(Some("length"), true), "length");
        assert_eq!(finish_reason(Some("stop"), true), "tool_calls");
        assert_eq!(finish_reason(None, false), "stop");
    }

    #[test]
    fn chat_with_two_tool_calls() {
        let v = json!({"model":"qwen","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"",
            "tool_calls":[{"function":{"name":"file_write","arguments":{"path":"a.txt","content":"A"}}},
                          {"function":{"name":"file_write","arguments":{"path":"b.txt","content":"B"}}}]},
            "done":true,"done_reason":"stop","prompt_eval_count":30,"eval_count":12});
        let out = chat_completion(&v, "chatcmpl-1", 5, "m");
        let m = &out["choices"][0]["message"];
        assert_eq!(m["content"], Value::Null);
        assert_eq!(
            m["tool_calls"][0]["function"]["arguments"],
            "{\"path\":\"a.txt\",\"content\":\"A\"}"
        );
        assert_eq!(
            m["tool_calls"][1]["function"]["arguments"],
            "{\"path\":\"b.txt\",\"content\":\"B\"}"
        );
        assert_ne!(m["tool_calls"][0]["id"], m["tool_calls"][1]["id"]);
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens":30,"completion_tokens":12,"total_tokens":42})
        );
    }

    #[test]
    fn embeddings_as_floats_and_base64() {
        let v = json!({"model":"nomic","embeddings":[[0.5,-1.0]],"prompt_eval_count":2});
        let out = embeddings(&v, "m", false);
        assert_eq!(out["data"][0]["embedding"], json!([0.5, -1.0]));
        assert_eq!(out["usage"], json!({"prompt_tokens":2,"total_tokens":2}));
        let out = embeddings(&v, "m", true);
        // 0.5f32 = 00 00 00 3f, -1.0f32 = 00 00 80 bf
        assert_eq!(out["data"][0]["embedding"], "AAAAPwAAgL8=");
    }
}

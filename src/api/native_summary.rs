//! What a native Messages or Responses answer said, for the log, limits and budgets: text,
//! tool calls, finish reason (in OpenAI's words, like every other row) and usage, read from a
//! whole answer ([`summarize`]) or event by event from a stream ([`Tally`]).
//!
//! Usage: Messages `input_tokens + cache_read_input_tokens + cache_creation_input_tokens`
//! are the prompt tokens (as on the bridge), `output_tokens` the completion tokens; Responses
//! `usage.input_tokens` / `output_tokens`.

use super::Usage;
use super::native::Dialect;
use super::summary::{ResponseSummary, ToolCallSummary};
use serde_json::Value;

/// The summary of a whole native answer.
pub fn summarize(dialect: Dialect, v: &Value) -> ResponseSummary {
    let mut s = ResponseSummary {
        model: v.get("model").and_then(Value::as_str).map(str::to_string),
        ..Default::default()
    };
    match dialect {
        Dialect::Messages => {
            for block in items(v, "content") {
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => s.content.push_str(str_of(block, "text")),
                    Some("tool_use") => s.tool_calls.push(ToolCallSummary {
                        id: str_of(block, "id").to_string(),
                        name: str_of(block, "name").to_string(),
                        arguments: block.get("input").map(Value::to_string).unwrap_or_default(),
                    }),
                    _ => {}
                }
            }
            s.finish_reason = v
                .get("stop_reason")
                .and_then(Value::as_str)
                .map(|r| finish_of_stop_reason(r).to_string());
            s.usage = v.get("usage").map(messages_usage);
        }
        Dialect::Responses => read_response(&mut s, v),
    }
    s
}

/// Anthropic's `stop_reason` in OpenAI's `finish_reason` words: `max_tokens` → `length`,
/// `tool_use` → `tool_calls`, `refusal` → `content_filter`, else `stop`.
pub fn finish_of_stop_reason(r: &str) -> &'static str {
    match r {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

fn messages_usage(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    Usage::new(
        n("input_tokens") + n("cache_read_input_tokens") + n("cache_creation_input_tokens"),
        n("output_tokens"),
    )
}

/// A Response object's output items, status and usage into `s` (text and calls replaced).
fn read_response(s: &mut ResponseSummary, v: &Value) {
    if let Some(m) = v.get("model").and_then(Value::as_str) {
        s.model = Some(m.to_string());
    }
    let mut content = String::new();
    let mut calls = Vec::new();
    for item in items(v, "output") {
        match item.get("type").and_then(Value::as_str) {
            Some("message") => {
                for part in items(item, "content") {
                    content.push_str(str_of(part, "text"));
                }
            }
            Some("function_call") | Some("custom_tool_call") => calls.push(ToolCallSummary {
                id: str_of(item, "call_id").to_string(),
                name: str_of(item, "name").to_string(),
                arguments: match item.get("arguments") {
                    Some(Value::String(a)) => a.clone(),
                    _ => str_of(item, "input").to_string(),
                },
            }),
            _ => {}
        }
    }
    if !content.is_empty() || !calls.is_empty() {
        s.content = content;
        s.tool_calls = calls;
    }
    let status = v.get("status").and_then(Value::as_str);
    s.finish_reason = match status {
        Some("incomplete") => Some("length".to_string()),
        Some("completed") if !s.tool_calls.is_empty() => Some("tool_calls".to_string()),
        Some("completed") => Some("stop".to_string()),
        _ => s.finish_reason.take(),
    };
    if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
        let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
        s.usage = Some(Usage::new(n("input_tokens"), n("output_tokens")));
    }
}

/// A native stream read event by event.
#[derive(Debug)]
pub struct Tally {
    dialect: Dialect,
    /// What the stream said so far.
    pub summary: ResponseSummary,
    /// Messages: content-block index → tool-call slot.
    blocks: Vec<(u64, usize)>,
    /// Messages usage so far (`message_start`, then `message_delta`'s cumulative counts).
    usage: Value,
    /// The dialect's last event arrived (`message_stop`; `response.completed` or
    /// `response.incomplete`).
    pub done: bool,
    /// The upstream reported a failure in the stream (`error`, `response.failed`): its
    /// `type`/`code` and message.
    pub failed: Option<(String, String)>,
    /// Responses: the last `response` object seen (for a `response.failed` Sluice makes).
    pub response: Option<Value>,
    /// Responses: the last `sequence_number` seen.
    pub sequence: Option<u64>,
}

impl Tally {
    /// An empty tally for `dialect` (its summary unbounded until its `bound` is set).
    pub fn new(dialect: Dialect) -> Self {
        Tally {
            dialect,
            summary: ResponseSummary::default(),
            blocks: Vec::new(),
            usage: Value::Object(Default::default()),
            done: false,
            failed: None,
            response: None,
            sequence: None,
        }
    }

    /// Reads one event (`data` parsed; `Null` for comments and unparsable data).
    pub fn push(&mut self, data: &Value) {
        let kind = data.get("type").and_then(Value::as_str).unwrap_or("");
        match self.dialect {
            Dialect::Messages => self.push_messages(kind, data),
            Dialect::Responses => self.push_responses(kind, data),
        }
    }

    fn push_messages(&mut self, kind: &str, d: &Value) {
        match kind {
            "message_start" => {
                let m = d.get("message").unwrap_or(&Value::Null);
                if let Some(model) = m.get("model").and_then(Value::as_str) {
                    self.summary.model = Some(model.to_string());
                }
                self.add_usage(m.get("usage"));
            }
            "content_block_start" => {
                let b = d.get("content_block").unwrap_or(&Value::Null);
                // Past the bound no new call is kept either (a hostile stream of blocks).
                if b.get("type").and_then(Value::as_str) == Some("tool_use")
                    && !self.summary.bound.truncated
                {
                    let index = d.get("index").and_then(Value::as_u64).unwrap_or(0);
                    self.blocks.push((index, self.summary.tool_calls.len()));
                    self.summary.tool_calls.push(ToolCallSummary {
                        id: str_of(b, "id").to_string(),
                        name: str_of(b, "name").to_string(),
                        arguments: String::new(),
                    });
                }
            }
            "content_block_delta" => {
                let delta = d.get("delta").unwrap_or(&Value::Null);
                let bound = &mut self.summary.bound;
                if let Some(t) = delta.get("text").and_then(Value::as_str) {
                    bound.push(&mut self.summary.content, t);
                }
                if let Some(j) = delta.get("partial_json").and_then(Value::as_str) {
                    let index = d.get("index").and_then(Value::as_u64).unwrap_or(0);
                    if let Some((_, slot)) = self.blocks.iter().find(|(i, _)| *i == index)
                        && let Some(call) = self.summary.tool_calls.get_mut(*slot)
                    {
                        bound.push(&mut call.arguments, j);
                    }
                }
            }
            "message_delta" => {
                if let Some(r) = d.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.summary.finish_reason = Some(finish_of_stop_reason(r).to_string());
                }
                self.add_usage(d.get("usage"));
            }
            "message_stop" => self.done = true,
            "error" => {
                let e = d.get("error").unwrap_or(&Value::Null);
                self.failed = Some((
                    str_of(e, "type").to_string(),
                    str_of(e, "message").to_string(),
                ));
            }
            _ => {}
        }
    }

    /// Messages usage objects carry cumulative counts: later values replace earlier ones.
    fn add_usage(&mut self, u: Option<&Value>) {
        let (Some(Value::Object(u)), Value::Object(acc)) = (u, &mut self.usage) else {
            return;
        };
        for (k, v) in u {
            if v.is_u64() {
                acc.insert(k.clone(), v.clone());
            }
        }
        self.summary.usage = Some(messages_usage(&self.usage));
    }

    fn push_responses(&mut self, kind: &str, d: &Value) {
        if let Some(n) = d.get("sequence_number").and_then(Value::as_u64) {
            self.sequence = Some(n);
        }
        if let Some(r) = d.get("response").filter(|r| r.is_object()) {
            self.response = Some(r.clone());
        }
        match kind {
            "response.output_text.delta" => {
                let delta = str_of(d, "delta");
                self.summary.bound.push(&mut self.summary.content, delta);
            }
            "response.completed" | "response.incomplete" => {
                self.done = true;
                if let Some(r) = d.get("response") {
                    read_response(&mut self.summary, r);
                }
            }
            "response.failed" => {
                let e = d.pointer("/response/error").unwrap_or(&Value::Null);
                self.failed = Some((
                    str_of(e, "code").to_string(),
                    str_of(e, "message").to_string(),
                ));
            }
            "error" => {
                let e = d.get("error").unwrap_or(d);
                self.failed = Some((
                    str_of(e, "code").to_string(),
                    str_of(e, "message").to_string(),
                ));
            }
            _ => {}
        }
    }
}

fn items<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn whole_answers() {
        let m = json!({"model":"claude","content":[{"type":"text","text":"Hi"},
            {"type":"tool_use","id":"t1","name":"f","input":{"a":1}}],
            "stop_reason":"tool_use","usage":{"input_tokens":5,"cache_read_input_tokens":3,
            "cache_creation_input_tokens":2,"output_tokens":7}});
        let s = summarize(Dialect::Messages, &m);
        assert_eq!(s.content, "Hi");
        assert_eq!(s.tool_calls[0].arguments, r#"{"a":1}"#);
        assert_eq!(s.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(s.usage, Some(Usage::new(10, 7)));
        let r = json!({"model":"gpt","status":"completed","output":[{"type":"message",
            "content":[{"type":"output_text","text":"Yo"}]}],"usage":{"input_tokens":4,"output_tokens":2}});
        let s = summarize(Dialect::Responses, &r);
        assert_eq!(s.content, "Yo");
        assert_eq!(s.finish_reason.as_deref(), Some("stop"));
        assert_eq!(s.usage, Some(Usage::new(4, 2)));
    }

    #[test]
    fn messages_stream_tally() {
        let mut t = Tally::new(Dialect::Messages);
        for e in [
            json!({"type":"message_start","message":{"model":"c","usage":{"input_tokens":9,"cache_read_input_tokens":1,"output_tokens":1}}}),
            json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}),
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo"}}),
            json!({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}),
            json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\""}}),
            json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":":1}"}}),
            json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":12}}),
        ] {
            t.push(&e);
        }
        assert!(!t.done);
        t.push(&json!({"type":"message_stop"}));
        assert!(t.done);
        assert_eq!(t.summary.content, "Hello");
        assert_eq!(t.summary.tool_calls[0].arguments, r#"{"a":1}"#);
        assert_eq!(t.summary.usage, Some(Usage::new(10, 12)));
        assert_eq!(t.summary.finish_reason.as_deref(), Some("stop"));
    }

    /// A bounded tally stops gathering text, arguments and new calls at its bound, and still
    /// reads the stop reason and usage at the end.
    #[test]
    fn a_bounded_messages_tally_keeps_the_end() {
        let mut t = Tally::new(Dialect::Messages);
        t.summary.bound = crate::api::summary::TextBound::of(4);
        for e in [
            json!({"type":"message_start","message":{"model":"c","usage":{"input_tokens":9,"output_tokens":1}}}),
            json!({"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}),
            json!({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"a\""}}),
            json!({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":":1}"}}),
            json!({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"u","name":"g","input":{}}}),
            json!({"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"Hello"}}),
            json!({"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":12}}),
            json!({"type":"message_stop"}),
        ] {
            t.push(&e);
        }
        assert_eq!(t.summary.tool_calls.len(), 1);
        assert_eq!(t.summary.tool_calls[0].arguments, "{\"a\"");
        assert_eq!(t.summary.content, "");
        assert!(t.summary.bound.truncated);
        assert_eq!(t.summary.bound.seen, 4 + 3 + 5);
        assert_eq!(t.summary.usage, Some(Usage::new(9, 12)));
        assert_eq!(t.summary.finish_reason.as_deref(), Some("length"));
        assert!(t.done);
    }

    #[test]
    fn responses_stream_tally() {
        let mut t = Tally::new(Dialect::Responses);
        t.push(&json!({"type":"response.created","sequence_number":0,"response":{"id":"r","status":"in_progress","output":[]}}));
        t.push(&json!({"type":"response.output_text.delta","sequence_number":1,"delta":"Hi"}));
        assert_eq!(t.summary.content, "Hi");
        t.push(&json!({"type":"error","sequence_number":2,"code":"server_error","message":"boom"}));
        assert_eq!(t.failed, Some(("server_error".into(), "boom".into())));
        assert_eq!(t.sequence, Some(2));
        assert_eq!(t.response.as_ref().unwrap()["id"], "r");
    }
}

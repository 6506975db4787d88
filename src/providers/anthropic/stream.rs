//! Anthropic Messages SSE events → OpenAI chunks
//! (<https://docs.anthropic.com/en/docs/build-with-claude/streaming>).
//!
//! `message_start` gives the first chunk (`delta: {"role":"assistant","content":""}`) and the
//! input tokens; `content_block_start` of a `tool_use` block opens a tool call whose `index`
//! counts tool-use blocks only (0, 1, …, not Anthropic's block index) and whose first delta
//! carries `id`, `type`, `name` and `arguments: ""`; `text_delta` → `content`,
//! `input_json_delta` → `arguments` fragments in order (a tool block that closes without a
//! fragment — a tool with no parameters — gets `arguments: "{}"`, so the fragments always add
//! up to a JSON object), `thinking_delta` →
//! `reasoning_content`; `message_delta` gives the one finish chunk and the output tokens;
//! `message_stop` the usage-only chunk (`choices: []`) and the end. `ping` and unknown events
//! are skipped; an `error` event ends the stream with that error.

use super::response::{Tokens, error, finish_reason};
use crate::api::ApiError;
use crate::api::At;
use crate::providers::sse::SseParser;
use crate::providers::upstream::{Decoder, compact, ended_early};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};

/// Decoder state for one stream.
pub struct AnthropicDecoder {
    parser: SseParser,
    id: String,
    created: u64,
    model: String,
    deployment: String,
    started: bool,
    /// Anthropic block index → (tool-call index, whether an argument fragment was sent).
    tools: HashMap<u64, (usize, bool)>,
    tokens: Tokens,
    finished: bool,
    done: bool,
}

impl AnthropicDecoder {
    /// A decoder whose chunks carry `created` (s) and, until `message_start` says otherwise,
    /// `id` and `model`.
    pub fn new(id: String, created: u64, model: String, deployment: String) -> Self {
        AnthropicDecoder {
            parser: SseParser::new(),
            id,
            created,
            model,
            deployment,
            started: false,
            tools: HashMap::new(),
            tokens: Tokens::default(),
            finished: false,
            done: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Value) -> Value {
        json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
               "model": self.model,
               "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    }

    fn start(&mut self, out: &mut VecDeque<Value>) {
        if !self.started {
            self.started = true;
            out.push_back(self.chunk(json!({"role":"assistant","content":""}), Value::Null));
        }
    }

    fn usage_chunk(&self) -> Value {
        json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
               "model": self.model, "choices": [], "usage": self.tokens.to_openai()})
    }

    fn event(&mut self, v: &Value, out: &mut VecDeque<Value>) -> Result<(), ApiError> {
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "message_start" => {
                let m = v.get("message").cloned().unwrap_or(Value::Null);
                if let Some(id) = m.get("id").and_then(Value::as_str) {
                    self.id = id.to_string();
                }
                if let Some(model) = m.get("model").and_then(Value::as_str) {
                    self.model = model.to_string();
                }
                if let Some(u) = m.get("usage") {
                    self.tokens.update(u);
                }
                self.start(out);
            }
            "content_block_start" => {
                self.start(out);
                let block = v.get("content_block").cloned().unwrap_or(Value::Null);
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(t) = block
                            .get("text")
                            .and_then(Value::as_str)
                            .filter(|t| !t.is_empty())
                        {
                            out.push_back(self.chunk(json!({"content": t}), Value::Null));
                        }
                    }
                    Some("tool_use") => {
                        let index = self.tools.len();
                        let block_index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                        let input = block
                            .get("input")
                            .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()));
                        let arguments = input.map(compact).unwrap_or_default();
                        self.tools
                            .insert(block_index, (index, !arguments.is_empty()));
                        out.push_back(self.chunk(
                            json!({"tool_calls": [{"index": index, "id": block.get("id").cloned().unwrap_or(Value::from("")),
                                    "type": "function", "function": {"name": block.get("name").cloned().unwrap_or(Value::from("")),
                                    "arguments": arguments}}]}),
                            Value::Null,
                        ));
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                self.start(out);
                let d = v.get("delta").cloned().unwrap_or(Value::Null);
                match d.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        if let Some(t) = d
                            .get("text")
                            .and_then(Value::as_str)
                            .filter(|t| !t.is_empty())
                        {
                            out.push_back(self.chunk(json!({"content": t}), Value::Null));
                        }
                    }
                    Some("input_json_delta") => {
                        let block_index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                        let part = d.get("partial_json").and_then(Value::as_str).unwrap_or("");
                        if let Some((index, sent)) = self.tools.get_mut(&block_index)
                            && !part.is_empty()
                        {
                            *sent = true;
                            let index = *index;
                            out.push_back(self.chunk(
                                json!({"tool_calls": [{"index": index, "function": {"arguments": part}}]}),
                                Value::Null,
                            ));
                        }
                    }
                    Some("thinking_delta") => {
                        if let Some(t) = d
                            .get("thinking")
                            .and_then(Value::as_str)
                            .filter(|t| !t.is_empty())
                        {
                            out.push_back(self.chunk(json!({"reasoning_content": t}), Value::Null));
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(u) = v.get("usage") {
                    self.tokens.update(u);
                }
                if let Some(r) = v.at("/delta/stop_reason").filter(|r| !r.is_null()) {
                    self.start(out);
                    if !self.finished {
                        self.finished = true;
                        let reason = finish_reason(r.as_str());
                        out.push_back(self.chunk(json!({}), Value::from(reason)));
                    }
                }
            }
            "message_stop" => {
                self.start(out);
                if !self.finished {
                    self.finished = true;
                    out.push_back(self.chunk(json!({}), Value::from("stop")));
                }
                out.push_back(self.usage_chunk());
                self.done = true;
            }
            "error" => {
                return Err(error(
                    &self.deployment,
                    v.get("error").unwrap_or(&Value::Null),
                ));
            }
            "content_block_stop" => {
                let block_index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                if let Some((index, sent)) = self.tools.get_mut(&block_index)
                    && !*sent
                {
                    *sent = true;
                    let index = *index;
                    out.push_back(self.chunk(
                        json!({"tool_calls": [{"index": index, "function": {"arguments": "{}"}}]}),
                        Value::Null,
                    ));
                }
            }
            _ => {} // ping, and events added later
        }
        Ok(())
    }
}

impl Decoder for AnthropicDecoder {
    fn take_largest_event(&mut self) -> usize {
        self.parser.take_largest_event()
    }

    fn push(&mut self, bytes: &[u8], out: &mut VecDeque<Value>) -> Result<(), ApiError> {
        for ev in self.parser.push(bytes) {
            if self.done {
                break;
            }
            let v: Value = serde_json::from_str(&ev.data).map_err(|e| {
                ApiError::bad_gateway(&self.deployment, format!("stream event is not JSON ({e})"))
            })?;
            self.event(&v, out)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut VecDeque<Value>) -> Result<(), ApiError> {
        if let Some(ev) = self.parser.finish()
            && !self.done
            && let Ok(v) = serde_json::from_str::<Value>(&ev.data)
        {
            self.event(&v, out)?;
        }
        if self.done {
            return Ok(());
        }
        if self.finished {
            // The finish reason arrived; only `message_stop` is missing.
            out.push_back(self.usage_chunk());
            self.done = true;
            return Ok(());
        }
        Err(ended_early(&self.deployment))
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// C08's recorded stream.
    pub const C08: &str = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":50,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: ping\ndata: {\"type\":\"ping\"}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Checking both.\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_A\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Par\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"is\\\"}\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_B\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Tokyo\\\"}\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":60}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );

    fn run(text: &str, step: usize) -> (Vec<Value>, Result<(), ApiError>) {
        let mut d = AnthropicDecoder::new("x".into(), 3, "m".into(), "claude".into());
        let mut out = VecDeque::new();
        for b in text.as_bytes().chunks(step) {
            if let Err(e) = d.push(b, &mut out) {
                return (out.into_iter().collect(), Err(e));
            }
            if d.is_done() {
                break;
            }
        }
        let r = if d.is_done() {
            Ok(())
        } else {
            d.finish(&mut out)
        };
        (out.into_iter().collect(), r)
    }

    #[test]
    fn c08_tool_indexes_count_tool_blocks_only() {
        for step in [1, 7, 10_000] {
            let (chunks, r) = run(C08, step);
            r.unwrap();
            let deltas: Vec<Value> = chunks[..chunks.len() - 1]
                .iter()
                .map(|c| c["choices"][0]["delta"].clone())
                .collect();
            assert_eq!(
                deltas,
                vec![
                    json!({"role":"assistant","content":""}),
                    json!({"content":"Checking both."}),
                    json!({"tool_calls":[{"index":0,"id":"toolu_A","type":"function","function":{"name":"get_weather","arguments":""}}]}),
                    json!({"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": \"Par"}}]}),
                    json!({"tool_calls":[{"index":0,"function":{"arguments":"is\"}"}}]}),
                    json!({"tool_calls":[{"index":1,"id":"toolu_B","type":"function","function":{"name":"get_weather","arguments":""}}]}),
                    json!({"tool_calls":[{"index":1,"function":{"arguments":"{\"city\": \"Tokyo\"}"}}]}),
                    json!({}),
                ],
                "step {step}"
            );
            let finishes: Vec<&Value> = chunks
                .iter()
                .filter_map(|c| c["choices"].get(0))
                .map(|c| &c["finish_reason"])
                .filter(|f| !f.is_null())
                .collect();
            assert_eq!(finishes, vec![&json!("tool_calls")]);
            let last = chunks.last().unwrap();
            assert_eq!(last["choices"], json!([]));
            assert_eq!(
                last["usage"],
                json!({"prompt_tokens":50,"completion_tokens":60,"total_tokens":110})
            );
            assert_eq!(last["id"], "msg_1");
        }
    }

    #[test]
    fn error_event_and_early_end() {
        let cut = C08.find("event: content_block_start").unwrap();
        let text = format!(
            "{}event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}}}\n\n",
            &C08[..cut]
        );
        let (chunks, r) = run(&text, 5);
        assert_eq!(chunks.len(), 1);
        let e = r.unwrap_err();
        assert_eq!(e.status.as_u16(), 502);
        assert_eq!(e.body.message, "deployment `claude`: Overloaded");
        let (_, r) = run(&C08[..cut], 5);
        assert_eq!(
            r.unwrap_err().body.message,
            "deployment `claude`: the upstream stream ended before it was complete"
        );
    }

    /// A tool with no parameters: Anthropic sends `input: {}` and no (or only empty)
    /// fragments; the arguments must still add up to `"{}"`.
    #[test]
    fn no_argument_tool_gives_an_empty_object() {
        let text = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_2\",\"model\":\"m\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_T\",\"name\":\"get_time\",\"input\":{}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":9}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        let (chunks, r) = run(text, 9);
        r.unwrap();
        let args: String = chunks
            .iter()
            .filter_map(|c| c.at("/choices/0/delta/tool_calls/0/function/arguments"))
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(args, "{}");
        // C08's tools had fragments: nothing is added to them.
        let (chunks, _) = run(C08, 10_000);
        let extra = chunks
            .iter()
            .filter(|c| {
                c.at("/choices/0/delta/tool_calls/0/function/arguments") == Some(&json!("{}"))
            })
            .count();
        assert_eq!(extra, 0);
    }
}

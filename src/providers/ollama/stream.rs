//! Ollama NDJSON streams → OpenAI chunks.
//!
//! `/api/chat`: the first chunk carries `delta.role: "assistant"` (and `content: ""`); each
//! line's `content` becomes a content delta, `thinking` a `reasoning_content` delta, each tool
//! call one delta with its own `index` (0, 1, … across the whole turn), `id`, `type`, `name`
//! and the whole `arguments` text. The `done` line gives one finish chunk and then a
//! usage-only chunk (`choices: []`). `/api/generate` streams `text_completion` chunks the same
//! way. A `{"error": …}` line is a mid-stream error; a body that ends before the `done` line is
//! a 502 error item.

use super::response::{finish_reason, logprobs, tool_calls, usage};
use crate::api::ApiError;
use crate::api::error::error_from_value;
use crate::providers::ndjson::NdjsonParser;
use crate::providers::upstream::{Decoder, ended_early};
use serde_json::{Value, json};
use std::collections::VecDeque;

/// Which endpoint the stream answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `/api/chat` → `chat.completion.chunk`.
    Chat,
    /// `/api/generate` → `text_completion`.
    Generate,
}

/// Decoder state for one stream.
pub struct OllamaDecoder {
    kind: Kind,
    parser: NdjsonParser,
    id: String,
    created: u64,
    model: String,
    deployment: String,
    started: bool,
    tool_calls: usize,
    done: bool,
}

impl OllamaDecoder {
    /// A decoder whose chunks carry `id`, `created` (s) and `model`.
    pub fn new(kind: Kind, id: String, created: u64, model: String, deployment: String) -> Self {
        OllamaDecoder {
            kind,
            parser: NdjsonParser::new(),
            id,
            created,
            model,
            deployment,
            started: false,
            tool_calls: 0,
            done: false,
        }
    }

    fn chunk(&self, choice: Value) -> Value {
        let object = match self.kind {
            Kind::Chat => "chat.completion.chunk",
            Kind::Generate => "text_completion",
        };
        json!({"id": self.id, "object": object, "created": self.created, "model": self.model,
               "choices": [choice]})
    }

    fn delta(&self, delta: Value, finish: Value, lp: Value) -> Value {
        let mut choice =
            json!({"index": 0, "delta": delta, "logprobs": lp, "finish_reason": finish});
        if lp_is_absent(&choice)
            && let Value::Object(m) = &mut choice
        {
            m.remove("logprobs");
        }
        self.chunk(choice)
    }

    fn line(&mut self, v: &Value, out: &mut VecDeque<Value>) -> Result<(), ApiError> {
        if self.done {
            return Ok(());
        }
        if v.get("error").is_some() {
            let body = error_from_value(v, "server_error")
                .map(|b| b.message)
                .unwrap_or_default();
            return Err(ApiError::bad_gateway(&self.deployment, body));
        }
        if let Some(m) = v.get("model").and_then(Value::as_str) {
            self.model = m.to_string();
        }
        match self.kind {
            Kind::Chat => self.chat_line(v, out),
            Kind::Generate => self.generate_line(v, out),
        }
        if v.get("done").and_then(Value::as_bool) == Some(true) {
            self.done = true;
            let reason = finish_reason(
                v.get("done_reason").and_then(Value::as_str),
                self.tool_calls > 0,
            );
            let finish = match self.kind {
                Kind::Chat => self.delta(json!({}), Value::from(reason), Value::Null),
                Kind::Generate => {
                    self.chunk(json!({"index":0,"text":"","logprobs":null,"finish_reason":reason}))
                }
            };
            out.push_back(finish);
            let mut u = self.chunk(Value::Null);
            if let Value::Object(m) = &mut u {
                m.insert("choices".into(), json!([]));
                m.insert("usage".into(), usage(v));
            }
            out.push_back(u);
        }
        Ok(())
    }

    fn chat_line(&mut self, v: &Value, out: &mut VecDeque<Value>) {
        let msg = v.get("message").cloned().unwrap_or(Value::Null);
        if !self.started {
            self.started = true;
            out.push_back(self.delta(
                json!({"role":"assistant","content":""}),
                Value::Null,
                Value::Null,
            ));
        }
        if let Some(t) = msg
            .get("thinking")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            out.push_back(self.delta(json!({"reasoning_content": t}), Value::Null, Value::Null));
        }
        if let Some(t) = msg
            .get("content")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            out.push_back(self.delta(json!({"content": t}), Value::Null, logprobs(v)));
        }
        for call in tool_calls(&msg, Some(self.tool_calls)) {
            self.tool_calls += 1;
            out.push_back(self.delta(json!({"tool_calls": [call]}), Value::Null, Value::Null));
        }
    }

    fn generate_line(&mut self, v: &Value, out: &mut VecDeque<Value>) {
        if let Some(t) = v
            .get("response")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            out.push_back(
                self.chunk(json!({"index":0,"text":t,"logprobs":null,"finish_reason":null})),
            );
        }
    }
}

fn lp_is_absent(choice: &Value) -> bool {
    choice.get("logprobs").is_none_or(Value::is_null)
}

impl Decoder for OllamaDecoder {
    fn take_largest_event(&mut self) -> usize {
        self.parser.take_largest_event()
    }

    fn push(&mut self, bytes: &[u8], out: &mut VecDeque<Value>) -> Result<(), ApiError> {
        for item in self.parser.push(bytes) {
            let v = item.map_err(|e| {
                ApiError::bad_gateway(
                    &self.deployment,
                    format!("stream line is not JSON ({}): {}", e.error, e.line),
                )
            })?;
            self.line(&v, out)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut VecDeque<Value>) -> Result<(), ApiError> {
        if let Some(item) = self.parser.finish() {
            let v = item.map_err(|e| {
                ApiError::bad_gateway(
                    &self.deployment,
                    format!("stream line is not JSON ({})", e.error),
                )
            })?;
            self.line(&v, out)?;
        }
        if self.done {
            Ok(())
        } else {
            Err(ended_early(&self.deployment))
        }
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kind: Kind, lines: &[Value]) -> (Vec<Value>, Result<(), ApiError>) {
        let mut d = OllamaDecoder::new(kind, "c1".into(), 7, "m".into(), "dep".into());
        let mut out = VecDeque::new();
        let mut text = String::new();
        for l in lines {
            text.push_str(&l.to_string());
            text.push('\n');
        }
        for b in text.as_bytes().chunks(5) {
            if let Err(e) = d.push(b, &mut out) {
                return (out.into_iter().collect(), Err(e));
            }
        }
        let r = d.finish(&mut out);
        (out.into_iter().collect(), r)
    }

    #[test]
    fn two_tool_calls_get_distinct_indexes_and_tool_calls_finish() {
        let lines = [
            json!({"model":"qwen","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"file_write","arguments":{"path":"a.txt","content":"A"}}}]},"done":false}),
            json!({"model":"qwen","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"file_write","arguments":{"path":"b.txt","content":"B"}}}]},"done":false}),
            json!({"model":"qwen","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":40,"eval_count":22}),
        ];
        let (chunks, r) = run(Kind::Chat, &lines);
        r.unwrap();
        assert_eq!(chunks.len(), 5);
        assert_eq!(
            chunks[0]["choices"][0]["delta"],
            json!({"role":"assistant","content":""})
        );
        let c1 = &chunks[1]["choices"][0]["delta"]["tool_calls"][0];
        let c2 = &chunks[2]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(
            (c1["index"].clone(), c2["index"].clone()),
            (json!(0), json!(1))
        );
        assert_eq!(
            c1["function"]["arguments"],
            "{\"path\":\"a.txt\",\"content\":\"A\"}"
        );
        assert_eq!(c2["function"]["name"], "file_write");
        assert_eq!(chunks[3]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(chunks[4]["choices"], json!([]));
        assert_eq!(
            chunks[4]["usage"],
            json!({"prompt_tokens":40,"completion_tokens":22,"total_tokens":62})
        );
        assert_eq!(chunks[4]["model"], "qwen");
    }

    #[test]
    fn length_cut_and_early_end_and_error_line() {
        let lines = [
            json!({"message":{"role":"assistant","content":"Neural"},"done":false}),
            json!({"message":{"role":"assistant","content":""},"done":true,"done_reason":"length","prompt_eval_count":9,"eval_count":20}),
        ];
        let (chunks, r) = run(Kind::Chat, &lines);
        r.unwrap();
        assert_eq!(
            chunks[1]["choices"][0]["delta"],
            json!({"content":"Neural"})
        );
        assert_eq!(chunks[2]["choices"][0]["finish_reason"], "length");
        let (_, r) = run(Kind::Chat, &lines[..1]);
        assert_eq!(r.unwrap_err().status.as_u16(), 502);
        let (chunks, r) = run(
            Kind::Chat,
            &[lines[0].clone(), json!({"error":"CUDA out of memory"})],
        );
        assert_eq!(chunks.len(), 2);
        let e = r.unwrap_err();
        assert_eq!(e.body.message, "deployment `dep`: CUDA out of memory");
    }

    #[test]
    fn generate_stream() {
        let lines = [
            json!({"model":"m","response":"Once","done":false}),
            json!({"model":"m","response":" upon","done":false}),
            json!({"model":"m","response":"","done":true,"done_reason":"stop","prompt_eval_count":3,"eval_count":2}),
        ];
        let (chunks, r) = run(Kind::Generate, &lines);
        r.unwrap();
        let texts: Vec<&str> = chunks[..3]
            .iter()
            .map(|c| c["choices"][0]["text"].as_str().unwrap())
            .collect();
        assert_eq!(texts, ["Once", " upon", ""]);
        assert_eq!(chunks[2]["choices"][0]["finish_reason"], "stop");
        assert_eq!(chunks[2]["object"], "text_completion");
        assert_eq!(chunks[3]["usage"]["total_tokens"], 5);
    }
}

//! Chat completion chunks → Messages SSE events, one chunk at a time.
//!
//! Order, as Anthropic sends it: `message_start` (prompt usage: the caller's estimate, since
//! chat backends report usage only in the last chunk) → per block `content_block_start`,
//! `content_block_delta`…, `content_block_stop` → `message_delta` (stop reason, and the
//! backend's real usage: `input_tokens`, `cache_read_input_tokens`, `output_tokens`) →
//! `message_stop`. Blocks open in the order the backend's deltas arrive: `thinking` from
//! `reasoning_content` (or `reasoning`), `text` from `content`, one `tool_use` per tool call,
//! whose argument fragments become `input_json_delta`s (a tool that got no fragment gets
//! `"{}"` before its block closes); calls the backend interleaves come one after another
//! ([`crate::bridge::tool_order`]). A kind change closes the open block; the finish
//! reason closes the last one. `message_delta` and `message_stop` are sent by
//! [`StreamTranslator::finish`] when the chat stream ends, so a usage-only chunk after the
//! finish chunk is counted. A chat stream that ends without a finish reason, or
//! [`StreamTranslator::finish_error`], gives an `error` event, never a clean end.

use super::response::{message_id, stop_reason};
use crate::api::ApiError;
use crate::api::chat_delta::{ChatDelta, ToolCallDelta};
use crate::api::messages::{
    AnthropicError, BlockDelta, DeltaUsage, MessageDeltaBody, MessagesResponse, MessagesUsage,
    ResponseBlock, StreamEvent,
};
use crate::bridge::tool_order::{OrderedCall, ToolCallOrder};
use bytes::Bytes;
use serde_json::{Map, Value};

/// The block being streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    /// A tool call, by its chat `index`.
    Tool(u64),
}

/// A tool call seen in the stream.
#[derive(Debug, Clone)]
struct ToolBlock {
    chat_index: u64,
    block: u32,
    got_arguments: bool,
}

/// Translator state for one stream.
#[derive(Debug)]
pub struct StreamTranslator {
    id: String,
    model: String,
    input_estimate: u64,
    stop_sequences: Vec<String>,
    started: bool,
    open: Option<(Open, u32)>,
    next_block: u32,
    tools: Vec<ToolBlock>,
    order: ToolCallOrder,
    /// Text that arrived while a tool call's arguments were still incomplete: sent once they
    /// are (or at the finish reason), after the tool block.
    held_text: String,
    finish_reason: Option<String>,
    matched_stop: Option<String>,
    usage: Option<Value>,
    ended: bool,
}

impl StreamTranslator {
    /// A translator for an answer with id `id` (`msg_…`) from `model`; `input_estimate` is
    /// the prompt-token estimate for `message_start`; `stop_sequences` are the request's.
    pub fn new(
        id: String,
        model: String,
        input_estimate: u64,
        stop_sequences: Vec<String>,
    ) -> Self {
        StreamTranslator {
            id,
            model,
            input_estimate,
            stop_sequences,
            started: false,
            open: None,
            next_block: 0,
            tools: Vec::new(),
            order: ToolCallOrder::default(),
            held_text: String::new(),
            finish_reason: None,
            matched_stop: None,
            usage: None,
            ended: false,
        }
    }

    /// A fresh `msg_…` id for a stream.
    pub fn new_id() -> String {
        message_id(&uuid::Uuid::now_v7().simple().to_string())
    }

    /// `message_start`, once (later calls give nothing). [`Self::push`] sends it first if
    /// this was not called.
    pub fn start(&mut self) -> Vec<Bytes> {
        if self.started {
            return Vec::new();
        }
        self.started = true;
        let message = MessagesResponse {
            id: self.id.clone(),
            kind: "message".into(),
            role: "assistant".into(),
            model: self.model.clone(),
            content: Vec::new(),
            stop_reason: None,
            stop_sequence: None,
            usage: MessagesUsage {
                input_tokens: self.input_estimate,
                output_tokens: 0,
                ..MessagesUsage::default()
            },
        };
        vec![StreamEvent::MessageStart { message }.to_sse()]
    }

    /// The events for one chat chunk (`chat.completion.chunk` JSON); see [`Self::push_delta`].
    pub fn push(&mut self, chunk: &Value) -> Vec<Bytes> {
        self.push_delta(&ChatDelta::from_tree(chunk))
    }

    /// The events for one chat chunk, read as [`ChatDelta`]. A chunk carrying an `error`
    /// object ends the stream with an `error` event.
    pub fn push_delta(&mut self, chunk: &ChatDelta<'_>) -> Vec<Bytes> {
        if self.ended {
            return Vec::new();
        }
        if let Some(err) = &chunk.error {
            // A numeric code is a status; Sluice's own error frames name theirs (a stream that
            // timed out mid-way was an `api_error` here, a 504 `timeout_error` everywhere else).
            let status = match err.get("code") {
                Some(Value::Number(n)) => n.as_u64().unwrap_or(502),
                Some(Value::String(c)) => match c.as_str() {
                    "upstream_timeout" => 504,
                    "rate_limit_exceeded" | "rate_limit_error" => 429,
                    "overloaded_error" | "no_available_deployment" => 529,
                    _ => 502,
                },
                _ => 502,
            };
            let kind = err
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("api_error");
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("the backend failed");
            let status = axum::http::StatusCode::from_u16(status as u16)
                .unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
            return self.finish_error(&ApiError::new(status, kind, message));
        }
        let mut out = self.start();
        if let Some(u) = &chunk.usage {
            self.usage = Some(u.clone());
        }
        if let Some(model) = chunk.model
            && model != self.model
        {
            self.model = model.to_string();
        }
        let Some(choice) = &chunk.choice else {
            return out;
        };
        if let Some(t) = choice.reasoning {
            let index = self.ensure_open(Open::Thinking, &mut out);
            out.push(delta_event(
                index,
                BlockDelta::ThinkingDelta { thinking: t.into() },
            ));
        }
        if let Some(t) = choice.content.filter(|t| !t.is_empty()) {
            // Opening a text block now would close a tool block whose arguments are still
            // coming (they would then go to a closed block): the text waits.
            self.held_text.push_str(t);
            if !self.order.is_mid_call() {
                self.release_text(&mut out);
            }
        }
        for call in &choice.tool_calls {
            let ordered = self.order.push(call);
            self.tool_deltas(ordered, &mut out);
        }
        if !self.order.is_mid_call() {
            self.release_text(&mut out);
        }
        if let Some(r) = choice.finish_reason {
            self.finish_reason = Some(r.to_string());
            self.matched_stop = choice.stop_reason.map(str::to_string);
            let held = self.order.flush();
            self.tool_deltas(held, &mut out);
            self.release_text(&mut out);
            self.close(&mut out);
        }
        out
    }

    /// Sends the text held while a tool call was incomplete, if any.
    fn release_text(&mut self, out: &mut Vec<Bytes>) {
        if self.held_text.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.held_text);
        let index = self.ensure_open(Open::Text, out);
        out.push(delta_event(index, BlockDelta::TextDelta { text }));
    }

    fn tool_deltas(&mut self, calls: Vec<OrderedCall>, out: &mut Vec<Bytes>) {
        for c in &calls {
            self.tool_delta(&c.as_delta(), out);
        }
    }

    /// The end of the chat stream: closes the open block, then `message_delta` and
    /// `message_stop`; without a finish reason seen, an `error` event instead.
    pub fn finish(&mut self) -> Vec<Bytes> {
        if self.ended {
            return Vec::new();
        }
        let Some(finish) = self.finish_reason.clone() else {
            return self.finish_error(&ApiError::new(
                axum::http::StatusCode::BAD_GATEWAY,
                "server_error",
                "the backend's stream ended before it was complete",
            ));
        };
        let mut out = self.start();
        self.close(&mut out);
        self.ended = true;
        let (reason, seq) = stop_reason(
            Some(&finish),
            self.matched_stop.as_deref(),
            !self.tools.is_empty(),
            &self.stop_sequences,
        );
        let usage = match &self.usage {
            Some(u) => {
                let m = super::response::usage(Some(u));
                DeltaUsage {
                    input_tokens: Some(m.input_tokens),
                    cache_creation_input_tokens: Some(0),
                    cache_read_input_tokens: Some(m.cache_read_input_tokens),
                    output_tokens: m.output_tokens,
                }
            }
            None => DeltaUsage::default(),
        };
        out.push(
            StreamEvent::MessageDelta {
                delta: MessageDeltaBody {
                    stop_reason: Some(reason),
                    stop_sequence: seq,
                },
                usage,
            }
            .to_sse(),
        );
        out.push(StreamEvent::MessageStop.to_sse());
        out
    }

    /// A failure after the stream started: one `error` event (Anthropic's type for the
    /// status, see [`crate::api::messages::anthropic_status`]); nothing after it.
    pub fn finish_error(&mut self, e: &ApiError) -> Vec<Bytes> {
        if self.ended {
            return Vec::new();
        }
        self.ended = true;
        let error = AnthropicError::from_api(e).error;
        vec![StreamEvent::Error { error }.to_sse()]
    }

    /// Whether `message_stop` or `error` was sent.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Opens a block of `kind` unless it is the open one; returns its index.
    fn ensure_open(&mut self, kind: Open, out: &mut Vec<Bytes>) -> u32 {
        if let Some((open, index)) = self.open
            && open == kind
        {
            return index;
        }
        self.close(out);
        let index = self.next_block;
        self.next_block += 1;
        let block = match kind {
            Open::Text => ResponseBlock::Text {
                text: String::new(),
            },
            Open::Thinking => ResponseBlock::Thinking {
                thinking: String::new(),
                signature: String::new(),
            },
            Open::Tool(_) => return index, // tool blocks are opened by `tool_delta`
        };
        out.push(
            StreamEvent::ContentBlockStart {
                index,
                content_block: block,
            }
            .to_sse(),
        );
        self.open = Some((kind, index));
        index
    }

    /// One entry of `delta.tool_calls`: a new index opens a `tool_use` block; argument
    /// fragments become `input_json_delta`s.
    fn tool_delta(&mut self, call: &ToolCallDelta<'_>, out: &mut Vec<Bytes>) {
        let chat_index = call.index.unwrap_or(0);
        let block = match self.tools.iter().find(|t| t.chat_index == chat_index) {
            Some(t) => t.block,
            None => {
                self.close(out);
                let block = self.next_block;
                self.next_block += 1;
                let id = call
                    .id
                    .filter(|s| !s.is_empty())
                    .map_or_else(|| format!("toolu_{}_{chat_index}", self.id), str::to_string);
                let name = call.name.unwrap_or("").to_string();
                out.push(
                    StreamEvent::ContentBlockStart {
                        index: block,
                        content_block: ResponseBlock::ToolUse {
                            id,
                            name,
                            input: Value::Object(Map::new()),
                        },
                    }
                    .to_sse(),
                );
                self.tools.push(ToolBlock {
                    chat_index,
                    block,
                    got_arguments: false,
                });
                self.open = Some((Open::Tool(chat_index), block));
                block
            }
        };
        if let Some(part) = call.arguments.filter(|s| !s.is_empty()) {
            if let Some(t) = self.tools.iter_mut().find(|t| t.chat_index == chat_index) {
                t.got_arguments = true;
            }
            out.push(delta_event(
                block,
                BlockDelta::InputJsonDelta {
                    partial_json: part.into(),
                },
            ));
        }
    }

    /// Closes the open block (a tool with no argument fragment gets `"{}"` first).
    fn close(&mut self, out: &mut Vec<Bytes>) {
        let Some((kind, index)) = self.open.take() else {
            return;
        };
        if let Open::Tool(chat_index) = kind
            && self
                .tools
                .iter()
                .any(|t| t.chat_index == chat_index && !t.got_arguments)
        {
            out.push(delta_event(
                index,
                BlockDelta::InputJsonDelta {
                    partial_json: "{}".into(),
                },
            ));
        }
        out.push(StreamEvent::ContentBlockStop { index }.to_sse());
    }
}

fn delta_event(index: u32, delta: BlockDelta) -> Bytes {
    StreamEvent::ContentBlockDelta { index, delta }.to_sse()
}

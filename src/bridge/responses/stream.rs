//! Chat completion chunks → Responses stream events, one chunk at a time.
//!
//! Order (per item, items one after another):
//! `response.created` → `response.in_progress` → for a message: `output_item.added` →
//! `content_part.added` → `output_text.delta`… → `output_text.done` → `content_part.done` →
//! `output_item.done`; for reasoning (from `reasoning_content`): `output_item.added` →
//! `reasoning_summary_part.added` → `reasoning_summary_text.delta`… → `…text.done` →
//! `…part.done` → `output_item.done`; for a function call: `output_item.added` →
//! `function_call_arguments.delta`… → `function_call_arguments.done` → `output_item.done`; for
//! a custom tool call: `output_item.added` → `custom_tool_call_input.delta` (the whole input,
//! once the arguments are complete) → `custom_tool_call_input.done` → `output_item.done` →
//! finally `response.completed` (or `response.incomplete` for `finish_reason: length` /
//! `content_filter`) with every item and the usage. A failure is `error` then
//! `response.failed`. `sequence_number` counts from 0; an item's id is the same in all its
//! events. Calls the backend interleaves come one after another, each whole
//! ([`crate::bridge::tool_order`]).

use bytes::Bytes;
use serde_json::Value;

use super::response::{
    call_item, custom_input, incomplete_reason, item_id, output_text, reasoning_item, usage,
};
use super::tools::ToolMap;
use crate::api::ApiError;
use crate::api::chat_delta::{ChatDelta, ToolCallDelta};
use crate::api::responses::output::OutputMessage;
use crate::api::responses::{
    IncompleteDetails, OutputContent, OutputItem, ResponseError, ResponseObject, ResponseUsage,
    StreamEvent, StreamFrame, SummaryPart, response_frame,
};
use crate::bridge::tool_order::{OrderedCall, ToolCallOrder};

/// What the last output item is, while it is still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Nothing,
    Text,
    Reasoning,
    /// A tool call; the chat `index` of the call.
    Call(u64),
}

/// Turns one chat stream into Responses events. Feed each chunk to [`Self::push`], then call
/// [`Self::finish`] at the end of the stream or [`Self::finish_error`] on a failure.
#[derive(Debug)]
pub struct StreamTranslator {
    response: ResponseObject,
    tools: ToolMap,
    seq: u64,
    started: bool,
    finished: bool,
    open: Open,
    /// Chat call index → (output index, raw chat arguments so far).
    calls: Vec<(u64, usize, String)>,
    order: ToolCallOrder,
    finish_reason: Option<String>,
    usage: Option<ResponseUsage>,
}

impl StreamTranslator {
    /// A translator for the response `response` (from [`ResponseObject::start`]).
    pub fn new(response: ResponseObject, tools: ToolMap) -> Self {
        StreamTranslator {
            response,
            tools,
            seq: 0,
            started: false,
            finished: false,
            open: Open::Nothing,
            calls: Vec::new(),
            order: ToolCallOrder::default(),
            finish_reason: None,
            usage: None,
        }
    }

    /// The response as it stands (the final one after [`Self::finish`]).
    pub fn response(&self) -> &ResponseObject {
        &self.response
    }

    /// `response.created` and `response.in_progress`, once (also sent by the first push).
    pub fn start(&mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        self.ensure_started(&mut out);
        out
    }

    /// The frames for one chat chunk (a parsed `data:` payload); see [`Self::push_delta`].
    pub fn push(&mut self, chunk: &Value) -> Vec<Bytes> {
        self.push_delta(&ChatDelta::from_tree(chunk))
    }

    /// The frames for one chat chunk, read as [`ChatDelta`]. A chunk carrying `error` ends
    /// the stream as [`Self::finish_error`] does.
    pub fn push_delta(&mut self, chunk: &ChatDelta<'_>) -> Vec<Bytes> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        self.ensure_started(&mut out);
        if let Some(err) = &chunk.error {
            let kind = crate::api::error::default_kind_for(axum::http::StatusCode::BAD_GATEWAY);
            let wrapped = serde_json::json!({ "error": err });
            let body = crate::api::error::error_from_value(&wrapped, kind);
            let message = body
                .as_ref()
                .map(|b| b.message.clone())
                .unwrap_or_else(|| err.to_string());
            let mut e = ApiError::new(axum::http::StatusCode::BAD_GATEWAY, kind, message);
            if let Some(b) = body {
                e.body = b;
            }
            out.extend(self.finish_error(&e));
            return out;
        }
        if let Some(u) = &chunk.usage {
            self.usage = Some(usage(u));
        }
        let Some(choice) = &chunk.choice else {
            return out;
        };
        if let Some(r) = choice.reasoning {
            self.reasoning_delta(r, &mut out);
        }
        if let Some(t) = choice.content.filter(|t| !t.is_empty()) {
            self.text_delta(t, &mut out);
        }
        for call in &choice.tool_calls {
            let ordered = self.order.push(call);
            self.call_deltas(ordered, &mut out);
        }
        if let Some(f) = choice.finish_reason {
            self.finish_reason = Some(f.to_string());
            let held = self.order.flush();
            self.call_deltas(held, &mut out);
        }
        out
    }

    fn call_deltas(&mut self, calls: Vec<OrderedCall>, out: &mut Vec<Bytes>) {
        for c in &calls {
            self.call_delta(&c.as_delta(), out);
        }
    }

    /// Closes the open item and sends `response.completed` (or `response.incomplete`) with
    /// the whole output and the usage.
    pub fn finish(&mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        self.ensure_started(&mut out);
        let held = self.order.flush();
        self.call_deltas(held, &mut out);
        let reason = incomplete_reason(self.finish_reason.as_deref());
        self.close(reason.is_some(), &mut out);
        self.finished = true;
        self.response.usage = self.usage;
        let kind = match reason {
            Some(reason) => {
                self.response.status = "incomplete".to_string();
                self.response.incomplete_details = Some(IncompleteDetails {
                    reason: reason.to_string(),
                });
                "response.incomplete"
            }
            None => {
                self.response.status = "completed".to_string();
                "response.completed"
            }
        };
        let response = self.response_json();
        self.emit_response(kind, &response, &mut out);
        out
    }

    /// Ends the stream with a failure: an `error` event, then `response.failed` carrying the
    /// message and code (the error's `code`, else its `type`) and the output so far (an
    /// open item marked `incomplete`). Never a `response.completed`.
    pub fn finish_error(&mut self, err: &ApiError) -> Vec<Bytes> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        self.ensure_started(&mut out);
        self.mark_open_incomplete();
        self.finished = true;
        let code = match &err.body.code {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => err.body.kind.clone(),
        };
        self.emit(
            StreamEvent::Error {
                code: Some(code.clone()),
                message: err.body.message.clone(),
                param: err.body.param.clone(),
            },
            &mut out,
        );
        self.response.status = "failed".to_string();
        self.response.usage = self.usage;
        self.response.error = Some(ResponseError {
            code,
            message: err.body.message.clone(),
        });
        let response = self.response_json();
        self.emit_response("response.failed", &response, &mut out);
        out
    }

    fn ensure_started(&mut self, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        // Both events carry the same object: encoded once.
        let response = self.response_json();
        self.emit_response("response.created", &response, out);
        self.emit_response("response.in_progress", &response, out);
    }

    /// The Response object as it stands, as JSON.
    fn response_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.response).unwrap_or_else(|_| b"{}".to_vec())
    }

    /// An event that carries only the Response object (`response`, its JSON).
    fn emit_response(&mut self, kind: &'static str, response: &[u8], out: &mut Vec<Bytes>) {
        out.push(response_frame(kind, response, self.seq));
        self.seq += 1;
    }

    fn emit(&mut self, event: StreamEvent, out: &mut Vec<Bytes>) {
        let frame = StreamFrame {
            event,
            sequence_number: self.seq,
        };
        self.seq += 1;
        out.push(frame.to_sse());
    }

    fn last_index(&self) -> usize {
        self.response.output.len().saturating_sub(1)
    }

    fn last_id(&self) -> String {
        self.response
            .output
            .last()
            .map(|i| i.id().to_string())
            .unwrap_or_default()
    }

    fn reasoning_delta(&mut self, text: &str, out: &mut Vec<Bytes>) {
        if self.open != Open::Reasoning {
            self.close(false, out);
            let index = self.response.output.len();
            let mut item = reasoning_item(&self.response.id, index, String::new(), "in_progress");
            if let OutputItem::Reasoning(r) = &mut item {
                r.summary.clear();
            }
            self.response.output.push(item.clone());
            self.open = Open::Reasoning;
            self.emit(
                StreamEvent::OutputItemAdded {
                    output_index: index,
                    item,
                },
                out,
            );
            let part = summary_part(String::new());
            let item_id = self.last_id();
            self.emit(
                StreamEvent::ReasoningSummaryPartAdded {
                    item_id,
                    output_index: index,
                    summary_index: 0,
                    part,
                },
                out,
            );
        }
        if let Some(OutputItem::Reasoning(r)) = self.response.output.last_mut() {
            match r.summary.first_mut() {
                Some(p) => p.text.push_str(text),
                None => r.summary.push(summary_part(text.to_string())),
            }
        }
        let (item_id, output_index) = (self.last_id(), self.last_index());
        self.emit(
            StreamEvent::ReasoningSummaryTextDelta {
                item_id,
                output_index,
                summary_index: 0,
                delta: text.to_string(),
            },
            out,
        );
    }

    fn text_delta(&mut self, text: &str, out: &mut Vec<Bytes>) {
        if self.open != Open::Text {
            self.close(false, out);
            let index = self.response.output.len();
            let item = OutputItem::Message(OutputMessage {
                id: item_id(&self.response.id, "msg", index),
                status: "in_progress".to_string(),
                role: "assistant".to_string(),
                content: Vec::new(),
            });
            self.response.output.push(item.clone());
            self.open = Open::Text;
            self.emit(
                StreamEvent::OutputItemAdded {
                    output_index: index,
                    item,
                },
                out,
            );
            let item_id = self.last_id();
            self.emit(
                StreamEvent::ContentPartAdded {
                    item_id,
                    output_index: index,
                    content_index: 0,
                    part: output_text(String::new()),
                },
                out,
            );
        }
        if let Some(OutputItem::Message(m)) = self.response.output.last_mut() {
            match m.content.first_mut() {
                Some(OutputContent::OutputText { text: t, .. }) => t.push_str(text),
                _ => m.content.push(output_text(text.to_string())),
            }
        }
        let (item_id, output_index) = (self.last_id(), self.last_index());
        self.emit(
            StreamEvent::OutputTextDelta {
                item_id,
                output_index,
                content_index: 0,
                delta: text.to_string(),
                logprobs: Vec::new(),
            },
            out,
        );
    }

    fn call_delta(&mut self, call: &ToolCallDelta<'_>, out: &mut Vec<Bytes>) {
        let chat_index = call.index.unwrap_or(0);
        let args = call.arguments.unwrap_or("");
        if let Some(pos) = self.calls.iter().position(|(i, _, _)| *i == chat_index) {
            self.calls[pos].2.push_str(args);
            let output_index = self.calls[pos].1;
            let raw = self.calls[pos].2.clone();
            let streaming = self.open == Open::Call(chat_index);
            match self.response.output.get_mut(output_index) {
                Some(OutputItem::FunctionCall(c)) => {
                    c.arguments = raw;
                    if streaming && !args.is_empty() {
                        let item_id = c.id.clone();
                        self.emit(
                            StreamEvent::FunctionCallArgumentsDelta {
                                item_id,
                                output_index,
                                delta: args.to_string(),
                            },
                            out,
                        );
                    }
                }
                Some(OutputItem::CustomToolCall(c)) if !streaming => c.input = custom_input(&raw),
                _ => {}
            }
            return;
        }
        self.close(false, out);
        let index = self.response.output.len();
        let name = call.name.unwrap_or("");
        let call_id = call.id.unwrap_or("");
        let mut item = call_item(
            &self.response.id,
            index,
            call_id,
            name,
            "",
            "in_progress",
            &self.tools,
        );
        match &mut item {
            OutputItem::FunctionCall(c) => c.arguments = String::new(),
            OutputItem::CustomToolCall(c) => c.input = String::new(),
            _ => {}
        }
        self.response.output.push(item.clone());
        self.calls.push((chat_index, index, String::new()));
        self.open = Open::Call(chat_index);
        self.emit(
            StreamEvent::OutputItemAdded {
                output_index: index,
                item,
            },
            out,
        );
        if !args.is_empty() {
            self.call_delta(call, out);
        }
    }

    /// Sends the closing events of the open item; `truncated` marks it `incomplete`.
    fn close(&mut self, truncated: bool, out: &mut Vec<Bytes>) {
        let open = std::mem::replace(&mut self.open, Open::Nothing);
        let status = if truncated { "incomplete" } else { "completed" };
        let output_index = self.last_index();
        let item_id = self.last_id();
        let Some(item) = self.response.output.last_mut() else {
            return;
        };
        let mut events = Vec::new();
        match (open, &mut *item) {
            (Open::Text, OutputItem::Message(m)) => {
                m.status = status.to_string();
                let text = match m.content.first() {
                    Some(OutputContent::OutputText { text, .. }) => text.clone(),
                    _ => String::new(),
                };
                events.push(StreamEvent::OutputTextDone {
                    item_id: item_id.clone(),
                    output_index,
                    content_index: 0,
                    text: text.clone(),
                    logprobs: Vec::new(),
                });
                events.push(StreamEvent::ContentPartDone {
                    item_id,
                    output_index,
                    content_index: 0,
                    part: output_text(text),
                });
            }
            (Open::Reasoning, OutputItem::Reasoning(r)) => {
                r.status = Some(status.to_string());
                let text = r
                    .summary
                    .first()
                    .map(|p| p.text.clone())
                    .unwrap_or_default();
                events.push(StreamEvent::ReasoningSummaryTextDone {
                    item_id: item_id.clone(),
                    output_index,
                    summary_index: 0,
                    text: text.clone(),
                });
                events.push(StreamEvent::ReasoningSummaryPartDone {
                    item_id,
                    output_index,
                    summary_index: 0,
                    part: summary_part(text),
                });
            }
            (Open::Call(_), OutputItem::FunctionCall(c)) => {
                c.status = status.to_string();
                if c.arguments.trim().is_empty() {
                    c.arguments = "{}".to_string();
                    events.push(StreamEvent::FunctionCallArgumentsDelta {
                        item_id: item_id.clone(),
                        output_index,
                        delta: c.arguments.clone(),
                    });
                }
                events.push(StreamEvent::FunctionCallArgumentsDone {
                    item_id,
                    output_index,
                    name: c.name.clone(),
                    arguments: c.arguments.clone(),
                });
            }
            (Open::Call(chat_index), OutputItem::CustomToolCall(c)) => {
                c.status = status.to_string();
                let raw = self
                    .calls
                    .iter()
                    .find(|(i, _, _)| *i == chat_index)
                    .map(|(_, _, r)| r.as_str())
                    .unwrap_or("");
                c.input = custom_input(raw);
                if !c.input.is_empty() {
                    events.push(StreamEvent::CustomToolCallInputDelta {
                        item_id: item_id.clone(),
                        output_index,
                        delta: c.input.clone(),
                    });
                }
                events.push(StreamEvent::CustomToolCallInputDone {
                    item_id,
                    output_index,
                    input: c.input.clone(),
                });
            }
            _ => return,
        }
        let item = item.clone();
        for e in events {
            self.emit(e, out);
        }
        self.emit(StreamEvent::OutputItemDone { output_index, item }, out);
    }

    fn mark_open_incomplete(&mut self) {
        if self.open == Open::Nothing {
            return;
        }
        self.open = Open::Nothing;
        match self.response.output.last_mut() {
            Some(OutputItem::Message(m)) => m.status = "incomplete".to_string(),
            Some(OutputItem::Reasoning(r)) => r.status = Some("incomplete".to_string()),
            Some(OutputItem::FunctionCall(c)) => c.status = "incomplete".to_string(),
            Some(OutputItem::CustomToolCall(c)) => c.status = "incomplete".to_string(),
            None => {}
        }
    }
}

fn summary_part(text: String) -> SummaryPart {
    SummaryPart {
        kind: "summary_text".to_string(),
        text,
    }
}

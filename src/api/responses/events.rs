//! Responses stream events (`stream: true`): SSE frames `event: <type>\ndata: <json>\n\n`.
//!
//! Shape: <https://platform.openai.com/docs/api-reference/responses-streaming>. Every event
//! carries `type` and a `sequence_number` that grows by one per event of the stream. How a
//! frame is written as SSE bytes is in [`super::frames`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{OutputContent, OutputItem, ResponseObject, SummaryPart};

/// One event of the stream with its `sequence_number` (0, 1, 2, … within a stream).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StreamFrame {
    /// The event and its fields.
    #[serde(flatten)]
    pub event: StreamEvent,
    /// Position in the stream, from 0.
    pub sequence_number: u64,
}

/// A stream event, tagged by `type`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type")]
pub enum StreamEvent {
    /// The response exists (`status: in_progress`, empty output).
    #[serde(rename = "response.created")]
    Created {
        /// The response so far.
        response: ResponseObject,
    },
    /// Generation started.
    #[serde(rename = "response.in_progress")]
    InProgress {
        /// The response so far.
        response: ResponseObject,
    },
    /// The response finished; carries the full output and usage.
    #[serde(rename = "response.completed")]
    Completed {
        /// The final response.
        response: ResponseObject,
    },
    /// The response stopped early (`incomplete_details.reason`).
    #[serde(rename = "response.incomplete")]
    Incomplete {
        /// The final response.
        response: ResponseObject,
    },
    /// The response failed (`error` set).
    #[serde(rename = "response.failed")]
    Failed {
        /// The final response.
        response: ResponseObject,
    },
    /// An output item starts.
    #[serde(rename = "response.output_item.added")]
    OutputItemAdded {
        /// Index in `output`.
        output_index: usize,
        /// The item as far as known (`in_progress`).
        item: OutputItem,
    },
    /// An output item is complete.
    #[serde(rename = "response.output_item.done")]
    OutputItemDone {
        /// Index in `output`.
        output_index: usize,
        /// The complete item.
        item: OutputItem,
    },
    /// A content part of a message starts.
    #[serde(rename = "response.content_part.added")]
    ContentPartAdded {
        /// The message item's id.
        item_id: String,
        /// Index in `output`.
        output_index: usize,
        /// Index in the message's `content`.
        content_index: usize,
        /// The part (empty text).
        part: OutputContent,
    },
    /// A content part is complete.
    #[serde(rename = "response.content_part.done")]
    ContentPartDone {
        /// The message item's id.
        item_id: String,
        /// Index in `output`.
        output_index: usize,
        /// Index in the message's `content`.
        content_index: usize,
        /// The complete part.
        part: OutputContent,
    },
    /// More text of an `output_text` part.
    #[serde(rename = "response.output_text.delta")]
    OutputTextDelta {
        /// The message item's id.
        item_id: String,
        /// Index in `output`.
        output_index: usize,
        /// Index in the message's `content`.
        content_index: usize,
        /// The new text.
        delta: String,
        /// Token log probabilities (empty).
        logprobs: Vec<Value>,
    },
    /// An `output_text` part's full text.
    #[serde(rename = "response.output_text.done")]
    OutputTextDone {
        /// The message item's id.
        item_id: String,
        /// Index in `output`.
        output_index: usize,
        /// Index in the message's `content`.
        content_index: usize,
        /// The whole text.
        text: String,
        /// Token log probabilities (empty).
        logprobs: Vec<Value>,
    },
    /// More arguments of a function call.
    #[serde(rename = "response.function_call_arguments.delta")]
    FunctionCallArgumentsDelta {
        /// The call item's id.
        item_id: String,
        /// Index in `output`.
        output_index: usize,
        /// The new text of the arguments.
        delta: String,
    },
    /// A function call's full arguments.
    #[serde(rename = "response.function_call_arguments.done")]
    FunctionCallArgumentsDone {
        /// The call item's id.
        item_id: String,
        /// Index in `output`.
        output_index: usize,
        /// The function's name.
        name: String,
        /// The whole arguments (JSON text).
        arguments: String,
    },
    /// More input of a custom tool call.
    #[serde(rename = "response.custom_tool_call_input.delta")]
    CustomToolCallInputDelta {
        /// The call item's id.
        item_id: String,
        /// Index in `output`.
        output_index: usize,
        /// The new text.
        delta: String,
    },
    /// A custom tool call's full input.
    #[serde(rename = "response.custom_tool_call_input.done")]
    CustomToolCallInputDone {
        /// The call item's id.
        item_id: String,
        /// Index in `output`.
        output_index: usize,
        /// The whole input.
        input: String,
    },
    /// A reasoning summary part starts.
    #[serde(rename = "response.reasoning_summary_part.added")]
    ReasoningSummaryPartAdded {
        /// The reasoning item's id.
        item_id: String,
        /// Index in `output`.
        output_index: usize,
        /// Index in the item's `summary`.
        summary_index: usize,
        /// The part (empty text).
        part: SummaryPart,
    },
    /// A reasoning summary part is complete.
    #[serde(rename = "response.reasoning_summary_part.done")]
    ReasoningSummaryPartDone {
        /// The reasoning item's id.
        item_id: String,
        /// Index in `output`.
        output_index: usize,
        /// Index in the item's `summary`.
        summary_index: usize,
        /// The complete part.
        part: SummaryPart,
    },
    /// More reasoning summary text.
    #[serde(rename = "response.reasoning_summary_text.delta")]
    ReasoningSummaryTextDelta {
        /// The reasoning item's id.
        item_id: String,
        /// Index in `output`.
        output_index: usize,
        /// Index in the item's `summary`.
        summary_index: usize,
        /// The new text.
        delta: String,
    },
    /// A reasoning summary part's full text.
    #[serde(rename = "response.reasoning_summary_text.done")]
    ReasoningSummaryTextDone {
        /// The reasoning item's id.
        item_id: String,
        /// Index in `output`.
        output_index: usize,
        /// Index in the item's `summary`.
        summary_index: usize,
        /// The whole text.
        text: String,
    },
    /// The stream failed; `response.failed` follows.
    #[serde(rename = "error")]
    Error {
        /// A machine-readable code, if any.
        code: Option<String>,
        /// What went wrong.
        message: String,
        /// The parameter at fault, if any.
        param: Option<String>,
    },
}

impl StreamEvent {
    /// The event's `type` (`response.created`, …, `error`).
    pub fn kind(&self) -> &'static str {
        use StreamEvent::*;
        match self {
            Created { .. } => "response.created",
            InProgress { .. } => "response.in_progress",
            Completed { .. } => "response.completed",
            Incomplete { .. } => "response.incomplete",
            Failed { .. } => "response.failed",
            OutputItemAdded { .. } => "response.output_item.added",
            OutputItemDone { .. } => "response.output_item.done",
            ContentPartAdded { .. } => "response.content_part.added",
            ContentPartDone { .. } => "response.content_part.done",
            OutputTextDelta { .. } => "response.output_text.delta",
            OutputTextDone { .. } => "response.output_text.done",
            FunctionCallArgumentsDelta { .. } => "response.function_call_arguments.delta",
            FunctionCallArgumentsDone { .. } => "response.function_call_arguments.done",
            CustomToolCallInputDelta { .. } => "response.custom_tool_call_input.delta",
            CustomToolCallInputDone { .. } => "response.custom_tool_call_input.done",
            ReasoningSummaryPartAdded { .. } => "response.reasoning_summary_part.added",
            ReasoningSummaryPartDone { .. } => "response.reasoning_summary_part.done",
            ReasoningSummaryTextDelta { .. } => "response.reasoning_summary_text.delta",
            ReasoningSummaryTextDone { .. } => "response.reasoning_summary_text.done",
            Error { .. } => "error",
        }
    }
}

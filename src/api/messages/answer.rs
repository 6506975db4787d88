//! The answer Sluice sends on `POST /v1/messages`: whole (`MessagesResponse`) and as SSE
//! events (`StreamEvent`).

use super::*;

/// A whole Messages answer (`"type": "message"`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MessagesResponse {
    /// `msg_…`.
    pub id: String,
    /// Always `message`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Always `assistant`.
    pub role: String,
    /// The model that answered.
    pub model: String,
    /// The answer's blocks.
    pub content: Vec<ResponseBlock>,
    /// `end_turn`, `max_tokens`, `stop_sequence`, `tool_use`, `refusal`; `null` in
    /// `message_start`.
    pub stop_reason: Option<String>,
    /// The stop sequence that ended the answer, when `stop_reason` is `stop_sequence`.
    pub stop_sequence: Option<String>,
    /// Token counts.
    pub usage: MessagesUsage,
}

/// A content block of an answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseBlock {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// Reasoning.
    Thinking {
        /// The reasoning text.
        thinking: String,
        /// Signature (empty: Sluice cannot sign reasoning from other backends).
        signature: String,
    },
    /// A tool call.
    ToolUse {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
        /// Arguments (a JSON object).
        input: Value,
    },
}

/// `usage` of an answer, in tokens. `input_tokens` excludes cache reads and writes, as
/// Anthropic counts them.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessagesUsage {
    /// Prompt tokens not read from or written to a cache.
    pub input_tokens: u64,
    /// Prompt tokens written to a cache.
    pub cache_creation_input_tokens: u64,
    /// Prompt tokens read from a cache.
    pub cache_read_input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
}

/// One SSE event of a Messages stream, in Anthropic's order: `message_start`, then per block
/// `content_block_start`, `content_block_delta`…, `content_block_stop`, then `message_delta`
/// and `message_stop`; `ping` anywhere; `error` ends a failed stream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// The message with empty `content` and the prompt usage.
    MessageStart {
        /// The message so far.
        message: MessagesResponse,
    },
    /// A block opens at `index` (0, 1, … in order).
    ContentBlockStart {
        /// Block index.
        index: u32,
        /// The empty block (`text: ""`, `thinking: ""`, `input: {}`).
        content_block: ResponseBlock,
    },
    /// A piece of the block at `index`.
    ContentBlockDelta {
        /// Block index.
        index: u32,
        /// The piece.
        delta: BlockDelta,
    },
    /// The block at `index` is complete.
    ContentBlockStop {
        /// Block index.
        index: u32,
    },
    /// The stop reason and the final usage.
    MessageDelta {
        /// `stop_reason`, `stop_sequence`.
        delta: MessageDeltaBody,
        /// Cumulative token counts.
        usage: DeltaUsage,
    },
    /// The end.
    MessageStop,
    /// Keep-alive.
    Ping,
    /// A failure after the stream started.
    Error {
        /// Anthropic's error object.
        error: AnthropicErrorBody,
    },
}

impl StreamEvent {
    /// The event name (the `type`).
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart { .. } => "message_start",
            StreamEvent::ContentBlockStart { .. } => "content_block_start",
            StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            StreamEvent::ContentBlockStop { .. } => "content_block_stop",
            StreamEvent::MessageDelta { .. } => "message_delta",
            StreamEvent::MessageStop => "message_stop",
            StreamEvent::Ping => "ping",
            StreamEvent::Error { .. } => "error",
        }
    }

    /// The SSE frame: `event: <name>\ndata: <json>\n\n`.
    pub fn to_sse(&self) -> Bytes {
        // Written into one buffer (no intermediate JSON string).
        let mut out = Vec::with_capacity(192);
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(self.name().as_bytes());
        out.extend_from_slice(b"\ndata: ");
        let start = out.len();
        if serde_json::to_writer(&mut out, self).is_err() {
            out.truncate(start);
            out.extend_from_slice(
                br#"{"type":"error","error":{"type":"api_error","message":"cannot encode event"}}"#,
            );
        }
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
    }
}

/// A `content_block_delta`'s `delta`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockDelta {
    /// More text.
    TextDelta {
        /// The text.
        text: String,
    },
    /// A fragment of a tool call's arguments (JSON text; fragments concatenate).
    InputJsonDelta {
        /// The fragment.
        partial_json: String,
    },
    /// More reasoning.
    ThinkingDelta {
        /// The text.
        thinking: String,
    },
    /// The thinking block's signature.
    SignatureDelta {
        /// The signature.
        signature: String,
    },
}

/// `message_delta.delta`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MessageDeltaBody {
    /// Why the answer ended.
    pub stop_reason: Option<String>,
    /// The stop sequence met, for `stop_sequence`.
    pub stop_sequence: Option<String>,
}

/// `message_delta.usage`: cumulative counts (tokens). The input counts are present when the
/// backend reported them (they then replace `message_start`'s estimate).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeltaUsage {
    /// Prompt tokens not read from a cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Prompt tokens written to a cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Prompt tokens read from a cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    /// Generated tokens.
    pub output_tokens: u64,
}

//! Anthropic Messages API wire types: the request Sluice reads on `POST /v1/messages` and
//! `/v1/messages/count_tokens`, the answer (whole and as SSE events) it sends back, and
//! Anthropic's error envelope.
//!
//! Shapes follow Anthropic's API reference (<https://docs.anthropic.com/en/api/messages>,
//! <https://docs.anthropic.com/en/docs/build-with-claude/streaming>,
//! <https://docs.anthropic.com/en/api/errors>). Requests keep unknown fields in flattened
//! `extra` maps (an `anthropic` backend receives them untouched; the chat bridge drops them
//! and names them), and content blocks of unknown `type` are kept whole as
//! [`ContentBlock::Other`].

use super::ApiError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST /v1/messages` (and `/v1/messages/count_tokens`) request body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MessagesRequest {
    /// The client-facing model name.
    pub model: String,
    /// The conversation (`user` / `assistant`, and `system` turns of the
    /// `mid-conversation-system` beta).
    pub messages: Vec<Message>,
    /// System prompt: a string or text blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<System>,
    /// Output-token cap (tokens). Required by `/v1/messages`, absent on `count_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature, 0–1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling mass, 0–1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Top-k sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Custom stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    /// `true` for an SSE stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// `{"user_id": …}`: the end user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// Custom tools (`input_schema`) and server tools (`type: web_search_20250305`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ToolDef>>,
    /// How the model may use the tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Extended thinking: `{"type":"enabled","budget_tokens":n}`, `{"type":"adaptive"}`,
    /// `{"type":"disabled"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Thinking>,
    /// Everything else (`context_management`, `output_config`, `service_tier`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MessagesRequest {
    /// Whether the client asked for a stream.
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }
}

/// `system`: one string or text blocks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum System {
    /// Plain text.
    Text(String),
    /// Text blocks (`{"type":"text","text":…,"cache_control":…}`).
    Blocks(Vec<SystemBlock>),
}

/// One block of `system`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SystemBlock {
    /// Always `text`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The text.
    pub text: String,
    /// Other fields (`cache_control`, `citations`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A turn's speaker.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    /// The end user (also carries `tool_result` blocks).
    User,
    /// The model.
    Assistant,
    /// Instructions in the middle of a conversation (beta `mid-conversation-system`).
    System,
}

/// One message of `messages`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Message {
    /// Who speaks.
    pub role: MessageRole,
    /// A string or content blocks.
    pub content: MessageContent,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Message (or `tool_result`) content: a string or blocks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Content blocks.
    Blocks(Vec<ContentBlock>),
}

/// A content block of a request message. Blocks of a type not listed here, or a listed type
/// missing a required field, are kept whole as [`ContentBlock::Other`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    /// `{"type":"text","text":…}`.
    Text {
        /// The text.
        text: String,
        /// `cache_control`, `citations`, …
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
    /// `{"type":"image","source":{"type":"base64"|"url",…}}`.
    Image {
        /// Where the image is.
        source: Source,
        /// `cache_control`, …
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
    /// `{"type":"document","source":{…},"title":…}` (PDF or plain text).
    Document {
        /// Where the document is.
        source: Source,
        /// `title`, `context`, `citations`, `cache_control`, …
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
    /// A tool call made by the assistant.
    ToolUse {
        /// Call id (`toolu_…`), echoed by the `tool_result` that answers it.
        id: String,
        /// Tool name.
        name: String,
        /// Arguments (a JSON object).
        input: Value,
        /// `cache_control`, …
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
    /// A tool's answer, in a user message.
    ToolResult {
        /// The `tool_use` this answers.
        tool_use_id: String,
        /// A string or blocks (text, image); absent for an empty result.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<MessageContent>,
        /// `true` when the tool failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_error: Option<bool>,
        /// `cache_control`, …
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
    /// The model's earlier reasoning, signed.
    Thinking {
        /// The reasoning text.
        thinking: String,
        /// Anthropic's signature over it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
        /// Other fields.
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
    /// Reasoning Anthropic encrypted.
    RedactedThinking {
        /// Opaque data.
        data: String,
        /// Other fields.
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
    /// Any other block (`server_tool_use`, `web_search_tool_result`, `search_result`, …).
    #[serde(untagged)]
    Other(Value),
}

impl ContentBlock {
    /// The block's `type` (`"text"`, …; for [`ContentBlock::Other`] whatever it says, or "").
    pub fn kind(&self) -> &str {
        match self {
            ContentBlock::Text { .. } => "text",
            ContentBlock::Image { .. } => "image",
            ContentBlock::Document { .. } => "document",
            ContentBlock::ToolUse { .. } => "tool_use",
            ContentBlock::ToolResult { .. } => "tool_result",
            ContentBlock::Thinking { .. } => "thinking",
            ContentBlock::RedactedThinking { .. } => "redacted_thinking",
            ContentBlock::Other(v) => v.get("type").and_then(Value::as_str).unwrap_or(""),
        }
    }
}

/// `source` of an image or document block.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Source {
    /// `base64`, `url`, `text` (documents), `content` (documents), `file`.
    #[serde(rename = "type")]
    pub kind: String,
    /// MIME type for `base64` and `text` sources (`image/png`, `application/pdf`, `text/plain`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Base64 data (`base64`) or the text itself (`text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// For `url` sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Other fields (`content` blocks, `file_id`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `metadata`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Metadata {
    /// An opaque end-user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A tool definition: custom (no `type`, or `custom`) or a server tool (`web_search_20250305`,
/// `bash_20250124`, `text_editor_…`, `code_execution_…`, …).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ToolDef {
    /// `custom`, a server tool's versioned type, or absent (custom).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Tool name.
    pub name: String,
    /// What the tool does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the input (custom tools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// Other fields (`cache_control`, `strict`, `max_uses`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ToolDef {
    /// Whether this is a custom tool (one the client runs), not a server tool.
    pub fn is_custom(&self) -> bool {
        matches!(self.kind.as_deref(), None | Some("custom"))
    }
}

/// `tool_choice`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ToolChoice {
    /// The model decides.
    Auto {
        /// At most one tool call per turn.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    /// The model must call some tool.
    Any {
        /// At most one tool call per turn.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    /// The model must call the named tool.
    Tool {
        /// The tool.
        name: String,
        /// At most one tool call per turn.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    /// No tool calls.
    None,
}

/// `thinking`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Thinking {
    /// `enabled`, `disabled` or `adaptive`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Reasoning-token budget (tokens) for `enabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_tokens: Option<u32>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

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
        let data = serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","error":{"type":"api_error","message":"cannot encode event"}}"#
                .to_string()
        });
        Bytes::from(format!("event: {}\ndata: {data}\n\n", self.name()))
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

/// Anthropic's error envelope: `{"type":"error","error":{"type":…,"message":…}}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AnthropicError {
    /// Always `error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The error.
    pub error: AnthropicErrorBody,
}

/// The `error` object of Anthropic's envelope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AnthropicErrorBody {
    /// `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `not_found_error`, `request_too_large`, `rate_limit_error`, `api_error`,
    /// `timeout_error`, `overloaded_error`, `billing_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Human-readable message.
    pub message: String,
}

/// The Anthropic status and error type for a Sluice error.
///
/// 400 and the 4xx Anthropic does not use (405, 409, 422, …) → 400 `invalid_request_error`;
/// 401 `authentication_error`; 402 `billing_error`; 403 `permission_error` (policy and
/// `pii_blocked` refusals too); 404 `not_found_error`; 413 `request_too_large`; 429
/// `rate_limit_error`; 503 (no deployment available, cooldowns) and 529 → 529
/// `overloaded_error`; 504 `timeout_error`; any other 5xx keeps its status with `api_error`.
pub fn anthropic_status(status: StatusCode) -> (StatusCode, &'static str) {
    let keep = |kind| (status, kind);
    match status.as_u16() {
        401 => keep("authentication_error"),
        402 => keep("billing_error"),
        403 => keep("permission_error"),
        404 => keep("not_found_error"),
        413 => keep("request_too_large"),
        429 => keep("rate_limit_error"),
        400..=499 => (StatusCode::BAD_REQUEST, "invalid_request_error"),
        503 | 529 => (overloaded(), "overloaded_error"),
        504 => keep("timeout_error"),
        _ => keep("api_error"),
    }
}

/// HTTP 529, Anthropic's "overloaded".
fn overloaded() -> StatusCode {
    StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
}

impl AnthropicError {
    /// The envelope for a Sluice error (type from [`anthropic_status`]; the message keeps
    /// Sluice's, prefixed with `param` when there is one: "`messages[0].role`: …").
    pub fn from_api(e: &ApiError) -> Self {
        let (_, kind) = anthropic_status(e.status);
        let message = match &e.body.param {
            Some(p) if !p.is_empty() && !e.body.message.contains(p.as_str()) => {
                format!("{p}: {}", e.body.message)
            }
            _ => e.body.message.clone(),
        };
        AnthropicError {
            kind: "error".into(),
            error: AnthropicErrorBody {
                kind: kind.into(),
                message,
            },
        }
    }
}

/// A Sluice error rendered in Anthropic's shape and status, with `Retry-After` kept.
pub fn error_response(e: &ApiError) -> Response {
    let (status, _) = anthropic_status(e.status);
    let body = serde_json::to_string(&AnthropicError::from_api(e)).unwrap_or_else(|_| {
        r#"{"type":"error","error":{"type":"api_error","message":"error"}}"#.to_string()
    });
    let mut resp = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(s) = e.retry_after_s {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::parse_body;
    use serde_json::json;

    #[test]
    fn blocks_of_every_kind_parse_and_round_trip() {
        let body = json!({"model":"m","max_tokens":5,"messages":[
            {"role":"user","content":[
                {"type":"text","text":"a","cache_control":{"type":"ephemeral"}},
                {"type":"image","source":{"type":"base64","media_type":"image/png","data":"AA=="}},
                {"type":"document","source":{"type":"text","media_type":"text/plain","data":"doc"},"title":"T"},
                {"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"r"}],"is_error":true},
                {"type":"search_result","source":"s","title":"x","content":[]}]},
            {"role":"assistant","content":[
                {"type":"thinking","thinking":"hm","signature":"sig"},
                {"type":"redacted_thinking","data":"xx"},
                {"type":"tool_use","id":"t1","name":"f","input":{}}]},
            {"role":"system","content":"mid"}],
            "tool_choice":{"type":"tool","name":"f","disable_parallel_tool_use":true},
            "tools":[{"name":"f","input_schema":{"type":"object"}},{"type":"web_search_20250305","name":"web_search"}],
            "context_management":{"edits":[]}});
        let req: MessagesRequest = parse_body(body.to_string().as_bytes()).unwrap();
        let MessageContent::Blocks(user) = &req.messages[0].content else {
            panic!("blocks")
        };
        let kinds: Vec<&str> = user.iter().map(ContentBlock::kind).collect();
        assert_eq!(
            kinds,
            ["text", "image", "document", "tool_result", "search_result"]
        );
        assert!(matches!(user[4], ContentBlock::Other(_)));
        assert_eq!(req.messages[2].role, MessageRole::System);
        assert!(req.tools.as_ref().unwrap()[0].is_custom());
        assert!(!req.tools.as_ref().unwrap()[1].is_custom());
        assert!(req.extra.contains_key("context_management"));
        assert_eq!(serde_json::to_value(&req).unwrap(), body);
    }

    #[test]
    fn bad_bodies_are_400s_naming_the_field() {
        let e = parse_body::<MessagesRequest>(br#"{"model":"m"}"#).unwrap_err();
        assert_eq!(e.body.param.as_deref(), Some("messages"));
        let e = parse_body::<MessagesRequest>(
            br#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.body.param.as_deref(), Some("messages[0].role"));
        let e = parse_body::<MessagesRequest>(
            br#"{"model":"m","messages":[],"tool_choice":{"type":"sometimes"}}"#,
        )
        .unwrap_err();
        assert_eq!(e.body.param.as_deref(), Some("tool_choice.type"));
    }

    #[test]
    fn errors_map_to_anthropic_types_and_statuses() {
        let cases = [
            (400, 400, "invalid_request_error"),
            (422, 400, "invalid_request_error"),
            (401, 401, "authentication_error"),
            (403, 403, "permission_error"),
            (404, 404, "not_found_error"),
            (413, 413, "request_too_large"),
            (429, 429, "rate_limit_error"),
            (500, 500, "api_error"),
            (502, 502, "api_error"),
            (503, 529, "overloaded_error"),
            (504, 504, "timeout_error"),
        ];
        for (from, to, kind) in cases {
            let (s, k) = anthropic_status(StatusCode::from_u16(from).unwrap());
            assert_eq!((s.as_u16(), k), (to, kind), "{from}");
        }
        let e = ApiError::invalid_request("Invalid value").with_param("messages[0].role");
        assert_eq!(
            serde_json::to_value(AnthropicError::from_api(&e)).unwrap(),
            json!({"type":"error","error":{"type":"invalid_request_error","message":"messages[0].role: Invalid value"}})
        );
    }

    #[test]
    fn sse_frames_name_their_event() {
        let ev = StreamEvent::ContentBlockDelta {
            index: 1,
            delta: BlockDelta::InputJsonDelta {
                partial_json: "{\"a\"".into(),
            },
        };
        assert_eq!(
            ev.to_sse(),
            Bytes::from(
                "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\"\"}}\n\n"
            )
        );
        assert_eq!(
            StreamEvent::MessageStop.to_sse(),
            Bytes::from("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
        );
    }
}

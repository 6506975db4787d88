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

mod answer;
mod error;

pub use answer::*;
pub use error::*;

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

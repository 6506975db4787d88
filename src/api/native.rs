//! A request in an inbound dialect that some backends serve natively (Anthropic Messages on
//! `anthropic` deployments, OpenAI Responses on `openai` deployments with
//! `supports: [responses]`): the client's body as it came, plus its translation to chat
//! completions for every other deployment.
//!
//! The gateway decides per deployment which of the two is sent (see
//! [`NativeRequest::bridged`]); policies, the PII scan, redaction and the token estimate walk
//! the native body (through [`super::visit`]), which holds every string the translation holds
//! and more (fields the bridge leaves out, server tools).

use super::{ApiError, ChatCompletionRequest};
use serde_json::{Map, Value};

/// An inbound API with a native route to some backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Anthropic Messages (`POST /v1/messages`), native on `anthropic` deployments.
    Messages,
    /// OpenAI Responses (`POST /v1/responses`), native on `openai` deployments with the
    /// `responses` capability.
    Responses,
}

impl Dialect {
    /// The name in the log's `endpoint` column: `messages` or `responses`.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Messages => "messages",
            Dialect::Responses => "responses",
        }
    }
}

/// How a request reached its backend, for the log's `route` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The backend's own API for the dialect (body forwarded, answer relayed).
    Native,
    /// Translated to chat completions and back.
    Bridged,
}

impl Route {
    /// `native` or `bridged`.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Native => "native",
            Route::Bridged => "bridged",
        }
    }
}

/// A Messages or Responses request: the native body and its chat translation.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeRequest {
    /// Which API the body speaks.
    pub dialect: Dialect,
    /// The body as the client sent it (Responses: with the stored conversation of
    /// `previous_response_id` written into `input` and that field removed). `model` is the
    /// client-facing name; the provider rewrites it.
    pub body: Map<String, Value>,
    /// The chat completions translation for deployments without the native API, or the 400
    /// the translation gave (a `tool_choice` forcing a server tool, …): then only native
    /// deployments can serve the request.
    pub bridged: Result<ChatCompletionRequest, ApiError>,
    /// Server or hosted tools the translation removed (named in the log row and the
    /// `x-sluice-dropped-tools` header when the route is bridged).
    pub dropped_tools: Vec<String>,
    /// The client's `anthropic-beta` header (Messages), forwarded on the native route.
    pub anthropic_beta: Option<String>,
}

impl NativeRequest {
    /// The client-facing model name (`""` when absent).
    pub fn model(&self) -> &str {
        self.body.get("model").and_then(Value::as_str).unwrap_or("")
    }

    /// Whether the client asked for a stream (`"stream": true`).
    pub fn is_stream(&self) -> bool {
        self.body.get("stream").and_then(Value::as_bool) == Some(true)
    }

    /// The output-token cap: `max_tokens` (Messages) or `max_output_tokens` (Responses).
    pub fn max_output_tokens(&self) -> Option<u64> {
        let key = match self.dialect {
            Dialect::Messages => "max_tokens",
            Dialect::Responses => "max_output_tokens",
        };
        self.body.get(key).and_then(Value::as_u64)
    }

    /// The end user: `metadata.user_id` (Messages) or `user` / `safety_identifier`
    /// (Responses).
    pub fn user(&self) -> Option<String> {
        let v = match self.dialect {
            Dialect::Messages => self.body.get("metadata").and_then(|m| m.get("user_id")),
            Dialect::Responses => self
                .body
                .get("user")
                .or_else(|| self.body.get("safety_identifier")),
        };
        v.and_then(Value::as_str).map(str::to_string)
    }

    /// `metadata` as an object, when given (policies match on it).
    pub fn metadata(&self) -> Option<&Map<String, Value>> {
        self.body.get("metadata").and_then(Value::as_object)
    }
}

/// Whether a string under `key` is conversation text (counted by the token estimate):
/// Messages `text`, `system`, `thinking`, tool-result `content`; Responses `input`,
/// `instructions`, `text`, `arguments`, `output`.
pub fn is_content_key(key: &str) -> bool {
    matches!(
        key,
        "text"
            | "content"
            | "system"
            | "thinking"
            | "input"
            | "instructions"
            | "arguments"
            | "output"
    )
}

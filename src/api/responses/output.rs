//! The Response object (`"object": "response"`) and its output items.
//!
//! Shape: <https://platform.openai.com/docs/api-reference/responses/object>. Output items are
//! tagged by `type`: `message` (`output_text` parts), `function_call`, `custom_tool_call`,
//! `reasoning`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{ReasoningConfig, ResponsesRequest, ResponsesTool, TextConfig};

/// A Response: the body of a non-stream `POST /v1/responses`, `GET /v1/responses/{id}`, and
/// the `response` of the lifecycle stream events.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResponseObject {
    /// `resp_…`.
    pub id: String,
    /// Always `response`.
    pub object: String,
    /// Unix time (s) the response was created.
    pub created_at: i64,
    /// `in_progress | completed | incomplete | failed | cancelled | queued`.
    pub status: String,
    /// Set when `status` is `failed`.
    pub error: Option<ResponseError>,
    /// Set when `status` is `incomplete`.
    pub incomplete_details: Option<IncompleteDetails>,
    /// The request's `instructions`.
    pub instructions: Option<String>,
    /// The request's `max_output_tokens`.
    pub max_output_tokens: Option<u32>,
    /// The model as the client named it.
    pub model: String,
    /// Output items in order; never empty once text or calls were produced.
    pub output: Vec<OutputItem>,
    /// The request's `parallel_tool_calls` (default `true`).
    pub parallel_tool_calls: bool,
    /// The request's `previous_response_id`.
    pub previous_response_id: Option<String>,
    /// The request's `reasoning`.
    pub reasoning: Option<ReasoningConfig>,
    /// Whether Sluice keeps the response.
    pub store: bool,
    /// The request's `temperature`.
    pub temperature: Option<f64>,
    /// The request's `text` (default `{"format":{"type":"text"}}`).
    pub text: TextConfig,
    /// The request's `tool_choice` (default `"auto"`).
    pub tool_choice: Value,
    /// The request's `tools`.
    pub tools: Vec<ResponsesTool>,
    /// The request's `top_p`.
    pub top_p: Option<f64>,
    /// The request's `truncation` (default `disabled`).
    pub truncation: String,
    /// Token counts; `null` until the response is done.
    pub usage: Option<ResponseUsage>,
    /// The request's `user`.
    pub user: Option<String>,
    /// The request's `metadata` (default `{}`).
    pub metadata: Map<String, Value>,
}

impl ResponseObject {
    /// A response `in_progress` with no output yet, echoing `req`'s parameters.
    pub fn start(id: &str, created_at: i64, req: &ResponsesRequest) -> Self {
        let text = req.text.clone().unwrap_or_else(|| TextConfig {
            format: Some(super::TextFormat {
                kind: "text".to_string(),
                name: None,
                schema: None,
                description: None,
                strict: None,
                extra: Map::new(),
            }),
            verbosity: None,
            extra: Map::new(),
        });
        ResponseObject {
            id: id.to_string(),
            object: "response".to_string(),
            created_at,
            status: "in_progress".to_string(),
            error: None,
            incomplete_details: None,
            instructions: req.instructions.clone(),
            max_output_tokens: req.max_output_tokens,
            model: req.model.clone(),
            output: Vec::new(),
            parallel_tool_calls: req.parallel_tool_calls.unwrap_or(true),
            previous_response_id: req.previous_response_id.clone(),
            reasoning: req.reasoning.clone(),
            store: req.wants_store(),
            temperature: req.temperature,
            text,
            tool_choice: req.tool_choice.clone().unwrap_or_else(|| "auto".into()),
            tools: req.tools.clone().unwrap_or_default(),
            top_p: req.top_p,
            truncation: req
                .truncation
                .clone()
                .unwrap_or_else(|| "disabled".to_string()),
            usage: None,
            user: req.user.clone(),
            metadata: req.metadata.clone().unwrap_or_default(),
        }
    }

    /// The text of every `output_text` part of every message item, joined.
    pub fn output_text(&self) -> String {
        let mut out = String::new();
        for item in &self.output {
            if let OutputItem::Message(m) = item {
                for c in &m.content {
                    if let OutputContent::OutputText { text, .. } = c {
                        out.push_str(text);
                    }
                }
            }
        }
        out
    }
}

/// `error` of a failed response: `{"code","message"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResponseError {
    /// A machine-readable code (`server_error`, `rate_limit_exceeded`, an upstream's code).
    pub code: String,
    /// What went wrong.
    pub message: String,
}

/// `incomplete_details`: `{"reason": "max_output_tokens" | "content_filter"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IncompleteDetails {
    /// Why the response stopped early.
    pub reason: String,
}

/// `usage`, in tokens.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ResponseUsage {
    /// Tokens of the input (instructions, items, tools).
    pub input_tokens: u64,
    /// `{"cached_tokens"}`: input tokens served from the prompt cache.
    pub input_tokens_details: InputTokensDetails,
    /// Tokens generated, reasoning included.
    pub output_tokens: u64,
    /// `{"reasoning_tokens"}`: output tokens spent reasoning.
    pub output_tokens_details: OutputTokensDetails,
    /// `input_tokens + output_tokens`.
    pub total_tokens: u64,
}

/// `usage.input_tokens_details`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct InputTokensDetails {
    /// Input tokens read from the prompt cache.
    #[serde(default)]
    pub cached_tokens: u64,
}

/// `usage.output_tokens_details`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct OutputTokensDetails {
    /// Output tokens spent reasoning.
    #[serde(default)]
    pub reasoning_tokens: u64,
}

/// One item of `output`, tagged by `type`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem {
    /// An assistant message.
    Message(OutputMessage),
    /// A call to a function tool.
    FunctionCall(OutputFunctionCall),
    /// A call to a custom (freeform) tool.
    CustomToolCall(OutputCustomToolCall),
    /// Reasoning (summary parts).
    Reasoning(OutputReasoning),
}

impl OutputItem {
    /// The item's id (`msg_…`, `fc_…`, `ctc_…`, `rs_…`).
    pub fn id(&self) -> &str {
        match self {
            OutputItem::Message(m) => &m.id,
            OutputItem::FunctionCall(c) => &c.id,
            OutputItem::CustomToolCall(c) => &c.id,
            OutputItem::Reasoning(r) => &r.id,
        }
    }
}

/// `{"type":"message","id","status","role":"assistant","content":[…]}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutputMessage {
    /// `msg_…`.
    pub id: String,
    /// `in_progress | completed | incomplete`.
    pub status: String,
    /// Always `assistant`.
    pub role: String,
    /// `output_text` and `refusal` parts.
    pub content: Vec<OutputContent>,
}

/// A part of an output message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputContent {
    /// `{"type":"output_text","text","annotations":[],"logprobs":[]}`.
    OutputText {
        /// The text.
        text: String,
        /// Citations (always empty from a bridged backend).
        #[serde(default)]
        annotations: Vec<Value>,
        /// Token log probabilities (empty unless asked for).
        #[serde(default)]
        logprobs: Vec<Value>,
    },
    /// `{"type":"refusal","refusal"}`.
    Refusal {
        /// Why the model refused.
        refusal: String,
    },
}

/// `{"type":"function_call","id","call_id","name","arguments","status"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutputFunctionCall {
    /// `fc_…`.
    pub id: String,
    /// The id the matching `function_call_output` names.
    pub call_id: String,
    /// The function's name (inside `namespace`, when set).
    pub name: String,
    /// Arguments as a JSON text.
    pub arguments: String,
    /// `in_progress | completed | incomplete`.
    pub status: String,
    /// The namespace tool the function belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `{"type":"custom_tool_call","id","call_id","name","input","status"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutputCustomToolCall {
    /// `ctc_…`.
    pub id: String,
    /// The id the matching `custom_tool_call_output` names.
    pub call_id: String,
    /// The tool's name.
    pub name: String,
    /// The text the model wrote for the tool.
    pub input: String,
    /// `in_progress | completed | incomplete`.
    pub status: String,
    /// The namespace tool the tool belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `{"type":"reasoning","id","summary":[…],"status"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutputReasoning {
    /// `rs_…`.
    pub id: String,
    /// `summary_text` parts.
    pub summary: Vec<SummaryPart>,
    /// `in_progress | completed | incomplete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// `{"type":"summary_text"|"reasoning_text","text"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SummaryPart {
    /// `summary_text` (in `summary`) or `reasoning_text` (in `content`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The text.
    pub text: String,
}

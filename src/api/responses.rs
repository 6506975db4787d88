//! OpenAI Responses API wire types (`POST /v1/responses`): the request Sluice reads.
//!
//! Shapes follow the API reference (<https://platform.openai.com/docs/api-reference/responses>)
//! and the bodies real clients send (Codex CLI, the openai SDKs; captured under
//! `tests/fixtures/responses/`). The response object and the stream events are in
//! [`output`] and [`events`]; the events' SSE bytes in [`frames`].
//!
//! Nothing a client may send is refused for being unknown: every struct keeps unknown fields
//! in a flattened `extra` map, an input item or a tool of a type Sluice does not know is kept
//! as its raw JSON value ([`InputItem::Other`], [`ResponsesTool::Hosted`]), and a content part
//! of any type parses. Only a known item or tool type with an ill-typed field is a 400.

pub mod events;
pub mod frames;
pub mod output;

pub use events::{StreamEvent, StreamFrame};
pub use frames::response_frame;
pub use output::{
    IncompleteDetails, OutputContent, OutputItem, ResponseError, ResponseObject, ResponseUsage,
    SummaryPart,
};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// `POST /v1/responses` request body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ResponsesRequest {
    /// The client-facing model name.
    pub model: String,
    /// A string (one user message) or a list of items; absent when only
    /// `previous_response_id` continues a conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<ResponsesInput>,
    /// A system (developer) message put before the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Function, namespace, custom and hosted tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ResponsesTool>>,
    /// `"auto" | "none" | "required" | {"type":"function","name":…} | {"type":"custom",…}
    /// | {"type":"allowed_tools",…} | {"type":"<hosted tool>"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// Allow several tool calls in one turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// `{"format": {...}, "verbosity": "low|medium|high"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextConfig>,
    /// `{"effort": "minimal|low|medium|high|…", "summary": "auto|concise|detailed"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<ReasoningConfig>,
    /// Cap on generated tokens, reasoning included (tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// Sampling temperature, 0–2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling mass, 0–1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Sampling seed (not in OpenAI's reference; sent through `extra_body` by SDKs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Free key-value metadata (string values, ≤ 16 pairs at OpenAI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// End-user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Keep the response for `previous_response_id` and `GET` (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<bool>,
    /// Continue the conversation of a stored response (`resp_…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_response_id: Option<String>,
    /// Extra output to include (`reasoning.encrypted_content`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<String>>,
    /// Prompt-cache routing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_cache_key: Option<String>,
    /// `auto | disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncation: Option<String>,
    /// `true` for an SSE stream of [`StreamEvent`]s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Everything else (`client_metadata`, `service_tier`, `stream_options`, …), passed
    /// through to backends that serve Responses natively.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResponsesRequest {
    /// Whether the client asked for a stream.
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Whether the response is to be kept (`store`, default `true`).
    pub fn wants_store(&self) -> bool {
        self.store.unwrap_or(true)
    }

    /// The input as a list of items: a string input becomes one user message.
    pub fn input_items(&self) -> Vec<InputItem> {
        match &self.input {
            None => Vec::new(),
            Some(ResponsesInput::Items(items)) => items.clone(),
            Some(ResponsesInput::Text(text)) => vec![InputItem::Message(InputMessage {
                role: "user".to_string(),
                content: MessageContent::Text(text.clone()),
                id: None,
                status: None,
                extra: Map::new(),
            })],
        }
    }
}

/// `input`: one string or a list of items.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum ResponsesInput {
    /// One user message.
    Text(String),
    /// Items in conversation order.
    Items(Vec<InputItem>),
}

impl<'de> Deserialize<'de> for ResponsesInput {
    /// A string or an array of items; an item that does not parse is named by its index
    /// (`input[3]: missing field `call_id``).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(ResponsesInput::Text(s)),
            Value::Array(values) => {
                let mut items = Vec::with_capacity(values.len());
                for (i, v) in values.into_iter().enumerate() {
                    let item = InputItem::deserialize(v)
                        .map_err(|e| D::Error::custom(format!("input[{i}]: {e}")))?;
                    items.push(item);
                }
                Ok(ResponsesInput::Items(items))
            }
            _ => Err(D::Error::custom(
                "expected a string or an array of input items",
            )),
        }
    }
}

/// One item of `input`. Items are tagged by `type`; a message may omit it (the SDKs' "easy
/// input message" `{"role", "content"}`). Unknown types are kept raw in [`InputItem::Other`].
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InputItem {
    /// A message of `user`, `system`, `developer` or `assistant`.
    Message(InputMessage),
    /// A call the model made to a function tool.
    FunctionCall(FunctionCallItem),
    /// The result of a function call.
    FunctionCallOutput(CallOutputItem),
    /// The model's reasoning from an earlier turn.
    Reasoning(ReasoningItem),
    /// A call the model made to a custom (freeform) tool.
    CustomToolCall(CustomToolCallItem),
    /// The result of a custom tool call.
    CustomToolCallOutput(CallOutputItem),
    /// Any other item (`item_reference`, `compaction`, `web_search_call`, …), unchanged.
    #[serde(untagged)]
    Other(Value),
}

impl<'de> Deserialize<'de> for InputItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let kind = match v.get("type") {
            Some(Value::String(t)) => t.clone(),
            None if v.get("role").is_some() => "message".to_string(),
            _ => return Ok(InputItem::Other(v)),
        };
        let item = match kind.as_str() {
            "message" => InputItem::Message(from_value(v)?),
            "function_call" => InputItem::FunctionCall(from_value(v)?),
            "function_call_output" => InputItem::FunctionCallOutput(from_value(v)?),
            "reasoning" => InputItem::Reasoning(from_value(v)?),
            "custom_tool_call" => InputItem::CustomToolCall(from_value(v)?),
            "custom_tool_call_output" => InputItem::CustomToolCallOutput(from_value(v)?),
            _ => InputItem::Other(v),
        };
        Ok(item)
    }
}

/// Parses `v` without its `type` tag into `T` (so `T`'s `extra` never holds the tag), as a
/// deserializer error.
fn from_value<T: serde::de::DeserializeOwned, E: serde::de::Error>(mut v: Value) -> Result<T, E> {
    if let Some(map) = v.as_object_mut() {
        map.remove("type");
    }
    serde_json::from_value(v).map_err(E::custom)
}

/// A message item.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InputMessage {
    /// `user | system | developer | assistant`.
    pub role: String,
    /// A string or content parts.
    pub content: MessageContent,
    /// Item id (`msg_…`), when the client sends one back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `in_progress | completed | incomplete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A message's content: a string or parts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Typed parts.
    Parts(Vec<InputContent>),
}

/// One content part: `input_text`, `output_text`, `refusal` (text), `input_image`
/// (`image_url` or `file_id`), `input_file` (`file_data`, `file_id`, `file_url`, `filename`),
/// or any other type (kept in `extra`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InputContent {
    /// The part's type.
    #[serde(rename = "type")]
    pub kind: String,
    /// For `input_text` / `output_text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// For `refusal` parts of assistant messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// For `input_image`: an http(s) URL or a `data:` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// For `input_image`: `auto | low | high`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For `input_image` / `input_file`: an uploaded file's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    /// For `input_file`: a `data:` URL or base64 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_data: Option<String>,
    /// For `input_file`: the file's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// For `input_file`: a URL to fetch it from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_url: Option<String>,
    /// Other fields (`annotations`, `logprobs`, …), kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A `function_call` item.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FunctionCallItem {
    /// The id that ties the call to its `function_call_output`.
    pub call_id: String,
    /// The function's name (inside `namespace`, when set).
    pub name: String,
    /// Arguments as a JSON text.
    #[serde(default)]
    pub arguments: String,
    /// The namespace tool the function belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Item id (`fc_…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `in_progress | completed | incomplete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A `function_call_output` or `custom_tool_call_output` item.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CallOutputItem {
    /// The call this answers.
    pub call_id: String,
    /// A string, or parts (`input_text`, `input_image`, `input_file`).
    pub output: MessageContent,
    /// Item id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `in_progress | completed | incomplete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A `custom_tool_call` item: a freeform tool's input is plain text, not JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CustomToolCallItem {
    /// The id that ties the call to its output.
    pub call_id: String,
    /// The tool's name.
    pub name: String,
    /// The text the model wrote for the tool.
    #[serde(default)]
    pub input: String,
    /// The namespace tool the tool belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Item id (`ctc_…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A `reasoning` item.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReasoningItem {
    /// Item id (`rs_…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Summary parts `{"type":"summary_text","text":…}`.
    #[serde(default)]
    pub summary: Vec<SummaryPart>,
    /// Raw reasoning parts `{"type":"reasoning_text","text":…}`, when the backend shows them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<SummaryPart>>,
    /// Opaque reasoning state of OpenAI's models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted_content: Option<String>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One entry of `tools`, tagged by `type`. Unknown types are hosted tools, kept raw.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponsesTool {
    /// A function tool in the flat Responses shape.
    Function(FunctionTool),
    /// A group of function/custom tools under one name (`namespace`).
    Namespace(NamespaceTool),
    /// A freeform tool: the model writes plain text (optionally following a grammar).
    Custom(CustomTool),
    /// A tool OpenAI runs (`web_search`, `file_search`, `code_interpreter`, `mcp`, …).
    #[serde(untagged)]
    Hosted(Value),
}

impl ResponsesTool {
    /// The tool's `type` (`function`, `namespace`, `custom`, `web_search`, …).
    pub fn kind(&self) -> &str {
        match self {
            ResponsesTool::Function(_) => "function",
            ResponsesTool::Namespace(_) => "namespace",
            ResponsesTool::Custom(_) => "custom",
            ResponsesTool::Hosted(v) => v.get("type").and_then(Value::as_str).unwrap_or(""),
        }
    }
}

impl<'de> Deserialize<'de> for ResponsesTool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let Some(kind) = v.get("type").and_then(Value::as_str).map(str::to_string) else {
            return Err(D::Error::custom("a tool needs a string `type`"));
        };
        Ok(match kind.as_str() {
            "function" => ResponsesTool::Function(from_value(v)?),
            "namespace" => ResponsesTool::Namespace(from_value(v)?),
            "custom" => ResponsesTool::Custom(from_value(v)?),
            _ => ResponsesTool::Hosted(v),
        })
    }
}

/// `{"type":"function","name","description","parameters","strict"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FunctionTool {
    /// Function name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Enforce the schema exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `{"type":"namespace","name","description","tools":[…]}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NamespaceTool {
    /// The namespace name used in calls (`crm`).
    pub name: String,
    /// What the group is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The function and custom tools of the group.
    #[serde(default)]
    pub tools: Vec<ResponsesTool>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `{"type":"custom","name","description","format"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CustomTool {
    /// Tool name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `{"type":"text"}` or `{"type":"grammar","syntax":"lark|regex","definition":…}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Value>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `text`: output format and verbosity.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TextConfig {
    /// `{"type":"text"}`, `{"type":"json_object"}` or
    /// `{"type":"json_schema","name","schema","description","strict"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<TextFormat>,
    /// `low | medium | high`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verbosity: Option<String>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `text.format`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TextFormat {
    /// `text | json_object | json_schema`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For `json_schema`: the schema's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// For `json_schema`: the JSON Schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// For `json_schema`: what the output is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// For `json_schema`: enforce the schema exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `reasoning`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReasoningConfig {
    /// `none | minimal | low | medium | high | xhigh`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<String>,
    /// `auto | concise | detailed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Other fields (`generate_summary`), kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `POST /v1/responses/input_tokens` answer: `{"object":"response.input_tokens","input_tokens"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InputTokens {
    /// Always `response.input_tokens`.
    pub object: String,
    /// Tokens the input would take (an estimate where the backend cannot count).
    pub input_tokens: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::parse_body;

    #[test]
    fn items_of_every_kind_parse_and_unknown_ones_are_kept() {
        let body = br#"{"model":"m","input":[
            {"role":"user","content":"hi"},
            {"type":"message","role":"developer","content":[{"type":"input_text","text":"be brief"},{"type":"input_image","image_url":"data:image/png;base64,AA=="}]},
            {"type":"function_call","call_id":"c1","name":"f","arguments":"{}","namespace":"ns"},
            {"type":"function_call_output","call_id":"c1","output":"42"},
            {"type":"reasoning","summary":[{"type":"summary_text","text":"t"}],"encrypted_content":"x"},
            {"type":"custom_tool_call","call_id":"c2","name":"patch","input":"*** Begin"},
            {"type":"custom_tool_call_output","call_id":"c2","output":[{"type":"input_text","text":"ok"}]},
            {"type":"item_reference","id":"msg_1"},
            {"weird":true}],
            "tools":[{"type":"web_search","external_web_access":false},{"type":"custom","name":"patch"}],
            "client_metadata":{"a":"b"}}"#;
        let req: ResponsesRequest = parse_body(body).unwrap();
        let items = req.input_items();
        assert_eq!(items.len(), 9);
        assert!(matches!(&items[0], InputItem::Message(m) if m.role == "user"));
        assert!(
            matches!(&items[2], InputItem::FunctionCall(c) if c.namespace.as_deref() == Some("ns"))
        );
        assert!(matches!(&items[6], InputItem::CustomToolCallOutput(_)));
        assert_eq!(
            items[7],
            InputItem::Other(serde_json::json!({"type":"item_reference","id":"msg_1"}))
        );
        assert_eq!(req.tools.as_ref().unwrap()[0].kind(), "web_search");
        assert_eq!(req.extra["client_metadata"]["a"], "b");
        // A round trip keeps every item and tool as sent (messages gain their `type`).
        let out = serde_json::to_value(&req).unwrap();
        assert_eq!(out["input"][0]["type"], "message");
        assert_eq!(out["input"][7]["type"], "item_reference");
        assert_eq!(out["input"][8], serde_json::json!({"weird":true}));
        assert_eq!(out["tools"][0]["external_web_access"], false);
        assert_eq!(out["tools"][1]["type"], "custom");
    }

    #[test]
    fn a_known_item_with_a_bad_field_is_a_400() {
        let e = parse_body::<ResponsesRequest>(
            br#"{"model":"m","input":[{"type":"function_call","name":"f"}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        assert!(
            e.body.message.contains("input[0]: missing field `call_id`"),
            "{}",
            e.body.message
        );
        assert_eq!(e.body.param.as_deref(), Some("input"));
        let e =
            parse_body::<ResponsesRequest>(br#"{"model":"m","tools":[{"name":"x"}]}"#).unwrap_err();
        assert!(e.body.message.contains("type"), "{}", e.body.message);
    }

    #[test]
    fn string_input_is_one_user_message() {
        let req: ResponsesRequest = parse_body(br#"{"model":"m","input":"hi"}"#).unwrap();
        assert!(req.wants_store());
        assert!(!req.is_stream());
        let items = req.input_items();
        assert!(matches!(&items[..], [InputItem::Message(m)]
            if m.role == "user" && m.content == MessageContent::Text("hi".into())));
    }
}

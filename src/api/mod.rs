//! OpenAI wire types: requests Sluice reads, plus the error envelope.
//!
//! Shapes follow the OpenAI API reference
//! (<https://platform.openai.com/docs/api-reference/chat/create>,
//! `/completions`, `/embeddings`, `/models`). Every request struct keeps the fields it does
//! not know in a flattened `extra` map, so an OpenAI-compatible backend receives them untouched.
//!
//! Layer: wire types with no dependencies on the rest of Sluice, the error envelope, and
//! [`visit`], the one walk over every string of a request.

pub mod answer_view;
pub mod chat_delta;
pub mod chunk_view;
pub mod error;
pub mod extra_body;
pub mod json;
pub mod messages;
pub mod native;
pub mod native_summary;
pub mod request;
pub mod responses;
pub mod summary;
pub mod visit;

pub use error::{ApiError, ErrorBody};
pub use extra_body::parse_request;
pub use request::{Endpoint, RequestBody};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST /v1/chat/completions` request body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChatCompletionRequest {
    /// The client-facing model name (a configured model or a deployment name).
    pub model: String,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// `true` for an SSE stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// `{"include_usage": bool}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Sampling temperature, 0–2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling mass, 0–1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Top-k sampling (not in OpenAI's API; llama.cpp, vLLM, Ollama, Anthropic have it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Number of choices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// Stop sequences: a string or an array of strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// Legacy completion-token cap (tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Completion-token cap (tokens); takes precedence over `max_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    /// Sampling seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Presence penalty, -2–2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Frequency penalty, -2–2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// Return log probabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    /// Alternatives per position, 0–20 (needs `logprobs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
    /// Function tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// `"auto" | "none" | "required" | {"type":"function","function":{"name":…}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// Allow several tool calls in one turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// `{"type":"text"|"json_object"|"json_schema", "json_schema":{…}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// End-user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Free key-value metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// Everything else, passed through untouched to OpenAI-compatible backends.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatCompletionRequest {
    /// Whether the client asked for a stream.
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Whether the client asked for the trailing usage chunk.
    pub fn wants_stream_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }

    /// The completion-token cap the client asked for: `max_completion_tokens`, else `max_tokens`.
    pub fn max_output_tokens(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }
}

/// `stream_options`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StreamOptions {
    /// Ask for the trailing usage chunk (empty `choices`, totals in `usage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    /// Other options, passed through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `stop`: one string or several.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Stop {
    /// A single stop sequence.
    One(String),
    /// Several stop sequences.
    Many(Vec<String>),
}

impl Stop {
    /// The stop sequences as a list (empty strings dropped).
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s.clone()],
            Stop::Many(v) => v.clone(),
        }
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect()
    }
}

/// A message role.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions from the application (older name of `developer`).
    System,
    /// Instructions from the application (newer OpenAI name).
    Developer,
    /// The end user.
    User,
    /// The model.
    Assistant,
    /// A tool result.
    Tool,
    /// Legacy function result.
    Function,
}

/// One message of `messages`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChatMessage {
    /// Who speaks.
    pub role: Role,
    /// Text or parts; `null` for an assistant message that only calls tools.
    #[serde(default)]
    pub content: Option<Content>,
    /// Optional participant name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tool calls made by the assistant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// For `tool` messages: the call this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Everything else (e.g. `refusal`), passed through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Message content: a string or an array of parts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Typed parts (`text`, `image_url`, `input_audio`, `file`, …).
    Parts(Vec<ContentPart>),
}

impl Content {
    /// Appends each text piece to `out`.
    pub fn push_texts<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Content::Text(s) => out.push(s),
            Content::Parts(parts) => {
                for p in parts {
                    if let Some(t) = &p.text {
                        out.push(t);
                    }
                }
            }
        }
    }

    /// All text joined (parts separated by nothing, as OpenAI concatenates them).
    pub fn joined_text(&self) -> String {
        let mut v = Vec::new();
        self.push_texts(&mut v);
        v.concat()
    }
}

/// One content part.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContentPart {
    /// `text`, `image_url`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// For `text` parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// For `image_url` parts: `{"url": "https://…" | "data:image/png;base64,…", "detail"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<ImageUrl>,
    /// Other part fields, passed through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `image_url` of a content part.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageUrl {
    /// An http(s) URL or a `data:` URL.
    pub url: String,
    /// `auto | low | high`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A function tool definition.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tool {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function.
    pub function: FunctionDef,
}

/// A function's name, description and JSON Schema parameters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FunctionDef {
    /// Function name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Other fields (`strict`), passed through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A tool call in an assistant message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ToolCall {
    /// Call id, echoed by the `tool` message that answers it.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// Name and arguments (a JSON text).
    pub function: FunctionCall,
}

fn function_type() -> String {
    "function".to_string()
}

/// `{"name": …, "arguments": "<JSON text>"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FunctionCall {
    /// Function name.
    pub name: String,
    /// Arguments as a JSON text.
    #[serde(default)]
    pub arguments: String,
}

/// `response_format`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResponseFormat {
    /// `text | json_object | json_schema`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For `json_schema`: `{"name", "schema", "strict"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<Value>,
}

/// `POST /v1/completions` and `POST /v1/embeddings` request bodies: Sluice reads `model`,
/// `stream`, the text (`prompt` / `input`) and a few sampling fields; the rest passes through.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GenericRequest {
    /// The client-facing model name.
    pub model: String,
    /// `true` for an SSE stream (completions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// `{"include_usage": bool}` (completions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Everything else (`prompt`, `input`, `max_tokens`, …), passed through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl GenericRequest {
    /// Whether the client asked for a stream.
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Whether the client asked for the trailing usage chunk.
    pub fn wants_stream_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }
}

/// `usage` of a response, in tokens.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Usage {
    /// Tokens in the prompt.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Tokens generated.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Sum of the two.
    #[serde(default)]
    pub total_tokens: u64,
    /// Of `prompt_tokens`, those read from the provider's prompt cache
    /// (`prompt_tokens_details.cached_tokens`; Anthropic's `cache_read_input_tokens`). Priced
    /// at `price.cached_input`. Not part of the wire shape (the details object is kept as sent).
    #[serde(skip)]
    pub cached_tokens: u64,
    /// Of `prompt_tokens`, those written to the provider's prompt cache (Anthropic's
    /// `cache_creation_input_tokens`). Priced at `price.cache_write`.
    #[serde(skip)]
    pub cache_write_tokens: u64,
}

impl Usage {
    /// Builds a usage with `total_tokens = prompt + completion` and no cached tokens.
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            cached_tokens: 0,
            cache_write_tokens: 0,
        }
    }

    /// Reads an OpenAI `usage` object: `prompt_tokens`, `completion_tokens`,
    /// `prompt_tokens_details.cached_tokens`, and `cache_creation_input_tokens` (Sluice's
    /// Anthropic translation and LiteLLM put cache writes there). Missing counts are 0; cached
    /// counts are capped at `prompt_tokens`.
    pub fn from_openai(u: &serde_json::Value) -> Self {
        answer_view::ChatUsage::from_tree(u).to_usage()
    }
}

/// [`Value::pointer`] without its allocations (it copies every token of the path to undo
/// `~` escapes): `path` is `/`-separated keys and array indexes (`"/choices/0/delta"`), with
/// no `~` escapes; `""` is the value itself.
pub trait At {
    /// The value at `path`, if there is one.
    fn at(&self, path: &str) -> Option<&Value>;
}

impl At for Value {
    fn at(&self, path: &str) -> Option<&Value> {
        if path.is_empty() {
            return Some(self);
        }
        path.strip_prefix('/')?
            .split('/')
            .try_fold(self, |v, key| match v {
                Value::Object(m) => m.get(key),
                // As `pointer`: digits only, no leading zero.
                Value::Array(a) if key == "0" || !key.starts_with(['0', '+']) => {
                    key.parse::<usize>().ok().and_then(|i| a.get(i))
                }
                Value::Array(_) => None,
                _ => None,
            })
    }
}

/// Parses a JSON request body into `T`, mapping failures to OpenAI's 400 errors:
/// invalid JSON → "We could not parse the JSON body of your request"; a missing or ill-typed
/// field → a message naming it, with `param` set to its path (`messages[0].role`).
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // One pass from bytes to the typed request. Only a body that fails is read a second time,
    // with serde_path_to_error, to name the failing path (tracking the path costs an
    // allocation per key, so the good bodies skip it).
    if let Ok(value) = json::from_bytes(body) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| deserialize_error(&e))?;
    de.end().map_err(|e| unparsable(&e))?;
    Ok(value)
}

/// The 400 for a failed typed parse (see [`parse_body`]).
fn deserialize_error(e: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.inner();
    if inner.is_syntax() || inner.is_eof() || inner.is_io() {
        return unparsable(inner);
    }
    let inner = inner.to_string();
    if path == "." && inner.starts_with("invalid type") {
        return ApiError::invalid_request("The request body must be a JSON object.");
    }
    let param = param_of(&path, &inner);
    if param.is_empty() {
        // The body itself (a duplicate top-level field): no path to name.
        return ApiError::invalid_request(format!("Invalid request body: {inner}"));
    }
    ApiError::invalid_request(format!("Invalid value for `{param}`: {inner}")).with_param(param)
}

fn unparsable(e: &serde_json::Error) -> ApiError {
    ApiError::invalid_request(format!(
        "We could not parse the JSON body of your request. ({e})"
    ))
}

/// The parameter a serde error is about: the path, plus the missing field's name for
/// "missing field `x`" errors.
fn param_of(path: &str, inner: &str) -> String {
    let base = if path == "." { "" } else { path };
    if let Some(rest) = inner.strip_prefix("missing field `")
        && let Some(field) = rest.split('`').next()
    {
        return if base.is_empty() {
            field.to_string()
        } else {
            format!("{base}.{field}")
        };
    }
    base.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hi","x_msg":1}],"mirostat":2,"stream":true}"#;
        let req: ChatCompletionRequest = parse_body(body).unwrap();
        assert_eq!(req.extra.get("mirostat"), Some(&Value::from(2)));
        let out = serde_json::to_value(&req).unwrap();
        assert_eq!(out["messages"][0]["x_msg"], Value::from(1));
        assert_eq!(out["mirostat"], Value::from(2));
        assert_eq!(out["stream"], Value::Bool(true));
        assert!(out.get("temperature").is_none());
    }

    #[test]
    fn errors_name_the_param() {
        let e = parse_body::<ChatCompletionRequest>(br#"{"model":"m"}"#).unwrap_err();
        assert_eq!(e.body.param.as_deref(), Some("messages"));
        let e = parse_body::<ChatCompletionRequest>(
            br#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.body.param.as_deref(), Some("messages[0].role"));
        let e = parse_body::<ChatCompletionRequest>(
            br#"{"model":"m","messages":[],"temperature":"hot"}"#,
        )
        .unwrap_err();
        assert_eq!(e.body.param.as_deref(), Some("temperature"));
        let e = parse_body::<ChatCompletionRequest>(b"{not json").unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        assert_eq!(e.body.param, None);
        // A duplicate top-level field has no path: the body is named, not an empty param
        // (it said "Invalid value for ``" with `param: ""`).
        let e = parse_body::<ChatCompletionRequest>(br#"{"model":"a","model":"b","messages":[]}"#)
            .unwrap_err();
        assert_eq!(e.body.param, None);
        assert!(
            e.body
                .message
                .starts_with("Invalid request body: duplicate field `model`"),
            "{}",
            e.body.message
        );
    }

    /// Bodies that are not one JSON object get the message that says so, never a path.
    #[test]
    fn unparsable_and_non_object_bodies() {
        let msg = |b: &[u8]| {
            let e = parse_body::<ChatCompletionRequest>(b).unwrap_err();
            assert_eq!(e.status.as_u16(), 400);
            assert_eq!(e.body.param, None, "{}", String::from_utf8_lossy(b));
            e.body.message
        };
        for b in [
            &b""[..],
            b"{",
            b"{\"model\":\"m\"",
            b"{\"model\":\"m\",\"messages\":[]} x",
        ] {
            assert!(
                msg(b).starts_with("We could not parse the JSON body of your request."),
                "{}",
                String::from_utf8_lossy(b)
            );
        }
        for b in [&b"[]"[..], b"null", b"\"hi\"", b"3"] {
            assert_eq!(msg(b), "The request body must be a JSON object.");
        }
        let e = parse_body::<GenericRequest>(b"[1]").unwrap_err();
        assert_eq!(e.body.message, "The request body must be a JSON object.");
    }

    #[test]
    fn content_parts_and_null_content_parse() {
        let body = br#"{"model":"m","messages":[
            {"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"42"}]}"#;
        let req: ChatCompletionRequest = parse_body(body).unwrap();
        assert_eq!(req.messages[1].content, None);
        assert_eq!(
            RequestBody::Chat(Box::new(req)).texts(),
            vec!["a", "{}", "42"]
        );
    }

    /// `at` finds what `pointer` finds, for keys, indexes and misses alike.
    #[test]
    fn at_is_pointer_without_escapes() {
        let v = serde_json::json!({"choices": [{"delta": {"content": "x"}}], "usage": {"n": 1},
                                   "s": "t", "": {"": 2}});
        for path in [
            "",
            "/choices/0/delta/content",
            "/choices/1",
            "/choices/x",
            "/usage/n",
            "/usage/n/deeper",
            "/s/0",
            "/missing",
            "choices",
            "/",
            "//",
            "/choices/00",
            "/choices/+0",
            "/choices/-0",
        ] {
            assert_eq!(v.at(path), v.pointer(path), "{path}");
        }
    }
}

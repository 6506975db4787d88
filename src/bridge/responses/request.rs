//! A Responses request (plus the stored turns `previous_response_id` names) → a chat
//! completions request.
//!
//! - `instructions` → a leading system message; `system`/`developer` messages → system
//!   messages; consecutive text-only messages of the same role are merged (texts joined by a
//!   blank line), so chat templates that want one leading system message and alternating
//!   turns accept Codex's conversations;
//! - `input_text`/`output_text` → text, `input_image` → `image_url` parts, `input_file` with
//!   `file_data`/`file_id` → `file` parts;
//! - `function_call` / `custom_tool_call` items → the assistant's `tool_calls` (empty
//!   arguments become `{}`); their outputs → `tool` messages;
//! - `reasoning` items and unknown item types are dropped, their JSON paths returned; a known
//!   item the chat request cannot carry (a message whose role is not `user`, `assistant`,
//!   `system` or `developer`; an `input_image` without `image_url`; an `input_file` without
//!   `file_data` or `file_id`; a text part without its text; a part of an unknown type) is a
//!   400 naming its path (`input[0].content[1].image_url`), never silently emptied;
//! - `text.format` → `response_format`, `reasoning.effort` → `reasoning_effort`,
//!   `max_output_tokens` → `max_completion_tokens`, `text.verbosity` → `verbosity`,
//!   `prompt_cache_key` passes; `store`, `previous_response_id` and `metadata` are Sluice's own
//!   (echoed in the Response object, not sent to the chat backend).

use serde_json::{Map, Value, json};

use super::tools::{ToolMap, bridge_tool_choice, bridge_tools};
use crate::api::responses::{
    CallOutputItem, InputContent, InputItem, InputMessage, MessageContent, ResponsesRequest,
};
use crate::api::{
    ApiError, ChatCompletionRequest, ChatMessage, Content, ContentPart, FunctionCall, ImageUrl,
    ResponseFormat, Role, StreamOptions, ToolCall,
};

/// Unknown top-level fields a chat backend understands the same way; every other unknown
/// field is dropped on a bridged route.
const CHAT_PASSTHROUGH: &[&str] = &[
    "service_tier",
    "top_logprobs",
    "frequency_penalty",
    "presence_penalty",
    "top_k",
    "min_p",
    "stop",
    "logit_bias",
];

/// The chat request and what the translation needs later.
#[derive(Debug, Clone, PartialEq)]
pub struct BridgedRequest {
    /// The request to serve as a chat completion.
    pub chat: ChatCompletionRequest,
    /// Maps chat function names back to Responses tools (namespaces, custom tools).
    pub tools: ToolMap,
    /// JSON paths of what was left out (`input[3]` for a reasoning item, `include`, …);
    /// items of the stored conversation are `history[i]`.
    pub dropped: Vec<String>,
    /// `type`s of the hosted tools removed (`web_search`, …), for `x-sluice-dropped-tools`.
    pub dropped_tools: Vec<String>,
}

/// Translates `req` into a chat request; `history` is the stored conversation (earlier
/// input and output items) that `previous_response_id` continues, oldest first.
///
/// Errors: 400 when `tool_choice` forces a hosted tool, when an item or content part cannot
/// be carried by a chat request (its `param` names it: `input[2].role`,
/// `input[0].content[1].type`, …), or when `text.format` is `json_schema` without `schema`.
pub fn to_chat(req: &ResponsesRequest, history: &[InputItem]) -> Result<BridgedRequest, ApiError> {
    let mut dropped = Vec::new();
    let mut tools = bridge_tools(req.tools.as_deref().unwrap_or(&[]));
    let tool_choice = match &req.tool_choice {
        Some(c) => bridge_tool_choice(c, &mut tools)?,
        None => None,
    };
    // A call required when no tool is left (every one hosted, so removed) was dropped with
    // the tools, and the answer came back without one.
    if tools.tools.is_empty() && tool_choice.as_ref().and_then(Value::as_str) == Some("required") {
        return Err(ApiError::invalid_request(
            "`tool_choice` is `required`, but no tool is left for the chat backend behind this model (hosted tools are removed on a bridged route)",
        )
        .with_param("tool_choice")
        .with_code("unsupported_parameter"));
    }
    let mut b = Messages::new(&tools.map);
    if let Some(text) = &req.instructions {
        b.push_text(Role::System, text.clone());
    }
    for (i, item) in history.iter().enumerate() {
        b.push_item(item, &format!("history[{i}]"), &mut dropped)?;
    }
    for (i, item) in req.input_items().iter().enumerate() {
        let path = match &req.input {
            Some(crate::api::responses::ResponsesInput::Text(_)) => "input".to_string(),
            _ => format!("input[{i}]"),
        };
        b.push_item(item, &path, &mut dropped)?;
    }
    b.release_held();
    // Something for the model to answer: an empty conversation (no `input`, `[]`, or only
    // items left out) was sent upstream as `messages: []` (found by an attacker test).
    if b.messages
        .iter()
        .all(|m| matches!(m.role, Role::System | Role::Developer))
    {
        return Err(ApiError::invalid_request(
            "input: at least one item the model can read (a message, a function call or its output) is required",
        )
        .with_param("input"));
    }
    let mut extra = Map::new();
    sampling_extras(req, &mut extra, &mut dropped);
    let stream = req.is_stream();
    let chat = ChatCompletionRequest {
        model: req.model.clone(),
        messages: b.messages,
        stream: stream.then_some(true),
        stream_options: stream.then(|| StreamOptions {
            include_usage: Some(true),
            extra: Map::new(),
        }),
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: None,
        n: None,
        stop: None,
        max_tokens: None,
        max_completion_tokens: req.max_output_tokens,
        seed: req.seed,
        presence_penalty: None,
        frequency_penalty: None,
        logprobs: None,
        top_logprobs: None,
        tools: (!tools.tools.is_empty()).then(|| tools.tools.clone()),
        tool_choice: if tools.tools.is_empty() {
            None
        } else {
            tool_choice
        },
        parallel_tool_calls: if tools.tools.is_empty() {
            None
        } else {
            req.parallel_tool_calls
        },
        response_format: response_format(req)?,
        user: req.user.clone(),
        // The Response object echoes `metadata`; the chat request does not carry it (OpenAI's
        // chat API takes `metadata` only with `store`, which a bridged request never sets).
        metadata: None,
        extra,
    };
    // Known chat fields the client sent as unknown Responses fields move to their typed slot.
    let chat = retype(chat)?;
    Ok(BridgedRequest {
        chat,
        tools: tools.map,
        dropped,
        dropped_tools: tools.dropped,
    })
}

/// Moves pass-through extras with a typed chat field (`top_k`, `stop`, …) into that field
/// (a round trip through a JSON tree); with no extras there is nothing to move.
fn retype(chat: ChatCompletionRequest) -> Result<ChatCompletionRequest, ApiError> {
    if chat.extra.is_empty() {
        return Ok(chat);
    }
    let v = serde_json::to_value(&chat).map_err(|e| ApiError::internal(e.to_string()))?;
    serde_json::from_value(v).map_err(|e| ApiError::invalid_request(e.to_string()))
}

fn sampling_extras(
    req: &ResponsesRequest,
    extra: &mut Map<String, Value>,
    dropped: &mut Vec<String>,
) {
    if let Some(r) = &req.reasoning {
        if let Some(effort) = &r.effort {
            extra.insert("reasoning_effort".into(), Value::String(effort.clone()));
        }
        if r.summary.is_some() {
            dropped.push("reasoning.summary".into());
        }
        dropped.extend(r.extra.keys().map(|k| format!("reasoning.{k}")));
    }
    if let Some(t) = &req.text {
        if let Some(v) = &t.verbosity {
            extra.insert("verbosity".into(), Value::String(v.clone()));
        }
        dropped.extend(t.extra.keys().map(|k| format!("text.{k}")));
    }
    if let Some(k) = &req.prompt_cache_key {
        extra.insert("prompt_cache_key".into(), Value::String(k.clone()));
    }
    if req.include.as_ref().is_some_and(|i| !i.is_empty()) {
        dropped.push("include".into());
    }
    if req.truncation.as_deref().is_some_and(|t| t != "disabled") {
        dropped.push("truncation".into());
    }
    for (k, v) in &req.extra {
        if CHAT_PASSTHROUGH.contains(&k.as_str()) {
            extra.insert(k.clone(), v.clone());
        } else {
            dropped.push(k.clone());
        }
    }
}

/// `text.format` as chat's `response_format`.
///
/// Errors: 400 for `json_schema` without `schema` (a chat backend would get no schema).
fn response_format(req: &ResponsesRequest) -> Result<Option<ResponseFormat>, ApiError> {
    let Some(f) = req.text.as_ref().and_then(|t| t.format.as_ref()) else {
        return Ok(None);
    };
    if f.kind == "json_schema" && f.schema.is_none() {
        return Err(missing("text.format.schema"));
    }
    Ok(match f.kind.as_str() {
        "json_schema" => {
            let mut schema = Map::new();
            schema.insert(
                "name".into(),
                json!(f.name.clone().unwrap_or_else(|| "response".into())),
            );
            if let Some(d) = &f.description {
                schema.insert("description".into(), json!(d));
            }
            if let Some(s) = &f.schema {
                schema.insert("schema".into(), s.clone());
            }
            if let Some(s) = f.strict {
                schema.insert("strict".into(), json!(s));
            }
            Some(ResponseFormat {
                kind: "json_schema".into(),
                json_schema: Some(Value::Object(schema)),
            })
        }
        "json_object" => Some(ResponseFormat {
            kind: "json_object".into(),
            json_schema: None,
        }),
        _ => None,
    })
}

/// 400 for a required parameter that is absent, in OpenAI's words.
fn missing(param: &str) -> ApiError {
    ApiError::invalid_request(format!("Missing required parameter: '{param}'.")).with_param(param)
}

/// 400 for a value the chat request cannot carry; `supported` lists what it can.
fn invalid_value(param: &str, value: &str, supported: &str) -> ApiError {
    ApiError::invalid_request(format!(
        "Invalid value: '{value}'. Supported values are: {supported}."
    ))
    .with_param(param)
    .with_code("invalid_value")
}

/// Builds the message list item by item.
struct Messages<'a> {
    messages: Vec<ChatMessage>,
    map: &'a ToolMap,
    /// Images and files of tool outputs, for a user message after the run of tool messages
    /// (chat `tool` messages carry text; strict servers refuse parts there).
    held: Vec<ContentPart>,
}

impl<'a> Messages<'a> {
    fn new(map: &'a ToolMap) -> Self {
        Messages {
            messages: Vec::new(),
            map,
            held: Vec::new(),
        }
    }

    /// The held images and files of the tool outputs just pushed, as one user message.
    fn release_held(&mut self) {
        if !self.held.is_empty() {
            let parts = std::mem::take(&mut self.held);
            self.messages
                .push(message(Role::User, Some(Content::Parts(parts))));
        }
    }

    fn push_item(
        &mut self,
        item: &InputItem,
        path: &str,
        dropped: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        if !matches!(
            item,
            InputItem::FunctionCallOutput(_) | InputItem::CustomToolCallOutput(_)
        ) {
            self.release_held();
        }
        match item {
            InputItem::Message(m) => return self.push_message(m, path),
            InputItem::FunctionCall(c) => {
                let name = self.map.flat_name(&c.name, c.namespace.as_deref());
                let args = if c.arguments.trim().is_empty() {
                    "{}".to_string()
                } else {
                    c.arguments.clone()
                };
                self.push_call(&c.call_id, name, args);
            }
            InputItem::CustomToolCall(c) => {
                let name = self.map.flat_name(&c.name, c.namespace.as_deref());
                self.push_call(&c.call_id, name, json!({"input": c.input}).to_string());
            }
            InputItem::FunctionCallOutput(o) | InputItem::CustomToolCallOutput(o) => {
                return self.push_output(o, path);
            }
            InputItem::Other(v) if !v.is_object() => {
                return Err(ApiError::invalid_request(format!(
                    "{path}: an input item is an object, not {}",
                    match v {
                        Value::Null => "null",
                        Value::Bool(_) => "a boolean",
                        Value::Number(_) => "a number",
                        Value::String(_) => "a string",
                        _ => "an array",
                    }
                ))
                .with_param(path));
            }
            InputItem::Reasoning(_) | InputItem::Other(_) => {
                tracing::debug!(path, "Responses item left out of the chat request");
                dropped.push(path.to_string());
            }
        }
        Ok(())
    }

    fn push_message(&mut self, m: &InputMessage, path: &str) -> Result<(), ApiError> {
        let role = match m.role.as_str() {
            "system" | "developer" => Role::System,
            "assistant" => Role::Assistant,
            "user" => Role::User,
            other => {
                return Err(invalid_value(
                    &format!("{path}.role"),
                    other,
                    "'assistant', 'system', 'developer', and 'user'",
                ));
            }
        };
        match content(&m.content, &format!("{path}.content"))? {
            Some(Content::Text(t)) => self.push_text(role, t),
            other => self.messages.push(message(role, other)),
        }
        Ok(())
    }

    /// Appends text as a message of `role`, merged into the previous message when that one
    /// has the same role, text content and no tool calls.
    fn push_text(&mut self, role: Role, text: String) {
        if let Some(last) = self.messages.last_mut()
            && last.role == role
            && last.tool_calls.is_none()
            && role != Role::Tool
            && let Some(Content::Text(prev)) = &mut last.content
        {
            prev.push_str("\n\n");
            prev.push_str(&text);
            return;
        }
        self.messages.push(message(role, Some(Content::Text(text))));
    }

    /// Adds a tool call to the last assistant message, or starts one.
    fn push_call(&mut self, call_id: &str, name: String, arguments: String) {
        let call = ToolCall {
            id: call_id.to_string(),
            kind: "function".to_string(),
            function: FunctionCall { name, arguments },
        };
        match self.messages.last_mut() {
            Some(last) if last.role == Role::Assistant => {
                last.tool_calls.get_or_insert_with(Vec::new).push(call)
            }
            _ => {
                let mut m = message(Role::Assistant, None);
                m.tool_calls = Some(vec![call]);
                self.messages.push(m);
            }
        }
    }

    /// A tool message with the output's text; its images and files follow the run of tool
    /// messages in a user message (as the Messages bridge does with a `tool_result`'s images).
    fn push_output(&mut self, o: &CallOutputItem, path: &str) -> Result<(), ApiError> {
        let text = match content(&o.output, &format!("{path}.output"))? {
            None => String::new(),
            Some(Content::Text(t)) => t,
            Some(Content::Parts(parts)) => {
                let mut texts = Vec::new();
                for p in parts {
                    if p.kind == "text" && p.text.is_some() {
                        texts.push(p.text.unwrap_or_default());
                    } else {
                        self.held.push(p);
                    }
                }
                texts.join("\n")
            }
        };
        let mut m = message(Role::Tool, Some(Content::Text(text)));
        m.tool_call_id = Some(o.call_id.clone());
        self.messages.push(m);
        Ok(())
    }
}

fn message(role: Role, content: Option<Content>) -> ChatMessage {
    ChatMessage {
        role,
        content,
        name: None,
        tool_calls: None,
        tool_call_id: None,
        extra: Map::new(),
    }
}

/// Content parts → chat content: text only → one string (parts joined by `\n`), else parts;
/// `None` when there were no parts.
///
/// Errors: a part [`part`] cannot translate.
fn content(c: &MessageContent, path: &str) -> Result<Option<Content>, ApiError> {
    let parts = match c {
        MessageContent::Text(t) => return Ok(Some(Content::Text(t.clone()))),
        MessageContent::Parts(parts) => parts,
    };
    let out = parts
        .iter()
        .enumerate()
        .map(|(i, p)| part(p, &format!("{path}[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    if out.is_empty() {
        return Ok(None);
    }
    if out.iter().all(|p| p.kind == "text") {
        let texts: Vec<&str> = out.iter().filter_map(|p| p.text.as_deref()).collect();
        return Ok(Some(Content::Text(texts.join("\n"))));
    }
    Ok(Some(Content::Parts(out)))
}

/// One content part at `path` as a chat part.
///
/// Errors: 400 naming the field a chat backend would need (`….text`, `….image_url`,
/// `….file_data`) or, for a type it does not know, `….type`.
fn part(p: &InputContent, path: &str) -> Result<ContentPart, ApiError> {
    let mut cp = ContentPart {
        kind: "text".to_string(),
        text: None,
        image_url: None,
        extra: Map::new(),
    };
    match p.kind.as_str() {
        "input_text" | "output_text" | "text" | "summary_text" | "reasoning_text" => {
            cp.text = Some(
                p.text
                    .clone()
                    .ok_or_else(|| missing(&format!("{path}.text")))?,
            )
        }
        "refusal" => {
            cp.text = Some(
                p.refusal
                    .clone()
                    .or_else(|| p.text.clone())
                    .ok_or_else(|| missing(&format!("{path}.refusal")))?,
            )
        }
        "input_image" => {
            let url = p.image_url.clone().ok_or_else(|| {
                let param = format!("{path}.image_url");
                let why = if p.file_id.is_some() {
                    "an uploaded file (`file_id`) cannot be sent to this model's backend"
                } else {
                    "the image has neither `image_url` nor `file_id`"
                };
                ApiError::invalid_request(format!(
                    "Missing required parameter: '{param}': {why}; send the image as an http(s) or `data:` URL."
                ))
                .with_param(param)
            })?;
            cp.kind = "image_url".into();
            cp.image_url = Some(ImageUrl {
                url,
                detail: p.detail.clone(),
            });
        }
        "input_file" if p.file_data.is_none() && p.file_id.is_none() => {
            let param = format!("{path}.file_data");
            let why = if p.file_url.is_some() {
                "a file by `file_url` cannot be sent to this model's backend"
            } else {
                "the file has neither `file_data` nor `file_id`"
            };
            return Err(ApiError::invalid_request(format!(
                "Missing required parameter: '{param}': {why}; send its content as `file_data`."
            ))
            .with_param(param));
        }
        "input_file" => {
            cp.kind = "file".into();
            let mut file = Map::new();
            for (k, v) in [
                ("file_data", &p.file_data),
                ("file_id", &p.file_id),
                ("filename", &p.filename),
            ] {
                if let Some(v) = v {
                    file.insert(k.into(), Value::String(v.clone()));
                }
            }
            cp.extra.insert("file".into(), Value::Object(file));
        }
        other => {
            return Err(invalid_value(
                &format!("{path}.type"),
                other,
                "'input_text', 'input_image', 'input_file', 'output_text' and 'refusal'",
            ));
        }
    }
    Ok(cp)
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;

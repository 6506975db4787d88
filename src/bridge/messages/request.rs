//! Messages request → chat completions request.
//!
//! - `system` (string or text blocks) and every `role: "system"` turn of `messages` (beta
//!   `mid-conversation-system`) become **one** leading `system` message, texts joined with a
//!   blank line: chat templates of small local models (Gemma, Llama, Mistral) reject a
//!   system turn anywhere but first. Claude Code's `x-anthropic-billing-header: …` system
//!   block is attribution, not an instruction, and is dropped.
//! - User blocks: text → `text` parts; images → `image_url` parts (base64 → `data:` URL,
//!   URL sources as given); documents: plain-text sources → a `text` part (title first),
//!   base64 PDFs → a `file` part with `file_data`; `tool_result` blocks → `tool` messages
//!   placed before the rest of the turn (chat wants them right after the assistant's
//!   `tool_calls`), content joined to one text, `is_error: true` prefixed `Error: `; images
//!   inside a tool result follow in a user message.
//! - Assistant blocks: texts joined into `content`, `tool_use` → `tool_calls` (`input` as a
//!   compact JSON text). `thinking` and `redacted_thinking` blocks (and their signatures) are
//!   never sent.
//! - `tools`: custom tools → function tools (`input_schema` → `parameters`, `strict` kept);
//!   server tools are removed and named in [`Bridged::dropped_tools`]. `tool_choice`: `auto`
//!   → `"auto"`, `any` → `"required"`, `tool` → the named function, `none` → `"none"`,
//!   `disable_parallel_tool_use: true` → `parallel_tool_calls: false`; forcing a removed
//!   server tool (or `any` with none left) is a 400 naming it.
//! - `max_tokens`, `temperature`, `top_p`, `top_k` as they are; `stop_sequences` → `stop`;
//!   `metadata.user_id` → `user`; `stream` → `stream` with `stream_options.include_usage`.
//! - Dropped, and named in [`Bridged::dropped_fields`] (JSON paths) for a debug line, never a
//!   400: `thinking` (chat has no portable equivalent: `reasoning_effort` is a 400 on
//!   non-reasoning OpenAI models), `cache_control`, `citations` and every other unknown field
//!   at any level (`context_management`, `output_config`, `service_tier`, …), other
//!   `metadata` keys.

use crate::api::messages::{
    ContentBlock, Message, MessageContent, MessageRole, MessagesRequest, Source, System,
    ToolChoice, ToolDef,
};
use crate::api::{
    ApiError, ChatCompletionRequest, ChatMessage, Content, ContentPart, FunctionCall, FunctionDef,
    ImageUrl, Role, Stop, StreamOptions, Tool, ToolCall,
};
use serde_json::{Map, Value, json};

/// A translated request and what was left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Bridged {
    /// The chat request to serve.
    pub request: ChatCompletionRequest,
    /// JSON paths of the fields and blocks not sent (`context_management`,
    /// `system[1].cache_control`, `messages[2].content[0]` for a thinking block, …).
    pub dropped_fields: Vec<String>,
    /// Names of the server tools removed (for the log and `x-sluice-dropped-tools`).
    pub dropped_tools: Vec<String>,
}

/// The prefix of Claude Code's attribution system block.
const BILLING_HEADER: &str = "x-anthropic-billing-header:";

/// Translates `req` into a chat request.
///
/// Errors (400, `param` set): a `tool_choice` forcing a removed server tool
/// (`tool_choice.name`) or `any` with no custom tool (`tool_choice`); a block the bridge
/// cannot carry (`messages[i].content[j]`: server-tool blocks, URL or file documents,
/// unknown types, a malformed known type, a `tool_use` outside an assistant turn, a
/// `tool_result` outside a user turn).
pub fn to_chat(req: &MessagesRequest) -> Result<Bridged, ApiError> {
    let mut out = Bridged {
        request: empty_chat(&req.model),
        dropped_fields: Vec::new(),
        dropped_tools: Vec::new(),
    };
    let mut system = system_texts(req.system.as_ref(), &mut out.dropped_fields);
    let mut messages = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        extra_paths(&m.extra, &format!("messages[{i}]"), &mut out.dropped_fields);
        match m.role {
            MessageRole::System => system.push(plain_text(m, i, &mut out.dropped_fields)?),
            MessageRole::User => user_turn(m, i, &mut messages, &mut out.dropped_fields)?,
            MessageRole::Assistant => {
                messages.push(assistant_turn(m, i, &mut out.dropped_fields)?);
            }
        }
    }
    if !system.is_empty() {
        messages.insert(
            0,
            message(Role::System, Some(Content::Text(system.join("\n\n")))),
        );
    }
    let chat = &mut out.request;
    chat.messages = messages;
    chat.max_tokens = req.max_tokens;
    chat.temperature = req.temperature;
    chat.top_p = req.top_p;
    chat.top_k = req.top_k;
    let stops: Vec<String> = req.stop_sequences.iter().flatten().cloned().collect();
    if !stops.is_empty() {
        chat.stop = Some(Stop::Many(stops));
    }
    if let Some(meta) = &req.metadata {
        chat.user = meta.user_id.clone();
        extra_paths(&meta.extra, "metadata", &mut out.dropped_fields);
    }
    if req.is_stream() {
        chat.stream = Some(true);
        chat.stream_options = Some(StreamOptions {
            include_usage: Some(true),
            extra: Map::new(),
        });
    }
    tools(req, &mut out)?;
    if req.thinking.is_some() {
        out.dropped_fields.push("thinking".into());
    }
    extra_paths(&req.extra, "", &mut out.dropped_fields);
    Ok(out)
}

/// `messages` must hold at least one message, as Anthropic requires: an empty conversation
/// is refused before any backend is called, native or bridged.
///
/// Errors: 400 `invalid_request_error` naming `messages`.
pub fn require_messages(req: &MessagesRequest) -> Result<(), ApiError> {
    if req.messages.is_empty() {
        return Err(
            ApiError::invalid_request("messages: at least one message is required")
                .with_param("messages"),
        );
    }
    Ok(())
}

/// Anthropic requires `max_tokens` on `/v1/messages` (not on `count_tokens`).
///
/// Errors: 400 `max_tokens: Field required`, `param: "max_tokens"`.
pub fn require_max_tokens(req: &MessagesRequest) -> Result<u32, ApiError> {
    req.max_tokens.ok_or_else(|| {
        ApiError::invalid_request("max_tokens: Field required").with_param("max_tokens")
    })
}

fn empty_chat(model: &str) -> ChatCompletionRequest {
    ChatCompletionRequest {
        model: model.to_string(),
        messages: Vec::new(),
        stream: None,
        stream_options: None,
        temperature: None,
        top_p: None,
        top_k: None,
        n: None,
        stop: None,
        max_tokens: None,
        max_completion_tokens: None,
        seed: None,
        presence_penalty: None,
        frequency_penalty: None,
        logprobs: None,
        top_logprobs: None,
        tools: None,
        tool_choice: None,
        parallel_tool_calls: None,
        response_format: None,
        user: None,
        metadata: None,
        extra: Map::new(),
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

/// Records `prefix.key` for each key of `extra` (top level when `prefix` is empty).
fn extra_paths(extra: &Map<String, Value>, prefix: &str, dropped: &mut Vec<String>) {
    for k in extra.keys() {
        dropped.push(if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        });
    }
}

fn system_texts(system: Option<&System>, dropped: &mut Vec<String>) -> Vec<String> {
    match system {
        None => Vec::new(),
        Some(System::Text(s)) => vec![s.clone()],
        Some(System::Blocks(blocks)) => {
            let mut out = Vec::new();
            for (i, b) in blocks.iter().enumerate() {
                extra_paths(&b.extra, &format!("system[{i}]"), dropped);
                if b.text.starts_with(BILLING_HEADER) {
                    dropped.push(format!("system[{i}]"));
                } else {
                    out.push(b.text.clone());
                }
            }
            out
        }
    }
}

/// The text of a `system` turn (text blocks only).
fn plain_text(m: &Message, i: usize, dropped: &mut Vec<String>) -> Result<String, ApiError> {
    match &m.content {
        MessageContent::Text(s) => Ok(s.clone()),
        MessageContent::Blocks(blocks) => {
            let mut out = String::new();
            for (j, b) in blocks.iter().enumerate() {
                let path = format!("messages[{i}].content[{j}]");
                match b {
                    ContentBlock::Text { text, extra } => {
                        extra_paths(extra, &path, dropped);
                        out.push_str(text);
                    }
                    other => return Err(unsupported(other, &path, "a system turn")),
                }
            }
            Ok(out)
        }
    }
}

fn unsupported(b: &ContentBlock, path: &str, place: &str) -> ApiError {
    let message = match b {
        ContentBlock::Other(v) => match v.get("type").and_then(Value::as_str) {
            Some(
                kind @ ("text" | "image" | "document" | "tool_use" | "tool_result" | "thinking"
                | "redacted_thinking"),
            ) => {
                format!("invalid `{kind}` block: a required field is missing or has the wrong type")
            }
            Some(kind) => format!(
                "content blocks of type `{kind}` cannot be sent to this model's backend (it is not an Anthropic deployment)"
            ),
            None => "content blocks need a `type`".to_string(),
        },
        known => format!("`{}` blocks are not allowed in {place}", known.kind()),
    };
    ApiError::invalid_request(message).with_param(path)
}

/// A user turn: `tool` messages first, then one user message with the other parts.
fn user_turn(
    m: &Message,
    i: usize,
    out: &mut Vec<ChatMessage>,
    dropped: &mut Vec<String>,
) -> Result<(), ApiError> {
    let blocks = match &m.content {
        MessageContent::Text(s) => {
            out.push(message(Role::User, Some(Content::Text(s.clone()))));
            return Ok(());
        }
        MessageContent::Blocks(b) => b,
    };
    let mut parts = Vec::new();
    let mut tool_images = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let path = format!("messages[{i}].content[{j}]");
        match b {
            ContentBlock::ToolResult {
                tool_use_id,
                content,
                is_error,
                extra,
            } => {
                extra_paths(extra, &path, dropped);
                let text = tool_result(content.as_ref(), &path, &mut tool_images, dropped)?;
                let text = if *is_error == Some(true) {
                    format!("Error: {text}")
                } else {
                    text
                };
                let mut tm = message(Role::Tool, Some(Content::Text(text)));
                tm.tool_call_id = Some(tool_use_id.clone());
                out.push(tm);
            }
            other => parts.push(user_part(other, &path, dropped)?),
        }
    }
    parts.extend(tool_images);
    if !parts.is_empty() {
        out.push(message(Role::User, Some(Content::Parts(parts))));
    }
    Ok(())
}

fn text_part(text: String) -> ContentPart {
    ContentPart {
        kind: "text".into(),
        text: Some(text),
        image_url: None,
        extra: Map::new(),
    }
}

/// One non-`tool_result` block of a user turn (or of a tool result) as a chat part.
fn user_part(
    b: &ContentBlock,
    path: &str,
    dropped: &mut Vec<String>,
) -> Result<ContentPart, ApiError> {
    match b {
        ContentBlock::Text { text, extra } => {
            extra_paths(extra, path, dropped);
            Ok(text_part(text.clone()))
        }
        ContentBlock::Image { source, extra } => {
            extra_paths(extra, path, dropped);
            let url = image_url(source, path)?;
            Ok(ContentPart {
                kind: "image_url".into(),
                text: None,
                image_url: Some(ImageUrl { url, detail: None }),
                extra: Map::new(),
            })
        }
        ContentBlock::Document { source, extra } => document(source, extra, path, dropped),
        other => Err(unsupported(other, path, "a user turn")),
    }
}

fn image_url(source: &Source, path: &str) -> Result<String, ApiError> {
    match (source.kind.as_str(), &source.data, &source.url) {
        ("base64", Some(data), _) => Ok(format!(
            "data:{};base64,{data}",
            source.media_type.as_deref().unwrap_or("image/png")
        )),
        ("url", _, Some(url)) => Ok(url.clone()),
        (kind, _, _) => Err(ApiError::invalid_request(format!(
            "image sources of type `{kind}` cannot be sent to this model's backend; use `base64` or `url`"
        ))
        .with_param(format!("{path}.source"))),
    }
}

/// A document: plain text → a text part (`title` on its own line first), a base64 PDF → a
/// `file` part.
fn document(
    source: &Source,
    extra: &Map<String, Value>,
    path: &str,
    dropped: &mut Vec<String>,
) -> Result<ContentPart, ApiError> {
    let title = extra.get("title").and_then(Value::as_str);
    for k in extra.keys().filter(|k| k.as_str() != "title") {
        dropped.push(format!("{path}.{k}"));
    }
    match (source.kind.as_str(), &source.data) {
        ("text", Some(data)) => Ok(text_part(match title {
            Some(t) => format!("{t}\n\n{data}"),
            None => data.clone(),
        })),
        ("base64", Some(data)) => {
            let media = source.media_type.as_deref().unwrap_or("application/pdf");
            let mut file = Map::new();
            file.insert(
                "file_data".into(),
                Value::from(format!("data:{media};base64,{data}")),
            );
            if let Some(t) = title {
                file.insert("filename".into(), Value::from(t));
            }
            let mut part_extra = Map::new();
            part_extra.insert("file".into(), Value::Object(file));
            Ok(ContentPart {
                kind: "file".into(),
                text: None,
                image_url: None,
                extra: part_extra,
            })
        }
        (kind, _) => Err(ApiError::invalid_request(format!(
            "document sources of type `{kind}` cannot be sent to this model's backend; use `text` or `base64`"
        ))
        .with_param(format!("{path}.source"))),
    }
}

/// A tool result's text (blocks joined); its images are added to `images`.
fn tool_result(
    content: Option<&MessageContent>,
    path: &str,
    images: &mut Vec<ContentPart>,
    dropped: &mut Vec<String>,
) -> Result<String, ApiError> {
    let blocks = match content {
        None => return Ok(String::new()),
        Some(MessageContent::Text(s)) => return Ok(s.clone()),
        Some(MessageContent::Blocks(b)) => b,
    };
    let mut text = Vec::new();
    for (k, b) in blocks.iter().enumerate() {
        let sub = format!("{path}.content[{k}]");
        let part = user_part(b, &sub, dropped)?;
        match part.text {
            Some(t) => text.push(t),
            None => images.push(part),
        }
    }
    Ok(text.join("\n"))
}

fn assistant_turn(
    m: &Message,
    i: usize,
    dropped: &mut Vec<String>,
) -> Result<ChatMessage, ApiError> {
    let blocks = match &m.content {
        MessageContent::Text(s) => {
            return Ok(message(Role::Assistant, Some(Content::Text(s.clone()))));
        }
        MessageContent::Blocks(b) => b,
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let path = format!("messages[{i}].content[{j}]");
        match b {
            ContentBlock::Text { text: t, extra } => {
                extra_paths(extra, &path, dropped);
                text.push_str(t);
            }
            ContentBlock::ToolUse {
                id,
                name,
                input,
                extra,
            } => {
                extra_paths(extra, &path, dropped);
                calls.push(ToolCall {
                    id: id.clone(),
                    kind: "function".into(),
                    function: FunctionCall {
                        name: name.clone(),
                        arguments: input.to_string(),
                    },
                });
            }
            ContentBlock::Thinking { .. } | ContentBlock::RedactedThinking { .. } => {
                dropped.push(path);
            }
            other => return Err(unsupported(other, &path, "an assistant turn")),
        }
    }
    let content = if text.is_empty() && !calls.is_empty() {
        None
    } else {
        Some(Content::Text(text))
    };
    let mut out = message(Role::Assistant, content);
    if !calls.is_empty() {
        out.tool_calls = Some(calls);
    }
    Ok(out)
}

/// `tools` and `tool_choice`.
fn tools(req: &MessagesRequest, out: &mut Bridged) -> Result<(), ApiError> {
    let mut list = Vec::new();
    for (i, t) in req.tools.iter().flatten().enumerate() {
        if t.is_custom() {
            list.push(function_tool(t, i, &mut out.dropped_fields));
        } else {
            out.dropped_tools.push(t.name.clone());
        }
    }
    let Some(choice) = &req.tool_choice else {
        out.request.tools = (!list.is_empty()).then_some(list);
        return Ok(());
    };
    let (value, no_parallel) = match choice {
        ToolChoice::Auto {
            disable_parallel_tool_use,
        } => (json!("auto"), *disable_parallel_tool_use),
        ToolChoice::None => (json!("none"), None),
        ToolChoice::Any {
            disable_parallel_tool_use,
        } => {
            if list.is_empty() {
                return Err(ApiError::invalid_request(
                    "`tool_choice` `any` needs a custom tool: server tools cannot be used with this model's backend",
                )
                .with_param("tool_choice"));
            }
            (json!("required"), *disable_parallel_tool_use)
        }
        ToolChoice::Tool {
            name,
            disable_parallel_tool_use,
        } => {
            if out.dropped_tools.contains(name) {
                return Err(ApiError::invalid_request(format!(
                    "`tool_choice` forces the server tool `{name}`, which this model's backend cannot run"
                ))
                .with_param("tool_choice.name"));
            }
            (
                json!({"type":"function","function":{"name":name}}),
                *disable_parallel_tool_use,
            )
        }
    };
    if !list.is_empty() {
        out.request.tools = Some(list);
        out.request.tool_choice = Some(value);
        if no_parallel == Some(true) {
            out.request.parallel_tool_calls = Some(false);
        }
    }
    Ok(())
}

fn function_tool(t: &ToolDef, i: usize, dropped: &mut Vec<String>) -> Tool {
    let mut extra = Map::new();
    for (k, v) in &t.extra {
        if k == "strict" {
            extra.insert(k.clone(), v.clone());
        } else {
            dropped.push(format!("tools[{i}].{k}"));
        }
    }
    Tool {
        kind: "function".into(),
        function: FunctionDef {
            name: t.name.clone(),
            description: t.description.clone(),
            parameters: Some(
                t.input_schema
                    .clone()
                    .unwrap_or_else(|| json!({"type":"object","properties":{}})),
            ),
            extra,
        },
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;

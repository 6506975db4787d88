//! A whole chat completion answer read through a borrowed, typed view: the parts its
//! summary ([`ResponseSummary::from_response`]) and the Responses bridge read (`model`,
//! `system_fingerprint`, `usage`, and choice 0's message content, reasoning, refusal, tool
//! calls, `text` and `finish_reason`), as a [`ChatAnswer`]. Text is borrowed unless it has
//! escapes; unknown fields are skipped, never stored.
//!
//! The view accepts only well-typed answers: a field of another type than expected, a key
//! given twice or a top level that is not an object makes [`ChatAnswer::parse`] (and
//! [`summarize`]) return `None`, and the caller parses the tree as before; a tree is read into
//! the same [`ChatAnswer`] by [`ChatAnswer::from_tree`]. Where the view accepts, both give the
//! same answer and the same summary (property-tested below).

use super::summary::{ResponseSummary, ToolCallSummary};
use super::{At, Usage};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;

#[derive(Deserialize)]
struct AnswerView<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    system_fingerprint: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
    #[serde(borrow, default)]
    choices: Option<Vec<ChoiceView<'a>>>,
}

#[derive(Deserialize)]
struct UsageView {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    total_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<CachedView>,
    #[serde(default)]
    completion_tokens_details: Option<ReasoningView>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CachedView {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct ReasoningView {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

/// A chat answer's `usage` object: the counts Sluice reads (tokens; a missing or `null`
/// count, or from a tree one that is not a whole number, is 0).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ChatUsage {
    /// `prompt_tokens`.
    pub prompt_tokens: u64,
    /// `completion_tokens`.
    pub completion_tokens: u64,
    /// `total_tokens`, when given.
    pub total_tokens: Option<u64>,
    /// `prompt_tokens_details.cached_tokens`.
    pub cached_tokens: u64,
    /// `completion_tokens_details.reasoning_tokens`.
    pub reasoning_tokens: u64,
    /// `cache_creation_input_tokens` (Sluice's Anthropic translation and LiteLLM put cache
    /// writes there).
    pub cache_creation_input_tokens: u64,
}

impl ChatUsage {
    /// Reads a parsed `usage` object (any JSON value; what is not a whole number is 0). One
    /// pass over its few keys: cheaper than a hashed lookup per count.
    pub fn from_tree(u: &Value) -> Self {
        let mut c = ChatUsage::default();
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        let inner = |v: &Value, key: &str| {
            v.as_object()
                .and_then(|m| m.iter().find(|(k, _)| k.as_str() == key))
                .map_or(0, |(_, v)| n(v))
        };
        for (k, v) in u.as_object().into_iter().flatten() {
            match k.as_str() {
                "prompt_tokens" => c.prompt_tokens = n(v),
                "completion_tokens" => c.completion_tokens = n(v),
                "total_tokens" => c.total_tokens = v.as_u64(),
                "prompt_tokens_details" => c.cached_tokens = inner(v, "cached_tokens"),
                "completion_tokens_details" => c.reasoning_tokens = inner(v, "reasoning_tokens"),
                "cache_creation_input_tokens" => c.cache_creation_input_tokens = n(v),
                _ => {}
            }
        }
        c
    }

    fn from_view(u: UsageView) -> Self {
        ChatUsage {
            prompt_tokens: u.prompt_tokens.unwrap_or(0),
            completion_tokens: u.completion_tokens.unwrap_or(0),
            total_tokens: u.total_tokens,
            cached_tokens: u
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            reasoning_tokens: u
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
            cache_creation_input_tokens: u.cache_creation_input_tokens.unwrap_or(0),
        }
    }

    /// The log's usage: cached and written counts capped at `prompt_tokens`, total = prompt
    /// + completion (see [`Usage::from_openai`]).
    pub fn to_usage(&self) -> Usage {
        let mut usage = Usage::new(self.prompt_tokens, self.completion_tokens);
        usage.cached_tokens = self.cached_tokens.min(usage.prompt_tokens);
        usage.cache_write_tokens = self
            .cache_creation_input_tokens
            .min(usage.prompt_tokens - usage.cached_tokens);
        usage
    }
}

#[derive(Deserialize)]
struct ChoiceView<'a> {
    #[serde(borrow, default)]
    message: Option<MessageView<'a>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    stop_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct MessageView<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolCallView<'a>>>,
}

#[derive(Deserialize)]
struct ToolCallView<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    function: Option<FunctionView<'a>>,
}

#[derive(Deserialize)]
struct FunctionView<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arguments: Option<Cow<'a, str>>,
}

/// One tool call of choice 0's message: `id` (`None` when missing or, from a tree, not
/// text), `function.name` and `function.arguments` (`""` then).
#[derive(Debug, Default, PartialEq)]
pub struct ChatToolCall<'a> {
    /// `id`.
    pub id: Option<Cow<'a, str>>,
    /// `function.name`.
    pub name: Cow<'a, str>,
    /// `function.arguments` (a JSON text, as the backend wrote it).
    pub arguments: Cow<'a, str>,
}

/// A chat completion answer with a `choices` array, reduced to what Sluice reads of it:
/// the top-level fields and choice 0 (all empty when `choices` is). Text fields are `None`
/// when missing, `null` or (from a tree) not text.
#[derive(Debug, Default, PartialEq)]
pub struct ChatAnswer<'a> {
    /// `id`.
    pub id: Option<Cow<'a, str>>,
    /// Whether `choices` has a choice 0.
    pub has_choice: bool,
    /// `model`.
    pub model: Option<Cow<'a, str>>,
    /// `system_fingerprint`.
    pub system_fingerprint: Option<Cow<'a, str>>,
    /// `usage`, when it is an object.
    pub usage: Option<ChatUsage>,
    /// `message.content`.
    pub content: Option<Cow<'a, str>>,
    /// `message.reasoning_content`, else `message.reasoning`: the first that is not empty.
    pub reasoning: Option<Cow<'a, str>>,
    /// `message.refusal`.
    pub refusal: Option<Cow<'a, str>>,
    /// `message.tool_calls`, in order.
    pub tool_calls: Vec<ChatToolCall<'a>>,
    /// `text` (legacy completions).
    pub text: Option<Cow<'a, str>>,
    /// `finish_reason`.
    pub finish_reason: Option<Cow<'a, str>>,
    /// Choice 0's `stop_reason`: the stop sequence that matched, when vLLM gives it as text.
    pub stop_reason: Option<Cow<'a, str>>,
}

impl<'a> ChatAnswer<'a> {
    /// The answer in `bytes`, read through the view. `None` when the view refuses the bytes
    /// (see the module docs) or the answer has no `choices` array (an error object, an
    /// embeddings list): the caller then parses the tree.
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        let view: AnswerView<'a> = super::json::from_bytes(bytes).ok()?;
        let choices = view.choices?;
        let usage = match view.usage.filter(|u| u.get().starts_with('{')) {
            Some(raw) => Some(ChatUsage::from_view(serde_json::from_str(raw.get()).ok()?)),
            None => None,
        };
        let mut a = ChatAnswer {
            id: view.id,
            model: view.model,
            system_fingerprint: view.system_fingerprint,
            usage,
            ..ChatAnswer::default()
        };
        let Some(c0) = choices.into_iter().next() else {
            return Some(a);
        };
        a.has_choice = true;
        if let Some(msg) = c0.message {
            a.content = msg.content;
            a.reasoning = [msg.reasoning_content, msg.reasoning]
                .into_iter()
                .flatten()
                .find(|r| !r.is_empty());
            a.refusal = msg.refusal;
            a.tool_calls = msg
                .tool_calls
                .into_iter()
                .flatten()
                .map(|tc| {
                    let (name, arguments) = match tc.function {
                        Some(f) => (f.name, f.arguments),
                        None => (None, None),
                    };
                    ChatToolCall {
                        id: tc.id,
                        name: name.unwrap_or_default(),
                        arguments: arguments.unwrap_or_default(),
                    }
                })
                .collect();
        }
        a.text = c0.text;
        a.finish_reason = c0.finish_reason;
        a.stop_reason = c0.stop_reason;
        Some(a)
    }

    /// The same reading of a parsed answer (any JSON value): what is missing or of another
    /// type is left empty.
    pub fn from_tree(chat: &'a Value) -> Self {
        let text = |v: Option<&'a Value>, key: &str| {
            v.and_then(|v| v.get(key))
                .and_then(Value::as_str)
                .map(Cow::Borrowed)
        };
        let choice = chat.at("/choices/0");
        let message = choice.and_then(|c| c.get("message"));
        ChatAnswer {
            id: text(Some(chat), "id"),
            has_choice: choice.is_some(),
            model: text(Some(chat), "model"),
            system_fingerprint: text(Some(chat), "system_fingerprint"),
            usage: chat
                .get("usage")
                .filter(|u| u.is_object())
                .map(ChatUsage::from_tree),
            content: text(message, "content").or_else(|| parts_text(message?.get("content")?)),
            reasoning: message.and_then(reasoning).map(Cow::Borrowed),
            refusal: text(message, "refusal"),
            tool_calls: message
                .and_then(|m| m.get("tool_calls"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|tc| {
                    let function = tc.get("function");
                    ChatToolCall {
                        id: text(Some(tc), "id"),
                        name: text(function, "name").unwrap_or_default(),
                        arguments: text(function, "arguments").unwrap_or_default(),
                    }
                })
                .collect(),
            text: text(choice, "text"),
            finish_reason: text(choice, "finish_reason"),
            stop_reason: text(choice, "stop_reason"),
        }
    }

    /// The log's summary of the answer.
    pub fn summary(&self) -> ResponseSummary {
        let mut s = ResponseSummary {
            model: self.model.as_deref().map(str::to_string),
            system_fingerprint: self.system_fingerprint.as_deref().map(str::to_string),
            usage: self.usage.as_ref().map(ChatUsage::to_usage),
            finish_reason: self.finish_reason.as_deref().map(str::to_string),
            answered: self.has_choice,
            ..ResponseSummary::default()
        };
        s.content.push_str(self.content.as_deref().unwrap_or(""));
        s.content.push_str(self.text.as_deref().unwrap_or(""));
        s.tool_calls = self
            .tool_calls
            .iter()
            .map(|tc| ToolCallSummary {
                id: tc.id.as_deref().unwrap_or("").to_string(),
                name: tc.name.to_string(),
                arguments: tc.arguments.to_string(),
            })
            .collect();
        s
    }
}

/// The text of a `content` given as an array of parts (`[{"type":"text","text":…}]`, as some
/// OpenAI-compatible servers answer): the parts' `text` strings joined; `None` when it is not
/// an array or holds no text. (A whole answer the borrowed view refuses, such as this one, is
/// read from its tree.)
fn parts_text(content: &Value) -> Option<Cow<'_, str>> {
    let parts = content.as_array()?;
    let texts: Vec<&str> = parts
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect();
    match texts.as_slice() {
        [] => None,
        [one] => Some(Cow::Borrowed(one)),
        _ => Some(Cow::Owned(texts.concat())),
    }
}

/// The reasoning text of a parsed chat message: the first non-empty string of
/// `reasoning_content` (llama.cpp, DeepSeek) and `reasoning` (vLLM, Ollama, OpenRouter); the
/// same rule as [`ChatAnswer::parse`] and [`crate::api::chat_delta::ChoiceDelta::reasoning`].
pub fn reasoning(message: &Value) -> Option<&str> {
    ["reasoning_content", "reasoning"]
        .into_iter()
        .filter_map(|k| message.get(k).and_then(Value::as_str))
        .find(|s| !s.is_empty())
}

/// Runs `f` on a whole chat answer: read from `tree` when the caller has one (a restored
/// redaction, an answer the view refused), else through the view of `bytes`, else from
/// `bytes` parsed now.
///
/// Errors: `bytes` are not JSON (and there is no tree).
pub fn with_answer<R>(
    bytes: &[u8],
    tree: Option<Value>,
    f: impl FnOnce(&ChatAnswer<'_>) -> R,
) -> Result<R, serde_json::Error> {
    let tree = match tree {
        Some(tree) => tree,
        None => match ChatAnswer::parse(bytes) {
            Some(view) => return Ok(f(&view)),
            None => super::json::from_bytes(bytes)?,
        },
    };
    Ok(f(&ChatAnswer::from_tree(&tree)))
}

/// The summary of a chat completion answer with a `choices` array, read through the view
/// (`None` where [`ChatAnswer::parse`] gives none).
pub fn summarize(bytes: &[u8]) -> Option<ResponseSummary> {
    ChatAnswer::parse(bytes).map(|a| a.summary())
}

#[cfg(test)]
#[path = "answer_view_tests.rs"]
mod tests;

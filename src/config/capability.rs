//! The `supports:` list of a deployment: what its backend can do. The providers use it to
//! drop or map parameters the backend would reject and to refuse (400, `param` set) requests
//! whose answer would silently lack something the client asked for. Defaults per provider and
//! known server are in `crate::providers::caps`.

use super::ProviderKind;
use serde::{Deserialize, Serialize};

/// One capability of a backend (config spelling in `snake_case`).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Top-k sampling (`top_k`). Without it the parameter is dropped.
    TopK,
    /// Sampling seed (`seed`). Without it the parameter is dropped (a seed is best effort).
    Seed,
    /// Log probabilities (`logprobs`, `top_logprobs`). Without it: 400, `param: "logprobs"`.
    Logprobs,
    /// Several choices (`n` > 1). Without it: 400, `param: "n"`.
    N,
    /// Function tools (`tools`). Without it: 400, `param: "tools"`.
    Tools,
    /// Structured output (`response_format` `json_object` / `json_schema`). Without it: 400,
    /// `param: "response_format"`.
    JsonSchema,
    /// Image content parts. Without it: 400, `param: "messages[i].content[j]"`.
    Images,
    /// The `name` field of messages. Without it the field is dropped.
    MessageName,
    /// The `developer` role. Without it `developer` messages are sent as `system`.
    DeveloperRole,
    /// The `max_completion_tokens` field. Without it the cap is sent as `max_tokens`.
    MaxCompletionTokens,
    /// The `parallel_tool_calls` field. Without it the field is dropped.
    ParallelToolCalls,
    /// llama.cpp server's `cache_prompt` switch: with it, deterministic sampling sends
    /// `cache_prompt: false` (a reused KV cache changes batch sizes and so the logits).
    CachePrompt,
    /// `content` as an array of parts. Without it text parts are joined with `\n` into one
    /// string (`provider: openai`).
    ContentParts,
}

impl Capability {
    /// The config spelling, e.g. `top_k`.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::TopK => "top_k",
            Capability::Seed => "seed",
            Capability::Logprobs => "logprobs",
            Capability::N => "n",
            Capability::Tools => "tools",
            Capability::JsonSchema => "json_schema",
            Capability::Images => "images",
            Capability::MessageName => "message_name",
            Capability::DeveloperRole => "developer_role",
            Capability::MaxCompletionTokens => "max_completion_tokens",
            Capability::ParallelToolCalls => "parallel_tool_calls",
            Capability::CachePrompt => "cache_prompt",
            Capability::ContentParts => "content_parts",
        }
    }
}

/// Ollama's `keep_alive`: how long the model stays loaded after a request — a duration
/// string (`"5m"`, `"1h"`) or a number of seconds (`-1` keeps it loaded, `0` unloads it).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum KeepAlive {
    /// Seconds.
    Seconds(i64),
    /// A Go duration string such as `"10m"`.
    Duration(String),
}

/// The native providers take the server root as `base_url` and append their own paths
/// (`/api/chat`, `/v1/messages`): a base ending in `/v1` (Ollama's OpenAI-compatible path, or
/// Anthropic's version prefix) would reach the wrong URL, so it is refused with a hint.
pub fn check_native_base_url(provider: ProviderKind, url: &url::Url) -> Result<(), String> {
    let path = url.path().trim_end_matches('/');
    if !path.ends_with("/v1") {
        return Ok(());
    }
    match provider {
        ProviderKind::Ollama => Err(format!(
            "for provider ollama, base_url is the server root (e.g. `{}`), not its OpenAI-compatible `/v1` path (use provider: openai for that)",
            root(url)
        )),
        ProviderKind::Anthropic => Err(format!(
            "for provider anthropic, base_url is the server root (e.g. `{}`); Sluice appends `/v1/messages`",
            root(url)
        )),
        ProviderKind::Openai => Ok(()),
    }
}

fn root(url: &url::Url) -> String {
    let mut u = url.clone();
    u.set_path("");
    u.to_string().trim_end_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_base_urls_must_be_roots() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert!(check_native_base_url(ProviderKind::Ollama, &u("http://127.0.0.1:11434")).is_ok());
        assert!(
            check_native_base_url(ProviderKind::Openai, &u("http://127.0.0.1:11434/v1")).is_ok()
        );
        assert_eq!(
            check_native_base_url(ProviderKind::Ollama, &u("http://127.0.0.1:11434/v1/"))
                .unwrap_err(),
            "for provider ollama, base_url is the server root (e.g. `http://127.0.0.1:11434`), not its OpenAI-compatible `/v1` path (use provider: openai for that)"
        );
        assert!(
            check_native_base_url(ProviderKind::Anthropic, &u("https://api.anthropic.com/v1"))
                .is_err()
        );
    }
}

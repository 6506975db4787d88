//! The `supports:` list of a deployment: what its backend can do. The providers use it to
//! drop or map parameters the backend would reject and to refuse (400, `param` set) requests
//! whose answer would silently lack something the client asked for. Defaults per provider and
//! known server are here ([`Caps`], [`defaults`]); the checks that use them are in the providers.

use super::{DeploymentConfig, ProviderKind};
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
    /// The server's own `POST {base_url}/responses` (OpenAI, vLLM, llama.cpp's llama-server,
    /// Ollama): `/v1/responses` requests go there natively (`provider: openai` only; never a
    /// default). Listed alone (`supports: [responses]`) it adds to the defaults.
    Responses,
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
            Capability::Responses => "responses",
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

/// The effective capability set of one deployment: one bit per [`Capability`], so it is
/// `Copy` and computed once per deployment (see [`DeploymentConfig::derived`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Caps {
    bits: u32,
}

impl Caps {
    /// `supports:` when configured, else [`defaults`]. For `ollama` and `anthropic`,
    /// `supports:` can only remove from the defaults: their translation has nothing to send
    /// for the other capabilities, so listing one would make Sluice answer without it.
    ///
    /// Computed on the deployment's first request and kept with it.
    pub fn of(dep: &DeploymentConfig) -> Caps {
        *dep.derived.caps.get_or_init(|| Caps::compute(dep))
    }

    fn compute(dep: &DeploymentConfig) -> Caps {
        let defaults = defaults(dep.provider, &dep.base_url);
        let list = match &dep.supports {
            // `responses` names an API, not a parameter: alone it keeps the defaults.
            Some(l) if dep.provider == ProviderKind::Openai && l == &[Capability::Responses] => {
                let mut all = defaults;
                all.push(Capability::Responses);
                all
            }
            Some(l) if dep.provider == ProviderKind::Openai => l.clone(),
            Some(l) => l.iter().copied().filter(|c| defaults.contains(c)).collect(),
            None => defaults,
        };
        Caps {
            bits: list.into_iter().fold(0, |bits, c| bits | bit(c)),
        }
    }

    /// Whether the backend has `c`.
    pub fn has(&self, c: Capability) -> bool {
        self.bits & bit(c) != 0
    }
}

fn bit(c: Capability) -> u32 {
    1 << (c as u32)
}

/// The capabilities a deployment gets without a `supports:` list.
///
/// - `openai` at `api.openai.com` or `*.openai.azure.com`: everything but `top_k`.
/// - any other `openai` server (llama.cpp, vLLM, LM Studio, Groq, Mistral, …): everything but
///   `developer_role` and `max_completion_tokens` (their chat templates and older versions
///   reject or ignore them).
/// - `ollama` (native API): `top_k`, `seed`, `logprobs`, `tools`, `json_schema`, `images`.
/// - `anthropic`: `top_k`, `tools`, `images`.
pub fn defaults(provider: ProviderKind, base_url: &str) -> Vec<Capability> {
    use Capability::*;
    match provider {
        ProviderKind::Openai if is_openai_proper(base_url) => vec![
            Seed,
            Logprobs,
            N,
            Tools,
            JsonSchema,
            Images,
            MessageName,
            DeveloperRole,
            MaxCompletionTokens,
            ParallelToolCalls,
            ContentParts,
        ],
        ProviderKind::Openai => vec![
            TopK,
            Seed,
            Logprobs,
            N,
            Tools,
            JsonSchema,
            Images,
            MessageName,
            ParallelToolCalls,
            ContentParts,
        ],
        ProviderKind::Ollama => vec![TopK, Seed, Logprobs, Tools, JsonSchema, Images],
        ProviderKind::Anthropic => vec![TopK, Tools, Images],
    }
}

fn is_openai_proper(base_url: &str) -> bool {
    url::Url::parse(base_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .is_some_and(|h| h == "api.openai.com" || h.ends_with(".openai.azure.com"))
}

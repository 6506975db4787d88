//! LiteLLM provider prefixes (`openai/`, `ollama_chat/`, `groq/`, …) and what each becomes in
//! Sluice: a wire protocol (`provider`) and, for hosted services, the `base_url` LiteLLM would
//! use when the entry gives no `api_base`.

use crate::config::ProviderKind;

/// What a LiteLLM provider prefix maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Sluice's wire protocol for it.
    pub provider: ProviderKind,
    /// The service's own address; `None` when the entry must give `api_base`
    /// (`hosted_vllm/`, `litellm_proxy/`).
    pub default_base: Option<&'static str>,
}

const fn openai(base: &'static str) -> Target {
    Target {
        provider: ProviderKind::Openai,
        default_base: Some(base),
    }
}

/// Prefixes Sluice can serve, with their protocol and default address. The hosted ones all
/// speak OpenAI's API at the address given.
const TABLE: &[(&str, Target)] = &[
    ("openai", openai("https://api.openai.com/v1")),
    (
        "text-completion-openai",
        openai("https://api.openai.com/v1"),
    ),
    (
        "anthropic",
        Target {
            provider: ProviderKind::Anthropic,
            default_base: Some("https://api.anthropic.com"),
        },
    ),
    (
        "ollama",
        Target {
            provider: ProviderKind::Ollama,
            default_base: Some("http://localhost:11434"),
        },
    ),
    (
        "ollama_chat",
        Target {
            provider: ProviderKind::Ollama,
            default_base: Some("http://localhost:11434"),
        },
    ),
    (
        "hosted_vllm",
        Target {
            provider: ProviderKind::Openai,
            default_base: None,
        },
    ),
    (
        "litellm_proxy",
        Target {
            provider: ProviderKind::Openai,
            default_base: None,
        },
    ),
    ("custom_openai", openai("https://api.openai.com/v1")),
    ("lm_studio", openai("http://localhost:1234/v1")),
    ("llamafile", openai("http://127.0.0.1:8080/v1")),
    ("groq", openai("https://api.groq.com/openai/v1")),
    ("mistral", openai("https://api.mistral.ai/v1")),
    ("deepseek", openai("https://api.deepseek.com/v1")),
    ("together_ai", openai("https://api.together.xyz/v1")),
    ("openrouter", openai("https://openrouter.ai/api/v1")),
    (
        "fireworks_ai",
        openai("https://api.fireworks.ai/inference/v1"),
    ),
    ("perplexity", openai("https://api.perplexity.ai")),
    ("deepinfra", openai("https://api.deepinfra.com/v1/openai")),
    ("xai", openai("https://api.x.ai/v1")),
    ("cerebras", openai("https://api.cerebras.ai/v1")),
    ("nvidia_nim", openai("https://integrate.api.nvidia.com/v1")),
    ("sambanova", openai("https://api.sambanova.ai/v1")),
    (
        "gemini",
        openai("https://generativelanguage.googleapis.com/v1beta/openai"),
    ),
];

/// The target of a LiteLLM provider prefix (`groq` for `groq/llama3-8b-8192`), if Sluice
/// serves it.
pub fn lookup(prefix: &str) -> Option<Target> {
    TABLE.iter().find(|(p, _)| *p == prefix).map(|(_, t)| *t)
}

/// Splits LiteLLM's `model` into `(prefix, model id)`: `openai/gpt-4o` → `("openai",
/// "gpt-4o")`. A model without a known prefix gets the one LiteLLM infers from well-known
/// names (`gpt-*`, `o1*`…: `openai`; `claude-*`: `anthropic`), else `None` as prefix.
pub fn split(model: &str) -> (Option<String>, String) {
    if let Some((p, rest)) = model.split_once('/')
        && (lookup(p).is_some() || looks_like_provider(p))
    {
        return (Some(p.to_string()), rest.to_string());
    }
    let inferred = if model.starts_with("claude-") {
        Some("anthropic")
    } else if ["gpt-", "o1", "o3", "o4", "chatgpt-", "text-embedding-"]
        .iter()
        .any(|p| model.starts_with(p))
    {
        Some("openai")
    } else {
        None
    };
    (inferred.map(str::to_string), model.to_string())
}

/// LiteLLM providers Sluice does not speak (their own APIs and signing), so the prefix is
/// recognised and reported rather than taken for part of a model id.
fn looks_like_provider(p: &str) -> bool {
    [
        "azure",
        "azure_ai",
        "azure_text",
        "bedrock",
        "bedrock_converse",
        "vertex_ai",
        "vertex_ai_beta",
        "sagemaker",
        "huggingface",
        "cohere",
        "cohere_chat",
        "replicate",
        "watsonx",
        "databricks",
        "predibase",
        "cloudflare",
        "ai21",
        "palm",
        "voyage",
        "vllm",
        "triton",
        "clarifai",
        "petals",
        "baseten",
        "aleph_alpha",
        "nlp_cloud",
    ]
    .contains(&p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_split_and_infer() {
        assert_eq!(
            split("openai/gpt-4o"),
            (Some("openai".into()), "gpt-4o".into())
        );
        assert_eq!(
            split("fireworks_ai/accounts/fireworks/models/llama-v3-70b-instruct"),
            (
                Some("fireworks_ai".into()),
                "accounts/fireworks/models/llama-v3-70b-instruct".into()
            )
        );
        assert_eq!(
            split("gpt-3.5-turbo"),
            (Some("openai".into()), "gpt-3.5-turbo".into())
        );
        assert_eq!(
            split("claude-3-5-sonnet-20241022"),
            (
                Some("anthropic".into()),
                "claude-3-5-sonnet-20241022".into()
            )
        );
        assert_eq!(
            split("azure/gpt-4o-eu"),
            (Some("azure".into()), "gpt-4o-eu".into())
        );
        assert_eq!(
            split("facebook/opt-125m"),
            (None, "facebook/opt-125m".into())
        );
        assert_eq!(lookup("azure"), None);
        assert_eq!(
            lookup("ollama_chat").map(|t| t.provider),
            Some(ProviderKind::Ollama)
        );
    }
}

//! A deployment's config: where it is (`provider`, `base_url`, `model`), what it is
//! (openness, hosting, price, capabilities), and the limits on what Sluice reads from it
//! (timeouts and byte caps), with their defaults.

use super::capability::{self, Capability, KeepAlive, ToolsMode};
use super::sampling::SamplingConfig;
use crate::policy::tier::{Hosting, Openness};
use serde::{Deserialize, Serialize};

/// Default of a deployment's `max_response_bytes`: 32 MiB, far above real answers.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 << 20;
/// Default of a deployment's `max_error_body_bytes`: 64 KiB.
pub const DEFAULT_MAX_ERROR_BODY_BYTES: usize = 64 << 10;
/// Default of a deployment's `max_stream_event_bytes`: 4 MiB.
pub const DEFAULT_MAX_STREAM_EVENT_BYTES: usize = 4 << 20;
/// Default of a deployment's `max_stream_bytes`: 256 MiB, far above real answers (a 128k-token
/// answer streams about 20 MB).
pub const DEFAULT_MAX_STREAM_BYTES: usize = 256 << 20;

/// Which wire protocol a deployment speaks.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any OpenAI-compatible server: OpenAI, vLLM, llama.cpp's llama-server, LM Studio, …
    Openai,
    /// Ollama's native API (`/api/chat`, `/api/generate`, `/api/embed`).
    Ollama,
    /// Anthropic's Messages API (`/v1/messages`).
    Anthropic,
}

impl ProviderKind {
    /// The lowercase name used in config, headers and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Ollama => "ollama",
            ProviderKind::Anthropic => "anthropic",
        }
    }
}

/// One backend serving one model.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentConfig {
    /// Unique name; also usable directly as a model name.
    pub name: String,
    /// Wire protocol.
    pub provider: ProviderKind,
    /// Base URL, e.g. `http://127.0.0.1:8081/v1` for an OpenAI-compatible server (paths such
    /// as `/chat/completions` are appended), `http://127.0.0.1:11434` for Ollama,
    /// `https://api.anthropic.com` for Anthropic.
    pub base_url: String,
    /// The model id the backend knows.
    pub model: String,
    /// API key sent upstream (`Authorization: Bearer` or `x-api-key`); usually `${ENV_VAR}`.
    #[serde(default, skip_serializing)]
    pub api_key: Option<String>,
    /// Total time for one upstream request, ms (for streams: until the headers). Default 600 000.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// TCP connect timeout, ms. Default 5 000.
    #[serde(default)]
    pub connect_timeout_ms: Option<u64>,
    /// Longest silence between two stream chunks, ms. Default 120 000.
    #[serde(default)]
    pub stream_idle_timeout_ms: Option<u64>,
    /// Largest whole answer read from the backend, bytes after decompression (a gzip bomb
    /// stops here). Default 33 554 432 (32 MiB). Over it: 502 naming the deployment.
    #[serde(default)]
    pub max_response_bytes: Option<usize>,
    /// Most of an error answer's body read from the backend, bytes (the rest is not read).
    /// Default 65 536 (64 KiB).
    #[serde(default)]
    pub max_error_body_bytes: Option<usize>,
    /// Largest stream event, bytes after decompression: one SSE event (from its first line to
    /// its blank line, comments included) or one NDJSON line, whether it arrives in pieces or
    /// whole. Default 4 194 304 (4 MiB). Over it: a 502 naming the deployment (an error event
    /// once the stream has started); nothing of the read that brought it is forwarded.
    #[serde(default)]
    pub max_stream_event_bytes: Option<usize>,
    /// Most bytes one stream may send in all, after decompression. Default 268 435 456
    /// (256 MiB). Over it: a 502 error event naming the deployment.
    #[serde(default)]
    pub max_stream_bytes: Option<usize>,
    /// What the backend can do; replaces the provider's defaults when set (see docs/providers.md,
    /// "Capabilities").
    #[serde(default)]
    pub supports: Option<Vec<Capability>>,
    /// What to do with optional `tools` when the backend cannot call tools: `refuse` (default,
    /// 400) or `drop_optional` (see [`ToolsMode`]).
    #[serde(default)]
    pub tools: ToolsMode,
    /// `provider: anthropic`: the `max_tokens` sent when the client gives neither
    /// `max_completion_tokens` nor `max_tokens` (tokens). Unset: 4096
    /// (`providers::anthropic::request::DEFAULT_MAX_TOKENS`).
    #[serde(default)]
    pub max_tokens_default: Option<u32>,
    /// The most output tokens the deployment's model gives in one answer (tokens); overrides
    /// the catalog's `max_output`. A request asking for more (`max_tokens`,
    /// `max_completion_tokens`, Responses `max_output_tokens`; Claude Code asks for 32 000) is
    /// lowered to it instead of getting the backend's 400.
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    /// `provider: ollama`: `options.num_ctx`, the context window (tokens), unless the client
    /// sends its own `options.num_ctx`.
    #[serde(default)]
    pub num_ctx: Option<u32>,
    /// `provider: ollama`: `keep_alive` sent with each request unless the client sends one.
    #[serde(default)]
    pub keep_alive: Option<KeepAlive>,
    /// `local` or `remote`. Default: `local` when `base_url` is on loopback or a private
    /// address (and the model is not an Ollama `-cloud`/`:cloud` tag), else `remote`.
    #[serde(default)]
    pub hosting: Option<Hosting>,
    /// Openness tier. Default: the catalog entry matching `model`, else `api`.
    #[serde(default)]
    pub openness: Option<Openness>,
    /// List price, USD per 1M tokens. Default: the catalog's for remote deployments (unknown
    /// when it has none), 0 for local ones.
    #[serde(default)]
    pub price: Option<Price>,
    /// Free labels that policies can require.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Where it runs (free text, e.g. `eu-west`); shown in explanations.
    #[serde(default)]
    pub region: Option<String>,
    /// Relative share among equally preferred deployments. Default 1.
    #[serde(default)]
    pub weight: Option<f64>,
    /// Most requests in flight at once; past it the deployment is skipped.
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    /// Extra attempts on this deployment after a retryable failure, before moving on.
    /// Default 0.
    #[serde(default)]
    pub retries: Option<u32>,
    /// `false` leaves the deployment out after validation: it is not routed to, listed or
    /// probed, and it is dropped from every model's list. Default `true`. Usually
    /// `${SOME_VAR:-false}`, to switch a remote deployment on from the environment.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Sampling overrides for every request this deployment serves; a matching policy's
    /// `sampling:` and the client's `x-sluice-deterministic` header override it field by
    /// field (docs/reproducibility.md).
    #[serde(default)]
    pub sampling: Option<SamplingConfig>,
    /// Values derived from the fields above on first use, so the request path does not
    /// recompute them for every request. Not part of the config file.
    #[serde(skip)]
    pub derived: Derived,
}

/// Per-deployment values computed once, on the first request that needs them.
#[derive(Debug, Clone, Default)]
pub struct Derived {
    /// The effective capabilities (see [`capability::Caps::of`]).
    pub caps: std::sync::OnceLock<capability::Caps>,
    /// `base_url` parsed (`None` when it does not parse; validation rejects that earlier).
    base_url: std::sync::OnceLock<Option<url::Url>>,
    /// [`DeploymentConfig::upstream_target`]'s answers, per path.
    uris: UriCache,
    /// [`DeploymentConfig::backend`]'s text.
    backend: std::sync::OnceLock<String>,
}

/// The upstream URIs a deployment was asked for, by path: a few (one per endpoint), each
/// made once, with the `host` header an HTTP/1 request to it carries ([`host_header`]).
#[derive(Debug, Default)]
struct UriCache(std::sync::RwLock<Vec<(String, http::Uri, Option<http::HeaderValue>)>>);

/// The `host` header of a request to `uri`, as hyper's client writes it when a request has
/// none: the host, and the port unless it is the scheme's default (`127.0.0.1:8080`,
/// `example.com`, `[::1]:9000`). `None` when `uri` has no host. For URIs made from a parsed
/// `url::Url` (which writes ports without leading zeros and drops default ones), as
/// [`DeploymentConfig::upstream_target`] makes them.
pub(crate) fn host_header(uri: &http::Uri) -> Option<http::HeaderValue> {
    let host = uri.host()?;
    let secure = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
    let value = match uri.port_u16() {
        Some(443) if secure => host.to_string(),
        Some(80) if !secure => host.to_string(),
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    http::HeaderValue::from_str(&value).ok()
}

impl Derived {
    /// How many upstream URIs are kept (tests).
    #[cfg(test)]
    pub(crate) fn uris_kept(&self) -> usize {
        self.uris.0.read().map(|v| v.len()).unwrap_or(0)
    }
}

impl Clone for UriCache {
    fn clone(&self) -> Self {
        let kept = self.0.read().map(|v| v.clone()).unwrap_or_default();
        UriCache(std::sync::RwLock::new(kept))
    }
}

fn enabled_by_default() -> bool {
    true
}

/// A price, USD per 1M tokens.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// USD per 1M prompt tokens (those not read from or written to a prompt cache).
    pub input: f64,
    /// USD per 1M completion tokens.
    pub output: f64,
    /// USD per 1M prompt tokens read from the provider's prompt cache. Default: `input`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<f64>,
    /// USD per 1M prompt tokens written to the provider's prompt cache. Default: `input`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
}

impl DeploymentConfig {
    /// Total timeout, ms.
    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms.unwrap_or(600_000)
    }
    /// Connect timeout, ms.
    pub fn connect_timeout_ms(&self) -> u64 {
        self.connect_timeout_ms.unwrap_or(5_000)
    }
    /// Stream idle timeout, ms.
    pub fn stream_idle_timeout_ms(&self) -> u64 {
        self.stream_idle_timeout_ms.unwrap_or(120_000)
    }
    /// Largest whole answer, bytes (default [`DEFAULT_MAX_RESPONSE_BYTES`]).
    pub fn max_response_bytes(&self) -> usize {
        self.max_response_bytes
            .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES)
    }
    /// Most of an error body read, bytes (default [`DEFAULT_MAX_ERROR_BODY_BYTES`]).
    pub fn max_error_body_bytes(&self) -> usize {
        self.max_error_body_bytes
            .unwrap_or(DEFAULT_MAX_ERROR_BODY_BYTES)
    }
    /// Largest stream event, bytes (default [`DEFAULT_MAX_STREAM_EVENT_BYTES`]).
    pub fn max_stream_event_bytes(&self) -> usize {
        self.max_stream_event_bytes
            .unwrap_or(DEFAULT_MAX_STREAM_EVENT_BYTES)
    }
    /// Most bytes one stream may send (default [`DEFAULT_MAX_STREAM_BYTES`]).
    pub fn max_stream_bytes(&self) -> usize {
        self.max_stream_bytes.unwrap_or(DEFAULT_MAX_STREAM_BYTES)
    }

    /// The upstream URL of `path` (e.g. `/chat/completions`): `base_url` with exactly one `/`
    /// between its path and `path`. `base_url` is parsed once per deployment; each call only
    /// sets the path, so no request pays for host parsing (IDNA) again.
    ///
    /// Errors: `base_url` is not a URL (validation rejects such a config before serving).
    pub fn upstream_url(&self, path: &str) -> Result<url::Url, String> {
        let base = self
            .derived
            .base_url
            .get_or_init(|| url::Url::parse(&self.base_url).ok())
            .as_ref()
            .ok_or_else(|| format!("bad base_url `{}`", self.base_url))?;
        let mut url = base.clone();
        let joined = format!(
            "{}/{}",
            base.path().trim_end_matches('/'),
            path.trim_start_matches('/')
        );
        url.set_path(&joined);
        Ok(url)
    }

    /// [`Self::upstream_url`] as the `http::Uri` a request is sent to, with its `host` header
    /// ([`host_header`]), both made once per path and kept (a request then clones them
    /// instead of joining, printing and parsing a URL, and formatting the host). `None` when
    /// `base_url` carries credentials: the HTTP client takes them out of the URL.
    ///
    /// Errors: as [`Self::upstream_url`], or the URL is not a valid URI.
    pub fn upstream_target(
        &self,
        path: &str,
    ) -> Result<Option<(http::Uri, Option<http::HeaderValue>)>, String> {
        if let Ok(kept) = self.derived.uris.0.read()
            && let Some((_, uri, host)) = kept.iter().find(|(p, _, _)| p == path)
        {
            return Ok(Some((uri.clone(), host.clone())));
        }
        let url = self.upstream_url(path)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Ok(None);
        }
        let uri = http::Uri::try_from(String::from(url)).map_err(|e| e.to_string())?;
        let host = host_header(&uri);
        if let Ok(mut kept) = self.derived.uris.0.write()
            && !kept.iter().any(|(p, _, _)| p == path)
        {
            kept.push((path.to_string(), uri.clone(), host.clone()));
        }
        Ok(Some((uri, host)))
    }

    /// What answers under this deployment's name, as the request hash names it
    /// ([`crate::repro::request_hash`]): its provider, base URL and model
    /// (`openai http://10.0.0.5:8080/v1 llama-3.1-8b`), made once.
    pub fn backend(&self) -> &str {
        self.derived.backend.get_or_init(|| {
            format!(
                "{} {} {}",
                self.provider.as_str(),
                self.base_url,
                self.model
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(uri: &str) -> Option<String> {
        host_header(&uri.parse::<http::Uri>().unwrap()).map(|h| h.to_str().unwrap().to_string())
    }

    /// The value hyper's client would give a request to the same URI.
    #[test]
    fn host_headers_are_the_http_clients() {
        let cases = [
            ("http://127.0.0.1:8080/v1/chat", Some("127.0.0.1:8080")),
            ("http://example.com/v1", Some("example.com")),
            ("http://example.com:80/v1", Some("example.com")),
            ("https://example.com:443/v1", Some("example.com")),
            ("https://example.com:80/v1", Some("example.com:80")),
            ("http://example.com:443/v1", Some("example.com:443")),
            ("http://[::1]:9000/v1", Some("[::1]:9000")),
            ("/v1/chat", None),
        ];
        for (uri, want) in cases {
            assert_eq!(host(uri).as_deref(), want, "{uri}");
        }
    }
}

//! Configuration: the YAML schema, `${VAR}` expansion, validation with key paths, and the
//! default config embedded in the binary.
//!
//! Lookup order for `serve` and the log commands: `--config FILE`, `$SLUICE_CONFIG`,
//! `./sluice.yaml`, else the embedded `config/sluice.yaml`.
//!
//! Layer: the YAML schema and its validation; never imports `providers`, `gateway` or `http`.

pub mod capability;
pub mod coordination;
mod expand;
mod load;
pub mod log;

pub use log::{LogConfig, LogMode};
pub mod policy;
pub mod sampling;

pub use policy::{PiiConfig, PolicyConfig, RoutingConfig};
pub use sampling::{CacheConfig, SamplingConfig, SamplingSettings};

use crate::policy::tier::{Hosting, Openness};

pub use capability::{Capability, KeepAlive, ToolsMode};
pub use coordination::{CoordinationConfig, OnUnavailable, RedisConfig};
pub use load::{ConfigError, ConfigSource, load, locate, parse, parse_with_env, text_hash};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The default config, embedded at build time from `config/sluice.yaml`.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/sluice.yaml");

/// The whole config file.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listener and limits.
    #[serde(default)]
    pub server: ServerConfig,
    /// Backends, each serving one model.
    #[serde(default)]
    pub deployments: Vec<DeploymentConfig>,
    /// Client-facing model names, each over a list of deployments.
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    /// Routing policies, evaluated in order for every request (docs/policies.md).
    #[serde(default)]
    pub policies: Vec<PolicyConfig>,
    /// User-defined PII detectors.
    #[serde(default)]
    pub pii: PiiConfig,
    /// Cooldowns and other routing settings.
    #[serde(default)]
    pub routing: RoutingConfig,
    /// A model catalog file (YAML, same shape as the embedded `config/catalog.yaml`) whose
    /// entries are matched before the embedded ones.
    #[serde(default)]
    pub catalog: Option<PathBuf>,
    /// Traces and metrics.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Virtual keys declared in config (GitOps); more are created with `sluice keys create`.
    #[serde(default)]
    pub keys: Vec<crate::access::auth::KeySpec>,
    /// Rate limits per model and per deployment.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The request log (`log:` block).
    #[serde(default)]
    pub log: LogConfig,
    /// Top-level sampling settings (docs/reproducibility.md).
    #[serde(default)]
    pub sampling: SamplingSettings,
    /// The response cache for deterministic requests (docs/reproducibility.md).
    #[serde(default)]
    pub cache: CacheConfig,
    /// Names of the deployments left out with `enabled: false` (filled by
    /// [`Config::drop_disabled`]; `sluice check` lists them). Not part of the config file.
    #[serde(skip)]
    pub disabled: Vec<String>,
    /// A shared coordinator for rate limits and budgets across replicas (docs/scaling.md).
    #[serde(default)]
    pub coordination: CoordinationConfig,
    /// `sha256:` and the first 16 hex digits of the SHA-256 of the config text as read
    /// (before `${VAR}` expansion), set by [`parse`]; shown in `/health/ready` and
    /// `/metrics` so replicas on different configs are visible. Not part of the config file.
    #[serde(skip)]
    pub hash: String,
}

/// `limits:` block: `{models: {NAME: {rpm, tpm}}, deployments: {NAME: {rpm, tpm}}}`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Per client-facing model name.
    #[serde(default)]
    pub models: std::collections::BTreeMap<String, RateLimitConfig>,
    /// Per deployment (e.g. to protect a small local GPU).
    #[serde(default)]
    pub deployments: std::collections::BTreeMap<String, RateLimitConfig>,
}

/// Requests and tokens per minute.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests per minute.
    #[serde(default)]
    pub rpm: Option<u32>,
    /// Tokens per minute.
    #[serde(default)]
    pub tpm: Option<u32>,
}

/// `telemetry:` block.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// OTLP/HTTP endpoint for traces, e.g. `http://127.0.0.1:4318` (`/v1/traces` is
    /// appended). Default: `OTEL_EXPORTER_OTLP_ENDPOINT`; traces are off when neither is set.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// Put prompt messages on spans (`gen_ai.input.messages`). Default false.
    #[serde(default)]
    pub capture_content: bool,
    /// Serve `GET /metrics` on this separate address instead of the main listener.
    #[serde(default)]
    pub metrics_listen: Option<String>,
}

/// `server:` block.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on, `host:port`. Default `127.0.0.1:4000`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Largest accepted request body, bytes. Default 10 MiB; larger bodies get 413.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// On SIGINT/SIGTERM, how long in-flight requests may still run, ms. Default 30 000.
    #[serde(default = "default_grace")]
    pub shutdown_grace_ms: u64,
    /// Timeout of each deployment probe of `GET /health/ready`, ms. Default 2 000.
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout_ms: u64,
    /// Master key (usually `${SLUICE_MASTER_KEY}`). When set, every `/v1/*` request needs a
    /// key, and `/admin/*`, `/ui`, `/metrics` need the master key or an admin key.
    #[serde(default, skip_serializing)]
    pub master_key: Option<String>,
    /// Allow serving without a master key on a non-loopback address. Default false: Sluice
    /// refuses to start that way.
    #[serde(default)]
    pub allow_unauthenticated: bool,
    /// How often `serve` checks the config file for changes and reloads it, ms. Default
    /// 1 000; 0 turns the check off (SIGHUP still reloads).
    #[serde(default = "default_config_poll")]
    pub config_poll_ms: u64,
    /// Lifetime of a `/ui` login session, seconds. Default 28 800 (8 h).
    #[serde(default = "default_ui_session_ttl")]
    pub ui_session_ttl_s: u64,
    /// How long `GET /health/ready` reuses its backend probes, ms (however many requests
    /// come in, each backend is probed at most once per period). Default 5 000.
    #[serde(default = "default_ready_cache")]
    pub ready_cache_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            max_body_bytes: default_max_body(),
            shutdown_grace_ms: default_grace(),
            ready_timeout_ms: default_ready_timeout(),
            master_key: None,
            allow_unauthenticated: false,
            config_poll_ms: default_config_poll(),
            ui_session_ttl_s: default_ui_session_ttl(),
            ready_cache_ms: default_ready_cache(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:4000".to_string()
}
fn default_max_body() -> usize {
    10 * 1024 * 1024
}
fn default_grace() -> u64 {
    30_000
}
fn default_config_poll() -> u64 {
    1_000
}
fn default_ready_timeout() -> u64 {
    2_000
}
fn default_ui_session_ttl() -> u64 {
    8 * 3600
}
fn default_ready_cache() -> u64 {
    5_000
}

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
    /// Most bytes a stream may send without completing an event (one SSE event, one NDJSON
    /// line), after decompression. Default 4 194 304 (4 MiB). Over it: a 502 error event.
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
    /// Most bytes without a complete stream event (default [`DEFAULT_MAX_STREAM_EVENT_BYTES`]).
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
}

/// A client-facing model name.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The name clients put in `model`.
    pub name: String,
    /// Candidate deployments, in order of preference.
    pub deployments: Vec<String>,
    /// Other model names to try, in order, when every deployment of this one failed (the
    /// request's policy constraints still apply to them).
    #[serde(default)]
    pub fallbacks: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "
server:
  listen: 127.0.0.1:4100
deployments:
  - name: a
    provider: openai
    base_url: http://127.0.0.1:8081/v1
    model: gemma
models:
  - name: default
    deployments: [a]
";

    #[test]
    fn upstream_urls_join_with_one_slash_and_keep_the_query() {
        let url = |base: &str, path: &str| {
            let yaml = GOOD.replace("http://127.0.0.1:8081/v1", base);
            let c = parse("t", &yaml).unwrap();
            c.deployments[0].upstream_url(path).unwrap().to_string()
        };
        assert_eq!(
            url("http://127.0.0.1:8081/v1", "/chat/completions"),
            "http://127.0.0.1:8081/v1/chat/completions"
        );
        assert_eq!(
            url("http://127.0.0.1:8081/v1/", "chat/completions"),
            "http://127.0.0.1:8081/v1/chat/completions"
        );
        assert_eq!(
            url("http://127.0.0.1:8081", "/api/chat"),
            "http://127.0.0.1:8081/api/chat"
        );
        assert_eq!(
            url(
                "https://x.openai.azure.com/openai/v1?api-version=preview",
                "/embeddings"
            ),
            "https://x.openai.azure.com/openai/v1/embeddings?api-version=preview"
        );
        // The parsed base is kept: a second call gives the same answer.
        let c = parse("t", GOOD).unwrap();
        let d = &c.deployments[0];
        assert_eq!(d.upstream_url("/a").unwrap(), d.upstream_url("/a").unwrap());
    }

    #[test]
    fn the_embedded_default_is_valid() {
        let c = parse("embedded", DEFAULT_CONFIG).unwrap();
        assert!(
            c.deployments
                .iter()
                .any(|d| d.base_url.contains("127.0.0.1:8080"))
        );
        assert!(
            c.deployments
                .iter()
                .any(|d| d.base_url.contains("127.0.0.1:11434"))
        );
    }

    #[test]
    fn byte_caps_of_zero_are_refused_naming_the_key() {
        for key in [
            "max_response_bytes",
            "max_error_body_bytes",
            "max_stream_event_bytes",
            "max_stream_bytes",
        ] {
            let yaml = GOOD.replace("model: gemma", &format!("model: gemma\n    {key}: 0"));
            let e = parse("t", &yaml).unwrap_err().to_string();
            assert!(
                e.contains(&format!("deployments[0].{key}"))
                    && e.contains("must be at least 1 (leave it out for the default)"),
                "{key}: {e}"
            );
            let yaml = GOOD.replace("model: gemma", &format!("model: gemma\n    {key}: 1"));
            assert!(parse("t", &yaml).is_ok(), "{key}: 1 is allowed");
        }
    }

    #[test]
    fn good_config_parses() {
        let c = parse("f.yaml", GOOD).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:4100");
        assert_eq!(c.server.max_body_bytes, 10 * 1024 * 1024);
        assert_eq!(c.deployments[0].provider, ProviderKind::Openai);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let bad = GOOD.replace("    model: gemma", "    model: gemma\n    modle: x");
        let e = parse("f.yaml", &bad).unwrap_err();
        assert!(e.message.contains("modle"), "{e}");
        assert_eq!(e.line, Some(9));
    }

    #[test]
    fn missing_field_unknown_provider_bad_url_duplicate() {
        let e = parse("f.yaml", &GOOD.replace("    model: gemma\n", "")).unwrap_err();
        assert!(e.message.contains("model"), "{e}");
        let e = parse("f.yaml", &GOOD.replace("provider: openai", "provider: foo")).unwrap_err();
        assert!(e.message.contains("foo"), "{e}");
        let e = parse(
            "f.yaml",
            &GOOD.replace("http://127.0.0.1:8081/v1", "not a url"),
        )
        .unwrap_err();
        assert_eq!(e.path.as_deref(), Some("deployments[0].base_url"));
        assert_eq!(e.line, Some(7));
        let e = parse("f.yaml", &GOOD.replace("name: default", "name: a")).unwrap_err();
        assert_eq!(e.path.as_deref(), Some("models[0].name"));
        let e = parse("f.yaml", &GOOD.replace("[a]", "[b]")).unwrap_err();
        assert_eq!(e.path.as_deref(), Some("models[0].deployments[0]"));
    }

    #[test]
    fn a_disabled_deployment_is_left_out_of_deployments_and_models() {
        let text = format!(
            "{GOOD}  - name: both\n    deployments: [a, b]\n"
        )
        .replace(
            "models:",
            "  - name: b\n    provider: openai\n    base_url: https://api.example.com/v1\n    model: m\n    enabled: ${SLUICE_TEST_SURELY_UNSET_B:-false}\nmodels:",
        );
        let c = parse("f.yaml", &text).unwrap();
        let names: Vec<&str> = c.deployments.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["a"]);
        assert_eq!(c.models[1].name, "both");
        assert_eq!(c.models[1].deployments, ["a"]);
        let on = parse("f.yaml", &text.replace(":-false}", ":-true}")).unwrap();
        assert_eq!(on.models[1].deployments, ["a", "b"]);
        let e = parse("f.yaml", &text.replace(":-false}", ":-maybe}")).unwrap_err();
        assert!(
            e.message.contains("maybe") || e.message.contains("bool"),
            "{e}"
        );
    }

    #[test]
    fn unset_variable_is_an_error_with_its_line() {
        let text = GOOD.replace(
            "model: gemma",
            "model: gemma\n    api_key: ${SLUICE_TEST_SURELY_UNSET}",
        );
        let e = parse("f.yaml", &text).unwrap_err();
        assert_eq!(e.line, Some(9));
        assert!(e.message.contains("SLUICE_TEST_SURELY_UNSET"));
        assert_eq!(
            e.to_string(),
            "f.yaml:9: ${SLUICE_TEST_SURELY_UNSET} is referenced but not set in the environment"
        );
    }
}

//! Configuration: the YAML schema, `${VAR}` expansion, validation with key paths, and the
//! default config embedded in the binary.
//!
//! Lookup order for `serve` and the log commands: `--config FILE`, `$SLUICE_CONFIG`,
//! `./sluice.yaml`, else the embedded `config/sluice.yaml`.
//!
//! Layer: the YAML schema and its validation; never imports `providers`, `gateway` or `http`.

pub mod capability;
pub mod coordination;
mod deployment;
mod expand;
mod load;
pub mod log;

pub use log::{LogConfig, LogMode};
pub mod policy;
pub mod sampling;

pub use policy::{PiiConfig, PolicyConfig, RoutingConfig};
pub use sampling::{CacheConfig, SamplingConfig, SamplingSettings};

pub use capability::{Capability, KeepAlive, ToolsMode};
pub use coordination::{CoordinationConfig, OnUnavailable, RedisConfig};
pub use deployment::{
    DEFAULT_MAX_ERROR_BODY_BYTES, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_MAX_STREAM_BYTES,
    DEFAULT_MAX_STREAM_EVENT_BYTES, DeploymentConfig, Derived, Price, ProviderKind,
};
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
    /// Request threads of `serve`. Default: `TOKIO_WORKER_THREADS` if set, else one per
    /// core. Read at start; a reload does not change it.
    #[serde(default)]
    pub workers: Option<usize>,
    /// How `serve` runs its request threads. Default `per_core`. Read at start.
    #[serde(default)]
    pub runtime: RuntimeKind,
}

/// `server.runtime`: how `serve` spreads requests over its threads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeKind {
    /// Each thread runs its own single-threaded runtime with its own listening socket
    /// (`SO_REUSEPORT`: the kernel spreads connections over them) and its own upstream
    /// connections, so a request never changes thread. A connection stays on its thread;
    /// one slow-to-compute request delays the others of that thread only.
    #[default]
    PerCore,
    /// One work-stealing runtime shared by every thread (tokio's multi-thread scheduler):
    /// idle threads take work from busy ones, at the price of handing requests between
    /// threads.
    Shared,
}

impl RuntimeKind {
    /// The name in config (`per_core`, `shared`).
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::PerCore => "per_core",
            RuntimeKind::Shared => "shared",
        }
    }
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
            workers: None,
            runtime: RuntimeKind::default(),
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
    fn upstream_uris_are_the_urls_kept_per_path_and_none_with_credentials() {
        let c = parse("t", &GOOD.replace("/v1", "/v1?api-version=1")).unwrap();
        let d = &c.deployments[0];
        for path in ["/chat/completions", "/embeddings", "/chat/completions"] {
            let (uri, host) = d.upstream_target(path).unwrap().unwrap();
            assert_eq!(uri.to_string(), d.upstream_url(path).unwrap().to_string());
            assert_eq!(host.unwrap(), "127.0.0.1:8081");
        }
        let (uri, _) = d.upstream_target("/embeddings").unwrap().unwrap();
        assert_eq!(
            uri.to_string(),
            "http://127.0.0.1:8081/v1/embeddings?api-version=1"
        );
        // A copy of the config (a reload) keeps what was made.
        assert_eq!(d.clone().derived.uris_kept(), 2);
        let c = parse("t", &GOOD.replace("http://", "http://user:pw@")).unwrap();
        assert_eq!(
            c.deployments[0].upstream_target("/chat/completions"),
            Ok(None)
        );
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
    fn rate_limits_of_zero_are_refused_naming_the_key() {
        for key in ["rpm", "tpm"] {
            let yaml = format!("{GOOD}keys:\n  - name: k\n    key: sk-k\n    {key}: 0\n");
            let e = parse("t", &yaml).unwrap_err();
            assert_eq!(e.path.as_deref(), Some(format!("keys[0].{key}").as_str()));
            assert_eq!(e.message, crate::access::validate::ZERO_KEY_LIMIT);
            let yaml = format!("{GOOD}limits:\n  models:\n    default: {{{key}: 0}}\n");
            let e = parse("t", &yaml).unwrap_err();
            assert_eq!(
                e.path.as_deref(),
                Some(format!("limits.models.default.{key}").as_str())
            );
            assert_eq!(e.message, "must be at least 1 (leave it out for no limit)");
            let yaml = format!("{GOOD}limits:\n  deployments:\n    a: {{{key}: 1}}\n");
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

//! Backends: one module per wire protocol, dispatched by a plain `match` on
//! [`ProviderKind`]. Every provider takes an OpenAI-shaped request and gives back an
//! OpenAI-shaped [`Reply`]: a whole JSON body, or a stream of OpenAI chunk objects.
//!
//! Adding a provider: write `call` (and optionally `probe`) in a new module, add a variant to
//! [`ProviderKind`] and one arm to [`call`] and [`probe`]; the server does not change.
//!
//! Layer: outbound adapters; imports `api`, `config`, `telemetry`; never `gateway`, `http`,
//! `policy` or `store`.

pub mod anthropic;
pub mod caps;
pub mod chunk;
pub mod embeddings;
pub mod event_size;
pub mod http_client;
pub mod native;
pub mod ndjson;
pub mod ollama;
pub mod openai;
pub mod pool;
pub mod probe_cache;
pub mod sse;
pub mod upstream;

pub use chunk::{Chunk, ChunkStream, complete_as_stream};

use crate::api::{ApiError, Endpoint, RequestBody};
use crate::config::{DeploymentConfig, ProviderKind};
use bytes::Bytes;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// One upstream call: which deployment, which endpoint, what body.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The deployment to call.
    pub deployment: &'a DeploymentConfig,
    /// The endpoint the client used.
    pub endpoint: Endpoint,
    /// The request, already carrying the client's (not the deployment's) model name.
    pub body: &'a RequestBody,
    /// Sluice's request id, forwarded as `x-request-id`.
    pub request_id: &'a str,
    /// The last check on the exact bytes about to be sent, when a policy keeps personal data
    /// local and the deployment is not local (see [`crate::policy::egress`]).
    pub egress: Option<&'a dyn Egress>,
    /// Whether the caller needs a whole answer as a JSON tree ([`Answer::Tree`]): to restore
    /// redacted values in it. Otherwise an OpenAI chat completion is only summarized
    /// ([`Answer::Summary`]); the bridges read its bytes through the borrowed view.
    pub tree: bool,
    /// The client's request as the log keeps it, written once; used instead of writing the
    /// request again only while `body` is the very request it is the text of.
    pub written: Option<WrittenBody<'a>>,
}

/// A request and its JSON text as `serde_json` writes it (compact, fields in declaration
/// order), tied together: [`WrittenBody::text_of`] gives the text only for that same request
/// (the same address), never for a redacted, overridden or translated copy of it.
#[derive(Debug, Clone, Copy)]
pub struct WrittenBody<'a> {
    /// The request.
    pub body: &'a RequestBody,
    /// `serde_json::to_string(body)`.
    pub text: &'a str,
}

impl<'a> WrittenBody<'a> {
    /// The text, when `body` is the request it was written from.
    pub fn text_of(&self, body: &RequestBody) -> Option<&'a str> {
        std::ptr::eq(self.body, body).then_some(self.text)
    }
}

/// A check on the exact body of an upstream request, run right before it is sent.
pub trait Egress: Sync {
    /// `Ok` when a request with `headers` and `body` may be sent to `deployment`; the error
    /// is the client's answer and nothing is sent.
    fn check(
        &self,
        deployment: &str,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<(), ApiError>;
}

impl std::fmt::Debug for dyn Egress + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Egress")
    }
}

/// What a provider gives back.
pub enum Reply {
    /// A whole OpenAI-shaped JSON response.
    Complete {
        /// The body as sent to the client.
        body: Bytes,
        /// The same body, parsed or summarized (see [`Answer`]).
        json: Answer,
    },
    /// A stream of OpenAI chunks.
    Stream(ChunkStream),
    /// A native route's stream: the backend's own events, untranslated (see [`native`]).
    Events(native::EventStream),
}

/// A whole answer's JSON as the provider read it.
#[derive(Debug)]
pub enum Answer {
    /// Parsed into a tree: the caller needs it ([`Call::tree`]), or the answer is not a chat
    /// completion the borrowed view reads.
    Tree(Value),
    /// Read through [`crate::api::answer_view`] only, without a tree: its summary.
    Summary(Box<crate::api::summary::ResponseSummary>),
}

impl Answer {
    /// The tree: the parsed one, or `bytes` (the same answer, already read as JSON) parsed
    /// now; `null` if they do not parse.
    pub fn into_tree(self, bytes: &[u8]) -> Value {
        match self {
            Answer::Tree(v) => v,
            Answer::Summary(_) => crate::api::json::from_bytes(bytes).unwrap_or(Value::Null),
        }
    }
}

/// The shared HTTP clients: one pooled client ([`http_client::Client`]) per distinct connect
/// timeout (usually one), since connect timeouts are set per client, and one such set per request
/// thread ([`pool`]), so that a thread's upstream connections are driven by its own
/// runtime. They never follow redirects. Cheap to clone (the table is shared).
#[derive(Clone, Debug)]
pub struct Upstreams {
    /// Request thread 0's clients (and every thread's without a set of its own).
    first: std::sync::Arc<ClientSet>,
    /// Request threads 1.. : their own clients.
    rest: std::sync::Arc<Vec<ClientSet>>,
    /// The cached probes of `GET /health/ready`.
    pub probes: std::sync::Arc<probe_cache::ProbeCache>,
}

/// One request thread's clients.
#[derive(Debug)]
struct ClientSet {
    by_timeout: HashMap<u64, http_client::Client>,
    fallback: http_client::Client,
}

impl Upstreams {
    /// Builds the clients the deployments need, one set per request thread
    /// ([`pool::threads`]).
    ///
    /// Errors: a client cannot be built (its TLS configuration failed to load).
    pub fn new(deployments: &[DeploymentConfig]) -> Result<Self, String> {
        Self::with_sets(deployments, pool::threads())
    }

    /// [`Upstreams::new`] with `sets` client sets (at least 1).
    fn with_sets(deployments: &[DeploymentConfig], sets: usize) -> Result<Self, String> {
        let first = ClientSet::new(deployments)?;
        let rest = (1..sets)
            .map(|_| ClientSet::new(deployments))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Upstreams {
            first: std::sync::Arc::new(first),
            rest: std::sync::Arc::new(rest),
            probes: Default::default(),
        })
    }

    /// The client for `deployment`, from the calling thread's set.
    pub fn client(&self, deployment: &DeploymentConfig) -> &http_client::Client {
        let set = match pool::current(1 + self.rest.len()) {
            0 => &self.first,
            i => self.rest.get(i - 1).unwrap_or(&self.first),
        };
        set.by_timeout
            .get(&deployment.connect_timeout_ms())
            .unwrap_or(&set.fallback)
    }
}

impl ClientSet {
    /// One client per distinct connect timeout of `deployments`, and the fallback.
    fn new(deployments: &[DeploymentConfig]) -> Result<Self, String> {
        let mut by_timeout = HashMap::new();
        for d in deployments {
            let ms = d.connect_timeout_ms();
            if let std::collections::hash_map::Entry::Vacant(e) = by_timeout.entry(ms) {
                e.insert(build_client(ms)?);
            }
        }
        Ok(ClientSet {
            by_timeout,
            fallback: build_client(5_000)?,
        })
    }
}

/// A client that never uses a proxy and never follows a redirect: either would re-send the
/// prompt (and the deployment's key) to a host the policies never judged; a 3xx is an
/// upstream error instead (see `upstream::send`).
fn build_client(connect_timeout_ms: u64) -> Result<http_client::Client, String> {
    http_client::Client::new(Duration::from_millis(connect_timeout_ms))
}

/// Calls the deployment of `call` with its provider's protocol.
///
/// Errors: the upstream's own 4xx (same status, OpenAI envelope); 502 for connection
/// failures, 5xx and unreadable answers; 504 for timeouts. Messages name the deployment,
/// never its API key.
pub async fn call(http: &Upstreams, call: Call<'_>) -> Result<Reply, ApiError> {
    let trimmed = caps::without_optional_tools(call.body, call.deployment);
    let call = match &trimmed {
        Some(body) => Call { body, ..call },
        None => call,
    };
    if let RequestBody::Native(n) = call.body {
        return native::call(http.client(call.deployment), call, n).await;
    }
    match call.deployment.provider {
        ProviderKind::Openai => openai::call(http.client(call.deployment), call).await,
        ProviderKind::Ollama => ollama::call(http.client(call.deployment), call).await,
        ProviderKind::Anthropic => anthropic::call(http.client(call.deployment), call).await,
    }
}

/// Whether the deployment can serve the request at all, before calling it: 400
/// `unsupported_parameter` naming the `param` the backend lacks (see [`caps`]). The gateway
/// moves on to the model's next deployment when this fails.
pub fn check(
    deployment: &DeploymentConfig,
    endpoint: Endpoint,
    body: &RequestBody,
) -> Result<(), ApiError> {
    caps::check_endpoint(deployment, endpoint)?;
    match body {
        RequestBody::Chat(r) => caps::check_chat(r, deployment),
        RequestBody::Generic(r) => caps::check_generic(r, deployment),
        // Native bodies go only to deployments that serve the dialect (see `native::serves`).
        RequestBody::Native(_) => Ok(()),
    }
}

/// Checks that the deployment answers at all (for `GET /health/ready`), within `timeout`.
pub async fn probe(
    http: &Upstreams,
    deployment: &DeploymentConfig,
    timeout: Duration,
) -> Result<(), String> {
    let path = match deployment.provider {
        ProviderKind::Openai => "/models",
        ProviderKind::Ollama => "/api/version",
        ProviderKind::Anthropic => "/v1/models",
    };
    let url = deployment.upstream_url(path)?;
    let mut req = http.client(deployment).get(url).timeout(timeout);
    if deployment.provider == ProviderKind::Anthropic {
        req = anthropic::with_key(req, deployment)
            .header("anthropic-version", anthropic::API_VERSION);
    }
    match req.send().await {
        // Any HTTP answer (even 401/404) proves the server is there.
        Ok(_) => Ok(()),
        Err(e) => Err(describe_http_error(&e)),
    }
}

/// The `Retry-After` header of an upstream answer, in seconds: delay-seconds, or an HTTP date
/// (RFC 9110 §10.2.3) turned into seconds from now. `None` when absent or unreadable.
pub fn retry_after_secs(headers: &http::header::HeaderMap) -> Option<u64> {
    let v = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(s);
    }
    let when =
        time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let secs = (when - time::OffsetDateTime::now_utc()).whole_seconds();
    Some(secs.max(0) as u64)
}

/// The URL of `path` on `dep` (see [`DeploymentConfig::upstream_url`]).
///
/// Errors: 502 naming the deployment when its `base_url` does not parse.
pub fn upstream_url(dep: &DeploymentConfig, path: &str) -> Result<url::Url, ApiError> {
    dep.upstream_url(path)
        .map_err(|m| ApiError::bad_gateway(&dep.name, m))
}

/// A `POST` of `client` to `path` on `dep`: to its kept URI and `host` header
/// ([`DeploymentConfig::upstream_target`]), or through the URL when `base_url` carries
/// credentials.
///
/// Errors: 502 naming the deployment when its `base_url` does not parse.
pub fn post(
    client: &http_client::Client,
    dep: &DeploymentConfig,
    path: &str,
) -> Result<http_client::RequestBuilder, ApiError> {
    match dep.upstream_target(path) {
        Ok(Some((uri, host))) => Ok(client.post_uri(uri, host)),
        Ok(None) => Ok(client.post(upstream_url(dep, path)?)),
        Err(m) => Err(ApiError::bad_gateway(&dep.name, m)),
    }
}

/// Maps an upstream request's failure to the client's error: timeout → 504, else 502.
pub fn upstream_failure(deployment: &str, e: &http_client::Error) -> ApiError {
    if e.is_timeout() {
        ApiError::gateway_timeout(deployment)
    } else {
        ApiError::bad_gateway(deployment, describe_http_error(e))
    }
}

/// A short description of an upstream request's failure without URLs (which could carry credentials).
pub fn describe_http_error(e: &http_client::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "response body could not be read"
    } else if e.is_request() {
        "request could not be sent"
    } else {
        "upstream error"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind} ({detail})")
    }
}

/// The error that a stream ending without its last chunk becomes.
pub fn stream_ended_early(deployment: &str) -> ApiError {
    ApiError::bad_gateway(
        deployment,
        "the upstream stream ended before it was complete",
    )
}

/// The status a stream error should get when nothing was sent to the client yet:
/// `error.code` when it is a numeric 4xx/5xx, else the error's own status.
pub fn status_of_stream_error(e: &ApiError) -> ApiError {
    let numeric = e.body.code.as_ref().and_then(|c| match c {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse::<u64>().ok(),
        _ => None,
    });
    match numeric.and_then(|n| u16::try_from(n).ok()) {
        Some(n @ 400..=599) => {
            let mut out = e.clone();
            out.status =
                axum::http::StatusCode::from_u16(n).unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
            out
        }
        _ => e.clone(),
    }
}

#[cfg(test)]
mod tests {
    /// Request thread `i` takes client set `i` (wrapping), so its upstream connections are
    /// its own.
    #[test]
    fn each_request_thread_uses_its_own_clients() {
        let cfg = crate::config::parse(
            "t",
            "deployments:\n  - {name: a, provider: openai, base_url: 'http://127.0.0.1:1/v1', model: m}\n\
             models:\n  - {name: default, deployments: [a]}\n",
        )
        .unwrap();
        let up = &super::Upstreams::with_sets(&cfg.deployments, 3).unwrap();
        let d = &cfg.deployments[0];
        let picked: Vec<usize> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..4)
                .map(|i| {
                    s.spawn(move || {
                        super::pool::enter(i);
                        up.client(d) as *const super::http_client::Client as usize
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert_eq!(picked[3], picked[0], "thread 3 wraps to set 0");
        assert!(
            picked[0] != picked[1] && picked[1] != picked[2] && picked[0] != picked[2],
            "{picked:?}"
        );
    }
}

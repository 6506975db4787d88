//! What a request carries into the gateway ([`RequestContext`]) and what comes back out
//! ([`GatewayReply`], [`ReplyBody`]).

use super::native_stream;
use super::stream::ClientStream;
use crate::access::auth::Principal;
use crate::api::{Endpoint, RequestBody};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Per-request facts gathered by the server before the gateway runs.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// Request id (client's `x-request-id` or a new UUIDv7).
    pub id: String,
    /// Monotonic start.
    pub started: Instant,
    /// Wall-clock start.
    pub started_at: SystemTime,
    /// The endpoint used.
    pub endpoint: Endpoint,
    /// The inbound dialect when it is not the endpoint's own (`messages`, `responses`: bridged
    /// to chat completions): recorded in the log's `endpoint` column instead
    /// of the operation name.
    pub dialect: Option<&'static str>,
    /// The request headers (policies match on them).
    pub headers: axum::http::HeaderMap,
    /// The client's IP address, when known.
    pub client_ip: Option<String>,
    /// The request's tracing span (see [`crate::telemetry`]); `Span::none()` when untraced.
    pub span: tracing::Span,
    /// Who is calling (see [`crate::access::auth`]).
    pub principal: Principal,
    /// Set by the server when the client went away before the answer was ready: the request
    /// still finishes (its row and cost are kept) but is recorded with status 499.
    pub client_gone: Arc<std::sync::atomic::AtomicBool>,
    /// Counts the request as open for shutdown until its row is recorded (set by
    /// [`super::Gateway::handle`]; a stream's finish keeps a clone).
    pub open: Option<super::closing::Tracked>,
    /// The prompt tokens estimated from the body's texts, once per request (see
    /// [`RequestContext::prompt_tokens`]).
    prompt_tokens: std::sync::OnceLock<u64>,
}

impl RequestContext {
    /// A context that starts now.
    pub fn new(id: String, endpoint: Endpoint) -> Self {
        RequestContext {
            id,
            started: Instant::now(),
            started_at: SystemTime::now(),
            endpoint,
            dialect: None,
            headers: axum::http::HeaderMap::new(),
            client_ip: None,
            span: tracing::Span::none(),
            principal: Principal::anonymous(),
            client_gone: Arc::default(),
            open: None,
            prompt_tokens: std::sync::OnceLock::new(),
        }
    }

    /// The request's prompt tokens as estimated from every string `body` sends
    /// ([`crate::api::RequestBody::prompt_estimate`]), worked out on the first call only:
    /// admission, the budget reservation, a stream's usage estimate and the settlement after
    /// the answer all count with it. `body` is this request's body.
    pub fn prompt_tokens(&self, body: &crate::api::RequestBody) -> u64 {
        *self.prompt_tokens.get_or_init(|| body.prompt_estimate())
    }
}

/// The body of a reply.
pub enum ReplyBody {
    /// `application/json`.
    Json(Bytes),
    /// `text/event-stream`, frames ready to write.
    Sse(ClientStream),
    /// `text/event-stream` of a native route: the backend's own events (see
    /// [`native_stream`]).
    Native(native_stream::NativeStream),
}

/// A successful reply and the headers that explain it.
pub struct GatewayReply {
    /// The deployment that answered.
    pub deployment: String,
    /// Extra response headers (`x-sluice-deployment`, …).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: ReplyBody,
    /// Whether the answer came from a native route (Messages from `anthropic`, Responses from
    /// a `responses` deployment): then a `Json` body is in the dialect's own shape, not chat's.
    pub native: bool,
    /// A bridged route's `Json` body as the gateway already parsed it (the chat answer), so
    /// the dialect's translator need not parse the bytes again; `None` otherwise.
    pub json: Option<serde_json::Value>,
    /// The log mode a matching policy set for this request (`None`: the key's or the
    /// config's): what else keeps the request's text (stored Responses) follows it too.
    pub log_mode: Option<crate::config::LogMode>,
}

impl GatewayReply {
    /// Adds `x-sluice-route: native|bridged` for a Messages or Responses request.
    pub(super) fn add_route(&mut self, body: &RequestBody) {
        if let RequestBody::Native(_) = body {
            let route = if self.native { "native" } else { "bridged" };
            self.headers.push(("x-sluice-route", route.to_string()));
        }
    }

    /// Adds the sampling headers (`x-sluice-sampling`, `x-sluice-overridden`) when overrides
    /// applied.
    pub(super) fn add_sampling(&mut self, applied: Option<&crate::repro::sampling::Applied>) {
        if let Some(a) = applied {
            self.headers.extend(a.headers());
        }
    }
}

//! Attempts: tries a plan's deployments in order (see [`super::route`] for how the plan is
//! made). A connection error, timeout, 429 or 5xx before the first byte reached the client
//! retries the same deployment up to its `retries`, then puts it into cooldown
//! (`routing.cooldown_ms`, or the upstream's `Retry-After` on 429) and moves to the next.
//! Redaction, sampling overrides, the request hash and the response cache are applied per
//! deployment here, right before the call.

use super::record::RequestRecord;
use super::route::{InflightGuard, Plan, RouteState};
use crate::api::ApiError;
use crate::api::native::{Dialect, Route};
use crate::api::{Endpoint, RequestBody};
use crate::config::Config;
use crate::policy::egress::Guard;
use crate::policy::pii::Detector;
use crate::policy::redact::{Redaction, StreamRestorer, redact};
use crate::policy::redact_native::NativeRestorer;
use crate::policy::tier::Hosting;
use crate::policy::{Decision, DeploymentAttrs, Engine};
use crate::providers::native::{Event, EventStream};
use crate::providers::{self, Answer, Call, Chunk, ChunkStream, Reply, Upstreams};
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// A successful attempt.
pub enum Attempted {
    /// A whole JSON answer (placeholders already restored).
    Complete {
        /// The deployment that answered.
        attrs: Arc<DeploymentAttrs>,
        /// The body for the client.
        bytes: Bytes,
        /// The same, parsed or summarized.
        json: Answer,
        /// Holds the deployment's concurrency slot.
        guard: InflightGuard,
        /// What the sampling overrides did, when any applied.
        sampling: Option<crate::repro::sampling::Applied>,
        /// The dialect when the answer is a native route's (Messages, Responses), untranslated.
        native: Option<Dialect>,
    },
    /// A native route's stream whose first event arrived (see
    /// [`super::native_stream::NativeStream`]).
    Events {
        /// The deployment that answered.
        attrs: Arc<DeploymentAttrs>,
        /// The dialect.
        dialect: Dialect,
        /// The first event.
        first: Event,
        /// The rest.
        rest: EventStream,
        /// Restores placeholders event by event, when the request was redacted.
        restorer: Option<NativeRestorer>,
        /// Holds the deployment's concurrency slot until the stream ends.
        guard: InflightGuard,
        /// What the sampling overrides did, when any applied.
        sampling: Option<crate::repro::sampling::Applied>,
    },
    /// A stream whose first chunk arrived (placeholders restored chunk by chunk).
    Stream {
        /// The deployment that answered.
        attrs: Arc<DeploymentAttrs>,
        /// The first chunk.
        first: Chunk,
        /// The rest.
        rest: ChunkStream,
        /// Holds the deployment's concurrency slot until the stream ends.
        guard: InflightGuard,
        /// What the sampling overrides did, when any applied.
        sampling: Option<crate::repro::sampling::Applied>,
    },
}

/// What [`attempt`] needs besides the plan.
pub struct AttemptCtx<'a> {
    /// Upstream clients.
    pub upstreams: &'a Upstreams,
    /// The config (deployments, cooldown).
    pub config: &'a Config,
    /// Policy engine (PII detectors for redaction).
    pub engine: &'a Engine,
    /// Shared routing state.
    pub state: &'a Arc<RouteState>,
    /// Keys, limits and the coordinator (`limits.deployments` via
    /// [`crate::access::Access::check_deployment`]).
    pub access: &'a crate::access::Access,
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Request id, forwarded upstream.
    pub request_id: &'a str,
    /// The client's request and its text as the log keeps it (see [`providers::WrittenBody`]).
    pub written: Option<providers::WrittenBody<'a>>,
}

/// Tries the plan's deployments in order (see the module docs). Each attempt is counted in
/// `record` (attempts, deployment, provider, hosting, openness, upstream time) and traced in
/// its own span.
///
/// Errors: a non-retryable upstream error (4xx other than 408/429) as is; the last error when
/// every attempt failed; 503 `no_available_deployment` when every eligible deployment is in
/// cooldown or at its concurrency limit (with `Retry-After` when a cooldown ends).
pub async fn attempt(
    cx: &AttemptCtx<'_>,
    decision: &Decision,
    plan: &Plan,
    body: &RequestBody,
    record: &mut RequestRecord,
) -> Result<Attempted, ApiError> {
    // Redacted copies, of the body as sent natively [0] and of its chat translation [1].
    let mut redacted: [Option<(RequestBody, Redaction)>; 2] = [None, None];
    let original = body;
    let mut last_err: Option<ApiError> = None;
    let mut skipped: Vec<String> = Vec::new();
    let mut soonest: Option<Duration> = None;
    // Set while every skipped deployment was skipped for its rate limit: then the answer is
    // that limit's 429, not a 503.
    let mut limited: Option<ApiError> = None;
    let mut only_limited = true;
    // With a single eligible deployment there is nothing to route around: it never cools down
    // (the client gets the upstream's error, and its `Retry-After`, instead of a 503).
    let cooldowns = plan.order.len() > 1;
    for name in &plan.order {
        let (Some(dep), Some(cand)) = (cx.config.deployment(name), plan.candidate(name)) else {
            continue;
        };
        let attrs = &cand.attrs;
        // A Messages or Responses request goes natively to a deployment that serves its
        // dialect, else as its chat translation (see `api::native`).
        let view = match route_view(original, dep, record) {
            Ok(v) => v,
            Err(e) => {
                if record.attempts == 0 {
                    last_err = Some(e);
                }
                continue;
            }
        };
        let body: &RequestBody = &view;
        let slot = usize::from(matches!(view, std::borrow::Cow::Owned(_)));
        // A backend that cannot serve this request at all (endpoint, parameter) is skipped;
        // its 400 is the answer only when no deployment was tried.
        if let Err(e) = providers::check(dep, cx.endpoint, body) {
            if record.attempts == 0 {
                last_err = Some(e);
            }
            continue;
        }
        if let Some(left) = cx.state.cooldown_left(name).filter(|_| cooldowns) {
            skipped.push(format!(
                "`{name}` is cooling down ({} ms left)",
                left.as_millis()
            ));
            soonest = Some(soonest.map_or(left, |s: Duration| s.min(left)));
            only_limited = false;
            continue;
        }
        // The concurrency slot first: a deployment skipped because it is busy must not spend
        // a cell of its rate limit (the slot is given back if the limit then skips it).
        let Some(guard) = cx.state.try_acquire(name, dep.max_concurrency) else {
            skipped.push(format!(
                "`{name}` is at its max_concurrency ({})",
                dep.max_concurrency.unwrap_or(0)
            ));
            only_limited = false;
            continue;
        };
        if let Some(l) = cx.config.limits.deployments.get(name.as_str()) {
            let tokens = body.prompt_estimate();
            if let Err(rej) = cx.access.check_deployment(name, l, tokens).await {
                skipped.push(format!("`{name}` is over its rate limit"));
                limited.get_or_insert(crate::access::coord::into_error(rej));
                continue;
            }
        }
        let redaction = if decision.redacts_for(attrs) {
            let (b, r) = redacted[slot]
                .get_or_insert_with(|| redact(cx.engine.detector(), body, &decision.redact_kinds));
            Some((&*b, r.clone()))
        } else {
            None
        };
        let send_body = redaction.as_ref().map_or(body, |(b, _)| *b);
        let sampling_cfg = crate::repro::sampling::effective(dep, decision.sampling.as_ref());
        let (send_body, mut applied) =
            crate::repro::sampling::apply(send_body, cx.endpoint, dep, sampling_cfg.as_ref())?;
        let send_body = super::output_cap::cap_output(send_body, dep, attrs.max_output);
        let send_body: &RequestBody = &send_body;
        record.sampling = crate::repro::sampling::upstream_params(send_body, cx.endpoint, dep);
        record.deterministic = applied.as_ref().is_some_and(|a| a.deterministic);
        // The hash is kept in the log (and keys the cache, which needs the log): without a
        // log nobody reads it.
        if cx.config.log.prompts != crate::config::LogMode::Off {
            record.request_hash = Some(crate::repro::request_hash(
                send_body,
                cx.endpoint,
                &dep.name,
                dep.backend(),
            ));
        }
        // A request with personal data (redacted or kept local) is neither served from nor
        // stored into the cache: its answer belongs to its caller (rows with PII kinds are
        // never served, see `repro::cache`).
        // The cache reads the log's store (SQLite, or PostgreSQL shared by every replica).
        let cache_db = cx.access.state_db().filter(|_| cx.config.cache.enabled);
        let cacheable = cache_db.is_some()
            && !matches!(send_body, RequestBody::Native(_))
            && !send_body.asks_more_than_a_row_keeps()
            && cx.config.log.prompts != crate::config::LogMode::Off
            && record.deterministic
            && redaction.is_none()
            && decision.pii.is_empty();
        if cacheable
            && let Some(db) = cache_db
            && let Some(json) = crate::repro::cache::lookup(
                db,
                dep.name.clone(),
                record.request_hash.clone().unwrap_or_default(),
                cx.config.cache.ttl_s,
                cx.endpoint == Endpoint::ChatCompletions,
                record.api_key_id.clone(),
            )
            .await
        {
            mark_attempt(record, attrs);
            // A hit's row is not a source: the answer's age is its original's (rows of hits
            // answered later hits, and `ttl_s` never ran out).
            record.deterministic = false;
            let reply = if body.is_stream() {
                let mut s = providers::complete_as_stream(json);
                match s.next().await {
                    Some(Ok(first)) => FirstAnswer::Stream(first, s),
                    _ => return Err(providers::stream_ended_early(name)),
                }
            } else {
                let bytes = Bytes::from(serde_json::to_vec(&json).unwrap_or_default());
                FirstAnswer::Complete(bytes, Answer::Tree(json))
            };
            if let Some(a) = applied.as_mut() {
                a.cache_hit = Some(true);
            }
            return Ok(finish(reply, attrs.clone(), None, guard, applied, None));
        }
        if cacheable && let Some(a) = applied.as_mut() {
            a.cache_hit = Some(false);
        }
        // The last line: under a policy that keeps personal data local, the exact bytes for a
        // deployment that is not local are scanned once more before they leave.
        let egress =
            (attrs.hosting != Hosting::Local && !decision.egress.is_empty()).then(|| EgressGuard {
                detector: cx.engine.detector(),
                guards: &decision.egress,
            });
        // The client's request id leaves too (`x-request-id`): one that carries what the
        // guard keeps local is not forwarded; the deployment gets a fresh id instead.
        let fresh_id;
        let request_id = match &egress {
            Some(g) if crate::policy::egress::carries(g.detector, g.guards, cx.request_id) => {
                fresh_id = uuid::Uuid::now_v7().to_string();
                fresh_id.as_str()
            }
            _ => cx.request_id,
        };
        let tries = dep.retries.unwrap_or(0) + 1;
        for _ in 0..tries {
            mark_attempt(record, attrs);
            let started = Instant::now();
            let call = Call {
                deployment: dep,
                endpoint: cx.endpoint,
                body: send_body,
                request_id,
                egress: egress.as_ref().map(|g| g as &dyn providers::Egress),
                tree: redaction.is_some(),
                written: cx.written,
            };
            let span = crate::telemetry::attempt_span(name, attrs.provider, record.attempts);
            // Boxed: the upstream call's state (the HTTP client's, timeouts) lives on the heap instead of
            // inside every future that awaits this one, which would copy it at each level.
            let result = Box::pin(first_answer(cx.upstreams, call))
                .instrument(span.clone())
                .await;
            if let Err(e) = &result {
                span.record("error.type", e.status.as_str());
                span.record("otel.status_code", "ERROR");
            }
            let waited_us = started.elapsed().as_micros() as u64;
            record.upstream_us = Some(record.upstream_us.unwrap_or(0) + waited_us);
            match result {
                Ok(reply) => {
                    cx.state
                        .observe_latency(name, started.elapsed().as_secs_f64() * 1000.0);
                    let restore = redaction.as_ref().map(|(_, r)| r.clone());
                    let native = match send_body {
                        RequestBody::Native(n) => Some(n.dialect),
                        _ => None,
                    };
                    return Ok(finish(
                        reply,
                        attrs.clone(),
                        restore,
                        guard,
                        applied,
                        native,
                    ));
                }
                Err(e) if e.body.code.as_ref().and_then(|c| c.as_str()) == Some("pii_blocked") => {
                    tracing::warn!(request_id = %cx.request_id, deployment = %name, path = ?e.body.param, "egress guard stopped a request");
                    record.egress_blocked = e.body.param.clone();
                    return Err(e);
                }
                Err(e) if !crate::gateway::is_retryable(&e) => return Err(e),
                Err(e) => {
                    // The status and type, not the upstream's text: upstreams quote the
                    // request in their errors, and the process log keeps no prompt text.
                    let code = e.body.code.as_ref().and_then(|c| c.as_str()).unwrap_or("-");
                    tracing::debug!(request_id = %cx.request_id, deployment = %name, status = e.status.as_u16(), error_type = %e.body.kind, code = %crate::telemetry::log_safe(code), "attempt failed");
                    let is_429 = e.status.as_u16() == 429;
                    let retry_after = e.retry_after_s.map(Duration::from_secs);
                    last_err = Some(e);
                    if is_429 {
                        let cool = retry_after
                            .unwrap_or(Duration::from_millis(cx.config.routing.cooldown_ms));
                        if cooldowns {
                            cx.state.cool_down(name, cool);
                        }
                        break;
                    }
                }
            }
        }
        if cooldowns && last_err.as_ref().is_some_and(|e| e.status.as_u16() != 429) {
            cx.state
                .cool_down(name, Duration::from_millis(cx.config.routing.cooldown_ms));
        }
    }
    Err(match last_err {
        Some(e) => e,
        None if only_limited && limited.is_some() => {
            limited.unwrap_or_else(|| ApiError::internal("rate limit"))
        }
        None => none_available(&skipped, soonest),
    })
}

/// The egress guard of one attempt (see [`crate::policy::egress`]).
struct EgressGuard<'a> {
    detector: &'a Detector,
    guards: &'a [Guard],
}

impl providers::Egress for EgressGuard<'_> {
    fn check(
        &self,
        deployment: &str,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<(), ApiError> {
        crate::policy::egress::check_headers(self.detector, self.guards, deployment, headers)?;
        crate::policy::egress::check_bytes(self.detector, self.guards, deployment, body)
    }
}

/// Counts one attempt on `attrs`' deployment in the record.
fn mark_attempt(record: &mut RequestRecord, attrs: &DeploymentAttrs) {
    record.attempts += 1;
    record.deployment = Some(attrs.name.clone());
    record.provider = Some(attrs.provider);
    record.hosting = Some(attrs.hosting.as_str());
    record.openness = Some(attrs.openness.as_str());
}

/// 503 `no_available_deployment` naming why each deployment was skipped, with `Retry-After`
/// when a cooldown ends.
fn none_available(skipped: &[String], soonest: Option<Duration>) -> ApiError {
    let mut e = ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        format!(
            "No deployment is available right now: {}.",
            skipped.join("; ")
        ),
    )
    .with_code("no_available_deployment");
    e.retry_after_s = soonest.map(|d| d.as_secs().max(1));
    e
}

/// The body to send to `dep`: `body` itself, or — for a Messages or Responses request and a
/// deployment without that API — its chat translation. Notes the route and the tools the
/// translation dropped in `record`.
///
/// Errors: the translation's 400 (the request can only be served natively).
fn route_view<'b>(
    body: &'b RequestBody,
    dep: &crate::config::DeploymentConfig,
    record: &mut RequestRecord,
) -> Result<std::borrow::Cow<'b, RequestBody>, ApiError> {
    let RequestBody::Native(n) = body else {
        return Ok(std::borrow::Cow::Borrowed(body));
    };
    if providers::native::serves(dep, n.dialect) {
        record.route = Some(Route::Native.as_str().to_string());
        record.dropped_tools = Vec::new();
        return Ok(std::borrow::Cow::Borrowed(body));
    }
    let chat = n.bridged.clone()?;
    record.route = Some(Route::Bridged.as_str().to_string());
    record.dropped_tools = n.dropped_tools.clone();
    Ok(std::borrow::Cow::Owned(RequestBody::Chat(Box::new(chat))))
}

/// The most opening events held back before a native stream's first other event.
const OPENING_EVENTS_HELD: usize = 4;

enum FirstAnswer {
    Complete(Bytes, Answer),
    Stream(Chunk, ChunkStream),
    Events(Event, EventStream),
}

/// Calls the upstream and waits for its answer or its first chunk.
async fn first_answer(upstreams: &Upstreams, call: Call<'_>) -> Result<FirstAnswer, ApiError> {
    match providers::call(upstreams, call).await? {
        Reply::Complete { body, json } => Ok(FirstAnswer::Complete(body, json)),
        Reply::Stream(mut s) => match s.next().await {
            Some(Ok(first)) => Ok(FirstAnswer::Stream(first, s)),
            Some(Err(e)) => Err(providers::status_of_stream_error(&e)),
            None => Err(providers::stream_ended_early(&call.deployment.name)),
        },
        Reply::Events(mut s) => {
            let RequestBody::Native(n) = call.body else {
                return Err(ApiError::internal("native events for a chat request"));
            };
            // The stream's opening events (`response.created`, `message_start`, …) say
            // nothing yet: those that arrived with the first one are read before anything is
            // sent, so that an error among them still falls back (OpenAI opens every Responses
            // stream with `response.created`, so an `error` as the very first event never came,
            // and no fallback ever ran). Nothing is waited for: what has not arrived yet is
            // not held (the client's first byte is never later than before).
            let mut held = Vec::new();
            let mut next = match s.next().await {
                Some(Ok(ev)) => Some(ev),
                Some(Err(e)) => return Err(e),
                None => None,
            };
            while let Some(ev) = next.take() {
                if let Some(e) =
                    providers::native::error_event(n.dialect, &call.deployment.name, &ev.data)
                {
                    // Nothing reached the client: fall back.
                    return Err(e);
                }
                let opening = providers::native::is_opening(n.dialect, &ev.data);
                held.push(ev);
                if !opening || held.len() >= OPENING_EVENTS_HELD {
                    break;
                }
                next = match s.next().now_or_never() {
                    Some(Some(Ok(ev))) => Some(ev),
                    Some(Some(Err(e))) => return Err(e),
                    // Ended, or nothing more yet.
                    Some(None) | None => None,
                };
            }
            let mut held = held.into_iter();
            let Some(first) = held.next() else {
                return Err(providers::stream_ended_early(&call.deployment.name));
            };
            let rest: Vec<Result<providers::native::Event, ApiError>> = held.map(Ok).collect();
            let s: providers::native::EventStream = if rest.is_empty() {
                s
            } else {
                Box::pin(futures_util::stream::iter(rest).chain(s))
            };
            Ok(FirstAnswer::Events(first, s))
        }
    }
}

fn finish(
    reply: FirstAnswer,
    attrs: Arc<DeploymentAttrs>,
    restore: Option<Redaction>,
    guard: InflightGuard,
    sampling: Option<crate::repro::sampling::Applied>,
    native: Option<Dialect>,
) -> Attempted {
    match (reply, restore) {
        (FirstAnswer::Events(first, rest), restore) => Attempted::Events {
            attrs,
            dialect: native.unwrap_or(Dialect::Messages),
            first,
            rest,
            restorer: restore.map(|r| NativeRestorer::new(r, native.unwrap_or(Dialect::Messages))),
            guard,
            sampling,
        },
        (FirstAnswer::Complete(bytes, json), None) => Attempted::Complete {
            attrs,
            bytes,
            json,
            guard,
            sampling,
            native,
        },
        (FirstAnswer::Complete(bytes, answer), Some(r)) => {
            let mut json = answer.into_tree(&bytes);
            r.restore_json(&mut json);
            let bytes = Bytes::from(serde_json::to_vec(&json).unwrap_or_default());
            Attempted::Complete {
                attrs,
                bytes,
                json: Answer::Tree(json),
                guard,
                sampling,
                native,
            }
        }
        (FirstAnswer::Stream(first, rest), None) => Attempted::Stream {
            attrs,
            first,
            rest,
            guard,
            sampling,
        },
        (FirstAnswer::Stream(mut first, rest), Some(r)) => {
            let mut restorer = StreamRestorer::new(r);
            restorer.apply(first.rewritten());
            let rest = restored(rest, restorer);
            Attempted::Stream {
                attrs,
                first,
                rest,
                guard,
                sampling,
            }
        }
    }
}

/// `rest` with placeholders restored chunk by chunk; however it ends (its last chunk, an
/// error, or cut short without a finish chunk), the text the restorer still holds is sent
/// first, in a chunk of its own.
fn restored(rest: ChunkStream, restorer: StreamRestorer) -> ChunkStream {
    struct State {
        rest: ChunkStream,
        restorer: StreamRestorer,
        error: Option<ApiError>,
        done: bool,
    }
    let state = State {
        rest,
        restorer,
        error: None,
        done: false,
    };
    futures_util::stream::unfold(state, |mut st| async move {
        if let Some(e) = st.error.take() {
            st.done = true;
            return Some((Err(e), st));
        }
        if st.done {
            return None;
        }
        match st.rest.next().await {
            Some(Ok(mut chunk)) => {
                st.restorer.apply(chunk.rewritten());
                Some((Ok(chunk), st))
            }
            Some(Err(e)) => match st.restorer.drain() {
                Some(tail) => {
                    st.error = Some(e);
                    Some((Ok(Chunk::from(tail)), st))
                }
                None => {
                    st.done = true;
                    Some((Err(e), st))
                }
            },
            None => {
                st.done = true;
                st.restorer.drain().map(|tail| (Ok(Chunk::from(tail)), st))
            }
        }
    })
    .boxed()
}

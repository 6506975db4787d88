//! The Anthropic Messages inbound API: `POST /v1/messages` (whole or streamed),
//! `POST /v1/messages/count_tokens` (also without `/v1`; a query string such as Claude Code's
//! `?beta=true` is accepted), and `HEAD /` / `GET /` answered 200 for clients' reachability
//! probes.
//!
//! A Messages request becomes [`RequestBody::Native`]: the client's body, sent as is (model
//! rewritten) to `anthropic` deployments, and its chat translation
//! ([`crate::bridge::messages`]) for every other deployment; the gateway serves it like any
//! request (admission, policies and the PII scan over every string, routing and fallbacks,
//! limits, the log — whose `endpoint` column says `messages` and `route` says `native` or
//! `bridged`). A native answer is relayed as the backend sent it; a bridged chat reply is
//! translated back: a JSON body into a Messages answer, a stream of chat chunks into Messages
//! SSE events as each chunk arrives. Errors, including authentication's, are in Anthropic's
//! shape and statuses ([`crate::api::messages::error_response`]). Server tools a bridged
//! route removes are named in `x-sluice-dropped-tools`; the Anthropic-only fields it leaves out
//! are logged at debug level.

use super::openai::{id_of, read_body, serve_reply, sse_response, with_headers};
use crate::access::auth::Principal;
use crate::api::answer_view::with_answer;
use crate::api::messages::{AnthropicError, AnthropicErrorBody};
use crate::api::messages::{MessagesRequest, error_response};
use crate::api::native::{Dialect, NativeRequest};
use crate::api::summary::estimate_tokens;
use crate::api::{ApiError, Endpoint, RequestBody, parse_body};
use crate::bridge::messages::{
    StreamTranslator, from_answer, require_max_tokens, require_messages, to_chat,
};
use crate::gateway::stream::ChatFrame;
use crate::gateway::{Gateway, GatewayReply, ReplyBody};
use crate::providers::Chunk;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Extension, OriginalUri, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use bytes::Bytes;
use futures_util::Stream;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Header naming the server tools removed from a bridged request (comma-separated).
pub const DROPPED_TOOLS: &str = "x-sluice-dropped-tools";

/// The Messages routes (mounted with and without `/v1` by [`super::router`], behind
/// [`client`]). Another method on them, and any other path under `/messages/` (`batches`,
/// …), is answered in Anthropic's envelope, not OpenAI's: the client is an Anthropic one.
pub fn router() -> Router<Gateway> {
    Router::new()
        .route("/messages", post(create).fallback(method_not_allowed))
        .route(
            "/messages/count_tokens",
            post(count_tokens).fallback(method_not_allowed),
        )
        .route("/messages/", any(not_found))
        .route("/messages/{*rest}", any(not_found))
}

/// An error in Anthropic's envelope with its own status (not [`error_response`]'s mapping,
/// which turns a 405 into a 400).
fn anthropic_error(status: StatusCode, kind: &str, message: String) -> Response {
    let body = AnthropicError {
        kind: "error".into(),
        error: AnthropicErrorBody {
            kind: kind.into(),
            message,
        },
    };
    (status, axum::Json(body)).into_response()
}

/// 405 for a method other than POST on a Messages route, with `Allow: POST`.
async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> Response {
    let mut resp = anthropic_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        format!("Method {method} is not allowed on {}; use POST", uri.path()),
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    resp
}

/// 404 `not_found_error` for a path under `/messages/` Sluice does not serve (logged at
/// `warn` like every unknown route).
async fn not_found(method: Method, OriginalUri(uri): OriginalUri, headers: HeaderMap) -> Response {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let path = uri.path();
    tracing::warn!(%method, path, user_agent = %agent, "request to a route Sluice does not serve");
    anthropic_error(
        StatusCode::NOT_FOUND,
        "not_found_error",
        format!("Unknown request URL: {method} {path}"),
    )
}

/// `HEAD /` and `GET /`: 200, so Anthropic clients' reachability probes pass (open, like
/// `/health`).
pub fn probe_router() -> Router<Gateway> {
    Router::new().route("/", get(probe))
}

async fn probe() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// Authentication for the Messages routes: as [`super::auth::client`] (the key in
/// `x-api-key` or `Authorization: Bearer`), with a refusal in Anthropic's shape (401
/// `authentication_error`).
pub async fn client(State(gw): State<Gateway>, mut req: Request, next: Next) -> Response {
    match gw.access().authenticate(req.headers()) {
        Ok(p) => {
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        Err(e) => refused(&gw, &e),
    }
}

/// The answer to a request [`client`] refused: the error in Anthropic's envelope, counted
/// as on the other routes ([`super::auth::count`]).
pub(super) fn refused(gw: &Gateway, e: &ApiError) -> Response {
    super::auth::count(gw, e);
    error_response(e)
}

/// The client's `anthropic-beta` header, forwarded on the native route: a comma-separated
/// list of beta names (`[A-Za-z0-9._-]`, as Anthropic names them), so no other text can ride
/// along to a backend in it.
///
/// Errors: 400 `invalid_request_error` naming the header when it is anything else.
fn anthropic_beta(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("anthropic-beta") else {
        return Ok(None);
    };
    let ok = v.to_str().ok().filter(|s| {
        s.split(',').all(|name| {
            let name = name.trim();
            !name.is_empty()
                && name.len() <= 100
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
    });
    match ok {
        Some(s) => Ok(Some(s.to_string())),
        None => Err(ApiError::invalid_request(
            "anthropic-beta: expected a comma-separated list of beta names (letters, digits, `.`, `_`, `-`).",
        )
        .with_param("anthropic-beta")),
    }
}

/// What the reply translation needs from the request.
struct Shape {
    model: String,
    stop_sequences: Vec<String>,
    input_estimate: u64,
    dropped_tools: Vec<String>,
}

/// Parses a Messages body into the native request and its chat translation (for deployments
/// that are not `anthropic`). Errors are 400s (413 past the size limit); a translation error
/// is kept for the bridged route only. The fields the translation left out are logged at
/// debug level with the request id.
async fn parse(
    gw: &Gateway,
    request_id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<(RequestBody, Shape), ApiError> {
    let bytes = read_body(gw, body).await?;
    let req: MessagesRequest = parse_body(&bytes)?;
    require_max_tokens(&req)?;
    require_messages(&req)?;
    let raw: serde_json::Map<String, Value> = parse_body(&bytes)?;
    let (bridged, dropped_tools) = match to_chat(&req) {
        Ok(b) => {
            if !b.dropped_fields.is_empty() {
                tracing::debug!(
                    request_id,
                    fields = ?b.dropped_fields,
                    "messages: fields with no chat equivalent left out on a bridged route"
                );
            }
            (Ok(b.request), b.dropped_tools)
        }
        Err(e) => (Err(e), Vec::new()),
    };
    let input_estimate = match &bridged {
        Ok(chat) => estimate_tokens(&chat.texts()),
        Err(_) => 0,
    };
    let native = NativeRequest {
        dialect: Dialect::Messages,
        body: raw,
        bridged,
        dropped_tools: dropped_tools.clone(),
        anthropic_beta: anthropic_beta(headers)?,
    };
    let shape = Shape {
        model: req.model.clone(),
        stop_sequences: req.stop_sequences.clone().unwrap_or_default(),
        input_estimate,
        dropped_tools,
    };
    Ok((RequestBody::Native(Box::new(native)), shape))
}

pub(super) async fn create(
    State(gw): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = id_of(&headers);
    let message_id = format!("msg_{}", request_id.replace('-', ""));
    let (parsed, shape) = match parse(&gw, &request_id, &headers, body).await {
        Ok((b, s)) => (Ok(b), Some(s)),
        Err(e) => (Err(e), None),
    };
    let (result, limit_headers) = serve_reply(
        gw,
        peer,
        principal,
        headers,
        Endpoint::ChatCompletions,
        Some("messages"),
        parsed,
    )
    .await;
    let resp = match (result, shape) {
        (Ok(reply), Some(shape)) => reply_response(reply, message_id, shape),
        (Err(e), _) => error_response(&e),
        (Ok(_), None) => error_response(&ApiError::internal("a reply without a request")),
    };
    with_headers(resp, limit_headers)
}

/// The reply as a Messages answer (JSON or SSE), with the gateway's headers: a native route's
/// as the backend sent it, a bridged route's translated from chat.
fn reply_response(reply: GatewayReply, message_id: String, shape: Shape) -> Response {
    let native = reply.native;
    let parsed = reply.json;
    let resp = match reply.body {
        ReplyBody::Json(bytes) if native => {
            ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
        }
        ReplyBody::Native(stream) => sse_response(Body::from_stream(stream)),
        ReplyBody::Json(bytes) => {
            let answer = with_answer(&bytes, parsed, |chat| {
                from_answer(chat, &shape.model, &shape.stop_sequences)
            })
            .map_err(|e| ApiError::internal(format!("the chat answer is not JSON: {e}")))
            .and_then(std::convert::identity);
            match answer {
                Ok(m) => axum::Json(m).into_response(),
                Err(e) => return error_response(&e),
            }
        }
        ReplyBody::Sse(stream) => {
            let translator = StreamTranslator::new(
                message_id,
                shape.model,
                shape.input_estimate,
                shape.stop_sequences,
            );
            (
                [
                    (header::CONTENT_TYPE, "text/event-stream"),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                Body::from_stream(MessagesSse::new(
                    stream.requiring_finish().into_chat_frames(),
                    translator,
                )),
            )
                .into_response()
        }
    };
    let mut resp = super::openai::with_headers(resp, reply.headers);
    if !native
        && !shape.dropped_tools.is_empty()
        && let Ok(v) = HeaderValue::from_str(&shape.dropped_tools.join(","))
    {
        resp.headers_mut().insert(DROPPED_TOOLS, v);
    }
    resp
}

/// `POST /v1/messages/count_tokens`: `{"input_tokens": n}`, Sluice's estimate of the prompt
/// (one token per 4 bytes of the conversation's texts, as for limits and budgets), on native
/// and bridged routes alike; no backend is called.
async fn count_tokens(State(gw): State<Gateway>, body: Body) -> Response {
    let counted = async {
        let bytes = read_body(&gw, body).await?;
        let req: MessagesRequest = parse_body(&bytes)?;
        // The texts the chat translation carries; a request only a native route can take
        // (a forced server tool, …) is counted over its own texts.
        let body = match to_chat(&req) {
            Ok(b) => RequestBody::Chat(Box::new(b.request)),
            Err(e) => RequestBody::Native(Box::new(NativeRequest {
                dialect: Dialect::Messages,
                body: parse_body(&bytes)?,
                bridged: Err(e),
                dropped_tools: Vec::new(),
                anthropic_beta: None,
            })),
        };
        Ok::<_, ApiError>(estimate_tokens(&body.texts()))
    }
    .await;
    match counted {
        Ok(n) => axum::Json(json!({ "input_tokens": n })).into_response(),
        Err(e) => error_response(&e),
    }
}

/// Chat chunks (as objects) and SSE frames (`data: {chunk}\n\n`, `data: {"error":…}`,
/// `data: [DONE]`) in, Messages SSE events out, as each arrives. A chunk object is translated
/// as is (not encoded and parsed again).
struct MessagesSse<S> {
    inner: S,
    translator: StreamTranslator,
    buf: Vec<u8>,
    queued: VecDeque<Bytes>,
    done: bool,
}

impl<S> MessagesSse<S> {
    fn new(inner: S, mut translator: StreamTranslator) -> Self {
        let queued = translator.start().into();
        MessagesSse {
            inner,
            translator,
            buf: Vec::new(),
            queued,
            done: false,
        }
    }

    /// Translates one chunk, read through its view when it came with one.
    fn take_chunk(&mut self, chunk: &Chunk) {
        let events = self.translator.push_delta(&chunk.delta());
        self.queued.extend(events);
    }

    /// Translates every complete frame in the buffer.
    fn drain_frames(&mut self) {
        while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
            let frame: Vec<u8> = self.buf.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&frame);
            for line in text.lines() {
                let Some(data) = line.strip_prefix("data: ") else {
                    continue;
                };
                let events = if data.trim() == "[DONE]" {
                    self.translator.finish()
                } else {
                    match serde_json::from_str::<Value>(data) {
                        Ok(chunk) => self.translator.push(&chunk),
                        Err(e) => self.translator.finish_error(&ApiError::internal(format!(
                            "a chat stream frame is not JSON: {e}"
                        ))),
                    }
                };
                self.queued.extend(events);
            }
        }
    }
}

impl<S> Stream for MessagesSse<S>
where
    S: Stream<Item = ChatFrame> + Unpin,
{
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(b) = self.queued.pop_front() {
                return Poll::Ready(Some(Ok(b)));
            }
            // The chat stream is read to its end even after the last event (its end records
            // the log row as complete).
            if self.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(ChatFrame::Chunk(chunk))) => self.take_chunk(&chunk),
                Poll::Ready(Some(ChatFrame::Bytes(bytes))) => {
                    self.buf.extend_from_slice(&bytes);
                    self.drain_frames();
                }
                Poll::Ready(None) => {
                    self.done = true;
                    let tail = self.translator.finish();
                    self.queued.extend(tail);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    /// The Messages SSE bytes for `frames`, translated by a fresh translator.
    async fn translate(frames: Vec<ChatFrame>) -> Vec<u8> {
        let t = StreamTranslator::new("msg_x".into(), "m".into(), 1, Vec::new());
        let out: Vec<Bytes> = MessagesSse::new(futures_util::stream::iter(frames), t)
            .map(|r| r.unwrap())
            .collect()
            .await;
        out.concat()
    }

    fn frames(chunks: &[Value]) -> String {
        let mut s: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
        s.push_str("data: [DONE]\n\n");
        s
    }

    /// Chat frames split at every byte boundary size give the same Messages events, and the
    /// chat stream is read to its end.
    #[tokio::test]
    async fn frames_split_anywhere_translate_the_same() {
        let chunk = |delta: Value, finish: Value| {
            json!({"id":"c","object":"chat.completion.chunk","model":"m",
                   "choices":[{"index":0,"delta":delta,"finish_reason":finish}]})
        };
        let chunks = [
            chunk(json!({"role":"assistant","content":""}), Value::Null),
            chunk(json!({"content":"Hé"}), Value::Null),
            chunk(json!({}), json!("stop")),
            json!({"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}),
        ];
        let text = frames(&chunks);
        let mut outputs = Vec::new();
        // The chunks as objects or as text with its view (chunk mode), and `[DONE]` as a
        // frame, translate the same.
        let as_tree = |c: &Value| Chunk::from(c.clone());
        let as_view = |c: &Value| Chunk::from_viewed(crate::api::chunk_view::viewed(c.to_string()));
        for make in [as_tree, as_view] {
            let mut objects: Vec<ChatFrame> =
                chunks.iter().map(|c| ChatFrame::Chunk(make(c))).collect();
            objects.push(ChatFrame::Bytes(Bytes::from_static(b"data: [DONE]\n\n")));
            outputs.push(translate(objects).await);
        }
        for step in [1, 3, 7, text.len()] {
            let pieces: Vec<ChatFrame> = text
                .as_bytes()
                .chunks(step)
                .map(|c| ChatFrame::Bytes(Bytes::copy_from_slice(c)))
                .collect();
            outputs.push(translate(pieces).await);
        }
        let first = String::from_utf8(outputs[0].clone()).unwrap();
        assert!(outputs.iter().all(|o| *o == outputs[0]));
        let names: Vec<&str> = first
            .split("\n\n")
            .filter_map(|f| f.strip_prefix("event: "))
            .map(|f| f.split('\n').next().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert!(first.contains(r#""text":"Hé""#), "{first}");
    }
}

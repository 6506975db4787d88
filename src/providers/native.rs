//! The native routes: a Messages request to an `anthropic` deployment goes to
//! `POST {base_url}/v1/messages`, a Responses request to an `openai` deployment with the
//! `responses` capability to `POST {base_url}/responses`. The client's body is forwarded with
//! only `model` rewritten to the deployment's id (sampling overrides and redaction were applied
//! by the gateway before); Messages get the deployment's `x-api-key`, Sluice's
//! `anthropic-version` and the client's `anthropic-beta`; Responses the deployment's bearer
//! key.
//!
//! The answer is not translated: a whole body comes back as the backend's bytes
//! ([`Reply::Complete`]), a stream as its SSE events, each with its exact bytes
//! ([`Reply::Events`]).

use super::sse::{EventSplitter, SseParser};
use super::upstream;
use super::{Call, Reply, describe_http_error};
use crate::api::ApiError;
use crate::api::At;
use crate::api::native::{Dialect, NativeRequest};
use crate::config::{Capability, DeploymentConfig, ProviderKind};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::Value;
use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

/// One upstream SSE event: its exact bytes (blank line included) and its `data` parsed
/// (`Null` for a comment or data that is not JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The bytes as the backend sent them.
    pub raw: Bytes,
    /// The `data:` payload as JSON.
    pub data: Value,
}

/// A native stream: events in order; an `Err` item ends it (nothing follows).
pub type EventStream = Pin<Box<dyn Stream<Item = Result<Event, ApiError>> + Send>>;

/// Whether `dep` serves `dialect` natively: Messages on `anthropic`, Responses on `openai`
/// with the `responses` capability.
pub fn serves(dep: &DeploymentConfig, dialect: Dialect) -> bool {
    match dialect {
        Dialect::Messages => dep.provider == ProviderKind::Anthropic,
        Dialect::Responses => {
            dep.provider == ProviderKind::Openai
                && super::caps::Caps::of(dep).has(Capability::Responses)
        }
    }
}

/// The exact body sent upstream: the client's with `model` set to the deployment's id.
///
/// Errors: 500 when it cannot be encoded (cannot happen for a JSON map).
pub fn upstream_body(n: &NativeRequest, dep: &DeploymentConfig) -> Result<Vec<u8>, ApiError> {
    let mut body = n.body.clone();
    body.insert("model".into(), Value::from(dep.model.clone()));
    serde_json::to_vec(&body)
        .map_err(|e| ApiError::internal(format!("cannot encode the upstream request: {e}")))
}

/// Sends `n` to `call.deployment`'s own API for its dialect.
///
/// Errors: see [`super::call`]; a 200 whose JSON is an error object is a 502 (Anthropic
/// `overloaded_error` included).
pub async fn call(
    client: &super::http_client::Client,
    call: Call<'_>,
    n: &NativeRequest,
) -> Result<Reply, ApiError> {
    let dep = call.deployment;
    let path = match n.dialect {
        Dialect::Messages => "/v1/messages",
        Dialect::Responses => "/responses",
    };
    let mut req = super::post(client, dep, path)?
        .json_with_request_id(call.request_id)
        .body(upstream_body(n, dep)?);
    match n.dialect {
        Dialect::Messages => {
            req = super::anthropic::with_key(req, dep)
                .header("anthropic-version", super::anthropic::API_VERSION);
            if let Some(beta) = &n.anthropic_beta {
                req = req.header("anthropic-beta", beta);
            }
        }
        Dialect::Responses => {
            if let Some(key) = dep.api_key.as_deref().filter(|k| !k.is_empty()) {
                req = req.bearer_auth(key);
            }
        }
    }
    let stream = n.is_stream();
    let resp = upstream::send(req, dep, stream, call.egress).await?;
    let is_sse = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if stream && is_sse {
        return Ok(Reply::Events(events(resp, dep)));
    }
    let bytes = upstream::read_capped(resp, dep, dep.max_response_bytes(), false).await?;
    let json: Value = crate::api::json::from_bytes(&bytes)
        .map_err(|e| ApiError::bad_gateway(&dep.name, format!("answer is not JSON ({e})")))?;
    if let Some(e) = error_event(n.dialect, &dep.name, &json) {
        return Err(e);
    }
    if stream {
        return Err(ApiError::bad_gateway(
            &dep.name,
            "a stream was asked for but the answer is one JSON document",
        ));
    }
    Ok(Reply::Complete {
        body: bytes,
        json: super::Answer::Tree(json),
    })
}

/// The error an upstream error object or event means, when `v` is one: Anthropic's
/// `{"type":"error","error":{"type","message"}}`, a Responses `error` event or
/// `response.failed`. `rate_limit_error` is a 429, the rest 502 (so the gateway may fall back
/// before the first byte).
pub fn error_event(dialect: Dialect, deployment: &str, v: &Value) -> Option<ApiError> {
    let kind = v.get("type").and_then(Value::as_str);
    let e = match (dialect, kind) {
        (Dialect::Messages, Some("error")) => v.get("error")?,
        (Dialect::Responses, Some("error")) => {
            v.get("error").filter(|e| e.is_object()).unwrap_or(v)
        }
        (Dialect::Responses, Some("response.failed")) => v.at("/response/error")?,
        (Dialect::Responses, None) => v.get("error").filter(|e| e.is_object())?,
        _ => return None,
    };
    let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    // Anthropic names the error in `type`, OpenAI in `code` (its `type` is the event's).
    let code = match dialect {
        Dialect::Messages => text("type"),
        Dialect::Responses if text("code").is_empty() => text("type"),
        Dialect::Responses => text("code"),
    };
    let mut err = ApiError::bad_gateway(deployment, failure_text(&code, &text("message")));
    if code == "rate_limit_error" || code == "rate_limit_exceeded" {
        err.status = axum::http::StatusCode::TOO_MANY_REQUESTS;
    }
    Some(err)
}

/// Whether `v` is one of the events a native stream opens with, which say nothing of the
/// answer yet: Messages `message_start` and `ping`; Responses `response.created`,
/// `response.queued` and `response.in_progress`.
pub fn is_opening(dialect: Dialect, v: &Value) -> bool {
    let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
    match dialect {
        Dialect::Messages => matches!(kind, "message_start" | "ping"),
        Dialect::Responses => matches!(
            kind,
            "response.created" | "response.queued" | "response.in_progress"
        ),
    }
}

/// The text of an upstream's reported failure: `code: message`, either alone when the other
/// is empty, and a plain statement when both are (a `response.failed` without an `error`).
pub fn failure_text(code: &str, message: &str) -> String {
    match (code.is_empty(), message.is_empty()) {
        (false, false) => format!("{code}: {message}"),
        (false, true) => code.to_string(),
        (true, false) => message.to_string(),
        (true, true) => "the stream reported a failure without saying what it was".to_string(),
    }
}

struct State {
    body: futures_util::stream::BoxStream<'static, super::http_client::Result<Bytes>>,
    splitter: EventSplitter,
    /// Reused for the raw events each read completes.
    raws: Vec<Vec<u8>>,
    out: VecDeque<Event>,
    deployment: String,
    idle: Duration,
    ended: bool,
    /// Bytes received so far, and the deployment's `max_stream_bytes`.
    total: usize,
    max_total: usize,
    /// The deployment's `max_stream_event_bytes`.
    max_event: usize,
}

/// The response's SSE events, each handed on as soon as its blank line arrives. A silence
/// longer than the deployment's `stream_idle_timeout_ms` is a 504 item, a broken connection a
/// 502 item, an event over the deployment's `max_stream_event_bytes` a 502 item.
fn events(resp: super::http_client::Response, dep: &DeploymentConfig) -> EventStream {
    let st = State {
        body: resp.bytes_stream().boxed(),
        splitter: EventSplitter::new(),
        raws: Vec::new(),
        out: VecDeque::new(),
        deployment: dep.name.clone(),
        idle: Duration::from_millis(dep.stream_idle_timeout_ms()),
        ended: false,
        total: 0,
        max_total: dep.max_stream_bytes(),
        max_event: dep.max_stream_event_bytes(),
    };
    Box::pin(futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(e) = st.out.pop_front() {
                return Some((Ok(e), st));
            }
            if st.ended {
                return None;
            }
            let err = match tokio::time::timeout(st.idle, st.body.next()).await {
                Ok(Some(Ok(bytes))) => {
                    // Every event completed by this read, and the one still arriving.
                    let largest = st
                        .splitter
                        .push(&bytes, &mut st.raws)
                        .max(st.splitter.pending());
                    st.out.extend(st.raws.drain(..).map(event_of));
                    let total = super::upstream::count_stream(
                        &mut st.total,
                        bytes.len(),
                        st.max_total,
                        &st.deployment,
                    );
                    total.err().or_else(|| {
                        (largest > st.max_event).then(|| {
                            ApiError::bad_gateway(
                                &st.deployment,
                                format!("a stream event is larger than {} bytes", st.max_event),
                            )
                        })
                    })
                }
                Ok(Some(Err(e))) => Some(ApiError::bad_gateway(
                    &st.deployment,
                    format!("the stream broke off: {}", describe_http_error(&e)),
                )),
                Ok(None) => {
                    // A last event without its blank line still counts.
                    if let Some(raw) = st.splitter.finish() {
                        st.out.push_back(event_of(raw));
                    }
                    st.ended = true;
                    None
                }
                Err(_) => Some(ApiError::gateway_timeout(&st.deployment)),
            };
            if let Some(e) = err {
                st.ended = true;
                st.out.clear();
                return Some((Err(e), st));
            }
        }
    }))
}

/// Splits `buf` (a whole stream) into its events (see [`EventSplitter`]); a last event
/// without its blank line is one too.
pub fn split_events(buf: &[u8]) -> Vec<Event> {
    let mut splitter = EventSplitter::new();
    let mut raws = Vec::new();
    splitter.push(buf, &mut raws);
    raws.extend(splitter.finish());
    raws.into_iter().map(event_of).collect()
}

fn event_of(raw: Vec<u8>) -> Event {
    let mut parser = SseParser::new();
    let mut parsed = parser.push(&raw);
    parsed.extend(parser.finish());
    let data = parsed
        .first()
        .and_then(|e| serde_json::from_str(&e.data).ok())
        .unwrap_or(Value::Null);
    Event {
        raw: Bytes::from(raw),
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A `response.failed` without an `error` object was logged as "deployment `x`: : ".
    #[test]
    fn a_failure_is_named_by_what_the_upstream_said() {
        let failed = |v: Value| {
            error_event(Dialect::Responses, "x", &v)
                .map(|e| e.body.message)
                .unwrap_or_default()
        };
        assert_eq!(
            failed(
                json!({"type": "response.failed", "response": {"error": {"code": "server_error", "message": "boom"}}})
            ),
            "deployment `x`: server_error: boom"
        );
        assert_eq!(
            failed(json!({"type": "error", "message": "boom"})),
            "deployment `x`: error: boom"
        );
        assert_eq!(
            failed(json!({"type": "error", "code": "overloaded"})),
            "deployment `x`: overloaded"
        );
        assert_eq!(
            failure_text("", ""),
            "the stream reported a failure without saying what it was"
        );
    }

    #[test]
    fn events_keep_their_exact_bytes_however_split() {
        // Line ends of every kind, mixed within one event too (`\r` then `\r\n`, `\n` then
        // `\r\n`).
        let text = "event: message_start\ndata: {\"type\":\"message_start\"}\n\n: ping\n\nevent: x\r\ndata: {\"a\":\"é\"}\r\n\r\nevent: y\rdata: 1\r\revent: z\rdata: 2\r\r\ndata: 3\n\r\n";
        let expected: Vec<&[u8]> = vec![
            b"event: message_start\ndata: {\"type\":\"message_start\"}\n\n",
            b": ping\n\n",
            "event: x\r\ndata: {\"a\":\"é\"}\r\n\r\n".as_bytes(),
            b"event: y\rdata: 1\r\r",
            b"event: z\rdata: 2\r\r\n",
            b"data: 3\n\r\n",
        ];
        for step in [1, 2, 3, 5, text.len()] {
            let mut splitter = EventSplitter::new();
            let mut raws = Vec::new();
            let mut largest = 0;
            for piece in text.as_bytes().chunks(step) {
                largest = largest.max(splitter.push(piece, &mut raws));
            }
            assert_eq!(splitter.finish(), None);
            assert_eq!(raws, expected, "step {step}");
            assert_eq!(largest, expected.iter().map(|r| r.len()).max().unwrap());
        }
        let events = split_events(text.as_bytes());
        assert_eq!(events[0].data, json!({"type":"message_start"}));
        assert_eq!(events[1].data, Value::Null);
        assert_eq!(events[2].data, json!({"a":"é"}));
        assert_eq!(events[3].data, json!(1));
        assert_eq!(events[4].data, json!(2));
        assert_eq!(events[5].data, json!(3));
    }

    #[test]
    fn blank_lines_before_an_event_stay_with_it() {
        // An upstream error after a leading blank line is still the first event (the gateway
        // checks the first event for an error, to fall back).
        let text = "\n\r\ndata: {\"type\":\"error\"}\n\n\n\ndata: 2\n\n";
        for step in [1, 2, text.len()] {
            let mut splitter = EventSplitter::new();
            let mut raws = Vec::new();
            for piece in text.as_bytes().chunks(step) {
                splitter.push(piece, &mut raws);
            }
            assert_eq!(
                raws,
                vec![
                    b"\n\r\ndata: {\"type\":\"error\"}\n\n".to_vec(),
                    b"\n\ndata: 2\n\n".to_vec()
                ],
                "step {step}"
            );
        }
        let events = split_events(text.as_bytes());
        assert_eq!(events[0].data, json!({"type":"error"}));
        assert_eq!(events[1].data, json!(2));
    }

    #[test]
    fn a_last_event_without_its_blank_line_is_kept_whole() {
        let events = split_events(b"data: 1\n\ndata: 2\r");
        let raws: Vec<&[u8]> = events.iter().map(|e| &e.raw[..]).collect();
        assert_eq!(raws, vec![&b"data: 1\n\n"[..], b"data: 2\r"]);
        assert_eq!(events[1].data, json!(2));
    }

    #[test]
    fn error_events_become_errors() {
        let e = error_event(
            Dialect::Messages,
            "d",
            &json!({"type":"error","error":{"type":"overloaded_error","message":"busy"}}),
        )
        .unwrap();
        assert_eq!(e.status.as_u16(), 502);
        assert!(
            e.body.message.contains("overloaded_error: busy"),
            "{}",
            e.body.message
        );
        assert!(error_event(Dialect::Messages, "d", &json!({"type":"message"})).is_none());
        let e = error_event(
            Dialect::Responses,
            "d",
            &json!({"type":"error","code":"rate_limit_exceeded","message":"slow"}),
        )
        .unwrap();
        assert_eq!(e.status.as_u16(), 429);
        assert!(
            error_event(
                Dialect::Responses,
                "d",
                &json!({"object":"response","error":null})
            )
            .is_none()
        );
    }
}

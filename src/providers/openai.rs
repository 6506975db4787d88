//! `provider: openai`: any OpenAI-compatible server (OpenAI, vLLM, llama.cpp's llama-server,
//! LM Studio, Groq, Mistral, DeepSeek, OpenRouter, Together).
//!
//! The request is forwarded as the client sent it, with `model` rewritten to the deployment's
//! id; streams always ask for `stream_options.include_usage` so Sluice can count tokens (the
//! gateway strips the usage chunk again when the client did not ask for it). Responses pass
//! through unchanged; streams are re-framed event by event as they arrive (see
//! [`super::sse`]).

use super::sse::{SseEvent, SseParser};
use super::{Call, Chunk, ChunkStream, Reply, RequestBody, stream_ended_early};
use crate::api::ApiError;
use crate::api::chunk_view;
use crate::api::error::{default_kind_for, error_from_value};
use crate::repro::json_string;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::time::Duration;

/// Sends `call` to an OpenAI-compatible deployment.
///
/// Errors: see [`super::call`]. A 200 answer whose JSON is an error object (some servers do
/// that) is an error too.
pub async fn call(client: &super::http_client::Client, call: Call<'_>) -> Result<Reply, ApiError> {
    let dep = call.deployment;
    let stream = call.body.is_stream();
    let body = upstream_body(call)?;
    let mut req = super::post(client, dep, call.endpoint.path())?
        .json_with_request_id(call.request_id)
        .body(body);
    if let Some(key) = dep.api_key.as_deref().filter(|k| !k.is_empty()) {
        req = req.bearer_auth(key);
    }
    let resp = super::upstream::send(req, dep, stream, call.egress).await?;
    let is_sse = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if stream && is_sse {
        let idle = Duration::from_millis(dep.stream_idle_timeout_ms());
        return Ok(Reply::Stream(sse_chunks(
            resp,
            dep.name.clone(),
            idle,
            (dep.max_stream_event_bytes(), dep.max_stream_bytes()),
        )));
    }
    let bytes = super::upstream::read_capped(resp, dep, dep.max_response_bytes(), false).await?;
    // A chat completion nobody needs as a tree is only read for its summary, through a
    // borrowed view; anything the view does not read (an error object, an odd shape) goes
    // the tree's way below.
    if !stream
        && !call.tree
        && call.endpoint == super::Endpoint::ChatCompletions
        && let Some(summary) = crate::api::answer_view::summarize(&bytes)
    {
        return Ok(Reply::Complete {
            body: bytes,
            json: super::Answer::Summary(Box::new(summary)),
        });
    }
    let json: Value = crate::api::json::from_bytes(&bytes)
        .map_err(|e| ApiError::bad_gateway(&dep.name, format!("answer is not JSON ({e})")))?;
    if json.get("choices").is_none()
        && json.get("data").is_none()
        && let Some(err) = error_from_value(&json, "server_error")
    {
        return Err(ApiError {
            status: axum::http::StatusCode::BAD_GATEWAY,
            body: err,
            retry_after_s: None,
        });
    }
    if stream {
        // The client asked for a stream but the server answered with one JSON document.
        return Ok(Reply::Stream(super::complete_as_stream(json)));
    }
    let mut json = json;
    if call.endpoint == super::Endpoint::Embeddings
        && super::embeddings::wants_base64(call.body)
        && super::embeddings::floats_to_base64(&mut json)
    {
        let body = serde_json::to_vec(&json)
            .map_err(|e| ApiError::internal(format!("cannot encode the embeddings: {e}")))?;
        return Ok(Reply::Complete {
            body: body.into(),
            json: super::Answer::Tree(json),
        });
    }
    Ok(Reply::Complete {
        body: bytes,
        json: super::Answer::Tree(json),
    })
}

/// The JSON sent upstream: the client's request with the deployment's model id, and usage
/// asked for on streams.
fn upstream_body(call: Call<'_>) -> Result<Vec<u8>, ApiError> {
    let model = call.deployment.model.clone();
    let result = match call.body {
        RequestBody::Chat(r) => {
            let caps = super::caps::Caps::of(call.deployment);
            // Nothing to change but `model`: the client's request as written once for the
            // log, the model swapped in the text (no deep copy, no second serialisation).
            if !super::caps::adapts_openai_chat(r, &caps)
                && (!r.is_stream() || r.wants_stream_usage())
                && let Some(text) = written(call, r).and_then(|t| with_model(&t, &r.model, &model))
            {
                return Ok(text);
            }
            let mut r = r.clone();
            r.model = model;
            super::caps::adapt_openai_chat(&mut r, &caps);
            if r.is_stream() {
                let opts = r.stream_options.get_or_insert(crate::api::StreamOptions {
                    include_usage: None,
                    extra: Default::default(),
                });
                opts.include_usage = Some(true);
            }
            serde_json::to_vec(&r)
        }
        RequestBody::Generic(r) => {
            if (!r.is_stream() || r.wants_stream_usage())
                && let Some(text) = written(call, r).and_then(|t| with_model(&t, &r.model, &model))
            {
                return Ok(text);
            }
            let mut r = r.clone();
            r.model = model;
            if r.is_stream() {
                let opts = r.stream_options.get_or_insert(crate::api::StreamOptions {
                    include_usage: None,
                    extra: Default::default(),
                });
                opts.include_usage = Some(true);
            }
            serde_json::to_vec(&r)
        }
        RequestBody::Native(_) => {
            return Err(ApiError::internal(
                "a native request reached the chat provider",
            ));
        }
    };
    result.map_err(|e| ApiError::internal(format!("cannot encode the upstream request: {e}")))
}

/// The JSON text of `r`, the body of `call`: the one written for the log when there is one,
/// else written now.
fn written<'a, T: serde::Serialize>(call: Call<'a>, r: &T) -> Option<Cow<'a, [u8]>> {
    match call.written.and_then(|w| w.text_of(call.body)) {
        Some(t) => Some(Cow::Borrowed(t.as_bytes())),
        None => serde_json::to_vec(r).ok().map(Cow::Owned),
    }
}

/// `text`, a request `serde_json` wrote with `model` as its first field (`{"model":"own",…`),
/// with `model` in place of `own`, written once into a new buffer; `None` when it does not
/// start so.
fn with_model(text: &[u8], own: &str, model: &str) -> Option<Vec<u8>> {
    const HEAD: &[u8] = b"{\"model\":";
    let mut out = Vec::with_capacity(text.len() + model.len() + json_string::room(own.len()));
    out.extend_from_slice(HEAD);
    json_string::push(&mut out, own);
    let rest = text.strip_prefix(out.as_slice())?;
    out.truncate(HEAD.len());
    json_string::push(&mut out, model);
    out.extend_from_slice(rest);
    Some(out)
}

struct SseState {
    body: futures_util::stream::BoxStream<'static, super::http_client::Result<Bytes>>,
    parser: SseParser,
    pending: VecDeque<SseEvent>,
    deployment: String,
    idle: Duration,
    saw_finish: bool,
    done: bool,
    /// The deployment's `max_stream_event_bytes`.
    max_event: usize,
    /// Bytes received so far, and the deployment's `max_stream_bytes`.
    total: usize,
    max_total: usize,
}

/// Turns an upstream SSE response into a stream of OpenAI chunk objects.
fn sse_chunks(
    resp: super::http_client::Response,
    deployment: String,
    idle: Duration,
    (max_event, max_total): (usize, usize),
) -> ChunkStream {
    let state = SseState {
        body: resp.bytes_stream().boxed(),
        parser: SseParser::new(),
        pending: VecDeque::new(),
        deployment,
        idle,
        saw_finish: false,
        done: false,
        max_event,
        total: 0,
        max_total,
    };
    Box::pin(futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            if let Some(ev) = st.pending.pop_front() {
                match event_to_chunk(ev, &st.deployment) {
                    EventOutcome::Chunk(chunk, finish) => {
                        st.saw_finish |= finish;
                        return Some((Ok(chunk), st));
                    }
                    EventOutcome::Done => return None,
                    EventOutcome::Skip => continue,
                    EventOutcome::Error(e) => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                }
            }
            match tokio::time::timeout(st.idle, st.body.next()).await {
                Ok(Some(Ok(bytes))) => {
                    if let Err(e) = super::upstream::count_stream(
                        &mut st.total,
                        bytes.len(),
                        st.max_total,
                        &st.deployment,
                    ) {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                    let evs = st.parser.push(&bytes);
                    st.pending.extend(evs);
                    if st.parser.take_largest_event() > st.max_event {
                        st.done = true;
                        let err = ApiError::bad_gateway(
                            &st.deployment,
                            format!("a stream event is larger than {} bytes", st.max_event),
                        );
                        return Some((Err(err), st));
                    }
                }
                Ok(Some(Err(e))) => {
                    if st.saw_finish {
                        return None;
                    }
                    st.done = true;
                    let err = {
                        ApiError::bad_gateway(
                            &st.deployment,
                            format!("the stream broke off: {}", super::describe_http_error(&e)),
                        )
                    };
                    return Some((Err(err), st));
                }
                Ok(None) => {
                    if let Some(ev) = st.parser.finish() {
                        st.pending.push_back(ev);
                        continue;
                    }
                    if st.saw_finish {
                        return None;
                    }
                    st.done = true;
                    let e = stream_ended_early(&st.deployment);
                    return Some((Err(e), st));
                }
                Err(_) => {
                    st.done = true;
                    let e = ApiError::gateway_timeout(&st.deployment);
                    return Some((Err(e), st));
                }
            }
        }
    }))
}

enum EventOutcome {
    /// A chunk, and whether it finishes a choice.
    Chunk(Chunk, bool),
    Done,
    Skip,
    Error(ApiError),
}

fn event_to_chunk(ev: SseEvent, deployment: &str) -> EventOutcome {
    let trimmed = ev.data.trim();
    if trimmed == "[DONE]" {
        return EventOutcome::Done;
    }
    let text = if trimmed.len() == ev.data.len() {
        ev.data
    } else {
        trimmed.to_string()
    };
    // The usual chunk (one line with a `choices` list, every field of the expected type) is
    // read through its borrowed view, parsed once here and kept with its text for the
    // gateway and the dialect translators: no JSON tree.
    let text = if !text.contains(['\n', '\r']) {
        let v = chunk_view::viewed(text);
        let finish = match v.get() {
            Some(view) if view.choices.is_some() => Some(view.has_finish_reason()),
            _ => None,
        };
        if let Some(finish) = finish {
            return EventOutcome::Chunk(Chunk::from_viewed(v), finish);
        }
        v.into_backing_cart()
    } else {
        text
    };
    let data = text.as_str();
    let v: Value = match serde_json::from_str(data) {
        Ok(v) => v,
        Err(e) => {
            return EventOutcome::Error(ApiError::bad_gateway(
                deployment,
                format!("stream event is not JSON ({e})"),
            ));
        }
    };
    if v.get("choices").is_none() {
        if let Some(mut err) = error_from_value(&v, "server_error") {
            if err.kind.is_empty() {
                err.kind = default_kind_for(axum::http::StatusCode::BAD_GATEWAY).into();
            }
            return EventOutcome::Error(ApiError {
                status: axum::http::StatusCode::BAD_GATEWAY,
                body: err,
                retry_after_s: None,
            });
        }
        if v.get("usage").is_none() {
            return EventOutcome::Skip;
        }
    }
    let finish = has_finish_reason(&v);
    EventOutcome::Chunk(with_raw(v, text), finish)
}

/// The chunk with the upstream's text of it, when that text is one line (it then can be
/// forwarded as is).
fn with_raw(json: Value, data: String) -> Chunk {
    let text = data.trim();
    let raw = if text.contains(['\n', '\r']) {
        None
    } else if text.len() == data.len() {
        Some(Bytes::from(data))
    } else {
        Some(Bytes::copy_from_slice(text.as_bytes()))
    };
    Chunk {
        json: Some(json),
        raw,
        viewed: None,
    }
}

fn has_finish_reason(v: &Value) -> bool {
    v.get("choices")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.get("finish_reason").is_some_and(|f| !f.is_null()))
        })
}

#[cfg(test)]
#[path = "openai_tests.rs"]
mod tests;

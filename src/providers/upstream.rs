//! Shared plumbing of the providers: send one JSON request with
//! the deployment's timeouts, and turn a streamed answer into OpenAI chunks through a
//! protocol-specific [`Decoder`], chunk by chunk as bytes arrive.

use super::{ChunkStream, describe_http_error, stream_ended_early, upstream_failure};
use crate::api::ApiError;
use crate::config::DeploymentConfig;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;
use std::collections::VecDeque;
use std::time::Duration;

/// Default largest whole answer, bytes after decompression (a deployment's
/// `max_response_bytes` overrides it). Over it: 502 naming the deployment.
pub const MAX_RESPONSE_BYTES: usize = crate::config::DEFAULT_MAX_RESPONSE_BYTES;

/// Default largest error body read, bytes (`max_error_body_bytes`; the rest is not read).
pub const MAX_ERROR_BODY_BYTES: usize = crate::config::DEFAULT_MAX_ERROR_BODY_BYTES;

/// Default largest stream event, bytes (one SSE event or NDJSON line, see
/// [`super::event_size`]; `max_stream_event_bytes`). Over it: a 502 error item naming the
/// deployment.
pub const MAX_STREAM_EVENT_BYTES: usize = crate::config::DEFAULT_MAX_STREAM_EVENT_BYTES;

/// Counts `n` more bytes of a stream from `deployment` against its `max_stream_bytes`
/// (`cap`) in `total`.
///
/// Errors: 502 naming the deployment once the stream is larger than `cap`.
pub fn count_stream(
    total: &mut usize,
    n: usize,
    cap: usize,
    deployment: &str,
) -> Result<(), ApiError> {
    *total = total.saturating_add(n);
    if *total > cap {
        return Err(ApiError::bad_gateway(
            deployment,
            format!("the stream is larger than {cap} bytes"),
        ));
    }
    Ok(())
}

/// Reads `resp`'s body up to `cap` bytes (decompressed).
///
/// Errors: 502 naming the deployment when the body is larger or cannot be read.
pub async fn read_capped(
    resp: super::http_client::Response,
    dep: &DeploymentConfig,
    cap: usize,
    truncate: bool,
) -> Result<Bytes, ApiError> {
    let mut body = resp.bytes_stream();
    let mut out = Vec::new();
    while let Some(next) = body.next().await {
        let bytes = next.map_err(|e| upstream_failure(&dep.name, &e))?;
        if out.len() + bytes.len() > cap {
            if truncate {
                out.extend_from_slice(&bytes[..cap - out.len()]);
                break;
            }
            return Err(ApiError::bad_gateway(
                &dep.name,
                format!("the answer is larger than {cap} bytes"),
            ));
        }
        out.extend_from_slice(&bytes);
    }
    Ok(Bytes::from(out))
}

/// Sends `req` (body already set) within the deployment's timeout.
///
/// With `egress`, the built body is checked first (see [`super::Egress`]); its error is
/// returned and nothing is sent.
///
/// Errors: a 3xx answer is a 502 naming the deployment (redirects are never followed); any
/// other non-2xx answer becomes [`ApiError::from_upstream`] (4xx kept, else 502; see
/// [`super::caps::name_unsupported_param`]);
/// connection failures 502; timeouts 504. `stream` requests get the timeout only until the
/// headers arrive.
pub async fn send(
    req: super::http_client::RequestBuilder,
    dep: &DeploymentConfig,
    stream: bool,
    egress: Option<&dyn super::Egress>,
) -> Result<super::http_client::Response, ApiError> {
    let timeout = Duration::from_millis(dep.timeout_ms());
    // W3C trace context of the current attempt span, so upstream traces join Sluice's.
    let req = req.headers(crate::telemetry::trace_headers());
    let req = if stream { req } else { req.timeout(timeout) };
    let (client, req) = req.build();
    let req = req.map_err(|e| upstream_failure(&dep.name, &e))?;
    if let Some(guard) = egress {
        // The exact bytes that will leave: the body and every header.
        guard.check(&dep.name, req.headers(), req.body())?;
    }
    let resp = match tokio::time::timeout(timeout, client.execute(req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(upstream_failure(&dep.name, &e)),
        Err(_) => return Err(ApiError::gateway_timeout(&dep.name)),
    };
    let status = resp.status();
    if status.is_redirection() {
        // Never followed (the clients have no redirect policy); the target is not named, its
        // URL could carry credentials.
        return Err(ApiError::bad_gateway(
            &dep.name,
            format!(
                "answered HTTP {} (a redirect; Sluice does not follow redirects)",
                status.as_u16()
            ),
        ));
    }
    if !status.is_success() {
        let retry_after = super::retry_after_secs(resp.headers());
        let bytes = read_capped(resp, dep, dep.max_error_body_bytes(), true).await?;
        let mut err = super::caps::name_unsupported_param(ApiError::from_upstream(
            &dep.name,
            status.as_u16(),
            &bytes,
        ));
        err.retry_after_s = retry_after;
        return Err(err);
    }
    Ok(resp)
}

/// Reads a whole JSON answer.
///
/// Errors: 502 when the body cannot be read or is not JSON; 504 on timeout.
pub async fn read_json(
    resp: super::http_client::Response,
    dep: &DeploymentConfig,
) -> Result<Value, ApiError> {
    let bytes = read_capped(resp, dep, dep.max_response_bytes(), false).await?;
    crate::api::json::from_bytes(&bytes)
        .map_err(|e| ApiError::bad_gateway(&dep.name, format!("answer is not JSON ({e})")))
}

/// A whole OpenAI-shaped reply from a translated JSON value.
pub fn complete(json: Value) -> super::Reply {
    let body = Bytes::from(serde_json::to_vec(&json).unwrap_or_default());
    super::Reply::Complete {
        body,
        json: super::Answer::Tree(json),
    }
}

/// Turns one upstream stream protocol into OpenAI chunk objects.
pub trait Decoder: Send + 'static {
    /// Feeds the next bytes (split anywhere); appends the chunks they complete to `out`.
    /// An `Err` ends the stream with that error (after the chunks already in `out`).
    fn push(&mut self, bytes: &[u8], out: &mut VecDeque<Value>) -> Result<(), ApiError>;

    /// The upstream body ended. Appends any last chunks; `Err` when the stream was cut short.
    fn finish(&mut self, out: &mut VecDeque<Value>) -> Result<(), ApiError>;

    /// Whether the protocol's last event was seen (reading stops there).
    fn is_done(&self) -> bool;

    /// The size in bytes of the largest event (SSE event, NDJSON line) read since the last
    /// call, or of the unfinished one when it is larger already (see
    /// [`super::event_size::EventSizes`]); checked against `max_stream_event_bytes` after each
    /// [`Decoder::push`].
    fn take_largest_event(&mut self) -> usize;
}

struct State<D> {
    body: futures_util::stream::BoxStream<'static, super::http_client::Result<Bytes>>,
    decoder: D,
    out: VecDeque<Value>,
    error: Option<ApiError>,
    deployment: String,
    idle: Duration,
    ended: bool,
    /// The deployment's `max_stream_event_bytes`.
    max_event: usize,
    /// Bytes received so far, and the deployment's `max_stream_bytes`.
    total: usize,
    max_total: usize,
}

/// Streams `resp` through `decoder`: every chunk is handed on as soon as the bytes that
/// complete it arrive. A silence longer than the deployment's `stream_idle_timeout_ms` is a
/// 504 error item; a broken connection a 502 error item.
pub fn decode_stream<D: Decoder>(
    resp: super::http_client::Response,
    dep: &DeploymentConfig,
    decoder: D,
) -> ChunkStream {
    let state = State {
        body: resp.bytes_stream().boxed(),
        decoder,
        out: VecDeque::new(),
        error: None,
        deployment: dep.name.clone(),
        idle: Duration::from_millis(dep.stream_idle_timeout_ms()),
        ended: false,
        max_event: dep.max_stream_event_bytes(),
        total: 0,
        max_total: dep.max_stream_bytes(),
    };
    Box::pin(futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(v) = st.out.pop_front() {
                return Some((Ok(super::Chunk::from(v)), st));
            }
            if let Some(e) = st.error.take() {
                st.ended = true;
                return Some((Err(e), st));
            }
            if st.ended || st.decoder.is_done() {
                return None;
            }
            match tokio::time::timeout(st.idle, st.body.next()).await {
                Ok(Some(Ok(bytes))) => {
                    if let Err(e) =
                        count_stream(&mut st.total, bytes.len(), st.max_total, &st.deployment)
                    {
                        st.error = Some(e);
                        continue;
                    }
                    if let Err(e) = st.decoder.push(&bytes, &mut st.out) {
                        st.error = Some(e);
                    }
                    if st.decoder.take_largest_event() > st.max_event {
                        // Nothing of a read with an event over the cap goes on (the chunks of
                        // earlier reads are already out: `out` is empty before each read), and
                        // the cap is the error even when a later event of the read failed too.
                        st.out.clear();
                        st.error = Some(ApiError::bad_gateway(
                            &st.deployment,
                            format!("a stream event is larger than {} bytes", st.max_event),
                        ));
                    }
                }
                Ok(Some(Err(e))) => {
                    st.error = Some(ApiError::bad_gateway(
                        &st.deployment,
                        format!("the stream broke off: {}", describe_http_error(&e)),
                    ));
                }
                Ok(None) => {
                    // Queued chunks, then the error if any, go out before the end.
                    st.ended = true;
                    if let Err(e) = st.decoder.finish(&mut st.out) {
                        st.error = Some(e);
                    }
                }
                Err(_) => st.error = Some(ApiError::gateway_timeout(&st.deployment)),
            }
        }
    }))
}

/// The error of a stream that ended before its last event.
pub fn ended_early(deployment: &str) -> ApiError {
    stream_ended_early(deployment)
}

/// A fresh tool-call id, `call_` + 24 hex digits, for upstreams that give none.
pub fn synth_call_id() -> String {
    let n: u128 = rand::random();
    format!("call_{:024x}", n & ((1u128 << 96) - 1))
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Splits a `data:` URL into its media type and base64 payload; `None` for any other URL or a
/// data URL that is not base64.
pub fn data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media = meta.strip_suffix(";base64")?;
    Some((media, data))
}

/// A tool call's `arguments` text as a JSON object, for backends that take objects.
///
/// Errors: 400 naming `param` when the text is not JSON or not an object (an empty text is
/// `{}`).
pub fn arguments_object(text: &str, param: &str) -> Result<Value, ApiError> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(
            ApiError::invalid_request(format!("`{param}` must be a JSON object text"))
                .with_param(param),
        ),
        Err(e) => Err(
            ApiError::invalid_request(format!("`{param}` is not valid JSON: {e}"))
                .with_param(param),
        ),
    }
}

/// A JSON value as compact text (tool-call arguments for OpenAI clients).
pub fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "{}".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_and_arguments() {
        assert_eq!(
            data_url("data:image/png;base64,AAAA"),
            Some(("image/png", "AAAA"))
        );
        assert_eq!(data_url("https://x/y.png"), None);
        assert_eq!(data_url("data:text/plain,hi"), None);
        assert_eq!(
            arguments_object("{\"a\":1}", "p").unwrap(),
            serde_json::json!({"a":1})
        );
        assert_eq!(arguments_object("", "p").unwrap(), serde_json::json!({}));
        let e = arguments_object("{\"a\":", "messages[1].tool_calls[0].function.arguments")
            .unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        assert_eq!(
            e.body.param.as_deref(),
            Some("messages[1].tool_calls[0].function.arguments")
        );
        let id = synth_call_id();
        assert!(id.starts_with("call_") && id.len() == 29, "{id}");
    }
}

//! The client side of a stream: OpenAI chunk objects in, SSE frames out, one frame per chunk
//! as soon as it arrives (never buffered), with the usage chunk handled as OpenAI does it
//! (see `stream_options.include_usage` in the API reference): exactly one usage-only chunk
//! (`choices: []`) right before `data: [DONE]` when the client asked, none otherwise.
//!
//! An upstream failure mid-stream becomes one `data: {"error":{…}}` frame, then the stream
//! closes (no `[DONE]`, no made-up finish chunk). When the stream ends — completely, by error,
//! or because the client went away and the body was dropped — the `on_finish` callback gets
//! the summary exactly once.

use crate::api::summary::ResponseSummary;
use crate::api::{ApiError, Usage};
use crate::providers::{Chunk, ChunkStream};
use bytes::Bytes;
use futures_util::Stream;
use serde_json::Value;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// How a stream ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEnd {
    /// All chunks sent, `[DONE]` sent.
    Complete,
    /// An upstream failure was sent as an error event.
    Failed(ApiError),
    /// The client disconnected before the end.
    ClientGone,
}

/// What the finish callback receives.
#[derive(Debug, Clone)]
pub struct StreamOutcome {
    /// How it ended.
    pub end: StreamEnd,
    /// Assembled content, tool calls, finish reason, usage.
    pub summary: ResponseSummary,
    /// Usage: upstream's, or estimated.
    pub usage: Usage,
    /// Whether `usage` is an estimate.
    pub usage_estimated: bool,
    /// When the first frame went out.
    pub first_frame_at: Option<Instant>,
}

/// Callback run once when the stream ends.
pub type OnFinish = Box<dyn FnOnce(StreamOutcome) + Send>;

/// SSE frames for the client.
pub struct ClientStream {
    inner: ChunkStream,
    first: Option<Chunk>,
    queued: VecDeque<Bytes>,
    wants_usage: bool,
    prompt_estimate: u64,
    summary: ResponseSummary,
    last_meta: Option<Value>,
    /// The upstream's `*_tokens_details` objects (cached and reasoning tokens), kept for the
    /// trailing usage chunk.
    usage_details: serde_json::Map<String, Value>,
    first_frame_at: Option<Instant>,
    finished: bool,
    on_finish_complete: bool,
    on_finish: Option<OnFinish>,
}

impl ClientStream {
    /// This stream, gathering at most `limit` bytes of text for the log row
    /// (`log.max_body_bytes`; see [`crate::api::summary::TextBound`]).
    pub fn with_log_limit(mut self, limit: usize) -> Self {
        self.summary.bound = crate::api::summary::TextBound::of(limit);
        self
    }

    /// Wraps `inner`, whose first chunk `first` was already read (peeked) by the caller.
    /// `prompt_estimate` is used for usage when the upstream reports none.
    pub fn new(
        first: Chunk,
        inner: ChunkStream,
        wants_usage: bool,
        prompt_estimate: u64,
        on_finish: OnFinish,
    ) -> Self {
        ClientStream {
            inner,
            first: Some(first),
            queued: VecDeque::new(),
            wants_usage,
            prompt_estimate,
            summary: ResponseSummary::default(),
            last_meta: None,
            usage_details: serde_json::Map::new(),
            first_frame_at: None,
            finished: false,
            on_finish_complete: false,
            on_finish: Some(on_finish),
        }
    }

    /// Processes one chunk; returns the frame to send, if any. A chunk that needs no change
    /// leaves as the upstream's own bytes.
    fn frame_for(&mut self, chunk: Chunk) -> Option<Bytes> {
        let Chunk {
            json: mut chunk,
            raw,
        } = chunk;
        self.summary.add_chunk(&chunk);
        if let Some(Value::Object(u)) = chunk.get("usage") {
            for (k, v) in u.iter().filter(|(k, _)| k.ends_with("_tokens_details")) {
                self.usage_details.insert(k.clone(), v.clone());
            }
        }
        let choices_empty = chunk
            .get("choices")
            .and_then(Value::as_array)
            .is_none_or(|c| c.is_empty());
        if choices_empty {
            // Usage-only (or meta-only) chunk: the single trailing usage chunk is ours.
            self.remember_meta(&chunk);
            return None;
        }
        self.remember_meta(&chunk);
        if let Value::Object(m) = &mut chunk
            && m.get("usage").is_some_and(|u| !u.is_null())
        {
            // Usage goes in the single trailing usage chunk: this one is rewritten.
            m.insert("usage".into(), Value::Null);
            return Some(frame(&chunk));
        }
        Some(match raw {
            Some(raw) => raw_frame(&raw),
            None => frame(&chunk),
        })
    }

    fn remember_meta(&mut self, chunk: &Value) {
        if self.last_meta.is_none() {
            let mut meta = serde_json::Map::new();
            for k in ["id", "object", "created", "model", "system_fingerprint"] {
                if let Some(v) = chunk.get(k) {
                    meta.insert(k.into(), v.clone());
                }
            }
            self.last_meta = Some(Value::Object(meta));
        }
    }

    fn usage(&self) -> (Usage, bool) {
        match self.summary.usage {
            Some(u) => (u, false),
            None => (
                Usage::new(
                    self.prompt_estimate,
                    self.summary.estimate_completion_tokens(),
                ),
                true,
            ),
        }
    }

    fn end_frames(&mut self) {
        if self.wants_usage {
            let (usage, _) = self.usage();
            let mut chunk = self
                .last_meta
                .clone()
                .unwrap_or_else(|| Value::Object(Default::default()));
            if let Value::Object(m) = &mut chunk {
                m.insert("choices".into(), Value::Array(Vec::new()));
                let mut usage = serde_json::to_value(usage).unwrap_or(Value::Null);
                if let Value::Object(u) = &mut usage {
                    u.extend(self.usage_details.clone());
                }
                m.insert("usage".into(), usage);
            }
            self.queued.push_back(frame(&chunk));
        }
        self.queued
            .push_back(Bytes::from_static(b"data: [DONE]\n\n"));
    }

    fn finish(&mut self, end: StreamEnd) {
        self.finished = true;
        if let Some(cb) = self.on_finish.take() {
            let (usage, usage_estimated) = self.usage();
            cb(StreamOutcome {
                end,
                summary: std::mem::take(&mut self.summary),
                usage,
                usage_estimated,
                first_frame_at: self.first_frame_at,
            });
        }
    }

    fn sent(&mut self, b: Bytes) -> Poll<Option<Result<Bytes, Infallible>>> {
        if self.first_frame_at.is_none() {
            self.first_frame_at = Some(Instant::now());
        }
        Poll::Ready(Some(Ok(b)))
    }
}

/// `data: <json>\n\n`.
pub fn frame(v: &Value) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"data: ");
    if serde_json::to_writer(&mut out, v).is_err() {
        out.extend_from_slice(b"{}");
    }
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// `data: <raw>\n\n`: an upstream chunk's own text, unchanged.
fn raw_frame(raw: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(raw.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(raw);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// `data: {"error":{…}}\n\n`.
pub fn error_frame(e: &ApiError) -> Bytes {
    Bytes::from(format!("data: {}\n\n", e.to_json()))
}

impl Stream for ClientStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(b) = this.queued.pop_front() {
                if this.queued.is_empty() && this.finished_pending() {
                    this.finish(StreamEnd::Complete);
                }
                return this.sent(b);
            }
            if this.finished {
                return Poll::Ready(None);
            }
            if let Some(first) = this.first.take() {
                if let Some(b) = this.frame_for(first) {
                    return this.sent(b);
                }
                continue;
            }
            match this.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    if let Some(b) = this.frame_for(chunk) {
                        return this.sent(b);
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let b = error_frame(&e);
                    this.finish(StreamEnd::Failed(e));
                    return this.sent(b);
                }
                Poll::Ready(None) => {
                    this.end_frames();
                    this.mark_complete_pending();
                }
            }
        }
    }
}

impl ClientStream {
    // The stream is complete once the end frames are queued; the callback runs when the last
    // of them is handed out, so a client that leaves before `[DONE]` counts as gone.
    fn mark_complete_pending(&mut self) {
        self.first = None;
        self.on_finish_complete = true;
    }

    fn finished_pending(&self) -> bool {
        self.on_finish_complete
    }
}

impl Drop for ClientStream {
    fn drop(&mut self) {
        if self.on_finish.is_some() {
            self.finish(StreamEnd::ClientGone);
        }
    }
}

/// Fills a stream's record from how the stream ended: timings, usage, summary, status.
pub(crate) fn apply_stream_outcome(
    r: &mut crate::store::record::RequestRecord,
    out: StreamOutcome,
    started: std::time::Instant,
) {
    r.duration_ms = started.elapsed().as_millis() as u64;
    r.ttft_ms = out
        .first_frame_at
        .map(|t| t.duration_since(started).as_millis() as u64);
    if let (Some(first), Some(up)) = (out.first_frame_at, r.upstream_us) {
        let to_first_us = first.duration_since(started).as_micros() as u64;
        r.overhead_us = Some(to_first_us.saturating_sub(up));
    }
    r.usage = out.usage;
    r.usage_estimated = out.usage_estimated;
    r.response = out.summary;
    match out.end {
        StreamEnd::Complete => r.status = 200,
        StreamEnd::Failed(e) => {
            r.status = e.status.as_u16();
            r.error_type = Some(e.body.kind);
            r.error_message = Some(e.body.message);
        }
        StreamEnd::ClientGone => {
            r.status = 499;
            r.error_type = Some("client_closed".into());
            r.error_message = Some("the client closed the connection mid-stream".into());
        }
    }
}

/// A stream read to its end after its client went away before it was handed over (see
/// `http::openai::serve_reply`) is recorded as 499 `client_closed`, with the upstream's usage.
pub(crate) fn mark_client_gone(
    r: &mut crate::store::record::RequestRecord,
    gone: &std::sync::atomic::AtomicBool,
) {
    if r.status == 200 && gone.load(std::sync::atomic::Ordering::SeqCst) {
        r.status = 499;
        r.error_type = Some("client_closed".into());
        r.error_message = Some("the client closed the connection before the stream started".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn chunk(raw: &str) -> Chunk {
        Chunk {
            json: serde_json::from_str(raw).unwrap(),
            raw: Some(Bytes::copy_from_slice(raw.as_bytes())),
        }
    }

    /// A chunk that needs no rewriting leaves as the upstream's exact bytes (spacing and
    /// escapes included); one whose usage moves to the trailing chunk is re-encoded.
    #[tokio::test]
    async fn unchanged_chunks_leave_as_the_same_bytes() {
        let first = r#"{"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "h\u00e9"}, "finish_reason": null}]}"#;
        let second = r#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#;
        let rest: ChunkStream = Box::pin(futures_util::stream::iter(vec![Ok(chunk(second))]));
        let s = ClientStream::new(chunk(first), rest, false, 0, Box::new(|_| {}));
        let frames: Vec<Bytes> = s.map(|f| f.unwrap()).collect().await;
        assert_eq!(frames[0], Bytes::from(format!("data: {first}\n\n")));
        assert_eq!(
            frames[1],
            Bytes::from_static(
                b"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n"
            )
        );
        assert_eq!(frames[2], Bytes::from_static(b"data: [DONE]\n\n"));
        assert_eq!(frames.len(), 3);
    }
}

//! The client side of a stream: OpenAI chunk objects in, SSE frames out, one frame per chunk
//! as soon as it arrives (never buffered), with the usage chunk handled as OpenAI does it
//! (see `stream_options.include_usage` in the API reference): exactly one usage-only chunk
//! (`choices: []`) right before `data: [DONE]` when the client asked, none otherwise.
//!
//! An upstream failure mid-stream becomes one `data: {"error":{…}}` frame, then the stream
//! closes (no `[DONE]`, no made-up finish chunk). When the stream ends — completely, by error,
//! or because the client went away and the body was dropped — the `on_finish` callback gets
//! the summary exactly once.

use crate::api::chunk_view;
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

/// One item of a [`ClientStream`] read with [`ClientStream::poll_chat_frame`].
#[derive(Debug)]
pub enum ChatFrame {
    /// A chunk, exactly what its SSE frame (`data: <json>\n\n`) would carry: the upstream's
    /// text with its view when nothing in it changed, else the object. Only in chunk mode
    /// ([`ClientStream::chunks_only`]); read it with [`Chunk::delta`].
    Chunk(Chunk),
    /// An SSE frame ready to write (`data: …\n\n`): a chunk in byte mode, the error frame,
    /// `data: [DONE]`.
    Bytes(Bytes),
}

/// SSE frames for the client.
pub struct ClientStream {
    inner: ChunkStream,
    first: Option<Chunk>,
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
    /// Chunk mode: chunks are handed out as objects, not encoded (see [`ChatFrame`]).
    as_chunks: bool,
    /// A stream that ends without a finish reason is a failure ([`ClientStream::requiring_finish`]).
    require_finish: bool,
    queued: VecDeque<ChatFrame>,
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
            wants_usage,
            prompt_estimate,
            summary: ResponseSummary::default(),
            last_meta: None,
            usage_details: serde_json::Map::new(),
            first_frame_at: None,
            finished: false,
            on_finish_complete: false,
            on_finish: Some(on_finish),
            as_chunks: false,
            require_finish: false,
            queued: VecDeque::new(),
        }
    }

    /// This stream, ending in the error frame instead of `[DONE]` when the upstream ended it
    /// without a finish reason: for a translator whose dialect cannot end without one
    /// (Messages: `message_delta` carries `stop_reason`), so that what the client gets (an
    /// error event) and the log row (502) agree.
    pub fn requiring_finish(mut self) -> Self {
        self.require_finish = true;
        self
    }

    /// Switches to chunk mode, for a translator (Responses, Messages) that reads the chunks
    /// with [`ClientStream::poll_chat_frame`]: each chunk is handed out as the object the
    /// gateway already parsed instead of being encoded for the translator to parse again.
    pub fn chunks_only(mut self) -> Self {
        self.as_chunks = true;
        self
    }

    /// This stream in chunk mode as a [`Stream`] of [`ChatFrame`]s (for a translator).
    pub fn into_chat_frames(self) -> ChatFrames {
        ChatFrames(self.chunks_only())
    }

    /// A chunk to hand out: the object itself in chunk mode, else its frame (the upstream's
    /// own bytes when given).
    fn emit(&self, chunk: Value, raw: Option<Bytes>) -> ChatFrame {
        if self.as_chunks {
            return ChatFrame::Chunk(Chunk::from(chunk));
        }
        ChatFrame::Bytes(match raw {
            Some(raw) => raw_frame(&raw),
            None => frame(&chunk),
        })
    }

    /// Processes one chunk; returns the frame to send, if any. A chunk that needs no change
    /// leaves as the upstream's own bytes.
    fn frame_for(&mut self, chunk: Chunk) -> Option<ChatFrame> {
        let chunk = match self.forward_as_is(chunk) {
            Ok(frame) => return frame,
            Err(chunk) => chunk,
        };
        let raw = chunk.raw_bytes();
        let mut chunk = chunk.into_json();
        self.summary.add_chunk(&chunk);
        if let Some(Value::Object(u)) = chunk.get("usage") {
            self.keep_usage_details(u);
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
            return Some(self.emit(chunk, None));
        }
        Some(self.emit(chunk, raw))
    }

    /// The usual chunk, read through its borrowed view without a JSON tree: one with no usage
    /// to move into the trailing usage chunk, after the first chunk (whose meta is kept). `Ok`
    /// with the frame to send (its own bytes, or the chunk itself in chunk mode; none for a
    /// chunk without choices); `Err` with the chunk for the tree path, which does the same for
    /// every other chunk and agrees with this one on what both accept.
    fn forward_as_is(&mut self, chunk: Chunk) -> Result<Option<ChatFrame>, Chunk> {
        let (Some(view), Some(text)) = (chunk.view(), chunk.text()) else {
            return Err(chunk);
        };
        if view.usage.is_some() && (view.has_choices() || self.last_meta.is_none()) {
            // Its usage moves to the trailing usage chunk: the chunk is rewritten.
            return Err(chunk);
        }
        if self.last_meta.is_none() {
            // The first chunk: its meta is read from its text, as `remember_meta` reads it
            // from the tree.
            let Some(meta) = chunk_view::meta_of_text(text) else {
                return Err(chunk);
            };
            self.last_meta = Some(Value::Object(meta));
        }
        self.summary.add_view(view);
        if !view.has_choices() {
            // Usage or meta only: the single trailing usage chunk is ours.
            if let Some(Value::Object(u)) = view.usage_object() {
                self.keep_usage_details(&u);
            }
            return Ok(None);
        }
        if self.as_chunks {
            return Ok(Some(ChatFrame::Chunk(chunk)));
        }
        Ok(Some(ChatFrame::Bytes(raw_frame(text))))
    }

    /// Keeps the `*_tokens_details` objects of `usage` for the trailing usage chunk.
    fn keep_usage_details(&mut self, usage: &serde_json::Map<String, Value>) {
        let details = usage
            .iter()
            .filter(|(k, _)| k.ends_with("_tokens_details"))
            .map(|(k, v)| (k.clone(), v.clone()));
        self.usage_details.extend(details);
    }

    fn remember_meta(&mut self, chunk: &Value) {
        if self.last_meta.is_none() {
            self.last_meta = Some(Value::Object(chunk_view::meta_of_tree(chunk)));
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
            let f = self.emit(chunk, None);
            self.queued.push_back(f);
        }
        self.queued
            .push_back(ChatFrame::Bytes(Bytes::from_static(b"data: [DONE]\n\n")));
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

    fn sent(&mut self, f: ChatFrame) -> Poll<Option<ChatFrame>> {
        if self.first_frame_at.is_none() {
            self.first_frame_at = Some(Instant::now());
        }
        Poll::Ready(Some(f))
    }

    /// The next item: what [`Stream::poll_next`] sends, with chunks as objects in chunk
    /// mode ([`ClientStream::chunks_only`]).
    pub fn poll_chat_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<ChatFrame>> {
        loop {
            if let Some(b) = self.queued.pop_front() {
                if self.queued.is_empty() && self.finished_pending() {
                    self.finish(StreamEnd::Complete);
                }
                return self.sent(b);
            }
            if self.finished {
                return Poll::Ready(None);
            }
            if let Some(first) = self.first.take() {
                if let Some(b) = self.frame_for(first) {
                    return self.sent(b);
                }
                continue;
            }
            match self.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    if let Some(b) = self.frame_for(chunk) {
                        return self.sent(b);
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let b = error_frame(&e);
                    self.finish(StreamEnd::Failed(e));
                    return self.sent(ChatFrame::Bytes(b));
                }
                Poll::Ready(None)
                    if self.require_finish && self.summary.finish_reason.is_none() =>
                {
                    let e = ApiError::new(
                        axum::http::StatusCode::BAD_GATEWAY,
                        "server_error",
                        "the backend's stream ended before it was complete (no finish reason)",
                    )
                    .with_code("upstream_error");
                    let b = error_frame(&e);
                    self.finish(StreamEnd::Failed(e));
                    return self.sent(ChatFrame::Bytes(b));
                }
                Poll::Ready(None) => {
                    self.end_frames();
                    self.mark_complete_pending();
                }
            }
        }
    }
}

/// A [`ClientStream`] in chunk mode, as a stream of [`ChatFrame`]s.
pub struct ChatFrames(ClientStream);

impl Stream for ChatFrames {
    type Item = ChatFrame;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ChatFrame>> {
        self.0.poll_chat_frame(cx)
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
        self.poll_chat_frame(cx).map(|f| {
            f.map(|f| {
                Ok(match f {
                    ChatFrame::Bytes(b) => b,
                    ChatFrame::Chunk(c) => match c.text() {
                        Some(text) => raw_frame(text),
                        None => frame(c.json.as_ref().unwrap_or(&Value::Null)),
                    },
                })
            })
        })
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
            viewed: None,
        }
    }

    /// A chunk as the OpenAI provider hands on a usual one: its text with its view.
    fn raw_chunk(raw: &str) -> Chunk {
        Chunk::from_viewed(crate::api::chunk_view::viewed(raw.to_string()))
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

    /// Chunks handed on as bytes only (the provider's usual case) give the same frames and the
    /// same summary as parsed ones: every chunk goes through its view (the first one's meta
    /// read from its text, the usage-only one's token details from its usage), and the
    /// trailing usage chunk carries the same meta and details.
    #[tokio::test]
    async fn raw_only_chunks_give_the_same_frames_and_summary() {
        let chunks = [
            r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"fp","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"h\u00e9"},"finish_reason":null}]}"#,
            r#"{"id":"c","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t","function":{"name":"f","arguments":"{}"}}]},"finish_reason":null}]}"#,
            r#"{"id":"c","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"id":"c","model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3,"prompt_tokens_details":{"cached_tokens":1},"completion_tokens_details":null}}"#,
        ];
        async fn run(chunks: [&str; 5], make: fn(&str) -> Chunk) -> (Vec<Bytes>, ResponseSummary) {
            let got = std::sync::Arc::new(std::sync::Mutex::new(None));
            let put = got.clone();
            let rest: Vec<_> = chunks[1..].iter().map(|c| Ok(make(c))).collect();
            let rest: ChunkStream = Box::pin(futures_util::stream::iter(rest));
            let on_finish: OnFinish = Box::new(move |o| {
                *put.lock().unwrap() = Some(o.summary);
            });
            let s = ClientStream::new(make(chunks[0]), rest, true, 0, on_finish);
            let frames: Vec<Bytes> = s.map(|f| f.unwrap()).collect().await;
            let summary = got.lock().unwrap().take().unwrap();
            (frames, summary)
        }
        let (raw_frames, raw_summary) = run(chunks, raw_chunk).await;
        let (frames, summary) = run(chunks, chunk).await;
        assert_eq!(raw_frames, frames);
        assert_eq!(raw_summary, summary);
        assert_eq!(summary.content, "hé");
        assert_eq!(summary.tool_calls[0].arguments, "{}");
        assert_eq!(summary.finish_reason.as_deref(), Some("stop"));
        assert_eq!(summary.system_fingerprint.as_deref(), Some("fp"));
        assert_eq!(summary.usage.map(|u| u.total_tokens), Some(3));
        // Four chunks with choices as they came, the trailing usage chunk, `[DONE]`.
        assert_eq!(raw_frames.len(), 6);
        assert_eq!(
            raw_frames[4],
            Bytes::from_static(
                b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"system_fingerprint\":\"fp\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3,\"prompt_tokens_details\":{\"cached_tokens\":1},\"completion_tokens_details\":null}}\n\n"
            )
        );
        assert_eq!(
            raw_frames[1],
            Bytes::from(format!("data: {}\n\n", chunks[1]))
        );
    }

    /// Chunk mode hands a translator exactly the objects byte mode's frames carry (the raw
    /// chunk, the rewritten one, the trailing usage chunk), and the same `[DONE]` frame; a
    /// usual chunk after the first keeps its view and is never made a tree.
    #[tokio::test]
    async fn chunk_mode_gives_the_objects_the_frames_carry() {
        let first = r#"{"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"h\u00e9"},"finish_reason":null}]}"#;
        let middle = r#"{"id":"c","model":"m","choices":[{"index":0,"delta":{"content":" there"},"finish_reason":null}]}"#;
        let last = r#"{"id":"c","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3,"prompt_tokens_details":{"cached_tokens":1}}}"#;
        let make = || {
            let rest: ChunkStream = Box::pin(futures_util::stream::iter(vec![
                Ok(raw_chunk(middle)),
                Ok(raw_chunk(last)),
            ]));
            ClientStream::new(raw_chunk(first), rest, true, 0, Box::new(|_| {}))
        };
        let bytes: Vec<Bytes> = make().map(|f| f.unwrap()).collect().await;
        let frames: Vec<ChatFrame> = make().into_chat_frames().collect().await;
        assert_eq!(bytes.len(), 5);
        assert_eq!(frames.len(), 5);
        for (b, f) in bytes.iter().zip(&frames) {
            let text = std::str::from_utf8(b).unwrap();
            let data = text.strip_prefix("data: ").unwrap().trim_end();
            match f {
                ChatFrame::Chunk(c) => assert_eq!(
                    c.clone().into_json(),
                    serde_json::from_str::<Value>(data).unwrap()
                ),
                ChatFrame::Bytes(fb) => assert_eq!(fb, b),
            }
        }
        assert!(matches!(frames[4], ChatFrame::Bytes(_)));
        assert!(frames[..4].iter().all(|f| matches!(f, ChatFrame::Chunk(_))));
        let ChatFrame::Chunk(c) = &frames[1] else {
            unreachable!()
        };
        assert!(c.json.is_none() && c.view().is_some());
        assert_eq!(c.delta().choice.unwrap().content, Some(" there"));
    }
}

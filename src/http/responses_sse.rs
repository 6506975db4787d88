//! The Responses stream sent to the client: the gateway's chat SSE frames in, Responses
//! events out, each chat frame translated as soon as it arrives (never buffered).
//!
//! `data: [DONE]` ends the stream with `response.completed` (or `response.incomplete`); a
//! `data: {"error":…}` frame becomes `error` then `response.failed`; a chat stream that stops
//! without either is a failure too, never a clean end. When the stream ends, `on_end` gets the
//! final Response object once (to store it).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::StatusCode;
use bytes::Bytes;
use futures_util::Stream;
use serde_json::Value;

use crate::api::ApiError;
use crate::api::chat_delta::ChatDelta;
use crate::api::responses::ResponseObject;
use crate::bridge::responses::StreamTranslator;
use crate::gateway::stream::{ChatFrame, ClientStream};

/// Called once with the final response.
pub type OnEnd = Box<dyn FnOnce(ResponseObject) + Send>;

/// Responses SSE frames over a chat [`ClientStream`].
pub struct ResponsesSse {
    inner: ClientStream,
    translator: StreamTranslator,
    queued: VecDeque<Bytes>,
    ended: bool,
    on_end: Option<OnEnd>,
}

impl ResponsesSse {
    /// Wraps `inner` (read in chunk mode: each chat chunk is translated from the view or
    /// object the gateway already has, not parsed again); `translator` knows the response id and the tool map.
    /// `on_end` (when given) gets the final response.
    pub fn new(
        inner: ClientStream,
        mut translator: StreamTranslator,
        on_end: Option<OnEnd>,
    ) -> Self {
        let queued = translator.start().into();
        ResponsesSse {
            inner: inner.chunks_only(),
            translator,
            queued,
            ended: false,
            on_end,
        }
    }

    /// Translates one chat SSE frame (`data: …\n\n`).
    fn take_frame(&mut self, frame: &[u8]) {
        let text = String::from_utf8_lossy(frame);
        for line in text.lines() {
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            let data = data.trim();
            if data == "[DONE]" {
                let out = self.translator.finish();
                self.end(out);
                return;
            }
            match serde_json::from_str::<Value>(data) {
                Ok(chunk) => {
                    if self.take_delta(&ChatDelta::from_tree(&chunk)) {
                        return;
                    }
                }
                Err(e) => {
                    let err = ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        "server_error",
                        format!("the chat stream sent a frame that is not JSON: {e}"),
                    )
                    .with_code("upstream_error");
                    let out = self.translator.finish_error(&err);
                    self.end(out);
                    return;
                }
            }
        }
    }

    /// Translates one chat chunk; true when it ended the stream (an error object).
    fn take_delta(&mut self, chunk: &ChatDelta<'_>) -> bool {
        let out = self.translator.push_delta(chunk);
        if chunk.error.is_some() {
            self.end(out);
            return true;
        }
        self.queued.extend(out);
        false
    }

    fn end(&mut self, frames: Vec<Bytes>) {
        self.queued.extend(frames);
        self.ended = true;
        if let Some(cb) = self.on_end.take() {
            cb(self.translator.response().clone());
        }
    }
}

impl Stream for ResponsesSse {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(b) = self.queued.pop_front() {
                return Poll::Ready(Some(Ok(b)));
            }
            if self.ended {
                return Poll::Ready(None);
            }
            match self.inner.poll_chat_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(ChatFrame::Chunk(chunk))) => {
                    self.take_delta(&chunk.delta());
                }
                Poll::Ready(Some(ChatFrame::Bytes(frame))) => self.take_frame(&frame),
                Poll::Ready(None) => {
                    let err = ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        "server_error",
                        "the upstream stream ended before the response was complete",
                    )
                    .with_code("upstream_error");
                    let out = self.translator.finish_error(&err);
                    self.end(out);
                }
            }
        }
    }
}

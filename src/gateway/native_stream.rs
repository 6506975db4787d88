//! The client side of a native stream (Messages from an `anthropic` deployment, Responses from
//! an `openai` deployment with `responses`): the backend's events relayed one by one as they
//! arrive, their exact bytes unless redaction must restore text in them
//! ([`crate::policy::redact_native`]). Each event is read for the log ([`Tally`]: text, tool
//! calls, usage), so limits and budgets settle on the backend's real counts.
//!
//! Never a clean end after a failure: a connection or timeout failure mid-stream, or a stream
//! that ends before the dialect's last event (`message_stop`; `response.completed` /
//! `response.incomplete`), becomes Sluice's own error event in the dialect's shape (Messages:
//! `event: error`; Responses: `error` then `response.failed`). An `error` event the backend
//! sent itself is relayed as it came and the row records the failure.

use super::stream::{OnFinish, StreamEnd, StreamOutcome};
use crate::api::ApiError;
use crate::api::Usage;
use crate::api::messages::AnthropicError;
use crate::api::native::Dialect;
use crate::api::native_summary::Tally;
use crate::policy::redact_native::NativeRestorer;
use crate::providers::native::{Event, EventStream};
use bytes::Bytes;
use futures_util::Stream;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// Called once with the final Response object of a completed Responses stream (to store it).
pub type OnFinal = Box<dyn FnOnce(Value) + Send>;

/// SSE bytes for the client, event by event.
pub struct NativeStream {
    dialect: Dialect,
    deployment: String,
    first: Option<Event>,
    inner: EventStream,
    tally: Tally,
    restorer: Option<NativeRestorer>,
    queued: VecDeque<Bytes>,
    prompt_estimate: u64,
    first_frame_at: Option<Instant>,
    /// How the stream ended, once it did (sent when the queue is empty).
    ending: Option<StreamEnd>,
    done: bool,
    on_finish: Option<OnFinish>,
    on_final: Option<OnFinal>,
}

impl NativeStream {
    /// This stream, gathering at most `limit` bytes of text for the log row
    /// (`log.max_body_bytes`; see [`crate::api::summary::TextBound`]).
    pub fn with_log_limit(mut self, limit: usize) -> Self {
        self.tally.summary.bound = crate::api::summary::TextBound::of(limit);
        self
    }

    /// Wraps `inner`, whose first event `first` was already read by the caller.
    /// `prompt_estimate` is the usage when the backend reports none.
    pub fn new(
        dialect: Dialect,
        deployment: String,
        first: Event,
        inner: EventStream,
        restorer: Option<NativeRestorer>,
        prompt_estimate: u64,
        on_finish: OnFinish,
    ) -> Self {
        NativeStream {
            dialect,
            deployment,
            first: Some(first),
            inner,
            tally: Tally::new(dialect),
            restorer,
            queued: VecDeque::new(),
            prompt_estimate,
            first_frame_at: None,
            ending: None,
            done: false,
            on_finish: Some(on_finish),
            on_final: None,
        }
    }

    /// Registers the callback that gets the final Response object (Responses only).
    pub fn on_final(&mut self, f: OnFinal) {
        self.on_final = Some(f);
    }

    /// Queues one upstream event: its bytes, or the restored events.
    fn relay(&mut self, ev: Event) {
        self.tally.push(&ev.data);
        let rewritten = self.restorer.as_mut().and_then(|r| r.apply(&ev.data));
        match rewritten {
            None => self.queued.push_back(ev.raw),
            Some(events) => self.queued.extend(events.iter().map(frame)),
        }
    }

    /// The upstream ended (`error` = a failure Sluice saw): queues Sluice's error events
    /// when the client has not been told, and decides how the stream ended.
    fn end(&mut self, error: Option<ApiError>) {
        let end = match (error, &self.tally.failed) {
            (None, Some((code, message))) => StreamEnd::Failed(ApiError::bad_gateway(
                &self.deployment,
                crate::providers::native::failure_text(code, message),
            )),
            (None, None) if self.tally.done => StreamEnd::Complete,
            (e, _) => {
                let e = e.unwrap_or_else(|| crate::providers::stream_ended_early(&self.deployment));
                self.queued.extend(self.error_frames(&e));
                StreamEnd::Failed(e)
            }
        };
        self.ending = Some(end);
    }

    /// Sluice's error events in the dialect's shape.
    fn error_frames(&self, e: &ApiError) -> Vec<Bytes> {
        match self.dialect {
            Dialect::Messages => vec![frame(
                &serde_json::to_value(AnthropicError::from_api(e)).unwrap_or(Value::Null),
            )],
            Dialect::Responses => {
                let seq = self.tally.sequence.map_or(0, |n| n + 1);
                let code = e
                    .body
                    .code
                    .clone()
                    .unwrap_or(Value::from(e.body.kind.clone()));
                let error = json!({"type": "error", "code": code, "message": e.body.message,
                                   "param": null, "sequence_number": seq});
                let mut response = self
                    .tally
                    .response
                    .clone()
                    .unwrap_or_else(|| json!({"object": "response"}));
                response["status"] = Value::from("failed");
                response["error"] = json!({"code": code, "message": e.body.message});
                let failed = json!({"type": "response.failed", "sequence_number": seq + 1,
                                    "response": response});
                vec![frame(&error), frame(&failed)]
            }
        }
    }

    /// The usage to record for a stream that ended as `end`: the backend's own when it
    /// finished; else its output never less than the estimate of what was streamed (Anthropic
    /// reports `output_tokens: 1` in `message_start`: a client leaving before
    /// `message_delta`, or a backend breaking off, was charged one token for a whole answer),
    /// estimated when raised. Its input count, exact from the start, is kept.
    fn usage(&self, end: &StreamEnd) -> (Usage, bool) {
        let estimate = || {
            Usage::new(
                self.prompt_estimate,
                self.tally.summary.estimate_completion_tokens(),
            )
        };
        match self.tally.summary.usage {
            Some(u) if *end == StreamEnd::Complete => (u, false),
            Some(u) => {
                let streamed = self.tally.summary.estimate_completion_tokens();
                if u.completion_tokens >= streamed {
                    return (u, false);
                }
                let mut raised = u;
                raised.completion_tokens = streamed;
                raised.total_tokens = raised.prompt_tokens + raised.completion_tokens;
                (raised, true)
            }
            None => (estimate(), true),
        }
    }

    fn finish(&mut self, end: StreamEnd) {
        self.done = true;
        if end == StreamEnd::Complete
            && let (Some(f), Some(r)) = (self.on_final.take(), self.tally.response.take())
        {
            f(r);
        }
        if let Some(cb) = self.on_finish.take() {
            let (usage, usage_estimated) = self.usage(&end);
            cb(StreamOutcome {
                end,
                summary: std::mem::take(&mut self.tally.summary),
                usage,
                usage_estimated,
                first_frame_at: self.first_frame_at,
            });
        }
    }
}

/// `event: <type>\ndata: <json>\n\n`, the framing both dialects use.
fn frame(v: &Value) -> Bytes {
    let kind = v.get("type").and_then(Value::as_str).unwrap_or("message");
    Bytes::from(format!("event: {kind}\ndata: {v}\n\n"))
}

impl Stream for NativeStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(b) = this.queued.pop_front() {
                if this.first_frame_at.is_none() {
                    this.first_frame_at = Some(Instant::now());
                }
                if this.queued.is_empty()
                    && let Some(end) = this.ending.take()
                {
                    this.finish(end);
                }
                return Poll::Ready(Some(Ok(b)));
            }
            if let Some(end) = this.ending.take() {
                this.finish(end);
            }
            if this.done {
                return Poll::Ready(None);
            }
            if let Some(first) = this.first.take() {
                this.relay(first);
                continue;
            }
            match this.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(ev))) => this.relay(ev),
                Poll::Ready(Some(Err(e))) => this.end(Some(e)),
                Poll::Ready(None) => this.end(None),
            }
        }
    }
}

impl Drop for NativeStream {
    fn drop(&mut self) {
        if self.on_finish.is_some() {
            // A client that leaves once it has the dialect's last event (Codex closes right
            // after `response.completed`) got the whole answer: that is a complete stream.
            let end = if self.tally.done && self.queued.is_empty() {
                StreamEnd::Complete
            } else {
                StreamEnd::ClientGone
            };
            self.finish(end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use std::sync::{Arc, Mutex};

    fn ev(raw: &str) -> Event {
        crate::providers::native::split_events(raw.as_bytes())
            .into_iter()
            .next()
            .unwrap()
    }

    async fn run(
        dialect: Dialect,
        events: Vec<Result<Event, ApiError>>,
    ) -> (String, StreamOutcome) {
        let got: Arc<Mutex<Option<StreamOutcome>>> = Arc::default();
        let sink = got.clone();
        let mut it = events.into_iter();
        let first = it.next().unwrap().unwrap();
        let s = NativeStream::new(
            dialect,
            "d".into(),
            first,
            Box::pin(futures_util::stream::iter(it)),
            None,
            3,
            Box::new(move |o| *sink.lock().unwrap() = Some(o)),
        );
        let out: Vec<Bytes> = s.map(|b| b.unwrap()).collect().await;
        let text = String::from_utf8(out.concat()).unwrap();
        let outcome = got.lock().unwrap().take().unwrap();
        (text, outcome)
    }

    #[tokio::test]
    async fn bytes_are_relayed_exactly_and_usage_read() {
        let raws = [
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"c\",\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}\n\n",
            ": keep-alive\n\n",
            "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\r\n\r\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":4}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        ];
        let (text, out) = run(Dialect::Messages, raws.iter().map(|r| Ok(ev(r))).collect()).await;
        assert_eq!(text, raws.concat());
        assert_eq!(out.end, StreamEnd::Complete);
        assert_eq!(out.usage, Usage::new(7, 4));
        assert!(!out.usage_estimated);
        assert_eq!(out.summary.content, "Hi");
    }

    #[tokio::test]
    async fn a_failure_mid_stream_is_an_error_event_never_a_clean_end() {
        let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\n";
        let (text, out) = run(
            Dialect::Messages,
            vec![Ok(ev(start)), Err(ApiError::gateway_timeout("d"))],
        )
        .await;
        assert!(text.starts_with(start));
        let tail = &text[start.len()..];
        assert!(
            tail.starts_with(
                "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"timeout_error\""
            ),
            "{tail}"
        );
        assert!(matches!(out.end, StreamEnd::Failed(_)));
        // Cut short without message_stop: an error too.
        let (text, out) = run(Dialect::Messages, vec![Ok(ev(start))]).await;
        assert!(text[start.len()..].starts_with("event: error\n"), "{text}");
        assert!(matches!(out.end, StreamEnd::Failed(_)));
        // Responses: error, then response.failed with the last response object.
        let created = "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\"}}\n\n";
        let (text, _) = run(Dialect::Responses, vec![Ok(ev(created))]).await;
        let frames: Vec<&str> = text[created.len()..]
            .split("\n\n")
            .filter(|f| !f.is_empty())
            .collect();
        assert_eq!(frames.len(), 2, "{text}");
        assert!(frames[0].starts_with("event: error\ndata: {"));
        assert!(frames[0].contains("\"sequence_number\":1"));
        let failed: Value =
            serde_json::from_str(frames[1].split_once("data: ").unwrap().1).unwrap();
        assert_eq!(failed["type"], "response.failed");
        assert_eq!(failed["sequence_number"], 2);
        assert_eq!(failed["response"]["id"], "resp_1");
        assert_eq!(failed["response"]["status"], "failed");
    }
}

//! A fast OpenAI-compatible mock upstream for benchmarks, with Ollama-native (`/api/chat`,
//! NDJSON) and Anthropic (`/v1/messages`, SSE events) shapes too.
//!
//! Knobs ([`MockSettings`]): latency before the first byte (ms), number of stream chunks,
//! delay between chunks (ms), and the size of each content piece (bytes). Each stream chunk's
//! text starts with the Unix time in µs at which the mock sent it (`t=<µs>;`), so a client
//! on the same machine can measure how long Sluice held a chunk.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How the mock answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MockSettings {
    /// Wait before the first byte, ms.
    pub first_byte_ms: u64,
    /// Content chunks per stream.
    pub chunks: usize,
    /// Wait between stream chunks, ms.
    pub chunk_delay_ms: u64,
    /// Bytes of text per chunk (and of the non-stream answer, times `chunks`).
    pub piece_bytes: usize,
}

impl Default for MockSettings {
    fn default() -> Self {
        MockSettings {
            first_byte_ms: 0,
            chunks: 8,
            chunk_delay_ms: 0,
            piece_bytes: 16,
        }
    }
}

/// The mock's router.
pub fn router(settings: MockSettings) -> Router {
    Router::new()
        .route(
            "/v1/chat/completions",
            post(move |body: Bytes| openai(settings, body)),
        )
        .route("/api/chat", post(move |body: Bytes| ollama(settings, body)))
        .route(
            "/v1/messages",
            post(move |body: Bytes| anthropic(settings, body)),
        )
        .route(
            "/v1/embeddings",
            post(move |_body: Bytes| embeddings(settings)),
        )
        .route(
            "/v1/responses",
            post(move |body: Bytes| responses(settings, body)),
        )
}

/// Serves the mock on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    settings: MockSettings,
) -> std::io::Result<()> {
    axum::serve(
        axum::serve::ListenerExt::tap_io(listener, |t: &mut tokio::net::TcpStream| {
            let _ = t.set_nodelay(true);
        }),
        router(settings),
    )
    .await
}

fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

fn piece(settings: MockSettings) -> String {
    let stamp = format!("t={};", now_us());
    let pad = settings.piece_bytes.saturating_sub(stamp.len());
    format!("{stamp}{}", "x".repeat(pad))
}

fn wants_stream(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("stream").and_then(Value::as_bool))
        .unwrap_or(false)
}

async fn pause(ms: u64) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

fn stream_body(settings: MockSettings, frame: fn(usize, &str, bool) -> String) -> Body {
    let s = futures_util::stream::unfold(0usize, move |i| async move {
        if i > settings.chunks {
            return None;
        }
        if i > 0 {
            pause(settings.chunk_delay_ms).await;
        }
        let last = i == settings.chunks;
        let text = if last { String::new() } else { piece(settings) };
        Some((
            Ok::<Bytes, std::io::Error>(Bytes::from(frame(i, &text, last))),
            i + 1,
        ))
    });
    Body::from_stream(s)
}

async fn openai(settings: MockSettings, body: Bytes) -> Response {
    pause(settings.first_byte_ms).await;
    if !wants_stream(&body) {
        let text: String = (0..settings.chunks).map(|_| piece(settings)).collect();
        let v = json!({"id":"chatcmpl-bench","object":"chat.completion","created":0,"model":"bench",
            "choices":[{"index":0,"message":{"role":"assistant","content":text},"finish_reason":"stop"}],
            "usage":{"prompt_tokens":10,"completion_tokens":settings.chunks,"total_tokens":10 + settings.chunks}});
        return ([("content-type", "application/json")], v.to_string()).into_response();
    }
    fn frame(i: usize, text: &str, last: bool) -> String {
        if last {
            let fin = json!({"id":"c","object":"chat.completion.chunk","created":0,"model":"bench","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]});
            let usage = json!({"id":"c","object":"chat.completion.chunk","created":0,"model":"bench","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":i,"total_tokens":10 + i}});
            return format!("data: {fin}\n\ndata: {usage}\n\ndata: [DONE]\n\n");
        }
        let delta = if i == 0 {
            json!({"role":"assistant","content":text})
        } else {
            json!({"content":text})
        };
        let c = json!({"id":"c","object":"chat.completion.chunk","created":0,"model":"bench","choices":[{"index":0,"delta":delta,"finish_reason":null}]});
        format!("data: {c}\n\n")
    }
    (
        [("content-type", "text/event-stream")],
        stream_body(settings, frame),
    )
        .into_response()
}

async fn ollama(settings: MockSettings, body: Bytes) -> Response {
    pause(settings.first_byte_ms).await;
    let stream = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("stream").and_then(Value::as_bool))
        .unwrap_or(true);
    if !stream {
        let text: String = (0..settings.chunks).map(|_| piece(settings)).collect();
        let v = json!({"model":"bench","created_at":"2026-01-01T00:00:00Z","message":{"role":"assistant","content":text},"done":true,"done_reason":"stop","prompt_eval_count":10,"eval_count":settings.chunks});
        return ([("content-type", "application/json")], v.to_string()).into_response();
    }
    fn frame(i: usize, text: &str, last: bool) -> String {
        if last {
            return format!(
                "{}\n",
                json!({"model":"bench","created_at":"2026-01-01T00:00:00Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":10,"eval_count":i})
            );
        }
        format!(
            "{}\n",
            json!({"model":"bench","created_at":"2026-01-01T00:00:00Z","message":{"role":"assistant","content":text},"done":false})
        )
    }
    (
        [("content-type", "application/x-ndjson")],
        stream_body(settings, frame),
    )
        .into_response()
}

async fn anthropic(settings: MockSettings, body: Bytes) -> Response {
    pause(settings.first_byte_ms).await;
    if !wants_stream(&body) {
        let text: String = (0..settings.chunks).map(|_| piece(settings)).collect();
        let v = json!({"id":"msg_bench","type":"message","role":"assistant","model":"bench","content":[{"type":"text","text":text}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":settings.chunks}});
        return ([("content-type", "application/json")], v.to_string()).into_response();
    }
    fn frame(i: usize, text: &str, last: bool) -> String {
        let ev = |name: &str, v: Value| format!("event: {name}\ndata: {v}\n\n");
        if last {
            return [
                ev("content_block_stop", json!({"type":"content_block_stop","index":0})),
                ev("message_delta", json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":i}})),
                ev("message_stop", json!({"type":"message_stop"})),
            ]
            .concat();
        }
        let delta = ev(
            "content_block_delta",
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":text}}),
        );
        if i == 0 {
            return [
                ev("message_start", json!({"type":"message_start","message":{"id":"msg_bench","type":"message","role":"assistant","model":"bench","content":[],"stop_reason":null,"usage":{"input_tokens":10,"output_tokens":1}}})),
                ev("content_block_start", json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})),
                delta,
            ]
            .concat();
        }
        delta
    }
    (
        [("content-type", "text/event-stream")],
        stream_body(settings, frame),
    )
        .into_response()
}

async fn embeddings(settings: MockSettings) -> Response {
    pause(settings.first_byte_ms).await;
    let vector: Vec<f64> = (0..16).map(|i| f64::from(i) / 16.0 - 0.5).collect();
    let v = json!({"object":"list","data":[{"object":"embedding","index":0,"embedding":vector}],
        "model":"bench","usage":{"prompt_tokens":10,"total_tokens":10}});
    ([("content-type", "application/json")], v.to_string()).into_response()
}

/// OpenAI's Responses API, natively (the bare hop's upstream for the Responses scenarios).
async fn responses(settings: MockSettings, body: Bytes) -> Response {
    pause(settings.first_byte_ms).await;
    let response = |status: &str, text: &str, n: usize| {
        json!({"id":"resp_bench","object":"response","created_at":0,"status":status,"model":"bench",
            "output":[{"type":"message","id":"msg_bench","status":status,"role":"assistant",
                "content":[{"type":"output_text","text":text,"annotations":[]}]}],
            "usage":{"input_tokens":10,"output_tokens":n,"total_tokens":10 + n}})
    };
    if !wants_stream(&body) {
        let text: String = (0..settings.chunks).map(|_| piece(settings)).collect();
        let v = response("completed", &text, settings.chunks);
        return ([("content-type", "application/json")], v.to_string()).into_response();
    }
    fn frame(i: usize, text: &str, last: bool) -> String {
        let ev = |name: &str, v: Value| format!("event: {name}\ndata: {v}\n\n");
        if last {
            let done = json!({"type":"response.completed","response":{"id":"resp_bench","object":"response",
                "created_at":0,"status":"completed","model":"bench","output":[],
                "usage":{"input_tokens":10,"output_tokens":i,"total_tokens":10 + i}}});
            return ev("response.completed", done);
        }
        let delta = ev(
            "response.output_text.delta",
            json!({"type":"response.output_text.delta","item_id":"msg_bench","output_index":0,"content_index":0,"delta":text}),
        );
        if i == 0 {
            let created = json!({"type":"response.created","response":{"id":"resp_bench","object":"response",
                "created_at":0,"status":"in_progress","model":"bench","output":[]}});
            return [ev("response.created", created), delta].concat();
        }
        delta
    }
    (
        [("content-type", "text/event-stream")],
        stream_body(settings, frame),
    )
        .into_response()
}

/// Reads the mock's send stamp (`t=<µs>;`) from a chunk's text, in µs since the Unix epoch.
pub fn stamp_of(text: &str) -> Option<u128> {
    let start = text.find("t=")? + 2;
    let end = text[start..].find(';')? + start;
    text[start..end].parse().ok()
}

/// Now, in µs since the Unix epoch.
pub fn unix_us() -> u128 {
    now_us()
}

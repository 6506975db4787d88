//! A very long stream from an upstream (issue 16, item 8): Sluice hands every chunk on as it
//! arrives and never gathers the whole stream in memory. The row keeps the first
//! `log.max_body_bytes` of text, ends with the truncation marker, and still has the finish
//! reason and usage of the stream's end; a stream that breaks off after many megabytes ends
//! with an error event (never a clean end) and a 502 row, truncated the same way.
//!
//! The upstream is a mock here that makes its 64 MiB of text on the fly (nothing held);
//! Sluice runs as its own process (the real binary), so the peak RSS read from
//! `/proc/PID/status` (`VmHWM`) is Sluice's alone.

#[path = "support/redis_server.rs"]
mod redis_server;
#[path = "support/replica.rs"]
mod replica;
mod support;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use replica::Replica;
use serde_json::{Value, json};
use support::client;

/// Text per chunk, bytes.
const TEXT: usize = 4096;
/// Text chunks in a whole stream: 8 Ki × 4 KiB = 32 MiB of text (the size keeps the test
/// within ~20 s in a debug build).
const CHUNKS: usize = 8 * 1024;
/// Text chunks before the broken stream breaks off (16 MiB).
const CUT_AFTER: usize = CHUNKS / 2;
/// `log.max_body_bytes` here: 1 MiB.
const LOG_MAX: usize = 1 << 20;
/// Sluice's peak RSS must stay under this. A debug build serving these streams peaks near
/// 30 MiB; gathering one whole stream would add 64 MiB (and its row as much again).
const PEAK_KIB: u64 = 64 * 1024;
/// The marker a cut body ends with (`sluice::store::record::TRUNCATED`).
const MARKER: &str = sluice::store::record::TRUNCATED;

fn frame(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

fn chunk(delta: Value, finish: Value) -> Value {
    json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"upstream-model",
           "choices":[{"index":0,"delta":delta,"finish_reason":finish}]})
}

/// One text chunk's frame: [`TEXT`] bytes of `x`.
fn text_frame() -> Bytes {
    frame(&chunk(json!({"content": "x".repeat(TEXT)}), Value::Null))
}

/// An upstream whose chat stream is a role chunk, [`CHUNKS`] chunks of [`TEXT`] bytes of text,
/// a `length` finish chunk, a usage chunk (5 + 777 tokens) and `[DONE]` — made as it is sent.
/// A request whose message is `cut` ends after [`CUT_AFTER`] text chunks, with no finish
/// chunk and no `[DONE]`: a stream that broke off.
async fn endless_upstream() -> String {
    let handler = |axum::Json(req): axum::Json<Value>| async move {
        let cut = req["messages"][0]["content"] == "cut";
        let text = text_frame();
        let frames = futures_util::stream::unfold(0usize, move |i| {
            let text = text.clone();
            async move {
                let item: Result<Bytes, std::io::Error> = match i {
                    0 => Ok(frame(&chunk(json!({"role":"assistant"}), Value::Null))),
                    i if cut && i > CUT_AFTER => return None,
                    i if i <= CHUNKS => Ok(text),
                    i if i == CHUNKS + 1 => Ok(frame(&chunk(json!({}), json!("length")))),
                    i if i == CHUNKS + 2 => {
                        Ok(frame(&json!({"id":"c1","object":"chat.completion.chunk",
                        "created":1,"model":"upstream-model","choices":[],
                        "usage":{"prompt_tokens":5,"completion_tokens":777,"total_tokens":782}})))
                    }
                    i if i == CHUNKS + 3 => Ok(Bytes::from_static(b"data: [DONE]\n\n")),
                    _ => return None,
                };
                Some((item, i + 1))
            }
        });
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(frames))
            .unwrap()
    };
    let app = axum::Router::new().route("/v1/chat/completions", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/v1")
}

/// What a client read from one stream: the text chunks (all of [`TEXT`] bytes of `x`, else
/// the test fails), and the frames after them.
struct Read {
    status: u16,
    text_chunks: usize,
    tail: Vec<String>,
}

/// Streams a chat request saying `say`, reading the answer frame by frame (never whole).
async fn stream(base: &str, say: &str) -> Read {
    let r = client()
        .post(format!("{base}/v1/chat/completions"))
        .json(
            &json!({"model":"default","stream":true,"stream_options":{"include_usage":true},
                      "messages":[{"role":"user","content":say}]}),
        )
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let mut body = r.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    let mut read = Read {
        status,
        text_chunks: 0,
        tail: Vec::new(),
    };
    // Sluice passes an unchanged chunk on as the upstream's own bytes.
    let text = text_frame();
    let mut from = 0;
    while let Some(bytes) = body.next().await {
        buf.extend_from_slice(&bytes.unwrap());
        while let Some(end) = buf[from..].windows(2).position(|w| w == b"\n\n") {
            let f: Vec<u8> = buf.drain(..from + end + 2).collect();
            from = 0;
            if f == text {
                assert!(read.tail.is_empty(), "text after {:?}", read.tail);
                read.text_chunks += 1;
                continue;
            }
            let f = std::str::from_utf8(&f).unwrap().trim_end();
            let data = f.strip_prefix("data: ").unwrap_or_else(|| panic!("{f:?}"));
            let v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
            assert!(v["choices"][0]["delta"]["content"].is_null(), "{data}");
            if v["choices"][0]["delta"]["role"] != "assistant" {
                read.tail.push(data.to_string());
            }
        }
        from = buf.len().saturating_sub(1);
    }
    assert!(buf.is_empty(), "a partial frame at the end");
    read
}

/// A row's `status, error_type, finish_reason, prompt_tokens, completion_tokens,
/// usage_estimated, response_content`.
type Row = (i64, Option<String>, Option<String>, i64, i64, bool, String);

/// Peak resident set size of process `pid`, KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_very_long_stream_passes_with_bounded_memory_and_a_truncated_row() {
    let upstream = endless_upstream().await;
    let yaml = format!(
        "log:\n  path: ${{SLUICE_TEST_DB}}\n  max_body_bytes: {LOG_MAX}\n{}",
        support::one_deployment(&upstream)
    );
    let mut s = Replica::start(&yaml, &[]);
    let pid = s.pid();
    let before = peak_rss_kib(pid);
    let t = std::time::Instant::now();

    // Whole: every chunk, then the finish chunk, the usage chunk and [DONE].
    let whole = stream(&s.base, "hi").await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.text_chunks, CHUNKS);
    assert_eq!(whole.tail.len(), 3, "{:?}", whole.tail);
    let fin: Value = serde_json::from_str(&whole.tail[0]).unwrap();
    assert_eq!(fin["choices"][0]["finish_reason"], "length");
    let usage: Value = serde_json::from_str(&whole.tail[1]).unwrap();
    assert_eq!(usage["usage"]["completion_tokens"], 777);
    assert_eq!(whole.tail[2], "[DONE]");

    // Broken off after 32 MiB: every chunk sent, then one error event naming the deployment,
    // no [DONE].
    let cut = stream(&s.base, "cut").await;
    assert_eq!(cut.status, 200);
    assert_eq!(cut.text_chunks, CUT_AFTER);
    assert_eq!(cut.tail.len(), 1, "{:?}", cut.tail);
    let e: Value = serde_json::from_str(&cut.tail[0]).unwrap();
    assert_eq!(e["error"]["code"], "upstream_error", "{e}");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(msg.starts_with("deployment `up`: "), "{msg}");

    let peak = peak_rss_kib(pid);
    eprintln!(
        "peak RSS {peak} KiB (at start {before} KiB), {:?}",
        t.elapsed()
    );
    s.stop();
    assert!(
        peak < PEAK_KIB,
        "Sluice's peak RSS {peak} KiB (at start: {before} KiB), bound {PEAK_KIB} KiB"
    );

    // The rows: the first 1 MiB of text and the marker; the end of the stream kept.
    let db = rusqlite::Connection::open(&s.db).unwrap();
    let rows: Vec<Row> = db
        .prepare(
            "SELECT status, error_type, finish_reason, prompt_tokens, completion_tokens, \
             usage_estimated, response_content FROM requests ORDER BY seq",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 2);
    let kept = format!("{}{MARKER}", "x".repeat(LOG_MAX));
    let (status, error, finish, prompt, completion, estimated, content) = &rows[0];
    assert_eq!(
        (*status, error.as_deref(), finish.as_deref()),
        (200, None, Some("length"))
    );
    assert_eq!((*prompt, *completion, *estimated), (5, 777, false));
    assert!(*content == kept, "{} bytes", content.len());
    // The broken stream: no usage from the upstream, so the estimate counts all 32 MiB of
    // text it sent (one token per 4 bytes), not the 1 MiB kept.
    let (status, error, _, _, completion, estimated, content) = &rows[1];
    assert_eq!((*status, error.as_deref()), (502, Some("server_error")));
    assert_eq!(
        (*completion, *estimated),
        ((CUT_AFTER * TEXT / 4) as i64, true)
    );
    assert!(*content == kept, "{} bytes", content.len());
}

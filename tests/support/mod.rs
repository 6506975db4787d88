//! Test harness: mock upstreams on 127.0.0.1 that record what they receive and count calls,
//! and an in-process Sluice on an ephemeral port.
#![allow(dead_code)]

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// What a mock received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
    /// The exact bytes of the body.
    pub raw: Bytes,
}

/// What a mock answers.
pub enum MockReply {
    /// Status + JSON (or any) body.
    Json(u16, Value),
    /// Status + raw text body.
    Text(u16, &'static str),
    /// Status + extra response headers + JSON body.
    JsonWithHeaders(u16, Vec<(&'static str, String)>, Value),
    /// 200 text/event-stream, each item written as its own body chunk.
    Sse(Vec<Bytes>),
    /// 200 with the given content type and chunks.
    Chunks(&'static str, Vec<Bytes>),
    /// 200 SSE: sends the chunks, then stays open until the client goes away; `gone` fires
    /// when the body is dropped (the upstream request was cancelled).
    SseThenHang(Vec<Bytes>, Arc<Mutex<Option<oneshot::Sender<()>>>>),
    /// Never answers (for timeouts); fires `gone` when cancelled.
    Hang,
    /// Answers status + JSON once `gate` is notified.
    JsonAfter(Arc<tokio::sync::Notify>, u16, Value),
    /// Status + extra headers + raw body bytes (e.g. a gzip body with `content-encoding`).
    Raw(u16, Vec<(&'static str, String)>, Bytes),
    /// 200 SSE with the given chunks once `gate` is notified (no byte before).
    SseAfter(Arc<tokio::sync::Notify>, Vec<Bytes>),
    /// [`MockReply::SseAfter`], then stays open as [`MockReply::SseThenHang`] does.
    SseAfterThenHang(
        Arc<tokio::sync::Notify>,
        Vec<Bytes>,
        Arc<Mutex<Option<oneshot::Sender<()>>>>,
    ),
}

type Handler = dyn Fn(&Received) -> MockReply + Send + Sync;
type MockState = (Arc<Mutex<Vec<Received>>>, Arc<Handler>);

/// A mock upstream.
#[derive(Clone)]
pub struct Mock {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Mock {
    /// Starts a mock on 127.0.0.1 answering every request with `handler`.
    pub async fn start(handler: impl Fn(&Received) -> MockReply + Send + Sync + 'static) -> Mock {
        let received = Arc::new(Mutex::new(Vec::new()));
        let state = (received.clone(), Arc::new(handler) as Arc<Handler>);
        let app = axum::Router::new().fallback(mock_handler).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Mock { addr, received }
    }

    /// `http://127.0.0.1:PORT` + `suffix`.
    pub fn url(&self, suffix: &str) -> String {
        format!("http://{}{}", self.addr, suffix)
    }

    /// Number of requests received.
    pub fn calls(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    /// Every body received, as raw bytes joined (for "never contains" checks).
    pub fn raw_bytes(&self) -> Vec<u8> {
        let got = self.received.lock().unwrap();
        got.iter().flat_map(|r| r.raw.iter().copied()).collect()
    }

    /// The last request received.
    pub fn last(&self) -> Received {
        self.received.lock().unwrap().last().cloned().unwrap()
    }
}

async fn mock_handler(
    State((received, handler)): State<MockState>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let r = Received {
        method: method.to_string(),
        path: uri.path().to_string(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: body,
    };
    let reply = handler(&r);
    received.lock().unwrap().push(r);
    match reply {
        MockReply::Json(status, v) => (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/json")],
            v.to_string(),
        )
            .into_response(),
        MockReply::Text(status, t) => (StatusCode::from_u16(status).unwrap(), t).into_response(),
        MockReply::JsonWithHeaders(status, headers, v) => {
            let mut resp = (
                StatusCode::from_u16(status).unwrap(),
                [("content-type", "application/json")],
                v.to_string(),
            )
                .into_response();
            for (k, val) in headers {
                resp.headers_mut().insert(k, val.parse().unwrap());
            }
            resp
        }
        MockReply::Sse(chunks) => stream_response("text/event-stream", chunks, None),
        MockReply::Chunks(ct, chunks) => stream_response(ct, chunks, None),
        MockReply::SseThenHang(chunks, gone) => {
            let tx = gone.lock().unwrap().take();
            stream_response("text/event-stream", chunks, tx)
        }
        MockReply::Hang => std::future::pending::<Response>().await,
        MockReply::Raw(status, headers, body) => {
            let mut resp = (StatusCode::from_u16(status).unwrap(), body).into_response();
            for (k, val) in headers {
                resp.headers_mut().insert(k, val.parse().unwrap());
            }
            resp
        }
        MockReply::SseAfter(gate, chunks) => {
            gate.notified().await;
            stream_response("text/event-stream", chunks, None)
        }
        MockReply::SseAfterThenHang(gate, chunks, gone) => {
            gate.notified().await;
            let tx = gone.lock().unwrap().take();
            stream_response("text/event-stream", chunks, tx)
        }
        MockReply::JsonAfter(gate, status, v) => {
            gate.notified().await;
            (
                StatusCode::from_u16(status).unwrap(),
                [("content-type", "application/json")],
                v.to_string(),
            )
                .into_response()
        }
    }
}

struct DropSignal(Option<oneshot::Sender<()>>);
impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

fn stream_response(
    ct: &'static str,
    chunks: Vec<Bytes>,
    hang: Option<oneshot::Sender<()>>,
) -> Response {
    let hangs = hang.is_some();
    let guard = DropSignal(hang);
    let s = futures_util::stream::unfold(
        (chunks.into_iter(), guard, hangs),
        |(mut it, guard, hangs)| async move {
            match it.next() {
                Some(c) => {
                    // Yield to the runtime so each chunk is written on its own.
                    tokio::task::yield_now().await;
                    Some((Ok::<Bytes, std::io::Error>(c), (it, guard, hangs)))
                }
                None if hangs => {
                    let _keep = guard;
                    std::future::pending::<()>().await;
                    None
                }
                None => None,
            }
        },
    );
    ([("content-type", ct)], Body::from_stream(s)).into_response()
}

/// SSE frame for a JSON value.
pub fn sse(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

/// The `data: [DONE]` frame.
pub fn done() -> Bytes {
    Bytes::from_static(b"data: [DONE]\n\n")
}

/// A running Sluice.
pub struct Sluice {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Sluice {
    /// Starts Sluice with the given YAML config on 127.0.0.1 (ephemeral port).
    pub async fn start(yaml: &str) -> Sluice {
        let config = sluice::config::parse("test.yaml", yaml).unwrap();
        Self::start_config(config).await
    }

    /// Starts Sluice with a parsed config.
    pub async fn start_config(config: sluice::config::Config) -> Sluice {
        Self::start_gateway(sluice::gateway::Gateway::new(config).unwrap()).await
    }

    /// Starts Sluice with the given YAML config and its request log (`log.path`) on.
    pub async fn start_logged(yaml: &str) -> Sluice {
        let config = sluice::config::parse("test.yaml", yaml).unwrap();
        Self::start_gateway(sluice::gateway::Gateway::with_request_log(config).unwrap()).await
    }

    /// Starts Sluice over a built gateway.
    pub async fn start_gateway(gateway: sluice::gateway::Gateway) -> Sluice {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(sluice::http::run(listener, gateway, async move {
            let _ = rx.await;
        }));
        Sluice {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Graceful stop; waits for the server to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }
}

/// A reqwest client for talking to Sluice.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// The body of `GET url` as text (any status), with `bearer` as the API key when given.
pub async fn get_text(url: &str, bearer: Option<&str>) -> String {
    let mut req = client().get(url);
    if let Some(key) = bearer {
        req = req.bearer_auth(key);
    }
    req.send().await.unwrap().text().await.unwrap()
}

/// Reads an SSE body into its `data:` payloads (as strings), checking every frame is whole.
/// `POST /admin/keys` with `spec`, presenting `key`: the status and the JSON answer.
pub async fn create_key(s: &Sluice, key: &str, spec: Value) -> (u16, Value) {
    let r = client()
        .post(s.url("/admin/keys"))
        .bearer_auth(key)
        .json(&spec)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

pub fn data_events(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|f| {
            assert!(f.starts_with("data: "), "frame not a data line: {f:?}");
            assert!(!f.contains('\n'), "multi-line frame: {f:?}");
            f["data: ".len()..].to_string()
        })
        .collect()
}

/// Minimal config with one openai deployment `up` at `base` and model `default` over it.
pub fn one_deployment(base: &str) -> String {
    format!(
        "deployments:\n  - name: up\n    provider: openai\n    base_url: {base}\n    model: upstream-model\nmodels:\n  - name: default\n    deployments: [up]\n"
    )
}

/// Runs `cmd` to completion and returns its output, killing it (and failing the test, naming
/// the command) if it is still running after `secs` seconds: no test can hang CI.
pub async fn output_within(mut cmd: tokio::process::Command, secs: u64) -> std::process::Output {
    cmd.kill_on_drop(true);
    let what = format!("{:?}", cmd.as_std());
    match tokio::time::timeout(std::time::Duration::from_secs(secs), cmd.output()).await {
        Ok(out) => out.unwrap_or_else(|e| panic!("{what} could not run: {e}")),
        Err(_) => panic!("{what} did not finish within {secs} s"),
    }
}

/// Reads one line from `r` on a helper thread, failing the test if none arrives within
/// `secs` seconds (a child that never prints must not hang the suite); the rest of its
/// output is read and dropped.
pub fn read_line_within(r: impl std::io::Read + Send + 'static, secs: u64) -> String {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(r);
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut reader, &mut line);
        let _ = tx.send(line);
        // Keep draining: a child that writes to a closed pipe dies of SIGPIPE.
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    rx.recv_timeout(std::time::Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("no line within {secs} s"))
}

/// POSTs `body` as JSON to Sluice's `path` (`/v1/chat/completions`, …).
pub async fn post(s: &Sluice, path: &str, body: Value) -> reqwest::Response {
    client().post(s.url(path)).json(&body).send().await.unwrap()
}

/// Asks model `default` "hi" on `/v1/chat/completions`, streamed or not.
pub async fn ask_hi(s: &Sluice, stream: bool) -> reqwest::Response {
    let body = serde_json::json!({"model":"default","stream":stream,
        "messages":[{"role":"user","content":"hi"}]});
    post(s, "/v1/chat/completions", body).await
}

/// A `chat.completion.chunk` from `upstream-model` with one choice's `delta` and
/// `finish_reason` (`Value::Null` while the stream goes on).
pub fn chunk(delta: Value, finish: Value) -> Value {
    serde_json::json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"upstream-model",
           "choices":[{"index":0,"delta":delta,"finish_reason":finish}]})
}

/// Posts `body` to `url` with the bearer `key`, and goes away (the request is cancelled) once
/// `mock` has received `calls` requests: a client that leaves before the answer.
pub async fn post_then_leave(url: String, key: &str, body: Value, mock: &Mock, calls: usize) {
    let key = key.to_string();
    let req =
        tokio::spawn(async move { client().post(url).bearer_auth(key).json(&body).send().await });
    while mock.calls() < calls {
        tokio::task::yield_now().await;
    }
    req.abort();
    assert!(req.await.unwrap_err().is_cancelled());
}

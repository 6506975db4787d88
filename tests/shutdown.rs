//! Shutdown: what is still open when `server.shutdown_grace_ms` ends is ended in its own
//! dialect — a stream with one error event (never a clean end, never a cut connection), a
//! request still waiting for its upstream with a 503 — and every one of them has its row in
//! the request log. Mocks hang after their first event, so only the grace period's end can
//! finish these requests.

#[path = "support/redis_server.rs"]
mod redis_server;
#[path = "support/replica.rs"]
mod replica;
mod support;

use replica::Replica;
use rusqlite::Connection;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::{Arc, Mutex};
use support::*;

const SHUTTING_DOWN: &str = "Sluice is shutting down: the answer was not finished when its shutdown grace period (server.shutdown_grace_ms) ended";

/// One OpenAI-compatible deployment (`default`) and one Anthropic one (`claude`), both on
/// `mock`, a grace period of 100 ms and the request log at `db`.
fn config(mock: &Mock, db: &Path) -> String {
    format!(
        "server:\n  shutdown_grace_ms: 100\ndeployments:\n  - name: up\n    provider: openai\n    base_url: {}\n    model: upstream-model\n  - name: anthropic\n    provider: anthropic\n    base_url: {}\n    model: claude-x\n    api_key: k\nmodels:\n  - name: default\n    deployments: [up]\n  - name: claude\n    deployments: [anthropic]\nlog:\n  path: {}\n  prompts: full\n",
        mock.url("/v1"),
        mock.url(""),
        db.display()
    )
}

/// A mock that sends its first event (an OpenAI chunk, or Anthropic's `message_start` on
/// `/v1/messages`) and then never another; `Hang` for requests that are not streamed.
async fn hanging_mock() -> Mock {
    let first_chunk = sse(&chunk(
        json!({"role":"assistant","content":"hi"}),
        Value::Null,
    ));
    let message_start = bytes::Bytes::from(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
    );
    Mock::start(move |r| {
        // A sender makes the mock hang after its chunks (nobody waits on the receiver).
        let gone = Arc::new(Mutex::new(Some(tokio::sync::oneshot::channel().0)));
        match (r.path.as_str(), r.body["stream"] == json!(true)) {
            (_, false) => MockReply::Hang,
            ("/v1/messages", true) => MockReply::SseThenHang(vec![message_start.clone()], gone),
            (_, true) => MockReply::SseThenHang(vec![first_chunk.clone()], gone),
        }
    })
    .await
}

/// Sends `body` to `path` (Anthropic's headers on `/v1/messages`).
async fn send(s: &Sluice, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(s.url(path))
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Waits (at most 10 s, else fails) until `n` requests have reached `mock`.
async fn calls_reach(mock: &Mock, n: usize) {
    let reached = async {
        while mock.calls() < n {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), reached)
        .await
        .unwrap_or_else(|_| panic!("{n} requests did not reach the mock"));
}

/// Reads `resp` to its end; an error (a connection cut mid-body) fails the test.
async fn rest_of(mut resp: reqwest::Response) -> String {
    let mut out = Vec::new();
    while let Some(c) = resp.chunk().await.expect("the body was cut, not ended") {
        out.extend_from_slice(&c);
    }
    String::from_utf8(out).unwrap()
}

/// (status, error_type, error_message, endpoint, stream) of every row, in order.
fn rows(db: &Path) -> Vec<(i64, String, String, String, bool)> {
    let c = Connection::open(db).unwrap();
    let mut st = c
        .prepare("SELECT status, error_type, error_message, endpoint, stream FROM requests ORDER BY endpoint, stream")
        .unwrap();
    st.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[tokio::test]
async fn what_is_open_at_the_end_of_the_grace_period_ends_in_its_dialect_with_its_row() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mock = hanging_mock().await;
    let s = Sluice::start_logged(&config(&mock, &db)).await;
    let chat = |stream| json!({"model":"default","stream":stream,"messages":[{"role":"user","content":"hi"}]});
    let messages = |model| json!({"model":model,"max_tokens":16,"stream":true,"messages":[{"role":"user","content":"hi"}]});

    // Three streams, each with its first event read, and one request waiting for its answer.
    let mut chat_stream = send(&s, "/v1/chat/completions", chat(true)).await;
    let mut bridged = send(&s, "/v1/messages", messages("default")).await;
    let mut native = send(&s, "/v1/messages", messages("claude")).await;
    let mut firsts = Vec::new();
    for r in [&mut chat_stream, &mut bridged, &mut native] {
        assert_eq!(r.status(), 200);
        firsts.push(String::from_utf8(r.chunk().await.unwrap().unwrap().to_vec()).unwrap());
    }
    let waiting = tokio::spawn({
        let url = s.url("/v1/chat/completions");
        async move { client().post(url).json(&chat(false)).send().await.unwrap() }
    });
    calls_reach(&mock, 4).await;

    let stopped = tokio::spawn(s.stop());

    // Chat: the chunk, then one error frame; no `[DONE]`.
    let chat_rest = rest_of(chat_stream).await;
    assert_eq!(
        data_events(&format!("{}{chat_rest}", firsts[0])).last().cloned(),
        Some(
            json!({"error":{"message":SHUTTING_DOWN,"type":"server_error","param":null,"code":"shutting_down"}})
                .to_string()
        )
    );
    assert!(!chat_rest.contains("[DONE]"));
    // Messages, bridged and native: Anthropic's `error` event last, no `message_stop`.
    for (first, resp) in [(&firsts[1], bridged), (&firsts[2], native)] {
        let all = format!("{first}{}", rest_of(resp).await);
        let last = all
            .trim_end()
            .rsplit("\n\n")
            .next()
            .unwrap_or_default()
            .to_string();
        let (event, data) = last.split_once('\n').unwrap();
        assert_eq!(event, "event: error", "{all}");
        let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(data["type"], "error");
        assert_eq!(data["error"]["message"], SHUTTING_DOWN);
        assert!(!all.contains("message_stop"), "{all}");
    }
    // The request still waiting: a 503 in OpenAI's envelope.
    let resp = waiting.await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"error":{"message":SHUTTING_DOWN,"type":"server_error","param":null,"code":"shutting_down"}})
    );
    stopped.await.unwrap();

    let row = |endpoint: &str, stream| {
        (
            503,
            "server_error".to_string(),
            SHUTTING_DOWN.to_string(),
            endpoint.to_string(),
            stream,
        )
    };
    assert_eq!(
        rows(&db),
        vec![
            row("chat", false),
            row("chat", true),
            row("messages", true),
            row("messages", true),
        ]
    );
}

/// A request whose client left while its upstream was still working goes on without a
/// connection (so its row has the upstream's outcome). At shutdown, when every connection is
/// already closed, it still gets the grace period, then ends like the rest, with its row.
#[tokio::test]
async fn work_whose_client_left_ends_within_the_grace_period_with_its_row() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mock = hanging_mock().await;
    let s = Sluice::start_logged(&config(&mock, &db)).await;
    let waiting = tokio::spawn({
        let url = s.url("/v1/chat/completions");
        let body = json!({"model":"default","messages":[{"role":"user","content":"hi"}]});
        async move { client().post(url).json(&body).send().await }
    });
    calls_reach(&mock, 1).await;
    waiting.abort();
    let _ = waiting.await;
    tokio::time::timeout(std::time::Duration::from_secs(10), s.stop())
        .await
        .expect("shutdown took longer than its grace period allows");
    assert_eq!(
        rows(&db),
        vec![(
            503,
            "server_error".to_string(),
            SHUTTING_DOWN.to_string(),
            "chat".to_string(),
            false
        )]
    );
}

/// Streams whose clients stopped reading (their sockets full, so no error event can be
/// written) still have their rows when the `sluice serve` process exits: once the grace period
/// and the time to write are over, the connections are dropped and each stream records how it
/// ended (shut down) before the log is drained. Four streams, so both request threads of the
/// default `per_core` runtime on two cores are likely to hold one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_whose_clients_stopped_reading_keep_their_rows_when_the_process_exits() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // 600 chunks of 16 KB each: more than every socket buffer on the way can hold.
    let big = sse(&chunk(json!({"content": "x".repeat(16_000)}), Value::Null));
    let mock = Mock::start(move |_| {
        let gone = Arc::new(Mutex::new(Some(tokio::sync::oneshot::channel().0)));
        MockReply::SseThenHang(vec![big.clone(); 600], gone)
    })
    .await;
    let yaml = format!(
        "server:\n  shutdown_grace_ms: 200\ndeployments:\n  - name: up\n    provider: openai\n    base_url: {}\n    model: upstream-model\nmodels:\n  - name: default\n    deployments: [up]\nlog:\n  path: ${{SLUICE_TEST_DB}}\n  prompts: full\n",
        mock.url("/v1")
    );
    let mut r = Replica::start(&yaml, &[]);
    let addr = r.base.trim_start_matches("http://").to_string();
    let body = json!({"model":"default","stream":true,"messages":[{"role":"user","content":"hi"}]})
        .to_string();
    let mut clients = Vec::new();
    for _ in 0..4 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut c = socket.connect(addr.parse().unwrap()).await.unwrap();
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        c.write_all(head.as_bytes()).await.unwrap();
        // The answer has begun (status line and headers); then this client reads no more.
        let mut first = [0u8; 12];
        c.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"HTTP/1.1 200");
        clients.push(c);
    }
    calls_reach(&mock, 4).await;
    let (status, r) = tokio::task::spawn_blocking(move || (r.stop(), r))
        .await
        .unwrap();
    assert!(status.is_some_and(|s| s.success()), "{}", r.stderr());
    let row = (
        503,
        "server_error".to_string(),
        SHUTTING_DOWN.to_string(),
        "chat".to_string(),
        true,
    );
    assert_eq!(rows(&r.db), vec![row; 4], "{}", r.stderr());
    drop(clients);
}

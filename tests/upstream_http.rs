//! The upstream HTTP client (`providers::http_client`) seen from a raw TCP upstream: the exact
//! request that leaves (request line, headers, body), gzip answers decompressed whole and
//! streamed in small reads, a corrupt gzip body, empty gzip error bodies, credentials in
//! `base_url`, a body that stalls after its headers (the deployment's timeout covers the whole
//! answer), and a TLS handshake that never ends (the connect timeout covers it).

mod support;

use serde_json::{Value, json};
use std::io::Write;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// What a raw upstream does with one connection: the writes of its answer, in order, and
/// whether to hold the connection open afterwards until the client closes it.
struct Answer {
    writes: Vec<Vec<u8>>,
    hold: bool,
}

/// A raw upstream on 127.0.0.1 answering every request with `answer`; the bytes of each
/// request (head and body) go to the returned receiver.
async fn raw_upstream(
    answer: impl Fn() -> Answer + Send + Sync + 'static,
) -> (String, mpsc::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel(16);
    let answer = std::sync::Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let (tx, answer) = (tx.clone(), answer.clone());
            tokio::spawn(async move {
                let request = read_request(&mut sock).await;
                let _ = tx.send(request).await;
                let a = answer();
                for w in a.writes {
                    if sock.write_all(&w).await.is_err() {
                        return;
                    }
                    let _ = sock.flush().await;
                }
                if a.hold {
                    // Until the client goes away.
                    let mut buf = [0u8; 64];
                    while matches!(sock.read(&mut buf).await, Ok(n) if n > 0) {}
                }
            });
        }
    });
    (base, rx)
}

/// Reads one request: its head, then `content-length` bytes of body.
async fn read_request(sock: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = sock.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed mid-request");
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0);
        if buf.len() >= end + 4 + len {
            return buf;
        }
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn head(status: &str, content_type: &str, extra: &str, len: Option<usize>) -> Vec<u8> {
    let len = len
        .map(|n| format!("content-length: {n}\r\n"))
        .unwrap_or_default();
    format!("HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n{extra}{len}\r\n").into_bytes()
}

/// A raw upstream answering 200 `application/json` with `body` as a gzip body.
async fn gzip_upstream(body: Vec<u8>) -> (String, mpsc::Receiver<Vec<u8>>) {
    raw_upstream(move || Answer {
        writes: vec![
            head(
                "200 OK",
                "application/json",
                "content-encoding: gzip\r\n",
                Some(body.len()),
            ),
            body.clone(),
        ],
        hold: false,
    })
    .await
}

const ANSWER: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"upstream-model","choices":[{"index":0,"message":{"role":"assistant","content":"Rivers run to the sea."},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":6,"total_tokens":11}}"#;

async fn chat(s: &Sluice, stream: bool) -> (u16, Value, String) {
    let r = ask_hi(s, stream).await;
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, v, text)
}

#[tokio::test]
async fn the_request_that_leaves_is_exact_and_a_gzip_answer_is_decompressed() {
    let body = gzip(ANSWER.as_bytes());
    let (base, mut seen) = gzip_upstream(body).await;
    let yaml =
        one_deployment(&base).replace("    model: ", "    api_key: sk-upstream\n    model: ");
    let s = Sluice::start(&yaml).await;
    let (status, v, _) = chat(&s, false).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Rivers run to the sea."
    );
    assert_eq!(v["usage"]["total_tokens"], 11);

    let request = seen.recv().await.unwrap();
    let end = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(request[..end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    assert_eq!(lines.next(), Some("POST /v1/chat/completions HTTP/1.1"));
    let mut headers: Vec<String> = lines
        .map(|l| l.to_lowercase())
        .filter(|l| !l.starts_with("x-request-id:") && !l.starts_with("traceparent:"))
        .collect();
    headers.sort();
    let sent = &request[end + 4..];
    let host = base.trim_start_matches("http://").trim_end_matches("/v1");
    assert_eq!(
        headers,
        vec![
            "accept-encoding: gzip".to_string(),
            "accept: */*".to_string(),
            "authorization: bearer sk-upstream".to_string(),
            format!("content-length: {}", sent.len()),
            "content-type: application/json".to_string(),
            format!("host: {host}"),
        ]
    );
    let sent: Value = serde_json::from_slice(sent).unwrap();
    assert_eq!(sent["model"], "upstream-model");
    assert_eq!(sent["messages"], json!([{"role":"user","content":"hi"}]));
    s.stop().await;
}

#[tokio::test]
async fn a_gzip_stream_in_small_reads_arrives_whole() {
    let mut sse = String::new();
    for word in ["Rivers", " run", " to", " the", " sea."] {
        let chunk = json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m",
            "choices":[{"index":0,"delta":{"content":word},"finish_reason":null}]});
        sse.push_str(&format!("data: {chunk}\n\n"));
    }
    let last = json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m",
        "choices":[{"index":0,"delta":{},"finish_reason":"stop"}]});
    sse.push_str(&format!("data: {last}\n\ndata: [DONE]\n\n"));
    // Two gzip members, written 7 bytes at a time in chunked transfer encoding.
    let half = sse.len() / 2;
    let mut body = gzip(&sse.as_bytes()[..half]);
    body.extend(gzip(&sse.as_bytes()[half..]));
    let mut writes = vec![head(
        "200 OK",
        "text/event-stream",
        "content-encoding: gzip\r\ntransfer-encoding: chunked\r\n",
        None,
    )];
    for piece in body.chunks(7) {
        let mut w = format!("{:x}\r\n", piece.len()).into_bytes();
        w.extend_from_slice(piece);
        w.extend_from_slice(b"\r\n");
        writes.push(w);
    }
    writes.push(b"0\r\n\r\n".to_vec());
    let (base, _seen) = raw_upstream(move || Answer {
        writes: writes.clone(),
        hold: false,
    })
    .await;
    let s = Sluice::start(&one_deployment(&base)).await;
    let (status, _, text) = chat(&s, true).await;
    assert_eq!(status, 200);
    let words: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert_eq!(words, "Rivers run to the sea.");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    s.stop().await;
}

#[tokio::test]
async fn a_corrupt_gzip_body_is_a_502_naming_the_deployment() {
    let mut body = gzip(ANSWER.as_bytes());
    // Flip a byte of the deflate data.
    body[20] ^= 0xff;
    let (base, _seen) = gzip_upstream(body).await;
    let s = Sluice::start(&one_deployment(&base)).await;
    let (status, v, _) = chat(&s, false).await;
    assert_eq!(status, 502, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("deployment `up`: response body could not be read ("),
        "{message}"
    );
    s.stop().await;
}

#[tokio::test]
async fn an_error_answer_with_an_empty_gzip_body_keeps_its_status() {
    // Empty with a length, and empty in chunked framing (its end arrives after the headers).
    let framings: [(&str, Option<usize>, &[u8]); 2] = [
        ("retry-after: 7\r\n", Some(0), b""),
        ("transfer-encoding: chunked\r\n", None, b"0\r\n\r\n"),
    ];
    for (extra, len, body) in framings {
        let (base, _seen) = raw_upstream(move || Answer {
            writes: vec![
                head(
                    "429 Too Many Requests",
                    "application/json",
                    &format!("content-encoding: gzip\r\n{extra}"),
                    len,
                ),
                body.to_vec(),
            ],
            hold: false,
        })
        .await;
        let s = Sluice::start(&one_deployment(&base)).await;
        let (status, v, _) = chat(&s, false).await;
        assert_eq!(status, 429, "{extra}: {v}");
        s.stop().await;
    }
}

#[tokio::test]
async fn a_tls_handshake_that_never_ends_is_bounded_by_the_connect_timeout() {
    // Accepts TCP, then says nothing: the handshake never completes. The deployment's whole
    // timeout is 10 minutes; its connect timeout (300 ms) must end the attempt.
    let (base, mut seen) = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("https://{}/v1", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel::<()>(4);
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send(()).await;
                    let mut buf = [0u8; 1024];
                    while matches!(sock.read(&mut buf).await, Ok(n) if n > 0) {}
                });
            }
        });
        (base, rx)
    };
    let yaml = one_deployment(&base).replace(
        "    model: ",
        "    connect_timeout_ms: 300\n    timeout_ms: 600000\n    model: ",
    );
    let s = Sluice::start(&yaml).await;
    let (status, v, _) = tokio::time::timeout(std::time::Duration::from_secs(5), chat(&s, false))
        .await
        .expect("no answer within 5 s");
    assert_eq!(seen.recv().await, Some(()));
    assert_eq!(status, 504, "{v}");
    assert_eq!(v["error"]["code"], "upstream_timeout", "{v}");
    s.stop().await;
}

#[tokio::test]
async fn credentials_in_the_base_url_become_a_basic_header() {
    let (base, mut seen) = raw_upstream(|| Answer {
        writes: vec![
            head("200 OK", "application/json", "", Some(ANSWER.len())),
            ANSWER.as_bytes().to_vec(),
        ],
        hold: false,
    })
    .await;
    let base = base.replace("http://", "http://user:p%40ss@");
    let s = Sluice::start(&one_deployment(&base)).await;
    let (status, v, _) = chat(&s, false).await;
    assert_eq!(status, 200, "{v}");
    let request = String::from_utf8_lossy(&seen.recv().await.unwrap()).to_string();
    // base64("user:p@ss")
    assert!(
        request.contains("\r\nauthorization: Basic dXNlcjpwQHNz\r\n"),
        "{request}"
    );
    assert!(request.starts_with("POST /v1/chat/completions HTTP/1.1\r\n"));
    assert!(!request.contains("p%40ss"), "{request}");
    s.stop().await;
}

#[tokio::test]
async fn a_body_that_stalls_after_its_headers_is_a_504_at_the_deployments_timeout() {
    let (base, _seen) = raw_upstream(|| Answer {
        // Promises 1000 bytes, sends 10, then nothing until the client leaves.
        writes: vec![
            head("200 OK", "application/json", "", Some(1000)),
            b"{\"id\":\"ch".to_vec(),
        ],
        hold: true,
    })
    .await;
    let yaml = one_deployment(&base).replace("    model: ", "    timeout_ms: 300\n    model: ");
    let s = Sluice::start(&yaml).await;
    let (status, v, _) = tokio::time::timeout(std::time::Duration::from_secs(5), chat(&s, false))
        .await
        .expect("no answer within 5 s");
    assert_eq!(status, 504, "{v}");
    assert_eq!(v["error"]["code"], "upstream_timeout", "{v}");
    s.stop().await;
}

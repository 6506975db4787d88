//! Client strings never become raw process-log text: a model name with a newline, a NUL and
//! 5,000 more characters is escaped and capped on the request's log line. Its own binary, so
//! the global tracing subscriber it installs sees every callsite from the start. And the
//! process log of a real `sluice serve`: one plain line per request, without span fields.

#[path = "support/redis_server.rs"]
mod redis_server;
#[path = "support/replica.rs"]
mod replica;
mod support;

use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use support::*;

const MASTER: &str = "sk-master-test";

fn config(mock: &Mock, db: &Path) -> String {
    format!(
        "server:\n  master_key: {MASTER}\n{}log:\n  path: {}\n",
        one_deployment(&mock.url("/v1")),
        db.display()
    )
}

fn completion() -> Value {
    json!({"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}})
}

async fn chat(s: &Sluice, key: &str, model: &str) -> u16 {
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": model, "user": model, "messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    r.bytes().await.unwrap();
    status
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test]
async fn client_strings_in_process_logs_are_escaped_and_capped() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    // The only test of this binary: a global subscriber sees every thread, and no other test
    // can register the callsites first without it.
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let mock = Mock::start(|_| MockReply::Json(200, completion())).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let s = Sluice::start_logged(&config(&mock, &db)).await;
    let evil = format!("evil\nFORGED line\u{0}{}", "y".repeat(5000));
    assert_eq!(chat(&s, MASTER, &evil).await, 404);
    s.stop().await;
    let out = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(!out.contains('\0'), "{out:?}");
    assert!(
        !out.lines().any(|l| l.starts_with("FORGED")),
        "a forged line: {out}"
    );
    let line = out
        .lines()
        .find(|l| l.contains(" request ") || l.ends_with(" request"))
        .unwrap_or_else(|| panic!("no request line: {out}"));
    assert!(line.contains("model=evil\\nFORGED line\\0yyy"), "{line}");
    assert!(!line.contains(&"y".repeat(200)), "{line}");
    assert!(line.len() < 2000, "{} bytes", line.len());
}

/// `sluice serve` at the default level (`info`), its stderr a file: each request gives exactly
/// one line with its own fields. No span fields precede it (a request's span carries about
/// twenty, for trace export; formatting them on every request cost about a third of the
/// throughput), and no colour codes are written off a terminal.
#[tokio::test]
async fn serve_logs_one_plain_line_per_request_without_span_fields() {
    let mock = Mock::start(|_| MockReply::Json(200, completion())).await;
    let yaml = format!(
        "server:\n  config_poll_ms: 0\nlog:\n  path: ${{SLUICE_TEST_DB}}\n{}",
        one_deployment(&mock.url("/v1"))
    );
    let mut r = replica::Replica::start(&yaml, &[("RUST_LOG", "info")]);
    let status = client()
        .post(r.url("/v1/chat/completions"))
        .header("x-request-id", "t-line-1")
        .json(&json!({"model": "default", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    r.stop();
    let err = r.stderr();
    assert!(!err.contains('\u{1b}'), "colour codes: {err:?}");
    assert!(!err.contains("gen_ai"), "span fields: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains(" request ")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    let want = regex::Regex::new(
        r#"^\d{4}-\d\d-\d\dT[0-9:.]+Z  INFO sluice::gateway::record: request request_id=t-line-1 model=default deployment="up" status=200 ms=\d+ prompt_tokens=1 completion_tokens=1$"#,
    )
    .unwrap();
    assert!(want.is_match(lines[0]), "{}", lines[0]);
}

/// At `debug`, a failed attempt's line names the status and error type, not the upstream's
/// text: upstreams quote the request in their errors (it carried 128 characters of it, the
/// prompt included).
#[tokio::test]
async fn a_failed_attempt_is_logged_without_the_upstreams_text() {
    let mock = Mock::start(|r: &Received| {
        MockReply::Json(
            500,
            json!({"error": {"message": format!("overloaded while reading {}", String::from_utf8_lossy(&r.raw)),
                "type": "server_error"}}),
        )
    })
    .await;
    let yaml = format!(
        "server:\n  config_poll_ms: 0\nlog:\n  path: ${{SLUICE_TEST_DB}}\n{}",
        one_deployment(&mock.url("/v1"))
    );
    let mut r = replica::Replica::start(&yaml, &[("RUST_LOG", "sluice=debug")]);
    let status = client()
        .post(r.url("/v1/chat/completions"))
        .json(&json!({"model": "default", "messages": [{"role": "user", "content": "Project Nightjar terms"}]}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 502);
    r.stop();
    let err = r.stderr();
    let line = err
        .lines()
        .find(|l| l.contains("attempt failed"))
        .unwrap_or_else(|| panic!("no attempt line: {err}"));
    assert!(
        line.contains("status=502") || line.contains("status=500"),
        "{line}"
    );
    assert!(!err.contains("Nightjar"), "{err}");
}

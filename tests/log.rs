//! The request log: one row per request of every kind, the hash chain, logging modes read
//! straight from the file, retention, and draining on shutdown. Mock upstreams and Sluice run
//! on 127.0.0.1; every database lives in a temp dir.

mod support;

use rusqlite::Connection;
use serde_json::{Value, json};
use sluice::store::chain::{self, Verdict};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use support::*;

fn completion(text: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000,
        "model": "upstream-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    })
}

fn stream_reply(parts: &[&str]) -> MockReply {
    let mut out = vec![sse(&chunk(
        json!({"role":"assistant","content":""}),
        Value::Null,
    ))];
    for p in parts {
        out.push(sse(&chunk(json!({"content": p}), Value::Null)));
    }
    out.push(sse(&chunk(json!({}), json!("stop"))));
    out.push(sse(
        &json!({"id":"c1","object":"chat.completion.chunk","created":1,
        "model":"upstream-model","choices":[],
        "usage":{"prompt_tokens":11,"completion_tokens":3,"total_tokens":14}}),
    ));
    out.push(done());
    MockReply::Sse(out)
}

fn config(mock: &Mock, db: &Path, log_extra: &str) -> String {
    format!(
        "{}log:\n  path: {}\n{log_extra}",
        one_deployment(&mock.url("/v1")),
        db.display()
    )
}

fn chat(text: &str, stream: bool) -> Value {
    json!({"model":"default","stream":stream,"messages":[{"role":"user","content":text}]})
}

async fn post(s: &Sluice, body: Value) -> reqwest::Response {
    client()
        .post(s.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// (status, stream, prompt, completion, estimated, response_content, error_type) by seq.
type Brief = (i64, bool, i64, i64, bool, Option<String>, Option<String>);

fn briefs(db: &Path) -> Vec<Brief> {
    let c = Connection::open(db).unwrap();
    let mut st = c
        .prepare("SELECT status, stream, prompt_tokens, completion_tokens, usage_estimated, response_content, error_type FROM requests ORDER BY seq")
        .unwrap();
    st.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get::<_, i64>(1)? != 0,
            r.get(2)?,
            r.get(3)?,
            r.get::<_, i64>(4)? != 0,
            r.get(5)?,
            r.get(6)?,
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn count(db: &Path) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row("SELECT count(*) FROM requests", [], |r| r.get(0))
        .unwrap()
}

fn verify(db: &Path) -> Verdict {
    chain::verify(&Connection::open(db).unwrap()).unwrap()
}

#[tokio::test]
async fn every_request_kind_gets_one_row() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let (tx, rx) = tokio::sync::oneshot::channel();
    let gone = Arc::new(Mutex::new(Some(tx)));
    let mock = Mock::start(move |r| {
        let text = r.body["messages"][0]["content"].as_str().unwrap_or("");
        match text {
            "ok" => MockReply::Json(200, completion("Hi there")),
            "bad" => MockReply::Json(
                400,
                json!({"error":{"message":"nope","type":"invalid_request_error"}}),
            ),
            "down" => MockReply::Text(500, "boom"),
            "stream" => stream_reply(&["Hel", "lo"]),
            _ => MockReply::SseThenHang(
                vec![sse(&chunk(
                    json!({"role":"assistant","content":"par"}),
                    Value::Null,
                ))],
                gone.clone(),
            ),
        }
    })
    .await;
    let s = Sluice::start_logged(&config(&mock, &db, "")).await;
    assert_eq!(post(&s, chat("ok", false)).await.status(), 200);
    assert_eq!(post(&s, chat("bad", false)).await.status(), 400);
    assert_eq!(post(&s, chat("down", false)).await.status(), 502);
    let r = post(&s, chat("stream", true)).await;
    assert!(r.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    let mut r = post(&s, chat("hang", true)).await;
    r.chunk().await.unwrap().unwrap();
    drop(r);
    tokio::time::timeout(std::time::Duration::from_secs(10), rx)
        .await
        .unwrap()
        .unwrap();
    // Unknown model: rejected by the gateway itself.
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .json(&json!({"model":"nope","messages":[{"role":"user","content":"x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    s.stop().await;

    let rows = briefs(&db);
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        rows,
        vec![
            (200, false, 5, 2, false, s("Hi there"), None),
            (400, false, 0, 0, false, s(""), s("invalid_request_error")),
            (502, false, 0, 0, false, s(""), s("server_error")),
            (200, true, 11, 3, false, s("Hello"), None),
            (499, true, 1, 1, true, s("par"), s("client_closed")),
            (404, false, 0, 0, false, s(""), s("invalid_request_error")),
        ]
    );
    let c = Connection::open(&db).unwrap();
    let (dep, model, ttft, client_ip, body): (Option<String>, String, Option<i64>, String, String) = c
        .query_row(
            "SELECT deployment, requested_model, ttft_ms, client_ip, request_body FROM requests WHERE seq = 4",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(dep.as_deref(), Some("up"));
    assert_eq!(model, "default");
    assert!(ttft.is_some());
    assert_eq!(client_ip, "127.0.0.1");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        chat("stream", true)
    );
    assert!(matches!(
        verify(&db),
        Verdict::Ok {
            rows: 6,
            head_seq: 6,
            ..
        }
    ));
}

#[tokio::test]
async fn end_user_comes_from_the_configured_header_else_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mock = Mock::start(|_| MockReply::Json(200, completion("x"))).await;
    let s = Sluice::start_logged(&config(&mock, &db, "  user_header: x-openwebui-user-id\n")).await;
    let mut body = chat("hi", false);
    body["user"] = json!("body-user");
    post(&s, body.clone()).await;
    client()
        .post(s.url("/v1/chat/completions"))
        .header("x-openwebui-user-id", "anna")
        .json(&body)
        .send()
        .await
        .unwrap();
    s.stop().await;
    let c = Connection::open(&db).unwrap();
    let users: Vec<String> = c
        .prepare("SELECT end_user FROM requests ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(users, vec!["body-user", "anna"]);
}

#[tokio::test]
async fn the_chain_detects_an_edit_a_deletion_and_a_cut_tail() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mock = Mock::start(|_| MockReply::Json(200, completion("x"))).await;
    let s = Sluice::start_logged(&config(&mock, &db, "")).await;
    for _ in 0..5 {
        post(&s, chat("hi", false)).await;
    }
    s.stop().await;
    let Verdict::Ok {
        rows,
        head_seq,
        head_hash,
        ..
    } = verify(&db)
    else {
        panic!("fresh log does not verify")
    };
    assert_eq!((rows, head_seq, head_hash.len()), (5, 5, 64));

    let edited = dir.path().join("edited.db");
    let deleted = dir.path().join("deleted.db");
    let cut = dir.path().join("cut.db");
    for p in [&edited, &deleted, &cut] {
        Connection::open(&db)
            .unwrap()
            .execute("VACUUM INTO ?1", [p.to_str().unwrap()])
            .unwrap();
    }
    Connection::open(&edited)
        .unwrap()
        .execute(
            "UPDATE requests SET completion_tokens = 1 WHERE seq = 3",
            [],
        )
        .unwrap();
    assert_eq!(
        verify(&edited),
        Verdict::Broken {
            seq: 3,
            reason: "row content does not match its row_hash (the row was changed)".into()
        }
    );
    Connection::open(&deleted)
        .unwrap()
        .execute("DELETE FROM requests WHERE seq = 2", [])
        .unwrap();
    assert_eq!(
        verify(&deleted),
        Verdict::Broken {
            seq: 3,
            reason: "rows 2..2 are missing".into()
        }
    );
    Connection::open(&cut)
        .unwrap()
        .execute("DELETE FROM requests WHERE seq = 5", [])
        .unwrap();
    assert!(matches!(verify(&cut), Verdict::Broken { seq: 5, .. }));
}

/// Every byte of the database, its WAL and shared-memory files.
fn file_bytes(db: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        if let Ok(b) = std::fs::read(&p) {
            all.extend(b);
        }
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

const PROMPT: &str = "Prompt-7731 write to anna.berg@example.com";
const ANSWER: &str = "Answer-5519 mailed anna.berg@example.com";

async fn run_mode(mode: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mock = Mock::start(|r| {
        if r.body["stream"] == json!(true) {
            stream_reply(&["Answer-5519 ", "mailed anna.berg@example.com"])
        } else {
            MockReply::Json(200, completion(ANSWER))
        }
    })
    .await;
    let s = Sluice::start_logged(&config(&mock, &db, &format!("  prompts: {mode}\n"))).await;
    assert_eq!(post(&s, chat(PROMPT, false)).await.status(), 200);
    let r = post(&s, chat(PROMPT, true)).await;
    r.text().await.unwrap();
    s.stop().await;
    (dir, db)
}

#[tokio::test]
async fn full_mode_keeps_prompt_and_answer() {
    let (_dir, db) = run_mode("full").await;
    let c = Connection::open(&db).unwrap();
    let (body, content, mode): (String, String, String) = c
        .query_row(
            "SELECT request_body, response_content, log_mode FROM requests WHERE seq = 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        chat(PROMPT, true)
    );
    assert_eq!(content, ANSWER);
    assert_eq!(mode, "full");
}

#[tokio::test]
async fn redacted_mode_keeps_text_without_pii() {
    let (_dir, db) = run_mode("redacted").await;
    let c = Connection::open(&db).unwrap();
    let (body, content): (String, String) = c
        .query_row(
            "SELECT request_body, response_content FROM requests WHERE seq = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        chat("Prompt-7731 write to [EMAIL]", false)
    );
    assert_eq!(content, "Answer-5519 mailed [EMAIL]");
    drop(c);
    let bytes = file_bytes(&db);
    assert!(contains(&bytes, "Prompt-7731"));
    assert!(!contains(&bytes, "anna.berg@example.com"));
}

#[tokio::test]
async fn metadata_mode_leaves_no_text_in_any_file() {
    let (_dir, db) = run_mode("metadata").await;
    assert_eq!(count(&db), 2);
    let bytes = file_bytes(&db);
    assert!(contains(&bytes, "upstream-model"));
    for needle in ["Prompt-7731", "Answer-5519", "anna.berg", "mailed"] {
        assert!(!contains(&bytes, needle), "{needle} found in the log files");
    }
    let c = Connection::open(&db).unwrap();
    let (tokens, mode): (i64, String) = c
        .query_row(
            "SELECT total_tokens, log_mode FROM requests WHERE seq = 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((tokens, mode.as_str()), (14, "metadata"));
}

#[tokio::test]
async fn off_mode_writes_no_file() {
    let (_dir, db) = run_mode("off").await;
    assert!(!db.exists());
}

#[tokio::test]
async fn a_full_queue_makes_requests_wait_and_shutdown_drains_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mock = Mock::start(|r| {
        if r.body["stream"] == json!(true) {
            stream_reply(&["a", "b"])
        } else {
            MockReply::Json(200, completion("x"))
        }
    })
    .await;
    // A queue of one row: nearly every record finds it full.
    let s = Sluice::start_logged(&config(&mock, &db, "  queue_capacity: 1\n")).await;
    let n = 120;
    let mut tasks = Vec::new();
    for i in 0..n {
        let url = s.url("/v1/chat/completions");
        tasks.push(tokio::spawn(async move {
            let r = client()
                .post(url)
                .json(&chat("hi", i % 2 == 0))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.text().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    s.stop().await;
    assert_eq!(count(&db), n);
    assert!(matches!(verify(&db), Verdict::Ok { rows: 120, .. }));
}

#[tokio::test]
async fn a_policy_rejection_gets_a_row_naming_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mock = Mock::start(|_| MockReply::Json(200, completion("x"))).await;
    let policies = "policies:\n  - name: closed\n    when: {header: {x-sluice-mode: closed}}\n    action: deny\n    message: Closed today.\n";
    let s = Sluice::start_logged(&format!("{}{policies}", config(&mock, &db, ""))).await;
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .header("x-sluice-mode", "closed")
        .json(&chat("hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    s.stop().await;
    let c = Connection::open(&db).unwrap();
    let row: (i64, String, String, String) = c
        .query_row(
            "SELECT status, error_type, error_message, policies FROM requests",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        row,
        (
            403,
            "policy_error".into(),
            "Closed today.".into(),
            "[\"closed\"]".into()
        )
    );
    assert_eq!(mock.calls(), 0);
}

#[tokio::test]
async fn retention_deletes_old_rows_from_the_old_end_and_keeps_the_chain() {
    use sluice::store::record::RequestRecord;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let now = sluice::store::now_ms();
    let day = 86_400_000;
    let rec = |id: &str, started_ms: u64| {
        Box::new(RequestRecord {
            id: id.into(),
            started_ms,
            status: 200,
            ..Default::default()
        })
    };
    {
        let mut conn = sluice::store::open(&db).unwrap();
        let pii = sluice::policy::pii::Detector::new(&Default::default()).unwrap();
        let rows = vec![
            rec("old-1", now - 10 * day),
            rec("old-2", now - 9 * day),
            rec("new-1", now - day),
            rec("new-2", now),
        ];
        sluice::store::writer::write_batch(&mut conn, &rows, sluice::config::LogMode::Full, &pii)
            .unwrap();
    }
    let cfg = sluice::config::LogConfig {
        path: db.clone(),
        retention_days: Some(3),
        ..Default::default()
    };
    let log = sluice::store::writer::start(&cfg, &Default::default()).unwrap();
    // Retention runs when the writer starts, before it takes anything off the queue.
    log.flush().await;
    let c = Connection::open(&db).unwrap();
    let ids: Vec<String> = c
        .prepare("SELECT id FROM requests ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ids, ["new-1", "new-2"]);
    let st = chain::state(&c).unwrap();
    assert_eq!((st.anchor_seq, st.head_seq), (2, 4));
    assert!(matches!(
        verify(&db),
        Verdict::Ok {
            rows: 2,
            head_seq: 4,
            ..
        }
    ));
    // New rows continue the chain after the purge.
    log.send(*rec("newest", now)).await;
    log.flush().await;
    assert!(matches!(
        verify(&db),
        Verdict::Ok {
            rows: 3,
            head_seq: 5,
            ..
        }
    ));
}

#[tokio::test]
async fn sigterm_drains_the_queue_before_the_process_exits() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mock = Mock::start(|r| {
        if r.body["stream"] == json!(true) {
            stream_reply(&["a", "b"])
        } else {
            MockReply::Json(200, completion("x"))
        }
    })
    .await;
    let cfg_path = dir.path().join("sluice.yaml");
    std::fs::write(&cfg_path, config(&mock, &db, "")).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg_path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let line = read_line_within(child.stdout.take().unwrap(), 60);
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_string();
    let n = 200;
    let mut tasks = Vec::new();
    for i in 0..n {
        let url = format!("{base}/v1/chat/completions");
        tasks.push(tokio::spawn(async move {
            let r = client()
                .post(url)
                .json(&chat("hi", i % 2 == 0))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.text().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // At once: the last rows are still in the queue or the open batch.
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::task::spawn_blocking(move || child.wait().unwrap()),
    )
    .await
    .expect("sluice did not exit within 60 s of SIGTERM")
    .unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(count(&db), n);
    assert!(matches!(verify(&db), Verdict::Ok { rows: 200, .. }));
}

/// `log.prompts: redacted` covers the end user and error messages too (upstreams echo the
/// prompt in their errors), and the model the client asked for (an attacker test put an
/// address there: it was kept as is, while the error quoting it was redacted).
#[tokio::test]
async fn redacted_mode_redacts_the_end_user_and_error_messages() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mock = Mock::start(|_| {
        MockReply::Json(
            400,
            json!({"error": {"message": "bad prompt: write to anna.berg@example.com", "type": "invalid_request_error"}}),
        )
    })
    .await;
    let s = Sluice::start_logged(&config(&mock, &db, "  prompts: redacted\n")).await;
    let mut body = chat("hi", false);
    body["user"] = json!("anna.berg@example.com");
    let r = post(&s, body).await;
    assert_eq!(r.status(), 400);
    let mut body = chat("hi", false);
    body["model"] = json!("anna.berg@example.com");
    assert_eq!(post(&s, body).await.status(), 404);
    s.stop().await;
    let c = Connection::open(&db).unwrap();
    let model: String = c
        .query_row(
            "SELECT requested_model FROM requests WHERE seq = 2",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(model, "[EMAIL]");
    let row: (String, String) = c
        .query_row(
            "SELECT end_user, error_message FROM requests WHERE seq = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        row,
        (
            "[EMAIL]".to_string(),
            "bad prompt: write to [EMAIL]".to_string()
        )
    );
}

/// In `metadata` mode a row keeps no error message: an upstream that echoes the request in its
/// error (found by an attacker test: `bad request, you sent: {…"content":"confidential merger
/// terms…"}` was in the row) and a parse error that quotes a value both leave no text; the
/// status and `error_type` stay.
#[tokio::test]
async fn metadata_mode_keeps_no_error_message() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mock = Mock::start(|r: &Received| {
        MockReply::Json(
            400,
            json!({"error": {"message": format!("bad request, you sent: {}", String::from_utf8_lossy(&r.raw)),
                "type": "invalid_request_error"}}),
        )
    })
    .await;
    let s = Sluice::start_logged(&config(&mock, &db, "  prompts: metadata\n")).await;
    let r = post(
        &s,
        chat("confidential merger terms for Project Nightjar", false),
    )
    .await;
    assert_eq!(r.status(), 400);
    let mut body = chat("hi", false);
    body["messages"] = json!("Project Nightjar, as a string");
    assert_eq!(post(&s, body).await.status(), 400);
    s.stop().await;
    let c = Connection::open(&db).unwrap();
    let rows: Vec<(u16, String, Option<String>)> = c
        .prepare("SELECT status, error_type, error_message FROM requests ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        vec![
            (400, "invalid_request_error".to_string(), None),
            (400, "invalid_request_error".to_string(), None),
        ]
    );
    drop(c);
    let file = std::fs::read(&db).unwrap();
    assert!(!String::from_utf8_lossy(&file).contains("Nightjar"));
}

/// A client that stops sending mid-body (a `content-length` of 60, then 10 bytes and the end of
/// its side of the connection) is recorded as 499 `client_closed`, "the request body is
/// incomplete", not as a 413 body "larger than the limit"; a body really over the limit still
/// is a 413.
#[tokio::test]
async fn a_body_cut_short_is_a_client_close_not_a_size_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mock = Mock::start(|_| MockReply::Json(200, completion("x"))).await;
    let yaml = format!(
        "server:\n  max_body_bytes: 1000\n{}",
        config(&mock, &db, "")
    );
    let s = Sluice::start_logged(&yaml).await;
    let mut sock = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    sock.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
          x-request-id: c-partial\r\ncontent-length: 60\r\n\r\n{\"model\":",
    )
    .await
    .unwrap();
    sock.shutdown().await.unwrap();
    // The answer is written after the row is queued; the connection ends after it.
    let mut answer = Vec::new();
    sock.read_to_end(&mut answer).await.unwrap();
    let big = client()
        .post(s.url("/v1/chat/completions"))
        .header("x-request-id", "c-big")
        .header("content-type", "application/json")
        .body(vec![b' '; 1001])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    s.stop().await;
    let rows: Vec<(String, i64, String, String)> = Connection::open(&db)
        .unwrap()
        .prepare("SELECT id, status, error_type, error_message FROM requests ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [
            (
                "c-partial".to_string(),
                499,
                "client_closed".to_string(),
                "the request body is incomplete: the client closed the connection before sending all of it (error reading a body from connection)".to_string()
            ),
            (
                "c-big".to_string(),
                413,
                "invalid_request_error".to_string(),
                "Request body is larger than the limit of 1000 bytes.".to_string()
            ),
        ]
    );
    assert_eq!(mock.calls(), 0);
}

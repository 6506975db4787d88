//! Record and replay: a logged deterministic request keeps its hashes and fingerprint, and the
//! real `sluice replay` binary tells identical from different with exit codes 0 / 1 / 2.

mod support;

use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use support::*;

fn completion(text: &str) -> Value {
    json!({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"m",
           "system_fingerprint":"fp_test",
           "choices":[{"index":0,"message":{"role":"assistant","content":text},"finish_reason":"stop"}],
           "usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}})
}

fn config(mock: &Mock, db: &std::path::Path, mode: &str) -> String {
    format!(
        "deployments:
  - name: local
    provider: openai
    base_url: {}
    model: gemma
    sampling: {{deterministic: true, seed: 42}}
models:
  - name: default
    deployments: [local]
log:
  path: {}
  prompts: {mode}
",
        mock.url("/v1"),
        db.display()
    )
}

/// Sends one chat request through a logged Sluice and returns its request id.
async fn logged_request(yaml: &str) -> String {
    let s = Sluice::start_logged(yaml).await;
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .json(&json!({"model":"default","temperature":1.3,"messages":[{"role":"user","content":"2+2?"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let _ = r.text().await.unwrap();
    s.stop().await;
    id
}

async fn sluice(args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env_remove("SLUICE_CONFIG")
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn sha256(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// The response hash of a text answer that stopped (docs/reproducibility.md).
fn answer_sha(text: &str) -> String {
    sha256(&format!(
        r#"{{"content":{},"finish_reason":"stop","tool_calls":[]}}"#,
        Value::from(text)
    ))
}

#[tokio::test]
async fn the_row_keeps_hashes_and_replay_is_identical() {
    let mock = Mock::start(|_| MockReply::Json(200, completion("The answer is four."))).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let yaml = config(&mock, &db, "full");
    let cfg = dir.path().join("sluice.yaml");
    std::fs::write(&cfg, &yaml).unwrap();
    let id = logged_request(&yaml).await;
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (sampling, req_hash, resp_hash, fp): (String, String, String, String) = conn
        .query_row(
            "SELECT sampling, request_hash, response_hash, fingerprint FROM requests WHERE id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&sampling).unwrap(),
        json!({"temperature":0.0,"top_p":1.0,"top_k":1,"seed":42,"n":1,
               "presence_penalty":0.0,"frequency_penalty":0.0})
    );
    assert_eq!(resp_hash, answer_sha("The answer is four."));
    assert_eq!(fp, "fp_test");
    // The canonical effective request: sorted keys, no model/stream; the backend (provider,
    // base URL, model), deployment and endpoint.
    let canonical = format!(
        r#"{{"backend":"openai {} gemma","body":{{"frequency_penalty":0.0,"messages":[{{"content":"2+2?","role":"user"}}],"n":1,"presence_penalty":0.0,"seed":42,"temperature":0.0,"top_k":1,"top_p":1.0}},"deployment":"local","endpoint":"chat"}}"#,
        mock.url("/v1")
    );
    assert_eq!(req_hash, sha256(&canonical));
    drop(conn);

    // `show` and `/ui` say the row ran under deterministic sampling.
    let (code, out, err) = sluice(&["show", &id, "--db", db.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("\ndeterministic yes\nlog mode      full\n"),
        "{out}"
    );
    let s = Sluice::start_logged(&yaml).await;
    let page = support::get_text(&s.url(&format!("/ui/requests/{id}")), None).await;
    assert!(
        page.contains(r#"<dt>deterministic</dt><dd data-field="deterministic">yes</dd>"#),
        "{page}"
    );
    s.stop().await;

    let (code, out, err) = sluice(&[
        "replay",
        &id,
        "--config",
        cfg.to_str().unwrap(),
        "--times",
        "2",
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let h = answer_sha("The answer is four.");
    assert_eq!(
        out,
        format!("run 1: identical (response sha256 {h})\nrun 2: identical (response sha256 {h})\n")
    );
    assert_eq!(mock.calls(), 3);
    let last = mock.last().body;
    assert_eq!(last["temperature"], 0.0);
    assert_eq!(last["seed"], 42);
    assert_eq!(last["model"], "gemma");

    let report = dir.path().join("report.md");
    let (code, out, err) = sluice(&[
        "replay",
        "--since",
        "1d",
        "--db",
        db.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        std::fs::read_to_string(&report).unwrap(),
        "# Reproducibility report\n\nRows since `1d`: 1.\n\n| deployment | replayed | identical | differing | errors | fingerprints seen |\n|---|---|---|---|---|---|\n| local | 1 | 1 | 0 | 0 | fp_test |\n"
    );
}

#[tokio::test]
async fn a_different_answer_gives_exit_1_and_the_diff() {
    let n = Arc::new(AtomicUsize::new(0));
    let seen = n.clone();
    let mock = Mock::start(move |_| {
        let text = if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            "The answer is four.\nDone."
        } else {
            "The answer is 4.\nDone."
        };
        MockReply::Json(200, completion(text))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let yaml = config(&mock, &db, "redacted");
    let cfg = dir.path().join("sluice.yaml");
    std::fs::write(&cfg, &yaml).unwrap();
    let id = logged_request(&yaml).await;
    let (code, out, err) = sluice(&["replay", &id, "--config", cfg.to_str().unwrap()]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(
        out,
        format!(
            "run 1: different (logged sha256 {}, replay sha256 {})\nfirst differing token: 3\n--- logged\n+++ replay\n@@ -1,2 +1,2 @@\n-The answer is four.\n+The answer is 4.\n Done.\n\\ No newline at end of file\n",
            answer_sha("The answer is four.\nDone."),
            answer_sha("The answer is 4.\nDone.")
        )
    );
}

#[tokio::test]
async fn metadata_rows_and_unknown_ids_give_exit_2() {
    let mock = Mock::start(|_| MockReply::Json(200, completion("four"))).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let yaml = config(&mock, &db, "metadata");
    let cfg = dir.path().join("sluice.yaml");
    std::fs::write(&cfg, &yaml).unwrap();
    let id = logged_request(&yaml).await;
    let (code, out, err) = sluice(&["replay", &id, "--config", cfg.to_str().unwrap()]).await;
    assert_eq!(code, 2, "{out}");
    assert_eq!(
        err,
        format!(
            "error: request {id} was logged in `metadata` mode: its body was not kept, so it cannot be replayed (needs log.prompts full or redacted)\n"
        )
    );
    // The response hash is kept even without the text.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let h: String = conn
        .query_row(
            "SELECT response_hash FROM requests WHERE id = ?1",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(h, answer_sha("four"));
    let (code, _, err) = sluice(&["replay", "nope", "--config", cfg.to_str().unwrap()]).await;
    assert_eq!(code, 2);
    assert_eq!(err, "error: no logged request `nope`\n");
    assert_eq!(mock.calls(), 1);
}

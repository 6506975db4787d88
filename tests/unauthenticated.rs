//! Requests without a usable key leave nothing behind but one counter; client strings never
//! become metric labels (process-log text: `tests/process_log.rs`).

mod support;

use futures_util::StreamExt;
use rusqlite::Connection;
use serde_json::{Value, json};
use std::path::Path;
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

/// A random model name of about 2 KB.
fn random_model() -> String {
    hex::encode(rand::random::<[u8; 32]>()).repeat(32)
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

async fn metrics(s: &Sluice) -> String {
    support::get_text(&s.url("/metrics"), Some(MASTER)).await
}

fn rows(db: &Path) -> Vec<(String, i64)> {
    let c = Connection::open(db).unwrap();
    let mut st = c
        .prepare("SELECT requested_model, status FROM requests ORDER BY seq")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test]
async fn a_flood_of_wrong_keys_leaves_one_counter_and_no_row() {
    let mock = Mock::start(|_| MockReply::Json(200, completion())).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let s = Sluice::start_logged(&config(&mock, &db)).await;
    assert_eq!(chat(&s, MASTER, "default").await, 200);
    let before = metrics(&s).await;
    let statuses: Vec<u16> = futures_util::stream::iter(0..1000)
        .map(|_| {
            let (s, model) = (&s, random_model());
            async move { chat(s, "sk-wrong", &model).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert_eq!(statuses, vec![401; 1000]);
    let after = metrics(&s).await;
    assert!(
        after.contains("\nsluice_unauthenticated_total 1000\n"),
        "{after}"
    );
    let ratio = after.len() as f64 / before.len() as f64;
    assert!(ratio <= 1.1, "/metrics grew {ratio}x: {after}");
    assert_eq!(mock.calls(), 1);
    s.stop().await;
    assert_eq!(rows(&db), vec![("default".to_string(), 200)]);
}

/// The Messages routes refuse in Anthropic's envelope, and count the refusal like every
/// other route (they did not before the eighteenth round).
#[tokio::test]
async fn a_wrong_key_on_the_messages_route_is_counted_too() {
    let mock = Mock::start(|_| MockReply::Json(200, completion())).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let s = Sluice::start_logged(&config(&mock, &db)).await;
    for path in ["/v1/messages", "/messages", "/v1/messages/count_tokens"] {
        let r = client()
            .post(s.url(path))
            .header("x-api-key", "sk-wrong")
            .json(&json!({"model":"default","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["type"], "error", "{path}");
        assert_eq!(body["error"]["type"], "authentication_error", "{path}");
    }
    let after = metrics(&s).await;
    assert!(
        after.contains("\nsluice_unauthenticated_total 3\n"),
        "{after}"
    );
    assert_eq!(mock.calls(), 0);
    s.stop().await;
    assert_eq!(rows(&db), vec![]);
}

#[tokio::test]
async fn unknown_models_are_one_label() {
    let mock = Mock::start(|_| MockReply::Json(200, completion())).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let s = Sluice::start_logged(&config(&mock, &db)).await;
    assert_eq!(chat(&s, MASTER, "default").await, 200);
    assert_eq!(chat(&s, MASTER, "up").await, 200);
    // The first unknown name adds the `unknown` label set; later ones add nothing.
    assert_eq!(chat(&s, MASTER, &random_model()).await, 404);
    let before = metrics(&s).await;
    let names: Vec<String> = (0..50).map(|_| random_model()).collect();
    for name in &names {
        assert_eq!(chat(&s, MASTER, name).await, 404);
    }
    let after = metrics(&s).await;
    assert!(
        after.contains(
            "\nsluice_requests_total{model=\"unknown\",deployment=\"-\",status=\"404\"} 51\n"
        ),
        "{after}"
    );
    assert!(after.contains("model=\"default\",deployment=\"up\",status=\"200\"} 1\n"));
    assert!(after.contains("model=\"up\",deployment=\"up\",status=\"200\"} 1\n"));
    assert!(!after.contains(&names[0][..64]));
    let ratio = after.len() as f64 / before.len() as f64;
    assert!(ratio <= 1.1, "/metrics grew {ratio}x");
    s.stop().await;
}

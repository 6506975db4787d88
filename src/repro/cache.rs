//! The response cache for deterministic requests (config `cache: {enabled, ttl_s}`,
//! docs/reproducibility.md): a request under `deterministic: true` whose canonical request hash
//! ([`crate::repro::request_hash`]) matches a successful row of the same deployment, logged in
//! `full` mode within `ttl_s`, is answered from that row without calling the backend.
//!
//! Personal data never crosses callers through it: a request in which PII was found (kept
//! local or redacted) is not looked up, and its row (`pii_kinds` not empty) never answers
//! another request — a redacted row holds the restored answer of its own caller. A row whose
//! answer was cut at `log.max_body_bytes` ([`crate::store::record::TRUNCATED`]) never answers
//! either. A hit costs nothing (`cost_usd` 0 on its row).

use rusqlite::OptionalExtension;
use serde_json::{Value, json};
use std::path::PathBuf;

/// Looks up the newest usable row for `(deployment, request_hash)` started after
/// `now - ttl_s`, and rebuilds its answer as an OpenAI chat or text completion (`chat`:
/// whether the endpoint is chat). `None` on a miss or any database error (the backend is then
/// called as usual). Runs on a blocking thread.
pub async fn lookup(
    db: PathBuf,
    deployment: String,
    request_hash: String,
    ttl_s: u64,
    chat: bool,
) -> Option<Value> {
    tokio::task::spawn_blocking(move || {
        let conn =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .ok()?;
        let since = crate::store::now_ms() as i64 - (ttl_s as i64).saturating_mul(1000);
        conn.query_row(
            "SELECT response_model, response_content, response_tool_calls, finish_reason, \
             prompt_tokens, completion_tokens FROM requests WHERE deployment = ?1 \
             AND request_hash = ?2 AND status = 200 AND log_mode = 'full' AND pii_kinds = '[]' \
             AND response_content IS NOT NULL AND started_ms >= ?3 \
             AND substr(response_content, -length(?4)) <> ?4 \
             AND instr(coalesce(response_tool_calls, ''), ?4) = 0 ORDER BY seq DESC LIMIT 1",
            rusqlite::params![
                deployment,
                request_hash,
                since,
                crate::store::record::TRUNCATED
            ],
            |r| {
                Ok(answer(
                    chat,
                    r.get::<_, Option<String>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            },
        )
        .optional()
        .ok()
        .flatten()
    })
    .await
    .ok()
    .flatten()
}

fn answer(
    chat: bool,
    model: Option<String>,
    content: String,
    tools: Option<String>,
    finish: Option<String>,
    prompt: i64,
    completion: i64,
) -> Value {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let created = crate::store::now_ms() / 1000;
    let usage = json!({"prompt_tokens": prompt, "completion_tokens": completion,
                       "total_tokens": prompt + completion});
    if !chat {
        return json!({"id": format!("cmpl-{id}"), "object": "text_completion",
            "created": created, "model": model,
            "choices": [{"index": 0, "text": content, "finish_reason": finish, "logprobs": null}],
            "usage": usage});
    }
    let calls: Vec<Value> = tools
        .and_then(|t| serde_json::from_str::<Vec<Value>>(&t).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|c| {
            json!({"id": c["id"], "type": "function",
                        "function": {"name": c["name"], "arguments": c["arguments"]}})
        })
        .collect();
    let mut message = json!({"role": "assistant",
        "content": if content.is_empty() && !calls.is_empty() { Value::Null } else { Value::from(content) }});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    json!({"id": format!("chatcmpl-{id}"), "object": "chat.completion", "created": created,
        "model": model, "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage})
}

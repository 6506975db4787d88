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

use crate::store::backend::{CacheQuery, CachedRow};
use crate::store::state_db::{CACHE_LOOKUP_WAIT, StateDb};
use serde_json::{Value, json};

/// Looks up the newest usable row for `(deployment, request_hash)` started after
/// `now - ttl_s` in the state store (the SQLite log, or PostgreSQL shared by every replica:
/// a row logged by one replica answers on another), and rebuilds its answer as an OpenAI
/// chat or text completion (`chat`: whether the endpoint is chat). Which rows may answer is
/// decided once, in [`crate::store::backend::cache_sql`]; only rows of the caller's own API
/// key (`api_key_id`; `None`: requests without one) answer. `None` on a miss, on any database
/// error, and when the store has not answered within [`CACHE_LOOKUP_WAIT`] (busy, or not
/// answering): the backend is then called as usual.
pub async fn lookup(
    db: StateDb,
    deployment: String,
    request_hash: String,
    ttl_s: u64,
    chat: bool,
    api_key_id: Option<String>,
) -> Option<Value> {
    let q = CacheQuery {
        deployment,
        request_hash,
        since_ms: crate::store::now_ms() as i64 - (ttl_s as i64).saturating_mul(1000),
        api_key_id,
    };
    match db.run(CACHE_LOOKUP_WAIT, move |s| s.cached(&q)).await {
        Ok(row) => row.map(|r| answer(chat, r)),
        Err(e) => {
            tracing::debug!(error = %e, "response cache lookup gave no answer; calling the backend");
            None
        }
    }
}

fn answer(chat: bool, row: CachedRow) -> Value {
    let CachedRow {
        model,
        content,
        tool_calls: tools,
        finish_reason: finish,
        prompt_tokens: prompt,
        completion_tokens: completion,
    } = row;
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

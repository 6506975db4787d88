//! Responses API state and response-cache lookups on PostgreSQL: the `responses` table
//! (migration 0007, the same columns as SQLite's 0004) and the cache's one query
//! ([`super::super::backend::cache_sql`]) over the shared `requests` table, so every replica
//! reads what any replica stored or logged.

use super::super::StoreError;
use super::super::backend::{CacheQuery, CachedRow, cache_sql, truncated_anywhere, truncated_tail};
use super::super::responses::{StoredResponse, parse_json_columns};
use postgres::Client;

/// Stores `r`: a new row, or in place of the same owner's row with its id; a row another
/// owner created is kept, and then this returns `false` (as SQLite's
/// [`super::super::responses::put`]).
///
/// Errors: PostgreSQL fails.
pub(super) fn put(c: &mut Client, r: &StoredResponse) -> Result<bool, StoreError> {
    let (history, input, response) = r.json_columns();
    let n = c.execute(
        "INSERT INTO responses (id, owner, created_ms, request_id, model, history, input, response)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (id) DO UPDATE SET
             created_ms = EXCLUDED.created_ms, request_id = EXCLUDED.request_id,
             model = EXCLUDED.model, history = EXCLUDED.history, input = EXCLUDED.input,
             response = EXCLUDED.response
         WHERE responses.owner = EXCLUDED.owner",
        &[
            &r.id,
            &r.owner,
            &r.created_ms,
            &r.request_id,
            &r.model,
            &history,
            &input,
            &response,
        ],
    )?;
    Ok(n > 0)
}

/// The response `id` if `owner` created it.
///
/// Errors: PostgreSQL fails, or a stored column is not JSON.
pub(super) fn get(
    c: &mut Client,
    id: &str,
    owner: &str,
) -> Result<Option<StoredResponse>, StoreError> {
    let Some(row) = c.query_opt(
        "SELECT id, owner, created_ms, request_id, model, history, input, response
         FROM responses WHERE id = $1 AND owner = $2",
        &[&id, &owner],
    )?
    else {
        return Ok(None);
    };
    let id: String = row.get(0);
    let (history, input, response) = parse_json_columns(&id, row.get(5), row.get(6), row.get(7))?;
    Ok(Some(StoredResponse {
        owner: row.get(1),
        created_ms: row.get(2),
        request_id: row.get(3),
        model: row.get(4),
        history,
        input,
        response,
        id,
    }))
}

/// Deletes the response `id` if `owner` created it; whether a row went.
///
/// Errors: PostgreSQL fails.
pub(super) fn delete(c: &mut Client, id: &str, owner: &str) -> Result<bool, StoreError> {
    let n = c.execute(
        "DELETE FROM responses WHERE id = $1 AND owner = $2",
        &[&id, &owner],
    )?;
    Ok(n > 0)
}

/// The newest row that may answer `q` (see [`cache_sql`]).
///
/// Errors: PostgreSQL fails.
pub(super) fn cached(c: &mut Client, q: &CacheQuery) -> Result<Option<CachedRow>, StoreError> {
    let row = c.query_opt(
        &cache_sql(|i| format!("${i}")),
        &[
            &q.deployment,
            &q.request_hash,
            &q.since_ms,
            &truncated_tail(),
            &truncated_anywhere(),
            &q.api_key_id,
        ],
    )?;
    Ok(row.map(|r| CachedRow {
        model: r.get(0),
        content: r.get(1),
        tool_calls: r.get(2),
        finish_reason: r.get(3),
        prompt_tokens: r.get(4),
        completion_tokens: r.get(5),
    }))
}

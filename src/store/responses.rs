//! Responses API state in the request log's database (table `responses`, migration 0004):
//! what `previous_response_id`, `GET /v1/responses/{id}`, `…/input_items` and `DELETE` read.
//!
//! A stored response belongs to the key that created it (`owner`, the key id; `""` when auth
//! is off): every read and delete names the owner, and another key's response is "not found".
//! Calls are blocking; run them off the async workers. These functions are SQLite's; the
//! gateway reaches either store through [`super::backend::LogStore`] (`put_response`,
//! `get_response`, `delete_response`), PostgreSQL's in `store::pg::state`.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::StoreError;

/// One stored response.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    /// `resp_…`.
    pub id: String,
    /// The creating key's id (`""` when auth is off).
    pub owner: String,
    /// Unix ms.
    pub created_ms: i64,
    /// The request log row of the call that made it.
    pub request_id: String,
    /// The model as the client named it.
    pub model: String,
    /// Items of the earlier turns it continues (oldest first).
    pub history: Vec<Value>,
    /// This request's input items.
    pub input: Vec<Value>,
    /// The Response object.
    pub response: Value,
}

impl StoredResponse {
    /// The `history`, `input` and `response` columns as stored: JSON text.
    pub fn json_columns(&self) -> (String, String, String) {
        (
            Value::Array(self.history.clone()).to_string(),
            Value::Array(self.input.clone()).to_string(),
            self.response.to_string(),
        )
    }

    /// The whole conversation a `previous_response_id` naming this response continues:
    /// history, input, then the response's output items.
    pub fn conversation(&self) -> Vec<Value> {
        let output = self
            .response
            .get("output")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut all = self.history.clone();
        all.extend(self.input.iter().cloned());
        all.extend(output);
        all
    }
}

/// Stores `r`: a new row, or in place of the same owner's row with its id. A row with its id
/// that another owner created is kept as it is (a backend that repeats an id must not let one
/// key overwrite another's response); then this returns `false`.
///
/// Errors: SQLite fails.
pub fn put(conn: &Connection, r: &StoredResponse) -> Result<bool, StoreError> {
    let (history, input, response) = r.json_columns();
    let n = conn.execute(
        "INSERT INTO responses
             (id, owner, created_ms, request_id, model, history, input, response)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (id) DO UPDATE SET created_ms = excluded.created_ms,
             request_id = excluded.request_id, model = excluded.model,
             history = excluded.history, input = excluded.input, response = excluded.response
         WHERE responses.owner = excluded.owner",
        params![
            r.id,
            r.owner,
            r.created_ms,
            r.request_id,
            r.model,
            history,
            input,
            response,
        ],
    )?;
    Ok(n > 0)
}

/// The response `id` if `owner` created it.
///
/// Errors: SQLite fails, or a stored column is not the JSON it should be.
pub fn get(conn: &Connection, id: &str, owner: &str) -> Result<Option<StoredResponse>, StoreError> {
    let row = conn
        .query_row(
            "SELECT id, owner, created_ms, request_id, model, history, input, response
             FROM responses WHERE id = ?1 AND owner = ?2",
            params![id, owner],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                ))
            },
        )
        .optional()?;
    let Some((id, owner, created_ms, request_id, model, history, input, response)) = row else {
        return Ok(None);
    };
    let (history, input, response) = parse_json_columns(&id, &history, &input, &response)?;
    Ok(Some(StoredResponse {
        history,
        input,
        response,
        id,
        owner,
        created_ms,
        request_id,
        model,
    }))
}

/// The `history`, `input` and `response` columns as stored (every store keeps them as JSON
/// text), read back; `id` names the response in the error.
///
/// Errors: a column is not JSON.
pub fn parse_json_columns(
    id: &str,
    history: &str,
    input: &str,
    response: &str,
) -> Result<(Vec<Value>, Vec<Value>, Value), StoreError> {
    let json = |s: &str| {
        serde_json::from_str::<Value>(s)
            .map_err(|e| StoreError::Invalid(format!("stored response {id}: {e}")))
    };
    let array = |v: Value| match v {
        Value::Array(a) => a,
        _ => Vec::new(),
    };
    Ok((array(json(history)?), array(json(input)?), json(response)?))
}

/// Deletes the response `id` if `owner` created it; whether a row went.
///
/// Errors: SQLite fails.
pub fn delete(conn: &Connection, id: &str, owner: &str) -> Result<bool, StoreError> {
    let n = conn.execute(
        "DELETE FROM responses WHERE id = ?1 AND owner = ?2",
        params![id, owner],
    )?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        super::super::migrate(&c).unwrap();
        c
    }

    fn stored(id: &str, owner: &str) -> StoredResponse {
        StoredResponse {
            id: id.into(),
            owner: owner.into(),
            created_ms: 1,
            request_id: "req-1".into(),
            model: "m".into(),
            history: vec![json!({"role":"user","content":"a"})],
            input: vec![json!({"role":"user","content":"b"})],
            response: json!({"id": id, "output": [{"type":"message","role":"assistant","content":[]}]}),
        }
    }

    #[test]
    fn only_the_owner_reads_or_deletes() {
        let c = db();
        assert!(put(&c, &stored("resp_1", "key_a")).unwrap());
        assert_eq!(get(&c, "resp_1", "key_b").unwrap(), None);
        assert!(!delete(&c, "resp_1", "key_b").unwrap());
        let got = get(&c, "resp_1", "key_a").unwrap().unwrap();
        assert_eq!(got, stored("resp_1", "key_a"));
        assert_eq!(
            got.conversation(),
            vec![
                json!({"role":"user","content":"a"}),
                json!({"role":"user","content":"b"}),
                json!({"type":"message","role":"assistant","content":[]})
            ]
        );
        assert!(delete(&c, "resp_1", "key_a").unwrap());
        assert_eq!(get(&c, "resp_1", "key_a").unwrap(), None);
    }

    #[test]
    fn another_owner_cannot_overwrite_a_response_with_the_same_id() {
        let c = db();
        assert!(put(&c, &stored("resp_fixed", "key_a")).unwrap());
        let mut theirs = stored("resp_fixed", "key_b");
        theirs.input = vec![json!({"role":"user","content":"b's text"})];
        assert!(!put(&c, &theirs).unwrap());
        assert_eq!(
            get(&c, "resp_fixed", "key_a").unwrap(),
            Some(stored("resp_fixed", "key_a"))
        );
        assert_eq!(get(&c, "resp_fixed", "key_b").unwrap(), None);
        // The owner may still store it again (replacing its own row).
        let mut again = stored("resp_fixed", "key_a");
        again.request_id = "req-2".into();
        assert!(put(&c, &again).unwrap());
        assert_eq!(get(&c, "resp_fixed", "key_a").unwrap(), Some(again));
    }
}

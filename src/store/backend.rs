//! The one interface between the log's writer and readers and its two stores: SQLite (the
//! embedded default, [`super::sqlite`]) and PostgreSQL ([`super::pg`]).
//!
//! Plain types only: rows go in as [`PreparedRow`] (values already shaped by the logging mode)
//! and come out as [`LogRow`]; keys as [`KeyRow`]; spend as [`SpendDay`]. Every method is
//! synchronous: the writer calls it on its own thread, readers on tokio's blocking pool or in
//! the CLI — never on the request runtime.

use super::StoreError;
use super::chain::{Purged, Verdict};
use super::query::{Bucket, GroupBy, LogFilter};
use super::responses::StoredResponse;
use super::row::LogRow;
use rusqlite::types::Value;
use serde_json::json;

/// One row ready to append: `values` are the hashed columns after `seq`
/// (`row::HASHED_COLUMNS[1..]`, 32 values), `repro` the columns outside the chain
/// ([`extra_columns`]: `row::REPRO_COLUMNS`, `row::ROUTE_COLUMNS`, `row::CACHE_COLUMNS`).
/// The store assigns `seq`, `prev_hash` and `row_hash`.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedRow {
    /// `id` … `response_tool_calls`, in hash order.
    pub values: Vec<Value>,
    /// `request_hash`, `response_hash`, `fingerprint`, `route`, `dropped_tools`,
    /// `deterministic`.
    pub repro: Vec<Value>,
    /// A unique id of this row (UUIDv7), outside the chain: PostgreSQL skips a row it already
    /// holds, so a batch whose commit succeeded but was not acknowledged (the server went
    /// away mid-commit), then spilled and replayed, is not written twice. Empty: no check.
    pub uid: String,
}

/// The columns written after `prev_hash` and `row_hash`, outside the chain, in order.
pub fn extra_columns() -> Vec<&'static str> {
    let mut c = super::row::REPRO_COLUMNS.to_vec();
    c.extend(super::row::ROUTE_COLUMNS);
    c.extend(super::row::CACHE_COLUMNS);
    c
}

/// Index in [`PreparedRow::values`] of a hashed column (its index in `HASHED_COLUMNS` − 1).
fn col(name: &str) -> Option<usize> {
    super::row::HASHED_COLUMNS
        .iter()
        .position(|c| *c == name)
        .and_then(|i| i.checked_sub(1))
}

impl PreparedRow {
    /// Approximate size in bytes (text lengths plus 8 per number), for the queue's byte bound.
    pub fn approx_bytes(&self) -> usize {
        self.values
            .iter()
            .chain(&self.repro)
            .map(|v| match v {
                Value::Text(t) => t.len(),
                Value::Blob(b) => b.len(),
                _ => 8,
            })
            .sum()
    }

    /// Whether this row only carries spend (a `log: off` request: `log_mode` is `off`): the
    /// store adds its cost to `spend` and writes no request row.
    pub fn is_spend_only(&self) -> bool {
        matches!(col("log_mode").and_then(|i| self.values.get(i)), Some(Value::Text(m)) if m == "off")
    }

    /// What the row cost a key: `(api_key_id, started_ms, cost_usd, remote)`, when it has a
    /// key and a positive cost.
    pub fn spend(&self) -> Option<(String, i64, f64, bool)> {
        let get = |name: &str| col(name).and_then(|i| self.values.get(i));
        let Some(Value::Text(key)) = get("api_key_id") else {
            return None;
        };
        let Some(Value::Integer(started)) = get("started_ms") else {
            return None;
        };
        let Some(Value::Real(cost)) = get("cost_usd") else {
            return None;
        };
        let remote = matches!(get("hosting"), Some(Value::Text(h)) if h == "remote");
        (*cost > 0.0).then(|| (key.clone(), *started, *cost, remote))
    }

    /// One JSON line (`{"v":[…],"r":[…]}`) for the spill file. Integers stay JSON integers
    /// and reals JSON numbers with a fraction, so [`PreparedRow::from_json`] restores the
    /// same types (and so the same hash).
    pub fn to_json(&self) -> String {
        let conv = |vs: &[Value]| -> Vec<serde_json::Value> {
            vs.iter()
                .map(|v| match v {
                    Value::Null => serde_json::Value::Null,
                    Value::Integer(i) => json!(i),
                    Value::Real(f) => json!({ "real": f }),
                    Value::Text(t) => json!(t),
                    Value::Blob(b) => json!({ "hex": hex::encode(b) }),
                })
                .collect()
        };
        json!({"v": conv(&self.values), "r": conv(&self.repro), "u": self.uid}).to_string()
    }

    /// Reads a line written by [`PreparedRow::to_json`], also by an earlier version (extra
    /// columns it did not know are NULL).
    ///
    /// Errors: not such a line, or one with more columns than this version writes.
    pub fn from_json(line: &str) -> Result<PreparedRow, StoreError> {
        let bad = |why: &str| StoreError::Invalid(format!("bad spill line: {why}"));
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
        let conv = |a: &serde_json::Value| -> Result<Vec<Value>, StoreError> {
            let items = a.as_array().ok_or_else(|| bad("not an array"))?;
            items
                .iter()
                .map(|x| match x {
                    serde_json::Value::Null => Ok(Value::Null),
                    serde_json::Value::Number(n) => {
                        n.as_i64().map(Value::Integer).ok_or_else(|| bad("number"))
                    }
                    serde_json::Value::String(s) => Ok(Value::Text(s.clone())),
                    serde_json::Value::Object(o) => {
                        if let Some(f) = o.get("real").and_then(|f| f.as_f64()) {
                            Ok(Value::Real(f))
                        } else if let Some(h) = o.get("hex").and_then(|h| h.as_str()) {
                            hex::decode(h).map(Value::Blob).map_err(|_| bad("hex"))
                        } else {
                            Err(bad("object"))
                        }
                    }
                    _ => Err(bad("value")),
                })
                .collect()
        };
        let values = conv(&v["v"])?;
        let mut repro = conv(&v["r"])?;
        // A line spilled by an earlier version lacks the extra columns added since (each
        // migration appends them at the end): they are NULL, as in the rows it wrote.
        let extra = extra_columns().len();
        if repro.len() < extra {
            repro.resize(extra, Value::Null);
        }
        if values.len() != super::row::HASHED_COLUMNS.len() - 1 || repro.len() != extra {
            return Err(bad("wrong number of columns"));
        }
        let uid = v["u"].as_str().unwrap_or_default().to_string();
        Ok(PreparedRow { values, repro, uid })
    }
}

/// What one row contributes to a usage report.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageFact {
    /// The group's value (`-` when empty; `''` without grouping).
    pub key: String,
    /// HTTP status.
    pub status: i64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Cost, USD (0 when unknown).
    pub cost_usd: f64,
    /// Duration, ms.
    pub duration_ms: u64,
    /// Served by a `hosting: local` deployment.
    pub local: bool,
}

/// A stored virtual key as the store holds it: `spec` is the key's settings as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRow {
    /// `key_…`.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// SHA-256 of the secret.
    pub hash: [u8; 32],
    /// Creation time, Unix ms.
    pub created_ms: i64,
    /// Revoked.
    pub disabled: bool,
    /// The settings (`access::auth::KeySpec`) as JSON.
    pub spec: String,
}

/// Spend of one key on one UTC day, USD.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendDay {
    /// Key id.
    pub key_id: String,
    /// Day number (Unix ms / 86 400 000).
    pub day: i64,
    /// Everything.
    pub all_usd: f64,
    /// Remote deployments only.
    pub remote_usd: f64,
}

/// Which rows `sluice replay` reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaySelect {
    /// The row with this request id (the latest when an id repeats) or, when it is a number,
    /// this `seq`.
    One(String),
    /// Successful chat/completion/bridged rows started at or after `from_ms`, newest first,
    /// of `model` when given, at most `limit`, never earlier replays (`replay-…` ids).
    Since {
        /// Unix ms.
        from_ms: i64,
        /// Requested model.
        model: Option<String>,
        /// Most rows.
        limit: u32,
    },
}

/// The columns [`LogStore::replay_rows`] returns, in order.
pub const REPLAY_COLUMNS: &str = "id, endpoint, deployment, log_mode, request_body, \
     response_content, response_tool_calls, response_hash, request_hash, fingerprint, sampling";

/// What the response cache ([`crate::repro::cache`]) asks a store for: the newest row of
/// `deployment` with `request_hash` that may answer another request, started at or after
/// `since_ms` (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheQuery {
    /// The deployment that answered.
    pub deployment: String,
    /// The canonical request hash ([`crate::repro::request_hash`]).
    pub request_hash: String,
    /// Oldest usable start, Unix ms (now − `cache.ttl_s`).
    pub since_ms: i64,
    /// The caller's API key id (`None`: no key): only that key's rows answer.
    pub api_key_id: Option<String>,
}

/// The columns of the row a cache hit is rebuilt from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedRow {
    /// `response_model`.
    pub model: Option<String>,
    /// `response_content`.
    pub content: String,
    /// `response_tool_calls` (a JSON array as text).
    pub tool_calls: Option<String>,
    /// `finish_reason`.
    pub finish_reason: Option<String>,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
}

/// The one query behind a cache lookup, for both stores (`mark(i)` writes parameter `i`:
/// `?1` on SQLite, `$1` on PostgreSQL; 1 deployment, 2 request hash, 3 `since_ms`). The
/// privacy guard lives here once: only a `full`-mode 200 row with no PII found
/// (`pii_kinds = '[]'`) and a response text may answer; a row whose request held personal
/// data (kept local or redacted) never answers another request. Parameters 4 and 5 are
/// [`truncated_tail`] and [`truncated_anywhere`]: a row whose answer or tool calls were cut
/// at `log.max_body_bytes` never answers either. Parameter 6 is the caller's API key id: a
/// row answers only its own key's requests (a hit from another key's row told that key the
/// exact prompt had been asked); compared through `coalesce`, which also keeps the planners on
/// the cache's own index rather than the key's. An answer without a finish reason (a stream
/// that ended early, no choices) never answers.
pub fn cache_sql(mark: fn(usize) -> String) -> String {
    format!(
        "SELECT response_model, response_content, response_tool_calls, finish_reason, \
         prompt_tokens, completion_tokens FROM requests WHERE deployment = {} \
         AND request_hash = {} AND deterministic = 1 AND status = 200 AND log_mode = 'full' AND pii_kinds = '[]' \
         AND response_content IS NOT NULL AND finish_reason IS NOT NULL AND started_ms >= {} \
         AND response_content NOT LIKE {} AND coalesce(response_tool_calls, '') NOT LIKE {} \
         AND coalesce(api_key_id, '') = coalesce({}, '') \
         ORDER BY seq DESC LIMIT 1",
        mark(1),
        mark(2),
        mark(3),
        mark(4),
        mark(5),
        mark(6)
    )
}

/// LIKE pattern of a text ending with the truncation marker
/// ([`crate::store::record::TRUNCATED`]); `_` in it matches itself too.
pub fn truncated_tail() -> String {
    format!("%{}", super::record::TRUNCATED)
}

/// LIKE pattern of a text holding the truncation marker anywhere.
pub fn truncated_anywhere() -> String {
    format!("%{}%", super::record::TRUNCATED)
}

/// A log store. Implemented by [`super::sqlite::SqliteStore`] and [`super::pg::PgStore`].
pub trait LogStore: Send {
    /// `sqlite` or `postgres` (for messages).
    fn backend(&self) -> &'static str;
    /// Appends `rows` in one transaction, continuing the hash chain from its head, and adds
    /// their cost to `spend`; spend-only rows ([`PreparedRow::is_spend_only`]) add their
    /// cost and leave no row. Returns the rows written.
    ///
    /// Errors: any database error; nothing is written then.
    fn append(&mut self, rows: &[PreparedRow]) -> Result<usize, StoreError>;
    /// True when [`LogStore::append`] skips rows whose [`PreparedRow::uid`] it already holds
    /// (writing a batch twice writes it once). The log writer then bounds its wait for the
    /// store (see [`super::store_thread`]). Default: false.
    fn skips_rows_it_holds(&self) -> bool {
        false
    }
    /// Deletes rows that started before `cutoff_ms` from the old end of the chain (see
    /// [`super::chain::purge_before`]).
    fn purge_before(&mut self, cutoff_ms: i64) -> Result<Purged, StoreError>;
    /// Walks the chain from the anchor to the head.
    fn verify(&mut self) -> Result<Verdict, StoreError>;
    /// Rows matching `f`, newest first.
    fn list(&mut self, f: &LogFilter) -> Result<Vec<LogRow>, StoreError>;
    /// One row by request id (latest) or by `seq`.
    fn get(&mut self, id: &str) -> Result<Option<LogRow>, StoreError>;
    /// Rows since `since_ms`, oldest first.
    fn all_since(&mut self, since_ms: Option<i64>) -> Result<Vec<LogRow>, StoreError>;
    /// One [`UsageFact`] per row since `since_ms`, keyed by `by`.
    fn usage_facts(
        &mut self,
        since_ms: Option<i64>,
        by: Option<GroupBy>,
    ) -> Result<Vec<UsageFact>, StoreError>;
    /// Requests and tokens per `bucket_ms`, model and hosting since `since_ms`, oldest first.
    fn timeline(&mut self, since_ms: i64, bucket_ms: i64) -> Result<Vec<Bucket>, StoreError>;
    /// Inserts a key; false when one with that name exists.
    fn insert_key(&mut self, k: &KeyRow) -> Result<bool, StoreError>;
    /// Every key, oldest first.
    fn keys(&mut self) -> Result<Vec<KeyRow>, StoreError>;
    /// Revokes the key with this id or name; false when there is none.
    fn revoke_key(&mut self, id_or_name: &str) -> Result<bool, StoreError>;
    /// Spend per key and day since `from_ms`, from the `spend` table (independent of the
    /// rows: `log: off` and retention do not change it).
    fn spend_since(&mut self, from_ms: i64) -> Result<Vec<SpendDay>, StoreError>;
    /// The [`REPLAY_COLUMNS`] of the rows `sel` names.
    fn replay_rows(&mut self, sel: &ReplaySelect) -> Result<Vec<Vec<Value>>, StoreError>;
    /// The `/ui` chart series of `q` (see [`super::series`]).
    fn series(
        &mut self,
        q: &super::series::SeriesQuery,
    ) -> Result<Vec<super::series::Point>, StoreError>;
    /// Stores a Responses API response: a new row, or in place of the same owner's response
    /// with its id. A response with its id that another owner created is kept, and this
    /// returns `false` (one key never overwrites another's).
    ///
    /// Errors: the store fails.
    fn put_response(&mut self, r: &StoredResponse) -> Result<bool, StoreError>;
    /// The response `id` if `owner` created it.
    ///
    /// Errors: the query fails, or a stored column is not the JSON it should be.
    fn get_response(&mut self, id: &str, owner: &str)
    -> Result<Option<StoredResponse>, StoreError>;
    /// Deletes the response `id` if `owner` created it; whether a row went.
    fn delete_response(&mut self, id: &str, owner: &str) -> Result<bool, StoreError>;
    /// The row a deterministic request may be answered from ([`cache_sql`]), if any.
    fn cached(&mut self, q: &CacheQuery) -> Result<Option<CachedRow>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line spilled before migration 0007 (five extra columns) reads with `deterministic`
    /// NULL; one with more extra columns than this version writes is refused.
    #[test]
    fn an_older_spill_line_reads_with_the_newer_columns_null() {
        let values = vec![Value::Null; 32];
        let old = PreparedRow {
            values: values.clone(),
            repro: vec![Value::Text("h".into()); 5],
            uid: "0190-b".into(),
        };
        let back = PreparedRow::from_json(&old.to_json()).unwrap();
        let mut want = vec![Value::Text("h".into()); 5];
        want.push(Value::Null);
        assert_eq!(back.repro, want);
        let newer = PreparedRow {
            values,
            repro: vec![Value::Null; 7],
            uid: "0190-c".into(),
        };
        let e = PreparedRow::from_json(&newer.to_json()).unwrap_err();
        assert!(e.to_string().contains("wrong number of columns"), "{e}");
    }

    #[test]
    fn a_spill_line_round_trips_types() {
        let mut values = vec![Value::Null; 32];
        values[0] = Value::Text("req-1".into());
        values[1] = Value::Integer(1_800_000_000_000);
        values[8] = Value::Text("remote".into());
        values[12] = Value::Text("key_a".into());
        values[24] = Value::Real(1.0);
        let row = PreparedRow {
            values,
            repro: vec![
                Value::Null,
                Value::Text("h".into()),
                Value::Null,
                Value::Text("native".into()),
                Value::Null,
                Value::Integer(1),
            ],
            uid: "0190-a".into(),
        };
        let back = PreparedRow::from_json(&row.to_json()).unwrap();
        assert_eq!(back, row);
        assert_eq!(
            back.spend(),
            Some(("key_a".to_string(), 1_800_000_000_000, 1.0, true))
        );
        assert!(PreparedRow::from_json("{\"v\":[1],\"r\":[]}").is_err());
    }
}

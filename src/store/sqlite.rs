//! The SQLite log store (the embedded default): [`LogStore`] over one `rusqlite`
//! connection to the file at `log.path`.

use super::StoreError;
use super::backend::{
    CacheQuery, CachedRow, KeyRow, LogStore, PreparedRow, REPLAY_COLUMNS, ReplaySelect, SpendDay,
    UsageFact, cache_sql,
};
use super::chain::{self, Purged, Verdict};
use super::query::{self, Bucket, GroupBy, LogFilter};
use super::responses::StoredResponse;
use super::row::{self, LogRow};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// The log in a SQLite file.
pub struct SqliteStore {
    /// The connection (WAL mode, migrated).
    pub conn: Connection,
    /// The file's identity when opened (device, inode), to notice it removed or replaced.
    file: Option<(u64, u64)>,
}

impl SqliteStore {
    /// Over an open, migrated connection.
    pub fn new(conn: Connection) -> Self {
        let file = conn.path().and_then(file_id);
        SqliteStore { conn, file }
    }

    /// Errors when the log file this store opened is no longer at its path (removed, or
    /// replaced by another file): rows written now would go to a file nobody can open again.
    fn still_there(&self) -> Result<(), StoreError> {
        let (Some(opened), Some(path)) = (self.file, self.conn.path()) else {
            return Ok(());
        };
        if file_id(path) == Some(opened) {
            return Ok(());
        }
        Err(StoreError::Io(format!(
            "the log file {path} was removed or replaced while Sluice ran; rows wait in the spill file (restart Sluice to open a log there again)"
        )))
    }
}

/// A file's (device, inode), or `None` when it cannot be read (or off Unix, or in memory).
fn file_id(path: &str) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if path.is_empty() {
            return None;
        }
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Appends `rows` on `conn` in one immediate transaction, continuing the chain, and adds
/// their cost to `spend` ([`super::spend::add`]) in the same transaction. Spend-only rows
/// (`log: off`) add their cost and leave no row. Returns the rows written.
///
/// Errors: any SQLite error (nothing is written then).
pub fn append(conn: &mut Connection, rows: &[PreparedRow]) -> Result<usize, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let head = chain::state(&tx)?;
    let mut seq = head.head_seq;
    let mut prev = head.head_hash;
    {
        let mut stmt = tx.prepare_cached(insert_sql())?;
        // One buffer for the canonical text of every row of the batch.
        let mut canonical = Vec::new();
        for r in rows.iter().filter(|r| !r.is_spend_only()) {
            seq += 1;
            canonical.clear();
            chain::write_canonical_row(seq, &r.values, &mut canonical);
            let hash = chain::row_hash(&prev, &canonical);
            // Bound by reference: the row's text is hashed and written without a copy.
            let seq_value = Value::Integer(seq);
            let (prev_value, hash_value) = (Value::Text(prev), Value::Text(hash.clone()));
            let all = std::iter::once(&seq_value)
                .chain(&r.values)
                .chain([&prev_value, &hash_value])
                .chain(&r.repro);
            stmt.execute(rusqlite::params_from_iter(all))?;
            prev = hash;
        }
    }
    let written = (seq - head.head_seq) as usize;
    chain::set_head(&tx, seq, &prev)?;
    super::spend::add(&tx, rows)?;
    tx.commit()?;
    Ok(written)
}

/// The row insert (built once: the columns are constants).
fn insert_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let extra = super::backend::extra_columns();
        let cols = format!("{}, {}", row::select_list(), extra.join(", "));
        let marks = vec!["?"; row::HASHED_COLUMNS.len() + 2 + extra.len()].join(", ");
        format!("INSERT INTO requests ({cols}) VALUES ({marks})")
    })
}

impl LogStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn append(&mut self, rows: &[PreparedRow]) -> Result<usize, StoreError> {
        self.still_there()?;
        append(&mut self.conn, rows)
    }

    fn purge_before(&mut self, cutoff_ms: i64) -> Result<Purged, StoreError> {
        chain::purge_before(&mut self.conn, cutoff_ms)
    }

    fn verify(&mut self) -> Result<Verdict, StoreError> {
        chain::verify(&self.conn)
    }

    fn list(&mut self, f: &LogFilter) -> Result<Vec<LogRow>, StoreError> {
        query::list(&self.conn, f)
    }

    fn get(&mut self, id: &str) -> Result<Option<LogRow>, StoreError> {
        query::get(&self.conn, id)
    }

    fn all_since(&mut self, since_ms: Option<i64>) -> Result<Vec<LogRow>, StoreError> {
        query::all_since(&self.conn, since_ms)
    }

    fn usage_facts(
        &mut self,
        since_ms: Option<i64>,
        by: Option<GroupBy>,
    ) -> Result<Vec<UsageFact>, StoreError> {
        query::usage_facts(&self.conn, since_ms, by)
    }

    fn timeline(&mut self, since_ms: i64, bucket_ms: i64) -> Result<Vec<Bucket>, StoreError> {
        query::timeline(&self.conn, since_ms, bucket_ms)
    }

    fn insert_key(&mut self, k: &KeyRow) -> Result<bool, StoreError> {
        let exists: bool = self.conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM api_keys WHERE name = ?1)",
            [&k.name],
            |r| r.get(0),
        )?;
        if exists {
            return Ok(false);
        }
        self.conn.execute(
            "INSERT INTO api_keys (id, name, hash, created_ms, disabled, spec) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![k.id, k.name, k.hash.to_vec(), k.created_ms, k.disabled, k.spec],
        )?;
        Ok(true)
    }

    fn keys(&mut self) -> Result<Vec<KeyRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, name, hash, created_ms, disabled, spec FROM api_keys ORDER BY created_ms, id",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let hash: Vec<u8> = r.get(2)?;
            let Ok(hash) = <[u8; 32]>::try_from(hash.as_slice()) else {
                continue;
            };
            out.push(KeyRow {
                id: r.get(0)?,
                name: r.get(1)?,
                hash,
                created_ms: r.get(3)?,
                disabled: r.get(4)?,
                spec: r.get(5)?,
            });
        }
        Ok(out)
    }

    fn revoke_key(&mut self, id_or_name: &str) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "UPDATE api_keys SET disabled = 1 WHERE id = ?1 OR name = ?1",
            [id_or_name],
        )?;
        Ok(n > 0)
    }

    fn spend_since(&mut self, from_ms: i64) -> Result<Vec<SpendDay>, StoreError> {
        super::spend::since(&self.conn, from_ms)
    }

    fn replay_rows(&mut self, sel: &ReplaySelect) -> Result<Vec<Vec<Value>>, StoreError> {
        replay_rows(&self.conn, sel)
    }

    fn series(
        &mut self,
        q: &super::series::SeriesQuery,
    ) -> Result<Vec<super::series::Point>, StoreError> {
        super::series::series(&self.conn, q)
    }

    fn put_response(&mut self, r: &StoredResponse) -> Result<bool, StoreError> {
        super::responses::put(&self.conn, r)
    }

    fn get_response(
        &mut self,
        id: &str,
        owner: &str,
    ) -> Result<Option<StoredResponse>, StoreError> {
        super::responses::get(&self.conn, id, owner)
    }

    fn delete_response(&mut self, id: &str, owner: &str) -> Result<bool, StoreError> {
        super::responses::delete(&self.conn, id, owner)
    }

    fn cached(&mut self, q: &CacheQuery) -> Result<Option<CachedRow>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &cache_sql(|i| format!("?{i}")),
                params![
                    q.deployment,
                    q.request_hash,
                    q.since_ms,
                    super::backend::truncated_tail(),
                    super::backend::truncated_anywhere(),
                    q.api_key_id
                ],
                |r| {
                    Ok(CachedRow {
                        model: r.get(0)?,
                        content: r.get(1)?,
                        tool_calls: r.get(2)?,
                        finish_reason: r.get(3)?,
                        prompt_tokens: r.get(4)?,
                        completion_tokens: r.get(5)?,
                    })
                },
            )
            .optional()?)
    }
}

fn replay_rows(conn: &Connection, sel: &ReplaySelect) -> Result<Vec<Vec<Value>>, StoreError> {
    let read = |r: &rusqlite::Row<'_>| -> rusqlite::Result<Vec<Value>> {
        (0..11).map(|i| r.get::<_, Value>(i)).collect()
    };
    match sel {
        ReplaySelect::One(id) => {
            let found = super::query::by_id_or_seq(conn, REPLAY_COLUMNS, id, read)?;
            Ok(found.into_iter().collect())
        }
        ReplaySelect::Since {
            from_ms,
            model,
            limit,
        } => {
            let sql = format!(
                "SELECT {REPLAY_COLUMNS} FROM requests WHERE started_ms >= ?1 AND status = 200 \
                 AND endpoint IN ('chat', 'text_completion', 'responses', 'messages') \
                 AND (?2 IS NULL OR requested_model = ?2) \
                 AND id NOT LIKE 'replay-%' ORDER BY seq DESC LIMIT ?3"
            );
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt
                .query_map(params![from_ms, model, limit], read)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        }
    }
}

/// The highest migration recorded in `schema_migrations` (0 for a new file).
pub fn schema_version(conn: &Connection) -> Result<i64, StoreError> {
    let v: Option<i64> = conn
        .query_row("SELECT max(version) FROM schema_migrations", [], |r| {
            r.get(0)
        })
        .optional()?
        .flatten();
    Ok(v.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogMode;
    use crate::policy::pii::Detector;
    use crate::store::record::{RequestRecord, TRUNCATED};

    fn record(id: &str, started_ms: i64, content: String, pii: &[&str]) -> RequestRecord {
        let mut r = RequestRecord {
            id: id.into(),
            started_ms: started_ms as u64,
            endpoint: "chat",
            requested_model: "m".into(),
            deployment: Some("d".into()),
            status: 200,
            request_hash: Some("h".into()),
            deterministic: true,
            pii_kinds: pii.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        r.response.content = content;
        r.response.finish_reason = Some("stop".into());
        r
    }

    /// A new log holding `records` (logged in `full` mode).
    fn store_with(records: &[RequestRecord]) -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open(&dir.path().join("log.db")).unwrap();
        let mut store = SqliteStore::new(conn);
        let pii = Detector::new(&Default::default()).unwrap();
        let rows: Vec<_> = records
            .iter()
            .map(|r| row::prepare(r, LogMode::Full, &pii).unwrap())
            .collect();
        assert_eq!(store.append(&rows).unwrap(), records.len());
        (dir, store)
    }

    /// The cache lookup of deployment `d`, request hash `h`, rows started at `since_ms` or later.
    fn cache_query(since_ms: i64) -> CacheQuery {
        CacheQuery {
            deployment: "d".into(),
            request_hash: "h".into(),
            since_ms,
            api_key_id: None,
        }
    }

    /// The cache query (shared with PostgreSQL) answers from the newest usable row only: a
    /// row whose answer was cut at `log.max_body_bytes`, or whose request held PII, or that
    /// has no finish reason (a stream that ended early, an answer without choices: found by
    /// an attacker test, served as hits for ever after), never answers, even when it is newer.
    #[test]
    fn the_cache_skips_truncated_and_pii_rows() {
        let mut unfinished = record("unfinished", 2_500, "half".into(), &[]);
        unfinished.response.finish_reason = None;
        let (_dir, mut store) = store_with(&[
            record("old", 1_000, "whole answer".into(), &[]),
            record("cut", 2_000, format!("half an ans{TRUNCATED}"), &[]),
            unfinished,
            record("pii", 3_000, "answer for one caller".into(), &["email"]),
        ]);
        let hit = store.cached(&cache_query(0)).unwrap().unwrap();
        assert_eq!(hit.content, "whole answer");
        // Only the cut, unfinished and PII rows are recent enough: no hit.
        assert_eq!(store.cached(&cache_query(1_500)).unwrap(), None);
    }

    /// Only rows logged under deterministic sampling answer the cache, and the lookup reads
    /// the partial index that holds only them (so other rows cost no random index write).
    #[test]
    fn the_cache_serves_only_deterministic_rows_through_its_partial_index() {
        let mut sampled = record("sampled", 2_000, "a sampled answer".into(), &[]);
        sampled.deterministic = false;
        let (_dir, mut store) = store_with(&[
            record("fixed", 1_000, "the deterministic answer".into(), &[]),
            sampled,
        ]);
        assert_eq!(
            store.cached(&cache_query(0)).unwrap().unwrap().content,
            "the deterministic answer"
        );
        assert_eq!(store.cached(&cache_query(1_500)).unwrap(), None);
        let in_index: i64 = store
            .conn
            .query_row(
                "SELECT count(*) FROM requests INDEXED BY requests_cache WHERE deterministic = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(in_index, 1);
        let sql = cache_sql(|i| format!("?{i}"));
        assert_uses_index(
            &store,
            &sql,
            rusqlite::params!["d", "h", 0, "x", "x", Option::<String>::None],
            "requests_cache",
        );
    }

    /// Asserts that SQLite's plan for `sql` with `params` reads `index`.
    fn assert_uses_index(
        store: &SqliteStore,
        sql: &str,
        params: &[&dyn rusqlite::ToSql],
        index: &str,
    ) {
        let plan: Vec<String> = store
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(params, |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter()
                .any(|p| p.contains(&format!("USING INDEX {index}"))),
            "{plan:?}"
        );
    }

    /// The request id has no index (migration 0008), yet every kind of id is found: Sluice's
    /// own (UUIDv7) through the minute it carries, a client's own and one whose time is off by
    /// more than that minute by reading back from the newest row, a reused one as its latest
    /// row, a number as a `seq`. The windowed lookup reads `requests_started`.
    #[test]
    fn rows_are_found_by_every_kind_of_id_without_an_id_index() {
        let v7 = "01a23bc6-967b-7000-8000-000000000000"; // 1796299200123 ms
        let t = 1_796_299_200_123;
        let (_dir, mut store) = store_with(&[
            record(v7, t + 2, "sluice's own id".into(), &[]),
            record("client-id-1", t + 5, "a client's id, first".into(), &[]),
            record(
                "0a3f9e2c-1b5d-4e6f-8a7b-9c0d1e2f3a4b",
                t + 7,
                "a v4 id".into(),
                &[],
            ),
            record("client-id-1", t + 9, "a client's id, reused".into(), &[]),
            record(
                "01a23bc6-967b-7fff-8000-000000000000",
                t + 3 * crate::store::ID_WINDOW_MS,
                "a v7 id from a skewed clock".into(),
                &[],
            ),
        ]);
        let content = |store: &mut SqliteStore, id: &str| {
            store
                .get(id)
                .unwrap()
                .map(|r| r.response_content.unwrap_or_default())
        };
        assert_eq!(content(&mut store, v7).as_deref(), Some("sluice's own id"));
        assert_eq!(
            content(&mut store, "client-id-1").as_deref(),
            Some("a client's id, reused")
        );
        assert_eq!(
            content(&mut store, "0a3f9e2c-1b5d-4e6f-8a7b-9c0d1e2f3a4b").as_deref(),
            Some("a v4 id")
        );
        assert_eq!(
            content(&mut store, "01a23bc6-967b-7fff-8000-000000000000").as_deref(),
            Some("a v7 id from a skewed clock")
        );
        assert_eq!(
            content(&mut store, "2").as_deref(),
            Some("a client's id, first")
        );
        assert_eq!(content(&mut store, "no-such-id"), None);
        assert_eq!(
            content(&mut store, "01a23bc6-967b-7000-8000-0000000000ff"),
            None
        );
        let replayed = |store: &mut SqliteStore, id: &str| {
            store
                .replay_rows(&ReplaySelect::One(id.into()))
                .unwrap()
                .len()
        };
        assert_eq!(replayed(&mut store, v7), 1);
        assert_eq!(replayed(&mut store, "client-id-1"), 1);
        assert_eq!(replayed(&mut store, "3"), 1);
        assert_eq!(replayed(&mut store, "no-such-id"), 0);

        let indexes: Vec<String> = store
            .conn
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'requests'",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(!indexes.iter().any(|i| i == "requests_id"), "{indexes:?}");
        let sql = query::by_id_in_window("seq", false);
        assert_uses_index(
            &store,
            &sql,
            rusqlite::params![v7, t - 1, t + 1],
            "requests_started",
        );
    }
}

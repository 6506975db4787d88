//! The PostgreSQL log store (`log: {backend: postgres, url: …}`): the same rows, chain,
//! keys and spend as SQLite, plus the Responses API state and the response cache's lookups
//! ([`state`]), shared by every replica.
//!
//! Built on the synchronous `postgres` client (tokio-postgres underneath, in its own small
//! runtime): the writer calls it from its own thread and readers from tokio's blocking pool,
//! exactly as they call SQLite, so one synchronous [`LogStore`] trait serves both.
//!
//! Several writers keep **one** chain: each append locks the `chain` row
//! (`SELECT … FOR UPDATE`), numbers its rows after the head, and moves the head in the same
//! transaction; `seq` stays gapless and `sluice log verify` walks one chain
//! (docs/scaling.md explains the choice and its measured cost).
//!
//! Migrations (`migrations/postgres/NNNN_name.sql`) run under an advisory lock, so replicas
//! that start together apply each once; a database migrated by a newer release is refused.

mod purge;
mod read;
pub mod session;
mod state;
pub mod tls;

pub use purge::PURGE_CHUNK;
pub use session::{APPEND_LOCK_TIMEOUT, SESSION_SETTINGS, apply_session_settings};

use super::StoreError;
use super::backend::{
    CacheQuery, CachedRow, KeyRow, LogStore, PreparedRow, ReplaySelect, SpendDay, UsageFact,
};
use super::chain::{Purged, Verdict};
use super::query::{Bucket, GroupBy, LogFilter};
use super::responses::StoredResponse;
use super::row::{self, LogRow};
use postgres::types::{ToSql, Type};
use postgres::{Client, Transaction};
use rusqlite::types::Value;
use std::time::Duration;

/// The PostgreSQL migrations, in order: (version, name, SQL).
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_requests",
        include_str!("../../../migrations/postgres/0001_requests.sql"),
    ),
    (
        2,
        "0002_keys",
        include_str!("../../../migrations/postgres/0002_keys.sql"),
    ),
    (
        3,
        "0003_reproducibility",
        include_str!("../../../migrations/postgres/0003_reproducibility.sql"),
    ),
    (
        4,
        "0004_spend",
        include_str!("../../../migrations/postgres/0004_spend.sql"),
    ),
    (
        5,
        "0005_routes",
        include_str!("../../../migrations/postgres/0005_routes.sql"),
    ),
    (
        6,
        "0006_row_uid",
        include_str!("../../../migrations/postgres/0006_row_uid.sql"),
    ),
    (
        7,
        "0007_responses",
        include_str!("../../../migrations/postgres/0007_responses.sql"),
    ),
    (
        8,
        "0008_cache_index",
        include_str!("../../../migrations/postgres/0008_cache_index.sql"),
    ),
    (
        9,
        "0009_id_index",
        include_str!("../../../migrations/postgres/0009_id_index.sql"),
    ),
    (
        10,
        "0010_spend_applied",
        include_str!("../../../migrations/postgres/0010_spend_applied.sql"),
    ),
];

/// Advisory lock key held while migrating (any constant; "sluice" in ASCII).
const MIGRATION_LOCK: i64 = 0x736c_7569_6365;
/// Rows per `INSERT` statement (40 parameters each).
const ROWS_PER_INSERT: usize = 100;
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long sent data may stay unacknowledged before the connection counts as broken.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(20);
/// The log in PostgreSQL. Reconnects on the next call after the connection broke.
pub struct PgStore {
    config: postgres::Config,
    /// TLS as `sslmode` and `sslrootcert` ask ([`tls`]).
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    client: Option<Client>,
}

impl PgStore {
    /// Connects to `url` and applies pending migrations. TLS follows the URL's `sslmode`
    /// (default `prefer`) and `sslrootcert`, as libpq's ([`tls`]).
    ///
    /// Errors: a bad URL or `sslrootcert`, the server unreachable (within 5 s), a TLS
    /// handshake or certificate check that fails, a failed migration, or a schema newer than
    /// this binary's ([`StoreError::NewerSchema`]).
    pub fn connect(url: &str) -> Result<PgStore, StoreError> {
        let (rest, check) = tls::split(url)?;
        let tls = tls::connector(&check)?;
        let mut config: postgres::Config = rest.parse().map_err(|e| {
            StoreError::Invalid(format!(
                "log.url {}: {e}",
                crate::config::log::redact_url(url)
            ))
        })?;
        if check.verify != tls::Verify::Nothing
            && config.get_ssl_mode() != postgres::config::SslMode::Require
        {
            // `split` turned every checking mode into `require`: anything else is a parse
            // it did not foresee, and a check that TLS might skip is refused.
            return Err(StoreError::Invalid(format!(
                "log.url {}: {} asked, but TLS would not be required",
                crate::config::log::redact_url(url),
                check.verify.as_str()
            )));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("sluice");
        // A server that vanished without closing the socket is noticed, not waited on: an
        // idle connection by keepalives (10 s, then 3 probes 5 s apart), one with a query
        // in flight by the kernel giving up on unacknowledged data after 20 s (instead of
        // retransmitting for about 15 minutes).
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(10));
        if config.get_keepalives_interval().is_none() {
            config.keepalives_interval(Duration::from_secs(5));
        }
        if config.get_keepalives_retries().is_none() {
            config.keepalives_retries(3);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(TCP_USER_TIMEOUT);
        }
        let mut store = PgStore {
            config,
            tls,
            client: None,
        };
        let c = store.client()?;
        migrate(c)?;
        Ok(store)
    }

    /// The connection, made again when it is missing or broken.
    fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        if self.client.is_none() {
            let mut c = self.config.connect(self.tls.clone())?;
            apply_session_settings(&mut c)?;
            self.client = Some(c);
        }
        self.client
            .as_mut()
            .ok_or_else(|| StoreError::Postgres("no connection".into()))
    }

    /// Runs `f` on the connection; drops the connection when it broke, so the next call
    /// reconnects (an error the server answered, such as a lock timeout, keeps it).
    fn with<T>(
        &mut self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let out = f(self.client()?);
        if out.is_err() && self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
        }
        out
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // The client owns a small runtime, which must not be dropped inside another one (a
        // store dropped on a tokio worker): hand it to a plain thread then.
        if let Some(c) = self.client.take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            let _ = std::thread::Builder::new()
                .name("sluice-pg-close".into())
                .spawn(move || drop(c));
        }
    }
}

/// Applies pending migrations in one transaction under an advisory lock.
///
/// Errors: a migration fails, or the database's schema is newer than [`MIGRATIONS`].
pub fn migrate(c: &mut Client) -> Result<(), StoreError> {
    let mut tx = c.transaction()?;
    // Another replica may be migrating: wait for it, however long (whatever the role's
    // lock timeout).
    tx.batch_execute("SET LOCAL lock_timeout = 0")?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_ms BIGINT NOT NULL)",
    )?;
    let found: Option<i64> = tx
        .query_one("SELECT max(version) FROM schema_migrations", &[])?
        .get(0);
    let found = found.unwrap_or(0);
    let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if found > known {
        return Err(super::newer_schema("postgres", found, known));
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > found) {
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_ms) VALUES ($1, $2, $3)",
            &[version, name, &(super::now_ms() as i64)],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// `v` as a parameter of type `ty` (NULL typed by the column).
fn param(v: &Value, ty: &Type) -> Box<dyn ToSql + Sync + Send> {
    match v {
        Value::Integer(i) if *ty == Type::FLOAT8 => Box::new(*i as f64),
        Value::Integer(i) => Box::new(*i),
        Value::Real(f) => Box::new(*f),
        Value::Text(t) => Box::new(t.clone()),
        Value::Blob(b) => Box::new(b.clone()),
        Value::Null if *ty == Type::INT8 => Box::new(None::<i64>),
        Value::Null if *ty == Type::FLOAT8 => Box::new(None::<f64>),
        Value::Null if *ty == Type::BYTEA => Box::new(None::<Vec<u8>>),
        Value::Null => Box::new(None::<String>),
    }
}

fn insert_sql(rows: usize) -> String {
    let extra = super::backend::extra_columns();
    let cols = format!("{}, {}, row_uid", row::select_list(), extra.join(", "));
    let width = row::HASHED_COLUMNS.len() + 2 + extra.len() + 1;
    let tuples: Vec<String> = (0..rows)
        .map(|r| {
            let marks: Vec<String> = (1..=width).map(|i| format!("${}", r * width + i)).collect();
            format!("({})", marks.join(", "))
        })
        .collect();
    format!("INSERT INTO requests ({cols}) VALUES {}", tuples.join(", "))
}

/// Appends `rows` after the chain's head, under the `chain` row lock, and adds their cost to
/// `spend`, in one transaction.
fn append(tx: &mut Transaction<'_>, rows: &[PreparedRow]) -> Result<usize, StoreError> {
    let head = tx.query_one(
        "SELECT head_seq, head_hash FROM chain WHERE one = 1 FOR UPDATE",
        &[],
    )?;
    let mut seq: i64 = head.get(0);
    let mut prev: String = head.get(1);
    // Rows already here (a commit that succeeded unacknowledged, then spilled) are skipped.
    let uids: Vec<&str> = rows
        .iter()
        .map(|r| r.uid.as_str())
        .filter(|u| !u.is_empty())
        .collect();
    let present: std::collections::HashSet<String> = if uids.is_empty() {
        Default::default()
    } else {
        tx.query(
            "SELECT row_uid FROM requests WHERE row_uid = ANY($1) \
             UNION ALL SELECT row_uid FROM spend_applied WHERE row_uid = ANY($1)",
            &[&uids],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    let fresh: Vec<&PreparedRow> = rows.iter().filter(|r| !present.contains(&r.uid)).collect();
    // Spend-only rows (`log: off`) add their cost below and leave no row.
    let written: Vec<&PreparedRow> = fresh
        .iter()
        .copied()
        .filter(|r| !r.is_spend_only())
        .collect();
    for chunk in written.chunks(ROWS_PER_INSERT) {
        let stmt = tx.prepare(&insert_sql(chunk.len()))?;
        let types = stmt.params().to_vec();
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::with_capacity(types.len());
        for r in chunk {
            seq += 1;
            let (values, hash) = super::chain::link(&prev, seq, r);
            for v in &values {
                let ty = types.get(params.len()).unwrap_or(&Type::TEXT);
                params.push(param(v, ty));
            }
            params.push(Box::new((!r.uid.is_empty()).then(|| r.uid.clone())));
            prev = hash;
        }
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        tx.execute(&stmt, &refs)?;
    }
    tx.execute(
        "UPDATE chain SET head_seq = $1, head_hash = $2 WHERE one = 1",
        &[&seq, &prev],
    )?;
    let spend = super::spend::per_day(fresh.iter().copied());
    for ((key, day), (all, remote)) in &spend {
        tx.execute(
            "INSERT INTO spend (api_key_id, day, all_usd, remote_usd) VALUES ($1, $2, $3, $4)
             ON CONFLICT (api_key_id, day) DO UPDATE
             SET all_usd = spend.all_usd + EXCLUDED.all_usd,
                 remote_usd = spend.remote_usd + EXCLUDED.remote_usd",
            &[key, day, all, remote],
        )?;
    }
    remember_spend_only(tx, &fresh)?;
    Ok(written.len())
}

/// How long the uids of spend-only records stay in `spend_applied`, ms: longer than a batch
/// waits in the spill file in any outage Sluice is meant to ride out.
pub const SPEND_APPLIED_KEEP_MS: u64 = 7 * 86_400_000;

/// Records the uids of the spend-only records among `fresh` (each added a cost), so a second
/// write of the same batch adds it once (see migration 0010), and forgets those older than
/// [`SPEND_APPLIED_KEEP_MS`]: uids are UUIDv7 in simple form, so time order is text order.
fn remember_spend_only(tx: &mut Transaction<'_>, fresh: &[&PreparedRow]) -> Result<(), StoreError> {
    let uids: Vec<&str> = fresh
        .iter()
        .filter(|r| r.is_spend_only() && !r.uid.is_empty())
        .map(|r| r.uid.as_str())
        .collect();
    if uids.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO spend_applied (row_uid) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
        &[&uids],
    )?;
    let horizon = super::now_ms().saturating_sub(SPEND_APPLIED_KEEP_MS);
    let oldest_kept = uuid::Builder::from_unix_timestamp_millis(horizon, &[0; 10])
        .into_uuid()
        .simple()
        .to_string();
    tx.execute(
        "DELETE FROM spend_applied WHERE row_uid < $1",
        &[&oldest_kept],
    )?;
    Ok(())
}

impl LogStore for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn append(&mut self, rows: &[PreparedRow]) -> Result<usize, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        self.with(|c| {
            let mut tx = c.transaction()?;
            tx.batch_execute(APPEND_LOCK_TIMEOUT)?;
            let n = append(&mut tx, rows)?;
            tx.commit()?;
            Ok(n)
        })
    }

    /// Rows are skipped by `row_uid` (see [`append`]).
    fn skips_rows_it_holds(&self) -> bool {
        true
    }

    fn purge_before(&mut self, cutoff_ms: i64) -> Result<Purged, StoreError> {
        self.purge_before_in_chunks(cutoff_ms, PURGE_CHUNK)
    }

    fn verify(&mut self) -> Result<Verdict, StoreError> {
        self.with(read::verify)
    }

    fn list(&mut self, f: &LogFilter) -> Result<Vec<LogRow>, StoreError> {
        self.with(|c| read::list(c, f))
    }

    fn get(&mut self, id: &str) -> Result<Option<LogRow>, StoreError> {
        self.with(|c| read::get(c, id))
    }

    fn all_since(&mut self, since_ms: Option<i64>) -> Result<Vec<LogRow>, StoreError> {
        self.with(|c| read::all_since(c, since_ms))
    }

    fn usage_facts(
        &mut self,
        since_ms: Option<i64>,
        by: Option<GroupBy>,
    ) -> Result<Vec<UsageFact>, StoreError> {
        self.with(|c| read::usage_facts(c, since_ms, by))
    }

    fn timeline(&mut self, since_ms: i64, bucket_ms: i64) -> Result<Vec<Bucket>, StoreError> {
        self.with(|c| read::timeline(c, since_ms, bucket_ms))
    }

    fn insert_key(&mut self, k: &KeyRow) -> Result<bool, StoreError> {
        self.with(|c| {
            let n = c.execute(
                "INSERT INTO api_keys (id, name, hash, created_ms, disabled, spec)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
                &[
                    &k.id,
                    &k.name,
                    &k.hash.to_vec(),
                    &k.created_ms,
                    &i64::from(k.disabled),
                    &k.spec,
                ],
            )?;
            Ok(n == 1)
        })
    }

    fn keys(&mut self) -> Result<Vec<KeyRow>, StoreError> {
        self.with(read::keys)
    }

    fn revoke_key(&mut self, id_or_name: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            let n = c.execute(
                "UPDATE api_keys SET disabled = 1 WHERE id = $1 OR name = $1",
                &[&id_or_name],
            )?;
            Ok(n > 0)
        })
    }

    fn spend_since(&mut self, from_ms: i64) -> Result<Vec<SpendDay>, StoreError> {
        self.with(|c| read::spend_since(c, from_ms))
    }

    fn replay_rows(&mut self, sel: &ReplaySelect) -> Result<Vec<Vec<Value>>, StoreError> {
        self.with(|c| read::replay_rows(c, sel))
    }

    fn series(
        &mut self,
        q: &super::series::SeriesQuery,
    ) -> Result<Vec<super::series::Point>, StoreError> {
        self.with(|c| read::series(c, q))
    }

    fn put_response(&mut self, r: &StoredResponse) -> Result<bool, StoreError> {
        self.with(|c| state::put(c, r))
    }

    fn get_response(
        &mut self,
        id: &str,
        owner: &str,
    ) -> Result<Option<StoredResponse>, StoreError> {
        self.with(|c| state::get(c, id, owner))
    }

    fn delete_response(&mut self, id: &str, owner: &str) -> Result<bool, StoreError> {
        self.with(|c| state::delete(c, id, owner))
    }

    fn cached(&mut self, q: &CacheQuery) -> Result<Option<CachedRow>, StoreError> {
        self.with(|c| state::cached(c, q))
    }
}

//! The request log: SQLite (WAL mode) behind a bounded queue and one batch writer.
//!
//! - [`open`] / [`open_existing`]: the database file (created with mode 0600), pragmas and the
//!   migrations of `migrations/NNNN_name.sql`, applied in order and recorded in
//!   `schema_migrations`.
//! - [`row`]: what one row holds, and how a [`RequestRecord`] becomes one under a logging mode.
//! - [`writer`]: the queue and the writer thread (batches of up to 500 rows or 50 ms).
//! - [`chain`]: the tamper-evident hash chain, `verify`, and purging from the old end.
//! - [`query`]: the reads behind `sluice logs/show/usage/export`, `/admin/*` and `/ui`.
//! - [`report`]: text, JSON and CSV output of the CLI.
//! - [`redact`]: PII placeholders for `log.prompts: redacted`.
//! - [`responses`]: Responses API state (`store`, `previous_response_id`).
//!
//! [`RequestRecord`]: crate::store::record::RequestRecord
//!
//! - [`backend`]: the [`LogStore`](backend::LogStore) trait between the writer and readers
//!   and the two stores, [`sqlite`] and [`pg`] (chosen by `log.backend`, opened by
//!   [`connect`]); [`spill`]: the local file batches go to while the store refuses them.
//!
//! Layer: the log store; imports `api`, `config`, `policy::pii` (log
//! redaction), `telemetry`; never `gateway` or `http`. A new log store: a writer beside
//! [`writer`] and the queries of [`query`], chosen by config.

pub mod backend;
mod batcher;
pub mod chain;
pub mod commands;
pub mod pg;
pub mod query;
pub mod record;
pub mod redact;
pub mod report;
pub mod responses;
pub mod row;
pub mod series;
pub mod spend;
pub mod spill;
pub mod sqlite;
pub mod state_db;
mod store_thread;
pub mod writer;

use rusqlite::Connection;
use std::path::Path;

/// A store error, as text for the CLI and the logs.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file could not be created or read.
    #[error("{0}")]
    Io(String),
    /// Bad input to a query (a bad `--since`, …).
    #[error("{0}")]
    Invalid(String),
    /// PostgreSQL said no (or is unreachable).
    #[error("postgres: {0}")]
    Postgres(String),
    /// A lock was not granted in time (PostgreSQL's `lock_timeout`, SQLSTATE 55P03): another
    /// session holds it. Trying again at once would wait as long again.
    #[error("postgres: {0}")]
    Busy(String),
    /// A call to the store has not answered within its bound (see
    /// [`store_thread`](self::store_thread)): the server takes packets but does not answer.
    #[error("{0}")]
    Stalled(String),
    /// The database was migrated by a newer Sluice: this one refuses to use it.
    #[error("{0}")]
    NewerSchema(String),
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        // The server's message (with its detail) when there is one, else the client's.
        match e.as_db_error() {
            Some(db) if *db.code() == postgres::error::SqlState::LOCK_NOT_AVAILABLE => {
                StoreError::Busy(format!("{} ({})", db.message(), db.code().code()))
            }
            Some(db) => StoreError::Postgres(format!("{} ({})", db.message(), db.code().code())),
            None => {
                // With its causes: "error performing TLS handshake: invalid peer
                // certificate: UnknownIssuer", not only the first part.
                let mut text = e.to_string();
                let mut cause = std::error::Error::source(&e);
                while let Some(c) = cause {
                    let part = c.to_string();
                    if !text.ends_with(&part) {
                        text = format!("{text}: {part}");
                    }
                    cause = c.source();
                }
                StoreError::Postgres(text)
            }
        }
    }
}

/// The refusal when a database's schema is newer than this binary's migrations.
pub fn newer_schema(backend: &str, found: i64, known: i64) -> StoreError {
    StoreError::NewerSchema(format!(
        "the {backend} log's schema is at version {found}, newer than this Sluice knows \
         (version {known}): a newer release migrated it. Refusing to start; upgrade this \
         replica to the release the others run"
    ))
}

/// Opens the log store `cfg` names (SQLite file or PostgreSQL), creating and migrating it.
///
/// Errors: it cannot be opened or reached, a migration fails, or its schema is newer than
/// this binary's ([`StoreError::NewerSchema`]).
pub fn connect(cfg: &crate::config::LogConfig) -> Result<Box<dyn backend::LogStore>, StoreError> {
    match cfg.backend {
        crate::config::log::LogBackend::Sqlite => {
            Ok(Box::new(sqlite::SqliteStore::new(open(&cfg.path)?)))
        }
        crate::config::log::LogBackend::Postgres => Ok(Box::new(pg::PgStore::connect(
            cfg.url.as_deref().unwrap_or(""),
        )?)),
    }
}

/// As [`connect`], but never creates a SQLite file (the CLI and the admin API's readers).
///
/// Errors: as [`connect`], and no file at `log.path`.
pub fn connect_existing(
    cfg: &crate::config::LogConfig,
) -> Result<Box<dyn backend::LogStore>, StoreError> {
    match cfg.backend {
        crate::config::log::LogBackend::Sqlite => Ok(Box::new(sqlite::SqliteStore::new(
            open_existing(&cfg.path)?,
        ))),
        crate::config::log::LogBackend::Postgres => connect(cfg),
    }
}

/// The migrations, in order: (version, name, SQL). Each runs once, in one transaction, and is
/// recorded in `schema_migrations(version, name, applied_ms)`.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_requests",
        include_str!("../../migrations/0001_requests.sql"),
    ),
    (
        2,
        "0002_keys",
        include_str!("../../migrations/0002_keys.sql"),
    ),
    (
        3,
        "0003_reproducibility",
        include_str!("../../migrations/0003_reproducibility.sql"),
    ),
    (
        4,
        "0004_responses",
        include_str!("../../migrations/0004_responses.sql"),
    ),
    (
        5,
        "0005_routes",
        include_str!("../../migrations/0005_routes.sql"),
    ),
    (
        6,
        "0006_spend",
        include_str!("../../migrations/0006_spend.sql"),
    ),
    (
        7,
        "0007_cache_index",
        include_str!("../../migrations/0007_cache_index.sql"),
    ),
    (
        8,
        "0008_id_index",
        include_str!("../../migrations/0008_id_index.sql"),
    ),
];

/// Opens (creating when missing, with mode 0600) the log at `path`, sets WAL mode and applies
/// pending migrations.
///
/// Errors: the file cannot be created or opened, or a migration fails.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    create_private(path)?;
    let conn = Connection::open(path)?;
    prepare(&conn)?;
    Ok(conn)
}

/// Opens an existing log (the CLI: never creates a file). Applies pending migrations.
///
/// Errors: no file at `path`, or it is not a Sluice log.
pub fn open_existing(path: &Path) -> Result<Connection, StoreError> {
    if !path.exists() {
        return Err(StoreError::Io(format!(
            "no request log at {} (set log.path, or pass --db FILE)",
            path.display()
        )));
    }
    let conn = Connection::open(path)?;
    prepare(&conn)?;
    Ok(conn)
}

/// Bytes per page of a new log file.
pub const PAGE_SIZE: i64 = 16 * 1024;

fn prepare(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // A new log gets 16 KiB pages (an existing one keeps its own: SQLite changes the size of
    // a file in WAL mode only by a VACUUM outside it): a row is ~850 bytes, and each page is
    // one `pwrite` into the WAL and another at the checkpoint, so bigger pages are a quarter
    // of the writer's system calls for the same bytes (issue 21: its system time per row
    // fell by a third). Set before the first write, which `journal_mode` is. The WAL is
    // checkpointed every 1,000 pages as before, so it now holds up to 16 MiB between
    // checkpoints instead of 4 MiB.
    conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // 1 MiB of page cache per connection instead of SQLite's 2 MiB: the writer appends to
    // indexes whose hot pages are few, readers scan ranges the OS caches anyway, and every
    // connection's cache is resident memory of the gateway.
    conn.pragma_update(None, "cache_size", -1024)?;
    // Purged rows are overwritten with zeros, not left in free pages.
    conn.pragma_update(None, "secure_delete", "ON")?;
    migrate(conn)
}

#[cfg(unix)]
fn create_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", dir.display())))?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map(|_| ())
        .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", path.display())))
}

#[cfg(not(unix))]
fn create_private(_path: &Path) -> Result<(), StoreError> {
    Ok(())
}

/// Applies the migrations not yet recorded in `schema_migrations`, in order.
///
/// Errors: a migration fails, or the file's schema is newer than [`MIGRATIONS`]
/// ([`StoreError::NewerSchema`]).
pub fn migrate(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms INTEGER NOT NULL)",
    )?;
    let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    let found = sqlite::schema_version(conn)?;
    if found > known {
        return Err(newer_schema("sqlite", found, known));
    }
    for (version, name, sql) in MIGRATIONS {
        let done: bool = conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = ?1)",
            [version],
            |r| r.get(0),
        )?;
        if done {
            continue;
        }
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_ms) VALUES (?1, ?2, ?3)",
            rusqlite::params![version, name, now_ms() as i64],
        )?;
        tx.commit()?;
    }
    Ok(())
}

/// How far, in ms, from the time a request id carries ([`id_time_ms`]) a lookup by that id
/// searches `started_ms` first. The id and `started_ms` are taken within the same request's
/// first microseconds; the margin covers a clock step between the two.
pub const ID_WINDOW_MS: i64 = 60_000;

/// The Unix time in ms a request id carries, when it carries one: Sluice's own ids are UUIDv7,
/// whose first 48 bits are the time they were made; a prefixed one (`replay-<uuid>`) carries
/// the time of its last 36 characters. `None` for any other id (a client's own
/// `x-request-id`, a UUIDv4).
///
/// Lookups by id use it to search one stretch of `requests_started` instead of an index on
/// the id (migration 0008), then fall back to reading every row from the newest back.
pub fn id_time_ms(id: &str) -> Option<i64> {
    let tail = id.get(id.len().checked_sub(36)?..)?;
    let uuid = uuid::Uuid::try_parse(tail).ok()?;
    if uuid.get_version() != Some(uuid::Version::SortRand) {
        return None;
    }
    let (secs, nanos) = uuid.get_timestamp()?.to_unix();
    i64::try_from(secs)
        .ok()?
        .checked_mul(1000)?
        .checked_add(i64::from(nanos / 1_000_000))
}

/// Now, Unix time in ms.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_id_carries_its_time_only_when_it_is_a_uuid_v7() {
        let before = now_ms() as i64;
        let id = uuid::Uuid::now_v7().to_string();
        let t = id_time_ms(&id).unwrap();
        assert!(
            (before..=now_ms() as i64).contains(&t),
            "{t} not in the test's time"
        );
        assert_eq!(id_time_ms(&format!("replay-{id}")), Some(t));
        // 2026-12-03T12:00:00.123Z, written by hand: 1796299200123 ms = 0x01a23bc6967b.
        assert_eq!(
            id_time_ms("01a23bc6-967b-7000-8000-000000000000"),
            Some(1_796_299_200_123)
        );
        assert_eq!(id_time_ms("0a3f9e2c-1b5d-4e6f-8a7b-9c0d1e2f3a4b"), None); // a UUIDv4
        for other in ["", "-", "req-1", "42", "ü".repeat(20).as_str()] {
            assert_eq!(id_time_ms(other), None, "{other}");
        }
    }

    #[test]
    fn a_new_log_has_16_kib_pages_and_an_old_one_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let page =
            |c: &Connection| -> i64 { c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap() };
        let new = open(&dir.path().join("new.db")).unwrap();
        assert_eq!(page(&new), 16_384);
        // An old log with 4 KiB pages and one row, in WAL mode or still in rollback mode.
        let old_log = |name: &str, wal: bool| {
            let path = dir.path().join(name);
            let c = Connection::open(&path).unwrap();
            c.pragma_update(None, "page_size", 4096).unwrap();
            if wal {
                c.pragma_update(None, "journal_mode", "WAL").unwrap();
            }
            c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
                .unwrap();
            path
        };
        for (name, wal) in [("old.db", true), ("rollback.db", false)] {
            let old = open(&old_log(name, wal)).unwrap();
            assert_eq!(page(&old), 4096, "{name}");
            let n: i64 = old
                .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap();
            assert_eq!(n, 1, "{name}");
            let mode: String = old
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal", "{name}");
        }
    }

    #[test]
    fn connections_keep_one_mebibyte_of_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("log.db")).unwrap();
        let kib: i64 = conn
            .query_row("PRAGMA cache_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kib, -1024);
    }

    #[test]
    fn creates_the_file_private_and_migrates_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/log.db");
        let conn = open(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(conn);
        let conn = open(&path).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, MIGRATIONS.len() as i64);
    }

    #[test]
    fn open_existing_refuses_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = open_existing(&dir.path().join("none.db")).unwrap_err();
        assert!(e.to_string().contains("no request log at"), "{e}");
    }
}

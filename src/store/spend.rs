//! Spend per key and UTC day in the SQLite log (`spend`, migration `0006_spend.sql`), kept
//! apart from the request rows: the writer adds each batch's cost in the batch's own
//! transaction ([`add`], called by [`super::sqlite::append`]) — rows of `log: off` keys too,
//! which reach the store as spend-only rows ([`PreparedRow::is_spend_only`]) and leave no
//! request row — and budgets read it at start-up ([`since`]). So neither `log: off` nor
//! retention (which deletes rows, never spend) resets a budget on restart. PostgreSQL keeps
//! the same table (`migrations/postgres/0004_spend.sql`).

use super::StoreError;
use super::backend::{PreparedRow, SpendDay};
use rusqlite::Connection;
use std::collections::BTreeMap;

/// Cost of `rows` per `(api_key_id, day)` (day = `started_ms / 86 400 000`), USD:
/// `(all, remote only)`. Rows without a key or a positive cost count nothing.
pub fn per_day<'a>(
    rows: impl IntoIterator<Item = &'a PreparedRow>,
) -> BTreeMap<(String, i64), (f64, f64)> {
    let mut out: BTreeMap<(String, i64), (f64, f64)> = BTreeMap::new();
    for (key, started, cost, remote) in rows.into_iter().filter_map(PreparedRow::spend) {
        let slot = out
            .entry((key, started.div_euclid(86_400_000)))
            .or_default();
        slot.0 += cost;
        if remote {
            slot.1 += cost;
        }
    }
    out
}

/// Adds the cost of `rows` to `spend` (an UPSERT per key and day) on `conn`, inside the
/// caller's transaction.
///
/// Errors: any SQLite error (the caller's transaction is then rolled back).
pub fn add(conn: &Connection, rows: &[PreparedRow]) -> Result<(), StoreError> {
    let days = per_day(rows);
    if days.is_empty() {
        return Ok(());
    }
    let mut stmt = conn.prepare_cached(
        "INSERT INTO spend (api_key_id, day, all_usd, remote_usd) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (api_key_id, day) DO UPDATE
         SET all_usd = all_usd + excluded.all_usd, remote_usd = remote_usd + excluded.remote_usd",
    )?;
    for ((key, day), (all, remote)) in &days {
        stmt.execute(rusqlite::params![key, day, all, remote])?;
    }
    Ok(())
}

/// Spend per key and day from the day of `from_ms` on.
///
/// Errors: any SQLite error.
pub fn since(conn: &Connection, from_ms: i64) -> Result<Vec<SpendDay>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT api_key_id, day, all_usd, remote_usd FROM spend WHERE day >= ?1 ORDER BY api_key_id, day",
    )?;
    let mut rows = stmt.query([from_ms.div_euclid(86_400_000)])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(SpendDay {
            key_id: r.get(0)?,
            day: r.get(1)?,
            all_usd: r.get(2)?,
            remote_usd: r.get(3)?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogMode;
    use crate::policy::pii::Detector;
    use crate::store::record::RequestRecord;
    use crate::store::row;

    const DAY: u64 = 86_400_000;

    fn record(id: &str, key: &str, day: u64, cost: f64, remote: bool) -> RequestRecord {
        RequestRecord {
            id: id.into(),
            started_ms: day * DAY + 1000,
            endpoint: "chat",
            requested_model: "m".into(),
            status: 200,
            api_key_id: Some(key.into()),
            hosting: Some(if remote { "remote" } else { "local" }),
            cost_usd: Some(cost),
            ..Default::default()
        }
    }

    fn rows(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM requests", [], |r| r.get(0))
            .unwrap()
    }

    /// A log written before migration 0006 gets its `spend` filled from its rows, once.
    #[test]
    fn the_migration_back_fills_spend_from_existing_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.db");
        let mut conn = crate::store::open(&path).unwrap();
        let pii = Detector::new(&Default::default()).unwrap();
        let batch: Vec<_> = [
            record("a", "k1", 20_000, 0.25, true),
            record("b", "k1", 20_000, 0.5, false),
            record("c", "k1", 20_001, 1.0, true),
            record("d", "k2", 20_001, 2.0, true),
            record("e", "k2", 20_001, 0.0, true),
        ]
        .iter()
        .map(|r| row::prepare(r, LogMode::Metadata, &pii).unwrap())
        .collect();
        crate::store::sqlite::append(&mut conn, &batch).unwrap();
        // Back to a log of version 5: no `spend` table, the rows only.
        conn.execute_batch("DROP TABLE spend; DELETE FROM schema_migrations WHERE version = 6;")
            .unwrap();
        drop(conn);
        let conn = crate::store::open(&path).unwrap();
        let want = vec![
            SpendDay {
                key_id: "k1".into(),
                day: 20_000,
                all_usd: 0.75,
                remote_usd: 0.25,
            },
            SpendDay {
                key_id: "k1".into(),
                day: 20_001,
                all_usd: 1.0,
                remote_usd: 1.0,
            },
            SpendDay {
                key_id: "k2".into(),
                day: 20_001,
                all_usd: 2.0,
                remote_usd: 2.0,
            },
        ];
        assert_eq!(since(&conn, 0).unwrap(), want);
        assert_eq!(since(&conn, (20_001 * DAY) as i64).unwrap(), want[1..]);
        // Opening again does not fill it twice.
        drop(conn);
        let conn = crate::store::open(&path).unwrap();
        assert_eq!(since(&conn, 0).unwrap(), want);
        assert_eq!(rows(&conn), 5);
    }

    /// A `log: off` record adds its cost to `spend` in the batch's transaction and leaves no
    /// request row; retention deletes rows, never spend.
    #[test]
    fn log_off_rows_spend_without_a_row_and_purging_keeps_spend() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::store::open(&dir.path().join("log.db")).unwrap();
        let pii = Detector::new(&Default::default()).unwrap();
        let full = record("a", "k1", 20_000, 0.25, true);
        let off = record("b", "k1", 20_000, 0.5, true);
        let unpriced = record("c", "k1", 20_000, 0.0, true);
        assert!(row::prepare(&unpriced, LogMode::Off, &pii).is_none());
        let batch = vec![
            row::prepare(&full, LogMode::Full, &pii).unwrap(),
            row::prepare(&off, LogMode::Off, &pii).unwrap(),
        ];
        assert!(!batch[0].is_spend_only());
        assert!(batch[1].is_spend_only());
        assert_eq!(crate::store::sqlite::append(&mut conn, &batch).unwrap(), 1);
        assert_eq!(rows(&conn), 1);
        let ids: Vec<String> = conn
            .prepare("SELECT id FROM requests")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(ids, ["a"]);
        let day = |conn: &Connection| since(conn, 0).unwrap()[0].clone();
        assert_eq!((day(&conn).all_usd, day(&conn).remote_usd), (0.75, 0.75));
        // The chain holds the one row and still verifies.
        assert!(matches!(
            crate::store::chain::verify(&conn).unwrap(),
            crate::store::chain::Verdict::Ok { rows: 1, .. }
        ));
        let p = crate::store::chain::purge_before(&mut conn, i64::MAX).unwrap();
        assert_eq!(p.rows, 1);
        assert_eq!(rows(&conn), 0);
        assert_eq!(day(&conn).all_usd, 0.75);
    }
}

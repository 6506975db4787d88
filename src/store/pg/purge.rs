//! Retention and `sluice purge` on PostgreSQL: rows deleted from the old end of the chain
//! (as [`crate::store::chain::purge_before`] on SQLite), in short transactions.

use super::PgStore;
use crate::store::StoreError;
use crate::store::chain::Purged;
use postgres::{Client, Transaction};

/// The last row to purge for `cutoff_ms` (every row before the first one started at or after
/// it): its `seq`, or `None` when there is none.
fn purge_target(c: &mut Client, cutoff_ms: i64) -> Result<Option<i64>, StoreError> {
    let first_kept: Option<i64> = c
        .query_one(
            "SELECT min(seq) FROM requests WHERE started_ms >= $1",
            &[&cutoff_ms],
        )?
        .get(0);
    let last: Option<i64> = match first_kept {
        Some(k) => c.query_one("SELECT max(seq) FROM requests WHERE seq < $1", &[&k])?,
        None => c.query_one("SELECT max(seq) FROM requests", &[])?,
    }
    .get(0);
    Ok(last)
}

/// Deletes the rows after the anchor up to `target` but at most `chunk` of them, in `tx`,
/// under the chain's lock, and moves the anchor to the last one deleted. Returns the rows
/// deleted and the new anchor.
fn purge_chunk(tx: &mut Transaction<'_>, target: i64, chunk: i64) -> Result<Purged, StoreError> {
    let st = tx.query_one(
        "SELECT anchor_seq, anchor_hash FROM chain WHERE one = 1 FOR UPDATE",
        &[],
    )?;
    let anchor: i64 = st.try_get(0)?;
    let anchor_hash: String = st.try_get(1)?;
    let upto = target.min(anchor.saturating_add(chunk));
    let Some(last) = tx.query_opt(
        "SELECT seq, row_hash FROM requests WHERE seq <= $1 ORDER BY seq DESC LIMIT 1",
        &[&upto],
    )?
    else {
        return Ok(Purged {
            rows: 0,
            anchor_seq: anchor,
            anchor_hash,
        });
    };
    let (seq, hash): (i64, String) = (last.get(0), last.get(1));
    if seq <= anchor {
        return Ok(Purged {
            rows: 0,
            anchor_seq: anchor,
            anchor_hash,
        });
    }
    let rows = tx.execute("DELETE FROM requests WHERE seq <= $1", &[&seq])?;
    tx.execute(
        "UPDATE chain SET anchor_seq = $1, anchor_hash = $2 WHERE one = 1",
        &[&seq, &hash],
    )?;
    Ok(Purged {
        rows,
        anchor_seq: seq,
        anchor_hash: hash,
    })
}

/// Rows a purge deletes per transaction: each holds the chain's lock only that long, so the
/// writers (whose lock wait is bounded, [`super::APPEND_LOCK_TIMEOUT`]) keep writing through a big
/// purge instead of spilling.
pub const PURGE_CHUNK: i64 = 5_000;

impl PgStore {
    /// [`crate::store::backend::LogStore::purge_before`] in transactions of at most `chunk` rows each (the chain
    /// verifies after each). Returns the rows deleted in all and the final anchor.
    ///
    /// Errors: the server refused a statement; the chunks committed before stay committed.
    pub fn purge_before_in_chunks(
        &mut self,
        cutoff_ms: i64,
        chunk: i64,
    ) -> Result<Purged, StoreError> {
        let chunk = chunk.max(1);
        self.with(|c| {
            let mut total = Purged {
                rows: 0,
                anchor_seq: 0,
                anchor_hash: String::new(),
            };
            let Some(target) = purge_target(c, cutoff_ms)? else {
                let st = c.query_one(
                    "SELECT anchor_seq, anchor_hash FROM chain WHERE one = 1",
                    &[],
                )?;
                total.anchor_seq = st.try_get(0)?;
                total.anchor_hash = st.try_get(1)?;
                return Ok(total);
            };
            loop {
                let mut tx = c.transaction()?;
                let p = purge_chunk(&mut tx, target, chunk)?;
                tx.commit()?;
                total.rows += p.rows;
                total.anchor_seq = p.anchor_seq;
                total.anchor_hash = p.anchor_hash;
                if p.rows == 0 || p.anchor_seq >= target {
                    return Ok(total);
                }
            }
        })
    }
}

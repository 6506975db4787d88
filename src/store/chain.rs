//! The tamper-evident hash chain over the `requests` table.
//!
//! Each row carries `prev_hash` (the previous row's `row_hash`; for the first row the anchor,
//! 64 zeros in a new log) and
//! `row_hash = hex(SHA-256(prev_hash ‖ "\n" ‖ canonical))`, where `canonical` is the compact
//! JSON array of the row's stored values in [`HASHED_COLUMNS`] order (`seq` first): SQLite
//! integers as JSON integers, reals as JSON numbers, text as JSON strings (JSON columns such as
//! `request_body` are hashed as their stored text), NULL as `null`.
//!
//! The `chain` table holds the anchor (seq and hash of the last row deleted by retention or
//! purge) and the head (seq and hash of the last row written). [`verify`] walks from the anchor
//! to the head: a changed row fails its own hash, a deleted row breaks the `seq` sequence and
//! the next row's `prev_hash`, deleted rows at the end no longer reach the head.
//! Someone able to rewrite the whole file can rebuild a consistent chain, and someone able to
//! delete rows can cut the old end and move the anchor as a purge does; record the head and the
//! anchor that `sluice log verify` prints somewhere else to detect either.

use super::StoreError;
use super::row::HASHED_COLUMNS;
use crate::repro::json_string;
use rusqlite::types::{Value as Sql, ValueRef};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use sha2::{Digest, Sha256};

/// `prev_hash` of the first row of a new log.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The canonical content of a row: the compact JSON array of `values` (in
/// [`HASHED_COLUMNS`] order).
pub fn canonical(values: &[ValueRef<'_>]) -> Vec<u8> {
    // Room for every text once (and a quarter for escapes) and the escaper's scratch for the
    // longest (see `json_string::room`): the buffer is allocated once for usual rows.
    let (total, longest) = values.iter().fold((0, 0), |(t, l), v| match v {
        ValueRef::Text(s) | ValueRef::Blob(s) => (t + s.len() + s.len() / 4, l.max(s.len())),
        _ => (t, l),
    });
    let mut out = Vec::with_capacity(total + json_string::room(longest) + 32 * values.len());
    write_canonical(values, &mut out);
    out
}

/// Appends [`canonical`] of `values` to `out`, written straight from the values (no JSON
/// tree, no copies of the texts): integers as JSON integers, reals as JSON numbers (a
/// non-finite real as `null`), text as a JSON string (invalid UTF-8 replaced), blobs as hex
/// strings, NULL as `null`.
pub fn write_canonical(values: &[ValueRef<'_>], out: &mut Vec<u8>) {
    write_array(values.iter().map(|v| Cell::Read(*v)), out);
}

/// Appends [`canonical`] of a row about to be written, `seq` then `values`, to `out`: the
/// same bytes as [`write_canonical`] of the same values, without checking again that texts
/// the row owns (`String`s) are UTF-8.
pub fn write_canonical_row(seq: i64, values: &[Sql], out: &mut Vec<u8>) {
    let seq = std::iter::once(Cell::Read(ValueRef::Integer(seq)));
    write_array(seq.chain(values.iter().map(Cell::Owned)), out);
}

/// A value to write: read back (its text may be any bytes) or owned by a row being written
/// (its text is a `String`).
enum Cell<'a> {
    Read(ValueRef<'a>),
    Owned(&'a Sql),
}

fn write_array<'a>(cells: impl Iterator<Item = Cell<'a>>, out: &mut Vec<u8>) {
    out.push(b'[');
    for (i, cell) in cells.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let v = match cell {
            Cell::Owned(Sql::Text(s)) => {
                json_string::push(out, s);
                continue;
            }
            Cell::Owned(v) => ValueRef::from(v),
            Cell::Read(v) => v,
        };
        // Writing to a Vec cannot fail.
        let _ = match v {
            ValueRef::Null => serde_json::to_writer(&mut *out, &()),
            ValueRef::Integer(n) => serde_json::to_writer(&mut *out, &n),
            ValueRef::Real(f) => serde_json::to_writer(&mut *out, &serde_json::Value::from(f)),
            ValueRef::Text(t) => {
                // `from_utf8` first: `from_utf8_lossy` checks valid text far more slowly.
                match std::str::from_utf8(t) {
                    Ok(s) => json_string::push(out, s),
                    Err(_) => json_string::push(out, &String::from_utf8_lossy(t)),
                }
                Ok(())
            }
            ValueRef::Blob(b) => serde_json::to_writer(&mut *out, &hex::encode(b)),
        };
    }
    out.push(b']');
}

/// `hex(SHA-256(prev_hash ‖ "\n" ‖ canonical))`.
pub fn row_hash(prev_hash: &str, canonical: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(canonical);
    hex_digest(&h.finalize())
}

/// A SHA-256 digest as 64 lowercase hex digits, as `hex::encode` writes it, through a
/// buffer on the stack instead of a `String` grown a char at a time (three per request).
pub fn hex_digest(digest: &[u8]) -> String {
    let mut buf = [0u8; 64];
    let out = buf.get_mut(..digest.len() * 2).unwrap_or_default();
    if hex::encode_to_slice(digest, out).is_err() {
        return hex::encode(digest);
    }
    // hex digits are ASCII.
    String::from_utf8(out.to_vec()).unwrap_or_default()
}

/// The full column values of `row` as row number `seq` after `prev_hash`: the hashed columns,
/// `prev_hash`, `row_hash`, then the repro columns (the `INSERT` order of both stores); and
/// the new `row_hash`.
pub fn link(prev_hash: &str, seq: i64, row: &super::backend::PreparedRow) -> (Vec<Sql>, String) {
    let mut text = Vec::new();
    write_canonical_row(seq, &row.values, &mut text);
    let hash = row_hash(prev_hash, &text);
    let mut values = Vec::with_capacity(row.values.len() + 3 + row.repro.len());
    values.push(Sql::Integer(seq));
    values.extend(row.values.iter().cloned());
    values.push(Sql::Text(prev_hash.to_string()));
    values.push(Sql::Text(hash.clone()));
    values.extend(row.repro.iter().cloned());
    (values, hash)
}

/// Anchor and head of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainState {
    /// Seq of the last deleted row (0: none deleted).
    pub anchor_seq: i64,
    /// Its hash (or [`GENESIS`]).
    pub anchor_hash: String,
    /// Seq of the last row written (0: none).
    pub head_seq: i64,
    /// Its hash.
    pub head_hash: String,
}

/// Reads the `chain` row.
///
/// Errors: the row is missing ([`NO_CHAIN_ROW`]), or any SQLite error.
pub fn state(conn: &Connection) -> Result<ChainState, StoreError> {
    state_opt(conn)?.ok_or_else(|| StoreError::Io(NO_CHAIN_ROW.into()))
}

/// What is wrong when the `chain` table has no row (a log always has one, from its first
/// migration): nothing tells where the chain starts or ends.
pub const NO_CHAIN_ROW: &str =
    "the chain table is empty (its anchor and head were deleted), so no row can be verified";

/// Reads the `chain` row, `None` when there is none.
fn state_opt(conn: &Connection) -> Result<Option<ChainState>, StoreError> {
    // Cached: the writer reads it once per batch.
    Ok(conn
        .prepare_cached(
            "SELECT anchor_seq, anchor_hash, head_seq, head_hash FROM chain WHERE one = 1",
        )?
        .query_row([], |r| {
            Ok(ChainState {
                anchor_seq: r.get(0)?,
                anchor_hash: r.get(1)?,
                head_seq: r.get(2)?,
                head_hash: r.get(3)?,
            })
        })
        .optional()?)
}

/// Sets the head (inside the writer's transaction).
pub fn set_head(conn: &Connection, seq: i64, hash: &str) -> Result<(), StoreError> {
    // Cached: the writer sets it once per batch.
    conn.prepare_cached("UPDATE chain SET head_seq = ?1, head_hash = ?2 WHERE one = 1")?
        .execute(params![seq, hash])?;
    Ok(())
}

/// The result of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every link holds.
    Ok {
        /// Rows checked.
        rows: u64,
        /// Seq and hash of the last row (the anchor's when the log is empty).
        head_seq: i64,
        /// Hash of the head.
        head_hash: String,
        /// Seq of the last row deleted by retention or purge (0: none was), where the walk
        /// started. Rows cut at the old end with the anchor moved look like a purge: only a
        /// record of the anchor kept elsewhere tells them apart.
        anchor_seq: i64,
        /// Its hash ([`GENESIS`] when no row was deleted).
        anchor_hash: String,
    },
    /// The first broken link.
    Broken {
        /// Seq of the row where the chain breaks (the row after the last one written, when
        /// rows are missing at the end; 0 when the `chain` table itself is missing its row).
        seq: i64,
        /// What is wrong.
        reason: String,
    },
}

/// The verdict once the walk from the anchor has checked `count` rows, the last of them
/// `last` with hash `prev` (`last` is the anchor's seq when there were none), against the
/// head `st` records; `past_head` is the highest seq in the table when rows lie beyond the
/// recorded head. Each way the end can disagree is named as what it is:
/// - rows after the recorded head: the head was moved back;
/// - the walk ends before the head: rows at the end were deleted;
/// - it ends at the head's seq with another hash: the head's hash was changed.
pub fn end_verdict(
    st: &ChainState,
    count: u64,
    last: i64,
    prev: String,
    past_head: Option<i64>,
) -> Verdict {
    let head = st.head_seq;
    if let Some(max) = past_head.filter(|&m| m > head) {
        return Verdict::Broken {
            seq: head + 1,
            reason: format!(
                "rows {}..{max} lie after the head the chain table records, row {head} (the head was moved back)",
                head + 1
            ),
        };
    }
    if last < head {
        return Verdict::Broken {
            seq: last + 1,
            reason: format!(
                "the chain ends at row {last} but its head is row {head} (rows {}..{head} at the end were deleted)",
                last + 1
            ),
        };
    }
    if prev != st.head_hash {
        let which = if count == 0 {
            "the anchor"
        } else {
            "the last row"
        };
        return Verdict::Broken {
            seq: last,
            reason: format!(
                "the head's hash does not match the hash of row {last}, {which} (the head was changed)"
            ),
        };
    }
    Verdict::Ok {
        rows: count,
        head_seq: last,
        head_hash: prev,
        anchor_seq: st.anchor_seq,
        anchor_hash: st.anchor_hash.clone(),
    }
}

/// Walks the chain from the anchor to the head and returns the first broken link. The walk
/// reads one snapshot (a read transaction), so rows a writer commits meanwhile are not taken
/// for rows past the head.
pub fn verify(conn: &Connection) -> Result<Verdict, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let verdict = verify_in(&tx);
    // Read only: nothing to commit.
    drop(tx);
    verdict
}

fn verify_in(conn: &Connection) -> Result<Verdict, StoreError> {
    let Some(st) = state_opt(conn)? else {
        return Ok(Verdict::Broken {
            seq: 0,
            reason: NO_CHAIN_ROW.into(),
        });
    };
    let sql = format!(
        "SELECT {}, prev_hash, row_hash FROM requests ORDER BY seq",
        HASHED_COLUMNS.join(", ")
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query([])?;
    let n = HASHED_COLUMNS.len();
    let mut expect_seq = st.anchor_seq + 1;
    let mut prev = st.anchor_hash.clone();
    let mut count = 0u64;
    while let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        if seq != expect_seq {
            let reason = if seq > expect_seq {
                format!("rows {expect_seq}..{} are missing", seq - 1)
            } else {
                format!("seq {seq} is out of order (expected {expect_seq})")
            };
            return Ok(Verdict::Broken { seq, reason });
        }
        let stored_prev: String = r.get(n)?;
        if stored_prev != prev {
            return Ok(Verdict::Broken {
                seq,
                reason: "prev_hash does not match the previous row's hash".into(),
            });
        }
        let values: Vec<ValueRef<'_>> = (0..n).map(|i| r.get_ref(i)).collect::<Result<_, _>>()?;
        let stored: String = r.get(n + 1)?;
        if row_hash(&prev, &canonical(&values)) != stored {
            return Ok(Verdict::Broken {
                seq,
                reason: "row content does not match its row_hash (the row was changed)".into(),
            });
        }
        prev = stored;
        expect_seq += 1;
        count += 1;
    }
    let last = expect_seq - 1;
    // The walk read every row: any past the head are among them.
    Ok(end_verdict(&st, count, last, prev, Some(last)))
}

/// What a purge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purged {
    /// Rows deleted.
    pub rows: u64,
    /// The new anchor seq (last deleted row).
    pub anchor_seq: i64,
    /// The new anchor's hash: with its seq, what an operator records to tell this purge from
    /// rows cut at the old end later.
    pub anchor_hash: String,
}

/// Deletes rows that started before `cutoff_ms` (Unix ms) from the old end of the chain: every
/// row up to, not including, the first row that started at or after the cutoff. (A row that
/// started earlier but sits behind a newer one — a long stream — stays until a later purge
/// reaches it.) The last deleted row's hash becomes the anchor, so the rest still verifies.
pub fn purge_before(conn: &mut Connection, cutoff_ms: i64) -> Result<Purged, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let st = state(&tx)?;
    let first_kept: Option<i64> = tx
        .query_row(
            "SELECT min(seq) FROM requests WHERE started_ms >= ?1",
            [cutoff_ms],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let last_deleted: Option<(i64, String)> = match first_kept {
        Some(k) => tx.query_row(
            "SELECT seq, row_hash FROM requests WHERE seq < ?1 ORDER BY seq DESC LIMIT 1",
            [k],
            |r| Ok((r.get(0)?, r.get(1)?)),
        ),
        None => tx.query_row(
            "SELECT seq, row_hash FROM requests ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        ),
    }
    .optional()?;
    let Some((seq, hash)) = last_deleted else {
        return Ok(Purged {
            rows: 0,
            anchor_seq: st.anchor_seq,
            anchor_hash: st.anchor_hash,
        });
    };
    let rows = tx.execute("DELETE FROM requests WHERE seq <= ?1", [seq])? as u64;
    tx.execute(
        "UPDATE chain SET anchor_seq = ?1, anchor_hash = ?2 WHERE one = 1",
        params![seq, hash],
    )?;
    tx.commit()?;
    // Deleted content is zeroed (`secure_delete`); also empty the WAL, best effort.
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    Ok(Purged {
        rows,
        anchor_seq: seq,
        anchor_hash: hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain_state(head_seq: i64, head_hash: &str) -> ChainState {
        ChainState {
            anchor_seq: 2,
            anchor_hash: "a2".into(),
            head_seq,
            head_hash: head_hash.into(),
        }
    }

    /// Each way the walk's end can disagree with the recorded head is named as what it is,
    /// at a row that exists.
    #[test]
    fn the_end_of_the_walk_names_what_disagrees_with_the_head() {
        let st = chain_state(5, "h5");
        assert_eq!(
            end_verdict(&st, 3, 5, "h5".into(), Some(5)),
            Verdict::Ok {
                rows: 3,
                head_seq: 5,
                head_hash: "h5".into(),
                anchor_seq: 2,
                anchor_hash: "a2".into(),
            }
        );
        assert_eq!(
            end_verdict(&st, 3, 5, "other".into(), Some(5)),
            Verdict::Broken {
                seq: 5,
                reason: "the head's hash does not match the hash of row 5, the last row (the head was changed)".into()
            }
        );
        assert_eq!(
            end_verdict(&chain_state(4, "h5"), 3, 5, "h5".into(), Some(5)),
            Verdict::Broken {
                seq: 5,
                reason: "rows 5..5 lie after the head the chain table records, row 4 (the head was moved back)".into()
            }
        );
        // PostgreSQL walks up to the head only, then looks for rows beyond it.
        assert_eq!(
            end_verdict(&chain_state(3, "h5"), 1, 3, "h3".into(), Some(5)),
            Verdict::Broken {
                seq: 4,
                reason: "rows 4..5 lie after the head the chain table records, row 3 (the head was moved back)".into()
            }
        );
        assert_eq!(
            end_verdict(&st, 1, 3, "h3".into(), Some(3)),
            Verdict::Broken {
                seq: 4,
                reason: "the chain ends at row 3 but its head is row 5 (rows 4..5 at the end were deleted)".into()
            }
        );
        assert_eq!(
            end_verdict(&chain_state(2, "x"), 0, 2, "a2".into(), None),
            Verdict::Broken {
                seq: 2,
                reason: "the head's hash does not match the hash of row 2, the anchor (the head was changed)".into()
            }
        );
    }

    #[test]
    fn hex_digest_writes_what_hex_encode_writes() {
        let d = Sha256::digest(b"sluice");
        assert_eq!(hex_digest(&d), hex::encode(d));
        assert_eq!(
            hex_digest(&Sha256::digest(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // Longer than a digest: still right, by the slow path.
        assert_eq!(hex_digest(&[0xab; 40]), "ab".repeat(40));
        assert_eq!(hex_digest(&[]), "");
    }

    /// The canonical text as first defined: each value as a JSON tree, the array serialised.
    fn canonical_via_tree(values: &[ValueRef<'_>]) -> Vec<u8> {
        let items: Vec<serde_json::Value> = values
            .iter()
            .map(|v| match v {
                ValueRef::Null => serde_json::Value::Null,
                ValueRef::Integer(i) => serde_json::Value::from(*i),
                ValueRef::Real(f) => serde_json::Value::from(*f),
                ValueRef::Text(t) => {
                    serde_json::Value::String(String::from_utf8_lossy(t).into_owned())
                }
                ValueRef::Blob(b) => serde_json::Value::String(hex::encode(b)),
            })
            .collect();
        serde_json::to_vec(&items).unwrap()
    }

    #[test]
    fn canonical_text_is_unchanged_by_the_direct_writer() {
        let values = [
            ValueRef::Integer(7),
            ValueRef::Integer(i64::MIN),
            ValueRef::Null,
            ValueRef::Real(0.1),
            ValueRef::Real(1e300),
            ValueRef::Real(-0.0),
            ValueRef::Real(f64::NAN),
            ValueRef::Real(f64::INFINITY),
            ValueRef::Text(b"plain"),
            ValueRef::Text("quote \" back \\ nl \n tab \t ctl \u{1} é 😀".as_bytes()),
            ValueRef::Text(b"{\"model\":\"x\",\"messages\":[]}"),
            ValueRef::Text(b"bad \xff utf8"),
            ValueRef::Text(b""),
            ValueRef::Blob(&[0, 1, 0xab]),
        ];
        assert_eq!(canonical(&values), canonical_via_tree(&values));
        assert_eq!(canonical(&[]), b"[]");
        // And the hash of a known row stays what it was.
        let row = [ValueRef::Integer(1), ValueRef::Text(b"id"), ValueRef::Null];
        assert_eq!(
            row_hash(GENESIS, &canonical(&row)),
            row_hash(GENESIS, br#"[1,"id",null]"#)
        );
    }

    fn sql_value() -> impl proptest::strategy::Strategy<Value = Sql> {
        use proptest::prelude::*;
        prop_oneof![
            Just(Sql::Null),
            any::<i64>().prop_map(Sql::Integer),
            any::<f64>().prop_map(Sql::Real),
            any::<String>().prop_map(Sql::Text),
            "[\\u{0}-\\u{2ff}\"\\\\]{0,40}".prop_map(Sql::Text),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(Sql::Blob),
        ]
    }

    proptest::proptest! {
        /// A row's canonical text written from its owned values (texts not checked again) is
        /// the text read back from the store gives (what `verify` hashes).
        #[test]
        fn a_rows_canonical_text_is_the_read_back_text(
            seq in proptest::prelude::any::<i64>(),
            values in proptest::collection::vec(sql_value(), 0..12),
        ) {
            let mut written = Vec::new();
            write_canonical_row(seq, &values, &mut written);
            let mut read: Vec<ValueRef<'_>> = vec![ValueRef::Integer(seq)];
            read.extend(values.iter().map(ValueRef::from));
            proptest::prop_assert_eq!(&written, &canonical(&read));
            proptest::prop_assert_eq!(&written, &canonical_via_tree(&read));
        }
    }
}

//! The spill file: batches the store refused (after the writer's retries) are appended here
//! as JSON lines ([`PreparedRow::to_json`]: the row as the logging mode shaped it, so a
//! `metadata` row carries no text here either), and replayed into the store, in order, once
//! it takes writes again (the writer tries every second, and at start).
//!
//! Replay is chunked: after each chunk commits, the byte offset reached is saved in
//! `<file>.offset`; when everything is in, both files are removed. A crash between a chunk's
//! commit and its offset write sends that chunk again (at most [`super::writer::BATCH_ROWS`]
//! duplicate rows), never loses one. A line that does not parse is reported, skipped and
//! counted as dropped.
//!
//! A torn line is never followed by another: an append that fails (a full disk) cuts the file
//! back to where it began, and an append or replay that finds the file ending without a line
//! break (a crash mid-write) cuts that fragment off first. Otherwise the batch's retry would be
//! written onto the fragment, and the two would make one unreadable line: a row lost.

use super::StoreError;
use super::backend::PreparedRow;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The spill file at one path.
#[derive(Debug, Clone)]
pub struct Spill {
    path: PathBuf,
}

/// What a replay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Rows written to the store.
    pub rows: u64,
    /// Lines that did not parse (skipped, each reported).
    pub bad_lines: u64,
}

impl Spill {
    /// The spill file at `path` (not created until rows are spilled).
    pub fn new(path: PathBuf) -> Self {
        Spill { path }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn offset_path(&self) -> PathBuf {
        let mut s = self.path.clone().into_os_string();
        s.push(".offset");
        PathBuf::from(s)
    }

    /// Whether rows wait in the file.
    pub fn pending(&self) -> bool {
        std::fs::metadata(&self.path).is_ok_and(|m| m.len() > self.offset())
    }

    fn offset(&self) -> u64 {
        std::fs::read_to_string(self.offset_path())
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Appends `rows` (created with mode 0600) and syncs the file to disk.
    ///
    /// Errors: the file cannot be created or written (a full disk).
    pub fn append(&self, rows: &[PreparedRow]) -> Result<(), StoreError> {
        let io =
            |e: std::io::Error| StoreError::Io(format!("spill file {}: {e}", self.path.display()));
        if let Some(dir) = self.path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut o = std::fs::OpenOptions::new();
        o.create(true).append(true).read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let mut f = o.open(&self.path).map_err(io)?;
        let start = cut_torn_tail(&mut f, &self.path).map_err(io)?;
        let mut buf = String::new();
        for r in rows {
            buf.push_str(&r.to_json());
            buf.push('\n');
        }
        let written = f.write_all(buf.as_bytes()).and_then(|()| f.sync_data());
        if let Err(e) = written {
            // What went in of this batch is cut off: its retry starts on a line of its own.
            let _ = f.set_len(start);
            return Err(io(e));
        }
        Ok(())
    }

    /// Sends every waiting row to the store through `append` (as
    /// [`LogStore::append`](super::backend::LogStore::append): one transaction per call,
    /// returns the rows written), `chunk` rows per call, in file order. Removes the file when
    /// all are in.
    ///
    /// Errors: the store refused a chunk (what went in before stays in; the offset says so).
    pub fn replay(
        &self,
        append: &mut dyn FnMut(Vec<PreparedRow>) -> Result<usize, StoreError>,
        chunk: usize,
    ) -> Result<Replayed, StoreError> {
        let io =
            |e: std::io::Error| StoreError::Io(format!("spill file {}: {e}", self.path.display()));
        let mut done = Replayed::default();
        let mut f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(done),
            Err(e) => return Err(io(e)),
        };
        let mut offset = self.offset();
        f.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut reader = BufReader::new(f);
        loop {
            let mut rows = Vec::new();
            let mut consumed = 0u64;
            // Bytes, not a `String`: a write cut inside a character must not stop the replay.
            let mut line = Vec::new();
            while rows.len() < chunk.max(1) {
                line.clear();
                let n = reader.read_until(b'\n', &mut line).map_err(io)?;
                if n == 0 {
                    break;
                }
                consumed += n as u64;
                if !line.ends_with(b"\n") {
                    // A fragment of a write cut short by a crash (this thread is the file's
                    // only writer, so nothing is still writing it).
                    done.bad_lines += 1;
                    tracing::error!(file = %self.path.display(), bytes = n,
                        "the spill file ends in a torn row; skipped");
                    break;
                }
                let text = std::str::from_utf8(&line).map_err(|e| e.to_string());
                match text
                    .and_then(|t| PreparedRow::from_json(t.trim_end()).map_err(|e| e.to_string()))
                {
                    Ok(r) => rows.push(r),
                    Err(e) => {
                        done.bad_lines += 1;
                        tracing::error!(error = %e, file = %self.path.display(),
                            "a spilled log row cannot be read; skipped");
                    }
                }
            }
            if consumed == 0 {
                break;
            }
            done.rows += append(rows)? as u64;
            offset += consumed;
            std::fs::write(self.offset_path(), offset.to_string()).map_err(io)?;
        }
        if std::fs::metadata(&self.path).is_ok_and(|m| m.len() <= offset) {
            std::fs::remove_file(&self.path).map_err(io)?;
            let _ = std::fs::remove_file(self.offset_path());
        }
        Ok(done)
    }
}

/// Cuts `f` back to just after its last line break when it ends without one (a write cut
/// short by a crash); returns its length after. One byte is read when it ends well.
fn cut_torn_tail(f: &mut std::fs::File, path: &Path) -> std::io::Result<u64> {
    use std::io::Read;
    let len = f.metadata()?.len();
    let mut end = len;
    let mut buf = vec![0u8; 1];
    while end > 0 {
        let n = (end as usize).min(buf.len().max(1));
        f.seek(SeekFrom::Start(end - n as u64))?;
        f.read_exact(&mut buf[..n])?;
        match buf[..n].iter().rposition(|&b| b == b'\n') {
            Some(i) => {
                end = end - n as u64 + i as u64 + 1;
                break;
            }
            None => end -= n as u64,
        }
        // The last byte was not a line break: look further back, a block at a time.
        buf.resize(64 * 1024, 0);
    }
    if end < len {
        tracing::error!(file = %path.display(), bytes = len - end,
            "the spill file ended in a torn row (a write cut short); cut off");
        f.set_len(end)?;
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::backend::LogStore;
    use rusqlite::types::Value;

    fn row(id: &str) -> PreparedRow {
        let mut values = vec![Value::Null; 32];
        values[0] = Value::Text(id.into());
        PreparedRow {
            values,
            repro: vec![Value::Null; crate::store::backend::extra_columns().len()],
            uid: format!("u-{id}"),
        }
    }

    /// A store that takes `ok` appends, then refuses every other one.
    struct Flaky {
        ok: usize,
        got: Vec<String>,
    }

    impl Flaky {
        fn take(&mut self, rows: &[PreparedRow]) -> Result<usize, StoreError> {
            if self.ok == 0 {
                return Err(StoreError::Io("down".into()));
            }
            self.ok -= 1;
            for r in rows {
                if let Value::Text(t) = &r.values[0] {
                    self.got.push(t.clone());
                }
            }
            Ok(rows.len())
        }
    }

    impl LogStore for Flaky {
        fn backend(&self) -> &'static str {
            "test"
        }
        fn append(&mut self, rows: &[PreparedRow]) -> Result<usize, StoreError> {
            self.take(rows)
        }
        fn purge_before(&mut self, _: i64) -> Result<super::super::chain::Purged, StoreError> {
            unimplemented!()
        }
        fn verify(&mut self) -> Result<super::super::chain::Verdict, StoreError> {
            unimplemented!()
        }
        fn list(
            &mut self,
            _: &super::super::query::LogFilter,
        ) -> Result<Vec<super::super::row::LogRow>, StoreError> {
            unimplemented!()
        }
        fn get(&mut self, _: &str) -> Result<Option<super::super::row::LogRow>, StoreError> {
            unimplemented!()
        }
        fn all_since(
            &mut self,
            _: Option<i64>,
        ) -> Result<Vec<super::super::row::LogRow>, StoreError> {
            unimplemented!()
        }
        fn usage_facts(
            &mut self,
            _: Option<i64>,
            _: Option<super::super::query::GroupBy>,
        ) -> Result<Vec<super::super::backend::UsageFact>, StoreError> {
            unimplemented!()
        }
        fn timeline(
            &mut self,
            _: i64,
            _: i64,
        ) -> Result<Vec<super::super::query::Bucket>, StoreError> {
            unimplemented!()
        }
        fn insert_key(&mut self, _: &super::super::backend::KeyRow) -> Result<bool, StoreError> {
            unimplemented!()
        }
        fn keys(&mut self) -> Result<Vec<super::super::backend::KeyRow>, StoreError> {
            unimplemented!()
        }
        fn revoke_key(&mut self, _: &str) -> Result<bool, StoreError> {
            unimplemented!()
        }
        fn spend_since(
            &mut self,
            _: i64,
        ) -> Result<Vec<super::super::backend::SpendDay>, StoreError> {
            unimplemented!()
        }
        fn replay_rows(
            &mut self,
            _: &super::super::backend::ReplaySelect,
        ) -> Result<Vec<Vec<Value>>, StoreError> {
            unimplemented!()
        }
        fn series(
            &mut self,
            _: &super::super::series::SeriesQuery,
        ) -> Result<Vec<super::super::series::Point>, StoreError> {
            unimplemented!()
        }
        fn put_response(
            &mut self,
            _: &super::super::responses::StoredResponse,
        ) -> Result<bool, StoreError> {
            unimplemented!()
        }
        fn get_response(
            &mut self,
            _: &str,
            _: &str,
        ) -> Result<Option<super::super::responses::StoredResponse>, StoreError> {
            unimplemented!()
        }
        fn delete_response(&mut self, _: &str, _: &str) -> Result<bool, StoreError> {
            unimplemented!()
        }
        fn cached(
            &mut self,
            _: &super::super::backend::CacheQuery,
        ) -> Result<Option<super::super::backend::CachedRow>, StoreError> {
            unimplemented!()
        }
    }

    #[test]
    fn spilled_rows_replay_in_order_once_the_store_returns() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::new(dir.path().join("s.jsonl"));
        assert!(!spill.pending());
        spill.append(&[row("a"), row("b"), row("c")]).unwrap();
        spill.append(&[row("d")]).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(spill.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(spill.pending());
        let mut store = Flaky {
            ok: usize::MAX,
            got: vec![],
        };
        let r = spill.replay(&mut |r| store.append(&r), 2).unwrap();
        assert_eq!(
            r,
            Replayed {
                rows: 4,
                bad_lines: 0
            }
        );
        assert_eq!(store.got, ["a", "b", "c", "d"]);
        assert!(!spill.pending());
        assert!(!spill.path().exists());
    }

    #[test]
    fn a_refused_chunk_is_sent_again_and_earlier_chunks_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::new(dir.path().join("s.jsonl"));
        spill
            .append(&[row("a"), row("b"), row("c"), row("d"), row("e")])
            .unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(spill.path())
            .unwrap()
            .write_all(b"{not json}\n")
            .unwrap();
        // The first chunk goes in, the second is refused.
        let mut store = Flaky { ok: 1, got: vec![] };
        assert!(spill.replay(&mut |r| store.append(&r), 2).is_err());
        assert_eq!(store.got, ["a", "b"]);
        assert!(spill.pending());
        // Back: the rest arrives once, the bad line is skipped and counted.
        store.ok = usize::MAX;
        let r = spill.replay(&mut |r| store.append(&r), 2).unwrap();
        assert_eq!(
            r,
            Replayed {
                rows: 3,
                bad_lines: 1
            }
        );
        assert_eq!(store.got, ["a", "b", "c", "d", "e"]);
        assert!(!spill.pending());
        assert!(!spill.path().exists());
    }

    /// Appends `bytes` to the spill file as they are (a write cut short).
    fn tear(spill: &Spill, bytes: &[u8]) {
        std::fs::OpenOptions::new()
            .append(true)
            .open(spill.path())
            .unwrap()
            .write_all(bytes)
            .unwrap();
    }

    /// Found by an attacker test (a full disk cut a spill write): the batch's retry was
    /// written onto the torn line, the two made one unreadable line, and a row was lost
    /// without being counted. The fragment is now cut off before the next append, whatever
    /// its length (the search for the last line break goes back a block at a time).
    #[test]
    fn an_append_after_a_torn_write_starts_on_a_line_of_its_own() {
        for fragment in [b"{\"val".to_vec(), vec![b'x'; 200_000]] {
            let dir = tempfile::tempdir().unwrap();
            let spill = Spill::new(dir.path().join("s.jsonl"));
            spill.append(&[row("a")]).unwrap();
            tear(&spill, &fragment);
            spill.append(&[row("b"), row("c")]).unwrap();
            let mut store = Flaky {
                ok: usize::MAX,
                got: vec![],
            };
            let r = spill.replay(&mut |r| store.append(&r), 10).unwrap();
            assert_eq!(
                r,
                Replayed {
                    rows: 3,
                    bad_lines: 0
                }
            );
            assert_eq!(store.got, ["a", "b", "c"]);
            assert!(!spill.path().exists());
        }
        // A file that is nothing but a fragment is cut to nothing.
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::new(dir.path().join("s.jsonl"));
        std::fs::write(spill.path(), b"{\"values\":[").unwrap();
        spill.append(&[row("z")]).unwrap();
        let text = std::fs::read_to_string(spill.path()).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(text.starts_with("{\"") && text.ends_with('\n'), "{text}");
    }

    /// A torn last line met by a replay (a crash mid-write, then no new row before the store
    /// came back) is counted and skipped; the file no longer looks pending.
    #[test]
    fn a_torn_last_line_is_counted_and_the_file_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::new(dir.path().join("s.jsonl"));
        spill.append(&[row("a"), row("b")]).unwrap();
        // Cut inside a character (`é` is two bytes), as a crash may cut it.
        tear(&spill, &[b'{', b'"', b'v', 0xC3]);
        let mut store = Flaky {
            ok: usize::MAX,
            got: vec![],
        };
        let r = spill.replay(&mut |r| store.append(&r), 10).unwrap();
        assert_eq!(
            r,
            Replayed {
                rows: 2,
                bad_lines: 1
            }
        );
        assert_eq!(store.got, ["a", "b"]);
        assert!(!spill.pending());
        assert!(!spill.path().exists());
    }
}

//! A progress line for long commands (`sluice export`, `sluice replay --since`): `what: done/total`
//! rewritten in place on stderr, at most every 200 ms, and only when stderr is a terminal (a
//! pipe or a log file gets nothing, so scripts see the same output as before).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often the line is redrawn at most.
const EVERY: Duration = Duration::from_millis(200);

/// A progress line over `total` items.
pub struct Progress {
    what: String,
    total: usize,
    done: usize,
    last: Option<Instant>,
    out: Option<Box<dyn Write + Send>>,
}

impl Progress {
    /// Progress on stderr when it is a terminal; otherwise silent.
    pub fn on_stderr(what: &str, total: usize) -> Progress {
        let out: Option<Box<dyn Write + Send>> = if std::io::stderr().is_terminal() {
            Some(Box::new(std::io::stderr()))
        } else {
            None
        };
        Progress::to(out, what, total)
    }

    /// Progress written to `out` (`None`: silent).
    pub fn to(out: Option<Box<dyn Write + Send>>, what: &str, total: usize) -> Progress {
        Progress {
            what: what.to_string(),
            total,
            done: 0,
            last: None,
            out,
        }
    }

    /// Counts `n` more items done; redraws when the last draw is 200 ms old (or none yet).
    pub fn add(&mut self, n: usize) {
        self.done += n;
        if self.last.is_none_or(|t| t.elapsed() >= EVERY) {
            self.draw();
        }
    }

    /// Draws the final count and ends the line.
    pub fn finish(&mut self) {
        if self.out.is_some() {
            self.draw();
            if let Some(out) = self.out.as_mut() {
                let _ = writeln!(out);
            }
        }
    }

    fn draw(&mut self) {
        self.last = Some(Instant::now());
        if let Some(out) = self.out.as_mut() {
            let pct = (self.done * 100).checked_div(self.total).unwrap_or(100);
            let _ = write!(
                out,
                "\r{}: {}/{} ({pct}%)",
                self.what, self.done, self.total
            );
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn draws_the_first_and_the_final_count_and_throttles_between() {
        let buf = Buf::default();
        let mut p = Progress::to(Some(Box::new(buf.clone())), "exporting", 3);
        p.add(1);
        p.add(1);
        p.add(1);
        p.finish();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        // The second and third `add` come within 200 ms of the first draw.
        assert_eq!(text, "\rexporting: 1/3 (33%)\rexporting: 3/3 (100%)\n");
        let mut silent = Progress::to(None, "x", 1);
        silent.add(1);
        silent.finish();
    }
}

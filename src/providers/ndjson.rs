//! Incremental parser for newline-delimited JSON (Ollama's streaming format,
//! <https://github.com/ollama/ollama/blob/main/docs/api.md>): one JSON value per line, lines
//! ending in `\n` (a `\r` before it is dropped), empty lines skipped. Bytes may arrive split
//! anywhere, including inside a multi-byte character, or many lines per read.

use super::event_size::EventSizes;
use serde_json::Value;

/// Buffers bytes and yields whole lines parsed as JSON.
#[derive(Debug, Default)]
pub struct NdjsonParser {
    buf: Vec<u8>,
    sizes: EventSizes,
}

/// A line that is not JSON: its text (shortened) and the parse error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// The start of the line.
    pub line: String,
    /// serde_json's message.
    pub error: String,
}

impl NdjsonParser {
    /// A parser with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `bytes`; returns the values of the lines they complete, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Result<Value, BadLine>> {
        // What is buffered holds no line end: only the new bytes are searched for one.
        let mut from = self.buf.len();
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(pos) = memchr::memchr(b'\n', &self.buf[from..]) {
            let end = from + pos;
            self.sizes.whole_event(end + 1 - start);
            if let Some(v) = parse_line(&self.buf[start..end]) {
                out.push(v);
            }
            start = end + 1;
            from = start;
        }
        self.buf.drain(..start);
        out
    }

    /// The size in bytes of the longest line completed since the last call (its `\n`
    /// included), or of the unfinished one when it is longer already; see [`EventSizes`].
    /// Called after each [`NdjsonParser::push`], it sees every line.
    pub fn take_largest_event(&mut self) -> usize {
        self.sizes.take_largest(self.buf.len())
    }

    /// Ends the input: a last line without `\n` is still parsed.
    pub fn finish(&mut self) -> Option<Result<Value, BadLine>> {
        let rest = std::mem::take(&mut self.buf);
        parse_line(&rest)
    }
}

fn parse_line(line: &[u8]) -> Option<Result<Value, BadLine>> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    Some(crate::api::json::from_bytes(line).map_err(|e| {
        let text = String::from_utf8_lossy(line);
        BadLine {
            line: text.chars().take(200).collect(),
            error: e.to_string(),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const STREAM: &str = "{\"message\":{\"content\":\"h\u{e9}llo \u{1F600}\"},\"done\":false}\n\n{\"message\":{\"content\":\"a\\nb\"},\"done\":false}\r\n{\"done\":true,\"eval_count\":3}\n";

    fn expected() -> Vec<Value> {
        vec![
            json!({"message":{"content":"h\u{e9}llo \u{1F600}"},"done":false}),
            json!({"message":{"content":"a\nb"},"done":false}),
            json!({"done":true,"eval_count":3}),
        ]
    }

    fn parse_in_pieces(bytes: &[u8], cuts: &[usize]) -> Vec<Value> {
        let mut p = NdjsonParser::new();
        let mut out = Vec::new();
        let mut last = 0;
        for &c in cuts {
            let c = c.min(bytes.len()).max(last);
            out.extend(p.push(&bytes[last..c]));
            last = c;
        }
        out.extend(p.push(&bytes[last..]));
        out.extend(p.finish());
        out.into_iter().map(|r| r.unwrap()).collect()
    }

    #[test]
    fn one_byte_per_read_and_whole() {
        let b = STREAM.as_bytes();
        assert_eq!(parse_in_pieces(b, &[]), expected());
        let cuts: Vec<usize> = (1..b.len()).collect();
        assert_eq!(parse_in_pieces(b, &cuts), expected());
    }

    #[test]
    fn last_line_without_newline_and_bad_lines() {
        let mut p = NdjsonParser::new();
        assert!(p.push(b"{\"a\":1}").is_empty());
        assert_eq!(p.finish(), Some(Ok(json!({"a":1}))));
        let mut p = NdjsonParser::new();
        let got = p.push(b"not json\n");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].as_ref().unwrap_err().line, "not json");
    }

    proptest! {
        /// However the bytes are split, the longest line (its `\n` included) is seen after
        /// the pushes, exactly.
        #[test]
        fn the_longest_line_is_seen_however_split(
            lens in proptest::collection::vec(2usize..3000, 1..8),
            mut cuts in proptest::collection::vec(0usize..20_000, 0..12),
        ) {
            let text: String = lens
                .iter()
                .map(|&n| format!("\"{}\"\n", "x".repeat(n)))
                .collect();
            cuts.sort_unstable();
            let mut p = NdjsonParser::new();
            let (mut seen, mut last, mut values) = (0, 0, 0);
            for c in cuts.into_iter().chain([text.len()]) {
                let c = c.min(text.len()).max(last);
                values += p.push(&text.as_bytes()[last..c]).len();
                seen = seen.max(p.take_largest_event());
                last = c;
            }
            prop_assert_eq!(values, lens.len());
            prop_assert_eq!(seen, lens.iter().max().unwrap() + 3);
        }

        #[test]
        fn any_split_points_give_the_same_values(mut cuts in proptest::collection::vec(0usize..120, 0..12)) {
            cuts.sort_unstable();
            prop_assert_eq!(parse_in_pieces(STREAM.as_bytes(), &cuts), expected());
        }
    }
}

//! Incremental Server-Sent Events parser for upstream streams.
//!
//! Follows the WHATWG event-stream rules
//! (<https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation>):
//! lines end in `\n`, `\r\n` or `\r`; an empty line dispatches the event; several `data:` lines
//! are joined with `\n`; one space after the colon is dropped; `:` lines are comments; events
//! with an empty data buffer are not dispatched. Bytes may arrive split anywhere (inside a
//! prefix, a JSON string or a multi-byte character) or many events per read.

use super::event_size::EventSizes;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, when the upstream set one (Anthropic does).
    pub event: Option<String>,
    /// The data buffer, `data:` lines joined by `\n`.
    pub data: String,
}

/// Buffers bytes and yields whole events.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    event: Option<String>,
    sizes: EventSizes,
}

impl SseParser {
    /// A parser with empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `bytes`; returns the events completed by them, in order. Lines are read in
    /// place: from `bytes` itself when nothing is buffered (the usual case, one or more whole
    /// events per read), and only an unfinished line is kept for the next call.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        if self.buf.is_empty() {
            let used = self.lines(bytes, 0, &mut events);
            self.buf.extend_from_slice(&bytes[used..]);
        } else {
            // The buffered line holds no line end but perhaps a last `\r`: only the new bytes
            // and that `\r` are searched (searching it all again made a line dribbled in
            // small reads cost its length squared).
            let searched = self.buf.len() - 1;
            let mut buf = std::mem::take(&mut self.buf);
            buf.extend_from_slice(bytes);
            let used = self.lines(&buf, searched, &mut events);
            buf.drain(..used);
            self.buf = buf;
        }
        events
    }

    /// Reads the whole lines of `text` into `events`; returns how many bytes they took. The
    /// first line end is searched from `from` (the bytes before it hold none).
    fn lines(&mut self, text: &[u8], from: usize, events: &mut Vec<SseEvent>) -> usize {
        let mut start = 0;
        let mut search = from;
        while let Some(off) = memchr::memchr2(b'\n', b'\r', &text[search..]) {
            let i = search + off;
            if text[i] == b'\r' && i + 1 == text.len() {
                // A lone `\r` at the end might be the first half of `\r\n`: wait.
                break;
            }
            let next = if text[i] == b'\r' && text.get(i + 1) == Some(&b'\n') {
                i + 2
            } else {
                i + 1
            };
            self.sizes.add(next - start);
            if i == start {
                self.sizes.end_event();
            }
            if let Some(ev) = self.line(&text[start..i]) {
                events.push(ev);
            }
            start = next;
            search = next;
        }
        start
    }

    /// The size in bytes of the largest event completed since the last call (from its first
    /// line to its blank line, comments and fields included), or of the unfinished one when
    /// it is larger already; see [`EventSizes`]. Called after each [`SseParser::push`], it
    /// sees every event: one over a cap is caught however the bytes were split.
    pub fn take_largest_event(&mut self) -> usize {
        self.sizes.take_largest(self.buf.len())
    }

    /// Ends the input: a last event not followed by a blank line is still dispatched.
    pub fn finish(&mut self) -> Option<SseEvent> {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            let line: &[u8] = rest.strip_suffix(b"\r").unwrap_or(&rest);
            if let Some(ev) = self.line(line) {
                return Some(ev);
            }
        }
        self.dispatch()
    }

    fn line(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(p) => {
                let v = &line[p + 1..];
                (&line[..p], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {} // id, retry and unknown fields are ignored.
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        // Valid UTF-8 (the usual case) becomes the event's text without a copy.
        let data = String::from_utf8(std::mem::take(&mut self.data))
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        if data.is_empty() {
            return None;
        }
        Some(SseEvent { event, data })
    }
}

/// Splits an event stream into whole events, each with its exact bytes (its lines and the
/// blank line that ends it), by the same line rules as [`SseParser`]: lines end in `\n`,
/// `\r\n` or `\r`, mixed as they come, and an empty line ends an event (blank lines before
/// an event's first line are part of that event, up to [`MAX_LEAD`] bytes of them). For streams that are
/// forwarded as they came (the native dialects), where [`SseParser`] keeps only the fields.
/// Most bytes of blank lines an [`EventSplitter`] keeps before an event's first line; past
/// it they are handed on as a piece of their own.
pub const MAX_LEAD: usize = 64 * 1024;

#[derive(Debug, Default)]
pub struct EventSplitter {
    /// The unfinished event's bytes (it starts at `buf[0]`).
    buf: Vec<u8>,
    /// Where its current line starts in `buf`.
    line_start: usize,
    /// Where the next search for a line end starts (the bytes before hold none).
    search: usize,
    /// Whether the unfinished event has a line that is not blank yet.
    has_line: bool,
    /// Bytes of blank lines before the unfinished event's first line: kept with it, to be
    /// forwarded as they came, but not counted in its size (they dispatch nothing).
    lead: usize,
}

impl EventSplitter {
    /// A splitter with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `bytes`; appends the events they complete to `out`, in order, and returns the
    /// size in bytes of the largest of them without the blank lines before its first line
    /// (0 when none was completed), for `max_stream_event_bytes`. Only the new bytes are searched, and the buffer is trimmed
    /// once per call, however many events it held.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Vec<u8>>) -> usize {
        self.buf.extend_from_slice(bytes);
        let buf = &self.buf;
        let (mut event_start, mut largest) = (0, 0);
        let mut i = self.search;
        loop {
            let Some(off) = memchr::memchr2(b'\n', b'\r', &buf[i..]) else {
                i = buf.len();
                break;
            };
            let end = i + off;
            if buf[end] == b'\r' && end + 1 == buf.len() {
                // A lone `\r` at the end might be the first half of `\r\n`: wait.
                i = end;
                break;
            }
            let next = if buf[end] == b'\r' && buf[end + 1] == b'\n' {
                end + 2
            } else {
                end + 1
            };
            // A blank line ends an event; one before any line of an event (a stream that
            // starts with one, or two in a row) stays with the event that follows.
            if end > self.line_start {
                self.has_line = true;
            } else if self.has_line {
                out.push(buf[event_start..next].to_vec());
                largest = largest.max(next - event_start - self.lead);
                event_start = next;
                self.has_line = false;
                self.lead = 0;
            } else {
                self.lead = next - event_start;
                if self.lead > MAX_LEAD {
                    // More blank lines than keep-alives ever send: handed on by themselves
                    // (they dispatch nothing) rather than held, so memory stays bounded.
                    out.push(buf[event_start..next].to_vec());
                    event_start = next;
                    self.lead = 0;
                }
            }
            self.line_start = next;
            i = next;
        }
        self.buf.drain(..event_start);
        self.line_start -= event_start;
        self.search = i - event_start;
        largest
    }

    /// The unfinished event's size so far, in bytes, without the blank lines before its
    /// first line (a run of blank lines alone is no event, however long).
    pub fn pending(&self) -> usize {
        self.buf.len() - self.lead
    }

    /// Ends the input: the unfinished event's bytes (a last event without its blank line),
    /// if any.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        self.line_start = 0;
        self.search = 0;
        self.has_line = false;
        self.lead = 0;
        (!self.buf.is_empty()).then(|| std::mem::take(&mut self.buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STREAM: &str = "data: {\"a\":\"h\u{e9}llo \u{1F600}\"}\n\n: keep-alive\n\nretry: 3000\n\nid: 7\n\nevent: message_start\ndata: {\"b\":1}\n\ndata: line1\ndata: line2\n\ndata:[DONE]\n\n";

    fn expected() -> Vec<SseEvent> {
        vec![
            SseEvent {
                event: None,
                data: "{\"a\":\"h\u{e9}llo \u{1F600}\"}".into(),
            },
            SseEvent {
                event: Some("message_start".into()),
                data: "{\"b\":1}".into(),
            },
            SseEvent {
                event: None,
                data: "line1\nline2".into(),
            },
            SseEvent {
                event: None,
                data: "[DONE]".into(),
            },
        ]
    }

    fn parse_in_pieces(bytes: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        let mut last = 0;
        for &c in cuts {
            let c = c.min(bytes.len()).max(last);
            out.extend(p.push(&bytes[last..c]));
            last = c;
        }
        out.extend(p.push(&bytes[last..]));
        out.extend(p.finish());
        out
    }

    #[test]
    fn whole_stream_in_one_read() {
        assert_eq!(parse_in_pieces(STREAM.as_bytes(), &[]), expected());
    }

    #[test]
    fn one_byte_per_read() {
        let b = STREAM.as_bytes();
        let cuts: Vec<usize> = (1..b.len()).collect();
        assert_eq!(parse_in_pieces(b, &cuts), expected());
    }

    #[test]
    fn crlf_and_cr_line_endings() {
        let crlf = STREAM.replace('\n', "\r\n");
        let cuts: Vec<usize> = (1..crlf.len()).collect();
        assert_eq!(parse_in_pieces(crlf.as_bytes(), &cuts), expected());
        let cr = STREAM.replace('\n', "\r");
        assert_eq!(parse_in_pieces(cr.as_bytes(), &[]), expected());
    }

    #[test]
    fn last_event_without_blank_line() {
        assert_eq!(
            parse_in_pieces(b"data: x", &[]),
            vec![SseEvent {
                event: None,
                data: "x".into()
            }]
        );
    }

    /// Events of the given sizes in bytes (each at least 8: `data: ` + one byte + `\n` + the
    /// blank line), some with a comment and an `event:` line, with `eol` line ends.
    fn events_of_sizes(sizes: &[usize], eol: &str) -> String {
        let mut text = String::new();
        for (k, &n) in sizes.iter().enumerate() {
            let mut ev = String::new();
            if k % 3 == 1 {
                ev.push_str(": ping");
                ev.push_str(eol);
                ev.push_str("event: e");
                ev.push_str(eol);
            }
            let fixed = ev.len() + "data: ".len() + 2 * eol.len();
            ev.push_str("data: ");
            ev.push_str(&"x".repeat(n.saturating_sub(fixed).max(1)));
            ev.push_str(eol);
            ev.push_str(eol);
            text.push_str(&ev);
        }
        text
    }

    #[test]
    fn a_big_event_completed_with_a_small_one_in_one_read_is_seen() {
        let text = format!("data: a\n\ndata: {}\n\n", "x".repeat(5000));
        let mut p = SseParser::new();
        assert_eq!(p.push(text.as_bytes()).len(), 2);
        assert_eq!(p.take_largest_event(), 5008);
        assert_eq!(p.take_largest_event(), 0);
        // Unfinished: the event's lines so far and its unfinished line.
        p.push(b"event: e\ndata: 12");
        assert_eq!(p.take_largest_event(), 17);
        p.push(b"34\n\n");
        assert_eq!(p.take_largest_event(), 21);
    }

    /// A flood of blank lines is handed on in pieces of at most [`MAX_LEAD`] (and a line),
    /// never held whole: memory stays bounded, every byte is forwarded once, in order.
    #[test]
    fn a_flood_of_blank_lines_is_handed_on_in_bounded_pieces() {
        let mut s = EventSplitter::new();
        let mut raws = Vec::new();
        for _ in 0..1000 {
            assert_eq!(s.push(&[b'\n'; 1000], &mut raws), 0);
            assert!(s.buf.len() <= MAX_LEAD + 1, "{}", s.buf.len());
            assert_eq!(s.pending(), 0);
        }
        assert_eq!(s.push(b"data: 1\n\n", &mut raws), 9);
        let total: usize = raws.iter().map(Vec::len).sum();
        assert_eq!(total, 1_000_000 + 9);
        assert!(raws.iter().all(|r| r.len() <= MAX_LEAD + 1));
        assert!(
            raws[..raws.len() - 1]
                .iter()
                .all(|r| r.iter().all(|&c| c == b'\n'))
        );
        assert!(raws[raws.len() - 1].ends_with(b"data: 1\n\n"));
    }

    /// Blank lines alone are no event, however many: they are kept for the event that
    /// follows (forwarded as they came) but not counted in its size. (Counted, a stream of
    /// blank-line keep-alives gave a false 502 once they added up to the cap.)
    #[test]
    fn blank_lines_alone_count_for_no_event_size() {
        let mut s = EventSplitter::new();
        let mut raws = Vec::new();
        for _ in 0..5000 {
            assert_eq!(s.push(b"\n", &mut raws), 0);
            assert_eq!(s.pending(), 0);
        }
        // A lone `\r` at the end waits (it may be half of `\r\n`): one byte of a line.
        assert_eq!(s.push(b"\r\n\r", &mut raws), 0);
        assert_eq!(s.pending(), 1);
        assert_eq!(s.push(b"\r\n", &mut raws), 0);
        assert_eq!(s.pending(), 0);
        assert_eq!(s.push(b"data: 1", &mut raws), 0);
        assert_eq!(s.pending(), 7);
        assert_eq!(s.push(b"\n\n", &mut raws), 9);
        assert_eq!(raws.len(), 1);
        assert_eq!(raws[0].len(), 5000 + 5 + 9);
        assert_eq!(s.pending(), 0);
        assert_eq!(s.push(b"\n\ndata: 2\n\n", &mut raws), 9);
        assert_eq!(raws[1], b"\n\ndata: 2\n\n");
    }

    /// An event stream of `events` (each 0–2 blank lines, as `leads` picks, then a list of
    /// lines, then a blank line), with each line ending as `ends` picks (`\n`, `\r\n`, `\r`,
    /// cycling); a blank line after a `\r` ends in `\r` too (`\r` then `\n` would be one line
    /// end). Returns the text, each event's exact bytes, and each event's size without its
    /// leading blank lines.
    fn mixed_stream(
        events: &[Vec<String>],
        ends: &[u8],
        leads: &[u8],
    ) -> (String, Vec<String>, Vec<usize>) {
        let mut k = 0;
        let mut next_end = || {
            k += 1;
            ["\n", "\r\n", "\r"][usize::from(ends[k % ends.len()] % 3)]
        };
        let (mut raws, mut sizes) = (Vec::new(), Vec::new());
        let mut last = "\n";
        for (i, lines) in events.iter().enumerate() {
            let mut raw = String::new();
            for _ in 0..leads[i % leads.len()] % 3 {
                last = match (last, next_end()) {
                    ("\r", _) => "\r",
                    (_, e) => e,
                };
                raw.push_str(last);
            }
            let lead = raw.len();
            for line in lines {
                last = next_end();
                raw.push_str(line);
                raw.push_str(last);
            }
            last = match (last, next_end()) {
                ("\r", _) => "\r",
                (_, e) => e,
            };
            raw.push_str(last);
            sizes.push(raw.len() - lead);
            raws.push(raw);
        }
        (raws.concat(), raws, sizes)
    }

    proptest! {
        /// However the bytes are split, the line ends mixed and blank lines put before events,
        /// the splitter gives each event with its exact bytes (its blank lines before it
        /// included), and the largest size it reports is the largest event's without them.
        #[test]
        fn the_splitter_gives_each_events_exact_bytes_however_split(
            events in proptest::collection::vec(
                proptest::collection::vec("[a-z: {}\"]{1,12}", 1..4), 1..6),
            ends in proptest::collection::vec(any::<u8>(), 1..8),
            leads in proptest::collection::vec(any::<u8>(), 1..8),
            mut cuts in proptest::collection::vec(0usize..300, 0..12),
        ) {
            let (text, expected, sizes) = mixed_stream(&events, &ends, &leads);
            cuts.sort_unstable();
            let mut splitter = EventSplitter::new();
            let (mut raws, mut largest, mut last) = (Vec::new(), 0, 0);
            for c in cuts.into_iter().chain([text.len()]) {
                let c = c.min(text.len()).max(last);
                largest = largest.max(splitter.push(&text.as_bytes()[last..c], &mut raws));
                last = c;
            }
            // A stream ending in `\r` completes its last event only at its end.
            largest = largest.max(splitter.pending());
            raws.extend(splitter.finish());
            let raws: Vec<String> = raws.into_iter().map(|r| String::from_utf8(r).unwrap()).collect();
            prop_assert_eq!(&raws, &expected);
            prop_assert_eq!(largest, sizes.into_iter().max().unwrap());
            // The parser reads the same events out of the same text.
            let mut p = SseParser::new();
            let mut parsed = p.push(text.as_bytes());
            parsed.extend(p.finish());
            let with_data = events
                .iter()
                .filter(|lines| lines.iter().any(|l| l.starts_with("data")))
                .count();
            prop_assert_eq!(parsed.len(), with_data);
        }

        /// However the bytes are split, the largest size reported after the pushes is the
        /// largest event's exact size (so one over a cap is always caught), and never more.
        #[test]
        fn the_largest_event_is_seen_however_split(
            sizes in proptest::collection::vec(8usize..3000, 1..8),
            mut cuts in proptest::collection::vec(0usize..20_000, 0..12),
            crlf in any::<bool>(),
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let text = events_of_sizes(&sizes, eol);
            let expected: Vec<usize> = text
                .split_inclusive(&format!("{eol}{eol}"))
                .map(str::len)
                .collect();
            cuts.sort_unstable();
            let mut p = SseParser::new();
            let (mut seen, mut last) = (0, 0);
            for c in cuts.into_iter().chain([text.len()]) {
                let c = c.min(text.len()).max(last);
                p.push(&text.as_bytes()[last..c]);
                seen = seen.max(p.take_largest_event());
                last = c;
            }
            prop_assert_eq!(seen, *expected.iter().max().unwrap());
        }

        #[test]
        fn any_split_points_give_the_same_events(mut cuts in proptest::collection::vec(0usize..200, 0..12)) {
            cuts.sort_unstable();
            let crlf = STREAM.replace('\n', "\r\n");
            for text in [STREAM.to_string(), crlf] {
                prop_assert_eq!(parse_in_pieces(text.as_bytes(), &cuts), expected());
            }
        }
    }
}

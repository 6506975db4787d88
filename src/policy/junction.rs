//! Personal data split over two strings that a model reads as one run of text: an email as
//! `alice@` in one text part and `example.com` in the next, a card number over two messages.
//! Each string alone holds nothing the detectors match; the model sees them joined.
//!
//! Two strings are *neighbours* when their paths have the same shape — equal once their
//! array indexes are left out, a text part's `text` counting as the field that holds the parts
//! — and the second comes later: `messages[0].content[0].text` and
//! `messages[0].content[1].text` (or `…content[3].text`, past an image part, or
//! `messages[1].content[0].text`, the next message's first block), `messages[2].content` and
//! `messages[3].content` or `messages[3].content[0].text`, `input[0]` and `input[1]`. For each non-empty string, the last
//! string of the same shape before it is its neighbour: the last [`WINDOW`] bytes of that one
//! and the first [`WINDOW`] bytes of this one are scanned joined, and only matches that
//! straddle the seam count (the rest were found in the strings themselves). The request scan
//! ([`super::pii::Detector::scan_request`]) and the egress check ([`super::egress`]) both use
//! it, so they agree.

use super::pii::Detector;

/// Bytes of each side of a seam that are scanned joined: longer than any item the detectors
/// know in practice (an IBAN with spaces is at most 42 characters, a card with separators 23).
pub const WINDOW: usize = 128;

/// How many shapes are remembered at once (the oldest is dropped past it).
pub const SHAPES: usize = 64;

/// Follows the strings of one request in document order (see the module docs): for each shape
/// met, the path and tail of its last non-empty string, in buffers reused from string to string
/// and, through a spare kept per thread, from request to request ([`Seams::new`]).
#[derive(Debug, Default)]
pub struct Seams {
    buf: Buffers,
}

/// The buffers of a [`Seams`]: `last[..used]` are the shapes met so far, the entries past
/// `used` are spare strings of earlier requests.
#[derive(Debug, Default)]
struct Buffers {
    /// (shape, path, tail), the most recently used last.
    last: Vec<(String, String, String)>,
    used: usize,
    shape: String,
    joined: String,
    before: String,
}

thread_local! {
    /// The buffers of the last [`Seams`] dropped on this thread.
    static SPARE: std::cell::Cell<Option<Buffers>> = const { std::cell::Cell::new(None) };
}

/// Most bytes of buffers kept as a thread's spare: a request with huge paths (a client's
/// keys) leaves its buffers to be freed, not kept.
const SPARE_BYTES: usize = 64 * 1024;

impl Drop for Seams {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        // Emptied before they wait for the next request: nothing of this one's text is read
        // again, and the kept capacity is bounded.
        buf.used = 0;
        let mut kept = buf.shape.capacity() + buf.joined.capacity() + buf.before.capacity();
        for s in [&mut buf.shape, &mut buf.joined, &mut buf.before] {
            s.clear();
        }
        for (shape, path, tail) in &mut buf.last {
            kept += shape.capacity() + path.capacity() + tail.capacity();
            shape.clear();
            path.clear();
            tail.clear();
        }
        if kept > SPARE_BYTES {
            return;
        }
        // At thread exit the spare may be gone already: the buffers are then just freed.
        let _ = SPARE.try_with(|s| s.set(Some(buf)));
    }
}

/// A match across a seam.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeamMatch {
    /// The detector's kind (`email`, `card`, …).
    pub kind: String,
    /// Characters of the match in the second string (from its start).
    pub chars_after: usize,
}

impl Seams {
    /// A tracker for one request, with this thread's spare buffers when it has them.
    pub fn new() -> Seams {
        let mut buf = SPARE
            .try_with(|s| s.take())
            .ok()
            .flatten()
            .unwrap_or_default();
        buf.used = 0;
        Seams { buf }
    }

    /// Takes the next string, `text` at `path`: the matches that straddle its seam with its
    /// neighbour (the last non-empty string of the same shape; empty when there is none), and
    /// that neighbour's path (valid until the next call). Empty strings are skipped.
    pub fn next(&mut self, detector: &Detector, path: &str, text: &str) -> (Vec<SeamMatch>, &str) {
        let mut found = Vec::new();
        let b = &mut self.buf;
        b.before.clear();
        if text.is_empty() {
            return (found, &b.before);
        }
        shape_of(path, &mut b.shape);
        let slot = match b.last[..b.used].iter().position(|(s, _, _)| *s == b.shape) {
            Some(i) => {
                let (_, before, tail) = &b.last[i];
                b.before.push_str(before);
                b.joined.clear();
                b.joined.push_str(tail);
                let seam = b.joined.len();
                b.joined.push_str(head(text, WINDOW));
                for m in detector.scan(&b.joined) {
                    if m.start < seam && m.end > seam {
                        found.push(SeamMatch {
                            kind: m.kind,
                            chars_after: b.joined[seam..m.end].chars().count(),
                        });
                    }
                }
                i
            }
            None => {
                if b.used == SHAPES {
                    // The oldest shape is forgotten; its strings are reused.
                    b.last[..SHAPES].rotate_left(1);
                    b.used -= 1;
                }
                if b.used == b.last.len() {
                    b.last.push(Default::default());
                }
                b.last[b.used].0.clear();
                b.last[b.used].0.push_str(&b.shape);
                b.used += 1;
                b.used - 1
            }
        };
        let entry = &mut b.last[slot];
        entry.1.clear();
        entry.1.push_str(path);
        entry.2.clear();
        entry.2.push_str(tail(text, WINDOW));
        (found, &b.before)
    }
}

/// `path` with every array index left out, into `out`; a text part's `text` takes the shape
/// of the field holding the parts (`messages[].content[].text` → `messages[].content`,
/// `system[].text` → `system`), so a string `content` and the text parts of the next message
/// are neighbours, as the model reads them.
fn shape_of(path: &str, out: &mut String) {
    indexes_left_out(path, out);
    if let Some(holder) = out.strip_suffix("[].text") {
        let len = holder.len();
        out.truncate(len);
    }
}

/// `path` with every array index left out (`messages[].content[].text`), into `out`.
fn indexes_left_out(path: &str, out: &mut String) {
    out.clear();
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push('[');
            }
            ']' if in_index => {
                in_index = false;
                out.push(']');
            }
            c if in_index && c.is_ascii_digit() => {}
            c => {
                in_index = false;
                out.push(c);
            }
        }
    }
}

/// The first `n` bytes of `s`, shortened to a character boundary.
fn head(s: &str, n: usize) -> &str {
    let mut end = n.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The last `n` bytes of `s`, shortened to a character boundary.
fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_leave_out_array_indexes_and_text_parts() {
        let mut out = String::new();
        for (path, shape) in [
            ("messages[0].content[12].text", "messages[].content"),
            ("messages[3].content", "messages[].content"),
            ("system[1].text", "system"),
            ("input[0].content[2].text", "input[].content"),
            (
                "tools[0].function.description",
                "tools[].function.description",
            ),
            ("input[3]", "input[]"),
            ("metadata.имя", "metadata.имя"),
            ("metadata.a[b]", "metadata.a[b]"),
            (
                "tools[0].function.parameters.properties.x[1",
                "tools[].function.parameters.properties.x[",
            ),
        ] {
            shape_of(path, &mut out);
            assert_eq!(out, shape, "{path}");
        }
    }

    /// The buffers a request leaves to the next on its thread carry no strings over: the
    /// first string of a request has no neighbour, whatever the last request ended with.
    #[test]
    fn a_request_never_sees_the_strings_of_the_one_before() {
        use crate::config::PiiConfig;
        let d = Detector::new(&PiiConfig::default()).unwrap();
        let mut first = Seams::new();
        let (found, _) = first.next(&d, "messages[0].content", "mail ana@");
        assert!(found.is_empty());
        drop(first);
        let mut second = Seams::new();
        let (found, before) = second.next(&d, "messages[0].content", "example.com please");
        assert_eq!((found, before), (vec![], ""));
        let (found, before) = second.next(&d, "messages[1].content", "4111 1111");
        assert_eq!((found.len(), before), (0, "messages[0].content"));
        // More shapes than are remembered: the oldest is forgotten, the rest still pair.
        let mut many = Seams::new();
        for i in 0..SHAPES + 3 {
            many.next(&d, &format!("f{i}"), "x");
        }
        assert_eq!(many.next(&d, "f0", "y").1, "");
        assert_eq!(
            many.next(&d, &format!("f{}", SHAPES + 2), "y").1,
            format!("f{}", SHAPES + 2)
        );
        drop(many);
        let mut again = Seams::new();
        assert_eq!(again.next(&d, "f5", "z").1, "");
    }

    #[test]
    fn the_neighbour_is_the_last_non_empty_string_of_the_same_shape() {
        use crate::config::PiiConfig;
        let d = Detector::new(&PiiConfig::default()).unwrap();
        let mut seams = Seams::new();
        let mut kinds_at = |path: &str, text: &str| {
            let (found, before) = seams.next(&d, path, text);
            (
                found.into_iter().map(|m| m.kind).collect::<Vec<_>>(),
                before.to_string(),
            )
        };
        assert_eq!(
            kinds_at("messages[0].content[0].text", "mail ana@"),
            (vec![], String::new())
        );
        assert_eq!(
            kinds_at("messages[0].content[0].type", "text"),
            (vec![], String::new())
        );
        // An empty part, an image part and a name between them change nothing.
        assert_eq!(
            kinds_at("messages[0].content[1].text", "").0,
            Vec::<String>::new()
        );
        assert_eq!(
            kinds_at(
                "messages[0].content[2].image_url.url",
                "https://x.example/a.png"
            )
            .0,
            Vec::<String>::new()
        );
        assert_eq!(kinds_at("messages[0].name", "бо").0, Vec::<String>::new());
        assert_eq!(
            kinds_at("messages[1].content[0].text", "example.com"),
            (
                vec!["email".to_string()],
                "messages[0].content[0].text".to_string()
            )
        );
        // Keys that share a multi-byte first character (a panic once).
        assert_eq!(kinds_at("metadata.имя", "a").0, Vec::<String>::new());
        assert_eq!(kinds_at("metadata.город", "b").0, Vec::<String>::new());
        assert_eq!(
            kinds_at("a[18446744073709551615]", "c").0,
            Vec::<String>::new()
        );
    }

    #[test]
    fn head_and_tail_keep_whole_characters() {
        assert_eq!(head("ééé", 3), "é");
        assert_eq!(tail("ééé", 3), "é");
        assert_eq!(head("ab", 128), "ab");
        assert_eq!(tail("ab", 128), "ab");
    }
}

//! Personal data split over two strings that a model reads as one run of text: an email as
//! `alice@` in one text part and `example.com` in the next, a card number over two messages.
//! Each string alone holds nothing the detectors match; the model sees them joined.
//!
//! Two strings are *neighbours* when their paths differ only in one array index, by one, with
//! the same rest: `messages[0].content[0].text` and `messages[0].content[1].text`,
//! `messages[2].content` and `messages[3].content`, `input[0]` and `input[1]`. For each pair
//! of neighbours met one after the other, the last [`WINDOW`] bytes of the first and the first
//! [`WINDOW`] bytes of the second are scanned joined, and only matches that straddle the seam
//! count (the rest were found in the strings themselves). The request scan
//! ([`super::pii::Detector::scan_request`]) and the egress check ([`super::egress`]) both use
//! it, so they agree.

use super::pii::Detector;

/// Bytes of each side of a seam that are scanned joined: longer than any item the detectors
/// know in practice (an IBAN with spaces is at most 42 characters, a card with separators 23).
pub const WINDOW: usize = 128;

/// How many strings back a neighbour is looked for: between two text parts come their `type`
/// tags, and other small fields (`cache_control`, `name`).
pub const LOOK_BACK: usize = 8;

/// Follows the strings of one request in document order (see the module docs): the last
/// [`LOOK_BACK`] strings' paths and tails, in buffers reused from string to string.
#[derive(Debug, Default)]
pub struct Seams {
    ring: Vec<(String, String)>,
    next_slot: usize,
    joined: String,
    before: String,
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
    /// Takes the next string, `text` at `path`: the matches that straddle its seam with the
    /// latest of the last [`LOOK_BACK`] strings that is its neighbour (empty when none is),
    /// and that neighbour's path (valid until the next call).
    pub fn next(&mut self, detector: &Detector, path: &str, text: &str) -> (Vec<SeamMatch>, &str) {
        let mut found = Vec::new();
        self.before.clear();
        let n = self.ring.len();
        let neighbour = (1..=n)
            .map(|back| (self.next_slot + n - back) % n)
            .find(|&i| neighbours(&self.ring[i].0, path));
        if let Some(i) = neighbour
            && !text.is_empty()
        {
            let (before, tail) = &self.ring[i];
            self.before.push_str(before);
            self.joined.clear();
            self.joined.push_str(tail);
            let seam = self.joined.len();
            self.joined.push_str(head(text, WINDOW));
            for m in detector.scan(&self.joined) {
                if m.start < seam && m.end > seam {
                    found.push(SeamMatch {
                        kind: m.kind,
                        chars_after: self.joined[seam..m.end].chars().count(),
                    });
                }
            }
        }
        if n < LOOK_BACK {
            self.ring.push((String::new(), String::new()));
        }
        let slot = &mut self.ring[self.next_slot % LOOK_BACK];
        slot.0.clear();
        slot.0.push_str(path);
        slot.1.clear();
        slot.1.push_str(tail(text, WINDOW));
        self.next_slot = (self.next_slot + 1) % LOOK_BACK;
        (found, &self.before)
    }
}

/// Whether `a` and `b` differ only in one array index, `b`'s being `a`'s plus one.
pub fn neighbours(a: &str, b: &str) -> bool {
    let common = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    let Some(open) = a[..common].rfind('[') else {
        return false;
    };
    if !a[open + 1..common].bytes().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let (Some(ca), Some(cb)) = (a[open..].find(']'), b[open..].find(']')) else {
        return false;
    };
    let index = |s: &str, close: usize| s[open + 1..open + close].parse::<usize>().ok();
    match (index(a, ca), index(b, cb)) {
        (Some(x), Some(y)) => y == x + 1 && a[open + ca..] == b[open + cb..],
        _ => false,
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
    fn neighbours_differ_in_one_index_by_one() {
        for (a, b, want) in [
            (
                "messages[0].content[0].text",
                "messages[0].content[1].text",
                true,
            ),
            ("messages[2].content", "messages[3].content", true),
            ("messages[9].content", "messages[10].content", true),
            ("input[12]", "input[13]", true),
            (
                "messages[0].content[0].text",
                "messages[0].content[2].text",
                false,
            ),
            ("messages[1].content", "messages[0].content", false),
            ("messages[0].content", "messages[1].name", false),
            (
                "messages[0].content[0].text",
                "messages[1].content[1].text",
                false,
            ),
            ("prompt", "prompt", false),
            ("metadata.a", "metadata.b", false),
        ] {
            assert_eq!(neighbours(a, b), want, "{a} → {b}");
        }
    }

    #[test]
    fn head_and_tail_keep_whole_characters() {
        assert_eq!(head("ééé", 3), "é");
        assert_eq!(tail("ééé", 3), "é");
        assert_eq!(head("ab", 128), "ab");
        assert_eq!(tail("ab", 128), "ab");
    }
}

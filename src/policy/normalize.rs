//! The text the PII detectors read: the writing a model reads as plain ASCII, made ASCII.
//!
//! A model reads `ana\u200b@example.com` (a zero-width space inside), `ana＠example.com`
//! (full-width), `+34 612 345 678` with no-break spaces, and `ana\u0040example.com` (a JSON
//! escape left inside JSON-in-a-string, such as tool-call `arguments`) as the address or
//! number they spell. The detectors' patterns are ASCII, so [`normalize`] gives them a copy
//! in which:
//! - default-ignorable characters (zero-width spaces and joiners, soft hyphen, bidi marks and
//!   overrides, variation selectors, tags, BOM) are removed;
//! - Unicode spaces (no-break, narrow no-break, figure, thin, ideographic, …) become `' '`;
//! - Unicode hyphens and dashes and the minus sign become `'-'`;
//! - full-width forms (`U+FF01`–`U+FF5E`: `＠`, `０`–`９`, letters) and the small `﹫` become
//!   their ASCII letter;
//! - `\uXXXX` escapes (and surrogate pairs of them) become the character they name, itself
//!   normalized as above.
//!
//! Each byte of the copy keeps the range of the original text it came from, so a match in
//! the copy maps back onto the original ([`Normalized::span`]) and redaction replaces the
//! original characters, the invisible ones included.

/// A normalized copy of a text and, per byte of it, the original byte range it came from.
#[derive(Debug)]
pub struct Normalized {
    /// The copy the detectors read.
    pub text: String,
    /// Per byte of `text`: the original range `(start, end)` of the character it came from.
    from: Vec<(usize, usize)>,
}

impl Normalized {
    /// The original byte range of the copy's bytes `start..end` (a match), `start < end`.
    pub fn span(&self, start: usize, end: usize) -> (usize, usize) {
        let first = self.from.get(start).map_or(0, |r| r.0);
        let last = self.from.get(end.saturating_sub(1)).map_or(first, |r| r.1);
        (first, last.max(first))
    }
}

/// What one character becomes in the copy.
enum Becomes {
    Same,
    Dropped,
    Char(char),
}

fn becomes(c: char) -> Becomes {
    match c {
        '\u{00AD}'
        | '\u{034F}'
        | '\u{061C}'
        | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{FEFF}'
        | '\u{E0000}'..='\u{E0FFF}' => Becomes::Dropped,
        '\u{00A0}'
        | '\u{1680}'
        | '\u{2000}'..='\u{200A}'
        | '\u{202F}'
        | '\u{205F}'
        | '\u{3000}' => Becomes::Char(' '),
        '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE58}' | '\u{FE63}' => Becomes::Char('-'),
        '\u{FE6B}' => Becomes::Char('@'),
        '\u{FF01}'..='\u{FF5E}' => {
            char::from_u32(c as u32 - 0xFEE0).map_or(Becomes::Same, Becomes::Char)
        }
        _ => Becomes::Same,
    }
}

/// Whether `text` holds anything [`normalize`] would change (fast for ASCII without `\u`).
fn needs_normalizing(text: &str) -> bool {
    if text.is_ascii() {
        return text.contains("\\u");
    }
    text.contains("\\u") || text.chars().any(|c| !matches!(becomes(c), Becomes::Same))
}

/// The normalized copy of `text` (see the module docs), or `None` when it would be `text`
/// itself.
pub fn normalize(text: &str) -> Option<Normalized> {
    if !needs_normalizing(text) {
        return None;
    }
    let mut out = Normalized {
        text: String::with_capacity(text.len()),
        from: Vec::with_capacity(text.len()),
    };
    let mut rest = text.char_indices().peekable();
    while let Some((at, c)) = rest.next() {
        let (c, end) = match unescape_at(text, at) {
            Some((decoded, len)) => {
                // Skip the escape's remaining characters (all ASCII).
                for _ in 1..len {
                    rest.next();
                }
                (decoded, at + len)
            }
            None => (c, at + c.len_utf8()),
        };
        let c = match becomes(c) {
            Becomes::Dropped => continue,
            Becomes::Char(x) => x,
            Becomes::Same => c,
        };
        let mut buf = [0u8; 4];
        let s = c.encode_utf8(&mut buf);
        out.text.push_str(s);
        out.from.extend(std::iter::repeat_n((at, end), s.len()));
    }
    Some(out)
}

/// The character a `\uXXXX` escape (or a surrogate pair of two) at byte `at` of `text`
/// names, and the escape's length in bytes; `None` when there is none there.
fn unescape_at(text: &str, at: usize) -> Option<(char, usize)> {
    let hex = |from: usize| -> Option<u32> {
        let b = text.as_bytes().get(from..from + 6)?;
        if b[0] != b'\\' || b[1] != b'u' {
            return None;
        }
        u32::from_str_radix(std::str::from_utf8(&b[2..6]).ok()?, 16).ok()
    };
    let first = hex(at)?;
    if (0xD800..0xDC00).contains(&first) {
        let second = hex(at + 6)?;
        if !(0xDC00..0xE000).contains(&second) {
            return None;
        }
        let c = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
        return char::from_u32(c).map(|c| (c, 12));
    }
    char::from_u32(first).map(|c| (c, 6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_left_alone() {
        assert!(normalize("mail ana@example.com, +34 612 345 678").is_none());
        assert!(normalize("café, naïve, 東京").is_none());
    }

    #[test]
    fn invisible_wide_and_escaped_forms_become_ascii() {
        for (input, want) in [
            ("ana\u{200b}@example.com", "ana@example.com"),
            ("ana\u{FF20}example.com", "ana@example.com"),
            ("ana\u{FE6B}example.com", "ana@example.com"),
            ("+34\u{a0}612\u{202f}345\u{2009}678", "+34 612 345 678"),
            ("\u{FF14}\u{FF11}\u{FF11}\u{FF11}", "4111"),
            ("4111\u{2011}1111", "4111-1111"),
            ("ana.lopez\\u0040example.com", "ana.lopez@example.com"),
            ("x\\u00a0y \\ud83d\\ude00 \\uZZZZ", "x y \u{1F600} \\uZZZZ"),
            ("so\u{00AD}ft\u{202E}rev\u{FEFF}", "softrev"),
        ] {
            assert_eq!(
                normalize(input).map(|n| n.text).as_deref(),
                Some(want),
                "{input:?}"
            );
        }
    }

    #[test]
    fn a_match_in_the_copy_maps_onto_the_original_characters() {
        let text = "mail ana\u{200b}@exa\\u006dple.com now";
        let n = normalize(text).unwrap();
        let start = n.text.find("ana").unwrap();
        let end = n.text.find(".com").unwrap() + 4;
        let (s, e) = n.span(start, end);
        assert_eq!(&text[s..e], "ana\u{200b}@exa\\u006dple.com");
    }
}

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
//! - combining marks (`4̲1̲1̲1̲`, a decomposed `é`) are removed;
//! - the decimal digits of every other script Unicode 16 knows (Arabic-Indic `٤`, Devanagari
//!   `४`, Adlam, …) and the mathematical digits (`𝟒`) become their ASCII digit;
//! - the ideographic and other full stops (`。`, `｡`, `․`, `﹒`) become `'.'`;
//! - `\uXXXX` escapes (and surrogate pairs of them) become the character they name, itself
//!   normalized as above, and so do HTML's numeric references (`&#64;`, `&#x0040;`) and the
//!   `@` of a URL (`%40`) and of HTML (`&commat;`).
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
        '\u{0300}'..='\u{036F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE20}'..='\u{FE2F}' => Becomes::Dropped,
        '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE58}' | '\u{FE63}' => Becomes::Char('-'),
        '\u{3002}' | '\u{FF61}' | '\u{2024}' | '\u{FE52}' => Becomes::Char('.'),
        '\u{1D7CE}'..='\u{1D7FF}' => digit((c as u32 - 0x1D7CE) % 10),
        '\u{FE6B}' => Becomes::Char('@'),
        '\u{FF01}'..='\u{FF5E}' => {
            char::from_u32(c as u32 - 0xFEE0).map_or(Becomes::Same, Becomes::Char)
        }
        c if !c.is_ascii() && c.is_numeric() => match DIGIT_ZEROS
            .iter()
            .find(|z| (**z..**z + 10).contains(&(c as u32)))
        {
            Some(z) => digit(c as u32 - z),
            None => Becomes::Same,
        },
        _ => Becomes::Same,
    }
}

/// The first code point (the digit zero) of each run of ten decimal digits (category `Nd`)
/// Unicode 16 has besides ASCII's and the full-width and mathematical ones, which are mapped
/// by their own ranges (Unicode 14's from Python's `unicodedata`, and the 15 and 16 additions).
const DIGIT_ZEROS: [u32; 69] = [
    0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66,
    0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0,
    0x104A0, 0x10D30, 0x10D40, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0,
    0x11650, 0x116C0, 0x116D0, 0x116DA, 0x11730, 0x118E0, 0x11950, 0x11BF0, 0x11C50, 0x11D50,
    0x11DA0, 0x11F50, 0x16130, 0x16A60, 0x16AC0, 0x16B50, 0x16D70, 0x1CCF0, 0x1E140, 0x1E2F0,
    0x1E4F0, 0x1E5F1, 0x1E950, 0x1FBF0,
];

fn digit(value: u32) -> Becomes {
    char::from_digit(value, 10).map_or(Becomes::Same, Becomes::Char)
}

/// Whether `text` holds anything [`normalize`] would change (fast for ASCII without `\u`).
fn needs_normalizing(text: &str) -> bool {
    let escapes = || {
        memchr::memchr3_iter(b'\\', b'%', b'&', text.as_bytes())
            .any(|at| unescape_at(text, at).is_some())
    };
    if text.is_ascii() {
        return escapes();
    }
    text.chars().any(|c| !matches!(becomes(c), Becomes::Same)) || escapes()
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

/// The character an escape at byte `at` of `text` names, and the escape's length in bytes;
/// `None` when there is none there: `\uXXXX` (or a surrogate pair of two), and the `@` of a
/// URL or of HTML.
fn unescape_at(text: &str, at: usize) -> Option<(char, usize)> {
    let rest = &text.as_bytes()[at..];
    for form in [&b"%40"[..], b"&commat;"] {
        if rest.len() >= form.len() && rest[..form.len()].eq_ignore_ascii_case(form) {
            return Some(('@', form.len()));
        }
    }
    if rest.starts_with(b"&#") {
        return numeric_reference(rest);
    }
    unescape_u(text, at)
}

/// An HTML numeric character reference at the start of `rest` (`&#64;`, `&#x0040;`, at most
/// 8 digits): its character and length.
fn numeric_reference(rest: &[u8]) -> Option<(char, usize)> {
    let (radix, from) = match rest.get(2) {
        Some(b'x' | b'X') => (16, 3),
        _ => (10, 2),
    };
    let digits = rest[from..]
        .iter()
        .take(9)
        .take_while(|b| b.is_ascii_hexdigit())
        .count();
    if digits == 0 || digits > 8 || rest.get(from + digits) != Some(&b';') {
        return None;
    }
    let text = std::str::from_utf8(&rest[from..from + digits]).ok()?;
    let c = char::from_u32(u32::from_str_radix(text, radix).ok()?)?;
    Some((c, from + digits + 1))
}

/// A `\uXXXX` escape (or a surrogate pair of two) at byte `at`: its character and length.
fn unescape_u(text: &str, at: usize) -> Option<(char, usize)> {
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
        assert!(normalize("100% & 50%4 &#; &#123456789; &#xZZ; \\n").is_none());
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
            ("\u{0664}\u{0661}\u{0661}\u{0661}", "4111"),
            ("\u{096A}\u{0967}", "41"),
            ("\u{1D7D2}\u{1D7CF}\u{1D7E3}\u{1D7FF}", "4119"),
            ("4\u{0332}1\u{0332}1\u{0301}", "411"),
            (
                "ana@example\u{3002}com ana@example\u{2024}org",
                "ana@example.com ana@example.org",
            ),
            (
                "ana%40example.com ana&#64;x.io ana&#X40;y.io ana&commat;z.io",
                "ana@example.com ana@x.io ana@y.io ana@z.io",
            ),
            (
                "ana&#064;x.io ana&#x0040;y.io &#52;&#x31;11",
                "ana@x.io ana@y.io 4111",
            ),
            ("\u{1E954}\u{1E951}", "41"),
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

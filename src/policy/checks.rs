//! Candidate checks for the built-in PII detectors ([`super::pii`]): each takes the text and a
//! regex match and returns the accepted length in bytes, or `None` to reject the candidate.
//! Checksums where the format has one: Luhn for cards, mod-97 for IBANs, the check letter
//! for Spanish DNI/NIE.

fn char_before(text: &str, start: usize) -> Option<char> {
    text[..start].chars().next_back()
}

fn char_after(text: &str, end: usize) -> Option<char> {
    text[end..].chars().next()
}

pub(super) fn digits(s: &str) -> Vec<u32> {
    s.chars().filter_map(|c| c.to_digit(10)).collect()
}

pub(super) fn check_secret(text: &str, start: usize, end: usize) -> Option<usize> {
    let s = &text[start..end];
    // A key mixes digits and letters; `sk-some-long-hyphenated-words` is prose.
    let has_digit = s.chars().any(|c| c.is_ascii_digit());
    let has_alpha = s.chars().any(|c| c.is_ascii_alphabetic());
    (has_digit && has_alpha).then_some(s.len())
}

/// Luhn checksum over `ds` (most significant digit first).
pub fn luhn_ok(ds: &[u32]) -> bool {
    let sum: u32 = ds
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    !ds.is_empty() && sum.is_multiple_of(10)
}

/// A card number: 13–19 digits passing Luhn with a known issuer prefix, one kind of
/// separator at most (`4111 1111-1111 1111` is not how cards are written), not inside a longer
/// run of digits or letters (a UUID, a hash, a trace id: hex is mostly digits) nor a decimal
/// fraction (`0.4221165755827173`); `_` may touch it (`_4111…_`). The candidate is greedy, so a
/// number followed by one more digit group (`4111 1111 1111 1111 5`) is tried shorter too,
/// down to 13 digits; no allocation, at most seven Luhn sums.
pub(super) fn check_card(text: &str, start: usize, end: usize) -> Option<usize> {
    let mut before = text.as_bytes()[..start].iter().rev().take(2);
    match (before.next(), before.next()) {
        (Some(c), _) if c.is_ascii_alphanumeric() => return None,
        (Some(b'.'), Some(d)) if d.is_ascii_digit() => return None,
        _ => {}
    }
    let s = &text.as_bytes()[start..end];
    // The digits, the candidate's length up to each, and how many come before a second kind
    // of separator.
    let (mut ds, mut ends, mut n) = ([0u32; 19], [0usize; 19], 0);
    let mut separator = None;
    for (i, b) in s.iter().enumerate() {
        if b.is_ascii_digit() {
            if n == ds.len() {
                break;
            }
            ds[n] = u32::from(b - b'0');
            ends[n] = i + 1;
            n += 1;
        } else if *separator.get_or_insert(*b) != *b {
            break;
        }
    }
    if n < 13 || !known_issuer(&ds) {
        return None;
    }
    (13..=n)
        .rev()
        .find(|&k| {
            luhn_ok(&ds[..k])
                && !text
                    .as_bytes()
                    .get(start + ends[k - 1])
                    .is_some_and(u8::is_ascii_alphanumeric)
        })
        .map(|k| ends[k - 1])
}

/// Whether a card number starting with `ds` has a known issuer prefix (Visa, Mastercard,
/// American Express, Diners, JCB, UnionPay, Discover).
fn known_issuer(ds: &[u32]) -> bool {
    let prefix = |n: usize| ds.iter().take(n).fold(0u32, |a, d| a * 10 + d);
    ds[0] == 4
        || (51..=55).contains(&prefix(2))
        || (2221..=2720).contains(&prefix(4))
        || matches!(prefix(2), 34 | 37 | 35 | 36 | 38 | 30 | 62 | 65)
        || prefix(4) == 6011
        || (644..=649).contains(&prefix(3))
}

/// IBAN lengths by country: the SWIFT IBAN registry, then the countries whose banks use IBANs
/// outside it (0: length not fixed here, 15–34 accepted).
const IBAN_LENGTHS: [(&str, usize); 123] = [
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BI", 27),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DJ", 27),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FK", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HN", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("LY", 25),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MN", 20),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NI", 28),
    ("NL", 18),
    ("NO", 15),
    ("OM", 23),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("RU", 33),
    ("SA", 24),
    ("SC", 31),
    ("SD", 18),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("SO", 23),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
    ("YE", 30),
    // Outside the registry (French territories use FR's format under their own codes).
    ("AO", 0),
    ("BF", 0),
    ("BJ", 0),
    ("CF", 0),
    ("CG", 0),
    ("CI", 0),
    ("CM", 0),
    ("CV", 0),
    ("DZ", 0),
    ("GA", 0),
    ("GF", 27),
    ("GP", 27),
    ("GQ", 0),
    ("GW", 0),
    ("IR", 0),
    ("KM", 0),
    ("MA", 0),
    ("MG", 0),
    ("ML", 0),
    ("MQ", 27),
    ("MZ", 0),
    ("NE", 0),
    ("NC", 27),
    ("PF", 27),
    ("RE", 27),
    ("SN", 0),
    ("TD", 0),
    ("TG", 0),
    ("PM", 27),
    ("YT", 27),
    ("WF", 27),
    ("BL", 27),
    ("MF", 27),
    ("TF", 27),
];

/// The IBAN length of the country `text` starts with (any case; 0: not fixed here), `None`
/// for no known country.
fn iban_length(text: &[u8]) -> Option<usize> {
    let code = text.get(..2)?;
    IBAN_LENGTHS
        .iter()
        .find(|(c, _)| c.as_bytes().eq_ignore_ascii_case(code))
        .map(|(_, len)| *len)
}

/// IBAN check: a known country at its length (any case), the letters after the check digits
/// all of one case (`GB82WEST…`, `gb82west…`; random base64, which a binary payload's text is,
/// mixes them), and ISO 13616 mod-97 of the rearranged number equal to 1.
pub fn iban_ok(compact: &str) -> bool {
    if !(15..=34).contains(&compact.len()) || !compact.is_ascii() {
        return false;
    }
    match iban_length(compact.as_bytes()) {
        Some(0) => {}
        Some(len) if len == compact.len() => {}
        _ => return false,
    }
    let bban = &compact.as_bytes()[4..];
    if bban.iter().any(u8::is_ascii_uppercase) && bban.iter().any(u8::is_ascii_lowercase) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut rem: u32 = 0;
    for c in tail.chars().chain(head.chars()) {
        let v = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// Whether a letter or digit follows `end` (the end of a word, `_` not counted as a letter:
/// what `\b` would say if `_` were a separator).
fn word_goes_on(text: &str, end: usize) -> bool {
    char_after(text, end).is_some_and(char::is_alphanumeric)
}

/// A candidate that ends a word (`_` may follow); for rules whose item has no other check.
pub(super) fn check_word_end(text: &str, start: usize, end: usize) -> Option<usize> {
    (!word_goes_on(text, end)).then_some(end - start)
}

pub(super) fn check_iban(text: &str, start: usize, end: usize) -> Option<usize> {
    // The candidate may have swallowed an upper-case word after the number: try shorter
    // candidates ending at each space, longest first.
    let s = &text[start..end];
    // Not a known country: nothing to try (a run of `AB12 …` made every candidate build and
    // check each of its shorter forms).
    iban_length(s.as_bytes())?;
    let mut ends: Vec<usize> = s.match_indices(' ').map(|(i, _)| i).collect();
    if !word_goes_on(text, end) {
        ends.push(s.len());
    }
    ends.into_iter()
        .rev()
        .find(|&e| {
            let compact: String = s[..e].chars().filter(|c| *c != ' ').collect();
            iban_ok(&compact)
        })
        .map(|e| s[..e].trim_end().len())
}

pub(super) fn check_ssn(text: &str, start: usize, end: usize) -> Option<usize> {
    let s = &text[start..end];
    let area: u32 = s[0..3].parse().ok()?;
    let group: u32 = s[4..6].parse().ok()?;
    let serial: u32 = s[7..11].parse().ok()?;
    let ok = area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
    // Not part of a longer dashed number (`2024-123-45-6789`).
    let joined =
        matches!(char_before(text, start), Some('-')) || matches!(char_after(text, end), Some('-'));
    (ok && !joined && !word_goes_on(text, end)).then_some(s.len())
}

/// Spanish DNI / NIE check letter: the number mod 23 indexes `TRWAGMYFPDXBNJZSQVHLCKE`
/// (NIE: X→0, Y→1, Z→2 prefixed).
pub fn dni_ok(s: &str) -> bool {
    const LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";
    let s: String = s
        .chars()
        .filter(|c| *c != '-')
        .collect::<String>()
        .to_ascii_uppercase();
    let (num, letter) = match s.char_indices().last() {
        Some((i, l)) => (&s[..i], l),
        None => return false,
    };
    let num = match num.chars().next() {
        Some('X') => format!("0{}", &num[1..]),
        Some('Y') => format!("1{}", &num[1..]),
        Some('Z') => format!("2{}", &num[1..]),
        _ => num.to_string(),
    };
    match num.parse::<u64>() {
        Ok(n) => LETTERS[(n % 23) as usize] as char == letter,
        Err(_) => false,
    }
}

pub(super) fn check_dni(text: &str, start: usize, end: usize) -> Option<usize> {
    let s = &text[start..end];
    (dni_ok(s) && !word_goes_on(text, end)).then_some(s.len())
}

pub(super) fn check_phone(text: &str, start: usize, end: usize) -> Option<usize> {
    let mut s = &text[start..end];
    // Trailing separators or a dangling `(` are not part of the number.
    while let Some(c) = s.chars().last() {
        if c.is_ascii_digit() || c == ')' {
            break;
        }
        s = &s[..s.len() - c.len_utf8()];
    }
    if char_before(text, start).is_some_and(|c| c.is_alphanumeric() || c == '+') {
        return None;
    }
    if char_after(text, start + s.len()).is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut n = digits(s).len();
    if s.starts_with("00") {
        n -= 2;
    }
    // E.164: at most 15 digits including the country code; 8 is the shortest real number.
    (8..=15).contains(&n).then_some(s.len())
}

pub(super) fn check_ipv4(text: &str, start: usize, end: usize) -> Option<usize> {
    let s = &text[start..end];
    // Version strings (`v1.2.3.4`, `1.2.3.4.5`) and longer numbers (`1203.0.113.7`,
    // `10.0.0.1234`); a letter or `_` may touch it (`ip_203.0.113.7`, `host10.1.2.3`).
    if matches!(char_before(text, start), Some('.' | 'v' | 'V' | '0'..='9'))
        || matches!(char_after(text, end), Some('0'..='9'))
        || (matches!(char_after(text, end), Some('.'))
            && text[end + 1..].starts_with(|c: char| c.is_ascii_digit()))
    {
        return None;
    }
    let ok = s
        .split('.')
        .all(|p| p.parse::<u32>().is_ok_and(|n| n <= 255) && (p == "0" || !p.starts_with('0')));
    ok.then_some(s.len())
}

pub(super) fn check_ipv6(text: &str, start: usize, end: usize) -> Option<usize> {
    let s = &text[start..end];
    // Inside a longer address: a letter or digit right before, or a colon that follows one
    // (`IP:2001:db8::1` is a label's colon, `a:b:2001:…` is not).
    let inside = match char_before(text, start) {
        // After a colon: inside when what precedes it is a hex group or another colon; a
        // label (`IP:`, `IPv6:`, `source:`) is a word that is not a hex group.
        Some(':') => {
            let head = &text.as_bytes()[..start - 1];
            let word = head
                .iter()
                .rev()
                .take_while(|b| b.is_ascii_alphanumeric())
                .count();
            let group = &head[head.len() - word..];
            head.last() == Some(&b':')
                || ((1..=4).contains(&word) && group.iter().all(u8::is_ascii_hexdigit))
        }
        Some(c) => c.is_alphanumeric(),
        None => false,
    };
    if inside || char_after(text, end).is_some_and(|c| c.is_alphanumeric() || c == ':') {
        return None;
    }
    let groups = s.split(':').filter(|g| !g.is_empty()).count();
    let parsed = s.parse::<std::net::Ipv6Addr>().is_ok();
    // `::1`, `a::b` and clock times are not personal data worth flagging.
    (parsed && groups >= 3 && s.chars().any(|c| c.is_ascii_digit())).then_some(s.len())
}

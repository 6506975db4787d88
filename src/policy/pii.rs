//! Personal-data detectors. Built-in kinds (`email`, `phone`, `card`, `iban`, `ip`, `ssn`,
//! `dni`, `secret`) use a regex to find candidates and, where the format has one, a checksum
//! (Luhn for cards, mod-97 for IBANs, the check letter for Spanish DNI/NIE) to keep false
//! positives low. User-defined regexes and keyword lists (config `pii:`) add kinds of their own.
//!
//! Findings carry kinds and positions only; values never leave this module except through
//! [`super::redact`], which needs them to restore the response.

use super::checks::*;
use crate::api::RequestBody;
use crate::api::visit::{Leaf, Visit};
use crate::config::PiiConfig;
use crate::config::policy::UNSCANNABLE;
use regex::Regex;
use serde::Serialize;

/// One item found in one text: kind and byte range (`start..end`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// The kind (`email`, or a user-defined name).
    pub kind: String,
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset past the last byte.
    pub end: usize,
}

/// One item found in a request, as shown to people: kind, where, and character positions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The kind.
    pub kind: String,
    /// Which text: `messages[0].content`, `messages[1].content[2].text`, `prompt`, `input[3]`, …
    pub location: String,
    /// Character offset of the first character in that text.
    pub start: usize,
    /// Character offset past the last character.
    pub end: usize,
}

/// A candidate a check refuses that is at most this long (bytes) is searched again from its
/// second character; a longer one is passed over (every built-in item is shorter, but for
/// keys and private key blocks, whose candidates are passed over).
const RETRY_WITHIN: usize = 64;

/// The longest key [`Detector::scan_payload`] takes from a binary payload's text, in bytes.
pub const PAYLOAD_SECRET_MAX: usize = 256;

/// Checks a candidate; returns the accepted length in bytes (possibly shorter than the
/// candidate), or `None` to reject it.
type Check = fn(text: &str, start: usize, end: usize) -> Option<usize>;

struct Rule {
    kind: String,
    regex: Regex,
    check: Option<Check>,
    needs: Needs,
    /// A built-in detector: a match never starts with `_` (see [`Detector::scan_ascii`]).
    builtin: bool,
}

/// A byte every match of a rule contains: a text without it is not searched with that rule
/// (most prose has no `@`, `:` or digit, and a regex search costs about a thousand
/// instructions even when it finds nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Needs {
    /// No such byte known (user-defined rules, the API key prefixes): always searched.
    Nothing,
    /// This ASCII byte.
    Byte(u8),
    /// An ASCII digit `0`–`9`.
    Digit,
}

impl Needs {
    /// Whether `text` can hold a match; `digit` is whether it holds an ASCII digit.
    fn met(self, text: &str, digit: bool) -> bool {
        match self {
            Needs::Nothing => true,
            Needs::Byte(b) => memchr::memchr(b, text.as_bytes()).is_some(),
            Needs::Digit => digit,
        }
    }
}

/// The set of detectors in use (built-ins minus `pii.disable`, plus user-defined ones).
#[derive(Debug)]
pub struct Detector {
    rules: Vec<Rule>,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rule({})", self.kind)
    }
}

fn builtin_rules() -> Vec<(&'static str, &'static str, Option<Check>, Needs)> {
    vec![
        // Private key blocks first: they contain everything else.
        (
            "secret",
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----",
            None,
            Needs::Byte(b'-'),
        ),
        (
            "secret",
            // After a word boundary or `_` (`OPENAI_KEY_sk-…`; the `_` is not kept).
            r"(?:\b|_)(?:sk-(?:proj-|ant-|svcacct-)?[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|glpat-[A-Za-z0-9_-]{20,}|[sr]k_(?:live|test)_[A-Za-z0-9]{20,}|hf_[A-Za-z0-9]{30,}|eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})",
            Some(check_secret),
            Needs::Nothing,
        ),
        (
            "email",
            // Any non-ASCII character counts as a letter (`josé@exämple.de`): a range that
            // compiles small, where `\p{L}` with `(?i)` cost megabytes of automata per detector.
            r"\b[a-zA-Z0-9._%+\x{80}-\x{10FFFF}-]+@[a-zA-Z0-9\x{80}-\x{10FFFF}](?:[a-zA-Z0-9\x{80}-\x{10FFFF}-]*[a-zA-Z0-9\x{80}-\x{10FFFF}])?(?:\.[a-zA-Z0-9\x{80}-\x{10FFFF}](?:[a-zA-Z0-9\x{80}-\x{10FFFF}-]*[a-zA-Z0-9\x{80}-\x{10FFFF}])?)*\.[a-zA-Z\x{80}-\x{10FFFF}]{2,}",
            None,
            Needs::Byte(b'@'),
        ),
        (
            "iban",
            // `\b` counts `_` as a letter: after a boundary or `_` (not kept), and the check
            // refuses a letter or digit after (the same for SSNs, DNIs and phones below).
            r"(?i)(?:\b|_)[A-Z]{2}[0-9]{2}(?: {0,2}[A-Z0-9]){11,30}",
            Some(check_iban),
            Needs::Digit,
        ),
        (
            "card",
            // No `\b`: a card touching `_` (`_4111…_`) is one; the check refuses a run that
            // goes on in digits or letters (hex ids).
            r"[0-9](?:[ \t\r\n./_-]{0,2}[0-9]){12,18}",
            Some(check_card),
            Needs::Digit,
        ),
        (
            "ssn",
            r"(?:\b|_)[0-9]{3}-[0-9]{2}-[0-9]{4}",
            Some(check_ssn),
            Needs::Digit,
        ),
        (
            "dni",
            r"(?i)(?:\b|_)(?:[0-9]{8}|[XYZ][0-9]{7})-?[A-Z]",
            Some(check_dni),
            Needs::Digit,
        ),
        (
            "phone",
            r"(?:\+|(?:\b|_)00)[1-9](?:[ .-]{0,2}\(?[0-9]\)?){7,16}",
            Some(check_phone),
            Needs::Digit,
        ),
        (
            "phone",
            r"\([0-9]{3}\) ?[0-9]{3}[-. ][0-9]{4}",
            Some(check_word_end),
            Needs::Digit,
        ),
        (
            "ip",
            // No `\b`: an address may touch `_` or a letter (`ip_203.0.113.7`, `host10.1.2.3`);
            // the check refuses digits around it and version strings.
            r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}",
            Some(check_ipv4),
            Needs::Digit,
        ),
        (
            "ip",
            r"(?i)[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}(?:\.[0-9]{1,3}){0,3}",
            Some(check_ipv6),
            Needs::Byte(b':'),
        ),
    ]
}

impl Detector {
    /// Builds the detectors for `cfg` (validated config: regexes compile).
    ///
    /// Errors: a user regex that does not compile (names it).
    pub fn new(cfg: &PiiConfig) -> Result<Self, String> {
        let mut rules = Vec::new();
        for (kind, re, check, needs) in builtin_rules() {
            if cfg.disable.iter().any(|d| d == kind) {
                continue;
            }
            let regex = Regex::new(re).map_err(|e| format!("built-in {kind} detector: {e}"))?;
            rules.push(Rule {
                kind: kind.to_string(),
                regex,
                check,
                needs,
                builtin: true,
            });
        }
        for p in &cfg.patterns {
            let regex = Regex::new(&p.regex).map_err(|e| format!("pii pattern {}: {e}", p.name))?;
            rules.push(Rule {
                kind: p.name.clone(),
                regex,
                check: None,
                needs: Needs::Nothing,
                builtin: false,
            });
        }
        for k in &cfg.keywords {
            let words: Vec<String> = k
                .words
                .iter()
                .map(|w| w.trim())
                .filter(|w| !w.is_empty())
                .map(regex::escape)
                .collect();
            if words.is_empty() {
                continue;
            }
            let re = format!(r"(?i)\b(?:{})\b", words.join("|"));
            let regex = Regex::new(&re).map_err(|e| format!("pii keywords {}: {e}", k.name))?;
            rules.push(Rule {
                kind: k.name.clone(),
                regex,
                check: None,
                needs: Needs::Nothing,
                builtin: false,
            });
        }
        Ok(Detector { rules })
    }

    /// Every item in `text`, by position (byte ranges of `text`), without overlaps (the
    /// earlier one wins; at the same start, the longer one; at the same span, the earlier
    /// rule). The detectors read `text` as a model does: zero-width characters, Unicode
    /// spaces and dashes, full-width forms and `\uXXXX` escapes count as the ASCII they
    /// stand for ([`super::normalize`]); a match covers the original characters.
    pub fn scan(&self, text: &str) -> Vec<Match> {
        match super::normalize::normalize(text) {
            None => self.scan_ascii(text),
            Some(n) => self
                .scan_ascii(&n.text)
                .into_iter()
                .map(|m| {
                    let (start, end) = n.span(m.start, m.end);
                    Match {
                        kind: m.kind,
                        start,
                        end,
                    }
                })
                .collect(),
        }
    }

    /// [`Detector::scan`] of a binary payload's own text (base64): the same items, but for
    /// a key longer than [`PAYLOAD_SECRET_MAX`] bytes, which is a run of URL-safe base64 that
    /// happens to start like one (`sk-`, `hf_`: about one in 4 MB of random bytes; no real
    /// key is that long), and a key or phone number followed by more of base64's characters.
    pub fn scan_payload(&self, text: &str) -> Vec<Match> {
        let base64 =
            |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_' | b'=');
        let mut found = self.scan(text);
        found.retain(|m| {
            if text[m.start..].starts_with("-----") {
                return true;
            }
            // A key or phone number that runs on into more of base64's characters is a piece
            // of the payload (a fixed-length `AIza…` key: about one in a thousand 1 MB images).
            let runs_on = text.as_bytes().get(m.end).is_some_and(base64);
            match m.kind.as_str() {
                "secret" => m.end - m.start <= PAYLOAD_SECRET_MAX && !runs_on,
                "phone" => !runs_on,
                _ => true,
            }
        });
        found
    }

    /// The same detectors searching every text whatever bytes it holds: the reference the
    /// prefilter ([`Needs`]) is tested against.
    #[cfg(test)]
    fn without_prefilter(&self) -> Detector {
        let rules = self
            .rules
            .iter()
            .map(|r| Rule {
                kind: r.kind.clone(),
                regex: r.regex.clone(),
                check: r.check,
                needs: Needs::Nothing,
                builtin: r.builtin,
            })
            .collect();
        Detector { rules }
    }

    /// [`Detector::scan`] of a text already normalized.
    fn scan_ascii(&self, text: &str) -> Vec<Match> {
        let digit = text.bytes().any(|b| b.is_ascii_digit());
        let mut all = Vec::new();
        for rule in &self.rules {
            if !rule.needs.met(text, digit) {
                continue;
            }
            let mut at = 0;
            while let Some(m) = rule.regex.find_at(text, at) {
                // A leading `_` joins a built-in item to a word before it; it is not the
                // item's (`KEY_sk-…`, `_ana@example.com_`, `ssn_078-05-1120`).
                let start = match rule.builtin {
                    true => m.end() - text[m.start()..m.end()].trim_start_matches('_').len(),
                    false => m.start(),
                };
                let len = match rule.check {
                    Some(check) if start < m.end() => check(text, start, m.end()),
                    Some(_) => None,
                    None => Some(m.end() - start),
                };
                match len {
                    Some(len) if len > 0 => {
                        let end = start + len;
                        all.push(Match {
                            kind: rule.kind.clone(),
                            start,
                            end,
                        });
                        // On from the end of what was accepted: a check that took less than
                        // its candidate leaves the rest to be searched (two cards in a row).
                        at = end;
                    }
                    // Refused (or empty): a short candidate is searched again from its second
                    // character, so an item inside it is still found (`IP:2001:db8::1`,
                    // whose candidate began at the colon; a card after a stray digit). A
                    // long one is passed over, which keeps the scan linear.
                    _ if m.len() <= RETRY_WITHIN => {
                        at = m.start() + text[m.start()..].chars().next().map_or(1, char::len_utf8);
                    }
                    _ => at = m.end().max(m.start() + 1),
                }
                if at > text.len() {
                    break;
                }
            }
        }
        // Stable sort keeps rule order for equal spans.
        all.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        let mut out: Vec<Match> = Vec::new();
        for m in all {
            if out.last().is_none_or(|last| m.start >= last.end) {
                out.push(m);
            }
        }
        out
    }

    /// Every item in every text of `body`, with locations and character positions (an item
    /// split over two neighbouring strings, see [`super::junction`], is located as
    /// `<first> + <second>` with its part in the second as its span), plus one
    /// `unscannable` finding (positions 0..0) per binary payload (base64 image, file, audio),
    /// which cannot be read for personal data, and the items in the payload's own text.
    pub fn scan_request(&self, body: &RequestBody) -> Vec<Finding> {
        struct Scan<'d> {
            detector: &'d Detector,
            out: Vec<Finding>,
            seams: super::junction::Seams,
        }
        impl<'a> Visit<'a> for Scan<'_> {
            fn text(&mut self, location: &str, _: Leaf, text: &'a str) {
                self.scan(location, text);
                // Split over two neighbouring strings: named by both locations, its span
                // being its part in the second.
                let (across, before) = self.seams.next(self.detector, location, text);
                for m in across {
                    self.out.push(Finding {
                        kind: m.kind,
                        location: format!("{before} + {location}"),
                        start: 0,
                        end: m.chars_after,
                    });
                }
            }
            fn number(&mut self, location: &str, text: &str) {
                self.scan(location, text);
            }
            fn key(&mut self, location: &str, key: &'a str) {
                self.scan(location, key);
            }
            fn binary(&mut self, location: &str, payload: &'a str) {
                self.out.push(Finding {
                    kind: UNSCANNABLE.to_string(),
                    location: location.to_string(),
                    start: 0,
                    end: 0,
                });
                // What it encodes cannot be read, but its own text leaves as it is.
                self.found(location, payload, self.detector.scan_payload(payload));
            }
        }
        impl Scan<'_> {
            fn scan(&mut self, location: &str, text: &str) {
                self.found(location, text, self.detector.scan(text));
            }
            fn found(&mut self, location: &str, text: &str, found: Vec<Match>) {
                // Matches come in order without overlaps: count characters once, left to
                // right (counting from the start for each match made the scan quadratic).
                let (mut at, mut chars) = (0, 0);
                for m in found {
                    let start = chars + text[at..m.start].chars().count();
                    let end = start + text[m.start..m.end].chars().count();
                    (at, chars) = (m.end, end);
                    self.out.push(Finding {
                        kind: m.kind,
                        location: location.to_string(),
                        start,
                        end,
                    });
                }
            }
        }
        let mut s = Scan {
            detector: self,
            out: Vec::new(),
            seams: super::junction::Seams::new(),
        };
        crate::api::visit::visit(body, &mut s);
        s.out
    }
}

#[cfg(test)]
#[path = "pii_tests.rs"]
mod tests;

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

/// Checks a candidate; returns the accepted length in bytes (possibly shorter than the
/// candidate), or `None` to reject it.
type Check = fn(text: &str, start: usize, end: usize) -> Option<usize>;

struct Rule {
    kind: String,
    regex: Regex,
    check: Option<Check>,
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

fn builtin_rules() -> Vec<(&'static str, &'static str, Option<Check>)> {
    vec![
        // Private key blocks first: they contain everything else.
        (
            "secret",
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----",
            None,
        ),
        (
            "secret",
            r"\b(?:sk-(?:proj-|ant-|svcacct-)?[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|glpat-[A-Za-z0-9_-]{20,})",
            Some(check_secret),
        ),
        (
            "email",
            // Any non-ASCII character counts as a letter (`josé@exämple.de`): a range that
            // compiles small, where `\p{L}` with `(?i)` cost megabytes of automata per detector.
            r"\b[a-zA-Z0-9._%+\x{80}-\x{10FFFF}-]+@[a-zA-Z0-9\x{80}-\x{10FFFF}](?:[a-zA-Z0-9\x{80}-\x{10FFFF}-]*[a-zA-Z0-9\x{80}-\x{10FFFF}])?(?:\.[a-zA-Z0-9\x{80}-\x{10FFFF}](?:[a-zA-Z0-9\x{80}-\x{10FFFF}-]*[a-zA-Z0-9\x{80}-\x{10FFFF}])?)*\.[a-zA-Z\x{80}-\x{10FFFF}]{2,}\b",
            None,
        ),
        (
            "iban",
            r"(?i)\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}\b",
            Some(check_iban),
        ),
        ("card", r"\b[0-9](?:[ .-]?[0-9]){12,18}\b", Some(check_card)),
        ("ssn", r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b", Some(check_ssn)),
        (
            "dni",
            r"(?i)\b(?:[0-9]{8}|[XYZ][0-9]{7})-?[A-Z]\b",
            Some(check_dni),
        ),
        (
            "phone",
            r"(?:\+|\b00)[1-9](?:[ .-]?\(?[0-9]\)?){7,16}",
            Some(check_phone),
        ),
        ("phone", r"\([0-9]{3}\) ?[0-9]{3}[-. ][0-9]{4}\b", None),
        ("ip", r"\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b", Some(check_ipv4)),
        (
            "ip",
            r"(?i)[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}(?:\.[0-9]{1,3}){0,3}",
            Some(check_ipv6),
        ),
    ]
}

impl Detector {
    /// Builds the detectors for `cfg` (validated config: regexes compile).
    ///
    /// Errors: a user regex that does not compile (names it).
    pub fn new(cfg: &PiiConfig) -> Result<Self, String> {
        let mut rules = Vec::new();
        for (kind, re, check) in builtin_rules() {
            if cfg.disable.iter().any(|d| d == kind) {
                continue;
            }
            let regex = Regex::new(re).map_err(|e| format!("built-in {kind} detector: {e}"))?;
            rules.push(Rule {
                kind: kind.to_string(),
                regex,
                check,
            });
        }
        for p in &cfg.patterns {
            let regex = Regex::new(&p.regex).map_err(|e| format!("pii pattern {}: {e}", p.name))?;
            rules.push(Rule {
                kind: p.name.clone(),
                regex,
                check: None,
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

    /// [`Detector::scan`] of a text already normalized.
    fn scan_ascii(&self, text: &str) -> Vec<Match> {
        let mut all = Vec::new();
        for rule in &self.rules {
            for m in rule.regex.find_iter(text) {
                let len = match rule.check {
                    Some(check) => match check(text, m.start(), m.end()) {
                        Some(len) => len,
                        None => continue,
                    },
                    None => m.len(),
                };
                if len == 0 {
                    continue;
                }
                all.push(Match {
                    kind: rule.kind.clone(),
                    start: m.start(),
                    end: m.start() + len,
                });
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

    /// Every item in every text of `body`, with locations and character positions, plus one
    /// `unscannable` finding (positions 0..0) per binary payload (base64 image, file, audio),
    /// which cannot be read for personal data.
    pub fn scan_request(&self, body: &RequestBody) -> Vec<Finding> {
        struct Scan<'d> {
            detector: &'d Detector,
            out: Vec<Finding>,
        }
        impl<'a> Visit<'a> for Scan<'_> {
            fn text(&mut self, location: &str, _: Leaf, text: &'a str) {
                self.scan(location, text);
            }
            fn number(&mut self, location: &str, text: &str) {
                self.scan(location, text);
            }
            fn key(&mut self, location: &str, key: &'a str) {
                self.scan(location, key);
            }
            fn binary(&mut self, location: &str) {
                self.out.push(Finding {
                    kind: UNSCANNABLE.to_string(),
                    location: location.to_string(),
                    start: 0,
                    end: 0,
                });
            }
        }
        impl Scan<'_> {
            fn scan(&mut self, location: &str, text: &str) {
                // Matches come in order without overlaps: count characters once, left to
                // right (counting from the start for each match made the scan quadratic).
                let (mut at, mut chars) = (0, 0);
                for m in self.detector.scan(text) {
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
        };
        crate::api::visit::visit(body, &mut s);
        s.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::policy::{PiiKeywords, PiiPattern};

    fn kinds(d: &Detector, text: &str) -> Vec<(String, String)> {
        d.scan(text)
            .into_iter()
            .map(|m| (m.kind, text[m.start..m.end].to_string()))
            .collect()
    }

    fn found(kind: &str, yes: &[&str], no: &[&str]) {
        let d = Detector::new(&PiiConfig::default()).unwrap();
        for y in yes {
            let text = format!("see {y} here");
            let got = kinds(&d, &text);
            assert_eq!(
                got,
                vec![(kind.to_string(), y.to_string())],
                "should find {kind} in {text:?}"
            );
        }
        for n in no {
            let text = format!("see {n} here");
            let got = kinds(&d, &text);
            assert!(
                got.iter().all(|(k, _)| k != kind),
                "false {kind} in {text:?}: {got:?}"
            );
        }
    }

    #[test]
    fn email() {
        found(
            "email",
            &[
                "anna.smith@example.com",
                "a+tag@mail.example.co.uk",
                "X_Y@sub-domain.org",
            ],
            &[
                "anna@localhost",
                "@handle",
                "user@.com",
                "a@b.c",
                "not an email",
            ],
        );
    }

    #[test]
    fn phone() {
        found(
            "phone",
            &[
                "+34 612 345 678",
                "+1 (555) 123-4567",
                "+44 20 7946 0958",
                "0049 30 1234567",
                "+33612345678",
                "(555) 123-4567",
            ],
            &[
                "+1 234",
                "2024-05-06",
                "12345678",
                "call 555-1234",
                "+12345678901234567",
            ],
        );
    }

    #[test]
    fn card() {
        found(
            "card",
            &[
                "4111 1111 1111 1111",
                "5500-0000-0000-0004",
                "378282246310005",
                "4012888888881881",
            ],
            &[
                "4111 1111 1111 1112",
                "1234 5678 9012 3456",
                "9999999999999995",
                "4111 1111-1111 1111",
            ],
        );
    }

    #[test]
    fn iban() {
        found(
            "iban",
            &[
                "DE89 3704 0044 0532 0130 00",
                "GB82WEST12345698765432",
                "ES9121000418450200051332",
            ],
            &[
                "DE89 3704 0044 0532 0130 01",
                "GB82WEST12345698765433",
                "AB12 CDEF GHIJ",
            ],
        );
        let d = Detector::new(&PiiConfig::default()).unwrap();
        // A following upper-case word is not swallowed.
        let t = "pay DE89 3704 0044 0532 0130 00 ASAP";
        assert_eq!(
            kinds(&d, t),
            vec![("iban".into(), "DE89 3704 0044 0532 0130 00".into())]
        );
    }

    #[test]
    fn ip() {
        found(
            "ip",
            &[
                "192.168.1.20",
                "8.8.8.8",
                "2001:db8:85a3::8a2e:370:7334",
                "fe80::1ff:fe23:4567:890a",
            ],
            &[
                "256.1.1.1",
                "v1.2.3.4",
                "1.2.3.4.5",
                "01.02.03.04",
                "12:30:45",
                "::1",
                "std::fmt::Debug",
            ],
        );
    }

    #[test]
    fn ssn() {
        found(
            "ssn",
            &["123-45-6789", "078-05-1121"],
            &[
                "000-12-3456",
                "666-12-3456",
                "912-34-5678",
                "123-00-4567",
                "123-45-0000",
                "2024-123-45-6789",
            ],
        );
    }

    #[test]
    fn dni() {
        found(
            "dni",
            &[
                "12345678Z",
                "12345678-Z",
                "X1234567L",
                "Y1234567X",
                "z1234567r",
            ],
            &["12345678A", "X1234567A", "1234567Z"],
        );
    }

    #[test]
    fn secret() {
        found(
            "secret",
            &[
                "sk-proj-abc123DEF456ghi789JKL012",
                "sk-ant-api03-abcdefghij0123456789",
                "AKIAIOSFODNN7EXAMPLE",
                "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            ],
            &[
                "sk-learn-is-a-python-library-name",
                "task-0123456789abcdefghij",
                "AKIA123",
                "ghp_short",
            ],
        );
        let d = Detector::new(&PiiConfig::default()).unwrap();
        let block = "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow+IBAAKCAQEA\n-----END RSA PRIVATE KEY-----\nend";
        let got = kinds(&d, block);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "secret");
        assert!(got[0].1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        assert!(got[0].1.ends_with("-----END RSA PRIVATE KEY-----"));
    }

    #[test]
    fn user_patterns_keywords_and_disable() {
        let cfg = PiiConfig {
            patterns: vec![PiiPattern {
                name: "employee_id".into(),
                regex: r"EMP-\d{6}".into(),
            }],
            keywords: vec![PiiKeywords {
                name: "project".into(),
                words: vec!["Blue Falcon".into(), "nightjar".into()],
            }],
            disable: vec!["ip".into()],
        };
        let d = Detector::new(&cfg).unwrap();
        assert_eq!(
            kinds(&d, "EMP-123456 on blue falcon and Nightjar, host 8.8.8.8"),
            vec![
                ("employee_id".into(), "EMP-123456".into()),
                ("project".into(), "blue falcon".into()),
                ("project".into(), "Nightjar".into()),
            ]
        );
    }

    proptest::proptest! {
        /// Any text, including non-ASCII digits and odd separators, scans without panicking
        /// and yields in-bounds, ordered, non-overlapping char-boundary ranges.
        #[test]
        fn scanning_any_text_is_safe(text in "\\PC{0,200}|[0-9٠-٩ .:+()@-]{0,60}") {
            static D: std::sync::LazyLock<Detector> =
                std::sync::LazyLock::new(|| Detector::new(&PiiConfig::default()).unwrap());
            let d = &*D;
            let mut last = 0;
            for m in d.scan(&text) {
                proptest::prop_assert!(m.start >= last && m.start < m.end && m.end <= text.len());
                proptest::prop_assert!(text.is_char_boundary(m.start) && text.is_char_boundary(m.end));
                last = m.end;
            }
        }
    }

    /// Linear in the number of matches: 200,000 emails scan (and redact) in under 10× the
    /// time of the same number of bytes without a match (a ratio, not a wall-clock bound).
    #[test]
    fn scanning_is_linear_in_the_number_of_matches() {
        let d = Detector::new(&PiiConfig::default()).unwrap();
        let body = |text: String| {
            RequestBody::Chat(
                serde_json::from_value(serde_json::json!({"model": "m",
                    "messages": [{"role": "user", "content": text}]}))
                .unwrap(),
            )
        };
        let many: String = (0..200_000).map(|i| format!("u{i:06}@ex.com ")).collect();
        // One match at its end, so every rule reads the whole text (not only the set that
        // finds nothing in a text without any).
        let none = many.replace('@', "_") + "last@ex.com";
        assert_eq!(many.len() + 11, none.len());
        let (many, none) = (body(many), body(none));
        let time = |b: &RequestBody| {
            let t = std::time::Instant::now();
            let n = d.scan_request(b).len();
            let (_, r) = super::super::redact::redact(&d, b, &["email".to_string()]);
            (t.elapsed(), n, r.len())
        };
        let (t_none, n_none, r_none) = time(&none);
        let (t_many, n_many, r_many) = time(&many);
        assert_eq!((n_none, r_none), (1, 1));
        assert_eq!((n_many, r_many), (200_000, 200_000));
        assert!(
            t_many < t_none * 10,
            "200,000 matches took {t_many:?}, no matches {t_none:?}"
        );
    }

    /// Writings a careless client really sends (found by a tester, each sent to a remote
    /// deployment before): the match covers the original characters.
    #[test]
    fn unicode_spaces_dashes_wide_forms_escapes_and_case_are_read_as_a_model_reads_them() {
        let d = Detector::new(&PiiConfig::default()).unwrap();
        for (text, kind, value) in [
            (
                "iban de89370400440532013000 ok",
                "iban",
                "de89370400440532013000",
            ),
            (
                "iban De89 3704 0044 0532 0130 00",
                "iban",
                "De89 3704 0044 0532 0130 00",
            ),
            (
                "call +34\u{a0}612\u{a0}345\u{a0}678",
                "phone",
                "+34\u{a0}612\u{a0}345\u{a0}678",
            ),
            (
                "tel +33\u{202f}6\u{202f}12\u{202f}34\u{202f}56\u{202f}78",
                "phone",
                "+33\u{202f}6\u{202f}12\u{202f}34\u{202f}56\u{202f}78",
            ),
            (
                "card 4111\u{a0}1111\u{a0}1111\u{a0}1111",
                "card",
                "4111\u{a0}1111\u{a0}1111\u{a0}1111",
            ),
            ("card 4111.1111.1111.1111.", "card", "4111.1111.1111.1111"),
            (
                "card 4111\u{2011}1111\u{2011}1111\u{2011}1111",
                "card",
                "4111\u{2011}1111\u{2011}1111\u{2011}1111",
            ),
            (
                "card \u{FF14}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}",
                "card",
                "\u{FF14}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}\u{FF11}",
            ),
            ("to josé@example.com", "email", "josé@example.com"),
            ("to ana@exämple.de", "email", "ana@exämple.de"),
            (
                "to ana.lopez\u{200b}@example.com",
                "email",
                "ana.lopez\u{200b}@example.com",
            ),
            (
                "to ana.lopez\u{FF20}example.com",
                "email",
                "ana.lopez\u{FF20}example.com",
            ),
            (
                r#"{"e":"ana.lopez\u0040example.com"}"#,
                "email",
                r"ana.lopez\u0040example.com",
            ),
        ] {
            assert_eq!(
                kinds(&d, text),
                vec![(kind.to_string(), value.to_string())],
                "{text:?}"
            );
        }
        // Still not: mixed separators, a Luhn failure with dots, a version number.
        for text in ["4111 1111.1111 1111", "4111.1111.1111.1112", "v1.2.3.4"] {
            assert!(kinds(&d, text).iter().all(|(k, _)| k != "card"), "{text:?}");
        }
    }

    #[test]
    fn non_ascii_digits_are_not_numbers() {
        let d = Detector::new(&PiiConfig::default()).unwrap();
        assert_eq!(kinds(&d, "see ١٢٣-٤٥-٦٧٨٩ and ١٢٣٤٥٦٧٨Z"), vec![]);
    }

    #[test]
    fn checksums() {
        assert!(luhn_ok(&digits("79927398713")));
        assert!(!luhn_ok(&digits("79927398710")));
        assert!(iban_ok("DE89370400440532013000"));
        assert!(!iban_ok("DE89370400440532013001"));
        assert!(dni_ok("00000000T"));
        assert!(!dni_ok("00000000R"));
    }

    #[test]
    fn request_findings_have_locations_and_char_positions() {
        let d = Detector::new(&PiiConfig::default()).unwrap();
        let body: crate::api::ChatCompletionRequest = serde_json::from_value(serde_json::json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "café: mail ana@example.com"}]}
            ]
        }))
        .unwrap();
        let f = d.scan_request(&RequestBody::Chat(body));
        assert_eq!(
            f,
            vec![Finding {
                kind: "email".into(),
                location: "messages[1].content[0].text".into(),
                start: 11,
                end: 26
            }]
        );
    }
}

//! The forms text takes that the detectors must read as a model reads them (normalized
//! writings, separators, other scripts, escapes), and the scan's cost over refused candidates.

use super::*;

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

/// Forms an attacker test sent to a remote deployment past the detectors: items touching `_`
/// or a digit, cards with other separators or inside a float's text, an IPv6 address after a
/// label's colon, digits of other scripts, combining marks, other full stops, the `@` of URLs
/// and HTML, doubled spaces, more key formats. Each is found, as the kind it is.
#[test]
fn forms_that_got_past_the_detectors_are_found() {
    let d = Detector::new(&PiiConfig::default()).unwrap();
    for (text, kind, value) in [
        (
            "write to _ana.lopez@example.com_ today",
            "email",
            "ana.lopez@example.com",
        ),
        ("__ana@example.com__", "email", "ana@example.com"),
        // A second attacker round: `\b` took `_` for a letter in these rules too.
        ("ssn_078-05-1120", "ssn", "078-05-1120"),
        ("ssn_078-05-1120_x", "ssn", "078-05-1120"),
        (
            "iban_DE89370400440532013000",
            "iban",
            "DE89370400440532013000",
        ),
        ("dni_12345678Z_", "dni", "12345678Z"),
        ("ip_203.0.113.7", "ip", "203.0.113.7"),
        ("a203.0.113.7", "ip", "203.0.113.7"),
        ("host10.1.2.3_x", "ip", "10.1.2.3"),
        ("cont_203.0.113.7", "ip", "203.0.113.7"),
        ("tel_0034612345678", "phone", "0034612345678"),
        ("us_(555) 123-4567_x", "phone", "(555) 123-4567"),
        (
            "OPENAI_KEY_sk-proj-abc123def456ghi789jkl0",
            "secret",
            "sk-proj-abc123def456ghi789jkl0",
        ),
        ("ana@example.com1", "email", "ana@example.com"),
        (
            "card 4111  1111  1111  1111 ok",
            "card",
            "4111  1111  1111  1111",
        ),
        (
            "card 4111\t1111\t1111\t1111",
            "card",
            "4111\t1111\t1111\t1111",
        ),
        (
            "card 4111\n1111\n1111\n1111",
            "card",
            "4111\n1111\n1111\n1111",
        ),
        ("card 4111/1111/1111/1111", "card", "4111/1111/1111/1111"),
        ("card 4111_1111_1111_1111", "card", "4111_1111_1111_1111"),
        ("_4111111111111111_", "card", "4111111111111111"),
        ("4111 1111 1111 1111 5", "card", "4111 1111 1111 1111"),
        ("4111111111111111.0", "card", "4111111111111111"),
        (
            "IP:2001:db8:85a3::8a2e:370:7334",
            "ip",
            "2001:db8:85a3::8a2e:370:7334",
        ),
        (
            "\u{1D7D2}\u{1D7CF}\u{1D7CF}\u{1D7CF}\u{1D7CF}\u{1D7CF}\u{1D7CF}\u{1D7CF}\u{1D7CF}\u{1D7CF}\u{1D7CF}\u{1D7CF}\u{1D7CF}\u{1D7CF}\u{1D7CF}\u{1D7CF}",
            "card",
            "\u{1D7D2}\u{1D7CF}\u{1D7CF}\u{1D7CF}\u{1D7CF}\u{1D7CF}\u{1D7CF}\u{1D7CF}\u{1D7CF}\u{1D7CF}\u{1D7CF}\u{1D7CF}\u{1D7CF}\u{1D7CF}\u{1D7CF}\u{1D7CF}",
        ),
        ("٤١١١١١١١١١١١١١١١", "card", "٤١١١١١١١١١١١١١١١"),
        (
            "4\u{332}1\u{332}1\u{332}1\u{332}111111111111",
            "card",
            "4\u{332}1\u{332}1\u{332}1\u{332}111111111111",
        ),
        ("ana@example\u{3002}com", "email", "ana@example\u{3002}com"),
        ("ana@example\u{2024}com", "email", "ana@example\u{2024}com"),
        ("mailto:ana%40example.com", "email", "ana%40example.com"),
        ("ana&#64;example.com", "email", "ana&#64;example.com"),
        (
            "iban DE89  3704  0044  0532  0130  00 ok",
            "iban",
            "DE89  3704  0044  0532  0130  00",
        ),
        ("call +34  612  345  678", "phone", "+34  612  345  678"),
        (
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "secret",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        ),
        (
            "hf_abcdefghijklmnopqrstuvwxyz0123456789",
            "secret",
            "hf_abcdefghijklmnopqrstuvwxyz0123456789",
        ),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "secret",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        ),
    ] {
        assert_eq!(
            kinds(&d, text),
            vec![(kind.to_string(), value.to_string())],
            "{text:?}"
        );
    }
    for (text, kind, value) in [
        (
            "IPv6:2001:db8:85a3::8a2e:370:7334",
            "ip",
            "2001:db8:85a3::8a2e:370:7334",
        ),
        ("ip6:2001:db8::1:5", "ip", "2001:db8::1:5"),
        ("source:2001:db8::1:5", "ip", "2001:db8::1:5"),
        ("ana&#064;example.com", "email", "ana&#064;example.com"),
        ("ana&#x0040;example.com", "email", "ana&#x0040;example.com"),
        (
            "\u{1E954}\u{1E951}\u{1E951}\u{1E951}\u{1E951}\u{1E951}\u{1E951}\u{1E951}\u{1E951}\u{1E951}\u{1E951}\u{1E951}\u{1E951}\u{1E951}\u{1E951}\u{1E951}",
            "card",
            "\u{1E954}\u{1E951}\u{1E951}\u{1E951}\u{1E951}\u{1E951}\u{1E951}\u{1E951}\u{1E951}\u{1E951}\u{1E951}\u{1E951}\u{1E951}\u{1E951}\u{1E951}\u{1E951}",
        ),
    ] {
        assert_eq!(
            kinds(&d, text),
            vec![(kind.to_string(), value.to_string())],
            "{text:?}"
        );
    }
    // Two cards in a row: both (the first candidate ran on into the second).
    for (text, first, second) in [
        (
            "4111111111111111\n5555555555554444",
            "4111111111111111",
            "5555555555554444",
        ),
        (
            "4111 1111 1111 1111 5555 5555 5555 4444",
            "4111 1111 1111 1111",
            "5555 5555 5555 4444",
        ),
        (
            "4111-1111-1111-1111 4012-8888-8888-1881",
            "4111-1111-1111-1111",
            "4012-8888-8888-1881",
        ),
    ] {
        let card = |v: &str| ("card".to_string(), v.to_string());
        assert_eq!(kinds(&d, text), vec![card(first), card(second)], "{text:?}");
    }
    // Still not: a run of 20 digits, digits glued to a longer number, a clock time, a float's
    // fraction, a US number written with spaces, digits glued to letters (a word, a hex id).
    for text in [
        "41111111111111111111",
        "94111111111111111",
        "card4111111111111111",
        "0193a7a5-4111-1111-1111-1111111111ab",
        "at 12:30:45 today",
        "x = 0.4221165755827173",
        "dims 512 64 1024",
        "ssn 078-05-1120x",
        "12345678Zeta",
        "1203.0.113.7",
        "10.0.0.1234",
        "python v3.10.12.1",
        "(555) 123-45678",
    ] {
        assert_eq!(kinds(&d, text), vec![], "{text:?}");
    }
}

/// Text that makes a candidate at almost every character, each refused by its check (the
/// retry searches a refused short candidate again from its second character): scanned in
/// under 10× the time of the same number of bytes of email addresses, every one a match.
#[test]
fn refused_candidates_keep_the_scan_linear() {
    let d = Detector::new(&PiiConfig::default()).unwrap();
    let emails: String = (0..40_000).map(|i| format!("u{i:06}@ex.com ")).collect();
    let n = emails.len();
    let time = |text: &str| {
        let t = std::time::Instant::now();
        let found = d.scan(text).len();
        (t.elapsed(), found)
    };
    let (t_emails, found) = time(&emails);
    assert_eq!(found, 40_000);
    for unit in ["1.", "1..", "AB12 ", "1.1.1.1.", "4111 ", "2001:db8:"] {
        let text = unit.repeat(n / unit.len());
        let (t, _) = time(&text);
        assert!(
            t < t_emails * 10,
            "{unit:?}: {t:?} against {t_emails:?} for the emails"
        );
    }
}

/// The decimal digits of other scripts are read as the digits they are, as a model reads
/// them (they went remote before: an attacker test sent a card in Arabic-Indic digits).
#[test]
fn non_ascii_digits_are_numbers() {
    let d = Detector::new(&PiiConfig::default()).unwrap();
    assert_eq!(
        kinds(&d, "see ١٢٣-٤٥-٦٧٨٩ and ١٢٣٤٥٦٧٨Z"),
        vec![
            ("ssn".to_string(), "١٢٣-٤٥-٦٧٨٩".to_string()),
            ("dni".to_string(), "١٢٣٤٥٦٧٨Z".to_string())
        ]
    );
}

/// A binary payload's own text is scanned (its characters leave as they are), so the
/// detectors must not read random base64 as personal data: 4 MB of it, from random bytes (a
/// fixed seed), standard and URL-safe, hold no item (before IBANs needed a known country at
/// its length and one case, there were nine in these bytes; before the payload's key length
/// limit, one).
#[test]
fn random_base64_holds_no_item() {
    use base64::Engine;
    let d = Detector::new(&PiiConfig::default()).unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..3 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    for engine in [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
    ] {
        let text = engine.encode(&bytes);
        let found: Vec<_> = d
            .scan_payload(&text)
            .into_iter()
            .map(|m| (m.kind, text[m.start..m.end.min(m.start + 80)].to_string()))
            .collect();
        assert_eq!(found, vec![], "in {} bytes", text.len());
    }
    // A key that runs on into base64 is a piece of it; one standing alone is a key.
    let key = "AIzaSyA1234567890abcdefghijklmnopqrstuv";
    let kinds =
        |t: &str| -> Vec<String> { d.scan_payload(t).into_iter().map(|m| m.kind).collect() };
    assert_eq!(kinds(&format!("QUJD/{key}QUJD")), Vec::<String>::new());
    assert_eq!(kinds(&format!("QUJD/{key}")), vec!["secret".to_string()]);
}

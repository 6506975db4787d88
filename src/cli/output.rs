//! What the CLI writes to a terminal. Logged text is the clients' (model, user, prompt, ids)
//! and the backends' (response, tool calls, error messages): printed raw, an escape sequence in
//! it would clear the screen, set the window title, write a fake link, overwrite a line or, on
//! some terminals, the clipboard. Every text (non-JSON) output of a command that prints logged
//! text goes through [`terminal_safe`]; `--json` output through [`json_safe`] (serde escapes
//! C0 controls, but not DEL, C1 controls or the bidi overrides).

use std::borrow::Cow;

/// Whether `c` must not reach a terminal raw: C0 controls other than `\n` and `\t`, DEL, C1
/// controls (U+0080–U+009F, among them CSI U+009B and OSC U+009D), and the bidi embeddings,
/// overrides and isolates (U+202A–U+202E, U+2066–U+2069) that reorder what follows them.
pub fn is_unsafe(c: char) -> bool {
    match c {
        '\n' | '\t' => false,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => true,
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        _ => false,
    }
}

/// `s` with every [`is_unsafe`] character written visibly: ASCII controls and DEL as `\x1b`,
/// the others as `\u{9b}`, `\u{202e}`. Everything else, `\n` and `\t` included, is unchanged
/// (borrowed when nothing needed escaping). The result holds no unsafe character, so applying
/// it twice changes nothing.
pub fn terminal_safe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if !is_unsafe(c) {
            out.push(c);
        } else if c.is_ascii() {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    Cow::Owned(out)
}

/// JSON text `s` with every [`is_unsafe`] character serde left raw (DEL, C1 controls, bidi
/// overrides: they can only sit inside strings) written as a `\uXXXX` escape: the same JSON
/// value, safe on a terminal.
pub fn json_safe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && is_unsafe(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if c != '\n' && is_unsafe(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by an attacker test: a key name with U+202E reached the terminal raw through
    /// `sluice keys show` (serde escapes only C0 controls). The escaped text is the same JSON.
    #[test]
    fn json_output_escapes_what_serde_leaves_raw() {
        let v = serde_json::json!({"name": "a\u{202e}b\u{9b}c\u{7f}d\u{1b}e"});
        let text = serde_json::to_string_pretty(&v).unwrap();
        let safe = json_safe(&text);
        assert!(!safe.chars().any(|c| c != '\n' && is_unsafe(c)), "{safe}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&safe).unwrap(), v);
        assert!(matches!(json_safe("{\"a\": 1}\n"), Cow::Borrowed(_)));
    }

    #[test]
    fn controls_and_bidi_overrides_are_written_visibly() {
        let s =
            "a\x1b[2Jb\x1b]0;title\x07c\r\x1b[K\x08\x7f\u{9b}31m\u{202e}gnp.exe\u{2066}x\u{2069}";
        assert_eq!(
            terminal_safe(s),
            "a\\x1b[2Jb\\x1b]0;title\\x07c\\x0d\\x1b[K\\x08\\x7f\\u{9b}31m\\u{202e}gnp.exe\\u{2066}x\\u{2069}"
        );
        assert!(!terminal_safe(s).chars().any(is_unsafe));
        assert_eq!(terminal_safe(&terminal_safe(s)), terminal_safe(s));
    }

    #[test]
    fn ordinary_text_newlines_and_tabs_pass_unchanged() {
        let s = "user: café → 東京\n\tC:\\path \"q\" \u{a0}\u{200b}\u{2028}\n";
        assert!(matches!(terminal_safe(s), Cow::Borrowed(b) if b == s));
        for c in ['\u{1f}', '\u{80}', '\u{9f}', '\u{202a}', '\u{2069}', '\0'] {
            assert!(is_unsafe(c), "{c:?}");
        }
        for c in [
            '\u{20}', '\u{a0}', '\u{2029}', '\u{2065}', '\u{206a}', '\u{202f}',
        ] {
            assert!(!is_unsafe(c), "{c:?}");
        }
    }
}

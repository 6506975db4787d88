//! Which strings of a request are binary payloads ([`super::Visit::binary`]) rather than
//! text: base64 `data:` URLs and base64 fields, by their characters and how their lines wrap;
//! and which values are token ids.

use serde_json::Value;

/// Whether a string is a binary payload rather than text: a `data:` URL whose `;base64,`
/// (within its first 200 bytes) is followed by base64 characters only, or the value of a
/// `data` / `file_data` / `b64_json` / `images` (Ollama) key made only of base64 characters
/// (≥ 64 of them). Anything else is text, and scanned: `data:text/plain;base64, mail
/// ana@example.com` is not binary.
pub(super) fn is_binary(key: Option<&str>, s: &str) -> bool {
    const MARK: &[u8] = b";base64,";
    if s.starts_with("data:") {
        let head = &s.as_bytes()[..s.len().min(200)];
        if let Some(i) = head.windows(MARK.len()).position(|w| w == MARK) {
            return is_base64(&s.as_bytes()[i + MARK.len()..]);
        }
    }
    matches!(key, Some("data" | "file_data" | "b64_json" | "images"))
        && s.len() >= 64
        && is_base64(s.as_bytes())
}

/// Base64 (standard or URL-safe alphabet, padding) and nothing else, with line breaks only
/// as an encoder wraps it: every line but the last of one length, the last no longer (a text
/// of short lines of digits and letters is not base64).
fn is_base64(b: &[u8]) -> bool {
    let alphabet = b.iter().all(|b| {
        b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_' | b'\n' | b'\r')
    });
    alphabet && wrapped_evenly(b)
}

/// Whether the lines of `b` (split at `\n`, a `\r` before it ignored, a final line break
/// allowed) all have the first line's length, but the last, which is not longer.
fn wrapped_evenly(b: &[u8]) -> bool {
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    let b = b.strip_suffix(b"\r").unwrap_or(b);
    let mut lines = b
        .split(|&c| c == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).len());
    let Some(width) = lines.next() else {
        return true;
    };
    let mut last = width;
    for (i, len) in lines.enumerate() {
        // The line before this one was not the last: it must have been full.
        if i > 0 && last != width {
            return false;
        }
        last = len;
    }
    last <= width && last > 0
}

/// Whether `v` is token ids: a non-empty array of integers, or of non-empty arrays of them.
pub(super) fn is_token_ids(v: &Value) -> bool {
    let ints = |v: &Value| matches!(v.as_array(), Some(a) if !a.is_empty() && a.iter().all(|x| x.is_i64() || x.is_u64()));
    ints(v) || matches!(v.as_array(), Some(a) if !a.is_empty() && a.iter().all(ints))
}

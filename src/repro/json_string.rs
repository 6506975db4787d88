//! A JSON string written as `serde_json` writes it, by a vectorised escaper.
//!
//! The hash chain's canonical text, the request hash and the response hash all write texts as
//! JSON strings, and those texts are mostly JSON themselves (a logged request body), full of
//! quotes to escape: `serde_json`'s byte-at-a-time escaping was the largest single cost of the
//! log's row hash. [`push`] gives the same bytes (property-tested below against
//! `serde_json::to_writer`), so every hash stays what it was.

/// Texts longer than this go through `serde_json`'s escaper, which grows its buffer as it
/// writes: the vectorised one first reserves six times the text (a 10 MB base64 image would
/// reserve 60 MB).
pub const LONGEST_VECTORISED: usize = 64 * 1024;

/// Spare capacity [`push`] needs past the end of its buffer to write a text of `len` bytes
/// without growing it: the vectorised kernel stores whole registers ahead of what it keeps
/// (a longer text than [`LONGEST_VECTORISED`] needs none: it is written as it grows).
pub fn room(len: usize) -> usize {
    len.min(LONGEST_VECTORISED) * 6 + 35
}

/// Appends `s` as a JSON string (quotes included) to `out`: `"` and `\` escaped, `\b \f \n \r
/// \t` as such, other control characters below U+0020 as `\u00xx`, everything else as is.
pub fn push(out: &mut Vec<u8>, s: &str) {
    if s.len() > LONGEST_VECTORISED {
        // Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
        return;
    }
    json_escape_simd::escape_into(s, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn serde_json_text(s: &str) -> Vec<u8> {
        serde_json::to_vec(s).unwrap()
    }

    #[test]
    fn each_character_class_is_written_as_serde_json_writes_it() {
        let mut all = String::new();
        for c in (0u32..0x300).filter_map(char::from_u32) {
            all.push(c);
        }
        for s in [
            "",
            "plain",
            "{\"model\":\"default\",\"messages\":[{\"role\":\"user\"}]}",
            "back\\slash \"quoted\" \u{7f} \u{2028} \u{1F600}",
            "\u{0}\u{1}\u{8}\u{9}\u{a}\u{b}\u{c}\u{d}\u{1f} tail",
            all.as_str(),
            &"\"a\\\u{1}é".repeat(LONGEST_VECTORISED / 4),
        ] {
            let mut out = b"prefix".to_vec();
            push(&mut out, s);
            assert_eq!(out[6..], serde_json_text(s)[..], "for {s:?}");
            assert_eq!(&out[..6], b"prefix");
        }
    }

    proptest! {
        #[test]
        fn any_text_is_written_as_serde_json_writes_it(
            s in "(\\PC|[\\x00-\\x1f\"\\\\\u{7f}\u{2028}]){0,300}",
            t in any::<String>(),
        ) {
            for text in [&s, &t] {
                let mut out = Vec::new();
                push(&mut out, text);
                prop_assert_eq!(out, serde_json_text(text));
            }
        }
    }
}

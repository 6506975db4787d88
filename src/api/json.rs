//! JSON from bytes, with the UTF-8 check made once for the whole text.
//!
//! `serde_json::from_slice` checks that each string it reads is UTF-8, one call per string:
//! about 2,500 instructions of a chat request's parses of its body and its answer (27
//! strings; issue 21, callgrind). [`from_bytes`] checks the whole text once (the standard
//! library's check reads ASCII a word at a time) and parses it as a `&str`; a text that is
//! not UTF-8 is handed to `from_slice`, so its error is exactly the one `serde_json` gives.

use serde::Deserialize;

/// `T` parsed from the JSON text `bytes`: the same value, or the same error, as
/// `serde_json::from_slice(bytes)` (values may borrow from `bytes`).
///
/// Errors: `bytes` are not JSON of `T`'s shape (`serde_json`'s own error, position included).
pub fn from_bytes<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    fn both(bytes: &[u8]) -> (Result<Value, String>, Result<Value, String>) {
        (
            from_bytes::<Value>(bytes).map_err(|e| e.to_string()),
            serde_json::from_slice::<Value>(bytes).map_err(|e| e.to_string()),
        )
    }

    #[test]
    fn texts_that_are_not_utf8_fail_as_serde_json_fails_them() {
        for bytes in [
            &b"{\"a\":\"\xff\"}"[..],
            b"{\"a\":\"ok\"}\xc3",
            b"\xef\xbb\xbf{}",
            b"[\"\xed\xa0\x80\"]",
        ] {
            let (ours, theirs) = both(bytes);
            assert!(theirs.is_err(), "{bytes:?}");
            assert_eq!(ours, theirs, "{bytes:?}");
        }
        assert_eq!(
            both(b"{\"a\":\"\xc3\xa9\"}").0,
            Ok(serde_json::json!({"a": "é"}))
        );
        // Not UTF-8 only inside a field the type skips: from_slice does not check a skipped
        // string, and neither does from_bytes (it hands the text to from_slice).
        #[derive(Debug, Deserialize, PartialEq)]
        struct Only {
            a: u8,
        }
        let bytes = b"{\"a\":1,\"skipped\":\"\xff\"}";
        assert_eq!(
            serde_json::from_slice::<Only>(bytes).unwrap(),
            Only { a: 1 }
        );
        assert_eq!(from_bytes::<Only>(bytes).unwrap(), Only { a: 1 });
    }

    #[test]
    fn borrowed_strings_still_borrow_from_the_bytes() {
        #[derive(Deserialize)]
        struct View<'a> {
            #[serde(borrow)]
            id: std::borrow::Cow<'a, str>,
        }
        let bytes = br#"{"id":"chatcmpl-1"}"#;
        let v: View<'_> = from_bytes(bytes).unwrap();
        assert!(matches!(v.id, std::borrow::Cow::Borrowed("chatcmpl-1")));
    }

    proptest! {
        /// Any bytes, and any JSON text cut or with one byte changed: the same value or the
        /// same error message as `serde_json::from_slice`.
        #[test]
        fn any_text_parses_as_from_slice_parses_it(
            raw in proptest::collection::vec(
                prop_oneof![8 => b' '..b'\x7f', 1 => any::<u8>()],
                0..64,
            ),
            text in "(\\PC|[\"\\\\{}\\[\\]:,0-9.eE+-]){0,80}",
            cut in any::<prop::sample::Index>(),
            flip in any::<(prop::sample::Index, u8)>(),
        ) {
            let (ours, theirs) = both(&raw);
            prop_assert_eq!(ours, theirs);
            let (ours, theirs) = both(text.as_bytes());
            prop_assert_eq!(ours, theirs);
            let json = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": text}], "n": 1.5});
            let mut bytes = serde_json::to_vec(&json).unwrap();
            let (ours, theirs) = both(&bytes[..cut.index(bytes.len() + 1)]);
            prop_assert_eq!(ours, theirs);
            let at = flip.0.index(bytes.len());
            bytes[at] = flip.1;
            let (ours, theirs) = both(&bytes);
            prop_assert_eq!(ours, theirs);
        }
    }
}

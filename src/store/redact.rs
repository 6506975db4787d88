//! PII placeholders for `log.prompts: redacted`, using the policy module's detectors
//! ([`crate::policy::pii::Detector`], built from the config's `pii:` block), so the log and the
//! policies agree on what personal data is. Each item becomes its kind in capitals:
//! `[EMAIL]`, `[IBAN]`, `[CARD]`, `[PHONE]`, `[SECRET]`, or a `pii.patterns` name.
//! (Unlike the request redaction, the log keeps no numbering: no mapping back to values.)

use crate::policy::pii::Detector;
use serde_json::Value;

/// `text` with every detected item replaced by `[KIND]`.
pub fn redact_for_log(detector: &Detector, text: &str) -> String {
    let found = detector.scan(text);
    if found.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for m in found {
        out.push_str(&text[at..m.start]);
        out.push('[');
        out.push_str(&m.kind.to_uppercase());
        out.push(']');
        at = m.end;
    }
    out.push_str(&text[at..]);
    out
}

/// `v` with [`redact_for_log`] applied to every string, number and key inside it. A number
/// that holds an item becomes a string (`4111111111111111` → `"[CARD]"`); two keys that
/// redact to the same text keep the later value (JSON objects have one value per key).
pub fn redact_json(detector: &Detector, v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(redact_for_log(detector, s)),
        Value::Number(n) => {
            let text = n.to_string();
            let redacted = redact_for_log(detector, &text);
            if redacted == text {
                v.clone()
            } else {
                Value::String(redacted)
            }
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| redact_json(detector, x)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (redact_for_log(detector, k), redact_json(detector, v)))
                .collect(),
        ),
        Value::Bool(_) | Value::Null => v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PiiConfig;

    fn detector() -> Detector {
        Detector::new(&PiiConfig::default()).unwrap()
    }

    #[test]
    fn numbers_and_keys_are_redacted_too() {
        let d = detector();
        let v = serde_json::json!({"metadata": {"card": 4111111111111111_u64, "n": 3,
            "ana@example.com": "vip"}});
        assert_eq!(
            redact_json(&d, &v),
            serde_json::json!({"metadata": {"card": "[CARD]", "n": 3, "[EMAIL]": "vip"}})
        );
    }

    #[test]
    fn replaces_each_kind() {
        let d = detector();
        assert_eq!(
            redact_for_log(&d, "Mail anna.berg@example.com now"),
            "Mail [EMAIL] now"
        );
        assert_eq!(
            redact_for_log(&d, "IBAN DE89 3704 0044 0532 0130 00 please"),
            "IBAN [IBAN] please"
        );
        assert_eq!(
            redact_for_log(&d, "card 4111 1111 1111 1111."),
            "card [CARD]."
        );
        assert_eq!(
            redact_for_log(&d, "nothing here, 42 items"),
            "nothing here, 42 items"
        );
    }

    #[test]
    fn json_strings_are_redacted_keys_kept() {
        let v = serde_json::json!({"messages":[{"role":"user","content":"a.b@example.io"}],"n":1});
        assert_eq!(
            redact_json(&detector(), &v),
            serde_json::json!({"messages":[{"role":"user","content":"[EMAIL]"}],"n":1})
        );
    }
}

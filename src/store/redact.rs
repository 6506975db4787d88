//! PII placeholders for `log.prompts: redacted`: emails, IBANs, payment card numbers (Luhn
//! checked) and phone numbers become `[EMAIL]`, `[IBAN]`, `[CARD]`, `[PHONE]`.
//!
//! A small interface of its own until the policy module's PII detectors (src/policy/pii.rs)
//! land; then `redact_for_log` should call them so the log and the policies agree on what PII
//! is.

use regex::Regex;
use serde_json::Value;
use std::sync::LazyLock;

struct Detectors {
    email: Option<Regex>,
    iban: Option<Regex>,
    card: Option<Regex>,
    phone: Option<Regex>,
}

static DETECTORS: LazyLock<Detectors> = LazyLock::new(|| Detectors {
    email: Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}").ok(),
    iban: Regex::new(r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b").ok(),
    card: Regex::new(r"\b[0-9](?:[ -]?[0-9]){12,18}\b").ok(),
    phone: Regex::new(r"(?:\+|\b)[0-9](?:[ ()./-]{0,2}[0-9]){6,14}\b").ok(),
});

/// `text` with every email, IBAN, card number and phone number replaced by its kind
/// placeholder. Card-like digit runs that fail the Luhn check are left to the phone pattern.
pub fn redact_for_log(text: &str) -> String {
    let d = &*DETECTORS;
    let mut out = text.to_string();
    if let Some(re) = &d.email {
        out = re.replace_all(&out, "[EMAIL]").into_owned();
    }
    if let Some(re) = &d.iban {
        out = re.replace_all(&out, "[IBAN]").into_owned();
    }
    if let Some(re) = &d.card {
        out = re
            .replace_all(&out, |c: &regex::Captures<'_>| {
                let m = &c[0];
                if luhn(m) {
                    "[CARD]".to_string()
                } else {
                    m.to_string()
                }
            })
            .into_owned();
    }
    if let Some(re) = &d.phone {
        out = re.replace_all(&out, "[PHONE]").into_owned();
    }
    out
}

/// `v` with [`redact_for_log`] applied to every string inside it (keys are kept).
pub fn redact_json(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(redact_for_log(s)),
        Value::Array(a) => Value::Array(a.iter().map(redact_json).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), redact_json(v))).collect())
        }
        other => other.clone(),
    }
}

fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() < 13 {
        return false;
    }
    let sum: u32 = digits
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
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_each_kind() {
        assert_eq!(
            redact_for_log("Mail anna.berg@example.com now"),
            "Mail [EMAIL] now"
        );
        assert_eq!(
            redact_for_log("IBAN DE89 3704 0044 0532 0130 00 please"),
            "IBAN [IBAN] please"
        );
        assert_eq!(redact_for_log("card 4111 1111 1111 1111."), "card [CARD].");
        assert_eq!(
            redact_for_log("call +49 30 1234567 or (030) 765-4321"),
            "call [PHONE] or ([PHONE]"
        );
        assert_eq!(
            redact_for_log("nothing here, 42 items"),
            "nothing here, 42 items"
        );
    }

    #[test]
    fn json_strings_are_redacted_keys_kept() {
        let v = serde_json::json!({"messages":[{"role":"user","content":"a@b.io"}],"n":1});
        assert_eq!(
            redact_json(&v),
            serde_json::json!({"messages":[{"role":"user","content":"[EMAIL]"}],"n":1})
        );
    }
}

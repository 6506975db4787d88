//! Restoring placeholders in a native Messages or Responses stream, one event at a time (see
//! [`super::redact`] for the scheme). Events without a placeholder are left alone (the caller
//! relays their exact bytes); changed events are given back as new `data` objects.
//!
//! - Deltas (Messages `content_block_delta` `text` / `partial_json` / `thinking`; Responses
//!   `*.delta` events' `delta`): a tail that may still become a placeholder is held back and
//!   sent with the next delta of the same block, or — when the block ends — as one extra delta
//!   event right before its `content_block_stop` / `*.done` event.
//! - Every other event (`message_start`, `*.done`, `response.completed`, …): every string
//!   restored whole.

use super::redact::Redaction;
use crate::api::native::Dialect;
use serde_json::Value;
use std::collections::HashMap;

/// The restorer of one native stream.
#[derive(Debug)]
pub struct NativeRestorer {
    redaction: Redaction,
    dialect: Dialect,
    /// Held-back tails by block key: (delta field, text).
    carry: HashMap<String, (String, String)>,
}

impl NativeRestorer {
    /// A restorer for one stream of `dialect`.
    pub fn new(redaction: Redaction, dialect: Dialect) -> Self {
        NativeRestorer {
            redaction,
            dialect,
            carry: HashMap::new(),
        }
    }

    /// The events to send for `data`: `None` when it is unchanged (relay its bytes), else
    /// the rewritten event, preceded by a delta carrying held-back text when a block ends.
    pub fn apply(&mut self, data: &Value) -> Option<Vec<Value>> {
        let kind = data.get("type").and_then(Value::as_str).unwrap_or("");
        match self.dialect {
            Dialect::Messages if kind == "content_block_delta" => {
                let field = ["text", "partial_json", "thinking"].into_iter().find(|f| {
                    data.pointer(&format!("/delta/{f}"))
                        .is_some_and(Value::is_string)
                })?;
                let key = block_key(data, &["index"]);
                self.delta(data, &key, &["delta", field]).map(|v| vec![v])
            }
            Dialect::Messages if kind == "content_block_stop" => {
                let key = block_key(data, &["index"]);
                let (field, held) = self.carry.remove(&key)?;
                let mut delta = serde_json::json!({"type": "content_block_delta",
                    "index": data.get("index").cloned().unwrap_or(Value::from(0)),
                    "delta": {"type": delta_type(&field)}});
                delta["delta"][field.as_str()] = Value::from(self.restore(&field, &held));
                Some(vec![delta, data.clone()])
            }
            Dialect::Responses
                if kind.ends_with(".delta") && data.get("delta").is_some_and(Value::is_string) =>
            {
                let key = format!(
                    "{}|{}",
                    kind.trim_end_matches(".delta"),
                    block_key(data, &["item_id", "output_index", "content_index"])
                );
                self.delta(data, &key, &["delta"]).map(|v| vec![v])
            }
            Dialect::Responses if kind.ends_with(".done") => {
                let prefix = kind.trim_end_matches(".done");
                let key = format!(
                    "{prefix}|{}",
                    block_key(data, &["item_id", "output_index", "content_index"])
                );
                let mut done = data.clone();
                self.redaction.restore_json(&mut done);
                match self.carry.remove(&key) {
                    Some((_, held)) => {
                        let mut delta = serde_json::Map::new();
                        delta.insert("type".into(), Value::from(format!("{prefix}.delta")));
                        for k in [
                            "item_id",
                            "output_index",
                            "content_index",
                            "sequence_number",
                        ] {
                            if let Some(v) = data.get(k) {
                                delta.insert(k.into(), v.clone());
                            }
                        }
                        delta.insert("delta".into(), Value::from(self.restore(prefix, &held)));
                        Some(vec![Value::Object(delta), done])
                    }
                    None => (done != *data).then(|| vec![done]),
                }
            }
            _ => {
                let mut v = data.clone();
                self.redaction.restore_json(&mut v);
                (v != *data).then(|| vec![v])
            }
        }
    }

    /// Restores the delta string at `path`, holding back a possible placeholder start.
    fn delta(&mut self, data: &Value, key: &str, path: &[&str]) -> Option<Value> {
        let pointer: String = path.iter().map(|p| format!("/{p}")).collect();
        let s = data.pointer(&pointer).and_then(Value::as_str)?;
        let field = path.last().copied().unwrap_or("delta").to_string();
        let held = self.carry.remove(key).map(|(_, t)| t);
        if held.is_none() && !s.contains('[') {
            return None;
        }
        let mut text = held.unwrap_or_default();
        text.push_str(s);
        let hold = self.redaction.pending_tail(&text);
        let keep = text.len() - hold;
        if hold > 0 {
            self.carry
                .insert(key.to_string(), (field, text[keep..].to_string()));
        }
        let restored = match self.dialect {
            Dialect::Messages => self.restore(path.last().copied().unwrap_or(""), &text[..keep]),
            Dialect::Responses => self.restore(key.split('|').next().unwrap_or(""), &text[..keep]),
        };
        if restored == s {
            return None;
        }
        let mut out = data.clone();
        if let Some(slot) = out.pointer_mut(&pointer) {
            *slot = Value::from(restored);
        }
        Some(out)
    }
}

impl NativeRestorer {
    /// Restores `text` of a delta of `kind` (a Messages delta field, or a Responses event
    /// type without `.delta`): tool-call arguments are JSON text.
    fn restore(&self, kind: &str, text: &str) -> String {
        match kind == "partial_json" || kind.ends_with("_arguments") {
            true => self.redaction.restore_json_text(text),
            false => self.redaction.restore_text(text),
        }
    }
}

fn block_key(data: &Value, keys: &[&str]) -> String {
    keys.iter()
        .map(|k| data.get(*k).map(Value::to_string).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("|")
}

fn delta_type(field: &str) -> &'static str {
    match field {
        "partial_json" => "input_json_delta",
        "thinking" => "thinking_delta",
        _ => "text_delta",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RequestBody;
    use serde_json::json;

    fn redaction() -> Redaction {
        let body = RequestBody::Chat(
            serde_json::from_value(
                json!({"model":"m","messages":[{"role":"user","content":"mail ann@example.com"}]}),
            )
            .unwrap(),
        );
        let d = crate::policy::pii::Detector::new(&Default::default()).unwrap();
        let (_, r) = super::super::redact::redact(&d, &body, &["email".to_string()]);
        assert_eq!(r.len(), 1);
        r
    }

    #[test]
    fn split_placeholders_are_restored_across_message_deltas() {
        let r = redaction();
        let ph = r.placeholders().next().unwrap().to_string();
        let (a, b) = ph.split_at(3);
        let mut n = NativeRestorer::new(r, Dialect::Messages);
        let d = |t: &str| json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":t}});
        assert_eq!(n.apply(&d("Hi ")), None);
        assert_eq!(n.apply(&d(&format!("to {a}"))), Some(vec![d("to ")]));
        assert_eq!(
            n.apply(&d(&format!("{b}!"))),
            Some(vec![d("ann@example.com!")])
        );
        assert_eq!(n.apply(&d(a)), Some(vec![d("")]));
        let stop = json!({"type":"content_block_stop","index":0});
        assert_eq!(n.apply(&stop), Some(vec![d(a), stop.clone()]));
        assert_eq!(n.apply(&stop), None);
    }

    #[test]
    fn responses_done_events_flush_and_restore() {
        let r = redaction();
        let ph = r.placeholders().next().unwrap().to_string();
        let mut n = NativeRestorer::new(r, Dialect::Responses);
        let delta = json!({"type":"response.output_text.delta","item_id":"m1","output_index":0,"content_index":0,"delta":"x ["});
        assert_eq!(n.apply(&delta).unwrap()[0]["delta"], "x ");
        let done = json!({"type":"response.output_text.done","item_id":"m1","output_index":0,"content_index":0,"sequence_number":9,"text":format!("x {ph}")});
        let out = n.apply(&done).unwrap();
        assert_eq!(out[0]["type"], "response.output_text.delta");
        assert_eq!(out[0]["delta"], "[");
        assert_eq!(out[1]["text"], "x ann@example.com");
    }
}

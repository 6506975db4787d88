//! Redaction: replaces each detected item with a stable placeholder (`[EMAIL_1]`; the same
//! value always gets the same placeholder within a request) before the request leaves, and
//! puts the originals back into what the client receives — whole responses and streams. In a
//! stream a placeholder may be split across deltas (`[EMA` + `IL_1]`): the restorer holds back
//! a tail that could still become a placeholder (at most one placeholder's length) and sends it
//! with the next delta or the choice's finish chunk.

use super::pii::Detector;
use crate::api::RequestBody;
use crate::api::visit::{Leaf, VisitMut, visit_mut};
use serde_json::Value;
use std::collections::HashMap;

/// Placeholder ↔ original pairs of one request. Holds personal data: never log it.
#[derive(Clone, Default)]
pub struct Redaction {
    pairs: Vec<(String, String)>,
    /// Per pair: whether its original was taken from JSON text (tool-call `arguments` of the
    /// history), so it is already escaped as it would be inside a JSON string.
    escaped: Vec<bool>,
    /// Placeholder → index in `pairs`.
    index: HashMap<String, usize>,
    /// Length of the longest placeholder, bytes.
    longest: usize,
}

/// The longest text between `[` and `]` (both included) taken for a placeholder, bytes.
const MAX_PLACEHOLDER: usize = 64;

impl std::fmt::Debug for Redaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redaction({} items)", self.pairs.len())
    }
}

impl Redaction {
    /// Number of distinct values replaced.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether nothing was replaced.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The placeholders, in order of creation.
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(p, _)| p.as_str())
    }

    /// `text` with every placeholder replaced by its original, in one pass.
    pub fn restore_text(&self, text: &str) -> String {
        self.restore(text, false)
    }

    /// [`Redaction::restore_text`] for text that is itself JSON (tool-call `arguments`,
    /// Anthropic's `partial_json`): each original goes in JSON-escaped, as the model would
    /// have written it inside a JSON string, so a value holding `"`, `\` or a line break
    /// (a private key block) keeps the arguments valid JSON.
    pub fn restore_json_text(&self, text: &str) -> String {
        self.restore(text, true)
    }

    fn restore(&self, text: &str, json: bool) -> String {
        if !text.contains('[') || self.pairs.is_empty() {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(open) = rest.find('[') {
            out.push_str(&rest[..open]);
            let candidate = &rest[open..];
            let close = candidate
                .as_bytes()
                .iter()
                .take(self.longest)
                .position(|b| *b == b']');
            match close.and_then(|c| self.index.get(&candidate[..=c]).map(|i| (c, *i))) {
                Some((c, i)) => {
                    let original = &self.pairs[i].1;
                    match (json, self.escaped[i]) {
                        (true, false) => push_json_escaped(&mut out, original),
                        (false, true) => push_json_unescaped(&mut out, original),
                        _ => out.push_str(original),
                    }
                    rest = &candidate[c + 1..];
                }
                None => {
                    out.push('[');
                    rest = &candidate[1..];
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// Restores every string inside `v` (a whole response); an `arguments` or `partial_json`
    /// string is JSON text ([`Redaction::restore_json_text`]).
    pub fn restore_json(&self, v: &mut Value) {
        match v {
            Value::String(s) => *s = self.restore_text(s),
            Value::Array(items) => items.iter_mut().for_each(|x| self.restore_json(x)),
            Value::Object(m) => {
                // A call's arguments (`{"name": …, "arguments": "{…}"}` in chat and Responses)
                // or a Messages `partial_json` delta; a tool's input object stays plain.
                let call = m.contains_key("name")
                    || m.get("type")
                        .and_then(Value::as_str)
                        .is_some_and(|t| t.ends_with("_arguments.done"));
                for (k, x) in m.iter_mut() {
                    match x {
                        Value::String(s) if is_json_text(k) && (call || k != "arguments") => {
                            *s = self.restore_json_text(s)
                        }
                        _ => self.restore_json(x),
                    }
                }
            }
            _ => {}
        }
    }

    /// Length of the longest suffix of `s` that may still become a placeholder (from the last
    /// `[`, without `]`, shorter than the longest placeholder), i.e. what must wait for the
    /// next delta. Constant work per delta, whatever the number of placeholders.
    pub(crate) fn pending_tail(&self, s: &str) -> usize {
        let Some(pos) = s.rfind('[') else {
            return 0;
        };
        let tail = &s[pos..];
        let could_grow = tail.len() < self.longest && !tail.contains(']');
        if could_grow { tail.len() } else { 0 }
    }
}

/// Whether a string field named `key` holds JSON text: tool-call `arguments` (chat, Responses)
/// and Anthropic's `partial_json` deltas.
pub(crate) fn is_json_text(key: &str) -> bool {
    matches!(key, "arguments" | "partial_json")
}

/// Appends `s` as it appears inside a JSON string literal (escaped, without the quotes).
fn push_json_escaped(out: &mut String, s: &str) {
    let quoted = Value::from(s).to_string();
    out.push_str(&quoted[1..quoted.len() - 1]);
}

/// Appends `s`, text taken from inside a JSON string literal, as the text it stands for
/// (`ana\u0040example.com` → `ana@example.com`); as it is when it is not such text.
fn push_json_unescaped(out: &mut String, s: &str) {
    match serde_json::from_str::<String>(&format!("\"{s}\"")) {
        Ok(text) => out.push_str(&text),
        Err(_) => out.push_str(s),
    }
}

/// Every bracketed token (`[…]`, at most [`MAX_PLACEHOLDER`] bytes) already in `body`, so
/// new placeholders never collide with the client's own text.
fn existing_tokens(body: &RequestBody) -> std::collections::HashSet<String> {
    let mut out = std::collections::HashSet::new();
    for (_, _, text) in crate::api::visit::strings(body) {
        let mut rest = text;
        while let Some(open) = rest.find('[') {
            let candidate = &rest[open..];
            if let Some(c) = candidate
                .as_bytes()
                .iter()
                .take(MAX_PLACEHOLDER)
                .position(|b| *b == b']')
            {
                out.insert(candidate[..=c].to_string());
            }
            rest = &candidate[1..];
        }
    }
    out
}

/// Replaces the items of the given `kinds` in every text of `body`; returns the redacted copy
/// and the pairs needed to restore the response. Placeholders are `[KIND_N]` (kind upper-cased,
/// N counting per kind from 1), skipping any that already occur in the request.
pub fn redact(
    detector: &Detector,
    body: &RequestBody,
    kinds: &[String],
) -> (RequestBody, Redaction) {
    let mut out = body.clone();
    let existing = existing_tokens(body);
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut escaped: Vec<bool> = Vec::new();
    // Original value → placeholder: one lookup per match (linear in the number of matches).
    let mut by_value: HashMap<String, String> = HashMap::new();
    let mut counters: HashMap<String, usize> = HashMap::new();
    visit_mut(
        &mut out,
        &mut EachText(|path: &str, text: &mut String, payload: bool| {
            let found = match payload {
                true => detector.scan_payload(text),
                false => detector.scan(text),
            };
            let found: Vec<_> = found
                .into_iter()
                .filter(|m| kinds.contains(&m.kind))
                .collect();
            if found.is_empty() {
                return;
            }
            let mut result = String::with_capacity(text.len());
            let mut last = 0;
            for m in found {
                let value = &text[m.start..m.end];
                let placeholder = match by_value.get(value) {
                    Some(p) => p.clone(),
                    None => {
                        let n = counters.entry(m.kind.clone()).or_insert(0);
                        let p = loop {
                            *n += 1;
                            let p = format!("[{}_{}]", m.kind.to_ascii_uppercase(), n);
                            if !existing.contains(&p) {
                                break p;
                            }
                        };
                        pairs.push((p.clone(), value.to_string()));
                        escaped.push(path.ends_with(".arguments") || path == "arguments");
                        by_value.insert(value.to_string(), p.clone());
                        p
                    }
                };
                result.push_str(&text[last..m.start]);
                result.push_str(&placeholder);
                last = m.end;
            }
            result.push_str(&text[last..]);
            *text = result;
        }),
    );
    let index = pairs
        .iter()
        .enumerate()
        .map(|(i, (p, _))| (p.clone(), i))
        .collect();
    let longest = pairs.iter().map(|(p, _)| p.len()).max().unwrap_or(0);
    (
        out,
        Redaction {
            pairs,
            escaped,
            index,
            longest,
        },
    )
}

/// Adapts a closure to [`VisitMut`]: every string leaf, whatever its path, and every binary
/// payload's own text (items spelled in base64's characters are replaced like any other),
/// told apart by the closure's last argument (`true` for a payload).
struct EachText<F>(F);

impl<F: FnMut(&str, &mut String, bool)> VisitMut for EachText<F> {
    fn text(&mut self, path: &str, _: Leaf, text: &mut String) {
        (self.0)(path, text, false)
    }
    fn binary(&mut self, path: &str, payload: &mut String) {
        (self.0)(path, payload, true)
    }
}

/// Restores placeholders in a stream of chunk objects, one chunk at a time.
#[derive(Debug)]
pub struct StreamRestorer {
    redaction: Redaction,
    /// Held-back tails by (choice index, field key).
    carry: HashMap<(u64, String), String>,
    /// The top-level fields (`id`, `object`, `created`, `model`) of the last chunk, for the
    /// chunk [`StreamRestorer::drain`] makes.
    template: Option<Value>,
}

impl StreamRestorer {
    /// A restorer for one stream.
    pub fn new(redaction: Redaction) -> Self {
        StreamRestorer {
            redaction,
            carry: HashMap::new(),
            template: None,
        }
    }

    /// What is still held back when the stream ends without a finish chunk (cut short, an
    /// error, a server that never sends `finish_reason`): one chunk carrying the restored
    /// tails, shaped like the stream's chunks (`delta` for chat, `text` for completions), or
    /// `None` when nothing is held.
    pub fn drain(&mut self) -> Option<Value> {
        if self.carry.is_empty() {
            return None;
        }
        let mut indexes: Vec<u64> = self.carry.keys().map(|(i, _)| *i).collect();
        indexes.sort_unstable();
        indexes.dedup();
        let mut chunk = self
            .template
            .clone()
            .unwrap_or_else(|| serde_json::json!({"object": "chat.completion.chunk"}));
        let is_text = chunk.get("object").and_then(Value::as_str) == Some("text_completion");
        let choices: Vec<Value> = indexes
            .into_iter()
            .map(|i| {
                let mut c = if is_text {
                    serde_json::json!({"index": i, "text": "", "finish_reason": null})
                } else {
                    serde_json::json!({"index": i, "delta": {}, "finish_reason": null})
                };
                self.flush_choice(i, &mut c);
                c
            })
            .collect();
        chunk["choices"] = Value::Array(choices);
        Some(chunk)
    }

    /// Rewrites one chunk in place: restores the text fields of each choice (`delta.content`,
    /// `delta.refusal`, `delta.reasoning_content`, `text`, tool-call `arguments`), holding back
    /// a possible placeholder start, and flushes what was held back when the choice finishes.
    pub fn apply(&mut self, chunk: &mut Value) {
        if let Value::Object(m) = &*chunk {
            let mut t = serde_json::Map::new();
            for k in ["id", "object", "created", "model"] {
                if let Some(v) = m.get(k) {
                    t.insert(k.to_string(), v.clone());
                }
            }
            self.template = Some(Value::Object(t));
        }
        let Some(choices) = chunk.get_mut("choices").and_then(Value::as_array_mut) else {
            return;
        };
        for (pos, c) in choices.iter_mut().enumerate() {
            let index = c.get("index").and_then(Value::as_u64).unwrap_or(pos as u64);
            let finished = c.get("finish_reason").is_some_and(|f| !f.is_null());
            if let Some(t) = c.get_mut("text") {
                self.field(index, "text", t, finished);
            }
            if let Some(delta) = c.get_mut("delta").and_then(Value::as_object_mut) {
                for key in ["content", "refusal", "reasoning_content"] {
                    if let Some(v) = delta.get_mut(key) {
                        self.field(index, key, v, finished);
                    }
                }
                if let Some(calls) = delta.get_mut("tool_calls").and_then(Value::as_array_mut) {
                    for (k, call) in calls.iter_mut().enumerate() {
                        let ti = call
                            .get("index")
                            .and_then(Value::as_u64)
                            .unwrap_or(k as u64);
                        if let Some(args) = call
                            .get_mut("function")
                            .and_then(|f| f.get_mut("arguments"))
                        {
                            self.field(index, &format!("tool{ti}"), args, finished);
                        }
                    }
                }
            }
            if finished {
                self.flush_choice(index, c);
            }
        }
    }

    fn field(&mut self, index: u64, key: &str, v: &mut Value, finished: bool) {
        let Value::String(s) = v else {
            return;
        };
        let mut text = self
            .carry
            .remove(&(index, key.to_string()))
            .unwrap_or_default();
        text.push_str(s);
        let hold = if finished {
            0
        } else {
            self.redaction.pending_tail(&text)
        };
        let keep = text.len() - hold;
        if hold > 0 {
            self.carry
                .insert((index, key.to_string()), text[keep..].to_string());
        }
        *s = match key.starts_with("tool") {
            true => self.redaction.restore_json_text(&text[..keep]),
            false => self.redaction.restore_text(&text[..keep]),
        };
    }

    /// Puts held-back text of choice `index` into its finish chunk `c`.
    fn flush_choice(&mut self, index: u64, c: &mut Value) {
        let keys: Vec<String> = self
            .carry
            .keys()
            .filter(|(i, _)| *i == index)
            .map(|(_, k)| k.clone())
            .collect();
        for key in keys {
            let Some(rest) = self.carry.remove(&(index, key.clone())) else {
                continue;
            };
            let rest = match key.starts_with("tool") {
                true => self.redaction.restore_json_text(&rest),
                false => self.redaction.restore_text(&rest),
            };
            let Some(obj) = c.as_object_mut() else {
                continue;
            };
            if key == "text" {
                obj.insert("text".into(), Value::String(rest));
                continue;
            }
            let delta = obj
                .entry("delta")
                .or_insert_with(|| Value::Object(Default::default()));
            let Some(delta) = delta.as_object_mut() else {
                continue;
            };
            if let Some(ti) = key.strip_prefix("tool") {
                let ti: u64 = ti.parse().unwrap_or(0);
                let calls = delta
                    .entry("tool_calls")
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Some(calls) = calls.as_array_mut() {
                    calls.push(serde_json::json!({"index": ti, "function": {"arguments": rest}}));
                }
            } else {
                delta.insert(key, Value::String(rest));
            }
        }
    }
}

#[cfg(test)]
#[path = "redact_tests.rs"]
mod tests;

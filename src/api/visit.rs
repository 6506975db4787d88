//! The one walk over every string of a request that a backend will receive.
//!
//! [`visit`] (reading) and [`visit_mut`] (rewriting) are generated from one traversal, so
//! they always agree on which strings exist and in which order. Every string leaf is visited,
//! with its JSON path (`messages[0].content[1].text`, `tools[2].function.description`,
//! `metadata.note`, `notes`): the typed fields (their `type` tags too), and every field
//! Sluice does not know (the flattened `extra` maps, at any depth). The PII scan, request
//! redaction, log redaction and the token estimate ([`RequestBody::texts`]) all use it.
//!
//! Text reaches a model in two more forms, reported to readers that want them: every number
//! ([`Visit::number`], as its JSON text: a card number sent as `4111111111111111`), and every
//! key of an object Sluice does not type ([`Visit::key`]: metadata maps, JSON schemas' property
//! names, unknown fields). A rewriter gets each number of an untyped value as text
//! ([`VisitMut::text`]; rewritten, it becomes a string) and each key read-only
//! ([`VisitMut::key`]).
//!
//! A native Messages request also carries the client's `anthropic-beta` header upstream: it is
//! visited last, at [`BETA_HEADER`].
//!
//! Skipped, because they cannot carry user text or are rewritten by Sluice itself (tested in
//! `skipped_fields_are_exactly_these`): the top-level `model` (replaced by the deployment's
//! id) and a chat message's `role` (one of five words, else the request is refused).
//!
//! Payloads that cannot be scanned for personal data are reported to [`Visit::binary`] /
//! [`VisitMut::binary`] instead of as text: a base64 `data:` URL (`image_url.url`,
//! `file_data`, …), the base64 `data` of `input_audio`, and token ids (`prompt` or `input`
//! given as an array of integers, or of arrays of them: text in the model's own encoding).
//! What a payload encodes cannot be read, but its text leaves as it is, so it comes with it:
//! the PII scan, the egress check and redaction search it like any string (text made of
//! base64's characters, a card number on each line, is not an image).

use super::{ChatCompletionRequest, ChatMessage, Content, GenericRequest, RequestBody};
use serde_json::{Map, Value};

/// What a leaf is, for readers that only want some of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    /// Text the model reads as the conversation: message content and text parts, tool-call
    /// arguments, `prompt`, `input`. The token estimate counts these.
    Content,
    /// Any other string (names, descriptions, schemas, metadata, unknown fields, …).
    Other,
}

/// A reader of every string of a request.
pub trait Visit<'a> {
    /// Called for each string leaf, in document order.
    fn text(&mut self, path: &str, leaf: Leaf, text: &'a str);
    /// Called for each binary payload (base64 data, token ids) with its text as sent
    /// (`""` for token ids); default: ignored. The text is what leaves, so a reader looking
    /// for personal data searches it too: text made of base64's characters (a card number, a
    /// line of digits) can pass for a payload.
    fn binary(&mut self, _path: &str, _payload: &'a str) {}
    /// Called for each number, typed fields included, with its JSON text (`4111111111111111`,
    /// `0.7`); default: ignored.
    fn number(&mut self, _path: &str, _text: &str) {}
    /// Called for each key of an untyped object (`metadata`, schemas, unknown fields), with
    /// the path of its entry (`metadata.<key>`); default: ignored.
    fn key(&mut self, _path: &str, _key: &'a str) {}
}

/// A rewriter of every string of a request (same leaves, same order as [`Visit`]).
pub trait VisitMut {
    /// Called for each string leaf, and for each number of an untyped value as its JSON text,
    /// in document order; may rewrite it (a rewritten number becomes a JSON string).
    fn text(&mut self, path: &str, leaf: Leaf, text: &mut String);
    /// Called for each binary payload (base64 data, token ids) with its text, which it may
    /// rewrite (an empty string for token ids, whose rewrite is dropped); default: ignored.
    fn binary(&mut self, _path: &str, _payload: &mut String) {}
    /// Called for each key of an untyped object, read-only (keys are not rewritten);
    /// default: ignored.
    fn key(&mut self, _path: &str, _key: &str) {}
}

/// Walks every string of `body` (see the module docs).
pub fn visit<'a>(body: &'a RequestBody, v: &mut impl Visit<'a>) {
    let mut p = Path::default();
    let mut sink = ReadSink(v);
    match body {
        RequestBody::Chat(r) => read::chat(r, &mut p, &mut sink),
        RequestBody::Generic(r) => read::generic(r, &mut p, &mut sink),
        RequestBody::Native(r) => {
            read::native(&r.body, &mut p, &mut sink);
            if let Some(beta) = &r.anthropic_beta {
                sink.leaf(&Path(BETA_HEADER.into()), None, Leaf::Other, beta);
            }
        }
    }
}

/// The path of the client's `anthropic-beta` header, which a native Messages request carries
/// upstream: visited after the body, as a string of its own.
pub const BETA_HEADER: &str = "header anthropic-beta";

/// Walks every string of a chat request (as [`visit`] does for `RequestBody::Chat`).
pub fn visit_chat<'a>(r: &'a super::ChatCompletionRequest, v: &mut impl Visit<'a>) {
    read::chat(r, &mut Path::default(), &mut ReadSink(v));
}

/// Walks every string of `body` for rewriting (see the module docs).
pub fn visit_mut(body: &mut RequestBody, v: &mut impl VisitMut) {
    let mut p = Path::default();
    let mut sink = WriteSink(v);
    match body {
        RequestBody::Chat(r) => write::chat(r, &mut p, &mut sink),
        RequestBody::Generic(r) => write::generic(r, &mut p, &mut sink),
        RequestBody::Native(r) => {
            write::native(&mut r.body, &mut p, &mut sink);
            if let Some(beta) = &mut r.anthropic_beta {
                sink.leaf(&Path(BETA_HEADER.into()), None, Leaf::Other, beta);
            }
        }
    }
}

/// Walks every string, number and key inside a JSON value (an outgoing body, a logged body)
/// with its path; base64 payloads and token ids go to `binary`.
pub fn visit_json<'a>(v: &'a Value, out: &mut impl Visit<'a>) {
    let mut p = Path::default();
    read::value(v, &mut p, &mut ReadSink(out), Leaf::Other);
}

/// Rewrites every string inside a JSON value (see [`visit_json`]).
pub fn visit_json_mut(v: &mut Value, out: &mut impl VisitMut) {
    let mut p = Path::default();
    write::value(v, &mut p, &mut WriteSink(out), Leaf::Other);
}

/// Every string of `body` with its path and kind, in order (for tests and `explain`).
pub fn strings(body: &RequestBody) -> Vec<(String, Leaf, &str)> {
    struct Collect<'a>(Vec<(String, Leaf, &'a str)>);
    impl<'a> Visit<'a> for Collect<'a> {
        fn text(&mut self, path: &str, leaf: Leaf, text: &'a str) {
            self.0.push((path.to_string(), leaf, text));
        }
    }
    let mut c = Collect(Vec::new());
    visit(body, &mut c);
    c.0
}

/// The JSON path being walked, kept in one buffer (sized once for usual paths such as
/// `messages[12].content[3].image_url.url`, not grown from empty on every request).
struct Path(String);

impl Default for Path {
    fn default() -> Self {
        Path(String::with_capacity(64))
    }
}

impl Path {
    fn key(&mut self, k: &str) -> usize {
        let at = self.0.len();
        if !self.0.is_empty() {
            self.0.push('.');
        }
        self.0.push_str(k);
        at
    }
    fn index(&mut self, i: usize) -> usize {
        let at = self.0.len();
        // Written into the buffer without `fmt`: this runs for every array element of every
        // request.
        self.0.push('[');
        self.0.push_str(itoa::Buffer::new().format(i));
        self.0.push(']');
        at
    }
    fn back(&mut self, at: usize) {
        self.0.truncate(at);
    }
}

#[path = "visit_payload.rs"]
mod payload;
use payload::{is_binary, is_token_ids};

/// A typed number's JSON text, as `serde_json` writes the number, handed to `f`.
trait NumberText {
    fn with_json_text(&self, f: impl FnOnce(&str));
}

macro_rules! number_text {
    ($($t:ty),*) => {$(
        impl NumberText for $t {
            // `serde_json` writes integers with `itoa` too: the same text, without a `String`.
            fn with_json_text(&self, f: impl FnOnce(&str)) {
                f(itoa::Buffer::new().format(*self))
            }
        }
    )*};
}
number_text!(u32, i64);

// A float still goes through a `String` (`serde_json`'s own formatting of it).
impl NumberText for f64 {
    fn with_json_text(&self, f: impl FnOnce(&str)) {
        f(&serde_json::Number::from_f64(*self).map_or_else(String::new, |n| n.to_string()))
    }
}

struct ReadSink<'v, V>(&'v mut V);
struct WriteSink<'v, V>(&'v mut V);

impl<'a, V: Visit<'a>> ReadSink<'_, V> {
    fn leaf(&mut self, p: &Path, key: Option<&str>, leaf: Leaf, s: &'a str) {
        if is_binary(key, s) {
            self.0.binary(&p.0, s);
        } else {
            self.0.text(&p.0, leaf, s);
        }
    }
    /// Token ids: no text of their own.
    fn binary(&mut self, p: &Path) {
        self.0.binary(&p.0, "");
    }
    fn key(&mut self, p: &Path, k: &'a str) {
        self.0.key(&p.0, k);
    }
    /// A number of an untyped value.
    fn json_number(&mut self, p: &Path, v: &Value) {
        if let Value::Number(n) = v {
            self.0.number(&p.0, &n.to_string());
        }
    }
    /// A typed number field, when set.
    fn typed_number(&mut self, p: &mut Path, key: &str, n: Option<&impl NumberText>) {
        if let Some(n) = n {
            let at = p.key(key);
            n.with_json_text(|text| self.0.number(&p.0, text));
            p.back(at);
        }
    }
}

impl<V: VisitMut> WriteSink<'_, V> {
    fn leaf(&mut self, p: &Path, key: Option<&str>, leaf: Leaf, s: &mut String) {
        if is_binary(key, s) {
            self.0.binary(&p.0, s);
        } else {
            self.0.text(&p.0, leaf, s);
        }
    }
    /// Token ids: no text of their own.
    fn binary(&mut self, p: &Path) {
        self.0.binary(&p.0, &mut String::new());
    }
    fn key(&mut self, p: &Path, k: &str) {
        self.0.key(&p.0, k);
    }
    /// A number of an untyped value, as text; rewritten, it becomes a string.
    fn json_number(&mut self, p: &Path, v: &mut Value) {
        if let Value::Number(n) = v {
            let before = n.to_string();
            let mut text = before.clone();
            self.0.text(&p.0, Leaf::Other, &mut text);
            if text != before {
                *v = Value::String(text);
            }
        }
    }
    /// Typed number fields are not rewritten (their type is fixed).
    fn typed_number<N>(&mut self, _: &mut Path, _: &str, _: Option<N>) {}
}

/// The traversal, written once: `$($m)?` is empty for reading and `mut` for rewriting.
macro_rules! traversal {
    ($modname:ident, $sink:ident, $bound:path, [$($lt:lifetime)?], $($m:ident)?) => {
        // `&String` in the read variant mirrors `&mut String` in the write variant.
        #[allow(clippy::ptr_arg)]
        mod $modname {
            use super::*;

            pub(super) fn chat<$($lt,)? V: $bound>(
                r: & $($lt)? $($m)? ChatCompletionRequest,
                p: &mut Path,
                s: &mut $sink<'_, V>,
            ) {
                let at = p.key("messages");
                for (i, m) in (& $($m)? r.messages).into_iter().enumerate() {
                    let j = p.index(i);
                    message(m, p, s);
                    p.back(j);
                }
                p.back(at);
                s.typed_number(p, "temperature", r.temperature.as_ref());
                s.typed_number(p, "top_p", r.top_p.as_ref());
                s.typed_number(p, "top_k", r.top_k.as_ref());
                s.typed_number(p, "n", r.n.as_ref());
                s.typed_number(p, "max_tokens", r.max_tokens.as_ref());
                s.typed_number(p, "max_completion_tokens", r.max_completion_tokens.as_ref());
                s.typed_number(p, "seed", r.seed.as_ref());
                s.typed_number(p, "presence_penalty", r.presence_penalty.as_ref());
                s.typed_number(p, "frequency_penalty", r.frequency_penalty.as_ref());
                s.typed_number(p, "top_logprobs", r.top_logprobs.as_ref());
                if let Some(stop) = & $($m)? r.stop {
                    let at = p.key("stop");
                    match stop {
                        super::super::Stop::One(x) => s.leaf(p, None, Leaf::Other, x),
                        super::super::Stop::Many(xs) => {
                            for (i, x) in xs.into_iter().enumerate() {
                                let j = p.index(i);
                                s.leaf(p, None, Leaf::Other, x);
                                p.back(j);
                            }
                        }
                    }
                    p.back(at);
                }
                if let Some(o) = & $($m)? r.stream_options {
                    let at = p.key("stream_options");
                    map(& $($m)? o.extra, p, s);
                    p.back(at);
                }
                if let Some(tools) = & $($m)? r.tools {
                    let at = p.key("tools");
                    for (i, t) in tools.into_iter().enumerate() {
                        let j = p.index(i);
                        field(p, s, "type", Leaf::Other, & $($m)? t.kind);
                        let f = & $($m)? t.function;
                        let k = p.key("function");
                        field(p, s, "name", Leaf::Other, & $($m)? f.name);
                        if let Some(d) = & $($m)? f.description {
                            field(p, s, "description", Leaf::Other, d);
                        }
                        if let Some(params) = & $($m)? f.parameters {
                            let l = p.key("parameters");
                            value(params, p, s, Leaf::Other);
                            p.back(l);
                        }
                        map(& $($m)? f.extra, p, s);
                        p.back(k);
                        p.back(j);
                    }
                    p.back(at);
                }
                if let Some(tc) = & $($m)? r.tool_choice {
                    let at = p.key("tool_choice");
                    value(tc, p, s, Leaf::Other);
                    p.back(at);
                }
                if let Some(rf) = & $($m)? r.response_format {
                    let at = p.key("response_format");
                    field(p, s, "type", Leaf::Other, & $($m)? rf.kind);
                    if let Some(js) = & $($m)? rf.json_schema {
                        let k = p.key("json_schema");
                        value(js, p, s, Leaf::Other);
                        p.back(k);
                    }
                    p.back(at);
                }
                if let Some(u) = & $($m)? r.user {
                    field(p, s, "user", Leaf::Other, u);
                }
                if let Some(md) = & $($m)? r.metadata {
                    let at = p.key("metadata");
                    map(md, p, s);
                    p.back(at);
                }
                map(& $($m)? r.extra, p, s);
            }

            fn message<$($lt,)? V: $bound>(
                m: & $($lt)? $($m)? ChatMessage,
                p: &mut Path,
                s: &mut $sink<'_, V>,
            ) {
                match & $($m)? m.content {
                    Some(Content::Text(t)) => field(p, s, "content", Leaf::Content, t),
                    Some(Content::Parts(parts)) => {
                        let at = p.key("content");
                        for (i, part) in parts.into_iter().enumerate() {
                            let j = p.index(i);
                            field(p, s, "type", Leaf::Other, & $($m)? part.kind);
                            if let Some(t) = & $($m)? part.text {
                                field(p, s, "text", Leaf::Content, t);
                            }
                            if let Some(img) = & $($m)? part.image_url {
                                let k = p.key("image_url");
                                field(p, s, "url", Leaf::Other, & $($m)? img.url);
                                if let Some(d) = & $($m)? img.detail {
                                    field(p, s, "detail", Leaf::Other, d);
                                }
                                p.back(k);
                            }
                            map(& $($m)? part.extra, p, s);
                            p.back(j);
                        }
                        p.back(at);
                    }
                    None => {}
                }
                if let Some(n) = & $($m)? m.name {
                    field(p, s, "name", Leaf::Other, n);
                }
                if let Some(calls) = & $($m)? m.tool_calls {
                    let at = p.key("tool_calls");
                    for (i, tc) in calls.into_iter().enumerate() {
                        let j = p.index(i);
                        field(p, s, "id", Leaf::Other, & $($m)? tc.id);
                        field(p, s, "type", Leaf::Other, & $($m)? tc.kind);
                        let k = p.key("function");
                        field(p, s, "name", Leaf::Other, & $($m)? tc.function.name);
                        field(p, s, "arguments", Leaf::Content, & $($m)? tc.function.arguments);
                        p.back(k);
                        p.back(j);
                    }
                    p.back(at);
                }
                if let Some(id) = & $($m)? m.tool_call_id {
                    field(p, s, "tool_call_id", Leaf::Other, id);
                }
                map(& $($m)? m.extra, p, s);
            }

            pub(super) fn generic<$($lt,)? V: $bound>(
                r: & $($lt)? $($m)? GenericRequest,
                p: &mut Path,
                s: &mut $sink<'_, V>,
            ) {
                if let Some(o) = & $($m)? r.stream_options {
                    let at = p.key("stream_options");
                    map(& $($m)? o.extra, p, s);
                    p.back(at);
                }
                for (k, v) in & $($m)? r.extra {
                    let leaf = if k == "prompt" || k == "input" { Leaf::Content } else { Leaf::Other };
                    let at = p.key(k);
                    s.key(p, k);
                    keyed(Some(k), v, p, s, leaf);
                    p.back(at);
                }
            }

            /// A native Messages or Responses body: every field but the top-level `model`,
            /// strings under a conversation key ([`super::super::native::is_content_key`])
            /// as [`Leaf::Content`].
            pub(super) fn native<$($lt,)? V: $bound>(
                body: & $($lt)? $($m)? Map<String, Value>,
                p: &mut Path,
                s: &mut $sink<'_, V>,
            ) {
                for (k, v) in body {
                    if k == "model" {
                        continue;
                    }
                    let at = p.key(k);
                    s.key(p, k);
                    by_key(k, v, p, s);
                    p.back(at);
                }
            }

            fn by_key<$($lt,)? V: $bound>(
                key: & $($lt)? str,
                v: & $($lt)? $($m)? Value,
                p: &mut Path,
                s: &mut $sink<'_, V>,
            ) {
                if matches!(key, "prompt" | "input") && is_token_ids(v) {
                    s.binary(p);
                    return;
                }
                match v {
                    Value::String(x) => {
                        let leaf = if super::super::native::is_content_key(key) {
                            Leaf::Content
                        } else {
                            Leaf::Other
                        };
                        s.leaf(p, Some(key), leaf, x);
                    }
                    Value::Array(items) => {
                        for (i, x) in items.into_iter().enumerate() {
                            let j = p.index(i);
                            by_key(key, x, p, s);
                            p.back(j);
                        }
                    }
                    Value::Object(m) => {
                        for (k, x) in m {
                            let at = p.key(k);
                            s.key(p, k);
                            by_key(k, x, p, s);
                            p.back(at);
                        }
                    }
                    Value::Number(_) => s.json_number(p, v),
                    Value::Bool(_) | Value::Null => {}
                }
            }

            fn field<$($lt,)? V: $bound>(
                p: &mut Path,
                s: &mut $sink<'_, V>,
                key: &str,
                leaf: Leaf,
                x: & $($lt)? $($m)? String,
            ) {
                let at = p.key(key);
                s.leaf(p, Some(key), leaf, x);
                p.back(at);
            }

            fn map<$($lt,)? V: $bound>(
                m: & $($lt)? $($m)? Map<String, Value>,
                p: &mut Path,
                s: &mut $sink<'_, V>,
            ) {
                for (k, v) in m {
                    let at = p.key(k);
                    s.key(p, k);
                    keyed(Some(k), v, p, s, Leaf::Other);
                    p.back(at);
                }
            }

            pub(super) fn value<$($lt,)? V: $bound>(
                v: & $($lt)? $($m)? Value,
                p: &mut Path,
                s: &mut $sink<'_, V>,
                leaf: Leaf,
            ) {
                keyed(None, v, p, s, leaf);
            }

            fn keyed<$($lt,)? V: $bound>(
                key: Option<& $($lt)? str>,
                v: & $($lt)? $($m)? Value,
                p: &mut Path,
                s: &mut $sink<'_, V>,
                leaf: Leaf,
            ) {
                if matches!(key, Some("prompt" | "input")) && is_token_ids(v) {
                    s.binary(p);
                    return;
                }
                match v {
                    Value::String(x) => s.leaf(p, key, leaf, x),
                    Value::Array(items) => {
                        for (i, x) in items.into_iter().enumerate() {
                            let j = p.index(i);
                            keyed(key, x, p, s, leaf);
                            p.back(j);
                        }
                    }
                    Value::Object(m) => {
                        for (k, x) in m {
                            let at = p.key(k);
                            s.key(p, k);
                            keyed(Some(k), x, p, s, leaf);
                            p.back(at);
                        }
                    }
                    Value::Number(_) => s.json_number(p, v),
                    Value::Bool(_) | Value::Null => {}
                }
            }
        }
    };
}

traversal!(read, ReadSink, Visit<'a>, ['a],);
traversal!(write, WriteSink, VisitMut, [], mut);
#[cfg(test)]
#[path = "visit_tests.rs"]
mod tests;

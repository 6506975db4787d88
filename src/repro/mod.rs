//! Reproducibility hashes (docs/reproducibility.md):
//!
//! - [`request_hash`]: SHA-256 (hex) of the canonical effective request — the request as it
//!   goes to the deployment after sampling overrides (before the provider's own translation),
//!   as compact JSON with object keys sorted at every level, without `model`, `stream` and
//!   `stream_options` (which do not change the answer), wrapped as
//!   `{"body":…,"deployment":…,"endpoint":…}`. The request id is never part of it.
//! - [`response_hash`]: SHA-256 (hex) of the response content as compact JSON,
//!   `{"content":…,"finish_reason":…,"tool_calls":[{"arguments":…,"name":…},…]}` (choice 0).
//!   Rows logged before December 2026 hold [`legacy_response_hash`] (the text, names and
//!   arguments run together, no finish reason), which a replay still accepts.
//!
//! Also here: [`sampling`] (deterministic overrides), [`cache`] (response cache) and
//! [`replay`] (`sluice replay`).

pub mod cache;
pub mod canonical;
pub mod json_string;
pub mod native_sampling;
pub mod replay;
pub mod sampling;

use crate::api::summary::ResponseSummary;
use crate::api::{Endpoint, RequestBody};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The canonical request hash of `body` sent to deployment `deployment` on `endpoint`, whose
/// backend is `backend` ([`crate::config::DeploymentConfig::backend`]: what answers under that name; a deployment pointed
/// at another model or server is another backend, and the cache must not answer for it).
pub fn request_hash(
    body: &RequestBody,
    endpoint: Endpoint,
    deployment: &str,
    backend: &str,
) -> String {
    const SKIP: &[&str] = &["model", "stream", "stream_options"];
    // Written straight from the typed request (no tree); the tree path below gives the same
    // bytes and is taken only for the shapes `canonical::write` refuses.
    // Room for a usual request and the escaper's scratch (it reserves six times a text's
    // length before writing it): no regrowth on the way.
    let mut out = Vec::with_capacity(4096);
    let head = |out: &mut Vec<u8>| {
        out.extend_from_slice(b"{\"backend\":");
        // Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, backend);
        out.extend_from_slice(b",\"body\":");
    };
    head(&mut out);
    let direct = match body {
        RequestBody::Chat(c) => canonical::write(c, SKIP, &mut out),
        RequestBody::Generic(g) => canonical::write(g, SKIP, &mut out),
        RequestBody::Native(n) => canonical::write(&n.body, SKIP, &mut out),
    };
    if direct.is_ok() {
        return finish_request_hash(out, endpoint, deployment);
    }
    let v = match body {
        RequestBody::Chat(c) => serde_json::to_value(c),
        RequestBody::Generic(g) => serde_json::to_value(g),
        RequestBody::Native(n) => Ok(Value::Object(n.body.clone())),
    };
    let empty = Value::Object(Map::new());
    let body = match &v {
        Ok(b @ Value::Object(_)) => b,
        _ => &empty,
    };
    // `{"backend":…,"body":…,"deployment":…,"endpoint":…}`: the wrapper's keys are already
    // in order.
    out.clear();
    head(&mut out);
    write_canonical(body, SKIP, &mut out);
    finish_request_hash(out, endpoint, deployment)
}

/// Ends the text `{"backend":…,"body":…` of [`request_hash`] with the deployment and endpoint and hashes it.
fn finish_request_hash(mut out: Vec<u8>, endpoint: Endpoint, deployment: &str) -> String {
    out.extend_from_slice(b",\"deployment\":");
    write_canonical(&Value::from(deployment), &[], &mut out);
    out.extend_from_slice(b",\"endpoint\":");
    write_canonical(&Value::from(endpoint.operation()), &[], &mut out);
    out.push(b'}');
    sha256_hex(&out)
}

/// The response content hash of `s` (see the module docs): its parts are told apart (a
/// tool call is not the same answer as its name and arguments as text) and the finish reason
/// counts (the same text cut by `length` is another answer). Written straight into the hash.
pub fn response_hash(s: &ResponseSummary) -> String {
    // Written field by field in `serde_json`'s compact form of
    // `{"content":…,"finish_reason":…,"tool_calls":[{"arguments":…,"name":…},…]}`, then hashed
    // once (a writer into the hash took an update per token).
    let calls: usize = s
        .tool_calls
        .iter()
        .map(|t| 32 + t.arguments.len() + t.name.len())
        .sum();
    let longest = s
        .tool_calls
        .iter()
        .map(|t| t.arguments.len().max(t.name.len()))
        .fold(s.content.len(), usize::max);
    let mut text = Vec::with_capacity(
        64 + s.content.len() + s.content.len() / 4 + calls + json_string::room(longest),
    );
    text.extend_from_slice(b"{\"content\":");
    json_string::push(&mut text, &s.content);
    text.extend_from_slice(b",\"finish_reason\":");
    match &s.finish_reason {
        Some(r) => json_string::push(&mut text, r),
        None => text.extend_from_slice(b"null"),
    }
    text.extend_from_slice(b",\"tool_calls\":[");
    for (i, t) in s.tool_calls.iter().enumerate() {
        if i > 0 {
            text.push(b',');
        }
        text.extend_from_slice(b"{\"arguments\":");
        json_string::push(&mut text, &t.arguments);
        text.extend_from_slice(b",\"name\":");
        json_string::push(&mut text, &t.name);
        text.push(b'}');
    }
    text.extend_from_slice(b"]}");
    let mut h = Sha256::new();
    h.update(&text);
    crate::store::chain::hex_digest(&h.finalize())
}

/// The response hash rows logged before December 2026 hold: the text of choice 0, then each
/// tool call's name and arguments, run together.
pub fn legacy_response_hash(s: &ResponseSummary) -> String {
    let mut h = Sha256::new();
    h.update(s.content.as_bytes());
    for t in &s.tool_calls {
        h.update(t.name.as_bytes());
        h.update(t.arguments.as_bytes());
    }
    crate::store::chain::hex_digest(&h.finalize())
}

/// Compact JSON with object keys sorted at every level.
pub fn canonical(v: &Value) -> String {
    let mut out = Vec::new();
    write_canonical(v, &[], &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends [`canonical`] JSON of `v` to `out`, leaving out the top-level keys in `skip`,
/// without building a sorted copy of `v`.
fn write_canonical(v: &Value, skip: &[&str], out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().filter(|k| !skip.contains(&k.as_str())).collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let _ = serde_json::to_writer(&mut *out, k);
                out.push(b':');
                write_canonical(&m[k.as_str()], &[], out);
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(x, &[], out);
            }
            out.push(b']');
        }
        scalar => {
            let _ = serde_json::to_writer(&mut *out, scalar);
        }
    }
}

fn sha256_hex(b: &[u8]) -> String {
    crate::store::chain::hex_digest(&Sha256::digest(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by an attacker test: a tool call `get_weather({"city":"Paris"})` and the text
    /// `get_weather{"city":"Paris"}` cut by `length` had one hash, so a replay called them
    /// identical. Parts are told apart and the finish reason counts; the legacy form is kept
    /// for rows logged before.
    #[test]
    fn a_response_hash_tells_the_parts_and_the_finish_reason_apart() {
        use crate::api::summary::ToolCallSummary;
        let call = ResponseSummary {
            tool_calls: vec![ToolCallSummary {
                id: "c".into(),
                name: "get_weather".into(),
                arguments: "{\"city\":\"Paris\"}".into(),
            }],
            finish_reason: Some("stop".into()),
            ..Default::default()
        };
        let text = ResponseSummary {
            content: "get_weather{\"city\":\"Paris\"}".into(),
            finish_reason: Some("length".into()),
            ..Default::default()
        };
        assert_eq!(legacy_response_hash(&call), legacy_response_hash(&text));
        assert_ne!(response_hash(&call), response_hash(&text));
        let stopped = ResponseSummary {
            finish_reason: Some("stop".into()),
            ..text.clone()
        };
        assert_ne!(response_hash(&stopped), response_hash(&text));
        assert_eq!(
            response_hash(&stopped),
            sha256_hex(br#"{"content":"get_weather{\"city\":\"Paris\"}","finish_reason":"stop","tool_calls":[]}"#)
        );
    }

    /// The hand-written text is `serde_json`'s of the struct it was first written from.
    #[test]
    fn the_response_hash_text_is_serde_jsons() {
        use crate::api::summary::ToolCallSummary;
        #[derive(serde::Serialize)]
        struct Call<'a> {
            arguments: &'a str,
            name: &'a str,
        }
        #[derive(serde::Serialize)]
        struct Canonical<'a> {
            content: &'a str,
            finish_reason: Option<&'a str>,
            tool_calls: Vec<Call<'a>>,
        }
        let calls = |n: usize| {
            (0..n)
                .map(|i| ToolCallSummary {
                    id: format!("c{i}"),
                    name: format!("f\"{i}"),
                    arguments: format!("{{\"i\":{i},\"s\":\"\\n\u{1}\"}}"),
                })
                .collect::<Vec<_>>()
        };
        for (content, finish, n) in [
            ("", None, 0),
            ("a \"b\"\n", Some("stop"), 1),
            ("x", Some("tool_calls"), 3),
        ] {
            let s = ResponseSummary {
                content: content.into(),
                finish_reason: finish.map(String::from),
                tool_calls: calls(n),
                ..Default::default()
            };
            let old = Canonical {
                content: &s.content,
                finish_reason: s.finish_reason.as_deref(),
                tool_calls: s
                    .tool_calls
                    .iter()
                    .map(|t| Call {
                        arguments: &t.arguments,
                        name: &t.name,
                    })
                    .collect(),
            };
            assert_eq!(
                response_hash(&s),
                sha256_hex(&serde_json::to_vec(&old).unwrap())
            );
        }
    }

    #[test]
    fn canonical_sorts_keys_and_ignores_model_and_stream() {
        assert_eq!(
            canonical(&serde_json::json!({"b":1,"a":{"d":[{"z":1,"y":2}],"c":null}})),
            r#"{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}"#
        );
        let a: RequestBody = RequestBody::Chat(
            crate::api::parse_body(br#"{"model":"x","stream":true,"temperature":0,"messages":[{"role":"user","content":"hi"}]}"#).unwrap(),
        );
        let b: RequestBody = RequestBody::Chat(
            crate::api::parse_body(
                br#"{"messages":[{"content":"hi","role":"user"}],"temperature":0,"model":"y"}"#,
            )
            .unwrap(),
        );
        let ha = request_hash(&a, Endpoint::ChatCompletions, "d", "openai u m");
        assert_eq!(
            ha,
            request_hash(&b, Endpoint::ChatCompletions, "d", "openai u m")
        );
        assert_ne!(
            ha,
            request_hash(&b, Endpoint::ChatCompletions, "e", "openai u m")
        );
        // The same deployment name pointed at another model is another backend.
        assert_ne!(
            ha,
            request_hash(&b, Endpoint::ChatCompletions, "d", "openai u m2")
        );
        assert_eq!(ha.len(), 64);
    }

    /// The hash is SHA-256 of exactly the documented canonical text (hashes in existing logs
    /// stay comparable).
    #[test]
    fn request_hash_is_sha256_of_the_documented_canonical_text() {
        let body: RequestBody = RequestBody::Chat(
            crate::api::parse_body(
                br#"{"model":"x","stream":true,"stream_options":{"include_usage":true},"seed":7,"messages":[{"role":"user","content":"h\u00e9 \"q\""}],"top_p":0.5}"#,
            )
            .unwrap(),
        );
        let text = r#"{"backend":"openai u m","body":{"messages":[{"content":"hé \"q\"","role":"user"}],"seed":7,"top_p":0.5},"deployment":"dep-1","endpoint":"chat"}"#;
        assert_eq!(
            request_hash(&body, Endpoint::ChatCompletions, "dep-1", "openai u m"),
            sha256_hex(text.as_bytes())
        );
    }
}

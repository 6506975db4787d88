//! Reproducibility hashes (README "Reproducibility"):
//!
//! - [`request_hash`]: SHA-256 (hex) of the canonical effective request — the request as it
//!   goes to the deployment after sampling overrides (before the provider's own translation),
//!   as compact JSON with object keys sorted at every level, without `model`, `stream` and
//!   `stream_options` (which do not change the answer), wrapped as
//!   `{"body":…,"deployment":…,"endpoint":…}`. The request id is never part of it.
//! - [`response_hash`]: SHA-256 (hex) of the response content: the text of choice 0, then each
//!   tool call's name and arguments, concatenated in order.

use crate::gateway::summary::ResponseSummary;
use crate::providers::{Endpoint, RequestBody};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The canonical request hash of `body` sent to deployment `deployment` on `endpoint`.
pub fn request_hash(body: &RequestBody, endpoint: Endpoint, deployment: &str) -> String {
    let v = match body {
        RequestBody::Chat(c) => serde_json::to_value(c),
        RequestBody::Generic(g) => serde_json::to_value(g),
    };
    let mut b = match v {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for k in ["model", "stream", "stream_options"] {
        b.remove(k);
    }
    let mut wrapper = Map::new();
    wrapper.insert("body".into(), Value::Object(b));
    wrapper.insert("deployment".into(), Value::from(deployment));
    wrapper.insert("endpoint".into(), Value::from(endpoint.operation()));
    sha256_hex(canonical(&Value::Object(wrapper)).as_bytes())
}

/// The response content hash of `s`.
pub fn response_hash(s: &ResponseSummary) -> String {
    let mut h = Sha256::new();
    h.update(s.content.as_bytes());
    for t in &s.tool_calls {
        h.update(t.name.as_bytes());
        h.update(t.arguments.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Compact JSON with object keys sorted at every level.
pub fn canonical(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for k in keys {
                    out.insert(k.clone(), sorted(&m[k.as_str()]));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v).to_string()
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let ha = request_hash(&a, Endpoint::ChatCompletions, "d");
        assert_eq!(ha, request_hash(&b, Endpoint::ChatCompletions, "d"));
        assert_ne!(ha, request_hash(&b, Endpoint::ChatCompletions, "e"));
        assert_eq!(ha.len(), 64);
    }
}

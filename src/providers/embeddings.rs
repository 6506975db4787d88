//! `encoding_format: "base64"` for OpenAI-compatible backends that answer floats anyway
//! (llama.cpp's server, some vLLM builds): the SDKs ask for base64 by default and decode it,
//! so a float array reaching them would come out as an empty or wrong vector. Sluice packs
//! each vector the way OpenAI does: little-endian `f32`s, standard base64.

use super::RequestBody;
use base64::Engine;
use serde_json::Value;

/// Whether the client asked for base64 embeddings.
pub fn wants_base64(body: &RequestBody) -> bool {
    match body {
        RequestBody::Generic(r) => {
            r.extra.get("encoding_format").and_then(Value::as_str) == Some("base64")
        }
        _ => false,
    }
}

/// Packs every `data[i].embedding` that is an array of numbers into base64 (little-endian
/// `f32`). Returns whether anything changed; embeddings already in base64 stay as they are.
pub fn floats_to_base64(answer: &mut Value) -> bool {
    let Some(data) = answer.get_mut("data").and_then(Value::as_array_mut) else {
        return false;
    };
    let mut changed = false;
    for item in data {
        let Some(floats) = item.get("embedding").and_then(Value::as_array) else {
            continue;
        };
        let mut bytes = Vec::with_capacity(floats.len() * 4);
        for x in floats {
            bytes.extend_from_slice(&(x.as_f64().unwrap_or(0.0) as f32).to_le_bytes());
        }
        item["embedding"] = Value::from(base64::engine::general_purpose::STANDARD.encode(bytes));
        changed = true;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_become_little_endian_f32_base64() {
        let mut v = json!({"object": "list", "data": [
            {"object": "embedding", "index": 0, "embedding": [1.0, -2.0]},
            {"object": "embedding", "index": 1, "embedding": "AACAPw=="}
        ]});
        assert!(floats_to_base64(&mut v));
        // 1.0f32 = 00 00 80 3f, -2.0f32 = 00 00 00 c0.
        assert_eq!(v["data"][0]["embedding"], "AACAPwAAAMA=");
        assert_eq!(v["data"][1]["embedding"], "AACAPw==");
        let mut none = json!({"data": [{"embedding": "AACAPw=="}]});
        assert!(!floats_to_base64(&mut none));
    }
}

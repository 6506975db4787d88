//! `extra_body`, normalised when the request is parsed: an SDK option that some clients send
//! literally (`"extra_body": {"min_p": 0.1}`). Its keys are merged into the request before
//! any decision, so the PII scan, the policies, the sampling overrides and the upstream body
//! all see one request with one copy of each key.
//!
//! Refused with 400 `invalid_request_error`, `param: "extra_body.<key>"`:
//! - a key the request already has (`messages`, `temperature`, …): two values for one field;
//! - `stream`, `n`, `model`, `extra_body`: they change what kind of request it is;
//! - an `extra_body` that is not an object (`null` is dropped).

use super::{ApiError, ChatCompletionRequest, GenericRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Keys `extra_body` may never set, whatever the request holds.
pub const KIND_KEYS: [&str; 4] = ["stream", "n", "model", "extra_body"];

/// A request type with a flattened map of the fields Sluice does not know.
pub trait WithExtra: Serialize + DeserializeOwned {
    /// The unknown top-level fields.
    fn extra_mut(&mut self) -> &mut Map<String, Value>;
}

impl WithExtra for ChatCompletionRequest {
    fn extra_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.extra
    }
}

impl WithExtra for GenericRequest {
    fn extra_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.extra
    }
}

/// Parses a request body ([`super::parse_body`]) and merges its `extra_body` (see the module
/// docs).
///
/// Errors: 400 for an unparsable body, a conflicting or kind-changing key
/// (`param: "extra_body.<key>"`), a non-object `extra_body`, or a merged value of the wrong
/// type (`param` naming the field).
pub fn parse_request<T: WithExtra>(body: &[u8]) -> Result<T, ApiError> {
    merge(super::parse_body(body)?)
}

/// Merges `req`'s literal `extra_body` into it (see the module docs).
///
/// Errors: see [`parse_request`].
pub fn merge<T: WithExtra>(mut req: T) -> Result<T, ApiError> {
    let extra_body = match req.extra_mut().remove("extra_body") {
        None | Some(Value::Null) => return Ok(req),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(ApiError::invalid_request("`extra_body` must be an object.")
                .with_param("extra_body"));
        }
    };
    if extra_body.is_empty() {
        return Ok(req);
    }
    let mut v = serde_json::to_value(&req)
        .map_err(|e| ApiError::internal(format!("cannot re-encode the request: {e}")))?;
    let Value::Object(fields) = &mut v else {
        return Err(ApiError::internal("the request is not an object"));
    };
    for (k, x) in extra_body {
        if KIND_KEYS.contains(&k.as_str()) {
            return Err(ApiError::invalid_request(format!(
                "`extra_body.{k}` is not allowed: `{k}` changes the kind of request; set it at the top level."
            ))
            .with_param(format!("extra_body.{k}")));
        }
        if fields.contains_key(&k) {
            return Err(ApiError::invalid_request(format!(
                "`extra_body.{k}` repeats the request's own `{k}`; send it once."
            ))
            .with_param(format!("extra_body.{k}")));
        }
        fields.insert(k, x);
    }
    serde_path_to_error::deserialize(v).map_err(|e| super::deserialize_error(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chat(v: Value) -> Result<ChatCompletionRequest, ApiError> {
        parse_request(v.to_string().as_bytes())
    }

    #[test]
    fn keys_are_merged_into_their_typed_fields() {
        let r = chat(json!({"model": "x", "messages": [], "min_p": 0.1,
            "extra_body": {"temperature": 1.9, "repetition_penalty": 1.1, "notes": {"a": "b"}}}))
        .unwrap();
        assert_eq!(r.temperature, Some(1.9));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            json!({"model": "x", "messages": [], "temperature": 1.9, "min_p": 0.1,
                   "repetition_penalty": 1.1, "notes": {"a": "b"}})
        );
    }

    #[test]
    fn a_repeated_or_kind_changing_key_is_a_400_naming_it() {
        for (body, param) in [
            (
                json!({"model": "x", "messages": [], "extra_body": {"messages": []}}),
                "extra_body.messages",
            ),
            (
                json!({"model": "x", "messages": [], "min_p": 1, "extra_body": {"min_p": 2}}),
                "extra_body.min_p",
            ),
            (
                json!({"model": "x", "messages": [], "temperature": 1, "extra_body": {"temperature": 2}}),
                "extra_body.temperature",
            ),
            (
                json!({"model": "x", "messages": [], "extra_body": {"stream": true}}),
                "extra_body.stream",
            ),
            (
                json!({"model": "x", "messages": [], "extra_body": {"n": 2}}),
                "extra_body.n",
            ),
            (
                json!({"model": "x", "messages": [], "extra_body": {"model": "y"}}),
                "extra_body.model",
            ),
            (
                json!({"model": "x", "messages": [], "extra_body": {"extra_body": {}}}),
                "extra_body.extra_body",
            ),
            (
                json!({"model": "x", "messages": [], "extra_body": "s"}),
                "extra_body",
            ),
            (
                json!({"model": "x", "messages": [], "extra_body": {"temperature": "hot"}}),
                "temperature",
            ),
        ] {
            let e = chat(body.clone()).unwrap_err();
            assert_eq!(e.status.as_u16(), 400, "{body}");
            assert_eq!(e.body.kind, "invalid_request_error");
            assert_eq!(e.body.param.as_deref(), Some(param), "{body}");
        }
    }

    #[test]
    fn generic_requests_merge_too() {
        let r: GenericRequest =
            parse_request(br#"{"model":"x","prompt":"p","extra_body":{"suffix":"s"}}"#).unwrap();
        assert_eq!(r.extra.get("suffix"), Some(&Value::from("s")));
        assert!(r.extra.get("extra_body").is_none());
        let e = parse_request::<GenericRequest>(
            br#"{"model":"x","prompt":"p","extra_body":{"prompt":"q"}}"#,
        )
        .unwrap_err();
        assert_eq!(e.body.param.as_deref(), Some("extra_body.prompt"));
        let e = parse_request::<GenericRequest>(
            br#"{"model":"x","input":"p","extra_body":{"stream":true}}"#,
        )
        .unwrap_err();
        assert_eq!(e.body.param.as_deref(), Some("extra_body.stream"));
    }

    #[test]
    fn null_or_empty_extra_body_is_dropped() {
        for eb in [json!(null), json!({})] {
            let r = chat(json!({"model": "x", "messages": [], "extra_body": eb})).unwrap();
            assert!(r.extra.is_empty());
        }
    }
}

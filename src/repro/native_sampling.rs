//! Sampling overrides on a native Messages or Responses body (see [`super::sampling`] for the
//! levels): only the dialect's own fields are written, so the backend never sees a parameter
//! its API rejects.
//!
//! - Messages (Anthropic): `deterministic` → `temperature: 0`, `top_k: 1`; explicit
//!   `temperature`, `top_p`, `top_k`. Anthropic has no seed, `n` or penalties.
//! - Responses: `deterministic` → `temperature: 0`, `top_p: 1`; explicit `temperature`,
//!   `top_p`. The Responses API has no `top_k`, seed, `n` or penalties.
//!
//! Then `max_temperature` clamps and `strip` removes fields, as for chat.

use super::sampling::{Applied, set_fields};
use crate::api::RequestBody;
use crate::api::native::{Dialect, NativeRequest};
use crate::config::SamplingConfig;
use serde_json::Value;
use std::borrow::Cow;

/// `body` (a [`RequestBody::Native`] holding `n`) after the overrides `cfg`, and what was
/// done; borrowed and `None` without overrides.
pub fn apply<'a>(
    body: &'a RequestBody,
    n: &NativeRequest,
    cfg: Option<&SamplingConfig>,
) -> (Cow<'a, RequestBody>, Option<Applied>) {
    let Some(cfg) = cfg else {
        return (Cow::Borrowed(body), None);
    };
    let mut out = n.clone();
    let map = &mut out.body;
    if n.dialect == Dialect::Messages
        && cfg.deterministic == Some(true)
        && super::sampling::thinking(map)
    {
        let applied = super::sampling::thinking_refuses_determinism(map, cfg);
        return (
            Cow::Owned(RequestBody::Native(Box::new(out))),
            Some(applied),
        );
    }
    let det = cfg.deterministic == Some(true);
    let mut set: Vec<(&str, Value)> = Vec::new();
    if det {
        set.push(("temperature", Value::from(0.0)));
        match n.dialect {
            Dialect::Messages => set.push(("top_k", Value::from(1))),
            Dialect::Responses => set.push(("top_p", Value::from(1.0))),
        }
    }
    if let Some(t) = cfg.temperature {
        set.push(("temperature", Value::from(t)));
    }
    if let Some(p) = cfg.top_p {
        set.push(("top_p", Value::from(p)));
    }
    if let (Some(k), Dialect::Messages) = (cfg.top_k, n.dialect) {
        set.push(("top_k", Value::from(k)));
    }
    let mut applied = set_fields(map, set, cfg, det);
    // Claude refuses `temperature` and `top_p` together (the client's `top_p` stayed before).
    if n.dialect == Dialect::Messages && det && cfg.top_p.is_none() {
        super::sampling::drop_top_p(map, &mut applied);
    }
    (
        Cow::Owned(RequestBody::Native(Box::new(out))),
        Some(applied),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn native(dialect: Dialect, body: Value) -> RequestBody {
        RequestBody::Native(Box::new(NativeRequest {
            dialect,
            body: body.as_object().cloned().unwrap(),
            bridged: Err(crate::api::ApiError::invalid_request("x")),
            dropped_tools: Vec::new(),
            anthropic_beta: None,
        }))
    }

    fn body_of(b: &RequestBody) -> Value {
        let RequestBody::Native(n) = b else {
            unreachable!()
        };
        Value::Object(n.body.clone())
    }

    #[test]
    fn deterministic_sets_only_the_dialects_fields() {
        let cfg = SamplingConfig {
            deterministic: Some(true),
            ..Default::default()
        };
        let b = native(
            Dialect::Messages,
            json!({"model":"m","temperature":0.7,"max_tokens":5}),
        );
        let RequestBody::Native(n) = &b else {
            unreachable!()
        };
        let (out, applied) = apply(&b, n, Some(&cfg));
        assert_eq!(
            body_of(&out),
            json!({"model":"m","temperature":0.0,"max_tokens":5,"top_k":1})
        );
        let a = applied.unwrap();
        assert_eq!(a.overridden, vec![("temperature".into(), "0.7".into())]);
        assert_eq!(a.seed, None);
        let b = native(Dialect::Responses, json!({"model":"m","input":"hi"}));
        let RequestBody::Native(n) = &b else {
            unreachable!()
        };
        let (out, _) = apply(&b, n, Some(&cfg));
        assert_eq!(
            body_of(&out),
            json!({"model":"m","input":"hi","temperature":0.0,"top_p":1.0})
        );
        let (out, applied) = apply(&b, n, None);
        assert!(matches!(out, Cow::Borrowed(_)) && applied.is_none());
    }
}

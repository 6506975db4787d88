//! The output cap of a deployment (its `max_output_tokens`, else the catalog's `max_output`),
//! applied right before the call: a request asking for more output than the model gives
//! (Claude Code sends `max_tokens: 32000`, some clients 64 000) is lowered to the cap rather
//! than answered with the backend's 400; an `anthropic` deployment, whose API requires
//! `max_tokens`, gets the cap when neither the client nor `max_tokens_default` gives one (else
//! the provider's 4096).

use crate::api::RequestBody;
use crate::api::native::Dialect;
use crate::config::{DeploymentConfig, ProviderKind};
use serde_json::Value;
use std::borrow::Cow;

/// `body` with its output-token fields lowered to `limit` (tokens; `None`: unknown, nothing
/// changes); borrowed when nothing changed.
pub(super) fn cap_output<'a>(
    body: Cow<'a, RequestBody>,
    dep: &DeploymentConfig,
    limit: Option<u64>,
) -> Cow<'a, RequestBody> {
    let Some(limit) = limit else {
        return body;
    };
    let limit32 = u32::try_from(limit).unwrap_or(u32::MAX);
    let over = |v: Option<u64>| v.is_some_and(|n| n > limit);
    match &*body {
        RequestBody::Chat(c) => {
            let fill = dep.provider == ProviderKind::Anthropic
                && c.max_output_tokens().is_none()
                && dep.max_tokens_default.is_none();
            let big = |v: Option<u32>| over(v.map(u64::from));
            if !fill && !big(c.max_tokens) && !big(c.max_completion_tokens) {
                return body;
            }
            let mut c = c.clone();
            if fill || big(c.max_tokens) {
                c.max_tokens = Some(limit32);
            }
            if big(c.max_completion_tokens) {
                c.max_completion_tokens = Some(limit32);
            }
            Cow::Owned(RequestBody::Chat(c))
        }
        RequestBody::Native(n) => {
            let key = match n.dialect {
                Dialect::Messages => "max_tokens",
                Dialect::Responses => "max_output_tokens",
            };
            if !over(n.body.get(key).and_then(Value::as_u64)) {
                return body;
            }
            let mut n = n.clone();
            n.body.insert(key.into(), Value::from(limit));
            Cow::Owned(RequestBody::Native(n))
        }
        RequestBody::Generic(g) => {
            if !over(g.extra.get("max_tokens").and_then(Value::as_u64)) {
                return body;
            }
            let mut g = g.clone();
            g.extra.insert("max_tokens".into(), Value::from(limit));
            Cow::Owned(RequestBody::Generic(g))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dep(provider: &str) -> DeploymentConfig {
        serde_saphyr::from_str(&format!(
            "name: d\nprovider: {provider}\nbase_url: http://127.0.0.1:1\nmodel: m\n"
        ))
        .unwrap()
    }

    fn chat(v: Value) -> RequestBody {
        RequestBody::Chat(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn caps_lower_and_fill() {
        let b = chat(json!({"model":"x","max_tokens":32000,"messages":[]}));
        let out = cap_output(Cow::Borrowed(&b), &dep("openai"), Some(4096));
        assert_eq!(out.max_output_tokens(), Some(4096));
        let out = cap_output(Cow::Borrowed(&b), &dep("openai"), None);
        assert!(matches!(out, Cow::Borrowed(_)));
        let small = chat(json!({"model":"x","max_completion_tokens":100,"messages":[]}));
        assert!(matches!(
            cap_output(Cow::Borrowed(&small), &dep("openai"), Some(4096)),
            Cow::Borrowed(_)
        ));
        let none = chat(json!({"model":"x","messages":[]}));
        let out = cap_output(Cow::Borrowed(&none), &dep("anthropic"), Some(64000));
        assert_eq!(out.max_output_tokens(), Some(64000));
        let out = cap_output(Cow::Borrowed(&none), &dep("openai"), Some(64000));
        assert_eq!(out.max_output_tokens(), None);
    }
}

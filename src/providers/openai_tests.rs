use super::*;
use crate::api::ChatCompletionRequest;
use crate::config::DeploymentConfig;
use proptest::prelude::*;
use serde_json::json;

fn dep(base: &str, model: &str, supports: Option<&str>) -> DeploymentConfig {
    let mut y = format!(
        "name: d\nprovider: openai\nbase_url: {base}\nmodel: {}\n",
        serde_json::to_string(model).unwrap()
    );
    if let Some(s) = supports {
        y.push_str(&format!("supports: {s}\n"));
    }
    serde_saphyr::from_str(&y).unwrap()
}

/// The upstream body as first written: a copy of the request, adapted, `model` set, usage
/// asked for on streams, serialised.
fn by_copy(r: &ChatCompletionRequest, d: &DeploymentConfig) -> Vec<u8> {
    let mut r = r.clone();
    r.model = d.model.clone();
    super::super::caps::adapt_openai_chat(&mut r, &super::super::caps::Caps::of(d));
    if r.is_stream() {
        r.stream_options
            .get_or_insert(crate::api::StreamOptions {
                include_usage: None,
                extra: Default::default(),
            })
            .include_usage = Some(true);
    }
    serde_json::to_vec(&r).unwrap()
}

fn sent(body: &RequestBody, d: &DeploymentConfig) -> Vec<u8> {
    sent_with(body, d, None)
}

fn sent_with(
    body: &RequestBody,
    d: &DeploymentConfig,
    written: Option<super::super::WrittenBody<'_>>,
) -> Vec<u8> {
    upstream_body(Call {
        deployment: d,
        endpoint: super::super::Endpoint::ChatCompletions,
        body,
        request_id: "r",
        egress: None,
        tree: false,
        written,
    })
    .unwrap()
}

fn message() -> impl Strategy<Value = serde_json::Value> {
    let role = prop_oneof![
        Just("system"),
        Just("user"),
        Just("assistant"),
        Just("developer"),
        Just("tool")
    ];
    let content = prop_oneof![
        "[a-z \"\\\\é]{0,12}".prop_map(serde_json::Value::from),
        Just(json!([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])),
        Just(json!([{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}])),
        Just(
            json!([{"type": "text", "text": "see"}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}])
        ),
        Just(serde_json::Value::Null),
    ];
    let extra = prop_oneof![
        Just(json!({})),
        Just(json!({"name": "n"})),
        Just(json!({"refusal": "no"})),
        Just(json!({"refusal": null})),
        Just(json!({"sender": "agent"})),
        Just(json!({"reasoning_content": "r"})),
        Just(
            json!({"tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]})
        ),
        Just(json!({"tool_call_id": "c1"})),
    ];
    (role, content, extra).prop_map(|(role, content, extra)| {
        let mut m = json!({"role": role, "content": content});
        if let (Some(m), serde_json::Value::Object(e)) = (m.as_object_mut(), extra) {
            m.extend(e);
        }
        m
    })
}

fn request() -> impl Strategy<Value = ChatCompletionRequest> {
    let top = prop_oneof![
        Just(json!({})),
        Just(json!({"top_k": 5})),
        Just(json!({"min_p": 0.1})),
        Just(json!({"typical_p": 0.9, "repeat_penalty": 1.1})),
        Just(json!({"mirostat": 2})),
        Just(json!({"seed": 7})),
        Just(json!({"parallel_tool_calls": false})),
        Just(json!({"max_completion_tokens": 9})),
        Just(json!({"max_tokens": 9, "temperature": 0.5})),
        Just(json!({"stream": true})),
        Just(json!({"stream": true, "stream_options": {"include_usage": true}})),
        Just(json!({"stream": true, "stream_options": {"include_usage": false, "x": 1}})),
        Just(json!({"stream": false, "vendor_knob": [1, "two"]})),
    ];
    (
        "[a-z\"é\\\\]{1,8}",
        proptest::collection::vec(message(), 1..4),
        proptest::collection::vec(top, 0..3),
    )
        .prop_map(|(model, messages, tops)| {
            let mut r = json!({"model": model, "messages": messages});
            for t in tops {
                if let (Some(r), serde_json::Value::Object(t)) = (r.as_object_mut(), t) {
                    r.extend(t);
                }
            }
            serde_json::from_value(r).unwrap()
        })
}

proptest! {
    /// The body sent upstream is, byte for byte, the one the copy path builds, whether the
    /// request is sent without a copy (nothing to adapt), from the log's text of it, or
    /// adapted; a text written for another request is never what is sent.
    #[test]
    fn the_upstream_body_is_the_copy_paths(r in request()) {
        let deps = [
            dep("https://api.openai.com/v1", "gpt-4o", None),
            dep("http://127.0.0.1:8080/v1", "llama \"q\" é", None),
            dep("http://127.0.0.1:8080/v1", "m", Some("[]")),
        ];
        let body = RequestBody::Chat(Box::new(r.clone()));
        let text = serde_json::to_string(&r).unwrap();
        let written = super::super::WrittenBody { body: &body, text: &text };
        // A text written for another request (a redacted copy's original, say).
        let other = RequestBody::Chat(Box::new(r.clone()));
        let elsewhere = super::super::WrittenBody { body: &other, text: "{\"model\":\"leak\"}" };
        for d in &deps {
            let want = by_copy(&r, d);
            prop_assert_eq!(&sent(&body, d), &want);
            prop_assert_eq!(&sent_with(&body, d, Some(written)), &want);
            prop_assert_eq!(&sent_with(&body, d, Some(elsewhere)), &want);
        }
    }
}

#[test]
fn a_request_with_nothing_to_adapt_is_not_copied_and_gets_the_deployments_model() {
    let d = dep("https://api.openai.com/v1", "gpt-4o", None);
    let r: ChatCompletionRequest = crate::api::parse_body(
        br#"{"model":"de\"fault","messages":[{"role":"user","content":"hi"}],"max_tokens":32}"#,
    )
    .unwrap();
    let caps = super::super::caps::Caps::of(&d);
    assert!(!super::super::caps::adapts_openai_chat(&r, &caps));
    assert_eq!(
        sent(&RequestBody::Chat(Box::new(r)), &d),
        br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":32}"#
    );
    let seeded: ChatCompletionRequest =
        crate::api::parse_body(br#"{"model":"x","messages":[],"seed":1,"top_k":2}"#).unwrap();
    assert!(super::super::caps::adapts_openai_chat(&seeded, &caps));
}

#[test]
fn with_model_swaps_only_a_leading_model() {
    assert_eq!(
        with_model(br#"{"model":"a","x":"{\"model\":\"a\"}"}"#, "a", "b\"c"),
        Some(br#"{"model":"b\"c","x":"{\"model\":\"a\"}"}"#.to_vec())
    );
    assert_eq!(with_model(br#"{"x":1,"model":"a"}"#, "a", "b"), None);
    assert_eq!(with_model(br#"{"model":"ab"}"#, "a", "b"), None);
}

#[test]
fn completions_and_embeddings_go_as_the_logs_text_with_the_model_swapped() {
    let d = dep("http://127.0.0.1:8080/v1", "m", None);
    for (json, want) in [
        (
            r#"{"model":"x","input":["a","b"],"encoding_format":"float"}"#,
            r#"{"model":"m","input":["a","b"],"encoding_format":"float"}"#,
        ),
        (
            r#"{"model":"x","prompt":"p","stream":true}"#,
            r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"prompt":"p"}"#,
        ),
    ] {
        let g: crate::api::GenericRequest = crate::api::parse_body(json.as_bytes()).unwrap();
        let text = serde_json::to_string(&g).unwrap();
        let body = RequestBody::Generic(g);
        let written = super::super::WrittenBody {
            body: &body,
            text: &text,
        };
        assert_eq!(
            String::from_utf8(sent_with(&body, &d, Some(written))).unwrap(),
            want
        );
        assert_eq!(String::from_utf8(sent(&body, &d)).unwrap(), want);
    }
}

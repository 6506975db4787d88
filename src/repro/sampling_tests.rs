use super::*;
use crate::api::parse_body;

fn dep(provider: &str, extra: &str) -> DeploymentConfig {
    let base = match provider {
        "ollama" => "http://127.0.0.1:11434",
        "anthropic" => "https://api.anthropic.com",
        _ => "http://127.0.0.1:8080/v1",
    };
    serde_saphyr::from_str(&format!(
        "name: d\nprovider: {provider}\nbase_url: {base}\nmodel: m\n{extra}"
    ))
    .unwrap()
}

fn chat(extra: &str) -> RequestBody {
    RequestBody::Chat(
        parse_body(
            format!(r#"{{"model":"x","messages":[{{"role":"user","content":"hi"}}]{extra}}}"#)
                .as_bytes(),
        )
        .unwrap(),
    )
}

fn det(seed: Option<i64>) -> SamplingConfig {
    SamplingConfig {
        deterministic: Some(true),
        seed,
        ..Default::default()
    }
}

#[test]
fn deterministic_overrides_client_values_and_names_them() {
    let d = dep("openai", "supports: [top_k, seed, cache_prompt]\n");
    let body = chat(r#","temperature":1.3,"top_p":0.5,"seed":7,"n":1"#);
    let (out, a) = apply(&body, Endpoint::ChatCompletions, &d, Some(&det(Some(42)))).unwrap();
    let a = a.unwrap();
    assert_eq!(
        a.headers(),
        vec![
            ("x-sluice-sampling", "deterministic; seed=42".to_string()),
            (
                "x-sluice-overridden",
                "temperature=1.3,top_p=0.5,seed=7".to_string()
            )
        ]
    );
    assert_eq!(
        upstream_params(&out, Endpoint::ChatCompletions, &d).unwrap(),
        serde_json::json!({"temperature":0.0,"top_p":1.0,"top_k":1,"seed":42,"n":1,
            "presence_penalty":0.0,"frequency_penalty":0.0,"cache_prompt":false})
    );
}

#[test]
fn ollama_nests_under_options_and_anthropic_has_no_seed() {
    let body = chat(r#","temperature":1.3"#);
    let o = dep("ollama", "");
    let (out, _) = apply(&body, Endpoint::ChatCompletions, &o, Some(&det(None))).unwrap();
    assert_eq!(
        upstream_params(&out, Endpoint::ChatCompletions, &o).unwrap(),
        serde_json::json!({"options":{"temperature":0.0,"top_p":1.0,"top_k":1,"seed":0,
            "presence_penalty":0.0,"frequency_penalty":0.0}})
    );
    let an = dep("anthropic", "");
    let (out, a) = apply(&body, Endpoint::ChatCompletions, &an, Some(&det(Some(1)))).unwrap();
    assert_eq!(a.unwrap().headers()[0].1, "deterministic; no-seed");
    assert_eq!(
        upstream_params(&out, Endpoint::ChatCompletions, &an).unwrap(),
        serde_json::json!({"temperature":0.0,"top_k":1})
    );
    assert_eq!(
        exclusion(
            &an,
            Some(&SamplingConfig {
                require_seed: Some(true),
                ..Default::default()
            })
        )
        .as_deref(),
        Some("provider anthropic takes no seed (require_seed)")
    );
    assert_eq!(exclusion(&o, Some(&det(None))), None);
}

/// Without overrides the body goes on as it came (borrowed, not re-serialised), unless it
/// carries a field the deployment cannot take, which is still dropped.
#[test]
fn no_override_borrows_the_body_and_still_drops_unsupported_fields() {
    let plain = chat(r#","temperature":0.7,"seed":3"#);
    let (out, a) = apply(&plain, Endpoint::ChatCompletions, &dep("openai", ""), None).unwrap();
    assert!(matches!(out, Cow::Borrowed(_)));
    assert_eq!(a, None);
    let with_top_k = chat(r#","top_k":5,"cache_prompt":true,"temperature":0.7"#);
    let proper: DeploymentConfig = serde_saphyr::from_str(
        "name: d\nprovider: openai\nbase_url: https://api.openai.com/v1\nmodel: m\n",
    )
    .unwrap();
    let (out, a) = apply(&with_top_k, Endpoint::ChatCompletions, &proper, None).unwrap();
    assert!(matches!(out, Cow::Owned(_)));
    assert_eq!(a, None);
    assert_eq!(field(&out, "top_k"), None);
    assert_eq!(field(&out, "cache_prompt"), None);
    assert_eq!(field(&out, "temperature"), Some(Value::from(0.7)));
}

#[test]
fn clamp_strip_and_levels() {
    let d = dep(
        "openai",
        "sampling: {temperature: 0.2, strip: [logit_bias]}\n",
    );
    let req = SamplingConfig {
        max_temperature: Some(0.1),
        ..Default::default()
    };
    let eff = effective(&d, Some(&req)).unwrap();
    let body = chat(r#","temperature":1.0,"logit_bias":{"1":5}"#);
    let (out, a) = apply(&body, Endpoint::ChatCompletions, &d, Some(&eff)).unwrap();
    let a = a.unwrap();
    assert_eq!(
        a.overridden,
        vec![
            ("temperature".to_string(), "1.0".to_string()),
            ("logit_bias".to_string(), "stripped".to_string())
        ]
    );
    assert_eq!(a.headers()[0].1, "custom; no-seed");
    let v = to_map(&out);
    assert_eq!(v["temperature"], 0.1);
    assert!(!v.contains_key("logit_bias"));
}

#[test]
fn client_header_only_when_allowed_and_well_formed() {
    let mut h = axum::http::HeaderMap::new();
    h.insert(CLIENT_HEADER, "TRUE".parse().unwrap());
    let mut s = None;
    with_client_header(false, &h, &mut s).unwrap();
    assert_eq!(s, None);
    with_client_header(true, &h, &mut s).unwrap();
    assert_eq!(s.unwrap().deterministic, Some(true));
    h.insert(CLIENT_HEADER, "yes".parse().unwrap());
    let e = with_client_header(true, &h, &mut None).unwrap_err();
    assert_eq!(e.status.as_u16(), 400);
    assert_eq!(e.body.param.as_deref(), Some(CLIENT_HEADER));
}

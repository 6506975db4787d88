//! Unit tests of policy matching and combination.

use super::*;
use crate::config::{Price, parse};
use axum::http::HeaderValue;
use serde_json::json;

const BASE: &str = "
deployments:
  - name: local-llama
    provider: openai
    base_url: http://127.0.0.1:8080/v1
    model: llama3.2:1b
  - name: local-olmo
    provider: openai
    base_url: http://127.0.0.1:8081/v1
    model: olmo2:7b
    tags: [gpu]
  - name: cloud-mini
    provider: openai
    base_url: https://api.openai.com/v1
    model: gpt-4o-mini
  - name: cloud-4o
    provider: openai
    base_url: https://api.openai.com/v1
    model: gpt-4o
  - name: mystery
    provider: openai
    base_url: https://example.net/v1
    model: something-new
models:
  - name: default
    deployments: [local-llama, local-olmo, cloud-mini, cloud-4o, mystery]
";

fn engine(policies: &str) -> (Config, Engine) {
    let cfg = parse("t.yaml", &format!("{BASE}policies:\n{policies}")).unwrap();
    let e = Engine::new(&cfg).unwrap();
    (cfg, e)
}

fn body(text: &str) -> RequestBody {
    RequestBody::Chat(
        serde_json::from_value(
            json!({"model":"default","messages":[{"role":"user","content":text}],
            "metadata": {"team": "research"}}),
        )
        .unwrap(),
    )
}

fn decide(e: &Engine, headers: &HeaderMap, text: &str) -> Decision {
    e.decide(
        &RequestFacts {
            headers: Some(headers),
            ..Default::default()
        },
        &body(text),
    )
}

fn eligible(e: &Engine, d: &Decision) -> Vec<String> {
    [
        "local-llama",
        "local-olmo",
        "cloud-mini",
        "cloud-4o",
        "mystery",
    ]
    .iter()
    .filter(|n| d.check(e.attrs(n).unwrap()).is_ok())
    .map(|n| n.to_string())
    .collect()
}

#[test]
fn attributes_default_from_url_catalog_and_hosting() {
    let (_, e) = engine("  []\n");
    let a = e.attrs("local-llama").unwrap();
    assert_eq!(a.hosting, Hosting::Local);
    assert_eq!(a.openness, Openness::AvailableWeights);
    assert_eq!(a.price, Some(Price::default()));
    let a = e.attrs("cloud-mini").unwrap();
    assert_eq!(a.hosting, Hosting::Remote);
    assert_eq!(a.openness, Openness::Api);
    assert_eq!(
        a.price,
        Some(Price {
            input: 0.15,
            output: 0.6,
            cached_input: Some(0.075),
            cache_write: None,
        })
    );
    assert_eq!(a.freedoms.data_control, "none");
    let a = e.attrs("mystery").unwrap();
    assert_eq!((a.openness, a.price), (Openness::Api, None));
    assert_eq!(a.cost_usd(1000, 1000), None);
    let a = e.attrs("cloud-4o").unwrap();
    assert_eq!(a.cost_usd(1_000_000, 500_000), Some(2.5 + 5.0));
}

#[test]
fn cached_prompt_tokens_are_priced_apart() {
    use crate::api::Usage;
    let (_, e) = engine("  []\n");
    let mut a = DeploymentAttrs::clone(e.attrs("cloud-4o").unwrap());
    // Issue 16's example: Claude 3.5 Haiku, 2,455 of 2,459 prompt tokens read from the cache,
    // 23 output tokens: $0.0002916, not $0.0020592 (all prompt tokens at the input price).
    a.price = Some(Price {
        input: 0.8,
        output: 4.0,
        cached_input: Some(0.08),
        cache_write: Some(1.0),
    });
    let mut u = Usage::new(2459, 23);
    assert!((a.cost_usd(2459, 23).unwrap() - 0.0020592).abs() < 1e-12);
    u.cached_tokens = 2455;
    assert!((a.cost_of(&u).unwrap() - 0.0002916).abs() < 1e-12);
    // Cache writes at `cache_write`: 4 plain + 2,455 written.
    u.cached_tokens = 0;
    u.cache_write_tokens = 2455;
    let want = (4.0 * 0.8 + 2455.0 * 1.0 + 23.0 * 4.0) / 1e6;
    assert!((a.cost_of(&u).unwrap() - want).abs() < 1e-12);
    // Without `cached_input` / `cache_write`, cached tokens cost the input price.
    a.price = Some(Price {
        input: 0.8,
        output: 4.0,
        cached_input: None,
        cache_write: None,
    });
    assert!((a.cost_of(&u).unwrap() - 0.0020592).abs() < 1e-12);
    // Counts that do not add up never make a negative or larger-than-prompt charge.
    u.cached_tokens = 5000;
    u.cache_write_tokens = 5000;
    assert!((a.cost_of(&u).unwrap() - 0.0020592).abs() < 1e-12);
}

#[test]
fn pii_any_requires_local_only_when_pii_is_found() {
    let (_, e) =
        engine("  - name: pii-local\n    when: {pii: any}\n    require: {hosting: local}\n");
    let h = HeaderMap::new();
    let d = decide(&e, &h, "hello");
    assert!(d.policies.is_empty());
    assert_eq!(eligible(&e, &d).len(), 5);
    let d = decide(&e, &h, "mail ana@example.com");
    assert_eq!(d.policies, vec!["pii-local"]);
    assert_eq!(d.pii_kinds(), vec!["email"]);
    assert_eq!(eligible(&e, &d), vec!["local-llama", "local-olmo"]);
    assert_eq!(
        d.check(e.attrs("cloud-mini").unwrap()).unwrap_err(),
        vec!["hosting is remote, local required (policy pii-local)".to_string()]
    );
}

#[test]
fn pii_kind_lists_match_only_their_kinds() {
    let (_, e) =
        engine("  - name: iban-local\n    when: {pii: [iban]}\n    require: {hosting: local}\n");
    let h = HeaderMap::new();
    assert!(decide(&e, &h, "ana@example.com").policies.is_empty());
    let d = decide(&e, &h, "DE89 3704 0044 0532 0130 00");
    assert_eq!(d.policies, vec!["iban-local"]);
}

#[test]
fn constraints_of_all_matching_policies_intersect() {
    let (_, e) = engine(
        "  - name: open\n    require: {min_openness: open-weight}\n  - name: local\n    require: {hosting: local}\n  - name: gpu\n    require: {tags: [gpu]}\n",
    );
    let d = decide(&e, &HeaderMap::new(), "hi");
    assert_eq!(d.policies, vec!["open", "local", "gpu"]);
    assert_eq!(eligible(&e, &d), vec!["local-olmo"]);
    let reasons = d.check(e.attrs("cloud-mini").unwrap()).unwrap_err();
    assert_eq!(
        reasons,
        vec![
            "openness is api, at least open-weight required (policy open)".to_string(),
            "hosting is remote, local required (policy local)".to_string(),
            "missing tags [gpu] (policy gpu)".to_string(),
        ]
    );
}

#[test]
fn contradictory_constraints_leave_nothing() {
    let (_, e) = engine(
        "  - name: a\n    require: {hosting: local}\n  - name: b\n    require: {hosting: remote}\n",
    );
    let d = decide(&e, &HeaderMap::new(), "hi");
    assert!(eligible(&e, &d).is_empty());
}

#[test]
fn freedoms_prices_providers_and_deployment_lists() {
    let (_, e) =
        engine("  - name: f\n    require: {freedoms: {data_control: complete, trust: partial}}\n");
    let d = decide(&e, &HeaderMap::new(), "hi");
    assert_eq!(eligible(&e, &d), vec!["local-olmo"]);
    let (_, e) = engine("  - name: p\n    require: {max_price: {input: 1.0}}\n");
    let d = decide(&e, &HeaderMap::new(), "hi");
    assert_eq!(
        eligible(&e, &d),
        vec!["local-llama", "local-olmo", "cloud-mini"]
    );
    assert_eq!(
        d.check(e.attrs("mystery").unwrap()).unwrap_err(),
        vec!["price unknown, input at most 1 USD/1M tokens required (policy p)".to_string()]
    );
    let (_, e) = engine("  - name: d\n    require: {deployments: {deny: [\"cloud-*\"]}}\n");
    let d = decide(&e, &HeaderMap::new(), "hi");
    assert_eq!(
        eligible(&e, &d),
        vec!["local-llama", "local-olmo", "mystery"]
    );
    let (_, e) =
        engine("  - name: d\n    require: {deployments: [\"local-*\"], providers: [openai]}\n");
    let d = decide(&e, &HeaderMap::new(), "hi");
    assert_eq!(eligible(&e, &d), vec!["local-llama", "local-olmo"]);
}

#[test]
fn last_prefer_wins_and_sampling_merges_per_field() {
    let (_, e) = engine(
        "  - name: a\n    prefer: lowest_cost\n    sampling: {deterministic: true, seed: 1}\n    log: metadata\n  - name: b\n    when: {header: {x-sluice-mode: reproducible}}\n    prefer: most_open\n    sampling: {seed: 42}\n  - name: c\n    when: {model: \"other-*\"}\n    prefer: local_first\n",
    );
    let d = decide(&e, &HeaderMap::new(), "hi");
    assert_eq!(d.prefer, Prefer::LowestCost);
    assert_eq!(d.log_mode, Some(LogMode::Metadata));
    let mut h = HeaderMap::new();
    h.insert("x-sluice-mode", HeaderValue::from_static("reproducible"));
    let d = decide(&e, &h, "hi");
    assert_eq!(d.policies, vec!["a", "b"]);
    assert_eq!(
        (d.prefer, d.prefer_policy.as_deref()),
        (Prefer::MostOpen, Some("b"))
    );
    let s = d.sampling.unwrap();
    assert_eq!((s.deterministic, s.seed), (Some(true), Some(42)));
}

#[test]
fn when_conditions_all_must_hold() {
    let (_, e) = engine(
        "  - name: w\n    when: {model: default, header: {x-team: \"res*\"}, metadata: {team: research}, min_prompt_tokens: 5}\n    require: {hosting: local}\n",
    );
    // The estimate counts every string and key sent, the metadata's too: "a" with
    // `team: research` is 13 bytes, 4 tokens; "a longer prompt" 27 bytes, 7.
    let mut h = HeaderMap::new();
    h.insert("x-team", HeaderValue::from_static("research"));
    assert_eq!(decide(&e, &h, "a longer prompt").policies, vec!["w"]);
    assert!(decide(&e, &h, "a").policies.is_empty(), "too few tokens");
    assert!(
        decide(&e, &HeaderMap::new(), "a longer prompt")
            .policies
            .is_empty()
    );
    h.insert("x-team", HeaderValue::from_static("sales"));
    assert!(decide(&e, &h, "a longer prompt").policies.is_empty());
    // Conditions on API keys never hold until keys exist.
    let (_, e) = engine("  - name: k\n    when: {api_key: \"*\"}\n");
    assert!(decide(&e, &HeaderMap::new(), "hi").policies.is_empty());
}

#[test]
fn deny_block_and_redact() {
    let (_, e) = engine(
        "  - name: no-secrets\n    when: {pii: [secret]}\n    pii_action: block\n  - name: closed\n    when: {header: {x-mode: closed}}\n    action: deny\n    message: Closed for maintenance.\n  - name: mask\n    when: {pii: [email]}\n    require: {hosting: local}\n    pii_action: redact\n",
    );
    let d = decide(&e, &HeaderMap::new(), "key AKIAIOSFODNN7EXAMPLE");
    let den = d.denied.unwrap();
    assert_eq!(
        (den.code.as_str(), den.policy.as_str()),
        ("pii_blocked", "no-secrets")
    );
    assert_eq!(
        den.message,
        "The request contains personal data (secret) and policy `no-secrets` blocks such requests."
    );
    let mut h = HeaderMap::new();
    h.insert("x-mode", HeaderValue::from_static("closed"));
    let den = decide(&e, &h, "hi").denied.unwrap();
    assert_eq!(
        (den.code.as_str(), den.message.as_str()),
        ("policy_denied", "Closed for maintenance.")
    );
    let e_err = den.to_error();
    assert_eq!(e_err.status.as_u16(), 403);
    assert_eq!(e_err.body.kind, "policy_error");
    // Redact lifts the hosting requirement and redacts on remote routes only.
    let d = decide(&e, &HeaderMap::new(), "ana@example.com");
    assert_eq!(d.redact_kinds, vec!["email"]);
    assert_eq!(eligible(&e, &d).len(), 5);
    assert!(d.redacts_for(e.attrs("cloud-mini").unwrap()));
    assert!(!d.redacts_for(e.attrs("local-llama").unwrap()));
}

#[test]
fn bad_policies_are_config_errors_with_paths() {
    let cases = [
        (
            "  - name: a\n    when: {pii: [emial]}\n",
            "policies[0].when.pii",
        ),
        ("  - name: a\n    action: deny\n", "policies[0].message"),
        (
            "  - name: a\n    require: {freedoms: {trust: total}}\n",
            "policies[0].require.freedoms.trust",
        ),
        (
            "  - name: a\n    require: {freedoms: {speed: full}}\n",
            "policies[0].require.freedoms",
        ),
        (
            "  - name: a\n    pii_action: redact\n",
            "policies[0].pii_action",
        ),
        ("  - name: a\n  - name: a\n", "policies[1].name"),
        (
            "  - name: a\n    require: {providers: [bedrock]}\n",
            "policies[0].require.providers",
        ),
    ];
    for (p, path) in cases {
        let e = parse("t.yaml", &format!("{BASE}policies:\n{p}")).unwrap_err();
        assert_eq!(e.path.as_deref(), Some(path), "{p}: {e}");
    }
    let e = parse(
        "t.yaml",
        &format!("{BASE}policies:\n  - name: a\n    require: {{hosting: cloud}}\n"),
    )
    .unwrap_err();
    assert!(e.message.contains("cloud"), "{e}");
    let e = parse(
        "t.yaml",
        &format!("{BASE}keys:\n  - name: k\n    sha256: \"{}\"\n    policies: [nope]\npolicies:\n  - name: a\n", "a".repeat(64)),
    )
    .unwrap_err();
    assert_eq!(e.path.as_deref(), Some("keys[0].policies[0]"), "{e}");
}

#[test]
fn key_conditions_and_key_forced_policies() {
    let (_, e) = engine(
        "  - name: research-team\n    when: {team: \"res*\", tags: [lab]}\n    require: {hosting: local}\n  - name: one-key\n    when: {api_key: \"cfg:ci-*\"}\n    prefer: lowest_cost\n  - name: strict\n    when: {header: {x-never: sent}}\n    require: {min_openness: reproducible}\n",
    );
    let h = HeaderMap::new();
    let tags = vec!["lab".to_string()];
    let forced = vec!["strict".to_string()];
    let facts = RequestFacts {
        headers: Some(&h),
        api_key_id: Some("cfg:ci-runner"),
        api_key_creators: &[],
        team: Some("research"),
        key_tags: &tags,
        key_policies: &forced,
        model_owners: &[],
    };
    let d = e.decide(&facts, &body("hi"));
    assert_eq!(d.policies, vec!["research-team", "one-key", "strict"]);
    assert_eq!(d.prefer, Prefer::LowestCost);
    assert_eq!(eligible(&e, &d), vec!["local-olmo"]);
    let facts = RequestFacts {
        headers: Some(&h),
        api_key_id: Some("cfg:other"),
        api_key_creators: &[],
        team: Some("sales"),
        key_tags: &tags,
        key_policies: &[],
        model_owners: &[],
    };
    assert!(e.decide(&facts, &body("hi")).policies.is_empty());
    // A key made (through a key made) by `cfg:ci-runner` is matched as that key.
    let made_by = vec!["key_mid".to_string(), "cfg:ci-runner".to_string()];
    let facts = RequestFacts {
        headers: Some(&h),
        api_key_id: Some("key_child"),
        api_key_creators: &made_by,
        ..Default::default()
    };
    assert_eq!(e.decide(&facts, &body("hi")).policies, vec!["one-key"]);
}

#[test]
fn ollama_cloud_tags_are_remote_even_on_a_local_server() {
    let cfg = parse(
        "t.yaml",
        "deployments:\n  - name: k\n    provider: ollama\n    base_url: http://127.0.0.1:11434\n    model: kimi-k2:1t-cloud\n  - name: l\n    provider: ollama\n    base_url: http://localhost:11434\n    model: gpt-oss:20b\n",
    )
    .unwrap();
    let e = Engine::new(&cfg).unwrap();
    let k = e.attrs("k").unwrap();
    assert_eq!(
        (k.hosting, k.openness),
        (Hosting::Remote, Openness::AvailableWeights)
    );
    assert_eq!(k.price, None);
    let l = e.attrs("l").unwrap();
    assert_eq!(
        (l.hosting, l.openness),
        (Hosting::Local, Openness::OpenWeight)
    );
    assert_eq!(l.freedoms.autonomy, "study-restricted");
}

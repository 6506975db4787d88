//! Property: under a `pii: any → hosting: local` policy, no request whose text contains a
//! generated personal-data item ever reaches a remote deployment — not through the plan, not
//! through retries, not through model fallbacks (asserted on the remote mocks' received bodies).

mod support;

use proptest::prelude::*;
use serde_json::json;
use support::*;

fn luhn_digit(body: &[u32]) -> u32 {
    // Check digit that makes `body + d` pass Luhn.
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    (10 - sum % 10) % 10
}

fn iban_de(bban: &str) -> String {
    // ISO 13616: check = 98 - (bban + "DE00" as digits) mod 97.
    let digits = format!("{bban}131400");
    let rem = digits
        .chars()
        .fold(0u64, |r, c| (r * 10 + c.to_digit(10).unwrap() as u64) % 97);
    format!("DE{:02}{bban}", 98 - rem)
}

fn pii_item() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,10}(\\.[a-z]{1,5})?@[a-z]{2,10}\\.(com|org|es|de)",
        proptest::collection::vec(0u32..10, 14).prop_map(|mut ds| {
            ds.insert(0, 4);
            let d = luhn_digit(&ds);
            ds.push(d);
            let s: String = ds
                .iter()
                .map(|d| char::from_digit(*d, 10).unwrap())
                .collect();
            format!("{} {} {} {}", &s[0..4], &s[4..8], &s[8..12], &s[12..16])
        }),
        "[0-9]{18}".prop_map(|b| iban_de(&b)),
        (1u32..99, 100_000_000u64..999_999_999).prop_map(|(cc, n)| format!("+{cc} {n}")),
        (1u32..666, 1u32..100, 1u32..10000).prop_map(|(a, g, s)| format!("{a:03}-{g:02}-{s:04}")),
        (0u64..100_000_000).prop_map(|n| {
            let letters = b"TRWAGMYFPDXBNJZSQVHLCKE";
            format!("{n:08}{}", letters[(n % 23) as usize] as char)
        }),
        "[A-Za-z]{10}[0-9]{4}[A-Za-z0-9]{10}".prop_map(|k| format!("sk-{k}")),
        (1u8..=255, 0u8..=255, 0u8..=255, 1u8..=254)
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
    ]
}

fn prompt() -> impl Strategy<Value = (String, String)> {
    ("[a-zA-Z ,.?]{0,40}", pii_item(), "[a-zA-Z ,.?]{0,40}")
        .prop_map(|(pre, item, post)| (format!("{pre} {item} {post}"), item))
}

const YAML_POLICY: &str = "policies:
  - name: personal-data-stays-local
    when: {pii: any}
    require: {hosting: local}
";

const PREFERS: [&str; 5] = [
    "order",
    "lowest_cost",
    "most_open",
    "local_first",
    "lowest_latency",
];

/// One gateway per (prefer, remote listed first), built once (building one compiles the
/// detectors and parses the catalog).
fn gateway(prefer: usize, remote_first: bool) -> &'static sluice::gateway::Gateway {
    static GWS: std::sync::LazyLock<Vec<sluice::gateway::Gateway>> =
        std::sync::LazyLock::new(|| {
            let mut out = Vec::new();
            for prefer in PREFERS {
                for remote_first in [false, true] {
                    let order = if remote_first {
                        "[cloud, box]"
                    } else {
                        "[box, cloud]"
                    };
                    let yaml = format!(
                        "deployments:
  - name: box
    provider: openai
    base_url: http://127.0.0.1:9/v1
    model: llama3.2:1b
  - name: cloud
    provider: openai
    base_url: https://api.openai.com/v1
    model: gpt-4o-mini
  - name: cloud2
    provider: openai
    base_url: http://127.0.0.1:10/v1
    model: olmo2:7b
    hosting: remote
models:
  - name: default
    deployments: {order}
    fallbacks: [other]
  - name: other
    deployments: [cloud2]
{YAML_POLICY}  - name: p
    prefer: {prefer}
"
                    );
                    let cfg = sluice::config::parse("p.yaml", &yaml).unwrap();
                    out.push(sluice::gateway::Gateway::new(cfg).unwrap());
                }
            }
            out
        });
    &GWS[prefer * 2 + usize::from(remote_first)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The decision alone: every generated item is found, and the plan holds local
    /// deployments only, whatever the preference.
    #[test]
    fn the_plan_never_holds_a_remote_deployment(
        (text, _item) in prompt(),
        prefer in 0..PREFERS.len(),
        remote_first in any::<bool>(),
    ) {
        let gw = gateway(prefer, remote_first);
        let body = sluice::gateway::explain::request_for("default", Some(&text), None).unwrap();
        let x = sluice::gateway::explain::explain(gw, &axum::http::HeaderMap::new(), &body);
        prop_assert!(!x.pii.is_empty(), "not detected: {text:?}");
        prop_assert_eq!(x.order, vec!["box".to_string()]);
    }
}

#[test]
fn no_generated_pii_reaches_a_remote_mock_through_retries_and_fallbacks() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (local, remote_a, remote_b, local_b, s) = rt.block_on(async {
        // The first local deployment always fails, so every request goes through its retries
        // and then the fallback model, where a remote deployment is listed first.
        let local = Mock::start(|_: &Received| MockReply::Text(500, "down")).await;
        let remote_a = Mock::start(|_: &Received| MockReply::Json(200, json!({"choices": []}))).await;
        let remote_b = Mock::start(|_: &Received| MockReply::Json(200, json!({"choices": []}))).await;
        let local_b = Mock::start(|_: &Received| {
            MockReply::Json(200, json!({"id":"x","object":"chat.completion","created":1,"model":"m",
                "choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}))
        })
        .await;
        let yaml = format!(
            "deployments:
  - name: local
    provider: openai
    base_url: {}
    model: m
    hosting: local
    retries: 1
  - name: remote-a
    provider: openai
    base_url: {}
    model: m
    hosting: remote
  - name: remote-b
    provider: openai
    base_url: {}
    model: m
    hosting: remote
  - name: local-b
    provider: openai
    base_url: {}
    model: m
    hosting: local
models:
  - name: default
    deployments: [remote-a, local]
    fallbacks: [backup]
  - name: backup
    deployments: [remote-b, local-b]
routing:
  cooldown_ms: 0
{YAML_POLICY}  - name: local-first-then-list
    prefer: order
",
            local.url("/v1"),
            remote_a.url("/v1"),
            remote_b.url("/v1"),
            local_b.url("/v1")
        );
        let s = Sluice::start(&yaml).await;
        (local, remote_a, remote_b, local_b, s)
    });
    let c = client();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(24));
    runner
        .run(&prompt(), |(text, item)| {
            let (status, deployment) = rt.block_on(async {
                let r = c
                    .post(s.url("/v1/chat/completions"))
                    .json(&json!({"model": "default", "messages": [{"role": "user", "content": text}]}))
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.headers()["x-sluice-deployment"].to_str().unwrap().to_string())
            });
            prop_assert_eq!(status, 200);
            prop_assert_eq!(deployment, "local-b");
            for m in [&remote_a, &remote_b] {
                for got in m.received.lock().unwrap().iter() {
                    prop_assert!(!got.body.to_string().contains(&item));
                }
                prop_assert_eq!(m.calls(), 0);
            }
            Ok(())
        })
        .unwrap();
    // Every request went through the failing local deployment twice (1 try + 1 retry).
    let n = local_b.calls();
    assert!(n >= 24, "{n}");
    assert_eq!(local.calls(), 2 * n);
    rt.block_on(s.stop());
}

/// Where a generated item is planted: every kind of place a backend would receive text.
fn planted(item: String) -> impl Strategy<Value = (&'static str, serde_json::Value)> {
    let chat = |v: serde_json::Value| ("/v1/chat/completions", v);
    let base = || json!({"model": "default", "messages": [{"role": "user", "content": "hello"}]});
    (0usize..24, "[a-z]{1,8}", 0usize..4).prop_map(move |(site, key, depth)| {
        let it = item.clone();
        let mut nested = json!(it.clone());
        for _ in 0..depth {
            nested = json!({ key.clone(): [nested] });
        }
        match site {
            0 => chat(json!({"model": "default", "messages": [{"role": "user", "content": it}]})),
            1 => chat(json!({"model": "default", "messages": [{"role": "user", "content": "hi", "name": it}]})),
            2 => { let mut b = base(); b["user"] = json!(it); chat(b) }
            3 => { let mut b = base(); b["metadata"] = json!({ key.clone(): it }); chat(b) }
            4 => { let mut b = base(); b["prediction"] = json!({"type": "content", "content": it}); chat(b) }
            5 => { let mut b = base(); b["tools"] = json!([{"type": "function", "function": {"name": "f", "description": it}}]); chat(b) }
            6 => { let mut b = base(); b["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object", "description": it}}}); chat(b) }
            7 => { let mut b = base(); b[format!("x_{key}")] = nested; chat(b) }
            8 => { let mut b = base(); b["extra_body"] = json!({ format!("x_{key}"): nested }); chat(b) }
            9 => chat(json!({"model": "default", "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": json!({"q": it}).to_string()}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "42"}]})),
            10 => chat(json!({"model": "default", "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "ok", "reasoning_content": it, "refusal": null},
                {"role": "user", "content": "go on"}]})),
            11 => chat(json!({"model": "default", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "see"}, {"type": "file", "file": {"filename": it, "file_id": "f1"}}]}]})),
            12 => ("/v1/completions", json!({"model": "default", "prompt": "hello", "suffix": it})),
            13 => ("/v1/completions", json!({"model": "default", "prompt": [it]})),
            14 => ("/v1/embeddings", json!({"model": "default", "input": it})),
            15 => ("/v1/responses", json!({"model": "default", "store": false, "input": [
                {"role": "user", "content": [{"type": "input_text", "text": it}]}]})),
            16 => ("/v1/responses", json!({"model": "default", "store": false, "input": "hi", "instructions": it})),
            17 => ("/v1/messages", json!({"model": "default", "max_tokens": 16,
                "system": [{"type": "text", "text": it}], "messages": [{"role": "user", "content": "hi"}]})),
            18 => ("/v1/messages", json!({"model": "default", "max_tokens": 16,
                "tools": [{"name": "f", "input_schema": {"type": "object"}}],
                "messages": [{"role": "user", "content": "hi"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": it}]}]})),
            // Fields only a native route carries (the chat bridge leaves them out).
            19 => ("/v1/messages", json!({"model": "default", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}],
                format!("x_{key}"): nested, "context_management": {"note": it}})),
            20 => ("/v1/messages", json!({"model": "default", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"type": "web_search_20250305", "name": "web_search", "user_location": {"type": "approximate", "city": it}}]})),
            21 => ("/v1/responses", json!({"model": "default", "store": false, "input": "hi",
                "client_metadata": { key.clone(): it }, format!("x_{key}"): nested})),
            22 => ("/v1/responses", json!({"model": "default", "store": false, "input": "hi",
                "tools": [{"type": "web_search", "user_location": {"type": "approximate", "city": it}}]})),
            _ => ("/v1/embeddings", json!({"model": "default", "input": "x", "user": it})),
        }
    })
}

/// Property (issue 15): an item planted anywhere a request can carry text — known fields,
/// unknown fields at any depth, `extra_body`, tools, schemas, metadata; chat, completions and
/// embeddings, and Responses and Messages, whose remote candidates include a native
/// `anthropic` deployment and a native `responses` one (fields only the native body carries
/// included) — never reaches the remote mock; the local one answers. 500 cases here; `SLUICE_PII_CASES=10000` for the long run.
#[test]
fn pii_planted_at_any_path_never_reaches_a_remote_mock() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (remote, local, s) = rt.block_on(async {
        let remote = Mock::start(|_: &Received| MockReply::Json(200, json!({"choices": []}))).await;
        let local = Mock::start(|r: &Received| {
            if r.path.ends_with("/embeddings") {
                MockReply::Json(200, json!({"object": "list", "model": "m",
                    "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}]}))
            } else if r.path.ends_with("/chat/completions") {
                MockReply::Json(200, json!({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}))
            } else {
                MockReply::Json(200, json!({"id": "x", "object": "text_completion", "created": 1, "model": "m",
                    "choices": [{"index": 0, "text": "ok", "finish_reason": "stop"}]}))
            }
        })
        .await;
        let yaml = format!(
            "deployments:
  - name: remote
    provider: openai
    base_url: {}
    model: m
    hosting: remote
  - name: remote-claude
    provider: anthropic
    base_url: {}
    model: claude-x
    hosting: remote
  - name: remote-responses
    provider: openai
    base_url: {}
    model: m
    hosting: remote
    supports: [responses]
  - name: local
    provider: openai
    base_url: {}
    model: m
    hosting: local
models:
  - name: default
    deployments: [remote-claude, remote-responses, remote, local]
{YAML_POLICY}",
            remote.url("/v1"),
            remote.url(""),
            remote.url("/v1"),
            local.url("/v1"),
        );
        let s = Sluice::start(&yaml).await;
        (remote, local, s)
    });
    let c = client();
    let cases = pii_item().prop_flat_map(|item| (Just(item.clone()), planted(item)));
    let n: u32 = std::env::var("SLUICE_PII_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(n));
    runner
        .run(&cases, |(item, (path, body))| {
            let status = rt.block_on(async {
                c.post(s.url(path))
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            });
            prop_assert_eq!(status, 200, "{} {}", path, body);
            prop_assert_eq!(remote.calls(), 0, "{}", body);
            let raw = remote.raw_bytes();
            prop_assert!(!String::from_utf8_lossy(&raw).contains(&item));
            Ok(())
        })
        .unwrap();
    assert!(local.calls() >= n as usize, "{}", local.calls());
    rt.block_on(s.stop());
}

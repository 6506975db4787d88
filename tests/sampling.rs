//! Sampling overrides over HTTP: one mock that answers as an OpenAI-compatible server, Ollama
//! and Anthropic (by path) and records what each received; Sluice in front with a
//! `deterministic: true` policy chosen by a request header. Every provider kind must get
//! exactly the mapped values, whatever the client sent.

mod support;

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use support::*;

fn answer(r: &Received) -> MockReply {
    match r.path.as_str() {
        "/api/chat" => MockReply::Json(
            200,
            json!({"model":"llama3.1:8b","created_at":"2025-06-01T10:00:00Z",
                   "message":{"role":"assistant","content":"four"},
                   "done_reason":"stop","done":true,"prompt_eval_count":3,"eval_count":1}),
        ),
        "/v1/messages" => MockReply::Json(
            200,
            json!({"id":"msg_1","type":"message","role":"assistant","model":"claude",
                   "content":[{"type":"text","text":"four"}],"stop_reason":"end_turn",
                   "stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1}}),
        ),
        _ => MockReply::Json(
            200,
            json!({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,
                   "model":"m","system_fingerprint":"fp_1",
                   "choices":[{"index":0,"message":{"role":"assistant","content":"four"},
                               "finish_reason":"stop"}],
                   "usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}),
        ),
    }
}

fn config(mock: &Mock, extra: &str) -> String {
    format!(
        "deployments:
  - name: llamacpp
    provider: openai
    base_url: {oai}
    model: gemma
    supports: [top_k, seed, n, cache_prompt]
  - name: nok
    provider: openai
    base_url: {oai}
    model: gpt
    supports: [seed, n]
  - name: ollama
    provider: ollama
    base_url: {root}
    model: llama3.1:8b
  - name: claude
    provider: anthropic
    base_url: {root}
    model: claude
    max_tokens_default: 64
models:
  - name: any
    deployments: [claude, ollama]
policies:
  - name: reproducible
    when: {{header: {{x-test-mode: det}}}}
    sampling: {{deterministic: true, seed: 42}}
  - name: seeded
    when: {{header: {{x-test-mode: seed}}}}
    sampling: {{require_seed: true}}
{extra}",
        oai = mock.url("/v1"),
        root = mock.url(""),
    )
}

const DEPLOYMENTS: [&str; 4] = ["llamacpp", "nok", "ollama", "claude"];

/// The client's sampling fields.
#[derive(Debug, Clone)]
struct Client {
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<u32>,
    seed: Option<i64>,
    presence_penalty: Option<f64>,
}

impl Client {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        let mut v = Vec::new();
        if let Some(t) = self.temperature {
            v.push(("temperature", json!(t)));
        }
        if let Some(p) = self.top_p {
            v.push(("top_p", json!(p)));
        }
        if let Some(k) = self.top_k {
            v.push(("top_k", json!(k)));
        }
        if let Some(p) = self.presence_penalty {
            v.push(("presence_penalty", json!(p)));
        }
        if let Some(s) = self.seed {
            v.push(("seed", json!(s)));
        }
        v
    }

    fn body(&self, model: &str) -> Value {
        let mut b = json!({"model": model, "messages":[{"role":"user","content":"2+2?"}]});
        for (k, v) in self.fields() {
            b[k] = v;
        }
        b
    }
}

/// What deployment `dep` must receive, by the mapping table in docs/reproducibility.md: the sampling fields of
/// the upstream body (OpenAI names at the top level; Ollama's under `options`).
fn expected(dep: &str, c: &Client, det: bool) -> Value {
    let mut flat: Vec<(&str, Value)> = if det {
        let mut v = vec![("temperature", json!(0.0))];
        // Claude refuses `temperature` beside `top_p`: none is sent there.
        if dep != "claude" {
            v.push(("top_p", json!(1.0)));
        }
        v.push(("top_k", json!(1)));
        v.push(("seed", json!(42)));
        v.push(("n", json!(1)));
        v.push(("presence_penalty", json!(0.0)));
        v.push(("frequency_penalty", json!(0.0)));
        v.push(("cache_prompt", json!(false)));
        v
    } else {
        c.fields()
    };
    let keep: &[&str] = match dep {
        "llamacpp" => &[
            "temperature",
            "top_p",
            "top_k",
            "seed",
            "n",
            "presence_penalty",
            "frequency_penalty",
            "cache_prompt",
        ],
        "nok" => &[
            "temperature",
            "top_p",
            "seed",
            "n",
            "presence_penalty",
            "frequency_penalty",
        ],
        "ollama" => &[
            "temperature",
            "top_p",
            "top_k",
            "seed",
            "presence_penalty",
            "frequency_penalty",
        ],
        _ => &["temperature", "top_p", "top_k"],
    };
    flat.retain(|(k, _)| keep.contains(k));
    let mut m = Map::new();
    for (k, mut v) in flat {
        if dep == "claude" && k == "temperature" {
            v = json!(v.as_f64().unwrap().clamp(0.0, 1.0));
        }
        m.insert(k.to_string(), v);
    }
    if dep == "ollama" {
        return if m.is_empty() {
            json!({})
        } else {
            json!({ "options": m })
        };
    }
    Value::Object(m)
}

const SAMPLING_KEYS: [&str; 8] = [
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "cache_prompt",
];

/// The sampling fields of what the mock received last (Ollama: `options` without `num_*`).
fn received_sampling(mock: &Mock) -> Value {
    let b = mock.last().body;
    let mut m = Map::new();
    if let Some(opts) = b.get("options").and_then(Value::as_object) {
        let mut o = Map::new();
        for (k, v) in opts {
            if SAMPLING_KEYS.contains(&k.as_str()) {
                o.insert(k.clone(), v.clone());
            }
        }
        if !o.is_empty() {
            m.insert("options".into(), Value::Object(o));
        }
    }
    for k in SAMPLING_KEYS {
        if let Some(v) = b.get(k) {
            m.insert(k.into(), v.clone());
        }
    }
    Value::Object(m)
}

/// `x-sluice-overridden` as the client should see it for a deterministic request to `dep`.
fn expected_overridden(dep: &str, c: &Client) -> Option<String> {
    let mut out = Vec::new();
    let num = |v: f64| json!(v).to_string();
    if let Some(t) = c.temperature.filter(|t| *t != 0.0) {
        out.push(format!("temperature={}", num(t)));
    }
    if let Some(p) = c.top_p.filter(|p| *p != 1.0 || dep == "claude") {
        out.push(format!("top_p={}", num(p)));
    }
    if let Some(k) = c.top_k.filter(|k| *k != 1)
        && dep != "nok"
    {
        out.push(format!("top_k={k}"));
    }
    if let Some(p) = c.presence_penalty.filter(|p| *p != 0.0) {
        out.push(format!("presence_penalty={}", num(p)));
    }
    if let Some(s) = c.seed.filter(|s| *s != 42)
        && dep != "claude"
    {
        out.push(format!("seed={s}"));
    }
    (!out.is_empty()).then(|| out.join(","))
}

async fn send(s: &Sluice, body: &Value, mode: Option<&str>) -> reqwest::Response {
    let mut req = client().post(s.url("/v1/chat/completions")).json(body);
    if let Some(m) = mode {
        req = req.header("x-test-mode", m);
    }
    req.send().await.unwrap()
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

fn client_strategy() -> impl Strategy<Value = Client> {
    (
        proptest::option::of(0.0f64..2.0),
        proptest::option::of(0.0f64..1.0),
        proptest::option::of(1u32..100),
        proptest::option::of(-5i64..1_000_000),
        proptest::option::of(-2.0f64..2.0),
    )
        .prop_map(
            |(temperature, top_p, top_k, seed, presence_penalty)| Client {
                temperature,
                top_p,
                top_k,
                seed,
                presence_penalty,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn every_provider_gets_exactly_the_mapped_values(c in client_strategy(), det in any::<bool>()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mock = Mock::start(answer).await;
            let s = Sluice::start(&config(&mock, "")).await;
            for dep in DEPLOYMENTS {
                let r = send(&s, &c.body(dep), det.then_some("det")).await;
                assert_eq!(r.status(), 200, "{dep}");
                let sampling = header(&r, "x-sluice-sampling");
                let overridden = header(&r, "x-sluice-overridden");
                assert_eq!(received_sampling(&mock), expected(dep, &c, det), "{dep} {c:?}");
                if det {
                    let seed = if dep == "claude" { "no-seed" } else { "seed=42" };
                    assert_eq!(sampling, Some(format!("deterministic; {seed}")), "{dep}");
                    assert_eq!(overridden, expected_overridden(dep, &c), "{dep} {c:?}");
                } else {
                    assert_eq!(sampling, None);
                    assert_eq!(overridden, None);
                }
            }
            s.stop().await;
        });
    }
}

#[tokio::test]
async fn a_client_at_temperature_1_3_reaches_each_provider_deterministically() {
    let mock = Mock::start(answer).await;
    let s = Sluice::start(&config(&mock, "")).await;
    let c = Client {
        temperature: Some(1.3),
        top_p: Some(0.5),
        top_k: None,
        seed: None,
        presence_penalty: None,
    };
    let r = send(&s, &c.body("llamacpp"), Some("det")).await;
    assert_eq!(
        header(&r, "x-sluice-sampling").as_deref(),
        Some("deterministic; seed=42")
    );
    assert_eq!(
        header(&r, "x-sluice-overridden").as_deref(),
        Some("temperature=1.3,top_p=0.5")
    );
    assert_eq!(
        received_sampling(&mock),
        json!({"temperature":0.0,"top_p":1.0,"top_k":1,"seed":42,"n":1,
               "presence_penalty":0.0,"frequency_penalty":0.0,"cache_prompt":false})
    );
    let r = send(&s, &c.body("claude"), Some("det")).await;
    assert_eq!(
        header(&r, "x-sluice-sampling").as_deref(),
        Some("deterministic; no-seed")
    );
    // Claude refuses `temperature` beside `top_p` (found by an attacker test): no `top_p`.
    assert_eq!(
        received_sampling(&mock),
        json!({"temperature":0.0,"top_k":1})
    );
    s.stop().await;
}

#[tokio::test]
async fn require_seed_excludes_anthropic_with_the_reason() {
    let mock = Mock::start(answer).await;
    let s = Sluice::start(&config(&mock, "")).await;
    let body = json!({"model":"claude","messages":[{"role":"user","content":"hi"}]});
    let r = send(&s, &body, Some("seed")).await;
    assert_eq!(r.status(), 403);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "no_eligible_deployment");
    assert_eq!(
        e["error"]["message"],
        "No deployment may serve model `claude` under the matching policies. `claude`: provider anthropic takes no seed (require_seed)."
    );
    assert_eq!(mock.calls(), 0);
    // Model `any` lists claude first: it is skipped, ollama answers with a seed.
    let body = json!({"model":"any","messages":[{"role":"user","content":"hi"}]});
    let r = send(&s, &body, Some("seed")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-sluice-deployment").as_deref(), Some("ollama"));
    assert_eq!(
        header(&r, "x-sluice-sampling").as_deref(),
        Some("custom; seed=0")
    );
    assert_eq!(mock.last().body["options"]["seed"], 0);
    s.stop().await;
}

#[tokio::test]
async fn client_header_deployment_block_clamp_and_strip() {
    let mock = Mock::start(answer).await;
    let yaml = config(&mock, "sampling:\n  allow_client_header: true\n").replace(
        "    supports: [seed, n]\n",
        "    supports: [seed, n]\n    sampling: {max_temperature: 0.7, strip: [logit_bias]}\n",
    );
    let s = Sluice::start(&yaml).await;
    let body = json!({"model":"nok","temperature":1.5,"logit_bias":{"50256":-100},
                      "messages":[{"role":"user","content":"hi"}]});
    let r = send(&s, &body, None).await;
    assert_eq!(
        header(&r, "x-sluice-sampling").as_deref(),
        Some("custom; no-seed")
    );
    assert_eq!(
        header(&r, "x-sluice-overridden").as_deref(),
        Some("temperature=1.5,logit_bias=stripped")
    );
    let got = mock.last().body;
    assert_eq!(got["temperature"], 0.7);
    assert!(got.get("logit_bias").is_none());
    // The client asks for determinism: it overrides the deployment's block.
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .header("x-sluice-deterministic", "true")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&r, "x-sluice-sampling").as_deref(),
        Some("deterministic; seed=0")
    );
    assert_eq!(mock.last().body["temperature"], 0.0);
    // ... and out of the policy's.
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .header("x-test-mode", "det")
        .header("x-sluice-deterministic", "false")
        .json(&json!({"model":"llamacpp","temperature":0.9,"messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&r, "x-sluice-sampling").as_deref(),
        Some("custom; seed=42")
    );
    assert_eq!(mock.last().body["temperature"], 0.9);
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .header("x-sluice-deterministic", "maybe")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["param"], "x-sluice-deterministic");
    s.stop().await;
}

#[tokio::test]
async fn the_header_is_ignored_unless_allowed() {
    let mock = Mock::start(answer).await;
    let s = Sluice::start(&config(&mock, "")).await;
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .header("x-sluice-deterministic", "true")
        .json(&json!({"model":"nok","temperature":0.9,"messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-sluice-sampling"), None);
    assert_eq!(mock.last().body["temperature"], 0.9);
    s.stop().await;
}

#[test]
fn bad_sampling_config_names_the_key() {
    let e = sluice::config::parse(
        "t.yaml",
        "deployments:\n  - name: a\n    provider: openai\n    base_url: http://127.0.0.1:1/v1\n    model: m\n    sampling: {top_p: 1.5}\n",
    )
    .unwrap_err();
    assert_eq!(e.path.as_deref(), Some("deployments[0].sampling.top_p"));
    let e = sluice::config::parse(
        "t.yaml",
        "policies:\n  - name: p\n    sampling: {strip: [messages]}\n",
    )
    .unwrap_err();
    assert_eq!(e.path.as_deref(), Some("policies[0].sampling.strip[0]"));
}

//! What a caller may see and use: `/v1/models` lists only what the key may use, `/health/ready`
//! gives its detail to admins only and probes each backend at most once per period, and a
//! deployment named directly is still under its models' limits and `when.model` policies.

mod support;

use serde_json::{Value, json};
use support::*;

const MASTER: &str = "sk-master-vis";

fn ok() -> MockReply {
    MockReply::Json(
        200,
        json!({"id":"x","object":"chat.completion","created":1,"model":"m",
               "choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],
               "usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}),
    )
}

fn config(local: &Mock, remote: &Mock, extra: &str) -> String {
    format!(
        "server:\n  master_key: {MASTER}\n  ready_cache_ms: 600000\ndeployments:\n  - name: box\n    provider: openai\n    base_url: {}\n    model: m\n  - name: cloud-dep\n    provider: openai\n    base_url: {}\n    model: m\n    hosting: remote\n    price: {{input: 1, output: 1}}\nmodels:\n  - name: default\n    deployments: [box]\n  - name: cloud\n    deployments: [cloud-dep]\npolicies:\n  - name: stay-local\n    require: {{hosting: local}}\n    when: {{header: {{x-never: sent}}}}\nkeys:\n  - name: narrow\n    key: sk-narrow\n    models: [default]\n  - name: local-only\n    key: sk-local\n    policies: [stay-local]\n  - name: ops\n    key: sk-ops\n    admin: true\n{extra}",
        local.url("/v1"),
        remote.url("/v1"),
    )
}

async fn model_ids(s: &Sluice, key: &str) -> Vec<String> {
    let v: Value = client()
        .get(s.url("/v1/models"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn models_lists_only_what_the_key_may_use() {
    let local = Mock::start(|_| ok()).await;
    let remote = Mock::start(|_| ok()).await;
    let s = Sluice::start(&config(&local, &remote, "")).await;
    assert_eq!(
        model_ids(&s, MASTER).await,
        ["default", "cloud", "box", "cloud-dep"]
    );
    // The allow-list: `default` only (not even its deployment's name).
    assert_eq!(model_ids(&s, "sk-narrow").await, ["default"]);
    // A bound policy that leaves only local deployments hides the remote ones.
    assert_eq!(model_ids(&s, "sk-local").await, ["default", "box"]);
    for (key, id, want) in [
        ("sk-narrow", "cloud", 404),
        ("sk-narrow", "box", 404),
        ("sk-local", "cloud-dep", 404),
        ("sk-narrow", "default", 200),
        (MASTER, "cloud", 200),
    ] {
        let r = client()
            .get(s.url(&format!("/v1/models/{id}")))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want, "{key} {id}");
        if want == 404 {
            let e: Value = r.json().await.unwrap();
            assert_eq!(e["error"]["code"], "model_not_found");
        }
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_ready_detail_is_for_admins_and_probes_are_cached() {
    let local = Mock::start(|_| ok()).await;
    let remote = Mock::start(|_| ok()).await;
    let s = Sluice::start(&config(&local, &remote, "")).await;
    let ready = |key: Option<&'static str>| {
        let mut req = client().get(s.url("/health/ready"));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let tasks: Vec<_> = (0..20).map(|_| tokio::spawn(ready(None))).collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), (200, json!({"status": "ready"})));
    }
    assert_eq!(
        ready(Some("sk-narrow")).await,
        (200, json!({"status": "ready"}))
    );
    assert_eq!(
        ready(Some("sk-wrong")).await,
        (200, json!({"status": "ready"}))
    );
    for admin in [MASTER, "sk-ops"] {
        let (status, v) = ready(Some(admin)).await;
        assert_eq!(status, 200);
        assert_eq!(
            v,
            json!({"status": "ready", "deployments": [
                {"name": "box", "provider": "openai", "reachable": true, "error": null},
                {"name": "cloud-dep", "provider": "openai", "reachable": true, "error": null},
            ]})
        );
    }
    // 24 readiness requests, one probe per backend.
    assert_eq!(local.calls(), 1);
    assert_eq!(remote.calls(), 1);
    assert_eq!(local.last().path, "/v1/models");
    s.stop().await;
}

#[tokio::test]
async fn a_deployment_named_directly_is_under_its_models_limit_and_policies() {
    let local = Mock::start(|_| ok()).await;
    let remote = Mock::start(|_| ok()).await;
    let extra = "limits:\n  models:\n    default: {rpm: 2}\n";
    let mut yaml = config(&local, &remote, extra);
    yaml = yaml.replace(
        "policies:\n",
        "policies:\n  - name: no-cloud\n    when: {model: cloud}\n    action: deny\n    message: cloud is closed\n",
    );
    let s = Sluice::start(&yaml).await;
    let chat = |model: &'static str| {
        client()
            .post(s.url("/v1/chat/completions"))
            .bearer_auth(MASTER)
            .json(&json!({"model": model, "messages":[{"role":"user","content":"hi"}]}))
            .send()
    };
    assert_eq!(chat("default").await.unwrap().status(), 200);
    assert_eq!(chat("box").await.unwrap().status(), 200);
    // The model's quota (2 per minute) is used up, whichever name was used.
    let r = chat("box").await.unwrap();
    assert_eq!(r.status(), 429);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "rate_limit_exceeded");
    assert_eq!(chat("default").await.unwrap().status(), 429);
    assert_eq!(local.calls(), 2);
    // `when: {model: cloud}` also matches its deployment named directly.
    for name in ["cloud", "cloud-dep"] {
        let r = chat(name).await.unwrap();
        assert_eq!(r.status(), 403, "{name}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["message"], "cloud is closed", "{name}");
    }
    assert_eq!(remote.calls(), 0);
    s.stop().await;
}

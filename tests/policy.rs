//! Policy routing over HTTP: two mock upstreams, one declared `local` and one `remote` (both
//! listen on 127.0.0.1, so the test config sets `hosting` explicitly).

mod support;

use serde_json::{Value, json};
use support::*;

fn completion(text: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    })
}

/// Echoes the last user message back as the completion.
fn echo(r: &Received) -> MockReply {
    let text = r.body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string();
    MockReply::Json(200, completion(&format!("echo: {text}")))
}

/// Config with a `local` and a `remote` deployment (in that list order unless `order` says
/// otherwise), model `default`, and `policies` appended.
fn config(local: &str, remote: &str, extra: &str, order: &str, policies: &str) -> String {
    format!(
        "deployments:
  - name: local
    provider: openai
    base_url: {local}
    model: llama3.2:1b
    hosting: local
{extra}  - name: remote
    provider: openai
    base_url: {remote}
    model: gpt-4o-mini
    hosting: remote
models:
  - name: default
    deployments: [{order}]
policies:
{policies}"
    )
}

const PII_LOCAL: &str = "  - name: personal-data-stays-local
    when: {pii: any}
    require: {hosting: local}
";

async fn post(s: &Sluice, body: Value) -> reqwest::Response {
    client()
        .post(s.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn ask(text: &str) -> Value {
    json!({"model": "default", "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn an_email_never_reaches_the_remote_mock() {
    let local = Mock::start(echo).await;
    let remote = Mock::start(echo).await;
    let yaml = config(
        &local.url("/v1"),
        &remote.url("/v1"),
        "",
        "remote, local",
        PII_LOCAL,
    );
    let s = Sluice::start(&yaml).await;

    let r = post(&s, ask("no personal data here")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-sluice-deployment"], "remote");
    assert_eq!(r.headers()["x-sluice-hosting"], "remote");
    assert_eq!(r.headers()["x-sluice-openness"], "api");
    assert!(r.headers().get("x-sluice-policies").is_none());

    let r = post(&s, ask("write to ana@example.com please")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-sluice-deployment"], "local");
    assert_eq!(r.headers()["x-sluice-hosting"], "local");
    assert_eq!(r.headers()["x-sluice-openness"], "available-weights");
    assert_eq!(
        r.headers()["x-sluice-policies"],
        "personal-data-stays-local"
    );
    assert_eq!((remote.calls(), local.calls()), (1, 1));
    for got in remote.received.lock().unwrap().iter() {
        assert!(!got.body.to_string().contains("ana@example.com"));
    }
    s.stop().await;
}

#[tokio::test]
async fn no_eligible_deployment_is_a_403_naming_each_candidate() {
    let local = Mock::start(echo).await;
    let remote = Mock::start(echo).await;
    let policies =
        format!("{PII_LOCAL}  - name: open-only\n    require: {{min_openness: open-weight}}\n");
    let yaml = config(
        &local.url("/v1"),
        &remote.url("/v1"),
        "",
        "local, remote",
        &policies,
    );
    let s = Sluice::start(&yaml).await;
    let r = post(&s, ask("mail ana@example.com")).await;
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!({"error": {
            "message": "No deployment may serve model `default` under the matching policies. `local`: openness is available-weights, at least open-weight required (policy open-only). `remote`: hosting is remote, local required (policy personal-data-stays-local); openness is api, at least open-weight required (policy open-only).",
            "type": "policy_error", "param": null, "code": "no_eligible_deployment"}})
    );
    assert_eq!((local.calls(), remote.calls()), (0, 0));
    s.stop().await;
}

#[tokio::test]
async fn deny_and_block_are_403s_with_their_codes() {
    let local = Mock::start(echo).await;
    let remote = Mock::start(echo).await;
    let policies = "  - name: maintenance
    when: {header: {x-sluice-mode: closed}}
    action: deny
    message: Sluice is closed for maintenance.
  - name: no-keys
    when: {pii: [secret]}
    pii_action: block
";
    let yaml = config(
        &local.url("/v1"),
        &remote.url("/v1"),
        "",
        "local, remote",
        policies,
    );
    let s = Sluice::start(&yaml).await;
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .header("x-sluice-mode", "closed")
        .json(&ask("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": {"message": "Sluice is closed for maintenance.", "type": "policy_error",
                         "param": null, "code": "policy_denied"}})
    );
    let r = post(&s, ask("my key is AKIAIOSFODNN7EXAMPLE")).await;
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "pii_blocked");
    assert!(!v.to_string().contains("AKIA"));
    assert_eq!((local.calls(), remote.calls()), (0, 0));
    s.stop().await;
}

#[tokio::test]
async fn lowest_cost_picks_the_cheaper_eligible_deployment() {
    let local = Mock::start(echo).await;
    let remote = Mock::start(echo).await;
    let cheap = Mock::start(echo).await;
    let extra = format!(
        "  - name: cheap-remote\n    provider: openai\n    base_url: {}\n    model: gpt-4.1-nano\n    hosting: remote\n",
        cheap.url("/v1")
    );
    // The local one costs something here, so the cheapest is the remote nano model.
    let yaml = config(
        &local.url("/v1"),
        &remote.url("/v1"),
        &extra,
        "local, remote, cheap-remote",
        "  - name: cheap\n    prefer: lowest_cost\n",
    )
    .replace(
        "    hosting: local\n",
        "    hosting: local\n    price: {input: 1.0, output: 1.0}\n",
    );
    let s = Sluice::start(&yaml).await;
    let r = post(&s, ask("hi")).await;
    assert_eq!(r.headers()["x-sluice-deployment"], "cheap-remote");
    // With PII, only the local one is eligible, whatever it costs.
    let yaml2 = yaml.replace("policies:\n", &format!("policies:\n{PII_LOCAL}"));
    let s2 = Sluice::start(&yaml2).await;
    let r = post(&s2, ask("call +34 612 345 678")).await;
    assert_eq!(r.headers()["x-sluice-deployment"], "local");
    assert_eq!(
        r.headers()["x-sluice-policies"],
        "personal-data-stays-local,cheap"
    );
    assert_eq!((local.calls(), remote.calls(), cheap.calls()), (1, 0, 1));
    s.stop().await;
    s2.stop().await;
}

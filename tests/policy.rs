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

/// Three deployments: `local` (llama3.2, local), `remote` (gpt-4o-mini, remote) and `open`
/// (olmo2, remote, reproducible), model `default` over them in `order`.
fn three(local: &Mock, remote: &Mock, open: &Mock, order: &str, policies: &str) -> String {
    let extra = format!(
        "  - name: open\n    provider: openai\n    base_url: {}\n    model: olmo2:7b\n    hosting: remote\n",
        open.url("/v1")
    );
    config(
        &local.url("/v1"),
        &remote.url("/v1"),
        &extra,
        order,
        policies,
    )
}

#[tokio::test]
async fn each_prefer_orders_the_eligible_deployments() {
    let local = Mock::start(echo).await;
    let remote = Mock::start(echo).await;
    let open = Mock::start(echo).await;
    let cases = [
        ("order", "remote"),
        ("local_first", "local"),
        ("most_open", "open"),
        // Local costs 0, gpt-4o-mini has a list price, olmo's remote price is unknown (last).
        ("lowest_cost", "local"),
    ];
    for (prefer, want) in cases {
        let policies = format!("  - name: p\n    prefer: {prefer}\n");
        let s = Sluice::start(&three(
            &local,
            &remote,
            &open,
            "remote, open, local",
            &policies,
        ))
        .await;
        let r = post(&s, ask("hi")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-sluice-deployment"], want, "prefer {prefer}");
        s.stop().await;
    }
    assert_eq!((local.calls(), remote.calls(), open.calls()), (2, 1, 1));
}

#[tokio::test]
async fn failures_fall_back_on_500_timeout_and_connection_refused() {
    let failing = Mock::start(
        |r: &Received| match r.body["messages"][0]["content"].as_str() {
            Some("500") => MockReply::Text(500, "boom"),
            _ => MockReply::Hang,
        },
    )
    .await;
    let good = Mock::start(echo).await;
    let yaml = format!(
        "deployments:
  - name: flaky
    provider: openai
    base_url: {}
    model: m
    timeout_ms: 300
  - name: dead
    provider: openai
    base_url: http://127.0.0.1:1/v1
    model: m
  - name: good
    provider: openai
    base_url: {}
    model: m
models:
  - name: default
    deployments: [flaky]
    fallbacks: [backup]
  - name: backup
    deployments: [dead, good]
routing:
  cooldown_ms: 0
",
        failing.url("/v1"),
        good.url("/v1")
    );
    let s = Sluice::start(&yaml).await;
    for trigger in ["500", "hang"] {
        let r = post(&s, ask(trigger)).await;
        assert_eq!(r.status(), 200, "{trigger}");
        assert_eq!(r.headers()["x-sluice-deployment"], "good");
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            v["choices"][0]["message"]["content"],
            format!("echo: {trigger}")
        );
    }
    assert_eq!((failing.calls(), good.calls()), (2, 2));
    s.stop().await;
}

#[tokio::test]
async fn a_failing_deployment_cools_down_and_retries_count() {
    let bad = Mock::start(|_: &Received| MockReply::Text(503, "busy")).await;
    let good = Mock::start(echo).await;
    let yaml = format!(
        "deployments:
  - name: bad
    provider: openai
    base_url: {}
    model: m
    retries: 2
  - name: good
    provider: openai
    base_url: {}
    model: m
models:
  - name: default
    deployments: [bad, good]
routing:
  cooldown_ms: 600000
",
        bad.url("/v1"),
        good.url("/v1")
    );
    let s = Sluice::start(&yaml).await;
    let r = post(&s, ask("one")).await;
    assert_eq!(r.headers()["x-sluice-deployment"], "good");
    // 1 try + 2 retries on `bad`, then `good`.
    assert_eq!((bad.calls(), good.calls()), (3, 1));
    // `bad` is cooling down: skipped without a call.
    let r = post(&s, ask("two")).await;
    assert_eq!(r.headers()["x-sluice-deployment"], "good");
    assert_eq!((bad.calls(), good.calls()), (3, 2));
    s.stop().await;
}

#[tokio::test]
async fn a_429_with_retry_after_cools_down_and_all_cooling_is_a_503() {
    let limited = Mock::start(|_: &Received| {
        MockReply::JsonWithHeaders(
            429,
            vec![("retry-after", "7".to_string())],
            json!({"error": {"message": "slow down", "type": "rate_limit_error"}}),
        )
    })
    .await;
    let also = Mock::start(|_: &Received| MockReply::Text(500, "down")).await;
    let yaml = format!(
        "deployments:
  - name: limited
    provider: openai
    base_url: {}
    model: m
  - name: also
    provider: openai
    base_url: {}
    model: m
models:
  - name: default
    deployments: [limited, also]
routing:
  cooldown_ms: 600000
",
        limited.url("/v1"),
        also.url("/v1")
    );
    let s = Sluice::start(&yaml).await;
    let r = post(&s, ask("one")).await;
    assert_eq!(r.status(), 502);
    let r = post(&s, ask("two")).await;
    assert_eq!(r.status(), 503);
    // `limited` cools down for its Retry-After (7 s), `also` for cooldown_ms (600 s): the
    // client is told when the first one ends.
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=7).contains(&retry), "{retry}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "no_available_deployment");
    assert_eq!((limited.calls(), also.calls()), (1, 1));
    s.stop().await;
}

#[tokio::test]
async fn pii_never_falls_back_to_a_remote_deployment() {
    let local = Mock::start(|_: &Received| MockReply::Text(500, "local down")).await;
    let remote = Mock::start(echo).await;
    let yaml = config(
        &local.url("/v1"),
        &remote.url("/v1"),
        "",
        "local, remote",
        PII_LOCAL,
    );
    let s = Sluice::start(&yaml).await;
    let r = post(&s, ask("my card 4111 1111 1111 1111")).await;
    assert_eq!(r.status(), 502);
    assert_eq!((local.calls(), remote.calls()), (1, 0));
    // Without PII the remote one is a fine fallback.
    let r = post(&s, ask("nothing personal")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-sluice-deployment"], "remote");
    s.stop().await;
}

const REDACT: &str = "  - name: mask-contacts
    when: {pii: [email, phone]}
    require: {hosting: local}
    pii_action: redact
";

#[tokio::test]
async fn redaction_round_trip_non_stream() {
    let remote = Mock::start(echo).await;
    let local = Mock::start(echo).await;
    let yaml = config(
        &local.url("/v1"),
        &remote.url("/v1"),
        "",
        "remote, local",
        REDACT,
    );
    let s = Sluice::start(&yaml).await;
    let text = "Tell ana@example.com and +34 612 345 678, again ana@example.com";
    let r = post(&s, ask(text)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-sluice-deployment"], "remote");
    assert_eq!(
        remote.last().body["messages"][0]["content"],
        "Tell [EMAIL_1] and [PHONE_1], again [EMAIL_1]"
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        format!("echo: {text}")
    );
    assert_eq!(local.calls(), 0);
    s.stop().await;
}

#[tokio::test]
async fn redaction_round_trip_stream_with_split_placeholders() {
    let remote = Mock::start(|r: &Received| {
        let text = r.body["messages"][0]["content"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(text, "write to [EMAIL_1]");
        let chunk = |c: &str, fin: Value| {
            sse(
                &json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m",
                "choices":[{"index":0,"delta":{"content":c},"finish_reason":fin}]}),
            )
        };
        MockReply::Sse(vec![
            chunk("Sent to [EM", Value::Null),
            chunk("AIL_", Value::Null),
            chunk("1] and [", Value::Null),
            chunk("EMAIL_1]", json!("stop")),
            done(),
        ])
    })
    .await;
    let local = Mock::start(echo).await;
    let yaml = config(&local.url("/v1"), &remote.url("/v1"), "", "remote", REDACT);
    let s = Sluice::start(&yaml).await;
    let mut body = ask("write to ana@example.com");
    body["stream"] = json!(true);
    let r = post(&s, body).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let mut content = String::new();
    for ev in data_events(&text) {
        if ev == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(&ev).unwrap();
        if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
            content.push_str(c);
        }
    }
    assert_eq!(content, "Sent to ana@example.com and ana@example.com");
    assert!(!text.contains("[EMAIL_1]"));
    s.stop().await;
}

#[tokio::test]
async fn explain_and_a_real_request_agree() {
    let local = Mock::start(echo).await;
    let remote = Mock::start(echo).await;
    let open = Mock::start(echo).await;
    let policies = format!(
        "{PII_LOCAL}  - name: repro\n    when: {{header: {{x-sluice-mode: reproducible}}}}\n    require: {{min_openness: open-weight}}\n    sampling: {{deterministic: true, seed: 42}}\n  - name: cheap\n    prefer: lowest_cost\n"
    );
    let yaml = three(&local, &remote, &open, "remote, open, local", &policies);
    let cfg = sluice::config::parse("t.yaml", &yaml).unwrap();
    let gw = sluice::gateway::Gateway::new(cfg).unwrap();
    let cases: [(&str, Option<(&str, &str)>); 3] = [
        ("plain question", None),
        ("mail ana@example.com", None),
        ("plain question", Some(("x-sluice-mode", "reproducible"))),
    ];
    let s = Sluice::start(&yaml).await;
    for (text, header) in cases {
        let mut headers = axum::http::HeaderMap::new();
        let mut req = client()
            .post(s.url("/v1/chat/completions"))
            .json(&ask(text));
        if let Some((k, v)) = header {
            headers.insert(k, v.parse().unwrap());
            req = req.header(k, v);
        }
        let body = sluice::gateway::explain::request_for("default", Some(text), None).unwrap();
        let x = sluice::gateway::explain::explain(&gw, &headers, &body);
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["x-sluice-deployment"],
            x.order[0].as_str(),
            "{text}"
        );
        assert_eq!(
            r.headers()["x-sluice-policies"].to_str().unwrap(),
            x.policies.join(","),
            "{text}"
        );
    }
    s.stop().await;

    // The binary prints the same decision.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluice.yaml");
    std::fs::write(&path, &yaml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "explain",
            "--config",
            path.to_str().unwrap(),
            "--model",
            "default",
        ])
        .args(["--message", "mail ana@example.com", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["order"], json!(["local"]));
    assert_eq!(v["policies"], json!(["personal-data-stays-local", "cheap"]));
    assert_eq!(
        v["pii"],
        json!([{"kind": "email", "location": "messages[0].content", "start": 5, "end": 20}])
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ana@example.com"));
    let remote_c = v["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["attrs"]["name"] == "remote")
        .unwrap();
    assert_eq!(
        remote_c["excluded"],
        json!(["hosting is remote, local required (policy personal-data-stays-local)"])
    );
    assert_eq!(remote_c["attrs"]["freedoms"]["data_control"], "none");
}

#[tokio::test]
async fn models_list_eligible_deployments_with_tier_and_hosting() {
    let local = Mock::start(echo).await;
    let remote = Mock::start(echo).await;
    let policies = "  - name: open-only\n    when: {model: default}\n    require: {min_openness: available-weights}\n";
    let yaml = config(
        &local.url("/v1"),
        &remote.url("/v1"),
        "",
        "remote, local",
        policies,
    );
    let s = Sluice::start(&yaml).await;
    let v: Value = client()
        .get(s.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let default = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "default")
        .unwrap();
    assert_eq!(
        default["deployments"],
        json!([{"name": "local", "provider": "openai", "hosting": "local", "openness": "available-weights"}])
    );
    assert_eq!(default["object"], "model");
    s.stop().await;
}

#[test]
fn check_reports_tiers_and_a_bad_catalog_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "deployments:\n  - name: box\n    provider: openai\n    base_url: http://127.0.0.1:9/v1\n    model: olmo2:7b\n  - name: remote-b\n    provider: openai\n    base_url: https://api.example.com/v1\n    model: m\n    enabled: false\n  - name: remote-a\n    provider: openai\n    base_url: https://api.example.com/v1\n    model: m\n    enabled: false\n  - name: lan\n    provider: openai\n    base_url: http://192.168.1.20:8000/v1\n    model: m\n  - name: lan-box\n    provider: openai\n    base_url: http://10.0.0.7:8000/v1\n    model: m\n    hosting: local\npolicies:\n  - name: p\n    prefer: most_open\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["check", "--config", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("  box (openai) http://127.0.0.1:9/v1 model=olmo2:7b hosting=local (inferred) openness=reproducible\n"),
        "{text}"
    );
    // A private-network address is remote unless declared, and `check` says so.
    assert!(
        text.contains("  lan (openai) http://192.168.1.20:8000/v1 model=m hosting=remote (inferred) openness=api\n"),
        "{text}"
    );
    assert!(
        text.contains("  lan-box (openai) http://10.0.0.7:8000/v1 model=m hosting=local (declared) openness=api\n"),
        "{text}"
    );
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "warning: deployment `lan`: http://192.168.1.20:8000/v1 is a private-network address, inferred hosting: remote; declare `hosting: local` if that server runs the model itself (not a proxy to a hosted API)\n"
    );
    assert!(text.contains("policies: p\n"), "{text}");
    assert!(
        text.contains("\ndisabled (enabled: false): remote-a, remote-b\nmodels:\n"),
        "{text}"
    );
    assert!(!text.contains("  remote-a ("), "{text}");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        format!("catalog: {}\n", dir.path().join("missing.yaml").display()),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["check", "--config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.yaml: cannot read"));
}

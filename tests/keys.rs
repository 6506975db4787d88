//! Access control: master key, config-declared virtual keys, model permissions, rate limits.

mod support;

use serde_json::{Value, json};
use support::*;

const MASTER: &str = "sk-master-test";

fn config(mock: &Mock, extra_keys: &str) -> String {
    format!(
        "server:\n  master_key: {MASTER}\n{}keys:\n  - name: app\n    key: sk-app-1\n    models: [default]\n    rpm: 3\n  - name: old\n    key: sk-old-1\n    disabled: true\n  - name: gone\n    key: sk-gone-1\n    expires: 2020-01-01\n  - name: ops\n    sha256: {}\n    admin: true\n{extra_keys}",
        one_deployment(&mock.url("/v1")),
        hex::encode(sluice::access::auth::hash_key("sk-ops-1")),
    )
}

fn chat() -> Value {
    json!({"model":"default","messages":[{"role":"user","content":"hi"}]})
}

async fn call(s: &Sluice, key: Option<&str>, body: &Value) -> reqwest::Response {
    let mut r = client().post(s.url("/v1/chat/completions")).json(body);
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    r.send().await.unwrap()
}

async fn error_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json::<Value>().await.unwrap()["error"].clone())
}

fn completion() -> Value {
    json!({"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}})
}

#[tokio::test]
async fn every_auth_status() {
    let mock = Mock::start(|_| MockReply::Json(200, completion())).await;
    let s = Sluice::start(&config(&mock, "")).await;

    let (st, e) = error_of(call(&s, None, &chat()).await).await;
    assert_eq!((st, e["code"].as_str()), (401, Some("invalid_api_key")));
    assert_eq!(e["type"], "authentication_error");
    let (st, e) = error_of(call(&s, Some("sk-wrong"), &chat()).await).await;
    assert_eq!(
        (st, e["message"].as_str()),
        (401, Some("Incorrect API key provided."))
    );
    let (st, e) = error_of(call(&s, Some("sk-old-1"), &chat()).await).await;
    assert_eq!(
        (st, e["message"].as_str()),
        (401, Some("This API key has been revoked."))
    );
    let (st, e) = error_of(call(&s, Some("sk-gone-1"), &chat()).await).await;
    assert_eq!(
        (st, e["message"].as_str()),
        (401, Some("This API key has expired."))
    );
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .header("authorization", "Basic x")
        .json(&chat())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    assert_eq!(call(&s, Some(MASTER), &chat()).await.status(), 200);
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .header("x-api-key", "sk-app-1")
        .json(&chat())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-ratelimit-limit-requests"], "3");
    assert_eq!(r.headers()["x-ratelimit-remaining-requests"], "2");

    let other = json!({"model":"up","messages":[{"role":"user","content":"hi"}]});
    let (st, e) = error_of(call(&s, Some("sk-app-1"), &other).await).await;
    assert_eq!(
        (st, e["code"].as_str(), e["param"].as_str()),
        (403, Some("model_not_allowed"), Some("model"))
    );

    // Models list and metrics need a key; metrics needs an admin key.
    assert_eq!(
        client()
            .get(s.url("/v1/models"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        client()
            .get(s.url("/v1/models"))
            .bearer_auth("sk-app-1")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client()
            .get(s.url("/metrics"))
            .bearer_auth("sk-app-1")
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        client()
            .get(s.url("/metrics"))
            .bearer_auth("sk-ops-1")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client()
            .get(s.url("/metrics"))
            .bearer_auth(MASTER)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // No key, secret or hash appears in any answer.
    let (_, e) = error_of(call(&s, Some("sk-wrong"), &chat()).await).await;
    assert!(!e.to_string().contains("sk-wrong"));
    s.stop().await;
}

/// N parallel requests against rpm M: exactly M pass (GCRA burst = M), the rest get 429
/// with Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_requests_over_rpm_get_exactly_m_through() {
    let mock = Mock::start(|_| MockReply::Json(200, completion())).await;
    let s = Sluice::start(&config(&mock, "")).await;
    let url = s.url("/v1/chat/completions");
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                client()
                    .post(url)
                    .bearer_auth("sk-app-1")
                    .json(&chat())
                    .send()
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status().as_u16() {
            200 => ok += 1,
            429 => {
                limited += 1;
                let retry: u64 = r.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=20).contains(&retry));
                assert_eq!(r.headers()["x-ratelimit-remaining-requests"], "0");
                let e: Value = r.json().await.unwrap();
                assert_eq!(e["error"]["code"], "rate_limit_exceeded");
                assert_eq!(e["error"]["type"], "rate_limit_error");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, limited), (3, 7));
    assert_eq!(mock.calls(), 3);
    s.stop().await;
}

#[test]
fn non_loopback_without_master_key_is_refused() {
    let yaml = "server:\n  listen: 0.0.0.0:4000\n";
    let e = sluice::config::parse("f.yaml", yaml).unwrap_err();
    assert_eq!(e.path.as_deref(), Some("server.listen"));
    assert!(e.message.contains("set server.master_key"), "{e}");
    assert!(
        sluice::config::parse(
            "f.yaml",
            "server:\n  listen: 0.0.0.0:4000\n  allow_unauthenticated: true\n"
        )
        .is_ok()
    );
    assert!(
        sluice::config::parse(
            "f.yaml",
            "server:\n  listen: 0.0.0.0:4000\n  master_key: k\n"
        )
        .is_ok()
    );
}

/// A key's bound policy applies even when the request does not match its `when`.
#[tokio::test]
async fn a_keys_bound_policy_always_applies() {
    let far = Mock::start(|_| MockReply::Json(200, completion())).await;
    let near = Mock::start(|_| MockReply::Json(200, completion())).await;
    let yaml = format!(
        "server:\n  master_key: {MASTER}\nkeys:\n  - name: hr\n    key: sk-hr-1\n    policies: [stay-local]\npolicies:\n  - name: stay-local\n    when: {{header: {{x-never-sent: \"yes\"}}}}\n    require: {{hosting: local}}\ndeployments:\n  - name: far\n    provider: openai\n    base_url: {}\n    model: m\n    hosting: remote\n  - name: near\n    provider: openai\n    base_url: {}\n    model: m\n    hosting: local\nmodels:\n  - name: default\n    deployments: [far, near]\n",
        far.url("/v1"),
        near.url("/v1")
    );
    let s = Sluice::start(&yaml).await;
    let r = call(&s, Some(MASTER), &chat()).await;
    assert_eq!(r.headers()["x-sluice-deployment"], "far");
    let r = call(&s, Some("sk-hr-1"), &chat()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-sluice-deployment"], "near");
    assert_eq!(r.headers()["x-sluice-policies"], "stay-local");
    assert_eq!(far.calls(), 1);
    s.stop().await;
}

/// `limits.deployments`: a deployment over its rpm is skipped for the next candidate; with
/// none left, the client gets that limit's 429 and `Retry-After`.
/// A deployment skipped because it is at its `max_concurrency` does not spend a cell of its
/// rate limit: with `rpm: 2`, one held stream and one request routed around it, the next
/// request still fits in `a`'s limit.
#[tokio::test]
async fn a_deployment_skipped_for_concurrency_keeps_its_rate_limit_cells() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let gone = std::sync::Arc::new(std::sync::Mutex::new(Some(tx)));
    let first = sse(
        &json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m",
        "choices":[{"index":0,"delta":{"role":"assistant","content":"hi"},"finish_reason":null}]}),
    );
    let a = Mock::start(move |r| {
        if r.body["stream"] == json!(true) {
            MockReply::SseThenHang(vec![first.clone()], gone.clone())
        } else {
            MockReply::Json(200, completion())
        }
    })
    .await;
    let b = Mock::start(|_| MockReply::Json(200, completion())).await;
    let yaml = format!(
        "limits:\n  deployments:\n    a: {{rpm: 2}}\ndeployments:\n  - name: a\n    provider: openai\n    base_url: {}\n    model: m\n    max_concurrency: 1\n  - name: b\n    provider: openai\n    base_url: {}\n    model: m\nmodels:\n  - name: default\n    deployments: [a, b]\n",
        a.url("/v1"),
        b.url("/v1")
    );
    let s = Sluice::start(&yaml).await;
    let mut held = call(
        &s,
        None,
        &json!({"model":"default","stream":true,"messages":[{"role":"user","content":"hi"}]}),
    )
    .await;
    assert_eq!(held.headers()["x-sluice-deployment"], "a");
    assert!(held.chunk().await.unwrap().is_some());
    let around = call(&s, None, &chat()).await;
    assert_eq!(around.headers()["x-sluice-deployment"], "b");
    drop(held);
    // The upstream stream is dropped after its concurrency slot is given back.
    tokio::time::timeout(std::time::Duration::from_secs(10), rx)
        .await
        .expect("the held stream was not cancelled")
        .unwrap();
    let third = call(&s, None, &chat()).await;
    assert_eq!(third.status(), 200);
    assert_eq!(third.headers()["x-sluice-deployment"], "a");
    assert_eq!((a.calls(), b.calls()), (2, 1));
    s.stop().await;
}

#[tokio::test]
async fn deployment_rate_limits_route_around_then_429() {
    let a = Mock::start(|_| MockReply::Json(200, completion())).await;
    let b = Mock::start(|_| MockReply::Json(200, completion())).await;
    let yaml = format!(
        "limits:\n  deployments:\n    a: {{rpm: 1}}\ndeployments:\n  - name: a\n    provider: openai\n    base_url: {}\n    model: m\n  - name: b\n    provider: openai\n    base_url: {}\n    model: m\nmodels:\n  - name: default\n    deployments: [a, b]\n",
        a.url("/v1"),
        b.url("/v1")
    );
    let s = Sluice::start(&yaml).await;
    let first = call(&s, None, &chat()).await;
    assert_eq!(first.headers()["x-sluice-deployment"], "a");
    let second = call(&s, None, &chat()).await;
    assert_eq!(second.headers()["x-sluice-deployment"], "b");
    let only_a = json!({"model":"a","messages":[{"role":"user","content":"hi"}]});
    let r = call(&s, None, &only_a).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "rate_limit_exceeded"
    );
    assert_eq!((a.calls(), b.calls()), (1, 1));
    s.stop().await;
}

fn config_error(keys: &str) -> (Option<String>, String) {
    let yaml = format!(
        "{}policies:\n  - name: eu-only\n    require:\n      hosting: local\nkeys:\n  - name: k\n    key: sk-k\n{keys}",
        one_deployment("http://127.0.0.1:9/v1")
    );
    let e = sluice::config::parse("t.yaml", &yaml).unwrap_err();
    (e.path, e.message)
}

#[test]
fn config_keys_are_validated_naming_the_field() {
    let (path, msg) = config_error("    expires: 2020/03/01\n");
    assert_eq!(path.as_deref(), Some("keys[0].expires"));
    assert!(msg.contains("`2020/03/01` is not a timestamp"), "{msg}");
    let (path, msg) = config_error("    log: metadta\n");
    assert_eq!(path.as_deref(), Some("keys[0].log"));
    assert_eq!(msg, "`metadta` is not one of full, redacted, metadata, off");
    let (path, msg) = config_error("    policies: [eu-onyl]\n");
    assert_eq!(path.as_deref(), Some("keys[0].policies[0]"));
    assert_eq!(msg, "no policy is named `eu-onyl`");
    let (path, _) = config_error("    models: [gpt-*]\n");
    assert_eq!(path.as_deref(), Some("keys[0].models[0]"));
}

#[tokio::test]
async fn admin_api_validates_specs_and_keys_create_at_most_their_rights() {
    let mock = Mock::start(|_| MockReply::Json(200, completion())).await;
    let dir = tempfile::tempdir().unwrap();
    let lead = "  - name: lead\n    key: sk-lead-1\n    admin: true\n    models: [default]\n    rpm: 10\n    budget: {usd: 5, period: day}\n";
    let yaml = format!(
        "{}log:\n  path: {}\n",
        config(&mock, lead),
        dir.path().join("k.db").display()
    );
    let s = Sluice::start_logged(&yaml).await;
    for (spec, param) in [
        (json!({"name":"a","expires":"2020/03/01"}), "expires"),
        (json!({"name":"a","log":"metadta"}), "log"),
        (json!({"name":"a","policies":["nope"]}), "policies[0]"),
        (json!({"name":"a","models":["nope"]}), "models[0]"),
    ] {
        let (status, v) = create_key(&s, MASTER, spec).await;
        assert_eq!(status, 400, "{param}");
        assert_eq!(v["error"]["param"], param);
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
    let (status, _) = create_key(&s, MASTER, json!({"name":"ok","expires":"2099-01-01"})).await;
    assert_eq!(status, 201);
    // The lead key (admin, default only, 10 rpm, 5 USD a day) cannot mint more than that.
    for (spec, param) in [
        (json!({"name":"b","models":["default"],"rpm":10}), "budget"),
        (
            json!({"name":"b","rpm":5,"budget":{"usd":1,"period":"day"}}),
            "models",
        ),
        (
            json!({"name":"b","models":["default"],"budget":{"usd":1,"period":"day"}}),
            "rpm",
        ),
        (
            json!({"name":"b","models":["default"],"rpm":11,"budget":{"usd":1,"period":"day"}}),
            "rpm",
        ),
        (
            json!({"name":"b","models":["default"],"rpm":5,"budget":{"usd":6,"period":"day"}}),
            "budget",
        ),
    ] {
        let (status, v) = create_key(&s, "sk-lead-1", spec).await;
        assert_eq!(status, 403, "{param}: {v}");
        assert_eq!(v["error"]["param"], param);
    }
    let (status, v) = create_key(
        &s,
        "sk-lead-1",
        json!({"name":"b","models":["default"],"rpm":5,"budget":{"usd":1,"period":"day"},"admin":true}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    s.stop().await;
}

#[test]
fn cli_refuses_bad_specs_with_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    for (args, flag) in [
        (
            ["--expires", "2020/03/01"],
            "--expires: `2020/03/01` is not a timestamp",
        ),
        (["--log", "metadta"], "--log: `metadta` is not one of"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["keys", "create", "--name", "x", "--db"])
            .arg(&db)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{err}");
    }
}

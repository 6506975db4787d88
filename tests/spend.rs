//! Token limits count the answer's tokens; budgets reserve before the call and settle after.

mod support;

use serde_json::{Value, json};
use support::*;

const MASTER: &str = "sk-master-spend";

fn completion(completion_tokens: u64) -> Value {
    json!({"id":"x","object":"chat.completion","created":1,"model":"m",
           "choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],
           "usage":{"prompt_tokens":10,"completion_tokens":completion_tokens,"total_tokens":10 + completion_tokens}})
}

fn stream(completion_tokens: u64) -> MockReply {
    let c = |delta: Value, fin: Value| json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":delta,"finish_reason":fin}]});
    MockReply::Sse(vec![
        sse(&c(json!({"role":"assistant","content":"ok"}), Value::Null)),
        sse(&c(json!({}), json!("stop"))),
        sse(
            &json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":completion_tokens,"total_tokens":10 + completion_tokens}}),
        ),
        done(),
    ])
}

async fn chat(s: &Sluice, key: &str, stream: bool) -> reqwest::Response {
    client()
        .post(s.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(
            &json!({"model":"default","stream":stream,"messages":[{"role":"user","content":"hi"}]}),
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_tpm_key_is_charged_with_the_answers_tokens() {
    let mock = Mock::start(|r| {
        if r.body["stream"] == true {
            stream(50_000)
        } else {
            MockReply::Json(200, completion(50_000))
        }
    })
    .await;
    let yaml = format!(
        "server:\n  master_key: {MASTER}\n{}keys:\n  - name: whole\n    key: sk-whole\n    tpm: 1000\n  - name: streamed\n    key: sk-streamed\n    tpm: 1000\n",
        one_deployment(&mock.url("/v1"))
    );
    let s = Sluice::start(&yaml).await;
    for (key, stream) in [("sk-whole", false), ("sk-streamed", true)] {
        let r = chat(&s, key, stream).await;
        assert_eq!(r.status(), 200, "{key}");
        r.text().await.unwrap();
        let r = chat(&s, key, stream).await;
        assert_eq!(r.status(), 429, "{key}");
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        // 50,010 tokens used of 1,000 per minute: about 49 minutes of debt.
        assert!((2900..=3001).contains(&retry), "{key}: {retry}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "rate_limit_exceeded");
    }
    assert_eq!(mock.calls(), 2);
    s.stop().await;
}

fn priced(mock: &Mock, unpriced: &Mock, db: &std::path::Path) -> String {
    format!(
        "server:\n  master_key: {MASTER}\nlog:\n  path: {}\ndeployments:\n  - name: paid\n    provider: openai\n    base_url: {}\n    model: m\n    hosting: remote\n    price: {{input: 1000, output: 1000}}\n  - name: mystery\n    provider: openai\n    base_url: {}\n    model: m\n    hosting: remote\nmodels:\n  - name: default\n    deployments: [paid]\n  - name: other\n    deployments: [mystery]\nkeys:\n  - name: capped\n    key: sk-capped\n    budget: {{usd: 0.5, period: day}}\n",
        db.display(),
        mock.url("/v1"),
        unpriced.url("/v1"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_requests_cannot_overrun_a_budget() {
    // Each answer costs (1 + 50) tokens × 1000 USD/1M = 0.051 USD, the same as the
    // reservation (1 prompt token estimated + max_tokens 50).
    let mock = Mock::start(|_| {
        MockReply::Json(
            200,
            json!({"id":"x","object":"chat.completion","created":1,"model":"m",
                   "choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],
                   "usage":{"prompt_tokens":1,"completion_tokens":50,"total_tokens":51}}),
        )
    })
    .await;
    let unpriced = Mock::start(|_| MockReply::Json(200, completion(1))).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let s = Sluice::start_logged(&priced(&mock, &unpriced, &db)).await;
    let body =
        json!({"model":"default","max_tokens":50,"messages":[{"role":"user","content":"hi"}]});
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (url, body) = (s.url("/v1/chat/completions"), body.clone());
            tokio::spawn(async move {
                let r = client()
                    .post(url)
                    .bearer_auth("sk-capped")
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let v: Value = r.json().await.unwrap();
                (status, v["error"]["code"].as_str().map(str::to_string))
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            (200, _) => ok += 1,
            (429, Some(code)) => assert_eq!(code, "budget_exceeded"),
            other => panic!("{other:?}"),
        }
    }
    assert!((1..=9).contains(&ok), "{ok} answered");
    // A budgeted key cannot reach a remote deployment with no price.
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .bearer_auth("sk-capped")
        .json(&json!({"model":"other","messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "budget_unpriced");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`mystery`")
    );
    assert_eq!(unpriced.calls(), 0);
    s.stop().await;
    let spent: f64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT SUM(cost_usd) FROM requests WHERE api_key_id = 'cfg:capped'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(spent <= 0.5 + 0.051 + 1e-9, "spent {spent}");
    assert_eq!(mock.calls(), ok);
}

/// A request without an output cap reserves the most the deployment may give
/// (`max_output_tokens`), not 4096 tokens: found by an attacker test, 30 parallel uncapped
/// streams each reserved 4096 tokens, were each billed 8000 and spent $96 of a $50 budget. Here
/// one uncapped request would cost $8 (8000 tokens at $1,000 per million) against a $5
/// budget: refused before anything is sent (admitted before, then billed past the budget); a
/// capped one that fits is answered.
#[tokio::test]
async fn an_uncapped_request_reserves_the_deployments_output_limit() {
    let mock = Mock::start(|_| MockReply::Json(200, completion(8000))).await;
    let yaml = format!(
        "server:\n  master_key: {MASTER}\ndeployments:\n  - name: paid\n    provider: openai\n    base_url: {}\n    model: m\n    hosting: remote\n    max_output_tokens: 8000\n    price: {{input: 1000, output: 1000}}\nmodels:\n  - name: default\n    deployments: [paid]\nkeys:\n  - name: five\n    key: sk-five\n    budget: {{usd: 5, period: day}}\n",
        mock.url("/v1")
    );
    let s = Sluice::start(&yaml).await;
    let r = chat(&s, "sk-five", false).await;
    assert_eq!(r.status(), 429);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "budget_exceeded", "{e}");
    assert_eq!(mock.calls(), 0);
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .bearer_auth("sk-five")
        .json(&json!({"model":"default","max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(mock.calls(), 1);
    s.stop().await;
}

async fn metrics_text(s: &Sluice) -> String {
    support::get_text(&s.url("/metrics"), Some(MASTER)).await
}

/// Polls `/metrics` until it contains `needle` (at most 2,000 times).
async fn until_metric(s: &Sluice, needle: &str) {
    for _ in 0..2000 {
        if metrics_text(s).await.contains(needle) {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("/metrics never showed {needle}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_still_leaves_a_row_and_its_spend() {
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    let g = gate.clone();
    let mock = Mock::start(move |_| MockReply::JsonAfter(g.clone(), 200, completion(100))).await;
    let unpriced = Mock::start(|_| MockReply::Json(200, completion(1))).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let s = Sluice::start_logged(&priced(&mock, &unpriced, &db)).await;
    let body =
        json!({"model":"default","max_tokens":100,"messages":[{"role":"user","content":"hi"}]});
    post_then_leave(s.url("/v1/chat/completions"), "sk-capped", body, &mock, 1).await;
    until_metric(&s, "\nsluice_client_disconnects_total 1\n").await;
    gate.notify_one();
    until_metric(
        &s,
        "\nsluice_requests_total{model=\"default\",deployment=\"paid\",status=\"499\"} 1\n",
    )
    .await;
    s.stop().await;
    let (status, cost, error): (i64, f64, String) = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT status, cost_usd, error_type FROM requests WHERE api_key_id = 'cfg:capped'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    // (10 prompt + 100 completion tokens) × 1000 USD/1M.
    assert_eq!((status, error.as_str()), (499, "client_closed"));
    assert!((cost - 0.11).abs() < 1e-9, "{cost}");
}

/// Config with one priced remote deployment and two budgeted keys: `quiet` (`log: off`, no
/// row) and `loud` (logged in full), each with 0.12 USD a day.
fn budgeted(mock: &Mock, db: &std::path::Path) -> String {
    format!(
        "server:\n  master_key: {MASTER}\nlog:\n  path: {}\ndeployments:\n  - name: paid\n    provider: openai\n    base_url: {}\n    model: m\n    hosting: remote\n    price: {{input: 1000, output: 1000}}\nmodels:\n  - name: default\n    deployments: [paid]\nkeys:\n  - name: quiet\n    key: sk-quiet\n    log: \"off\"\n    budget: {{usd: 0.12, period: day}}\n  - name: loud\n    key: sk-loud\n    budget: {{usd: 0.12, period: day}}\n",
        db.display(),
        mock.url("/v1"),
    )
}

/// `key`'s request with `max_tokens: 50`: its status, and its error's `(type, code)`.
async fn ask(s: &Sluice, key: &str) -> (u16, Value) {
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(
            &json!({"model":"default","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}),
        )
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The spend table's `(all_usd, remote_usd)` of a key, summed over days.
fn stored_spend(db: &std::path::Path, key: &str) -> (f64, f64) {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT SUM(all_usd), SUM(remote_usd) FROM spend WHERE api_key_id = ?1",
            [key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

fn rows_of(db: &std::path::Path, key: &str) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM requests WHERE api_key_id = ?1",
            [key],
            |r| r.get(0),
        )
        .unwrap()
}

fn assert_over_budget(key: &str, (status, e): (u16, Value)) {
    assert_eq!(status, 429, "{key}: {e}");
    assert_eq!(e["error"]["type"], "rate_limit_error", "{key}: {e}");
    assert_eq!(e["error"]["code"], "budget_exceeded", "{key}: {e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Budget exceeded: 0.1020 of 0.12 USD spent"),
        "{key}: {e}"
    );
}

/// Spend is kept apart from the rows: a `log: off` key (no row) and a logged key whose rows
/// are then purged (retention) both keep their spend across a restart on the same database,
/// so their budgets stay spent.
#[tokio::test]
async fn spend_survives_a_restart_without_rows() {
    // Each answer costs (1 + 50) tokens × 1000 USD/1M = 0.051 USD; the reservation is the
    // same. Two fit in 0.12 USD, the third does not (0.102 + 0.051 > 0.12).
    let mock = Mock::start(|_| {
        MockReply::Json(
            200,
            json!({"id":"x","object":"chat.completion","created":1,"model":"m",
                   "choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],
                   "usage":{"prompt_tokens":1,"completion_tokens":50,"total_tokens":51}}),
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let yaml = budgeted(&mock, &db);
    let one = 51.0 * 1000.0 / 1e6;
    let s = Sluice::start_logged(&yaml).await;
    for key in ["sk-quiet", "sk-loud"] {
        assert_eq!(ask(&s, key).await.0, 200, "{key}");
        assert_eq!(ask(&s, key).await.0, 200, "{key}");
        assert_over_budget(key, ask(&s, key).await);
    }
    s.stop().await;
    assert_eq!(mock.calls(), 4);
    assert_eq!(rows_of(&db, "cfg:quiet"), 0, "log: off leaves no row");
    assert_eq!(rows_of(&db, "cfg:loud"), 3);
    for key in ["cfg:quiet", "cfg:loud"] {
        let (all, remote) = stored_spend(&db, key);
        assert!((all - 2.0 * one).abs() < 1e-12, "{key}: {all}");
        assert_eq!(all, remote, "{key}");
    }
    // Retention deletes every row (as `log.retention_days` does from the old end).
    let mut conn = sluice::store::open(&db).unwrap();
    let purged = sluice::store::chain::purge_before(&mut conn, i64::MAX).unwrap();
    assert_eq!(purged.rows, 3);
    drop(conn);
    assert_eq!(rows_of(&db, "cfg:loud"), 0);

    // The same database after a restart: both budgets are still spent.
    let s = Sluice::start_logged(&yaml).await;
    for key in ["sk-quiet", "sk-loud"] {
        assert_over_budget(key, ask(&s, key).await);
    }
    s.stop().await;
    assert_eq!(mock.calls(), 4);
    for key in ["cfg:quiet", "cfg:loud"] {
        assert!(
            (stored_spend(&db, key).0 - 2.0 * one).abs() < 1e-12,
            "{key}"
        );
    }
}

/// A priced deployment (1000 USD per 1M tokens in and out) and a key with a 3.5 USD budget.
fn three_and_a_half(mock: &Mock) -> String {
    format!(
        "server:\n  master_key: {MASTER}\ndeployments:\n  - name: paid\n    provider: openai\n    base_url: {}\n    model: m\n    hosting: remote\n    price: {{input: 1000, output: 1000}}\nmodels:\n  - name: default\n    deployments: [paid]\nkeys:\n  - name: b\n    key: sk-b\n    budget: {{usd: 3.5, period: day}}\n",
        mock.url("/v1"),
    )
}

async fn post_as(s: &Sluice, key: &str, path: &str, body: Value) -> (u16, Value) {
    let r = client()
        .post(s.url(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn the_reservation_counts_every_completion_n_and_best_of_ask_for() {
    let mock = Mock::start(|r| {
        // Bills what a real backend bills: max_tokens for each completion generated.
        let each = r.body["max_tokens"].as_u64().unwrap_or(0);
        let n = r.body["n"].as_u64().unwrap_or(1);
        let best_of = r.body["best_of"].as_u64().unwrap_or(1);
        let completion_tokens = each * n.max(best_of);
        MockReply::Json(200, completion(completion_tokens))
    })
    .await;
    let s = Sluice::start(&three_and_a_half(&mock)).await;
    let msgs = json!([{"role":"user","content":"hi"}]);
    // n = 20 × 1000 tokens: reserves (1 + 20,000) tokens × 1000 USD/1M, refused up front.
    let (status, e) = post_as(
        &s,
        "sk-b",
        "/v1/chat/completions",
        json!({"model":"default","messages":msgs,"max_tokens":1000,"n":20}),
    )
    .await;
    assert_eq!(status, 429, "{e}");
    assert_eq!(e["error"]["code"], "budget_exceeded");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("Budget exceeded: 0.0000 of 3.50 USD spent and 0.0000 reserved by requests in flight; this request may cost up to 20.0010 USD."),
        "{msg}"
    );
    // Legacy completions: best_of 10 generates 10 completions though n is 1.
    let (status, e) = post_as(
        &s,
        "sk-b",
        "/v1/completions",
        json!({"model":"default","prompt":"hi","max_tokens":1000,"best_of":10,"n":1}),
    )
    .await;
    assert_eq!(status, 429, "{e}");
    assert_eq!(e["error"]["code"], "budget_exceeded");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("this request may cost up to 10.0010 USD."),
        "{e}"
    );
    assert_eq!(mock.calls(), 0);
    // n = 3 fits (3.001 USD reserved) and is charged what the backend billed.
    let (status, e) = post_as(
        &s,
        "sk-b",
        "/v1/chat/completions",
        json!({"model":"default","messages":msgs,"max_tokens":1000,"n":3}),
    )
    .await;
    assert_eq!(status, 200, "{e}");
    assert_eq!(e["usage"]["completion_tokens"], 3000);
    // 3.01 USD spent (10 prompt + 3000 completion tokens billed): n = 3 × 200 tokens would
    // reserve 0.601 more, over 3.5, though one completion of 200 (0.201) would fit.
    let (status, e) = post_as(
        &s,
        "sk-b",
        "/v1/chat/completions",
        json!({"model":"default","messages":msgs,"max_tokens":200,"n":3}),
    )
    .await;
    assert_eq!(status, 429, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Budget exceeded: 3.0100 of 3.50 USD spent and 0.0000 reserved by requests in flight; this request may cost up to 0.6010 USD."),
        "{e}"
    );
    let (status, e) = post_as(
        &s,
        "sk-b",
        "/v1/chat/completions",
        json!({"model":"default","messages":msgs,"max_tokens":200}),
    )
    .await;
    assert_eq!(status, 200, "{e}");
    assert_eq!(mock.calls(), 2);
    s.stop().await;
}

#[tokio::test]
async fn an_embeddings_request_reserves_no_output_tokens() {
    let mock = Mock::start(|_| {
        MockReply::Json(
            200,
            json!({"object":"list","model":"m","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]}],
                   "usage":{"prompt_tokens":1,"total_tokens":1}}),
        )
    })
    .await;
    let s = Sluice::start(&three_and_a_half(&mock)).await;
    // Reserves 1 prompt token × 1000 USD/1M = 0.001 USD; with 4096 output tokens it would
    // be 4.097, over the 3.5 budget.
    let (status, v) = post_as(
        &s,
        "sk-b",
        "/v1/embeddings",
        json!({"model":"default","input":"hi"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"][0]["embedding"], json!([0.1, 0.2]));
    assert_eq!(mock.calls(), 1);
    s.stop().await;
}

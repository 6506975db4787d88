//! Keys kept in SQLite: admin API and CLI, revocation, usage per key, budgets.

mod support;

use serde_json::{Value, json};
use std::process::Command;
use support::*;

const MASTER: &str = "sk-master-db";

fn completion() -> Value {
    json!({"id":"x","object":"chat.completion","created":1,"model":"m",
           "choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],
           "usage":{"prompt_tokens":1000,"completion_tokens":0,"total_tokens":1000}})
}

fn yaml(db: &std::path::Path, local: &Mock, remote: &Mock) -> String {
    format!(
        "server:\n  master_key: {MASTER}\nlog:\n  path: {}\n  prompts: full\ndeployments:\n  - name: far\n    provider: openai\n    base_url: {}\n    model: m\n    hosting: remote\n    price: {{input: 1000, output: 1000}}\n  - name: near\n    provider: openai\n    base_url: {}\n    model: m\n    hosting: local\n    price: {{input: 0, output: 0}}\nmodels:\n  - name: default\n    deployments: [far, near]\n",
        db.display(),
        remote.url("/v1"),
        local.url("/v1"),
    )
}

async fn chat(s: &Sluice, key: &str) -> reqwest::Response {
    client()
        .post(s.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model":"default","messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap()
}

async fn create_key(s: &Sluice, spec: Value) -> (String, String) {
    let r = client()
        .post(s.url("/admin/keys"))
        .bearer_auth(MASTER)
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    (
        v["id"].as_str().unwrap().to_string(),
        v["secret"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_keys_revocation_usage_and_budgets() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let local = Mock::start(|_| MockReply::Json(200, completion())).await;
    let remote = Mock::start(|_| MockReply::Json(200, completion())).await;
    let s = Sluice::start_logged(&yaml(&db, &local, &remote)).await;

    // Only admins manage keys.
    let r = client().get(s.url("/admin/keys")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let (id, secret) = create_key(&s, json!({"name":"app","models":["default"]})).await;
    assert!(secret.starts_with("sk-sluice-"));
    let r = client()
        .get(s.url("/admin/keys"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let r = chat(&s, &secret).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-sluice-deployment"], "far");

    // Listed without its secret or hash.
    let text = client()
        .get(s.url("/admin/keys"))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["data"][0]["id"], id.as_str());
    assert_eq!(v["data"][0]["name"], "app");
    assert!(!text.contains(&secret) && !text.contains("secret") && !text.contains("sha256"));

    // Over budget: 429 budget_exceeded with the reset time; a remote_only budget goes local.
    // Each request reserves (1 prompt token + 4096 default output tokens) × 1000 USD/1M =
    // 4.097 USD first (see access/budget.rs).
    let (_, tight) = create_key(
        &s,
        json!({"name":"tight","budget":{"usd":5,"period":"month"}}),
    )
    .await;
    assert_eq!(chat(&s, &tight).await.status(), 200); // costs 1000 tokens × 1000 USD/1M = 1 USD
    let r = chat(&s, &tight).await;
    assert_eq!(r.status(), 429);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "budget_exceeded");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("Budget exceeded: 1.0000 of 5.00 USD spent and 0.0000 reserved by requests in flight; this request may cost up to 4.0970 USD. Lower max_tokens (or n, best_of) or wait until "),
        "{msg}"
    );
    let (_, frugal) = create_key(
        &s,
        json!({"name":"frugal","budget":{"usd":5,"period":"day","remote_only":true}}),
    )
    .await;
    assert_eq!(
        chat(&s, &frugal).await.headers()["x-sluice-deployment"],
        "far"
    );
    let r = chat(&s, &frugal).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-sluice-deployment"], "near");

    // Revoked: 401 at once.
    assert_eq!(revoke(&s, &id).await, 200);
    let r = chat(&s, &secret).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["message"],
        "This API key has been revoked."
    );
    s.stop().await;

    // Its requests show in `sluice usage --by key`.
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["usage", "--by", "key", "--json", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&id), "{text}");
}

#[test]
fn cli_create_list_show_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .arg("--db")
            .arg(&db)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, secret, _) = run(&[
        "keys",
        "create",
        "--name",
        "hr",
        "--models",
        "default,gemma-*",
        "--rpm",
        "5",
        "--budget-usd",
        "3",
        "--budget-period",
        "day",
        "--policy",
        "personal-data-stays-local",
    ]);
    assert_eq!(code, Some(0));
    let secret = secret.trim().to_string();
    assert!(secret.starts_with("sk-sluice-"));
    let (code, list, _) = run(&["keys", "list"]);
    assert_eq!(code, Some(0));
    assert!(
        list.contains(
            "  hr  active  models=default,gemma-*  rpm=5  tpm=-  budget=3usd/day  created="
        ),
        "{list}"
    );
    assert!(!list.contains(&secret));
    let id = list.split_whitespace().next().unwrap().to_string();
    let (code, show, _) = run(&["keys", "show", &id]);
    assert_eq!(code, Some(0));
    let v: Value = serde_json::from_str(&show).unwrap();
    assert_eq!(v["policies"], json!(["personal-data-stays-local"]));
    assert_eq!(run(&["keys", "revoke", "hr"]).0, Some(0));
    assert!(run(&["keys", "list"]).1.contains("  hr  revoked  "));
    assert_eq!(run(&["keys", "revoke", "nobody"]).0, Some(1));
    let (code, _, err) = run(&["keys", "create", "--name", "hr"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("already exists"), "{err}");
}

/// A sub-admin config key in team `contractors` (tag `untrusted`), whose policy keeps it on
/// local deployments; model `cloud` has only the remote deployment.
fn contractors(db: &std::path::Path, local: &Mock, remote: &Mock) -> String {
    format!(
        "{}  - name: cloud\n    deployments: [far]\npolicies:\n  - name: contractors-local-only\n    when: {{team: contractors, tags: [untrusted]}}\n    require: {{hosting: local}}\nkeys:\n  - name: k-sub\n    key: sk-sub\n    admin: true\n    team: contractors\n    tags: [untrusted]\n    models: [cloud, default]\n",
        yaml(db, local, remote)
    )
}

async fn chat_cloud(s: &Sluice, key: &str) -> (u16, Value) {
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model":"cloud","messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_made_by_a_sub_admin_keep_its_team_and_tags_and_name_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let local = Mock::start(|_| MockReply::Json(200, completion())).await;
    let remote = Mock::start(|_| MockReply::Json(200, completion())).await;
    let s = Sluice::start_logged(&contractors(&db, &local, &remote)).await;

    let (status, e) = chat_cloud(&s, "sk-sub").await;
    assert_eq!(
        (status, &e["error"]["code"]),
        (403, &json!("no_eligible_deployment"))
    );

    // A child that leaves team and tags out takes the creator's, so the policy still applies.
    let (status, child) =
        support::create_key(&s, "sk-sub", json!({"name":"child-c1","models":["cloud"]})).await;
    assert_eq!(status, 201, "{child}");
    assert_eq!(child["team"], "contractors");
    assert_eq!(child["tags"], json!(["untrusted"]));
    assert_eq!(child["created_by"], "cfg:k-sub");
    let secret = child["secret"].as_str().unwrap();
    let (status, e) = chat_cloud(&s, secret).await;
    assert_eq!(
        (status, &e["error"]["code"]),
        (403, &json!("no_eligible_deployment"))
    );
    assert_eq!(remote.calls(), 0);

    // Another team, or tags without the creator's: 403 naming the field.
    for (spec, param, message) in [
        (
            json!({"name":"child-c2","models":["cloud"],"team":"staff"}),
            "team",
            "`team` must be the creating key's team `contractors`: a key can only create keys with at most its own rights.",
        ),
        (
            json!({"name":"child-c3","models":["cloud"],"tags":["trusted"]}),
            "tags",
            "`tags` must keep the creating key's tags (`untrusted` is missing): a key can only create keys with at most its own rights.",
        ),
    ] {
        let (status, e) = support::create_key(&s, "sk-sub", spec).await;
        assert_eq!(status, 403, "{e}");
        assert_eq!(
            e["error"],
            json!({"message": message, "type": "permission_error", "param": param, "code": null})
        );
    }
    // Nor may a caller claim a creator.
    let (status, e) = support::create_key(
        &s,
        "sk-sub",
        json!({"name":"child-c4","models":["cloud"],"created_by":"master"}),
    )
    .await;
    assert_eq!((status, &e["error"]["param"]), (400, &json!("created_by")));

    // The operator sees who made which key; the master key's own are marked too.
    create_key(&s, json!({"name":"by-master"})).await;
    let r = client()
        .get(s.url("/admin/keys"))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    let made: Vec<(&str, &str)> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["name"].as_str().unwrap(),
                k["created_by"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(made, [("child-c1", "cfg:k-sub"), ("by-master", "master")]);
    s.stop().await;
}

/// A key made by a key lives only as long as its maker: revoking an admin key ends the keys
/// it made and the keys those made, at once, while keys made by the master key stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_key_ends_the_keys_it_made_down_the_chain() {
    let (_dir, s, _, _) = started("").await;
    let (a_id, a) = create_key(&s, json!({"name":"a","admin":true})).await;
    let (_, other) = create_key(&s, json!({"name":"other"})).await;
    let b = made_by(&s, &a, json!({"name":"b","admin":true})).await;
    let c = made_by(&s, &b, json!({"name":"c"})).await;
    for key in [&a, &b, &c, &other] {
        assert_eq!(chat(&s, key).await.status(), 200);
    }

    assert_eq!(revoke(&s, &a_id).await, 200);
    let made_by_revoked = "The key that made this API key has been revoked or has expired.";
    for (key, message) in [
        (&a, "This API key has been revoked."),
        (&b, made_by_revoked),
        (&c, made_by_revoked),
    ] {
        let r = chat(&s, key).await;
        assert_eq!(r.status(), 401);
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            (&v["error"]["message"], &v["error"]["code"]),
            (&json!(message), &json!("invalid_api_key"))
        );
    }
    // Nor may the revoked key's children make keys any more.
    let (status, _) = support::create_key(&s, &b, json!({"name":"d"})).await;
    assert_eq!(status, 401);
    assert_eq!(chat(&s, &other).await.status(), 200);
    s.stop().await;
}

/// A policy on a key (`when.api_key`) holds for the keys it made, and the keys those made:
/// a key cannot mint a way around a policy on itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_on_a_key_holds_for_the_keys_it_made() {
    let policy = "  - name: cloud\n    deployments: [far]\npolicies:\n  - name: lead-stays-local\n    when: {api_key: \"cfg:k-lead\"}\n    require: {hosting: local}\nkeys:\n  - name: k-lead\n    key: sk-lead\n    admin: true\n";
    let (_dir, s, _, remote) = started(policy).await;
    let child = made_by(&s, "sk-lead", json!({"name":"child","admin":true})).await;
    let grandchild = made_by(&s, &child, json!({"name":"grandchild"})).await;
    let (_, by_master) = create_key(&s, json!({"name":"by-master"})).await;
    for key in ["sk-lead", child.as_str(), grandchild.as_str()] {
        let (status, e) = chat_cloud(&s, key).await;
        assert_eq!(
            (status, &e["error"]["code"]),
            (403, &json!("no_eligible_deployment")),
            "{e}"
        );
    }
    assert_eq!(remote.calls(), 0);
    assert_eq!(chat_cloud(&s, &by_master).await.0, 200);
    assert_eq!(remote.calls(), 1);
    s.stop().await;
}

/// The keys a limited key made share its budget and rate limits: two children with a
/// budget as large as their maker's cannot together spend more than it, nor send more
/// requests per minute; their spend counts on the maker's after a restart too (loaded from
/// the log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_made_by_a_key_share_its_budget_and_rate_limits() {
    let (dir, s, _, remote) = started("").await;
    // Each chat costs 1 USD and first reserves 4.097 USD (see the test above).
    let budget = json!({"usd":5,"period":"month"});
    let (parent_id, parent) =
        create_key(&s, json!({"name":"lead","admin":true,"budget":budget})).await;
    let one = made_by(&s, &parent, json!({"name":"one","budget":budget})).await;
    let two = made_by(&s, &parent, json!({"name":"two","budget":budget})).await;
    assert_eq!(chat(&s, &one).await.status(), 200);
    let refused = format!(
        "This API key counts against the budget of `{parent_id}`, a key up its creator chain. Budget exceeded: 1.0000 of 5.00 USD spent and 0.0000 reserved by requests in flight; this request may cost up to 4.0970 USD."
    );
    let over = |r: reqwest::Response| async move {
        assert_eq!(r.status(), 429);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "budget_exceeded");
        v["error"]["message"].as_str().unwrap().to_string()
    };
    let msg = over(chat(&s, &two).await).await;
    assert!(msg.starts_with(&refused), "{msg}");
    assert_eq!(remote.calls(), 1);
    s.stop().await;

    // After a restart the spend is read back from the log, and still counts on the maker.
    let db = dir.path().join("log.db");
    let s = Sluice::start_logged(&yaml(
        &db,
        &Mock::start(|_| MockReply::Json(200, completion())).await,
        &remote,
    ))
    .await;
    let msg = over(chat(&s, &two).await).await;
    assert!(msg.starts_with(&refused), "{msg}");
    assert_eq!(remote.calls(), 1);

    // Rate limits: the maker allows 2 requests per minute; each child as many.
    let (lead_id, lead) = create_key(&s, json!({"name":"rpm-lead","admin":true,"rpm":2})).await;
    let a = made_by(&s, &lead, json!({"name":"a","rpm":2})).await;
    let b = made_by(&s, &lead, json!({"name":"b","rpm":2})).await;
    assert_eq!(chat(&s, &a).await.status(), 200);
    assert_eq!(chat(&s, &b).await.status(), 200);
    let r = chat(&s, &b).await;
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!(
            "Rate limit reached for key:{lead_id}: 2 requests per minute."
        )),
        "{msg}"
    );
    s.stop().await;
}

/// Sluice over [`yaml`] with `extra` appended, its log in the returned folder; also the local
/// and the remote mock.
async fn started(extra: &str) -> (tempfile::TempDir, Sluice, Mock, Mock) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let local = Mock::start(|_| MockReply::Json(200, completion())).await;
    let remote = Mock::start(|_| MockReply::Json(200, completion())).await;
    let s = Sluice::start_logged(&format!("{}{extra}", yaml(&db, &local, &remote))).await;
    (dir, s, local, remote)
}

/// The secret of a key made with `spec` by the key `maker` (which must succeed).
async fn made_by(s: &Sluice, maker: &str, spec: Value) -> String {
    let (status, v) = support::create_key(s, maker, spec).await;
    assert_eq!(status, 201, "{v}");
    v["secret"].as_str().unwrap().to_string()
}

/// Revokes key `id` with the master key; the answer's status.
async fn revoke(s: &Sluice, id: &str) -> u16 {
    client()
        .delete(s.url(&format!("/admin/keys/{id}")))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A delegated admin key revokes only keys it made (directly or through keys it made): found by
/// an attacker test, it revoked a master-made key of another team, and a child admin revoked
/// its own maker. The master key revokes any.
#[tokio::test]
async fn an_admin_key_revokes_only_keys_it_made() {
    let extra = "keys:\n  - name: sub\n    key: sk-sub\n    admin: true\n    team: hr\n";
    let (_dir, s, _local, _remote) = started(extra).await;
    let id_of = |v: &Value| v["id"].as_str().unwrap().to_string();
    let (status, other) =
        support::create_key(&s, MASTER, json!({"name": "finance", "team": "fin"})).await;
    assert_eq!(status, 201, "{other}");
    let (status, child) =
        support::create_key(&s, "sk-sub", json!({"name": "child", "admin": true})).await;
    assert_eq!(status, 201, "{child}");
    let child_secret = child["secret"].as_str().unwrap().to_string();
    let (status, grandchild) =
        support::create_key(&s, &child_secret, json!({"name": "grandchild"})).await;
    assert_eq!(status, 201, "{grandchild}");
    let delete = |key: String, id: String| {
        let s = &s;
        async move {
            let r = client()
                .delete(s.url(&format!("/admin/keys/{id}")))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            (status, v)
        }
    };
    let (status, e) = delete("sk-sub".into(), id_of(&other)).await;
    assert_eq!(
        (status, &e["error"]["code"]),
        (403, &json!("not_your_key")),
        "{e}"
    );
    // A child cannot revoke its maker's other keys, nor the config key that made it.
    let (status, _) = delete(child_secret.clone(), "cfg:sub".into()).await;
    assert_eq!(status, 403);
    // Down the chain: the sub key revokes its grandchild.
    let (status, v) = delete("sk-sub".into(), id_of(&grandchild)).await;
    assert_eq!((status, &v["revoked"]), (200, &json!(true)), "{v}");
    assert_eq!(revoke(&s, &id_of(&other)).await, 200);
    s.stop().await;
}

/// A key limited to `gpt-?` (model names) cannot make a key for `gpt-*`: read as a model name
/// the glob passed the check, and the child then reached `gpt-4o-expensive`, which its maker
/// may not use (found by an attacker test). Its own pattern it may pass on. (That every maker's
/// allow-list holds at request time is `access::validate::tests::a_child_key_gets_no_model_its_maker_may_not_use`:
/// creation no longer makes a key that could show it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_cannot_make_a_key_for_models_it_may_not_use() {
    let extra = "  - name: gpt-4\n    deployments: [near]\n  - name: gpt-4o-expensive\n    deployments: [near]\nkeys:\n  - name: limited\n    key: sk-limited\n    admin: true\n    models: [\"gpt-?\"]\n";
    let (_dir, s, _local, _remote) = started(extra).await;
    let ask = |key: String, model: &'static str| {
        let s = &s;
        async move {
            client()
                .post(s.url("/v1/chat/completions"))
                .bearer_auth(key)
                .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(ask("sk-limited".into(), "gpt-4o-expensive").await, 403);
    let (status, v) = support::create_key(
        &s,
        "sk-limited",
        json!({"name": "child", "models": ["gpt-*"]}),
    )
    .await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["error"]["param"], "models", "{v}");
    let child = made_by(
        &s,
        "sk-limited",
        json!({"name": "child", "models": ["gpt-?"]}),
    )
    .await;
    assert_eq!(ask(child.clone(), "gpt-4").await, 200);
    assert_eq!(ask(child, "gpt-4o-expensive").await, 403);
    s.stop().await;
}

/// A delegated admin key without a `log` mode of its own (the gateway's default, `full`)
/// cannot make a key whose requests leave no row (it could: found by an attacker test, the
/// child's requests on chat, Messages and Responses had no row); a child made without one
/// is logged as its maker is.
#[tokio::test]
async fn a_key_cannot_make_a_key_that_logs_less() {
    let extra = "keys:\n  - name: sub\n    key: sk-sub\n    admin: true\n    team: hr\n";
    let (dir, s, _local, _remote) = started(extra).await;
    for log in ["off", "metadata"] {
        let (status, v) =
            support::create_key(&s, "sk-sub", json!({"name": "quiet", "log": log})).await;
        assert_eq!((status, &v["error"]["param"]), (403, &json!("log")), "{v}");
    }
    let child = made_by(&s, "sk-sub", json!({"name": "child"})).await;
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .bearer_auth(&child)
        .json(&json!({"model": "default", "messages": [{"role": "user", "content": "row please"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
    let db = rusqlite::Connection::open(dir.path().join("log.db")).unwrap();
    let (mode, body): (String, String) = db
        .query_row(
            "SELECT log_mode, request_body FROM requests ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(mode, "full");
    assert!(body.contains("row please"), "{body}");
}

/// A key's token limit and budget count what a backend bills as input: tool definitions,
/// schemas and unknown fields too, not only the conversation. With a 40,000-character tool
/// description (10,000 tokens) and `hi` as the prompt, a `tpm: 1000` key and a $1 budget on a
/// deployment at $1,000 per million input tokens are refused before anything is sent (both
/// let parallel copies through before: found by an attacker test, $201 spent of $1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_definitions_count_against_token_limits_and_budgets() {
    let extra = "  - name: cloud\n    deployments: [far]\n";
    let (_dir, s, local, remote) = started(extra).await;
    let (_, tpm_key) = create_key(&s, json!({"name": "tpm", "tpm": 1000})).await;
    let (_, budget_key) = create_key(
        &s,
        json!({"name": "budget", "budget": {"usd": 1, "period": "day"}}),
    )
    .await;
    let body = json!({"model": "cloud", "max_tokens": 1,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f", "description": "x".repeat(40_000),
            "parameters": {"type": "object", "properties": {}}}}]});
    for (key, code) in [
        (tpm_key, "rate_limit_exceeded"),
        (budget_key, "budget_exceeded"),
    ] {
        let r = client()
            .post(s.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 429);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], code, "{v}");
    }
    assert_eq!((local.calls(), remote.calls()), (0, 0));
    s.stop().await;
}

/// A request refused because its body could not be read is the key's: its row is in the
/// key's log mode (none for `log: off`) and names the key, and the personal data its error
/// quotes is kept out (no policy could be decided for it). Found by an attacker test: such rows
/// had no key, were kept in `full` mode whatever the key said, and quoted a card number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_refused_unread_is_logged_as_the_keys_without_what_it_quotes() {
    let (dir, s, _local, _remote) = started("").await;
    let (_, off) = create_key(&s, json!({"name": "off", "log": "off"})).await;
    let (full_id, full) = create_key(&s, json!({"name": "full"})).await;
    let bad = json!({"model": "default", "messages": [{"role": "user", "content": "hi"}],
        "temperature": "card 4111 1111 1111 1111"});
    for (key, path) in [
        (&off, "/v1/chat/completions"),
        (&full, "/v1/chat/completions"),
        (&full, "/v1/messages"),
        (&full, "/v1/responses"),
    ] {
        let r = client()
            .post(s.url(path))
            .bearer_auth(key)
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{path}");
    }
    s.stop().await;
    let db = rusqlite::Connection::open(dir.path().join("log.db")).unwrap();
    let rows: Vec<(Option<String>, String)> = db
        .prepare("SELECT api_key_id, error_message FROM requests ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    for (key, message) in &rows {
        assert_eq!(key.as_deref(), Some(full_id.as_str()));
        assert!(
            !message.contains("4111") && message.contains("[CARD]"),
            "{message}"
        );
    }
}

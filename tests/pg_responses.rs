//! Responses API state and the deterministic response cache on PostgreSQL, across replicas
//! (issue 19): two `sluice serve` processes on 127.0.0.1 share one database; a response
//! stored through one is read, continued (`previous_response_id`) and deleted through the
//! other, and a deterministic answer logged by one is a cache hit (costing 0) on the other —
//! never for a request that held personal data.
//!
//! The server comes from `tests/support/pg.sh` (tests/run.sh starts it and exports
//! `DATABASE_URL`); each test works in its own database (see tests/support/pg_db.rs).

#[path = "support/freeze_proxy.rs"]
mod freeze_proxy;
#[path = "support/pg_db.rs"]
mod pg_db;
#[path = "support/redis_server.rs"]
mod redis_server;
#[path = "support/replica.rs"]
mod replica;
mod support;

use pg_db::{count, fresh_db, server_url, with_pg};
use replica::Replica;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{Mock, MockReply, Received, client};

/// A chat answer naming how many messages the upstream got ("reply 3"), so a continued
/// conversation is visible in the answer too.
fn counting(r: &Received) -> MockReply {
    let n = r.body["messages"].as_array().map_or(0, Vec::len);
    MockReply::Json(
        200,
        json!({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"m",
               "choices":[{"index":0,"message":{"role":"assistant","content":format!("reply {n}")},"finish_reason":"stop"}],
               "usage":{"prompt_tokens":1000,"completion_tokens":1000,"total_tokens":2000}}),
    )
}

/// Two keys, one priced deployment (deterministic when `deterministic`), a redacting PII
/// policy, the cache, and the log on PostgreSQL at `url`.
fn config(mock: &Mock, url: &str, spill: &std::path::Path, deterministic: bool) -> String {
    let sampling = if deterministic {
        "    sampling: {deterministic: true, seed: 1}\n"
    } else {
        ""
    };
    format!(
        "server:\n  master_key: sk-master-pgr\n  config_poll_ms: 0\n\
keys:\n  - name: alice\n    key: sk-alice\n  - name: bob\n    key: sk-bob\n\
deployments:\n  - name: cloud\n    provider: openai\n    base_url: {}\n    model: m\n    hosting: remote\n    price: {{input: 1.0, output: 2.0}}\n{sampling}\
models:\n  - name: default\n    deployments: [cloud]\n\
policies:\n  - name: redact-pii\n    when: {{pii: any}}\n    pii_action: redact\n\
log:\n  backend: postgres\n  url: {url}\n  prompts: full\n  spill_path: {}\n\
cache: {{enabled: true, ttl_s: 3600}}\n",
        mock.url("/v1"),
        spill.display()
    )
}

async fn post(r: &Replica, key: &str, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(r.url(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn get(r: &Replica, key: &str, path: &str) -> reqwest::Response {
    client()
        .get(r.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

/// Polls `f` (a database query, on a blocking thread) every 50 ms until it is true, failing
/// after `secs`.
async fn until(secs: u64, what: &str, f: impl Fn() -> bool + Send + Sync + 'static) {
    let f = std::sync::Arc::new(f);
    let t = Instant::now();
    loop {
        let g = f.clone();
        if tokio::task::spawn_blocking(move || g()).await.unwrap() {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "{what}: not within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates a response through `r` as alice (`store` left at its default, true), waits
/// (bounded) until its row is in `url`'s `responses` (it is written in the background), and
/// returns it.
async fn stored_response(r: &Replica, url: &str, input: &str) -> Value {
    let created = post(
        r,
        "sk-alice",
        "/v1/responses",
        json!({"model":"default","input":input}),
    )
    .await;
    assert_eq!(created.status(), 200);
    let created: Value = created.json().await.unwrap();
    let (u, id) = (url.to_string(), created["id"].as_str().unwrap().to_string());
    until(10, "response stored", move || {
        count(
            &u,
            &format!("SELECT count(*) FROM responses WHERE id = '{id}'"),
        ) == 1
    })
    .await;
    created
}

fn text(v: &Value) -> &str {
    v["output"][0]["content"][0]["text"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_stored_via_one_replica_is_read_continued_and_deleted_via_another() {
    let Some(base) = server_url() else { return };
    let url = fresh_db(&base, "t_responses");
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(counting).await;
    let r1 = Replica::start(&config(&mock, &url, &dir.path().join("s1"), false), &[]);
    let r2 = Replica::start(&config(&mock, &url, &dir.path().join("s2"), false), &[]);

    let first = stored_response(&r1, &url, "Name a river.").await;
    assert_eq!(text(&first), "reply 1");
    let id1 = first["id"].as_str().unwrap().to_string();
    let got = get(&r2, "sk-alice", &format!("/v1/responses/{id1}")).await;
    assert_eq!(got.status(), 200);
    assert_eq!(got.json::<Value>().await.unwrap(), first);

    // The chain continues on replica 2, then again on replica 1.
    let second: Value = post(
        &r2,
        "sk-alice",
        "/v1/responses",
        json!({"model":"default","input":"And a lake?","previous_response_id":id1}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(text(&second), "reply 3");
    assert_eq!(second["previous_response_id"], id1.as_str());
    assert_eq!(
        mock.last().body["messages"],
        json!([{"role":"user","content":"Name a river."},
               {"role":"assistant","content":"reply 1"},
               {"role":"user","content":"And a lake?"}])
    );
    let id2 = second["id"].as_str().unwrap().to_string();
    let (u, i) = (url.clone(), id2.clone());
    until(10, "response 2 stored", move || {
        count(
            &u,
            &format!("SELECT count(*) FROM responses WHERE id = '{i}'"),
        ) == 1
    })
    .await;
    let third: Value = post(
        &r1,
        "sk-alice",
        "/v1/responses",
        json!({"model":"default","input":"And a sea?","previous_response_id":id2}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(text(&third), "reply 5");
    assert_eq!(
        mock.last().body["messages"],
        json!([{"role":"user","content":"Name a river."},
               {"role":"assistant","content":"reply 1"},
               {"role":"user","content":"And a lake?"},
               {"role":"assistant","content":"reply 3"},
               {"role":"user","content":"And a sea?"}])
    );
    assert_eq!(mock.calls(), 3);

    // Another key sees none of it on any replica, and cannot continue or delete it.
    for r in [&r1, &r2] {
        let g = get(r, "sk-bob", &format!("/v1/responses/{id1}")).await;
        assert_eq!(g.status(), 404);
        assert_eq!(
            g.json::<Value>().await.unwrap()["error"]["message"],
            format!("No response found with id '{id1}'.")
        );
    }
    let r = post(
        &r2,
        "sk-bob",
        "/v1/responses",
        json!({"model":"default","input":"x","previous_response_id":id1}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let d = client()
        .delete(r1.url(&format!("/v1/responses/{id1}")))
        .bearer_auth("sk-bob")
        .send()
        .await
        .unwrap();
    assert_eq!(d.status(), 404);
    assert_eq!(mock.calls(), 3);

    // Deleted via replica 2: gone via replica 1; the later turns stay.
    let d: Value = client()
        .delete(r2.url(&format!("/v1/responses/{id1}")))
        .bearer_auth("sk-alice")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        d,
        json!({"id": id1, "object": "response.deleted", "deleted": true})
    );
    assert_eq!(
        get(&r1, "sk-alice", &format!("/v1/responses/{id1}"))
            .await
            .status(),
        404
    );
    let items: Value = get(&r1, "sk-alice", &format!("/v1/responses/{id2}/input_items"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        items["data"][0]["content"],
        json!([{"type":"input_text","text":"And a lake?"}])
    );
    let owners = with_pg(&url, |c| {
        c.query("SELECT owner FROM responses ORDER BY created_ms, id", &[])
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    });
    assert_eq!(owners, ["cfg:alice", "cfg:alice"]);
}

fn content(v: &Value) -> String {
    v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// The costs of the log's rows, in `seq` order, with their key and PII kinds.
fn rows(url: &str) -> Vec<(String, String, f64)> {
    with_pg(url, |c| {
        c.query(
            "SELECT api_key_id, pii_kinds, cost_usd FROM requests ORDER BY seq",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deterministic_answer_logged_by_one_replica_is_a_free_hit_on_another_but_never_with_pii()
{
    let Some(base) = server_url() else { return };
    let url = fresh_db(&base, "t_cache");
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(|r: &Received| {
        let text = r.body["messages"][0]["content"].as_str().unwrap_or("");
        MockReply::Json(
            200,
            json!({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"m",
                   "choices":[{"index":0,"message":{"role":"assistant","content":format!("echo: {text}")},"finish_reason":"stop"}],
                   "usage":{"prompt_tokens":1000,"completion_tokens":1000,"total_tokens":2000}}),
        )
    })
    .await;
    let r1 = Replica::start(&config(&mock, &url, &dir.path().join("s1"), true), &[]);
    let r2 = Replica::start(&config(&mock, &url, &dir.path().join("s2"), true), &[]);
    let ask = |r: &Replica, key: &'static str, text: &str| {
        let body = json!({"model":"default","messages":[{"role":"user","content":text}]});
        let req = client()
            .post(r.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&body);
        async move { req.send().await.unwrap() }
    };
    let rows_are = |n: i64| {
        let u = url.clone();
        move || count(&u, "SELECT count(*) FROM requests") == n
    };

    // A miss on replica 1, logged; the same request of the same key on replica 2 is a hit:
    // same answer, no upstream call. (Another key's row never answers: tests/cache.rs.)
    let a = ask(&r1, "sk-alice", "Two plus two?").await;
    assert_eq!(a.headers()["x-sluice-cache"], "miss");
    let a: Value = a.json().await.unwrap();
    until(10, "row 1", rows_are(1)).await;
    let b = ask(&r2, "sk-alice", "Two plus two?").await;
    assert_eq!(b.headers()["x-sluice-cache"], "hit");
    let b: Value = b.json().await.unwrap();
    assert_eq!(mock.calls(), 1);
    assert_eq!(content(&b), "echo: Two plus two?");
    assert_eq!(b["choices"], a["choices"]);
    assert_eq!(b["usage"], a["usage"]);
    assert_eq!(b["model"], a["model"]);
    until(10, "row 2", rows_are(2)).await;

    // Personal data: redacted, "reply to anna@…" and "reply to bob@…" have the same effective
    // body, yet neither is served from nor stored into the cache, on either replica.
    let r = ask(&r1, "sk-alice", "Draft a reply to anna@corp.com").await;
    assert!(r.headers().get("x-sluice-cache").is_none());
    assert_eq!(
        content(&r.json().await.unwrap()),
        "echo: Draft a reply to anna@corp.com"
    );
    until(10, "row 3", rows_are(3)).await;
    let r = ask(&r2, "sk-bob", "Draft a reply to bob@corp.com").await;
    assert!(r.headers().get("x-sluice-cache").is_none());
    assert_eq!(
        content(&r.json().await.unwrap()),
        "echo: Draft a reply to bob@corp.com"
    );
    assert_eq!(mock.calls(), 3);
    until(10, "row 4", rows_are(4)).await;
    // The placeholder text itself, without PII: the same effective request as Alice's, but
    // her row is never served, on the other replica either.
    let r = ask(&r2, "sk-bob", "Draft a reply to [EMAIL_1]").await;
    assert_eq!(r.headers()["x-sluice-cache"], "miss");
    assert_eq!(
        content(&r.json().await.unwrap()),
        "echo: Draft a reply to [EMAIL_1]"
    );
    assert_eq!(mock.calls(), 4);
    for got in mock.received.lock().unwrap().iter() {
        let raw = String::from_utf8_lossy(&got.raw);
        assert!(!raw.contains("@corp.com"), "{raw}");
    }
    until(10, "row 5", rows_are(5)).await;
    // Without PII, Bob's row answers Bob on replica 1.
    let r = ask(&r1, "sk-bob", "Draft a reply to [EMAIL_1]").await;
    assert_eq!(r.headers()["x-sluice-cache"], "hit");
    assert_eq!(
        content(&r.json().await.unwrap()),
        "echo: Draft a reply to [EMAIL_1]"
    );
    assert_eq!(mock.calls(), 4);
    until(10, "row 6", rows_are(6)).await;

    // 1000 tokens in at 1 USD/1M + 1000 out at 2 USD/1M; a hit costs nothing.
    assert_eq!(
        rows(&url),
        vec![
            ("cfg:alice".into(), "[]".into(), 0.003),
            ("cfg:alice".into(), "[]".into(), 0.0),
            ("cfg:alice".into(), "[\"email\"]".into(), 0.003),
            ("cfg:bob".into(), "[\"email\"]".into(), 0.003),
            ("cfg:bob".into(), "[]".into(), 0.003),
            ("cfg:bob".into(), "[]".into(), 0.0),
        ]
    );
}

/// A PostgreSQL that stops answering without closing anything (a hung server, a partition)
/// costs the request path a bounded wait, never a hang: a cache lookup becomes a miss (the
/// backend answers), a Responses read a 503 in OpenAI's shape; once it answers again, both
/// work as before. Sluice reaches the database through a proxy that the test freezes.
#[tokio::test(flavor = "multi_thread")]
async fn a_state_store_that_stops_answering_costs_a_bounded_wait() {
    let Some(base) = server_url() else { return };
    let url = fresh_db(&base, "t_frozen");
    let target = url
        .split('@')
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let proxy = freeze_proxy::FreezeProxy::start(target.clone()).await;
    let via_proxy = url.replace(&target, &format!("127.0.0.1:{}", proxy.port));
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(counting).await;
    let r1 = Replica::start(
        &config(&mock, &via_proxy, &dir.path().join("s1"), true),
        &[],
    );
    let ask = |key: &'static str| {
        let req = client()
            .post(r1.url("/v1/chat/completions"))
            .bearer_auth(key)
            .timeout(Duration::from_secs(20))
            .json(
                &json!({"model":"default","messages":[{"role":"user","content":"Two plus two?"}]}),
            );
        async move { req.send().await.unwrap() }
    };
    let id = stored_response(&r1, &url, "Name a river.").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(ask("sk-alice").await.headers()["x-sluice-cache"], "miss");
    let u = url.clone();
    until(10, "both rows", move || {
        count(&u, "SELECT count(*) FROM requests") == 2
    })
    .await;
    assert_eq!(ask("sk-alice").await.headers()["x-sluice-cache"], "hit");
    assert_eq!(mock.calls(), 2);

    proxy.freeze();
    let t = Instant::now();
    let answers = futures_util::future::join_all((0..4).map(|_| ask("sk-alice"))).await;
    for a in answers {
        assert_eq!(a.status(), 200);
        assert_eq!(a.headers()["x-sluice-cache"], "miss");
    }
    assert_eq!(mock.calls(), 6);
    let read = client()
        .get(r1.url(&format!("/v1/responses/{id}")))
        .bearer_auth("sk-alice")
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 503);
    let body: Value = read.json().await.unwrap();
    assert_eq!(body["error"]["type"], "server_error", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("responses state"),
        "{body}"
    );
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());

    proxy.thaw();
    let t = Instant::now();
    loop {
        let got = get(&r1, "sk-alice", &format!("/v1/responses/{id}")).await;
        if got.status() == 200 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "state store not back: {}",
            got.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ask("sk-alice").await.headers()["x-sluice-cache"], "hit");
}

/// A backend that repeats a response id (the finding's `resp_fixed`) cannot let one key
/// overwrite another's stored response on PostgreSQL: the first owner's row is kept and the
/// second write says it stored nothing; the owner may still store it again.
#[test]
fn another_key_cannot_overwrite_a_stored_response_on_postgres() {
    use sluice::store::responses::StoredResponse;
    let Some(base) = server_url() else { return };
    let url = fresh_db(&base, "t_resp_owner");
    let stored = |owner: &str, input: &str| StoredResponse {
        id: "resp_fixed".into(),
        owner: owner.into(),
        created_ms: 1,
        request_id: format!("req-{owner}"),
        model: "default".into(),
        history: vec![],
        input: vec![json!({"role":"user","content":input})],
        response: json!({"id":"resp_fixed","output":[]}),
    };
    let (mine, theirs, again) = (
        stored("cfg:alice", "alice's text"),
        stored("cfg:bob", "bob's text"),
        stored("cfg:alice", "alice again"),
    );
    std::thread::spawn(move || {
        let cfg = sluice::config::LogConfig {
            backend: sluice::config::log::LogBackend::Postgres,
            url: Some(url),
            ..Default::default()
        };
        let mut s = sluice::store::connect(&cfg).unwrap();
        assert!(s.put_response(&mine).unwrap());
        assert!(!s.put_response(&theirs).unwrap());
        assert_eq!(
            s.get_response("resp_fixed", "cfg:alice").unwrap(),
            Some(mine)
        );
        assert_eq!(s.get_response("resp_fixed", "cfg:bob").unwrap(), None);
        assert!(s.put_response(&again).unwrap());
        assert_eq!(
            s.get_response("resp_fixed", "cfg:alice").unwrap(),
            Some(again)
        );
    })
    .join()
    .unwrap();
}

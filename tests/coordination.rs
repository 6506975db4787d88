//! Limits and budgets that hold across replicas (issue 19, docs/scaling.md): three `sluice
//! serve` processes on loopback share a real redis-server (tests/support/redis_server.rs),
//! each with its own SQLite log.

#[path = "support/redis_server.rs"]
mod redis_server;
#[path = "support/replica.rs"]
mod replica;
mod support;

use redis_server::RedisServer;
use replica::Replica;
use serde_json::{Value, json};
use support::{Mock, MockReply};

/// One HTTP client for the whole test (building one per request costs more than the request).
fn client() -> reqwest::Client {
    static C: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    C.get_or_init(support::client).clone()
}

const MASTER: &str = "sk-master-coord";

/// An answer with 1 prompt and 50 completion tokens: at 100 USD per 1M tokens, 0.0051 USD.
fn answer() -> MockReply {
    MockReply::Json(
        200,
        json!({"id":"x","object":"chat.completion","created":1,"model":"m",
               "choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],
               "usage":{"prompt_tokens":1,"completion_tokens":50,"total_tokens":51}}),
    )
}

/// A config with one priced deployment on `mock`, the test keys, and the coordinator.
fn config(mock: &Mock, redis: &str, prefix: &str, on_unavailable: &str) -> String {
    format!(
        "server:\n  master_key: {MASTER}\n  config_poll_ms: 0\nlog:\n  path: ${{SLUICE_TEST_DB}}\n\
deployments:\n  - name: paid\n    provider: openai\n    base_url: {}\n    model: m\n    hosting: remote\n    price: {{input: 100, output: 100}}\n\
models:\n  - name: default\n    deployments: [paid]\n\
keys:\n  - name: rpm30\n    key: sk-rpm30\n    rpm: 30\n  - name: rpm2\n    key: sk-rpm2\n    rpm: 2\n  - name: capped\n    key: sk-capped\n    budget: {{usd: 0.10, period: day}}\n  - name: lead\n    key: sk-lead\n    admin: true\n    budget: {{usd: 0.10, period: day}}\n  - name: rpm-lead\n    key: sk-rpm-lead\n    admin: true\n    rpm: 2\n\
coordination:\n  redis:\n    url: {redis}\n    prefix: {prefix}\n    probe_interval_ms: 100\n    timeout_ms: 2000\n    on_unavailable: {on_unavailable}\n",
        mock.url("/v1")
    )
}

/// POSTs one chat completion with `key`; returns status, `Retry-After`, body.
async fn chat(base: &str, key: &str) -> (u16, Option<String>, Value) {
    let r = client()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(
            &json!({"model":"default","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}),
        )
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (status, retry, r.json().await.unwrap_or(Value::Null))
}

/// `/health/ready` as the admin sees it.
async fn ready(base: &str) -> (u16, Value) {
    let r = client()
        .get(format!("{base}/health/ready"))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// `/metrics` text.
async fn metrics(base: &str) -> String {
    support::get_text(&format!("{base}/metrics"), Some(MASTER)).await
}

/// Polls `/health/ready` until the coordinator's state is `state` (≤ 10 s).
async fn wait_state(base: &str, state: &str) {
    for _ in 0..500 {
        let (_, v) = ready(base).await;
        if v["replica"]["coordination"]["state"] == state {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{base}: coordinator not {state} within 10 s");
}

/// Sends `n` requests at once, round-robin over `bases`, and returns each outcome.
async fn burst(bases: &[String], key: &str, n: usize) -> Vec<(u16, Option<String>, Value)> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (base, key) = (bases[i % bases.len()].clone(), key.to_string());
            tokio::spawn(async move { chat(&base, &key).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// `n` requests at once with the `rpm: 30` key: exactly 30 pass when the burst takes under
/// 2 s (the bucket refills one request per 2 s). On a machine so slow that it takes longer,
/// at most one more per 2 s elapsed may pass, never fewer than 30; the rest are 429.
async fn rpm30_burst(bases: &[String], n: usize) -> Vec<(u16, Option<String>, Value)> {
    let started = std::time::Instant::now();
    let out = burst(bases, "sk-rpm30", n).await;
    let refills = (started.elapsed().as_secs_f64() / 2.0).floor() as usize;
    let ok = count(&out, 200);
    let others: Vec<_> = out.iter().filter(|o| o.0 != 200 && o.0 != 429).collect();
    assert!(others.is_empty(), "{others:?}");
    if refills == 0 {
        assert_eq!(ok, 30);
    } else {
        eprintln!(
            "slow burst: {:?}, up to {refills} refills",
            started.elapsed()
        );
        assert!(
            (30..=30 + refills).contains(&ok),
            "{ok} passed, {refills} refills"
        );
    }
    out
}

fn count(outcomes: &[(u16, Option<String>, Value)], status: u16) -> usize {
    outcomes.iter().filter(|o| o.0 == status).count()
}

/// Every 429 is in OpenAI's error shape with `code` and a whole-second `Retry-After` (when
/// `retry` is set).
fn assert_openai_429s(outcomes: &[(u16, Option<String>, Value)], code: &str, retry: bool) {
    for (status, after, body) in outcomes.iter().filter(|o| o.0 == 429) {
        assert_eq!(*status, 429);
        assert_eq!(body["error"]["code"], code, "{body}");
        assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        if retry {
            let s: u64 = after.as_deref().expect("Retry-After").parse().unwrap();
            assert!((1..=60).contains(&s), "{s}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rpm_and_budget_hold_over_three_replicas_and_configs_show_their_hash() {
    let redis = RedisServer::start();
    let mock = Mock::start(|_| answer()).await;
    let yaml = config(&mock, &redis.url(), "t1", "fail_closed");
    // Replica 3 reads a different file (one more comment line): a different hash.
    let mut replicas = vec![
        Replica::start(&yaml, &[]),
        Replica::start(&yaml, &[]),
        Replica::start(&format!("{yaml}# replica 3\n"), &[]),
    ];
    let bases: Vec<String> = replicas.iter().map(|r| r.base.clone()).collect();
    for b in &bases {
        wait_state(b, "up").await;
    }
    let hashes: Vec<String> = {
        let mut h = Vec::new();
        for b in &bases {
            let (status, v) = ready(b).await;
            assert_eq!(status, 200);
            assert_eq!(v["replica"]["coordination"]["library"], "sluice_v2");
            h.push(v["replica"]["config"]["hash"].as_str().unwrap().to_string());
        }
        h
    };
    assert_eq!(hashes[0], hashes[1]);
    assert_ne!(hashes[0], hashes[2]);
    assert!(
        hashes[0].starts_with("sha256:") && hashes[0].len() == 23,
        "{}",
        hashes[0]
    );
    assert!(
        metrics(&bases[2])
            .await
            .contains(&format!("sluice_config_info{{hash=\"{}\"}} 1", hashes[2]))
    );
    // The admin view is for admins: an anonymous probe sees only the status.
    let anon: Value = client()
        .get(format!("{}/health/ready", bases[0]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(anon.get("replica").is_none(), "{anon}");

    // An admitted request carries OpenAI's x-ratelimit-* headers from the shared bucket.
    let r = client()
        .post(format!("{}/v1/chat/completions", bases[1]))
        .bearer_auth("sk-rpm2")
        .json(&json!({"model":"default","messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = |n: &str| r.headers()[n].to_str().unwrap().to_string();
    assert_eq!(h("x-ratelimit-limit-requests"), "2");
    assert_eq!(h("x-ratelimit-remaining-requests"), "1");
    assert_eq!(h("x-ratelimit-reset-requests"), "30s");

    // rpm: 30 → 90 requests at once over three replicas: exactly 30 pass.
    let out = rpm30_burst(&bases, 90).await;
    assert_eq!(count(&out, 200) + count(&out, 429), 90);
    assert_openai_429s(&out, "rate_limit_exceeded", true);

    // Budget 0.10 USD; each request reserves and costs 0.0051 USD: 60 at once → 19 pass
    // (19 × 0.0051 = 0.0969; a 20th would make 0.102).
    let out = burst(&bases, "sk-capped", 60).await;
    assert_eq!((count(&out, 200), count(&out, 429)), (19, 41));
    assert_openai_429s(&out, "budget_exceeded", false);
    // The spend recorded over the three logs stays within budget + one reservation.
    for r in &mut replicas {
        r.stop();
    }
    let mut spent = 0.0;
    let mut rows = 0;
    for r in &replicas {
        let c = rusqlite::Connection::open(&r.db).unwrap();
        let (s, n): (f64, i64) = c
            .query_row(
                "SELECT COALESCE(SUM(cost_usd), 0), COUNT(*) FROM requests WHERE api_key_id = 'cfg:capped' AND status = 200",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        spent += s;
        rows += n;
    }
    assert_eq!(rows, 19);
    assert!((spent - 19.0 * 0.0051).abs() < 1e-9, "{spent}");
    assert!(spent <= 0.10 + 0.0051, "{spent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_gone_each_on_unavailable_then_exact_again_without_restart() {
    let mut redis = RedisServer::start();
    let mock = Mock::start(|_| answer()).await;
    let settings = ["fail_closed", "fail_open", "local"];
    let replicas: Vec<Replica> = settings
        .iter()
        .map(|s| Replica::start(&config(&mock, &redis.url(), "t2", s), &[]))
        .collect();
    for r in &replicas {
        wait_state(&r.base, "up").await;
    }
    redis.stop();
    for r in &replicas {
        wait_state(&r.base, "down").await;
    }
    // Each replica, 5 requests of a key with rpm: 2.
    let mut outcomes = Vec::new();
    for r in &replicas {
        outcomes.push(burst(std::slice::from_ref(&r.base), "sk-rpm2", 5).await);
    }
    // fail_closed: all refused with 503 coordinator_unavailable; the replica is not ready.
    assert_eq!(count(&outcomes[0], 503), 5);
    assert_eq!(outcomes[0][0].2["error"]["code"], "coordinator_unavailable");
    assert_eq!(ready(&replicas[0].base).await.0, 503);
    // fail_open: all served.
    assert_eq!(count(&outcomes[1], 200), 5);
    assert_eq!(ready(&replicas[1].base).await.0, 200);
    // local: this replica's own limit, 2 of 5.
    assert_eq!((count(&outcomes[2], 200), count(&outcomes[2], 429)), (2, 3));
    assert_openai_429s(&outcomes[2], "rate_limit_exceeded", true);
    for (r, s) in replicas.iter().zip(settings) {
        let m = metrics(&r.base).await;
        assert!(
            m.contains("sluice_coordinator_up{backend=\"redis\"} 0"),
            "{m}"
        );
        assert!(
            m.contains(&format!(
                "sluice_coordinator_unavailable_decisions_total{{decision=\"{s}\"}} 5"
            )),
            "{s}: {m}"
        );
        let (_, v) = ready(&r.base).await;
        assert_eq!(v["replica"]["coordination"]["unavailable_decisions"][s], 5);
    }

    // Redis back (empty): coordination resumes without restarting Sluice, limits exact again.
    redis.restart();
    for r in &replicas {
        wait_state(&r.base, "up").await;
    }
    let bases: Vec<String> = replicas.iter().map(|r| r.base.clone()).collect();
    let out = rpm30_burst(&bases, 45).await;
    assert_eq!(count(&out, 200) + count(&out, 429), 45);
    for r in &replicas {
        assert!(
            metrics(&r.base)
                .await
                .contains("sluice_coordinator_up{backend=\"redis\"} 1")
        );
    }
}

/// The server-side functions on their own: all scopes and budgets or none, and a dead
/// request's reservation released by expiry.
#[tokio::test]
async fn admit_is_all_or_nothing_and_reservations_expire() {
    let redis = RedisServer::start();
    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let lib = include_str!("../src/access/coord/sluice_v2.lua");
    let _: String = ::redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(lib)
        .query_async(&mut c)
        .await
        .unwrap();
    let admit = |keys: Vec<&str>, args: Vec<String>| {
        let mut cmd = ::redis::cmd("FCALL");
        cmd.arg("sluice_v2_admit")
            .arg(keys.len())
            .arg(keys)
            .arg(args);
        cmd
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    // Bucket b has room for 1; a request needing 1 from a and 2 from b is refused and a
    // keeps its 5.
    let r: Vec<String> = admit(vec!["a", "b"], s(&["2", "1", "5", "2", "1"]))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(r[0], "0");
    assert_eq!(r[1], "rate");
    assert_eq!(r[2], "2");
    let level_a: Option<String> = ::redis::cmd("HGET")
        .arg("a")
        .arg("level")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(level_a, None);
    let r: Vec<String> = admit(vec!["a", "b"], s(&["2", "1", "5", "1", "1"]))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(r, ["1", "4.000", "0.000"]);
    // The limit of `a` changes from 5 to 8 (a reload): the 1 used stays used (7 left, not a
    // fresh 8), and back to 5 leaves 1 (5 − 4 used), never more than the new limit.
    let r: Vec<String> = admit(vec!["a"], s(&["1", "3", "8"]))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(r[0], "1");
    let left: f64 = r[1].parse().unwrap();
    assert!((4.0..4.01).contains(&left), "{r:?}");
    let r: Vec<String> = admit(vec!["a"], s(&["1", "1", "5"]))
        .query_async(&mut c)
        .await
        .unwrap();
    let left: f64 = r[1].parse().unwrap();
    assert!((0.0..0.01).contains(&left), "{r:?}");
    let r: Vec<String> = admit(vec!["a"], s(&["1", "1", "5"]))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!((r[0].as_str(), r[1].as_str()), ("0", "rate"), "{r:?}");
    // Budget 1.0: a 0.8 reservation with a 300 ms lifetime blocks a second one until it
    // expires (its replica died: never settled).
    let budget = |id: &str, ttl_ms: &str| {
        admit(
            vec!["spend", "resv", "resvz"],
            s(&["0", "1", id, ttl_ms, "0.8", "1.0", "0", "86400"]),
        )
    };
    let r: Vec<String> = budget("r1", "300").query_async(&mut c).await.unwrap();
    assert_eq!(r, ["1"]);
    let r: Vec<String> = budget("r2", "300").query_async(&mut c).await.unwrap();
    assert_eq!(r, ["0", "budget", "1", "0.000000", "0.800000"]);
    let mut admitted = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let r: Vec<String> = budget("r3", "60000").query_async(&mut c).await.unwrap();
        if r == ["1"] {
            admitted = true;
            break;
        }
    }
    assert!(admitted, "the dead reservation was never released");
    // Settling r3 with its real cost moves it from reserved to spent.
    let settle = |keys: &[&str], args: &[&str]| {
        let mut cmd = ::redis::cmd("FCALL");
        cmd.arg("sluice_v2_settle")
            .arg(keys.len())
            .arg(keys)
            .arg(args);
        cmd
    };
    let _: i64 = settle(
        &["spend", "resv", "resvz"],
        &["0", "1", "r3", "0.25", "86400"],
    )
    .query_async(&mut c)
    .await
    .unwrap();
    let r: Vec<String> = budget("r4", "60000").query_async(&mut c).await.unwrap();
    assert_eq!(r, ["0", "budget", "1", "0.250000", "0.000000"]);
    // Two budgets (a key's own 1.0 and its maker's 0.5, seeded with 0.3 spent): a 0.3
    // reservation fits the first, not the second; it is refused as budget 2 and nothing is
    // reserved on the first.
    let keys = vec!["s1", "h1", "z1", "s2", "h2", "z2"];
    let both = |id: &str, usd: &str| {
        admit(
            keys.clone(),
            s(&[
                "0", "2", id, "60000", usd, "1.0", "0", "86400", usd, "0.5", "0.3", "86400",
            ]),
        )
    };
    let r: Vec<String> = both("q1", "0.3").query_async(&mut c).await.unwrap();
    assert_eq!(r, ["0", "budget", "2", "0.300000", "0.000000"]);
    let held: Vec<String> = redis_cmd(&mut c, &["HKEYS", "h1"]).await;
    assert!(held.is_empty(), "{held:?}");
    // 0.2 fits both: reserved on both.
    let r: Vec<String> = both("q2", "0.2").query_async(&mut c).await.unwrap();
    assert_eq!(r, ["1"]);
    for h in ["h1", "h2"] {
        let v: Option<String> = redis_cmd(&mut c, &["HGET", h, "q2"]).await;
        assert_eq!(v.as_deref(), Some("0.200000000"), "{h}");
    }
    // Each budget counts its own part of the real cost: here all of it on the first, none on
    // the second (a remote-only budget, and the answer came from a local deployment).
    let _: i64 = settle(&keys, &["0", "2", "q2", "0.15", "86400", "0", "86400"])
        .query_async(&mut c)
        .await
        .unwrap();
    for (spend, want) in [("s1", 0.15), ("s2", 0.3)] {
        let v: String = redis_cmd(&mut c, &["GET", spend]).await;
        assert!(
            (v.parse::<f64>().unwrap() - want).abs() < 1e-9,
            "{spend}: {v}"
        );
    }
    // A server spend below the replica's seed (its own log knew more) is raised to it.
    let _: () = redis_cmd(&mut c, &["SET", "s3", "0.1"]).await;
    let r: Vec<String> = admit(
        vec!["s3", "h3", "z3"],
        s(&["0", "1", "q3", "60000", "0.1", "0.45", "0.4", "86400"]),
    )
    .query_async(&mut c)
    .await
    .unwrap();
    assert_eq!(r, ["0", "budget", "1", "0.400000", "0.000000"]);
    let left: Vec<String> = redis_cmd(&mut c, &["HKEYS", "h2"]).await;
    assert!(left.is_empty(), "{left:?}");
}

/// Runs the Redis command `args` (name first) on `c` and reads its reply.
async fn redis_cmd<T: ::redis::FromRedisValue>(
    c: &mut ::redis::aio::MultiplexedConnection,
    args: &[&str],
) -> T {
    let mut cmd = ::redis::cmd(args[0]);
    cmd.arg(&args[1..]);
    cmd.query_async(c).await.unwrap()
}

/// `sluice check`: an unreachable coordinator is a warning (exit 0); a reachable one is named.
/// `sluice serve`: unreachable is an error only with `fail_closed` (`local` and `fail_open`
/// warn and serve).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_warns_and_serve_refuses_only_fail_closed() {
    let redis = RedisServer::start();
    let mock = Mock::start(|_| answer()).await;
    let dir = tempfile::tempdir().unwrap();
    let dead = format!("redis://127.0.0.1:{}", redis_server::free_port());
    let file = dir.path().join("s.yaml");
    let run = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.args(args)
            .arg("--config")
            .arg(&file)
            .env("SLUICE_TEST_DB", dir.path().join("db"));
        support::output_within(cmd, 30)
    };
    std::fs::write(&file, config(&mock, &redis.url(), "t3", "fail_closed")).unwrap();
    let out = run(&["check"]).await;
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("coordination: redis 7."), "{text}");
    assert!(
        text.contains("reachable (on_unavailable: fail_closed)"),
        "{text}"
    );

    std::fs::write(&file, config(&mock, &dead, "t3", "fail_closed")).unwrap();
    let out = run(&["check"]).await;
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("warning: coordination.redis.url: unreachable from here:"),
        "{err}"
    );
    let out = run(&["serve", "--listen", "127.0.0.1:0"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error: coordination.redis.url: unreachable"),
        "{err}"
    );

    // With `local` it serves (and says so), and is ready: requests use this replica's limits.
    let r = Replica::start(&config(&mock, &dead, "t3", "local"), &[]);
    r.wait_until(10, "warning printed", || {
        r.stderr().contains("serving with on_unavailable: local")
    });
    assert_eq!(ready(&r.base).await.0, 200);
    assert_eq!(chat(&r.base, "sk-rpm2").await.0, 200);
    drop(r);

    // With `fail_open`: `check` warns and exits 0, `serve` warns and serves.
    std::fs::write(&file, config(&mock, &dead, "t3", "fail_open")).unwrap();
    let out = run(&["check"]).await;
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("warning: coordination.redis.url: unreachable from here:"),
        "{err}"
    );
    let r = Replica::start(&config(&mock, &dead, "t3", "fail_open"), &[]);
    r.wait_until(10, "warning printed", || {
        r.stderr()
            .contains("warning: coordination.redis.url: unreachable: ")
            && r.stderr()
                .contains("serving with on_unavailable: fail_open until it answers")
    });
    assert_eq!(ready(&r.base).await.0, 200);
    assert_eq!(chat(&r.base, "sk-rpm2").await.0, 200);
}

/// Keys made by a key count against its budget on the coordinator too: two children, each
/// with a budget as large as their maker's, together get what the maker's budget holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_made_by_a_key_share_its_budget_on_the_coordinator() {
    let redis = RedisServer::start();
    let mock = Mock::start(|_| answer()).await;
    let r = Replica::start(&config(&mock, &redis.url(), "t6", "fail_closed"), &[]);
    wait_state(&r.base, "up").await;
    let mut children = Vec::new();
    for name in ["c1", "c2"] {
        let made = client()
            .post(r.url("/admin/keys"))
            .bearer_auth("sk-lead")
            .json(&json!({"name":name,"budget":{"usd":0.10,"period":"day"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(made.status(), 201);
        let v: Value = made.json().await.unwrap();
        children.push(v["secret"].as_str().unwrap().to_string());
    }
    // Each request reserves and costs 0.0051 USD: 19 fit in 0.10 (see above), whichever
    // child sends them.
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let (base, key) = (r.base.clone(), children[i % 2].clone());
            tokio::spawn(async move { chat(&base, &key).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    assert_eq!((count(&out, 200), count(&out, 429)), (19, 41));
    assert_openai_429s(&out, "budget_exceeded", false);
    assert!(
        out.iter().any(|o| {
            o.2["error"]["message"].as_str().is_some_and(|m| {
                m.starts_with("This API key counts against the budget of `cfg:lead`")
            })
        }),
        "{out:?}"
    );
    // Rate limits too: the maker allows 2 requests per minute, and so does each child.
    let mut rpm_children = Vec::new();
    for name in ["r1", "r2"] {
        let made = client()
            .post(r.url("/admin/keys"))
            .bearer_auth("sk-rpm-lead")
            .json(&json!({"name":name,"rpm":2}))
            .send()
            .await
            .unwrap();
        assert_eq!(made.status(), 201);
        let v: Value = made.json().await.unwrap();
        rpm_children.push(v["secret"].as_str().unwrap().to_string());
    }
    assert_eq!(chat(&r.base, &rpm_children[0]).await.0, 200);
    assert_eq!(chat(&r.base, &rpm_children[1]).await.0, 200);
    let (status, retry, v) = chat(&r.base, &rpm_children[1]).await;
    assert_eq!((status, retry.is_some()), (429, true));
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("Rate limit reached for key:cfg:rpm-lead: 2 requests per minute."),
        "{msg}"
    );
}

/// A stream settles when it ends: its real cost moves from reserved to spent on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_settles_its_real_cost_on_the_server() {
    let redis = RedisServer::start();
    let c = |delta: Value, fin: Value| json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":delta,"finish_reason":fin}]});
    let chunks = vec![
        support::sse(&c(json!({"role":"assistant","content":"ok"}), Value::Null)),
        support::sse(&c(json!({}), json!("stop"))),
        support::sse(
            &json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],
            "usage":{"prompt_tokens":10,"completion_tokens":20,"total_tokens":30}}),
        ),
        support::done(),
    ];
    let mock = Mock::start(move |_| MockReply::Sse(chunks.clone())).await;
    let r = Replica::start(&config(&mock, &redis.url(), "t4", "fail_closed"), &[]);
    wait_state(&r.base, "up").await;
    let resp = client()
        .post(r.url("/v1/chat/completions"))
        .bearer_auth("sk-capped")
        .json(&json!({"model":"default","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    // 30 tokens at 100 USD per 1M = 0.003 USD spent, nothing left reserved.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let day = now - now.rem_euclid(86_400_000);
    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut spent = None;
    for _ in 0..250 {
        let v: Option<String> = ::redis::cmd("GET")
            .arg(format!("t4:spend:cfg:capped:{day}"))
            .query_async(&mut conn)
            .await
            .unwrap();
        if v.as_deref()
            .and_then(|s| s.parse::<f64>().ok())
            .is_some_and(|x| x > 0.0)
        {
            spent = v;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let spent: f64 = spent.expect("spend settled").parse().unwrap();
    assert!((spent - 0.003).abs() < 1e-9, "{spent}");
    let reserved: i64 = ::redis::cmd("HLEN")
        .arg("t4:resv:cfg:capped")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(reserved, 0);
}

/// `rediss://`: the coordinator over TLS, the server's certificate checked (chain and host
/// name) against `ca_file`; a CA that did not sign it, or a host name it does not carry, is
/// an unreachable coordinator with the reason, never a plaintext or unchecked connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_checks_the_servers_certificate() {
    let redis = RedisServer::start_tls();
    let mock = Mock::start(|_| answer()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.yaml");
    let with_ca = |url: &str, ca: &std::path::Path| {
        config(&mock, url, "t7", "fail_closed").replace(
            "    prefix: t7\n",
            &format!("    prefix: t7\n    ca_file: {}\n", ca.display()),
        )
    };
    let check = |yaml: String| {
        std::fs::write(&file, yaml).unwrap();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.args(["check", "--config"])
            .arg(&file)
            .env("SLUICE_TEST_DB", dir.path().join("db"));
        support::output_within(cmd, 30)
    };
    let out = check(with_ca(&redis.tls_url("localhost"), &redis.ca_file())).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("coordination: redis 7."), "{text}");
    assert!(
        text.contains("reachable (on_unavailable: fail_closed)"),
        "{text}"
    );
    for (url, ca, why) in [
        (
            redis.tls_url("localhost"),
            redis.other_ca_file(),
            "UnknownIssuer",
        ),
        (
            redis.tls_url("127.0.0.1"),
            redis.ca_file(),
            "certificate not valid for name",
        ),
    ] {
        let out = check(with_ca(&url, &ca)).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("warning: coordination.redis.url: unreachable from here:")
                && err.contains(why),
            "{url}: {err}"
        );
    }
    let out = check(with_ca(&redis.url(), &redis.ca_file())).await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("coordination.redis.ca_file: only with a rediss:// URL (TLS)"),
        "{err}"
    );

    // Served over TLS: the limit of `rpm2` is decided on the server, whose keys show it.
    let r = Replica::start(&with_ca(&redis.tls_url("localhost"), &redis.ca_file()), &[]);
    wait_state(&r.base, "up").await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(chat(&r.base, "sk-rpm2").await.0);
    }
    assert_eq!(statuses, [200, 200, 429]);
    let mut c = std::net::TcpStream::connect(("127.0.0.1", redis.port)).unwrap();
    std::io::Write::write_all(&mut c, b"KEYS t7*\r\n").unwrap();
    let mut buf = [0u8; 512];
    let n = std::io::Read::read(&mut c, &mut buf).unwrap();
    let keys = String::from_utf8_lossy(&buf[..n]);
    assert!(keys.starts_with('*') && !keys.starts_with("*0"), "{keys}");
}

/// A stream still open when the process exits — its client stopped reading, its upstream is
/// still sending — settles its cost on the server at exit: it ends with the runtime, and its
/// settlement, whose task could not run then, is made on a connection of its own before the
/// process exits. Before, nothing was settled: the reservation expired and the spend stayed
/// below what the row says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_open_at_exit_settles_its_cost_on_the_server() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let redis = RedisServer::start();
    // 600 chunks of 16 KB each: more than every socket buffer on the way can hold.
    let big = support::sse(&support::chunk(
        json!({"content": "x".repeat(16_000)}),
        Value::Null,
    ));
    let mock = Mock::start(move |_| {
        let gone = std::sync::Arc::new(std::sync::Mutex::new(Some(
            tokio::sync::oneshot::channel().0,
        )));
        MockReply::SseThenHang(vec![big.clone(); 600], gone)
    })
    .await;
    let yaml = config(&mock, &redis.url(), "t9", "fail_closed")
        .replace("server:\n", "server:\n  shutdown_grace_ms: 200\n");
    let r = Replica::start(&yaml, &[]);
    wait_state(&r.base, "up").await;
    let addr = r.base.trim_start_matches("http://").to_string();
    let body = json!({"model":"default","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"hi"}]})
        .to_string();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut c = socket.connect(addr.parse().unwrap()).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer sk-capped\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    c.write_all(head.as_bytes()).await.unwrap();
    let mut first = [0u8; 12];
    c.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let (status, r) = tokio::task::spawn_blocking(move || {
        let mut r = r;
        (r.stop(), r)
    })
    .await
    .unwrap();
    assert!(status.is_some_and(|s| s.success()), "{}", r.stderr());
    let (row_status, cost): (i64, f64) = rusqlite::Connection::open(&r.db)
        .unwrap()
        .query_row(
            "SELECT status, cost_usd FROM requests WHERE api_key_id = 'cfg:capped'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(row_status, 503, "{}", r.stderr());
    assert!(cost > 0.0);
    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let day = now - now.rem_euclid(86_400_000);
    let spent: Option<String> =
        redis_cmd(&mut conn, &["GET", &format!("t9:spend:cfg:capped:{day}")]).await;
    let spent: f64 = spent.expect("spend settled").parse().unwrap();
    assert!(
        (spent - cost).abs() < 1e-9,
        "spent {spent}, the row says {cost}"
    );
    let reserved: i64 = redis_cmd(&mut conn, &["HLEN", "t9:resv:cfg:capped"]).await;
    assert_eq!(reserved, 0);
    drop(c);
}

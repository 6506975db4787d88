//! Several Sluice replicas (spawned `sluice serve` processes on 127.0.0.1) sharing one real
//! PostgreSQL log (issue 19): rows from every replica in one verifiable chain, nothing lost on
//! SIGTERM under load, rows spilled while PostgreSQL is down and all replayed once it is back,
//! keys created or revoked on one replica honoured by another within 2 s, and a schema newer
//! than the binary refused at start.
//!
//! The server comes from `tests/support/pg.sh` (tests/run.sh starts it and exports
//! `DATABASE_URL`); each test works in its own database. Without `DATABASE_URL` the tests say
//! so and pass, unless `SLUICE_REQUIRE_PG=1` (tests/run.sh and CI set it): then they fail.

#[path = "support/freeze_proxy.rs"]
mod freeze_proxy;
#[path = "support/pg_db.rs"]
mod pg_db;
mod support;

use pg_db::{count, fresh_db, server_url, with_pg};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const MASTER: &str = "sk-master-pg";

fn completion() -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000,
        "model": "upstream-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    })
}

fn config(mock: &Mock, url: &str, dir: &std::path::Path, i: usize) -> String {
    format!(
        "server:\n  master_key: {MASTER}\n  shutdown_grace_ms: 10000\n\
         deployments:\n  - name: up\n    provider: openai\n    base_url: {}\n    model: upstream-model\n    hosting: remote\n    price: {{input: 1000, output: 1000}}\n\
         models:\n  - name: default\n    deployments: [up]\n\
         keys:\n  - name: app\n    key: sk-app\n\
         log:\n  backend: postgres\n  url: {url}\n  path: {}\n  spill_path: {}\n",
        mock.url("/v1"),
        dir.join(format!("unused-{i}.db")).display(),
        dir.join(format!("spill-{i}.jsonl")).display(),
    )
}

/// A `sluice serve` process; killed when dropped.
struct Replica {
    child: Child,
    base: String,
}

impl Replica {
    fn start(yaml: &str, dir: &std::path::Path, i: usize) -> Replica {
        let path = dir.join(format!("sluice-{i}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("SLUICE_TEST_STDERR").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .unwrap();
        let line = read_line_within(child.stdout.take().unwrap(), 60);
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        Replica { child, base }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGTERM, then waits (bounded) for the exit.
    fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        // SAFETY: a signal to our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                t.elapsed() < within,
                "replica did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn chat(r: &Replica, id: &str, key: &str) -> reqwest::Response {
    client()
        .post(r.url("/v1/chat/completions"))
        .bearer_auth(key)
        .header("x-request-id", id)
        .json(&json!({"model": "default", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
}

/// `GET path` on `r` with the master key, as JSON.
async fn admin_get(r: &Replica, path: &str) -> Value {
    client()
        .get(r.url(path))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls `f` every 50 ms until it is true, failing after `secs`.
async fn until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "{what}: not within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn verify(url: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["log", "verify", "--db", url])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_write_one_verifiable_log_and_one_spend() {
    let Some(base) = server_url() else { return };
    let url = fresh_db(&base, "t_three");
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(|_| MockReply::Json(200, completion())).await;
    let replicas: Vec<Replica> = (0..3)
        .map(|i| Replica::start(&config(&mock, &url, dir.path(), i), dir.path(), i))
        .collect();
    for i in 0..30 {
        let r = chat(&replicas[i % 3], &format!("req-{i}"), "sk-app").await;
        assert_eq!(r.status(), 200);
    }
    until(10, "30 rows", || {
        count(&url, "SELECT count(*) FROM requests") == 30
    })
    .await;
    for i in 0..30 {
        let id = format!("req-{i}");
        let n = count(
            &url,
            &format!("SELECT count(*) FROM requests WHERE id = '{id}'"),
        );
        assert_eq!(n, 1, "{id}");
    }
    let (ok, out) = verify(&url);
    assert!(ok, "{out}");
    assert!(
        out.starts_with("OK: 30 rows verified; head row 30,"),
        "{out}"
    );
    // Spend is one number: the sum of the rows' costs, whichever replica served them
    // (7 tokens at $1000 per 1M = $0.007 each).
    let spent = with_pg(&url, |c| {
        let r = c
            .query_one(
                "SELECT sum(all_usd), (SELECT sum(cost_usd) FROM requests) FROM spend",
                &[],
            )
            .unwrap();
        (r.get::<_, f64>(0), r.get::<_, f64>(1))
    });
    assert!(
        (spent.0 - 0.21).abs() < 1e-9 && (spent.1 - 0.21).abs() < 1e-9,
        "{spent:?}"
    );
    // The CLI and the admin API read the same rows.
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["logs", "--json", "--limit", "100", "--db", &url])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 30);
    let page = admin_get(&replicas[2], "/admin/logs?limit=5").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 5);
    assert_eq!(page["data"][0]["seq"], 30);
    let usage = admin_get(&replicas[1], "/admin/usage?by=key").await;
    assert_eq!(usage["total"]["requests"], 30);
    // Rows are found by id without an index on it (migration 0009): a client's own id, and
    // Sluice's own (a UUIDv7, through the minute it carries).
    let own = client()
        .post(replicas[0].url("/v1/chat/completions"))
        .bearer_auth("sk-app")
        .json(&json!({"model": "default", "messages": [{"role": "user", "content": "own id"}]}))
        .send()
        .await
        .unwrap();
    let own_id = own.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(uuid::Uuid::parse_str(&own_id).unwrap().get_version_num(), 7);
    until(10, "31 rows", || {
        count(&url, "SELECT count(*) FROM requests") == 31
    })
    .await;
    // (The 30 rows' order in the chain follows their replicas' batches; the 31st is last.)
    let seq_of_req_7 = count(&url, "SELECT seq FROM requests WHERE id = 'req-7'");
    for (id, seq) in [("req-7", seq_of_req_7), (own_id.as_str(), 31)] {
        let row = admin_get(&replicas[1], &format!("/admin/logs/{id}")).await;
        assert_eq!(
            (row["id"].as_str(), row["seq"].as_i64()),
            (Some(id), Some(seq))
        );
    }
    let missing = client()
        .get(replicas[1].url("/admin/logs/req-999"))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        count(
            &url,
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'requests_id'"
        ),
        0
    );
    // `sluice replay` reads the row from PostgreSQL (the replica's config names it).
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["replay", "req-4", "--config"])
        .arg(dir.path().join("sluice-1.yaml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("run 1: identical"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_under_40_concurrent_requests_loses_no_answered_row() {
    let Some(base) = server_url() else { return };
    let url = fresh_db(&base, "t_sigterm");
    let dir = tempfile::tempdir().unwrap();
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    let g = gate.clone();
    let mock = Mock::start(move |_| MockReply::JsonAfter(g.clone(), 200, completion())).await;
    let mut r = Replica::start(&config(&mock, &url, dir.path(), 0), dir.path(), 0);
    let target = r.url("/v1/chat/completions");
    let mut tasks = Vec::new();
    for i in 0..40 {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let resp = client()
                .post(target)
                .bearer_auth("sk-app")
                .header("x-request-id", format!("term-{i}"))
                .json(&json!({"model": "default", "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await;
            match resp {
                Ok(r) if r.status() == 200 => r.text().await.ok().map(|_| format!("term-{i}")),
                _ => None,
            }
        }));
    }
    until(20, "40 requests at the upstream", || mock.calls() == 40).await;
    // SIGTERM while all 40 wait on the upstream, then let the upstream answer.
    // SAFETY: a signal to our own child's pid.
    unsafe {
        libc::kill(r.child.id() as i32, libc::SIGTERM);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    gate.notify_waiters();
    let mut answered = Vec::new();
    for t in tasks {
        if let Some(id) = t.await.unwrap() {
            answered.push(id);
        }
    }
    let status = tokio::task::spawn_blocking(move || r.terminate(Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(
        answered.len(),
        40,
        "in-flight requests finish during the grace period"
    );
    for id in &answered {
        let n = count(
            &url,
            &format!("SELECT count(*) FROM requests WHERE id = '{id}'"),
        );
        assert_eq!(n, 1, "row of answered request {id}");
    }
    assert!(verify(&url).0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_made_on_replica_1_works_on_replica_3_within_2s_and_its_revocation_too() {
    let Some(base) = server_url() else { return };
    let url = fresh_db(&base, "t_keys");
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(|_| MockReply::Json(200, completion())).await;
    let replicas: Vec<Replica> = (0..3)
        .map(|i| Replica::start(&config(&mock, &url, dir.path(), i), dir.path(), i))
        .collect();
    let made: Value = client()
        .post(replicas[0].url("/admin/keys"))
        .bearer_auth(MASTER)
        .json(&json!({"name": "shared"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let t = Instant::now();
    let secret = made["secret"].as_str().unwrap().to_string();
    let id = made["id"].as_str().unwrap().to_string();
    let mut n = 0;
    loop {
        n += 1;
        if chat(&replicas[2], &format!("k-{n}"), &secret)
            .await
            .status()
            == 200
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "key not honoured on replica 3 within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let revoked = client()
        .delete(replicas[0].url(&format!("/admin/keys/{id}")))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let t = Instant::now();
    loop {
        n += 1;
        if chat(&replicas[2], &format!("k-{n}"), &secret)
            .await
            .status()
            == 401
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "revocation not honoured within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schema_newer_than_the_binary_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(|_| MockReply::Json(200, completion())).await;
    let serve = |yaml: String| {
        let path = dir.path().join("newer.yaml");
        std::fs::write(&path, yaml).unwrap();
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .output()
            .unwrap()
    };
    // SQLite: a file migrated by a "newer release".
    let db = dir.path().join("log.db");
    {
        let c = sluice::store::open(&db).unwrap();
        c.execute(
            "INSERT INTO schema_migrations VALUES (99, '0099_future', 0)",
            [],
        )
        .unwrap();
    }
    let out = serve(format!(
        "{}log:\n  path: {}\n",
        one_deployment(&mock.url("/v1")),
        db.display()
    ));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("schema is at version 99, newer than this Sluice knows (version 8)"),
        "{err}"
    );
    // PostgreSQL, the same.
    let Some(base) = server_url() else { return };
    let url = fresh_db(&base, "t_newer");
    let u = url.clone();
    std::thread::spawn(move || {
        sluice::store::pg::PgStore::connect(&u).unwrap();
    })
    .join()
    .unwrap();
    with_pg(&url, |c| {
        c.execute(
            "INSERT INTO schema_migrations VALUES (99, '0099_future', 0)",
            &[],
        )
        .unwrap();
    });
    let out = serve(config(&mock, &url, dir.path(), 0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "the postgres log's schema is at version 99, newer than this Sluice knows (version 10)"
        ),
        "{err}"
    );
}

/// A cluster of its own (this test stops it mid-run), removed when dropped.
struct Cluster {
    dir: String,
    url: String,
}

impl Cluster {
    fn start() -> Cluster {
        let out = Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/pg.sh"))
            .arg("start")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let var = |name: &str| {
            text.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name} in {text}"))
                .to_string()
        };
        Cluster {
            dir: var("SLUICE_PG_DIR"),
            url: var("DATABASE_URL"),
        }
    }

    fn run(&self, what: &str) {
        let ok = Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/pg.sh"))
            .args([what, &self.dir])
            .status()
            .unwrap();
        assert!(ok.success(), "pg.sh {what}");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.url.is_empty() {
            self.run("stop");
        }
    }
}

impl Cluster {
    /// `run` on a handle that does not own the cluster (its drop stops nothing).
    fn run_and_forget(self, what: &str) {
        self.run(what);
    }
}

async fn log_state(r: &Replica) -> Value {
    admin_get(r, "/health/ready").await["log"].clone()
}

/// Waits (30 s at most, `since` naming the event) until `r` says its spill file is replayed
/// (not until a count matches, so an extra row cannot hide behind a wait); its log state.
async fn until_replayed(r: &Replica, since: &str) -> Value {
    let t = Instant::now();
    let mut state = log_state(r).await;
    while !(state["state"] == "ok" && state["spill_pending"] == false) {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "spill not replayed within 30 s {since}: {state}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        state = log_state(r).await;
    }
    state
}

/// Every row's id in the log at `url`, sorted.
fn sorted_ids(url: &str) -> Vec<String> {
    let mut ids: Vec<String> = with_pg(url, |c| {
        c.query("SELECT id FROM requests", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    });
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_stopped_mid_run_answers_keep_flowing_and_every_row_arrives_once_it_is_back() {
    if server_url().is_none() {
        return;
    }
    let pg = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let url = pg.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(|_| MockReply::Json(200, completion())).await;
    let replicas: Vec<Replica> = (0..2)
        .map(|i| Replica::start(&config(&mock, &url, dir.path(), i), dir.path(), i))
        .collect();
    for i in 0..10 {
        assert_eq!(
            chat(&replicas[i % 2], &format!("before-{i}"), "sk-app")
                .await
                .status(),
            200
        );
    }
    until(10, "10 rows", || {
        count(&url, "SELECT count(*) FROM requests") == 10
    })
    .await;
    tokio::task::spawn_blocking({
        let dir = pg.dir.clone();
        move || {
            Cluster {
                dir,
                url: String::new(),
            }
            .run_and_forget("pause")
        }
    })
    .await
    .unwrap();
    let t = Instant::now();
    for i in 0..20 {
        let r = chat(&replicas[i % 2], &format!("during-{i}"), "sk-app").await;
        assert_eq!(
            r.status(),
            200,
            "answers keep flowing while PostgreSQL is down"
        );
    }
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    // Each replica spills what the store refused and says so (still ready: nothing is lost).
    for r in &replicas {
        let mut state = Value::Null;
        for _ in 0..100 {
            state = log_state(r).await;
            if state["state"] == "spilling" && state["spill_pending"] == true {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(state["state"], "spilling", "{state}");
        assert_eq!(state["backend"], "postgres");
        assert_eq!(state["rows_dropped"], 0);
    }
    assert!(dir.path().join("spill-0.jsonl").exists() && dir.path().join("spill-1.jsonl").exists());
    let d = pg.dir.clone();
    tokio::task::spawn_blocking(move || {
        Cluster {
            dir: d,
            url: String::new(),
        }
        .run_and_forget("resume")
    })
    .await
    .unwrap();
    // Done when each replica says its spill file is replayed (not when a count matches, so an
    // extra row cannot hide behind a wait); then the log holds exactly the 30 answered
    // requests, each once.
    for r in &replicas {
        let state = until_replayed(r, "of PostgreSQL's return").await;
        assert_eq!(state["rows_dropped"], 0);
    }
    let ids = sorted_ids(&url);
    let mut want: Vec<String> = (0..10)
        .map(|i| format!("before-{i}"))
        .chain((0..20).map(|i| format!("during-{i}")))
        .collect();
    want.sort();
    assert_eq!(ids, want, "every answered request's row, exactly once");
    assert_eq!(count(&url, "SELECT count(*) FROM requests"), 30);
    assert!(!dir.path().join("spill-0.jsonl").exists());
    assert!(!dir.path().join("spill-1.jsonl").exists());
    let (ok, out) = verify(&url);
    assert!(ok && out.starts_with("OK: 30 rows verified"), "{out}");
    drop(replicas);
    tokio::task::spawn_blocking(move || drop(pg)).await.unwrap();
}

/// The measure behind "one chain under a lock" (docs/scaling.md): three writers appending
/// 100-row batches to one chain (locking its head) versus three writers with a chain each
/// (each in its own schema, so nothing is shared). Prints rows/s; run with
/// `SLUICE_PG_BENCH=1 cargo test --test pg_replicas chain_lock -- --nocapture`.
#[test]
fn chain_lock_cost() {
    let Some(base) = server_url() else { return };
    if std::env::var("SLUICE_PG_BENCH").as_deref() != Ok("1") {
        return;
    }
    use rusqlite::types::Value as V;
    use sluice::store::backend::{LogStore, PreparedRow};
    let url = fresh_db(&base, "t_bench");
    with_pg(&url, |c| {
        c.batch_execute("CREATE SCHEMA w0; CREATE SCHEMA w1; CREATE SCHEMA w2")
            .unwrap()
    });
    let row = |i: usize| {
        let mut values = vec![V::Null; 32];
        values[0] = V::Text(format!("bench-{i}"));
        for (k, v) in [
            (1, 1_800_000_000_000i64),
            (2, 900),
            (15, 200),
            (18, 0),
            (20, 12),
            (21, 30),
            (22, 42),
            (23, 0),
            (26, 1),
        ] {
            values[k] = V::Integer(v);
        }
        for k in [4, 5, 27] {
            values[k] = V::Text("full".into());
        }
        values[10] = V::Text("[]".into());
        values[11] = V::Text("[]".into());
        values[28] = V::Text(format!(
            "{{\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}]}}",
            "x".repeat(400)
        ));
        values[30] = V::Text("y".repeat(300));
        PreparedRow {
            values,
            repro: vec![V::Null; sluice::store::backend::extra_columns().len()],
            uid: String::new(),
        }
    };
    let run = |urls: Vec<String>| -> f64 {
        let t = Instant::now();
        let handles: Vec<_> = urls
            .into_iter()
            .map(|u| {
                let rows: Vec<PreparedRow> = (0..100).map(row).collect();
                std::thread::spawn(move || {
                    let mut s = sluice::store::pg::PgStore::connect(&u).unwrap();
                    for _ in 0..30 {
                        s.append(&rows).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        9_000.0 / t.elapsed().as_secs_f64()
    };
    let shared = run(vec![url.clone(), url.clone(), url.clone()]);
    let own = run((0..3)
        .map(|i| format!("{url}?options=-csearch_path%3Dw{i}"))
        .collect());
    println!(
        "3 writers, one chain under a lock: {shared:.0} rows/s; a chain each: {own:.0} rows/s"
    );
    let (ok, out) = verify(&url);
    assert!(ok && out.starts_with("OK: 9000 rows verified"), "{out}");
}

/// A session that holds the chain's head row and never ends its transaction (a replica whose
/// connection went silent mid-append, as the server sees it) does not stall another replica's
/// writer: its lock wait times out (`lock_timeout`), the batch is retried and spilled while
/// answers keep flowing, and once the holder lets go the spilled row lands, in one chain.
#[tokio::test(flavor = "multi_thread")]
async fn a_session_stuck_holding_the_chain_lock_stalls_no_other_writer() {
    let Some(base) = server_url() else { return };
    let url = fresh_db(&base, "t_chain_lock");
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(|_| MockReply::Json(200, completion())).await;
    let r = Replica::start(&config(&mock, &url, dir.path(), 1), dir.path(), 1);
    assert_eq!(chat(&r, "lock-1", "sk-app").await.status(), 200);
    let rows = |n: i64| {
        let u = url.clone();
        move || count(&u, "SELECT count(*) FROM requests") == n
    };
    until(10, "row 1", rows(1)).await;

    // Another session takes the head row and sits on it, idle in its transaction.
    let (locked_tx, locked) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let holder = {
        let u = url.clone();
        std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&u, postgres::NoTls).unwrap();
            let mut tx = c.transaction().unwrap();
            tx.query_one("SELECT head_seq FROM chain WHERE one = 1 FOR UPDATE", &[])
                .unwrap();
            locked_tx.send(()).unwrap();
            released.recv().unwrap();
            tx.rollback().unwrap();
        })
    };
    locked.recv().unwrap();
    // Answered at once: the request never waits for its row.
    let answer = tokio::time::timeout(Duration::from_secs(10), chat(&r, "lock-2", "sk-app"))
        .await
        .expect("answered while the head row is held");
    assert_eq!(answer.status(), 200);
    let spill = dir.path().join("spill-1.jsonl");
    until(30, "row 2 spilled", || {
        std::fs::read_to_string(&spill).is_ok_and(|s| s.contains("lock-2"))
    })
    .await;
    assert!(rows(1)());
    release.send(()).unwrap();
    holder.join().unwrap();
    until(15, "row 2 replayed", rows(2)).await;
    let (ok, out) = verify(&url);
    assert!(ok && out.starts_with("OK: 2 rows verified"), "{out}");
}

/// A PostgreSQL that stops answering without closing anything (a server hung on its disk, as
/// a proxy that the test freezes shows it): the writer waits for its append a bounded time,
/// then spills, so the queue (two rows here) never fills and every request is answered. Once
/// the server answers again, the stalled append commits and the replay skips the rows it
/// wrote: each row is in the log once, in one chain. Before the bound, a request (the seventh
/// here) waited for room in the queue for as long as the server stayed silent.
#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_that_stops_answering_costs_the_writer_a_bounded_wait() {
    let Some(base) = server_url() else { return };
    let url = fresh_db(&base, "t_frozen_log");
    let target = url.split('@').nth(1).unwrap().split('/').next().unwrap();
    let proxy = freeze_proxy::FreezeProxy::start(target.to_string()).await;
    let via_proxy = url.replace(target, &format!("127.0.0.1:{}", proxy.port));
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(|_| MockReply::Json(200, completion())).await;
    let yaml = config(&mock, &via_proxy, dir.path(), 1) + "  queue_capacity: 2\n";
    let r = Replica::start(&yaml, dir.path(), 1);
    assert_eq!(chat(&r, "frozen-0", "sk-app").await.status(), 200);
    let rows = |n: i64| {
        let u = url.clone();
        move || count(&u, "SELECT count(*) FROM requests") == n
    };
    until(10, "row 0", rows(1)).await;

    proxy.freeze();
    let t = Instant::now();
    for i in 1..=12 {
        let answer = tokio::time::timeout(
            Duration::from_secs(20),
            chat(&r, &format!("frozen-{i}"), "sk-app"),
        )
        .await
        .unwrap_or_else(|_| panic!("request {i} not answered within 20 s"));
        assert_eq!(answer.status(), 200);
    }
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    let spill = dir.path().join("spill-1.jsonl");
    until(20, "row 12 spilled", || {
        std::fs::read_to_string(&spill).is_ok_and(|s| s.contains("frozen-12"))
    })
    .await;
    let state = log_state(&r).await;
    assert_eq!(
        (&state["state"], &state["rows_dropped"]),
        (&json!("spilling"), &json!(0)),
        "{state}"
    );

    proxy.thaw();
    until_replayed(&r, "of the thaw").await;
    let ids = sorted_ids(&url);
    let mut want: Vec<String> = (0..=12).map(|i| format!("frozen-{i}")).collect();
    want.sort();
    assert_eq!(ids, want, "every answered request's row, exactly once");
    let (ok, out) = verify(&url);
    assert!(ok && out.starts_with("OK: 13 rows verified"), "{out}");
}

/// The session settings are applied on connect, and an operator's own value (here the URL's
/// `options`) wins over Sluice's.
#[test]
fn session_settings_are_set_unless_the_operator_set_them() {
    let Some(base) = server_url() else { return };
    let url = format!("{base}?options=-c%20idle_in_transaction_session_timeout%3D12345");
    let shown = with_pg(&url, |c| {
        sluice::store::pg::apply_session_settings(c).unwrap();
        [
            "idle_in_transaction_session_timeout",
            "tcp_keepalives_idle",
            "tcp_keepalives_count",
        ]
        .map(|n| {
            c.query_one(&format!("SHOW {n}"), &[])
                .unwrap()
                .get::<_, String>(0)
        })
    });
    assert_eq!(shown, ["12345ms", "10", "3"]);
}

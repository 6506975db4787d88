//! `server.runtime` on a running `sluice serve` process: `per_core` runs `server.workers`
//! request threads on one port, and SIGTERM stops every one of them from accepting while
//! each drains the requests it holds into the log; `shared` runs one work-stealing runtime.

#[path = "support/redis_server.rs"]
mod redis_server;
#[path = "support/replica.rs"]
mod replica;
mod support;

use replica::Replica;
use rusqlite::Connection;
use serde_json::{Value, json};
use sluice::store::chain::{self, Verdict};
use std::sync::Arc;
use support::{Mock, MockReply};

fn answer() -> Value {
    json!({"id":"x","object":"chat.completion","created":1,"model":"m",
           "choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],
           "usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}})
}

fn config(mock: &Mock, server: &str) -> String {
    format!(
        "server:\n  config_poll_ms: 0\n{server}log:\n  path: ${{SLUICE_TEST_DB}}\n\
deployments:\n  - name: a\n    provider: openai\n    base_url: {}\n    model: m\n\
models:\n  - name: default\n    deployments: [a]\n",
        mock.url("/v1")
    )
}

/// The names of the process's threads that start with `sluice-worker-`, sorted.
fn worker_threads(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .filter(|n| n.starts_with("sluice-worker-"))
        .collect();
    names.sort();
    names
}

/// One request on a connection of its own (so the kernel picks a listener for each).
async fn chat_on_new_connection(url: String) -> u16 {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .no_proxy()
        .build()
        .unwrap();
    match client
        .post(url)
        .json(&json!({"model": "default", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
    {
        Ok(r) => {
            let status = r.status().as_u16();
            r.text().await.map_or(0, |_| status)
        }
        Err(_) => 0,
    }
}

fn refused(base: &str) -> bool {
    let addr = base.trim_start_matches("http://");
    std::net::TcpStream::connect(addr).is_err()
}

#[tokio::test(flavor = "multi_thread")]
async fn per_core_threads_stop_accepting_together_and_drain_every_request_into_the_log() {
    const N: usize = 24;
    let gate = Arc::new(tokio::sync::Notify::new());
    let g = gate.clone();
    let mock = Mock::start(move |_| MockReply::JsonAfter(g.clone(), 200, answer())).await;
    let mut r = Replica::start(&config(&mock, "  workers: 3\n  runtime: per_core\n"), &[]);
    // Thread 0 is the main thread; the others start once the listeners are bound (the
    // port may answer a moment before).
    let pid = r.pid();
    r.wait_until(20, "threads sluice-worker-1 and -2", || {
        worker_threads(pid) == ["sluice-worker-1", "sluice-worker-2"]
    });
    let url = r.url("/v1/chat/completions");
    let tasks: Vec<_> = (0..N)
        .map(|_| tokio::spawn(chat_on_new_connection(url.clone())))
        .collect();
    r.wait_until(20, "every request at the upstream", || mock.calls() == N);

    r.signal(libc::SIGTERM);
    // Every thread's listener must close: while one is open, the kernel still hands it new
    // connections.
    r.wait_until(20, "no listener accepts after SIGTERM", || refused(&r.base));
    let mut statuses = Vec::new();
    for t in tasks {
        while !t.is_finished() {
            // A handler counted in `calls` may not be waiting on the gate yet: wake again.
            gate.notify_waiters();
            tokio::task::yield_now().await;
        }
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses, vec![200; N]);
    let status = tokio::task::spawn_blocking(move || {
        let s = r.stop();
        (s, r)
    })
    .await
    .unwrap();
    let (status, r) = status;
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let db = Connection::open(&r.db).unwrap();
    let rows: i64 = db
        .query_row(
            "SELECT count(*) FROM requests WHERE status = 200",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(rows, N as i64);
    assert!(matches!(
        chain::verify(&db).unwrap(),
        Verdict::Ok { rows: 24, .. }
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_runtime_has_no_thread_of_its_own_per_worker_and_serves() {
    let mock = Mock::start(|_| MockReply::Json(200, answer())).await;
    let mut r = Replica::start(&config(&mock, "  workers: 3\n  runtime: shared\n"), &[]);
    assert_eq!(worker_threads(r.pid()), Vec::<String>::new());
    let url = r.url("/v1/chat/completions");
    assert_eq!(chat_on_new_connection(url).await, 200);
    let status = tokio::task::spawn_blocking(move || r.stop()).await.unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

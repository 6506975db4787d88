//! Config reload on a running `sluice serve` process (issue 19, docs/scaling.md): SIGHUP with a
//! valid file swaps the config without dropping the request in flight and prints what
//! changed; an invalid file is refused (error line, metric) and the old config kept; a changed
//! file is picked up by itself.

#[path = "support/redis_server.rs"]
mod redis_server;
#[path = "support/replica.rs"]
mod replica;
mod support;

use replica::Replica;
use serde_json::{Value, json};
use std::sync::Arc;
use support::{Mock, MockReply};

const MASTER: &str = "sk-master-reload";

fn client() -> reqwest::Client {
    static C: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    C.get_or_init(support::client).clone()
}

fn answer() -> Value {
    json!({"id":"x","object":"chat.completion","created":1,"model":"m",
           "choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],
           "usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}})
}

fn config(mock: &Mock, poll_ms: u64, extra_models: &str) -> String {
    format!(
        "server:\n  master_key: {MASTER}\n  config_poll_ms: {poll_ms}\nlog:\n  path: ${{SLUICE_TEST_DB}}\n\
deployments:\n  - name: a\n    provider: openai\n    base_url: {}\n    model: m\n\
models:\n  - name: default\n    deployments: [a]\n{extra_models}",
        mock.url("/v1")
    )
}

/// Replaces `path`'s content in one step (a temporary file renamed over it), as Kubernetes
/// updates a mounted ConfigMap: the replica never sees a half-written file.
fn write_atomically(path: &std::path::Path, text: impl AsRef<[u8]>) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

async fn chat(base: &str, model: &str, content: &str) -> u16 {
    client()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(MASTER)
        .json(&json!({"model": model, "messages":[{"role":"user","content":content}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn replica_view(base: &str) -> Value {
    let v: Value = client()
        .get(format!("{base}/health/ready"))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["replica"].clone()
}

async fn metrics(base: &str) -> String {
    support::get_text(&format!("{base}/metrics"), Some(MASTER)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sighup_reloads_a_valid_file_keeps_requests_and_refuses_an_invalid_one() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let g = gate.clone();
    let mock = Mock::start(move |r| {
        if r.body["messages"][0]["content"] == "slow" {
            MockReply::JsonAfter(g.clone(), 200, answer())
        } else {
            MockReply::Json(200, answer())
        }
    })
    .await;
    let r = Replica::start(&config(&mock, 0, ""), &[]);
    let before = replica_view(&r.base).await;
    let hash0 = before["config"]["hash"].as_str().unwrap().to_string();
    assert_eq!(before["coordination"]["backend"], "in-process");
    assert_eq!(chat(&r.base, "fast", "hi").await, 404);

    // A request in flight on the old config.
    let base = r.base.clone();
    let inflight = tokio::spawn(async move { chat(&base, "default", "slow").await });
    r.wait_until(10, "the slow request reached the upstream", || {
        mock.calls() == 2
    });

    // A valid new file + SIGHUP: swapped, changes printed, hash changed.
    let fast = "  - name: fast\n    deployments: [a]\n";
    write_atomically(&r.config, config(&mock, 0, fast)).unwrap();
    r.signal(libc::SIGHUP);
    r.wait_until(10, "reload printed", || {
        r.stdout().contains("config reloaded (SIGHUP)")
    });
    assert!(
        r.stdout().contains("  models: added fast\n"),
        "{}",
        r.stdout()
    );
    assert_eq!(chat(&r.base, "fast", "hi").await, 200);
    let after = replica_view(&r.base).await;
    let hash1 = after["config"]["hash"].as_str().unwrap().to_string();
    assert_ne!(hash1, hash0);
    assert!(
        r.stdout().contains(&format!("  hash {hash0} -> {hash1}\n")),
        "{}",
        r.stdout()
    );
    assert_eq!(after["config"]["reloads"], 1);

    // The request that started before the reload still gets its answer.
    gate.notify_one();
    assert_eq!(inflight.await.unwrap(), 200);

    // An invalid file + SIGHUP: refused with an error line naming the problem; the running
    // config stays (same hash, `fast` still served); counted.
    write_atomically(
        &r.config,
        config(&mock, 0, "  - name: broken\n    deployments: [nope]\n"),
    )
    .unwrap();
    r.signal(libc::SIGHUP);
    r.wait_until(10, "refusal printed", || {
        r.stderr().contains("config reload (SIGHUP) refused")
    });
    let line = r
        .stderr()
        .lines()
        .find(|l| l.contains("refused"))
        .unwrap()
        .to_string();
    assert!(
        line.contains("models[1].deployments[0]: unknown deployment `nope`"),
        "{line}"
    );
    assert_eq!(chat(&r.base, "fast", "hi").await, 200);
    let view = replica_view(&r.base).await;
    assert_eq!(view["config"]["hash"], hash1.as_str());
    assert_eq!(
        (
            view["config"]["reloads"].as_u64(),
            view["config"]["reload_errors"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let m = metrics(&r.base).await;
    assert!(
        m.contains("sluice_config_reloads_total{result=\"error\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("sluice_config_reloads_total{result=\"ok\"} 1"),
        "{m}"
    );
    assert!(
        m.contains(&format!("sluice_config_info{{hash=\"{hash1}\"}} 1")),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_is_reloaded_by_itself() {
    let mock = Mock::start(|_| MockReply::Json(200, answer())).await;
    let r = Replica::start(&config(&mock, 100, ""), &[]);
    assert_eq!(chat(&r.base, "fast", "hi").await, 404);
    write_atomically(
        &r.config,
        config(&mock, 100, "  - name: fast\n    deployments: [a]\n"),
    )
    .unwrap();
    r.wait_until(10, "reload printed", || {
        r.stdout().contains("config reloaded (file changed)")
    });
    assert_eq!(chat(&r.base, "fast", "hi").await, 200);
    // An invalid content is refused once (not every poll), and the old config kept.
    write_atomically(&r.config, "deployments: [").unwrap();
    r.wait_until(10, "refusal printed", || r.stderr().contains("refused"));
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        r.stderr()
            .matches("error: config reload (file changed) refused")
            .count(),
        1,
        "{}",
        r.stderr()
    );
    assert_eq!(chat(&r.base, "fast", "hi").await, 200);
}

//! The container image, built and run: `deploy/build-image.sh` makes the image FROM scratch
//! (no registry needed) with this test build's binary; podman (runc) runs it with a master key
//! and `--network host` in front of a mock upstream on 127.0.0.1; the official openai Python
//! package drives it; SIGTERM while a request is in flight must let that request finish, stop
//! accepting new connections, log every request and exit 0.
//!
//! Needs podman (tests/run.sh installs Debian's podman, buildah and runc and writes
//! /etc/containers/containers.conf). Skipped with a message where podman is missing, except
//! under CI (`CI=true`), where that is a failure.

mod support;

use serde_json::{Value, json};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

const KEY: &str = "sk-container-test";

fn podman_available() -> bool {
    Command::new("podman")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Removes the container and the image, also when the test fails half-way.
struct Cleanup {
    name: String,
    tag: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "-f", &self.name])
            .output();
        let _ = Command::new("podman")
            .args(["rmi", "-f", &self.tag])
            .output();
    }
}

fn upstream(gate: Arc<tokio::sync::Notify>) -> impl Fn(&Received) -> MockReply {
    move |r| {
        let answer = json!({"id":"c1","object":"chat.completion","created":1,"model":"upstream-model",
            "choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the mock!"},"finish_reason":"stop"}],
            "usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}});
        if r.body["stream"] == true {
            let mut frames: Vec<bytes::Bytes> = ["Hello", " from", " the", " stream!"]
                .iter()
                .map(|p| sse(&chunk(json!({"content": p}), Value::Null)))
                .collect();
            frames.push(sse(&chunk(json!({}), json!("stop"))));
            frames.push(done());
            MockReply::Sse(frames)
        } else if r.body["messages"][0]["content"] == "slow" {
            MockReply::JsonAfter(gate.clone(), 200, answer)
        } else {
            MockReply::Json(200, answer)
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` every 100 ms until it holds, failing the test after `secs` seconds.
async fn until(what: &str, secs: u64, mut f: impl AsyncFnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < end, "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_image_builds_serves_the_sdk_and_drains_on_sigterm() {
    if !podman_available() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "podman is missing under CI: tests/run.sh installs it"
        );
        eprintln!(
            "SKIPPED the container test: podman is not installed (bash tests/run.sh installs it)"
        );
        return;
    }
    let python = std::env::var("SLUICE_PYTHON")
        .expect("SLUICE_PYTHON is not set: run the tests with tests/run.sh, which installs the openai package");
    let id = std::process::id();
    let guard = Cleanup {
        name: format!("sluice-test-{id}"),
        tag: format!("localhost/sluice-test-{id}:latest"),
    };
    let mut build = tokio::process::Command::new("bash");
    build.args([
        "deploy/build-image.sh",
        "--binary",
        env!("CARGO_BIN_EXE_sluice"),
        "--tag",
        &guard.tag,
    ]);
    let out = output_within(build, 600).await;
    assert!(
        out.status.success(),
        "image build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let gate = Arc::new(tokio::sync::Notify::new());
    let mock = Mock::start(upstream(gate.clone())).await;
    let data = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(data.path(), Some(65534), Some(65534)).unwrap();
    let port = free_port();
    let mut run = tokio::process::Command::new("podman");
    run.args([
        "--runtime",
        "runc",
        "run",
        "-d",
        "--network",
        "host",
        "--name",
        &guard.name,
    ])
    .args(["-e", &format!("SLUICE_MASTER_KEY={KEY}")])
    .args(["-e", &format!("LLM_BASE_URL={}", mock.url("/v1"))])
    .args(["-e", "LLM_MODEL=upstream-model"])
    .args(["-v", &format!("{}:/data", data.path().display())])
    .arg(&guard.tag)
    .args(["--listen", &format!("127.0.0.1:{port}")]);
    let out = output_within(run, 120).await;
    assert!(
        out.status.success(),
        "podman run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let base = format!("http://127.0.0.1:{port}");
    until("GET /health", 60, async || {
        client()
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;

    // The official SDK, with the master key.
    let mut sdk = tokio::process::Command::new(&python);
    sdk.arg("tests/sdk/container_client.py")
        .env("OPENAI_BASE_URL", format!("{base}/v1"))
        .env("OPENAI_API_KEY", KEY);
    let out = output_within(sdk, 120).await;
    assert!(
        out.status.success(),
        "SDK client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        got,
        json!({"chat": "Hello from the mock!", "stream": "Hello from the stream!", "model": "upstream-model"})
    );
    let r = client()
        .get(format!("{base}/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the master key is required");

    // A request in flight when SIGTERM arrives.
    let inflight = tokio::spawn({
        let url = format!("{base}/v1/chat/completions");
        async move {
            let r = client()
                .post(url)
                .bearer_auth(KEY)
                .json(
                    &json!({"model": "default", "messages": [{"role": "user", "content": "slow"}]}),
                )
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    });
    until("the slow request reaching the mock", 30, async || {
        mock.calls() == 3
    })
    .await;
    let out = output_within(
        {
            let mut c = tokio::process::Command::new("podman");
            c.args(["kill", "--signal", "TERM", &guard.name]);
            c
        },
        30,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Draining: new connections are refused while the slow request is still open.
    until("the listener closing", 30, async || {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
    })
    .await;
    assert!(!inflight.is_finished());
    gate.notify_one();
    let (status, body) = tokio::time::timeout(Duration::from_secs(30), inflight)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from the mock!"
    );

    let mut wait = tokio::process::Command::new("podman");
    wait.args(["wait", &guard.name]);
    let out = output_within(wait, 60).await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "exit code after SIGTERM"
    );
    // Every request, the in-flight one included, is in the log on the volume.
    let conn = sluice::store::open_existing(&data.path().join("sluice.db")).unwrap();
    let rows: Vec<(String, i64, bool)> = conn
        .prepare("SELECT requested_model, status, stream FROM requests ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [
            ("default".into(), 200, false),
            ("default".into(), 200, true),
            ("default".into(), 200, false)
        ]
    );
    drop(guard);
}

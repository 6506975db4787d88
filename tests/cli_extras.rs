//! Small command-line things: `sluice --version` names the commit, `sluice completions
//! bash|zsh|fish` prints scripts the shells accept, and `sluice export` draws a progress line
//! on a terminal (run under `script`, which gives it a pseudo-terminal) but not into a pipe.

mod support;

use serde_json::json;
use sluice::gateway::Gateway;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

fn run(args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN).args(args).output().unwrap()
}

#[test]
fn version_names_the_commit() {
    let out = run(&["--version"]);
    let v = String::from_utf8(out.stdout).unwrap();
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let commit = std::env::var("SLUICE_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or(head);
    let expected = format!(
        "sluice {} (commit {})\n",
        env!("CARGO_PKG_VERSION"),
        commit.as_deref().unwrap_or("unknown")
    );
    assert_eq!(v, expected);
}

#[test]
fn completions_for_three_shells() {
    let bash = run(&["completions", "bash"]);
    let script = String::from_utf8(bash.stdout).unwrap();
    assert!(script.contains("complete -F _sluice"), "{script}");
    assert!(script.contains("import") && script.contains("completions"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sluice.bash");
    std::fs::write(&file, &script).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let zsh = String::from_utf8(run(&["completions", "zsh"]).stdout).unwrap();
    assert!(zsh.starts_with("#compdef sluice\n"), "{zsh}");
    let fish = String::from_utf8(run(&["completions", "fish"]).stdout).unwrap();
    assert!(fish.contains("complete -c sluice"), "{fish}");
    let bad = run(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[tokio::test]
async fn export_draws_progress_on_a_terminal_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mock = Mock::start(|_| {
        MockReply::Json(200, json!({"id":"c","object":"chat.completion","created":1,"model":"m",
            "choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],
            "usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}))
    })
    .await;
    let yaml = format!(
        "{}log:\n  path: {}\n",
        one_deployment(&mock.url("/v1")),
        db.display()
    );
    let gw = Gateway::with_request_log(sluice::config::parse("t.yaml", &yaml).unwrap()).unwrap();
    let s = Sluice::start_gateway(gw.clone()).await;
    for _ in 0..3 {
        let r = post(
            &s,
            "/v1/chat/completions",
            json!({"model": "default", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        assert_eq!(r.status(), 200);
    }
    gw.flush_log().await;
    s.stop().await;
    let out_file = dir.path().join("out.csv");
    // On a pseudo-terminal: the progress line, ending at 3/3.
    let cmd = format!(
        "{BIN} export --db {} --format csv --out {}",
        db.display(),
        out_file.display()
    );
    let mut script = tokio::process::Command::new("script");
    script.args(["-qec", &cmd, "/dev/null"]);
    let out = output_within(script, 60).await;
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tty}");
    assert!(tty.contains("\rexporting: 3/3 (100%)\r\n"), "{tty:?}");
    assert_eq!(
        std::fs::read_to_string(&out_file).unwrap().lines().count(),
        4
    );
    // Into a pipe: no progress, only the summary.
    let out = run(&[
        "export",
        "--db",
        &db.display().to_string(),
        "--format",
        "jsonl",
        "--out",
        &out_file.display().to_string(),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("exported 3 requests to {}\n", out_file.display())
    );
}

#[test]
fn the_sbom_lists_the_binarys_dependency_tree() {
    let out = std::process::Command::new("python3")
        .arg("deploy/sbom.py")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["bomFormat"].as_str(), v["specVersion"].as_str()),
        (Some("CycloneDX"), Some("1.5"))
    );
    let root = &v["metadata"]["component"];
    assert_eq!(
        root["purl"],
        format!("pkg:cargo/sluice@{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(root["licenses"][0]["expression"], "Apache-2.0");
    let comps = v["components"].as_array().unwrap();
    let names: Vec<&str> = comps.iter().map(|c| c["name"].as_str().unwrap()).collect();
    // Normal dependencies, direct and transitive; no dev-dependencies.
    for n in [
        "axum",
        "tokio",
        "rusqlite",
        "maud",
        "clap_complete",
        "hyper",
    ] {
        assert!(names.contains(&n), "{n} missing");
    }
    for n in ["insta", "proptest", "tempfile"] {
        assert!(!names.contains(&n), "{n} is a dev-dependency");
    }
    for c in comps {
        let purl = format!(
            "pkg:cargo/{}@{}",
            c["name"].as_str().unwrap(),
            c["version"].as_str().unwrap()
        );
        assert_eq!(c["purl"], purl);
        assert_eq!(c["hashes"][0]["alg"], "SHA-256", "{c}");
        assert_eq!(c["hashes"][0]["content"].as_str().unwrap().len(), 64);
    }
    // The graph names only listed components.
    let refs: std::collections::HashSet<&str> = comps
        .iter()
        .map(|c| c["bom-ref"].as_str().unwrap())
        .chain([root["bom-ref"].as_str().unwrap()])
        .collect();
    for d in v["dependencies"].as_array().unwrap() {
        assert!(refs.contains(d["ref"].as_str().unwrap()));
        for x in d["dependsOn"].as_array().unwrap() {
            assert!(refs.contains(x.as_str().unwrap()), "{x}");
        }
    }
}

//! `sluice import litellm`: LiteLLM proxy configs written in the shapes LiteLLM's documentation
//! shows (tests/fixtures/litellm/) → Sluice configs (golden snapshots, with the report of what
//! was not imported); the binary's output passes `sluice check`; an imported config serves a
//! request to a mock upstream with the key from the environment.

mod support;

use serde_json::json;
use sluice::cli::import::import_litellm;
use support::{Mock, MockReply, Sluice, client, output_within};

const FIXTURES: [&str; 4] = ["quickstart", "load_balancing", "local", "hosted"];

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("tests/fixtures/litellm/{name}.yaml")).unwrap()
}

#[test]
fn documented_shapes_import_as_the_snapshots_show() {
    for name in FIXTURES {
        let (yaml, _) = import_litellm(&format!("{name}.yaml"), &fixture(name)).unwrap();
        insta::with_settings!({snapshot_path => "snapshots/import_litellm", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!(name, yaml);
        });
    }
}

#[test]
fn every_setting_left_out_is_reported_with_its_key_path() {
    let (_, notes) = import_litellm("load_balancing.yaml", &fixture("load_balancing")).unwrap();
    let paths: Vec<&str> = notes.iter().map(|n| n.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "model_list[0].litellm_params.model",
            "model_list[1].litellm_params.stream_timeout",
            "model_list[1].model_info.id",
            "model_list[1].model_info.mode",
            "model_list[1].model_info.base_model",
            "model_list[3].litellm_params.temperature",
            "model_list[3].litellm_params.max_tokens",
            "model_list[4].litellm_params.input_cost_per_token",
            "router_settings.allowed_fails",
            "router_settings.fallbacks[1].claude-sonnet",
            "router_settings.context_window_fallbacks",
            "router_settings.redis_host",
            "router_settings.redis_port",
            "litellm_settings.drop_params",
            "litellm_settings.success_callback",
            "general_settings.database_url",
        ]
    );
    assert!(
        notes[0].message.contains("provider `azure`"),
        "{:?}",
        notes[0]
    );
    // Not YAML at all: an error naming the file, no output.
    let e = import_litellm("bad.yaml", "model_list: [\n").unwrap_err();
    assert!(e.starts_with("bad.yaml: not YAML"), "{e}");
}

#[tokio::test]
async fn the_binary_writes_a_config_that_sluice_check_accepts() {
    let dir = tempfile::tempdir().unwrap();
    for name in FIXTURES {
        let out = dir.path().join(format!("{name}.sluice.yaml"));
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.args([
            "import",
            "litellm",
            &format!("tests/fixtures/litellm/{name}.yaml"),
            "-o",
        ])
        .arg(&out);
        let o = output_within(cmd, 30).await;
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{name}: {stderr}");
        assert!(
            o.stdout.is_empty(),
            "{name}: the config goes to -o, not stdout"
        );
        assert!(
            stderr.contains("not imported as written:"),
            "{name}: {stderr}"
        );
        let mut check = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
        check.args(["check", "--config"]).arg(&out);
        for var in [
            "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY",
            "BACKUP_KEY",
            "LITELLM_MASTER_KEY",
            "GROQ_API_KEY",
            "TOGETHERAI_API_KEY",
            "FIREWORKS_AI_API_KEY",
            "MISTRAL_API_KEY",
            "DEEPSEEK_API_KEY",
            "OPENROUTER_API_KEY",
        ] {
            check.env(var, "sk-test");
        }
        let c = output_within(check, 30).await;
        assert!(
            c.status.success(),
            "{name}: sluice check failed: {}",
            String::from_utf8_lossy(&c.stderr)
        );
        assert!(String::from_utf8_lossy(&c.stdout).starts_with("config OK"));
    }
    // Without -o the config goes to stdout and the report to stderr.
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args([
        "import",
        "litellm",
        "tests/fixtures/litellm/quickstart.yaml",
    ]);
    let o = output_within(cmd, 30).await;
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("- name: gpt-3.5-turbo-openai\n"),
        "{stdout}"
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "1 setting(s) not imported as written:\n  general_settings.master_key: imported as written: a literal key in a config file; consider ${SLUICE_MASTER_KEY}\n"
    );
}

#[tokio::test]
async fn an_imported_config_serves_a_request() {
    let mock = Mock::start(|_| {
        MockReply::Json(
            200,
            json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "SmolLM2-135M-Instruct",
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}}),
        )
    })
    .await;
    let litellm = fixture("local").replace("http://127.0.0.1:8080/v1", &mock.url("/v1"))
        + "general_settings:\n  master_key: os.environ/LITELLM_MASTER_KEY\n";
    let (yaml, _) = import_litellm("local.yaml", &litellm).unwrap();
    let env = |k: &str| (k == "LITELLM_MASTER_KEY").then(|| "sk-master".to_string());
    let config = sluice::config::parse_with_env("imported", &yaml, env).unwrap();
    let s = Sluice::start_config(config).await;
    let body = json!({"model": "smollm2", "messages": [{"role": "user", "content": "Capital of France?"}]});
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the imported master key is required");
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .bearer_auth("sk-master")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-sluice-deployment"], "smollm2-openai");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Paris.");
    let got = mock.last();
    assert_eq!(got.path, "/v1/chat/completions");
    assert_eq!(got.body["model"], "SmolLM2-135M-Instruct");
    assert_eq!(got.headers["authorization"], "Bearer none");
    s.stop().await;
}

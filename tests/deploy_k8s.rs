//! `deploy/k8s/` validates offline against the Kubernetes schemas (the `kubernetes-validate`
//! Python package, installed by tests/run.sh), the config in its ConfigMap is a valid Sluice
//! config on PostgreSQL, and the drain fits the termination grace period. Also the compose
//! file's `scale` profile config parses.

use std::process::Command;

const MANIFESTS: [&str; 5] = [
    "deploy/k8s/configmap.yaml",
    "deploy/k8s/secret.yaml",
    "deploy/k8s/deployment.yaml",
    "deploy/k8s/service.yaml",
    "deploy/k8s/pdb.yaml",
];

const VALIDATE: &str = r#"
import sys, yaml, kubernetes_validate
for path in sys.argv[1:]:
    for doc in yaml.safe_load_all(open(path)):
        kubernetes_validate.validate(doc, "1.30", strict=True)
        print(path, doc["kind"], "valid")
"#;

#[test]
fn the_manifests_validate_against_the_kubernetes_schemas() {
    let python = std::env::var("SLUICE_PYTHON").expect(
        "SLUICE_PYTHON is not set: run the tests with tests/run.sh, which installs kubernetes-validate",
    );
    let out = Command::new(python)
        .arg("-c")
        .arg(VALIDATE)
        .args(MANIFESTS)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for kind in [
        "ConfigMap valid",
        "Secret valid",
        "Deployment valid",
        "Service valid",
        "PodDisruptionBudget valid",
    ] {
        assert!(text.contains(kind), "{text}");
    }
}

/// The value after `key:` on the first line that has it (the manifests are plain YAML).
fn scalar(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key}"))
        .trim()
        .to_string()
}

#[test]
fn the_configmap_holds_a_valid_postgres_config_and_the_drain_fits_the_grace_period() {
    let cm = std::fs::read_to_string("deploy/k8s/configmap.yaml").unwrap();
    let (_, body) = cm.split_once("sluice.yaml: |\n").unwrap();
    let yaml: String = body
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    // SAFETY: this test binary reads these variables only in the parses below.
    unsafe {
        std::env::set_var("SLUICE_MASTER_KEY", "sk-test");
        std::env::set_var("DATABASE_URL", "postgres://sluice@db:5432/sluice");
    }
    let c = sluice::config::parse("configmap.yaml", &yaml).unwrap();
    assert_eq!(c.log.backend, sluice::config::log::LogBackend::Postgres);
    assert_eq!(
        c.log.url.as_deref(),
        Some("postgres://sluice@db:5432/sluice")
    );
    let dep = std::fs::read_to_string("deploy/k8s/deployment.yaml").unwrap();
    assert_eq!(scalar(&dep, "replicas"), "3");
    assert!(dep.contains("path: /health/ready") && dep.contains("path: /health,"));
    let grace_s: u64 = scalar(&dep, "terminationGracePeriodSeconds")
        .parse()
        .unwrap();
    let pre_stop_s: u64 = 5;
    assert!(dep.contains(r#"command: ["sleep", "5"]"#));
    // preStop, then in-flight requests (shutdown_grace_ms), then the log drain (bounded by
    // the same grace): all within the pod's termination grace period.
    let drain_s = pre_stop_s + 2 * c.server.shutdown_grace_ms / 1000;
    assert!(drain_s < grace_s, "drain {drain_s} s vs grace {grace_s} s");
    let scale = std::fs::read_to_string("deploy/scale.yaml").unwrap();
    let c = sluice::config::parse("deploy/scale.yaml", &scale).unwrap();
    assert_eq!(c.log.backend, sluice::config::log::LogBackend::Postgres);
}

//! The "PostgreSQL + coordinator" scenario of the overhead benchmark (issue 19): a second
//! Sluice with `log.backend: postgres` and `coordination.redis`, and a key with a rate limit
//! and a budget, so every request is admitted by the coordinator's Lua function (limit and
//! budget reservation) and settled after, and its row goes to PostgreSQL. Chat, not streamed,
//! at 1 and 16 connections, taking turns with the bare hop of the same run.
//!
//! PostgreSQL is started by `tests/support/pg.sh` and Redis as the tests start it
//! (`tests/support/redis_server.rs`), both on 127.0.0.1 with data in temporary folders,
//! stopped at the end. When either is not installed the scenario is not measured, and its row
//! says why.

#[path = "../../tests/support/redis_server.rs"]
mod redis_server;

use super::load::{self, Expect, Report};
use super::proc::{Proc, spawn_announced};
use super::report::{DialectRow, Measured};
use bytes::Bytes;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The scenario's name in the report.
pub const NAME: &str = "PostgreSQL + coordinator";

/// The key every request carries (its limit and budget are never reached).
const KEY: &str = "sk-bench-scale";

/// Where the scenario runs: the bare hop to compare with and how to judge answers.
pub struct Setup<'a> {
    /// The mock upstream's base URL.
    pub mock: &'a str,
    /// The bare hop's base URL and PID.
    pub bare: (&'a str, u32),
    /// The `sluice` binary.
    pub sluice_bin: &'a str,
    /// Worker threads of Sluice (`TOKIO_WORKER_THREADS`).
    pub workers: usize,
    /// The request body (chat, not streamed, model `default`).
    pub body: Bytes,
    /// `SLUICE_BENCH_SCALE`.
    pub scale: f64,
    /// Turns per target (the other scenarios' count).
    pub rounds: usize,
    /// Called with each turn's report (the smoke run fails on errors).
    pub check: &'a dyn Fn(&str, &Report),
}

/// A throwaway PostgreSQL cluster (tests/support/pg.sh), stopped and deleted when dropped.
struct Postgres {
    dir: String,
    url: String,
}

fn pg_sh() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/pg.sh")
}

impl Postgres {
    fn start() -> Result<Postgres, String> {
        let out = Command::new("bash")
            .args([pg_sh(), "start"])
            .output()
            .map_err(|e| format!("cannot run pg.sh: {e}"))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let first = err.lines().next().unwrap_or("pg.sh start failed");
            return Err(first.trim_start_matches("pg.sh: ").to_string());
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let var = |name: &str| {
            text.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .map(str::to_string)
        };
        match (var("SLUICE_PG_DIR"), var("DATABASE_URL")) {
            (Some(dir), Some(url)) => Ok(Postgres { dir, url }),
            _ => Err(format!("pg.sh start printed no address: {text}")),
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .args([pg_sh(), "stop", &self.dir])
            .status();
    }
}

/// `sluice serve` over the scale-out config; killed when dropped.
fn start_sluice(bin: &str, config: &std::path::Path, workers: usize) -> Result<Proc, String> {
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .arg("--config")
        .arg(config)
        .env_remove("RUST_LOG")
        .env("TOKIO_WORKER_THREADS", workers.to_string());
    spawn_announced(cmd).map_err(|e| format!("sluice (PostgreSQL + coordinator): {e}"))
}

/// The config: one priced deployment on the mock, the PII policy of the other scenarios, a
/// key with a rate limit and a budget (far from reached), the log on PostgreSQL and the
/// coordinator on Redis (`fail_closed`: an uncoordinated request fails the run).
fn config(mock: &str, db: &str, redis: &str, spill: &std::path::Path) -> String {
    format!(
        "server:\n  listen: 127.0.0.1:0\n  config_poll_ms: 0\n\
deployments:\n  - name: bench\n    provider: openai\n    base_url: {mock}/v1\n    model: bench\n    price: {{input: 1.0, output: 2.0}}\n\
models:\n  - name: default\n    deployments: [bench]\n\
keys:\n  - name: bench\n    key: {KEY}\n    rpm: 1000000000\n    tpm: 1000000000\n    budget: {{usd: 1000000, period: day}}\n\
policies:\n  - name: personal-data-stays-local\n    when: {{pii: any}}\n    require: {{hosting: local}}\n\
log:\n  backend: postgres\n  url: {db}\n  prompts: full\n  spill_path: {}\n\
coordination:\n  redis:\n    url: {redis}\n    prefix: bench\n    on_unavailable: fail_closed\n",
        spill.display()
    )
}

/// `connections` workers sending `requests` requests in all, each with the key.
async fn closed(url: &str, body: &Bytes, connections: usize, requests: usize) -> Report {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(v) = reqwest::header::HeaderValue::from_str(&format!("Bearer {KEY}")) {
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(connections)
        .default_headers(headers)
        .build()
        .unwrap_or_default();
    let started = Instant::now();
    let counter = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (client, url, body, counter) = (
            client.clone(),
            url.to_string(),
            body.clone(),
            counter.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            while counter.fetch_add(1, Ordering::Relaxed) < requests {
                let expect = Expect::default();
                out.push(
                    load::one(&client, &url, body.clone(), Instant::now(), false, expect).await,
                );
            }
            out
        }));
    }
    let mut samples = Vec::new();
    for w in workers {
        samples.extend(w.await.unwrap_or_default());
    }
    Report {
        samples,
        elapsed: started.elapsed(),
    }
}

/// Measures the scenario: a row like the inbound-API rows (bare hop and Sluice at 1 and 16
/// connections, CPU of each process), or why it was not measured (`not measured: …`).
pub async fn measure(s: Setup<'_>) -> Result<DialectRow, String> {
    let not = |why: String| format!("not measured: {why}");
    let redis_bin = std::env::var("SLUICE_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
    let installed = Command::new(&redis_bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|st| st.success());
    if !installed {
        return Err(not(format!(
            "`{redis_bin}` is not installed (apt-get install redis-server)"
        )));
    }
    let pg = tokio::task::spawn_blocking(Postgres::start)
        .await
        .map_err(|e| not(e.to_string()))?
        .map_err(not)?;
    let redis = tokio::task::spawn_blocking(redis_server::RedisServer::start)
        .await
        .map_err(|e| not(format!("redis-server: {e}")))?;
    let dir = tempfile::tempdir().map_err(|e| not(e.to_string()))?;
    let cfg = dir.path().join("scale.yaml");
    std::fs::write(
        &cfg,
        config(
            s.mock,
            &pg.url,
            &redis.url(),
            &dir.path().join("spill.jsonl"),
        ),
    )
    .map_err(|e| not(e.to_string()))?;
    let sluice = start_sluice(s.sluice_bin, &cfg, s.workers).map_err(not)?;
    let sluice_pid = sluice.child.id();
    let path = "/v1/chat/completions";
    let targets = [
        (s.bare.0.to_string(), s.bare.1),
        (sluice.url.clone(), sluice_pid),
    ];
    let n = |full: usize| ((full as f64) * s.scale).ceil().max(4.0) as usize;
    for (base, _) in &targets {
        closed(&format!("{base}{path}"), &s.body, 4, n(400)).await;
    }
    let mut out = [(); 4].map(|_| Measured::default());
    for (k, (connections, requests)) in [(1, 1000), (16, 6000)].into_iter().enumerate() {
        let per_round = (n(requests) / s.rounds.max(1)).max(connections);
        for _ in 0..s.rounds.max(1) {
            for (j, (base, pid)) in targets.iter().enumerate() {
                let before = super::cpu_ticks(*pid).unwrap_or(0);
                let report =
                    closed(&format!("{base}{path}"), &s.body, connections, per_round).await;
                let name = if j == 0 { "bare" } else { NAME };
                (s.check)(&format!("{name} c={connections}"), &report);
                let ticks = super::cpu_ticks(*pid).unwrap_or(0).saturating_sub(before);
                out[k * 2 + j].absorb(report, ticks);
            }
        }
    }
    drop(sluice);
    drop(redis);
    tokio::task::spawn_blocking(move || drop(pg))
        .await
        .map_err(|e| not(e.to_string()))?;
    let [bare_c1, sluice_c1, bare_c16, sluice_c16] = out;
    Ok(DialectRow {
        name: NAME,
        stream: false,
        bare_c1,
        sluice_c1,
        bare_c16,
        sluice_c16,
    })
}

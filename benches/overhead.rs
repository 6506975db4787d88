//! Overhead benchmark: Sluice (policies with PII scanning and the SQLite log switched on)
//! against a direct call to the mock and a bare axum+reqwest hop, in one run, as ratios.
//!
//! `cargo bench --bench overhead` (or `benches/overhead.sh`) runs it at full scale and writes
//! `benches/RESULTS.md`; `cargo test --all-targets` runs it at a tiny scale (a smoke run that
//! keeps it from rotting: no figures asserted, but every answer must succeed). Processes: this binary re-executes itself as
//! the mock upstream and as the bare forwarder (`SLUICE_BENCH_ROLE`), and starts the `sluice`
//! binary, so each has its own memory and CPU accounting.

use bytes::Bytes;
mod benchkit;
use benchkit::proc::Proc;
use benchkit::report::{self, Measured};
use benchkit::{load, mock::MockSettings};
use std::io::Write;
use std::process::Command;
use std::time::Duration;

fn main() {
    match std::env::var("SLUICE_BENCH_ROLE").as_deref() {
        Ok("mock") => return role_mock(),
        Ok("bare") => return role_bare(),
        _ => {}
    }
    let full = std::env::args().any(|a| a == "--bench");
    let scale: f64 = std::env::var("SLUICE_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 1.0 } else { 0.005 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("runtime: {e}")));
    let table = rt.block_on(drive(scale, full));
    println!("{table}");
    if full {
        let path =
            std::env::var("SLUICE_BENCH_OUT").unwrap_or_else(|_| "benches/RESULTS.md".into());
        if let Err(e) = std::fs::write(&path, &table) {
            eprintln!("cannot write {path}: {e}");
        } else {
            eprintln!("wrote {path}");
        }
    }
}

/// The smoke run (inside `cargo test`) fails when a scenario sent nothing or any answer was
/// not a 2xx with its whole body: a benchmark of error pages measures nothing. The full run
/// reports errors in its table instead.
fn check_answers(full: bool, what: &str, report: &load::Report) {
    if full {
        return;
    }
    if report.samples.is_empty() || report.errors() > 0 {
        fail(&format!(
            "{what}: {} of {} answers failed",
            report.errors(),
            report.samples.len()
        ));
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("overhead bench: {msg}");
    std::process::exit(2)
}

/// Worker threads of the mock, the bare hop and Sluice: `SLUICE_BENCH_WORKERS`, default 1.
fn workers() -> usize {
    env_u64("SLUICE_BENCH_WORKERS", 1).max(1) as usize
}

/// Sluice's worker threads: `SLUICE_BENCH_SLUICE_WORKERS`, default [`workers`].
fn sluice_workers() -> usize {
    env_u64("SLUICE_BENCH_SLUICE_WORKERS", workers() as u64).max(1) as usize
}

/// The mock's and the bare hop's runtime: [`workers`] threads.
fn one_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers())
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("runtime: {e}")))
}

fn role_mock() {
    let settings = MockSettings {
        chunk_delay_ms: env_u64("SLUICE_BENCH_CHUNK_DELAY_MS", 0),
        first_byte_ms: env_u64("SLUICE_BENCH_FIRST_BYTE_MS", 0),
        chunks: env_u64("SLUICE_BENCH_CHUNKS", 8) as usize,
        piece_bytes: 24,
    };
    one_thread_runtime().block_on(async move {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| fail(&format!("bind: {e}")));
        announce(&l);
        let _ = benchkit::mock::serve(l, settings).await;
    });
}

fn role_bare() {
    let upstream = std::env::var("SLUICE_BENCH_UPSTREAM").unwrap_or_else(|_| fail("no upstream"));
    if std::env::var("SLUICE_BENCH_BARE_RUNTIME").as_deref() == Ok("per_core") {
        return bare_per_core(upstream);
    }
    one_thread_runtime().block_on(async move {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| fail(&format!("bind: {e}")));
        announce(&l);
        let _ = benchkit::bare::serve(l, upstream).await;
    });
}

/// The bare hop on Sluice's `per_core` runtime: [`workers`] threads, each with its own
/// single-threaded runtime, `SO_REUSEPORT` listener and client (`SLUICE_BENCH_BARE_RUNTIME=
/// per_core`), to compare like for like with Sluice's default.
fn bare_per_core(upstream: String) {
    let single = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| fail(&format!("runtime: {e}")))
    };
    single().block_on(async move {
        let addr = ([127, 0, 0, 1], 0).into();
        let mut ls = sluice::cli::runtime::bind(addr, workers())
            .await
            .unwrap_or_else(|e| fail(&format!("bind: {e}")));
        let own = ls.remove(0);
        for l in ls {
            let l = l
                .into_std()
                .unwrap_or_else(|e| fail(&format!("listener: {e}")));
            let rt = single();
            let up = upstream.clone();
            std::thread::spawn(move || {
                rt.block_on(async move {
                    let l = tokio::net::TcpListener::from_std(l)
                        .unwrap_or_else(|e| fail(&format!("listener: {e}")));
                    let _ = benchkit::bare::serve(l, up).await;
                })
            });
        }
        announce(&own);
        let _ = benchkit::bare::serve(own, upstream).await;
    });
}

fn announce(l: &tokio::net::TcpListener) {
    let addr = l
        .local_addr()
        .unwrap_or_else(|e| fail(&format!("addr: {e}")));
    println!("listening on http://{addr}");
    let _ = std::io::stdout().flush();
}

fn env_u64(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

/// Starts `cmd` and waits for its address ([`benchkit::proc::spawn_announced`]); a failure
/// ends the run.
fn spawn(cmd: Command) -> Proc {
    benchkit::proc::spawn_announced(cmd).unwrap_or_else(|e| fail(&e))
}

fn self_as(role: &str, envs: &[(&str, String)]) -> Proc {
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(&format!("current_exe: {e}")));
    let mut cmd = Command::new(exe);
    cmd.env("SLUICE_BENCH_ROLE", role);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    spawn(cmd)
}

fn sluice_config(mock: &str, slow: &str, db: &str) -> String {
    format!(
        r#"server:
  listen: 127.0.0.1:0
deployments:
  - name: bench
    provider: openai
    base_url: {mock}/v1
    model: bench
  - name: slow
    provider: openai
    base_url: {slow}/v1
    model: bench
  - name: claude
    provider: anthropic
    base_url: {mock}
    model: bench
    api_key: bench-key
  - name: native-responses
    provider: openai
    base_url: {mock}/v1
    model: bench
    supports: [responses]
models:
  - name: default
    deployments: [bench]
  - name: messages-native
    deployments: [claude]
  - name: responses-native
    deployments: [native-responses]
{extra}"#,
        extra = feature_config(db)
    )
}

/// The features that are on the hot path, as far as this build has them: policies with PII
/// scanning and the SQLite log in `full` mode.
fn feature_config(db: &str) -> String {
    let mut out = String::new();
    let probe = |yaml: &str| sluice::config::parse("probe", yaml).is_ok();
    let policies = "policies:\n  - name: personal-data-stays-local\n    when: {pii: any}\n    require: {hosting: local}\n";
    if probe(policies) {
        out.push_str(policies);
    }
    let log = format!("log:\n  path: {db}\n  prompts: full\n");
    if probe(&log) {
        out.push_str(&log);
    }
    out
}

const BODY: &str = r#"{"model":"default","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Write one short sentence about rivers and lakes, please."}],"max_tokens":32}"#;

fn body(stream: bool) -> Bytes {
    if stream {
        Bytes::from(BODY.replacen("{\"model\"", "{\"stream\":true,\"model\"", 1))
    } else {
        Bytes::from_static(BODY.as_bytes())
    }
}

/// How many interleaved turns each scenario is split into.
const ROUNDS: usize = 3;

/// One turn's share of `mode`.
fn round_of(mode: load::Mode) -> load::Mode {
    match mode {
        load::Mode::Closed {
            connections,
            requests,
        } => load::Mode::Closed {
            connections,
            requests: (requests / ROUNDS).max(connections),
        },
        load::Mode::Open { rate, duration } => load::Mode::Open {
            rate,
            duration: duration / ROUNDS as u32,
        },
    }
}

/// A target of a scenario: its name, base URL and the process whose CPU is counted.
struct Target {
    name: &'static str,
    base: String,
    pid: u32,
}

/// Runs `mode` against each target in turn, ROUNDS times (a slow spell of the machine falls
/// on all of them alike), and merges each target's samples and CPU.
async fn turns(
    targets: &[&Target],
    path: &str,
    body: &Bytes,
    mode: load::Mode,
    expect: load::Expect,
    full: bool,
    what: &str,
) -> Vec<Measured> {
    let mut merged = vec![Measured::default(); targets.len()];
    for _ in 0..ROUNDS {
        for (i, t) in targets.iter().enumerate() {
            let before = benchkit::cpu_ticks(t.pid).unwrap_or(0);
            let url = format!("{}{path}", t.base);
            let report = load::run(&url, body.clone(), round_of(mode), 0, expect).await;
            check_answers(full, &format!("{what} via {}", t.name), &report);
            let ticks = benchkit::cpu_ticks(t.pid)
                .unwrap_or(0)
                .saturating_sub(before);
            merged[i].absorb(report, ticks);
        }
    }
    merged
}

fn n(scale: f64, full: usize) -> usize {
    ((full as f64) * scale).ceil().max(4.0) as usize
}

fn chat_scenarios(scale: f64) -> Vec<(&'static str, bool, load::Mode)> {
    let open = |rate: f64| load::Mode::Open {
        rate,
        duration: Duration::from_secs_f64(6.0 * scale.min(1.0)).max(Duration::from_millis(50)),
    };
    let closed = |connections: usize, requests: usize| load::Mode::Closed {
        connections,
        requests: n(scale, requests),
    };
    vec![
        ("c=1", false, closed(1, 3000)),
        ("c=1 stream", true, closed(1, 2000)),
        ("c=16 saturation", false, closed(16, 30000)),
        ("c=16 stream", true, closed(16, 15000)),
        ("500 req/s", false, open(500.0)),
        ("2000 req/s", false, open(2000.0)),
    ]
}

async fn drive(scale: f64, full: bool) -> String {
    let sluice_bin = env!("CARGO_BIN_EXE_sluice");
    let mock = self_as("mock", &[]);
    let slow = self_as(
        "mock",
        &[
            ("SLUICE_BENCH_CHUNK_DELAY_MS", "100".into()),
            ("SLUICE_BENCH_CHUNKS", "5".into()),
        ],
    );
    let bare = self_as("bare", &[("SLUICE_BENCH_UPSTREAM", mock.url.clone())]);
    let dir = std::env::temp_dir().join(format!("sluice-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let db = dir.join("bench.db");
    let cfg_path = dir.join("bench.yaml");
    let _ = std::fs::write(
        &cfg_path,
        sluice_config(&mock.url, &slow.url, &db.display().to_string()),
    );
    let mut cmd = Command::new(sluice_bin);
    // Sluice gets the same number of worker threads as the mock and the bare hop, so the
    // comparison is like for like (tokio reads `TOKIO_WORKER_THREADS`). Its process log runs
    // at the default level (`info`: a line per request, written to /dev/null), as a user's
    // does.
    cmd.arg("serve")
        .arg("--config")
        .arg(&cfg_path)
        .env_remove("RUST_LOG")
        .env("TOKIO_WORKER_THREADS", sluice_workers().to_string());
    let sluice = spawn(cmd);
    let sluice_pid = sluice.child.id();
    let features = feature_config(&db.display().to_string());
    let direct_t = Target {
        name: "direct",
        base: mock.url.clone(),
        pid: mock.child.id(),
    };
    let bare_t = Target {
        name: "bare",
        base: bare.url.clone(),
        pid: bare.child.id(),
    };
    let sluice_t = Target {
        name: "sluice",
        base: sluice.url.clone(),
        pid: sluice_pid,
    };
    let dialects = benchkit::dialects::all();
    let chat_expect = |stream: bool| load::Expect {
        end: stream.then_some("[DONE]"),
    };
    // Warm-up: connections, caches, the log's first writes, every path once.
    let warm = load::Mode::Closed {
        connections: 4,
        requests: n(scale, 400),
    };
    for t in [&direct_t, &bare_t, &sluice_t] {
        for stream in [false, true] {
            let url = format!("{}/v1/chat/completions", t.base);
            load::run(&url, body(stream), warm, 0, chat_expect(stream)).await;
        }
    }
    for d in &dialects {
        for t in [&bare_t, &sluice_t] {
            let url = format!("{}{}", t.base, d.path);
            load::run(&url, d.body.clone(), warm, 0, d.expect).await;
        }
    }
    let warm_rss = benchkit::rss_kib(sluice_pid).map(|r| r.1).unwrap_or(0);

    let mut rows = Vec::new();
    for (name, stream, mode) in chat_scenarios(scale) {
        let merged = turns(
            &[&direct_t, &bare_t, &sluice_t],
            "/v1/chat/completions",
            &body(stream),
            mode,
            chat_expect(stream),
            full,
            name,
        )
        .await;
        for (t, m) in [&direct_t, &bare_t, &sluice_t].iter().zip(merged) {
            rows.push(report::Row {
                scenario: name,
                target: t.name,
                report: m.report,
                ticks: m.ticks,
            });
        }
    }
    let mut dialect_rows = Vec::new();
    for d in &dialects {
        let mut out = [(); 4].map(|_| Measured::default());
        for (k, (connections, requests)) in [(1, 1000), (16, 6000)].into_iter().enumerate() {
            let mode = load::Mode::Closed {
                connections,
                requests: n(scale, requests),
            };
            let what = format!("{} c={connections}", d.name);
            let merged = turns(
                &[&bare_t, &sluice_t],
                d.path,
                &d.body,
                mode,
                d.expect,
                full,
                &what,
            )
            .await;
            for (j, m) in merged.into_iter().enumerate() {
                out[k * 2 + j] = m;
            }
        }
        let [bare_c1, sluice_c1, bare_c16, sluice_c16] = out;
        dialect_rows.push(report::DialectRow {
            name: d.name,
            stream: d.stream,
            bare_c1,
            sluice_c1,
            bare_c16,
            sluice_c16,
        });
    }
    let scale_out = benchkit::scale::measure(benchkit::scale::Setup {
        mock: &mock.url,
        bare: (&bare.url, bare.child.id()),
        sluice_bin,
        workers: workers(),
        body: body(false),
        scale,
        rounds: ROUNDS,
        check: &|what: &str, r: &load::Report| check_answers(full, what, r),
    })
    .await;
    let mut not_measured = Vec::new();
    match scale_out {
        Ok(row) => dialect_rows.push(row),
        Err(why) => not_measured.push((benchkit::scale::NAME, why)),
    }
    let (peak_rss, _) = benchkit::rss_kib(sluice_pid).unwrap_or((0, 0));

    // Chunks are forwarded as they come: a mock chunk every 100 ms.
    let slow_body = Bytes::from(BODY.replacen(
        "{\"model\":\"default\"",
        "{\"stream\":true,\"model\":\"slow\"",
        1,
    ));
    let delays =
        load::chunk_delays(&format!("{}/v1/chat/completions", sluice.url), slow_body).await;

    // Soak: streamed requests with 10% of clients leaving mid-stream, then RSS again. Its
    // warm-up is the same workload at a tenth of the length, so the baseline RSS already holds
    // what that traffic keeps by design (pooled connections, allocator pages).
    let soak_n = n(scale, 10_000);
    let soak_secs = if full { 60.0 } else { 0.2 };
    let soak_mode = |n: usize, secs: f64| load::Mode::Open {
        rate: n as f64 / secs,
        duration: Duration::from_secs_f64(secs),
    };
    let chat_url = format!("{}/v1/chat/completions", sluice.url);
    load::run(
        &chat_url,
        body(true),
        soak_mode(soak_n / 10 + 1, soak_secs / 10.0),
        10,
        chat_expect(true),
    )
    .await;
    let before_soak_rss = benchkit::rss_kib(sluice_pid).map(|r| r.1).unwrap_or(0);
    let soak = load::run(
        &chat_url,
        body(true),
        soak_mode(soak_n, soak_secs),
        10,
        chat_expect(true),
    )
    .await;
    check_answers(full, "soak", &soak);
    let after_soak_rss = benchkit::rss_kib(sluice_pid).map(|r| r.1).unwrap_or(0);
    let (peak_after_soak, _) = benchkit::rss_kib(sluice_pid).unwrap_or((0, 0));
    let overhead = overhead_quantiles(&sluice.url).await;
    let wrk = if full {
        wrk_cross_check(
            &dir,
            &format!("{}/v1/chat/completions", bare.url),
            &chat_url,
        )
    } else {
        None
    };

    let peak_rss_with_wrk = wrk
        .as_ref()
        .and_then(|_| benchkit::rss_kib(sluice_pid))
        .map(|r| r.0);
    let _ = std::fs::remove_dir_all(&dir);
    report::render(
        &rows,
        &dialect_rows,
        report::Input {
            scale,
            workers: workers(),
            features,
            warm_rss,
            before_soak_rss,
            peak_rss: peak_rss.max(peak_after_soak),
            peak_rss_with_wrk,
            after_soak_rss,
            soak_errors: soak.errors(),
            soak_done: soak.samples.len(),
            chunk_delays: delays,
            overhead,
            wrk,
            not_measured,
        },
    )
}

/// Median and p99 of `sluice_gateway_overhead_seconds` from `/metrics`, µs (bucket upper
/// bounds, so an upper estimate).
async fn overhead_quantiles(base: &str) -> Option<(f64, f64)> {
    let text = reqwest::Client::builder()
        .no_proxy()
        .build()
        .ok()?
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for line in text.lines() {
        if !line.starts_with("sluice_gateway_overhead_seconds_bucket") {
            continue;
        }
        let le = line.split("le=\"").nth(1)?.split('"').next()?;
        let le: f64 = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().ok()?
        };
        let count: f64 = line.rsplit(' ').next()?.parse().ok()?;
        match buckets.iter_mut().find(|b| b.0 == le) {
            Some(b) => b.1 += count,
            None => buckets.push((le, count)),
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    let q = |p: f64| buckets.iter().find(|b| b.1 >= p * total).map(|b| b.0 * 1e6);
    Some((q(0.5)?, q(0.99)?))
}

/// The c=1 median and the 16-connection throughput again, measured by `wrk` (an independent
/// load generator written in C, when installed) for the bare hop and Sluice, taking turns
/// 3 times, 3 s each. A Markdown section, or `None` without `wrk`.
fn wrk_cross_check(dir: &std::path::Path, bare: &str, sluice: &str) -> Option<String> {
    let script = dir.join("post.lua");
    let lua = format!(
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = '{BODY}'\n"
    );
    std::fs::write(&script, lua).ok()?;
    let run = |url: &str, connections: &str| -> Option<(f64, f64)> {
        let out = Command::new("wrk")
            .args(["-t1", "-c", connections, "-d3s", "--latency", "-s"])
            .arg(&script)
            .arg(url)
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let p50 = text
            .lines()
            .find(|l| l.trim_start().starts_with("50%"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(wrk_us)?;
        let rps = text
            .lines()
            .find(|l| l.starts_with("Requests/sec:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())?;
        Some((p50, rps))
    };
    let mut p50 = [Vec::new(), Vec::new()];
    let mut rps = [Vec::new(), Vec::new()];
    for _ in 0..ROUNDS {
        for (i, url) in [bare, sluice].into_iter().enumerate() {
            p50[i].push(run(url, "1")?.0);
            rps[i].push(run(url, "16")?.1);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (pb, ps) = (median(&mut p50[0]), median(&mut p50[1]));
    let (rb, rs) = (median(&mut rps[0]), median(&mut rps[1]));
    Some(format!(
        "\n## Cross-check with wrk\n\nMedians of {ROUNDS} turns of 3 s each.\n\n\
         | measure | bare | sluice | sluice vs bare |\n|---|---|---|---|\n\
         | p50 at c=1, µs | {pb:.0} | {ps:.0} | {:+.0} µs |\n\
         | req/s at 16 connections | {rb:.0} | {rs:.0} | {:.2}× |\n",
        ps - pb,
        rs / rb.max(1e-9)
    ))
}

/// A wrk latency (`172.00us`, `1.20ms`, `2.00s`) in µs.
fn wrk_us(v: &str) -> Option<f64> {
    let (num, mult) = if let Some(n) = v.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|x| x * mult)
}

//! Request-log benchmark: how many rows per second the writer sustains, and how long handing a
//! row to the log takes on the request path (`LogSender::send`, `send_now`).
//!
//! `cargo bench --bench log_writer` runs it at full scale (200 000 rows; 20 000 paced sends);
//! `cargo test --all-targets` runs it at a tiny scale as a smoke run (no figures asserted).
//! Rows are realistic: `log.prompts: full`, a chat request body of ~400 bytes and a response
//! of ~300 bytes, in a temp directory.

use serde_json::json;
use sluice::api::Usage;
use sluice::api::summary::ResponseSummary;
use sluice::config::{LogConfig, LogMode, PiiConfig};
use sluice::store::record::RequestRecord;
use sluice::store::writer::{self, LogSender};
use std::time::{Duration, Instant};

/// Whose request ids the rows carry.
#[derive(Clone, Copy)]
enum Ids {
    /// Sluice's own: UUIDv7, in time order.
    Sluice,
    /// A client's own `x-request-id`: random UUIDv4, as Envoy and Istio add to every request.
    Client,
}

/// Row `i`: every row has its own request hash, as distinct prompts do (a log of identical
/// requests would keep a hash index in order and hide its cost); every tenth ran under
/// deterministic sampling, so the response cache's index takes it. Ids as `ids` says,
/// the same on every run.
fn record(i: u64, ids: Ids) -> RequestRecord {
    use sha2::Digest;
    let started_ms = 1_793_523_600_000 + i;
    let bits = sha2::Sha256::digest(i.to_be_bytes());
    let id = match ids {
        Ids::Sluice => {
            let mut rand = [0u8; 10];
            rand.copy_from_slice(&bits[..10]);
            uuid::Builder::from_unix_timestamp_millis(started_ms, &rand).into_uuid()
        }
        Ids::Client => {
            let mut rand = [0u8; 16];
            rand.copy_from_slice(&bits[..16]);
            uuid::Builder::from_random_bytes(rand).into_uuid()
        }
    };
    RequestRecord {
        id: id.to_string(),
        request_hash: Some(hex::encode(sha2::Sha256::digest(i.to_le_bytes()))),
        deterministic: i.is_multiple_of(10),
        started_ms,
        duration_ms: 420,
        endpoint: "chat.completions",
        requested_model: "default".into(),
        deployment: Some("gemma-local".into()),
        provider: Some("openai"),
        hosting: Some("local"),
        openness: Some("open-weight"),
        status: 200,
        usage: Usage::new(120, 80),
        attempts: 1,
        client_ip: Some("127.0.0.1".into()),
        sampling: Some(json!({"temperature": 0.2, "seed": 7})),
        request_body: serde_json::value::to_raw_value(&json!({"model": "default", "messages": [
            {"role": "system", "content": "You are a helpful assistant. Answer briefly and precisely, in the user's language."},
            {"role": "user", "content": "Summarise the opening hours of the café on the corner of Main Street and tell me whether it serves breakfast on Sundays."}
        ], "temperature": 0.2, "max_tokens": 256})).ok(),
        response: ResponseSummary {
            content: "The café opens at 7:00 on weekdays and 8:00 at weekends, and closes at 18:00. Breakfast is served every day until 11:30, Sundays included; on Sundays there is also a brunch menu from 10:00.".into(),
            finish_reason: Some("stop".into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn start(dir: &std::path::Path, capacity: usize) -> LogSender {
    let cfg = LogConfig {
        path: dir.join("bench.db"),
        prompts: LogMode::Full,
        queue_capacity: capacity,
        ..Default::default()
    };
    writer::start(&cfg, &PiiConfig::default()).unwrap_or_else(|e| {
        eprintln!("cannot start the log: {e}");
        std::process::exit(1)
    })
}

/// Rows per second from the first send to the flush that commits the last row.
async fn throughput(rows: u64, ids: Ids) -> f64 {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic_exit(&e.to_string()));
    let log = start(dir.path(), 10_000);
    let records: Vec<RequestRecord> = (0..rows).map(|i| record(i, ids)).collect();
    let t = Instant::now();
    for r in records {
        log.send(r).await;
    }
    log.flush().await;
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(log.stats().rows_written, rows);
    rows as f64 / secs
}

/// Per-call time of `send` (async path) and `send_now` (streams' sync path), paced at
/// `per_ms` rows per millisecond so the queue does not fill: (median, p99) in µs each.
async fn latency(calls: u64, per_ms: u64) -> ((f64, f64), (f64, f64)) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic_exit(&e.to_string()));
    let log = start(dir.path(), 10_000);
    let mut send = Vec::with_capacity(calls as usize);
    let mut now = Vec::with_capacity(calls as usize);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut i = 0;
    while i < calls {
        tick.tick().await;
        for _ in 0..per_ms {
            let r = record(i, Ids::Sluice);
            let t = Instant::now();
            if i % 2 == 0 {
                log.send(r).await;
                send.push(t.elapsed());
            } else {
                log.send_now(r);
                now.push(t.elapsed());
            }
            i += 1;
        }
    }
    log.flush().await;
    (stats(&mut send), stats(&mut now))
}

fn stats(v: &mut [Duration]) -> (f64, f64) {
    v.sort_unstable();
    let at = |q: f64| {
        let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len().max(1)) - 1;
        v.get(i).map(|d| d.as_secs_f64() * 1e6).unwrap_or(0.0)
    };
    (at(0.5), at(0.99))
}

fn panic_exit(e: &str) -> ! {
    eprintln!("{e}");
    std::process::exit(1)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (rows, calls) = if full {
        (200_000, 20_000)
    } else {
        (2_000, 200)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic_exit(&e.to_string()));
    let rps = rt.block_on(throughput(rows, Ids::Sluice));
    let client_rps = rt.block_on(throughput(rows, Ids::Client));
    let ((s50, s99), (n50, n99)) = rt.block_on(latency(calls, 10));
    println!("log writer: {rows} rows in batches of ≤500 / 50 ms: {rps:.0} rows/s");
    println!("log writer, clients' own random ids (UUIDv4): {client_rps:.0} rows/s");
    println!(
        "record → queue, async send  ({} calls at 10/ms): median {s50:.2} µs, p99 {s99:.2} µs",
        calls / 2
    );
    println!(
        "record → queue, send_now    ({} calls at 10/ms): median {n50:.2} µs, p99 {n99:.2} µs",
        calls / 2
    );
}

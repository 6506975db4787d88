//! The overhead benchmark's report: one table of every scenario against the bare hop of the
//! same run, the targets marked met or not, and the chat scenarios in detail.

use super::load::Report;

/// One target's share of a scenario: its samples and the CPU its process used for them.
#[derive(Default, Clone)]
pub struct Measured {
    /// The samples, merged over the rounds.
    pub report: Report,
    /// CPU ticks (1/100 s) the target's process used over these samples.
    pub ticks: u64,
}

impl Measured {
    /// Adds one round.
    pub fn absorb(&mut self, r: Report, ticks: u64) {
        self.report.samples.extend(r.samples);
        self.report.elapsed += r.elapsed;
        self.ticks += ticks;
    }
}

/// One target's merged samples in one chat scenario.
pub struct Row {
    /// `c=1`, `c=16 stream`, `2000 req/s`, …
    pub scenario: &'static str,
    /// `direct`, `bare` or `sluice`.
    pub target: &'static str,
    /// Its samples.
    pub report: Report,
    /// CPU ticks (1/100 s) its process used for them.
    pub ticks: u64,
}

/// One inbound-API scenario: the bare hop and Sluice at one and at 16 connections.
pub struct DialectRow {
    /// The scenario's name.
    pub name: &'static str,
    /// Whether answers are streams (added latency is then time to first byte).
    pub stream: bool,
    /// Bare hop, 1 connection.
    pub bare_c1: Measured,
    /// Sluice, 1 connection.
    pub sluice_c1: Measured,
    /// Bare hop, 16 connections.
    pub bare_c16: Measured,
    /// Sluice, 16 connections.
    pub sluice_c16: Measured,
}

/// Everything else the report shows.
pub struct Input {
    /// `SLUICE_BENCH_SCALE`.
    pub scale: f64,
    /// Worker threads of each process.
    pub workers: usize,
    /// The features' config text.
    pub features: String,
    /// Sluice's RSS after the first warm-up, KiB.
    pub warm_rss: u64,
    /// RSS after the soak's warm-up, KiB.
    pub before_soak_rss: u64,
    /// Peak RSS (`VmHWM`), KiB.
    pub peak_rss: u64,
    /// Peak RSS (`VmHWM`) once the `wrk` cross-check ran too, KiB; `None` without it.
    pub peak_rss_with_wrk: Option<u64>,
    /// RSS after the soak, KiB.
    pub after_soak_rss: u64,
    /// Failed soak answers.
    pub soak_errors: usize,
    /// Soak answers (clients that stayed).
    pub soak_done: usize,
    /// Each chunk's forwarding delay, µs.
    pub chunk_delays: Vec<u64>,
    /// Sluice's own overhead metric, p50 and p99, µs.
    pub overhead: Option<(f64, f64)>,
    /// The wrk section, when wrk ran.
    pub wrk: Option<String>,
    /// Scenarios this run could not measure: name and `not measured: <reason>`.
    pub not_measured: Vec<(&'static str, String)>,
}

/// A scenario's line in the summary table.
struct Summary {
    name: &'static str,
    added_us: i64,
    bare_rps: f64,
    sluice_rps: f64,
    bare_cpu_ms: f64,
    sluice_cpu_ms: f64,
    /// Sluice's CPU per request at one connection and at 16 (ms), and how many requests each
    /// had: the bridged-vs-chat ratio compares like with like (see `targets`).
    sluice_cpu_by_shape: [(f64, usize); 2],
    errors: usize,
}

/// `(CPU per request in ms, requests)` of one measurement.
fn shape(ticks: u64, requests: usize) -> (f64, usize) {
    (cpu_ms(ticks, requests), requests)
}

/// Bridged CPU per request over chat's at the same load shape: chat's per-request CPU at one
/// and at 16 connections, weighted by the bridged scenario's own request counts. (CPU per
/// request is higher at one connection than at 16, and the chat and dialect scenarios send
/// different shares of requests at each, so comparing their overall averages would bias the
/// ratio.)
/// Each argument is `[(CPU per request ms, requests); 2]`, at one connection and at 16.
pub fn like_for_like(bridged: [(f64, usize); 2], chat: [(f64, usize); 2]) -> f64 {
    let (mut b, mut c) = (0.0, 0.0);
    for ((b_cpu, n), (c_cpu, _)) in bridged.iter().zip(&chat) {
        b += b_cpu * *n as f64;
        c += c_cpu * *n as f64;
    }
    b / c.max(1e-9)
}

fn cpu_ms(ticks: u64, requests: usize) -> f64 {
    ticks as f64 * 10.0 / requests.max(1) as f64
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

fn median(r: &Report, stream: bool) -> u64 {
    if stream {
        r.ttfb_p(50.0)
    } else {
        r.total_p(50.0)
    }
}

fn chat_summary(rows: &[Row], name: &'static str, c1: &str, c16: &str) -> Option<Summary> {
    let get = |s: &str, t: &str| rows.iter().find(|x| x.scenario == s && x.target == t);
    let stream = c1.contains("stream");
    let (b1, s1, b16, s16) = (
        get(c1, "bare")?,
        get(c1, "sluice")?,
        get(c16, "bare")?,
        get(c16, "sluice")?,
    );
    Some(Summary {
        name,
        added_us: median(&s1.report, stream) as i64 - median(&b1.report, stream) as i64,
        bare_rps: b16.report.rps(),
        sluice_rps: s16.report.rps(),
        bare_cpu_ms: cpu_ms(
            b1.ticks + b16.ticks,
            b1.report.samples.len() + b16.report.samples.len(),
        ),
        sluice_cpu_ms: cpu_ms(
            s1.ticks + s16.ticks,
            s1.report.samples.len() + s16.report.samples.len(),
        ),
        sluice_cpu_by_shape: [
            shape(s1.ticks, s1.report.samples.len()),
            shape(s16.ticks, s16.report.samples.len()),
        ],
        errors: s1.report.errors() + s16.report.errors(),
    })
}

fn dialect_summary(d: &DialectRow) -> Summary {
    let cpu = |a: &Measured, b: &Measured| {
        cpu_ms(
            a.ticks + b.ticks,
            a.report.samples.len() + b.report.samples.len(),
        )
    };
    Summary {
        name: d.name,
        added_us: median(&d.sluice_c1.report, d.stream) as i64
            - median(&d.bare_c1.report, d.stream) as i64,
        bare_rps: d.bare_c16.report.rps(),
        sluice_rps: d.sluice_c16.report.rps(),
        bare_cpu_ms: cpu(&d.bare_c1, &d.bare_c16),
        sluice_cpu_ms: cpu(&d.sluice_c1, &d.sluice_c16),
        sluice_cpu_by_shape: [
            shape(d.sluice_c1.ticks, d.sluice_c1.report.samples.len()),
            shape(d.sluice_c16.ticks, d.sluice_c16.report.samples.len()),
        ],
        errors: d.sluice_c1.report.errors() + d.sluice_c16.report.errors(),
    }
}

/// The whole report (Markdown).
pub fn render(rows: &[Row], dialects: &[DialectRow], r: Input) -> String {
    let mut out = header(&r);
    let mut summaries: Vec<Summary> = [
        ("chat", "c=1", "c=16 saturation"),
        ("chat stream", "c=1 stream", "c=16 stream"),
    ]
    .into_iter()
    .filter_map(|(n, a, b)| chat_summary(rows, n, a, b))
    .collect();
    summaries.extend(dialects.iter().map(dialect_summary));
    out.push_str(
        "| scenario | added p50 at c=1 µs (streams: TTFB) | req/s at c=16, bare → sluice | sluice vs bare | CPU per request ms, bare → sluice | errors |\n|---|---|---|---|---|---|\n",
    );
    for s in &summaries {
        out.push_str(&format!(
            "| {} | {} | {:.0} → {:.0} | {:.2}× | {:.3} → {:.3} | {} |\n",
            s.name,
            s.added_us,
            s.bare_rps,
            s.sluice_rps,
            s.sluice_rps / s.bare_rps.max(1e-9),
            s.bare_cpu_ms,
            s.sluice_cpu_ms,
            s.errors
        ));
    }
    for (name, why) in &r.not_measured {
        out.push_str(&format!("| {name} | {why} | | | | |\n"));
    }
    out.push_str(&format!(
        "| 10k-stream soak, 10 % disconnects | {} streams, {} errors; RSS {:.1} → {:.1} MB | | | | {} |\n",
        r.soak_done,
        r.soak_errors,
        r.before_soak_rss as f64 / 1024.0,
        r.after_soak_rss as f64 / 1024.0,
        r.soak_errors
    ));
    out.push_str(&format!(
        "\nPeak RSS of Sluice over all scenarios: {:.1} MB.\n",
        r.peak_rss as f64 / 1024.0
    ));
    if let Some(p) = r.peak_rss_with_wrk.filter(|p| *p > r.peak_rss) {
        out.push_str(&format!(
            "After the `wrk` cross-check (not a scenario; it saturates Sluice harder than the harness): {:.1} MB, rows waiting in the request log's queue while its writer catches up.\n",
            p as f64 / 1024.0
        ));
    }
    targets(&mut out, rows, &summaries, &r);
    detail(&mut out, rows);
    footer(&mut out, &r);
    out
}

fn header(r: &Input) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let features = if r.features.is_empty() {
        "none (this build has no policies/log)".to_string()
    } else {
        r.features
            .lines()
            .filter(|l| !l.starts_with(' '))
            .map(|l| l.trim_end_matches(':'))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "# Sluice overhead benchmark\n\nScale {}; machine: {} cores ({}). Sluice features on: {}. Worker threads of the mock, the bare hop and Sluice: {} each (`SLUICE_BENCH_WORKERS`). Runtimes: Sluice its default (`server.runtime: per_core`), the bare hop {} (`SLUICE_BENCH_BARE_RUNTIME`), the mock tokio's work-stealing one. Sluice's process log at its default level (`info`, a line per request, to /dev/null).\n\n",
        r.scale,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        cpu,
        features,
        r.workers,
        bare_runtime()
    )
}

/// The bare hop's runtime as `SLUICE_BENCH_BARE_RUNTIME` sets it.
pub fn bare_runtime() -> &'static str {
    match std::env::var("SLUICE_BENCH_BARE_RUNTIME").as_deref() {
        Ok("per_core") => "per_core (one single-threaded runtime per thread)",
        _ => "tokio's work-stealing runtime",
    }
}

fn targets(out: &mut String, rows: &[Row], summaries: &[Summary], r: &Input) {
    let get = |s: &str, t: &str| {
        rows.iter()
            .find(|x| x.scenario == s && x.target == t)
            .map(|x| &x.report)
    };
    out.push_str("\n## Targets\n\n| target | measured | goal | met |\n|---|---|---|---|\n");
    let mut row = |name: &str, measured: String, goal: &str, met: bool| {
        out.push_str(&format!(
            "| {name} | {measured} | {goal} | {} |\n",
            if met { "met" } else { "**not met**" }
        ));
    };
    if let (Some(s), Some(b)) = (
        get("c=16 saturation", "sluice"),
        get("c=16 saturation", "bare"),
    ) {
        let ratio = s.rps() / b.rps().max(1e-9);
        row(
            "saturated throughput vs bare, 16 connections (chat)",
            format!("{ratio:.2}×"),
            "≥ 0.8×",
            ratio >= 0.8,
        );
    }
    if let (Some(s), Some(b)) = (get("c=1", "sluice"), get("c=1", "bare")) {
        let d = s.total_p(50.0) as i64 - b.total_p(50.0) as i64;
        row(
            "added median at 1 connection",
            format!("{d} µs"),
            "≤ 50 µs",
            d <= 50,
        );
    }
    if let (Some(s), Some(b)) = (get("c=1 stream", "sluice"), get("c=1 stream", "bare")) {
        let d = s.ttfb_p(50.0) as i64 - b.ttfb_p(50.0) as i64;
        row(
            "added stream time to first byte",
            format!("{d} µs"),
            "≤ 50 µs",
            d <= 50,
        );
    }
    if let (Some(s), Some(b)) = (get("2000 req/s", "sluice"), get("2000 req/s", "bare")) {
        let d = s.total_p(99.0) as i64 - b.total_p(99.0) as i64;
        row(
            "added p99 at 2,000 req/s",
            format!("{d} µs"),
            "≤ 1000 µs",
            d <= 1000,
        );
    }
    row(
        "peak RSS under the scenarios",
        format!("{:.1} MB", r.peak_rss as f64 / 1024.0),
        "≤ 30 MB",
        r.peak_rss <= 30 * 1024,
    );
    let growth =
        (r.after_soak_rss as f64 - r.before_soak_rss as f64) / (r.before_soak_rss.max(1) as f64);
    row(
        "RSS after the 10k-stream soak vs its warm-up",
        format!(
            "{:.1} → {:.1} MB ({:+.0}%), {} streams, {} errors",
            r.before_soak_rss as f64 / 1024.0,
            r.after_soak_rss as f64 / 1024.0,
            growth * 100.0,
            r.soak_done,
            r.soak_errors
        ),
        "within 10%",
        // A leak grows RSS; memory given back (a negative change) is no failure.
        growth <= 0.10 && r.soak_errors == 0,
    );
    let summary = |n: &str| summaries.iter().find(|s| s.name == n);
    for (bridged, native) in [
        ("Responses bridged", "chat"),
        ("Responses bridged stream", "chat stream"),
        ("Messages bridged", "chat"),
        ("Messages bridged stream", "chat stream"),
    ] {
        if let (Some(b), Some(n)) = (summary(bridged), summary(native)) {
            let ratio = like_for_like(b.sluice_cpu_by_shape, n.sluice_cpu_by_shape);
            row(
                &format!("{bridged} vs {native}, CPU per request (same load shape)"),
                // The second figure is chat's CPU per request at the bridged row's shape.
                format!(
                    "{:.3} / {:.3} ms = {ratio:.2}×",
                    b.sluice_cpu_ms,
                    b.sluice_cpu_ms / ratio.max(1e-9),
                ),
                "≤ 1.3×",
                ratio <= 1.3,
            );
        }
    }
    let worst = r.chunk_delays.iter().copied().max().unwrap_or(u64::MAX);
    row(
        "chunk forwarding delay (mock sends every 100 ms)",
        format!("max {} µs over {} chunks", worst, r.chunk_delays.len()),
        "each ≤ 5 ms",
        worst <= 5000 && !r.chunk_delays.is_empty(),
    );
}

fn detail(out: &mut String, rows: &[Row]) {
    out.push_str("\n## Chat in detail (direct = the mock itself)\n\n| scenario | target | p50 ms | p90 ms | p99 ms | TTFB p50 ms | req/s | errors | CPU per request ms | added p50 vs bare µs |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for row in rows {
        let stream = row.scenario.contains("stream");
        let added = rows
            .iter()
            .find(|x| x.scenario == row.scenario && x.target == "bare")
            .map(|b| median(&row.report, stream) as i64 - median(&b.report, stream) as i64)
            .unwrap_or(0);
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.0} | {} | {:.3} | {} |\n",
            row.scenario,
            row.target,
            ms(row.report.total_p(50.0)),
            ms(row.report.total_p(90.0)),
            ms(row.report.total_p(99.0)),
            ms(row.report.ttfb_p(50.0)),
            row.report.rps(),
            row.report.errors(),
            cpu_ms(row.ticks, row.report.samples.len()),
            added,
        ));
    }
}

fn footer(out: &mut String, r: &Input) {
    out.push_str(&format!(
        "\nSluice RSS: {:.1} MB after the first warm-up, {:.1} MB before the soak, {:.1} MB after it.\n",
        r.warm_rss as f64 / 1024.0,
        r.before_soak_rss as f64 / 1024.0,
        r.after_soak_rss as f64 / 1024.0
    ));
    if let Some((p50, p99)) = r.overhead {
        out.push_str(&format!(
            "Sluice's own overhead metric (`sluice_gateway_overhead_seconds`, bucket upper bounds): p50 ≤ {p50:.0} µs, p99 ≤ {p99:.0} µs.\n"
        ));
    }
    if let Some(w) = &r.wrk {
        out.push_str(w);
    }
}

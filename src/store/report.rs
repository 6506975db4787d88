//! Output of the log commands: the `sluice logs` table, `sluice show`, the `sluice usage`
//! table, JSON lines and CSV. Pure functions from rows to text, so the output is tested
//! exactly.

use super::query::UsageReport;
use super::row::{HASHED_COLUMNS, LogRow};
use crate::cli::output::terminal_safe;
use serde_json::Value;
use std::io::Write;

/// `2026-11-01 12:00:00` (UTC) for Unix ms.
pub fn fmt_time(ms: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(fmt).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// `$0.001234`, or `-` when the price is unknown.
pub fn fmt_cost(c: Option<f64>) -> String {
    match c {
        Some(c) => format!("${c:.6}"),
        None => "-".into(),
    }
}

/// `1,234 ms` style durations: `153ms`, `2.4s`.
pub fn fmt_ms(ms: i64) -> String {
    if ms < 10_000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

/// Lays out rows under headers; `right[i]` right-aligns column i. Trailing spaces trimmed.
/// Cells are logged text: each goes through [`terminal_safe`] before the widths are measured,
/// so an escaped control character keeps the columns aligned.
pub fn table(headers: &[&str], rows: &[Vec<String>], right: &[bool]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| terminal_safe(c).into_owned()).collect())
        .collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(c.chars().count());
            if i > 0 {
                s.push_str("  ");
            }
            if right.get(i).copied().unwrap_or(false) {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("-")
}

fn tokens(r: &LogRow) -> String {
    let est = if r.usage_estimated { "~" } else { "" };
    format!("{est}{}/{est}{}", r.prompt_tokens, r.completion_tokens)
}

/// The `sluice logs` table: time, model → deployment, hosting/tier, status, tokens in/out
/// (`~` marks estimates), cost, latency, id.
pub fn logs_table(rows: &[LogRow]) -> String {
    if rows.is_empty() {
        return "no requests\n".into();
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                fmt_time(r.started_ms),
                format!("{} → {}", r.requested_model, opt(&r.deployment)),
                format!("{}/{}", opt(&r.hosting), opt(&r.openness)),
                r.status.to_string(),
                tokens(r),
                fmt_cost(r.cost_usd),
                fmt_ms(r.duration_ms),
                r.id.clone(),
            ]
        })
        .collect();
    table(
        &[
            "TIME (UTC)",
            "MODEL → DEPLOYMENT",
            "HOSTING/TIER",
            "STATUS",
            "TOKENS",
            "COST",
            "LATENCY",
            "ID",
        ],
        &cells,
        &[false, false, false, true, true, true, true, false],
    )
}

/// One JSON object per line, every field (JSON columns inline).
pub fn jsonl(rows: &[LogRow]) -> String {
    let mut out = String::new();
    for r in rows {
        out.push_str(&serde_json::to_string(r).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// `sluice show ID`: one request in full, through [`terminal_safe`] (the user, prompt,
/// response, error and ids are the clients' and the backends' text).
pub fn show(r: &LogRow) -> String {
    terminal_safe(&show_raw(r)).into_owned()
}

fn show_raw(r: &LogRow) -> String {
    let mut out = String::new();
    let mut kv = |k: &str, v: String| out.push_str(&format!("{k:<14}{v}\n"));
    kv("request", format!("{} (row {})", r.id, r.seq));
    kv("endpoint", r.endpoint.clone());
    kv(
        "model",
        format!("{} → {}", r.requested_model, opt(&r.deployment)),
    );
    kv("provider", opt(&r.provider).to_string());
    kv("hosting", opt(&r.hosting).to_string());
    kv("openness", opt(&r.openness).to_string());
    kv("status", status_line(r));
    kv("stream", if r.stream { "yes" } else { "no" }.into());
    if let Some(route) = &r.route {
        kv("route", route.clone());
    }
    if !r.dropped_tools.is_empty() {
        kv("dropped tools", r.dropped_tools.join(", "));
    }
    kv("finish", opt(&r.finish_reason).to_string());
    kv(
        "tokens",
        format!(
            "{} in, {} out, {} total{}",
            r.prompt_tokens,
            r.completion_tokens,
            r.total_tokens,
            if r.usage_estimated {
                " (estimated)"
            } else {
                ""
            }
        ),
    );
    kv("cost", fmt_cost(r.cost_usd));
    kv("started", format!("{} UTC", fmt_time(r.started_ms)));
    kv("duration", fmt_ms(r.duration_ms));
    kv(
        "first token",
        r.ttft_ms.map(fmt_ms).unwrap_or_else(|| "-".into()),
    );
    kv("attempts", r.attempts.to_string());
    kv("key", opt(&r.api_key_id).to_string());
    kv("user", opt(&r.end_user).to_string());
    kv("client", opt(&r.client_ip).to_string());
    kv("policies", list_text(r.policies.get()));
    kv("pii", list_text(r.pii_kinds.get()));
    kv(
        "sampling",
        r.sampling
            .as_ref()
            .map(|s| s.get().to_string())
            .unwrap_or_else(|| "-".into()),
    );
    if r.deterministic {
        kv("deterministic", "yes".into());
    }
    kv("log mode", r.log_mode.clone());
    kv("row hash", r.row_hash.clone());
    out.push_str("\n--- prompt\n");
    out.push_str(&prompt_text(r));
    out.push_str("\n--- response\n");
    out.push_str(&response_text(r));
    out
}

fn status_line(r: &LogRow) -> String {
    match (&r.error_type, &r.error_message) {
        (Some(t), Some(m)) => format!("{} {t}: {m}", r.status),
        (Some(t), None) => format!("{} {t}", r.status),
        _ => r.status.to_string(),
    }
}

fn list_text(json: &str) -> String {
    let items: Vec<String> = serde_json::from_str(json).unwrap_or_default();
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

/// The prompt as `role: text` lines for chat, else the body's `prompt`/`input`, else the
/// body as JSON; a note when the logging mode kept no text.
pub fn prompt_text(r: &LogRow) -> String {
    let Some(body) = &r.request_body else {
        return format!("(not kept: log mode {})\n", r.log_mode);
    };
    let v: Value = serde_json::from_str(body.get()).unwrap_or(Value::Null);
    let mut out = String::new();
    if let Some(msgs) = v.get("messages").and_then(Value::as_array) {
        for m in msgs {
            let role = m.get("role").and_then(Value::as_str).unwrap_or("?");
            let text = match m.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            out.push_str(&format!("{role}: {text}\n"));
            if let Some(tc) = m.get("tool_calls") {
                out.push_str(&format!("{role} tool_calls: {tc}\n"));
            }
        }
        return out;
    }
    for k in ["prompt", "input"] {
        if let Some(p) = v.get(k) {
            return match p {
                Value::String(s) => format!("{s}\n"),
                other => format!("{other}\n"),
            };
        }
    }
    format!("{v}\n")
}

/// The response text and tool calls, or a note when not kept.
pub fn response_text(r: &LogRow) -> String {
    let Some(content) = &r.response_content else {
        return format!("(not kept: log mode {})\n", r.log_mode);
    };
    let mut out = format!("{content}\n");
    if let Some(tc) = &r.response_tool_calls {
        out.push_str(&format!("tool_calls: {}\n", tc.get()));
    }
    out
}

/// The `sluice usage` table plus the local share line.
pub fn usage_table(u: &UsageReport) -> String {
    let cell = |r: &crate::store::query::UsageRow| {
        vec![
            r.key.clone(),
            r.requests.to_string(),
            r.errors.to_string(),
            r.prompt_tokens.to_string(),
            r.completion_tokens.to_string(),
            fmt_cost(Some(r.cost_usd)),
            fmt_ms(r.p50_ms as i64),
            fmt_ms(r.p95_ms as i64),
            format!("{:.1}%", r.local_share * 100.0),
        ]
    };
    let mut rows: Vec<Vec<String>> = u.groups.iter().map(cell).collect();
    rows.push(cell(&u.total));
    let first = match u.by {
        Some(b) => serde_json::to_value(b)
            .ok()
            .and_then(|v| v.as_str().map(str::to_uppercase))
            .unwrap_or_default(),
        None => String::new(),
    };
    let mut out = table(
        &[
            &first,
            "REQUESTS",
            "ERRORS",
            "TOKENS IN",
            "TOKENS OUT",
            "COST",
            "P50",
            "P95",
            "LOCAL",
        ],
        &rows,
        &[false, true, true, true, true, true, true, true, true],
    );
    out.push_str(&format!(
        "\n{:.1}% of tokens stayed local ({} of {}).\n",
        u.total.local_share * 100.0,
        u.total.local_tokens,
        u.total.prompt_tokens + u.total.completion_tokens
    ));
    out
}

/// Writes rows as CSV: a header of the column names ([`HASHED_COLUMNS`], `prev_hash`,
/// `row_hash`), JSON columns as their JSON text.
///
/// Errors: the writer fails.
pub fn write_csv(rows: &[LogRow], out: &mut dyn Write) -> std::io::Result<()> {
    write_csv_with(rows, out, &mut |_| {})
}

/// [`write_csv`], calling `tick(1)` after each row (for a progress line).
pub fn write_csv_with(
    rows: &[LogRow],
    out: &mut dyn Write,
    tick: &mut dyn FnMut(usize),
) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    let mut header: Vec<&str> = HASHED_COLUMNS.to_vec();
    header.extend(["prev_hash", "row_hash"]);
    w.write_record(&header).map_err(std::io::Error::other)?;
    for r in rows {
        let v = serde_json::to_value(r).unwrap_or(Value::Null);
        let record: Vec<String> = header
            .iter()
            .map(|k| match v.get(*k) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            })
            .collect();
        w.write_record(&record).map_err(std::io::Error::other)?;
        tick(1);
    }
    w.flush()
}

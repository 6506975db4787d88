//! `sluice replay`: sends a logged request again through the gateway core (no HTTP server) and
//! tells whether the answer is identical (docs/reproducibility.md).
//!
//! - `sluice replay ID [--config FILE] [--db FILE] [--deployment D] [--times N]`: the logged
//!   request body (kept under `log.prompts: full` or `redacted`) goes to the same deployment (or
//!   `D`) through the current config's sampling overrides, as a non-stream request, N times
//!   (default 1). Prints `identical` or `different` per run with the response hashes; for a
//!   difference, a unified diff of the texts (lines) and the first differing token (tokens are
//!   whitespace-separated words, counted from 0). Exit 0 when every run is identical, 1 when
//!   one differs, 2 on an error (no such row, body not kept, the replay failed).
//! - `sluice replay --since T [--model M] [--limit N] --report FILE.md`: replays the successful
//!   chat and completion rows since T once each and writes a Markdown report per deployment.

use crate::api::parse_request;
use crate::api::summary::ResponseSummary;
use crate::api::{Endpoint, RequestBody};
use crate::gateway::{Gateway, ReplyBody, RequestContext};
use crate::store::backend::{LogStore, ReplaySelect};
use crate::store::commands::DbArgs;
use clap::Args;
use rusqlite::types::Value as SqlValue;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// `sluice replay` arguments.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// Request id (or row number) to replay.
    id: Option<String>,
    #[command(flatten)]
    db: DbArgs,
    /// Send to this deployment instead of the logged one.
    #[arg(long)]
    deployment: Option<String>,
    /// Replay this many times.
    #[arg(long, default_value_t = 1)]
    times: u32,
    /// Replay every successful chat/completion row since: a duration (1d), a date or RFC 3339.
    #[arg(long)]
    since: Option<String>,
    /// With --since: only rows of this requested model.
    #[arg(long)]
    model: Option<String>,
    /// With --since: at most this many rows (newest first).
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// With --since: the Markdown report to write.
    #[arg(long)]
    report: Option<PathBuf>,
}

/// A logged row as replay needs it.
#[derive(Debug, Clone)]
pub struct Logged {
    /// Request id.
    pub id: String,
    /// `chat`, `text_completion`, `embeddings`, `responses`, `messages` (the bridged dialects,
    /// logged as the chat request they became).
    pub endpoint: String,
    /// Deployment that answered.
    pub deployment: Option<String>,
    /// Logging mode of the row.
    pub log_mode: String,
    /// The request body as logged (NULL in metadata mode).
    pub request_body: Option<String>,
    /// Response text.
    pub response_content: Option<String>,
    /// Response tool calls (JSON array of `{id,name,arguments}`).
    pub response_tool_calls: Option<String>,
    /// SHA-256 of the response content, when logged.
    pub response_hash: Option<String>,
    /// Canonical request hash, when logged.
    pub request_hash: Option<String>,
    /// Backend fingerprint, when logged.
    pub fingerprint: Option<String>,
    /// The sampling values that went upstream (JSON object), when logged.
    pub sampling: Option<String>,
}

fn text(v: &SqlValue) -> Option<String> {
    match v {
        SqlValue::Text(t) => Some(t.clone()),
        _ => None,
    }
}

/// A row of [`REPLAY_COLUMNS`](crate::store::backend::REPLAY_COLUMNS) values.
fn from_values(v: &[SqlValue]) -> Logged {
    let get = |i: usize| v.get(i).and_then(text);
    Logged {
        id: get(0).unwrap_or_default(),
        endpoint: get(1).unwrap_or_default(),
        deployment: get(2),
        log_mode: get(3).unwrap_or_default(),
        request_body: get(4),
        response_content: get(5),
        response_tool_calls: get(6),
        response_hash: get(7),
        request_hash: get(8),
        fingerprint: get(9),
        sampling: get(10),
    }
}

/// The rows `sel` names, from either store, read on a plain thread (the PostgreSQL client
/// must not run on the replay's runtime).
///
/// Errors: the store's, as text.
pub fn select(store: &mut dyn LogStore, sel: ReplaySelect) -> Result<Vec<Logged>, String> {
    std::thread::scope(|s| {
        s.spawn(|| store.replay_rows(&sel))
            .join()
            .unwrap_or_else(|_| Err(crate::store::StoreError::Io("read panicked".into())))
    })
    .map(|rows| rows.iter().map(|r| from_values(r)).collect())
    .map_err(|e| e.to_string())
}

/// The outcome of one replay.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Response hash of the replay.
    pub hash: String,
    /// Its [`crate::repro::legacy_response_hash`], which rows logged before December 2026 hold.
    pub legacy_hash: String,
    /// Its text (content, then tool calls as `name(arguments)` lines).
    pub text: String,
    /// `system_fingerprint` of the replay, when given.
    pub fingerprint: Option<String>,
}

/// The text of a logged response, as [`Outcome::text`] shapes it.
pub fn logged_text(l: &Logged) -> String {
    let mut s = l.response_content.clone().unwrap_or_default();
    if let Some(calls) = l
        .response_tool_calls
        .as_deref()
        .and_then(|t| serde_json::from_str::<Vec<Value>>(t).ok())
    {
        for c in calls {
            let _ = write!(
                s,
                "\n{}({})",
                c["name"].as_str().unwrap_or(""),
                c["arguments"].as_str().unwrap_or("")
            );
        }
    }
    s
}

fn summary_text(s: &ResponseSummary) -> String {
    let mut t = s.content.clone();
    for c in &s.tool_calls {
        let _ = write!(t, "\n{}({})", c.name, c.arguments);
    }
    t
}

/// Sends `l`'s request once through `gw` to `deployment` (non-stream).
///
/// Errors: the body was not kept, it does not parse, or the gateway answered with an error.
pub async fn replay_once(gw: &Gateway, l: &Logged, deployment: &str) -> Result<Outcome, String> {
    let Some(body) = &l.request_body else {
        return Err(format!(
            "request {} was logged in `{}` mode: its body was not kept, so it cannot be replayed (needs log.prompts full or redacted)",
            l.id, l.log_mode
        ));
    };
    if body.ends_with(&format!("{}\"", crate::store::record::TRUNCATED)) {
        return Err(format!(
            "request {}'s body was cut at log.max_body_bytes in the log, so it cannot be replayed",
            l.id
        ));
    }
    let mut v = effective_body(body, l.sampling.as_deref())?;
    if let Value::Object(m) = &mut v {
        m.insert("model".into(), Value::from(deployment));
        m.remove("stream");
        m.remove("stream_options");
    }
    let bytes = v.to_string();
    let (endpoint, req) = match l.endpoint.as_str() {
        // A bridged request (Responses, Messages) is logged as the chat request it became.
        "chat" | "responses" | "messages" => (
            Endpoint::ChatCompletions,
            RequestBody::Chat(Box::new(
                parse_request(bytes.as_bytes()).map_err(|e| e.body.message)?,
            )),
        ),
        "text_completion" => (
            Endpoint::Completions,
            RequestBody::Generic(parse_request(bytes.as_bytes()).map_err(|e| e.body.message)?),
        ),
        other => return Err(format!("`{other}` requests are not replayed")),
    };
    let mut ctx = RequestContext::new(format!("replay-{}", uuid::Uuid::now_v7()), endpoint);
    ctx.dialect = match l.endpoint.as_str() {
        "responses" => Some("responses"),
        "messages" => Some("messages"),
        _ => None,
    };
    let reply = gw
        .handle(ctx, req)
        .await
        .map_err(|e| format!("{} {}", e.status.as_u16(), e.body.message))?;
    let ReplyBody::Json(bytes) = reply.body else {
        return Err("the replay answered with a stream".into());
    };
    let json: Value = crate::api::json::from_bytes(&bytes).map_err(|e| e.to_string())?;
    let s = ResponseSummary::from_response(&json);
    Ok(Outcome {
        hash: crate::repro::response_hash(&s),
        legacy_hash: crate::repro::legacy_response_hash(&s),
        text: summary_text(&s),
        fingerprint: s.system_fingerprint.clone(),
    })
}

/// The request as it went upstream: the logged client body with the logged sampling values
/// (`temperature`, `seed`, `top_k`, `cache_prompt`, …: what the overrides of the time sent) put
/// over it. The policies that chose those values may have matched on request headers, which the
/// log does not keep, so the current config alone cannot be trusted to choose them again.
///
/// Objects are merged key by key (Ollama's `options` keep the client's own `num_predict`,
/// `num_ctx`, …), and a value logged in `options` (Ollama's shape) is also put on the chat
/// field the gateway maps to it (Ollama's rows of [`crate::repro::sampling::PROVIDER_MAP`]:
/// `temperature`, `top_p`, `top_k`, `seed`, penalties), which would otherwise override it
/// again: found by an attacker test,
/// the replay of an Ollama row sent the client's own temperature and seed, and lost
/// `num_predict`.
///
/// Errors: the body or the sampling column is not JSON.
pub fn effective_body(body: &str, sampling: Option<&str>) -> Result<Value, String> {
    let mut v: Value = serde_json::from_str(body).map_err(|e| format!("logged body: {e}"))?;
    let Some(sampling) = sampling else {
        return Ok(v);
    };
    let s: Value =
        serde_json::from_str(sampling).map_err(|e| format!("logged sampling values: {e}"))?;
    if let (Value::Object(m), Some(Value::Object(options))) = (&mut v, s.get("options")) {
        let ollama = crate::repro::sampling::mappings(crate::config::ProviderKind::Ollama);
        for map in ollama {
            let upstream = map.upstream.and_then(|u| u.strip_prefix("options."));
            if let Some(val) = upstream.and_then(|k| options.get(k)) {
                m.insert(map.field.to_string(), val.clone());
            }
        }
    }
    merge(&mut v, s);
    Ok(v)
}

/// Puts `over` on `base`: objects key by key, anything else replaced.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, val) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, val),
                    None => {
                        b.insert(k, val);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// A unified diff of `old` → `new` (by lines) and the first differing whitespace token
/// (0-based index), or `None` when the token lists are equal.
pub fn diff(old: &str, new: &str) -> (String, Option<usize>) {
    let udiff = similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .header("logged", "replay")
        .to_string();
    let a: Vec<&str> = old.split_whitespace().collect();
    let b: Vec<&str> = new.split_whitespace().collect();
    let first = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i));
    (udiff, first)
}

/// Runs `sluice replay`.
pub fn command(a: ReplayArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start a runtime: {e}")),
    };
    rt.block_on(run(a))
}

fn fail(msg: String) -> ExitCode {
    // The message may carry a backend's error text.
    eprintln!("error: {}", crate::cli::output::terminal_safe(&msg));
    ExitCode::from(2)
}

async fn run(a: ReplayArgs) -> ExitCode {
    let source = crate::config::locate(a.db.config.as_deref());
    let mut config = match crate::config::load(&source) {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    let mut conn = match crate::store::commands::open(&a.db) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Replays must reach the backend, and are not written to the log they read.
    config.cache.enabled = false;
    let gw = match Gateway::new(config) {
        Ok(g) => g,
        Err(e) => return fail(e),
    };
    if let Some(since) = &a.since {
        return report(&gw, &mut *conn, &a, since).await;
    }
    let Some(id) = &a.id else {
        return fail("give a request id, or --since with --report".into());
    };
    let l = match select(&mut *conn, ReplaySelect::One(id.clone())).map(|mut v| v.pop()) {
        Ok(Some(l)) => l,
        Ok(None) => return fail(format!("no logged request `{id}`")),
        Err(e) => return fail(e),
    };
    let Some(dep) = a.deployment.clone().or_else(|| l.deployment.clone()) else {
        return fail(format!("request {id} reached no deployment"));
    };
    let old = logged_text(&l);
    if l.response_hash.is_none() && old.contains(crate::store::record::TRUNCATED) {
        return fail(format!(
            "request {id}'s answer was cut at log.max_body_bytes and its hash not kept: nothing to compare a replay with"
        ));
    }
    let logged_hash = l.response_hash.clone().unwrap_or_else(|| sha_of_logged(&l));
    let mut different = false;
    for n in 1..=a.times.max(1) {
        let out = match replay_once(&gw, &l, &dep).await {
            Ok(o) => o,
            Err(e) => return fail(e),
        };
        if out.matches(&logged_hash) {
            println!("run {n}: identical (response sha256 {})", out.hash);
        } else {
            different = true;
            println!(
                "run {n}: different (logged sha256 {logged_hash}, replay sha256 {})",
                out.hash
            );
            let (udiff, first) = diff(&old, &out.text);
            if let Some(i) = first {
                println!("first differing token: {i}");
            }
            // The logged and the new answer: the backend's text, never raw to a terminal.
            print!("{}", crate::cli::output::terminal_safe(&udiff));
        }
    }
    if different {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The response hash of a row logged before hashes were recorded (its text; tool calls
/// by name and arguments).
fn sha_of_logged(l: &Logged) -> String {
    let mut s = ResponseSummary {
        content: l.response_content.clone().unwrap_or_default(),
        ..Default::default()
    };
    if let Some(calls) = l
        .response_tool_calls
        .as_deref()
        .and_then(|t| serde_json::from_str::<Vec<Value>>(t).ok())
    {
        for c in calls {
            s.tool_calls.push(crate::api::summary::ToolCallSummary {
                id: String::new(),
                name: c["name"].as_str().unwrap_or("").to_string(),
                arguments: c["arguments"].as_str().unwrap_or("").to_string(),
            });
        }
    }
    crate::repro::legacy_response_hash(&s)
}

impl Outcome {
    /// Whether this replay gave the answer a row's response hash `logged` stands for (in
    /// either form, see [`crate::repro::legacy_response_hash`]).
    pub fn matches(&self, logged: &str) -> bool {
        self.hash == logged || self.legacy_hash == logged
    }
}

#[derive(Default)]
struct Tally {
    replayed: u32,
    identical: u32,
    differing: u32,
    errors: u32,
    fingerprints: Vec<String>,
}

async fn report(gw: &Gateway, conn: &mut dyn LogStore, a: &ReplayArgs, since: &str) -> ExitCode {
    let Some(out_path) = &a.report else {
        return fail("--since needs --report FILE.md".into());
    };
    let now = crate::store::now_ms() as i64;
    let from = match crate::store::query::parse_time(since, now) {
        Ok(t) => t,
        Err(e) => return fail(e.to_string()),
    };
    let sel = ReplaySelect::Since {
        from_ms: from,
        model: a.model.clone(),
        limit: a.limit,
    };
    let rows = match select(conn, sel) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let mut by: BTreeMap<String, Tally> = BTreeMap::new();
    let mut progress = crate::telemetry::progress::Progress::on_stderr("replaying", rows.len());
    for l in &rows {
        progress.add(1);
        let Some(dep) = a.deployment.clone().or_else(|| l.deployment.clone()) else {
            continue;
        };
        let t = by.entry(dep.clone()).or_default();
        t.replayed += 1;
        if let Some(f) = &l.fingerprint
            && !t.fingerprints.contains(f)
        {
            t.fingerprints.push(f.clone());
        }
        // A stream cut at `log.max_body_bytes` kept no hash: nothing to compare with.
        if l.response_hash.is_none() && logged_text(l).contains(crate::store::record::TRUNCATED) {
            t.errors += 1;
            continue;
        }
        let logged = l.response_hash.clone().unwrap_or_else(|| sha_of_logged(l));
        match replay_once(gw, l, &dep).await {
            Ok(o) => {
                if o.matches(&logged) {
                    t.identical += 1;
                } else {
                    t.differing += 1;
                }
                if let Some(f) = o.fingerprint
                    && !t.fingerprints.contains(&f)
                {
                    t.fingerprints.push(f);
                }
            }
            Err(_) => t.errors += 1,
        }
    }
    progress.finish();
    let mut md = format!(
        "# Reproducibility report\n\nRows since `{since}`{}: {}.\n\n| deployment | replayed | identical | differing | errors | fingerprints seen |\n|---|---|---|---|---|---|\n",
        a.model
            .as_deref()
            .map(|m| format!(", model `{m}`"))
            .unwrap_or_default(),
        rows.len()
    );
    for (dep, t) in &by {
        let _ = writeln!(
            md,
            "| {dep} | {} | {} | {} | {} | {} |",
            t.replayed,
            t.identical,
            t.differing,
            t.errors,
            if t.fingerprints.is_empty() {
                "-".to_string()
            } else {
                t.fingerprints.join(", ")
            }
        );
    }
    if let Err(e) = std::fs::write(out_path, md) {
        return fail(format!("cannot write {}: {e}", out_path.display()));
    }
    let differing: u32 = by.values().map(|t| t.differing).sum();
    let errors: u32 = by.values().map(|t| t.errors).sum();
    println!(
        "replayed {} requests: {differing} differing, {errors} errors; report in {}",
        rows.len(),
        out_path.display()
    );
    if errors > 0 {
        ExitCode::from(2)
    } else if differing > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_names_the_first_differing_token() {
        let (d, first) = diff("The answer is four.\n", "The answer is 4.\n");
        assert_eq!(first, Some(3));
        assert_eq!(
            d,
            "--- logged\n+++ replay\n@@ -1 +1 @@\n-The answer is four.\n+The answer is 4.\n"
        );
        assert_eq!(diff("a b", "a  b").1, None);
    }

    #[test]
    fn the_replayed_body_carries_the_sampling_values_that_went_upstream() {
        let body = r#"{"model":"default","messages":[],"temperature":1.7,"seed":3}"#;
        let sampling = r#"{"temperature":0.0,"top_k":1,"seed":42,"cache_prompt":false}"#;
        let v = effective_body(body, Some(sampling)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"model":"default","messages":[],"temperature":0.0,"seed":42,"top_k":1,"cache_prompt":false})
        );
        assert_eq!(
            effective_body(body, None).unwrap()["temperature"],
            serde_json::json!(1.7)
        );
        assert!(effective_body(body, Some("not json")).is_err());
    }

    /// An Ollama row: the logged `options` are merged into the client's (its `num_predict`
    /// stays) and put on the chat fields the gateway maps to them, so the replay sends what
    /// went upstream, not the client's own values.
    #[test]
    fn an_ollama_rows_options_are_merged_and_win_over_the_chat_fields() {
        let body = r#"{"model":"ol","messages":[],"temperature":0.9,"top_p":0.5,"seed":123,"options":{"num_predict":64}}"#;
        let sampling = r#"{"options":{"temperature":0.0,"top_p":1.0,"top_k":1,"seed":42}}"#;
        let v = effective_body(body, Some(sampling)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"model":"ol","messages":[],"temperature":0.0,"top_p":1.0,"top_k":1,"seed":42,
                "options":{"num_predict":64,"temperature":0.0,"top_p":1.0,"top_k":1,"seed":42}})
        );
    }
}

//! The log commands of the CLI: `logs`, `show`, `usage`, `export`, `purge`, `log verify`.
//! Each finds the database from `--db FILE`, else from `log.path` of the config found like
//! `serve` finds it (`--config FILE`, `$SLUICE_CONFIG`, `./sluice.yaml`, the embedded default).
//! Exit codes: 0 done, 1 not found / chain broken, 2 bad arguments or config.

use super::query::{self, GroupBy, LogFilter, StatusFilter};
use super::{StoreError, chain, now_ms, report};
use crate::cli::output::{json_safe, terminal_safe};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Where the log is.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// The log database (overrides the config's `log:`): a SQLite file, or a
    /// `postgres://` URL.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Config whose `log.path` names the database (else $SLUICE_CONFIG, ./sluice.yaml, the
    /// embedded default).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// `sluice logs`.
#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Only requests since: a duration (30m, 1h, 7d), a date (2026-11-01) or RFC 3339.
    #[arg(long)]
    since: Option<String>,
    /// Requested model.
    #[arg(long)]
    model: Option<String>,
    /// Deployment that answered.
    #[arg(long)]
    deployment: Option<String>,
    /// `ok`, `error` or a status code.
    #[arg(long)]
    status: Option<String>,
    /// API key id.
    #[arg(long)]
    key: Option<String>,
    /// Text in the prompt, response, error, id or user (case-insensitive).
    #[arg(long)]
    grep: Option<String>,
    /// Most rows, newest first.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// JSON lines with every field.
    #[arg(long)]
    json: bool,
}

/// `sluice show`.
#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    /// Request id (or row number).
    id: String,
    #[command(flatten)]
    db: DbArgs,
    /// The row as JSON.
    #[arg(long)]
    json: bool,
}

/// `sluice usage`.
#[derive(Debug, Clone, Args)]
pub struct UsageArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Since: a duration (30m, 1h, 7d), a date (2026-11-01) or RFC 3339.
    #[arg(long)]
    since: Option<String>,
    /// Group by model, deployment, key, user, day, hosting or openness.
    #[arg(long, default_value = "model")]
    by: String,
    /// JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// `sluice export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Since: a duration, a date or RFC 3339.
    #[arg(long)]
    since: Option<String>,
    /// `jsonl` or `csv`.
    #[arg(long)]
    format: String,
    /// Output file (default: stdout). Created with mode 0600.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `sluice purge`.
#[derive(Debug, Clone, Args)]
pub struct PurgeArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Delete requests that started before this date (2026-11-01), RFC 3339 time or
    /// duration ago (30d).
    #[arg(long)]
    before: String,
}

/// `sluice log …`.
#[derive(Debug, Clone, Subcommand)]
pub enum LogCommand {
    /// Walk the hash chain: print OK and the head hash (exit 0) or the first broken link
    /// (exit 1).
    Verify {
        #[command(flatten)]
        db: DbArgs,
    },
}

fn fail(e: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(code)
}

fn arg_err(e: StoreError) -> ExitCode {
    fail(e, 2)
}

/// The database path from `--db` or the config.
///
/// Errors: the config does not load (its error, exit 2).
pub fn db_path(a: &DbArgs) -> Result<PathBuf, ExitCode> {
    if let Some(p) = &a.db {
        return Ok(p.clone());
    }
    let source = crate::config::locate(a.config.as_deref());
    crate::config::load(&source)
        .map(|c| c.log.path)
        .map_err(|e| fail(e, 2))
}

/// The `log:` block the command works on: the config's, with `--db` overriding where the
/// log is (a SQLite file, or a `postgres://` URL).
///
/// Errors: the config does not load (its error, exit 2).
pub fn log_config(a: &DbArgs) -> Result<crate::config::LogConfig, ExitCode> {
    use crate::config::log::LogBackend;
    let mut cfg = match &a.db {
        Some(_) => crate::config::LogConfig::default(),
        None => {
            let source = crate::config::locate(a.config.as_deref());
            crate::config::load(&source)
                .map(|c| c.log)
                .map_err(|e| fail(e, 2))?
        }
    };
    if let Some(p) = &a.db {
        let s = p.to_string_lossy();
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            cfg.backend = LogBackend::Postgres;
            cfg.url = Some(s.into_owned());
        } else {
            cfg.backend = LogBackend::Sqlite;
            cfg.path = p.clone();
            cfg.url = None;
        }
    }
    Ok(cfg)
}

/// Opens the log store the command works on (never creating a SQLite file), on a plain
/// thread (the PostgreSQL client must not run inside a tokio runtime).
///
/// Errors: the config does not load (exit 2), the store cannot be opened (exit 1).
pub fn open(a: &DbArgs) -> Result<Box<dyn super::backend::LogStore>, ExitCode> {
    open_with(a, false)
}

/// [`open`]; with `create`, a missing SQLite file is created (`sluice keys create`).
///
/// Errors: as [`open`].
pub fn open_with(a: &DbArgs, create: bool) -> Result<Box<dyn super::backend::LogStore>, ExitCode> {
    let cfg = log_config(a)?;
    std::thread::scope(|s| {
        s.spawn(|| {
            if create {
                super::connect(&cfg)
            } else {
                super::connect_existing(&cfg)
            }
        })
        .join()
        .unwrap_or_else(|_| Err(StoreError::Io("opening the log panicked".into())))
    })
    .map_err(|e| fail(e, 1))
}

fn since(s: &Option<String>) -> Result<Option<i64>, ExitCode> {
    s.as_deref()
        .map(|s| query::parse_time(s, now_ms() as i64))
        .transpose()
        .map_err(arg_err)
}

/// Writes text output to stdout through [`terminal_safe`]: it holds logged text, which must
/// never reach a terminal with its control characters raw.
fn print(s: &str) -> ExitCode {
    print_raw(&terminal_safe(s))
}

/// Writes JSON output to stdout as it is (serde escaped it; `--json` stays byte for byte).
fn print_raw(s: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth reporting.
    let _ = out.write_all(s.as_bytes());
    ExitCode::SUCCESS
}

/// `sluice logs`.
pub fn logs(a: LogsArgs) -> ExitCode {
    let run = || -> Result<ExitCode, ExitCode> {
        let filter = LogFilter {
            since_ms: since(&a.since)?,
            model: a.model.clone(),
            deployment: a.deployment.clone(),
            status: a
                .status
                .as_deref()
                .map(StatusFilter::parse)
                .transpose()
                .map_err(arg_err)?,
            key: a.key.clone(),
            grep: a.grep.clone(),
            before_seq: None,
            limit: a.limit,
        };
        let mut conn = open(&a.db)?;
        let rows = conn.list(&filter).map_err(|e| fail(e, 1))?;
        Ok(if a.json {
            print_raw(&json_safe(&report::jsonl(&rows)))
        } else {
            print(&report::logs_table(&rows))
        })
    };
    run().unwrap_or_else(|c| c)
}

/// `sluice show ID`.
pub fn show(a: ShowArgs) -> ExitCode {
    let run = || -> Result<ExitCode, ExitCode> {
        let mut conn = open(&a.db)?;
        match conn.get(&a.id).map_err(|e| fail(e, 1))? {
            Some(r) if a.json => Ok(print_raw(&json_safe(&report::jsonl(&[r])))),
            Some(r) => Ok(print(&report::show(&r))),
            None => Err(fail(format!("no request `{}` in the log", a.id), 1)),
        }
    };
    run().unwrap_or_else(|c| c)
}

/// `sluice usage`.
pub fn usage(a: UsageArgs) -> ExitCode {
    let run = || -> Result<ExitCode, ExitCode> {
        let by = GroupBy::parse(&a.by).map_err(arg_err)?;
        let since = since(&a.since)?;
        let mut conn = open(&a.db)?;
        let u = query::usage(&mut *conn, since, Some(by)).map_err(|e| fail(e, 1))?;
        Ok(if a.json {
            print_raw(&json_safe(
                &(serde_json::to_string_pretty(&u).unwrap_or_default() + "\n"),
            ))
        } else {
            print(&report::usage_table(&u))
        })
    };
    run().unwrap_or_else(|c| c)
}

/// `sluice export`.
pub fn export(a: ExportArgs) -> ExitCode {
    let run = || -> Result<ExitCode, ExitCode> {
        if a.format != "jsonl" && a.format != "csv" {
            return Err(fail(
                format!("bad format `{}`: use jsonl or csv", a.format),
                2,
            ));
        }
        let since = since(&a.since)?;
        let mut conn = open(&a.db)?;
        let rows = conn.all_since(since).map_err(|e| fail(e, 1))?;
        let mut out: Box<dyn Write> = match &a.out {
            Some(p) => Box::new(private_file(p).map_err(|e| fail(e, 1))?),
            None => Box::new(std::io::stdout().lock()),
        };
        let mut progress = crate::telemetry::progress::Progress::on_stderr("exporting", rows.len());
        let written = if a.format == "csv" {
            report::write_csv_with(&rows, &mut out, &mut |n| progress.add(n))
        } else {
            rows.chunks(256).try_for_each(|chunk| {
                out.write_all(report::jsonl(chunk).as_bytes())?;
                progress.add(chunk.len());
                Ok(())
            })
        };
        written.and_then(|_| out.flush()).map_err(|e| fail(e, 1))?;
        progress.finish();
        if let Some(p) = &a.out {
            eprintln!("exported {} requests to {}", rows.len(), p.display());
        }
        Ok(ExitCode::SUCCESS)
    };
    run().unwrap_or_else(|c| c)
}

fn private_file(p: &std::path::Path) -> Result<std::fs::File, String> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(p)
        .map_err(|e| format!("cannot write {}: {e}", p.display()))
}

/// `sluice purge --before DATE`.
pub fn purge(a: PurgeArgs) -> ExitCode {
    let run = || -> Result<ExitCode, ExitCode> {
        let cutoff = query::parse_time(&a.before, now_ms() as i64).map_err(arg_err)?;
        let mut conn = open(&a.db)?;
        let p = conn.purge_before(cutoff).map_err(|e| fail(e, 1))?;
        Ok(print(&format!(
            "deleted {} requests that started before {} UTC; the chain is now anchored at row {}\n{}",
            p.rows,
            report::fmt_time(cutoff),
            p.anchor_seq,
            anchor_line(p.anchor_seq, &p.anchor_hash)
        )))
    };
    run().unwrap_or_else(|c| c)
}

/// The anchor line of `log verify` and `purge`: where the chain starts. A purge or retention
/// moves it; rows cut at the old end with the anchor moved by hand verify as well, so an
/// operator records this line with the head line to tell the two apart.
fn anchor_line(seq: i64, hash: &str) -> String {
    if seq == 0 {
        format!("anchor: row 0, hash {hash} (no row was ever deleted)\n")
    } else {
        format!(
            "anchor: row {seq}, hash {hash} (rows 1..{seq} were deleted by retention or purge)\n"
        )
    }
}

/// `sluice log verify`.
pub fn log(c: LogCommand) -> ExitCode {
    let LogCommand::Verify { db } = c;
    let run = || -> Result<ExitCode, ExitCode> {
        let mut conn = open(&db)?;
        match conn.verify().map_err(|e| fail(e, 1))? {
            chain::Verdict::Ok {
                rows,
                head_seq,
                head_hash,
                anchor_seq,
                anchor_hash,
            } => Ok(print(&format!(
                "OK: {rows} rows verified; head row {head_seq}, hash {head_hash}\n{}",
                anchor_line(anchor_seq, &anchor_hash)
            ))),
            chain::Verdict::Broken { seq: 0, reason } => {
                print(&format!("BROKEN: {reason}\n"));
                Ok(ExitCode::from(1))
            }
            chain::Verdict::Broken { seq, reason } => {
                print(&format!("BROKEN at row {seq}: {reason}\n"));
                Ok(ExitCode::from(1))
            }
        }
    };
    run().unwrap_or_else(|c| c)
}

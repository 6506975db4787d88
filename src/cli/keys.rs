//! `sluice keys create|list|show|revoke`: virtual keys in the request log's database (found
//! like the log commands find it: `--db FILE`, else `log.path` of the config). `create`
//! prints the secret once. Exit codes: 0 done, 1 not found, 2 bad arguments or config.

use crate::access::auth::{Budget, BudgetPeriod, KeySpec};
use crate::access::keys::{self, StoredKey};
use crate::store::commands::{DbArgs, open_with};
use clap::{Args, Subcommand};
use std::process::ExitCode;

/// `sluice keys …`.
#[derive(Debug, Clone, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print its secret (shown only this once).
    Create(CreateArgs),
    /// List keys (never their secrets).
    List {
        #[command(flatten)]
        db: DbArgs,
        /// JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Show one key.
    Show {
        /// Key id or name.
        id: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke a key: its requests get 401 from then on (a running server notices within 2 s).
    Revoke {
        /// Key id or name.
        id: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

/// `sluice keys create`.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Name (unique).
    #[arg(long)]
    name: String,
    /// Allowed model names (globs), comma-separated; default all.
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Requests per minute.
    #[arg(long)]
    rpm: Option<u32>,
    /// Tokens per minute.
    #[arg(long)]
    tpm: Option<u32>,
    /// Budget in USD per period.
    #[arg(long)]
    budget_usd: Option<f64>,
    /// Budget period: day or month.
    #[arg(long, default_value = "month")]
    budget_period: String,
    /// Count only remote spend against the budget.
    #[arg(long)]
    remote_only: bool,
    /// A policy that always applies to this key (repeatable).
    #[arg(long = "policy")]
    policies: Vec<String>,
    /// Logging mode forced for this key: metadata or off (or full, redacted).
    #[arg(long)]
    log: Option<String>,
    /// May use /admin, /ui and /metrics.
    #[arg(long)]
    admin: bool,
    /// Team.
    #[arg(long)]
    team: Option<String>,
    /// Tags, comma-separated.
    #[arg(long, value_delimiter = ',')]
    tags: Vec<String>,
    /// Expiry: YYYY-MM-DD or RFC 3339.
    #[arg(long)]
    expires: Option<String>,
}

/// Runs a `keys` subcommand.
pub fn run(cmd: KeysCommand) -> ExitCode {
    match cmd {
        KeysCommand::Create(a) => create(a),
        KeysCommand::List { db, json } => with_db(&db, |conn| {
            let all = keys::list(conn).map_err(|e| fail(e, 1))?;
            for k in &all {
                if json {
                    let text = serde_json::to_string(k).unwrap_or_default();
                    println!("{}", crate::cli::output::json_safe(&text));
                } else {
                    println!("{}", crate::cli::output::terminal_safe(&line(k)));
                }
            }
            Ok(ExitCode::SUCCESS)
        }),
        KeysCommand::Show { id, db } => with_db(&db, |conn| {
            match keys::get(conn, &id).map_err(|e| fail(e, 1))? {
                Some(k) => {
                    let text = serde_json::to_string_pretty(&k).unwrap_or_default();
                    println!("{}", crate::cli::output::json_safe(&text));
                    Ok(ExitCode::SUCCESS)
                }
                None => Err(fail(format!("no key `{id}`"), 1)),
            }
        }),
        KeysCommand::Revoke { id, db } => with_db(&db, |conn| {
            if keys::revoke(conn, &id).map_err(|e| fail(e, 1))? {
                println!("revoked {id}");
                Ok(ExitCode::SUCCESS)
            } else {
                Err(fail(format!("no key `{id}`"), 1))
            }
        }),
    }
}

/// One line of `keys list`.
pub fn line(k: &StoredKey) -> String {
    let s = &k.spec;
    format!(
        "{}  {}  {}  models={}  rpm={}  tpm={}  budget={}  created={}",
        k.id,
        s.name,
        if s.disabled { "revoked" } else { "active" },
        if s.models.is_empty() {
            "*".to_string()
        } else {
            s.models.join(",")
        },
        s.rpm.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
        s.tpm.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
        s.budget
            .as_ref()
            .map(|b| format!(
                "{}USD/{:?}{}",
                b.usd,
                b.period,
                if b.remote_only { " remote" } else { "" }
            )
            .to_lowercase())
            .unwrap_or_else(|| "-".into()),
        keys::rfc3339(k.created_ms),
    )
}

fn create(a: CreateArgs) -> ExitCode {
    let budget = match a.budget_usd {
        None => None,
        Some(usd) => {
            let period = match a.budget_period.as_str() {
                "day" => BudgetPeriod::Day,
                "month" => BudgetPeriod::Month,
                other => return fail(format!("--budget-period: `{other}` is not day or month"), 2),
            };
            Some(Budget {
                usd,
                period,
                remote_only: a.remote_only,
            })
        }
    };
    let spec = KeySpec {
        name: a.name.clone(),
        models: a.models.clone(),
        rpm: a.rpm,
        tpm: a.tpm,
        budget,
        policies: a.policies.clone(),
        log: a.log.clone(),
        admin: a.admin,
        team: a.team.clone(),
        tags: a.tags.clone(),
        expires: a.expires.clone(),
        ..Default::default()
    };
    // Model and policy names are checked against the config: the one given with --config,
    // or the one that names the database when --db is not given.
    let names = if a.db.config.is_some() || a.db.db.is_none() {
        match crate::config::load(&crate::config::locate(a.db.config.as_deref())) {
            Ok(c) => crate::access::validate::Names::of(&c),
            Err(e) => return fail(e, 2),
        }
    } else {
        crate::access::validate::Names::default()
    };
    if let Err((field, message)) = crate::access::validate::validate(&spec, &names) {
        let flag = match field.as_str() {
            f if f.starts_with("policies") => "policy".to_string(),
            f if f.starts_with("models") => "models".to_string(),
            "budget.usd" => "budget-usd".to_string(),
            f => f.to_string(),
        };
        return fail(format!("--{flag}: {message}"), 2);
    }
    let mut store = match open_with(&a.db, true) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match keys::create(&mut *store, spec, crate::store::now_ms() as i64) {
        Ok((k, secret)) => {
            println!("{secret}");
            eprintln!(
                "created key {} ({}): the secret above is shown only once",
                k.id, k.spec.name
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e, 2),
    }
}

fn with_db(
    db: &DbArgs,
    f: impl FnOnce(&mut dyn crate::store::backend::LogStore) -> Result<ExitCode, ExitCode>,
) -> ExitCode {
    match open_with(db, false) {
        Ok(mut s) => f(&mut *s).unwrap_or_else(|code| code),
        Err(code) => code,
    }
}

fn fail(e: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(code)
}

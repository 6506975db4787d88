//! The `sluice` command line (clap): `serve`, `check`, `explain` (in
//! [`crate::gateway::explain`]), `replay` (in [`crate::repro::replay`]), `keys` ([`keys`]), and
//! `import litellm` ([`import`]), the log commands (`logs`, `show`, `usage`, `export`, `purge`, `log verify`; in
//! [`crate::store::commands`]). Each parses its arguments and calls the core.

pub mod coordination;
pub mod import;
pub mod keys;
pub mod output;
pub mod runtime;

use crate::config::{self, ConfigSource};
use crate::gateway::Gateway;
use crate::store::commands as log_cmd;
use crate::telemetry::{self, LogFormat};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `sluice --version`: the package version and the commit it was built from (`build.rs`;
/// `unknown` when built outside a git checkout without `SLUICE_COMMIT`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("SLUICE_COMMIT"),
    ")"
);

/// Sluice: an OpenAI-compatible LLM gateway that routes by openness, privacy and cost.
#[derive(Debug, Parser)]
#[command(name = "sluice", version = VERSION, about)]
pub struct Cli {
    /// Process log format (`RUST_LOG` sets the level).
    #[arg(long, global = true, env = "SLUICE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// Config file (else $SLUICE_CONFIG, ./sluice.yaml, the embedded default).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen address, overriding `server.listen` (e.g. 127.0.0.1:4000).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Validate a config and print what it defines.
    Check {
        /// Config file (else $SLUICE_CONFIG, ./sluice.yaml, the embedded default).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// List logged requests, newest first.
    Logs(log_cmd::LogsArgs),
    /// Show one logged request in full.
    Show(log_cmd::ShowArgs),
    /// Requests, errors, tokens, cost, latency and local share, per group.
    Usage(log_cmd::UsageArgs),
    /// Export logged requests as JSON lines or CSV.
    Export(log_cmd::ExportArgs),
    /// Delete logged requests that started before a date.
    Purge(log_cmd::PurgeArgs),
    /// The request log itself (`log verify`).
    #[command(subcommand)]
    Log(log_cmd::LogCommand),
    /// Show how a request would be routed (policies, PII, candidates, order) without calling
    /// any backend.
    Explain(crate::gateway::explain::ExplainArgs),
    /// Send a logged request again and tell whether the answer is identical (exit 0), different
    /// (1) or the replay failed (2); or replay many into a Markdown report.
    Replay(crate::repro::replay::ReplayArgs),
    /// Virtual keys: create, list, show, revoke.
    #[command(subcommand)]
    Keys(crate::cli::keys::KeysCommand),
    /// Convert another gateway's config into a Sluice config (`import litellm CONFIG`).
    #[command(subcommand)]
    Import(crate::cli::import::ImportCommand),
    /// Print a shell completion script (`sluice completions bash > /etc/bash_completion.d/sluice`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Parses the arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, listen } => serve(cli.log_format, config, listen),
        other => {
            restore_sigpipe();
            let _guard = telemetry::init(cli.log_format, None);
            match other {
                Command::Check { config } => check(config),
                Command::Logs(a) => log_cmd::logs(a),
                Command::Show(a) => log_cmd::show(a),
                Command::Usage(a) => log_cmd::usage(a),
                Command::Export(a) => log_cmd::export(a),
                Command::Purge(a) => log_cmd::purge(a),
                Command::Log(c) => log_cmd::log(c),
                Command::Explain(args) => crate::gateway::explain::command(args),
                Command::Keys(c) => crate::cli::keys::run(c),
                Command::Import(c) => crate::cli::import::run(c),
                Command::Completions { shell } => completions(shell),
                Command::Replay(a) => crate::repro::replay::command(a),
                Command::Serve { .. } => ExitCode::SUCCESS,
            }
        }
    }
}

/// Writes the completion script for `shell` to stdout.
fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut cmd, "sluice", &mut std::io::stdout());
    ExitCode::SUCCESS
}

/// Rust ignores SIGPIPE, so `println!` into a closed pipe (`sluice logs | head`) would panic.
/// The read-only commands take the usual Unix behaviour instead: they end quietly. (`serve`
/// keeps SIGPIPE ignored: a client closing its socket must never stop the server.)
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to the default is async-signal-safe and done
    // before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn load(config: Option<PathBuf>) -> Result<(ConfigSource, config::Config), ExitCode> {
    let source = config::locate(config.as_deref());
    match config::load(&source) {
        Ok(c) => Ok((source, c)),
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::from(2))
        }
    }
}

fn check(config: Option<PathBuf>) -> ExitCode {
    let (source, cfg) = match load(config) {
        Ok(x) => x,
        Err(code) => return code,
    };
    // The catalog file and the PII detectors are checked too (as `serve` would).
    let engine = match crate::policy::Engine::new(&cfg) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    println!("config OK: {source}");
    println!("deployments:");
    for d in &cfg.deployments {
        let (hosting, openness) = engine
            .attrs(&d.name)
            .map(|a| (a.hosting.as_str(), a.openness.as_str()))
            .unwrap_or(("?", "?"));
        let why = if d.hosting.is_some() {
            "declared"
        } else {
            "inferred"
        };
        println!(
            "  {} ({}) {} model={} hosting={hosting} ({why}) openness={openness}",
            d.name,
            d.provider.as_str(),
            d.base_url,
            d.model
        );
    }
    for d in &cfg.deployments {
        if d.hosting.is_none() && crate::policy::tier::is_private_url(&d.base_url) {
            eprintln!(
                "warning: deployment `{}`: {} is a private-network address, inferred hosting: remote; declare `hosting: local` if that server runs the model itself (not a proxy to a hosted API)",
                d.name, d.base_url
            );
        }
    }
    if !cfg.disabled.is_empty() {
        println!("disabled (enabled: false): {}", cfg.disabled.join(", "));
    }
    println!("models:");
    for m in &cfg.models {
        println!("  {} -> {}", m.name, m.deployments.join(", "));
    }
    if !cfg.policies.is_empty() {
        let names: Vec<&str> = cfg.policies.iter().map(|p| p.name.as_str()).collect();
        println!("policies: {}", names.join(", "));
    }
    if cfg.log.backend == crate::config::log::LogBackend::Postgres
        && let Some(w) = cfg
            .log
            .url
            .as_deref()
            .and_then(crate::store::pg::tls::unchecked_warning)
    {
        eprintln!("warning: {w}");
    }
    coordination::check(&cfg);
    ExitCode::SUCCESS
}

fn serve(log_format: LogFormat, config: Option<PathBuf>, listen: Option<String>) -> ExitCode {
    let (source, mut cfg) = match load(config) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let _telemetry = telemetry::init(log_format, cfg.telemetry.otlp_endpoint.as_deref());
    if let Some(l) = &listen {
        cfg.server.listen = l.clone();
    }
    let addr = match cfg.listen_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: --listen: {}", e.message);
            return ExitCode::from(2);
        }
    };
    if let Err((path, message)) = cfg.check_auth_exposure(addr) {
        eprintln!("error: {path}: {message}");
        return ExitCode::from(2);
    }
    let plan = runtime::Plan::for_process(&cfg.server);
    if plan.kind == config::RuntimeKind::PerCore {
        crate::providers::pool::set_threads(plan.workers);
    }
    let runtime = match plan.main_runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut ended = None;
    let ended_at = &mut ended;
    let code = runtime.block_on(async move {
        if let Err(e) = coordination::at_serve(&cfg).await {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
        let gateway = match Gateway::with_request_log(cfg) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let listeners = match runtime::bind(addr, plan.listeners()).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let live = crate::http::reload::Live::new(gateway.clone(), source.clone(), listen);
        if let Some(m) = gateway.config.telemetry.metrics_listen.clone() {
            match tokio::net::TcpListener::bind(&m).await {
                Ok(l) => {
                    let app = live
                        .metrics_app()
                        .into_make_service_with_connect_info::<std::net::SocketAddr>();
                    tokio::spawn(async move { axum::serve(l, app).await });
                }
                Err(e) => {
                    eprintln!("error: cannot listen on telemetry.metrics_listen {m}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        let local = listeners
            .first()
            .and_then(|l| l.local_addr().ok())
            .unwrap_or(addr);
        println!(
            "sluice listening on http://{local} (config: {source}; {})",
            plan.describe()
        );
        println!("{}", crate::http::local::mode_notice(&gateway.config));
        crate::http::reload::watch(live.clone());
        let grace = Duration::from_millis(gateway.config.server.shutdown_grace_ms);
        *ended_at = Some((gateway.recorder().clone(), grace));
        match runtime::serve(listeners, live).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    });
    if let Some((recorder, grace)) = ended {
        // The request threads' runtimes are gone by now. Shutting this one down drops the
        // connections still open on it, and with them each stream still running (its client
        // stopped reading, so it could not be told the end): each records its row then. The
        // log is drained once more before the process exits.
        runtime.shutdown_timeout(grace.max(Duration::from_secs(1)));
        drain_log(&recorder, grace);
        // Streams ended with the runtimes could not settle on the coordinator then.
        crate::access::coord::settle_left_over(grace.max(Duration::from_secs(1)));
    }
    code
}

/// Waits (at most `grace`, at least 1 s) until every row handed to the request log is
/// committed or spilled, on a runtime of its own (the serving runtimes are gone).
fn drain_log(recorder: &crate::gateway::record::Recorder, grace: Duration) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    else {
        return;
    };
    let within = grace.max(Duration::from_secs(1));
    if rt
        .block_on(async { tokio::time::timeout(within, recorder.flush()).await })
        .is_err()
    {
        tracing::error!("request log not drained within the grace period; exiting anyway");
    }
}

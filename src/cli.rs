//! The `sluice` command line (clap): `serve`, `check`.

use crate::config::{self, ConfigSource};
use crate::gateway::Gateway;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Sluice: an OpenAI-compatible LLM gateway that routes by openness, privacy and cost.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about)]
pub struct Cli {
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
}

/// Parses the arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Serve { config, listen } => serve(config, listen),
        Command::Check { config } => check(config),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
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
    println!("config OK: {source}");
    println!("deployments:");
    for d in &cfg.deployments {
        println!(
            "  {} ({}) {} model={}",
            d.name,
            d.provider.as_str(),
            d.base_url,
            d.model
        );
    }
    println!("models:");
    for m in &cfg.models {
        println!("  {} -> {}", m.name, m.deployments.join(", "));
    }
    ExitCode::SUCCESS
}

fn serve(config: Option<PathBuf>, listen: Option<String>) -> ExitCode {
    let (source, mut cfg) = match load(config) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if let Some(l) = listen {
        cfg.server.listen = l;
    }
    let addr = match cfg.listen_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: --listen: {}", e.message);
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let gateway = match Gateway::new(cfg) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let local = listener.local_addr().unwrap_or(addr);
        println!("sluice listening on http://{local} (config: {source})");
        match crate::server::run(listener, gateway, crate::server::shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

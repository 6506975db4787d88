//! The runtimes `sluice serve` runs on (`server.runtime`, `server.workers`).
//!
//! `per_core` (the default): request thread 0 is the main thread; threads 1.. are started
//! here. Each has a single-threaded tokio runtime, its own listening socket on the same
//! address (`SO_REUSEPORT`, so the kernel spreads new connections over them) and its own
//! upstream connection pools ([`crate::providers::pool`]). A request is parsed, sent
//! upstream and answered on one thread, with no hand-over between threads. Background work
//! started at serve time (config reload, the metrics listener, coordination) runs on thread
//! 0. SIGINT/SIGTERM reach thread 0, which passes the shutdown on to the others; each
//! drains its own connections and the request log as [`crate::http::run_live`] says.
//!
//! `shared`: one tokio multi-thread runtime of `workers` threads and one listener.

use crate::config::{RuntimeKind, ServerConfig};
use crate::http::reload::Live;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How many request threads to run, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Request threads, at least 1.
    pub workers: usize,
    /// `server.runtime`; `shared` where `SO_REUSEPORT` does not exist (not unix).
    pub kind: RuntimeKind,
}

impl Plan {
    /// `server.workers`, else `TOKIO_WORKER_THREADS` (`tokio_env`), else `cores`.
    pub fn of(server: &ServerConfig, tokio_env: Option<&str>, cores: usize) -> Plan {
        let workers = server
            .workers
            .or_else(|| tokio_env.and_then(|v| v.trim().parse().ok()))
            .unwrap_or(cores)
            .max(1);
        let kind = if cfg!(unix) {
            server.runtime
        } else {
            RuntimeKind::Shared
        };
        Plan { workers, kind }
    }

    /// [`Plan::of`] with this process's environment and core count.
    pub fn for_process(server: &ServerConfig) -> Plan {
        let env = std::env::var("TOKIO_WORKER_THREADS").ok();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Plan::of(server, env.as_deref(), cores)
    }

    /// How `serve` states the plan once it listens: `2 request threads, runtime per_core`.
    pub fn describe(&self) -> String {
        let threads = if self.workers == 1 {
            "thread"
        } else {
            "threads"
        };
        format!(
            "{} request {threads}, runtime {}",
            self.workers,
            self.kind.as_str()
        )
    }

    /// Listening sockets to bind: one per thread for `per_core`, else one.
    pub fn listeners(&self) -> usize {
        match self.kind {
            RuntimeKind::PerCore => self.workers,
            RuntimeKind::Shared => 1,
        }
    }

    /// The runtime of the main thread: single-threaded for `per_core`, else the shared
    /// multi-thread runtime.
    ///
    /// Errors: the OS refused a thread or the I/O driver.
    pub fn main_runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        match self.kind {
            RuntimeKind::PerCore => single_thread(),
            RuntimeKind::Shared => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(self.workers)
                .enable_all()
                .build(),
        }
    }
}

fn single_thread() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Binds `n` listening sockets on `addr` (port 0: a free port, the same for all). More than
/// one share the port with `SO_REUSEPORT`.
///
/// Errors: the address is taken (also by another process's `SO_REUSEPORT` group) or not
/// ours, or the OS refused the option.
pub async fn bind(addr: SocketAddr, n: usize) -> std::io::Result<Vec<TcpListener>> {
    if n <= 1 {
        return Ok(vec![TcpListener::bind(addr).await?]);
    }
    // A plain bind first (no listen, so nothing can connect to it): it fails when any
    // process listens there already. With `SO_REUSEPORT` alone, a second `sluice serve` of
    // the same user (an old one still running, another config) would join that process's
    // group and split its traffic.
    let plain = new_socket(addr)?;
    plain.set_reuseaddr(true)?;
    plain.bind(addr)?;
    let local = plain.local_addr()?;
    drop(plain);
    (0..n).map(|_| reuseport_listener(local)).collect()
}

#[cfg(unix)]
fn reuseport_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = new_socket(addr)?;
    // As `TcpListener::bind` does: a restart may bind while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

fn new_socket(addr: SocketAddr) -> std::io::Result<tokio::net::TcpSocket> {
    match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
}

#[cfg(not(unix))]
fn reuseport_listener(_addr: SocketAddr) -> std::io::Result<TcpListener> {
    Err(std::io::Error::other("SO_REUSEPORT needs unix"))
}

/// Serves `live` on `listeners` until SIGINT/SIGTERM: the first on the calling (main)
/// runtime, each other one on a thread of its own started here, then waits for every
/// thread to drain. Returns the first error any thread met.
///
/// Errors: a thread or its runtime could not start (nothing is served then), or serving
/// failed.
pub async fn serve(listeners: Vec<TcpListener>, live: Arc<Live>) -> std::io::Result<()> {
    let mut listeners = listeners.into_iter();
    let Some(own) = listeners.next() else {
        return Err(std::io::Error::other("no listener"));
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut threads = Vec::new();
    for (i, l) in listeners.enumerate() {
        let index = i + 1;
        let runtime = single_thread()?;
        let listener = l.into_std()?;
        let live = live.clone();
        let mut stopped = stopped.clone();
        let thread = std::thread::Builder::new()
            .name(format!("sluice-worker-{index}"))
            .spawn(move || {
                crate::providers::pool::enter(index);
                let grace = Duration::from_millis(live.gateway().config.server.shutdown_grace_ms);
                let served = runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener)?;
                    let signal = async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    };
                    crate::http::run_live(listener, live, signal).await
                });
                // Drops the connections still open here (each stream still running records
                // its row then), without waiting past the grace on blocking work.
                runtime.shutdown_timeout(grace.max(Duration::from_secs(1)));
                served
            })?;
        threads.push(thread);
    }
    crate::providers::pool::enter(0);
    let signal = async move {
        crate::http::shutdown_signal().await;
        let _ = stop.send(true);
    };
    let mut result = crate::http::run_live(own, live, signal).await;
    for t in threads {
        let joined = tokio::task::spawn_blocking(move || t.join()).await;
        let r = match joined {
            Ok(Ok(r)) => r,
            _ => Err(std::io::Error::other("a request thread stopped abnormally")),
        };
        if result.is_ok() {
            result = r;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(yaml: &str) -> ServerConfig {
        crate::config::parse("test", &format!("server:\n{yaml}"))
            .unwrap()
            .server
    }

    #[test]
    fn workers_come_from_the_config_then_the_env_then_the_cores() {
        let set = server("  workers: 3\n");
        assert_eq!(set.workers, Some(3));
        assert_eq!(Plan::of(&set, Some("5"), 8).workers, 3);
        let unset = server("  listen: 127.0.0.1:4000\n");
        assert_eq!(Plan::of(&unset, Some("5"), 8).workers, 5);
        assert_eq!(Plan::of(&unset, Some("five"), 8).workers, 8);
        assert_eq!(Plan::of(&unset, None, 8).workers, 8);
        assert_eq!(Plan::of(&unset, Some("0"), 0).workers, 1);
    }

    #[test]
    fn per_core_binds_one_listener_per_thread_and_shared_one() {
        let per_core = Plan::of(&server("  workers: 4\n"), None, 2);
        assert_eq!(
            (per_core.kind, per_core.listeners()),
            (RuntimeKind::PerCore, 4)
        );
        let shared = Plan::of(&server("  workers: 4\n  runtime: shared\n"), None, 2);
        assert_eq!((shared.kind, shared.listeners()), (RuntimeKind::Shared, 1));
    }

    #[test]
    fn serve_states_its_threads_and_runtime() {
        let one = Plan::of(&server("  workers: 1\n"), None, 8);
        assert_eq!(one.describe(), "1 request thread, runtime per_core");
        let shared = Plan::of(&server("  runtime: shared\n"), None, 2);
        assert_eq!(shared.describe(), "2 request threads, runtime shared");
    }

    #[test]
    fn zero_workers_is_a_config_error() {
        let err = crate::config::parse("test", "server:\n  workers: 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("server.workers") && err.contains("at least 1"),
            "{err}"
        );
    }

    /// Another process's `SO_REUSEPORT` group on the port (here: a socket of this one) is
    /// refused, not joined.
    #[tokio::test]
    async fn a_port_taken_by_another_reuseport_group_is_refused() {
        let taken = reuseport_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = taken.local_addr().unwrap();
        for n in [1, 3] {
            let err = bind(addr, n).await.err().map(|e| e.kind());
            assert_eq!(err, Some(std::io::ErrorKind::AddrInUse), "n = {n}");
        }
    }

    #[tokio::test]
    async fn per_core_listeners_share_one_port() {
        let ls = bind("127.0.0.1:0".parse().unwrap(), 3).await.unwrap();
        let ports: Vec<u16> = ls
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .map(|a| a.port())
            .collect();
        assert_eq!(ports.len(), 3);
        assert!(
            ports[0] != 0 && ports.iter().all(|p| *p == ports[0]),
            "{ports:?}"
        );
    }
}

//! Config reload without dropping requests: the server dispatches every request to the
//! router of the current [`Gateway`]; a reload builds a new gateway ([`Gateway::reloaded`])
//! and swaps it in. Requests in flight hold the old one until they end.
//!
//! Triggers ([`watch`]): `SIGHUP`, and the config file's content changing (checked every
//! second, so a Kubernetes ConfigMap update is picked up). What changed is printed; an invalid
//! new config is refused with an error line and counted (`sluice_config_reloads_total
//! {result="error"}`), and the running config stays.

use crate::config::{self, ConfigSource};
use crate::gateway::Gateway;
use axum::Router;
use axum::extract::Request;
use axum::response::IntoResponse;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tower::ServiceExt;

/// The gateway in use and its routers.
pub struct Live {
    current: RwLock<Arc<Current>>,
    source: ConfigSource,
    listen_override: Option<String>,
    /// The hash of the last file content tried (refused ones are reported once), and of the
    /// content seen at the previous check (a content is reloaded once it held for a whole
    /// check interval, so a file caught half-written is not).
    seen: std::sync::Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    tried: Option<String>,
    pending: Option<String>,
}

/// The gateway in use and its routers; a reload swaps the whole of it.
pub(super) struct Current {
    /// The gateway new requests go to.
    pub(super) gateway: Gateway,
    /// Its router (the front door's, [`super::front`], for what it does not answer itself).
    pub(super) app: Router,
    metrics: Router,
}

impl Current {
    fn of(gateway: Gateway) -> Self {
        Current {
            app: super::router(gateway.clone()),
            metrics: super::metrics_router(gateway.clone()),
            gateway,
        }
    }
}

impl Live {
    /// Serves `gateway`, loaded from `source`; `listen_override` (`--listen`) is applied to
    /// every reloaded config too.
    pub fn new(
        gateway: Gateway,
        source: ConfigSource,
        listen_override: Option<String>,
    ) -> Arc<Live> {
        Arc::new(Live {
            current: RwLock::new(Arc::new(Current::of(gateway))),
            source,
            listen_override,
            seen: std::sync::Mutex::default(),
        })
    }

    /// The current gateway and routers (one `Arc` clone: no per-request copy of the gateway).
    pub(super) fn current(&self) -> Arc<Current> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The gateway new requests go to.
    pub fn gateway(&self) -> Gateway {
        self.current().gateway.clone()
    }

    /// The `telemetry.metrics_listen` router, following reloads the same way.
    pub fn metrics_app(self: &Arc<Self>) -> Router {
        let live = self.clone();
        Router::new().fallback(move |req: Request| {
            let app = live.current().metrics.clone();
            async move { app.oneshot(req).await.into_response() }
        })
    }

    /// Loads the config again and swaps it in. Returns the changes (empty: the same config).
    ///
    /// Errors: the new config is invalid (it is counted, and the running one kept).
    pub fn reload(&self) -> Result<Vec<String>, String> {
        let old = self.gateway();
        if let ConfigSource::File(p) = &self.source
            && std::fs::read_to_string(p).is_ok_and(|t| t.trim().is_empty())
        {
            let e = format!("{}: the file is empty", p.display());
            old.replica().refused(&e);
            return Err(e);
        }
        let mut cfg = match config::load(&self.source) {
            Ok(c) => c,
            Err(e) => {
                let e = e.to_string();
                old.replica().refused(&e);
                return Err(e);
            }
        };
        if let Some(l) = &self.listen_override {
            cfg.server.listen = l.clone();
        }
        if cfg.hash == old.config.hash {
            return Ok(Vec::new());
        }
        let (hash_old, hash_new) = (old.config.hash.clone(), cfg.hash.clone());
        match old.reloaded(cfg) {
            Ok((gw, mut changes)) => {
                let next = Arc::new(Current::of(gw));
                match self.current.write() {
                    Ok(mut g) => *g = next,
                    Err(p) => *p.into_inner() = next,
                }
                if changes.is_empty() {
                    changes.push("no setting changed".into());
                }
                changes.insert(0, format!("hash {hash_old} -> {hash_new}"));
                Ok(changes)
            }
            Err(e) => {
                old.replica().refused(&e);
                Err(e)
            }
        }
    }

    /// Reloads and prints the outcome (stdout for changes, stderr for a refusal).
    pub fn reload_and_report(&self, why: &str) {
        match self.reload() {
            Ok(changes) if changes.is_empty() => {}
            Ok(changes) => {
                println!("config reloaded ({why}) from {}:", self.source);
                for c in &changes {
                    println!("  {c}");
                }
                tracing::info!(trigger = why, changes = %changes.join("; "), "config reloaded");
            }
            Err(e) => {
                eprintln!("error: config reload ({why}) refused, the running config is kept: {e}");
                tracing::error!(trigger = why, error = %e, "config reload refused");
            }
        }
    }

    /// Whether the file's content differs from the running config and from the last content
    /// tried, and has not changed since the previous check.
    fn file_changed(&self) -> bool {
        let ConfigSource::File(p) = &self.source else {
            return false;
        };
        let Ok(text) = std::fs::read_to_string(p) else {
            return false;
        };
        let h = config::text_hash(&text);
        let running = self.current().gateway.config.hash.clone();
        let mut seen = match self.seen.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if h == running || seen.tried.as_deref() == Some(h.as_str()) {
            seen.pending = None;
            return false;
        }
        if seen.pending.as_deref() != Some(h.as_str()) {
            seen.pending = Some(h);
            return false;
        }
        seen.pending = None;
        seen.tried = Some(h);
        true
    }
}

/// Starts the reload triggers: `SIGHUP`, and the config file's content (polled every
/// `server.config_poll_ms`; not when 0). Call inside a tokio runtime.
pub fn watch(live: Arc<Live>) {
    #[cfg(unix)]
    {
        let live = live.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                return;
            };
            while hup.recv().await.is_some() {
                let l = live.clone();
                let _ = tokio::task::spawn_blocking(move || l.reload_and_report("SIGHUP")).await;
            }
        });
    }
    let every = live.gateway().config.server.config_poll_ms;
    if every == 0 {
        return;
    }
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(every)).await;
            let l = live.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if l.file_changed() {
                    l.reload_and_report("file changed");
                }
            })
            .await;
        }
    });
}

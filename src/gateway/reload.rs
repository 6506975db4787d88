//! Config reload (SIGHUP or a changed file, see `http::reload`): a new [`Gateway`] over the new
//! config that keeps what must outlive it — the request log and metrics, keys database, spend,
//! rate limiters, reservations, coordinator, cooldowns — so requests in flight finish on the
//! old one and new requests take the new one. What changed is listed for the log.

use super::Gateway;
use crate::config::Config;
use crate::policy::Engine;
use crate::providers::Upstreams;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// This process's config history, shared by every gateway it served with.
#[derive(Debug, Default)]
pub struct ReplicaState {
    /// Reloads applied.
    pub reloads_ok: AtomicU64,
    /// Reloads refused (invalid new config; the old one kept).
    pub reloads_failed: AtomicU64,
    /// When the config in use was loaded, Unix ms.
    pub loaded_at_ms: AtomicI64,
    /// Why the last refused reload was refused.
    pub last_error: Mutex<Option<String>>,
}

impl ReplicaState {
    /// Counts a refused reload and keeps its reason.
    pub fn refused(&self, error: &str) {
        self.reloads_failed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut g) = self.last_error.lock() {
            *g = Some(error.to_string());
        }
    }

    /// The reason of the last refused reload.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|g| g.clone())
    }
}

impl Gateway {
    /// The process's reload counters.
    pub fn replica(&self) -> &ReplicaState {
        &self.replica
    }

    /// A gateway over `config` sharing this one's long-lived state, and the list of what
    /// changed (one line each). Settings read only at start (`server.listen`,
    /// `server.workers`, `server.runtime`, `log`, `telemetry`, `coordination`) keep their
    /// running values (listed as "needs a restart").
    ///
    /// Errors: a deployment, policy or key the new config cannot build.
    pub fn reloaded(&self, mut config: Config) -> Result<(Gateway, Vec<String>), String> {
        let old = &self.config;
        let mut changes = diff(old, &config);
        if old.server.master_key != config.server.master_key {
            changes.push("server.master_key changed".into());
        }
        let mut kept = Vec::new();
        if old.server.listen != config.server.listen {
            config.server.listen = old.server.listen.clone();
            kept.push("server.listen");
        }
        if old.server.workers != config.server.workers {
            config.server.workers = old.server.workers;
            kept.push("server.workers");
        }
        if old.server.runtime != config.server.runtime {
            config.server.runtime = old.server.runtime;
            kept.push("server.runtime");
        }
        if old.log != config.log {
            config.log = old.log.clone();
            kept.push("log");
        }
        if serde_json::to_value(&old.telemetry).ok() != serde_json::to_value(&config.telemetry).ok()
        {
            config.telemetry = old.telemetry.clone();
            kept.push("telemetry");
        }
        if old.coordination != config.coordination {
            config.coordination = old.coordination.clone();
            kept.push("coordination");
        }
        for k in kept {
            changes.push(format!(
                "{k}: changed, needs a restart (running value kept)"
            ));
        }
        let upstreams = Upstreams::new(&config.deployments)?;
        let policy = Engine::new(&config)?;
        let access = self.access.reconfigured(&config)?;
        let gw = Gateway::from_parts(super::Parts {
            config: Arc::new(config),
            upstreams,
            recorder: self.recorder.clone(),
            access: Arc::new(access),
            policy: Arc::new(policy),
            routes: self.routes.clone(),
            replica: self.replica.clone(),
            closing: self.closing.clone(),
        });
        self.replica.reloads_ok.fetch_add(1, Ordering::Relaxed);
        self.replica
            .loaded_at_ms
            .store(crate::access::coord::now_ms(), Ordering::Relaxed);
        Ok((gw, changes))
    }
}

/// What differs between two configs, one line per top-level section: named lists say which
/// names were added, removed or changed; blocks say which of their keys changed. Secrets are
/// never shown (they are not serialized).
pub fn diff(old: &Config, new: &Config) -> Vec<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return vec!["(could not compare)".into()];
    };
    let mut out = Vec::new();
    if old.hash != new.hash && a == b {
        out.push("formatting or ${VAR} references only".into());
    }
    for (key, va) in &a {
        let vb = b.get(key).unwrap_or(&serde_json::Value::Null);
        if va == vb {
            continue;
        }
        out.push(match (va, vb) {
            (serde_json::Value::Array(x), serde_json::Value::Array(y)) => named_diff(key, x, y),
            (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                let changed: Vec<String> = keys
                    .into_iter()
                    .filter(|k| x.get(*k) != y.get(*k))
                    .map(|k| k.to_string())
                    .collect();
                format!("{key}: changed {}", changed.join(", "))
            }
            _ => format!("{key}: changed"),
        });
    }
    out
}

fn named_diff(key: &str, old: &[serde_json::Value], new: &[serde_json::Value]) -> String {
    let name = |v: &serde_json::Value| v.get("name").and_then(|n| n.as_str()).map(str::to_string);
    let names = |l: &[serde_json::Value]| l.iter().filter_map(name).collect::<Vec<_>>();
    let (na, nb) = (names(old), names(new));
    if na.len() != old.len() || nb.len() != new.len() {
        return format!("{key}: changed");
    }
    let find = |l: &[serde_json::Value], n: &str| {
        l.iter().find(|v| name(v).as_deref() == Some(n)).cloned()
    };
    let added: Vec<&String> = nb.iter().filter(|n| !na.contains(n)).collect();
    let removed: Vec<&String> = na.iter().filter(|n| !nb.contains(n)).collect();
    let changed: Vec<&String> = na
        .iter()
        .filter(|n| nb.contains(n) && find(old, n) != find(new, n))
        .collect();
    let mut parts = Vec::new();
    for (label, l) in [("added", added), ("removed", removed), ("changed", changed)] {
        if !l.is_empty() {
            let l: Vec<&str> = l.iter().map(|s| s.as_str()).collect();
            parts.push(format!("{label} {}", l.join(", ")));
        }
    }
    if parts.is_empty() {
        parts.push("order changed".into());
    }
    format!("{key}: {}", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "
deployments:
  - {name: a, provider: openai, base_url: 'http://127.0.0.1:1/v1', model: m}
  - {name: b, provider: openai, base_url: 'http://127.0.0.1:2/v1', model: m}
models:
  - {name: default, deployments: [a]}
";

    #[test]
    fn diff_names_what_changed() {
        let old = crate::config::parse("a", A).unwrap();
        let new_text = A
            .replace("http://127.0.0.1:2/v1", "http://127.0.0.1:3/v1")
            .replace(
                "deployments: [a]}",
                "deployments: [a]}\n  - {name: fast, deployments: [b]}",
            )
            + "server: {max_body_bytes: 100}\n";
        let new = crate::config::parse("b", &new_text).unwrap();
        assert_eq!(
            diff(&old, &new),
            [
                "server: changed max_body_bytes",
                "deployments: changed b",
                "models: added fast",
            ]
        );
        assert!(diff(&old, &old).is_empty());
        let spaced = crate::config::parse("c", &format!("{A}\n# comment\n")).unwrap();
        assert_ne!(spaced.hash, old.hash);
        assert_eq!(
            diff(&old, &spaced),
            ["formatting or ${VAR} references only"]
        );
    }

    /// The request threads are started once: a reload that changes them says so and keeps
    /// the running values in the config it serves.
    #[test]
    fn a_reload_keeps_the_request_threads_and_says_they_need_a_restart() {
        let old = crate::config::parse("a", &format!("{A}server: {{workers: 2}}\n")).unwrap();
        let new = crate::config::parse(
            "b",
            &format!("{A}server: {{workers: 4, runtime: shared, max_body_bytes: 100}}\n"),
        )
        .unwrap();
        let (gw, changes) = Gateway::new(old).unwrap().reloaded(new).unwrap();
        assert_eq!(
            changes,
            [
                "server: changed max_body_bytes, runtime, workers",
                "server.workers: changed, needs a restart (running value kept)",
                "server.runtime: changed, needs a restart (running value kept)",
            ]
        );
        assert_eq!(gw.config.server.workers, Some(2));
        assert_eq!(
            gw.config.server.runtime,
            crate::config::RuntimeKind::PerCore
        );
        assert_eq!(gw.config.server.max_body_bytes, 100);
    }
}

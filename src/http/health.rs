//! Probes and metrics: `GET /health` (process alive), `GET /health/ready` (each deployment
//! reachable or not), `GET /metrics` (Prometheus text; behind [`super::auth::admin`]).
//!
//! `/health/ready` is open (load balancers call it without a key) but says only
//! `{"status": "ready" | "unavailable"}` (200 / 503) unless the caller is admin (the master key
//! or an admin key; everyone in local and open mode): only they see the `deployments` detail
//! with names and errors. Backend probes are cached ([`crate::providers::probe_cache`]).

use crate::gateway::Gateway;
use crate::providers::probe_cache::ProbeResult;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// `/health` and `/health/ready` (open to everyone).
pub fn router() -> Router<Gateway> {
    Router::new()
        .route("/health", get(health))
        .route("/health/ready", get(ready))
}

async fn health() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// `GET /health/ready`: 200 when at least one deployment is reachable (or none is
/// configured), else 503; also 503 while a `fail_closed` coordinator is unreachable. The
/// detail for admins only (see the module docs), with `replica`: the config's hash and reloads
/// and the coordinator's state ([`replica_view`]).
async fn ready(State(gw): State<Gateway>, headers: HeaderMap) -> Response {
    let probes = backend_probes(&gw).await;
    let reachable = probes.is_empty() || probes.iter().any(|p| p.reachable.is_ok());
    let closed = gw
        .access()
        .coordination_status()
        .is_some_and(|c| !c.up && c.on_unavailable == crate::config::OnUnavailable::FailClosed);
    let (log, log_ready) = log_writer(&gw);
    let ready = reachable && !closed && log_ready;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = json!({"status": if ready {"ready"} else {"unavailable"}});
    if sees_detail(&gw, &headers) {
        body["deployments"] = deployments_detail(&probes);
        body["replica"] = replica_view(&gw);
        if let Some(log) = log {
            body["log"] = log;
        }
    }
    (status, axum::Json(body)).into_response()
}

/// The replica's config and coordination, for the admin view of `/health/ready`:
/// `{"config": {"hash", "loaded_at_ms", "reloads", "reload_errors", "last_reload_error"},
/// "coordination": {"backend": "redis", "state": "up"|"down", "since_ms", "last_error",
/// "on_unavailable", "library", "unavailable_decisions": {setting: count}}` (`coordination`
/// is `{"backend": "in-process"}` without a coordinator).
pub fn replica_view(gw: &Gateway) -> serde_json::Value {
    use std::sync::atomic::Ordering::Relaxed;
    let r = gw.replica();
    let coordination = match gw.access().coordination_status() {
        None => json!({"backend": "in-process"}),
        Some(c) => {
            let decisions: serde_json::Map<String, serde_json::Value> = c
                .decisions
                .iter()
                .map(|(d, n)| (d.as_str().to_string(), json!(n)))
                .collect();
            json!({
                "backend": c.backend,
                "state": if c.up {"up"} else {"down"},
                "since_ms": c.since_ms,
                "last_error": c.last_error,
                "on_unavailable": c.on_unavailable.as_str(),
                "library": c.library,
                "unavailable_decisions": decisions,
            })
        }
    };
    json!({
        "config": {
            "hash": gw.config.hash,
            "loaded_at_ms": r.loaded_at_ms.load(Relaxed),
            "reloads": r.reloads_ok.load(Relaxed),
            "reload_errors": r.reloads_failed.load(Relaxed),
            "last_reload_error": r.last_error(),
        },
        "coordination": coordination,
    })
}

/// The replica's metrics in OpenMetrics text (no `# EOF`): `sluice_config_info{hash}`,
/// `sluice_config_reloads_total{result="ok"|"error"}`, and with a coordinator
/// `sluice_coordinator_up{backend}` (1/0) and
/// `sluice_coordinator_unavailable_decisions_total{decision}`.
pub fn replica_metrics(gw: &Gateway) -> String {
    use std::fmt::Write;
    use std::sync::atomic::Ordering::Relaxed;
    let r = gw.replica();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP sluice_config The config in use (hash of the file as read)."
    );
    let _ = writeln!(out, "# TYPE sluice_config info");
    let _ = writeln!(out, "sluice_config_info{{hash=\"{}\"}} 1", gw.config.hash);
    let _ = writeln!(
        out,
        "# HELP sluice_config_reloads Config reloads, applied or refused."
    );
    let _ = writeln!(out, "# TYPE sluice_config_reloads counter");
    let _ = writeln!(
        out,
        "sluice_config_reloads_total{{result=\"ok\"}} {}",
        r.reloads_ok.load(Relaxed)
    );
    let _ = writeln!(
        out,
        "sluice_config_reloads_total{{result=\"error\"}} {}",
        r.reloads_failed.load(Relaxed)
    );
    if let Some(c) = gw.access().coordination_status() {
        let _ = writeln!(
            out,
            "# HELP sluice_coordinator_up Whether the shared coordinator is reachable."
        );
        let _ = writeln!(out, "# TYPE sluice_coordinator_up gauge");
        let _ = writeln!(
            out,
            "sluice_coordinator_up{{backend=\"{}\"}} {}",
            c.backend,
            u8::from(c.up)
        );
        let _ = writeln!(
            out,
            "# HELP sluice_coordinator_unavailable_decisions Requests decided by on_unavailable while the coordinator was unreachable."
        );
        let _ = writeln!(
            out,
            "# TYPE sluice_coordinator_unavailable_decisions counter"
        );
        for (d, n) in c.decisions {
            let _ = writeln!(
                out,
                "sluice_coordinator_unavailable_decisions_total{{decision=\"{}\"}} {n}",
                d.as_str()
            );
        }
    }
    out
}

/// The request-log writer's part of `/health/ready` (admin detail): `{backend, state,
/// spill_pending, rows_spilled, rows_dropped, last_error}` (`None` without a log), and whether
/// the replica may take traffic. `state` is `ok`, `spilling` (the store refuses writes; rows go
/// to the local spill file and nothing is lost — still ready, so answers keep flowing) or
/// `failing` (neither the store nor the spill file takes rows — not ready, so a load balancer
/// sends requests elsewhere).
pub fn log_writer(gw: &Gateway) -> (Option<Value>, bool) {
    let Some(log) = gw.recorder().log() else {
        return (None, true);
    };
    let h = log.health();
    let ready = h.state != crate::store::writer::WriterState::Failing;
    (Some(json!(h)), ready)
}

/// The backends' probe results, at most `server.ready_cache_ms` old.
async fn backend_probes(gw: &Gateway) -> Arc<Vec<ProbeResult>> {
    let server = &gw.config.server;
    gw.upstreams()
        .probes
        .results(
            gw.upstreams(),
            &gw.config.deployments,
            Duration::from_millis(server.ready_timeout_ms),
            Duration::from_millis(server.ready_cache_ms),
        )
        .await
}

/// Whether the caller may see which backends exist and how they fail: an admin principal.
/// A missing or wrong key is not an error here, just no detail.
fn sees_detail(gw: &Gateway, headers: &HeaderMap) -> bool {
    gw.access().authenticate(headers).is_ok_and(|p| p.admin)
}

/// `[{"name", "provider", "reachable", "error"}]`, one per deployment.
fn deployments_detail(probes: &[ProbeResult]) -> Value {
    probes
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "provider": p.provider,
                "reachable": p.reachable.is_ok(),
                "error": p.reachable.as_ref().err(),
            })
        })
        .collect()
}

/// `GET /metrics`: Prometheus/OpenMetrics text (the admin layer runs first).
pub async fn metrics(State(gw): State<Gateway>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        with_replica_metrics(gw.metrics().render(), &gw),
    )
        .into_response()
}

/// `text` (ending in `# EOF`) with [`replica_metrics`] inserted before the end marker.
fn with_replica_metrics(mut text: String, gw: &Gateway) -> String {
    let extra = replica_metrics(gw);
    match text.rfind("# EOF") {
        Some(i) => text.insert_str(i, &extra),
        None => text.push_str(&extra),
    }
    text
}

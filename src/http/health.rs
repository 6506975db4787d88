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
/// configured), else 503; the detail for admins only (see the module docs).
async fn ready(State(gw): State<Gateway>, headers: HeaderMap) -> Response {
    let probes = backend_probes(&gw).await;
    let any = probes.is_empty() || probes.iter().any(|p| p.reachable.is_ok());
    let (log, log_ready) = log_writer(&gw);
    let ready = any && log_ready;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = json!({"status": if ready {"ready"} else {"unavailable"}});
    if sees_detail(&gw, &headers) {
        body["deployments"] = deployments_detail(&probes);
        if let Some(log) = log {
            body["log"] = log;
        }
    }
    (status, axum::Json(body)).into_response()
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
        gw.metrics().render(),
    )
        .into_response()
}

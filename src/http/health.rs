//! Probes and metrics: `GET /health` (process alive), `GET /health/ready` (each deployment
//! reachable or not), `GET /metrics` (Prometheus text; behind [`super::auth::admin`]).

use crate::gateway::Gateway;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
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

/// `GET /health/ready`: probes every deployment (short timeout, in parallel). 200 when at
/// least one is reachable (or none is configured), else 503.
async fn ready(State(gw): State<Gateway>) -> Response {
    let timeout = Duration::from_millis(gw.config.server.ready_timeout_ms);
    let probes = gw.config.deployments.iter().map(|d| {
        let gw = gw.clone();
        async move {
            let r = crate::providers::probe(gw.upstreams(), d, timeout).await;
            json!({
                "name": d.name,
                "provider": d.provider.as_str(),
                "reachable": r.is_ok(),
                "error": r.err(),
            })
        }
    });
    let results = futures_util::future::join_all(probes).await;
    let any = results.is_empty() || results.iter().any(|r| r["reachable"] == json!(true));
    let (log, log_ready) = log_writer(&gw);
    let ready = any && log_ready;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body =
        json!({"status": if ready {"ready"} else {"unavailable"}, "deployments": results});
    if let Some(log) = log {
        body["log"] = log;
    }
    (status, axum::Json(body)).into_response()
}

/// The request-log writer's part of `/health/ready`: `{backend, state, spill_pending,
/// rows_spilled, rows_dropped, last_error}` (`None` without a log), and whether the replica
/// may take traffic. `state` is `ok`, `spilling` (the store refuses writes; rows go to the
/// local spill file and nothing is lost — still ready, so answers keep flowing) or `failing`
/// (neither the store nor the spill file takes rows — not ready, so a load balancer sends
/// requests elsewhere).
pub fn log_writer(gw: &Gateway) -> (Option<serde_json::Value>, bool) {
    let Some(log) = gw.recorder().log() else {
        return (None, true);
    };
    let h = log.health();
    let ready = h.state != crate::store::writer::WriterState::Failing;
    (Some(json!(h)), ready)
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

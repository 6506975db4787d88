//! The admin API over the request log (JSON). Every route needs the master key or an admin
//! key when `server.master_key` is set (without one, Sluice only listens on loopback).
//! Reads run on tokio's blocking pool, on a connection of their own (WAL: they never wait for
//! the writer).
//!
//! - `GET /admin/logs?since&model&deployment&status&key&grep&limit&cursor`: newest first,
//!   `limit` 1–1000 (default 50); keyset pagination: pass the answer's `next_cursor` as
//!   `cursor` for the next page. Answer: `{"object":"list","data":[row…],"has_more",
//!   "next_cursor"}`, rows as in `sluice logs --json`.
//! - `GET /admin/logs/{id}`: one row (request id, or row number); 404 `request_not_found`.
//! - `GET /admin/usage?since&by`: [`UsageReport`](crate::store::query::UsageReport) as JSON.
//! - `GET /admin/log/verify`: `{"ok":true,"rows","head_seq","head_hash","anchor_seq","anchor_hash"}` or
//!   `{"ok":false,"seq","reason"}`.
//!
//! `since` takes what `sluice logs --since` takes (`1h`, `2026-11-01`, RFC 3339).

pub mod keys;

use crate::api::ApiError;
use crate::gateway::Gateway;
use crate::http::extract::{ApiPath, ApiQuery};
use crate::store::query::{self, GroupBy, LogFilter, StatusFilter};
use crate::store::{self, StoreError, chain};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

/// The admin routes, merged into the main router by [`crate::http::router`].
pub fn router() -> Router<Gateway> {
    Router::new()
        .route("/admin/logs", get(logs))
        .route("/admin/logs/{id}", get(one))
        .route("/admin/usage", get(usage))
        .route("/admin/log/verify", get(verify))
}

/// Query of `GET /admin/logs`.
#[derive(Debug, Default, Deserialize)]
pub struct LogsQuery {
    since: Option<String>,
    model: Option<String>,
    deployment: Option<String>,
    status: Option<String>,
    key: Option<String>,
    grep: Option<String>,
    limit: Option<usize>,
    cursor: Option<i64>,
}

/// Query of `GET /admin/usage`.
#[derive(Debug, Default, Deserialize)]
pub struct UsageQuery {
    since: Option<String>,
    by: Option<String>,
}

fn bad(param: &str, e: StoreError) -> ApiError {
    ApiError::invalid_request(e.to_string()).with_param(param)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        format!("request log: {e}"),
    )
}

/// Parses a `since` parameter (see [`query::parse_time`]).
///
/// Errors: 400 naming `since`.
pub fn parse_since(s: Option<&str>) -> Result<Option<i64>, ApiError> {
    s.filter(|s| !s.is_empty())
        .map(|s| query::parse_time(s, store::now_ms() as i64))
        .transpose()
        .map_err(|e| bad("since", e))
}

/// Runs `f` on a fresh read connection to the gateway's log, on the blocking pool.
///
/// Errors: 404 `log_off` when the gateway has no log, 500 when the file cannot be opened or
/// the query fails, and `f`'s own errors.
pub async fn with_log<T: Send + 'static>(
    gw: &Gateway,
    f: impl FnOnce(&mut dyn crate::store::backend::LogStore) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    if gw.recorder().log().is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "The request log is off (log.prompts: off).",
        )
        .with_code("log_off"));
    }
    let cfg = gw.config.log.clone();
    tokio::task::spawn_blocking(move || {
        let mut store = store::connect_existing(&cfg).map_err(internal)?;
        f(&mut *store)
    })
    .await
    .map_err(internal)?
}

fn respond<T: serde::Serialize>(r: Result<T, ApiError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn logs(State(gw): State<Gateway>, ApiQuery(q): ApiQuery<LogsQuery>) -> Response {
    respond(list(&gw, q).await)
}

async fn list(gw: &Gateway, q: LogsQuery) -> Result<serde_json::Value, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(
            ApiError::invalid_request("`limit` must be between 1 and 1000.").with_param("limit"),
        );
    }
    let filter = LogFilter {
        since_ms: parse_since(q.since.as_deref())?,
        model: q.model,
        deployment: q.deployment,
        status: q
            .status
            .as_deref()
            .map(StatusFilter::parse)
            .transpose()
            .map_err(|e| bad("status", e))?,
        key: q.key,
        grep: q.grep,
        before_seq: q.cursor,
        limit: limit + 1,
    };
    with_log(gw, move |conn| {
        let mut rows = conn.list(&filter).map_err(internal)?;
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let next = if has_more {
            rows.last().map(|r| r.seq)
        } else {
            None
        };
        Ok(json!({"object": "list", "data": rows, "has_more": has_more, "next_cursor": next}))
    })
    .await
}

async fn one(State(gw): State<Gateway>, ApiPath(id): ApiPath<String>) -> Response {
    let r = async {
        with_log(&gw, move |conn| {
            conn.get(&id).map_err(internal)?.ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    format!("No request `{id}` in the log."),
                )
                .with_code("request_not_found")
            })
        })
        .await
    }
    .await;
    respond(r)
}

async fn usage(State(gw): State<Gateway>, ApiQuery(q): ApiQuery<UsageQuery>) -> Response {
    let r = async {
        let since = parse_since(q.since.as_deref())?;
        let by =
            q.by.as_deref()
                .map(GroupBy::parse)
                .transpose()
                .map_err(|e| bad("by", e))?;
        with_log(&gw, move |conn| {
            query::usage(conn, since, by).map_err(internal)
        })
        .await
    }
    .await;
    respond(r)
}

async fn verify(State(gw): State<Gateway>) -> Response {
    let r = async {
        with_log(&gw, |conn| {
            Ok(match conn.verify().map_err(internal)? {
                chain::Verdict::Ok {
                    rows,
                    head_seq,
                    head_hash,
                    anchor_seq,
                    anchor_hash,
                } => {
                    json!({"ok": true, "rows": rows, "head_seq": head_seq, "head_hash": head_hash,
                        "anchor_seq": anchor_seq, "anchor_hash": anchor_hash})
                }
                chain::Verdict::Broken { seq, reason } => {
                    json!({"ok": false, "seq": seq, "reason": reason})
                }
            })
        })
        .await
    }
    .await;
    respond(r)
}

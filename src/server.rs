//! HTTP: the axum router, handlers (protocol work only) and the middleware order.
//!
//! Middleware order, outermost first — written down here and nowhere else:
//! 1. `request_id`: takes the client's `x-request-id` or makes a UUIDv7, puts it on the
//!    request and the response.
//! 2. handlers: read the body up to `server.max_body_bytes` (413 past it), parse it once into
//!    the typed request (400 naming `param`), call the [`Gateway`].
//!
//! Every route answers both with and without the `/v1` prefix. Unknown routes get a 404 in
//! OpenAI's error shape.

use crate::api::{ApiError, ChatCompletionRequest, GenericRequest, parse_body};
use crate::gateway::{Gateway, GatewayReply, ReplyBody, RequestContext};
use crate::providers::{Endpoint, RequestBody};
use crate::telemetry;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tracing::Instrument;

/// Header carrying the request id.
pub const REQUEST_ID: &str = "x-request-id";

/// Builds the router over `gateway`.
pub fn router(gateway: Gateway) -> Router {
    let api = Router::new()
        .route("/chat/completions", post(chat_completions))
        .route("/completions", post(completions))
        .route("/embeddings", post(embeddings))
        .route("/models", get(list_models))
        .route("/models/{*id}", get(get_model))
        .merge(crate::responses_http::routes());
    let mut root = Router::new();
    if gateway.config.telemetry.metrics_listen.is_none() {
        root = root.route("/metrics", get(metrics));
    }
    root.nest("/v1", api.clone())
        .merge(api)
        .route("/health", get(health))
        .route("/health/ready", get(ready))
        .merge(crate::admin::router())
        .merge(crate::ui::router())
        .merge(crate::admin_keys::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(request_id))
        .with_state(gateway)
}

async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("-"));
    req.headers_mut().insert(REQUEST_ID, value.clone());
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(REQUEST_ID, value);
    resp
}

fn id_of(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string()
}

async fn read_body(gateway: &Gateway, body: Body) -> Result<bytes::Bytes, ApiError> {
    let limit = gateway.config.server.max_body_bytes;
    to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("Request body is larger than the limit of {limit} bytes."),
        )
        .with_code("request_too_large")
    })
}

async fn chat_completions(
    State(gw): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let bytes = read_body(&gw, body).await?;
        let req: ChatCompletionRequest = parse_body(&bytes)?;
        Ok(RequestBody::Chat(req))
    }
    .await;
    serve(gw, peer, headers, Endpoint::ChatCompletions, result).await
}

async fn completions(
    State(gw): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let bytes = read_body(&gw, body).await?;
        let req: GenericRequest = parse_body(&bytes)?;
        if !req.extra.contains_key("prompt") {
            return Err(missing("prompt"));
        }
        Ok(RequestBody::Generic(req))
    }
    .await;
    serve(gw, peer, headers, Endpoint::Completions, result).await
}

async fn embeddings(
    State(gw): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let bytes = read_body(&gw, body).await?;
        let req: GenericRequest = parse_body(&bytes)?;
        if !req.extra.contains_key("input") {
            return Err(missing("input"));
        }
        if req.is_stream() {
            return Err(
                ApiError::invalid_request("Embeddings cannot be streamed.").with_param("stream")
            );
        }
        Ok(RequestBody::Generic(req))
    }
    .await;
    serve(gw, peer, headers, Endpoint::Embeddings, result).await
}

fn missing(param: &str) -> ApiError {
    ApiError::invalid_request(format!("Missing required parameter: '{param}'.")).with_param(param)
}

async fn serve(
    gw: Gateway,
    peer: SocketAddr,
    headers: HeaderMap,
    endpoint: Endpoint,
    parsed: Result<RequestBody, ApiError>,
) -> Response {
    let mut ctx = RequestContext::new(id_of(&headers), endpoint);
    ctx.client_ip = Some(peer.ip().to_string());
    let body = match parsed {
        Ok(b) => b,
        Err(e) => {
            gw.record_rejection(&ctx, None, &e).await;
            return e.into_response();
        }
    };
    ctx.principal = match gw.authenticate(&headers) {
        Ok(p) => p,
        Err(e) => {
            gw.record_rejection(&ctx, Some(&body), &e).await;
            return e.into_response();
        }
    };
    let prompt_estimate = crate::gateway::summary::estimate_tokens(&body.texts());
    let limit_headers = match gw.admit(&mut ctx.principal, body.model(), prompt_estimate) {
        Ok(h) => h,
        Err(rej) => {
            gw.record_rejection(&ctx, Some(&body), &rej.error).await;
            return with_headers(rej.error.into_response(), rej.headers);
        }
    };
    ctx.span = telemetry::request_span(&headers, endpoint.operation(), body.model(), &ctx.id);
    telemetry::record_request(&ctx.span, &body, gw.config.telemetry.capture_content);
    ctx.headers = headers;
    let span = ctx.span.clone();
    let resp = match gw.handle(ctx, body).instrument(span).await {
        Ok(reply) => reply_response(reply),
        Err(e) => e.into_response(),
    };
    with_headers(resp, limit_headers)
}

fn with_headers(mut resp: Response, headers: Vec<(&'static str, String)>) -> Response {
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(HeaderName::from_static(name), v);
        }
    }
    resp
}

/// Lets a request through only with the master key or an admin key (when a master key is
/// set); 401/403 in OpenAI's error shape otherwise.
pub fn require_admin(gw: &Gateway, headers: &HeaderMap) -> Result<(), ApiError> {
    let p = gw.authenticate(headers)?;
    if p.admin {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            "This route needs the master key or an admin key.",
        ))
    }
}

fn reply_response(reply: GatewayReply) -> Response {
    let mut resp = match reply.body {
        ReplyBody::Json(bytes) => {
            ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
        }
        ReplyBody::Sse(stream) => (
            [
                (header::CONTENT_TYPE, "text/event-stream"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            Body::from_stream(stream),
        )
            .into_response(),
    };
    for (name, value) in reply.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(HeaderName::from_static(name), v);
        }
    }
    resp
}

/// `GET /v1/models`: configured model names and deployment names, in OpenAI's list shape.
async fn list_models(State(gw): State<Gateway>, headers: HeaderMap) -> Response {
    let principal = match gw.authenticate(&headers) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let data: Vec<Value> = model_ids(&gw)
        .into_iter()
        .map(|id| with_deployments(&gw, &principal, &headers, id))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

/// `GET /v1/models/{id}`.
async fn get_model(
    State(gw): State<Gateway>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let principal = match gw.authenticate(&headers) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if model_ids(&gw).contains(&id) {
        axum::Json(with_deployments(&gw, &principal, &headers, id)).into_response()
    } else {
        ApiError::model_not_found(&id).into_response()
    }
}

fn model_ids(gw: &Gateway) -> Vec<String> {
    gw.config
        .models
        .iter()
        .map(|m| m.name.clone())
        .chain(gw.config.deployments.iter().map(|d| d.name.clone()))
        .collect()
}

fn model_object(id: String) -> Value {
    json!({"id": id, "object": "model", "created": 0, "owned_by": "sluice"})
}

/// OpenAI's model object plus Sluice's `deployments`: the eligible ones, in try order, with
/// their hosting and openness (see [`crate::policy::explain::model_deployments`]).
fn with_deployments(
    gw: &Gateway,
    principal: &crate::auth::Principal,
    headers: &HeaderMap,
    id: String,
) -> Value {
    let deployments = crate::policy::explain::model_deployments(gw, principal, headers, &id);
    let mut v = model_object(id);
    v["deployments"] = Value::Array(deployments);
    v
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
    let status = if any {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(
            json!({"status": if any {"ready"} else {"unavailable"}, "deployments": results}),
        ),
    )
        .into_response()
}

/// The router of the separate metrics listener (`telemetry.metrics_listen`).
pub fn metrics_router(gateway: Gateway) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(gateway)
}

/// `GET /metrics`: Prometheus/OpenMetrics text.
async fn metrics(State(gw): State<Gateway>, headers: HeaderMap) -> Response {
    if let Err(e) = require_admin(&gw, &headers) {
        return e.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        gw.metrics().render(),
    )
        .into_response()
}

async fn not_found(req: Request) -> Response {
    let agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::warn!(method = %req.method(), path = %req.uri().path(), user_agent = %agent, "request to a route Sluice does not serve");
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("Unknown request URL: {} {}", req.method(), req.uri().path()),
    )
    .with_code("unknown_url")
    .into_response()
}

async fn method_not_allowed(req: Request) -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        format!(
            "Method {} is not allowed on {}",
            req.method(),
            req.uri().path()
        ),
    )
    .into_response()
}

/// Serves `gateway` on `listener` until `shutdown` resolves, then stops accepting, gives
/// in-flight requests `server.shutdown_grace_ms` to finish, and drains the request log's
/// queue (every finished request is in the log when this returns).
pub async fn run(
    listener: tokio::net::TcpListener,
    gateway: Gateway,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = Duration::from_millis(gateway.config.server.shutdown_grace_ms);
    let recorder = gateway.recorder().clone();
    let app = router(gateway).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = tx.send(());
    };
    // No Nagle: a stream chunk must leave as soon as it is written, not wait for an ACK.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(signal);
    let deadline = async move {
        if rx.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let result = tokio::select! {
        r = server => r,
        _ = deadline => {
            tracing::warn!("shutdown grace period over; closing remaining connections");
            Ok(())
        }
    };
    recorder.flush().await;
    result
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

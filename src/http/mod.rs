//! HTTP: the front door, the axum router and the middleware order; one file per inbound API.
//!
//! Where things are: [`openai`] serves chat completions, completions, embeddings and models;
//! [`messages`] Anthropic's Messages API (bridged to chat completions) and the `/` probe;
//! [`responses`] the Responses API (bridged through chat);
//! [`health`] the probes and `/metrics`; [`admin`] the admin API; [`ui`] the web pages;
//! [`auth`] the authentication layers. A new inbound API is one more file here, parsing into
//! `api/` types and calling the [`Gateway`].
//!
//! Middleware order, outermost first — written down here; steps 1 and 2 run in
//! [`front`] for every request, and step 3 there too for the routes that carry prompts (the
//! `POST`s to chat completions, completions, embeddings, Responses and Messages: handed to
//! their handlers without the router's layers), in the router's route layers for the rest:
//! 1. `request_id`: takes the client's `x-request-id` or makes a UUIDv7, puts it on the
//!    request and the response.
//! 2. [`local::guard`] (local mode only: no master key): loopback `Host` (421), JSON bodies
//!    (415), `/admin` `/metrics` `/ui` for loopback peers only (403). Off with a master key.
//! 3. authentication, one layer per route group, before any body is read:
//!    `/v1/*` → [`auth::client`] (a client key, or anyone without a master key;
//!    [`messages::client`] for the Anthropic routes: the same check, Anthropic's 401);
//!    `/admin/*`, `/metrics` → [`auth::admin`]; `/ui` pages → [`auth::browser`] (admin key or
//!    the login session cookie). `/health*`, `/ui/login` and `/ui/logout` are open. No handler checks access itself.
//! 4. handlers: read the body up to `server.max_body_bytes` (413 past it), parse it once into
//!    the typed request (400 naming `param`), call the [`Gateway`].
//!
//! Every route answers both with and without the `/v1` prefix. Unknown routes get a 404 in
//! OpenAI's error shape.

pub mod admin;
pub mod auth;
pub mod extract;
pub mod front;
pub mod health;
pub mod local;
pub mod messages;
pub mod openai;
pub mod reload;
pub mod responses;
mod responses_saver;
pub mod responses_sse;
pub mod ui;

use crate::api::ApiError;
use crate::gateway::Gateway;
use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::time::Duration;

/// Header carrying the request id (a constant name: inserting by a `&str` name parses it and
/// copies it into a new allocation on every request).
pub const REQUEST_ID: axum::http::HeaderName = axum::http::HeaderName::from_static("x-request-id");

/// Builds the router over `gateway`: the routes behind the front door ([`front`], which runs
/// steps 1 and 2 of the module docs before it), with step 3's route layers.
pub fn router(gateway: Gateway) -> Router {
    let client = middleware::from_fn_with_state(gateway.clone(), auth::client);
    let admin = middleware::from_fn_with_state(gateway.clone(), auth::admin);
    let browser = middleware::from_fn_with_state(gateway.clone(), auth::browser);
    let anthropic_client = middleware::from_fn_with_state(gateway.clone(), messages::client);
    let api = openai::router()
        .merge(responses::router())
        .route_layer(client)
        .merge(messages::router().route_layer(anthropic_client));
    let mut admin_routes = admin::router().merge(admin::keys::router());
    if gateway.config.telemetry.metrics_listen.is_none() {
        admin_routes = admin_routes.route("/metrics", get(health::metrics));
    }
    Router::new()
        .nest("/v1", api.clone())
        .merge(api)
        .merge(health::router())
        .merge(messages::probe_router())
        .merge(admin_routes.route_layer(admin))
        .merge(ui::router().route_layer(browser))
        .merge(ui::login::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(gateway)
}

/// The router of the separate metrics listener (`telemetry.metrics_listen`).
pub fn metrics_router(gateway: Gateway) -> Router {
    let admin = middleware::from_fn_with_state(gateway.clone(), auth::admin);
    Router::new()
        .route("/metrics", get(health::metrics))
        .route_layer(admin)
        .layer(middleware::from_fn_with_state(
            gateway.clone(),
            local::guard,
        ))
        .with_state(gateway)
}

async fn not_found(req: Request) -> Response {
    let agent = req
        .headers()
        .get(axum::http::header::USER_AGENT)
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

/// How long connections get, once the shutdown grace period is over, to write the error
/// events and 503s that end what was still open (see [`crate::gateway::closing`]).
pub const CLOSING_WRITE: Duration = Duration::from_secs(1);

/// Serves `gateway` on `listener` until `shutdown` resolves, then stops accepting, gives
/// in-flight requests `server.shutdown_grace_ms` to finish, ends what is still open then with
/// an error in its dialect (streams: an error event; requests waiting for an upstream: a 503),
/// and drains the request log's queue (every request that reached a backend is in the log
/// when this returns, but for a stream whose client stopped reading: it records its row when
/// its connection is dropped with the runtime, which `sluice serve` does before its last
/// drain).
pub async fn run(
    listener: tokio::net::TcpListener,
    gateway: Gateway,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let live = reload::Live::new(gateway, crate::config::ConfigSource::Embedded, None);
    run_live(listener, live, shutdown).await
}

/// [`run`] over a reloadable gateway ([`reload::Live`]): each request goes to the gateway in
/// use when it arrives.
pub async fn run_live(
    listener: tokio::net::TcpListener,
    live: std::sync::Arc<reload::Live>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let gateway = live.gateway();
    let grace = Duration::from_millis(gateway.config.server.shutdown_grace_ms);
    let recorder = gateway.recorder().clone();
    let app = front::MakeFrontDoor(live.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    // When the grace period ends, set as the signal comes: the server may end before the
    // deadline below is polled again (a request thread with no connection of its own ends at
    // once), and requests on other threads still have the rest of the period.
    let ends = std::sync::Arc::new(std::sync::OnceLock::<tokio::time::Instant>::new());
    let signal = {
        let ends = ends.clone();
        async move {
            shutdown.await;
            ends.get_or_init(|| tokio::time::Instant::now() + grace);
            let _ = tx.send(());
        }
    };
    // No Nagle: a stream chunk must leave as soon as it is written, not wait for an ACK.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(signal);
    let mut server = std::pin::pin!(server.into_future());
    let deadline = {
        let ends = ends.clone();
        async move {
            if rx.await.is_ok() {
                let at = *ends.get_or_init(|| tokio::time::Instant::now() + grace);
                tokio::time::sleep_until(at).await;
            } else {
                std::future::pending::<()>().await;
            }
        }
    };
    let closing = live.gateway().closing().clone();
    let result = tokio::select! {
        r = &mut server => r,
        _ = deadline => {
            // What is still open ends now, each with its error event or 503 and its row
            // (`gateway::closing`); the connections get a bounded time to write those.
            closing.begin();
            match tokio::time::timeout(CLOSING_WRITE, &mut server).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::warn!("shutdown grace period over; closing remaining connections");
                    Ok(())
                }
            }
        }
    };
    // Work whose client left still runs (its row comes when it ends): it gets what is left of
    // the grace period, then ends like the rest.
    let left = ends
        .get()
        .map(|at| at.saturating_duration_since(tokio::time::Instant::now()))
        .unwrap_or_default();
    if !closing.until_none_open(left).await {
        closing.begin();
        if !closing.until_none_open(CLOSING_WRITE).await {
            tracing::warn!(
                open = closing.open(),
                "requests still open after the shutdown grace period (a client that stopped reading); they end, with their rows, when their connections are dropped at exit"
            );
        }
    }
    // Every accepted row is committed or spilled by then; a writer that can do neither
    // (store and spill file failing) does not hold the exit past a second grace period.
    if tokio::time::timeout(grace.max(Duration::from_secs(1)), recorder.flush())
        .await
        .is_err()
    {
        tracing::error!("request log not drained within the grace period; exiting anyway");
    }
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

//! The thinnest pass-through (axum + reqwest, no Sluice logic): the floor Sluice is measured
//! against. It forwards the body bytes to `upstream` + the request path and streams the
//! answer back as it arrives, without parsing anything.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// The forwarder's router over `upstream` (e.g. `http://127.0.0.1:9000`).
pub fn router(upstream: String) -> Router {
    let client = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .build()
        .unwrap_or_default();
    Router::new()
        .fallback(forward)
        .with_state((client, upstream))
}

/// Serves the forwarder on `listener`.
pub async fn serve(listener: tokio::net::TcpListener, upstream: String) -> std::io::Result<()> {
    axum::serve(
        axum::serve::ListenerExt::tap_io(listener, |t: &mut tokio::net::TcpStream| {
            let _ = t.set_nodelay(true);
        }),
        router(upstream),
    )
    .await
}

async fn forward(
    State((client, upstream)): State<(reqwest::Client, String)>,
    uri: Uri,
    body: Bytes,
) -> Response {
    let url = format!("{upstream}{}", uri.path());
    match client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
    {
        Ok(r) => {
            let status =
                StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let ct = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json")
                .to_string();
            (
                status,
                [("content-type", ct)],
                Body::from_stream(r.bytes_stream()),
            )
                .into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

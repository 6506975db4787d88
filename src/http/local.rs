//! The safe default when no master key is set ("local mode"): without a key every caller is
//! admin, so Sluice makes sure the caller really is this machine's user and not a web page
//! they visit.
//!
//! In local mode, before authentication and before any body is read:
//! - the `Host` (or HTTP/2 `:authority`) must be a loopback literal (`127.0.0.0/8`, `[::1]`)
//!   or `localhost`, with any port: anything else (DNS rebinding, a foreign name) → 421
//!   `misdirected_request`;
//! - `POST`, `PUT` and `PATCH` bodies must be `Content-Type: application/json`: a browser's
//!   "simple" cross-site request (`text/plain`, forms) has no preflight, so it is refused with
//!   415 `unsupported_media_type` before it can spend anything;
//! - `/admin`, `/metrics` and `/ui` are served to loopback peers only (403 otherwise).
//!
//! Sluice sends no CORS headers, so browsers never let another origin read an answer.
//! With a master key set (or `server.allow_unauthenticated: true`, the operator's explicit
//! choice to serve without a key beyond loopback) these checks are off: every route needs a
//! key, which a cross-site page does not have. All errors are in OpenAI's error shape.

use crate::api::ApiError;
use crate::config::Config;
use crate::gateway::Gateway;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Whether `config` runs in local mode (no master key and no `allow_unauthenticated`).
pub fn is_local_mode(config: &Config) -> bool {
    let has_key = config
        .server
        .master_key
        .as_deref()
        .is_some_and(|k| !k.is_empty());
    !has_key && !config.server.allow_unauthenticated
}

/// The one-line start-up notice naming the access mode.
pub fn mode_notice(config: &Config) -> &'static str {
    let has_key = config
        .server
        .master_key
        .as_deref()
        .is_some_and(|k| !k.is_empty());
    if has_key {
        "access: master key set; every /v1, /admin, /metrics and /ui request needs a key"
    } else if config.server.allow_unauthenticated {
        "access: NO master key and allow_unauthenticated; anyone who reaches this port is admin"
    } else {
        "access: local mode (no master key); loopback Host and JSON bodies only, /admin /metrics /ui for loopback clients only"
    }
}

/// The local-mode layer (see the module docs); passes everything through otherwise.
pub async fn guard(State(gw): State<Gateway>, req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    match refusal(&gw, &req, peer) {
        Some(refused) => refused,
        None => next.run(req).await,
    }
}

/// The local-mode check of [`guard`] without the layer: the refusal to answer with (421,
/// 415 or 403, in the route's own dialect), or `None` when `req` may go on (always `None`
/// outside local mode). `peer` is the client's address (`None`: unknown, not loopback). The
/// front door ([`super::front`]) calls it for every request.
pub fn refusal(gw: &Gateway, req: &Request, peer: Option<SocketAddr>) -> Option<Response> {
    if !is_local_mode(&gw.config) {
        return None;
    }
    match check(req, peer) {
        Ok(()) => None,
        // Each route answers in its own dialect: Anthropic's envelope on the Messages routes.
        Err(e) if is_messages_route(req.uri().path()) => {
            Some(crate::api::messages::error_response(&e))
        }
        Err(e) => Some(e.into_response()),
    }
}

/// `/v1/messages…` or `/messages…`: the routes whose errors take Anthropic's shape.
fn is_messages_route(path: &str) -> bool {
    let p = path.strip_prefix("/v1").unwrap_or(path);
    p == "/messages" || p.starts_with("/messages/")
}

fn check(req: &Request, peer: Option<SocketAddr>) -> Result<(), ApiError> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    if !host.is_some_and(is_loopback_host) {
        return Err(ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "invalid_request_error",
            "Without a master key Sluice only answers requests addressed to localhost or a loopback address (Host header).",
        )
        .with_code("misdirected_request"));
    }
    if matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH) && !is_json(req) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request_error",
            "Request bodies must be sent with `Content-Type: application/json`.",
        )
        .with_code("unsupported_media_type"));
    }
    if is_operator_path(req.uri().path()) && !peer.is_some_and(|p| is_loopback_ip(&p.ip())) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            "Without a master key /admin, /metrics and /ui are served to loopback clients only.",
        )
        .with_code("loopback_only"));
    }
    Ok(())
}

fn is_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

fn is_operator_path(path: &str) -> bool {
    ["/admin", "/metrics", "/ui"].iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

fn is_loopback_ip(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v| v.is_loopback()),
    }
}

/// Whether a `Host` value is `localhost` or a loopback literal, with or without a port.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim();
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return false;
        };
        return inside.parse::<Ipv6Addr>().is_ok_and(|a| a.is_loopback())
            && (after.is_empty() || after.strip_prefix(':').is_some_and(is_port));
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        }
    };
    if port.is_some_and(|p| !is_port(p)) {
        return false;
    }
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
}

fn is_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for ok in [
            "localhost",
            "LOCALHOST:4000",
            "127.0.0.1",
            "127.0.0.1:4000",
            "127.1.2.3:80",
            "[::1]",
            "[::1]:4000",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "attacker.example:4000",
            "localhost.attacker.example",
            "127.0.0.1.nip.io",
            "10.0.0.1:4000",
            "[::2]:4000",
            "[::1]x",
            "localhost:",
            "localhost:abc",
            "::1",
            "",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn operator_paths() {
        assert!(is_operator_path("/admin/keys"));
        assert!(is_operator_path("/metrics"));
        assert!(is_operator_path("/ui"));
        assert!(!is_operator_path("/uix"));
        assert!(!is_operator_path("/v1/chat/completions"));
    }
}

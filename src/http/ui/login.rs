//! Browser access to `/ui` when a master key is set: browsers cannot add an `Authorization`
//! header, so `GET /ui/login` shows a form, and `POST /ui/login` (form field `key`) checks the
//! key and, for the master key or an admin key, starts a session
//! ([`crate::access::session::Sessions`]): a random token in the cookie `sluice_session`
//! (`HttpOnly; SameSite=Strict; Path=/ui; Max-Age=` `server.ui_session_ttl_s`, plus `Secure`
//! when the request came over TLS through a proxy, `X-Forwarded-Proto: https`), then a
//! redirect to `/ui`. The key itself is never put in a cookie; the server keeps the session
//! token's and the key's SHA-256 only. `POST /ui/logout` ends the session; revoking the key
//! ends all its sessions. The cookie is accepted by the `/ui` pages only — never by `/v1`,
//! `/admin` or `/metrics`, so it cannot be used for cross-site requests that change anything.
//!
//! Failed logins are throttled per client address ([`crate::access::session::LoginThrottle`]:
//! 5 failures per 60 s, then 429 `login_throttled` with `Retry-After`, even for the right
//! key, until the window ends).

use crate::access::session::LOGIN_FAILURES;
use crate::api::ApiError;
use crate::gateway::Gateway;
use axum::Router;
use axum::extract::{ConnectInfo, Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The cookie that carries the session token for `/ui`.
pub const COOKIE: &str = "sluice_session";

/// The login routes.
pub fn router() -> Router<Gateway> {
    Router::new()
        .route("/ui/login", get(form).post(login))
        .route("/ui/logout", post(logout))
}

/// Access rule of the `/ui` pages: [`crate::http::auth::require_admin`] on the headers, or a
/// live session in the `sluice_session` cookie when no key header is sent. A browser without
/// either is sent to the login form (303).
pub fn require_ui(gw: &Gateway, headers: &HeaderMap) -> Result<(), Response> {
    let has_key_header =
        headers.contains_key(header::AUTHORIZATION) || headers.contains_key("x-api-key");
    let checked = match session_token(headers).filter(|_| !has_key_header) {
        Some(token) if gw.access().has_master_key() => session_admin(gw, &token),
        _ => crate::http::auth::require_admin(gw, headers),
    };
    checked.map_err(|e| {
        if e.status == StatusCode::UNAUTHORIZED && !has_key_header {
            (StatusCode::SEE_OTHER, [(header::LOCATION, "/ui/login")]).into_response()
        } else {
            e.into_response()
        }
    })
}

/// The session's key, checked now: still known, usable and admin.
fn session_admin(gw: &Gateway, token: &str) -> Result<(), ApiError> {
    let access = gw.access();
    let hash = access
        .sessions
        .key_hash(token, Instant::now())
        .ok_or_else(|| crate::access::auth::unauthorized("The session has ended."))?;
    let p = access.authenticate_key_hash(&hash)?;
    if p.admin {
        Ok(())
    } else {
        Err(crate::access::auth::unauthorized("The session has ended."))
    }
}

/// The value of the `sluice_session` cookie, if sent.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

const PAGE: &str = r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>Sluice — log in</title>
<style>body{font:14px system-ui,sans-serif;margin:3rem}input{font:inherit;padding:.3rem}</style></head>
<body><h1>Sluice</h1><p>MESSAGE</p><form method="post" action="/ui/login">
<label>Master key or admin key <input type="password" name="key" autofocus></label>
<button type="submit">Open the dashboard</button></form></body></html>"#;

async fn form() -> Response {
    Html(PAGE.replace("MESSAGE", "This Sluice needs a key to show its log.")).into_response()
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
struct LoginForm {
    key: String,
}

async fn login(
    State(gw): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let throttle = &gw.access().login_throttle;
    if let Err(secs) = throttle.check(peer.ip(), Instant::now()) {
        return throttled(secs);
    }
    let Ok(Form(f)) = form else {
        return ApiError::invalid_request("Send the form field `key`.")
            .with_param("key")
            .into_response();
    };
    let key = f.key.trim();
    let mut h = HeaderMap::new();
    let checked = HeaderValue::from_str(&format!("Bearer {key}"))
        .map_err(|_| crate::access::auth::unauthorized("Malformed key."))
        .and_then(|v| {
            h.insert(header::AUTHORIZATION, v);
            crate::http::auth::require_admin(&gw, &h)
        });
    if let Err(e) = checked {
        throttle.failed(peer.ip(), Instant::now());
        return (
            e.status,
            Html(PAGE.replace("MESSAGE", "That key is not the master key or an admin key.")),
        )
            .into_response();
    }
    let ttl = gw.config.server.ui_session_ttl_s;
    let token = gw.access().sessions.create(
        crate::access::auth::hash_key(key),
        Duration::from_secs(ttl),
        Instant::now(),
    );
    let secure = if behind_tls(&headers) { "; Secure" } else { "" };
    let cookie =
        format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/ui; Max-Age={ttl}{secure}");
    match HeaderValue::from_str(&cookie) {
        Ok(c) => (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, c),
                (header::LOCATION, HeaderValue::from_static("/ui")),
            ],
        )
            .into_response(),
        Err(_) => ApiError::internal("session cookie").into_response(),
    }
}

/// Whether the request reached Sluice over TLS through a proxy (`X-Forwarded-Proto: https`).
fn behind_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

fn throttled(secs: u64) -> Response {
    let mut resp = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_error",
        format!(
            "Too many failed logins from this address ({LOGIN_FAILURES} per minute). Try again in {secs} s."
        ),
    )
    .with_code("login_throttled")
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// `POST /ui/logout`: ends the cookie's session, clears the cookie, back to the login form.
async fn logout(State(gw): State<Gateway>, headers: HeaderMap) -> Response {
    if let Some(token) = session_token(&headers) {
        gw.access().sessions.revoke(&token);
    }
    let clear = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/ui; Max-Age=0");
    let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, "/ui/login")]).into_response();
    if let Ok(v) = HeaderValue::from_str(&clear) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

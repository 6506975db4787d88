//! Browser access to `/ui` when a master key is set: browsers cannot add an `Authorization`
//! header, so `GET /ui/login` shows a form, and `POST /ui/login` (form field `key`) checks the
//! key and, for the master key or an admin key, sets the cookie `sluice_key` (HttpOnly,
//! SameSite=Strict, Path=/ui) and redirects to `/ui`. The cookie is accepted by the `/ui`
//! pages only — never by `/v1`, `/admin` or `/metrics`, so it cannot be used for cross-site
//! requests that change anything.

use crate::api::ApiError;
use crate::gateway::Gateway;
use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

/// The cookie that carries the key for `/ui`.
pub const COOKIE: &str = "sluice_key";

/// The login routes.
pub fn router() -> Router<Gateway> {
    Router::new().route("/ui/login", get(form).post(login))
}

/// Access rule of the `/ui` pages: [`crate::http::auth::require_admin`] on the headers, or on the
/// `sluice_key` cookie when no key header is sent. A browser without either is sent to the
/// login form (303).
pub fn require_ui(gw: &Gateway, headers: &HeaderMap) -> Result<(), Response> {
    let has_key_header =
        headers.contains_key(header::AUTHORIZATION) || headers.contains_key("x-api-key");
    let checked = match cookie_key(headers).filter(|_| !has_key_header) {
        Some(key) => {
            let mut h = HeaderMap::new();
            match HeaderValue::from_str(&format!("Bearer {key}")) {
                Ok(v) => {
                    h.insert(header::AUTHORIZATION, v);
                    crate::http::auth::require_admin(gw, &h)
                }
                Err(_) => Err(crate::access::auth::unauthorized("Malformed key cookie.")),
            }
        }
        None => crate::http::auth::require_admin(gw, headers),
    };
    checked.map_err(|e| {
        if e.status == StatusCode::UNAUTHORIZED && !has_key_header {
            (StatusCode::SEE_OTHER, [(header::LOCATION, "/ui/login")]).into_response()
        } else {
            e.into_response()
        }
    })
}

/// The value of the `sluice_key` cookie, if sent.
pub fn cookie_key(headers: &HeaderMap) -> Option<String> {
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
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        return ApiError::invalid_request("Send the form field `key`.")
            .with_param("key")
            .into_response();
    };
    let mut h = HeaderMap::new();
    let checked = HeaderValue::from_str(&format!("Bearer {}", f.key.trim()))
        .map_err(|_| crate::access::auth::unauthorized("Malformed key."))
        .and_then(|v| {
            h.insert(header::AUTHORIZATION, v);
            crate::http::auth::require_admin(&gw, &h)
        });
    match checked {
        Ok(()) => {
            let cookie = format!(
                "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/ui",
                f.key.trim()
            );
            match HeaderValue::from_str(&cookie) {
                Ok(c) => (
                    StatusCode::SEE_OTHER,
                    [
                        (header::SET_COOKIE, c),
                        (header::LOCATION, HeaderValue::from_static("/ui")),
                    ],
                )
                    .into_response(),
                Err(_) => ApiError::invalid_request("Malformed key.").into_response(),
            }
        }
        Err(e) => (
            e.status,
            Html(PAGE.replace("MESSAGE", "That key is not the master key or an admin key.")),
        )
            .into_response(),
    }
}

//! Authentication layers, one per route group (see [`super`] for where each is mounted). They
//! run before the handler reads the body: a refused request costs no parsing and leaves no
//! client string anywhere.

use crate::api::ApiError;
use crate::gateway::Gateway;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// `/v1/*`: identifies the caller ([`crate::access::Access::authenticate`]) and hands the principal to
/// the handler as a request extension ([`crate::access::auth::Principal`]). 401 `invalid_api_key` in OpenAI's shape otherwise.
pub async fn client(State(gw): State<Gateway>, mut req: Request, next: Next) -> Response {
    match gw.access().authenticate(req.headers()) {
        Ok(p) => {
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        Err(e) => refused(&gw, e),
    }
}

/// The response for a refused request, in OpenAI's shape ([`count`]s it).
pub(super) fn refused(gw: &Gateway, e: ApiError) -> Response {
    count(gw, &e);
    e.into_response()
}

/// Counts a refusal: a 401 (no usable key) in `sluice_unauthenticated_total` and nowhere
/// else (no row, no label, no log line). Every route group's refusal goes through it.
pub(super) fn count(gw: &Gateway, e: &ApiError) {
    if e.status == StatusCode::UNAUTHORIZED {
        gw.metrics().unauthenticated();
    }
}

/// `/admin/*` and `/metrics`: the master key or an admin key (when a master key is set).
/// 401/403 in OpenAI's shape otherwise.
/// The caller's [`crate::access::auth::Principal`] is a request extension for the handler.
pub async fn admin(State(gw): State<Gateway>, mut req: Request, next: Next) -> Response {
    match admin_principal(&gw, req.headers()) {
        Ok(p) => {
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        Err(e) => refused(&gw, e),
    }
}

fn admin_principal(
    gw: &Gateway,
    headers: &HeaderMap,
) -> Result<crate::access::auth::Principal, ApiError> {
    let p = gw.access().authenticate(headers)?;
    if p.admin { Ok(p) } else { Err(forbidden()) }
}

fn forbidden() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "permission_error",
        "This route needs the master key or an admin key.",
    )
}

/// `/ui` pages: as [`admin`], or a live login session (cookie); a browser without either is sent to the
/// login form (see [`super::ui::login::require_ui`]).
pub async fn browser(State(gw): State<Gateway>, req: Request, next: Next) -> Response {
    match super::ui::login::require_ui(&gw, req.headers()) {
        Ok(()) => next.run(req).await,
        Err(resp) => {
            if resp.status() == StatusCode::UNAUTHORIZED {
                gw.metrics().unauthenticated();
            }
            resp
        }
    }
}

/// Lets a request through only with the master key or an admin key (when a master key is
/// set); 401/403 in OpenAI's error shape otherwise.
pub fn require_admin(gw: &Gateway, headers: &HeaderMap) -> Result<(), ApiError> {
    admin_principal(gw, headers).map(|_| ())
}

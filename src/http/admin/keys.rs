//! Admin API for virtual keys (JSON; master key or an admin key when a master key is set):
//! `POST /admin/keys` (body: the key's settings, as in config `keys:` without `key`/`sha256`;
//! answers 201 with the key and its `secret`, shown only then), `GET /admin/keys`,
//! `GET /admin/keys/{id}`, `DELETE /admin/keys/{id}` (revokes; an admin key other than the
//! master key only keys it made, directly or through keys it made).
//!
//! A key made here records its creator's id (`created_by`, shown by the `GET`s); one made by
//! an admin key other than the master key takes that key's `team` and `tags` when it leaves
//! them out and is refused (403) when it names another team or drops a tag (see
//! [`crate::access::validate::within_rights`]).

use crate::access::auth::{KeySpec, Principal};
use crate::access::keys;
use crate::api::{ApiError, parse_body};
use crate::gateway::Gateway;
use crate::http::extract::ApiPath;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

/// The `/admin/keys` routes.
pub fn router() -> Router<Gateway> {
    Router::new()
        .route("/admin/keys", get(list).post(create))
        .route("/admin/keys/{id}", get(show).delete(revoke))
}

fn store_err(e: crate::store::StoreError) -> ApiError {
    ApiError::invalid_request(e.to_string())
}

async fn create(
    State(gw): State<Gateway>,
    Extension(creator): Extension<Principal>,
    body: Bytes,
) -> Response {
    let result = async {
        let mut spec: KeySpec = parse_body(&body)?;
        let names = crate::access::validate::Names::of(&gw.config);
        crate::access::validate::validate(&spec, &names)
            .map_err(|(f, m)| ApiError::invalid_request(format!("`{f}` {m}")).with_param(&f))?;
        crate::access::validate::inherit(&creator, &mut spec);
        crate::access::validate::within_rights(&creator, &spec).map_err(|(f, m)| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "permission_error",
                format!("`{f}` {m}: a key can only create keys with at most its own rights."),
            )
            .with_param(&f)
        })?;
        if spec.key.is_some() || spec.sha256.is_some() {
            return Err(ApiError::invalid_request(
                "Sluice makes the secret; do not send `key` or `sha256`.",
            ));
        }
        let now = crate::store::now_ms() as i64;
        let (k, secret) = gw
            .access()
            .with_key_db(move |c| keys::create(c, spec, now))
            .await?
            .map_err(store_err)?;
        let mut v = serde_json::to_value(&k).unwrap_or_default();
        v["secret"] = json!(secret);
        Ok((StatusCode::CREATED, axum::Json(v)).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn list(State(gw): State<Gateway>) -> Response {
    let result = async {
        let all = gw
            .access()
            .with_key_db(|s| keys::list(s))
            .await?
            .map_err(store_err)?;
        Ok::<Response, ApiError>(axum::Json(json!({"object": "list", "data": all})).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn show(State(gw): State<Gateway>, ApiPath(id): ApiPath<String>) -> Response {
    let result = async {
        let lookup = id.clone();
        match gw
            .access()
            .with_key_db(move |c| keys::get(c, &lookup))
            .await?
            .map_err(store_err)?
        {
            Some(k) => Ok(axum::Json(k).into_response()),
            None => Err(not_found(&id)),
        }
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Revokes a key: the master key any; another admin key only keys it made (directly or
/// through keys it made: a delegated admin revoked another team's keys and its own maker's).
async fn revoke(
    State(gw): State<Gateway>,
    Extension(caller): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Response {
    let result = async {
        let lookup = id.clone();
        let limited = caller.key_id.clone().filter(|k| k != "master");
        let revoked = gw
            .access()
            .with_key_db(move |c| match &limited {
                Some(maker) if !keys::made_by(c, &lookup, maker)? => Ok(None),
                _ => keys::revoke(c, &lookup).map(Some),
            })
            .await?
            .map_err(store_err)?;
        let Some(revoked) = revoked else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "permission_error",
                format!("Key `{id}` was not made by this key: only the master key, or a key up its `created_by` chain, may revoke it."),
            )
            .with_code("not_your_key"));
        };
        if revoked {
            Ok(axum::Json(json!({"id": id, "revoked": true})).into_response())
        } else {
            Err(not_found(&id))
        }
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found_error",
        format!("No key `{id}`."),
    )
    .with_code("key_not_found")
}

//! The OpenAI Responses API inbound: `POST /v1/responses` (stream and not),
//! `GET`/`DELETE /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`,
//! `POST /v1/responses/input_tokens` (also without `/v1`), in OpenAI's shapes and error
//! envelope.
//!
//! A Responses request becomes [`RequestBody::Native`]: the client's body, sent as is (model
//! rewritten) to `openai` deployments with `supports: [responses]`, and its chat translation
//! ([`crate::bridge::responses`]) for every other deployment; the gateway serves it like
//! `POST /v1/chat/completions` (authentication, limits, policies, routing, fallbacks, one log
//! row, recorded with endpoint `responses` and route `native` or `bridged`). A native answer is
//! relayed as the backend sent it; a bridged chat reply is translated back, a stream event by
//! event as chunks arrive. Hosted tools a bridged route removes are named in
//! `x-sluice-dropped-tools`.
//!
//! State: with `store` (default `true`) the response, its input and the conversation it
//! continues are kept in the request log's database (table `responses`, in the SQLite file or
//! in PostgreSQL, where every replica reads what any replica stored), text as
//! `log.prompts` (or the key's `log`) says: `full` as sent, `redacted` with PII placeholders,
//! nothing under `metadata`/`off` (then `previous_response_id` is a 400 saying why). A stored
//! response is visible to the key that created it only; another key gets 404. On a native
//! route the stored conversation is sent as input items (`previous_response_id` removed) and
//! the backend's Response object is stored under its own id.

use crate::http::extract::{ApiPath, ApiQuery};
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use std::net::SocketAddr;

use super::openai::{id_of, read_body, sse_response, with_headers};
use super::responses_saver::Saver;
use super::responses_sse::{OnEnd, ResponsesSse};
use crate::access::auth::Principal;
use crate::api::answer_view::with_answer;
use crate::api::native::{Dialect, NativeRequest};
use crate::api::responses::{InputItem, InputTokens, ResponseObject, ResponsesRequest};
use crate::api::{ApiError, Endpoint, RequestBody, parse_body};
use crate::bridge::responses::{StreamTranslator, ToolMap, from_answer, to_chat};
use crate::config::LogMode;
use crate::gateway::{Gateway, GatewayReply, ReplyBody, RequestContext};
use crate::store::backend::LogStore;
use crate::store::responses::StoredResponse;

/// Response header naming the hosted tools removed on a bridged route (comma-separated).
pub const DROPPED_TOOLS: &str = "x-sluice-dropped-tools";

/// The routes, to be served with and without `/v1`.
pub fn router() -> Router<Gateway> {
    Router::new()
        .route("/responses", post(create))
        .route("/responses/input_tokens", post(input_tokens))
        .route("/responses/{id}", get(retrieve).delete(delete))
        .route("/responses/{id}/input_items", get(input_items))
}

pub(super) type Db = crate::access::StateDb;
use crate::store::state_db::{STATE_READ_WAIT, StateDbError};

/// How state is kept for this caller: `None` when it is not (no database, or `metadata`/`off`).
fn state_mode(gw: &Gateway, principal: &Principal) -> Option<LogMode> {
    let mode = principal
        .spec
        .log
        .as_deref()
        .and_then(LogMode::parse)
        .unwrap_or(gw.config.log.prompts);
    matches!(mode, LogMode::Full | LogMode::Redacted).then_some(mode)
}

/// Runs `f` on the state store within `wait` ([`crate::store::state_db`]); `change`: whether
/// `f` writes (then a timeout says the change may still land).
///
/// Errors: 503 `server_error` when the store did not answer within `wait`; 500 when it
/// failed.
pub(super) async fn on_db<T: Send + 'static>(
    db: Db,
    wait: std::time::Duration,
    change: bool,
    f: impl FnOnce(&mut dyn LogStore) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    db.run(wait, f).await.map_err(|e| match e {
        StateDbError::Timeout(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            if change {
                format!("responses state: {e} (the change may still be applied); try again later")
            } else {
                format!("responses state: {e}; try again later")
            },
        ),
        e => ApiError::internal(format!("responses state: {e}")),
    })
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("No response found with id '{id}'."),
    )
}

fn owner(p: &Principal) -> String {
    p.key_id.clone().unwrap_or_default()
}

/// The conversation `previous_response_id` continues, or the 400 that says why there is none.
async fn history(
    gw: &Gateway,
    principal: &Principal,
    prev: &str,
) -> Result<Vec<InputItem>, ApiError> {
    let bad = |msg: String| ApiError::invalid_request(msg).with_param("previous_response_id");
    let (Some(db), Some(_)) = (gw.access().state_db(), state_mode(gw, principal)) else {
        return Err(bad(format!(
            "Previous response with id '{prev}' not found: this Sluice keeps no responses \
             (log.prompts is `metadata` or `off`, or the key's log mode is), so \
             previous_response_id cannot be used; send the whole conversation as input."
        )));
    };
    let (id, who) = (prev.to_string(), owner(principal));
    let Some(stored) = on_db(db, STATE_READ_WAIT, false, move |c| {
        c.get_response(&id, &who)
    })
    .await?
    else {
        return Err(bad(format!(
            "Previous response with id '{prev}' not found."
        )));
    };
    stored
        .conversation()
        .into_iter()
        .map(serde_json::from_value::<InputItem>)
        .collect::<Result<_, _>>()
        .map_err(|e| ApiError::internal(format!("stored response {prev}: {e}")))
}

/// `POST /v1/responses`.
pub(super) async fn create(
    State(gw): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut ctx = RequestContext::new(id_of(&headers), Endpoint::ChatCompletions);
    ctx.dialect = Some("responses");
    ctx.client_ip = Some(super::openai::ip_text(peer.ip()));
    // Before a rejection is recorded too: its row is the key's, in the key's log mode.
    ctx.principal = principal;
    let (req, raw) = match read_raw(&gw, body).await {
        Ok(r) => r,
        Err(e) => {
            ctx.headers = headers;
            Box::pin(gw.record_rejection(&ctx, None, &e)).await;
            return e.into_response();
        }
    };
    let hist = match &req.previous_response_id {
        Some(prev) => history(&gw, &ctx.principal, prev).await,
        None => Ok(Vec::new()),
    };
    let hist = match hist {
        Ok(h) => h,
        Err(e) => {
            Box::pin(gw.record_rejection(&ctx, None, &e)).await;
            return e.into_response();
        }
    };
    // Boxed: the handler's own future stays small (axum moves it into its box).
    Box::pin(serve(gw, ctx, headers, req, raw, hist)).await
}

/// The body sent on a native route: the client's, with the stored conversation of
/// `previous_response_id` (Sluice's own state) written before `input` and that field
/// removed, so any deployment can continue it.
fn native_body(mut raw: Map<String, Value>, hist: &[InputItem]) -> Map<String, Value> {
    if raw.remove("previous_response_id").is_none() {
        return raw;
    }
    let mut input: Vec<Value> = hist
        .iter()
        .filter_map(|i| serde_json::to_value(i).ok())
        .collect();
    match raw.remove("input") {
        Some(Value::String(text)) => {
            input.push(json!({"type": "message", "role": "user", "content": text}))
        }
        Some(Value::Array(items)) => input.extend(items),
        Some(other) => input.push(other),
        None => {}
    }
    raw.insert("input".into(), Value::Array(input));
    raw
}

async fn read(gw: &Gateway, body: Body) -> Result<ResponsesRequest, ApiError> {
    parse_body(&read_body(gw, body).await?)
}

/// The typed request and the body as a JSON object (for a native route).
async fn read_raw(
    gw: &Gateway,
    body: Body,
) -> Result<(ResponsesRequest, Map<String, Value>), ApiError> {
    let bytes = read_body(gw, body).await?;
    Ok((parse_body(&bytes)?, parse_body(&bytes)?))
}

async fn serve(
    gw: Gateway,
    mut ctx: RequestContext,
    headers: HeaderMap,
    req: ResponsesRequest,
    raw: Map<String, Value>,
    hist: Vec<InputItem>,
) -> Response {
    let (bridged, tools, dropped_tools) = match to_chat(&req, &hist) {
        Ok(b) => {
            if !b.dropped.is_empty() {
                tracing::debug!(request_id = %ctx.id, dropped = ?b.dropped, "Responses fields a chat backend cannot take are left out on a bridged route");
            }
            (Ok(b.chat), b.tools, b.dropped_tools)
        }
        Err(e) => (Err(e), ToolMap::default(), Vec::new()),
    };
    let body = RequestBody::Native(Box::new(NativeRequest {
        dialect: Dialect::Responses,
        body: native_body(raw, &hist),
        bridged,
        dropped_tools: dropped_tools.clone(),
        anthropic_beta: None,
    }));
    ctx.headers = headers;
    let id = format!("resp_{}", uuid::Uuid::now_v7().simple());
    let created = crate::store::now_ms() as i64 / 1000;
    let start = ResponseObject::start(&id, created, &req);
    // Only a response that is kept needs its request and history again (`store: false`,
    // as Codex sends, keeps nothing and copies nothing).
    let saver = req
        .wants_store()
        .then(|| Some((gw.access().state_db()?, state_mode(&gw, &ctx.principal)?)))
        .flatten()
        .map(|(db, mode)| Saver {
            db,
            mode,
            gw: gw.clone(),
            owner: owner(&ctx.principal),
            request_id: ctx.id.clone(),
            req,
            hist,
        });
    let (result, limit_headers) = super::openai::serve_detached(gw.clone(), ctx, body).await;
    let native = result.as_ref().is_ok_and(|r| r.native);
    // A policy's log mode holds for the stored response as for the row.
    let saver = match &result {
        Ok(reply) => saver.and_then(|s| s.under(reply.log_mode)),
        Err(_) => saver,
    };
    let mut resp = match result {
        Ok(reply) if native => native_response(reply, saver),
        Ok(reply) => reply_response(reply, start, tools, saver).await,
        Err(e) => e.into_response(),
    };
    if !native
        && !dropped_tools.is_empty()
        && let Ok(v) = HeaderValue::from_str(&dropped_tools.join(","))
    {
        resp.headers_mut().insert(DROPPED_TOOLS, v);
    }
    with_headers(resp, limit_headers)
}

/// A native route's answer as the backend sent it (stored when asked, under the backend's
/// response id).
fn native_response(reply: GatewayReply, saver: Option<Saver>) -> Response {
    let resp = match reply.body {
        ReplyBody::Json(bytes) => {
            if let Some(saver) = saver
                && let Ok(v) = crate::api::json::from_bytes::<Value>(&bytes)
            {
                saver.save_value(v);
            }
            ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
        }
        ReplyBody::Native(mut stream) => {
            if let Some(saver) = saver {
                stream.on_final(Box::new(move |v| saver.save_value(v)));
            }
            sse_response(Body::from_stream(stream))
        }
        ReplyBody::Sse(_) => ApiError::internal("a chat stream on a native route").into_response(),
    };
    super::openai::with_headers(resp, reply.headers)
}

async fn reply_response(
    reply: GatewayReply,
    start: ResponseObject,
    tools: crate::bridge::responses::ToolMap,
    saver: Option<Saver>,
) -> Response {
    let parsed = reply.json;
    let resp = match reply.body {
        ReplyBody::Json(bytes) => {
            let out = match with_answer(&bytes, parsed, |chat| from_answer(chat, start, &tools)) {
                Ok(out) => out,
                Err(e) => {
                    return ApiError::bad_gateway(
                        &reply.deployment,
                        format!("reply is not JSON: {e}"),
                    )
                    .into_response();
                }
            };
            if let Some(saver) = saver {
                saver.save(&out);
            }
            axum::Json(out).into_response()
        }
        ReplyBody::Native(stream) => sse_response(Body::from_stream(stream)),
        ReplyBody::Sse(stream) => {
            let translator = StreamTranslator::new(start, tools);
            // Only a response that is kept needs the final object (a copy of it).
            let on_end: Option<OnEnd> =
                saver.map(|saver| Box::new(move |r: ResponseObject| saver.save(&r)) as OnEnd);
            let sse = ResponsesSse::new(stream, translator, on_end);
            (
                [
                    (header::CONTENT_TYPE, "text/event-stream"),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                Body::from_stream(sse),
            )
                .into_response()
        }
    };
    super::openai::with_headers(resp, reply.headers)
}

/// The stored response `id` of the caller, or the error to answer.
async fn load(gw: &Gateway, principal: &Principal, id: &str) -> Result<StoredResponse, ApiError> {
    let Some(db) = gw.access().state_db() else {
        return Err(not_found(id));
    };
    let (key, who) = (id.to_string(), owner(principal));
    on_db(db, STATE_READ_WAIT, false, move |c| {
        c.get_response(&key, &who)
    })
    .await?
    .ok_or_else(|| not_found(id))
}

/// `GET /v1/responses/{id}`.
async fn retrieve(
    State(gw): State<Gateway>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Response {
    match load(&gw, &principal, &id).await {
        Ok(s) => axum::Json(s.response).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /v1/responses/{id}`: `{"id","object":"response.deleted","deleted":true}`.
async fn delete(
    State(gw): State<Gateway>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Response {
    let result = async {
        let db = gw.access().state_db().ok_or_else(|| not_found(&id))?;
        let (key, who) = (id.clone(), owner(&principal));
        if on_db(db, STATE_READ_WAIT, true, move |c| {
            c.delete_response(&key, &who)
        })
        .await?
        {
            Ok(json!({"id": id, "object": "response.deleted", "deleted": true}))
        } else {
            Err(not_found(&id))
        }
    }
    .await;
    match result {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `order` (`asc`|`desc`, default `desc`) and `limit` (1–100, default 20) of `input_items`.
#[derive(Debug, serde::Deserialize)]
struct ListQuery {
    order: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/responses/{id}/input_items`: this response's input items, each with an `id`
/// and messages with content parts, in OpenAI's list shape.
async fn input_items(
    State(gw): State<Gateway>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Response {
    let stored = match load(&gw, &principal, &id).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let mut items: Vec<Value> = stored
        .input
        .into_iter()
        .enumerate()
        .map(|(i, v)| listed_item(&id, i, v))
        .collect();
    if q.order.as_deref() != Some("asc") {
        items.reverse();
    }
    let limit = q.limit.unwrap_or(20).clamp(1, 100);
    let has_more = items.len() > limit;
    items.truncate(limit);
    let first = items.first().and_then(|i| i.get("id")).cloned();
    let last = items.last().and_then(|i| i.get("id")).cloned();
    axum::Json(json!({"object": "list", "data": items, "first_id": first, "last_id": last, "has_more": has_more}))
        .into_response()
}

/// An input item as listed: an `id` (`msg_<response>_<i>` when it had none) and a message's
/// string content as one `input_text` (`output_text` for the assistant) part.
fn listed_item(resp_id: &str, i: usize, mut v: Value) -> Value {
    let base = resp_id.strip_prefix("resp_").unwrap_or(resp_id);
    if let Value::Object(m) = &mut v {
        m.entry("id")
            .or_insert_with(|| Value::String(format!("msg_{base}_in{i}")));
        if m.get("type").and_then(Value::as_str) == Some("message")
            && let Some(Value::String(text)) = m.get("content").cloned()
        {
            let kind = if m.get("role").and_then(Value::as_str) == Some("assistant") {
                "output_text"
            } else {
                "input_text"
            };
            m.insert("content".into(), json!([{"type": kind, "text": text}]));
        }
    }
    v
}

/// `POST /v1/responses/input_tokens`: `{"object":"response.input_tokens","input_tokens"}`,
/// estimated as everywhere in Sluice (4 bytes a token over the text the backend would get).
async fn input_tokens(
    State(gw): State<Gateway>,
    Extension(principal): Extension<Principal>,
    body: Body,
) -> Response {
    let result = async {
        let req = read(&gw, body).await?;
        let hist = match &req.previous_response_id {
            Some(prev) => history(&gw, &principal, prev).await?,
            None => Vec::new(),
        };
        let body = RequestBody::Chat(Box::new(to_chat(&req, &hist)?.chat));
        Ok::<_, ApiError>(InputTokens {
            object: "response.input_tokens".to_string(),
            input_tokens: crate::api::summary::estimate_tokens(&body.texts()),
        })
    }
    .await;
    match result {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_items_get_ids_and_parts() {
        let v = listed_item(
            "resp_abc",
            1,
            json!({"type":"message","role":"user","content":"hi"}),
        );
        assert_eq!(
            v,
            json!({"type":"message","role":"user","id":"msg_abc_in1","content":[{"type":"input_text","text":"hi"}]})
        );
        let v = listed_item(
            "resp_abc",
            0,
            json!({"type":"function_call_output","call_id":"c","output":"x","id":"fco_1"}),
        );
        assert_eq!(v["id"], "fco_1");
    }
}

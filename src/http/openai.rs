//! The OpenAI inbound API: `POST /v1/chat/completions`, `/v1/completions`,
//! `/v1/embeddings`, `GET /v1/models`, `/v1/models/{id}` (also without `/v1`).
//! The caller was authenticated by [`super::auth::client`] before the body is read.

use super::REQUEST_ID;
use crate::access::auth::Principal;
use crate::api::{ApiError, ChatCompletionRequest, GenericRequest, parse_request};
use crate::api::{Endpoint, RequestBody};
use crate::gateway::{Gateway, GatewayReply, ReplyBody, RequestContext};
use crate::http::extract::ApiPath;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::net::SocketAddr;

/// The OpenAI routes (mounted with and without `/v1` by [`super::router`]).
pub fn router() -> Router<Gateway> {
    Router::new()
        .route("/chat/completions", post(chat_completions))
        .route("/completions", post(completions))
        .route("/embeddings", post(embeddings))
        .route("/models", get(list_models))
        .route("/models/{*id}", get(get_model))
}

/// `ip` as its `Display` writes it (`127.0.0.1`, `::1`); an IPv4 address is written
/// directly, octet by octet (through `Display`'s padding support it cost ~1,200 instructions
/// on every request).
pub(crate) fn ip_text(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut text = String::with_capacity(15);
            let mut digits = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text.push('.');
                }
                text.push_str(digits.format(octet));
            }
            text
        }
        std::net::IpAddr::V6(v6) => v6.to_string(),
    }
}

pub(crate) fn id_of(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string()
}

/// Reads the whole request body, at most `server.max_body_bytes`.
///
/// Errors: 413 `request_too_large` past the limit; 499 `client_closed` when the body ends
/// before it is whole (the client closed the connection or broke the framing mid-body), so
/// the row says what happened instead of blaming the size.
pub(crate) async fn read_body(gateway: &Gateway, body: Body) -> Result<bytes::Bytes, ApiError> {
    let limit = gateway.config.server.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("Request body is larger than the limit of {limit} bytes."),
        )
        .with_code("request_too_large")
    };
    // A declared length past the limit is refused without waiting for the body.
    if axum::body::HttpBody::size_hint(&body).lower() > limit as u64 {
        return Err(too_large());
    }
    to_bytes(body, limit).await.map_err(|e| {
        if over_limit(&e) {
            too_large()
        } else {
            ApiError::new(
                StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
                "client_closed",
                format!("the request body is incomplete: the client closed the connection before sending all of it ({e})"),
            )
            .with_code("request_body_incomplete")
        }
    })
}

/// Whether reading the body failed on the size limit (an error anywhere in `e`'s chain is
/// [`http_body_util::LengthLimitError`]), not on the connection.
fn over_limit(e: &axum::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

pub(super) async fn chat_completions(
    State(gw): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let bytes = read_body(&gw, body).await?;
        let req: ChatCompletionRequest = parse_request(&bytes)?;
        Ok(RequestBody::Chat(Box::new(req)))
    }
    .await;
    serve(
        gw,
        peer,
        principal,
        headers,
        Endpoint::ChatCompletions,
        result,
    )
    .await
}

pub(super) async fn completions(
    State(gw): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let bytes = read_body(&gw, body).await?;
        let req: GenericRequest = parse_request(&bytes)?;
        if !req.extra.contains_key("prompt") {
            return Err(missing("prompt"));
        }
        Ok(RequestBody::Generic(req))
    }
    .await;
    serve(gw, peer, principal, headers, Endpoint::Completions, result).await
}

pub(super) async fn embeddings(
    State(gw): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let bytes = read_body(&gw, body).await?;
        let req: GenericRequest = parse_request(&bytes)?;
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
    serve(gw, peer, principal, headers, Endpoint::Embeddings, result).await
}

fn missing(param: &str) -> ApiError {
    ApiError::invalid_request(format!("Missing required parameter: '{param}'.")).with_param(param)
}

/// What [`serve_reply`] gives: the gateway's reply or the error, and the rate-limit headers
/// to add to whichever response is made of it.
pub(crate) type Served = (Result<GatewayReply, ApiError>, Vec<(&'static str, String)>);

/// Runs a parsed request through the gateway: admission (limits, budgets), the pipeline,
/// the reply with its headers. Every outcome is recorded.
pub(crate) async fn serve(
    gw: Gateway,
    peer: SocketAddr,
    principal: Principal,
    headers: HeaderMap,
    endpoint: Endpoint,
    parsed: Result<RequestBody, ApiError>,
) -> Response {
    let (result, limit_headers) =
        serve_reply(gw, peer, principal, headers, endpoint, None, parsed).await;
    let resp = match result {
        Ok(reply) => reply_response(reply),
        Err(e) => e.into_response(),
    };
    with_headers(resp, limit_headers)
}

/// [`serve`] without the response: for inbound dialects bridged to chat completions, which
/// translate the reply themselves. `dialect` names them in the log (`messages`); a parse or
/// translation error in `parsed` is recorded as a rejection.
///
/// Not an `async fn`: its arguments would be stored in its future next to the copies the
/// inner futures hold. The context is built here and the returned future is the work itself
/// (a rejection's recording is boxed: it is the rare path).
pub(crate) fn serve_reply(
    gw: Gateway,
    peer: SocketAddr,
    principal: Principal,
    headers: HeaderMap,
    endpoint: Endpoint,
    dialect: Option<&'static str>,
    parsed: Result<RequestBody, ApiError>,
) -> futures_util::future::Either<
    std::pin::Pin<Box<dyn std::future::Future<Output = Served> + Send>>,
    FinishOnDrop,
> {
    use futures_util::future::Either;
    let mut ctx = RequestContext::new(id_of(&headers), endpoint);
    ctx.dialect = dialect;
    ctx.client_ip = Some(ip_text(peer.ip()));
    // Before a rejection is recorded too: its row is the key's, in the key's log mode.
    ctx.principal = principal;
    ctx.headers = headers;
    let body = match parsed {
        Ok(b) => b,
        Err(e) => {
            return Either::Left(Box::pin(async move {
                gw.record_rejection(&ctx, None, &e).await;
                (Err(e), Vec::new())
            }));
        }
    };
    Either::Right(serve_detached(gw, ctx, body))
}

/// Runs [`Gateway::serve`] driven by the handler itself (see [`FinishOnDrop`]): a client that
/// goes away does not cancel it, so the upstream's answer still gets its row (status 499) and
/// its cost. A stream whose client left before it was handed over is read to its end (its
/// usage is the upstream's own, see [`drain_unread`]). Every inbound dialect serves through
/// this.
pub(crate) fn serve_detached(gw: Gateway, ctx: RequestContext, body: RequestBody) -> FinishOnDrop {
    let gone = ctx.client_gone.clone();
    let work = gw.clone();
    FinishOnDrop {
        // Only the request's work: the boxed future is built on the stack and copied whole
        // into its allocation, so what runs after a client left is not part of it.
        work: Some(Box::pin(async move { work.serve(ctx, body).await })),
        gw,
        gone,
    }
}

/// Reads the stream of a reply whose client went away before it was handed over to its end,
/// so its row has the upstream's own usage and cost (recorded as 499), within the deployment's
/// whole-answer timeout (a trickle never trips the idle timeout).
async fn drain_unread(gw: &Gateway, served: &mut Served) {
    let Ok(reply) = &mut served.0 else {
        return;
    };
    let within = std::time::Duration::from_millis(
        gw.config
            .deployment(&reply.deployment)
            .map_or(600_000, |d| d.timeout_ms()),
    );
    let read = async {
        match &mut reply.body {
            ReplyBody::Sse(stream) => drain(stream).await,
            ReplyBody::Native(stream) => drain(stream).await,
            ReplyBody::Json(_) => {}
        }
    };
    let _ = tokio::time::timeout(within, read).await;
}

/// Reads a stream whose client went away before it was handed over to its end (bounded by
/// the deployment's stream idle timeout, the upstream caps and, by the caller, its
/// `timeout_ms`), so it finishes as complete.
async fn drain<S: futures_util::Stream + Unpin>(stream: &mut S) {
    use futures_util::StreamExt;
    while stream.next().await.is_some() {}
}

/// The gateway's work for one request, driven by the handler itself (no task per request:
/// a spawned task wakes another worker thread, which cost several futex calls per request).
/// When the handler is dropped before the work is done (hyper drops it when the connection
/// closes), the client is marked as gone and the rest of the work moves to a task of its own,
/// where it runs to the end, a stream's answer read to its end ([`drain_unread`]). The work is
/// boxed, so moving it moves a pointer.
pub(crate) struct FinishOnDrop {
    work: Option<std::pin::Pin<Box<dyn std::future::Future<Output = Served> + Send>>>,
    gw: Gateway,
    gone: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl std::future::Future for FinishOnDrop {
    type Output = Served;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Served> {
        let Some(work) = self.work.as_mut() else {
            // Polled again after it finished: nothing more will come.
            return std::task::Poll::Pending;
        };
        let served = std::task::ready!(work.as_mut().poll(cx));
        self.work = None;
        std::task::Poll::Ready(served)
    }
}

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        let Some(work) = self.work.take() else {
            return;
        };
        self.gone.store(true, std::sync::atomic::Ordering::SeqCst);
        self.gw.metrics().client_disconnected();
        let gw = self.gw.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    let mut served = work.await;
                    drain_unread(&gw, &mut served).await;
                });
            }
            Err(_) => tracing::warn!("a request's work was dropped outside the runtime"),
        }
    }
}

/// `resp` with `headers` set (replacing same names); a value that is not a valid header value
/// is left out. Each value's text becomes the header's without a copy.
pub(crate) fn with_headers(mut resp: Response, headers: Vec<(&'static str, String)>) -> Response {
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(value)) {
            resp.headers_mut().insert(HeaderName::from_static(name), v);
        }
    }
    resp
}

pub(crate) fn reply_response(reply: GatewayReply) -> Response {
    let resp = match reply.body {
        ReplyBody::Json(bytes) => {
            ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
        }
        ReplyBody::Sse(stream) => sse_response(Body::from_stream(stream)),
        ReplyBody::Native(stream) => sse_response(Body::from_stream(stream)),
    };
    with_headers(resp, reply.headers)
}

/// An SSE response (`text/event-stream`, `no-cache`) of `body`.
pub(crate) fn sse_response(body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /v1/models`: the configured model names and deployment names this caller may use, in
/// OpenAI's list shape: a name outside the key's `models` allow-list, or one the caller's
/// policies leave no deployment for, is not listed (see [`visible_model`]).
async fn list_models(
    State(gw): State<Gateway>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
) -> Response {
    let data: Vec<Value> = model_ids(&gw)
        .into_iter()
        .filter_map(|id| visible_model(&gw, &principal, &headers, id))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

/// `GET /v1/models/{id}`: 404 `model_not_found` as well for a name the caller may not use
/// (whether it exists is not revealed).
async fn get_model(
    State(gw): State<Gateway>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Response {
    let found = model_ids(&gw)
        .contains(&id)
        .then(|| visible_model(&gw, &principal, &headers, id.clone()))
        .flatten();
    match found {
        Some(v) => axum::Json(v).into_response(),
        None => ApiError::model_not_found(&id).into_response(),
    }
}

/// The model object of `id` when `principal` may use it: its key allows the name, and for a
/// prompt free of personal data its policies leave at least one deployment.
fn visible_model(
    gw: &Gateway,
    principal: &Principal,
    headers: &HeaderMap,
    id: String,
) -> Option<Value> {
    if !principal.may_use(&id) {
        return None;
    }
    let v = with_deployments(gw, principal, headers, id);
    let usable = v["deployments"].as_array().is_some_and(|d| !d.is_empty());
    usable.then_some(v)
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
/// their hosting and openness (see [`crate::gateway::explain::model_deployments`]).
fn with_deployments(gw: &Gateway, principal: &Principal, headers: &HeaderMap, id: String) -> Value {
    let deployments = crate::gateway::explain::model_deployments(gw, principal, headers, &id);
    let mut v = model_object(id);
    v["deployments"] = Value::Array(deployments);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat_body() -> RequestBody {
        RequestBody::Chat(
            crate::api::parse_body(br#"{"model":"x","messages":[{"role":"user","content":"hi"}]}"#)
                .unwrap(),
        )
    }

    proptest::proptest! {
        #[test]
        fn ip_text_is_displays(octets in proptest::prelude::any::<[u8; 4]>(), v6 in proptest::prelude::any::<[u16; 8]>()) {
            let v4 = std::net::IpAddr::from(octets);
            proptest::prop_assert_eq!(ip_text(v4), v4.to_string());
            let v6 = std::net::IpAddr::from(v6);
            proptest::prop_assert_eq!(ip_text(v6), v6.to_string());
        }
    }

    /// Futures are moved whole into their boxes (axum boxes the handler's, `serve_detached`
    /// the gateway's): each byte of them is copied on every request. Arguments of an `async fn`
    /// are stored again at each level, so a request and its context once made the handler's
    /// future 11.7 KB and the gateway's 14.2 KB (release). The bounds catch such growth.
    #[tokio::test]
    async fn request_futures_stay_small() {
        let cfg: crate::config::Config =
            serde_saphyr::from_str("deployments: []\nmodels: []\n").unwrap();
        let gw = Gateway::new(cfg).unwrap();
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let handler = chat_completions(
            State(gw.clone()),
            ConnectInfo(peer),
            Extension(Principal::anonymous()),
            HeaderMap::new(),
            Body::empty(),
        );
        let handler_size = std::mem::size_of_val(&handler);
        drop(handler);
        let ctx = RequestContext::new("x".into(), Endpoint::ChatCompletions);
        let detached = serve_detached(gw.clone(), ctx, chat_body());
        assert_eq!(std::mem::size_of_val(&detached), 32);
        drop(detached);
        let ctx = RequestContext::new("x".into(), Endpoint::ChatCompletions);
        let gateway = gw.serve(ctx, chat_body());
        let gateway_size = std::mem::size_of_val(&gateway);
        drop(gateway);
        // Layouts come from MIR, so debug and release builds give the same sizes (1,792 and
        // 8,568 bytes when this was written; 800 and 3,096 once the request record, the chat
        // request and the caller's key settings were boxed where they are made).
        let (handler_max, gateway_max) = (1_024, 3_328);
        assert!(
            handler_size <= handler_max,
            "handler future {handler_size} B"
        );
        assert!(
            gateway_size <= gateway_max,
            "gateway future {gateway_size} B"
        );
    }
}

//! The front door: the service every connection's requests go to, and the one place the
//! middleware order of [`super`] runs for every request.
//!
//! Steps 1 and 2 (the request id, the local-mode guard) run here for every request. The
//! requests that carry a prompt — `POST` to chat completions, completions, embeddings,
//! Responses and Messages, with or without `/v1` ([`Hot`]) — are then authenticated and
//! handed to their handler directly; everything else goes to the axum router of the gateway
//! in use ([`super::router`]), whose route layers authenticate the other groups.
//!
//! Why not the router for all: on the paths that carry traffic its layers (two routers, two
//! `from_fn` middlewares, each a service clone and a boxed future per request, the
//! extractors) were about a seventh of Sluice's CPU per chat request (issue 21). The hot
//! handlers are the same functions the router mounts, with the same arguments, so a request
//! gets the same answer either way; another method on a hot path goes to the router (its
//! 405s stay the router's).

use super::reload::Live;
use super::{REQUEST_ID, auth, local, messages, openai, responses};
use crate::gateway::Gateway;
use axum::extract::{ConnectInfo, Extension, Request, State};
use axum::http::{HeaderValue, Method};
use axum::response::Response;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::ServiceExt;

/// The routes the front door hands to their handler itself (all `POST`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hot {
    /// `/v1/chat/completions`.
    ChatCompletions,
    /// `/v1/completions`.
    Completions,
    /// `/v1/embeddings`.
    Embeddings,
    /// `/v1/responses`.
    Responses,
    /// `/v1/messages` (authenticated with Anthropic's 401).
    Messages,
}

impl Hot {
    /// The hot route `method` and `path` name, if any (the path exactly, with or without
    /// `/v1`; a trailing slash or another method is not one).
    pub fn of(method: &Method, path: &str) -> Option<Hot> {
        if method != Method::POST {
            return None;
        }
        match path.strip_prefix("/v1").unwrap_or(path) {
            "/chat/completions" => Some(Hot::ChatCompletions),
            "/completions" => Some(Hot::Completions),
            "/embeddings" => Some(Hot::Embeddings),
            "/responses" => Some(Hot::Responses),
            "/messages" => Some(Hot::Messages),
            _ => None,
        }
    }
}

/// Makes a [`FrontDoor`] for each accepted connection (what `axum::serve` takes).
#[derive(Clone)]
pub struct MakeFrontDoor(pub Arc<Live>);

impl<'a, L> tower::Service<axum::serve::IncomingStream<'a, L>> for MakeFrontDoor
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    type Response = FrontDoor;
    type Error = Infallible;
    type Future = std::future::Ready<Result<FrontDoor, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, conn: axum::serve::IncomingStream<'a, L>) -> Self::Future {
        std::future::ready(Ok(FrontDoor {
            live: self.0.clone(),
            peer: *conn.remote_addr(),
        }))
    }
}

/// One connection's service: the gateway in use when each request arrives, and the peer.
#[derive(Clone)]
pub struct FrontDoor {
    live: Arc<Live>,
    peer: SocketAddr,
}

impl FrontDoor {
    /// A front door for requests from `peer` to `gateway` (tests call it as a `tower`
    /// service; `sluice serve` makes one per connection through [`MakeFrontDoor`]).
    pub fn new(gateway: Gateway, peer: SocketAddr) -> FrontDoor {
        FrontDoor {
            live: Live::new(gateway, crate::config::ConfigSource::Embedded, None),
            peer,
        }
    }
}

impl tower::Service<Request> for FrontDoor {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let live = self.live.clone();
        let peer = self.peer;
        Box::pin(async move { Ok(answer(live, peer, req).await) })
    }
}

/// The middleware order for one request (see the module docs); the response carries the
/// request id.
async fn answer(live: Arc<Live>, peer: SocketAddr, mut req: Request) -> Response {
    let id = request_id(&mut req);
    let current = live.current();
    let gw = current.gateway.clone();
    let mut resp = match local::refusal(&gw, &req, Some(peer)) {
        Some(refused) if req.method() == Method::HEAD => without_body(refused),
        Some(refused) => refused,
        None => match Hot::of(req.method(), req.uri().path()) {
            Some(hot) => serve_hot(gw, peer, hot, req).await,
            None => {
                req.extensions_mut().insert(ConnectInfo(peer));
                match current.app.clone().oneshot(req).await {
                    Ok(resp) => resp,
                    Err(never) => match never {},
                }
            }
        },
    };
    resp.headers_mut().insert(REQUEST_ID, id);
    resp
}

/// Step 3 and 4 for a hot route: the caller's key (a refusal in the route's dialect), then
/// its handler.
async fn serve_hot(gw: Gateway, peer: SocketAddr, hot: Hot, req: Request) -> Response {
    let principal = match gw.access().authenticate(req.headers()) {
        Ok(p) => p,
        Err(e) if hot == Hot::Messages => return messages::refused(&gw, &e),
        Err(e) => return auth::refused(&gw, e),
    };
    let (parts, body) = req.into_parts();
    let (gw, peer, principal, headers) = (
        State(gw),
        ConnectInfo(peer),
        Extension(principal),
        parts.headers,
    );
    match hot {
        Hot::ChatCompletions => openai::chat_completions(gw, peer, principal, headers, body).await,
        Hot::Completions => openai::completions(gw, peer, principal, headers, body).await,
        Hot::Embeddings => openai::embeddings(gw, peer, principal, headers, body).await,
        // Boxed: its future is about twice the others', and this one's size is the largest
        // of them (copied whole into the box `FrontDoor::call` makes for every request).
        Hot::Responses => Box::pin(responses::create(gw, peer, principal, headers, body)).await,
        Hot::Messages => messages::create(gw, peer, principal, headers, body).await,
    }
}

/// A response to `HEAD`: its headers, with the `content-length` its body would have had, and
/// no body (the router does the same for the routes it answers; an HTTP/2 client would get a
/// protocol error for a body).
fn without_body(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    if let Some(n) = axum::body::HttpBody::size_hint(&body).exact()
        && !parts
            .headers
            .contains_key(axum::http::header::CONTENT_LENGTH)
    {
        parts
            .headers
            .insert(axum::http::header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    Response::from_parts(parts, axum::body::Body::empty())
}

/// Takes the client's `x-request-id` (1–200 visible characters) or makes a UUIDv7, and puts
/// it on `req`; returns it for the response.
fn request_id(req: &mut Request) -> HeaderValue {
    if let Some(v) = req.headers().get(REQUEST_ID)
        && v.to_str().is_ok_and(|s| !s.is_empty() && s.len() <= 200)
    {
        return v.clone();
    }
    let id = uuid::Uuid::now_v7();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = id.hyphenated().encode_lower(&mut buf);
    let value = HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("-"));
    req.headers_mut().insert(REQUEST_ID, value.clone());
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_routes_are_posts_to_the_prompt_paths_only() {
        let post = Method::POST;
        assert_eq!(
            Hot::of(&post, "/v1/chat/completions"),
            Some(Hot::ChatCompletions)
        );
        assert_eq!(
            Hot::of(&post, "/chat/completions"),
            Some(Hot::ChatCompletions)
        );
        assert_eq!(Hot::of(&post, "/v1/completions"), Some(Hot::Completions));
        assert_eq!(Hot::of(&post, "/embeddings"), Some(Hot::Embeddings));
        assert_eq!(Hot::of(&post, "/v1/responses"), Some(Hot::Responses));
        assert_eq!(Hot::of(&post, "/v1/messages"), Some(Hot::Messages));
        for path in [
            "/v1/chat/completions/",
            "/v1/messages/count_tokens",
            "/v1/responses/input_tokens",
            "/v1/v1/chat/completions",
            "/v2/chat/completions",
            "/v1",
            "/",
        ] {
            assert_eq!(Hot::of(&post, path), None, "{path}");
        }
        assert_eq!(Hot::of(&Method::GET, "/v1/chat/completions"), None);
        assert_eq!(Hot::of(&Method::PUT, "/v1/messages"), None);
    }

    #[test]
    fn a_clients_request_id_is_kept_and_a_missing_one_is_made() {
        let mut req = Request::new(axum::body::Body::empty());
        req.headers_mut()
            .insert(REQUEST_ID, HeaderValue::from_static("abc-1"));
        assert_eq!(request_id(&mut req), "abc-1");
        for bad in ["", &"x".repeat(201)] {
            let mut req = Request::new(axum::body::Body::empty());
            req.headers_mut()
                .insert(REQUEST_ID, HeaderValue::from_str(bad).unwrap());
            let made = request_id(&mut req);
            let text = made.to_str().unwrap();
            assert_eq!(text.len(), 36, "{bad:?}");
            assert_eq!(uuid::Uuid::parse_str(text).unwrap().get_version_num(), 7);
            assert_eq!(req.headers().get(REQUEST_ID), Some(&made));
        }
        let mut req = Request::new(axum::body::Body::empty());
        let made = request_id(&mut req);
        assert_eq!(req.headers().get(REQUEST_ID), Some(&made));
    }
}

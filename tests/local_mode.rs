//! Without a master key ("local mode"): loopback `Host` only (421), JSON bodies only (415),
//! `/admin` `/metrics` `/ui` for loopback peers only (403). With a master key these checks
//! are off.

mod support;

use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};
use std::net::SocketAddr;
use support::*;
use tower::ServiceExt;

fn completion() -> Value {
    json!({"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}})
}

const CHAT: &str = r#"{"model":"default","messages":[{"role":"user","content":"hi"}]}"#;

async fn error_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    (status, body["error"].clone())
}

#[tokio::test]
async fn a_cross_site_simple_post_is_refused_with_415() {
    let mock = Mock::start(|_| MockReply::Json(200, completion())).await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    for (path, ct) in [
        ("/v1/chat/completions", "text/plain"),
        ("/chat/completions", "application/x-www-form-urlencoded"),
        ("/admin/keys", "text/plain;charset=UTF-8"),
        ("/v1/embeddings", "multipart/form-data; boundary=x"),
    ] {
        let r = client()
            .post(s.url(path))
            .header("content-type", ct)
            .body(CHAT)
            .send()
            .await
            .unwrap();
        let (status, e) = error_of(r).await;
        assert_eq!(status, 415, "{path} {ct}");
        assert_eq!(e["code"], "unsupported_media_type");
        assert_eq!(e["type"], "invalid_request_error");
    }
    // No content type at all is refused too.
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .body(CHAT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(mock.calls(), 0);
    // JSON (with parameters, any case) is served.
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .header("content-type", "Application/JSON; charset=utf-8")
        .body(CHAT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn a_foreign_host_gets_421_and_loopback_names_are_served() {
    let mock = Mock::start(|_| MockReply::Json(200, completion())).await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    let port = s.addr.port();
    for path in ["/admin/logs", "/ui", "/metrics", "/v1/models", "/health"] {
        for host in [
            format!("attacker.example:{port}"),
            "attacker.example".to_string(),
            format!("127.0.0.1.nip.io:{port}"),
        ] {
            let r = client()
                .get(s.url(path))
                .header("host", &host)
                .send()
                .await
                .unwrap();
            let (status, e) = error_of(r).await;
            assert_eq!(status, 421, "{path} {host}");
            assert_eq!(e["code"], "misdirected_request");
        }
    }
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .header("host", "attacker.example")
        .header("x-request-id", "refused-1")
        .json(&serde_json::from_str::<Value>(CHAT).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 421);
    // The refusal comes from the same front layer that stamps the request id.
    assert_eq!(r.headers()["x-request-id"], "refused-1");
    assert_eq!(mock.calls(), 0);
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        "localhost".to_string(),
    ] {
        let r = client()
            .post(s.url("/v1/chat/completions"))
            .header("host", &host)
            .json(&serde_json::from_str::<Value>(CHAT).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{host}");
        let r = client()
            .get(s.url("/metrics"))
            .header("host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{host}");
    }
    s.stop().await;
}

async fn get_from(gw: &sluice::gateway::Gateway, peer: &str, path: &str) -> u16 {
    let req = Request::get(path)
        .header("host", "localhost:4000")
        .body(Body::empty())
        .unwrap();
    let addr: SocketAddr = peer.parse().unwrap();
    let door = sluice::http::front::FrontDoor::new(gw.clone(), addr);
    let resp = door.oneshot(req).await.unwrap();
    resp.status().as_u16()
}

/// A refused `HEAD` has the refusal's status and headers and no body (an HTTP/2 client got
/// a protocol error for one when the front door sent it whole).
#[tokio::test]
async fn a_refused_head_request_has_no_body() {
    let config = sluice::config::parse("t.yaml", &one_deployment("http://127.0.0.1:9/v1")).unwrap();
    let gw = sluice::gateway::Gateway::new(config).unwrap();
    let ask = |method: &str| {
        Request::builder()
            .method(method)
            .uri("/health")
            .header("host", "evil.example")
            .body(Body::empty())
            .unwrap()
    };
    let door =
        || sluice::http::front::FrontDoor::new(gw.clone(), "127.0.0.1:5555".parse().unwrap());
    let get = door().oneshot(ask("GET")).await.unwrap();
    assert_eq!(get.status(), 421);
    let whole = axum::body::to_bytes(get.into_body(), 10_000).await.unwrap();
    assert!(!whole.is_empty());
    let head = door().oneshot(ask("HEAD")).await.unwrap();
    assert_eq!(head.status(), 421);
    assert_eq!(
        head.headers()["content-length"].to_str().unwrap(),
        whole.len().to_string()
    );
    assert!(head.headers().contains_key("x-request-id"));
    let body = axum::body::to_bytes(head.into_body(), 10_000)
        .await
        .unwrap();
    assert_eq!(body.len(), 0);
}

#[tokio::test]
async fn operator_routes_are_for_loopback_peers_only() {
    let mock = Mock::start(|_| MockReply::Json(200, completion())).await;
    let config = sluice::config::parse("t.yaml", &one_deployment(&mock.url("/v1"))).unwrap();
    let gw = sluice::gateway::Gateway::new(config).unwrap();
    for path in ["/metrics", "/ui", "/admin/keys"] {
        assert_eq!(get_from(&gw, "10.1.2.3:5555", path).await, 403, "{path}");
        assert_eq!(
            get_from(&gw, "[2001:db8::1]:5555", path).await,
            403,
            "{path}"
        );
        assert_ne!(get_from(&gw, "127.0.0.1:5555", path).await, 403, "{path}");
    }
    assert_eq!(get_from(&gw, "[::1]:5555", "/metrics").await, 200);
    assert_eq!(get_from(&gw, "10.1.2.3:5555", "/health").await, 200);
}

#[tokio::test]
async fn with_a_master_key_the_local_checks_are_off() {
    let mock = Mock::start(|_| MockReply::Json(200, completion())).await;
    let yaml = format!(
        "server:\n  master_key: sk-m\n{}",
        one_deployment(&mock.url("/v1"))
    );
    let s = Sluice::start(&yaml).await;
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .header("host", "gateway.example.com")
        .bearer_auth("sk-m")
        .json(&serde_json::from_str::<Value>(CHAT).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Without the key a foreign Host is a 401, not a 421: the key is the check.
    let r = client()
        .get(s.url("/metrics"))
        .header("host", "gateway.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    s.stop().await;
    let config = sluice::config::parse("t.yaml", &yaml).unwrap();
    let gw = sluice::gateway::Gateway::new(config).unwrap();
    let req = Request::get("/metrics")
        .header("host", "gateway.example.com")
        .header("authorization", "Bearer sk-m")
        .body(Body::empty())
        .unwrap();
    let door = sluice::http::front::FrontDoor::new(gw, "10.1.2.3:5555".parse().unwrap());
    let resp = door.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[test]
fn the_start_up_notice_names_the_mode() {
    let local = sluice::config::parse("t.yaml", &one_deployment("http://127.0.0.1:9/v1")).unwrap();
    assert!(sluice::http::local::mode_notice(&local).starts_with("access: local mode"));
    let keyed = sluice::config::parse(
        "t.yaml",
        &format!(
            "server:\n  master_key: sk-m\n{}",
            one_deployment("http://127.0.0.1:9/v1")
        ),
    )
    .unwrap();
    assert!(sluice::http::local::mode_notice(&keyed).starts_with("access: master key set"));
}

#[tokio::test]
async fn the_messages_routes_refuse_in_anthropics_shape() {
    // Without the dialect check this body is OpenAI's envelope (no top-level `type`).
    let mock = Mock::start(|_| MockReply::Json(200, completion())).await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    for path in ["/v1/messages", "/messages/count_tokens"] {
        let r = client()
            .post(s.url(path))
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        // Anthropic's status set has no 415: its mapping answers 400 invalid_request_error.
        assert_eq!(status, 400, "{path} {body}");
        assert_eq!(body["type"], "error", "{path}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{path}");
        assert_eq!(
            body["error"]["message"],
            "Request bodies must be sent with `Content-Type: application/json`."
        );
    }
    assert_eq!(mock.calls(), 0);
    s.stop().await;
}

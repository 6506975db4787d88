//! Gateway core over HTTP: pass-through, streaming, errors, headers. Mock upstreams and
//! Sluice both run on 127.0.0.1.

mod support;

use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use support::*;

fn completion(text: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000,
        "model": "upstream-model", "system_fingerprint": "fp_1",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    })
}

const TEXT_PARTS: [&str; 5] = ["Anna ", "is ", "a caf\u{e9} ", "owner ", "\u{1F600}."];

fn content_stream() -> Vec<Value> {
    let mut out = vec![chunk(json!({"role":"assistant","content":""}), Value::Null)];
    for p in TEXT_PARTS {
        out.push(chunk(json!({"content": p}), Value::Null));
    }
    out.push(chunk(json!({}), json!("stop")));
    out
}

fn usage_chunk() -> Value {
    json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"upstream-model",
           "choices":[],"usage":{"prompt_tokens":13,"completion_tokens":9,"total_tokens":22}})
}

fn stream_bytes(chunks: &[Value]) -> String {
    let mut s = String::new();
    for c in chunks {
        s.push_str(&format!("data: {c}\n\n"));
    }
    s.push_str("data: [DONE]\n\n");
    s
}

fn chat(stream: bool) -> Value {
    json!({"model":"default","stream":stream,"messages":[{"role":"user","content":"Describe Anna."}]})
}

#[tokio::test]
async fn non_stream_passes_the_upstream_body_through_and_rewrites_model() {
    let mock = Mock::start(|_| MockReply::Json(200, completion("Hello!"))).await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    let mut body = chat(false);
    body["mirostat"] = json!(2);
    body["temperature"] = json!(0.3);
    let resp = client()
        .post(s.url("/v1/chat/completions"))
        .header("x-request-id", "req-42")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "req-42");
    assert_eq!(resp.headers()["x-sluice-deployment"], "up");
    let got: Value = resp.json().await.unwrap();
    assert_eq!(got, completion("Hello!"));
    let up = mock.last();
    assert_eq!(up.path, "/v1/chat/completions");
    assert_eq!(up.body["model"], "upstream-model");
    assert_eq!(up.body["mirostat"], 2);
    assert_eq!(up.body["temperature"], 0.3);
    assert_eq!(up.body["messages"], body["messages"]);
    assert_eq!(up.headers["x-request-id"], "req-42");
    s.stop().await;
}

#[tokio::test]
async fn routes_work_without_the_v1_prefix_and_make_request_ids() {
    let mock = Mock::start(|_| MockReply::Json(200, completion("x"))).await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    let resp = post(&s, "/chat/completions", chat(false)).await;
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);
    s.stop().await;
}

/// C01: the same logical stream delivered five ways; the client sees whole events only.
#[tokio::test]
async fn stream_events_split_across_reads_are_reframed_whole() {
    let full = stream_bytes(&content_stream());
    let b = full.as_bytes().to_vec();
    let deliveries: Vec<Vec<Bytes>> = vec![
        b.iter().map(|x| Bytes::from(vec![*x])).collect(),
        vec![Bytes::from(b[..2].to_vec()), Bytes::from(b[2..].to_vec())],
        {
            let cut = full.find("caf").unwrap() + 3;
            vec![
                Bytes::from(b[..cut].to_vec()),
                Bytes::from(b[cut..].to_vec()),
            ]
        },
        {
            let third = full.match_indices("data:").nth(2).unwrap().0 + 20;
            vec![
                Bytes::from(b[..third].to_vec()),
                Bytes::from(b[third..].to_vec()),
            ]
        },
        vec![Bytes::from(full.replace("\n", "\r\n"))],
    ];
    for (i, chunks) in deliveries.into_iter().enumerate() {
        let chunks = Arc::new(Mutex::new(Some(chunks)));
        let mock =
            Mock::start(move |_| MockReply::Sse(chunks.lock().unwrap().take().unwrap_or_default()))
                .await;
        let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
        let resp = post(&s, "/v1/chat/completions", chat(true)).await;
        assert_eq!(resp.status(), 200, "delivery {i}");
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let text = resp.text().await.unwrap();
        let events = data_events(&text);
        assert_eq!(events.last().unwrap(), "[DONE]", "delivery {i}");
        let mut content = String::new();
        let mut content_events = 0;
        for e in &events[..events.len() - 1] {
            let v: Value = serde_json::from_str(e).unwrap();
            assert!(
                v.get("usage").is_none_or(Value::is_null),
                "delivery {i}: {e}"
            );
            if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
                content.push_str(c);
                content_events += 1;
            }
        }
        assert_eq!(content, TEXT_PARTS.concat(), "delivery {i}");
        assert_eq!(content_events, 6, "delivery {i}");
        // Sluice asked upstream for usage on its own account.
        assert_eq!(mock.last().body["stream_options"]["include_usage"], true);
        s.stop().await;
    }
}

/// C04: one usage chunk, `choices: []`, right before `[DONE]`, only when asked.
#[tokio::test]
async fn usage_chunk_only_when_asked_and_exactly_once() {
    // Upstream puts usage on every chunk (a vLLM version did) and sends a usage chunk.
    let mut chunks = content_stream();
    for c in chunks.iter_mut() {
        c["usage"] = json!({"prompt_tokens":13,"completion_tokens":1,"total_tokens":14});
    }
    chunks.push(usage_chunk());
    let body = stream_bytes(&chunks);
    let mock = Mock::start(move |_| MockReply::Sse(vec![Bytes::from(body.clone())])).await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;

    let mut asked = chat(true);
    asked["stream_options"] = json!({"include_usage": true});
    let text = post(&s, "/v1/chat/completions", asked)
        .await
        .text()
        .await
        .unwrap();
    let events = data_events(&text);
    let n = events.len();
    assert_eq!(events[n - 1], "[DONE]");
    let last: Value = serde_json::from_str(&events[n - 2]).unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"],
        json!({"prompt_tokens":13,"completion_tokens":9,"total_tokens":22})
    );
    let before: Value = serde_json::from_str(&events[n - 3]).unwrap();
    assert_eq!(before["choices"][0]["finish_reason"], "stop");
    for e in &events[..n - 2] {
        let v: Value = serde_json::from_str(e).unwrap();
        assert!(v["usage"].is_null(), "{e}");
        assert_ne!(v["choices"], json!([]));
    }

    let text = post(&s, "/v1/chat/completions", chat(true))
        .await
        .text()
        .await
        .unwrap();
    let events = data_events(&text);
    for e in &events[..events.len() - 1] {
        let v: Value = serde_json::from_str(e).unwrap();
        assert!(v["usage"].is_null(), "{e}");
        assert_ne!(v["choices"], json!([]), "{e}");
    }
    s.stop().await;
}

/// C03: comments, `retry:`, `id:`-only events never reach the client as events.
#[tokio::test]
async fn keepalive_comments_and_meta_only_events_are_dropped() {
    let mut raw = String::new();
    for _ in 0..5 {
        raw.push_str(": OPENROUTER PROCESSING\n\n");
    }
    raw.push_str("retry: 3000\n\nid: 7\n\n");
    raw.push_str(&stream_bytes(&content_stream()));
    let mock = Mock::start(move |_| MockReply::Sse(vec![Bytes::from(raw.clone())])).await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    let text = post(&s, "/v1/chat/completions", chat(true))
        .await
        .text()
        .await
        .unwrap();
    assert!(!text.contains("OPENROUTER"));
    assert!(!text.contains("retry:"));
    assert!(!text.contains("id: 7"));
    let events = data_events(&text);
    assert_eq!(events.len(), content_stream().len() + 1);
    s.stop().await;
}

/// Streamed tool-call deltas, two parallel calls, pass through with their indexes.
#[tokio::test]
async fn tool_call_deltas_pass_through() {
    let chunks = vec![
        chunk(
            json!({"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{}"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
    ];
    let body = stream_bytes(&chunks);
    let mock = Mock::start(move |_| MockReply::Sse(vec![Bytes::from(body.clone())])).await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    let mut req = chat(true);
    req["tools"] = json!([{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]);
    req["tool_choice"] = json!("auto");
    let text = post(&s, "/v1/chat/completions", req.clone())
        .await
        .text()
        .await
        .unwrap();
    let events = data_events(&text);
    let got: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(got, chunks);
    assert_eq!(mock.last().body["tools"], req["tools"]);
    assert_eq!(mock.last().body["tool_choice"], "auto");
    s.stop().await;
}

/// C02: an error event inside a started 200 stream reaches the client as an error event,
/// with no made-up finish chunk or `[DONE]` after it.
#[tokio::test]
async fn error_event_mid_stream_is_forwarded_then_the_stream_closes() {
    let raw = format!(
        "data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
        chunk(json!({"role":"assistant","content":""}), Value::Null),
        json!({"error":{"message":"engine queue full","type":"server_error","param":null,"code":503}})
    );
    let mock = Mock::start(move |_| MockReply::Sse(vec![Bytes::from(raw.clone())])).await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    let resp = post(&s, "/v1/chat/completions", chat(true)).await;
    assert_eq!(resp.status(), 200);
    let events = data_events(&resp.text().await.unwrap());
    assert_eq!(events.len(), 2);
    let err: Value = serde_json::from_str(&events[1]).unwrap();
    assert_eq!(
        err,
        json!({"error":{"message":"engine queue full","type":"server_error","param":null,"code":503}})
    );
    s.stop().await;
}

/// C02 variant: the error is the first event → a real HTTP error.
#[tokio::test]
async fn error_as_first_event_becomes_an_http_error() {
    let raw = format!(
        "data: {}\n\ndata: [DONE]\n\n",
        json!({"error":{"message":"bad things","type":"invalid_request_error","code":400}})
    );
    let mock = Mock::start(move |_| MockReply::Sse(vec![Bytes::from(raw.clone())])).await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    let resp = post(&s, "/v1/chat/completions", chat(true)).await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["message"], "bad things");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    s.stop().await;
}

/// C02 variant: upstream ends after some content with no finish_reason and no `[DONE]`.
#[tokio::test]
async fn upstream_ending_early_gives_an_error_event() {
    let raw = format!(
        "data: {}\n\ndata: {}\n\n",
        chunk(json!({"role":"assistant","content":""}), Value::Null),
        chunk(json!({"content":"half"}), Value::Null)
    );
    let mock = Mock::start(move |_| MockReply::Sse(vec![Bytes::from(raw.clone())])).await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    let events = data_events(
        &post(&s, "/v1/chat/completions", chat(true))
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(events.len(), 3);
    let err: Value = serde_json::from_str(&events[2]).unwrap();
    assert_eq!(err["error"]["type"], "server_error");
    assert_eq!(
        err["error"]["message"],
        "deployment `up`: the upstream stream ended before it was complete"
    );
    s.stop().await;
}

#[tokio::test]
async fn bad_input_gets_openai_errors() {
    let mock = Mock::start(|_| MockReply::Json(200, completion("x"))).await;
    let mut yaml = one_deployment(&mock.url("/v1"));
    yaml.push_str("server:\n  max_body_bytes: 1000\n");
    let s = Sluice::start(&yaml).await;
    let c = client();

    let r = c
        .post(s.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["param"], Value::Null);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("We could not parse the JSON body")
    );

    let r = post(&s, "/v1/chat/completions", json!({"model":"default"})).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["param"], "messages");

    let r = post(
        &s,
        "/v1/chat/completions",
        json!({"model":"default","messages":[{"role":"user","content":"x"}],"max_tokens":"ten"}),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["param"],
        "max_tokens"
    );

    let r = post(
        &s,
        "/v1/chat/completions",
        json!({"model":"nope","messages":[]}),
    )
    .await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!({"error":{"message":"The model `nope` does not exist or you do not have access to it.","type":"invalid_request_error","param":"model","code":"model_not_found"}})
    );

    let big = json!({"model":"default","messages":[{"role":"user","content":"x".repeat(2000)}]});
    let r = post(&s, "/v1/chat/completions", big).await;
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "request_too_large"
    );
    // A declared length past the limit is refused before any body byte arrives (it waited
    // for a body the client never sent: found by an attacker test), on both dialects.
    for (path, want) in [
        ("/v1/chat/completions", "\"code\":\"request_too_large\""),
        ("/v1/messages", "\"type\":\"request_too_large\""),
    ] {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut sock = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 99999999999\r\n\r\n"
        );
        sock.write_all(head.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let read = async {
            while !String::from_utf8_lossy(&got).contains(want) {
                let n = sock.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
                got.extend_from_slice(&buf[..n]);
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), read)
            .await
            .expect("no answer before the body");
        assert!(
            got.starts_with(b"HTTP/1.1 413"),
            "{}",
            String::from_utf8_lossy(&got)
        );
    }

    let r = post(&s, "/v1/embeddings", json!({"model":"default"})).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["param"], "input");

    let r = c.get(s.url("/v1/nothing")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "unknown_url"
    );
    assert_eq!(mock.calls(), 0);
    s.stop().await;
}

#[tokio::test]
async fn upstream_errors_map_to_statuses_naming_the_deployment() {
    let mock = Mock::start(
        |r| match r.body["messages"][0]["content"].as_str().unwrap_or("") {
            "4xx" => MockReply::Json(422, json!({"detail":"bad field"})),
            "ollama" => MockReply::Json(404, json!({"error":"model 'x' not found"})),
            "5xx" => MockReply::Text(500, "Internal Server Error"),
            _ => MockReply::Hang,
        },
    )
    .await;
    let yaml = format!(
        "deployments:\n  - name: up\n    provider: openai\n    base_url: {}\n    model: m\n    api_key: sk-secret-do-not-leak\n  - name: slow\n    provider: openai\n    base_url: {}\n    model: m\n    api_key: sk-secret-do-not-leak\n    timeout_ms: 300\n  - name: dead\n    provider: openai\n    base_url: http://127.0.0.1:1/v1\n    model: m\n",
        mock.url("/v1"),
        mock.url("/v1")
    );
    // Only `slow` has a short timeout, and only the mock's hang meets it: the answers that
    // must arrive go to `up`, which keeps the default timeout on a loaded machine.
    let s = Sluice::start(&yaml).await;
    let ask = |content: &str, model: &str| json!({"model": model, "messages":[{"role":"user","content":content}]});

    let r = post(&s, "/v1/chat/completions", ask("4xx", "up")).await;
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["message"], "bad field");
    assert_eq!(v["error"]["type"], "invalid_request_error");

    let r = post(&s, "/v1/chat/completions", ask("ollama", "up")).await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["message"],
        "model 'x' not found"
    );

    let r = post(&s, "/v1/chat/completions", ask("5xx", "up")).await;
    assert_eq!(r.status(), 502);
    let text = r.text().await.unwrap();
    assert!(!text.contains("sk-secret"));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["error"]["message"],
        "deployment `up` failed with HTTP 500: Internal Server Error"
    );

    let r = post(&s, "/v1/chat/completions", ask("hang", "slow")).await;
    assert_eq!(r.status(), 504);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_timeout");
    assert_eq!(
        v["error"]["message"],
        "deployment `slow` did not answer in time"
    );

    let r = post(&s, "/v1/chat/completions", ask("x", "dead")).await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("deployment `dead`: connection failed")
    );
    assert_eq!(
        mock.last().headers["authorization"],
        "Bearer sk-secret-do-not-leak"
    );
    // One `host` header naming the upstream as hyper's client would (made once per
    // deployment by Sluice, not per request by the client).
    let host = mock.url("").trim_start_matches("http://").to_string();
    let hosts: Vec<_> = mock
        .last()
        .headers
        .get_all("host")
        .iter()
        .cloned()
        .collect();
    assert_eq!(hosts, [host.as_str()]);
    s.stop().await;
}

#[tokio::test]
async fn a_failing_first_deployment_falls_back_to_the_next() {
    let bad = Mock::start(|_| MockReply::Text(503, "busy")).await;
    let good = Mock::start(|_| MockReply::Json(200, completion("from good"))).await;
    let yaml = format!(
        "deployments:\n  - name: bad\n    provider: openai\n    base_url: {}\n    model: m\n  - name: good\n    provider: openai\n    base_url: {}\n    model: m\nmodels:\n  - name: default\n    deployments: [bad, good]\n",
        bad.url("/v1"),
        good.url("/v1")
    );
    let s = Sluice::start(&yaml).await;
    let r = post(&s, "/v1/chat/completions", chat(false)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-sluice-deployment"], "good");
    assert_eq!(r.json::<Value>().await.unwrap(), completion("from good"));
    assert_eq!((bad.calls(), good.calls()), (1, 1));
    s.stop().await;
}

#[tokio::test]
async fn client_disconnect_mid_stream_cancels_the_upstream_request() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let gone = Arc::new(Mutex::new(Some(tx)));
    let first = sse(&chunk(
        json!({"role":"assistant","content":"hi"}),
        Value::Null,
    ));
    let mock =
        Mock::start(move |_| MockReply::SseThenHang(vec![first.clone()], gone.clone())).await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    let mut resp = post(&s, "/v1/chat/completions", chat(true)).await;
    let got = resp.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&got).contains("\"hi\""));
    drop(resp);
    tokio::time::timeout(std::time::Duration::from_secs(10), rx)
        .await
        .expect("upstream request was not cancelled")
        .unwrap();
    s.stop().await;
}

#[tokio::test]
async fn completions_embeddings_and_models() {
    let mock = Mock::start(|r| match r.path.as_str() {
        "/v1/embeddings" => MockReply::Json(200, json!({"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-0.25]}],"model":"upstream-model","usage":{"prompt_tokens":2,"total_tokens":2}})),
        _ => MockReply::Json(200, json!({"id":"cmpl-1","object":"text_completion","created":1,"model":"upstream-model","choices":[{"index":0,"text":" world","finish_reason":"length","logprobs":null}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}})),
    })
    .await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    let r = post(
        &s,
        "/v1/completions",
        json!({"model":"default","prompt":"hello","max_tokens":1}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["choices"][0]["text"],
        " world"
    );
    assert_eq!(
        mock.last().body,
        json!({"model":"upstream-model","prompt":"hello","max_tokens":1})
    );
    let r = post(
        &s,
        "/v1/embeddings",
        json!({"model":"default","input":["a b"]}),
    )
    .await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["data"][0]["embedding"],
        json!([0.5, -0.25])
    );
    assert_eq!(mock.last().path, "/v1/embeddings");

    let v: Value = client()
        .get(s.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["default", "up"]);
    assert_eq!(v["object"], "list");
    let r = client().get(s.url("/v1/models/up")).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["id"], "up");
    let r = client().get(s.url("/v1/models/zzz")).send().await.unwrap();
    assert_eq!(r.status(), 404);

    let r = client().get(s.url("/health")).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status":"ok"}));
    let v: Value = client()
        .get(s.url("/health/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["deployments"][0]["reachable"], true);
    s.stop().await;
}

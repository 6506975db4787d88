//! Hostile upstreams: an answer over the size cap and an endless SSE line are 502s naming the
//! deployment, not unbounded memory.

mod support;

use bytes::Bytes;
use serde_json::{Value, json};
use support::*;

async fn chat(s: &Sluice, stream: bool) -> (u16, Value) {
    let r = ask_hi(s, stream).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

/// A streamed chat request: asserts the 200 and returns the answer's `data:` events.
async fn stream_events(s: &Sluice) -> Vec<String> {
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .json(&json!({"model":"default","stream":true,"messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    data_events(&r.text().await.unwrap())
}

#[tokio::test]
async fn an_answer_over_the_cap_is_a_502() {
    let huge = "x".repeat(sluice::providers::upstream::MAX_RESPONSE_BYTES + 1);
    let mock = Mock::start(move |_| {
        MockReply::Json(
            200,
            json!({"choices":[{"message":{"content": huge.clone()}}]}),
        )
    })
    .await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    let (status, v) = chat(&s, false).await;
    assert_eq!(status, 502);
    assert_eq!(v["error"]["code"], "upstream_error");
    assert_eq!(
        v["error"]["message"],
        format!(
            "deployment `up`: the answer is larger than {} bytes",
            sluice::providers::upstream::MAX_RESPONSE_BYTES
        )
    );
    s.stop().await;
}

#[tokio::test]
async fn an_endless_stream_line_is_a_502() {
    let line = Bytes::from(format!(
        "data: {}",
        "x".repeat(sluice::providers::upstream::MAX_STREAM_EVENT_BYTES / 4)
    ));
    let mock =
        Mock::start(move |_| MockReply::Chunks("text/event-stream", vec![line.clone(); 5])).await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    let (status, v) = chat(&s, true).await;
    assert_eq!(status, 502);
    assert_eq!(
        v["error"]["message"],
        format!(
            "deployment `up`: a stream event is larger than {} bytes",
            sluice::providers::upstream::MAX_STREAM_EVENT_BYTES
        )
    );
    s.stop().await;
}

/// An `anthropic` deployment that answers an OpenAI-shaped body: 502 naming the deployment,
/// never a 200 with empty content.
#[tokio::test]
async fn an_answer_in_the_wrong_shape_is_a_502() {
    let mock = Mock::start(|_| {
        MockReply::Json(
            200,
            json!({"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}]}),
        )
    })
    .await;
    let yaml = format!(
        "deployments:\n  - name: claude\n    provider: anthropic\n    base_url: {}\n    model: claude-haiku-4-5\nmodels:\n  - name: default\n    deployments: [claude]\n",
        mock.url("")
    );
    let s = Sluice::start(&yaml).await;
    let (status, v) = chat(&s, false).await;
    assert_eq!(status, 502);
    assert_eq!(v["error"]["code"], "upstream_error");
    assert_eq!(
        v["error"]["message"],
        "deployment `claude`: the answer is not an Anthropic message (`type: message` with a `content` list)"
    );
    s.stop().await;
}

/// A stream longer than its deployment's `max_stream_bytes` passes every chunk within the cap
/// on, then ends with one error event naming the deployment: never `[DONE]`.
#[tokio::test]
async fn a_stream_over_its_total_cap_ends_with_an_error_event() {
    let role = sse(&chunk(json!({"role":"assistant"}), Value::Null));
    let text = sse(&chunk(json!({"content": "x".repeat(1000)}), Value::Null));
    // The cap falls exactly after 40 text chunks (however the bytes are split on the way).
    let cap = role.len() + 40 * text.len();
    let mut frames = vec![role];
    frames.extend(std::iter::repeat_n(text, 100));
    frames.push(sse(&chunk(json!({}), json!("stop"))));
    frames.push(done());
    let mock = Mock::start(move |_| MockReply::Sse(frames.clone())).await;
    let yaml = one_deployment(&mock.url("/v1")).replace(
        "    model: ",
        &format!("    max_stream_bytes: {cap}\n    model: "),
    );
    let s = Sluice::start(&yaml).await;
    let events = stream_events(&s).await;
    let texts = events
        .iter()
        .filter(|e| e.contains("\"content\":\"x"))
        .count();
    assert_eq!(texts, 40);
    assert_eq!(events.len(), 1 + 40 + 1, "{:?}", events.last());
    let e: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(e["error"]["code"], "upstream_error");
    assert_eq!(
        e["error"]["message"],
        format!("deployment `up`: the stream is larger than {cap} bytes")
    );
    s.stop().await;
}

/// The native routes (Messages to an `anthropic` deployment) read the deployment's own
/// `max_stream_event_bytes` and `max_response_bytes`, not the defaults: an event or an answer
/// over them is a 502 in Anthropic's shape naming the deployment.
#[tokio::test]
async fn native_routes_use_the_deployments_own_caps() {
    let event = Bytes::from(format!(
        "event: content_block_delta\ndata: {}",
        "x".repeat(4096)
    ));
    let answer = json!({"id":"msg_1","type":"message","role":"assistant","model":"m",
        "content":[{"type":"text","text":"y".repeat(4096)}],"stop_reason":"end_turn",
        "usage":{"input_tokens":1,"output_tokens":1}});
    let mock = Mock::start(move |req| {
        if req.body["stream"] == json!(true) {
            MockReply::Chunks("text/event-stream", vec![event.clone(); 2])
        } else {
            MockReply::Json(200, answer.clone())
        }
    })
    .await;
    let yaml = format!(
        "deployments:\n  - name: claude\n    provider: anthropic\n    base_url: {}\n    model: m\n    api_key: k\n    max_stream_event_bytes: 1024\n    max_response_bytes: 2048\nmodels:\n  - name: default\n    deployments: [claude]\n",
        mock.url("")
    );
    let s = Sluice::start(&yaml).await;
    for (stream, message) in [
        (
            true,
            "deployment `claude`: a stream event is larger than 1024 bytes",
        ),
        (
            false,
            "deployment `claude`: the answer is larger than 2048 bytes",
        ),
    ] {
        let r = client()
            .post(s.url("/v1/messages"))
            .json(&json!({"model":"default","max_tokens":8,"stream":stream,
                "messages":[{"role":"user","content":"hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 502, "stream {stream}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["type"], "error", "stream {stream}: {v}");
        assert_eq!(v["error"]["message"], message, "stream {stream}: {v}");
    }
    s.stop().await;
}

/// Blank lines before an event are no event: a native stream (forwarded as it came) that
/// sends more of them than `max_stream_event_bytes` before its first event, as keep-alives,
/// is forwarded whole, not cut with a 502. (They used to count in the next event's size.)
#[tokio::test]
async fn blank_lines_beyond_the_cap_before_a_native_event_are_forwarded() {
    let stream = format!(
        "{}event: message_start\ndata: {}\n\n{}event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n",
        "\n".repeat(2000),
        json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant",
            "model":"m","content":[],"stop_reason":null,"usage":{"input_tokens":1,"output_tokens":1}}}),
        "\r\n".repeat(1000),
    );
    let frames: Vec<Bytes> = stream
        .as_bytes()
        .chunks(100)
        .map(Bytes::copy_from_slice)
        .collect();
    let mock = Mock::start(move |_| MockReply::Chunks("text/event-stream", frames.clone())).await;
    let yaml = format!(
        "deployments:\n  - name: up\n    provider: anthropic\n    base_url: {}\n    model: m\n    api_key: k\n    max_stream_event_bytes: 1024\nmodels:\n  - name: default\n    deployments: [up]\n",
        mock.url("")
    );
    let s = Sluice::start(&yaml).await;
    let r = client()
        .post(s.url("/v1/messages"))
        .json(&json!({"model":"default","stream":true,"max_tokens":8,
            "messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), stream);
    s.stop().await;
}

/// One upstream kind for the per-event cap: its deployment line, the route and request a
/// client sends, and a stream whose first event is whole, valid and over 1,024 bytes.
struct OverCap {
    provider: &'static str,
    base_path: &'static str,
    route: &'static str,
    content_type: &'static str,
    body: String,
}

fn over_cap_cases() -> Vec<OverCap> {
    let pad = "x".repeat(4096);
    let anthropic = format!(
        "event: message_start\ndata: {}\n\nevent: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n",
        json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant",
            "model":"m","content":[],"stop_reason":null,"usage":{"input_tokens":1,"output_tokens":1},
            "pad":pad}})
    );
    let ollama_big = json!({"model":"m","created_at":"2025-06-01T10:00:00Z",
        "message":{"role":"assistant","content":pad},"done":false});
    let ollama = |rest: String| OverCap {
        provider: "ollama",
        base_path: "",
        route: "/v1/chat/completions",
        content_type: "application/x-ndjson",
        body: format!("{ollama_big}\n{rest}\n"),
    };
    vec![
        OverCap {
            provider: "openai",
            base_path: "/v1",
            route: "/v1/chat/completions",
            content_type: "text/event-stream",
            body: format!(
                "{}data: [DONE]\n\n",
                String::from_utf8(sse(&chunk(json!({"content": pad}), Value::Null)).to_vec())
                    .unwrap()
            ),
        },
        OverCap {
            provider: "anthropic",
            base_path: "",
            route: "/v1/chat/completions",
            content_type: "text/event-stream",
            body: anthropic.clone(),
        },
        OverCap {
            provider: "anthropic",
            base_path: "",
            route: "/v1/messages",
            content_type: "text/event-stream",
            body: anthropic,
        },
        ollama(
            json!({"model":"m","created_at":"2025-06-01T10:00:00Z",
                "message":{"role":"assistant","content":""},"done":true,"done_reason":"stop",
                "prompt_eval_count":1,"eval_count":1})
            .to_string(),
        ),
        // The same read also carries an upstream error: the event over the cap is still
        // refused, not forwarded before that error.
        ollama("{\"error\":\"boom\"}".to_string()),
    ]
}

/// An event over `max_stream_event_bytes` that arrives whole, in the same read that completes
/// it, is caught like one still arriving: on every stream parser (OpenAI SSE, Anthropic SSE
/// translated or native, Ollama NDJSON), a 502 naming the deployment and nothing of it
/// forwarded. (Counting only the bytes of reads that completed no event let it through.)
#[tokio::test]
async fn a_whole_event_over_the_cap_in_one_read_is_a_502() {
    for case in over_cap_cases() {
        let body = Bytes::from(case.body.clone());
        let ct = case.content_type;
        let mock = Mock::start(move |_| MockReply::Chunks(ct, vec![body.clone()])).await;
        let yaml = format!(
            "deployments:\n  - name: up\n    provider: {}\n    base_url: {}\n    model: m\n    api_key: k\n    max_stream_event_bytes: 1024\nmodels:\n  - name: default\n    deployments: [up]\n",
            case.provider,
            mock.url(case.base_path)
        );
        let s = Sluice::start(&yaml).await;
        let what = format!("{} via {}", case.provider, case.route);
        let r = client()
            .post(s.url(case.route))
            .json(&json!({"model":"default","stream":true,"max_tokens":8,
                "messages":[{"role":"user","content":"hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 502, "{what}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            v["error"]["message"], "deployment `up`: a stream event is larger than 1024 bytes",
            "{what}: {v}"
        );
        s.stop().await;
    }
}

/// Comment lines (keep-alives) are events of their own: many of them, more bytes in all than
/// `max_stream_event_bytes`, in reads that complete no chunk, are not one event over the cap.
#[tokio::test]
async fn keep_alives_beyond_the_cap_in_all_are_not_an_event_over_it() {
    let mut frames: Vec<Bytes> = (0..200)
        .map(|_| Bytes::from_static(b": keep-alive\n\n"))
        .collect();
    frames.push(sse(&chunk(
        json!({"role":"assistant","content":"ok"}),
        Value::Null,
    )));
    frames.push(sse(&chunk(json!({}), json!("stop"))));
    frames.push(done());
    let mock = Mock::start(move |_| MockReply::Chunks("text/event-stream", frames.clone())).await;
    let yaml = one_deployment(&mock.url("/v1")).replace(
        "    model: ",
        "    max_stream_event_bytes: 1024\n    model: ",
    );
    let s = Sluice::start(&yaml).await;
    let events = stream_events(&s).await;
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    assert!(events[0].contains("\"content\":\"ok\""), "{events:?}");
    s.stop().await;
}

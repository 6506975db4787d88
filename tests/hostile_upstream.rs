//! Hostile upstreams: an answer over the size cap and an endless SSE line are 502s naming the
//! deployment, not unbounded memory.

mod support;

use bytes::Bytes;
use serde_json::{Value, json};
use support::*;

async fn chat(s: &Sluice, stream: bool) -> (u16, Value) {
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .json(
            &json!({"model":"default","stream":stream,"messages":[{"role":"user","content":"hi"}]}),
        )
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
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
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .json(&json!({"model":"default","stream":true,"messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let events = data_events(&r.text().await.unwrap());
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

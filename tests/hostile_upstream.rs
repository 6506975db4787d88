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

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

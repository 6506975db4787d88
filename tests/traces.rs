//! Spans with GenAI attributes and correct parents, for a stream with a fallback, using the
//! SDK's in-memory exporter; `traceparent` honoured and propagated; no prompt text or key on
//! any span or log line.

mod support;

use bytes::Bytes;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::{Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex};
use support::*;
use tracing_subscriber::layer::SubscriberExt;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);
impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn attr(s: &SpanData, key: &str) -> Option<String> {
    s.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().to_string())
}

const PROMPT: &str = "my very private prompt text";
const KEY: &str = "sk-upstream-secret-123";

#[tokio::test(flavor = "current_thread")]
async fn stream_with_fallback_gives_genai_spans_with_correct_parents() {
    sluice::telemetry::install_propagator();
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let logs = Buf::default();
    let logs_writer = logs.clone();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("trace"))
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(move || logs_writer.clone()),
        );
    let _guard = tracing::subscriber::set_default(subscriber);

    let bad = Mock::start(|_| MockReply::Text(500, "down")).await;
    let good = Mock::start(|_| {
        let c = |delta: Value, fin: Value| json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"served-model","choices":[{"index":0,"delta":delta,"finish_reason":fin}]});
        MockReply::Sse(vec![
            sse(&c(json!({"role":"assistant","content":"ok"}), Value::Null)),
            sse(&c(json!({}), json!("stop"))),
            sse(&json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"served-model","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":1,"total_tokens":8}})),
            done(),
        ] as Vec<Bytes>)
    })
    .await;
    let yaml = format!(
        "deployments:\n  - name: bad\n    provider: openai\n    base_url: {}\n    model: m\n    api_key: {KEY}\n  - name: good\n    provider: openai\n    base_url: {}\n    model: m\n    api_key: {KEY}\nmodels:\n  - name: default\n    deployments: [bad, good]\n",
        bad.url("/v1"),
        good.url("/v1")
    );
    let s = Sluice::start(&yaml).await;
    let body = json!({"model":"default","stream":true,"temperature":0.5,"seed":7,"messages":[{"role":"user","content":PROMPT}]});
    let resp = client()
        .post(s.url("/v1/chat/completions"))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-sluice-deployment"], "good");
    resp.text().await.unwrap();
    s.stop().await;

    let spans = exporter.get_finished_spans().unwrap();
    let by_name = |n: &str| -> Vec<&SpanData> { spans.iter().filter(|s| s.name == n).collect() };
    let req = by_name("chat default");
    assert_eq!(
        req.len(),
        1,
        "{:?}",
        spans.iter().map(|s| s.name.to_string()).collect::<Vec<_>>()
    );
    let req = req[0];
    assert_eq!(
        req.span_context.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(req.parent_span_id.to_string(), "00f067aa0ba902b7");
    assert_eq!(attr(req, "gen_ai.operation.name").as_deref(), Some("chat"));
    assert_eq!(
        attr(req, "gen_ai.request.model").as_deref(),
        Some("default")
    );
    assert_eq!(
        attr(req, "gen_ai.request.temperature").as_deref(),
        Some("0.5")
    );
    assert_eq!(attr(req, "gen_ai.request.seed").as_deref(), Some("7"));
    assert_eq!(attr(req, "gen_ai.provider.name").as_deref(), Some("openai"));
    assert_eq!(
        attr(req, "gen_ai.response.model").as_deref(),
        Some("served-model")
    );
    assert_eq!(attr(req, "gen_ai.usage.input_tokens").as_deref(), Some("7"));
    assert_eq!(
        attr(req, "gen_ai.usage.output_tokens").as_deref(),
        Some("1")
    );
    assert_eq!(
        attr(req, "gen_ai.response.finish_reasons").as_deref(),
        Some("[\"stop\"]")
    );
    assert_eq!(attr(req, "sluice.deployment").as_deref(), Some("good"));

    let req_id = req.span_context.span_id();
    let bad_span = by_name("upstream bad");
    let good_span = by_name("upstream good");
    assert_eq!((bad_span.len(), good_span.len()), (1, 1));
    assert_eq!(bad_span[0].parent_span_id, req_id);
    assert_eq!(good_span[0].parent_span_id, req_id);
    assert_eq!(attr(bad_span[0], "error.type").as_deref(), Some("502"));
    assert_eq!(attr(good_span[0], "sluice.attempt").as_deref(), Some("2"));
    assert_eq!(by_name("route")[0].parent_span_id, req_id);
    assert_eq!(by_name("stream")[0].parent_span_id, req_id);

    // The upstream got a traceparent of the same trace, parented on its attempt span.
    let tp = good.last().headers["traceparent"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        tp,
        format!(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
            good_span[0].span_context.span_id()
        )
    );

    for sp in &spans {
        for kv in &sp.attributes {
            let v = kv.value.as_str();
            assert!(!v.contains(PROMPT) && !v.contains(KEY), "{}: {v}", kv.key);
        }
    }
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("\"request_id\""), "{logs}");
    assert!(!logs.contains(PROMPT) && !logs.contains(KEY), "{logs}");
}

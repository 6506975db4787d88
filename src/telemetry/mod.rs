//! Observability: process logs (tracing, text or JSON), OpenTelemetry traces exported by OTLP
//! over HTTP, and Prometheus metrics ([`metrics`]).
//!
//! Spans (names and attributes follow the OpenTelemetry GenAI semantic conventions,
//! <https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/>):
//! - `{operation} {model}` (e.g. `chat default`): the whole request, from arrival until the
//!   last byte (streams: until the stream ends). Attributes `gen_ai.operation.name`,
//!   `gen_ai.request.model`, `gen_ai.request.temperature`, `gen_ai.request.seed`,
//!   `gen_ai.provider.name`, `gen_ai.response.model`, `gen_ai.usage.input_tokens`,
//!   `gen_ai.usage.output_tokens`, `gen_ai.response.finish_reasons` (a JSON array as text),
//!   `sluice.deployment`, `sluice.hosting`, `sluice.openness`, `sluice.policies`,
//!   `http.response.status_code`.
//! - `route` (child): choosing candidates.
//! - `upstream {deployment}` (child, one per attempt, retries and fallbacks included):
//!   `sluice.deployment`, `gen_ai.provider.name`, `sluice.attempt`, `error.type`.
//! - `stream` (child): from the first chunk to the last.
//!
//! The W3C `traceparent` of an incoming request is honoured (the request span becomes its
//! child) and propagated to upstreams. Prompt text is never put on spans unless
//! `telemetry.capture_content: true`.
//!
//! Layer: tracing, OpenTelemetry export and Prometheus metrics; imports `api`, `store::record`,
//! `config`; never `gateway` or `http`.

pub mod line;
pub mod metrics;
pub mod progress;
pub mod timestamp;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Longest client-supplied string put on a process log line or a span, in characters.
pub const MAX_LOGGED_CHARS: usize = 128;

/// A client-supplied string (a `model`, an upstream's error message) made safe for a process
/// log line or a span attribute: control characters, quotes and backslashes escaped as Rust
/// does (`\n`, `\0`, `\u{1b}`, …), so one request cannot forge a line or write raw bytes to
/// the terminal; cut after [`MAX_LOGGED_CHARS`] characters, with `…` marking the cut. A
/// short text of printable ASCII without quotes or backslashes (a usual model name) is
/// returned as it is, borrowed.
pub fn log_safe(s: &str) -> std::borrow::Cow<'_, str> {
    let plain = |b: &u8| (0x20..0x7f).contains(b) && !matches!(b, b'"' | b'\'' | b'\\');
    if s.len() <= MAX_LOGGED_CHARS && s.as_bytes().iter().all(plain) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len().min(MAX_LOGGED_CHARS * 2));
    for (i, c) in s.chars().enumerate() {
        if i == MAX_LOGGED_CHARS {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    std::borrow::Cow::Owned(out)
}

/// Process log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Keeps the trace exporter alive; flushes it when dropped.
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("warning: trace export shutdown: {e}");
        }
    }
}

/// Sets up process logs (level from `RUST_LOG`, default `info`) and, when an OTLP endpoint is
/// configured (`otlp_endpoint`, else `OTEL_EXPORTER_OTLP_ENDPOINT` /
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), trace export by OTLP/HTTP with service name
/// `OTEL_SERVICE_NAME` (default `sluice`). Logs go to stderr, with colours only on a terminal.
///
/// The process log prints events only, never spans: a request's span carries about twenty
/// `gen_ai.*` and `sluice.*` fields for trace export, and a log layer that saw it would format
/// them into text on every request and print them before each of its lines (about a third of
/// the throughput at `info`, docs/performance.md). Each event names its request itself
/// (`request_id`). Without trace export no layer wants spans, so they are not even built.
pub fn init(format: LogFormat, otlp_endpoint: Option<&str>) -> TelemetryGuard {
    use tracing_subscriber::Layer;
    install_propagator();
    let level = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let events_only = events_only(level());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let log = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .event_format(line::Text::new(timestamp::Timestamp))
            .with_writer(LineWriter::stderr())
            .with_ansi(ansi)
            .with_filter(events_only)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_timer(timestamp::Timestamp)
            .with_writer(LineWriter::stderr())
            .with_filter(events_only)
            .boxed(),
    };
    let mut layers = vec![log];
    let provider = otlp_provider(otlp_endpoint);
    if let Some(p) = &provider {
        layers.push(
            tracing_opentelemetry::layer()
                .with_tracer(p.tracer("sluice"))
                .with_filter(level())
                .boxed(),
        );
    }
    if let Err(e) = tracing_subscriber::registry().with(layers).try_init() {
        eprintln!("warning: logging was already set up: {e}");
    }
    TelemetryGuard { provider }
}

/// The process log's writer: each line goes out in one `write(2)` on a duplicate of stderr's
/// descriptor, without `std::io::Stderr`'s process-wide lock. The request threads write a
/// line per request each, and under load they met on that lock (a futex wait and wake, a
/// context switch, for about every third request at 16 connections). A line of up to
/// `PIPE_BUF` bytes (4096) is written whole by one `write` to a pipe or a file, so such lines
/// of two threads never mix and share a read lock (no wait); a longer line (rare), which the
/// kernel may split, is written under the write lock, alone.
/// Without a duplicate descriptor (stderr closed) it writes through `std::io::stderr()`.
pub struct LineWriter {
    fd: Option<std::fs::File>,
}

/// Longest line written without [`LineWriter`]'s lock: POSIX's `PIPE_BUF` on Linux.
const WHOLE_WRITE: usize = 4096;

/// Shared by short lines, held alone by a long one.
static LINES: std::sync::RwLock<()> = std::sync::RwLock::new(());

impl LineWriter {
    /// The writer for this process's stderr.
    pub fn stderr() -> LineWriter {
        use std::os::fd::AsFd;
        let fd = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .map(std::fs::File::from);
        LineWriter { fd }
    }
}

#[cfg(test)]
impl LineWriter {
    fn to(fd: std::os::fd::OwnedFd) -> LineWriter {
        LineWriter {
            fd: Some(std::fs::File::from(fd)),
        }
    }
}

/// One event's writer, borrowed from a [`LineWriter`].
pub struct Line<'a> {
    fd: Option<&'a std::fs::File>,
}

impl std::io::Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let Some(mut fd) = self.fd else {
            return std::io::stderr().write_all(buf);
        };
        if buf.len() <= WHOLE_WRITE {
            let _shared = LINES.read().unwrap_or_else(|p| p.into_inner());
            return fd.write_all(buf);
        }
        let _alone = LINES.write().unwrap_or_else(|p| p.into_inner());
        fd.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LineWriter {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            fd: self.fd.as_ref(),
        }
    }
}

/// The process log's filter: `level`, for events only. The events-only half says it lets
/// every level through (its hint), so the pair keeps `level`'s hint of the most verbose level
/// it passes; a bare `filter_fn` has no hint, and an `and` without one would make the whole
/// subscriber's hint "everything": every `log` record of the dependencies, `trace` ones
/// included, would then be built and handed to the subscriber only to be dropped there.
fn events_only<S>(
    level: tracing_subscriber::EnvFilter,
) -> impl tracing_subscriber::layer::Filter<S> + Send + Sync + 'static
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::filter::FilterExt;
    let events = tracing_subscriber::filter::filter_fn(|m| m.is_event())
        .with_max_level_hint(tracing::level_filters::LevelFilter::TRACE);
    level.and(events)
}

/// Installs the W3C trace-context propagator (`traceparent`) process-wide.
pub fn install_propagator() {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
}

fn otlp_provider(endpoint: Option<&str>) -> Option<SdkTracerProvider> {
    let from_env = [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .any(|k| std::env::var(k).is_ok_and(|v| !v.is_empty()));
    if endpoint.is_none() && !from_env {
        return None;
    }
    use opentelemetry_otlp::WithExportConfig;
    let mut builder = opentelemetry_otlp::SpanExporter::builder().with_http();
    if let Some(e) = endpoint {
        builder = builder.with_endpoint(format!("{}/v1/traces", e.trim_end_matches('/')));
    }
    let exporter = match builder.build() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("warning: OTLP trace export disabled: {e}");
            return None;
        }
    };
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "sluice".to_string());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build(),
    )
}

/// The request span, with every attribute declared (filled in as they become known).
/// Its parent is the incoming `traceparent`, when there is one.
pub fn request_span(
    headers: &axum::http::HeaderMap,
    operation: &str,
    model: &str,
    request_id: &str,
) -> tracing::Span {
    // Field values are only computed when the span is enabled (with traces off and the log
    // level above `info`, a request pays for none of this).
    let span = tracing::info_span!(
        "gen_ai.request",
        otel.name = %format!("{operation} {}", log_safe(model)),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        sluice.request_id = %request_id,
        gen_ai.operation.name = %operation,
        gen_ai.request.model = %log_safe(model),
        gen_ai.request.temperature = tracing::field::Empty,
        gen_ai.request.seed = tracing::field::Empty,
        gen_ai.provider.name = tracing::field::Empty,
        gen_ai.response.model = tracing::field::Empty,
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
        gen_ai.response.finish_reasons = tracing::field::Empty,
        gen_ai.input.messages = tracing::field::Empty,
        sluice.deployment = tracing::field::Empty,
        sluice.hosting = tracing::field::Empty,
        sluice.openness = tracing::field::Empty,
        sluice.policies = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    if span.is_disabled() {
        return span;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|p| {
        p.extract(&opentelemetry_http::HeaderExtractor(headers))
    });
    let _ = span.set_parent(parent);
    span
}

/// The span of one upstream attempt.
pub fn attempt_span(deployment: &str, provider: &str, attempt: u32) -> tracing::Span {
    tracing::info_span!(
        "upstream",
        otel.name = %format!("upstream {deployment}"),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        sluice.deployment = %deployment,
        gen_ai.provider.name = %provider,
        sluice.attempt = attempt,
        error.type = tracing::field::Empty,
    )
}

/// W3C trace-context headers (`traceparent`, `tracestate`) for the current span, to send
/// upstream. Empty when tracing is off.
pub fn trace_headers() -> http::header::HeaderMap {
    let mut headers = http::header::HeaderMap::new();
    let current = tracing::Span::current();
    if current.is_disabled() {
        return headers;
    }
    let cx = current.context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut opentelemetry_http::HeaderInjector(&mut headers))
    });
    headers
}

/// Records the request's request-side attributes (`gen_ai.request.temperature`, `seed`, and
/// with `capture_content` the input messages as JSON) on `span`.
pub fn record_request(span: &tracing::Span, body: &crate::api::RequestBody, capture_content: bool) {
    if span.is_disabled() {
        return;
    }
    if let crate::api::RequestBody::Chat(r) = body {
        if let Some(t) = r.temperature {
            span.record("gen_ai.request.temperature", t);
        }
        if let Some(s) = r.seed {
            span.record("gen_ai.request.seed", s);
        }
        if capture_content && let Ok(m) = serde_json::to_string(&r.messages) {
            span.record("gen_ai.input.messages", m.as_str());
        }
    }
}

/// Records the outcome of a finished request on its span.
pub fn record_outcome(span: &tracing::Span, r: &crate::store::record::RequestRecord) {
    if span.is_disabled() {
        return;
    }
    if let Some(p) = r.provider {
        span.record("gen_ai.provider.name", p);
    }
    if let Some(d) = &r.deployment {
        span.record("sluice.deployment", d.as_str());
    }
    if let Some(m) = &r.response.model {
        span.record("gen_ai.response.model", m.as_str());
    }
    if let Some(h) = r.hosting {
        span.record("sluice.hosting", h);
    }
    if let Some(o) = r.openness {
        span.record("sluice.openness", o);
    }
    if !r.policies.is_empty() {
        span.record("sluice.policies", r.policies.join(",").as_str());
    }
    if r.status == 200 {
        span.record("gen_ai.usage.input_tokens", r.usage.prompt_tokens);
        span.record("gen_ai.usage.output_tokens", r.usage.completion_tokens);
    }
    if let Some(f) = &r.response.finish_reason {
        let reasons = serde_json::json!([f]).to_string();
        span.record("gen_ai.response.finish_reasons", reasons.as_str());
    }
    span.record("http.response.status_code", r.status);
    span.record(
        "otel.status_code",
        if r.status < 400 { "OK" } else { "ERROR" },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines from threads writing at once reach the pipe whole (the short ones without a
    /// lock, the long ones under the writer's own), however the writes meet.
    #[test]
    fn lines_of_threads_writing_at_once_stay_whole() {
        use std::io::{BufRead, Write};
        use tracing_subscriber::fmt::MakeWriter;
        let (reader, writer) = std::io::pipe().unwrap();
        let out = std::sync::Arc::new(LineWriter::to(writer.into()));
        let lengths = [300usize, 4095, 9000];
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let out = out.clone();
                std::thread::spawn(move || {
                    for i in 0..300 {
                        let n = lengths[i % lengths.len()];
                        let mut line = vec![b'a' + t; n];
                        line.push(b'\n');
                        out.make_writer().write_all(&line).unwrap();
                    }
                })
            })
            .collect();
        let read = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in std::io::BufReader::new(reader).lines() {
                lines.push(line.unwrap());
            }
            lines
        });
        for t in threads {
            t.join().unwrap();
        }
        drop(out);
        let lines = read.join().unwrap();
        assert_eq!(lines.len(), 1200);
        for line in &lines {
            let first = line.as_bytes()[0];
            assert!(line.bytes().all(|b| b == first), "a mixed line");
            assert!(lengths.contains(&line.len()), "{}", line.len());
        }
    }

    #[test]
    fn the_process_log_filter_keeps_its_levels_hint() {
        use tracing_subscriber::layer::Filter;
        type Reg = tracing_subscriber::Registry;
        for (directive, hint) in [
            ("info", tracing::level_filters::LevelFilter::INFO),
            ("warn", tracing::level_filters::LevelFilter::WARN),
            (
                "sluice=debug,info",
                tracing::level_filters::LevelFilter::DEBUG,
            ),
        ] {
            let f = events_only::<Reg>(tracing_subscriber::EnvFilter::new(directive));
            assert_eq!(Filter::<Reg>::max_level_hint(&f), Some(hint), "{directive}");
        }
    }

    #[test]
    fn client_strings_are_escaped_and_capped() {
        assert_eq!(log_safe("gpt-4o"), "gpt-4o");
        assert!(matches!(log_safe("gpt-4o"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(log_safe("it's \"q\" \\"), "it\\'s \\\"q\\\" \\\\");
        assert_eq!(log_safe("a\nb\0c\u{1b}[31m"), "a\\nb\\0c\\u{1b}[31m");
        assert_eq!(log_safe("modèle"), "modèle");
        let long = "x".repeat(1000);
        let safe = log_safe(&long);
        assert_eq!(safe.chars().count(), MAX_LOGGED_CHARS + 1);
        assert!(safe.ends_with('…'));
        let exact = "y".repeat(MAX_LOGGED_CHARS);
        assert_eq!(log_safe(&exact), exact);
    }

    proptest::proptest! {
        /// Any text is written as each of its characters' `escape_debug`, cut after
        /// `MAX_LOGGED_CHARS` characters (the borrowed fast path included).
        #[test]
        fn any_text_is_escaped_char_by_char(
            s in proptest::prop_oneof!["(\\PC|[\x00-\x1f\"'\\\\\u{7f}]){0,300}", "[ -~]{0,200}"],
        ) {
            let mut want = String::new();
            for (i, c) in s.chars().enumerate() {
                if i == MAX_LOGGED_CHARS {
                    want.push('…');
                    break;
                }
                want.extend(c.escape_debug());
            }
            proptest::prop_assert_eq!(log_safe(&s), want);
        }
    }
}

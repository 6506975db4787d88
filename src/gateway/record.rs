//! The record of one request, made exactly once per accepted request (answered, failed,
//! rejected, or cut off by the client), and handed to the [`Recorder`].

pub use crate::store::record::RequestRecord;
use crate::store::writer::LogSender;
use crate::telemetry::metrics::Metrics;
use futures_util::future::BoxFuture;
use std::sync::Arc;

/// Where finished requests go: the metrics, one `info` line per request (never prompt text
/// or secrets), and — when the request log is on — a row queued for the store
/// ([`crate::store::writer`]).
#[derive(Debug, Clone)]
pub struct Recorder {
    metrics: Arc<Metrics>,
    log: Option<LogSender>,
    spend: Arc<crate::access::keys::Spend>,
}

impl Recorder {
    /// A recorder feeding `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Recorder {
            metrics,
            log: None,
            spend: Arc::default(),
        }
    }

    /// This recorder, also queueing every record for the request log.
    pub fn with_log(mut self, log: LogSender) -> Self {
        self.log = Some(log);
        self
    }

    /// The metrics this recorder feeds.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// A shared handle on the metrics (for the log writer).
    pub fn metrics_arc(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The request log's queue, when the log is on.
    pub fn log(&self) -> Option<&LogSender> {
        self.log.as_ref()
    }

    /// Takes one finished request; waits while the log's queue is full (backpressure).
    pub async fn record(&self, r: RequestRecord) {
        if let Some(wait) = self.record_or_wait(r) {
            wait.await;
        }
    }

    /// [`Recorder::record`] as a queue attempt: `None` when the row was taken at once, else
    /// the boxed wait for room in the log's queue (see [`LogSender::send_or_wait`]).
    pub fn record_or_wait(&self, r: RequestRecord) -> Option<BoxFuture<'_, ()>> {
        self.observe(&r);
        self.log.as_ref()?.send_or_wait(r)
    }

    /// Takes one finished request from a synchronous context (a stream's end): never blocks;
    /// when the log's queue is full a background task waits for room.
    pub fn record_now(&self, r: RequestRecord) {
        self.observe(&r);
        if let Some(log) = &self.log {
            log.send_now(r);
        }
    }

    /// Waits until every record taken so far is written (a no-op without a log).
    pub async fn flush(&self) {
        if let Some(log) = &self.log {
            log.flush().await;
        }
    }

    /// Spend per key (for budgets), fed by every recorded request.
    pub fn spend(&self) -> &Arc<crate::access::keys::Spend> {
        &self.spend
    }

    fn observe(&self, r: &RequestRecord) {
        self.metrics.observe(r);
        if let (Some(key), Some(cost)) = (&r.api_key_id, r.cost_usd) {
            let remote = r.hosting.as_deref() == Some("remote");
            self.spend.add(key, r.started_ms as i64, cost, remote);
        }
        tracing::info!(
            request_id = %r.id,
            model = %crate::telemetry::log_safe(&r.requested_model),
            deployment = r.deployment.as_deref().unwrap_or("-"),
            status = r.status,
            ms = r.duration_ms,
            prompt_tokens = r.usage.prompt_tokens,
            completion_tokens = r.usage.completion_tokens,
            "request"
        );
    }
}

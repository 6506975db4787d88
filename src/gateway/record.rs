//! The record of one request, made exactly once per accepted request (answered, failed,
//! rejected, or cut off by the client), and handed to the [`Recorder`].

use super::{Gateway, RequestContext};
use crate::api::summary::ResponseSummary;
use crate::api::{ApiError, RequestBody, Usage};
pub use crate::store::record::RequestRecord;
use crate::store::writer::LogSender;
use crate::telemetry;
use crate::telemetry::metrics::Metrics;
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

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
    pub async fn record(&self, r: impl Into<Box<RequestRecord>>) {
        if let Some(wait) = self.record_or_wait(r) {
            wait.await;
        }
    }

    /// [`Recorder::record`] as a queue attempt: `None` when the row was taken at once, else
    /// the boxed wait for room in the log's queue (see [`LogSender::send_or_wait`]).
    pub fn record_or_wait(&self, r: impl Into<Box<RequestRecord>>) -> Option<BoxFuture<'_, ()>> {
        let r = r.into();
        self.observe(&r);
        self.log.as_ref()?.send_or_wait(r)
    }

    /// Takes one finished request from a synchronous context (a stream's end): never blocks;
    /// when the log's queue is full a background task waits for room.
    pub fn record_now(&self, r: impl Into<Box<RequestRecord>>) {
        let r = r.into();
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
            let remote = r.hosting == Some("remote");
            let chain =
                std::iter::once(key.as_str()).chain(r.api_key_creators.iter().map(String::as_str));
            self.spend.add(chain, r.started_ms as i64, cost, remote);
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

/// Building, finishing and handing over a request's record.
impl Gateway {
    /// Records a request refused before routing (auth, permission, limits, bad input), so
    /// every answered request has a record.
    pub async fn record_rejection(
        &self,
        ctx: &RequestContext,
        body: Option<&RequestBody>,
        e: &ApiError,
    ) {
        let mut r = match body {
            Some(b) => self.base_record(ctx, b),
            None => {
                let placeholder = RequestBody::Generic(crate::api::GenericRequest {
                    model: String::new(),
                    stream: None,
                    stream_options: None,
                    extra: Default::default(),
                });
                self.base_record(ctx, &placeholder)
            }
        };
        r.status = e.status.as_u16();
        r.error_type = Some(e.body.kind.clone());
        r.error_message = Some(match body {
            Some(_) => e.body.message.clone(),
            // A body that could not be read: no policy could be decided for it, so the
            // personal data its error quotes (serde names the bad value) is kept out.
            None => crate::store::redact::redact_for_log(self.policy().detector(), &e.body.message),
        });
        if let Some(wait) = self.finish_record(ctx, r) {
            wait.await;
        }
    }

    pub(super) fn base_record(
        &self,
        ctx: &RequestContext,
        body: &RequestBody,
    ) -> Box<RequestRecord> {
        // Boxed once here: the record moves through the handler and into the log's queue
        // as a pointer (it is ~900 bytes).
        Box::new(RequestRecord {
            id: ctx.id.clone(),
            started_at: ctx.started_at,
            started_ms: ctx
                .started_at
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            duration_ms: 0,
            ttft_ms: None,
            endpoint: ctx.dialect.unwrap_or(ctx.endpoint.operation()),
            requested_model: body.model().to_string(),
            deployment: None,
            provider: None,
            status: 0,
            error_type: None,
            error_message: None,
            stream: body.is_stream(),
            response: ResponseSummary::default(),
            whole_response_hash: None,
            usage: Usage::default(),
            usage_estimated: false,
            attempts: 0,
            upstream_us: None,
            overhead_us: None,
            end_user: self.header_user(ctx).or_else(|| body.user()),
            api_key_id: ctx.principal.key_id.clone(),
            api_key_creators: ctx.principal.creators.clone(),
            log_mode: ctx.principal.spec.log.clone(),
            client_ip: ctx.client_ip.clone(),
            hosting: None,
            openness: None,
            policies: Vec::new(),
            pii_kinds: Vec::new(),
            cost_usd: None,
            sampling: None,
            request_hash: None,
            deterministic: false,
            request_body: None,
            egress_blocked: None,
            route: None,
            dropped_tools: Vec::new(),
        })
    }

    /// Finishes `r` and hands it to the recorder: `None` when it was taken at once, else the
    /// boxed wait for room in the log's queue (see [`Recorder::record_or_wait`]).
    pub(super) fn finish_record(
        &self,
        ctx: &RequestContext,
        mut r: Box<RequestRecord>,
    ) -> Option<futures_util::future::BoxFuture<'_, ()>> {
        r.duration_ms = ctx.started.elapsed().as_millis() as u64;
        telemetry::record_outcome(&ctx.span, &r);
        self.recorder.record_or_wait(r)
    }

    /// The request's JSON text for the record's `request_body`, when the effective logging
    /// mode of `r` stores text (else `None`).
    pub(super) fn request_text(
        &self,
        r: &RequestRecord,
        body: &RequestBody,
    ) -> Option<Box<serde_json::value::RawValue>> {
        self.recorder.log()?;
        let mode = crate::store::row::effective_mode(r, self.config.log.prompts);
        if mode.keeps_text() {
            match body {
                RequestBody::Chat(c) => serde_json::value::to_raw_value(c).ok(),
                RequestBody::Generic(g) => serde_json::value::to_raw_value(g).ok(),
                // The chat translation (what `sluice replay` re-sends), else the native body.
                RequestBody::Native(n) => match &n.bridged {
                    Ok(c) => serde_json::value::to_raw_value(c).ok(),
                    Err(_) => serde_json::value::to_raw_value(&n.body).ok(),
                },
            }
        } else {
            None
        }
    }

    /// The end user named by the `log.user_header` request header, when configured and sent.
    pub(super) fn header_user(&self, ctx: &RequestContext) -> Option<String> {
        let name = self.config.log.user_header.as_deref()?;
        let v = ctx.headers.get(name)?.to_str().ok()?.trim();
        (!v.is_empty()).then(|| v.to_string())
    }
}

//! Prometheus metrics, one registry per gateway (no global state), rendered at `GET /metrics`
//! in the OpenMetrics text format (<https://prometheus.io/docs/specs/om/open_metrics_spec/>),
//! which Prometheus scrapes natively.
//!
//! Names are prefixed `sluice_`; counters end in `_total`, durations are histograms in
//! seconds (`_seconds`). Labels: `model` (client-facing name), `deployment`, `status` (HTTP
//! status sent), `hosting`, `direction` (`input`/`output`), `policy`, `kind`.
//!
//! Label values come only from the config (model, deployment and policy names) or from
//! Sluice itself (status, hosting, codes): a `model` or `deployment` the config does not name
//! is counted as `unknown`, so a client cannot grow the label sets. Requests refused before
//! authentication are one unlabelled counter, `sluice_unauthenticated_total`.

use crate::store::record::RequestRecord;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

mod route;

/// The label value for a model or deployment name the config does not know.
pub const UNKNOWN: &str = "unknown";

/// A label value: a name Sluice knows in advance (`unknown`, `input`, `local`), a name from
/// the config shared from the interned set (no copy per request), or a status code.
/// Equal texts are equal values whichever variant holds them.
#[derive(Clone, Debug)]
enum LabelValue {
    Static(&'static str),
    Shared(Arc<str>),
    Code(u16),
}

impl LabelValue {
    fn text(&self) -> Option<&str> {
        match self {
            LabelValue::Static(s) => Some(s),
            LabelValue::Shared(s) => Some(s),
            LabelValue::Code(_) => None,
        }
    }
}

impl PartialEq for LabelValue {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (LabelValue::Code(a), LabelValue::Code(b)) => a == b,
            (a, b) => a.text().is_some() && a.text() == b.text(),
        }
    }
}

impl Eq for LabelValue {}

impl Hash for LabelValue {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            LabelValue::Code(c) => c.hash(state),
            other => other.text().hash(state),
        }
    }
}

impl EncodeLabelValue for LabelValue {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        match self {
            LabelValue::Static(s) => EncodeLabelValue::encode(s, encoder),
            LabelValue::Shared(s) => EncodeLabelValue::encode(&&**s, encoder),
            LabelValue::Code(c) => EncodeLabelValue::encode(c, encoder),
        }
    }
}

/// `N` labels: fixed-size, so looking a series up allocates nothing.
type Labels<const N: usize> = [(&'static str, LabelValue); N];
type CounterFamily<const N: usize> = Family<Labels<N>, Counter>;
type HistogramFamily<const N: usize> = Family<Labels<N>, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs … ~105 s, doubling.
    Histogram::new(exponential_buckets(0.0001, 2.0, 21))
}

fn overhead_histogram() -> Histogram {
    // 10 µs … ~160 ms, doubling: Sluice's own time is expected to be well under 1 ms.
    Histogram::new(exponential_buckets(0.00001, 2.0, 15))
}

/// All of Sluice's metrics.
pub struct Metrics {
    registry: Registry,
    requests: CounterFamily<3>,
    request_duration: HistogramFamily<2>,
    ttft: HistogramFamily<2>,
    upstream_duration: HistogramFamily<1>,
    overhead: HistogramFamily<1>,
    tokens: CounterFamily<3>,
    cost: Family<Labels<1>, Counter<f64, std::sync::atomic::AtomicU64>>,
    attempts_extra: CounterFamily<1>,
    policy_decisions: CounterFamily<1>,
    pii_detections: CounterFamily<1>,
    rate_limited: CounterFamily<1>,
    cooldowns: CounterFamily<1>,
    egress_blocked: CounterFamily<1>,
    unauthenticated: Counter,
    client_disconnects: Counter,
    /// The series of answered requests, per route (see [`route::RouteSeries`]).
    routes: route::Routes,
    /// The config's names, interned once (label values share them).
    models: HashSet<Arc<str>>,
    deployments: HashSet<Arc<str>>,
    /// Streams being sent right now.
    pub open_streams: Gauge,
    /// Rows waiting in the request-log queue.
    pub log_queue_depth: Gauge,
    /// Time to write one batch of log rows, seconds.
    pub log_write_seconds: Histogram,
    /// Time requests waited for room in the log queue (backpressure), seconds.
    pub log_wait_seconds: Histogram,
    /// Rows the store refused (after retries) and the writer kept in the spill file.
    pub log_rows_spilled: Counter,
    /// Rows lost because neither the store nor the spill file took them.
    pub log_rows_dropped: Counter,
    /// 1 while the log writer stores rows, 0 while it spills or fails.
    pub log_writer_healthy: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric in a new registry, knowing no model or deployment names (every
    /// such label is `unknown`; see [`Metrics::with_names`]).
    pub fn new() -> Self {
        Self::with_names(Vec::new(), Vec::new())
    }

    /// Registers every metric in a new registry; `models` (client-facing names: models and
    /// deployments) and `deployments` are the only values the `model` and `deployment` labels
    /// take, anything else is `unknown`.
    pub fn with_names(models: Vec<String>, deployments: Vec<String>) -> Self {
        let mut registry = Registry::with_prefix("sluice");
        let requests = CounterFamily::default();
        registry.register(
            "requests",
            "Requests answered, by model, deployment and HTTP status",
            requests.clone(),
        );
        let request_duration =
            HistogramFamily::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "request_duration_seconds",
            "Whole request time, from arrival to last byte",
            request_duration.clone(),
        );
        let ttft = HistogramFamily::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "time_to_first_token_seconds",
            "Streams: time from arrival to the first chunk sent",
            ttft.clone(),
        );
        let upstream_duration =
            HistogramFamily::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "upstream_duration_seconds",
            "Time spent waiting on the upstream (non-stream: until the whole body; stream: until the first chunk)",
            upstream_duration.clone(),
        );
        let overhead = HistogramFamily::new_with_constructor(overhead_histogram as fn() -> _);
        registry.register(
            "gateway_overhead_seconds",
            "Time Sluice itself added: request time (streams: time to first byte) minus the upstream wait",
            overhead.clone(),
        );
        let tokens = CounterFamily::default();
        registry.register(
            "tokens",
            "Tokens by deployment, hosting and direction (input = prompt, output = completion)",
            tokens.clone(),
        );
        let cost = Family::<Labels<1>, Counter<f64, AtomicU64>>::default();
        registry.register("cost_usd", "Cost in USD by deployment", cost.clone());
        let attempts_extra = CounterFamily::default();
        registry.register(
            "retries",
            "Upstream attempts beyond the first (retries and fallbacks), by model",
            attempts_extra.clone(),
        );
        let policy_decisions = CounterFamily::default();
        registry.register(
            "policy_decisions",
            "Requests a policy matched, by policy",
            policy_decisions.clone(),
        );
        let pii_detections = CounterFamily::default();
        registry.register(
            "pii_detections",
            "Requests with personal data found, by kind",
            pii_detections.clone(),
        );
        let rate_limited = CounterFamily::default();
        registry.register(
            "rate_limited",
            "Requests refused with 429 by a rate limit or budget, by code",
            rate_limited.clone(),
        );
        let cooldowns = CounterFamily::default();
        registry.register(
            "cooldowns",
            "Times a deployment was put into cooldown",
            cooldowns.clone(),
        );
        let egress_blocked = CounterFamily::default();
        registry.register(
            "egress_blocked",
            "Upstream calls the egress guard stopped (personal data in a body for a non-local deployment), by deployment",
            egress_blocked.clone(),
        );
        let unauthenticated = Counter::default();
        registry.register(
            "unauthenticated",
            "Requests refused before authentication (401); no labels, no row",
            unauthenticated.clone(),
        );
        let client_disconnects = Counter::default();
        registry.register(
            "client_disconnects",
            "Requests whose client went away before the answer was ready (recorded as 499)",
            client_disconnects.clone(),
        );
        let open_streams = Gauge::default();
        registry.register(
            "open_streams",
            "Streams being sent now",
            open_streams.clone(),
        );
        let log_queue_depth = Gauge::default();
        registry.register(
            "log_queue_depth",
            "Rows waiting to be written to the request log",
            log_queue_depth.clone(),
        );
        let log_write_seconds = latency_histogram();
        registry.register(
            "log_write_seconds",
            "Time to write one batch of request-log rows",
            log_write_seconds.clone(),
        );
        let log_wait_seconds = latency_histogram();
        registry.register(
            "log_wait_seconds",
            "Time a request waited for room in the request-log queue",
            log_wait_seconds.clone(),
        );
        let log_rows_spilled = Counter::default();
        registry.register(
            "log_rows_spilled",
            "Request-log rows kept in the local spill file because the store refused them",
            log_rows_spilled.clone(),
        );
        let log_rows_dropped = Counter::default();
        registry.register(
            "log_rows_dropped",
            "Request-log rows lost because neither the store nor the spill file took them",
            log_rows_dropped.clone(),
        );
        let log_writer_healthy = Gauge::default();
        log_writer_healthy.set(1);
        registry.register(
            "log_writer_healthy",
            "1 while the request-log writer stores rows, 0 while it spills or fails",
            log_writer_healthy.clone(),
        );
        Metrics {
            registry,
            requests,
            request_duration,
            ttft,
            upstream_duration,
            overhead,
            tokens,
            cost,
            attempts_extra,
            policy_decisions,
            pii_detections,
            rate_limited,
            cooldowns,
            egress_blocked,
            unauthenticated,
            client_disconnects,
            routes: Default::default(),
            models: models.into_iter().map(Arc::from).collect(),
            deployments: deployments.into_iter().map(Arc::from).collect(),
            open_streams,
            log_queue_depth,
            log_write_seconds,
            log_wait_seconds,
            log_rows_spilled,
            log_rows_dropped,
            log_writer_healthy,
        }
    }

    /// Counts one finished request. Label values are shared or static: no label is copied.
    pub fn observe(&self, r: &RequestRecord) {
        let deployment = match r.deployment.as_deref() {
            None => LabelValue::Static("-"),
            Some(d) => label(&self.deployments, d),
        };
        let model = label(&self.models, &r.requested_model);
        let hosting = match r.hosting {
            None => LabelValue::Static("-"),
            Some("local") => LabelValue::Static("local"),
            Some("remote") => LabelValue::Static("remote"),
            Some(other) => LabelValue::Shared(Arc::from(other)),
        };
        if !self.observe_answered(r, &model, &deployment, &hosting) {
            self.observe_series(r, &model, &deployment, &hosting);
        }
        self.observe_rest(r, model, deployment);
    }

    /// The part of [`Metrics::observe`] that [`route::RouteSeries`] holds, from the families.
    fn observe_series(
        &self,
        r: &RequestRecord,
        model: &LabelValue,
        deployment: &LabelValue,
        hosting: &LabelValue,
    ) {
        self.requests
            .get_or_create(&[
                ("model", model.clone()),
                ("deployment", deployment.clone()),
                ("status", LabelValue::Code(r.status)),
            ])
            .inc();
        let md = [("model", model.clone()), ("deployment", deployment.clone())];
        self.request_duration
            .get_or_create(&md)
            .observe(r.duration_ms as f64 / 1000.0);
        if let Some(t) = r.ttft_ms {
            self.ttft.get_or_create(&md).observe(t as f64 / 1000.0);
        }
        let by_deployment = [("deployment", deployment.clone())];
        if let Some(up_us) = r.upstream_us {
            self.upstream_duration
                .get_or_create(&by_deployment)
                .observe(up_us as f64 / 1e6);
        }
        if let Some(over_us) = r.overhead_us {
            self.overhead
                .get_or_create(&by_deployment)
                .observe(over_us as f64 / 1e6);
        }
        for (direction, n) in [
            ("input", r.usage.prompt_tokens),
            ("output", r.usage.completion_tokens),
        ] {
            if n > 0 {
                self.tokens
                    .get_or_create(&[
                        ("deployment", deployment.clone()),
                        ("hosting", hosting.clone()),
                        ("direction", LabelValue::Static(direction)),
                    ])
                    .inc_by(n);
            }
        }
    }

    /// The rest of [`Metrics::observe`]: cost, retries, policies, PII kinds, egress, 429s.
    fn observe_rest(&self, r: &RequestRecord, model: LabelValue, deployment: LabelValue) {
        let by_deployment = [("deployment", deployment)];
        if let Some(c) = r.cost_usd.filter(|c| *c > 0.0) {
            self.cost.get_or_create(&by_deployment).inc_by(c);
        }
        if r.attempts > 1 {
            self.attempts_extra
                .get_or_create(&[("model", model)])
                .inc_by(u64::from(r.attempts - 1));
        }
        for p in &r.policies {
            self.policy_decisions
                .get_or_create(&[("policy", LabelValue::Shared(Arc::from(p.as_str())))])
                .inc();
        }
        for k in &r.pii_kinds {
            self.pii_detections
                .get_or_create(&[("kind", LabelValue::Shared(Arc::from(k.as_str())))])
                .inc();
        }
        if r.egress_blocked.is_some() {
            self.egress_blocked.get_or_create(&by_deployment).inc();
        }
        if r.status == 429 {
            let code = match r.error_type.as_deref() {
                Some(c) => LabelValue::Shared(Arc::from(c)),
                None => LabelValue::Static("-"),
            };
            self.rate_limited.get_or_create(&[("code", code)]).inc();
        }
    }

    /// Counts a deployment going into cooldown.
    pub fn cooldown(&self, deployment: &str) {
        self.cooldowns
            .get_or_create(&[("deployment", label(&self.deployments, deployment))])
            .inc();
    }

    /// Counts one client that went away before its answer was ready.
    pub fn client_disconnected(&self) {
        self.client_disconnects.inc();
    }

    /// Counts one request refused by authentication (401), before any body was read.
    pub fn unauthenticated(&self) {
        self.unauthenticated.inc();
    }

    /// The metrics in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// `name` (shared from the interned set) when `known` holds it, else [`UNKNOWN`].
fn label(known: &HashSet<Arc<str>>, name: &str) -> LabelValue {
    match known.get(name) {
        Some(n) => LabelValue::Shared(n.clone()),
        None => LabelValue::Static(UNKNOWN),
    }
}

#[cfg(test)]
mod tests;

//! The series of requests answered whole, kept per route (see [`RouteSeries`]).

use super::{LabelValue, Metrics};
use crate::store::record::RequestRecord;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use rustc_hash::FxBuildHasher;
use std::collections::HashMap;

/// The kept series by route.
pub(super) type Routes = std::sync::RwLock<HashMap<RouteKey, RouteSeries, FxBuildHasher>>;

/// A route's identity among the label values: the addresses of its model, deployment and
/// hosting texts, which are interned or static for the life of [`Metrics`]. `None` for a
/// value made per request (a hosting the config does not name).
pub(super) type RouteKey = [usize; 3];

fn route_key(
    model: &LabelValue,
    deployment: &LabelValue,
    hosting: &LabelValue,
) -> Option<RouteKey> {
    let at = |v: &LabelValue| match v {
        LabelValue::Static(s) => Some(s.as_ptr() as usize),
        LabelValue::Shared(s) => Some(s.as_ptr() as usize),
        LabelValue::Code(_) => None,
    };
    match hosting {
        LabelValue::Shared(_) => None,
        _ => Some([at(model)?, at(deployment)?, at(hosting)?]),
    }
}

/// The series a request answered whole updates, taken from their families once per route
/// (model, deployment, hosting) and kept: such a request then finds one key instead of
/// hashing its labels into six families. Made on the first such request, so no series
/// appears in `/metrics` before it has counted something.
pub(super) struct RouteSeries {
    /// `requests{model, deployment, status="200"}`.
    answered: Counter,
    request_duration: Histogram,
    upstream_duration: Histogram,
    overhead: Histogram,
    input_tokens: Counter,
    output_tokens: Counter,
}

impl RouteSeries {
    fn of(m: &Metrics, model: &LabelValue, deployment: &LabelValue, hosting: &LabelValue) -> Self {
        let md = [("model", model.clone()), ("deployment", deployment.clone())];
        let by_deployment = [("deployment", deployment.clone())];
        let tokens = |direction| {
            m.tokens.get_or_create_owned(&[
                ("deployment", deployment.clone()),
                ("hosting", hosting.clone()),
                ("direction", LabelValue::Static(direction)),
            ])
        };
        RouteSeries {
            answered: m.requests.get_or_create_owned(&[
                ("model", model.clone()),
                ("deployment", deployment.clone()),
                ("status", LabelValue::Code(200)),
            ]),
            request_duration: m.request_duration.get_or_create_owned(&md),
            upstream_duration: m.upstream_duration.get_or_create_owned(&by_deployment),
            overhead: m.overhead.get_or_create_owned(&by_deployment),
            input_tokens: tokens("input"),
            output_tokens: tokens("output"),
        }
    }

    /// Counts `r`, answered whole after `up_us` µs upstream and `over_us` µs of Sluice's own.
    fn count(&self, r: &RequestRecord, up_us: u64, over_us: u64) {
        self.answered.inc();
        self.request_duration.observe(r.duration_ms as f64 / 1000.0);
        self.upstream_duration.observe(up_us as f64 / 1e6);
        self.overhead.observe(over_us as f64 / 1e6);
        self.input_tokens.inc_by(r.usage.prompt_tokens);
        self.output_tokens.inc_by(r.usage.completion_tokens);
    }
}

impl Metrics {
    /// [`Metrics::observe`] for a request answered whole (status 200, upstream and overhead
    /// times, tokens both ways), through its route's [`RouteSeries`]. Returns `false`, having
    /// counted nothing, for any other request.
    pub(super) fn observe_answered(
        &self,
        r: &RequestRecord,
        model: &LabelValue,
        deployment: &LabelValue,
        hosting: &LabelValue,
    ) -> bool {
        let (Some(up_us), Some(over_us)) = (r.upstream_us, r.overhead_us) else {
            return false;
        };
        let (Some(key), true) = (
            route_key(model, deployment, hosting),
            r.status == 200 && r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0,
        ) else {
            return false;
        };
        // Counted under the read lock: no copy of the series per request.
        let counted = self
            .routes
            .read()
            .ok()
            .and_then(|kept| kept.get(&key).map(|s| s.count(r, up_us, over_us)))
            .is_some();
        if !counted {
            let series = RouteSeries::of(self, model, deployment, hosting);
            series.count(r, up_us, over_us);
            if let Ok(mut kept) = self.routes.write() {
                // Another request of the route may have kept it meanwhile: the same series.
                kept.entry(key).or_insert(series);
            }
        }
        if let Some(t) = r.ttft_ms {
            let md = [("model", model.clone()), ("deployment", deployment.clone())];
            self.ttft.get_or_create(&md).observe(t as f64 / 1000.0);
        }
        true
    }
}

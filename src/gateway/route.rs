//! Routing: candidates → filter by the decision's constraints → order by `prefer` → attempts
//! with per-deployment retries, model fallbacks and cooldowns.
//!
//! - Candidates: the model's deployments (or the deployment named directly), then the
//!   deployments of each model in its `fallbacks` (recursively, each deployment once).
//! - Every candidate is checked against every constraint; an excluded one keeps its reasons.
//!   Fallbacks are checked against the same constraints: a fallback never crosses a policy.
//! - Order: within the primary group and within each fallback group, by `prefer`; ties are
//!   broken by a `weight`-ed random draw.
//! - Attempts (in [`super::attempt`]): a connection error, timeout, 429 or 5xx before the first byte reached the
//!   client retries the same deployment up to its `retries`, then puts it into cooldown
//!   (`routing.cooldown_ms`, or the upstream's `Retry-After` on 429) and moves to the next.
//!   A model with a single eligible deployment has nothing to route around: no cooldown.
//!   Deployments in cooldown or at `max_concurrency` are skipped.

use crate::api::ApiError;
use crate::config::Config;
use crate::config::policy::Prefer;
use crate::policy::{Decision, DeploymentAttrs, Engine};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One candidate deployment and whether it may serve the request.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// Resolved attributes (hosting, openness, freedoms, price, …), shared with the engine.
    pub attrs: Arc<DeploymentAttrs>,
    /// The model name it is a candidate through (the requested one, or a fallback).
    pub via: String,
    /// Why it may not serve the request; empty = eligible.
    pub excluded: Vec<String>,
}

impl Candidate {
    /// Whether every constraint holds.
    pub fn eligible(&self) -> bool {
        self.excluded.is_empty()
    }
}

/// All candidates and the order the eligible ones will be tried in.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The requested model name.
    pub model: String,
    /// Every candidate, primary first, then fallbacks.
    pub candidates: Vec<Candidate>,
    /// Eligible deployment names, in try order.
    pub order: Vec<String>,
    /// Groups of eligible deployments that tie under `prefer`: their order is drawn at random
    /// by `weight` for each request.
    pub ties: Vec<Vec<String>>,
}

impl Plan {
    /// The client's error when no candidate is eligible: 403 `policy_error` /
    /// `no_eligible_deployment`, the message naming each candidate and the constraints that
    /// excluded it. `None` when some deployment may serve the request.
    pub fn rejection(&self) -> Option<ApiError> {
        self.order
            .is_empty()
            .then(|| no_eligible(&self.model, &self.candidates))
    }

    /// The candidate of deployment `name`.
    pub fn candidate(&self, name: &str) -> Option<&Candidate> {
        self.candidates.iter().find(|c| c.attrs.name == name)
    }
}

/// The candidates of `model` and its fallbacks, checked and ordered. When none is eligible the
/// plan's `order` is empty and [`Plan::rejection`] gives the client's error.
///
/// Errors: 404 `model_not_found` when `model` is neither a model nor a deployment.
pub fn plan(
    config: &Config,
    engine: &Engine,
    decision: &Decision,
    model: &str,
    state: Option<&RouteState>,
) -> Result<Plan, ApiError> {
    let groups = candidate_groups(config, model)?;
    let mut candidates = Vec::new();
    let mut order = Vec::new();
    let mut ties = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for (via, names) in groups {
        let mut eligible = Vec::new();
        for (pos, name) in names.into_iter().enumerate() {
            if seen.contains(&name) {
                continue;
            }
            seen.push(name.clone());
            let Some(attrs) = engine.attrs(&name) else {
                continue;
            };
            let mut excluded = decision.check(attrs).err().unwrap_or_default();
            if let Some(dep) = config.deployment(&name)
                && let Some(why) =
                    crate::repro::sampling::exclusion(dep, decision.sampling.as_ref())
            {
                excluded.push(why);
            }
            if excluded.is_empty() {
                eligible.push((pos, &**attrs));
            }
            candidates.push(Candidate {
                attrs: attrs.clone(),
                via: via.clone(),
                excluded,
            });
        }
        let (sorted, group_ties) = sort_by_preference(eligible, decision.prefer, state);
        order.extend(sorted.into_iter().map(|a| a.name.clone()));
        ties.extend(group_ties);
    }
    Ok(Plan {
        model: model.to_string(),
        candidates,
        order,
        ties,
    })
}

/// 403 `policy_error` / `no_eligible_deployment`, naming each candidate and what excluded it.
fn no_eligible(model: &str, candidates: &[Candidate]) -> ApiError {
    let parts: Vec<String> = candidates
        .iter()
        .map(|c| format!("`{}`: {}", c.attrs.name, c.excluded.join("; ")))
        .collect();
    let message = if parts.is_empty() {
        format!("No deployment may serve model `{model}`: it has no deployments.")
    } else {
        format!(
            "No deployment may serve model `{model}` under the matching policies. {}.",
            parts.join(". ")
        )
    };
    ApiError::new(axum::http::StatusCode::FORBIDDEN, "policy_error", message)
        .with_code("no_eligible_deployment")
}

/// `(model name, deployment names)` groups: the model itself, then its fallbacks in order
/// (depth first, each model once).
fn candidate_groups(config: &Config, model: &str) -> Result<Vec<(String, Vec<String>)>, ApiError> {
    if config.models.iter().all(|m| m.name != model) && config.deployment(model).is_none() {
        return Err(ApiError::model_not_found(model));
    }
    let mut out = Vec::new();
    let mut visited: Vec<String> = Vec::new();
    let mut stack = vec![model.to_string()];
    while let Some(name) = stack.pop() {
        if visited.contains(&name) {
            continue;
        }
        visited.push(name.clone());
        if let Some(m) = config.models.iter().find(|m| m.name == name) {
            out.push((name.clone(), m.deployments.clone()));
            for f in m.fallbacks.iter().rev() {
                stack.push(f.clone());
            }
        } else if config.deployment(&name).is_some() {
            out.push((name.clone(), vec![name.clone()]));
        }
    }
    Ok(out)
}

fn sort_by_preference<'a>(
    eligible: Vec<(usize, &'a DeploymentAttrs)>,
    prefer: Prefer,
    state: Option<&RouteState>,
) -> (Vec<&'a DeploymentAttrs>, Vec<Vec<String>>) {
    if eligible.len() < 2 {
        // Nothing to order and no ties: no random draw.
        return (eligible.into_iter().map(|(_, a)| a).collect(), Vec::new());
    }
    // Efraimidis–Spirakis key: u^(1/w), larger first, gives a weighted random order of ties.
    let mut keyed: Vec<(f64, f64, &DeploymentAttrs)> = eligible
        .into_iter()
        .map(|(pos, a)| {
            let primary = match prefer {
                Prefer::Order => pos as f64,
                Prefer::LowestCost => a.price.map_or(f64::INFINITY, |p| p.input + p.output),
                Prefer::MostOpen => -(a.openness as u8 as f64),
                Prefer::LocalFirst => match a.hosting {
                    crate::policy::tier::Hosting::Local => 0.0,
                    crate::policy::tier::Hosting::Remote => 1.0,
                },
                Prefer::LowestLatency => state.and_then(|s| s.latency_ms(&a.name)).unwrap_or(0.0),
                // Every deployment ties: the weighted draw below is the whole order.
                Prefer::Shuffle => 0.0,
            };
            let u: f64 = rand::random::<f64>().max(f64::MIN_POSITIVE);
            let tie = u.powf(1.0 / a.weight);
            (primary, tie, a)
        })
        .collect();
    keyed.sort_by(|x, y| x.0.total_cmp(&y.0).then(y.1.total_cmp(&x.1)));
    let mut ties: Vec<Vec<String>> = Vec::new();
    for w in keyed.windows(2) {
        if w[0].0 == w[1].0 {
            match ties.last_mut() {
                Some(g) if g.last() == Some(&w[0].2.name) => g.push(w[1].2.name.clone()),
                _ => ties.push(vec![w[0].2.name.clone(), w[1].2.name.clone()]),
            }
        }
    }
    (keyed.into_iter().map(|(_, _, a)| a).collect(), ties)
}

/// Cooldowns, in-flight counts and latency estimates, shared by all requests.
#[derive(Debug, Default)]
pub struct RouteState {
    inner: Mutex<StateInner>,
}

#[derive(Debug, Default)]
struct StateInner {
    cooldown_until: HashMap<String, Instant>,
    inflight: HashMap<String, u32>,
    latency_ms: HashMap<String, f64>,
}

impl RouteState {
    fn lock(&self) -> std::sync::MutexGuard<'_, StateInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remaining cooldown of `name`, if it is cooling down.
    pub fn cooldown_left(&self, name: &str) -> Option<Duration> {
        let now = Instant::now();
        self.lock()
            .cooldown_until
            .get(name)
            .filter(|t| **t > now)
            .map(|t| *t - now)
    }

    /// Puts `name` into cooldown for `d` (extends, never shortens, a running one).
    pub fn cool_down(&self, name: &str, d: Duration) {
        if d.is_zero() {
            return;
        }
        let until = Instant::now() + d;
        let mut g = self.lock();
        let e = g.cooldown_until.entry(name.to_string()).or_insert(until);
        if *e < until {
            *e = until;
        }
    }

    /// Smoothed latency of `name` (time to the answer or first chunk), ms, once measured.
    pub fn latency_ms(&self, name: &str) -> Option<f64> {
        self.lock().latency_ms.get(name).copied()
    }

    /// Records one latency sample, ms (exponential moving average, α = 0.3).
    pub fn observe_latency(&self, name: &str, ms: f64) {
        let mut g = self.lock();
        let e = g.latency_ms.entry(name.to_string()).or_insert(ms);
        *e = 0.7 * *e + 0.3 * ms;
    }

    pub(crate) fn try_acquire(
        self: &Arc<Self>,
        name: &str,
        max: Option<u32>,
    ) -> Option<InflightGuard> {
        let mut g = self.lock();
        let n = g.inflight.entry(name.to_string()).or_insert(0);
        if max.is_some_and(|m| *n >= m) {
            return None;
        }
        *n += 1;
        Some(InflightGuard {
            state: self.clone(),
            name: name.to_string(),
        })
    }
}

/// Counts one request in flight on a deployment until dropped.
#[derive(Debug)]
pub struct InflightGuard {
    state: Arc<RouteState>,
    name: String,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        let mut g = self.state.lock();
        if let Some(n) = g.inflight.get_mut(&self.name) {
            *n = n.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::RequestFacts;

    fn setup(prefer: &str, weights: (f64, f64)) -> (Config, Engine, Decision) {
        let yaml = format!(
            "deployments:
  - name: a
    provider: openai
    base_url: http://127.0.0.1:1/v1
    model: m
    weight: {}
  - name: b
    provider: openai
    base_url: http://127.0.0.1:2/v1
    model: m
    weight: {}
models:
  - name: default
    deployments: [a, b]
policies:
  - name: p
    prefer: {prefer}
",
            weights.0, weights.1
        );
        let cfg = crate::config::parse("t.yaml", &yaml).unwrap();
        let engine = Engine::new(&cfg).unwrap();
        let body = crate::gateway::explain::request_for("default", Some("hi"), None).unwrap();
        let d = engine.decide(&RequestFacts::default(), &body);
        (cfg, engine, d)
    }

    #[test]
    fn lowest_latency_prefers_the_faster_measured_deployment() {
        let (cfg, engine, d) = setup("lowest_latency", (1.0, 1.0));
        let state = RouteState::default();
        state.observe_latency("a", 900.0);
        state.observe_latency("b", 40.0);
        let p = plan(&cfg, &engine, &d, "default", Some(&state)).unwrap();
        assert_eq!(p.order, vec!["b", "a"]);
        assert!(p.ties.is_empty());
        // Not yet measured: tried first, to be measured.
        let state = RouteState::default();
        state.observe_latency("a", 900.0);
        let p = plan(&cfg, &engine, &d, "default", Some(&state)).unwrap();
        assert_eq!(p.order, vec!["b", "a"]);
    }

    #[test]
    fn ties_are_drawn_by_weight() {
        // Both local, both price 0: a tie under lowest_cost.
        let (cfg, engine, d) = setup("lowest_cost", (1.0, 9.0));
        let mut b_first = 0;
        for _ in 0..1000 {
            let p = plan(&cfg, &engine, &d, "default", None).unwrap();
            assert_eq!(p.ties, vec![vec![p.order[0].clone(), p.order[1].clone()]]);
            if p.order[0] == "b" {
                b_first += 1;
            }
        }
        // Expected 900; the bounds are ~10 standard deviations wide.
        assert!((800..=990).contains(&b_first), "{b_first}");
        // `order` never ties.
        let (cfg, engine, d) = setup("order", (1.0, 9.0));
        let p = plan(&cfg, &engine, &d, "default", None).unwrap();
        assert_eq!(
            (p.order.clone(), p.ties.len()),
            (vec!["a".into(), "b".into()], 0)
        );
    }

    #[test]
    fn shuffle_draws_every_order_by_weight() {
        // Two remote-priced deployments of different price: only `shuffle` ties them.
        let (cfg, engine, d) = setup("shuffle", (3.0, 1.0));
        let mut a_first = 0;
        for _ in 0..1000 {
            let p = plan(&cfg, &engine, &d, "default", None).unwrap();
            assert_eq!(p.order.len(), 2);
            if p.order[0] == "a" {
                a_first += 1;
            }
        }
        // Expected 750; the bounds are ~10 standard deviations wide.
        assert!((610..=890).contains(&a_first), "{a_first}");
    }

    #[test]
    fn cooldowns_extend_never_shorten() {
        let s = RouteState::default();
        s.cool_down("a", Duration::from_secs(60));
        s.cool_down("a", Duration::from_secs(1));
        assert!(s.cooldown_left("a").unwrap() > Duration::from_secs(50));
        assert!(s.cooldown_left("b").is_none());
    }

    #[test]
    fn concurrency_slots_are_released_on_drop() {
        let s = Arc::new(RouteState::default());
        let g1 = s.try_acquire("a", Some(1)).unwrap();
        assert!(s.try_acquire("a", Some(1)).is_none());
        drop(g1);
        assert!(s.try_acquire("a", Some(1)).is_some());
    }
}

#[cfg(test)]
mod retry_after_tests {
    use crate::providers::retry_after_secs;
    use http::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    fn secs(v: &str) -> Option<u64> {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
        retry_after_secs(&h)
    }

    #[test]
    fn delay_seconds_and_http_dates() {
        assert_eq!(secs("7"), Some(7));
        assert_eq!(secs(" 120 "), Some(120));
        // An HTTP date in the past means "now".
        assert_eq!(secs("Wed, 21 Oct 2015 07:28:00 GMT"), Some(0));
        let later = time::OffsetDateTime::now_utc() + time::Duration::seconds(90);
        let fmt = time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        );
        let s = secs(&later.format(&fmt).unwrap()).unwrap();
        assert!((85..=90).contains(&s), "{s}");
        assert_eq!(secs("soon"), None);
    }
}

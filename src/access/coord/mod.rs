//! Coordination: where admission decisions are made. One interface, two implementations:
//! in-process (the embedded default: [`super::limits::Limits`] and
//! [`super::budget::Reservations`] in this replica's memory, synchronous, unchanged) and a
//! shared Redis/Valkey server ([`redis::RedisCoordinator`], `coordination.redis`), so limits
//! and budgets hold across replicas.
//!
//! The interface is [`Access::admit`] (before routing: permission; in-process also the key and
//! model rate limits), [`Access::reserve`] (after planning: the budget reservation; shared
//! also the key and model rate limits, in the same single server call), [`Access::check_deployment`]
//! (each deployment tried) and [`Ticket::finish`] (the real usage and cost, when the answer or
//! stream ends; dropping an unfinished ticket releases it).
//!
//! While the server cannot be reached, `on_unavailable` decides each request: `fail_closed`
//! (503 `coordinator_unavailable`), `fail_open` (no limits) or `local` (this replica's
//! in-process limits and budget); each decision is counted ([`RedisCoordinator::decisions`]).

pub mod redis;
mod ticket;

use super::Access;
use super::auth::Principal;
use super::budget::MaxCost;
use super::limits::Rejection;
use crate::api::ApiError;
use crate::config::{OnUnavailable, RateLimitConfig};
use axum::http::StatusCode;
pub use redis::RedisCoordinator;
use std::sync::Arc;
use std::time::Duration;
pub use ticket::{Settlement, SharedTicket, Ticket, settle_left_over};

/// One budget a reservation is asked of on the server: its keys and limit.
#[derive(Debug, Clone)]
pub struct BudgetAsk {
    /// The key whose budget it is (the caller's, or a maker's up its creator chain).
    pub key_id: String,
    /// USD spent this period (string key).
    pub spend_key: String,
    /// Reservations: id → USD (hash).
    pub hash_key: String,
    /// Reservations: id → expiry, Unix ms (sorted set).
    pub zset_key: String,
    /// What this request reserves on it, USD ([`MaxCost::for_budget`]).
    pub usd: f64,
    /// Whether it counts remote spend only (`remote_only`): a request served locally adds
    /// nothing to it.
    pub remote_only: bool,
    /// The budget, USD per period.
    pub budget_usd: f64,
    /// The end of its period, Unix ms (for the refusal's reset time).
    pub period_end_ms: i64,
    /// This replica's known spend this period, USD: the server's starting value when it has
    /// none (first use, or after it lost its data), and the least it takes as spent.
    pub seed_spent: f64,
    /// Seconds the spend key is kept: to the end of the period plus a day.
    pub spend_ttl_s: u64,
}

/// The coordinator's state for `/health/ready` and `/metrics`.
#[derive(Debug, Clone)]
pub struct CoordStatus {
    /// `redis`.
    pub backend: &'static str,
    /// Whether the server is reachable now.
    pub up: bool,
    /// Since when (Unix ms) it is in that state.
    pub since_ms: i64,
    /// The last error while unreachable.
    pub last_error: Option<String>,
    /// The configured `on_unavailable`.
    pub on_unavailable: OnUnavailable,
    /// The function library's versioned name.
    pub library: &'static str,
    /// Requests decided by `on_unavailable` so far.
    pub decisions: [(OnUnavailable, u64); 3],
}

/// 503 `coordinator_unavailable` (`on_unavailable: fail_closed`).
pub fn unavailable_error() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        "The rate-limit coordinator is unreachable and this gateway is set to refuse requests then (coordination.redis.on_unavailable: fail_closed). Try again shortly.",
    )
    .with_code("coordinator_unavailable")
}

impl Access {
    /// The shared coordinator, when `coordination.redis` is configured.
    pub fn coordinator(&self) -> Option<&Arc<RedisCoordinator>> {
        self.coordinator.as_ref()
    }

    /// The coordinator's state; `None` when limits are in-process.
    pub fn coordination_status(&self) -> Option<CoordStatus> {
        let c = self.coordinator.as_ref()?;
        Some(CoordStatus {
            backend: "redis",
            up: c.is_up(),
            since_ms: c.since_ms(),
            last_error: c.last_error(),
            on_unavailable: c.config.on_unavailable,
            library: redis::LIBRARY_NAME,
            decisions: c.decisions(),
        })
    }

    /// Reserves `usd` (the most this request may cost) against the caller's budget and, when
    /// coordinated, charges the key and model rate limits with `prompt_tokens` in the same
    /// all-or-nothing server call. `None`: nothing to hold.
    ///
    /// Errors: 429 `budget_exceeded` (spent + reserved + `usd` over the budget); 429
    /// `rate_limit_exceeded` with `retry_after_s` (coordinated); 503
    /// `coordinator_unavailable` (unreachable, `fail_closed`).
    pub async fn reserve(
        &self,
        principal: &Principal,
        model: &str,
        prompt_tokens: u64,
        cost: MaxCost,
    ) -> Result<Option<Ticket>, ApiError> {
        let Some(coord) = &self.coordinator else {
            return self
                .reserve_local(principal, cost)
                .map(|r| r.map(Ticket::Local));
        };
        let scopes = self.request_scopes(principal, model);
        let budgets = self.budget_asks(coord, principal, cost);
        let reservation_id = if budgets.is_empty() {
            String::new()
        } else {
            uuid::Uuid::now_v7().to_string()
        };
        if scopes.is_empty() && budgets.is_empty() {
            return Ok(None);
        }
        let buckets = buckets(coord, &scopes, prompt_tokens).map_err(into_error)?;
        // Boxed: the Redis round trip's future is large, and only coordinated requests take it.
        let answer = Box::pin(coord.admit(&buckets, &budgets, &reservation_id)).await;
        match answer {
            Ok(redis::Answer::Admitted(levels)) => {
                let headers = status_headers(&buckets, &levels);
                let token_buckets = buckets
                    .iter()
                    .filter(|(k, _, _)| k.ends_with(":tokens"))
                    .map(|(k, _, cap)| (k.clone(), *cap))
                    .collect();
                Ok(Some(Ticket::Shared(SharedTicket {
                    coord: coord.clone(),
                    headers,
                    settlement: Some(Settlement {
                        token_buckets,
                        charged_tokens: prompt_tokens.max(1),
                        budgets,
                        reservation_id,
                    }),
                    marked: None,
                })))
            }
            Ok(redis::Answer::Rate { index, wait_ms }) => {
                let (scope, what, limit) = describe(&scopes, &buckets, index);
                Err(into_error(super::limits::rejection(
                    &scope,
                    what,
                    limit,
                    Duration::from_millis(wait_ms),
                )))
            }
            Ok(redis::Answer::Budget {
                index,
                spent,
                reserved,
            }) => {
                let b = budgets.get(index);
                let e = super::budget::exceeded(
                    spent,
                    reserved,
                    b.map_or(0.0, |b| b.usd),
                    b.map_or(0.0, |b| b.budget_usd),
                    b.map_or(0, |b| b.period_end_ms),
                );
                let whose = b.map(|b| super::budget::whose(principal, &b.key_id));
                Err(e.prefixed(whose.as_deref().unwrap_or_default()))
            }
            Err(_) => self.on_unavailable(coord, principal, model, prompt_tokens, cost),
        }
    }

    /// What `on_unavailable` says for one request (counted).
    fn on_unavailable(
        &self,
        coord: &RedisCoordinator,
        principal: &Principal,
        model: &str,
        prompt_tokens: u64,
        cost: MaxCost,
    ) -> Result<Option<Ticket>, ApiError> {
        let d = coord.config.on_unavailable;
        coord.count_decision(d);
        match d {
            OnUnavailable::FailClosed => Err(unavailable_error()),
            OnUnavailable::FailOpen => Ok(None),
            OnUnavailable::Local => {
                self.local_limits(principal, model, prompt_tokens)
                    .map_err(into_error)?;
                self.reserve_local(principal, cost)
                    .map(|r| r.map(Ticket::Local))
            }
        }
    }

    /// Checks (and charges) deployment `name`'s limits for one attempt with `tokens` prompt
    /// tokens: in-process, or on the coordinator (`on_unavailable` when it is unreachable).
    ///
    /// Errors: the limit's rejection (429 with `Retry-After`), or 503
    /// `coordinator_unavailable`.
    pub async fn check_deployment(
        &self,
        name: &str,
        limit: &RateLimitConfig,
        tokens: u64,
    ) -> Result<(), Rejection> {
        let scope = format!("deployment:{name}");
        let Some(coord) = &self.coordinator else {
            return self
                .limits
                .check(&scope, limit.rpm, limit.tpm, tokens)
                .map(|_| ());
        };
        let scopes = [Scope {
            name: scope.clone(),
            rpm: limit.rpm,
            tpm: limit.tpm,
        }];
        let buckets = buckets(coord, &scopes, tokens)?;
        if buckets.is_empty() {
            return Ok(());
        }
        match coord.admit(&buckets, &[], "").await {
            Ok(redis::Answer::Admitted(_)) | Ok(redis::Answer::Budget { .. }) => Ok(()),
            Ok(redis::Answer::Rate { index, wait_ms }) => {
                let (scope, what, limit) = describe(&scopes, &buckets, index);
                Err(super::limits::rejection(
                    &scope,
                    what,
                    limit,
                    Duration::from_millis(wait_ms),
                ))
            }
            Err(_) => {
                let d = coord.config.on_unavailable;
                coord.count_decision(d);
                match d {
                    OnUnavailable::FailClosed => Err(Rejection {
                        error: unavailable_error(),
                        headers: Vec::new(),
                    }),
                    OnUnavailable::FailOpen => Ok(()),
                    OnUnavailable::Local => self
                        .limits
                        .check(&scope, limit.rpm, limit.tpm, tokens)
                        .map(|_| ()),
                }
            }
        }
    }

    /// The key and model scopes of a request that have limits.
    fn request_scopes(&self, principal: &Principal, model: &str) -> Vec<Scope> {
        let mut out: Vec<Scope> = principal
            .rate_scopes()
            .map(|(id, rpm, tpm)| Scope {
                name: format!("key:{id}"),
                rpm,
                tpm,
            })
            .collect();
        for scope in self.model_scopes(model) {
            if let Some(l) = self.limits_by_model.get(scope) {
                out.push(Scope {
                    name: format!("model:{scope}"),
                    rpm: l.rpm,
                    tpm: l.tpm,
                });
            }
        }
        out
    }

    /// The budgets a request that may cost `cost` reserves on, each with its part
    /// ([`MaxCost::for_budget`]): the caller's and its makers' ([`Principal::budgets`]). A
    /// remote-only budget is left out when its part is 0 (the request goes to local
    /// deployments: it reserves nothing there and is not checked, so local requests stay
    /// allowed past it).
    fn budget_asks(
        &self,
        coord: &RedisCoordinator,
        principal: &Principal,
        cost: MaxCost,
    ) -> Vec<BudgetAsk> {
        let now = now_ms();
        principal
            .budgets()
            .filter(|(_, b)| !(b.remote_only && cost.for_budget(b) <= 0.0))
            .map(|(id, b)| {
                let (start, end) = super::keys::period_bounds(b.period, now);
                let [spend_key, hash_key, zset_key] = coord.budget_keys(id, start);
                BudgetAsk {
                    key_id: id.to_string(),
                    spend_key,
                    hash_key,
                    zset_key,
                    usd: cost.for_budget(b),
                    remote_only: b.remote_only,
                    budget_usd: b.usd,
                    period_end_ms: end,
                    // This replica's spend less what is still on its way to the server: a
                    // seed holding it would be counted again when its settle lands.
                    seed_spent: (self.spend.spent(id, b, now) - coord.unsettled(id)).max(0.0),
                    spend_ttl_s: ((end - now).max(0) / 1000) as u64 + 86_400,
                }
            })
            .collect()
    }
}

/// One rate-limited scope: `key:ID`, `model:NAME` or `deployment:NAME`, with its limits.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The scope's name.
    pub name: String,
    /// Requests per minute.
    pub rpm: Option<u32>,
    /// Tokens per minute.
    pub tpm: Option<u32>,
}

/// The buckets of `scopes` (key, cost, capacity). A prompt larger than a whole minute's
/// tokens is refused at once (it can never pass), as in-process.
fn buckets(
    coord: &RedisCoordinator,
    scopes: &[Scope],
    tokens: u64,
) -> Result<Vec<(String, u64, u32)>, Rejection> {
    let mut out = Vec::new();
    for s in scopes {
        if let Some(rpm) = s.rpm {
            out.push((coord.bucket_key(&s.name, "requests"), 1, rpm));
        }
        if let Some(tpm) = s.tpm {
            if tokens > u64::from(tpm) {
                return Err(super::limits::rejection(
                    &s.name,
                    "tokens",
                    tpm,
                    Duration::from_secs(60),
                ));
            }
            out.push((coord.bucket_key(&s.name, "tokens"), tokens.max(1), tpm));
        }
    }
    Ok(out)
}

/// OpenAI's `x-ratelimit-*` headers from the first scope's buckets after admission (`levels`
/// in the order of `buckets`).
fn status_headers(buckets: &[(String, u64, u32)], levels: &[f64]) -> Vec<(&'static str, String)> {
    let Some((first, _, _)) = buckets.first() else {
        return Vec::new();
    };
    let scope = first.rsplitn(3, ':').nth(2).unwrap_or_default();
    let mut st = super::limits::RateStatus::default();
    for ((key, _, cap), level) in buckets.iter().zip(levels) {
        if key.rsplitn(3, ':').nth(2) != Some(scope) {
            break;
        }
        let remaining = level.max(0.0).floor() as u32;
        let reset = super::limits::refill_time(*cap, remaining);
        if key.ends_with(":tokens") {
            (st.limit_tokens, st.remaining_tokens, st.reset_tokens) =
                (Some(*cap), remaining, reset);
        } else {
            (st.limit_requests, st.remaining_requests, st.reset_requests) =
                (Some(*cap), remaining, reset);
        }
    }
    st.headers()
}

/// The scope, `requests`/`tokens` and limit of bucket `index`.
fn describe(
    scopes: &[Scope],
    buckets: &[(String, u64, u32)],
    index: usize,
) -> (String, &'static str, u32) {
    let Some((key, _, cap)) = buckets.get(index) else {
        return ("-".into(), "requests", 0);
    };
    let what = if key.ends_with(":tokens") {
        "tokens"
    } else {
        "requests"
    };
    let scope = scopes
        .iter()
        .find(|s| key.ends_with(&format!(":rl:{}:{what}", s.name)))
        .map_or_else(|| "-".to_string(), |s| s.name.clone());
    (scope, what, *cap)
}

/// A rejection as an error carrying its `Retry-After`.
pub fn into_error(rej: Rejection) -> ApiError {
    let mut e = rej.error;
    e.retry_after_s = rej
        .headers
        .iter()
        .find(|(h, _)| *h == "retry-after")
        .and_then(|(_, v)| v.parse().ok());
    e
}

/// Now, Unix ms.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_come_from_the_first_scope() {
        let b = |k: &str, cap: u32| (k.to_string(), 1, cap);
        let buckets = [
            b("p:rl:key:cfg:a:requests", 30),
            b("p:rl:key:cfg:a:tokens", 1000),
            b("p:rl:model:default:requests", 5),
        ];
        let h = status_headers(&buckets, &[29.0, 940.5, 1.0]);
        let get = |n: &str| h.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("x-ratelimit-limit-requests"), Some("30"));
        assert_eq!(get("x-ratelimit-remaining-requests"), Some("29"));
        assert_eq!(get("x-ratelimit-reset-requests"), Some("2s"));
        assert_eq!(get("x-ratelimit-remaining-tokens"), Some("940"));
        assert_eq!(h.len(), 6);
    }
}

//! Budgets reserve, then settle: at admission a request reserves what it may cost at most
//! (prompt estimate + `max_tokens`, or [`DEFAULT_RESERVED_OUTPUT_TOKENS`], times the
//! completions generated — chat `n`, completions `max(n, best_of)` — at the priciest eligible
//! deployment's price, see `gateway::budget::max_cost`); `spent + reserved` must stay within the budget, so parallel
//! requests cannot overrun it by more than one reservation's error. The [`Reservation`] is a
//! guard: dropping it — after the request's real cost was recorded, or on any error or
//! client disconnect — gives the reserved amount back.
//!
//! This is the interface a shared coordinator replaces later: [`Reservations::reserve`] and
//! the guard's drop.

use crate::access::auth::{Budget, Principal};
use crate::access::keys::Spend;
use crate::api::ApiError;
use axum::http::StatusCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Completion tokens reserved when the request sets no `max_tokens`.
pub const DEFAULT_RESERVED_OUTPUT_TOKENS: u64 = 4096;

/// The most one request may cost, USD ([`crate::gateway::budget::max_cost`]): on any eligible
/// deployment, and on remote ones only (what a `remote_only` budget counts).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MaxCost {
    /// On any eligible deployment, local ones included.
    pub usd: f64,
    /// On eligible remote deployments only (0 when the request may only go local).
    pub remote_usd: f64,
}

impl MaxCost {
    /// What `budget` is asked to hold: `remote_usd` for a `remote_only` one, else `usd`.
    pub fn for_budget(&self, budget: &Budget) -> f64 {
        if budget.remote_only {
            self.remote_usd
        } else {
            self.usd
        }
    }
}

/// USD reserved per key by requests in flight.
#[derive(Debug, Default)]
pub struct Reservations {
    by_key: Mutex<HashMap<String, f64>>,
}

/// A reservation held by one request on each budget it counts against (key id, USD);
/// released when dropped.
#[derive(Debug)]
pub struct Reservation {
    from: Arc<Reservations>,
    held: Vec<(String, f64)>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut g = lock(&self.from.by_key);
        for (key_id, usd) in &self.held {
            if let Some(v) = g.get_mut(key_id) {
                *v -= usd;
                if *v <= 1e-12 {
                    g.remove(key_id);
                }
            }
        }
    }
}

impl Reservations {
    /// Reserves on every budget `principal` counts against ([`Principal::budgets`]: its key's
    /// own, then its makers'), all or none, what that budget counts of `cost`
    /// ([`MaxCost::for_budget`]): each must keep `spent + reserved + usd` within its limit at
    /// `now_ms`. A `remote_only` budget is not asked when the request may cost it nothing (it
    /// goes to local deployments: local requests stay allowed past it). `spend` counts what
    /// each key and the keys it made spent.
    ///
    /// Errors: 429 `budget_exceeded` naming what is spent and reserved on the first budget
    /// without room (and its key, when it is a maker's), and its reset time.
    pub fn reserve(
        self: &Arc<Self>,
        spend: &Spend,
        principal: &Principal,
        cost: MaxCost,
        now_ms: i64,
    ) -> Result<Reservation, ApiError> {
        let mut g = lock(&self.by_key);
        let mut held = Vec::new();
        for (key_id, budget) in principal.budgets() {
            let usd = cost.for_budget(budget);
            if budget.remote_only && usd <= 0.0 {
                continue;
            }
            let spent = spend.spent(key_id, budget, now_ms);
            let reserved = g.get(key_id).copied().unwrap_or(0.0);
            if spent + reserved + usd > budget.usd {
                let (_, reset) = crate::access::keys::period_bounds(budget.period, now_ms);
                let e = exceeded(spent, reserved, usd, budget.usd, reset);
                return Err(e.prefixed(&whose(principal, key_id)));
            }
            held.push((key_id.to_string(), usd));
        }
        for (key_id, usd) in &held {
            *g.entry(key_id.clone()).or_insert(0.0) += usd;
        }
        Ok(Reservation {
            from: self.clone(),
            held,
        })
    }

    /// What `key_id` has reserved now, USD.
    pub fn reserved(&self, key_id: &str) -> f64 {
        lock(&self.by_key).get(key_id).copied().unwrap_or(0.0)
    }
}

/// The sentence that goes before a budget refusal when the budget is not the caller's own
/// but `key_id`'s, a key up its creator chain; empty for its own.
pub fn whose(principal: &Principal, key_id: &str) -> String {
    if principal.key_id.as_deref() == Some(key_id) {
        return String::new();
    }
    format!("This API key counts against the budget of `{key_id}`, a key up its creator chain. ")
}

/// 429 `budget_exceeded`: `spent` and `reserved` (USD, this period) leave no room for a
/// request that may cost `usd`; the budget is `budget_usd` and resets at `reset_ms` (Unix ms).
pub fn exceeded(spent: f64, reserved: f64, usd: f64, budget_usd: f64, reset_ms: i64) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_error",
        format!(
            "Budget exceeded: {spent:.4} of {budget_usd:.2} USD spent and {reserved:.4} reserved by requests in flight; this request may cost up to {usd:.4} USD. Lower max_tokens (or n, best_of) or wait until {}.",
            crate::access::keys::rfc3339(reset_ms)
        ),
    )
    .with_code("budget_exceeded")
}

/// 429 `budget_unpriced`: a budgeted key's request could go to a remote deployment whose
/// price is unknown, so its cost could not be counted.
pub fn unpriced(deployment: &str) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_error",
        format!(
            "This API key counts against a budget (its own or that of a key up its creator chain), and deployment `{deployment}` is remote with no known price, so its cost cannot be counted. Set `price:` on the deployment."
        ),
    )
    .with_code("budget_unpriced")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::auth::{BudgetPeriod, CreatorLimits, KeySpec};

    fn budget(usd: f64) -> Budget {
        Budget {
            usd,
            period: BudgetPeriod::Day,
            remote_only: false,
        }
    }

    /// A request that may cost `usd` on a remote deployment.
    fn all(usd: f64) -> MaxCost {
        MaxCost {
            usd,
            remote_usd: usd,
        }
    }

    fn key(id: &str, own: Option<f64>, makers: &[(&str, f64)]) -> Principal {
        Principal {
            key_id: Some(id.into()),
            spec: Box::new(KeySpec {
                budget: own.map(budget),
                ..Default::default()
            }),
            admin: false,
            local_only: None,
            creators: makers.iter().map(|(m, _)| m.to_string()).collect(),
            creator_limits: makers
                .iter()
                .map(|(m, usd)| CreatorLimits {
                    key_id: m.to_string(),
                    rpm: None,
                    tpm: None,
                    budget: Some(budget(*usd)),
                    models: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn reservations_hold_until_dropped() {
        let r = Arc::new(Reservations::default());
        let spend = Spend::default();
        let k = key("k", Some(1.0), &[]);
        let now = 1_795_946_400_000;
        let a = r.reserve(&spend, &k, all(0.6), now).unwrap();
        let e = r.reserve(&spend, &k, all(0.6), now).unwrap_err();
        assert_eq!(e.body.code, Some("budget_exceeded".into()));
        assert_eq!(r.reserved("k"), 0.6);
        spend.add(["k"], now, 0.5, true);
        drop(a);
        assert_eq!(r.reserved("k"), 0.0);
        assert!(r.reserve(&spend, &k, all(0.5), now).is_ok());
        assert!(r.reserve(&spend, &k, all(0.51), now).is_err());
    }

    #[test]
    fn keys_made_by_one_key_share_its_budget_all_or_none() {
        let r = Arc::new(Reservations::default());
        let spend = Spend::default();
        let now = 1_795_946_400_000;
        // Two children of `parent` (1.00 USD), each with a budget of its own of 0.80.
        let a = key("a", Some(0.8), &[("parent", 1.0)]);
        let b = key("b", Some(0.8), &[("parent", 1.0)]);
        let held = r.reserve(&spend, &a, all(0.7), now).unwrap();
        assert_eq!((r.reserved("a"), r.reserved("parent")), (0.7, 0.7));
        let e = r.reserve(&spend, &b, all(0.4), now).unwrap_err();
        assert!(
            e.body
                .message
                .starts_with("This API key counts against the budget of `parent`, a key up its creator chain. Budget exceeded: 0.0000 of 1.00 USD spent and 0.7000 reserved"),
            "{}",
            e.body.message
        );
        // Refused on the maker's budget: nothing was left reserved on the child's own.
        assert_eq!(r.reserved("b"), 0.0);
        drop(held);
        assert_eq!((r.reserved("a"), r.reserved("parent")), (0.0, 0.0));
        // Spend of a child counts on its makers' budgets.
        spend.add(["a", "parent"], now, 0.7, true);
        assert!(r.reserve(&spend, &b, all(0.31), now).is_err());
        let ok = r.reserve(&spend, &b, all(0.3), now).unwrap();
        assert_eq!((r.reserved("b"), r.reserved("parent")), (0.3, 0.3));
        drop(ok);
    }

    #[test]
    fn each_budget_holds_what_it_counts_of_the_cost() {
        let r = Arc::new(Reservations::default());
        let spend = Spend::default();
        let now = 1_795_946_400_000;
        // A child with an all-spend budget under a maker whose remote-only budget is spent.
        let mut k = key("k", Some(1.0), &[("maker", 1.0)]);
        if let Some(b) = k.creator_limits[0].budget.as_mut() {
            b.remote_only = true;
        }
        spend.add(["maker"], now, 1.5, true);
        // A request that may only go local (priced 0.2 there) is asked of the child's budget
        // only; one that may go remote is refused on the maker's.
        let local = MaxCost {
            usd: 0.2,
            remote_usd: 0.0,
        };
        let held = r.reserve(&spend, &k, local, now).unwrap();
        assert_eq!((r.reserved("k"), r.reserved("maker")), (0.2, 0.0));
        drop(held);
        let e = r.reserve(&spend, &k, all(0.2), now).unwrap_err();
        assert!(e.body.message.contains("`maker`"), "{}", e.body.message);
        assert_eq!((r.reserved("k"), r.reserved("maker")), (0.0, 0.0));
    }
}

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

use crate::access::auth::Budget;
use crate::access::keys::Spend;
use crate::api::ApiError;
use axum::http::StatusCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Completion tokens reserved when the request sets no `max_tokens`.
pub const DEFAULT_RESERVED_OUTPUT_TOKENS: u64 = 4096;

/// USD reserved per key by requests in flight.
#[derive(Debug, Default)]
pub struct Reservations {
    by_key: Mutex<HashMap<String, f64>>,
}

/// A reservation held by one request; released when dropped.
#[derive(Debug)]
pub struct Reservation {
    from: Arc<Reservations>,
    key_id: String,
    usd: f64,
}

impl Reservation {
    /// The reserved amount, USD.
    pub fn usd(&self) -> f64 {
        self.usd
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut g = lock(&self.from.by_key);
        if let Some(v) = g.get_mut(&self.key_id) {
            *v -= self.usd;
            if *v <= 1e-12 {
                g.remove(&self.key_id);
            }
        }
    }
}

impl Reservations {
    /// Reserves `usd` for `key_id` when `spent + reserved + usd` stays within `budget` at
    /// `now_ms`.
    ///
    /// Errors: 429 `budget_exceeded` naming what is spent and reserved, and the reset time.
    pub fn reserve(
        self: &Arc<Self>,
        spend: &Spend,
        key_id: &str,
        budget: &Budget,
        usd: f64,
        now_ms: i64,
    ) -> Result<Reservation, ApiError> {
        let mut g = lock(&self.by_key);
        let spent = spend.spent(key_id, budget, now_ms);
        let reserved = g.get(key_id).copied().unwrap_or(0.0);
        if spent + reserved + usd > budget.usd {
            let (_, reset) = crate::access::keys::period_bounds(budget.period, now_ms);
            return Err(exceeded(spent, reserved, usd, budget.usd, reset));
        }
        *g.entry(key_id.to_string()).or_insert(0.0) += usd;
        Ok(Reservation {
            from: self.clone(),
            key_id: key_id.to_string(),
            usd,
        })
    }

    /// What `key_id` has reserved now, USD.
    pub fn reserved(&self, key_id: &str) -> f64 {
        lock(&self.by_key).get(key_id).copied().unwrap_or(0.0)
    }
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
            "This API key has a budget, and deployment `{deployment}` is remote with no known price, so its cost cannot be counted. Set `price:` on the deployment."
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
    use crate::access::auth::BudgetPeriod;

    #[test]
    fn reservations_hold_until_dropped() {
        let r = Arc::new(Reservations::default());
        let spend = Spend::default();
        let b = Budget {
            usd: 1.0,
            period: BudgetPeriod::Day,
            remote_only: false,
        };
        let now = 1_795_946_400_000;
        let a = r.reserve(&spend, "k", &b, 0.6, now).unwrap();
        let e = r.reserve(&spend, "k", &b, 0.6, now).unwrap_err();
        assert_eq!(e.body.code, Some("budget_exceeded".into()));
        assert_eq!(r.reserved("k"), 0.6);
        spend.add("k", now, 0.5, true);
        drop(a);
        assert_eq!(r.reserved("k"), 0.0);
        assert!(r.reserve(&spend, "k", &b, 0.5, now).is_ok());
        assert!(r.reserve(&spend, "k", &b, 0.51, now).is_err());
    }
}

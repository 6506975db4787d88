//! Rate limits: requests per minute and tokens per minute, per key, per model and per
//! deployment.
//!
//! Each scope's quota is a bucket of N refilled at N per minute (what GCRA computes): a quota
//! of N per minute allows a burst of N at once, then one more every 60/N seconds. So N
//! parallel requests against `rpm: N` all pass and the N+1th is refused until 60/N seconds
//! later.
//!
//! Buckets are kept per scope, not per quota: when a reload changes a scope's limit, its
//! bucket keeps what was used (see `TokenBucket::resize`), so lowering the limit of a key that
//! misbehaves does not hand it a fresh, full bucket, and a token debt stays owed.
//!
//! Token limits are a bucket of N tokens refilled at N per minute (same burst as GCRA), which
//! can go into debt: the prompt estimate (4 bytes per token) is taken before the call (refused
//! when the bucket holds less), and after it the real usage, prompt and completion tokens, is
//! settled ([`Limits::settle_tokens`]): more than estimated is charged even past zero, less is
//! given back. So a key with `tpm: 1000` whose answer had 50,000 completion tokens is refused
//! until the debt is refilled (50 minutes), whatever the next request's size.
//!
//! Over a limit: 429, OpenAI error shape, code `rate_limit_exceeded`, `Retry-After` in whole
//! seconds, and OpenAI's `x-ratelimit-*` headers, which every response with a limit carries.

use crate::api::ApiError;
use axum::http::StatusCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Buckets = Mutex<HashMap<String, Arc<Mutex<TokenBucket>>>>;

/// Buckets by scope (`key:ID`, `model:NAME`, `deployment:NAME`).
#[derive(Debug, Default)]
pub struct Limits {
    requests: Buckets,
    tokens: Buckets,
}

/// Requests or tokens per minute for one scope: `level` available now (negative = debt),
/// refilled at `per_minute` per minute up to `per_minute`.
#[derive(Debug)]
struct TokenBucket {
    per_minute: f64,
    level: f64,
    at: Instant,
}

impl TokenBucket {
    fn new(per_minute: u32) -> Self {
        TokenBucket {
            per_minute: f64::from(per_minute),
            level: f64::from(per_minute),
            at: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let secs = now.duration_since(self.at).as_secs_f64();
        self.at = now;
        self.level = (self.level + secs * self.per_minute / 60.0).min(self.per_minute);
    }

    /// Takes `n` tokens, or says how long until they are there.
    fn take(&mut self, n: f64) -> Result<f64, Duration> {
        self.refill();
        if n <= self.level {
            self.level -= n;
            return Ok(self.level);
        }
        let missing = n - self.level;
        Err(Duration::from_secs_f64(
            (missing * 60.0 / self.per_minute.max(1.0)).min(1e9),
        ))
    }

    /// Changes the quota to `per_minute` (a reload changed the limit), keeping what was used:
    /// the level moves by the change in capacity, so a lowered quota is not a fresh bucket
    /// and a debt stays a debt.
    fn resize(&mut self, per_minute: u32) {
        let new = f64::from(per_minute);
        if new == self.per_minute {
            return;
        }
        self.refill();
        let used = self.per_minute - self.level;
        self.per_minute = new;
        self.level = new - used;
    }

    /// Adds `delta` tokens of usage (negative gives tokens back), never refusing.
    fn settle(&mut self, delta: f64) {
        self.refill();
        self.level = (self.level - delta).min(self.per_minute);
    }
}

/// What one scope's limits look like after a request passed (for the `x-ratelimit-*`
/// headers).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RateStatus {
    /// Requests per minute, when limited.
    pub limit_requests: Option<u32>,
    /// Requests that could still be made now.
    pub remaining_requests: u32,
    /// Time until the request quota is full again.
    pub reset_requests: Duration,
    /// Tokens per minute, when limited.
    pub limit_tokens: Option<u32>,
    /// Tokens that could still be used now.
    pub remaining_tokens: u32,
    /// Time until the token quota is full again.
    pub reset_tokens: Duration,
}

impl RateStatus {
    /// The `x-ratelimit-*` headers OpenAI sends
    /// (<https://platform.openai.com/docs/guides/rate-limits#rate-limits-in-headers>).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = Vec::new();
        if let Some(l) = self.limit_requests {
            h.push(("x-ratelimit-limit-requests", l.to_string()));
            h.push((
                "x-ratelimit-remaining-requests",
                self.remaining_requests.to_string(),
            ));
            h.push((
                "x-ratelimit-reset-requests",
                format_duration(self.reset_requests),
            ));
        }
        if let Some(l) = self.limit_tokens {
            h.push(("x-ratelimit-limit-tokens", l.to_string()));
            h.push((
                "x-ratelimit-remaining-tokens",
                self.remaining_tokens.to_string(),
            ));
            h.push((
                "x-ratelimit-reset-tokens",
                format_duration(self.reset_tokens),
            ));
        }
        h
    }
}

/// A refused request: the error plus the headers to send with it.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// 429 `rate_limit_exceeded`.
    pub error: ApiError,
    /// `Retry-After` and `x-ratelimit-*`.
    pub headers: Vec<(&'static str, String)>,
}

impl Limits {
    /// Checks (and charges) one request and `tokens` prompt tokens against `scope`'s quotas.
    /// No quota → passes with no status.
    pub fn check(
        &self,
        scope: &str,
        rpm: Option<u32>,
        tpm: Option<u32>,
        tokens: u64,
    ) -> Result<Option<RateStatus>, Rejection> {
        if rpm.is_none() && tpm.is_none() {
            return Ok(None);
        }
        let mut status = RateStatus::default();
        if let Some(rpm) = rpm {
            if rpm == 0 {
                // Refused by validation; a key stored before that (or a scope built in code)
                // is refused, as `tpm: 0` and the coordinator refuse, never let through once
                // a minute.
                return Err(rejection(scope, "requests", 0, Duration::from_secs(60)));
            }
            let bucket = bucket(&self.requests, scope, rpm);
            let mut b = lock(&bucket);
            b.resize(rpm);
            match b.take(1.0) {
                Ok(level) => {
                    let remaining = level.max(0.0) as u32;
                    status.limit_requests = Some(rpm);
                    status.remaining_requests = remaining;
                    status.reset_requests = refill_time(rpm, remaining);
                }
                Err(wait) => return Err(rejection(scope, "requests", rpm, wait)),
            }
        }
        if let Some(tpm) = tpm {
            if tokens > u64::from(tpm) {
                // More tokens than the whole per-minute quota: can never pass.
                return Err(rejection(scope, "tokens", tpm, Duration::from_secs(60)));
            }
            let bucket = bucket(&self.tokens, scope, tpm);
            let mut b = lock(&bucket);
            b.resize(tpm);
            match b.take(tokens.max(1) as f64) {
                Ok(level) => {
                    let remaining = level.max(0.0) as u32;
                    status.limit_tokens = Some(tpm);
                    status.remaining_tokens = remaining;
                    status.reset_tokens = refill_time(tpm, remaining);
                }
                Err(wait) => return Err(rejection(scope, "tokens", tpm, wait)),
            }
        }
        Ok(Some(status))
    }

    /// Gives back what [`Limits::check`] charged `scope` (one request, `tokens` tokens) when a
    /// later scope of the same request refused it: admission is all or nothing, as on the
    /// coordinator.
    pub fn refund(&self, scope: &str, rpm: Option<u32>, tpm: Option<u32>, tokens: u64) {
        if let Some(rpm) = rpm {
            lock(&bucket(&self.requests, scope, rpm)).settle(-1.0);
        }
        if let Some(tpm) = tpm {
            lock(&bucket(&self.tokens, scope, tpm)).settle(-(tokens.max(1) as f64));
        }
    }

    /// Settles `scope`'s token limit after the call: `estimated` tokens were taken at
    /// admission, `actual` (prompt + completion) were used; the difference is charged (even
    /// into debt) or given back. Never refuses. `tpm` only sizes a bucket the scope does not
    /// have yet (a request admitted before a reload settles into the bucket as it is now).
    pub fn settle_tokens(&self, scope: &str, tpm: u32, estimated: u64, actual: u64) {
        let delta = actual as f64 - estimated.max(1) as f64;
        if delta == 0.0 {
            return;
        }
        let bucket = bucket(&self.tokens, scope, tpm);
        lock(&bucket).settle(delta);
    }

    /// Charges `extra` tokens after the call (usage above the estimate). Never refuses.
    pub fn charge_tokens(&self, scope: &str, tpm: u32, extra: u64) {
        self.settle_tokens(scope, tpm, 0, extra.saturating_add(1));
    }
}

/// `scope`'s bucket, made full with `per_minute` when it has none.
fn bucket(map: &Buckets, scope: &str, per_minute: u32) -> Arc<Mutex<TokenBucket>> {
    lock(map)
        .entry(scope.to_string())
        .or_insert_with(|| Arc::new(Mutex::new(TokenBucket::new(per_minute))))
        .clone()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Time until a quota of `per_minute` with `remaining` left is full again.
pub fn refill_time(per_minute: u32, remaining: u32) -> Duration {
    let missing = per_minute.saturating_sub(remaining);
    Duration::from_secs_f64(60.0 * f64::from(missing) / f64::from(per_minute.max(1)))
}

/// 429 `rate_limit_exceeded` for `scope` over its `limit` of `what` (`requests`/`tokens`)
/// per minute, with `Retry-After` (`wait` rounded up, at least 1 s) and `x-ratelimit-*`.
pub fn rejection(scope: &str, what: &str, limit: u32, wait: Duration) -> Rejection {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    let error = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_error",
        format!("Rate limit reached for {scope}: {limit} {what} per minute. Try again in {secs}s."),
    )
    .with_code("rate_limit_exceeded");
    let mut headers = vec![("retry-after", secs.to_string())];
    let (l, r, reset) = match what {
        "requests" => (
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
        ),
        _ => (
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
        ),
    };
    headers.push((l, limit.to_string()));
    headers.push((r, "0".to_string()));
    headers.push((reset, format_duration(wait)));
    Rejection { error, headers }
}

/// OpenAI's duration format in rate-limit headers: `850ms`, `12s`, `1m30s`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    if s < 60 {
        return format!("{s}s");
    }
    format!("{}m{}s", s / 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_pass_up_to_the_burst_then_429() {
        let l = Limits::default();
        for i in 0..3 {
            let s = l.check("key:a", Some(3), None, 0).unwrap().unwrap();
            assert_eq!(s.remaining_requests, 2 - i);
        }
        let r = l.check("key:a", Some(3), None, 0).unwrap_err();
        assert_eq!(r.error.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.error.body.code, Some("rate_limit_exceeded".into()));
        let retry: u64 = r.headers[0].1.parse().unwrap();
        assert!((1..=20).contains(&retry), "{retry}");
        // Other scopes are independent.
        assert!(l.check("key:b", Some(3), None, 0).is_ok());
        assert_eq!(l.check("key:a", None, None, 0).unwrap(), None);
    }

    #[test]
    fn a_refund_gives_back_one_request_and_its_tokens() {
        let l = Limits::default();
        let s = l.check("key:a", Some(2), Some(100), 40).unwrap().unwrap();
        assert_eq!((s.remaining_requests, s.remaining_tokens), (1, 60));
        l.refund("key:a", Some(2), Some(100), 40);
        let s = l.check("key:a", Some(2), Some(100), 40).unwrap().unwrap();
        assert_eq!((s.remaining_requests, s.remaining_tokens), (1, 60));
    }

    #[test]
    fn a_quota_of_zero_refuses_every_request() {
        let l = Limits::default();
        for _ in 0..3 {
            let r = l.check("key:z", Some(0), None, 0).unwrap_err();
            assert_eq!(r.error.body.code, Some("rate_limit_exceeded".into()));
            assert_eq!(r.headers[0], ("retry-after", "60".to_string()));
            assert!(l.check("key:zt", None, Some(0), 0).is_err());
        }
    }

    #[test]
    fn tokens_are_charged_by_estimate_and_correction() {
        let l = Limits::default();
        let s = l.check("key:t", None, Some(100), 60).unwrap().unwrap();
        assert_eq!(s.remaining_tokens, 40);
        l.charge_tokens("key:t", 100, 30);
        let r = l.check("key:t", None, Some(100), 20).unwrap_err();
        assert!(r.error.body.message.contains("100 tokens per minute"));
        assert!(l.check("key:u", None, Some(100), 500).is_err());
        // Real usage far above the quota puts the scope in debt: refused for ~50 minutes.
        assert!(l.check("key:v", None, Some(1000), 10).is_ok());
        l.settle_tokens("key:v", 1000, 10, 50_010);
        let r = l.check("key:v", None, Some(1000), 1).unwrap_err();
        let retry: u64 = r.headers[0].1.parse().unwrap();
        assert!((2900..=3001).contains(&retry), "{retry}");
        // An overestimate is given back.
        assert!(l.check("key:w", None, Some(100), 90).is_ok());
        l.settle_tokens("key:w", 100, 90, 10);
        assert!(l.check("key:w", None, Some(100), 80).is_ok());
    }

    #[test]
    fn a_changed_quota_keeps_what_was_used() {
        let l = Limits::default();
        for _ in 0..5 {
            l.check("key:c", Some(5), None, 0).unwrap();
        }
        assert!(l.check("key:c", Some(5), None, 0).is_err());
        // Lowered to 4 by a reload: 5 were used, so no fresh burst of 4.
        assert!(l.check("key:c", Some(4), None, 0).is_err());
        // Raised to 8: the 3 not yet used.
        for left in [2, 1, 0] {
            let s = l.check("key:c", Some(8), None, 0).unwrap().unwrap();
            assert_eq!(s.remaining_requests, left);
        }
        assert!(l.check("key:c", Some(8), None, 0).is_err());
        // Back to 5: still all used (no old bucket to return to).
        assert!(l.check("key:c", Some(5), None, 0).is_err());

        // Tokens: a debt survives a change of the limit.
        l.check("key:d", None, Some(1000), 10).unwrap();
        l.settle_tokens("key:d", 1000, 10, 50_010);
        let r = l.check("key:d", None, Some(2000), 1).unwrap_err();
        let retry: u64 = r.headers[0].1.parse().unwrap();
        // 50,010 used of 2,000 a minute: 48,010 to refill at 2,000 a minute (~1,440 s).
        assert!((1430..=1441).contains(&retry), "{retry}");
        // A settlement admitted under the old limit lands in the same bucket.
        l.check("key:e", None, Some(100), 60).unwrap();
        l.settle_tokens("key:e", 50, 60, 90);
        let s = l.check("key:e", None, Some(100), 10).unwrap().unwrap();
        assert_eq!(s.remaining_tokens, 0);
    }

    #[test]
    fn durations_in_openai_format() {
        assert_eq!(format_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(format_duration(Duration::from_secs(12)), "12s");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
    }
}

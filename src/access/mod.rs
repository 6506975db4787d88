//! Who is calling and what they may spend: principals and keys ([`auth`], [`keys`]), rate
//! limits ([`limits`]) and budgets, brought together in [`Access`].
//!
//! Imports `api`, `config` and `store` only; never `http` or `gateway`. This is where a
//! shared coordinator plugs in: every admission decision goes through [`Access::admit`].

pub mod auth;
pub mod budget;
pub mod coord;
mod identify;
pub mod keys;
pub mod limits;
pub mod session;
pub mod validate;

use crate::api::ApiError;
use crate::config::Config;
use crate::store::backend::LogStore;
use auth::{ConfigKeys, Principal};
use identify::creators_of;
use keys::{KeyCache, Spend};
use limits::{Limits, Rejection};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest chain of keys made by keys that [`Access::authenticate`] follows (see
/// `check_creators`); a longer one (or a loop, which the admin API cannot make) is refused.
pub const MAX_CREATOR_DEPTH: usize = 16;

// The store that keeps the Responses API state and answers the response cache: the request
// log's SQLite file, or PostgreSQL (its own connection, shared by every replica).
pub use crate::store::state_db::StateDb;

/// Keys (config and database), rate limiters and spend. Cheap to clone (all shared).
#[derive(Clone)]
pub struct Access {
    keys: ConfigKeys,
    master_hash: Option<[u8; 32]>,
    limits_by_model: Arc<std::collections::BTreeMap<String, crate::config::RateLimitConfig>>,
    /// For each deployment that is not also a model name: the models listing it (their
    /// limits apply when it is addressed directly, see [`Config::model_scopes`]).
    owners: Arc<std::collections::BTreeMap<String, Vec<String>>>,
    /// Rate limiters (keys, models, deployments).
    pub limits: Arc<Limits>,
    /// Keys kept in the database (empty without a request log).
    pub db_keys: Arc<KeyCache>,
    key_db: Option<Arc<Mutex<Box<dyn LogStore>>>>,
    state_db: Option<StateDb>,
    spend: Arc<Spend>,
    reservations: Arc<budget::Reservations>,
    /// The shared coordinator (`coordination.redis`); `None`: limits are in-process.
    coordinator: Option<Arc<coord::RedisCoordinator>>,
    /// `/ui` login sessions.
    pub sessions: Arc<session::Sessions>,
    /// Failed `/ui` logins per client address.
    pub login_throttle: Arc<session::LoginThrottle>,
}

impl Access {
    /// Access over `config`'s master key, configured keys and model limits; `spend` is fed by
    /// the recorder.
    ///
    /// Errors: a configured key that cannot be used (`keys[i]: message`).
    pub fn new(config: &Config, spend: Arc<Spend>) -> Result<Self, String> {
        let keys = ConfigKeys::new(&config.keys).map_err(|(p, m)| format!("{p}: {m}"))?;
        let master_hash = config
            .server
            .master_key
            .as_deref()
            .filter(|k| !k.is_empty())
            .map(auth::hash_key);
        Ok(Access {
            keys,
            master_hash,
            limits_by_model: Arc::new(config.limits.models.clone()),
            owners: Arc::new(
                config
                    .deployments
                    .iter()
                    .map(|d| {
                        let scopes = config.model_scopes(&d.name);
                        let owners = scopes[1..].iter().map(|m| m.to_string()).collect();
                        (d.name.clone(), owners)
                    })
                    .collect(),
            ),
            limits: Arc::new(Limits::default()),
            db_keys: Arc::default(),
            key_db: None,
            state_db: None,
            spend,
            reservations: Arc::default(),
            sessions: Arc::default(),
            login_throttle: Arc::default(),
            coordinator: None,
        })
    }

    /// Connects the shared coordinator of `config.coordination` (no-op without one) and
    /// starts its probe. Call inside a tokio runtime.
    ///
    /// Errors: the URL does not parse.
    pub fn start_coordination(&mut self, config: &Config) -> Result<(), String> {
        if let Some(r) = &config.coordination.redis {
            self.coordinator = Some(coord::RedisCoordinator::start(r)?);
        }
        Ok(())
    }

    /// This access with `config`'s keys, master key and model limits (a config reload); the
    /// limiters, spend, reservations, key database and coordinator are kept.
    ///
    /// Errors: as [`Access::new`].
    pub fn reconfigured(&self, config: &Config) -> Result<Self, String> {
        let fresh = Access::new(config, self.spend.clone())?;
        Ok(Access {
            keys: fresh.keys,
            master_hash: fresh.master_hash,
            limits_by_model: fresh.limits_by_model,
            owners: fresh.owners,
            ..self.clone()
        })
    }

    /// Opens the key store (the request log's store: the SQLite file, or PostgreSQL shared
    /// by every replica), loads keys and this period's spend, and reloads them in the
    /// background: keys every [`keys::RELOAD_EVERY`] on SQLite; keys *and* spend every
    /// [`keys::SHARED_RELOAD_EVERY`] on PostgreSQL, so a key made or revoked on one replica
    /// is honoured by all within that bound and spend is the one total every replica adds to.
    /// The same store also keeps the Responses API state and answers the response cache
    /// ([`Access::state_db`]), on either backend.
    ///
    /// Errors: the store cannot be opened or read (`keys …: message`).
    pub fn open_key_db(&mut self, cfg: &crate::config::LogConfig) -> Result<(), String> {
        let shared = cfg.backend == crate::config::log::LogBackend::Postgres;
        let where_ = cfg.describe();
        let spend = self.spend.clone();
        let cache = self.db_keys.clone();
        let config_keys = self.keys.clone();
        // On a plain thread: the PostgreSQL client must not run inside the caller's runtime.
        // The state store is a connection of its own, so a key reload never waits for a
        // Responses read or a cache lookup (nor the other way round).
        let [store, state] = std::thread::scope(|s| {
            s.spawn(|| -> Result<[Box<dyn LogStore>; 2], String> {
                let mut store =
                    crate::store::connect(cfg).map_err(|e| format!("keys {where_}: {e}"))?;
                cache
                    .reload(&mut *store)
                    .map_err(|e| format!("keys {where_}: {e}"))?;
                let makers = cache.makers();
                let chain = |id: &str| creators_of(&config_keys, &makers, id);
                spend
                    .load(&mut *store, now_unix() * 1000, &chain)
                    .map_err(|e| format!("spend {where_}: {e}"))?;
                let state =
                    crate::store::connect(cfg).map_err(|e| format!("state {where_}: {e}"))?;
                Ok([store, state])
            })
            .join()
            .unwrap_or_else(|_| Err(format!("keys {where_}: opening panicked")))
        })?;
        self.state_db = Some(StateDb::new(state));
        let store = Arc::new(Mutex::new(store));
        self.key_db = Some(store.clone());
        let every = if shared {
            keys::SHARED_RELOAD_EVERY
        } else {
            keys::RELOAD_EVERY
        };
        let cache = Arc::downgrade(&self.db_keys);
        let spend = Arc::downgrade(&self.spend);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let (Some(cache), Some(spend)) = (cache.upgrade(), spend.upgrade()) else {
                    break;
                };
                let store = store.clone();
                let config_keys = config_keys.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    if let Ok(mut s) = store.lock() {
                        if let Err(e) = cache.reload(&mut **s) {
                            tracing::warn!(error = %e, "key reload failed; keeping the keys loaded before");
                        }
                        let makers = cache.makers();
                        let chain = |id: &str| creators_of(&config_keys, &makers, id);
                        if shared
                            && let Err(e) = spend.load(&mut **s, now_unix() * 1000, &chain)
                        {
                            tracing::warn!(error = %e, "spend reload failed; keeping the totals loaded before");
                        }
                    }
                })
                .await;
            }
        });
        Ok(())
    }

    /// The store of the Responses API state and the response cache (the request log's SQLite
    /// file, or PostgreSQL shared by every replica); `None` when the log is off.
    pub fn state_db(&self) -> Option<StateDb> {
        self.state_db.clone()
    }

    /// Runs `f` on the key store on the blocking pool and reloads the key cache after (admin
    /// API).
    ///
    /// Errors: 503 when the request log (and so the key store) is off.
    pub async fn with_key_db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn LogStore) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let Some(store) = self.key_db.clone() else {
            return Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "Keys are kept in the request log's database; it is off (log.prompts: off).",
            ));
        };
        let cache = self.db_keys.clone();
        tokio::task::spawn_blocking(move || {
            let mut s = store
                .lock()
                .map_err(|_| ApiError::internal("key database lock poisoned"))?;
            let out = f(&mut **s);
            let _ = cache.reload(&mut **s);
            Ok(out)
        })
        .await
        .map_err(|e| ApiError::internal(format!("key database task failed: {e}")))?
    }

    /// Checks the budgets the caller counts against at `now_ms` (its key's own, then its
    /// makers' up the chain, [`Principal::budgets`]). Over a budget: 429 `budget_exceeded`
    /// naming the reset time (and the maker, when it is a maker's budget); over a
    /// `remote_only` one, the request may still go to local deployments (returns
    /// `Ok(Some(reason))`: route locally only).
    pub fn check_budget(
        &self,
        principal: &Principal,
        now_ms: i64,
    ) -> Result<Option<String>, ApiError> {
        let mut local_only = None;
        for (id, budget) in principal.budgets() {
            let spent = self.spend.spent(id, budget, now_ms);
            if spent < budget.usd {
                continue;
            }
            let (_, reset) = keys::period_bounds(budget.period, now_ms);
            let whose = budget::whose(principal, id);
            if budget.remote_only {
                local_only.get_or_insert_with(|| {
                    let remote = if whose.is_empty() { "remote" } else { "Remote" };
                    format!(
                        "{whose}{remote} budget of {:.2} USD per {} spent; local deployments only until {}",
                        budget.usd,
                        period_name(budget.period),
                        keys::rfc3339(reset)
                    )
                });
                continue;
            }
            return Err(ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                format!(
                    "{whose}Budget exceeded: {spent:.4} of {:.2} USD per {} spent. It resets at {}.",
                    budget.usd,
                    period_name(budget.period),
                    keys::rfc3339(reset)
                ),
            )
            .with_code("budget_exceeded"));
        }
        Ok(local_only)
    }

    /// Checks the caller's model permission and the key and model rate limits (of the
    /// requested model, and of every model listing a deployment addressed by name), charging
    /// `prompt_tokens` (an estimate) to token limits.
    ///
    /// Errors: 403 `model_not_allowed`; 429 `rate_limit_exceeded` (with headers).
    pub fn admit(
        &self,
        principal: &mut Principal,
        model: &str,
        prompt_tokens: u64,
    ) -> Result<Vec<(&'static str, String)>, Rejection> {
        if !principal.may_use(model) {
            return Err(Rejection {
                error: ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "permission_error",
                    format!("This API key is not allowed to use the model `{model}`."),
                )
                .with_param("model")
                .with_code("model_not_allowed"),
                headers: Vec::new(),
            });
        }
        if self.coordinator.is_some() {
            // Budget and rate limits are decided by the coordinator at `reserve`.
            return Ok(Vec::new());
        }
        match self.check_budget(principal, now_unix() * 1000) {
            Ok(local_only) => principal.local_only = local_only,
            Err(error) => {
                return Err(Rejection {
                    error,
                    headers: Vec::new(),
                });
            }
        }
        self.local_limits(principal, model, prompt_tokens)
    }

    /// This replica's rate limits (in-process) of the caller's key, of the keys up its
    /// creator chain and of the model, charging `prompt_tokens`: all or nothing (a scope
    /// that refuses gives back what the ones before it charged).
    ///
    /// Errors: 429 `rate_limit_exceeded` (with headers).
    pub fn local_limits(
        &self,
        principal: &Principal,
        model: &str,
        prompt_tokens: u64,
    ) -> Result<Vec<(&'static str, String)>, Rejection> {
        let keys = principal
            .rate_scopes()
            .map(|(id, rpm, tpm)| (format!("key:{id}"), rpm, tpm));
        let models = self.model_scopes(model).into_iter().filter_map(|scope| {
            let l = self.limits_by_model.get(scope)?;
            Some((format!("model:{scope}"), l.rpm, l.tpm))
        });
        let mut headers = Vec::new();
        let mut charged: Vec<(String, Option<u32>, Option<u32>)> = Vec::new();
        for (scope, rpm, tpm) in keys.chain(models) {
            match self.limits.check(&scope, rpm, tpm, prompt_tokens) {
                Ok(status) => {
                    if let Some(st) = status
                        && headers.is_empty()
                    {
                        headers = st.headers();
                    }
                    charged.push((scope, rpm, tpm));
                }
                Err(rejection) => {
                    for (scope, rpm, tpm) in &charged {
                        self.limits.refund(scope, *rpm, *tpm, prompt_tokens);
                    }
                    return Err(rejection);
                }
            }
        }
        Ok(headers)
    }
}

impl Access {
    /// Reserves `cost` (the most this request may cost) against every budget the caller
    /// counts against (its key's and its makers', [`Principal::budgets`]), all or none;
    /// `None` when there is none. Drop the reservation after the real cost was recorded.
    ///
    /// Errors: 429 `budget_exceeded` when spent + reserved + its part of `cost` is over one
    /// of them ([`budget::Reservations::reserve`]).
    pub fn reserve_local(
        &self,
        principal: &Principal,
        cost: budget::MaxCost,
    ) -> Result<Option<budget::Reservation>, ApiError> {
        if principal.budgets().next().is_none() {
            return Ok(None);
        }
        self.reservations
            .reserve(&self.spend, principal, cost, now_unix() * 1000)
            .map(Some)
    }

    /// Whether limits and budgets are kept by a coordinator (Redis), so that reserving
    /// waits on a network round trip; without one, [`Access::reserve`] never waits.
    pub fn is_coordinated(&self) -> bool {
        self.coordinator.is_some()
    }

    /// Settles the token limits of a finished call (key and model scopes): `estimated` tokens
    /// were taken at [`Access::admit`], `actual` (prompt + completion tokens, as reported or
    /// estimated) were used. See [`Limits::settle_tokens`].
    pub fn settle_tokens(&self, principal: &Principal, model: &str, estimated: u64, actual: u64) {
        if self.coordinator.is_some() {
            // Settled on the coordinator ([`coord::Ticket::finish`]).
            return;
        }
        for (id, _, tpm) in principal.rate_scopes() {
            if let Some(tpm) = tpm {
                self.limits
                    .settle_tokens(&format!("key:{id}"), tpm, estimated, actual);
            }
        }
        for scope in self.model_scopes(model) {
            if let Some(tpm) = self.limits_by_model.get(scope).and_then(|l| l.tpm) {
                self.limits
                    .settle_tokens(&format!("model:{scope}"), tpm, estimated, actual);
            }
        }
    }

    /// The model scopes of a requested name: itself, plus the models listing it when it is a
    /// deployment addressed directly.
    fn model_scopes<'a>(&'a self, model: &'a str) -> Vec<&'a str> {
        let mut out = vec![model];
        if let Some(owners) = self.owners.get(model) {
            out.extend(owners.iter().map(String::as_str));
        }
        out
    }
}

fn period_name(p: crate::access::auth::BudgetPeriod) -> &'static str {
    match p {
        crate::access::auth::BudgetPeriod::Day => "day",
        crate::access::auth::BudgetPeriod::Month => "month",
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

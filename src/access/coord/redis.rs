//! The Redis/Valkey coordinator: one `FCALL sluice_v2_admit` per admission (every scope and
//! the budget reservations, all or nothing, on the server's clock), one `FCALL
//! sluice_v2_settle` when the request ends, and a probe that keeps [`RedisCoordinator::is_up`]
//! current and reloads the function library after the server lost it (a restart).

use super::{BudgetAsk, Settlement};
use crate::config::{OnUnavailable, RedisConfig};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The function library, loaded with `FUNCTION LOAD` (see the file for the contract).
pub const LIBRARY: &str = include_str!("sluice_v2.lua");
/// The library's versioned name.
pub const LIBRARY_NAME: &str = "sluice_v2";
const ADMIT: &str = "sluice_v2_admit";
const SETTLE: &str = "sluice_v2_settle";

/// A connection to Redis/Valkey and what the probe knows about it.
pub struct RedisCoordinator {
    conn: ConnectionManager,
    /// The `coordination.redis` block it was made from.
    pub config: RedisConfig,
    up: AtomicBool,
    since_ms: AtomicI64,
    last_error: Mutex<Option<String>>,
    /// Requests decided by `on_unavailable` while unreachable: fail_closed, fail_open, local.
    decisions: [AtomicU64; 3],
    /// Per budget key id: USD this replica has recorded as spent whose settle call has not
    /// returned yet ([`super::Ticket::settling`]); left out of the seed it sends.
    unsettled: Mutex<std::collections::HashMap<String, f64>>,
}

/// How an admission call ended when the server answered.
pub enum Answer {
    /// Admitted: the levels of the buckets after charging, in the order given.
    Admitted(Vec<f64>),
    /// Bucket `index` (0-based) lacks the cost; it is there after `wait_ms`.
    Rate { index: usize, wait_ms: u64 },
    /// Budget `index` (0-based, in the order asked) cannot hold the reservation: spent and
    /// reserved so far, USD.
    Budget {
        index: usize,
        spent: f64,
        reserved: f64,
    },
}

impl RedisCoordinator {
    /// A coordinator over `config` (no connection is made yet) and its probe task, which runs
    /// while the returned `Arc` lives. Call inside a tokio runtime.
    ///
    /// Errors: the URL or `ca_file` is unusable (validation rejects that earlier).
    pub fn start(config: &RedisConfig) -> Result<Arc<Self>, String> {
        let client = config
            .client()
            .map_err(|e| format!("coordination.redis: {e}"))?;
        let t = Duration::from_millis(config.timeout_ms);
        let cm = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(t))
            .set_response_timeout(Some(t))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(config.probe_interval_ms));
        let conn = ConnectionManager::new_lazy_with_config(client, cm)
            .map_err(|e| format!("coordination.redis: {e}"))?;
        let me = Arc::new(RedisCoordinator {
            conn,
            config: config.clone(),
            up: AtomicBool::new(false),
            since_ms: AtomicI64::new(super::now_ms()),
            last_error: Mutex::new(Some("not probed yet".into())),
            decisions: Default::default(),
            unsettled: Mutex::new(std::collections::HashMap::new()),
        });
        let weak = Arc::downgrade(&me);
        let every = Duration::from_millis(config.probe_interval_ms);
        tokio::spawn(async move {
            loop {
                let Some(me) = weak.upgrade() else { break };
                me.probe().await;
                drop(me);
                tokio::time::sleep(every).await;
            }
        });
        Ok(me)
    }

    /// One probe: `PING`; on the way back up, (re)loads the library. Updates the state.
    pub async fn probe(&self) {
        let mut c = self.conn.clone();
        let ping: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut c).await;
        match ping {
            Ok(_) if !self.is_up() => match self.load_library().await {
                Ok(()) => self.set_up(),
                Err(e) => self.set_down(&e),
            },
            Ok(_) => {}
            Err(e) => self.set_down(&e.to_string()),
        }
    }

    /// Loads [`LIBRARY`] with `REPLACE`: replicas of one release load the same code, and a
    /// library of the same name left by a development build is replaced (a release that
    /// changes the code changes the name, see the file).
    async fn load_library(&self) -> Result<(), String> {
        let mut c = self.conn.clone();
        let r: redis::RedisResult<String> = redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg("REPLACE")
            .arg(LIBRARY)
            .query_async(&mut c)
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.to_string().contains("already exists") => Ok(()),
            Err(e) => Err(format!("FUNCTION LOAD {LIBRARY_NAME}: {e}")),
        }
    }

    /// Whether the last probe or call reached the server.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// When the state last changed, Unix ms.
    pub fn since_ms(&self) -> i64 {
        self.since_ms.load(Ordering::Relaxed)
    }

    /// The last error while down.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    fn set_up(&self) {
        if !self.up.swap(true, Ordering::Relaxed) {
            self.since_ms.store(super::now_ms(), Ordering::Relaxed);
            *lock(&self.last_error) = None;
            tracing::info!(
                library = LIBRARY_NAME,
                "coordinator reachable: rate limits and budgets are shared again"
            );
        }
    }

    fn set_down(&self, error: &str) {
        *lock(&self.last_error) = Some(error.to_string());
        if self.up.swap(false, Ordering::Relaxed) {
            self.since_ms.store(super::now_ms(), Ordering::Relaxed);
            tracing::error!(
                error,
                on_unavailable = self.config.on_unavailable.as_str(),
                "coordinator unreachable"
            );
        }
    }

    /// Counts one request decided by `on_unavailable`.
    pub fn count_decision(&self, d: OnUnavailable) {
        self.decisions[d as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests decided by `on_unavailable` so far, per setting.
    pub fn decisions(&self) -> [(OnUnavailable, u64); 3] {
        [
            OnUnavailable::FailClosed,
            OnUnavailable::FailOpen,
            OnUnavailable::Local,
        ]
        .map(|d| (d, self.decisions[d as usize].load(Ordering::Relaxed)))
    }

    /// Runs `sluice_v2_admit` over `scopes` (each charged `cost`) and `budgets` (each
    /// reserving its `usd` under `reservation_id`). `Err` when the server could not be asked
    /// (down, timeout, error): the caller applies `on_unavailable`.
    pub async fn admit(
        &self,
        scopes: &[(String, u64, u32)],
        budgets: &[BudgetAsk],
        reservation_id: &str,
    ) -> Result<Answer, String> {
        if !self.is_up() {
            return Err(self.last_error().unwrap_or_else(|| "down".into()));
        }
        let mut cmd = redis::cmd("FCALL");
        cmd.arg(ADMIT).arg(scopes.len() + 3 * budgets.len());
        for (key, _, _) in scopes {
            cmd.arg(key);
        }
        for b in budgets {
            cmd.arg(&b.spend_key).arg(&b.hash_key).arg(&b.zset_key);
        }
        cmd.arg(scopes.len());
        for (_, cost, cap) in scopes {
            cmd.arg(*cost).arg(*cap);
        }
        cmd.arg(budgets.len())
            .arg(reservation_id)
            .arg(self.config.reservation_ttl_s * 1000);
        for b in budgets {
            cmd.arg(format!("{:.9}", b.usd))
                .arg(format!("{:.9}", b.budget_usd))
                .arg(format!("{:.9}", b.seed_spent))
                .arg(b.spend_ttl_s);
        }
        let reply: Vec<String> = self.call(&cmd).await?;
        parse_admit(&reply)
    }

    /// Runs `sluice_v2_settle` for a finished request that cost `cost_usd` on a `remote`
    /// deployment or a local one (a remote-only budget adds only a remote cost). Errors are
    /// logged: an unsettled reservation expires after `reservation_ttl_s`.
    pub async fn settle(&self, t: &Settlement, actual_tokens: u64, cost_usd: f64, remote: bool) {
        let cmd = settle_cmd(t, actual_tokens, cost_usd, remote);
        if let Err(e) = self.call::<i64>(&cmd).await {
            tracing::warn!(error = %e, "coordinator settle failed; the reservation expires on its own");
        }
    }

    /// USD recorded as spent on `key_id`'s budget whose settle call has not returned.
    pub fn unsettled(&self, key_id: &str) -> f64 {
        let map = self.unsettled.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key_id).copied().unwrap_or(0.0)
    }

    /// Counts `cost_usd` (of a `remote` answer or a local one) as on its way to each of
    /// `budgets` (what each counts of it: a remote-only budget nothing of a local answer).
    pub fn unsettled_more(&self, budgets: &[BudgetAsk], cost_usd: f64, remote: bool) {
        self.unsettled_by(budgets, cost_usd, remote, 1.0);
    }

    /// Takes back what [`RedisCoordinator::unsettled_more`] counted, once the settle returned.
    pub fn unsettled_less(&self, budgets: &[BudgetAsk], cost_usd: f64, remote: bool) {
        self.unsettled_by(budgets, cost_usd, remote, -1.0);
    }

    fn unsettled_by(&self, budgets: &[BudgetAsk], cost_usd: f64, remote: bool, sign: f64) {
        let mut map = self.unsettled.lock().unwrap_or_else(|e| e.into_inner());
        for b in budgets {
            if b.remote_only && !remote {
                continue;
            }
            let v = map.entry(b.key_id.clone()).or_insert(0.0);
            *v += sign * cost_usd;
            if v.abs() < 1e-12 {
                map.remove(&b.key_id);
            }
        }
    }

    /// [`RedisCoordinator::settle`] on a connection of its own, opened for this call and
    /// bounded by `coordination.redis.timeout_ms` (at least 1 s): for a settlement left when
    /// the runtime that drove the coordinator's connection is gone (the process exiting).
    ///
    /// Errors: the server could not be reached or refused the call in time.
    pub async fn settle_alone(
        &self,
        t: &Settlement,
        actual_tokens: u64,
        cost_usd: f64,
        remote: bool,
    ) -> Result<(), String> {
        let client = self.config.client().map_err(|e| e.to_string())?;
        let cmd = settle_cmd(t, actual_tokens, cost_usd, remote);
        let within = Duration::from_millis(self.config.timeout_ms).max(Duration::from_secs(1));
        let call = async {
            let mut c = client.get_multiplexed_async_connection().await?;
            cmd.query_async::<i64>(&mut c).await
        };
        match tokio::time::timeout(within, call).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} ms", within.as_millis())),
        }
    }

    async fn call<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, String> {
        let mut c = self.conn.clone();
        let e = match cmd.query_async::<T>(&mut c).await {
            Ok(v) => return Ok(v),
            Err(e) if e.to_string().contains("Function not found") => {
                // The server lost its functions (restarted empty): load them, ask again.
                self.load_library().await?;
                match cmd.query_async::<T>(&mut c).await {
                    Ok(v) => return Ok(v),
                    Err(e) => e,
                }
            }
            Err(e) => e,
        };
        // A lost connection marks the server down until the probe reaches it again; a slow
        // answer (timeout) only fails this call.
        if !e.is_timeout()
            && (e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal())
        {
            self.set_down(&e.to_string());
        }
        Err(e.to_string())
    }

    /// Key of one scope's bucket: `PREFIX:rl:SCOPE:requests` or `…:tokens`. The limit is not
    /// in the name: a changed limit keeps what was used (the bucket holds its capacity).
    pub fn bucket_key(&self, scope: &str, what: &str) -> String {
        format!("{}:rl:{scope}:{what}", self.config.prefix)
    }

    /// Keys of a key's budget: spend this period (from `period_start_ms`), reservations.
    pub fn budget_keys(&self, key_id: &str, period_start_ms: i64) -> [String; 3] {
        let p = &self.config.prefix;
        [
            format!("{p}:spend:{key_id}:{period_start_ms}"),
            format!("{p}:resv:{key_id}"),
            format!("{p}:resvz:{key_id}"),
        ]
    }
}

fn parse_admit(reply: &[String]) -> Result<Answer, String> {
    let num = |i: usize| -> Result<f64, String> {
        reply
            .get(i)
            .and_then(|s| s.parse::<f64>().ok())
            .ok_or_else(|| format!("{ADMIT}: unexpected reply {reply:?}"))
    };
    match (
        reply.first().map(String::as_str),
        reply.get(1).map(String::as_str),
    ) {
        (Some("1"), _) => (1..reply.len())
            .map(num)
            .collect::<Result<_, _>>()
            .map(Answer::Admitted),
        (Some("0"), Some("rate")) => Ok(Answer::Rate {
            index: (num(2)? as usize).saturating_sub(1),
            wait_ms: num(3)?.max(0.0) as u64,
        }),
        (Some("0"), Some("budget")) => Ok(Answer::Budget {
            index: (num(2)? as usize).saturating_sub(1),
            spent: num(3)?,
            reserved: num(4)?,
        }),
        _ => Err(format!("{ADMIT}: unexpected reply {reply:?}")),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// The `sluice_v2_settle` call for a finished request (see [`RedisCoordinator::settle`]).
fn settle_cmd(t: &Settlement, actual_tokens: u64, cost_usd: f64, remote: bool) -> redis::Cmd {
    let mut cmd = redis::cmd("FCALL");
    cmd.arg(SETTLE)
        .arg(t.token_buckets.len() + 3 * t.budgets.len());
    for (key, _) in &t.token_buckets {
        cmd.arg(key);
    }
    for b in &t.budgets {
        cmd.arg(&b.spend_key).arg(&b.hash_key).arg(&b.zset_key);
    }
    cmd.arg(t.token_buckets.len());
    let delta = actual_tokens as i64 - t.charged_tokens as i64;
    for (_, cap) in &t.token_buckets {
        cmd.arg(delta).arg(*cap);
    }
    cmd.arg(t.budgets.len()).arg(&t.reservation_id);
    for b in &t.budgets {
        let counted = if b.remote_only && !remote {
            0.0
        } else {
            cost_usd.max(0.0)
        };
        cmd.arg(format!("{counted:.9}")).arg(b.spend_ttl_s);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admit_replies_parse() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(
            matches!(parse_admit(&s(&["1", "29.000", "940.5"])), Ok(Answer::Admitted(l)) if l == [29.0, 940.5])
        );
        assert!(matches!(
            parse_admit(&s(&["0", "rate", "2", "1500"])),
            Ok(Answer::Rate {
                index: 1,
                wait_ms: 1500
            })
        ));
        assert!(matches!(
            parse_admit(&s(&["0", "budget", "2", "0.090000", "0.004"])),
            Ok(Answer::Budget { index: 1, spent, reserved }) if spent == 0.09 && reserved == 0.004
        ));
        assert!(parse_admit(&s(&["x"])).is_err());
        assert!(LIBRARY.starts_with("#!lua name=sluice_v2\n"));
    }
}

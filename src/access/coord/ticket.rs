//! What a request holds from its shared admission until it ends ([`Ticket`]), how it is
//! settled on the server, and the settlements left when the process exits
//! ([`settle_left_over`]).

use super::{BudgetAsk, RedisCoordinator};
use crate::access::budget::Reservation;
use std::sync::Arc;
use std::time::Duration;

/// What settling a shared admission needs.
#[derive(Debug, Default)]
pub struct Settlement {
    /// Token buckets charged at admission: key, tokens per minute.
    pub token_buckets: Vec<(String, u32)>,
    /// Tokens charged to each of them (the prompt estimate).
    pub charged_tokens: u64,
    /// The budgets reserved on, each with its amount.
    pub budgets: Vec<BudgetAsk>,
    /// The reservation's id on each budget (empty without budgets).
    pub reservation_id: String,
}

/// A shared admission held by one request. [`SharedTicket::finish`] settles it with the real
/// usage; dropped unfinished (error, client gone), it is released (nothing spent).
pub struct SharedTicket {
    pub(super) coord: Arc<RedisCoordinator>,
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) settlement: Option<Settlement>,
    /// The cost counted as on its way to the server ([`Ticket::settling`]), taken off once
    /// the settle call returns.
    pub(super) marked: Option<(f64, bool)>,
}

impl SharedTicket {
    fn settle(&mut self, tokens: Option<u64>, cost_usd: f64, remote: bool) {
        let Some(s) = self.settlement.take() else {
            return;
        };
        if s.token_buckets.is_empty() && s.budgets.is_empty() {
            return;
        }
        let marked = self.marked.take();
        let left = LeftOver {
            coord: self.coord.clone(),
            tokens: tokens.unwrap_or(s.charged_tokens),
            settlement: s,
            cost_usd,
            remote,
        };
        // Dropped unrun (the runtime shutting down with this stream still open), the task
        // leaves its settlement to `settle_left_over`.
        let mut pending = Pending(Some(left));
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if let Some(l) = pending.0.take() {
                        l.coord
                            .settle(&l.settlement, l.tokens, l.cost_usd, l.remote)
                            .await;
                        if let Some((cost, remote)) = marked {
                            l.coord.unsettled_less(&l.settlement.budgets, cost, remote);
                        }
                    }
                });
            }
            Err(_) => drop(pending),
        }
    }
}

impl Drop for SharedTicket {
    fn drop(&mut self) {
        self.settle(None, 0.0, false);
    }
}

/// A settlement whose task could not run: the process was exiting.
struct LeftOver {
    coord: Arc<RedisCoordinator>,
    settlement: Settlement,
    tokens: u64,
    cost_usd: f64,
    remote: bool,
}

/// Settlements left by tasks the runtime dropped before they ran ([`settle_left_over`]).
static LEFT_OVER: std::sync::Mutex<Vec<LeftOver>> = std::sync::Mutex::new(Vec::new());

/// A settlement on its way: given to [`LEFT_OVER`] when dropped before it was made.
struct Pending(Option<LeftOver>);

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(l) = self.0.take() {
            LEFT_OVER
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(l);
        }
    }
}

/// Makes the settlements whose tasks the serving runtimes dropped unrun when they shut down
/// (streams still open at exit, ended with the runtime), each on a connection of its own,
/// within `within` overall; what cannot be made is logged (its reservation expires after
/// `reservation_ttl_s`, and the server's spend catches up from this replica's log when it
/// next seeds it). Call once the serving runtimes are gone, before the process exits.
/// Returns how many were made.
pub fn settle_left_over(within: Duration) -> usize {
    let left: Vec<LeftOver> = std::mem::take(
        &mut *LEFT_OVER
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    if left.is_empty() {
        return 0;
    }
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return 0;
    };
    let total = left.len();
    let made = rt.block_on(async {
        let mut made = 0;
        let all = async {
            for l in &left {
                match l
                    .coord
                    .settle_alone(&l.settlement, l.tokens, l.cost_usd, l.remote)
                    .await
                {
                    Ok(()) => made += 1,
                    Err(e) => tracing::warn!(error = %e, "coordinator settle at exit failed; the reservation expires on its own"),
                }
            }
        };
        let _ = tokio::time::timeout(within, all).await;
        made
    });
    // Not waiting for a name lookup still running on a blocking thread.
    rt.shutdown_background();
    if made < total {
        tracing::warn!(
            made,
            total,
            "not every coordinator settlement was made at exit"
        );
    }
    made
}

/// What a request holds from [`Access::reserve`] until it ends.
pub enum Ticket {
    /// In-process budget reservation (given back when dropped).
    Local(Reservation),
    /// Shared admission (rate limits and budget on the coordinator).
    Shared(SharedTicket),
}

impl Ticket {
    /// The `x-ratelimit-*` headers of a shared admission (those of the first limited scope:
    /// the key's, else the model's); none in-process (there they come from
    /// [`Access::admit`]).
    pub fn take_headers(&mut self) -> Vec<(&'static str, String)> {
        match self {
            Ticket::Local(_) => Vec::new(),
            Ticket::Shared(t) => std::mem::take(&mut t.headers),
        }
    }

    /// Settles with the real usage: `tokens` (prompt + completion) and `cost_usd`, spent on a
    /// `remote` deployment or a local one. In-process the reservation is given back (the cost
    /// is already in the spend); shared, the server adds the cost to the spend of each budget
    /// that counts it (a `remote_only` one only when `remote`), frees the reservation and
    /// corrects the token buckets.
    /// Call before the request's cost goes into this replica's spend (its row): a shared
    /// ticket counts the cost as on its way to the server until its settle call returns, so
    /// an admission meanwhile does not seed the server with it (the server would then count
    /// it twice: once from the seed, once from the settle).
    pub fn settling(&mut self, cost_usd: Option<f64>, remote: bool) {
        if let Ticket::Shared(t) = self
            && let (Some(s), Some(cost)) = (&t.settlement, cost_usd.filter(|c| *c > 0.0))
        {
            t.coord.unsettled_more(&s.budgets, cost, remote);
            t.marked = Some((cost, remote));
        }
    }

    pub fn finish(self, tokens: u64, cost_usd: Option<f64>, remote: bool) {
        match self {
            Ticket::Local(r) => drop(r),
            Ticket::Shared(mut t) => t.settle(Some(tokens), cost_usd.unwrap_or(0.0), remote),
        }
    }
}

//! What every PostgreSQL session of Sluice sets, so that one replica that lost its connection
//! mid-transaction cannot stall the others (docs/scaling.md).

use crate::store::StoreError;
use postgres::Client;

/// Settings of every session, set when it opens unless the server's configuration, the role
/// or the database already sets them (`pg_settings.source` not `default`): the server ends a
/// session of ours left idle inside a transaction for 30 s (its client gone silent), which
/// releases its locks, and probes a silent client after 10 s (5 s × 3) instead of its
/// default two hours. Behind a pooler in transaction mode these hold only for the pooler's
/// connection that ran them (set them on the role there); the writer's lock timeout does
/// not depend on them ([`APPEND_LOCK_TIMEOUT`]).
pub const SESSION_SETTINGS: [(&str, &str); 4] = [
    ("idle_in_transaction_session_timeout", "30000"),
    ("tcp_keepalives_idle", "10"),
    ("tcp_keepalives_interval", "5"),
    ("tcp_keepalives_count", "3"),
];

/// The append transaction's `SET LOCAL lock_timeout`: a writer waiting longer for the
/// chain's head row (held by another writer, or by a session whose client went silent)
/// fails ([`crate::store::StoreError::Busy`]); the batch is spilled at once and replayed later,
/// instead of waiting for as long as the holder lives. Per transaction, so it holds behind any pooler.
pub const APPEND_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '2s'";

/// Sets [`SESSION_SETTINGS`] on a new connection, each unless something other than the
/// built-in default already sets it (the server's file, the role, the database, the URL's
/// `options`): an operator's own value wins.
///
/// Errors: the server refused a query.
pub fn apply_session_settings(c: &mut Client) -> Result<(), StoreError> {
    let names: Vec<&str> = SESSION_SETTINGS.iter().map(|(n, _)| *n).collect();
    let set_elsewhere: Vec<String> = c
        .query(
            "SELECT name FROM pg_settings WHERE name = ANY($1) AND source <> 'default'",
            &[&names],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let sets: String = SESSION_SETTINGS
        .iter()
        .filter(|(n, _)| !set_elsewhere.iter().any(|s| s == n))
        .map(|(n, v)| format!("SET {n} = {v};"))
        .collect();
    if !sets.is_empty() {
        c.batch_execute(&sets)?;
    }
    Ok(())
}

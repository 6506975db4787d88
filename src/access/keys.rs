//! Virtual keys kept in the request log's SQLite database (table `api_keys`, migration
//! `0002_keys.sql`), an in-memory cache of them for the request path, and per-key spend for
//! budgets.
//!
//! A key's secret is `sk-sluice-` + 32 random bytes in hex; it is shown once at creation and
//! stored only as its SHA-256. The request path never touches SQLite: it reads the cache,
//! which is reloaded every [`RELOAD_EVERY`] (so keys made or revoked by the CLI in another
//! process take effect within that time) and at once for changes made through the admin API.

use crate::access::auth::{Budget, BudgetPeriod, KeySpec, hash_key, hashes_equal};
use crate::store::StoreError;
use crate::store::backend::{KeyRow, LogStore};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;
use std::time::Duration;

/// How often the cache is reloaded from a SQLite database.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);
/// How often keys and spend are reloaded from PostgreSQL (shared by the replicas): a key
/// created or revoked on one replica is honoured by every other within this plus one query.
pub const SHARED_RELOAD_EVERY: Duration = Duration::from_secs(1);

/// A stored key, without its secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredKey {
    /// Key id (`key_…`).
    pub id: String,
    /// When it was created, Unix ms.
    pub created_ms: i64,
    /// Its settings (`disabled` is true once revoked).
    #[serde(flatten)]
    pub spec: KeySpec,
}

/// Makes a new key in `store`: returns the stored row and the secret (shown once).
///
/// Errors: a key with that name exists; database errors.
pub fn create(
    store: &mut dyn LogStore,
    mut spec: KeySpec,
    now_ms: i64,
) -> Result<(StoredKey, String), StoreError> {
    let secret = format!("sk-sluice-{}", hex::encode(rand::random::<[u8; 32]>()));
    let id = format!("key_{}", uuid::Uuid::now_v7().simple());
    spec.key = None;
    spec.sha256 = None;
    let json = serde_json::to_string(&spec).map_err(|e| StoreError::Io(e.to_string()))?;
    let row = KeyRow {
        id: id.clone(),
        name: spec.name.clone(),
        hash: hash_key(&secret),
        created_ms: now_ms,
        disabled: false,
        spec: json,
    };
    if !store.insert_key(&row)? {
        return Err(StoreError::Io(format!(
            "a key named `{}` already exists",
            spec.name
        )));
    }
    Ok((
        StoredKey {
            id,
            created_ms: now_ms,
            spec,
        },
        secret,
    ))
}

/// Every key, oldest first (a key whose stored settings do not parse is an error).
pub fn list(store: &mut dyn LogStore) -> Result<Vec<StoredKey>, StoreError> {
    store.keys()?.into_iter().map(stored).collect()
}

/// The key with this id or name.
pub fn get(store: &mut dyn LogStore, id_or_name: &str) -> Result<Option<StoredKey>, StoreError> {
    store
        .keys()?
        .into_iter()
        .find(|k| k.id == id_or_name || k.name == id_or_name)
        .map(stored)
        .transpose()
}

/// Revokes the key with this id or name. Returns false when there is none.
pub fn revoke(store: &mut dyn LogStore, id_or_name: &str) -> Result<bool, StoreError> {
    store.revoke_key(id_or_name)
}

/// Whether the key `id_or_name` was made, directly or through keys it made, by the key
/// `maker` (`created_by`, followed up at most 64 makers): what a key other than the master key
/// may revoke. `false` for a key not found.
///
/// Errors: the store's.
pub fn made_by(
    store: &mut dyn LogStore,
    id_or_name: &str,
    maker: &str,
) -> Result<bool, StoreError> {
    let all = list(store)?;
    let Some(mut key) = all
        .iter()
        .find(|k| k.id == id_or_name || k.spec.name == id_or_name)
    else {
        return Ok(false);
    };
    for _ in 0..64 {
        match key.spec.created_by.as_deref() {
            Some(by) if by == maker => return Ok(true),
            Some(by) => match all.iter().find(|k| k.id == by) {
                Some(up) => key = up,
                None => return Ok(false),
            },
            None => return Ok(false),
        }
    }
    Ok(false)
}

fn stored(k: KeyRow) -> Result<StoredKey, StoreError> {
    match serde_json::from_str::<KeySpec>(&k.spec) {
        Ok(mut spec) => {
            spec.disabled |= k.disabled;
            Ok(StoredKey {
                id: k.id,
                created_ms: k.created_ms,
                spec,
            })
        }
        Err(e) => Err(StoreError::Io(format!("key {}: bad spec: {e}", k.id))),
    }
}

fn all_with_hashes(store: &mut dyn LogStore) -> Result<Vec<([u8; 32], StoredKey)>, StoreError> {
    Ok(store
        .keys()?
        .into_iter()
        .filter_map(|k| {
            let hash = k.hash;
            stored(k).ok().map(|s| (hash, s))
        })
        .collect())
}

/// The database keys, in memory.
#[derive(Debug, Default)]
pub struct KeyCache {
    keys: RwLock<Vec<([u8; 32], StoredKey)>>,
}

impl KeyCache {
    /// Reloads every key from `store`.
    pub fn reload(&self, store: &mut dyn LogStore) -> Result<(), StoreError> {
        let all = all_with_hashes(store)?;
        match self.keys.write() {
            Ok(mut g) => *g = all,
            Err(p) => *p.into_inner() = all,
        }
        Ok(())
    }

    /// The key whose hash is `hash` (each compared in constant time).
    pub fn find(&self, hash: &[u8; 32]) -> Option<StoredKey> {
        let guard = match self.keys.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let mut found = None;
        for (h, k) in guard.iter() {
            if hashes_equal(h, hash) {
                found = Some(k.clone());
            }
        }
        found
    }

    /// Each key's maker (`created_by`) by key id, for keys that have one: read once where
    /// many chains are followed (loading spend).
    pub fn makers(&self) -> std::collections::HashMap<String, String> {
        let guard = match self.keys.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        guard
            .iter()
            .filter_map(|(_, k)| Some((k.id.clone(), k.spec.created_by.clone()?)))
            .collect()
    }

    /// `f` of the settings of the key with id `id`, read in place (key ids are not secret:
    /// no constant time). Linear in the keys held.
    pub fn with_spec<T>(&self, id: &str, f: impl FnOnce(&KeySpec) -> T) -> Option<T> {
        let guard = match self.keys.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        guard
            .iter()
            .find(|(_, k)| k.id == id)
            .map(|(_, k)| f(&k.spec))
    }
}

/// Spend per key and UTC day, USD: `(all, remote only)`. Kept in memory, loaded from the log
/// at start and added to as requests finish.
#[derive(Debug, Default)]
pub struct Spend {
    days: RwLock<HashMap<String, DaySpend>>,
}

/// Spend of one key by UTC day number: `(all, remote only)` in USD.
type DaySpend = BTreeMap<i64, (f64, f64)>;

const DAY_MS: i64 = 86_400_000;

impl Spend {
    /// Loads the spend of the current UTC month from the store (SQLite: summed from the
    /// request log; PostgreSQL: the `spend` table every replica adds to), replacing what is
    /// in memory. Each key's spend is counted on the keys up its creator chain too
    /// (`creators_of`: the ids of a key's makers, see [`Spend::add`]).
    pub fn load(
        &self,
        store: &mut dyn LogStore,
        now_ms: i64,
        creators_of: &dyn Fn(&str) -> Vec<String>,
    ) -> Result<(), StoreError> {
        let (from, _) = period_bounds(BudgetPeriod::Month, now_ms);
        let mut map: HashMap<String, DaySpend> = HashMap::new();
        for d in store.spend_since(from)? {
            for id in std::iter::once(d.key_id.clone()).chain(creators_of(&d.key_id)) {
                let slot = map
                    .entry(id)
                    .or_default()
                    .entry(d.day)
                    .or_insert((0.0, 0.0));
                slot.0 += d.all_usd;
                slot.1 += d.remote_usd;
            }
        }
        match self.days.write() {
            Ok(mut g) => *g = map,
            Err(p) => *p.into_inner() = map,
        }
        Ok(())
    }

    /// Adds one request's cost to each of `key_ids`: the key that made the request, then the
    /// keys up its creator chain (a key's spend includes what the keys it made spent, so
    /// its budget holds for them too).
    pub fn add<'a>(
        &self,
        key_ids: impl IntoIterator<Item = &'a str>,
        started_ms: i64,
        cost_usd: f64,
        remote: bool,
    ) {
        if cost_usd <= 0.0 {
            return;
        }
        let mut g = match self.days.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for key_id in key_ids {
            let slot = g
                .entry(key_id.to_string())
                .or_default()
                .entry(started_ms.div_euclid(DAY_MS))
                .or_insert((0.0, 0.0));
            slot.0 += cost_usd;
            if remote {
                slot.1 += cost_usd;
            }
        }
    }

    /// What `key_id` spent in the budget's current period at `now_ms` (remote spend only when
    /// `remote_only`), USD.
    pub fn spent(&self, key_id: &str, budget: &Budget, now_ms: i64) -> f64 {
        let (from, to) = period_bounds(budget.period, now_ms);
        let g = match self.days.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let Some(days) = g.get(key_id) else {
            return 0.0;
        };
        days.range(from.div_euclid(DAY_MS)..to.div_euclid(DAY_MS))
            .map(|(_, (all, remote))| if budget.remote_only { *remote } else { *all })
            .sum()
    }
}

/// The UTC calendar period containing `now_ms`: `[start, end)` in Unix ms.
pub fn period_bounds(period: BudgetPeriod, now_ms: i64) -> (i64, i64) {
    let day = now_ms.div_euclid(DAY_MS);
    match period {
        BudgetPeriod::Day => (day * DAY_MS, (day + 1) * DAY_MS),
        BudgetPeriod::Month => {
            let date = time::OffsetDateTime::from_unix_timestamp(day * 86_400)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
                .date();
            let first = date.replace_day(1).unwrap_or(date);
            let next = if first.month() == time::Month::December {
                time::Date::from_calendar_date(first.year() + 1, time::Month::January, 1)
            } else {
                time::Date::from_calendar_date(first.year(), first.month().next(), 1)
            }
            .unwrap_or(first);
            let ms = |d: time::Date| d.midnight().assume_utc().unix_timestamp() * 1000;
            (ms(first), ms(next))
        }
    }
}

/// RFC 3339 text of a Unix ms time.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> crate::store::sqlite::SqliteStore {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        crate::store::migrate(&c).unwrap();
        crate::store::sqlite::SqliteStore::new(c)
    }

    #[test]
    fn create_list_find_revoke() {
        let mut c = db();
        let spec = KeySpec {
            name: "app".into(),
            rpm: Some(5),
            ..Default::default()
        };
        let (k, secret) = create(&mut c, spec.clone(), 1000).unwrap();
        assert!(secret.starts_with("sk-sluice-"));
        assert_eq!(secret.len(), "sk-sluice-".len() + 64);
        assert!(create(&mut c, spec, 1001).is_err());
        let cache = KeyCache::default();
        cache.reload(&mut c).unwrap();
        assert_eq!(cache.find(&hash_key(&secret)).unwrap().id, k.id);
        assert!(cache.find(&hash_key("sk-other")).is_none());
        // The secret is nowhere in the database.
        let dump: String = c
            .conn
            .query_row(
                "SELECT group_concat(spec) || group_concat(hex(hash)) FROM api_keys",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!dump.contains(&secret));
        assert!(revoke(&mut c, "app").unwrap());
        cache.reload(&mut c).unwrap();
        assert!(cache.find(&hash_key(&secret)).unwrap().spec.disabled);
        assert_eq!(list(&mut c).unwrap().len(), 1);
        assert!(get(&mut c, &k.id).unwrap().unwrap().spec.disabled);
        assert!(!revoke(&mut c, "nope").unwrap());
    }

    #[test]
    fn periods_are_utc_calendar_periods() {
        // 2026-11-29T10:00:00Z
        let now = 1_795_946_400_000;
        assert_eq!(
            rfc3339(period_bounds(BudgetPeriod::Day, now).1),
            "2026-11-30T00:00:00Z"
        );
        let (from, to) = period_bounds(BudgetPeriod::Month, now);
        assert_eq!(
            (rfc3339(from).as_str(), rfc3339(to).as_str()),
            ("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")
        );
        let dec = 1_798_500_000_000; // 2026-12-29
        assert_eq!(
            rfc3339(period_bounds(BudgetPeriod::Month, dec).1),
            "2027-01-01T00:00:00Z"
        );
    }

    #[test]
    fn spend_by_period_and_remote_only() {
        let s = Spend::default();
        let now = 1_795_946_400_000; // 2026-11-29
        s.add(["k"], now, 2.0, true);
        s.add(["k"], now, 1.0, false);
        s.add(["k"], now - 3 * DAY_MS, 4.0, true);
        let day = Budget {
            usd: 5.0,
            period: BudgetPeriod::Day,
            remote_only: false,
        };
        let month = Budget {
            usd: 5.0,
            period: BudgetPeriod::Month,
            remote_only: false,
        };
        let remote_month = Budget {
            remote_only: true,
            ..month.clone()
        };
        assert_eq!(s.spent("k", &day, now), 3.0);
        assert_eq!(s.spent("k", &month, now), 7.0);
        assert_eq!(s.spent("k", &remote_month, now), 6.0);
        // The next day the daily spend starts again; the next month too.
        assert_eq!(s.spent("k", &day, now + DAY_MS), 0.0);
        assert_eq!(s.spent("k", &month, now + 3 * DAY_MS), 0.0);
    }
}

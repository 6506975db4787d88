//! Reads of the request log for the CLI, the admin API and `/ui`. All reads are plain
//! `SELECT`s on their own connection; in WAL mode they run while `sluice serve` writes.

use super::StoreError;
use super::row::{LogRow, read_list};
use rusqlite::Connection;
use rusqlite::types::Value as Sql;
use serde::Serialize;

/// Which rows `sluice logs` and `GET /admin/logs` list. Every field narrows the list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogFilter {
    /// Rows that started at or after this Unix time, ms.
    pub since_ms: Option<i64>,
    /// `requested_model` equals.
    pub model: Option<String>,
    /// `deployment` equals.
    pub deployment: Option<String>,
    /// Status class or code.
    pub status: Option<StatusFilter>,
    /// `api_key_id` equals.
    pub key: Option<String>,
    /// Case-insensitive text in the id, request body, response, error message or end user.
    pub grep: Option<String>,
    /// Keyset cursor: rows with `seq` below this (the previous page's last `seq`).
    pub before_seq: Option<i64>,
    /// Most rows returned (newest first).
    pub limit: usize,
}

/// `--status error|ok|CODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// Status below 400.
    Ok,
    /// Status 400 and up (499 included).
    Error,
    /// Exactly this status.
    Code(i64),
}

impl StatusFilter {
    /// Parses `ok`, `error` or a status code.
    ///
    /// Errors: anything else.
    pub fn parse(s: &str) -> Result<StatusFilter, StoreError> {
        match s {
            "ok" => Ok(StatusFilter::Ok),
            "error" => Ok(StatusFilter::Error),
            _ => s
                .parse::<i64>()
                .ok()
                .filter(|c| (100..=999).contains(c))
                .map(StatusFilter::Code)
                .ok_or_else(|| {
                    StoreError::Invalid(format!(
                        "bad status `{s}`: use ok, error or a status code such as 502"
                    ))
                }),
        }
    }
}

/// Parses a `--since`/`--before` value into Unix ms: a duration back from `now_ms`
/// (`90s`, `15m`, `1h`, `7d`, `2w`), a date (`2026-11-01`, midnight UTC), or an RFC 3339
/// time (`2026-11-01T12:00:00Z`).
///
/// Errors: none of these.
pub fn parse_time(s: &str, now_ms: i64) -> Result<i64, StoreError> {
    let bad = || {
        StoreError::Invalid(format!(
            "bad time `{s}`: use a duration (30m, 1h, 7d, 2w), a date (2026-11-01) or RFC 3339"
        ))
    };
    let s = s.trim();
    if let Some(unit) = s.chars().last().filter(|c| c.is_ascii_alphabetic())
        && let Ok(n) = s[..s.len() - 1].parse::<i64>()
    {
        let ms = match unit {
            's' => 1_000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            'w' => 7 * 86_400_000,
            _ => return Err(bad()),
        };
        return Ok(now_ms - n.saturating_mul(ms));
    }
    let date_fmt = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(s, date_fmt) {
        return Ok(d.midnight().assume_utc().unix_timestamp() * 1000);
    }
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    Err(bad())
}

/// The text `--grep` searches (an SQL expression valid on both stores).
pub const GREP_TEXT: &str = "coalesce(id,'') || ' ' || coalesce(request_body,'') || ' ' || \
     coalesce(response_content,'') || ' ' || coalesce(response_tool_calls,'') || ' ' || \
     coalesce(error_message,'') || ' ' || coalesce(end_user,'')";

/// Rows matching `f`, newest (highest `seq`) first.
pub fn list(conn: &Connection, f: &LogFilter) -> Result<Vec<LogRow>, StoreError> {
    let mut wheres: Vec<String> = Vec::new();
    let mut args: Vec<Sql> = Vec::new();
    let mut add = |cond: &str, v: Sql| {
        args.push(v);
        wheres.push(cond.replace('?', &format!("?{}", args.len())));
    };
    if let Some(t) = f.since_ms {
        add("started_ms >= ?", Sql::Integer(t));
    }
    if let Some(m) = &f.model {
        add("requested_model = ?", Sql::Text(m.clone()));
    }
    if let Some(d) = &f.deployment {
        add("deployment = ?", Sql::Text(d.clone()));
    }
    if let Some(k) = &f.key {
        add("api_key_id = ?", Sql::Text(k.clone()));
    }
    if let Some(c) = f.before_seq {
        add("seq < ?", Sql::Integer(c));
    }
    match f.status {
        Some(StatusFilter::Ok) => add("status < ?", Sql::Integer(400)),
        Some(StatusFilter::Error) => add("status >= ?", Sql::Integer(400)),
        Some(StatusFilter::Code(c)) => add("status = ?", Sql::Integer(c)),
        None => {}
    }
    if let Some(g) = &f.grep {
        add(
            &format!("instr(lower({GREP_TEXT}), lower(?)) > 0"),
            Sql::Text(g.clone()),
        );
    }
    let cond = if wheres.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", wheres.join(" AND "))
    };
    let sql = format!(
        "SELECT {} FROM requests {cond} ORDER BY seq DESC LIMIT {}",
        read_list(),
        f.limit.min(1_000_000)
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), LogRow::from_sql)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Rows that started at or after `since_ms`, oldest first (for export).
pub fn all_since(conn: &Connection, since_ms: Option<i64>) -> Result<Vec<LogRow>, StoreError> {
    let sql = format!(
        "SELECT {} FROM requests WHERE started_ms >= ?1 ORDER BY seq",
        read_list()
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map([since_ms.unwrap_or(i64::MIN)], LogRow::from_sql)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The row with request id `id` (the latest, when a client reused an id); else, when `id` is
/// a number, the row with that `seq`.
pub fn get(conn: &Connection, id: &str) -> Result<Option<LogRow>, StoreError> {
    by_id_or_seq(conn, &read_list(), id, LogRow::from_sql)
}

/// The latest row with request id `id` ([`latest_by_id`]); else, when `id` is a number, the
/// row with that `seq`. Its `columns` read by `map`.
pub(crate) fn by_id_or_seq<T>(
    conn: &Connection,
    columns: &str,
    id: &str,
    mut map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>, StoreError> {
    if let Some(r) = latest_by_id(conn, columns, id, &mut map)? {
        return Ok(Some(r));
    }
    let Ok(seq) = id.parse::<i64>() else {
        return Ok(None);
    };
    let sql = format!("SELECT {columns} FROM requests WHERE seq = ?1");
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query([seq])?;
    match rows.next()? {
        Some(r) => Ok(Some(map(r)?)),
        None => Ok(None),
    }
}

/// The latest row with request id `id`, its `columns` read by `map`. The id has no index
/// (migration 0008): when it carries a time ([`super::id_time_ms`], Sluice's own ids), the
/// rows that started within [`super::ID_WINDOW_MS`] of it are searched first, through
/// `requests_started`; otherwise, or when none matches, every row from the newest back until
/// the first match (quick for recent requests, a full read of the log for an unknown id).
fn latest_by_id<T>(
    conn: &Connection,
    columns: &str,
    id: &str,
    mut map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>, StoreError> {
    if let Some(t) = super::id_time_ms(id) {
        let sql = by_id_in_window(columns, false);
        let window = (t - super::ID_WINDOW_MS, t + super::ID_WINDOW_MS);
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query(rusqlite::params![id, window.0, window.1])?;
        if let Some(r) = rows.next()? {
            return Ok(Some(map(r)?));
        }
    }
    let sql = format!("SELECT {columns} FROM requests WHERE id = ?1 ORDER BY seq DESC LIMIT 1");
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query([id])?;
    match rows.next()? {
        Some(r) => Ok(Some(map(r)?)),
        None => Ok(None),
    }
}

/// The windowed lookup of [`latest_by_id`], `$`-numbered for PostgreSQL when `pg`: `1` the
/// id, `2..3` the `started_ms` bounds. The latest match is found with `max(seq)` rather than
/// `ORDER BY seq DESC LIMIT 1`, which a planner may serve by walking `seq` back from the
/// newest row instead of reading the window through `requests_started`.
pub(crate) fn by_id_in_window(columns: &str, pg: bool) -> String {
    let p = if pg { '$' } else { '?' };
    format!(
        "SELECT {columns} FROM requests WHERE seq = (SELECT max(seq) FROM requests \
         WHERE started_ms BETWEEN {p}2 AND {p}3 AND id = {p}1)"
    )
}

/// `--by` of `sluice usage` and `GET /admin/usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// `requested_model`.
    Model,
    /// `deployment`.
    Deployment,
    /// `api_key_id`.
    Key,
    /// `end_user`.
    User,
    /// UTC day of `started_ms`.
    Day,
    /// `hosting`.
    Hosting,
    /// `openness`.
    Openness,
}

impl GroupBy {
    /// Parses `model|deployment|key|user|day|hosting|openness`.
    ///
    /// Errors: anything else.
    pub fn parse(s: &str) -> Result<GroupBy, StoreError> {
        Ok(match s {
            "model" => GroupBy::Model,
            "deployment" => GroupBy::Deployment,
            "key" => GroupBy::Key,
            "user" => GroupBy::User,
            "day" => GroupBy::Day,
            "hosting" => GroupBy::Hosting,
            "openness" => GroupBy::Openness,
            _ => {
                return Err(StoreError::Invalid(format!(
                    "bad group `{s}`: use model, deployment, key, user, day, hosting or openness"
                )));
            }
        })
    }

    pub(crate) fn column(self) -> &'static str {
        match self {
            GroupBy::Model => "requested_model",
            GroupBy::Deployment => "deployment",
            GroupBy::Key => "api_key_id",
            GroupBy::User => "end_user",
            GroupBy::Day => "strftime('%Y-%m-%d', started_ms / 1000, 'unixepoch')",
            GroupBy::Hosting => "hosting",
            GroupBy::Openness => "openness",
        }
    }
}

/// Usage of one group (or the total).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsageRow {
    /// The group's value (`-` when the field is empty).
    pub key: String,
    /// Requests.
    pub requests: u64,
    /// Requests with status 400 and up.
    pub errors: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Cost in USD (requests without a known price count 0).
    pub cost_usd: f64,
    /// Median duration, ms (nearest rank).
    pub p50_ms: u64,
    /// 95th percentile duration, ms (nearest rank).
    pub p95_ms: u64,
    /// Tokens (in + out) of requests served by `hosting: local` deployments.
    pub local_tokens: u64,
    /// `local_tokens` / all tokens, 0–1 (0 when there are no tokens).
    pub local_share: f64,
}

/// Usage per group and in total.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsageReport {
    /// What the groups are.
    pub by: Option<GroupBy>,
    /// One row per group, by tokens then name.
    pub groups: Vec<UsageRow>,
    /// All rows together (`key` = `total`).
    pub total: UsageRow,
}

#[derive(Default)]
struct Acc {
    row: UsageRow,
    durations: Vec<u64>,
}

impl Acc {
    fn add(&mut self, status: i64, p: u64, c: u64, cost: f64, ms: u64, local: bool) {
        let r = &mut self.row;
        r.requests += 1;
        r.errors += u64::from(status >= 400);
        r.prompt_tokens += p;
        r.completion_tokens += c;
        r.cost_usd += cost;
        if local {
            r.local_tokens += p + c;
        }
        self.durations.push(ms);
    }

    fn finish(mut self) -> UsageRow {
        self.durations.sort_unstable();
        self.row.p50_ms = percentile(&self.durations, 50);
        self.row.p95_ms = percentile(&self.durations, 95);
        let tokens = self.row.prompt_tokens + self.row.completion_tokens;
        self.row.local_share = if tokens == 0 {
            0.0
        } else {
            self.row.local_tokens as f64 / tokens as f64
        };
        self.row
    }
}

/// Nearest-rank percentile of sorted values (0 when empty).
pub fn percentile(sorted: &[u64], p: u64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as u64).div_ceil(100).max(1) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Usage since `since_ms`, grouped `by` (or only the total), from either store.
///
/// Errors: the store's.
pub fn usage(
    store: &mut dyn super::backend::LogStore,
    since_ms: Option<i64>,
    by: Option<GroupBy>,
) -> Result<UsageReport, StoreError> {
    Ok(report_of(&store.usage_facts(since_ms, by)?, by))
}

/// The SQL expression of a group on SQLite (`''` without grouping).
pub fn group_column_sqlite(by: Option<GroupBy>) -> &'static str {
    by.map(GroupBy::column).unwrap_or("''")
}

/// The SQL expression of a group on PostgreSQL (`''` without grouping).
pub fn group_column_pg(by: Option<GroupBy>) -> &'static str {
    match by {
        Some(GroupBy::Day) => {
            "to_char(to_timestamp(started_ms / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        }
        other => group_column_sqlite(other),
    }
}

/// One [`UsageFact`](super::backend::UsageFact) per SQLite row since `since_ms`.
pub fn usage_facts(
    conn: &Connection,
    since_ms: Option<i64>,
    by: Option<GroupBy>,
) -> Result<Vec<super::backend::UsageFact>, StoreError> {
    let key = group_column_sqlite(by);
    let sql = format!(
        "SELECT coalesce({key}, '-'), status, prompt_tokens, completion_tokens, \
         coalesce(cost_usd, 0), duration_ms, hosting = 'local' \
         FROM requests WHERE started_ms >= ?1"
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query([since_ms.unwrap_or(i64::MIN)])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(super::backend::UsageFact {
            key: r.get(0)?,
            status: r.get(1)?,
            prompt_tokens: r.get::<_, i64>(2)?.max(0) as u64,
            completion_tokens: r.get::<_, i64>(3)?.max(0) as u64,
            cost_usd: r.get(4)?,
            duration_ms: r.get::<_, i64>(5)?.max(0) as u64,
            local: r.get::<_, Option<bool>>(6)?.unwrap_or(false),
        });
    }
    Ok(out)
}

/// Groups `facts` (made with the same `by`) into a report.
pub fn report_of(facts: &[super::backend::UsageFact], by: Option<GroupBy>) -> UsageReport {
    let mut groups: std::collections::BTreeMap<String, Acc> = Default::default();
    let mut total = Acc::default();
    for f in facts {
        let (p, c) = (f.prompt_tokens, f.completion_tokens);
        total.add(f.status, p, c, f.cost_usd, f.duration_ms, f.local);
        if by.is_some() {
            let k = if f.key.is_empty() {
                "-".to_string()
            } else {
                f.key.clone()
            };
            groups
                .entry(k)
                .or_default()
                .add(f.status, p, c, f.cost_usd, f.duration_ms, f.local);
        }
    }
    let mut out: Vec<UsageRow> = groups
        .into_iter()
        .map(|(k, a)| {
            let mut r = a.finish();
            r.key = k;
            r
        })
        .collect();
    if by != Some(GroupBy::Day) {
        out.sort_by(|a, b| {
            (b.prompt_tokens + b.completion_tokens)
                .cmp(&(a.prompt_tokens + a.completion_tokens))
                .then(b.requests.cmp(&a.requests))
                .then(a.key.cmp(&b.key))
        });
    }
    let mut total = total.finish();
    total.key = "total".into();
    UsageReport {
        by,
        groups: out,
        total,
    }
}

/// Requests and tokens in one time bucket for one model and hosting (the `/ui` chart).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    /// Bucket start, Unix ms.
    pub start_ms: i64,
    /// `requested_model`.
    pub model: String,
    /// `hosting` (`-` when unknown).
    pub hosting: String,
    /// Requests.
    pub requests: u64,
    /// Tokens in + out.
    pub tokens: u64,
}

/// Requests and tokens per `bucket_ms` interval, model and hosting, since `since_ms`, oldest
/// first.
pub fn timeline(
    conn: &Connection,
    since_ms: i64,
    bucket_ms: i64,
) -> Result<Vec<Bucket>, StoreError> {
    let bucket_ms = bucket_ms.max(1);
    let mut stmt = conn.prepare(
        "SELECT (started_ms / ?2) * ?2 AS b, requested_model, coalesce(hosting, '-'), \
         count(*), sum(total_tokens) FROM requests WHERE started_ms >= ?1 \
         GROUP BY b, requested_model, coalesce(hosting, '-') ORDER BY b, requested_model",
    )?;
    let rows = stmt
        .query_map([since_ms, bucket_ms], |r| {
            Ok(Bucket {
                start_ms: r.get(0)?,
                model: r.get(1)?,
                hosting: r.get(2)?,
                requests: r.get::<_, i64>(3)?.max(0) as u64,
                tokens: r.get::<_, Option<i64>>(4)?.unwrap_or(0).max(0) as u64,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse() {
        let now = 1_800_000_000_000;
        assert_eq!(parse_time("1h", now).unwrap(), now - 3_600_000);
        assert_eq!(parse_time("30m", now).unwrap(), now - 1_800_000);
        assert_eq!(parse_time("2w", now).unwrap(), now - 14 * 86_400_000);
        assert_eq!(parse_time("2026-11-01", now).unwrap(), 1_793_491_200_000);
        assert_eq!(
            parse_time("2026-11-01T01:00:00Z", now).unwrap(),
            1_793_494_800_000
        );
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("5y", now).is_err());
    }

    #[test]
    fn statuses_and_groups_parse() {
        assert_eq!(StatusFilter::parse("ok").unwrap(), StatusFilter::Ok);
        assert_eq!(StatusFilter::parse("502").unwrap(), StatusFilter::Code(502));
        assert!(StatusFilter::parse("bad").is_err());
        assert_eq!(GroupBy::parse("hosting").unwrap(), GroupBy::Hosting);
        assert!(GroupBy::parse("colour").is_err());
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u64> = (1..=20).collect();
        assert_eq!(percentile(&v, 50), 10);
        assert_eq!(percentile(&v, 95), 19);
        assert_eq!(percentile(&[7], 95), 7);
        assert_eq!(percentile(&[], 50), 0);
    }
}

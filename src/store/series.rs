//! Time series over the request log for the `/ui` charts: requests, tokens, cost and local
//! tokens per time bucket and group (model, deployment, key, end user, hosting, openness).

use super::StoreError;
use super::query::GroupBy;
use rusqlite::Connection;
use serde::Serialize;

/// One group in one time bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// Bucket start, Unix ms (a multiple of the bucket width).
    pub start_ms: i64,
    /// The group's value (`-` when the field is empty, e.g. requests without a key).
    pub key: String,
    /// Requests.
    pub requests: u64,
    /// Tokens in + out.
    pub tokens: u64,
    /// Cost, USD (requests of unknown price count 0).
    pub cost_usd: f64,
    /// Tokens of requests served by `hosting: local` deployments.
    pub local_tokens: u64,
}

/// What to count in a series.
#[derive(Debug, Clone, Default)]
pub struct SeriesQuery {
    /// Rows that started at or after this, Unix ms.
    pub since_ms: i64,
    /// Bucket width, ms (at least 1).
    pub bucket_ms: i64,
    /// Group by this column; `None` = one group, `total`.
    pub by: Option<GroupBy>,
    /// Only rows served by this deployment.
    pub deployment: Option<String>,
}

/// Points of `q`, oldest bucket first, then by group.
///
/// Errors: the query fails (e.g. the log's schema is older than this binary).
pub fn series(conn: &Connection, q: &SeriesQuery) -> Result<Vec<Point>, StoreError> {
    let key = q.by.map(GroupBy::column).unwrap_or("'total'");
    let sql = format!(
        "SELECT (started_ms / ?2) * ?2 AS b, coalesce(nullif({key}, ''), '-') AS k, count(*), \
         coalesce(sum(total_tokens), 0), coalesce(sum(cost_usd), 0), \
         coalesce(sum(CASE WHEN hosting = 'local' THEN total_tokens ELSE 0 END), 0) \
         FROM requests WHERE started_ms >= ?1 AND (?3 IS NULL OR deployment = ?3) \
         GROUP BY b, k ORDER BY b, k"
    );
    let mut stmt = conn.prepare(&sql)?;
    let params = rusqlite::params![q.since_ms, q.bucket_ms.max(1), q.deployment];
    let rows = stmt
        .query_map(params, |r| {
            Ok(Point {
                start_ms: r.get(0)?,
                key: r.get(1)?,
                requests: r.get::<_, i64>(2)?.max(0) as u64,
                tokens: r.get::<_, i64>(3)?.max(0) as u64,
                cost_usd: r.get(4)?,
                local_tokens: r.get::<_, i64>(5)?.max(0) as u64,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE requests (started_ms INTEGER, requested_model TEXT, deployment TEXT,
             api_key_id TEXT, end_user TEXT, hosting TEXT, openness TEXT, total_tokens INTEGER,
             cost_usd REAL);
             INSERT INTO requests VALUES
              (1000, 'a', 'd1', 'k1', 'ana', 'local', 'open-weight', 10, 0),
              (1500, 'a', 'd2', NULL, '', 'remote', 'api', 20, 0.5),
              (2500, 'b', 'd2', 'k1', 'bo', 'remote', 'api', 5, NULL),
              (500, 'a', 'd1', NULL, NULL, 'local', 'open-weight', 99, 0);",
        )
        .unwrap();
        conn
    }

    #[test]
    fn buckets_group_and_filter() {
        let conn = db();
        let q = SeriesQuery {
            since_ms: 1000,
            bucket_ms: 1000,
            by: Some(GroupBy::User),
            deployment: None,
        };
        let p = series(&conn, &q).unwrap();
        let got: Vec<(i64, &str, u64, u64, u64)> = p
            .iter()
            .map(|p| {
                (
                    p.start_ms,
                    p.key.as_str(),
                    p.requests,
                    p.tokens,
                    p.local_tokens,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (1000, "-", 1, 20, 0),
                (1000, "ana", 1, 10, 10),
                (2000, "bo", 1, 5, 0)
            ]
        );
        assert_eq!(p[0].cost_usd, 0.5);
        let q = SeriesQuery {
            by: None,
            deployment: Some("d2".into()),
            ..q
        };
        let p = series(&conn, &q).unwrap();
        let got: Vec<(i64, &str, u64)> = p
            .iter()
            .map(|p| (p.start_ms, p.key.as_str(), p.requests))
            .collect();
        assert_eq!(got, [(1000, "total", 1), (2000, "total", 1)]);
    }
}

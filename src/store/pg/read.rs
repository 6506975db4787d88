//! The reads of the PostgreSQL store: rows, the chain walk, usage, the timeline, keys, spend.

use super::super::StoreError;
use super::super::backend::{KeyRow, REPLAY_COLUMNS, ReplaySelect, SpendDay, UsageFact};
use super::super::chain::{self, Verdict};
use super::super::query::{self, Bucket, GroupBy, LogFilter, StatusFilter};
use super::super::row::{HASHED_COLUMNS, LogRow, read_list};
use postgres::types::{ToSql, Type};
use postgres::{Client, Row};
use rusqlite::types::{Value, ValueRef};
use serde_json::value::RawValue;

/// Rows per page of the chain walk.
const VERIFY_PAGE: i64 = 5_000;

/// Every column of `r` as a plain value, by its PostgreSQL type.
fn values(r: &Row) -> Result<Vec<Value>, StoreError> {
    let mut out = Vec::with_capacity(r.len());
    for (i, c) in r.columns().iter().enumerate() {
        let v = match *c.type_() {
            Type::INT8 => r.try_get::<_, Option<i64>>(i)?.map(Value::Integer),
            Type::INT4 => r
                .try_get::<_, Option<i32>>(i)?
                .map(|n| Value::Integer(n.into())),
            Type::FLOAT8 => r.try_get::<_, Option<f64>>(i)?.map(Value::Real),
            Type::BOOL => r
                .try_get::<_, Option<bool>>(i)?
                .map(|b| Value::Integer(b.into())),
            Type::BYTEA => r.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
            _ => r.try_get::<_, Option<String>>(i)?.map(Value::Text),
        };
        out.push(v.unwrap_or(Value::Null));
    }
    Ok(out)
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Integer(i) => *i,
        Value::Real(f) => *f as i64,
        _ => 0,
    }
}

fn opt_int(v: &Value) -> Option<i64> {
    matches!(v, Value::Integer(_) | Value::Real(_)).then(|| int(v))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Text(t) => Some(t.clone()),
        _ => None,
    }
}

fn raw(v: &Value) -> Option<Box<RawValue>> {
    text(v).and_then(|s| RawValue::from_string(s).ok())
}

fn raw_list(v: &Value) -> Box<RawValue> {
    raw(v)
        .or_else(|| RawValue::from_string("[]".to_string()).ok())
        .unwrap_or_default()
}

/// A row selected with [`read_list`].
fn log_row(r: &Row) -> Result<LogRow, StoreError> {
    let v = values(r)?;
    if v.len() < HASHED_COLUMNS.len() + 4 {
        return Err(StoreError::Postgres("short row".into()));
    }
    Ok(LogRow {
        seq: int(&v[0]),
        id: text(&v[1]).unwrap_or_default(),
        started_ms: int(&v[2]),
        duration_ms: int(&v[3]),
        ttft_ms: opt_int(&v[4]),
        endpoint: text(&v[5]).unwrap_or_default(),
        requested_model: text(&v[6]).unwrap_or_default(),
        deployment: text(&v[7]),
        provider: text(&v[8]),
        hosting: text(&v[9]),
        openness: text(&v[10]),
        policies: raw_list(&v[11]),
        pii_kinds: raw_list(&v[12]),
        api_key_id: text(&v[13]),
        end_user: text(&v[14]),
        client_ip: text(&v[15]),
        status: int(&v[16]),
        error_type: text(&v[17]),
        error_message: text(&v[18]),
        stream: int(&v[19]) != 0,
        finish_reason: text(&v[20]),
        prompt_tokens: int(&v[21]),
        completion_tokens: int(&v[22]),
        total_tokens: int(&v[23]),
        usage_estimated: int(&v[24]) != 0,
        cost_usd: match &v[25] {
            Value::Real(f) => Some(*f),
            _ => None,
        },
        sampling: raw(&v[26]),
        attempts: int(&v[27]),
        log_mode: text(&v[28]).unwrap_or_default(),
        request_body: raw(&v[29]),
        response_model: text(&v[30]),
        response_content: text(&v[31]),
        response_tool_calls: raw(&v[32]),
        prev_hash: text(&v[33]).unwrap_or_default(),
        row_hash: text(&v[34]).unwrap_or_default(),
        route: v.get(35).and_then(text),
        dropped_tools: crate::store::row::tool_list(v.get(36).and_then(text).as_deref()),
        deterministic: v.get(37).map(int) == Some(1),
    })
}

fn rows(
    c: &mut Client,
    sql: &str,
    args: &[&(dyn ToSql + Sync)],
) -> Result<Vec<LogRow>, StoreError> {
    c.query(sql, args)?.iter().map(log_row).collect()
}

/// Walks the chain from the anchor to the head, a page at a time, in one read-only
/// `REPEATABLE READ` transaction: a single snapshot, so a row a replica appends meanwhile is
/// neither walked nor taken for a row past the head.
pub fn verify(c: &mut Client) -> Result<Verdict, StoreError> {
    let mut tx = c
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    let verdict = verify_in(&mut tx);
    // Read only: nothing to commit; dropping the transaction rolls it back.
    drop(tx);
    verdict
}

fn verify_in(c: &mut postgres::Transaction<'_>) -> Result<Verdict, StoreError> {
    let Some(st) = c.query_opt(
        "SELECT anchor_seq, anchor_hash, head_seq, head_hash FROM chain WHERE one = 1",
        &[],
    )?
    else {
        return Ok(Verdict::Broken {
            seq: 0,
            reason: chain::NO_CHAIN_ROW.into(),
        });
    };
    let st = chain::ChainState {
        anchor_seq: st.try_get(0)?,
        anchor_hash: st.try_get(1)?,
        head_seq: st.try_get(2)?,
        head_hash: st.try_get(3)?,
    };
    let head_seq = st.head_seq;
    let sql = format!(
        "SELECT {}, prev_hash, row_hash FROM requests WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3",
        HASHED_COLUMNS.join(", ")
    );
    let n = HASHED_COLUMNS.len();
    let mut expect_seq = st.anchor_seq + 1;
    let mut prev = st.anchor_hash.clone();
    let mut count = 0u64;
    loop {
        let page = c.query(&sql, &[&(expect_seq - 1), &head_seq, &VERIFY_PAGE])?;
        if page.is_empty() {
            break;
        }
        for r in &page {
            let v = values(r)?;
            let seq = int(&v[0]);
            if seq != expect_seq {
                return Ok(Verdict::Broken {
                    seq,
                    reason: format!("rows {expect_seq}..{} are missing", seq - 1),
                });
            }
            let stored_prev = text(&v[n]).unwrap_or_default();
            if stored_prev != prev {
                return Ok(Verdict::Broken {
                    seq,
                    reason: "prev_hash does not match the previous row's hash".into(),
                });
            }
            let refs: Vec<ValueRef<'_>> = v[..n].iter().map(ValueRef::from).collect();
            let stored = text(&v[n + 1]).unwrap_or_default();
            if chain::row_hash(&prev, &chain::canonical(&refs)) != stored {
                return Ok(Verdict::Broken {
                    seq,
                    reason: "row content does not match its row_hash (the row was changed)".into(),
                });
            }
            prev = stored;
            expect_seq += 1;
            count += 1;
        }
    }
    let past_head: Option<i64> = c
        .query_one("SELECT max(seq) FROM requests", &[])?
        .try_get(0)?;
    Ok(chain::end_verdict(
        &st,
        count,
        expect_seq - 1,
        prev,
        past_head,
    ))
}

/// Rows matching `f`, newest first.
pub fn list(c: &mut Client, f: &LogFilter) -> Result<Vec<LogRow>, StoreError> {
    let mut wheres: Vec<String> = Vec::new();
    let mut args: Vec<Box<dyn ToSql + Sync>> = Vec::new();
    let mut add = |cond: &str, v: Box<dyn ToSql + Sync>| {
        args.push(v);
        wheres.push(cond.replace('?', &format!("${}", args.len())));
    };
    if let Some(t) = f.since_ms {
        add("started_ms >= ?", Box::new(t));
    }
    if let Some(m) = &f.model {
        add("requested_model = ?", Box::new(m.clone()));
    }
    if let Some(d) = &f.deployment {
        add("deployment = ?", Box::new(d.clone()));
    }
    if let Some(k) = &f.key {
        add("api_key_id = ?", Box::new(k.clone()));
    }
    if let Some(s) = f.before_seq {
        add("seq < ?", Box::new(s));
    }
    match f.status {
        Some(StatusFilter::Ok) => add("status < ?", Box::new(400i64)),
        Some(StatusFilter::Error) => add("status >= ?", Box::new(400i64)),
        Some(StatusFilter::Code(code)) => add("status = ?", Box::new(code)),
        None => {}
    }
    if let Some(g) = &f.grep {
        add(
            &format!("strpos(lower({}), lower(?)) > 0", query::GREP_TEXT),
            Box::new(g.clone()),
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
    let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref()).collect();
    rows(c, &sql, &refs)
}

/// Rows since `since_ms`, oldest first.
pub fn all_since(c: &mut Client, since_ms: Option<i64>) -> Result<Vec<LogRow>, StoreError> {
    let sql = format!(
        "SELECT {} FROM requests WHERE started_ms >= $1 ORDER BY seq",
        read_list()
    );
    rows(c, &sql, &[&since_ms.unwrap_or(i64::MIN)])
}

/// The latest row with request id `id`, else the row with `seq` `id`.
pub fn get(c: &mut Client, id: &str) -> Result<Option<LogRow>, StoreError> {
    by_id_or_seq(c, &read_list(), id)?
        .as_ref()
        .map(log_row)
        .transpose()
}

/// As SQLite's [`query::by_id_or_seq`]: the latest row with request id `id`, else the row
/// with `seq` `id`; its `columns`.
fn by_id_or_seq(c: &mut Client, columns: &str, id: &str) -> Result<Option<Row>, StoreError> {
    if let Some(r) = latest_by_id(c, columns, id)? {
        return Ok(Some(r));
    }
    let Ok(seq) = id.parse::<i64>() else {
        return Ok(None);
    };
    let sql = format!("SELECT {columns} FROM requests WHERE seq = $1");
    Ok(c.query(&sql, &[&seq])?.pop())
}

/// The latest row with request id `id`, its `columns`: as SQLite's `query::latest_by_id` (no
/// index on the id; the minute a UUIDv7 carries first, through
/// `requests_started`, then from the newest row back).
fn latest_by_id(c: &mut Client, columns: &str, id: &str) -> Result<Option<Row>, StoreError> {
    if let Some(t) = super::super::id_time_ms(id) {
        let sql = query::by_id_in_window(columns, true);
        let (from, to) = (
            t - super::super::ID_WINDOW_MS,
            t + super::super::ID_WINDOW_MS,
        );
        if let Some(r) = c.query(&sql, &[&id, &from, &to])?.pop() {
            return Ok(Some(r));
        }
    }
    let sql = format!("SELECT {columns} FROM requests WHERE id = $1 ORDER BY seq DESC LIMIT 1");
    Ok(c.query(&sql, &[&id])?.pop())
}

/// One fact per row since `since_ms`.
pub fn usage_facts(
    c: &mut Client,
    since_ms: Option<i64>,
    by: Option<GroupBy>,
) -> Result<Vec<UsageFact>, StoreError> {
    let key = query::group_column_pg(by);
    let sql = format!(
        "SELECT coalesce({key}, '-')::text, status, prompt_tokens, completion_tokens, \
         coalesce(cost_usd, 0), duration_ms, coalesce(hosting = 'local', false) \
         FROM requests WHERE started_ms >= $1"
    );
    let found = c.query(&sql, &[&since_ms.unwrap_or(i64::MIN)])?;
    Ok(found
        .iter()
        .map(|r| UsageFact {
            key: r.get(0),
            status: r.get(1),
            prompt_tokens: r.get::<_, i64>(2).max(0) as u64,
            completion_tokens: r.get::<_, i64>(3).max(0) as u64,
            cost_usd: r.get(4),
            duration_ms: r.get::<_, i64>(5).max(0) as u64,
            local: r.get(6),
        })
        .collect())
}

/// Requests and tokens per bucket, model and hosting.
pub fn timeline(c: &mut Client, since_ms: i64, bucket_ms: i64) -> Result<Vec<Bucket>, StoreError> {
    let bucket_ms = bucket_ms.max(1);
    let found = c.query(
        "SELECT (started_ms / $2) * $2 AS b, requested_model, coalesce(hosting, '-'), \
         count(*), coalesce(sum(total_tokens), 0)::bigint FROM requests WHERE started_ms >= $1 \
         GROUP BY b, requested_model, coalesce(hosting, '-') ORDER BY b, requested_model",
        &[&since_ms, &bucket_ms],
    )?;
    Ok(found
        .iter()
        .map(|r| Bucket {
            start_ms: r.get(0),
            model: r.get(1),
            hosting: r.get(2),
            requests: r.get::<_, i64>(3).max(0) as u64,
            tokens: r.get::<_, i64>(4).max(0) as u64,
        })
        .collect())
}

/// Every key, oldest first.
pub fn keys(c: &mut Client) -> Result<Vec<KeyRow>, StoreError> {
    let found = c.query(
        "SELECT id, name, hash, created_ms, disabled, spec FROM api_keys ORDER BY created_ms, id",
        &[],
    )?;
    Ok(found
        .iter()
        .filter_map(|r| {
            let hash: Vec<u8> = r.get(2);
            Some(KeyRow {
                id: r.get(0),
                name: r.get(1),
                hash: <[u8; 32]>::try_from(hash.as_slice()).ok()?,
                created_ms: r.get(3),
                disabled: r.get::<_, i64>(4) != 0,
                spec: r.get(5),
            })
        })
        .collect())
}

/// Spend per key and day since `from_ms`.
pub fn spend_since(c: &mut Client, from_ms: i64) -> Result<Vec<SpendDay>, StoreError> {
    let found = c.query(
        "SELECT api_key_id, day, all_usd, remote_usd FROM spend WHERE day >= $1",
        &[&from_ms.div_euclid(86_400_000)],
    )?;
    Ok(found
        .iter()
        .map(|r| SpendDay {
            key_id: r.get(0),
            day: r.get(1),
            all_usd: r.get(2),
            remote_usd: r.get(3),
        })
        .collect())
}

/// The [`REPLAY_COLUMNS`] of the rows `sel` names.
pub fn replay_rows(c: &mut Client, sel: &ReplaySelect) -> Result<Vec<Vec<Value>>, StoreError> {
    let found = match sel {
        ReplaySelect::One(id) => by_id_or_seq(c, REPLAY_COLUMNS, id)?.into_iter().collect(),
        ReplaySelect::Since {
            from_ms,
            model,
            limit,
        } => c.query(
            &format!(
                "SELECT {REPLAY_COLUMNS} FROM requests WHERE started_ms >= $1 AND status = 200 \
                 AND endpoint IN ('chat', 'text_completion', 'responses', 'messages') \
                 AND ($2::text IS NULL OR requested_model = $2) \
                 AND id NOT LIKE 'replay-%' ORDER BY seq DESC LIMIT $3"
            ),
            &[from_ms, model, &i64::from(*limit)],
        )?,
    };
    found.iter().map(values).collect()
}

/// The `/ui` chart series of `q` (as [`crate::store::series::series`] on SQLite).
pub fn series(
    c: &mut Client,
    q: &crate::store::series::SeriesQuery,
) -> Result<Vec<crate::store::series::Point>, StoreError> {
    let key = match q.by {
        Some(by) => query::group_column_pg(Some(by)),
        None => "'total'",
    };
    let sql = format!(
        "SELECT (started_ms / $2) * $2 AS b, coalesce(nullif({key}::text, ''), '-') AS k, count(*), \
         coalesce(sum(total_tokens), 0)::bigint, coalesce(sum(cost_usd), 0)::float8, \
         coalesce(sum(CASE WHEN hosting = 'local' THEN total_tokens ELSE 0 END), 0)::bigint \
         FROM requests WHERE started_ms >= $1 AND ($3::text IS NULL OR deployment = $3) \
         GROUP BY b, k ORDER BY b, k"
    );
    let found = c.query(&sql, &[&q.since_ms, &q.bucket_ms.max(1), &q.deployment])?;
    Ok(found
        .iter()
        .map(|r| crate::store::series::Point {
            start_ms: r.get(0),
            key: r.get(1),
            requests: r.get::<_, i64>(2).max(0) as u64,
            tokens: r.get::<_, i64>(3).max(0) as u64,
            cost_usd: r.get(4),
            local_tokens: r.get::<_, i64>(5).max(0) as u64,
        })
        .collect())
}

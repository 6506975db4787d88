//! One row of the request log: the columns (in hash order), how a [`RequestRecord`] becomes
//! them under a logging mode, and the typed row read back for the CLI, admin API and `/ui`.

use super::redact::{redact_for_log, redact_json};
use crate::config::LogMode;
use crate::policy::pii::Detector;
use crate::store::record::RequestRecord;
use rusqlite::types::Value as Sql;
use serde::Serialize;
use serde_json::value::RawValue;

/// The columns of `requests` covered by the hash chain, in the fixed order of the canonical
/// content (see [`super::chain`]). `prev_hash` and `row_hash` follow them in the table.
pub const HASHED_COLUMNS: [&str; 33] = [
    "seq",
    "id",
    "started_ms",
    "duration_ms",
    "ttft_ms",
    "endpoint",
    "requested_model",
    "deployment",
    "provider",
    "hosting",
    "openness",
    "policies",
    "pii_kinds",
    "api_key_id",
    "end_user",
    "client_ip",
    "status",
    "error_type",
    "error_message",
    "stream",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "usage_estimated",
    "cost_usd",
    "sampling",
    "attempts",
    "log_mode",
    "request_body",
    "response_model",
    "response_content",
    "response_tool_calls",
];

/// Columns of migration 0003 written after `prev_hash` and `row_hash`, outside the hash chain
/// (docs/log.md "Hash chain"): the request hash, the response content hash, the backend fingerprint.
pub const REPRO_COLUMNS: [&str; 3] = ["request_hash", "response_hash", "fingerprint"];

/// The [`REPRO_COLUMNS`] values of `r`. The response hash is kept in every mode (it tells
/// whether a replay matched without keeping the text); it is NULL for failed requests, and for
/// a stream whose text was not all gathered (`log.max_body_bytes`): the hash of a cut text
/// would call every replay different. An answer cut for the row has the hash of the whole
/// answer ([`RequestRecord::whole_response_hash`]).
pub fn repro_values(r: &RequestRecord) -> Vec<Sql> {
    let text = |s: Option<String>| s.map(Sql::Text).unwrap_or(Sql::Null);
    let response = (r.status == 200 && r.endpoint != "embeddings")
        .then(|| match &r.whole_response_hash {
            Some(h) => Some(h.clone()),
            None if r.response.bound.truncated => None,
            None => Some(crate::repro::response_hash(&r.response)),
        })
        .flatten();
    vec![
        text(r.request_hash.clone()),
        text(response),
        text(r.response.system_fingerprint.clone()),
    ]
}

/// Columns of migration 0005, written after [`REPRO_COLUMNS`], outside the hash chain: how a
/// Messages or Responses request reached its backend, and the tools a bridged route removed.
pub const ROUTE_COLUMNS: [&str; 2] = ["route", "dropped_tools"];

/// The [`ROUTE_COLUMNS`] values of `r` (tool names are kept in every mode: they are the
/// client's tool types, never its text).
pub fn route_values(r: &RequestRecord) -> Vec<Sql> {
    let tools = (!r.dropped_tools.is_empty())
        .then(|| serde_json::to_string(&r.dropped_tools).ok())
        .flatten();
    vec![
        r.route.clone().map(Sql::Text).unwrap_or(Sql::Null),
        tools.map(Sql::Text).unwrap_or(Sql::Null),
    ]
}

/// Columns of migration 0007, written after [`ROUTE_COLUMNS`], outside the hash chain:
/// whether the request ran under deterministic sampling (1, else NULL). The response cache's
/// partial index covers only rows with `deterministic = 1`.
pub const CACHE_COLUMNS: [&str; 1] = ["deterministic"];

/// The [`CACHE_COLUMNS`] values of `r`.
pub fn cache_values(r: &RequestRecord) -> Vec<Sql> {
    vec![if r.deterministic {
        Sql::Integer(1)
    } else {
        Sql::Null
    }]
}

/// The effective logging mode of a record: its override (`log_mode`, set by a policy or key)
/// when valid, else `default` (`log.prompts`).
pub fn effective_mode(r: &RequestRecord, default: LogMode) -> LogMode {
    r.log_mode
        .as_deref()
        .and_then(LogMode::parse)
        .unwrap_or(default)
}

/// The column values of `r` in [`HASHED_COLUMNS`] order without `seq` (the store numbers the
/// row), keeping text as `mode` says: `full` as is, `redacted` through [`redact_for_log`] with
/// the `pii` detectors, `metadata` none; `end_user`, `error_message` and `requested_model` (a
/// client's text too) are kept as is in `full` mode only, else redacted; `error_message` not
/// at all in `metadata` mode. `None` for mode `off` (no row). The texts kept as they are (the
/// id, names, the answer's text in `full` mode, …) are taken out of `r` into the row, not
/// copied: `r` is not to be read afterwards.
pub fn to_values(r: &mut RequestRecord, mode: LogMode, pii: &Detector) -> Option<Vec<Sql>> {
    use std::mem::take;
    let (body, content, tools) = match mode {
        LogMode::Off => return None,
        LogMode::Metadata => (None, None, None),
        LogMode::Full => (
            r.request_body.as_ref().map(|b| b.get().to_string()),
            Some(take(&mut r.response.content)),
            tool_calls_json(&r.response.tool_calls, |s| s.to_string()),
        ),
        LogMode::Redacted => (
            r.request_body
                .as_ref()
                .and_then(|b| serde_json::from_str::<serde_json::Value>(b.get()).ok())
                .map(|b| redact_json(pii, &b).to_string()),
            Some(redact_for_log(pii, &r.response.content)),
            tool_calls_json(&r.response.tool_calls, |s| redact_for_log(pii, s)),
        ),
    };
    let text = |s: Option<String>| s.map(Sql::Text).unwrap_or(Sql::Null);
    let stat = |s: Option<&str>| s.map(|s| Sql::Text(s.to_string())).unwrap_or(Sql::Null);
    // The end user (often an email) and error messages (upstreams echo the prompt) are text
    // too: kept as is only in `full` mode.
    let scrubbed = |s: Option<String>| match mode {
        LogMode::Full => text(s),
        _ => text(s.as_deref().map(|t| redact_for_log(pii, t))),
    };
    let int = |n: u64| Sql::Integer(i64::try_from(n).unwrap_or(i64::MAX));
    let list =
        |v: &Vec<String>| Sql::Text(serde_json::to_string(v).unwrap_or_else(|_| "[]".into()));
    Some(vec![
        Sql::Text(take(&mut r.id)),
        int(r.started_ms),
        int(r.duration_ms),
        r.ttft_ms.map(int).unwrap_or(Sql::Null),
        Sql::Text(r.endpoint.to_string()),
        match mode {
            LogMode::Full => Sql::Text(take(&mut r.requested_model)),
            _ => Sql::Text(redact_for_log(pii, &r.requested_model)),
        },
        text(r.deployment.take()),
        stat(r.provider),
        stat(r.hosting),
        stat(r.openness),
        list(&r.policies),
        list(&r.pii_kinds),
        text(r.api_key_id.take()),
        scrubbed(r.end_user.take()),
        text(r.client_ip.take()),
        Sql::Integer(i64::from(r.status)),
        text(r.error_type.take()),
        // Upstreams quote the request in their errors (`bad request, you sent: {…}`), and so
        // do parse errors (`invalid type: string "…"`): no message in `metadata` mode, whose
        // rows keep no text; the status and `error_type` say what happened.
        match mode {
            LogMode::Metadata => Sql::Null,
            _ => scrubbed(r.error_message.take()),
        },
        Sql::Integer(i64::from(r.stream)),
        text(r.response.finish_reason.take()),
        int(r.usage.prompt_tokens),
        int(r.usage.completion_tokens),
        int(r.usage.total_tokens),
        Sql::Integer(i64::from(r.usage_estimated)),
        r.cost_usd
            .filter(|c| c.is_finite())
            .map(Sql::Real)
            .unwrap_or(Sql::Null),
        text(r.sampling.as_ref().map(|s| s.to_string())),
        Sql::Integer(i64::from(r.attempts)),
        Sql::Text(mode.as_str().to_string()),
        text(body),
        text(r.response.model.take()),
        text(content),
        text(tools),
    ])
}

/// The row `r` becomes under `mode` (see [`to_values`]), without its `seq` (the store assigns
/// it). Mode `off`: a spend-only row ([`spend_only`]) when `r` cost a key something, else
/// `None`.
pub fn prepare(
    r: &RequestRecord,
    mode: LogMode,
    pii: &Detector,
) -> Option<super::backend::PreparedRow> {
    if mode == LogMode::Off {
        return spend_only(r);
    }
    prepare_owned(&mut r.clone(), mode, pii)
}

/// [`prepare`] of a record the caller gives up (the log writer's): the texts [`to_values`]
/// keeps as they are are taken out of it into the row instead of being copied, so `r` is
/// not to be read afterwards.
pub fn prepare_owned(
    r: &mut RequestRecord,
    mode: LogMode,
    pii: &Detector,
) -> Option<super::backend::PreparedRow> {
    if mode == LogMode::Off {
        return spend_only(r);
    }
    // Before `to_values`: the response hash reads the answer's text, which that takes.
    let mut extra = repro_values(r);
    extra.extend(route_values(r));
    extra.extend(cache_values(r));
    let values = to_values(r, mode, pii)?;
    Some(super::backend::PreparedRow {
        values,
        repro: extra,
        uid: uuid::Uuid::now_v7().simple().to_string(),
    })
}

/// The slim record a `log: off` request leaves in the log queue: its id, start, key, hosting
/// and cost only (no text, no model, no client), when it cost a key something; else `None`.
pub fn spend_record(r: &RequestRecord) -> Option<RequestRecord> {
    let cost = r.cost_usd.filter(|c| c.is_finite() && *c > 0.0)?;
    Some(RequestRecord {
        id: r.id.clone(),
        started_ms: r.started_ms,
        api_key_id: Some(r.api_key_id.clone()?),
        hosting: r.hosting,
        cost_usd: Some(cost),
        log_mode: Some(LogMode::Off.as_str().to_string()),
        ..Default::default()
    })
}

/// The spend-only row of a `log: off` request ([`super::backend::PreparedRow::is_spend_only`]):
/// every column NULL but `id`, `started_ms`, `hosting`, `api_key_id`, `cost_usd` and
/// `log_mode` (`off`). The store adds its cost to `spend` and writes no request row. `None`
/// when `r` cost no key anything.
pub fn spend_only(r: &RequestRecord) -> Option<super::backend::PreparedRow> {
    let r = spend_record(r)?;
    let int = |n: u64| Sql::Integer(i64::try_from(n).unwrap_or(i64::MAX));
    let text = |s: &Option<String>| s.clone().map(Sql::Text).unwrap_or(Sql::Null);
    let stat = |s: Option<&str>| s.map(|s| Sql::Text(s.to_string())).unwrap_or(Sql::Null);
    let values = HASHED_COLUMNS[1..]
        .iter()
        .map(|c| match *c {
            "id" => Sql::Text(r.id.clone()),
            "started_ms" => int(r.started_ms),
            "hosting" => stat(r.hosting),
            "api_key_id" => text(&r.api_key_id),
            "cost_usd" => r.cost_usd.map(Sql::Real).unwrap_or(Sql::Null),
            "log_mode" => Sql::Text(LogMode::Off.as_str().to_string()),
            _ => Sql::Null,
        })
        .collect();
    Some(super::backend::PreparedRow {
        values,
        repro: vec![Sql::Null; super::backend::extra_columns().len()],
        uid: uuid::Uuid::now_v7().simple().to_string(),
    })
}

fn tool_calls_json(
    tool_calls: &[crate::api::summary::ToolCallSummary],
    f: impl Fn(&str) -> String,
) -> Option<String> {
    if tool_calls.is_empty() {
        return None;
    }
    let calls: Vec<serde_json::Value> = tool_calls
        .iter()
        .map(|t| serde_json::json!({"id": t.id, "name": t.name, "arguments": f(&t.arguments)}))
        .collect();
    Some(serde_json::Value::Array(calls).to_string())
}

/// A row as read back. JSON columns are kept as the exact stored JSON text. Serialized (for
/// `--json`, export and `/admin/logs`) with the column names of [`HASHED_COLUMNS`], then
/// `prev_hash` and `row_hash`.
#[derive(Debug, Clone, Serialize)]
pub struct LogRow {
    /// Position in the chain (1, 2, …); the admin API's cursor.
    pub seq: i64,
    /// Request id.
    pub id: String,
    /// Start, Unix time in ms (UTC).
    pub started_ms: i64,
    /// Total time, ms.
    pub duration_ms: i64,
    /// Streams: time to the first chunk, ms.
    pub ttft_ms: Option<i64>,
    /// `chat.completions`, `completions` or `embeddings`.
    pub endpoint: String,
    /// Model name the client asked for.
    pub requested_model: String,
    /// Deployment that answered (or was last tried).
    pub deployment: Option<String>,
    /// Its provider kind.
    pub provider: Option<String>,
    /// `local` or `remote`.
    pub hosting: Option<String>,
    /// Openness tier.
    pub openness: Option<String>,
    /// Matched policies (JSON array of strings).
    pub policies: Box<RawValue>,
    /// PII kinds found (JSON array of strings).
    pub pii_kinds: Box<RawValue>,
    /// API key id (never the key).
    pub api_key_id: Option<String>,
    /// End user.
    pub end_user: Option<String>,
    /// Client IP.
    pub client_ip: Option<String>,
    /// HTTP status sent (499: client went away mid-stream).
    pub status: i64,
    /// Error type, for failures.
    pub error_type: Option<String>,
    /// Error message, for failures.
    pub error_message: Option<String>,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// `finish_reason` of choice 0.
    pub finish_reason: Option<String>,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
    /// Total tokens.
    pub total_tokens: i64,
    /// True when the counts are estimates.
    pub usage_estimated: bool,
    /// Cost in USD, when the price is known.
    pub cost_usd: Option<f64>,
    /// Effective sampling parameters (JSON object).
    pub sampling: Option<Box<RawValue>>,
    /// Upstream attempts made.
    pub attempts: i64,
    /// Logging mode the row was written under.
    pub log_mode: String,
    /// Request body (JSON), per the logging mode.
    pub request_body: Option<Box<RawValue>>,
    /// The upstream's `model`.
    pub response_model: Option<String>,
    /// Response text (streams: assembled), per the logging mode.
    pub response_content: Option<String>,
    /// Tool calls (JSON array of `{id,name,arguments}`), per the logging mode.
    pub response_tool_calls: Option<Box<RawValue>>,
    /// Hash of the previous row (or the anchor), hex.
    pub prev_hash: String,
    /// This row's hash, hex.
    pub row_hash: String,
    /// For Messages and Responses requests: `native` or `bridged`; absent for the others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Server or hosted tools removed from a bridged request (`web_search`, …); absent when
    /// none were.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropped_tools: Vec<String>,
    /// Whether the request ran under deterministic sampling (its answer may serve the
    /// response cache and a replay expects the same one); absent when not.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deterministic: bool,
}

/// The `dropped_tools` column (a JSON array of names, or NULL) as a list; anything else reads
/// as empty.
pub fn tool_list(s: Option<&str>) -> Vec<String> {
    s.and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

/// `SELECT` list of what [`LogRow::from_sql`] reads: [`select_list`], then `route` and
/// `dropped_tools` (migration 0005) and `deterministic` (0007), all outside the hash.
pub fn read_list() -> String {
    format!(
        "{}, {}, {}",
        select_list(),
        ROUTE_COLUMNS.join(", "),
        CACHE_COLUMNS.join(", ")
    )
}

/// The hashed columns, `prev_hash` and `row_hash`, in [`LogRow`]'s order (the insert's first
/// columns).
pub fn select_list() -> String {
    let mut cols: Vec<&str> = HASHED_COLUMNS.to_vec();
    cols.push("prev_hash");
    cols.push("row_hash");
    cols.join(", ")
}

fn raw(s: Option<String>) -> Option<Box<RawValue>> {
    s.and_then(|s| RawValue::from_string(s).ok())
}

fn raw_list(s: String) -> Box<RawValue> {
    RawValue::from_string(s)
        .or_else(|_| RawValue::from_string("[]".to_string()))
        .unwrap_or_default()
}

impl LogRow {
    /// Reads a row selected with [`read_list`].
    pub fn from_sql(r: &rusqlite::Row<'_>) -> rusqlite::Result<LogRow> {
        Ok(LogRow {
            seq: r.get(0)?,
            id: r.get(1)?,
            started_ms: r.get(2)?,
            duration_ms: r.get(3)?,
            ttft_ms: r.get(4)?,
            endpoint: r.get(5)?,
            requested_model: r.get(6)?,
            deployment: r.get(7)?,
            provider: r.get(8)?,
            hosting: r.get(9)?,
            openness: r.get(10)?,
            policies: raw_list(r.get(11)?),
            pii_kinds: raw_list(r.get(12)?),
            api_key_id: r.get(13)?,
            end_user: r.get(14)?,
            client_ip: r.get(15)?,
            status: r.get(16)?,
            error_type: r.get(17)?,
            error_message: r.get(18)?,
            stream: r.get::<_, i64>(19)? != 0,
            finish_reason: r.get(20)?,
            prompt_tokens: r.get(21)?,
            completion_tokens: r.get(22)?,
            total_tokens: r.get(23)?,
            usage_estimated: r.get::<_, i64>(24)? != 0,
            cost_usd: r.get(25)?,
            sampling: raw(r.get(26)?),
            attempts: r.get(27)?,
            log_mode: r.get(28)?,
            request_body: raw(r.get(29)?),
            response_model: r.get(30)?,
            response_content: r.get(31)?,
            response_tool_calls: raw(r.get(32)?),
            prev_hash: r.get(33)?,
            row_hash: r.get(34)?,
            route: r.get(35)?,
            dropped_tools: tool_list(r.get::<_, Option<String>>(36)?.as_deref()),
            deterministic: r.get::<_, Option<i64>>(37)? == Some(1),
        })
    }

    /// Whether the request failed (status 400 and up, 499 included).
    pub fn is_error(&self) -> bool {
        self.status >= 400
    }
}

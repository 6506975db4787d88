//! `/ui`: the request log as a web page, rendered on the server (maud) with a few lines of
//! embedded JS; no separate front-end build, nothing loaded from elsewhere.
//!
//! - `GET /ui?since&model&status&grep&limit`: usage totals (requests, errors, tokens in/out,
//!   cost, share of tokens that stayed local), two stacked-bar charts in inline SVG (requests
//!   over time by model, tokens over time by hosting), usage by model, and a table of recent
//!   requests (newest first; the form filters on the server, the quick-filter box hides rows in
//!   the browser; `#q=TEXT` in the URL fills it).
//! - `GET /ui/requests/{id}`: one request in full.
//! - `GET /ui/usage` ([`usage`]): requests, tokens and cost over time by model / deployment /
//!   key / end user, the share of tokens that stayed local, traffic by openness tier.
//! - `GET /ui/routes`, `/ui/routes/{name}` ([`routes`]): each route with its five freedoms.
//!
//! Same access rule as `/admin` ([`crate::http::auth::require_admin`]), plus the login cookie of
//! [`crate::http::ui::login`] for browsers.

pub mod login;
pub mod routes;
pub mod svg;
pub mod usage;

use crate::api::ApiError;
use crate::gateway::Gateway;
use crate::http::admin::{parse_since, with_log};
use crate::store::query::{self, Bucket, GroupBy, LogFilter, StatusFilter, UsageReport};
use crate::store::report::{fmt_cost, fmt_ms, fmt_time, prompt_text, response_text};
use crate::store::row::LogRow;
use crate::store::{self, StoreError};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;

/// The `/ui` pages (behind [`crate::http::auth::browser`]); the login form is
/// [`login::router`], mounted apart by [`crate::http::router`].
pub fn router() -> Router<Gateway> {
    Router::new()
        .route("/ui", get(dashboard))
        .route("/ui/requests/{id}", get(detail))
        .route("/ui/usage", get(usage::page))
        .route("/ui/routes", get(routes::index))
        .route("/ui/routes/{name}", get(routes::detail))
}

/// Query of `GET /ui`.
#[derive(Debug, Default, Deserialize)]
pub struct UiQuery {
    since: Option<String>,
    model: Option<String>,
    status: Option<String>,
    grep: Option<String>,
    limit: Option<usize>,
}

const CSS: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#222;background:#fafafa}
h1{font-size:1.3rem;margin:0 0 1rem}h2{font-size:1.05rem;margin:1.5rem 0 .5rem}
.cards{display:flex;gap:.75rem;flex-wrap:wrap}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.5rem .9rem;min-width:7rem}
.card .label{color:#666;font-size:.8rem}.card .value{font-size:1.3rem;font-weight:600}
table{border-collapse:collapse;background:#fff;width:100%}
th,td{border-bottom:1px solid #eee;padding:.3rem .5rem;text-align:left;white-space:nowrap}
td.num,th.num{text-align:right}tr.req{cursor:pointer}tr.req:hover{background:#f0f6ff}
tr.err td.status{color:#b00020;font-weight:600}
form{margin:.5rem 0;display:flex;gap:.5rem;flex-wrap:wrap;align-items:center}
pre{background:#fff;border:1px solid #ddd;padding:.75rem;white-space:pre-wrap}
dl{display:grid;grid-template-columns:10rem 1fr;gap:.2rem .75rem}dt{color:#666}dd{margin:0}
.legend span{margin-right:1rem}.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem}
svg text{font-size:10px;fill:#555}
.nav{margin:0 0 .5rem}
";

const JS: &str = "
(function(){
  var q=document.getElementById('quick'),shown=document.getElementById('shown');
  var rows=[].slice.call(document.querySelectorAll('tr.req'));
  function apply(){
    var t=q.value.toLowerCase(),n=0;
    rows.forEach(function(r){var ok=!t||r.getAttribute('data-search').indexOf(t)>=0;
      if(ok){r.removeAttribute('hidden');n++;}else{r.setAttribute('hidden','');}});
    shown.textContent=String(n);
  }
  var m=location.hash.match(/^#q=(.*)$/);if(m){q.value=decodeURIComponent(m[1]);}
  q.addEventListener('input',apply);apply();
  rows.forEach(function(r){r.addEventListener('click',function(e){
    if(e.target.tagName!=='A'){location.href='/ui/requests/'+encodeURIComponent(r.getAttribute('data-id'));}});});
})();
";

const COLORS: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f",
];

pub(super) fn page(title: &str, body: Markup) -> Response {
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body { (body) }
        }
    };
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        doc.into_string(),
    )
        .into_response()
}

struct Dashboard {
    since_ms: i64,
    bucket_ms: i64,
    total: UsageReport,
    hosting: UsageReport,
    timeline: Vec<Bucket>,
    rows: Vec<LogRow>,
}

/// Bucket width for a range: 5 min up to 2 h, 1 h up to 2 days, else 1 day; widened so there
/// are at most 200 buckets.
pub fn bucket_for(range_ms: i64) -> i64 {
    let b = if range_ms <= 2 * 3_600_000 {
        300_000
    } else if range_ms <= 2 * 86_400_000 {
        3_600_000
    } else {
        86_400_000
    };
    let n = range_ms / b + 1;
    if n > 200 { b * ((n + 199) / 200) } else { b }
}

async fn dashboard(State(gw): State<Gateway>, Query(q): Query<UiQuery>) -> Response {
    let now = store::now_ms() as i64;
    let since_text = q.since.clone().unwrap_or_else(|| "24h".into());
    let loaded = async {
        let since_ms = parse_since(Some(&since_text))?.unwrap_or(now - 86_400_000);
        let status = q
            .status
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(StatusFilter::parse)
            .transpose()
            .map_err(|e: StoreError| {
                ApiError::invalid_request(e.to_string()).with_param("status")
            })?;
        let filter = LogFilter {
            since_ms: Some(since_ms),
            model: q.model.clone().filter(|m| !m.is_empty()),
            status,
            grep: q.grep.clone().filter(|g| !g.is_empty()),
            limit: q.limit.unwrap_or(100).clamp(1, 1000),
            ..Default::default()
        };
        let bucket_ms = bucket_for(now - since_ms);
        with_log(&gw, move |conn| {
            let err = |e: StoreError| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    e.to_string(),
                )
            };
            Ok(Dashboard {
                since_ms,
                bucket_ms,
                total: query::usage(conn, Some(since_ms), Some(GroupBy::Model)).map_err(err)?,
                hosting: query::usage(conn, Some(since_ms), Some(GroupBy::Hosting)).map_err(err)?,
                timeline: conn.timeline(since_ms, bucket_ms).map_err(err)?,
                rows: conn.list(&filter).map_err(err)?,
            })
        })
        .await
    }
    .await;
    match loaded {
        Ok(d) => page(
            "Sluice · requests",
            render_dashboard(&d, &q, &since_text, now),
        ),
        Err(e) => e.into_response(),
    }
}

fn render_dashboard(d: &Dashboard, q: &UiQuery, since: &str, now: i64) -> Markup {
    let t = &d.total.total;
    let models: Vec<&str> = d.total.groups.iter().map(|g| g.key.as_str()).collect();
    let hostings: Vec<&str> = d.hosting.groups.iter().map(|g| g.key.as_str()).collect();
    html! {
        (usage::nav())
        h1 { "Sluice · requests since " (fmt_time(d.since_ms)) " UTC" }
        div.cards {
            (card("Requests", "total-requests", t.requests.to_string()))
            (card("Errors", "total-errors", t.errors.to_string()))
            (card("Tokens in", "total-tokens-in", t.prompt_tokens.to_string()))
            (card("Tokens out", "total-tokens-out", t.completion_tokens.to_string()))
            (card("Cost", "total-cost", fmt_cost(Some(t.cost_usd))))
            (card("Stayed local", "local-share", format!("{:.1}%", t.local_share * 100.0)))
            (card("p50 / p95", "latency", format!("{} / {}", fmt_ms(t.p50_ms as i64), fmt_ms(t.p95_ms as i64))))
        }
        h2 { "Requests over time, by model" }
        (chart("chart-requests", d, now, &models, |b| (b.model.as_str(), b.requests)))
        h2 { "Tokens over time, by hosting" }
        (chart("chart-tokens", d, now, &hostings, |b| (b.hosting.as_str(), b.tokens)))
        h2 { "Usage by model" }
        table #usage {
            thead { tr { th { "model" } th.num { "requests" } th.num { "errors" } th.num { "tokens in" }
                th.num { "tokens out" } th.num { "cost" } th.num { "p50" } th.num { "p95" } th.num { "local" } } }
            tbody {
                @for g in &d.total.groups {
                    tr { td { (g.key) } td.num { (g.requests) } td.num { (g.errors) } td.num { (g.prompt_tokens) }
                        td.num { (g.completion_tokens) } td.num { (fmt_cost(Some(g.cost_usd))) }
                        td.num { (fmt_ms(g.p50_ms as i64)) } td.num { (fmt_ms(g.p95_ms as i64)) }
                        td.num { (format!("{:.1}%", g.local_share * 100.0)) } }
                }
            }
        }
        h2 { "Recent requests" }
        form method="get" action="/ui" {
            label { "since " input name="since" value=(since) size="10"; }
            label { "model "
                select name="model" {
                    option value="" { "any" }
                    @for m in &models {
                        option value=(m) selected[q.model.as_deref() == Some(*m)] { (m) }
                    }
                }
            }
            label { "status "
                select name="status" {
                    @for (v, label) in [("", "any"), ("ok", "ok"), ("error", "error")] {
                        option value=(v) selected[q.status.as_deref().unwrap_or("") == v] { (label) }
                    }
                }
            }
            label { "text " input name="grep" value=(q.grep.as_deref().unwrap_or("")); }
            button type="submit" { "Apply" }
            span { " · quick filter: " input #quick placeholder="filter shown rows"; " " span #shown { (d.rows.len()) } " shown" }
        }
        table #requests {
            thead { tr { th { "time (UTC)" } th { "model → deployment" } th { "hosting/tier" } th.num { "status" }
                th.num { "tokens in/out" } th.num { "cost" } th.num { "latency" } th { "id" } } }
            tbody {
                @for r in &d.rows { (row(r)) }
            }
        }
        script { (PreEscaped(JS)) }
    }
}

pub(super) fn card(label: &str, id: &str, value: String) -> Markup {
    html! { div.card { div.label { (label) } div.value id=(id) { (value) } } }
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("-")
}

fn row(r: &LogRow) -> Markup {
    let est = if r.usage_estimated { "~" } else { "" };
    let search = format!(
        "{} {} {} {} {} {}",
        r.id,
        r.requested_model,
        opt(&r.deployment),
        opt(&r.hosting),
        r.status,
        opt(&r.end_user)
    )
    .to_lowercase();
    html! {
        tr.req.err[r.is_error()] data-id=(r.id) data-search=(search) {
            td { (fmt_time(r.started_ms)) }
            td { (r.requested_model) " → " (opt(&r.deployment)) }
            td { (opt(&r.hosting)) "/" (opt(&r.openness)) }
            td.num.status { (r.status) }
            td.num { (est) (r.prompt_tokens) "/" (est) (r.completion_tokens) }
            td.num { (fmt_cost(r.cost_usd)) }
            td.num { (fmt_ms(r.duration_ms)) }
            td { a href={ "/ui/requests/" (urlencode(&r.id)) } { (r.id) } }
        }
    }
}

pub(super) fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A stacked-bar chart: one bar per bucket from `since` to `now`, stacked by `series`.
fn chart(
    id: &str,
    d: &Dashboard,
    now: i64,
    series: &[&str],
    pick: impl Fn(&Bucket) -> (&str, u64),
) -> Markup {
    let (w, h, pad) = (720.0_f64, 150.0_f64, 30.0_f64);
    let first = d.since_ms / d.bucket_ms * d.bucket_ms;
    let n = ((now - first) / d.bucket_ms + 1).max(1) as usize;
    let mut stacks = vec![vec![0u64; series.len()]; n];
    for b in &d.timeline {
        let i = ((b.start_ms - first) / d.bucket_ms).clamp(0, n as i64 - 1) as usize;
        let (name, v) = pick(b);
        if let Some(s) = series.iter().position(|x| *x == name) {
            stacks[i][s] += v;
        }
    }
    let max = stacks
        .iter()
        .map(|s| s.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let bw = (w - pad) / n as f64;
    html! {
        svg id=(id) width=(w) height=(h + 20.0) viewBox={ "0 0 " (w) " " (h + 20.0) } role="img" {
            line x1=(pad) y1=(h) x2=(w) y2=(h) stroke="#999" {}
            text x="0" y="10" { (max) }
            text x="0" y=(h) { "0" }
            text x=(pad) y=(h + 14.0) { (fmt_time(first)) }
            text x=(w) y=(h + 14.0) text-anchor="end" { (fmt_time(now)) }
            @for b in bars(&stacks, series, pad, bw, h, max) {
                rect x=(format!("{:.1}", b.x)) y=(format!("{:.1}", b.y))
                    width=(format!("{:.1}", b.w)) height=(format!("{:.1}", b.h))
                    fill=(b.color) data-series=(b.series) data-value=(b.value) {
                    title { (b.series) ": " (b.value) }
                }
            }
        }
        div.legend {
            @for (s, name) in series.iter().enumerate() {
                span { i style={ "background:" (COLORS[s % COLORS.len()]) } {} (name) }
            }
        }
    }
}

struct Bar<'a> {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    color: &'static str,
    series: &'a str,
    value: u64,
}

/// The rectangles of a stacked-bar chart: bucket i at x, its series stacked upwards from the
/// baseline `h`, scaled so `max` fills the height.
fn bars<'a>(
    stacks: &[Vec<u64>],
    series: &[&'a str],
    pad: f64,
    bw: f64,
    h: f64,
    max: u64,
) -> Vec<Bar<'a>> {
    let mut out = Vec::new();
    for (i, stack) in stacks.iter().enumerate() {
        let mut y = h;
        for (s, v) in stack.iter().enumerate() {
            if *v == 0 {
                continue;
            }
            let bh = *v as f64 / max as f64 * (h - 12.0);
            y -= bh;
            out.push(Bar {
                x: pad + i as f64 * bw + 1.0,
                y,
                w: (bw - 2.0).max(1.0),
                h: bh,
                color: COLORS[s % COLORS.len()],
                series: series[s],
                value: *v,
            });
        }
    }
    out
}

async fn detail(State(gw): State<Gateway>, Path(id): Path<String>) -> Response {
    let wanted = id.clone();
    let found = with_log(&gw, move |conn| {
        conn.get(&wanted).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                e.to_string(),
            )
        })
    })
    .await;
    match found {
        Ok(Some(r)) => page(&format!("Sluice · {}", r.id), render_detail(&r)),
        Ok(None) => {
            let mut resp = page(
                "Sluice · not found",
                html! { p { "No request " code { (id) } " in the log. " a href="/ui" { "Back" } } },
            );
            *resp.status_mut() = StatusCode::NOT_FOUND;
            resp
        }
        Err(e) => e.into_response(),
    }
}

fn render_detail(r: &LogRow) -> Markup {
    let fields: Vec<(&str, String)> = vec![
        ("request", format!("{} (row {})", r.id, r.seq)),
        ("endpoint", r.endpoint.clone()),
        (
            "model",
            format!("{} → {}", r.requested_model, opt(&r.deployment)),
        ),
        ("provider", opt(&r.provider).into()),
        ("hosting", opt(&r.hosting).into()),
        ("openness", opt(&r.openness).into()),
        ("status", r.status.to_string()),
        (
            "error",
            format!("{} {}", opt(&r.error_type), opt(&r.error_message)),
        ),
        ("stream", if r.stream { "yes" } else { "no" }.into()),
        ("finish", opt(&r.finish_reason).into()),
        (
            "tokens",
            format!(
                "{} in, {} out{}",
                r.prompt_tokens,
                r.completion_tokens,
                if r.usage_estimated {
                    " (estimated)"
                } else {
                    ""
                }
            ),
        ),
        ("cost", fmt_cost(r.cost_usd)),
        ("started", format!("{} UTC", fmt_time(r.started_ms))),
        ("duration", fmt_ms(r.duration_ms)),
        (
            "first token",
            r.ttft_ms.map(fmt_ms).unwrap_or_else(|| "-".into()),
        ),
        ("attempts", r.attempts.to_string()),
        ("key", opt(&r.api_key_id).into()),
        ("user", opt(&r.end_user).into()),
        ("client", opt(&r.client_ip).into()),
        ("policies", r.policies.get().to_string()),
        ("pii kinds", r.pii_kinds.get().to_string()),
        (
            "sampling",
            r.sampling
                .as_ref()
                .map(|s| s.get().to_string())
                .unwrap_or_else(|| "-".into()),
        ),
        (
            "deterministic",
            if r.deterministic { "yes" } else { "no" }.into(),
        ),
        ("route", opt(&r.route).into()),
        (
            "dropped tools",
            if r.dropped_tools.is_empty() {
                "-".into()
            } else {
                r.dropped_tools.join(", ")
            },
        ),
        ("log mode", r.log_mode.clone()),
        ("row hash", r.row_hash.clone()),
    ];
    html! {
        p { a href="/ui" { "← all requests" } }
        h1 { "Request " (r.id) }
        dl #detail {
            @for (k, v) in &fields { dt { (k) } dd data-field=(k) { (v) } }
        }
        h2 { "Prompt" }
        pre #prompt { (prompt_text(r)) }
        h2 { "Response" }
        pre #response { (response_text(r)) }
    }
}

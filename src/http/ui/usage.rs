//! `GET /ui/usage?since=24h&by=model|deployment|key|user`: charts of the request log, drawn on
//! the server as SVG ([`super::svg`]): requests, tokens and cost over time by the chosen
//! group; tokens that stayed local over time and as a share; traffic by openness tier.

use super::svg::{self, Axis, Series};
use crate::api::ApiError;
use crate::gateway::Gateway;
use crate::http::admin::{parse_since, with_log};
use crate::policy::tier::Openness;
use crate::store::query::{self, GroupBy, UsageReport};
use crate::store::report::fmt_time;
use crate::store::series::{Point, SeriesQuery};
use crate::store::{self, StoreError};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

/// Most series drawn in one chart; the rest are summed as `other`.
const MAX_SERIES: usize = 8;

/// Query of `GET /ui/usage`.
#[derive(Debug, Default, Deserialize)]
pub struct UsageQuery {
    since: Option<String>,
    by: Option<String>,
}

/// What the page shows, read from the log in one go.
struct Loaded {
    axis: Axis,
    points: Vec<Point>,
    total: UsageReport,
    openness: UsageReport,
}

/// The groupings the page offers, with their tab labels.
const GROUPS: [(&str, &str, GroupBy); 4] = [
    ("model", "Model", GroupBy::Model),
    ("deployment", "Deployment", GroupBy::Deployment),
    ("key", "Key", GroupBy::Key),
    ("user", "End user", GroupBy::User),
];

/// `GET /ui/usage`. Errors: 400 for a bad `since` or `by`, 404 `log_off` without a log.
pub async fn page(State(gw): State<Gateway>, Query(q): Query<UsageQuery>) -> Response {
    let now = store::now_ms() as i64;
    let since_text = q.since.clone().unwrap_or_else(|| "24h".into());
    let by_text = q.by.clone().unwrap_or_else(|| "model".into());
    let Some(&(_, by_label, by)) = GROUPS.iter().find(|g| g.0 == by_text) else {
        return ApiError::invalid_request(format!(
            "bad `by` `{by_text}`: use model, deployment, key or user"
        ))
        .with_param("by")
        .into_response();
    };
    let loaded = async {
        let since_ms = parse_since(Some(&since_text))?.unwrap_or(now - 86_400_000);
        let axis = Axis::new(since_ms, now, super::bucket_for(now - since_ms));
        with_log(&gw, move |conn| {
            let err = |e: StoreError| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    e.to_string(),
                )
            };
            let q = SeriesQuery {
                since_ms,
                bucket_ms: axis.bucket_ms,
                by: Some(by),
                deployment: None,
            };
            Ok(Loaded {
                axis,
                points: conn.series(&q).map_err(err)?,
                total: query::usage(conn, Some(since_ms), None).map_err(err)?,
                openness: query::usage(conn, Some(since_ms), Some(GroupBy::Openness))
                    .map_err(err)?,
            })
        })
        .await
    }
    .await;
    match loaded {
        Ok(d) => super::page(
            "Sluice · usage",
            render(&d, &since_text, &by_text, by_label),
        ),
        Err(e) => e.into_response(),
    }
}

/// The navigation line shared by the chart pages.
pub fn nav() -> Markup {
    html! {
        p.nav { a href="/ui" { "Requests" } " · " a href="/ui/usage" { "Usage charts" } " · " a href="/ui/routes" { "Routes" } }
    }
}

fn render(d: &Loaded, since: &str, by: &str, by_label: &str) -> Markup {
    let t = &d.total.total;
    let keys = top_keys(&d.points);
    let of = |pick: fn(&Point) -> f64| matrix(&d.points, d.axis, &keys, pick);
    let local = local_series(&d.points, d.axis);
    let by_lower = by_label.to_lowercase();
    html! {
        (nav())
        h1 { "Sluice · usage since " (fmt_time(d.axis.first_ms)) " UTC" }
        form method="get" action="/ui/usage" {
            label { "since " input name="since" value=(since) size="10"; }
            label { "by "
                select name="by" {
                    @for (v, label, _) in GROUPS {
                        option value=(v) selected[v == by] { (label) }
                    }
                }
            }
            button type="submit" { "Apply" }
        }
        div.cards {
            (super::card("Requests", "total-requests", t.requests.to_string()))
            (super::card("Tokens", "total-tokens", (t.prompt_tokens + t.completion_tokens).to_string()))
            (super::card("Cost (USD)", "total-cost", svg::fmt_usd(t.cost_usd)))
            (super::card("Stayed local", "local-share", svg::fmt_percent(t.local_share)))
        }
        h2 { "Requests over time, by " (by_lower) }
        (svg::stacked("chart-requests", d.axis, &of(|p| p.requests as f64), svg::fmt_count))
        h2 { "Tokens over time, by " (by_lower) }
        (svg::stacked("chart-tokens", d.axis, &of(|p| p.tokens as f64), svg::fmt_count))
        h2 { "Cost over time (USD), by " (by_lower) }
        (svg::stacked("chart-cost", d.axis, &of(|p| p.cost_usd), svg::fmt_usd))
        h2 { "Tokens that stayed local" }
        (svg::hbars("chart-local-share", &[
            ("local".to_string(), t.local_share),
            ("remote".to_string(), if t.prompt_tokens + t.completion_tokens > 0 { 1.0 - t.local_share } else { 0.0 }),
        ], svg::fmt_percent))
        (svg::stacked("chart-local", d.axis, &local, svg::fmt_count))
        h2 { "Traffic by openness tier" }
        (svg::hbars("chart-openness-requests", &tier_rows(&d.openness, |r| r.requests as f64), svg::fmt_count))
        p { "Tokens:" }
        (svg::hbars("chart-openness-tokens", &tier_rows(&d.openness, |r| (r.prompt_tokens + r.completion_tokens) as f64), svg::fmt_count))
    }
}

/// The groups drawn as their own series: the `MAX_SERIES - 1` with most tokens (then
/// requests), the rest summed as `other`.
fn top_keys(points: &[Point]) -> Vec<String> {
    let mut totals: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
    for p in points {
        let t = totals.entry(&p.key).or_default();
        t.0 += p.tokens;
        t.1 += p.requests;
    }
    let mut keys: Vec<(&str, (u64, u64))> = totals.into_iter().collect();
    keys.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut out: Vec<String> = keys.iter().map(|k| k.0.to_string()).collect();
    if out.len() > MAX_SERIES {
        out.truncate(MAX_SERIES - 1);
        out.push("other".into());
    }
    out
}

/// One series per key of `keys` (a key not among them counts under the last, `other`).
fn matrix(points: &[Point], axis: Axis, keys: &[String], pick: fn(&Point) -> f64) -> Vec<Series> {
    let mut out: Vec<Series> = keys
        .iter()
        .map(|k| Series {
            name: k.clone(),
            values: vec![0.0; axis.n],
        })
        .collect();
    for p in points {
        let s = keys
            .iter()
            .position(|k| *k == p.key)
            .unwrap_or(keys.len().saturating_sub(1));
        if let Some(series) = out.get_mut(s) {
            series.values[axis.index(p.start_ms)] += pick(p);
        }
    }
    out
}

/// Tokens per bucket served locally and remotely.
fn local_series(points: &[Point], axis: Axis) -> Vec<Series> {
    let mut local = vec![0.0; axis.n];
    let mut remote = vec![0.0; axis.n];
    for p in points {
        let i = axis.index(p.start_ms);
        local[i] += p.local_tokens as f64;
        remote[i] += p.tokens.saturating_sub(p.local_tokens) as f64;
    }
    vec![
        Series {
            name: "local".into(),
            values: local,
        },
        Series {
            name: "remote".into(),
            values: remote,
        },
    ]
}

/// One row per openness tier, least open first (every tier, so an empty one shows), then
/// rows of unknown tier (`-`).
fn tier_rows(report: &UsageReport, pick: fn(&query::UsageRow) -> f64) -> Vec<(String, f64)> {
    let value = |name: &str| {
        report
            .groups
            .iter()
            .find(|g| g.key == name)
            .map(pick)
            .unwrap_or(0.0)
    };
    let mut rows: Vec<(String, f64)> = Openness::ALL
        .iter()
        .map(|t| (t.as_str().to_string(), value(t.as_str())))
        .collect();
    let unknown = value("-");
    if unknown > 0.0 {
        rows.push(("unknown".into(), unknown));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(start_ms: i64, key: &str, tokens: u64, local_tokens: u64) -> Point {
        Point {
            start_ms,
            key: key.into(),
            requests: 1,
            tokens,
            cost_usd: 0.0,
            local_tokens,
        }
    }

    #[test]
    fn the_ninth_group_and_later_are_other() {
        let points: Vec<Point> = (0..10)
            .map(|i| point(0, &format!("k{i}"), 100 - i, 0))
            .collect();
        let keys = top_keys(&points);
        assert_eq!(keys.len(), 8);
        assert_eq!(keys[0], "k0");
        assert_eq!(keys[7], "other");
        let axis = Axis::new(0, 0, 1000);
        let m = matrix(&points, axis, &keys, |p| p.tokens as f64);
        // k7, k8, k9: 93 + 92 + 91.
        assert_eq!(m[7].values, vec![276.0]);
    }

    #[test]
    fn local_and_remote_tokens_per_bucket() {
        let axis = Axis::new(0, 1999, 1000);
        let s = local_series(&[point(0, "a", 10, 10), point(1000, "b", 7, 0)], axis);
        assert_eq!(s[0].values, vec![10.0, 0.0]);
        assert_eq!(s[1].values, vec![0.0, 7.0]);
    }
}

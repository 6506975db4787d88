//! `GET /ui/routes`: every deployment (route) with its hosting, openness tier, the models that
//! use it and its traffic; `GET /ui/routes/{name}`: one route with its five freedoms drawn as
//! ladders and its requests and tokens over time. SVG from [`super::svg`], no script.

use super::svg::{self, Axis, Series};
use crate::api::ApiError;
use crate::gateway::Gateway;
use crate::http::admin::with_log;
use crate::policy::DeploymentAttrs;
use crate::policy::tier::Freedom;
use crate::store::query::{self, GroupBy, UsageRow};
use crate::store::series::{Point, SeriesQuery};
use crate::store::{self, StoreError};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

/// The traffic window of the route pages.
const WINDOW_MS: i64 = 86_400_000;

fn internal(e: StoreError) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        e.to_string(),
    )
}

/// `GET /ui/routes`. Without a request log the traffic columns stay empty.
pub async fn index(State(gw): State<Gateway>) -> Response {
    let since = store::now_ms() as i64 - WINDOW_MS;
    let usage = with_log(&gw, move |conn| {
        query::usage(conn, Some(since), Some(GroupBy::Deployment)).map_err(internal)
    })
    .await
    .map(|u| u.groups)
    .unwrap_or_default();
    let engine = gw.policy();
    let rows: Vec<(&DeploymentAttrs, Vec<&str>, Option<&UsageRow>)> = gw
        .config
        .deployments
        .iter()
        .filter_map(|d| engine.attrs(&d.name))
        .map(|a| {
            (
                &**a,
                models_of(&gw, &a.name),
                usage.iter().find(|u| u.key == a.name),
            )
        })
        .collect();
    let body = html! {
        (super::usage::nav())
        h1 { "Sluice · routes" }
        p { "Each deployment is a route; its five freedoms follow from its openness tier and where it runs. Traffic: last 24 h." }
        table #routes {
            thead { tr { th { "route" } th { "provider" } th { "model" } th { "hosting" } th { "openness" }
                th { "used by" } th.num { "requests" } th.num { "tokens" } } }
            tbody {
                @for (a, models, u) in &rows {
                    tr data-route=(a.name) {
                        td { a href={ "/ui/routes/" (super::urlencode(&a.name)) } { (a.name) } }
                        td { (a.provider) } td { (a.model) } td { (a.hosting.as_str()) } td { (a.openness.as_str()) }
                        td { (models.join(", ")) }
                        td.num { (u.map_or(0, |u| u.requests)) }
                        td.num { (u.map_or(0, |u| u.prompt_tokens + u.completion_tokens)) }
                    }
                }
            }
        }
    };
    super::page("Sluice · routes", body)
}

/// The models that list `deployment`.
fn models_of<'a>(gw: &'a Gateway, deployment: &str) -> Vec<&'a str> {
    gw.config
        .models
        .iter()
        .filter(|m| m.deployments.iter().any(|d| d == deployment))
        .map(|m| m.name.as_str())
        .collect()
}

/// `GET /ui/routes/{name}`. Errors: 404 page for an unknown deployment.
pub async fn detail(State(gw): State<Gateway>, Path(name): Path<String>) -> Response {
    let Some(attrs) = gw.policy().attrs(&name).cloned() else {
        let mut resp = super::page(
            "Sluice · not found",
            html! { (super::usage::nav()) p { "No route " code { (name) } " in the config." } },
        );
        *resp.status_mut() = StatusCode::NOT_FOUND;
        return resp;
    };
    let now = store::now_ms() as i64;
    let since_ms = now - WINDOW_MS;
    let axis = Axis::new(since_ms, now, super::bucket_for(WINDOW_MS));
    let wanted = name.clone();
    let points = with_log(&gw, move |conn| {
        let q = SeriesQuery {
            since_ms,
            bucket_ms: axis.bucket_ms,
            by: None,
            deployment: Some(wanted),
        };
        conn.series(&q).map_err(internal)
    })
    .await;
    let body = render_detail(&attrs, &models_of(&gw, &name), axis, points);
    super::page(&format!("Sluice · route {name}"), body)
}

fn render_detail(
    a: &DeploymentAttrs,
    models: &[&str],
    axis: Axis,
    points: Result<Vec<Point>, ApiError>,
) -> Markup {
    let ladders: Vec<(&str, &[&str], usize)> = Freedom::ALL
        .iter()
        .map(|f| {
            let level = a.freedoms.get(*f);
            (f.key(), f.levels(), f.rank(level).unwrap_or(0))
        })
        .collect();
    let price = a.price.map_or("unknown".to_string(), |p| {
        format!("{} / {} USD per 1M tokens in/out", p.input, p.output)
    });
    let one = |pick: fn(&Point) -> f64, name: &str, pts: &[Point]| {
        let mut values = vec![0.0; axis.n];
        for p in pts {
            values[axis.index(p.start_ms)] += pick(p);
        }
        vec![Series {
            name: name.to_string(),
            values,
        }]
    };
    html! {
        (super::usage::nav())
        h1 { "Route " (a.name) }
        dl #route {
            dt { "provider" } dd data-field="provider" { (a.provider) }
            dt { "model" } dd data-field="model" { (a.model) }
            dt { "hosting" } dd data-field="hosting" { (a.hosting.as_str()) }
            dt { "openness" } dd data-field="openness" { (a.openness.as_str()) }
            dt { "family" } dd data-field="family" { (a.catalog_family.as_deref().unwrap_or("-")) }
            dt { "licence" } dd data-field="licence" { (a.licence.as_deref().unwrap_or("-")) }
            dt { "price" } dd data-field="price" { (price) }
            dt { "used by" } dd data-field="models" { (models.join(", ")) }
        }
        h2 { "Five freedoms" }
        (svg::freedom_ladders("chart-freedoms", &ladders))
        @match &points {
            Ok(pts) => {
                h2 { "Requests, last 24 h" }
                (svg::stacked("chart-route-requests", axis, &one(|p| p.requests as f64, "requests", pts), svg::fmt_count))
                h2 { "Tokens, last 24 h" }
                (svg::stacked("chart-route-tokens", axis, &one(|p| p.tokens as f64, "tokens", pts), svg::fmt_count))
            }
            Err(_) => p { "No request log: traffic is not shown." }
        }
    }
}

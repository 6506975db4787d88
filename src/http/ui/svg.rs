//! Inline SVG charts for the `/ui` pages, rendered on the server (no script, no font or file
//! from elsewhere). Every mark carries `data-*` attributes naming its chart, series and value,
//! so tests (and scripts) can read the numbers back from the page.

use crate::store::report::fmt_time;
use maud::{Markup, html};

/// Colours of the series, in order (the last series past eight reuses them).
pub const PALETTE: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f",
];

/// One named series: a value per time bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend name (a model, deployment, key, user, `local`…).
    pub name: String,
    /// One value per bucket, oldest first.
    pub values: Vec<f64>,
}

/// A time axis: `n` buckets of `bucket_ms` from `first_ms`.
#[derive(Debug, Clone, Copy)]
pub struct Axis {
    /// Start of the first bucket, Unix ms.
    pub first_ms: i64,
    /// Bucket width, ms.
    pub bucket_ms: i64,
    /// Number of buckets.
    pub n: usize,
}

impl Axis {
    /// The buckets from `since_ms` to `now_ms`, `bucket_ms` wide (at least one).
    pub fn new(since_ms: i64, now_ms: i64, bucket_ms: i64) -> Axis {
        let bucket_ms = bucket_ms.max(1);
        let first_ms = since_ms.div_euclid(bucket_ms) * bucket_ms;
        let n = ((now_ms - first_ms) / bucket_ms + 1).max(1) as usize;
        Axis {
            first_ms,
            bucket_ms,
            n,
        }
    }

    /// The bucket holding `start_ms` (clamped to the axis).
    pub fn index(&self, start_ms: i64) -> usize {
        ((start_ms - self.first_ms) / self.bucket_ms).clamp(0, self.n as i64 - 1) as usize
    }
}

const W: f64 = 720.0;
const H: f64 = 150.0;
const PAD: f64 = 44.0;

/// A stacked-bar chart over time: one bar per bucket, the series stacked upwards. `fmt`
/// writes values (axis label, tooltips and `data-value`). Each bar segment is a `rect` with
/// `data-chart`, `data-series`, `data-bucket` (start, Unix ms) and `data-value`.
pub fn stacked(id: &str, axis: Axis, series: &[Series], fmt: fn(f64) -> String) -> Markup {
    let max = (0..axis.n)
        .map(|i| series.iter().filter_map(|s| s.values.get(i)).sum::<f64>())
        .fold(0.0_f64, f64::max);
    let scale = if max > 0.0 { (H - 12.0) / max } else { 0.0 };
    let bw = (W - PAD) / axis.n as f64;
    let last = axis.first_ms + axis.bucket_ms * (axis.n as i64 - 1);
    html! {
        svg id=(id) class="chart" width=(W) height=(H + 20.0) viewBox={ "0 0 " (W) " " (H + 20.0) } role="img" {
            line x1=(PAD) y1=(H) x2=(W) y2=(H) stroke="#999" {}
            text x="0" y="10" { (fmt(max)) }
            text x="0" y=(H) { "0" }
            text x=(PAD) y=(H + 14.0) { (fmt_time(axis.first_ms)) }
            text x=(W) y=(H + 14.0) text-anchor="end" { (fmt_time(last)) }
            @for g in segments(axis, series, scale) {
                rect x=(format!("{:.1}", PAD + g.bucket as f64 * bw + 1.0)) y=(format!("{:.1}", g.y))
                    width=(format!("{:.1}", (bw - 2.0).max(1.0))) height=(format!("{:.1}", g.h.max(0.5)))
                    fill=(PALETTE[g.series % PALETTE.len()]) data-chart=(id) data-series=(series[g.series].name)
                    data-bucket=(axis.first_ms + axis.bucket_ms * g.bucket as i64) data-value=(fmt(g.value)) {
                    title { (series[g.series].name) ": " (fmt(g.value)) }
                }
            }
        }
        (legend(series.iter().map(|s| s.name.as_str())))
    }
}

/// One bar segment: bucket, series index, value, top and height (px).
struct Segment {
    bucket: usize,
    series: usize,
    value: f64,
    y: f64,
    h: f64,
}

/// The segments of a stacked chart, each bucket's series stacked upwards from the baseline.
fn segments(axis: Axis, series: &[Series], scale: f64) -> Vec<Segment> {
    let mut out = Vec::new();
    for bucket in 0..axis.n {
        let mut y = H;
        for (s, ser) in series.iter().enumerate() {
            let value = ser.values.get(bucket).copied().unwrap_or(0.0);
            if value <= 0.0 {
                continue;
            }
            let h = value * scale;
            y -= h;
            out.push(Segment {
                bucket,
                series: s,
                value,
                y,
                h,
            });
        }
    }
    out
}

/// The colour key of a chart's series.
pub fn legend<'a>(names: impl Iterator<Item = &'a str>) -> Markup {
    html! {
        div.legend {
            @for (s, name) in names.enumerate() {
                span { i style={ "background:" (PALETTE[s % PALETTE.len()]) } {} (name) }
            }
        }
    }
}

/// A horizontal bar per row (`label`, value), scaled to the largest; each bar a `rect` with
/// `data-chart`, `data-label` and `data-value`. Rows of value 0 keep their label and no bar.
pub fn hbars(id: &str, rows: &[(String, f64)], fmt: fn(f64) -> String) -> Markup {
    let max = rows.iter().map(|r| r.1).fold(0.0_f64, f64::max);
    let (label_w, row_h) = (150.0, 20.0);
    let h = row_h * rows.len().max(1) as f64;
    html! {
        svg id=(id) class="chart" width=(W) height=(h) viewBox={ "0 0 " (W) " " (h) } role="img" {
            @for (i, (label, v)) in rows.iter().enumerate() {
                @let y = i as f64 * row_h;
                text x="0" y=(y + 14.0) { (label) }
                @if *v > 0.0 {
                    @let w = v / max * (W - label_w - 90.0);
                    rect x=(label_w) y=(y + 3.0) width=(format!("{:.1}", w.max(1.0))) height=(row_h - 6.0)
                        fill=(PALETTE[i % PALETTE.len()]) data-chart=(id) data-label=(label) data-value=(fmt(*v)) {
                        title { (label) ": " (fmt(*v)) }
                    }
                }
                text x=(format!("{:.1}", label_w + 4.0 + if max > 0.0 { v / max * (W - label_w - 90.0) } else { 0.0 })) y=(y + 14.0) { (fmt(*v)) }
            }
        }
    }
}

/// The five freedoms of a route as ladders: one row per freedom, one cell per level (lowest
/// first), the cells up to the route's level filled. Each row is a `g` with `data-freedom`
/// and `data-level`; filled cells carry `data-filled`.
pub fn freedom_ladders(id: &str, rows: &[(&str, &[&str], usize)]) -> Markup {
    let (label_w, row_h, cell_w) = (120.0, 26.0, 118.0);
    let h = row_h * rows.len() as f64;
    html! {
        svg id=(id) class="chart" width=(W) height=(h) viewBox={ "0 0 " (W) " " (h) } role="img" {
            @for (r, (freedom, levels, rank)) in rows.iter().enumerate() {
                @let y = r as f64 * row_h;
                g data-freedom=(freedom) data-level=(levels.get(*rank).copied().unwrap_or("")) {
                    text x="0" y=(y + 16.0) { (freedom) }
                    @for (i, level) in levels.iter().enumerate() {
                        @let filled = i <= *rank;
                        rect x=(label_w + i as f64 * cell_w) y=(y + 3.0) width=(cell_w - 4.0) height=(row_h - 6.0)
                            fill=(if filled { "#59a14f" } else { "#e8e8e8" }) data-filled[filled] {
                            title { (level) }
                        }
                        text x=(label_w + i as f64 * cell_w + 4.0) y=(y + 16.0) style=(if filled { "fill:#fff" } else { "" }) { (level) }
                    }
                }
            }
        }
    }
}

/// Whole numbers (`12`).
pub fn fmt_count(v: f64) -> String {
    format!("{v:.0}")
}

/// US dollars with six decimals (`0.000420`).
pub fn fmt_usd(v: f64) -> String {
    format!("{v:.6}")
}

/// A share 0–1 as a percentage with one decimal (`37.5%`).
pub fn fmt_percent(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_buckets_and_stacked_marks() {
        let axis = Axis::new(1_050, 3_200, 1_000);
        assert_eq!((axis.first_ms, axis.n), (1_000, 3));
        assert_eq!(
            (axis.index(999), axis.index(2_500), axis.index(9_000)),
            (0, 1, 2)
        );
        let series = [
            Series {
                name: "a".into(),
                values: vec![1.0, 0.0, 2.0],
            },
            Series {
                name: "b<".into(),
                values: vec![3.0, 0.0, 0.0],
            },
        ];
        let svg = stacked("c", axis, &series, fmt_count).into_string();
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(
            svg.contains(r#"data-chart="c" data-series="b&lt;" data-bucket="1000" data-value="3""#),
            "{svg}"
        );
        assert!(svg.contains(r#"data-series="a" data-bucket="3000" data-value="2""#));
        // The tallest stack (4) fills the height: 138 px from the baseline at 150.
        assert!(svg.contains(r#"y="12.0""#), "{svg}");
    }

    #[test]
    fn ladders_fill_up_to_the_level() {
        let svg =
            freedom_ladders("f", &[("trust", &["none", "partial", "complete"], 1)]).into_string();
        assert!(svg.contains(r#"data-freedom="trust" data-level="partial""#));
        assert_eq!(svg.matches("data-filled").count(), 2);
    }
}

//! The `/ui` charts in a real headless Chromium: traffic sent through Sluice to a mock (a
//! local open-weight route and a remote priced one, two end users) shows up as SVG marks with
//! exactly those numbers; the page is also saved as a screenshot
//! (`$CARGO_TARGET_TMPDIR/ui_usage.png`) and checked to be a PNG of the window's size.

mod support;

use serde_json::{Value, json};
use sluice::gateway::Gateway;
use std::collections::BTreeMap;
use support::*;

fn completion() -> Value {
    json!({"id":"c","object":"chat.completion","created":1,"model":"m",
           "choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],
           "usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}})
}

async fn traffic() -> (Sluice, tempfile::TempDir, Mock) {
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(|_| MockReply::Json(200, completion())).await;
    let yaml = format!(
        "deployments:
  - name: local-small
    provider: openai
    base_url: {url}
    model: SmolLM2-135M-Instruct
    openness: open-weight
  - name: remote-big
    provider: openai
    base_url: {url}
    model: gpt-4o
    hosting: remote
    price: {{input: 1, output: 2}}
models:
  - name: small
    deployments: [local-small]
  - name: big
    deployments: [remote-big]
log:
  path: {db}
",
        url = mock.url("/v1"),
        db = dir.path().join("log.db").display()
    );
    let gw = Gateway::with_request_log(sluice::config::parse("t.yaml", &yaml).unwrap()).unwrap();
    let s = Sluice::start_gateway(gw.clone()).await;
    for (model, user) in [
        ("small", "ana"),
        ("small", "ana"),
        ("big", "bo"),
        ("small", "ana"),
        ("big", "bo"),
    ] {
        let r = post(
            &s,
            "/v1/chat/completions",
            json!({"model": model, "user": user, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        assert_eq!(r.status(), 200);
        r.text().await.unwrap();
    }
    gw.flush_log().await;
    (s, dir, mock)
}

fn chromium(args: &[&str], url: &str, profile: &std::path::Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(url);
    cmd
}

/// The DOM of `url` after Chromium rendered it.
async fn dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    // Chromium is installed by tests/run.sh; a hung browser fails the test after 120 s.
    let out = output_within(chromium(&["--dump-dom"], url, profile.path()), 120).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Sum of `data-value` per `key_attr` over the marks of chart `id`.
fn marks(dom: &str, id: &str, key_attr: &str) -> BTreeMap<String, f64> {
    let rect = regex::Regex::new(r"<rect ([^>]*)>").unwrap();
    let attr = |attrs: &str, name: &str| {
        regex::Regex::new(&format!(r#"{name}="([^"]*)""#))
            .unwrap()
            .captures(attrs)
            .map(|c| c[1].to_string())
    };
    let mut out = BTreeMap::new();
    for c in rect.captures_iter(dom) {
        if attr(&c[1], "data-chart").as_deref() != Some(id) {
            continue;
        }
        let key = attr(&c[1], key_attr).unwrap();
        let v: f64 = attr(&c[1], "data-value")
            .unwrap()
            .trim_end_matches('%')
            .parse()
            .unwrap();
        *out.entry(key).or_insert(0.0) += v;
    }
    out
}

fn map(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[tokio::test]
async fn charts_show_the_traffic_sent() {
    let (s, _dir, _mock) = traffic().await;
    let d = dom(&s.url("/ui/usage")).await;
    assert_eq!(
        marks(&d, "chart-requests", "data-series"),
        map(&[("big", 2.0), ("small", 3.0)])
    );
    assert_eq!(
        marks(&d, "chart-tokens", "data-series"),
        map(&[("big", 14.0), ("small", 21.0)])
    );
    // Only the remote route has a price: 2 × (5 × 1 + 2 × 2) / 1M USD.
    assert_eq!(
        marks(&d, "chart-cost", "data-series"),
        map(&[("big", 0.000018)])
    );
    assert_eq!(
        marks(&d, "chart-local", "data-series"),
        map(&[("local", 21.0), ("remote", 14.0)])
    );
    assert_eq!(
        marks(&d, "chart-local-share", "data-label"),
        map(&[("local", 60.0), ("remote", 40.0)])
    );
    assert_eq!(
        marks(&d, "chart-openness-requests", "data-label"),
        map(&[("api", 2.0), ("open-weight", 3.0)])
    );
    assert_eq!(
        marks(&d, "chart-openness-tokens", "data-label"),
        map(&[("api", 14.0), ("open-weight", 21.0)])
    );
    assert!(d.contains(r#"id="local-share">60.0%<"#), "{d}");
    assert!(!d.contains("<script"), "the chart pages need no script");

    let d = dom(&s.url("/ui/usage?by=user")).await;
    assert_eq!(
        marks(&d, "chart-requests", "data-series"),
        map(&[("ana", 3.0), ("bo", 2.0)])
    );
    let d = dom(&s.url("/ui/usage?by=deployment")).await;
    assert_eq!(
        marks(&d, "chart-tokens", "data-series"),
        map(&[("local-small", 21.0), ("remote-big", 14.0)])
    );
    let d = dom(&s.url("/ui/usage?by=key")).await;
    assert_eq!(
        marks(&d, "chart-requests", "data-series"),
        map(&[("-", 5.0)])
    );

    // A page per route, with its five freedoms.
    let d = dom(&s.url("/ui/routes")).await;
    assert!(d.contains(r#"<tr data-route="local-small">"#), "{d}");
    let d = dom(&s.url("/ui/routes/remote-big")).await;
    for (f, level) in [
        ("access", "api-restricted"),
        ("model_control", "api-restricted"),
        ("data_control", "none"),
        ("autonomy", "none"),
        ("trust", "none"),
    ] {
        assert!(
            d.contains(&format!(r#"data-freedom="{f}" data-level="{level}""#)),
            "{f}: {d}"
        );
    }
    assert_eq!(
        marks(&d, "chart-route-requests", "data-series"),
        map(&[("requests", 2.0)])
    );
    let d = dom(&s.url("/ui/routes/local-small")).await;
    for (f, level) in [
        ("access", "full"),
        ("model_control", "deep"),
        ("data_control", "complete"),
        ("autonomy", "study-restricted"),
        ("trust", "none"),
    ] {
        assert!(
            d.contains(&format!(r#"data-freedom="{f}" data-level="{level}""#)),
            "{f}: {d}"
        );
    }
    let r = client().get(s.url("/ui/routes/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = client()
        .get(s.url("/ui/usage?by=colour"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // The screenshot: a PNG of the window's size.
    let png = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui_usage.png");
    let _ = std::fs::remove_file(&png);
    let profile = tempfile::tempdir().unwrap();
    let shot = format!("--screenshot={}", png.display());
    let out = output_within(
        chromium(
            &[&shot, "--window-size=1000,2000"],
            &s.url("/ui/usage"),
            profile.path(),
        ),
        120,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let (w, h) = (
        u32::from_be_bytes(bytes[16..20].try_into().unwrap()),
        u32::from_be_bytes(bytes[20..24].try_into().unwrap()),
    );
    assert_eq!((w, h), (1000, 2000));
    s.stop().await;
}

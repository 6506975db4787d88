//! The admin API and the `/ui` page over the request log, the page checked in a real headless
//! Chromium. Mock upstreams and Sluice run on 127.0.0.1.

mod support;

use serde_json::{Value, json};
use sluice::gateway::Gateway;
use support::*;

fn completion() -> Value {
    json!({"id":"c","object":"chat.completion","created":1,"model":"upstream-model",
           "choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],
           "usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}})
}

/// Sluice over one mock with its log on; five requests: 3 × `default`, 1 × `up`, 1 failing.
/// Returns the running Sluice, the gateway (to flush the log) and the temp dir.
async fn logged() -> (Sluice, Gateway, tempfile::TempDir, Mock) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mock = Mock::start(|r| {
        if r.body["messages"][0]["content"] == "fail" {
            MockReply::Text(500, "boom")
        } else {
            MockReply::Json(200, completion())
        }
    })
    .await;
    let yaml = format!(
        "{}log:\n  path: {}\n",
        one_deployment(&mock.url("/v1")),
        db.display()
    );
    let cfg = sluice::config::parse("test.yaml", &yaml).unwrap();
    let gw = Gateway::with_request_log(cfg).unwrap();
    let s = Sluice::start_gateway(gw.clone()).await;
    for (i, (model, text)) in [
        ("default", "one"),
        ("default", "two"),
        ("up", "three"),
        ("default", "fail"),
        ("default", "four <b>bold</b>"),
    ]
    .iter()
    .enumerate()
    {
        let r = client()
            .post(s.url("/v1/chat/completions"))
            .header("x-request-id", format!("req-{i}"))
            .json(&json!({"model": model, "messages": [{"role":"user","content": text}]}))
            .send()
            .await
            .unwrap();
        r.text().await.unwrap();
    }
    gw.flush_log().await;
    (s, gw, dir, mock)
}

async fn get(s: &Sluice, path: &str) -> (u16, Value) {
    let r = client().get(s.url(path)).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

fn ids(v: &Value) -> Vec<&str> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn admin_logs_pages_by_cursor_and_filters() {
    let (s, _gw, _dir, _mock) = logged().await;
    let (code, v) = get(&s, "/admin/logs?limit=2").await;
    assert_eq!(code, 200);
    assert_eq!(ids(&v), ["req-4", "req-3"]);
    assert_eq!(v["has_more"], true);
    assert_eq!(v["next_cursor"], 4);
    let (_, v) = get(&s, "/admin/logs?limit=2&cursor=4").await;
    assert_eq!(ids(&v), ["req-2", "req-1"]);
    let (_, v) = get(&s, "/admin/logs?limit=2&cursor=2").await;
    assert_eq!(ids(&v), ["req-0"]);
    assert_eq!(
        (v["has_more"].clone(), v["next_cursor"].clone()),
        (json!(false), Value::Null)
    );
    let (_, v) = get(&s, "/admin/logs?status=error").await;
    assert_eq!(ids(&v), ["req-3"]);
    assert_eq!(v["data"][0]["status"], 502);
    let (_, v) = get(&s, "/admin/logs?model=up&since=1h").await;
    assert_eq!(ids(&v), ["req-2"]);
    assert_eq!(v["data"][0]["prompt_tokens"], 5);
    assert_eq!(
        v["data"][0]["request_body"]["messages"][0]["content"],
        "three"
    );
    let (code, v) = get(&s, "/admin/logs?status=weird").await;
    assert_eq!(code, 400);
    assert_eq!(v["error"]["param"], "status");
    let (code, v) = get(&s, "/admin/logs?since=soon").await;
    assert_eq!(code, 400);
    assert_eq!(v["error"]["param"], "since");
    let (code, v) = get(&s, "/admin/logs?limit=0").await;
    assert_eq!((code, v["error"]["param"].clone()), (400, json!("limit")));
    s.stop().await;
}

#[tokio::test]
async fn admin_one_usage_and_verify() {
    let (s, _gw, _dir, _mock) = logged().await;
    let (code, v) = get(&s, "/admin/logs/req-1").await;
    assert_eq!(code, 200);
    assert_eq!(v["id"], "req-1");
    assert_eq!(v["response_content"], "Hi");
    assert_eq!(v["total_tokens"], 7);
    let (code, v) = get(&s, "/admin/logs/nope").await;
    assert_eq!(code, 404);
    assert_eq!(v["error"]["code"], "request_not_found");
    let (code, v) = get(&s, "/admin/usage?by=model").await;
    assert_eq!(code, 200);
    assert_eq!(v["by"], "model");
    assert_eq!(v["groups"][0]["key"], "default");
    assert_eq!(v["groups"][0]["requests"], 4);
    assert_eq!(v["groups"][0]["errors"], 1);
    assert_eq!(v["groups"][0]["prompt_tokens"], 15);
    assert_eq!(v["groups"][1]["key"], "up");
    assert_eq!(v["total"]["requests"], 5);
    assert_eq!(v["total"]["completion_tokens"], 8);
    let (code, v) = get(&s, "/admin/usage?by=colour").await;
    assert_eq!((code, v["error"]["param"].clone()), (400, json!("by")));
    let (_, v) = get(&s, "/admin/log/verify").await;
    assert_eq!(
        (v["ok"].clone(), v["rows"].clone()),
        (json!(true), json!(5))
    );
    assert_eq!(
        (v["anchor_seq"].clone(), v["anchor_hash"].clone()),
        (json!(0), json!("0".repeat(64)))
    );
    // The writer feeds the Prometheus metrics: at least one batch written, nothing queued.
    let m = get_text(&s.url("/metrics"), None).await;
    let line = |name: &str| {
        m.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {m}"))
            .to_string()
    };
    assert_eq!(line("sluice_log_queue_depth "), "sluice_log_queue_depth 0");
    assert_ne!(
        line("sluice_log_write_seconds_count "),
        "sluice_log_write_seconds_count 0"
    );
    s.stop().await;
}

#[tokio::test]
async fn admin_without_a_log_says_so() {
    let mock = Mock::start(|_| MockReply::Json(200, completion())).await;
    let s = Sluice::start(&one_deployment(&mock.url("/v1"))).await;
    let (code, v) = get(&s, "/admin/logs").await;
    assert_eq!(code, 404);
    assert_eq!(v["error"]["code"], "log_off");
    s.stop().await;
}

/// Runs headless Chromium on `url` and returns the DOM after its scripts ran.
async fn chromium_dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
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
        &format!("--user-data-dir={}", profile.path().display()),
        "--dump-dom",
        url,
    ]);
    // Chromium is installed by tests/run.sh; a hung browser fails the test after 120 s.
    let out = output_within(cmd, 120).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The text of the element with `id`.
fn by_id(dom: &str, id: &str) -> String {
    let re = regex::Regex::new(&format!(r#"id="{id}"[^>]*>([^<]*)<"#)).unwrap();
    re.captures(dom)
        .unwrap_or_else(|| panic!("no #{id} in {dom}"))[1]
        .to_string()
}

/// (data-id, hidden) of every request row.
fn rows(dom: &str) -> Vec<(String, bool)> {
    let re = regex::Regex::new(r#"<tr class="req[^"]*"([^>]*)>"#).unwrap();
    let id = regex::Regex::new(r#"data-id="([^"]*)""#).unwrap();
    re.captures_iter(dom)
        .map(|c| {
            let attrs = &c[1];
            (
                id.captures(attrs).unwrap()[1].to_string(),
                attrs.contains("hidden"),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_ui_renders_totals_chart_and_rows_in_chromium() {
    let (s, _gw, _dir, _mock) = logged().await;
    let url = s.url("/ui");
    let dom = chromium_dom(&url).await;
    assert_eq!(by_id(&dom, "total-requests"), "5");
    assert_eq!(by_id(&dom, "total-errors"), "1");
    assert_eq!(by_id(&dom, "total-tokens-in"), "20");
    assert_eq!(by_id(&dom, "total-tokens-out"), "8");
    assert_eq!(by_id(&dom, "shown"), "5");
    assert_eq!(
        rows(&dom),
        ["req-4", "req-3", "req-2", "req-1", "req-0"]
            .map(|i| (i.to_string(), false))
            .to_vec()
    );
    // The chart has bars for both models; the page escaped the prompt's HTML.
    assert!(
        dom.contains(r#"data-series="default" data-value="4""#),
        "{dom}"
    );
    assert!(dom.contains(r#"data-series="up" data-value="1""#));
    assert!(!dom.contains("<b>bold</b>"));

    // The quick filter (JS) hides the rows that do not match.
    let url = format!("{}#q=502", s.url("/ui"));
    let dom = chromium_dom(&url).await;
    assert_eq!(by_id(&dom, "shown"), "1");
    let visible: Vec<String> = rows(&dom)
        .into_iter()
        .filter(|r| !r.1)
        .map(|r| r.0)
        .collect();
    assert_eq!(visible, ["req-3"]);

    // Server-side filter and the detail page.
    let url = s.url("/ui?model=up");
    let dom = chromium_dom(&url).await;
    assert_eq!(rows(&dom), [("req-2".to_string(), false)]);
    let url = s.url("/ui/requests/req-4");
    let dom = chromium_dom(&url).await;
    assert!(dom.contains("user: four &lt;b&gt;bold&lt;/b&gt;"), "{dom}");
    assert!(dom.contains(r#"<pre id="response">Hi"#));
    s.stop().await;
}

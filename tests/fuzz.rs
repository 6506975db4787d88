//! The request fuzzer: generated hostile requests — malformed and type-confused JSON bodies,
//! random bytes, odd content types, wrong and malformed keys, control characters in header
//! values, strange paths — against every route (OpenAI, Messages, Responses, admin, models,
//! health). Sluice never answers 5xx itself (the mock upstream always answers well), never
//! panics (a panicking handler would drop the connection), answers every error as JSON in its
//! route's dialect (Anthropic's envelope on `/v1/messages…`, OpenAI's elsewhere), and no client
//! string ever starts a line of the process log.
//!
//! 256 cases in `cargo test`; `SLUICE_FUZZ_CASES=5000 cargo test --test fuzz` for a long run.
//! Its own binary: it installs the global tracing subscriber it reads.

mod support;

use proptest::prelude::*;
use serde_json::{Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex};
use support::*;

const MASTER: &str = "sk-master-fuzz";

/// The upstream: a well-formed answer for every operation, so any 5xx is Sluice's own.
fn upstream(r: &Received) -> MockReply {
    let usage = json!({"prompt_tokens":3,"completion_tokens":1,"total_tokens":4});
    if r.path.ends_with("/embeddings") {
        return MockReply::Json(
            200,
            json!({"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5]}],"model":"m","usage":usage}),
        );
    }
    if r.path.ends_with("/completions") && !r.path.ends_with("/chat/completions") {
        return MockReply::Json(
            200,
            json!({"id":"c","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":"ok","finish_reason":"stop"}],"usage":usage}),
        );
    }
    if r.body["stream"] == true {
        let c = json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]});
        let u = json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":usage});
        return MockReply::Sse(vec![sse(&c), sse(&u), done()]);
    }
    MockReply::Json(
        200,
        json!({"id":"c","object":"chat.completion","created":1,"model":"m",
               "choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":usage}),
    )
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// (method, path template): `{}` takes a generated path segment.
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/chat/completions"),
    ("POST", "/chat/completions"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/embeddings"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{}"),
    ("POST", "/v1/messages"),
    ("POST", "/messages"),
    ("POST", "/v1/messages/count_tokens"),
    ("POST", "/v1/responses"),
    ("POST", "/v1/responses/input_tokens"),
    ("GET", "/v1/responses/{}"),
    ("DELETE", "/v1/responses/{}"),
    ("GET", "/v1/responses/{}/input_items"),
    ("GET", "/admin/logs"),
    ("GET", "/admin/logs/{}"),
    ("GET", "/admin/usage"),
    ("GET", "/admin/log/verify"),
    ("POST", "/admin/keys"),
    ("GET", "/admin/keys/{}"),
    ("DELETE", "/admin/keys/{}"),
    ("GET", "/metrics"),
    ("GET", "/health/ready"),
    ("POST", "/ui/login"),
    ("PUT", "/v1/chat/completions"),
    ("POST", "/v1/{}"),
    ("GET", "/{}"),
];

/// Field names the dialects know, so generated objects hit real parsing paths.
const FIELDS: &[&str] = &[
    "model",
    "messages",
    "role",
    "content",
    "stream",
    "max_tokens",
    "max_output_tokens",
    "temperature",
    "tools",
    "tool_choice",
    "input",
    "instructions",
    "system",
    "prompt",
    "n",
    "stop",
    "user",
    "metadata",
    "extra_body",
    "type",
    "text",
    "name",
    "function",
    "arguments",
    "stream_options",
    "include_usage",
    "seed",
    "previous_response_id",
    "store",
    "models",
    "rpm",
    "budget",
    "expires",
    "log",
    "policies",
    "admin",
    "key",
    "image_url",
    "source",
];

fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9-]{0,12}".prop_map(String::from),
        Just("default".to_string()),
        Just("evil\nFORGED line\r\n\u{0}\u{1b}[31m".to_string()),
        "\\PC{0,40}".prop_map(String::from),
        "[\\x00-\\x1f\"\\\\]{0,8}".prop_map(String::from),
        (1usize..3000).prop_map(|n| "x".repeat(n)),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        Just(json!(u64::MAX)),
        Just(json!(-1)),
        hostile_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

/// A valid body of each shape, with one top-level field replaced or added.
fn mutated_body() -> impl Strategy<Value = Vec<u8>> {
    let bases = vec![
        json!({"model":"default","messages":[{"role":"user","content":"hi"}]}),
        json!({"model":"default","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}),
        json!({"model":"default","input":"hi"}),
        json!({"model":"default","prompt":"hi"}),
        json!({"name":"k","models":["default"]}),
    ];
    (
        prop::sample::select(bases),
        prop::sample::select(FIELDS),
        json_value(),
        any::<bool>(),
    )
        .prop_map(|(mut base, field, value, stream)| {
            if let Value::Object(m) = &mut base {
                m.insert(field.to_string(), value);
                if stream {
                    m.insert("stream".into(), json!(true));
                }
            }
            serde_json::to_vec(&base).unwrap()
        })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => mutated_body(),
        2 => json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => prop::collection::vec(any::<u8>(), 0..200),
        1 => Just(b"{\"model\": \"default\", \"messages\": [".to_vec()),
        1 => Just(Vec::new()),
        1 => Just(b"{\"model\":\"a\",\"model\":\"b\",\"messages\":[]}".to_vec()),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    route: usize,
    segment: String,
    query: String,
    auth: Option<String>,
    content_type: Option<String>,
    extra_header: (String, String),
    body: Vec<u8>,
}

fn header_value() -> impl Strategy<Value = String> {
    // Visible ASCII, spaces and tabs: what an HTTP client can send.
    "[ -~\t]{0,60}".prop_map(String::from)
}

fn case() -> impl Strategy<Value = Case> {
    (
        0..ROUTES.len(),
        prop_oneof![
            "[a-zA-Z0-9_.~-]{0,20}",
            "(%[0-9A-F]{2}){1,8}",
            Just("..%2F..%2Fetc".to_string())
        ],
        prop_oneof![Just(String::new()), "\\?[a-z_]{1,8}=[ -~&&[^#]]{0,20}"],
        prop_oneof![
            Just(Some(format!("Bearer {MASTER}"))),
            Just(Some("Bearer sk-wrong".to_string())),
            Just(Some("Basic abc".to_string())),
            Just(None),
            header_value().prop_map(Some),
        ],
        prop_oneof![
            Just(Some("application/json".to_string())),
            Just(Some("text/plain".to_string())),
            Just(Some("application/x-www-form-urlencoded".to_string())),
            Just(None),
            header_value().prop_map(Some),
        ],
        (
            prop::sample::select(vec![
                "x-request-id",
                "anthropic-version",
                "anthropic-beta",
                "x-sluice-sampling",
                "x-forwarded-for",
                "accept-encoding",
                "x-sluice-mode",
            ]),
            header_value(),
        ),
        body(),
    )
        .prop_map(
            |(route, segment, query, auth, content_type, (h, v), body)| Case {
                route,
                segment,
                query,
                auth,
                content_type,
                extra_header: (h.to_string(), v),
                body,
            },
        )
}

fn is_messages(path: &str) -> bool {
    let p = path.strip_prefix("/v1").unwrap_or(path);
    p == "/messages" || p.starts_with("/messages/")
}

/// Checks one answer: no 5xx, errors as JSON in the route's dialect.
fn check(path: &str, status: u16, content_type: &str, body: &[u8]) -> Result<(), String> {
    if status >= 500 {
        return Err(format!("{status}: {}", String::from_utf8_lossy(body)));
    }
    if status < 400 || path.starts_with("/ui") {
        return Ok(());
    }
    if !content_type.starts_with("application/json") {
        return Err(format!("{status} with content type {content_type:?}"));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "{status}: not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    })?;
    let ok = if is_messages(path) {
        v["type"] == "error" && v["error"]["type"].is_string() && v["error"]["message"].is_string()
    } else {
        v["error"]["message"].is_string() && v["error"]["type"].is_string()
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{status}: not the route's error shape: {v}"))
    }
}

#[test]
fn hostile_requests_never_get_a_5xx_a_panic_or_a_forged_log_line() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mock, s) = rt.block_on(async {
        let mock = Mock::start(upstream).await;
        let yaml = format!(
            "server:\n  master_key: {MASTER}\n{}keys:\n  - name: app\n    key: sk-app\n    models: [default]\nlog:\n  path: {}\n",
            one_deployment(&mock.url("/v1")),
            dir.path().join("fuzz.db").display()
        );
        let s = Sluice::start_logged(&yaml).await;
        (mock, s)
    });
    let c = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let n: u32 = std::env::var("SLUICE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(n));
    runner
        .run(&case(), |case| {
            let (method, template) = ROUTES[case.route];
            let path = template.replace("{}", &case.segment);
            let url = format!("{}{}", s.url(&path), case.query);
            let result = rt.block_on(async {
                let mut req = c
                    .request(method.parse().unwrap(), &url)
                    .body(case.body.clone());
                if let Some(a) = &case.auth {
                    req = req.header("authorization", a.as_str());
                }
                if let Some(ct) = &case.content_type {
                    req = req.header("content-type", ct.as_str());
                }
                req = req.header(case.extra_header.0.as_str(), case.extra_header.1.as_str());
                let r = req
                    .send()
                    .await
                    .map_err(|e| format!("no answer (panic?): {e}"))?;
                let status = r.status().as_u16();
                let ct = r
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let body = r
                    .bytes()
                    .await
                    .map_err(|e| format!("{status}: body cut (panic?): {e}"))?;
                Ok::<_, String>((status, ct, body))
            });
            let (status, ct, body) = match result {
                Ok(x) => x,
                Err(e) => return Err(TestCaseError::fail(format!("{method} {path}: {e}"))),
            };
            if let Err(e) = check(&path, status, &ct, &body) {
                return Err(TestCaseError::fail(format!("{method} {path}: {e}")));
            }
            Ok(())
        })
        .unwrap();
    rt.block_on(s.stop());
    assert!(
        mock.calls() > 0,
        "no generated request reached the upstream"
    );
    let out = String::from_utf8_lossy(&captured.0.lock().unwrap()).to_string();
    assert!(!out.contains('\0'), "a NUL in the process log");
    for line in out.lines() {
        // Every line is one event: it starts with its RFC 3339 timestamp.
        let ts = line.get(..20).unwrap_or("");
        assert!(
            ts.len() == 20
                && ts.as_bytes()[4] == b'-'
                && ts.as_bytes()[10] == b'T'
                && ts.bytes().take(4).all(|b| b.is_ascii_digit()),
            "a process log line that is not an event (forged?): {line:?}"
        );
    }
}

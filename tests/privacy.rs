//! Privacy on every path (issue 15): under `personal-data-stays-local`, an email carried in
//! any field of a request — not only the message content — sends the request to the local
//! mock, and the remote mock's raw received bytes never hold it.

mod support;

use serde_json::{Value, json};
use support::*;

const EMAIL: &str = "anna.berg@example.com";

const PII_LOCAL: &str = "policies:
  - name: personal-data-stays-local
    when: {pii: any}
    require: {hosting: local}
";

/// Answers chat and legacy completions in their own shapes.
fn answer(r: &Received) -> MockReply {
    if r.path.ends_with("/chat/completions") {
        MockReply::Json(
            200,
            json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000,
                   "model": "m", "choices": [{"index": 0, "finish_reason": "stop",
                   "message": {"role": "assistant", "content": "ok"}}],
                   "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}),
        )
    } else {
        MockReply::Json(
            200,
            json!({"id": "cmpl-1", "object": "text_completion", "created": 1700000000,
                   "model": "m", "choices": [{"index": 0, "text": "ok", "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}),
        )
    }
}

/// A remote deployment listed first and a local one, both declared.
fn config(local: &Mock, remote: &Mock) -> String {
    format!(
        "deployments:
  - name: remote
    provider: openai
    base_url: {}
    model: gpt-4o-mini
    hosting: remote
  - name: local
    provider: openai
    base_url: {}
    model: llama3.2:1b
    hosting: local
models:
  - name: default
    deployments: [remote, local]
{PII_LOCAL}",
        remote.url("/v1"),
        local.url("/v1"),
    )
}

/// Sends `body` to `path` and checks: 200 from the local mock, nothing at the remote one.
async fn stays_local(path: &str, body: Value) {
    let local = Mock::start(answer).await;
    let remote = Mock::start(answer).await;
    let s = Sluice::start(&config(&local, &remote)).await;
    let r = client().post(s.url(path)).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    let deployment = r
        .headers()
        .get("x-sluice-deployment")
        .map(|v| v.to_str().unwrap().to_string());
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert_eq!(deployment.as_deref(), Some("local"));
    assert_eq!(remote.calls(), 0);
    assert_eq!(remote.raw_bytes(), Vec::<u8>::new());
    assert_eq!(local.calls(), 1);
    let sent = String::from_utf8(local.raw_bytes()).unwrap();
    assert!(sent.contains(EMAIL), "{sent}");
    s.stop().await;
}

fn chat(extra: Value) -> Value {
    let mut v = json!({"model": "default", "messages": [{"role": "user", "content": "hello"}]});
    if let (Value::Object(m), Value::Object(x)) = (&mut v, extra) {
        m.extend(x);
    }
    v
}

fn chat_messages(messages: Value) -> Value {
    json!({"model": "default", "messages": messages})
}

#[tokio::test]
async fn message_name() {
    let m = json!([{"role": "user", "content": "hello", "name": EMAIL}]);
    stays_local("/v1/chat/completions", chat_messages(m)).await;
}

#[tokio::test]
async fn user() {
    stays_local("/v1/chat/completions", chat(json!({"user": EMAIL}))).await;
}

#[tokio::test]
async fn metadata_values() {
    let body = chat(json!({"metadata": {"customer": EMAIL}}));
    stays_local("/v1/chat/completions", body).await;
}

#[tokio::test]
async fn prediction_content() {
    let body = chat(json!({"prediction": {"type": "content", "content": format!("to {EMAIL}")}}));
    stays_local("/v1/chat/completions", body).await;
}

#[tokio::test]
async fn completions_suffix() {
    let body = json!({"model": "default", "prompt": "Dear", "suffix": format!("cc {EMAIL}")});
    stays_local("/v1/completions", body).await;
}

#[tokio::test]
async fn file_part_filename() {
    let m = json!([{"role": "user", "content": [
        {"type": "text", "text": "summarise"},
        {"type": "file", "file": {"filename": format!("{EMAIL}.pdf"), "file_id": "file-1"}}]}]);
    stays_local("/v1/chat/completions", chat_messages(m)).await;
}

#[tokio::test]
async fn legacy_function_call_arguments() {
    let args = json!({"to": EMAIL}).to_string();
    let m = json!([
        {"role": "user", "content": "send it"},
        {"role": "assistant", "content": null,
         "function_call": {"name": "send_mail", "arguments": args}},
        {"role": "function", "name": "send_mail", "content": "sent"}]);
    stays_local("/v1/chat/completions", chat_messages(m)).await;
}

#[tokio::test]
async fn assistant_reasoning_content() {
    let m = json!([
        {"role": "user", "content": "who?"},
        {"role": "assistant", "content": "someone", "reasoning_content": format!("it is {EMAIL}")},
        {"role": "user", "content": "thanks"}]);
    stays_local("/v1/chat/completions", chat_messages(m)).await;
}

#[tokio::test]
async fn assistant_refusal() {
    let m = json!([
        {"role": "user", "content": "who?"},
        {"role": "assistant", "content": null, "refusal": format!("I won't mail {EMAIL}")},
        {"role": "user", "content": "ok"}]);
    stays_local("/v1/chat/completions", chat_messages(m)).await;
}

#[tokio::test]
async fn tool_description() {
    let body = chat(json!({"tools": [{"type": "function", "function": {
        "name": "notify", "description": format!("Mails {EMAIL}"),
        "parameters": {"type": "object", "properties": {}}}}]}));
    stays_local("/v1/chat/completions", body).await;
}

#[tokio::test]
async fn response_format_schema_description() {
    let body = chat(
        json!({"response_format": {"type": "json_schema", "json_schema": {
        "name": "reply", "schema": {"type": "object",
        "properties": {"to": {"type": "string", "description": format!("always {EMAIL}")}}}}}}),
    );
    stays_local("/v1/chat/completions", body).await;
}

#[tokio::test]
async fn unknown_top_level_field() {
    stays_local("/v1/chat/completions", chat(json!({"notes": EMAIL}))).await;
}

#[tokio::test]
async fn extra_body_key() {
    let body = chat(json!({"extra_body": {"notes": {"deep": [EMAIL]}}}));
    stays_local("/v1/chat/completions", body).await;
}
/// `extra_body.messages` names a field the request already has: refused before any call
/// (was: unpacked by the provider after the decision, a second `messages` key upstream).
#[tokio::test]
async fn extra_body_messages() {
    let local = Mock::start(answer).await;
    let remote = Mock::start(answer).await;
    let s = Sluice::start(&config(&local, &remote)).await;
    let body = chat(json!({"extra_body": {"messages": [{"role": "user", "content": EMAIL}]}}));
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["param"], "extra_body.messages");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!((remote.calls(), local.calls()), (0, 0));
    s.stop().await;
}

/// Fails on any object with the same key twice, at any depth (what Python's `json` and
/// pydantic would silently resolve to the last copy).
struct NoDuplicates;

impl<'de> serde::Deserialize<'de> for NoDuplicates {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicatesVisitor)
    }
}

struct NoDuplicatesVisitor;

impl<'de> serde::de::Visitor<'de> for NoDuplicatesVisitor {
    type Value = NoDuplicates;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_i64<E>(self, _: i64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_u64<E>(self, _: u64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_f64<E>(self, _: f64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_str<E>(self, _: &str) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_unit<E>(self) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<NoDuplicates, A::Error> {
        while a.next_element::<NoDuplicates>()?.is_some() {}
        Ok(NoDuplicates)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<NoDuplicates, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(k) = a.next_key::<String>()? {
            if !seen.insert(k.clone()) {
                return Err(serde::de::Error::custom(format!("duplicate key `{k}`")));
            }
            a.next_value::<NoDuplicates>()?;
        }
        Ok(NoDuplicates)
    }
}

fn assert_no_duplicate_keys(raw: &[u8]) {
    if let Err(e) = serde_json::from_slice::<NoDuplicates>(raw) {
        panic!("{e} in {}", String::from_utf8_lossy(raw));
    }
}

#[test]
fn the_duplicate_check_can_fail() {
    assert!(serde_json::from_slice::<NoDuplicates>(br#"{"a":{"b":1,"b":2}}"#).is_err());
    assert!(serde_json::from_slice::<NoDuplicates>(br#"{"a":[{"b":1},{"b":2}]}"#).is_ok());
}

/// `extra_body` keys are merged before the decision: the deterministic override of the route
/// replaces `temperature` and `seed` once, and the upstream body has each key once.
#[tokio::test]
async fn no_upstream_body_has_a_duplicate_key() {
    let up = Mock::start(answer).await;
    let yaml = format!(
        "deployments:
  - name: up
    provider: openai
    base_url: {}
    model: m
    hosting: local
    sampling: {{deterministic: true, seed: 42}}
models:
  - name: default
    deployments: [up]
",
        up.url("/v1")
    );
    let s = Sluice::start(&yaml).await;
    let bodies = [
        chat(json!({"extra_body": {"temperature": 1.9, "seed": 7, "notes": "n"}})),
        chat(json!({"temperature": 0.5, "extra_body": {"top_p": 0.3, "min_p": 0.1}})),
        json!({"model": "default", "prompt": "p", "extra_body": {"suffix": "s", "max_tokens": 3}}),
    ];
    for (i, b) in bodies.iter().enumerate() {
        let path = if i == 2 {
            "/v1/completions"
        } else {
            "/v1/chat/completions"
        };
        let r = client().post(s.url(path)).json(b).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let got = up.received.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    for r in &got {
        assert_no_duplicate_keys(&r.raw);
        assert!(r.body.get("extra_body").is_none(), "{}", r.body);
    }
    assert_eq!(got[0].body["temperature"], 0.0);
    assert_eq!(got[0].body["seed"], 42);
    assert_eq!(got[0].body["notes"], "n");
    assert_eq!(got[1].body["top_p"], 1.0);
    assert_eq!(got[2].body["suffix"], "s");
    assert_eq!(got[2].body["max_tokens"], 3);
    s.stop().await;
}

/// `extra_body: {"stream": true}` is refused at parse time: no deployment is called, none
/// cools down, the next request is served by the first one.
#[tokio::test]
async fn extra_body_stream_is_a_400_and_cools_nothing_down() {
    let a = Mock::start(answer).await;
    let b = Mock::start(answer).await;
    let yaml = format!(
        "deployments:
  - name: a
    provider: openai
    base_url: {}
    model: m
  - name: b
    provider: openai
    base_url: {}
    model: m
models:
  - name: default
    deployments: [a, b]
routing:
  cooldown_ms: 30000
",
        a.url("/v1"),
        b.url("/v1")
    );
    let s = Sluice::start(&yaml).await;
    let post = |body: Value| {
        client()
            .post(s.url("/v1/chat/completions"))
            .json(&body)
            .send()
    };
    let r = post(chat(json!({"extra_body": {"stream": true}})))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!({"error": {"message": "`extra_body.stream` is not allowed: `stream` changes the kind of request; set it at the top level.",
                         "type": "invalid_request_error", "param": "extra_body.stream", "code": null}})
    );
    assert_eq!((a.calls(), b.calls()), (0, 0));
    let r = post(chat(json!({}))).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-sluice-deployment"], "a");
    assert_eq!((a.calls(), b.calls()), (1, 0));
    s.stop().await;
}

/// A deployment answering `307` to another server: the redirect is not followed (the
/// prompt and the key would reach a host no policy judged); the client gets a 502 naming it.
#[tokio::test]
async fn a_redirect_is_an_upstream_error_and_its_target_receives_nothing() {
    let target = Mock::start(answer).await;
    let location = target.url("/v1/chat/completions");
    let redirecting = Mock::start(move |_: &Received| {
        MockReply::JsonWithHeaders(307, vec![("location", location.clone())], json!({}))
    })
    .await;
    let yaml = format!(
        "deployments:
  - name: lan-proxy
    provider: openai
    base_url: {}
    model: m
    api_key: sk-test-secret
models:
  - name: default
    deployments: [lan-proxy]
",
        redirecting.url("/v1")
    );
    let s = Sluice::start(&yaml).await;
    let body = chat_messages(json!([{"role": "user", "content": format!("mail {EMAIL}")}]));
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!({"error": {"message": "deployment `lan-proxy`: answered HTTP 307 (a redirect; Sluice does not follow redirects)",
                         "type": "server_error", "param": null, "code": "upstream_error"}})
    );
    assert_eq!(redirecting.calls(), 1);
    assert_eq!(target.calls(), 0);
    s.stop().await;
}

/// The egress guard is the only thing that stops this leak. The fault is a real one, after
/// the decision: the inbound scan reads each string alone and each seam between neighbouring
/// strings with 128 bytes each side, and a long private key split over two text parts
/// matches in none of them; the `openai` provider's translation for a backend without
/// `content_parts` joins the parts with `\n` into one string, where the whole key block
/// appears. The decision found no PII and allowed the remote deployment; the guard, scanning
/// the exact bytes about to leave, finds the key: 403 `pii_blocked` naming the path, the
/// remote mock receives nothing, the metric counts it, the row records it.
#[tokio::test]
async fn the_egress_guard_stops_pii_that_appears_after_the_decision() {
    let remote = Mock::start(answer).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let yaml = format!(
        "deployments:
  - name: cloud
    provider: openai
    base_url: {}
    model: m
    hosting: remote
    supports: [tools]
models:
  - name: default
    deployments: [cloud]
log:
  path: {}
{PII_LOCAL}",
        remote.url("/v1"),
        db.display()
    );
    let s = Sluice::start_logged(&yaml).await;
    // The key's body is longer than the 128 bytes each side of the parts' seam that the
    // decision scans joined (`policy::junction`), so the decision sees no whole block.
    let begin = format!(
        "-----BEGIN RSA PRIVATE KEY-----\n{}",
        "MIIEow+IBAAKCAQEA".repeat(10)
    );
    let m = json!([{"role": "user", "content": [
        {"type": "text", "text": begin},
        {"type": "text", "text": "-----END RSA PRIVATE KEY-----"}]}]);
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .json(&chat_messages(m))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!({"error": {
            "message": "The request for deployment `cloud` still carries personal data (secret) at `messages[0].content`; policy `personal-data-stays-local` keeps it local, so nothing was sent.",
            "type": "policy_error", "param": "messages[0].content", "code": "pii_blocked"}})
    );
    assert_eq!(remote.calls(), 0);
    let metrics = get_text(&s.url("/metrics"), None).await;
    assert!(
        metrics.contains("sluice_egress_blocked_total{deployment=\"cloud\"} 1\n"),
        "{metrics}"
    );
    s.stop().await;
    let c = rusqlite::Connection::open(&db).unwrap();
    let row: (i64, String, String, String) = c
        .query_row(
            "SELECT status, error_type, error_message, deployment FROM requests",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(row.0, 403);
    assert_eq!(row.1, "policy_error");
    assert!(row.2.contains("`messages[0].content`"), "{}", row.2);
    assert!(!row.2.contains("MIIE"), "{}", row.2);
    assert_eq!(row.3, "cloud");
}

/// A base64 image cannot be scanned: under `pii: any` it counts as personal data of kind
/// `unscannable` and stays local (fail closed).
#[tokio::test]
async fn an_unscannable_image_stays_local() {
    let local = Mock::start(answer).await;
    let remote = Mock::start(answer).await;
    let s = Sluice::start(&config(&local, &remote)).await;
    let url = format!("data:image/png;base64,{}", "QUJD".repeat(40));
    let m = json!([{"role": "user", "content": [
        {"type": "text", "text": "who is this?"},
        {"type": "image_url", "image_url": {"url": url}}]}]);
    let r = client()
        .post(s.url("/v1/chat/completions"))
        .json(&chat_messages(m))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-sluice-deployment"], "local");
    assert_eq!(
        r.headers()["x-sluice-policies"],
        "personal-data-stays-local"
    );
    assert_eq!((remote.calls(), local.calls()), (0, 1));
    s.stop().await;
}

/// Sends `body` to `path` under `policies` (YAML) and checks: 200 from the local mock, not
/// one byte at the remote one, and `needle` (the personal data as the client wrote it) in
/// what the local mock got.
async fn stays_local_under(policies: &str, path: &str, body: Value, needle: &str) {
    let local = Mock::start(answer).await;
    let remote = Mock::start(answer).await;
    let yaml = config(&local, &remote).replace(PII_LOCAL, policies);
    let s = Sluice::start(&yaml).await;
    let r = client().post(s.url(path)).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    let deployment = r
        .headers()
        .get("x-sluice-deployment")
        .map(|v| v.to_str().unwrap().to_string());
    let text = r.text().await.unwrap();
    assert_eq!(
        (status, deployment.as_deref()),
        (200, Some("local")),
        "{body} → {text}"
    );
    assert_eq!(remote.raw_bytes(), Vec::<u8>::new(), "{body}");
    let sent = String::from_utf8(local.raw_bytes()).unwrap();
    assert!(sent.contains(needle), "{needle:?} not in {sent}");
    s.stop().await;
}

/// Personal data in the forms a tester sent to a remote deployment past the policy (each
/// reached the remote mock before): numbers, object keys, Unicode spaces and wide forms,
/// escapes inside tool arguments, text dressed as a data URL, token ids, and a `type` tag
/// (which the guard saw but the route decision did not, so the answer was a 403), and items
/// split over two neighbouring strings (text parts, messages).
#[tokio::test]
async fn personal_data_in_every_form_a_model_reads_stays_local() {
    let card = 4111111111111111_u64;
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/v1/chat/completions",
            chat(json!({"metadata": {"card": card}})),
            "4111111111111111",
        ),
        (
            "/v1/chat/completions",
            chat(json!({"customer": {"card": card}})),
            "4111111111111111",
        ),
        (
            "/v1/chat/completions",
            chat(json!({"seed": card})),
            "4111111111111111",
        ),
        (
            "/v1/chat/completions",
            chat(json!({"metadata": {EMAIL: "vip"}})),
            EMAIL,
        ),
        (
            "/v1/chat/completions",
            chat(
                json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x",
                "schema": {"type": "object", "properties": {EMAIL: {"type": "string"}}}}}}),
            ),
            EMAIL,
        ),
        (
            "/v1/completions",
            json!({"model": "default", "prompt": "hi", "logit_bias": {EMAIL: 1}}),
            EMAIL,
        ),
        (
            "/v1/chat/completions",
            chat_messages(
                json!([{"role": "user", "content": "call +34\u{a0}612\u{a0}345\u{a0}678"}]),
            ),
            "+34\u{a0}612",
        ),
        (
            "/v1/chat/completions",
            chat_messages(json!([{"role": "user", "content": "anna.berg\u{200b}@example.com"}])),
            "anna.berg\u{200b}@example.com",
        ),
        (
            "/v1/chat/completions",
            chat_messages(json!([{"role": "user", "content": "anna.berg\u{ff20}example.com"}])),
            "anna.berg\u{ff20}example.com",
        ),
        (
            "/v1/chat/completions",
            chat_messages(json!([{"role": "user", "content": "iban de89370400440532013000"}])),
            "de89370400440532013000",
        ),
        (
            "/v1/chat/completions",
            chat_messages(json!([{"role": "user", "content": "to josé@example.com"}])),
            "josé@example.com",
        ),
        (
            "/v1/chat/completions",
            chat_messages(json!([
                {"role": "user", "content": "pay"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                  "function": {"name": "f", "arguments": "{\"e\":\"anna.berg\\u0040example.com\"}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "ok"}])),
            "anna.berg",
        ),
        (
            "/v1/embeddings",
            json!({"model": "default", "input": [[6194, 25, 21041]]}),
            "6194",
        ),
        (
            "/v1/chat/completions",
            chat(json!({"tools": [{"type": EMAIL, "function": {"name": "f"}}]})),
            EMAIL,
        ),
        // Split over two text parts, or two messages, that the model reads as one run.
        (
            "/v1/chat/completions",
            chat_messages(json!([{"role": "user", "content": [
                {"type": "text", "text": "write to anna.berg@"},
                {"type": "text", "text": "example.com today"}]}])),
            "anna.berg@",
        ),
        (
            "/v1/chat/completions",
            chat_messages(json!([
                {"role": "user", "content": "my card is 4111 1111"},
                {"role": "user", "content": " 1111 1111, charge it"}])),
            "4111 1111",
        ),
        (
            "/v1/messages",
            json!({"model": "default", "max_tokens": 8, "messages": [{"role": "user", "content": [
                {"type": "text", "text": "mail anna.berg@"},
                {"type": "text", "text": "example.com"}]}]}),
            "anna.berg@",
        ),
        // A string content, then the next message's text parts (and the other way round).
        (
            "/v1/chat/completions",
            chat_messages(json!([
                {"role": "user", "content": "write to anna.berg@"},
                {"role": "user", "content": [{"type": "text", "text": "example.com today"}]}])),
            "anna.berg@",
        ),
        (
            "/v1/messages",
            json!({"model": "default", "max_tokens": 8, "messages": [
                {"role": "user", "content": [{"type": "text", "text": "card 4111 1111"}]},
                {"role": "user", "content": " 1111 1111 please"}]}),
            "4111 1111",
        ),
        (
            "/v1/messages",
            json!({"model": "default", "max_tokens": 8,
                "system": [{"type": "text", "text": "the owner is anna.berg@"}, {"type": "text", "text": "example.com"}],
                "messages": [{"role": "user", "content": "hi"}]}),
            "anna.berg@",
        ),
    ];
    for (path, body, needle) in cases {
        stays_local_under(PII_LOCAL, path, body, needle).await;
    }
}

/// Under a policy that lists kinds, text that starts like a base64 data URL is still text:
/// it was taken for a binary payload, neither scanned nor counted, and went remote.
#[tokio::test]
async fn text_dressed_as_a_data_url_is_scanned() {
    let kinds = "policies:
  - name: emails-local
    when: {pii: [email, phone]}
    require: {hosting: local}
";
    let body = chat_messages(json!([{"role": "user",
        "content": format!("data:text/plain;base64, please mail {EMAIL}")}]));
    stays_local_under(kinds, "/v1/chat/completions", body, EMAIL).await;
}

/// Under a policy that lists kinds, personal data spelled in base64's own characters was
/// taken for a binary payload, never scanned, and went remote (a second attacker round):
/// text after `data:…;base64,` with one item a line, a valid base64 image with a card at its
/// end, a long `data` field, an Anthropic plain-text document. A payload's own text is now
/// scanned, and line breaks are base64's only as an encoder wraps it.
#[tokio::test]
async fn personal_data_spelled_in_base64s_characters_stays_local() {
    let kinds = "policies:
  - name: listed-kinds-local
    when: {pii: [card, ssn, phone]}
    require: {hosting: local}
";
    let card = "4111111111111111";
    let padded = format!("card_{card}_ssn_078-05-1120_{}", "x".repeat(40));
    let image = format!("data:image/png;base64,{}/{card}", "QUJD".repeat(8));
    let cases: Vec<(&str, Value)> = vec![
        (
            "/v1/chat/completions",
            chat_messages(json!([{"role": "user",
                "content": format!("data:;base64,Customer\ncard\n{card}\nphone\n+34612345678")}])),
        ),
        (
            "/v1/chat/completions",
            chat_messages(json!([{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": image}}]}])),
        ),
        (
            "/v1/chat/completions",
            chat(json!({"metadata": {"data": padded}})),
        ),
        (
            "/v1/messages",
            json!({"model": "default", "max_tokens": 16, "messages": [{"role": "user", "content": [
                {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                 "data": format!("{card}\n5555555555554444\n078-05-1120\n")}},
                {"type": "text", "text": "sum these up"}]}]}),
        ),
    ];
    for (path, body) in cases {
        stays_local_under(kinds, path, body, card).await;
    }
}

/// Under `pii_action: redact`, an item in a binary payload's own text is replaced before it
/// leaves, like any other string's; a real image is sent as it was.
#[tokio::test]
async fn an_item_in_a_payloads_text_is_redacted() {
    let local = Mock::start(answer).await;
    let remote = Mock::start(answer).await;
    let policies = "policies:
  - name: mask-cards
    when: {pii: [card]}
    require: {hosting: local}
    pii_action: redact
";
    let yaml = config(&local, &remote).replace(PII_LOCAL, policies);
    let s = Sluice::start(&yaml).await;
    let clean = format!("data:image/png;base64,{}", "QUJD".repeat(40));
    let carded = format!(
        "data:image/png;base64,{}/4111111111111111",
        "QUJD".repeat(8)
    );
    for url in [&clean, &carded] {
        let m = json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]);
        let r = client()
            .post(s.url("/v1/chat/completions"))
            .json(&chat_messages(m))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-sluice-deployment"], "remote");
    }
    let sent = String::from_utf8(remote.raw_bytes()).unwrap();
    assert!(sent.contains(&clean), "{sent}");
    assert!(!sent.contains("4111111111111111"), "{sent}");
    assert!(
        sent.contains(&format!(
            "data:image/png;base64,{}/[CARD_1]",
            "QUJD".repeat(8)
        )),
        "{sent}"
    );
    assert_eq!(local.calls(), 0);
    s.stop().await;
}

/// The client's `x-request-id` leaves with the request: under a policy that keeps personal
/// data local, an id that carries an address is not forwarded to a remote deployment (it got
/// `cust-anna.berg@example.com` before); a clean id still is.
#[tokio::test]
async fn a_request_id_carrying_personal_data_is_not_forwarded_remote() {
    let local = Mock::start(answer).await;
    let remote = Mock::start(answer).await;
    let s = Sluice::start(&config(&local, &remote)).await;
    for (id, forwarded) in [
        (format!("cust-{EMAIL}"), false),
        ("req-42".to_string(), true),
    ] {
        let r = client()
            .post(s.url("/v1/chat/completions"))
            .header("x-request-id", &id)
            .json(&chat(json!({})))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-sluice-deployment"], "remote");
        let sent = remote.last().headers["x-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(sent == id, forwarded, "{id} → {sent}");
        assert!(!sent.contains(EMAIL));
    }
    assert_eq!(local.calls(), 0);
    s.stop().await;
}

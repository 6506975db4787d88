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

//! `provider: ollama`: Ollama's native API
//! (<https://github.com/ollama/ollama/blob/main/docs/api.md>) behind OpenAI's:
//! `/v1/chat/completions` → `POST /api/chat`, `/v1/completions` → `POST /api/generate`,
//! `/v1/embeddings` → `POST /api/embed`. `base_url` is the server root
//! (`http://127.0.0.1:11434`). Requests are translated in [`request`], answers in
//! [`response`], NDJSON streams in [`stream`].
//!
//! Errors: Ollama's `{"error":"…"}` bodies keep their 4xx status in OpenAI's envelope; a 404
//! whose message says the model was not found gets `code: "model_not_found"`,
//! `param: "model"`; 5xx become 502. Ollama does not enforce `tool_choice`: a non-stream
//! answer to a `required` or named-function choice without a tool call is asked for once
//! more, then refused with 502, code `tool_call_missing`.

pub mod request;
pub mod response;
pub mod stream;

use super::caps::Caps;
use super::upstream::{self, complete, decode_stream, now_secs, read_json};
use super::{Call, Endpoint, Reply, RequestBody};
use crate::api::ApiError;
use crate::api::At;
use crate::api::error::error_from_value;
use serde_json::Value;
use stream::{Kind, OllamaDecoder};

/// Sends `call` to an Ollama server.
///
/// Errors: see [`super::call`] and the module doc; translation errors are 400s naming the
/// request field.
pub async fn call(client: &super::http_client::Client, call: Call<'_>) -> Result<Reply, ApiError> {
    let dep = call.deployment;
    let caps = Caps::of(dep);
    let (path, body) = match (call.endpoint, call.body) {
        (Endpoint::ChatCompletions, RequestBody::Chat(r)) => {
            ("/api/chat", request::chat_body(r, dep, &caps)?)
        }
        (Endpoint::Completions, RequestBody::Generic(r)) => {
            ("/api/generate", request::generate_body(r, dep, &caps)?)
        }
        (Endpoint::Embeddings, RequestBody::Generic(r)) => {
            ("/api/embed", request::embed_body(r, dep)?)
        }
        _ => {
            return Err(ApiError::internal(
                "request body does not match its endpoint",
            ));
        }
    };
    let stream = call.body.is_stream() && call.endpoint != Endpoint::Embeddings;
    let created = now_secs();
    let id = match call.endpoint {
        Endpoint::Completions => format!("cmpl-{}", uuid::Uuid::now_v7().simple()),
        _ => format!("chatcmpl-{}", uuid::Uuid::now_v7().simple()),
    };
    if stream {
        let resp = send(client, call, path, &body, true).await?;
        let kind = match call.endpoint {
            Endpoint::Completions => Kind::Generate,
            _ => Kind::Chat,
        };
        let decoder = OllamaDecoder::new(kind, id, created, dep.model.clone(), dep.name.clone());
        return Ok(Reply::Stream(decode_stream(resp, dep, decoder)));
    }
    let json = send_json(client, call, path, &body).await?;
    let out = match call.body {
        RequestBody::Chat(r) => {
            let mut out = response::chat_completion(&json, &id, created, &dep.model);
            if forces_a_tool(r) && !has_tool_calls(&out) {
                // Ollama does not enforce `tool_choice`: ask once more, then say so.
                let again = send_json(client, call, path, &body).await?;
                out = response::chat_completion(&again, &id, created, &dep.model);
                if !has_tool_calls(&out) {
                    return Err(ApiError::bad_gateway(
                        &dep.name,
                        "the model answered without the tool call that `tool_choice` requires (asked twice)",
                    )
                    .with_code("tool_call_missing"));
                }
            }
            out
        }
        RequestBody::Generic(r) => match call.endpoint {
            Endpoint::Embeddings => {
                let b64 = r.extra.get("encoding_format").and_then(Value::as_str) == Some("base64");
                response::embeddings(&json, &dep.model, b64)
            }
            _ => response::text_completion(&json, &id, created, &dep.model),
        },
        RequestBody::Native(_) => {
            return Err(ApiError::internal(
                "a native request reached the ollama provider",
            ));
        }
    };
    Ok(complete(out))
}

/// Posts `body` to `path`.
async fn send(
    client: &super::http_client::Client,
    call: Call<'_>,
    path: &str,
    body: &Value,
    stream: bool,
) -> Result<super::http_client::Response, ApiError> {
    let dep = call.deployment;
    let bytes = serde_json::to_vec(body)
        .map_err(|e| ApiError::internal(format!("cannot encode the upstream request: {e}")))?;
    let mut req = super::post(client, dep, path)?
        .json_with_request_id(call.request_id)
        .body(bytes);
    if let Some(key) = dep.api_key.as_deref().filter(|k| !k.is_empty()) {
        req = req.bearer_auth(key);
    }
    upstream::send(req, dep, stream, call.egress)
        .await
        .map_err(model_not_found)
}

/// Posts `body` to `path` and reads the whole JSON answer; an `{"error": …}` answer is a 502.
async fn send_json(
    client: &super::http_client::Client,
    call: Call<'_>,
    path: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    let dep = call.deployment;
    let json = read_json(send(client, call, path, body, false).await?, dep).await?;
    if json.get("error").is_some() {
        let message = error_from_value(&json, "server_error")
            .map(|b| b.message)
            .unwrap_or_default();
        return Err(ApiError::bad_gateway(&dep.name, message));
    }
    Ok(json)
}

/// `tool_choice` `required` or a named function, with tools to call.
fn forces_a_tool(r: &crate::api::ChatCompletionRequest) -> bool {
    let has_tools = r.tools.as_ref().is_some_and(|t| !t.is_empty());
    let forced = match &r.tool_choice {
        Some(Value::String(s)) => s == "required",
        Some(Value::Object(_)) => true,
        _ => false,
    };
    has_tools && forced
}

fn has_tool_calls(out: &Value) -> bool {
    out.at("/choices/0/message/tool_calls")
        .and_then(Value::as_array)
        .is_some_and(|c| !c.is_empty())
}

/// Ollama answers an unknown model with 404 `{"error":"model \"x\" not found, try pulling it
/// first"}`; that becomes OpenAI's `model_not_found`.
fn model_not_found(mut e: ApiError) -> ApiError {
    if e.status.as_u16() == 404
        && e.body.message.starts_with("model ")
        && e.body.message.contains("not found")
    {
        e.body.kind = "invalid_request_error".into();
        e.body.param = Some("model".into());
        e.body.code = Some(Value::from("model_not_found"));
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_missing_model_is_model_not_found() {
        let e = model_not_found(ApiError::from_upstream(
            "o",
            404,
            br#"{"error":"model \"qwen3:8b\" not found, try pulling it first"}"#,
        ));
        assert_eq!(e.body.code, Some(Value::from("model_not_found")));
        assert_eq!(e.body.param.as_deref(), Some("model"));
        let e = model_not_found(ApiError::from_upstream("o", 404, b"404 page not found"));
        assert_eq!(e.body.code, None);
        assert_eq!(e.body.kind, "not_found_error");
    }
}

//! `provider: ollama`: Ollama's native API
//! (<https://github.com/ollama/ollama/blob/main/docs/api.md>) behind OpenAI's:
//! `/v1/chat/completions` → `POST /api/chat`, `/v1/completions` → `POST /api/generate`,
//! `/v1/embeddings` → `POST /api/embed`. `base_url` is the server root
//! (`http://127.0.0.1:11434`). Requests are translated in [`request`], answers in
//! [`response`], NDJSON streams in [`stream`].
//!
//! Errors: Ollama's `{"error":"…"}` bodies keep their 4xx status in OpenAI's envelope; a 404
//! whose message says the model was not found gets `code: "model_not_found"`,
//! `param: "model"`; 5xx become 502.

pub mod request;
pub mod response;
pub mod stream;

use super::caps::Caps;
use super::upstream::{self, complete, decode_stream, now_secs, read_json};
use super::{Call, Endpoint, Reply, RequestBody, join_url};
use crate::api::ApiError;
use crate::api::error::error_from_value;
use serde_json::Value;
use stream::{Kind, OllamaDecoder};

/// Sends `call` to an Ollama server.
///
/// Errors: see [`super::call`] and the module doc; translation errors are 400s naming the
/// request field.
pub async fn call(client: &reqwest::Client, call: Call<'_>) -> Result<Reply, ApiError> {
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
    let bytes = serde_json::to_vec(&body)
        .map_err(|e| ApiError::internal(format!("cannot encode the upstream request: {e}")))?;
    let mut req = client
        .post(join_url(&dep.base_url, path))
        .header("content-type", "application/json")
        .header("x-request-id", call.request_id)
        .body(bytes);
    if let Some(key) = dep.api_key.as_deref().filter(|k| !k.is_empty()) {
        req = req.bearer_auth(key);
    }
    let resp = upstream::send(req, dep, stream)
        .await
        .map_err(model_not_found)?;
    let created = now_secs();
    let id = match call.endpoint {
        Endpoint::Completions => format!("cmpl-{}", uuid::Uuid::now_v7().simple()),
        _ => format!("chatcmpl-{}", uuid::Uuid::now_v7().simple()),
    };
    if stream {
        let kind = match call.endpoint {
            Endpoint::Completions => Kind::Generate,
            _ => Kind::Chat,
        };
        let decoder = OllamaDecoder::new(kind, id, created, dep.model.clone(), dep.name.clone());
        return Ok(Reply::Stream(decode_stream(resp, dep, decoder)));
    }
    let json = read_json(resp, dep).await?;
    if json.get("error").is_some() {
        let message = error_from_value(&json, "server_error")
            .map(|b| b.message)
            .unwrap_or_default();
        return Err(ApiError::bad_gateway(&dep.name, message));
    }
    let out = match call.endpoint {
        Endpoint::ChatCompletions => response::chat_completion(&json, &id, created, &dep.model),
        Endpoint::Completions => response::text_completion(&json, &id, created, &dep.model),
        Endpoint::Embeddings => {
            let b64 = match call.body {
                RequestBody::Generic(r) => {
                    r.extra.get("encoding_format").and_then(Value::as_str) == Some("base64")
                }
                RequestBody::Chat(_) => false,
            };
            response::embeddings(&json, &dep.model, b64)
        }
    };
    Ok(complete(out))
}

/// Ollama answers an unknown model with 404 `{"error":"model \"x\" not found, try pulling it
/// first"}`; that becomes OpenAI's `model_not_found`.
fn model_not_found(mut e: ApiError) -> ApiError {
    if e.status.as_u16() == 404 && e.body.message.contains("not found") {
        e.body.kind = "invalid_request_error".into();
        e.body.param = Some("model".into());
        e.body.code = Some(Value::from("model_not_found"));
    }
    e
}

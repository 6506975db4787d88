//! `provider: anthropic`: the Messages API (<https://docs.anthropic.com/en/api/messages>)
//! behind OpenAI's `/v1/chat/completions`. `base_url` is the server root
//! (`https://api.anthropic.com`); requests go to `POST {base_url}/v1/messages` with headers
//! `x-api-key` (the deployment's `api_key`) and `anthropic-version: 2023-06-01`. Requests are
//! translated in [`request`], answers in [`response`], SSE streams in [`stream`]. Completions
//! and embeddings are not served (the gateway routes them elsewhere, see
//! [`super::caps::check_endpoint`]).

pub mod request;
pub mod response;
pub mod stream;

use super::caps::Caps;
use super::upstream::{self, complete, decode_stream, now_secs, read_json};
use super::{Call, Reply, RequestBody};
use crate::api::ApiError;
use stream::AnthropicDecoder;

/// The `anthropic-version` header Sluice speaks.
pub const API_VERSION: &str = "2023-06-01";

/// Sends a chat completion to the Messages API.
///
/// Errors: see [`super::call`]; translation errors are 400s naming the request field;
/// Anthropic's error bodies keep their 4xx status and type (5xx and 529 become 502).
pub async fn call(client: &super::http_client::Client, call: Call<'_>) -> Result<Reply, ApiError> {
    let dep = call.deployment;
    let RequestBody::Chat(req) = call.body else {
        return Err(super::caps::unsupported(
            dep,
            "model",
            &format!("`/v1{}`", call.endpoint.path()),
        ));
    };
    let body = request::messages_body(req, dep, &Caps::of(dep))?;
    let stream = req.is_stream();
    let bytes = serde_json::to_vec(&body)
        .map_err(|e| ApiError::internal(format!("cannot encode the upstream request: {e}")))?;
    let http = super::post(client, dep, "/v1/messages")?
        .json_with_request_id(call.request_id)
        .header("anthropic-version", API_VERSION)
        .body(bytes);
    let http = with_key(http, dep);
    let resp = upstream::send(http, dep, stream, call.egress).await?;
    let created = now_secs();
    if stream {
        let id = format!("chatcmpl-{}", uuid::Uuid::now_v7().simple());
        let decoder = AnthropicDecoder::new(id, created, dep.model.clone(), dep.name.clone());
        return Ok(Reply::Stream(decode_stream(resp, dep, decoder)));
    }
    let json = read_json(resp, dep).await?;
    if json.get("type").and_then(serde_json::Value::as_str) == Some("error") {
        return Err(response::error(&dep.name, &json["error"]));
    }
    // Anything else that is not a Messages answer (an OpenAI-shaped body, say) is the
    // backend's fault, never an empty 200.
    if json.get("type").and_then(serde_json::Value::as_str) != Some("message")
        || !json.get("content").is_some_and(serde_json::Value::is_array)
    {
        return Err(ApiError::bad_gateway(
            &dep.name,
            "the answer is not an Anthropic message (`type: message` with a `content` list)",
        ));
    }
    Ok(complete(response::chat_completion(
        &json, created, &dep.model,
    )))
}

/// Adds `x-api-key` when the deployment has a key.
pub fn with_key(
    req: super::http_client::RequestBuilder,
    dep: &crate::config::DeploymentConfig,
) -> super::http_client::RequestBuilder {
    match dep.api_key.as_deref().filter(|k| !k.is_empty()) {
        Some(key) => req.header("x-api-key", key),
        None => req,
    }
}

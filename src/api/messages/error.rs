//! Anthropic's error envelope and the mapping from Sluice's errors to Anthropic's types and
//! statuses.

use super::*;

/// Anthropic's error envelope: `{"type":"error","error":{"type":…,"message":…}}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AnthropicError {
    /// Always `error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The error.
    pub error: AnthropicErrorBody,
}

/// The `error` object of Anthropic's envelope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AnthropicErrorBody {
    /// `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `not_found_error`, `request_too_large`, `rate_limit_error`, `api_error`,
    /// `timeout_error`, `overloaded_error`, `billing_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Human-readable message.
    pub message: String,
}

/// The Anthropic status and error type for a Sluice error.
///
/// 400 and the 4xx Anthropic does not use (405, 409, 422, …) → 400 `invalid_request_error`;
/// 401 `authentication_error`; 402 `billing_error`; 403 `permission_error` (policy and
/// `pii_blocked` refusals too); 404 `not_found_error`; 413 `request_too_large`; 429
/// `rate_limit_error`; 503 (no deployment available, cooldowns) and 529 → 529
/// `overloaded_error`; 504 `timeout_error`; any other 5xx keeps its status with `api_error`.
pub fn anthropic_status(status: StatusCode) -> (StatusCode, &'static str) {
    let keep = |kind| (status, kind);
    match status.as_u16() {
        401 => keep("authentication_error"),
        402 => keep("billing_error"),
        403 => keep("permission_error"),
        404 => keep("not_found_error"),
        413 => keep("request_too_large"),
        429 => keep("rate_limit_error"),
        400..=499 => (StatusCode::BAD_REQUEST, "invalid_request_error"),
        503 | 529 => (overloaded(), "overloaded_error"),
        504 => keep("timeout_error"),
        _ => keep("api_error"),
    }
}

/// HTTP 529, Anthropic's "overloaded".
fn overloaded() -> StatusCode {
    StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
}

impl AnthropicError {
    /// The envelope for a Sluice error (type from [`anthropic_status`]; the message keeps
    /// Sluice's, prefixed with `param` when there is one: "`messages[0].role`: …").
    pub fn from_api(e: &ApiError) -> Self {
        let (_, kind) = anthropic_status(e.status);
        let message = match &e.body.param {
            Some(p) if !p.is_empty() && !e.body.message.contains(p.as_str()) => {
                format!("{p}: {}", e.body.message)
            }
            _ => e.body.message.clone(),
        };
        AnthropicError {
            kind: "error".into(),
            error: AnthropicErrorBody {
                kind: kind.into(),
                message,
            },
        }
    }
}

/// A Sluice error rendered in Anthropic's shape and status, with `Retry-After` kept.
pub fn error_response(e: &ApiError) -> Response {
    let (status, _) = anthropic_status(e.status);
    let body = serde_json::to_string(&AnthropicError::from_api(e)).unwrap_or_else(|_| {
        r#"{"type":"error","error":{"type":"api_error","message":"error"}}"#.to_string()
    });
    let mut resp = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(s) = e.retry_after_s {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    resp
}

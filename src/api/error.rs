//! The one error type every handler returns, rendered in OpenAI's error envelope.
//!
//! Shape (see <https://platform.openai.com/docs/guides/error-codes> and the
//! `error` object of <https://platform.openai.com/docs/api-reference>):
//! `{"error":{"message":"…","type":"…","param":null|"…","code":null|"…"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An error as the client sees it: HTTP status plus OpenAI's error body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status sent to the client.
    pub status: StatusCode,
    /// The `error` object of the body.
    pub body: ErrorBody,
    /// Seconds the client should wait before retrying, sent as `Retry-After` (from an
    /// upstream's 429 `Retry-After`, or the end of a cooldown).
    pub retry_after_s: Option<u64>,
}

/// The `error` object of OpenAI's envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Human-readable message.
    pub message: String,
    /// Error class: `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `not_found_error`, `rate_limit_error`, `server_error`, `policy_error`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The request parameter at fault (`messages[0].role`), if any.
    pub param: Option<String>,
    /// A machine-readable code (`model_not_found`, `upstream_timeout`, …), if any.
    /// Upstreams sometimes send numbers here; they are kept as given.
    pub code: Option<Value>,
}

/// The full envelope `{"error": …}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    /// The error object.
    pub error: ErrorBody,
}

impl ApiError {
    /// Builds an error from its parts.
    pub fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                message: message.into(),
                kind: kind.to_string(),
                param: None,
                code: None,
            },
            retry_after_s: None,
        }
    }

    /// Sets `param`.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.body.param = Some(param.into());
        self
    }

    /// Puts `prefix` (a sentence of context, or nothing) before the message.
    pub fn prefixed(mut self, prefix: &str) -> Self {
        if !prefix.is_empty() {
            self.body.message = format!("{prefix}{}", self.body.message);
        }
        self
    }

    /// Sets `code`.
    pub fn with_code(mut self, code: &str) -> Self {
        self.body.code = Some(Value::String(code.to_string()));
        self
    }

    /// 400 `invalid_request_error`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// 404 `invalid_request_error` with code `model_not_found` (what OpenAI answers for an
    /// unknown model).
    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("The model `{model}` does not exist or you do not have access to it."),
        )
        .with_param("model")
        .with_code("model_not_found")
    }

    /// 502 `server_error`, code `upstream_error`, naming the deployment.
    pub fn bad_gateway(deployment: &str, detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "server_error",
            format!("deployment `{deployment}`: {detail}"),
        )
        .with_code("upstream_error")
    }

    /// 504 `server_error`, code `upstream_timeout`, naming the deployment.
    pub fn gateway_timeout(deployment: &str) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "server_error",
            format!("deployment `{deployment}` did not answer in time"),
        )
        .with_code("upstream_timeout")
    }

    /// 500 `server_error` for faults inside Sluice.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    /// The envelope as JSON text.
    pub fn to_json(&self) -> String {
        let envelope = ErrorEnvelope {
            error: self.body.clone(),
        };
        serde_json::to_string(&envelope).unwrap_or_else(|_| {
            r#"{"error":{"message":"error","type":"server_error","param":null,"code":null}}"#
                .to_string()
        })
    }

    /// Builds an error from an upstream's error body, whatever its shape: OpenAI's envelope,
    /// a bare `{"error":"text"}` (Ollama, llama.cpp), `{"message":…}`, `{"detail":…}`
    /// (vLLM/FastAPI), Anthropic's `{"type":"error","error":{"type","message"}}`, or plain text.
    /// `status` is the upstream's status; 4xx stays, anything else becomes 502.
    ///
    /// 401 and 403 are the operator's problem (the deployment's credentials), not the
    /// client's: they become 502 `upstream_error` naming the deployment, without the
    /// upstream's text (which may quote part of the key), and are retryable, so a fallback
    /// answers and the deployment cools down.
    pub fn from_upstream(deployment: &str, status: u16, body: &[u8]) -> Self {
        if status == 401 || status == 403 {
            return ApiError::new(
                StatusCode::BAD_GATEWAY,
                "server_error",
                format!(
                    "deployment `{deployment}` refused Sluice's credentials (HTTP {status}); the operator should check its api_key."
                ),
            )
            .with_code("upstream_error");
        }
        let client_status = if (400..500).contains(&status) {
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY)
        } else {
            StatusCode::BAD_GATEWAY
        };
        let default_kind = default_kind_for(client_status);
        let parsed: Option<Value> = super::json::from_bytes(body).ok();
        let mut err = match parsed
            .as_ref()
            .and_then(|v| error_from_value(v, default_kind))
        {
            Some(b) => ApiError {
                status: client_status,
                body: b,
                retry_after_s: None,
            },
            None => {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                let message = if text.is_empty() {
                    format!("upstream answered HTTP {status}")
                } else {
                    truncate(text, 2000)
                };
                ApiError::new(client_status, default_kind, message)
            }
        };
        if client_status == StatusCode::BAD_GATEWAY {
            err.body.message = format!(
                "deployment `{deployment}` failed with HTTP {status}: {}",
                err.body.message
            );
            err.body.kind = "server_error".into();
            if err.body.code.is_none() {
                err.body.code = Some(Value::String("upstream_error".into()));
            }
        }
        err
    }
}

/// Reads an error object from any of the shapes upstreams use. Returns `None` when `v` is not
/// an error.
pub fn error_from_value(v: &Value, default_kind: &str) -> Option<ErrorBody> {
    let obj = v.as_object()?;
    let inner = obj.get("error");
    match inner {
        Some(Value::Object(e)) => Some(ErrorBody {
            message: e
                .get("message")
                .map(value_text)
                .unwrap_or_else(|| Value::Object(e.clone()).to_string()),
            kind: e
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or(default_kind)
                .to_string(),
            param: e.get("param").and_then(Value::as_str).map(str::to_string),
            code: e.get("code").filter(|c| !c.is_null()).cloned(),
        }),
        Some(Value::String(s)) => Some(ErrorBody {
            message: s.clone(),
            kind: default_kind.to_string(),
            param: None,
            code: None,
        }),
        Some(other) => Some(ErrorBody {
            message: value_text(other),
            kind: default_kind.to_string(),
            param: None,
            code: None,
        }),
        None => {
            let msg = obj.get("message").or_else(|| obj.get("detail"))?;
            Some(ErrorBody {
                message: value_text(msg),
                kind: default_kind.to_string(),
                param: None,
                code: None,
            })
        }
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The OpenAI error `type` that goes with a status.
pub fn default_kind_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.to_json();
        let mut resp = (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        if let Some(s) = self.retry_after_s {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(s),
            );
        }
        resp
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.body.kind,
            self.body.message
        )
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_shapes_become_the_openai_envelope() {
        let cases: Vec<(&[u8], u16, &str, &str)> = vec![
            (
                br#"{"error":{"message":"bad","type":"invalid_request_error","param":"x","code":"c"}}"#,
                400,
                "bad",
                "invalid_request_error",
            ),
            (br#"{"error":"model 'x' not found"}"#, 404, "model 'x' not found", "not_found_error"),
            (br#"{"detail":"nope"}"#, 422, "nope", "invalid_request_error"),
            (
                br#"{"type":"error","error":{"type":"invalid_request_error","message":"m"}}"#,
                400,
                "m",
                "invalid_request_error",
            ),
            (b"plain words", 400, "plain words", "invalid_request_error"),
        ];
        for (body, status, msg, kind) in cases {
            let e = ApiError::from_upstream("d", status, body);
            assert_eq!(e.status.as_u16(), status);
            assert_eq!(e.body.message, msg);
            assert_eq!(e.body.kind, kind);
        }
    }

    #[test]
    fn upstream_5xx_becomes_502_naming_the_deployment() {
        let e = ApiError::from_upstream("gpu-box", 503, br#"{"error":"overloaded"}"#);
        assert_eq!(e.status, StatusCode::BAD_GATEWAY);
        assert_eq!(
            e.body.message,
            "deployment `gpu-box` failed with HTTP 503: overloaded"
        );
        assert_eq!(e.body.kind, "server_error");
    }
}

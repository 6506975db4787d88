//! Capabilities: which request features a deployment's backend can serve (config `supports:`,
//! else the defaults below), and the two things Sluice does with that:
//!
//! - [`check_chat`] / [`check_generic`] refuse, before any upstream call, a request whose answer
//!   would silently lack what the client asked for: 400 `invalid_request_error`, code
//!   `unsupported_parameter`, `param` naming the field (`logprobs`, `n`, `tools`,
//!   `response_format`, `messages[i].content[j]`). The gateway then tries the model's next
//!   deployment, so `supports:` also steers routing.
//! - [`adapt_openai_chat`] drops or maps, for `provider: openai`, the fields the backend would
//!   reject or misread (`top_k` and the local samplers such as `min_p`, `seed`, message `name`, `parallel_tool_calls` dropped;
//!   `developer` → `system`; `max_completion_tokens` → `max_tokens`), and always drops
//!   null-valued and unknown message keys (a literal `extra_body` was merged when the request
//!   was parsed, see [`crate::api::extra_body`]). The native providers
//!   apply the same capabilities in their own translation.

use super::Endpoint;
use crate::api::{ApiError, ChatCompletionRequest, GenericRequest, RequestBody, Role};
pub use crate::config::capability::{Caps, defaults};
use crate::config::{Capability, DeploymentConfig, ProviderKind, ToolsMode};
use serde_json::Value;

/// 400 `unsupported_parameter` naming `param` and the deployment.
pub fn unsupported(dep: &DeploymentConfig, param: &str, what: &str) -> ApiError {
    ApiError::invalid_request(format!(
        "deployment `{}` ({}) does not support {what}",
        dep.name,
        dep.provider.as_str()
    ))
    .with_param(param)
    .with_code("unsupported_parameter")
}

/// Names the `param` of an upstream 400 that says the backend cannot do something but names
/// no parameter (C09): Ollama's "… does not support tools" / "does not support thinking" /
/// "does not support insert", vLLM's "\"auto\" tool choice requires
/// --enable-auto-tool-choice …". Such errors get `param` (`tools`, `think`, `suffix`,
/// `tool_choice`) and `code: "unsupported_parameter"`; others are returned unchanged.
pub fn name_unsupported_param(mut e: ApiError) -> ApiError {
    if e.status.as_u16() != 400 || e.body.param.is_some() {
        return e;
    }
    let m = e.body.message.to_ascii_lowercase();
    let param = if m.contains("does not support tools") {
        "tools"
    } else if m.contains("does not support thinking") {
        "think"
    } else if m.contains("does not support insert") {
        "suffix"
    } else if m.contains("tool choice requires") || m.contains("tool_choice requires") {
        "tool_choice"
    } else {
        return e;
    };
    e.body.param = Some(param.to_string());
    if e.body.code.is_none() || e.body.code == Some(Value::from(400)) {
        e.body.code = Some(Value::from("unsupported_parameter"));
    }
    e
}

/// Refuses an endpoint the provider does not serve: `anthropic` serves chat completions only.
/// 400 `unsupported_parameter`, `param: "model"`.
pub fn check_endpoint(dep: &DeploymentConfig, endpoint: Endpoint) -> Result<(), ApiError> {
    if dep.provider == ProviderKind::Anthropic && endpoint != Endpoint::ChatCompletions {
        return Err(unsupported(
            dep,
            "model",
            &format!("`/v1{}`", endpoint.path()),
        ));
    }
    Ok(())
}

/// Refuses a chat request that needs a capability the deployment lacks (see the module doc).
pub fn check_chat(req: &ChatCompletionRequest, dep: &DeploymentConfig) -> Result<(), ApiError> {
    let caps = Caps::of(dep);
    if req.n.unwrap_or(1) > 1 && !caps.has(Capability::N) {
        return Err(unsupported(dep, "n", "several choices (`n` > 1)"));
    }
    if req.logprobs == Some(true) && !caps.has(Capability::Logprobs) {
        return Err(unsupported(dep, "logprobs", "`logprobs`"));
    }
    if req.top_logprobs.is_some_and(|k| k > 0) && !caps.has(Capability::Logprobs) {
        return Err(unsupported(dep, "top_logprobs", "`top_logprobs`"));
    }
    let wants_tools = req.tools.as_ref().is_some_and(|t| !t.is_empty())
        && req.tool_choice.as_ref().and_then(Value::as_str) != Some("none");
    if wants_tools && !caps.has(Capability::Tools) && !drops_tools(req, dep) {
        return Err(unsupported(dep, "tools", "tools"));
    }
    if let Some(rf) = &req.response_format
        && rf.kind != "text"
        && !caps.has(Capability::JsonSchema)
    {
        return Err(unsupported(
            dep,
            "response_format",
            &format!("`response_format` of type `{}`", rf.kind),
        ));
    }
    if !caps.has(Capability::Images) {
        for (i, m) in req.messages.iter().enumerate() {
            if let Some(crate::api::Content::Parts(parts)) = &m.content
                && let Some(j) = parts.iter().position(|p| p.kind == "image_url")
            {
                return Err(unsupported(
                    dep,
                    &format!("messages[{i}].content[{j}]"),
                    "image input",
                ));
            }
        }
    }
    Ok(())
}

/// Whether `dep` drops this request's tools: `tools: drop_optional`, no `tools` capability,
/// tools present and optional (`tool_choice` absent, null or `auto`).
fn drops_tools(req: &ChatCompletionRequest, dep: &DeploymentConfig) -> bool {
    dep.tools == ToolsMode::DropOptional
        && !Caps::of(dep).has(Capability::Tools)
        && req.tools.as_ref().is_some_and(|t| !t.is_empty())
        && match &req.tool_choice {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s == "auto",
            Some(_) => false,
        }
}

/// The request `dep` is sent when it drops optional tools (see [`ToolsMode::DropOptional`]):
/// without `tools`, `tool_choice` and `parallel_tool_calls`. `None` when nothing is dropped.
pub fn without_optional_tools(body: &RequestBody, dep: &DeploymentConfig) -> Option<RequestBody> {
    let RequestBody::Chat(req) = body else {
        return None;
    };
    if !drops_tools(req, dep) {
        return None;
    }
    let mut r = req.clone();
    let n = r.tools.take().map_or(0, |t| t.len());
    r.tool_choice = None;
    r.parallel_tool_calls = None;
    tracing::info!(deployment = %dep.name, tools = n, "optional tools dropped (tools: drop_optional)");
    Some(RequestBody::Chat(r))
}

/// Refuses a legacy completion that needs a capability the deployment lacks (`n`,
/// `logprobs`). Embeddings need none.
pub fn check_generic(req: &GenericRequest, dep: &DeploymentConfig) -> Result<(), ApiError> {
    let caps = Caps::of(dep);
    if req.extra.get("n").and_then(Value::as_u64).unwrap_or(1) > 1 && !caps.has(Capability::N) {
        return Err(unsupported(dep, "n", "several choices (`n` > 1)"));
    }
    let logprobs = req.extra.get("logprobs").is_some_and(|v| match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_u64().is_some_and(|k| k > 0),
        _ => false,
    });
    if logprobs && !caps.has(Capability::Logprobs) {
        return Err(unsupported(dep, "logprobs", "`logprobs`"));
    }
    Ok(())
}

/// Sampling knobs of local servers (llama.cpp, vLLM, Ollama) that travel with `top_k`: a
/// backend without `top_k` (OpenAI) gets none of them.
const LOCAL_SAMPLERS: [&str; 10] = [
    "min_p",
    "typical_p",
    "repetition_penalty",
    "repeat_penalty",
    "repeat_last_n",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
    "top_a",
    "tfs_z",
];

/// Message fields besides `role`, `content`, `name`, `tool_calls`, `tool_call_id` that
/// OpenAI-compatible servers know; others (an SDK's or agent framework's own keys such as
/// `sender`) and null-valued ones are dropped, since strict servers reject them (C21).
const KNOWN_MESSAGE_FIELDS: [&str; 5] = [
    "refusal",
    "audio",
    "function_call",
    "reasoning_content",
    "prefix",
];

/// Drops or maps, for an OpenAI-compatible backend, the chat fields it lacks (see the module
/// doc). Fields it has are left exactly as the client sent them.
pub fn adapt_openai_chat(req: &mut ChatCompletionRequest, caps: &Caps) {
    if !caps.has(Capability::TopK) {
        req.top_k = None;
        for k in LOCAL_SAMPLERS {
            req.extra.remove(k);
        }
    }
    if !caps.has(Capability::Seed) {
        req.seed = None;
    }
    if !caps.has(Capability::ParallelToolCalls) {
        req.parallel_tool_calls = None;
    }
    if !caps.has(Capability::MaxCompletionTokens)
        && let Some(n) = req.max_completion_tokens.take()
    {
        req.max_tokens = Some(n);
    }
    let last = req.messages.len().saturating_sub(1);
    for (i, m) in req.messages.iter_mut().enumerate() {
        // A trailing assistant message is a prefill, which servers continue only from a string.
        let prefill = i == last && m.role == Role::Assistant;
        if !caps.has(Capability::ContentParts) || prefill {
            flatten_text_parts(m);
        }
        m.extra
            .retain(|k, v| !v.is_null() && KNOWN_MESSAGE_FIELDS.contains(&k.as_str()));
        if m.role == Role::Developer && !caps.has(Capability::DeveloperRole) {
            m.role = Role::System;
        }
        if !caps.has(Capability::MessageName) {
            m.name = None;
        }
    }
}

/// Whether [`adapt_openai_chat`] could change `req` for `caps`: true when any field it drops
/// or maps is there (a conservative answer: `false` means it would leave `req` exactly as it
/// is; property-tested through the bytes sent, `providers::openai::tests`), so a request it
/// would not touch is sent without a copy.
pub fn adapts_openai_chat(req: &ChatCompletionRequest, caps: &Caps) -> bool {
    let top = (!caps.has(Capability::TopK)
        && (req.top_k.is_some() || LOCAL_SAMPLERS.iter().any(|k| req.extra.contains_key(*k))))
        || (!caps.has(Capability::Seed) && req.seed.is_some())
        || (!caps.has(Capability::ParallelToolCalls) && req.parallel_tool_calls.is_some())
        || (!caps.has(Capability::MaxCompletionTokens) && req.max_completion_tokens.is_some());
    if top {
        return true;
    }
    let last = req.messages.len().saturating_sub(1);
    req.messages.iter().enumerate().any(|(i, m)| {
        let prefill = i == last && m.role == Role::Assistant;
        ((!caps.has(Capability::ContentParts) || prefill)
            && matches!(m.content, Some(crate::api::Content::Parts(_))))
            || m.extra
                .iter()
                .any(|(k, v)| v.is_null() || !KNOWN_MESSAGE_FIELDS.contains(&k.as_str()))
            || (m.role == Role::Developer && !caps.has(Capability::DeveloperRole))
            || (!caps.has(Capability::MessageName) && m.name.is_some())
    })
}

/// Joins a parts array of text parts only into one string (`\n` between parts); other
/// arrays are left as they are (image parts are the `images` capability's business).
fn flatten_text_parts(m: &mut crate::api::ChatMessage) {
    if let Some(crate::api::Content::Parts(parts)) = &m.content
        && parts.iter().all(|p| p.kind == "text")
    {
        let texts: Vec<&str> = parts.iter().filter_map(|p| p.text.as_deref()).collect();
        m.content = Some(crate::api::Content::Text(texts.join("\n")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::parse_body;

    fn dep(provider: &str, base: &str, supports: Option<&str>) -> DeploymentConfig {
        let mut y = format!("name: d\nprovider: {provider}\nbase_url: {base}\nmodel: m\n");
        if let Some(s) = supports {
            y.push_str(&format!("supports: {s}\n"));
        }
        serde_saphyr::from_str(&y).unwrap()
    }

    fn chat(extra: &str) -> ChatCompletionRequest {
        parse_body(
            format!(r#"{{"model":"x","messages":[{{"role":"user","content":"hi"}}]{extra}}}"#)
                .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn missing_capabilities_give_400_naming_the_param() {
        let anth = dep("anthropic", "https://api.anthropic.com", None);
        let e = check_chat(&chat(r#","logprobs":true"#), &anth).unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        assert_eq!(e.body.param.as_deref(), Some("logprobs"));
        assert_eq!(e.body.code, Some(Value::from("unsupported_parameter")));
        assert_eq!(
            e.body.message,
            "deployment `d` (anthropic) does not support `logprobs`"
        );
        let e = check_chat(&chat(r#","n":2"#), &anth).unwrap_err();
        assert_eq!(e.body.param.as_deref(), Some("n"));
        let e =
            check_chat(&chat(r#","response_format":{"type":"json_object"}"#), &anth).unwrap_err();
        assert_eq!(e.body.param.as_deref(), Some("response_format"));
        assert!(check_chat(&chat(r#","n":1,"logprobs":false"#), &anth).is_ok());
        let text_only = dep("ollama", "http://127.0.0.1:11434", Some("[tools]"));
        let img: ChatCompletionRequest = parse_body(br#"{"model":"x","messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]}]}"#).unwrap();
        let e = check_chat(&img, &text_only).unwrap_err();
        assert_eq!(e.body.param.as_deref(), Some("messages[1].content[1]"));
        let e = check_chat(
            &chat(r#","tools":[{"type":"function","function":{"name":"f"}}]"#),
            &dep("openai", "http://127.0.0.1:1/v1", Some("[]")),
        )
        .unwrap_err();
        assert_eq!(e.body.param.as_deref(), Some("tools"));
    }

    #[test]
    fn openai_proper_keeps_developer_and_drops_top_k() {
        let caps = Caps::of(&dep("openai", "https://api.openai.com/v1", None));
        let mut r: ChatCompletionRequest = parse_body(br#"{"model":"x","top_k":5,"seed":1,"max_completion_tokens":9,"messages":[{"role":"developer","content":"d","name":"n"}]}"#).unwrap();
        adapt_openai_chat(&mut r, &caps);
        assert_eq!(r.top_k, None);
        assert_eq!(r.seed, Some(1));
        assert_eq!(r.max_completion_tokens, Some(9));
        assert_eq!(r.messages[0].role, Role::Developer);
        assert_eq!(r.messages[0].name.as_deref(), Some("n"));
    }

    #[test]
    fn local_servers_get_system_and_max_tokens_and_keep_top_k() {
        let caps = Caps::of(&dep("openai", "http://127.0.0.1:8080/v1", None));
        let mut r: ChatCompletionRequest = parse_body(br#"{"model":"x","top_k":5,"max_completion_tokens":9,"max_tokens":100,"messages":[{"role":"developer","content":"d"}]}"#).unwrap();
        adapt_openai_chat(&mut r, &caps);
        assert_eq!(r.top_k, Some(5));
        assert_eq!(r.max_tokens, Some(9));
        assert_eq!(r.max_completion_tokens, None);
        assert_eq!(r.messages[0].role, Role::System);
    }

    #[test]
    fn text_parts_are_joined_without_content_parts_and_for_a_prefill() {
        let body = br#"{"model":"x","messages":[{"role":"system","content":[{"type":"text","text":"Answer briefly."}]},{"role":"user","content":[{"type":"text","text":"How many primary colors are there?"},{"type":"text","text":"Answer with a number."}]},{"role":"assistant","content":[{"type":"text","text":"The answer is"}]}]}"#;
        let mut r: ChatCompletionRequest = parse_body(body).unwrap();
        adapt_openai_chat(
            &mut r,
            &Caps::of(&dep("openai", "http://127.0.0.1:8080/v1", Some("[tools]"))),
        );
        let v = serde_json::to_value(&r.messages).unwrap();
        assert_eq!(v[0]["content"], "Answer briefly.");
        assert_eq!(
            v[1]["content"],
            "How many primary colors are there?\nAnswer with a number."
        );
        assert_eq!(v[2]["content"], "The answer is");
        let mut r: ChatCompletionRequest = parse_body(body).unwrap();
        adapt_openai_chat(
            &mut r,
            &Caps::of(&dep("openai", "http://127.0.0.1:8080/v1", None)),
        );
        let v = serde_json::to_value(&r.messages).unwrap();
        assert_eq!(v[1]["content"][1]["text"], "Answer with a number.");
        assert_eq!(v[2]["content"], "The answer is");
    }

    #[test]
    fn upstream_cannot_errors_name_their_param() {
        let e = name_unsupported_param(ApiError::from_upstream(
            "d",
            400,
            br#"{"error":"registry.ollama.ai/library/gemma3:270m does not support tools"}"#,
        ));
        assert_eq!(e.body.param.as_deref(), Some("tools"));
        assert_eq!(e.body.code, Some(Value::from("unsupported_parameter")));
        let e = name_unsupported_param(ApiError::from_upstream(
            "d",
            400,
            br#"{"object":"error","message":""auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set","type":"BadRequestError","param":null,"code":400}"#,
        ));
        assert_eq!(e.body.param.as_deref(), Some("tool_choice"));
        let plain = ApiError::from_upstream("d", 400, br#"{"error":"bad"}"#);
        assert_eq!(name_unsupported_param(plain.clone()), plain);
    }

    #[test]
    fn an_explicit_list_replaces_the_defaults() {
        let caps = Caps::of(&dep(
            "openai",
            "http://127.0.0.1:8080/v1",
            Some("[developer_role, seed]"),
        ));
        assert!(caps.has(Capability::DeveloperRole));
        assert!(!caps.has(Capability::TopK));
        assert!(!caps.has(Capability::Tools));
        // Native providers cannot gain what their translation lacks.
        let caps = Caps::of(&dep(
            "anthropic",
            "https://api.anthropic.com",
            Some("[logprobs, n, tools]"),
        ));
        assert!(caps.has(Capability::Tools));
        assert!(!caps.has(Capability::Logprobs));
        assert!(!caps.has(Capability::N));
    }
}

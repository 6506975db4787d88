//! OpenAI chat requests → Anthropic Messages API requests
//! (<https://docs.anthropic.com/en/api/messages>).
//!
//! - Every `system` and `developer` message, wherever it stands, becomes a text block of the
//!   top-level `system` (in order); none stays in `messages`.
//! - Messages become content blocks: text (empty texts dropped), images (`data:` URL → base64
//!   source, http(s) URL → url source), assistant `tool_calls` → `tool_use` blocks (arguments
//!   parsed to objects), `tool` messages → `tool_result` blocks of a user message. Consecutive
//!   messages of the same role are merged into one; messages left without blocks are dropped.
//! - `max_tokens` = `max_completion_tokens`, else `max_tokens`, else the deployment's
//!   `max_tokens_default`, else [`DEFAULT_MAX_TOKENS`] (4096): Anthropic requires the field,
//!   OpenAI clients mostly leave it out, and a missing optional field is never a 400.
//! - `temperature` is clamped to Anthropic's range 0–1 (OpenAI allows up to 2); `top_p` and
//!   `top_k` are passed; `stop` → `stop_sequences`; `user` → `metadata.user_id`.
//! - `tools` → `{name, description, input_schema}`; `tool_choice` `auto` → `auto`, `none` →
//!   `none`, `required` → `any`, a named function → `tool`; `parallel_tool_calls: false` →
//!   `disable_parallel_tool_use: true`.

use crate::api::At;
use crate::api::{ApiError, ChatCompletionRequest, ChatMessage, Content, Role};
use crate::config::{Capability, DeploymentConfig};
use crate::providers::caps::Caps;
use crate::providers::upstream::{arguments_object, data_url};
use serde_json::{Map, Value, json};

/// `max_tokens` sent to Anthropic when neither the client nor the deployment's
/// `max_tokens_default` gives one (tokens). Every current Claude model can produce at least
/// this many; the catalog has no per-model maximum output yet.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The `/v1/messages` body for `req`.
///
/// Errors (400): a tool call whose arguments are not a JSON object text, a content part Anthropic cannot take (`messages[i].content[j]`), an
/// unknown `tool_choice`.
pub fn messages_body(
    req: &ChatCompletionRequest,
    dep: &DeploymentConfig,
    caps: &Caps,
) -> Result<Value, ApiError> {
    let max_tokens = req
        .max_output_tokens()
        .or(dep.max_tokens_default)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    let (system, messages) = messages(&req.messages)?;
    let mut body = Map::new();
    body.insert("model".into(), Value::from(dep.model.clone()));
    body.insert("max_tokens".into(), Value::from(max_tokens));
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    body.insert("messages".into(), Value::Array(messages));
    if let Some(stop) = req
        .stop
        .as_ref()
        .map(|s| s.to_vec())
        .filter(|s| !s.is_empty())
    {
        body.insert("stop_sequences".into(), Value::from(stop));
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), Value::from(t.clamp(0.0, 1.0)));
    }
    if let Some(p) = req.top_p {
        body.insert("top_p".into(), Value::from(p));
    }
    if let Some(k) = req.top_k.filter(|_| caps.has(Capability::TopK)) {
        body.insert("top_k".into(), Value::from(k));
    }
    if let Some(tools) = req.tools.as_ref().filter(|t| !t.is_empty()) {
        let list: Vec<Value> = tools
            .iter()
            .map(|t| {
                let mut o = Map::new();
                o.insert("name".into(), Value::from(t.function.name.clone()));
                if let Some(d) = &t.function.description {
                    o.insert("description".into(), Value::from(d.clone()));
                }
                o.insert(
                    "input_schema".into(),
                    t.function
                        .parameters
                        .clone()
                        .unwrap_or_else(|| json!({"type":"object","properties":{}})),
                );
                Value::Object(o)
            })
            .collect();
        body.insert("tools".into(), Value::Array(list));
        if let Some(choice) = tool_choice(req)? {
            body.insert("tool_choice".into(), choice);
        }
    }
    if let Some(user) = &req.user {
        body.insert("metadata".into(), json!({"user_id": user}));
    }
    if let Some(thinking) = req.extra.get("thinking") {
        body.insert("thinking".into(), thinking.clone());
    }
    if req.is_stream() {
        body.insert("stream".into(), Value::Bool(true));
    }
    Ok(Value::Object(body))
}

fn tool_choice(req: &ChatCompletionRequest) -> Result<Option<Value>, ApiError> {
    let mut choice = match &req.tool_choice {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => json!({"type":"auto"}),
            "none" => json!({"type":"none"}),
            "required" => json!({"type":"any"}),
            other => {
                return Err(ApiError::invalid_request(format!(
                    "Invalid value for `tool_choice`: `{other}`"
                ))
                .with_param("tool_choice"));
            }
        }),
        Some(v) => {
            let name = v
                .at("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiError::invalid_request("`tool_choice` must name a function")
                        .with_param("tool_choice")
                })?;
            Some(json!({"type":"tool","name":name}))
        }
    };
    if req.parallel_tool_calls == Some(false) {
        let c = choice.get_or_insert_with(|| json!({"type":"auto"}));
        if c["type"] != "none"
            && let Value::Object(m) = c
        {
            m.insert("disable_parallel_tool_use".into(), Value::Bool(true));
        }
    }
    Ok(choice)
}

/// `(system blocks, messages)`.
fn messages(msgs: &[ChatMessage]) -> Result<(Vec<Value>, Vec<Value>), ApiError> {
    let mut system = Vec::new();
    let mut out: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let (role, blocks) = match m.role {
            Role::System | Role::Developer => {
                system.extend(blocks_of(m.content.as_ref(), i, false)?);
                continue;
            }
            Role::User => ("user", blocks_of(m.content.as_ref(), i, true)?),
            Role::Assistant => {
                let mut blocks = blocks_of(m.content.as_ref(), i, false)?;
                for (j, tc) in m.tool_calls.iter().flatten().enumerate() {
                    let input = arguments_object(
                        &tc.function.arguments,
                        &format!("messages[{i}].tool_calls[{j}].function.arguments"),
                    )?;
                    blocks.push(
                        json!({"type":"tool_use","id":tc.id,"name":tc.function.name,"input":input}),
                    );
                }
                ("assistant", blocks)
            }
            Role::Tool | Role::Function => {
                let id = m
                    .tool_call_id
                    .clone()
                    .or_else(|| m.name.clone())
                    .unwrap_or_default();
                let content = blocks_of(m.content.as_ref(), i, true)?;
                let mut block = json!({"type":"tool_result","tool_use_id":id});
                if !content.is_empty() {
                    block["content"] = Value::Array(content);
                }
                ("user", vec![block])
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some((r, prev)) if *r == role => prev.extend(blocks),
            _ => out.push((role, blocks)),
        }
    }
    let messages = out
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    Ok((system, messages))
}

/// Content → blocks: text parts (empty ones dropped) and, where `images` is allowed, images.
fn blocks_of(content: Option<&Content>, i: usize, images: bool) -> Result<Vec<Value>, ApiError> {
    let text = |t: &str| json!({"type":"text","text":t});
    match content {
        None => Ok(Vec::new()),
        Some(Content::Text(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Content::Text(s)) => Ok(vec![text(s)]),
        Some(Content::Parts(parts)) => {
            let mut out = Vec::new();
            for (j, p) in parts.iter().enumerate() {
                let param = || format!("messages[{i}].content[{j}]");
                match p.kind.as_str() {
                    "text" => {
                        if let Some(t) = p.text.as_deref().filter(|t| !t.is_empty()) {
                            out.push(text(t));
                        }
                    }
                    "image_url" if images => {
                        let url = p.image_url.as_ref().map(|u| u.url.as_str()).unwrap_or("");
                        let source = match data_url(url) {
                            Some((media, data)) => {
                                json!({"type":"base64","media_type":media,"data":data})
                            }
                            None if url.starts_with("https://") || url.starts_with("http://") => {
                                json!({"type":"url","url":url})
                            }
                            None => {
                                return Err(ApiError::invalid_request(
                                    "images must be http(s) URLs or base64 `data:` URLs",
                                )
                                .with_param(param()));
                            }
                        };
                        out.push(json!({"type":"image","source":source}));
                    }
                    other => {
                        return Err(ApiError::invalid_request(format!(
                            "content parts of type `{other}` are not supported here by Anthropic"
                        ))
                        .with_param(param()));
                    }
                }
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::parse_body;

    fn dep(extra: &str) -> DeploymentConfig {
        serde_saphyr::from_str(&format!(
            "name: claude\nprovider: anthropic\nbase_url: https://api.anthropic.com\nmodel: claude-sonnet-4-5\n{extra}"
        ))
        .unwrap()
    }

    fn body(json: &str, d: &DeploymentConfig) -> Result<Value, ApiError> {
        let req: ChatCompletionRequest = parse_body(json.as_bytes()).unwrap();
        messages_body(&req, d, &Caps::of(d))
    }

    #[test]
    fn system_hoisting_and_max_tokens_default() {
        let d = dep("max_tokens_default: 8192\n");
        let b = body(r#"{"model":"x","messages":[{"role":"system","content":"you are a helpful AI assistant"},
            {"role":"user","content":[{"type":"text","text":"How to write binary search in python?"}]},
            {"role":"developer","content":[{"type":"text","text":"Be brief."},{"type":"text","text":""}]}]}"#, &d).unwrap();
        assert_eq!(
            b,
            json!({"model":"claude-sonnet-4-5","max_tokens":8192,
                   "system":[{"type":"text","text":"you are a helpful AI assistant"},{"type":"text","text":"Be brief."}],
                   "messages":[{"role":"user","content":[{"type":"text","text":"How to write binary search in python?"}]}]})
        );
        let b = body(
            r#"{"model":"x","max_tokens":100,"max_completion_tokens":50,"messages":[]}"#,
            &d,
        )
        .unwrap();
        assert_eq!(b["max_tokens"], 50);
        let b = body(r#"{"model":"x","messages":[]}"#, &dep("")).unwrap();
        assert_eq!(b["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(DEFAULT_MAX_TOKENS, 4096);
    }

    #[test]
    fn sampling_stop_and_clamp() {
        let d = dep("");
        let b = body(r#"{"model":"x","max_tokens":5,"temperature":1.7,"top_p":0.5,"top_k":40,"seed":3,"stop":["END",""],"user":"u1","messages":[]}"#, &d).unwrap();
        assert_eq!(b["temperature"].as_f64(), Some(1.0));
        assert_eq!(b["top_p"].as_f64(), Some(0.5));
        assert_eq!(b["top_k"], 40);
        assert!(b.get("seed").is_none());
        assert_eq!(b["stop_sequences"], json!(["END"]));
        assert_eq!(b["metadata"], json!({"user_id":"u1"}));
        let b = body(
            r#"{"model":"x","max_tokens":5,"temperature":0,"stop":[],"messages":[]}"#,
            &d,
        )
        .unwrap();
        assert_eq!(b["temperature"].as_f64(), Some(0.0));
        assert!(b.get("stop_sequences").is_none());
    }

    #[test]
    fn tool_rounds_merge_into_blocks() {
        let d = dep("max_tokens_default: 1024\n");
        let b = body(r#"{"model":"x","messages":[
            {"role":"user","content":"Weather in Paris and Tokyo?"},
            {"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/"}},{"type":"image_url","image_url":{"url":"https://x/y.png"}}]},
            {"role":"assistant","content":"","tool_calls":[
                {"id":"toolu_A","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
                {"id":"toolu_B","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Tokyo\"}"}}]},
            {"role":"tool","tool_call_id":"toolu_A","content":"18C"},
            {"role":"tool","tool_call_id":"toolu_B","content":""},
            {"role":"user","content":"Thanks"}]}"#, &d).unwrap();
        assert_eq!(
            b["messages"],
            json!([
                {"role":"user","content":[{"type":"text","text":"Weather in Paris and Tokyo?"},
                    {"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"/9j/"}},
                    {"type":"image","source":{"type":"url","url":"https://x/y.png"}}]},
                {"role":"assistant","content":[
                    {"type":"tool_use","id":"toolu_A","name":"get_weather","input":{"city":"Paris"}},
                    {"type":"tool_use","id":"toolu_B","name":"get_weather","input":{"city":"Tokyo"}}]},
                {"role":"user","content":[
                    {"type":"tool_result","tool_use_id":"toolu_A","content":[{"type":"text","text":"18C"}]},
                    {"type":"tool_result","tool_use_id":"toolu_B"},
                    {"type":"text","text":"Thanks"}]}
            ])
        );
    }

    #[test]
    fn tools_and_tool_choice() {
        let d = dep("max_tokens_default: 1024\n");
        let tools = r#""tools":[{"type":"function","function":{"name":"get_time","description":"Now","parameters":{"type":"object","properties":{}}}}]"#;
        let cases = [
            (r#""auto""#, json!({"type":"auto"})),
            (r#""none""#, json!({"type":"none"})),
            (r#""required""#, json!({"type":"any"})),
            (
                r#"{"type":"function","function":{"name":"get_time"}}"#,
                json!({"type":"tool","name":"get_time"}),
            ),
        ];
        for (choice, want) in cases {
            let b = body(
                &format!(r#"{{"model":"x",{tools},"tool_choice":{choice},"messages":[]}}"#),
                &d,
            )
            .unwrap();
            assert_eq!(b["tool_choice"], want, "{choice}");
            assert_eq!(
                b["tools"],
                json!([{"name":"get_time","description":"Now","input_schema":{"type":"object","properties":{}}}])
            );
        }
        let b = body(
            &format!(r#"{{"model":"x",{tools},"parallel_tool_calls":false,"messages":[]}}"#),
            &d,
        )
        .unwrap();
        assert_eq!(
            b["tool_choice"],
            json!({"type":"auto","disable_parallel_tool_use":true})
        );
        let e = body(
            &format!(r#"{{"model":"x",{tools},"tool_choice":"sometimes","messages":[]}}"#),
            &d,
        )
        .unwrap_err();
        assert_eq!(e.body.param.as_deref(), Some("tool_choice"));
    }
}

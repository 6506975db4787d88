//! OpenAI requests → Ollama native requests
//! (<https://github.com/ollama/ollama/blob/main/docs/api.md>): `/api/chat`, `/api/generate`,
//! `/api/embed`.
//!
//! Sampling and limits go under `options` (never at the top level, where `/api/chat` ignores
//! them): `temperature` (0 kept), `top_p`, `top_k`, `seed`, `num_predict` (from
//! `max_completion_tokens`, else `max_tokens`), `stop` (always an array, omitted when empty),
//! `presence_penalty`, `frequency_penalty`, and `num_ctx` (the client's `options.num_ctx`, else
//! the deployment's `num_ctx`). A client `options` object and the Ollama option names sent at
//! the top level (`num_ctx`, `min_p`, `repeat_penalty`, …) are merged in; the OpenAI fields win.

use crate::api::At;
use crate::api::{
    ApiError, ChatCompletionRequest, ChatMessage, Content, GenericRequest, Role, Stop,
};
use crate::config::{Capability, DeploymentConfig};
use crate::providers::caps::{Caps, unsupported};
use crate::providers::upstream::{arguments_object, data_url};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// Ollama option names a client may send at the top level (as `extra_body` does); they are
/// moved into `options`.
const TOP_LEVEL_OPTIONS: [&str; 11] = [
    "num_ctx",
    "num_keep",
    "min_p",
    "typical_p",
    "repeat_penalty",
    "repeat_last_n",
    "mirostat",
    "mirostat_eta",
    "mirostat_tau",
    "num_gpu",
    "num_thread",
];

/// The `/api/chat` body for `req`.
///
/// Errors (400): a tool call whose `arguments` is not a JSON object text
/// (`messages[i].tool_calls[j].function.arguments`), an image given by http(s) URL or a part
/// type Ollama cannot take (`messages[i].content[j]`), an unknown `tool_choice` function,
/// `response_format` `json_schema` without `schema`.
pub fn chat_body(
    req: &ChatCompletionRequest,
    dep: &DeploymentConfig,
    caps: &Caps,
) -> Result<Value, ApiError> {
    let mut body = Map::new();
    body.insert("model".into(), Value::from(dep.model.clone()));
    body.insert("messages".into(), Value::Array(messages(&req.messages)?));
    body.insert("stream".into(), Value::Bool(req.is_stream()));
    let mut options = base_options(&req.extra, dep);
    put(
        &mut options,
        "temperature",
        req.temperature.map(Value::from),
    );
    put(&mut options, "top_p", req.top_p.map(Value::from));
    if caps.has(Capability::TopK) {
        put(&mut options, "top_k", req.top_k.map(Value::from));
    }
    if caps.has(Capability::Seed) {
        put(&mut options, "seed", req.seed.map(Value::from));
    }
    put(
        &mut options,
        "num_predict",
        req.max_output_tokens().map(Value::from),
    );
    put(&mut options, "stop", stop_list(req.stop.as_ref()));
    put(
        &mut options,
        "presence_penalty",
        req.presence_penalty.map(Value::from),
    );
    put(
        &mut options,
        "frequency_penalty",
        req.frequency_penalty.map(Value::from),
    );
    if !options.is_empty() {
        body.insert("options".into(), Value::Object(options));
    }
    if let Some(tools) = tools(req)? {
        body.insert("tools".into(), tools);
    }
    if let Some(rf) = &req.response_format {
        match rf.kind.as_str() {
            "json_object" => {
                body.insert("format".into(), Value::from("json"));
            }
            "json_schema" => {
                let schema = rf
                    .json_schema
                    .as_ref()
                    .and_then(|s| s.get("schema"))
                    .filter(|s| s.is_object())
                    .ok_or_else(|| {
                        ApiError::invalid_request(
                            "`response_format.json_schema.schema` must be a JSON Schema object",
                        )
                        .with_param("response_format")
                    })?;
                body.insert("format".into(), schema.clone());
            }
            _ => {}
        }
    }
    if req.logprobs == Some(true) {
        body.insert("logprobs".into(), Value::Bool(true));
        put(&mut body, "top_logprobs", req.top_logprobs.map(Value::from));
    }
    put(&mut body, "keep_alive", keep_alive(&req.extra, dep));
    put(&mut body, "think", req.extra.get("think").cloned());
    Ok(Value::Object(body))
}

/// The `/api/generate` body for a legacy completion.
///
/// Errors (400): `prompt` missing or not one string (`param: "prompt"`), `echo`, `logprobs`
/// or `best_of` > 1 (not translated for `/api/generate`).
pub fn generate_body(
    req: &GenericRequest,
    dep: &DeploymentConfig,
    caps: &Caps,
) -> Result<Value, ApiError> {
    let x = &req.extra;
    let prompt = match x.get("prompt") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
            a[0].as_str().unwrap_or_default().to_string()
        }
        _ => {
            return Err(ApiError::invalid_request(format!(
                "deployment `{}` (ollama) takes `prompt` as one string",
                dep.name
            ))
            .with_param("prompt"));
        }
    };
    if x.get("echo").and_then(Value::as_bool) == Some(true) {
        return Err(unsupported(dep, "echo", "`echo`"));
    }
    if x.get("logprobs")
        .is_some_and(|v| v.as_bool() == Some(true) || v.as_u64().is_some_and(|k| k > 0))
    {
        return Err(unsupported(
            dep,
            "logprobs",
            "`logprobs` on `/v1/completions`",
        ));
    }
    if x.get("best_of").and_then(Value::as_u64).unwrap_or(1) > 1 {
        return Err(unsupported(dep, "best_of", "`best_of` > 1"));
    }
    let mut body = Map::new();
    body.insert("model".into(), Value::from(dep.model.clone()));
    body.insert("prompt".into(), Value::from(prompt));
    body.insert("stream".into(), Value::Bool(req.is_stream()));
    put(
        &mut body,
        "suffix",
        x.get("suffix").filter(|s| s.is_string()).cloned(),
    );
    put(&mut body, "raw", x.get("raw").cloned());
    let mut options = base_options(x, dep);
    for key in [
        "temperature",
        "top_p",
        "presence_penalty",
        "frequency_penalty",
    ] {
        put(
            &mut options,
            key,
            x.get(key).filter(|v| v.is_number()).cloned(),
        );
    }
    if caps.has(Capability::TopK) {
        put(
            &mut options,
            "top_k",
            x.get("top_k").filter(|v| v.is_number()).cloned(),
        );
    }
    if caps.has(Capability::Seed) {
        put(
            &mut options,
            "seed",
            x.get("seed").filter(|v| v.is_number()).cloned(),
        );
    }
    put(
        &mut options,
        "num_predict",
        x.get("max_tokens").filter(|v| v.is_number()).cloned(),
    );
    let stop: Option<Stop> = x
        .get("stop")
        .and_then(|s| serde_json::from_value(s.clone()).ok());
    put(&mut options, "stop", stop_list(stop.as_ref()));
    if !options.is_empty() {
        body.insert("options".into(), Value::Object(options));
    }
    put(&mut body, "keep_alive", keep_alive(x, dep));
    Ok(Value::Object(body))
}

/// The `/api/embed` body for an embeddings request.
///
/// Errors (400): `input` missing or not a string / array of strings (`param: "input"`).
pub fn embed_body(req: &GenericRequest, dep: &DeploymentConfig) -> Result<Value, ApiError> {
    let x = &req.extra;
    let input = match x.get("input") {
        Some(Value::String(s)) => Value::from(s.clone()),
        Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_string) => {
            Value::Array(a.clone())
        }
        _ => {
            return Err(ApiError::invalid_request(format!(
                "deployment `{}` (ollama) takes `input` as a string or an array of strings",
                dep.name
            ))
            .with_param("input"));
        }
    };
    let mut body = Map::new();
    body.insert("model".into(), Value::from(dep.model.clone()));
    body.insert("input".into(), input);
    put(&mut body, "dimensions", x.get("dimensions").cloned());
    put(&mut body, "truncate", x.get("truncate").cloned());
    let options = base_options(x, dep);
    if !options.is_empty() {
        body.insert("options".into(), Value::Object(options));
    }
    put(&mut body, "keep_alive", keep_alive(x, dep));
    Ok(Value::Object(body))
}

fn put(map: &mut Map<String, Value>, key: &str, v: Option<Value>) {
    if let Some(v) = v {
        map.insert(key.to_string(), v);
    }
}

/// The client's `options` object and top-level Ollama options, then the deployment's
/// `num_ctx` when the client set none.
fn base_options(extra: &Map<String, Value>, dep: &DeploymentConfig) -> Map<String, Value> {
    let mut options = match extra.get("options") {
        Some(Value::Object(o)) => o.clone(),
        _ => Map::new(),
    };
    for key in TOP_LEVEL_OPTIONS {
        if let Some(v) = extra.get(key) {
            options.insert(key.to_string(), v.clone());
        }
    }
    if !options.contains_key("num_ctx")
        && let Some(n) = dep.num_ctx
    {
        options.insert("num_ctx".into(), Value::from(n));
    }
    options
}

fn keep_alive(extra: &Map<String, Value>, dep: &DeploymentConfig) -> Option<Value> {
    extra.get("keep_alive").cloned().or_else(|| {
        dep.keep_alive
            .as_ref()
            .and_then(|k| serde_json::to_value(k).ok())
    })
}

fn stop_list(stop: Option<&Stop>) -> Option<Value> {
    let list = stop.map(Stop::to_vec).unwrap_or_default();
    (!list.is_empty()).then(|| Value::from(list))
}

/// `tools` after `tool_choice`: `none` sends no tools (so no call can happen), a named
/// function sends only that tool, `auto`/`required` send all.
fn tools(req: &ChatCompletionRequest) -> Result<Option<Value>, ApiError> {
    let Some(tools) = req.tools.as_ref().filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let chosen: Vec<&crate::api::Tool> = match &req.tool_choice {
        None | Some(Value::Null) => tools.iter().collect(),
        Some(Value::String(s)) => match s.as_str() {
            "none" => return Ok(None),
            "auto" | "required" => tools.iter().collect(),
            other => {
                return Err(ApiError::invalid_request(format!(
                    "Invalid value for `tool_choice`: `{other}`"
                ))
                .with_param("tool_choice"));
            }
        },
        Some(v) => {
            let name = v.at("/function/name").and_then(Value::as_str);
            let picked: Vec<_> = tools
                .iter()
                .filter(|t| Some(t.function.name.as_str()) == name)
                .collect();
            if picked.is_empty() {
                return Err(ApiError::invalid_request(
                    "`tool_choice` names a function that is not in `tools`",
                )
                .with_param("tool_choice"));
            }
            picked
        }
    };
    let list = chosen
        .into_iter()
        .map(|t| {
            let mut f = Map::new();
            f.insert("name".into(), Value::from(t.function.name.clone()));
            put(
                &mut f,
                "description",
                t.function.description.clone().map(Value::from),
            );
            f.insert(
                "parameters".into(),
                t.function
                    .parameters
                    .clone()
                    .unwrap_or_else(|| json!({"type":"object","properties":{}})),
            );
            json!({"type": "function", "function": f})
        })
        .collect();
    Ok(Some(Value::Array(list)))
}

/// OpenAI messages → Ollama messages: `developer` becomes `system`; content parts are
/// flattened (text parts joined by `\n`, data-URL images into base64 `images`); assistant
/// `content: null` becomes `""`; tool-call arguments become objects; `tool` messages carry
/// `tool_name`, looked up from the call they answer. Message `name` is dropped.
fn messages(msgs: &[ChatMessage]) -> Result<Vec<Value>, ApiError> {
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    let mut out = Vec::with_capacity(msgs.len());
    for (i, m) in msgs.iter().enumerate() {
        let role = match m.role {
            Role::System | Role::Developer => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool | Role::Function => "tool",
        };
        let (text, images) = flatten(m.content.as_ref(), i)?;
        let mut o = Map::new();
        o.insert("role".into(), Value::from(role));
        o.insert("content".into(), Value::from(text));
        if !images.is_empty() {
            o.insert("images".into(), Value::from(images));
        }
        if let Some(calls) = m.tool_calls.as_ref().filter(|c| !c.is_empty()) {
            let mut list = Vec::new();
            for (j, tc) in calls.iter().enumerate() {
                call_names.insert(tc.id.as_str(), tc.function.name.as_str());
                let args = arguments_object(
                    &tc.function.arguments,
                    &format!("messages[{i}].tool_calls[{j}].function.arguments"),
                )?;
                list.push(json!({"function": {"name": tc.function.name, "arguments": args}}));
            }
            o.insert("tool_calls".into(), Value::Array(list));
        }
        if role == "tool" {
            let name = m
                .tool_call_id
                .as_deref()
                .and_then(|id| call_names.get(id).copied())
                .or(m.name.as_deref());
            put(&mut o, "tool_name", name.map(Value::from));
        }
        out.push(Value::Object(o));
    }
    Ok(out)
}

fn flatten(content: Option<&Content>, i: usize) -> Result<(String, Vec<String>), ApiError> {
    match content {
        None => Ok((String::new(), Vec::new())),
        Some(Content::Text(s)) => Ok((s.clone(), Vec::new())),
        Some(Content::Parts(parts)) => {
            let mut texts = Vec::new();
            let mut images = Vec::new();
            for (j, p) in parts.iter().enumerate() {
                let param = || format!("messages[{i}].content[{j}]");
                match p.kind.as_str() {
                    "text" => texts.push(p.text.clone().unwrap_or_default()),
                    "image_url" => {
                        let url = p.image_url.as_ref().map(|u| u.url.as_str()).unwrap_or("");
                        let (_, data) = data_url(url).ok_or_else(|| {
                            ApiError::invalid_request(
                                "Ollama takes images only as base64 `data:` URLs",
                            )
                            .with_param(param())
                        })?;
                        images.push(data.to_string());
                    }
                    other => {
                        return Err(ApiError::invalid_request(format!(
                            "content parts of type `{other}` are not supported by Ollama"
                        ))
                        .with_param(param()));
                    }
                }
            }
            Ok((texts.join("\n"), images))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::parse_body;

    fn dep(extra: &str) -> DeploymentConfig {
        serde_saphyr::from_str(&format!(
            "name: o\nprovider: ollama\nbase_url: http://127.0.0.1:11434\nmodel: llama3.1:8b\n{extra}"
        ))
        .unwrap()
    }

    fn body(json: &str, d: &DeploymentConfig) -> Result<Value, ApiError> {
        let req: ChatCompletionRequest = parse_body(json.as_bytes()).unwrap();
        chat_body(&req, d, &Caps::of(d))
    }

    #[test]
    fn sampling_goes_under_options_and_zero_survives() {
        let d = dep("");
        let b = body(r#"{"model":"x","seed":42,"temperature":0.7,"top_p":0.9,"max_tokens":64,"messages":[{"role":"user","content":"cat"}]}"#, &d).unwrap();
        assert_eq!(
            b,
            json!({"model":"llama3.1:8b","messages":[{"role":"user","content":"cat"}],"stream":false,
                   "options":{"temperature":0.7,"top_p":0.9,"seed":42,"num_predict":64}})
        );
        let b = body(r#"{"model":"x","temperature":0,"stop":"END","max_tokens":5,"max_completion_tokens":9,"messages":[]}"#, &d).unwrap();
        assert_eq!(b["options"]["temperature"].as_f64(), Some(0.0));
        assert_eq!(b["options"]["stop"], json!(["END"]));
        assert_eq!(b["options"]["num_predict"], 9);
        let b = body(r#"{"model":"x","stop":[],"messages":[]}"#, &d).unwrap();
        assert!(b.get("options").is_none());
    }

    #[test]
    fn num_ctx_and_keep_alive_from_client_or_deployment() {
        let d = dep("num_ctx: 8192\nkeep_alive: 10m\n");
        let b = body(r#"{"model":"x","messages":[]}"#, &d).unwrap();
        assert_eq!(b["options"], json!({"num_ctx":8192}));
        assert_eq!(b["keep_alive"], "10m");
        let b = body(r#"{"model":"x","options":{"num_ctx":16384},"keep_alive":-1,"min_p":0.05,"messages":[]}"#, &d).unwrap();
        assert_eq!(b["options"], json!({"num_ctx":16384,"min_p":0.05}));
        assert_eq!(b["keep_alive"], -1);
    }

    #[test]
    fn formats() {
        let d = dep("");
        let b = body(
            r#"{"model":"x","response_format":{"type":"json_object"},"messages":[]}"#,
            &d,
        )
        .unwrap();
        assert_eq!(b["format"], "json");
        let b = body(r#"{"model":"x","response_format":{"type":"json_schema","json_schema":{"name":"s","schema":{"type":"object"}}},"messages":[]}"#, &d).unwrap();
        assert_eq!(b["format"], json!({"type":"object"}));
        let e = body(r#"{"model":"x","response_format":{"type":"json_schema","json_schema":{"name":"s"}},"messages":[]}"#, &d).unwrap_err();
        assert_eq!(e.body.param.as_deref(), Some("response_format"));
    }

    #[test]
    fn messages_roles_images_tools() {
        let d = dep("");
        let b = body(r#"{"model":"x","messages":[
            {"role":"developer","content":"Be brief."},
            {"role":"user","name":"ann","content":[{"type":"text","text":"a"},{"type":"text","text":"b"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBO"}}]},
            {"role":"assistant","content":null,"refusal":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"Paris\"}"}}]},
            {"role":"tool","tool_call_id":"call_1","content":"Sunny"}]}"#, &d).unwrap();
        assert_eq!(
            b["messages"],
            json!([
                {"role":"system","content":"Be brief."},
                {"role":"user","content":"a\nb","images":["iVBO"]},
                {"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_weather","arguments":{"location":"Paris"}}}]},
                {"role":"tool","content":"Sunny","tool_name":"get_weather"}
            ])
        );
        let e = body(r#"{"model":"x","messages":[{"role":"user","content":"q"},{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{oops"}}]}]}"#, &d).unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        assert_eq!(
            e.body.param.as_deref(),
            Some("messages[1].tool_calls[0].function.arguments")
        );
        let e = body(r#"{"model":"x","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}"#, &d).unwrap_err();
        assert_eq!(e.body.param.as_deref(), Some("messages[0].content[0]"));
    }

    #[test]
    fn tool_choice_none_named_and_auto() {
        let d = dep("");
        let tools = r#""tools":[{"type":"function","function":{"name":"a","parameters":{"type":"object"}}},{"type":"function","function":{"name":"b"}}]"#;
        let b = body(
            &format!(r#"{{"model":"x",{tools},"tool_choice":"none","messages":[]}}"#),
            &d,
        )
        .unwrap();
        assert!(b.get("tools").is_none());
        let b = body(&format!(r#"{{"model":"x",{tools},"tool_choice":{{"type":"function","function":{{"name":"b"}}}},"messages":[]}}"#), &d).unwrap();
        assert_eq!(
            b["tools"],
            json!([{"type":"function","function":{"name":"b","parameters":{"type":"object","properties":{}}}}])
        );
        let b = body(&format!(r#"{{"model":"x",{tools},"messages":[]}}"#), &d).unwrap();
        assert_eq!(b["tools"].as_array().unwrap().len(), 2);
        let e = body(&format!(r#"{{"model":"x",{tools},"tool_choice":{{"type":"function","function":{{"name":"zz"}}}},"messages":[]}}"#), &d).unwrap_err();
        assert_eq!(e.body.param.as_deref(), Some("tool_choice"));
    }

    #[test]
    fn generate_and_embed_bodies() {
        let d = dep("num_ctx: 4096\n");
        let g: GenericRequest = parse_body(br#"{"model":"x","prompt":"Once","max_tokens":20,"temperature":0,"stop":"\n","stream":true}"#).unwrap();
        assert_eq!(
            generate_body(&g, &d, &Caps::of(&d)).unwrap(),
            json!({"model":"llama3.1:8b","prompt":"Once","stream":true,
                   "options":{"num_ctx":4096,"temperature":0,"num_predict":20,"stop":["\n"]}})
        );
        let g: GenericRequest = parse_body(br#"{"model":"x","prompt":[1,2]}"#).unwrap();
        let e = generate_body(&g, &d, &Caps::of(&d)).unwrap_err();
        assert_eq!(e.body.param.as_deref(), Some("prompt"));
        let em: GenericRequest =
            parse_body(br#"{"model":"x","input":["a","b"],"dimensions":2}"#).unwrap();
        assert_eq!(
            embed_body(&em, &d).unwrap(),
            json!({"model":"llama3.1:8b","input":["a","b"],"dimensions":2,"options":{"num_ctx":4096}})
        );
        let em: GenericRequest = parse_body(br#"{"model":"x","input":[[1,2]]}"#).unwrap();
        assert_eq!(
            embed_body(&em, &d).unwrap_err().body.param.as_deref(),
            Some("input")
        );
    }
}

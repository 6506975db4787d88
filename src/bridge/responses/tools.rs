//! Responses tools → chat function tools, and the map that turns chat calls back into
//! Responses items.
//!
//! - `function` tools keep their name, description, parameters and `strict`;
//! - `namespace` tools are flattened: each inner tool becomes a function named
//!   `<namespace>__<name>` (calls map back to `name` plus `namespace`);
//! - `custom` (freeform) tools become functions with one string parameter `input`; calls map
//!   back to `custom_tool_call` items whose `input` is that string;
//! - every other type is a hosted tool a chat backend cannot run: removed and named.

use serde_json::{Map, Value, json};

use crate::api::responses::{CustomTool, FunctionTool, ResponsesTool};
use crate::api::{ApiError, FunctionDef, Tool};

/// Separator between a namespace and a tool name in a flattened function name.
pub const NAMESPACE_SEPARATOR: &str = "__";

/// Where a chat function name came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOrigin {
    /// The tool's own name.
    pub name: String,
    /// The namespace tool it was declared in, if any.
    pub namespace: Option<String>,
    /// `true` for a custom (freeform) tool: calls become `custom_tool_call` items.
    pub custom: bool,
}

/// Chat function names → their Responses origin. Names not in the map are plain functions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolMap {
    entries: Vec<(String, ToolOrigin)>,
}

impl ToolMap {
    /// The origin of the chat function `flat`; a name not declared is a plain function.
    pub fn origin(&self, flat: &str) -> ToolOrigin {
        self.entries
            .iter()
            .find(|(f, _)| f == flat)
            .map(|(_, o)| o.clone())
            .unwrap_or_else(|| ToolOrigin {
                name: flat.to_string(),
                namespace: None,
                custom: false,
            })
    }

    /// The chat function name for `name` in `namespace` (as a history item names it).
    pub fn flat_name(&self, name: &str, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) => format!("{ns}{NAMESPACE_SEPARATOR}{name}"),
            None => name.to_string(),
        }
    }

    /// The entries: chat function name and origin, for namespaced and custom tools only.
    pub fn entries(&self) -> &[(String, ToolOrigin)] {
        &self.entries
    }

    /// Whether the map has any entry that is not a plain function (nothing to map back).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn add(&mut self, flat: &str, origin: ToolOrigin) {
        if origin.custom || origin.namespace.is_some() {
            self.entries.push((flat.to_string(), origin));
        }
    }
}

/// `tools` translated: chat function tools, the map back, and the hosted tools removed
/// (their `type`s, in order, each once).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BridgedTools {
    /// Function tools for the chat request.
    pub tools: Vec<Tool>,
    /// How to map calls back.
    pub map: ToolMap,
    /// `type`s of the hosted tools removed (`web_search`, `file_search`, …).
    pub dropped: Vec<String>,
}

/// Translates `tools` (flattening namespaces, turning custom tools into functions, removing
/// hosted tools).
pub fn bridge_tools(tools: &[ResponsesTool]) -> BridgedTools {
    let mut out = BridgedTools::default();
    for t in tools {
        add_tool(t, None, &mut out);
    }
    out
}

fn add_tool(t: &ResponsesTool, namespace: Option<&str>, out: &mut BridgedTools) {
    match t {
        ResponsesTool::Function(f) => {
            let flat = out.map.flat_name(&f.name, namespace);
            out.map.add(&flat, origin(&f.name, namespace, false));
            out.tools.push(function_tool(&flat, f));
        }
        ResponsesTool::Custom(c) => {
            let flat = out.map.flat_name(&c.name, namespace);
            out.map.add(&flat, origin(&c.name, namespace, true));
            out.tools.push(custom_tool(&flat, c));
        }
        ResponsesTool::Namespace(ns) if namespace.is_none() => {
            for inner in &ns.tools {
                add_tool(inner, Some(&ns.name), out);
            }
        }
        other => {
            let kind = other.kind().to_string();
            if !out.dropped.contains(&kind) {
                out.dropped.push(kind);
            }
        }
    }
}

fn origin(name: &str, namespace: Option<&str>, custom: bool) -> ToolOrigin {
    ToolOrigin {
        name: name.to_string(),
        namespace: namespace.map(str::to_string),
        custom,
    }
}

fn function_tool(flat: &str, f: &FunctionTool) -> Tool {
    let mut extra = Map::new();
    if let Some(strict) = f.strict {
        extra.insert("strict".to_string(), Value::Bool(strict));
    }
    Tool {
        kind: "function".to_string(),
        function: FunctionDef {
            name: flat.to_string(),
            description: f.description.clone(),
            parameters: f.parameters.clone(),
            extra,
        },
    }
}

/// A custom tool as a function with one required string parameter `input`, whose
/// description carries the tool's grammar when it has one.
fn custom_tool(flat: &str, c: &CustomTool) -> Tool {
    let input_doc = match &c.format {
        Some(f) if f.get("type").and_then(Value::as_str) == Some("grammar") => format!(
            "The raw input for the tool, matching this {} grammar:\n{}",
            f.get("syntax").and_then(Value::as_str).unwrap_or("lark"),
            f.get("definition").and_then(Value::as_str).unwrap_or("")
        ),
        _ => "The raw input for the tool (free text).".to_string(),
    };
    Tool {
        kind: "function".to_string(),
        function: FunctionDef {
            name: flat.to_string(),
            description: c.description.clone(),
            parameters: Some(json!({
                "type": "object",
                "properties": {"input": {"type": "string", "description": input_doc}},
                "required": ["input"],
                "additionalProperties": false
            })),
            extra: Map::new(),
        },
    }
}

/// Translates `tool_choice`: the strings pass; `{"type":"function"|"custom","name"}` names
/// the flattened function; `{"type":"allowed_tools","mode","tools"}` becomes `mode` and
/// narrows `tools` to those listed. A choice that forces a hosted tool is a 400 naming it.
/// Returns the chat `tool_choice` (`None` = leave unset).
pub fn bridge_tool_choice(
    choice: &Value,
    bridged: &mut BridgedTools,
) -> Result<Option<Value>, ApiError> {
    let Some(kind) = choice.get("type").and_then(Value::as_str) else {
        return Ok(Some(choice.clone()));
    };
    match kind {
        "function" | "custom" => {
            let name = choice.get("name").and_then(Value::as_str).unwrap_or("");
            if name.is_empty() {
                return Err(ApiError::invalid_request(
                    "Missing required parameter: 'tool_choice.name'.",
                )
                .with_param("tool_choice.name"));
            }
            let ns = choice.get("namespace").and_then(Value::as_str);
            let flat = bridged.map.flat_name(name, ns);
            // A choice of a tool the request does not declare went upstream as it was.
            if !bridged.tools.iter().any(|t| t.function.name == flat) {
                return Err(ApiError::invalid_request(format!(
                    "`tool_choice` names the tool `{name}`, which is not in `tools`"
                ))
                .with_param("tool_choice.name"));
            }
            Ok(Some(
                json!({"type": "function", "function": {"name": flat}}),
            ))
        }
        "allowed_tools" => {
            let listed: Vec<String> = choice
                .get("tools")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| {
                    let name = t.get("name").and_then(Value::as_str)?;
                    let ns = t.get("namespace").and_then(Value::as_str);
                    Some(bridged.map.flat_name(name, ns))
                })
                .collect();
            bridged.tools.retain(|t| listed.contains(&t.function.name));
            Ok(choice.get("mode").cloned())
        }
        hosted => Err(ApiError::invalid_request(format!(
            "`tool_choice` forces the hosted tool `{hosted}`, which the chat backend behind \
             this model cannot run (hosted tools are removed on a bridged route)"
        ))
        .with_param("tool_choice")
        .with_code("unsupported_parameter")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(v: Value) -> Vec<ResponsesTool> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn namespaces_flatten_customs_become_functions_hosted_are_dropped() {
        let b = bridge_tools(&tools(json!([
            {"type":"function","name":"f","parameters":{"type":"object"},"strict":true},
            {"type":"namespace","name":"crm","tools":[{"type":"function","name":"find"},{"type":"custom","name":"note"}]},
            {"type":"custom","name":"patch","format":{"type":"grammar","syntax":"lark","definition":"start: /x/"}},
            {"type":"web_search"},{"type":"file_search"},{"type":"web_search"}
        ])));
        let names: Vec<&str> = b.tools.iter().map(|t| t.function.name.as_str()).collect();
        assert_eq!(names, ["f", "crm__find", "crm__note", "patch"]);
        assert_eq!(b.tools[0].function.extra["strict"], true);
        assert_eq!(b.dropped, ["web_search", "file_search"]);
        assert_eq!(
            b.map.origin("crm__note"),
            ToolOrigin {
                name: "note".into(),
                namespace: Some("crm".into()),
                custom: true
            }
        );
        assert!(b.map.origin("patch").custom);
        assert_eq!(b.map.origin("f").name, "f");
        let params = b.tools[3].function.parameters.as_ref().unwrap();
        assert_eq!(params["required"], json!(["input"]));
        let doc = params["properties"]["input"]["description"]
            .as_str()
            .unwrap();
        assert!(doc.ends_with("lark grammar:\nstart: /x/"), "{doc}");
    }

    #[test]
    fn tool_choice_maps_names_and_refuses_forced_hosted_tools() {
        let mut b = bridge_tools(&tools(json!([
            {"type":"function","name":"a"},{"type":"function","name":"b"},
            {"type":"namespace","name":"ns","tools":[{"type":"function","name":"c"}]},
            {"type":"web_search"}
        ])));
        let c = bridge_tool_choice(
            &json!({"type":"function","name":"c","namespace":"ns"}),
            &mut b,
        );
        assert_eq!(
            c.unwrap(),
            Some(json!({"type":"function","function":{"name":"ns__c"}}))
        );
        assert_eq!(
            bridge_tool_choice(&json!("required"), &mut b).unwrap(),
            Some(json!("required"))
        );
        let e = bridge_tool_choice(&json!({"type":"web_search"}), &mut b).unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        assert_eq!(e.body.param.as_deref(), Some("tool_choice"));
        assert!(
            e.body.message.contains("`web_search`"),
            "{}",
            e.body.message
        );
        let c = bridge_tool_choice(
            &json!({"type":"allowed_tools","mode":"required","tools":[{"type":"function","name":"b"}]}),
            &mut b,
        );
        assert_eq!(c.unwrap(), Some(json!("required")));
        let names: Vec<&str> = b.tools.iter().map(|t| t.function.name.as_str()).collect();
        assert_eq!(names, ["b"]);
    }
}

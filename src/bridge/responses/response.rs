//! A chat completion (JSON) → a Response object.
//!
//! `choices[0].message`: `reasoning_content` (or `reasoning`) → a `reasoning` item with one
//! summary part; `content` (and `refusal`) → a `message` item; `tool_calls` → `function_call`
//! items (namespaced functions named back) or `custom_tool_call` items. `usage` →
//! `input_tokens`, `input_tokens_details.cached_tokens`, `output_tokens`,
//! `output_tokens_details.reasoning_tokens`, `total_tokens`. `finish_reason: length` →
//! `status: incomplete`, `incomplete_details.reason: max_output_tokens` (`content_filter`
//! likewise), else `completed`.

use crate::api::answer_view::{ChatAnswer, ChatUsage};
use serde_json::Value;

use super::tools::ToolMap;
use crate::api::responses::output::{
    InputTokensDetails, OutputCustomToolCall, OutputFunctionCall, OutputMessage, OutputReasoning,
    OutputTokensDetails,
};
use crate::api::responses::{
    IncompleteDetails, OutputContent, OutputItem, ResponseObject, ResponseUsage, SummaryPart,
};

/// Fills `response` (from [`ResponseObject::start`]) with the output, status and usage of
/// the chat completion `chat` (a parsed answer of any shape; see [`from_answer`]).
pub fn from_chat(chat: &Value, response: ResponseObject, tools: &ToolMap) -> ResponseObject {
    from_answer(&ChatAnswer::from_tree(chat), response, tools)
}

/// Fills `response` (from [`ResponseObject::start`]) with the output, status and usage of
/// the chat completion `chat` (read through [`crate::api::answer_view`] or from a tree);
/// `tools` maps function names back to Responses tools.
pub fn from_answer(
    chat: &ChatAnswer<'_>,
    mut response: ResponseObject,
    tools: &ToolMap,
) -> ResponseObject {
    let finish = chat.finish_reason.as_deref();
    let item_status = if incomplete_reason(finish).is_some() {
        "incomplete"
    } else {
        "completed"
    };
    let mut output = Vec::new();
    if let Some(r) = &chat.reasoning {
        output.push(reasoning_item(
            &response.id,
            output.len(),
            r.to_string(),
            "completed",
        ));
    }
    let text = chat.content.as_deref().unwrap_or("");
    let refusal = chat.refusal.as_deref();
    if !text.is_empty() || refusal.is_some() {
        let mut content = Vec::new();
        if !text.is_empty() {
            content.push(output_text(text.to_string()));
        }
        if let Some(r) = refusal {
            content.push(OutputContent::Refusal {
                refusal: r.to_string(),
            });
        }
        output.push(OutputItem::Message(OutputMessage {
            id: item_id(&response.id, "msg", output.len()),
            status: item_status.to_string(),
            role: "assistant".to_string(),
            content,
        }));
    }
    for call in &chat.tool_calls {
        let index = output.len();
        output.push(call_item(
            &response.id,
            index,
            call.id.as_deref().unwrap_or(""),
            &call.name,
            &call.arguments,
            item_status,
            tools,
        ));
    }
    response.output = output;
    response.usage = chat.usage.as_ref().map(response_usage);
    match incomplete_reason(finish) {
        Some(reason) => {
            response.status = "incomplete".to_string();
            response.incomplete_details = Some(IncompleteDetails {
                reason: reason.to_string(),
            });
        }
        None => response.status = "completed".to_string(),
    }
    response
}

/// `max_output_tokens` for `length`, `content_filter` for `content_filter`, else `None`.
pub fn incomplete_reason(finish_reason: Option<&str>) -> Option<&'static str> {
    match finish_reason {
        Some("length") => Some("max_output_tokens"),
        Some("content_filter") => Some("content_filter"),
        _ => None,
    }
}

/// An item id derived from the response id: `resp_X` → `<prefix>_X_<index>`.
pub fn item_id(response_id: &str, prefix: &str, index: usize) -> String {
    let base = response_id.strip_prefix("resp_").unwrap_or(response_id);
    format!("{prefix}_{base}_{index}")
}

/// A chat `usage` object → Responses usage (missing numbers are 0).
pub fn usage(u: &Value) -> ResponseUsage {
    response_usage(&ChatUsage::from_tree(u))
}

/// Chat usage counts → Responses usage; `total_tokens` is input + output when not given.
pub fn response_usage(u: &ChatUsage) -> ResponseUsage {
    ResponseUsage {
        input_tokens: u.prompt_tokens,
        input_tokens_details: InputTokensDetails {
            cached_tokens: u.cached_tokens,
        },
        output_tokens: u.completion_tokens,
        output_tokens_details: OutputTokensDetails {
            reasoning_tokens: u.reasoning_tokens,
        },
        total_tokens: u
            .total_tokens
            .unwrap_or(u.prompt_tokens + u.completion_tokens),
    }
}

/// `{"type":"output_text","text","annotations":[],"logprobs":[]}`.
pub fn output_text(text: String) -> OutputContent {
    OutputContent::OutputText {
        text,
        annotations: Vec::new(),
        logprobs: Vec::new(),
    }
}

/// A reasoning item with one `summary_text` part holding `text`.
pub fn reasoning_item(response_id: &str, index: usize, text: String, status: &str) -> OutputItem {
    OutputItem::Reasoning(OutputReasoning {
        id: item_id(response_id, "rs", index),
        summary: vec![SummaryPart {
            kind: "summary_text".to_string(),
            text,
        }],
        status: Some(status.to_string()),
    })
}

/// A chat tool call → a `function_call` item, or a `custom_tool_call` item when `name` is a
/// custom tool's (its `input` taken from the `{"input": …}` arguments). Empty function
/// arguments become `{}`; a missing call id becomes `call_<response>_<index>`.
pub fn call_item(
    response_id: &str,
    index: usize,
    call_id: &str,
    name: &str,
    arguments: &str,
    status: &str,
    tools: &ToolMap,
) -> OutputItem {
    let origin = tools.origin(name);
    let call_id = if call_id.is_empty() {
        item_id(response_id, "call", index)
    } else {
        call_id.to_string()
    };
    if origin.custom {
        return OutputItem::CustomToolCall(OutputCustomToolCall {
            id: item_id(response_id, "ctc", index),
            call_id,
            name: origin.name,
            input: custom_input(arguments),
            status: status.to_string(),
            namespace: origin.namespace,
        });
    }
    OutputItem::FunctionCall(OutputFunctionCall {
        id: item_id(response_id, "fc", index),
        call_id,
        name: origin.name,
        arguments: if arguments.trim().is_empty() {
            "{}".to_string()
        } else {
            arguments.to_string()
        },
        status: status.to_string(),
        namespace: origin.namespace,
    })
}

/// The `input` string of a custom tool's `{"input": …}` arguments (raw newlines and tabs
/// inside the JSON string, which small models write, are accepted); the raw text when the
/// arguments are not that shape.
pub fn custom_input(arguments: &str) -> String {
    let parsed = serde_json::from_str::<Value>(arguments).or_else(|_| {
        let escaped = arguments
            .replace('\n', "\\n")
            .replace('\t', "\\t")
            .replace('\r', "\\r");
        serde_json::from_str::<Value>(&escaped)
    });
    match parsed {
        Ok(Value::Object(m)) => match m.get("input") {
            Some(Value::String(s)) => s.clone(),
            _ => arguments.to_string(),
        },
        _ => arguments.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_input_unwraps_the_input_argument() {
        assert_eq!(custom_input(r#"{"input":"a\nb"}"#), "a\nb");
        assert_eq!(custom_input("{\"input\":\"a\nb\"}"), "a\nb");
        assert_eq!(custom_input("plain text"), "plain text");
        assert_eq!(custom_input(r#"{"other":1}"#), r#"{"other":1}"#);
    }

    #[test]
    fn item_ids_derive_from_the_response_id() {
        assert_eq!(item_id("resp_abc", "msg", 2), "msg_abc_2");
        assert_eq!(item_id("x", "fc", 0), "fc_x_0");
    }
}

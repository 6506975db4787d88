//! The inbound APIs the overhead benchmark covers besides chat completions, each measured
//! against the bare hop in the same run: the same request sent to Sluice (which serves it
//! bridged to chat completions on the mock) and to the bare hop (which forwards it as bytes to
//! the mock's native endpoint of the same API).

use super::load::Expect;
use bytes::Bytes;

/// One inbound API scenario.
#[derive(Debug, Clone)]
pub struct Dialect {
    /// The row's name in the table.
    pub name: &'static str,
    /// The request path on Sluice and on the bare hop (`/v1/responses`).
    pub path: &'static str,
    /// The request body.
    pub body: Bytes,
    /// What a good answer looks like.
    pub expect: Expect,
    /// Whether the answer is a stream (added latency is then time to first byte).
    pub stream: bool,
}

const PROMPT: &str = "Write one short sentence about rivers and lakes, please.";

fn dialect(
    name: &'static str,
    path: &'static str,
    body: String,
    end: Option<&'static str>,
) -> Dialect {
    Dialect {
        name,
        path,
        body: Bytes::from(body),
        expect: Expect { end },
        stream: end.is_some(),
    }
}

/// The scenarios, in table order. The native ones name models whose only deployment serves
/// the API itself (`anthropic` for Messages, `openai` with `supports: [responses]`), which
/// Sluice forwards without translation. Responses requests set `store: false` (as Codex does), so
/// no response state is written: the row measures the bridge, not the state store.
pub fn all() -> Vec<Dialect> {
    let responses = |model: &str, stream: bool| {
        format!(
            r#"{{"model":"{model}","instructions":"You are terse.","input":"{PROMPT}","max_output_tokens":32,"store":false,"stream":{stream}}}"#
        )
    };
    let messages = |model: &str, stream: bool| {
        format!(
            r#"{{"model":"{model}","system":"You are terse.","messages":[{{"role":"user","content":"{PROMPT}"}}],"max_tokens":32,"stream":{stream}}}"#
        )
    };
    let (r_end, m_end) = (Some("response.completed"), Some("message_stop"));
    vec![
        dialect(
            "embeddings",
            "/v1/embeddings",
            format!(r#"{{"model":"default","input":"{PROMPT}"}}"#),
            None,
        ),
        dialect(
            "Responses bridged",
            "/v1/responses",
            responses("default", false),
            None,
        ),
        dialect(
            "Responses bridged stream",
            "/v1/responses",
            responses("default", true),
            r_end,
        ),
        dialect(
            "Responses native",
            "/v1/responses",
            responses("responses-native", false),
            None,
        ),
        dialect(
            "Responses native stream",
            "/v1/responses",
            responses("responses-native", true),
            r_end,
        ),
        dialect(
            "Messages bridged",
            "/v1/messages",
            messages("default", false),
            None,
        ),
        dialect(
            "Messages bridged stream",
            "/v1/messages",
            messages("default", true),
            m_end,
        ),
        dialect(
            "Messages native",
            "/v1/messages",
            messages("messages-native", false),
            None,
        ),
        dialect(
            "Messages native stream",
            "/v1/messages",
            messages("messages-native", true),
            m_end,
        ),
    ]
}

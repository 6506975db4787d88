//! The record of one request, as the gateway hands it to the log (and metrics, traces): made
//! exactly once per accepted request (answered, failed, rejected, or cut off by the client).

use crate::api::Usage;
use crate::api::summary::ResponseSummary;
use serde::Serialize;
use std::time::SystemTime;

/// Everything Sluice knows about one finished request.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    /// Sluice's request id (also the `x-request-id` response header).
    pub id: String,
    /// When the request arrived.
    #[serde(skip)]
    pub started_at: SystemTime,
    /// Start as Unix time, ms.
    pub started_ms: u64,
    /// Total time, ms.
    pub duration_ms: u64,
    /// Time to the first chunk sent, ms (streams only).
    pub ttft_ms: Option<u64>,
    /// `chat.completions`, `completions` or `embeddings`.
    pub endpoint: &'static str,
    /// The model name the client asked for.
    pub requested_model: String,
    /// The deployment that answered (or was last tried).
    pub deployment: Option<String>,
    /// Its provider kind.
    pub provider: Option<&'static str>,
    /// HTTP status sent to the client (499 when the client went away mid-stream).
    pub status: u16,
    /// Error `type`, for failures.
    pub error_type: Option<String>,
    /// Error message, for failures.
    pub error_message: Option<String>,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// What the response said.
    pub response: ResponseSummary,
    /// The response hash of the whole answer, taken by [`RequestRecord::bound_bodies`] before
    /// it cuts the text; `None` when nothing was cut (the row's text is whole) or a stream's
    /// text was not all gathered (the hash is then unknown, see [`crate::store::row::repro_values`]).
    #[serde(skip)]
    pub whole_response_hash: Option<String>,
    /// Token counts: the upstream's usage, or an estimate.
    pub usage: Usage,
    /// True when `usage` is an estimate (the upstream reported none).
    pub usage_estimated: bool,
    /// Time spent waiting on upstreams, µs, summed over attempts (non-stream: until the whole
    /// body; stream: until the first chunk).
    pub upstream_us: Option<u64>,
    /// Time Sluice itself added, µs: whole request time (streams: time to the first frame)
    /// minus `upstream_us`.
    pub overhead_us: Option<u64>,
    /// Number of upstream attempts made (retries and fallbacks included).
    pub attempts: u32,
    /// Id of the API key used (never the key), once keys exist.
    pub api_key_id: Option<String>,
    /// The ids up that key's `created_by` chain, its maker first
    /// ([`crate::access::auth::Principal::creators`]): its cost counts on their spend too.
    /// Not a column (the chain is known from the keys).
    #[serde(skip)]
    pub api_key_creators: Vec<String>,
    /// End user: the request's `user` field or the configured user header.
    pub end_user: Option<String>,
    /// Client IP address.
    pub client_ip: Option<String>,
    /// `local` or `remote`, of the deployment that answered.
    pub hosting: Option<&'static str>,
    /// Openness tier of that deployment (`api` … `reproducible`).
    pub openness: Option<&'static str>,
    /// Names of the policies that matched.
    pub policies: Vec<String>,
    /// Kinds of personal data found in the prompt (`email`, `iban`, …), never the values.
    pub pii_kinds: Vec<String>,
    /// Cost in USD from the deployment's price, when the price is known.
    pub cost_usd: Option<f64>,
    /// Effective sampling parameters sent upstream (`temperature`, `top_p`, `seed`, …).
    pub sampling: Option<serde_json::Value>,
    /// SHA-256 of the canonical effective request (see [`crate::repro::request_hash`]).
    pub request_hash: Option<String>,
    /// Whether deterministic sampling was in force (a policy's `sampling: {deterministic:
    /// true}`): only such rows may answer the response cache ([`crate::repro::cache`]).
    pub deterministic: bool,
    /// The request body as received, as compact JSON text (the store keeps, redacts or drops
    /// it by logging mode). Kept as text so the request path serialises it once, straight to
    /// the bytes the log stores.
    #[serde(skip)]
    pub request_body: Option<Box<serde_json::value::RawValue>>,
    /// Logging mode forced by a policy or key for this request (`full`, `redacted`,
    /// `metadata`, `off`), overriding `log.prompts`.
    pub log_mode: Option<String>,
    /// JSON path (in the outgoing body) of the personal data the egress guard stopped before
    /// it left for a non-local deployment; never the value.
    pub egress_blocked: Option<String>,
    /// For Messages and Responses requests: `native` (the backend's own API) or `bridged`
    /// (through chat completions), of the deployment that answered (or was last tried).
    pub route: Option<String>,
    /// Server or hosted tools removed from a bridged request (`web_search`, …).
    pub dropped_tools: Vec<String>,
}

impl Default for RequestRecord {
    /// An empty record starting at the Unix epoch (for tests, tools and benchmarks).
    fn default() -> Self {
        RequestRecord {
            id: String::new(),
            started_at: SystemTime::UNIX_EPOCH,
            started_ms: 0,
            duration_ms: 0,
            ttft_ms: None,
            endpoint: "",
            requested_model: String::new(),
            deployment: None,
            provider: None,
            status: 0,
            error_type: None,
            error_message: None,
            stream: false,
            response: ResponseSummary::default(),
            whole_response_hash: None,
            usage: Usage::default(),
            usage_estimated: false,
            upstream_us: None,
            overhead_us: None,
            attempts: 0,
            api_key_id: None,
            api_key_creators: Vec::new(),
            end_user: None,
            client_ip: None,
            hosting: None,
            openness: None,
            policies: Vec::new(),
            pii_kinds: Vec::new(),
            cost_usd: None,
            sampling: None,
            request_hash: None,
            deterministic: false,
            request_body: None,
            log_mode: None,
            egress_blocked: None,
            route: None,
            dropped_tools: Vec::new(),
        }
    }
}

/// The end of a body cut at `log.max_body_bytes` in a row: the kept head is followed by this
/// text (a JSON body becomes a JSON string of head + marker, so the column stays JSON).
pub const TRUNCATED: &str = " [truncated by Sluice at log.max_body_bytes]";

impl RequestRecord {
    /// Cuts each body over `max` bytes to its first `max` bytes (at a character boundary)
    /// followed by [`TRUNCATED`]: the request body (then a JSON string), the response text,
    /// and tool-call arguments (beyond `max` in total). A stream whose summary stopped
    /// gathering ([`crate::api::summary::TextBound::truncated`]) gets the marker on its text
    /// too. Usage, finish reason and everything else are kept.
    pub fn bound_bodies(&mut self, max: usize) {
        use crate::api::summary::floor_char_boundary;
        if let Some(b) = &self.request_body
            && b.get().len() > max
        {
            let text = b.get();
            let head = format!("{}{TRUNCATED}", &text[..floor_char_boundary(text, max)]);
            self.request_body = serde_json::value::to_raw_value(&head).ok();
        }
        let cuts = self.response.content.len() > max
            || self
                .response
                .tool_calls
                .iter()
                .map(|c| c.arguments.len())
                .sum::<usize>()
                > max;
        if cuts && !self.response.bound.truncated {
            self.whole_response_hash = Some(crate::repro::response_hash(&self.response));
        }
        let r = &mut self.response;
        if r.content.len() > max || r.bound.truncated {
            r.content.truncate(floor_char_boundary(&r.content, max));
            r.content.push_str(TRUNCATED);
        }
        let mut room = max;
        let mut cut = false;
        for call in &mut r.tool_calls {
            if cut {
                call.arguments.clear();
                continue;
            }
            if call.arguments.len() > room {
                call.arguments
                    .truncate(floor_char_boundary(&call.arguments, room));
                call.arguments.push_str(TRUNCATED);
                cut = true;
            } else {
                room -= call.arguments.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_over_the_bound_are_cut_with_the_marker() {
        let mut r = RequestRecord {
            request_body: serde_json::value::RawValue::from_string(r#"{"messages":"ééé"}"#.into())
                .ok(),
            ..Default::default()
        };
        r.response.content = "abcdef".into();
        r.response.tool_calls = vec![
            crate::api::summary::ToolCallSummary {
                arguments: "12".into(),
                ..Default::default()
            },
            crate::api::summary::ToolCallSummary {
                arguments: "3456".into(),
                ..Default::default()
            },
            crate::api::summary::ToolCallSummary {
                arguments: "78".into(),
                ..Default::default()
            },
        ];
        r.usage = crate::api::Usage::new(1, 2);
        let mut same = r.clone();
        same.bound_bodies(100);
        assert_eq!(same.response, r.response);
        assert_eq!(
            same.request_body.as_ref().unwrap().get(),
            r#"{"messages":"ééé"}"#
        );

        assert_eq!(same.whole_response_hash, None);
        // Each body is cut after 4 bytes (the tool calls after 4 in total); the response hash
        // is of the whole answer, taken before (a replay of the same answer was "different").
        let whole = crate::repro::response_hash(&r.response);
        r.bound_bodies(4);
        assert_eq!(r.whole_response_hash.as_deref(), Some(whole.as_str()));
        assert_eq!(
            crate::store::row::repro_values(&RequestRecord {
                status: 200,
                ..r.clone()
            })[1],
            rusqlite::types::Value::Text(whole)
        );
        let body: String = serde_json::from_str(r.request_body.as_ref().unwrap().get()).unwrap();
        assert_eq!(body, format!("{{\"me{TRUNCATED}"));
        assert_eq!(r.response.content, format!("abcd{TRUNCATED}"));
        let args: Vec<&str> = r
            .response
            .tool_calls
            .iter()
            .map(|c| c.arguments.as_str())
            .collect();
        assert_eq!(
            args,
            ["12".to_string(), format!("34{TRUNCATED}"), String::new()]
        );
        assert_eq!(r.usage, crate::api::Usage::new(1, 2));

        // A stream that stopped gathering is marked even when what it kept fits.
        let mut s = RequestRecord::default();
        s.response.content = "ab".into();
        s.response.bound.truncated = true;
        s.bound_bodies(4);
        assert_eq!(s.response.content, format!("ab{TRUNCATED}"));
        // Its whole text was never kept: no hash, rather than the hash of a part.
        s.status = 200;
        assert_eq!(s.whole_response_hash, None);
        assert_eq!(
            crate::store::row::repro_values(&s)[1],
            rusqlite::types::Value::Null
        );
    }
}

//! What a response said, gathered for the log: text, tool calls, finish reason, usage.
//! Built from a whole response or chunk by chunk from a stream.

use crate::api::At;
use crate::api::Usage;
use crate::api::chunk_view::ChunkView;
use serde::Serialize;
use serde_json::Value;

/// A tool call as assembled from a response or stream deltas.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ToolCallSummary {
    /// Call id.
    pub id: String,
    /// Function name.
    pub name: String,
    /// Arguments JSON text, fragments concatenated in order.
    pub arguments: String,
}

/// The parts of a response Sluice keeps (choice 0 for text and tool calls).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResponseSummary {
    /// The upstream's `model`.
    pub model: Option<String>,
    /// Text of choice 0 (chat `content` or completion `text`).
    pub content: String,
    /// Tool calls of choice 0, by index.
    pub tool_calls: Vec<ToolCallSummary>,
    /// `finish_reason` of choice 0.
    pub finish_reason: Option<String>,
    /// Usage as reported by the upstream, when it reported it.
    pub usage: Option<Usage>,
    /// `system_fingerprint`, when given.
    pub system_fingerprint: Option<String>,
    /// How much text a stream's summary gathers (see [`TextBound`]).
    #[serde(skip)]
    pub bound: TextBound,
    /// The tool-call slot of the last stream fragment (where one without `index` goes).
    #[serde(skip)]
    pub last_call: Option<usize>,
    /// A whole answer had a choice (`choices` not empty).
    #[serde(skip)]
    pub answered: bool,
}

/// The slot of a tool-call fragment in `calls` (made when new; `last`: the slot of the
/// previous fragment): its `index` (at most 1024, else `None`: skipped); without one, the
/// call with its `id`, else a new call when the last one has another `id`, else the last one
/// (numbered or not). The bridges read fragments the same way (`bridge::tool_order`).
fn slot_of(
    calls: &mut Vec<ToolCallSummary>,
    last: &mut Option<usize>,
    index: Option<u64>,
    id: Option<&str>,
) -> Option<usize> {
    let prev = last.filter(|&i| i < calls.len());
    let idx = match (index, id.filter(|s| !s.is_empty())) {
        (Some(i), _) => usize::try_from(i).unwrap_or(usize::MAX),
        (None, Some(id)) => match calls.iter().position(|c| c.id == id) {
            Some(i) => i,
            None if prev.is_some_and(|i| !calls[i].id.is_empty()) => calls.len(),
            None => prev.unwrap_or(0),
        },
        (None, None) => prev.unwrap_or(0),
    };
    if idx > 1024 {
        return None;
    }
    while calls.len() <= idx {
        calls.push(ToolCallSummary::default());
    }
    *last = Some(idx);
    Some(idx)
}

/// The bound on the text a stream's summary gathers for the log row: text and tool-call
/// names and arguments are appended only up to `limit` bytes in total (`log.max_body_bytes`),
/// so a very long stream is never held whole in memory; past it `truncated` is set (the row
/// gets [`crate::store::record::TRUNCATED`]) while `seen` goes on counting, for the token
/// estimate of a stream without usage. Finish reason and usage are read to the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextBound {
    /// Most bytes gathered; `None`: no bound (whole answers, already capped by
    /// `max_response_bytes`).
    pub limit: Option<usize>,
    /// Bytes gathered.
    pub kept: usize,
    /// Bytes the stream sent, gathered or not.
    pub seen: u64,
    /// Some text was left out.
    pub truncated: bool,
}

impl TextBound {
    /// A bound of `limit` bytes.
    pub fn of(limit: usize) -> Self {
        TextBound {
            limit: Some(limit),
            ..Default::default()
        }
    }

    /// Appends to `dst` what of `t` fits (cut at a character boundary), counting all of it.
    pub fn push(&mut self, dst: &mut String, t: &str) {
        self.seen = self.seen.saturating_add(t.len() as u64);
        let room = self
            .limit
            .map_or(usize::MAX, |l| l.saturating_sub(self.kept));
        let take = if t.len() <= room {
            t.len()
        } else {
            self.truncated = true;
            floor_char_boundary(t, room)
        };
        dst.push_str(&t[..take]);
        self.kept += take;
    }
}

/// The largest index ≤ `at` (and ≤ `s.len()`) on a character boundary of `s`.
pub fn floor_char_boundary(s: &str, at: usize) -> usize {
    if at >= s.len() {
        return s.len();
    }
    let mut i = at;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl ResponseSummary {
    /// Reads a whole chat completion, text completion or embeddings response.
    pub fn from_response(json: &Value) -> Self {
        super::answer_view::ChatAnswer::from_tree(json).summary()
    }

    /// Adds one stream chunk (text and arguments within [`ResponseSummary::bound`]).
    pub fn add_chunk(&mut self, chunk: &Value) {
        self.read_common(chunk);
        let Some(c0) = first_choice(chunk) else {
            return;
        };
        let bound = &mut self.bound;
        if let Some(delta) = c0.get("delta") {
            if let Some(t) = delta.get("content").and_then(Value::as_str) {
                bound.push(&mut self.content, t);
            }
            for tc in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let index = tc.get("index").and_then(Value::as_u64);
                let Some(idx) = slot_of(
                    &mut self.tool_calls,
                    &mut self.last_call,
                    index,
                    tc.get("id").and_then(Value::as_str),
                ) else {
                    continue;
                };
                let slot = &mut self.tool_calls[idx];
                if let Some(id) = tc.get("id").and_then(Value::as_str) {
                    slot.id = id.to_string();
                }
                if let Some(n) = tc.at("/function/name").and_then(Value::as_str) {
                    bound.push(&mut slot.name, n);
                }
                if let Some(a) = tc.at("/function/arguments").and_then(Value::as_str) {
                    bound.push(&mut slot.arguments, a);
                }
            }
        }
        if let Some(t) = c0.get("text").and_then(Value::as_str) {
            bound.push(&mut self.content, t);
        }
        if let Some(f) = c0.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(f.to_string());
        }
    }

    /// Estimated completion tokens of what was streamed (gathered or not): one per 4 bytes of
    /// text and tool-call arguments (see [`estimate_tokens`]; past the bound, of everything
    /// the stream sent, names included).
    pub fn estimate_completion_tokens(&self) -> u64 {
        if self.bound.truncated {
            return self.bound.seen.div_ceil(4);
        }
        let mut texts = vec![self.content.as_str()];
        for t in &self.tool_calls {
            texts.push(&t.arguments);
        }
        estimate_tokens(&texts)
    }

    /// [`ResponseSummary::add_chunk`] from the chunk's borrowed view instead of its JSON
    /// tree: the same result for every chunk the view accepts (see
    /// [`crate::api::chunk_view`]).
    pub fn add_view(&mut self, chunk: &ChunkView<'_>) {
        self.read_parts(
            chunk.model.as_deref(),
            chunk.system_fingerprint.as_deref(),
            chunk.usage_object().as_ref(),
        );
        let Some(c0) = chunk.first_choice() else {
            return;
        };
        let bound = &mut self.bound;
        if let Some(delta) = &c0.delta {
            if let Some(t) = &delta.content {
                bound.push(&mut self.content, t);
            }
            for tc in delta.tool_calls.iter().flatten() {
                let Some(idx) = slot_of(
                    &mut self.tool_calls,
                    &mut self.last_call,
                    tc.index,
                    tc.id.as_deref(),
                ) else {
                    continue;
                };
                let slot = &mut self.tool_calls[idx];
                if let Some(id) = &tc.id {
                    slot.id = id.to_string();
                }
                if let Some(f) = &tc.function {
                    if let Some(n) = &f.name {
                        bound.push(&mut slot.name, n);
                    }
                    if let Some(a) = &f.arguments {
                        bound.push(&mut slot.arguments, a);
                    }
                }
            }
        }
        if let Some(t) = &c0.text {
            bound.push(&mut self.content, t);
        }
        if let Some(f) = &c0.finish_reason {
            self.finish_reason = Some(f.to_string());
        }
    }

    fn read_common(&mut self, v: &Value) {
        self.read_parts(
            v.get("model").and_then(Value::as_str),
            v.get("system_fingerprint").and_then(Value::as_str),
            v.get("usage").filter(|u| u.is_object()),
        );
    }

    fn read_parts(
        &mut self,
        model: Option<&str>,
        fingerprint: Option<&str>,
        usage: Option<&Value>,
    ) {
        // Every chunk of a stream repeats these: copied only when they change.
        if let Some(m) = model
            && self.model.as_deref() != Some(m)
        {
            self.model = Some(m.to_string());
        }
        if let Some(f) = fingerprint
            && self.system_fingerprint.as_deref() != Some(f)
        {
            self.system_fingerprint = Some(f.to_string());
        }
        if let Some(u) = usage {
            self.usage = Some(Usage::from_openai(u));
        }
    }
}

fn first_choice(v: &Value) -> Option<&Value> {
    v.get("choices")?.as_array()?.first()
}

/// A rough token count for text when a backend reports none: one token per 4 bytes, at least
/// one for non-empty text. Marked as estimated wherever it is used.
pub fn estimate_tokens(texts: &[&str]) -> u64 {
    let bytes: usize = texts.iter().map(|t| t.len()).sum();
    if bytes == 0 {
        0
    } else {
        (bytes as u64).div_ceil(4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Fragments without `index` are told apart by `id`, from the tree and from the view
    /// alike (the log row had one call with both calls' arguments).
    #[test]
    fn unnumbered_tool_calls_are_told_apart_by_id() {
        let chunks = [
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"id":"a","function":{"name":"f","arguments":"{\"x\":"}}]}}]}),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"function":{"arguments":"1}"}}]}}]}),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"id":"b","function":{"name":"g","arguments":"{}"}}]}}]}),
        ];
        let mut tree = ResponseSummary::default();
        let mut view = ResponseSummary::default();
        for c in &chunks {
            tree.add_chunk(c);
            let text = c.to_string();
            view.add_view(&ChunkView::parse(text.as_bytes()).unwrap());
        }
        let got: Vec<(&str, &str, &str)> = tree
            .tool_calls
            .iter()
            .map(|t| (t.id.as_str(), t.name.as_str(), t.arguments.as_str()))
            .collect();
        assert_eq!(got, vec![("a", "f", "{\"x\":1}"), ("b", "g", "{}")]);
        assert_eq!(tree.tool_calls, view.tool_calls);
    }

    /// An index on a call's first fragment only: the rest continue that call (as the bridges
    /// read it, `bridge::tool_order`).
    #[test]
    fn a_fragment_without_index_continues_the_last_call() {
        let mut s = ResponseSummary::default();
        s.add_chunk(&json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"a","function":{"name":"f","arguments":"{\"x\":"}}]}}]}));
        s.add_chunk(&json!({"choices":[{"index":0,"delta":{"tool_calls":[{"function":{"arguments":"1}"}}]}}]}));
        assert_eq!(s.tool_calls.len(), 2);
        assert_eq!(s.tool_calls[1].arguments, "{\"x\":1}");
        assert_eq!(s.tool_calls[0].arguments, "");
    }

    #[test]
    fn assembles_stream_deltas_and_tool_calls() {
        let mut s = ResponseSummary::default();
        s.add_chunk(&json!({"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"He"}}]}));
        s.add_chunk(&json!({"choices":[{"index":0,"delta":{"content":"llo"}}]}));
        s.add_chunk(&json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"b","function":{"name":"g","arguments":"{\"y\""}}]}}]}));
        s.add_chunk(&json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{}"}}]}}]}));
        s.add_chunk(&json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":":1}"}}]}}]}));
        s.add_chunk(&json!({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}));
        s.add_chunk(&json!({"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}));
        assert_eq!(s.content, "Hello");
        assert_eq!(s.tool_calls[0].name, "f");
        assert_eq!(s.tool_calls[1].arguments, "{\"y\":1}");
        assert_eq!(s.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(s.usage, Some(Usage::new(3, 4)));
        assert_eq!(s.model.as_deref(), Some("m"));
    }

    /// Past the bound nothing more is gathered (cut at a character boundary), but the finish
    /// reason and usage at the stream's end still are, and the estimate counts everything.
    #[test]
    fn a_bounded_summary_stops_gathering_and_keeps_the_end() {
        let mut s = ResponseSummary {
            bound: TextBound::of(10),
            ..Default::default()
        };
        s.add_chunk(&json!({"choices":[{"index":0,"delta":{"content":"abcdefgh"}}]}));
        assert!(!s.bound.truncated);
        // 2 bytes of room: "x" fits, "é" (2 bytes) would not.
        s.add_chunk(&json!({"choices":[{"index":0,"delta":{"content":"xéz"}}]}));
        s.add_chunk(&json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{}"}}]}}]}));
        s.add_chunk(&json!({"choices":[{"index":0,"delta":{"content":"more"}}]}));
        s.add_chunk(&json!({"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}));
        s.add_chunk(&json!({"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":9,"total_tokens":12}}));
        assert_eq!(s.content, "abcdefghx");
        assert_eq!(s.tool_calls[0].id, "a");
        assert_eq!(
            (
                s.tool_calls[0].name.as_str(),
                s.tool_calls[0].arguments.as_str()
            ),
            ("f", "")
        );
        assert!(s.bound.truncated);
        assert_eq!((s.bound.kept, s.bound.seen), (10, 8 + 4 + 1 + 2 + 4));
        assert_eq!(s.finish_reason.as_deref(), Some("length"));
        assert_eq!(s.usage, Some(Usage::new(3, 9)));
        assert_eq!(s.estimate_completion_tokens(), 5);
        assert_eq!(floor_char_boundary("aé", 2), 1);
        assert_eq!(floor_char_boundary("aé", 9), 3);
    }

    #[test]
    fn estimates() {
        assert_eq!(estimate_tokens(&[]), 0);
        assert_eq!(estimate_tokens(&["a"]), 1);
        assert_eq!(estimate_tokens(&["abcd", "efghi"]), 3);
    }

    mod view_agrees {
        //! `add_view` against `add_chunk` over generated chunks: usual shapes and odd ones
        //! (numbers or `null` where text belongs, `choices` not a list, float indexes). Each
        //! chunk goes through the view when it parses and through the tree otherwise, as in
        //! the gateway; the summary must equal the tree-only one.
        use super::*;
        use proptest::prelude::*;

        fn obj(fields: Vec<(&str, Option<Value>)>) -> Value {
            let mut m = serde_json::Map::new();
            for (k, v) in fields {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            Value::Object(m)
        }

        fn text() -> impl Strategy<Value = Value> {
            prop_oneof![
                6 => "[a-z\"\\\\é ]{0,6}".prop_map(Value::from),
                1 => Just(Value::Null),
                1 => (0u32..3).prop_map(Value::from),
            ]
        }

        fn tool_call() -> impl Strategy<Value = Value> {
            let index = prop_oneof![
                4 => (0u64..3).prop_map(Value::from),
                1 => Just(json!(1.0)),
                1 => Just(json!(-1)),
                1 => Just(json!(5000)),
            ];
            let function = prop_oneof![
                4 => (proptest::option::of(text()), proptest::option::of(text()))
                    .prop_map(|(n, a)| obj(vec![("name", n), ("arguments", a)])),
                1 => Just(Value::Null),
                1 => Just(json!("f")),
            ];
            (
                proptest::option::of(index),
                proptest::option::of(text()),
                proptest::option::of(function),
            )
                .prop_map(|(i, id, f)| obj(vec![("index", i), ("id", id), ("function", f)]))
        }

        fn choice() -> impl Strategy<Value = Value> {
            let calls = prop_oneof![
                4 => proptest::collection::vec(tool_call(), 0..3).prop_map(Value::Array),
                1 => Just(Value::Null),
                1 => Just(json!({})),
            ];
            let delta = prop_oneof![
                4 => (proptest::option::of(text()), proptest::option::of(calls)).prop_map(
                    |(c, t)| obj(vec![("role", Some(json!("assistant"))), ("content", c), ("tool_calls", t)])
                ),
                1 => Just(Value::Null),
                1 => Just(json!("d")),
            ];
            (
                proptest::option::of(delta),
                proptest::option::of(text()),
                proptest::option::of(text()),
            )
                .prop_map(|(d, t, f)| {
                    obj(vec![
                        ("index", Some(json!(0))),
                        ("delta", d),
                        ("text", t),
                        ("finish_reason", f),
                        ("logprobs", Some(Value::Null)),
                    ])
                })
        }

        fn chunk() -> impl Strategy<Value = Value> {
            let usage = prop_oneof![
                Just(Value::Null),
                Just(json!({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3})),
                Just(json!(7)),
            ];
            let choices = prop_oneof![
                6 => proptest::collection::vec(choice(), 0..3).prop_map(Value::Array),
                1 => Just(Value::Null),
                1 => Just(json!({})),
            ];
            (
                proptest::option::of(text()),
                proptest::option::of(text()),
                proptest::option::of(usage),
                proptest::option::of(choices),
            )
                .prop_map(|(m, f, u, c)| {
                    obj(vec![
                        ("id", Some(json!("c"))),
                        ("model", m),
                        ("system_fingerprint", f),
                        ("usage", u),
                        ("choices", c),
                    ])
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]
            #[test]
            fn the_view_and_the_tree_give_the_same_summary(
                chunks in proptest::collection::vec(chunk(), 1..5),
                limit in prop_oneof![Just(None), (0usize..12).prop_map(Some)],
            ) {
                let bound = TextBound { limit, ..Default::default() };
                let mut tree = ResponseSummary { bound, ..Default::default() };
                let mut mixed = ResponseSummary { bound, ..Default::default() };
                for c in &chunks {
                    tree.add_chunk(c);
                    let text = serde_json::to_vec(c).unwrap();
                    match ChunkView::parse(&text) {
                        Some(v) => mixed.add_view(&v),
                        None => mixed.add_chunk(c),
                    }
                }
                prop_assert_eq!(mixed, tree);
            }
        }

        /// The usual chunks of a chat stream all go through the view.
        #[test]
        fn usual_chunks_parse() {
            for c in [
                json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"f","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}),
                json!({"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t","type":"function","function":{"name":"f","arguments":""}}]}}]}),
                json!({"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}),
                json!({"id":"c","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}),
            ] {
                assert!(
                    ChunkView::parse(&serde_json::to_vec(&c).unwrap()).is_some(),
                    "{c}"
                );
            }
        }
    }
}

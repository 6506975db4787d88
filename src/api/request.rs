//! The request a provider receives, whatever the inbound route: which endpoint it came in on
//! and the typed body.

use super::native::NativeRequest;
use super::visit::{Leaf, Visit, visit};
use super::{ChatCompletionRequest, GenericRequest};

/// Which OpenAI endpoint a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /v1/chat/completions`
    ChatCompletions,
    /// `POST /v1/completions`
    Completions,
    /// `POST /v1/embeddings`
    Embeddings,
}

impl Endpoint {
    /// The path under `/v1`, e.g. `/chat/completions`.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/chat/completions",
            Endpoint::Completions => "/completions",
            Endpoint::Embeddings => "/embeddings",
        }
    }

    /// OpenTelemetry GenAI `gen_ai.operation.name`.
    pub fn operation(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat",
            Endpoint::Completions => "text_completion",
            Endpoint::Embeddings => "embeddings",
        }
    }
}

/// The typed request a provider translates.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestBody {
    /// A chat completion.
    /// Boxed: the request moves through the handler, the gateway and their futures as a
    /// pointer (the struct is ~650 bytes).
    Chat(Box<ChatCompletionRequest>),
    /// A legacy completion or an embeddings request.
    Generic(GenericRequest),
    /// A Messages or Responses request: native body and chat translation (see
    /// [`super::native`]).
    Native(Box<NativeRequest>),
}

impl RequestBody {
    /// The client-facing model name.
    pub fn model(&self) -> &str {
        match self {
            RequestBody::Chat(r) => &r.model,
            RequestBody::Generic(r) => &r.model,
            RequestBody::Native(r) => r.model(),
        }
    }

    /// Whether the client asked for a stream.
    pub fn is_stream(&self) -> bool {
        match self {
            RequestBody::Chat(r) => r.is_stream(),
            RequestBody::Generic(r) => r.is_stream(),
            RequestBody::Native(r) => r.is_stream(),
        }
    }

    /// Whether the answer asked for holds more than a log row keeps (text, tool calls,
    /// finish reason, usage of one choice): log probabilities, several choices, audio. Such a
    /// request is not answered from the response cache, which would drop the rest.
    pub fn asks_more_than_a_row_keeps(&self) -> bool {
        let set = |v: Option<&serde_json::Value>| {
            v.is_some_and(|v| !v.is_null() && *v != serde_json::Value::Bool(false))
        };
        self.completions() > 1
            || match self {
                RequestBody::Chat(r) => {
                    r.logprobs == Some(true)
                        || r.top_logprobs.is_some()
                        || set(r.extra.get("audio"))
                        || set(r.extra.get("modalities"))
                }
                RequestBody::Generic(r) => set(r.extra.get("logprobs")),
                RequestBody::Native(_) => false,
            }
    }

    /// Whether the client asked for the trailing usage chunk.
    pub fn wants_stream_usage(&self) -> bool {
        match self {
            RequestBody::Chat(r) => r.wants_stream_usage(),
            RequestBody::Generic(r) => r.wants_stream_usage(),
            // A bridged route's chat stream: the translation asks for usage.
            RequestBody::Native(r) => r.bridged.as_ref().is_ok_and(|c| c.wants_stream_usage()),
        }
    }

    /// The completion-token cap the client asked for (`max_completion_tokens`, else
    /// `max_tokens`), when any.
    pub fn max_output_tokens(&self) -> Option<u64> {
        match self {
            RequestBody::Chat(r) => r.max_output_tokens().map(u64::from),
            RequestBody::Generic(r) => r
                .extra
                .get("max_completion_tokens")
                .or_else(|| r.extra.get("max_tokens"))
                .and_then(serde_json::Value::as_u64),
            RequestBody::Native(r) => r.max_output_tokens(),
        }
    }

    /// How many completions the backend generates for this body, each up to
    /// [`RequestBody::max_output_tokens`]: chat `n`; legacy completions the larger of `n` and
    /// `best_of` (the backend generates `best_of` and returns `n`); 1 otherwise (Messages and
    /// Responses have no such field). A missing, zero or non-integer value counts as 1.
    pub fn completions(&self) -> u64 {
        match self {
            RequestBody::Chat(r) => u64::from(r.n.unwrap_or(1).max(1)),
            RequestBody::Generic(r) => ["n", "best_of"]
                .iter()
                .filter_map(|k| r.extra.get(*k).and_then(serde_json::Value::as_u64))
                .fold(1, u64::max),
            RequestBody::Native(_) => 1,
        }
    }

    /// The end user the body names: chat `user`, Messages `metadata.user_id`, Responses
    /// `user`.
    pub fn user(&self) -> Option<String> {
        match self {
            RequestBody::Chat(r) => r.user.clone(),
            RequestBody::Generic(r) => r
                .extra
                .get("user")
                .and_then(|u| u.as_str())
                .map(str::to_string),
            RequestBody::Native(r) => r.user(),
        }
    }

    /// The conversation's texts, in order: message content and text parts, tool-call
    /// arguments, `prompt`, `input` (the [`Leaf::Content`] leaves of [`super::visit`]).
    pub fn texts(&self) -> Vec<&str> {
        let mut t = Texts(Vec::new());
        visit(self, &mut t);
        t.0
    }
}

impl RequestBody {
    /// The input tokens a backend will count for this request, estimated before it is sent
    /// (admission, token limits, budget reservations, `when.prompt_tokens`, token counting):
    /// one token per 4 bytes of every string and object key the model reads — tool
    /// definitions, schemas, `response_format` and unknown fields as well as the
    /// conversation ([`RequestBody::texts`] alone left a 40,000-character tool description
    /// out of every reservation). Numbers (sampling parameters, mostly) and binary payloads
    /// (images, files, audio) are not counted.
    pub fn prompt_estimate(&self) -> u64 {
        struct Bytes(usize);
        impl Visit<'_> for Bytes {
            fn text(&mut self, _: &str, _: Leaf, text: &str) {
                self.0 += text.len();
            }
            fn key(&mut self, path: &str, key: &str) {
                // Keys inside values (schema properties, metadata), not the request's own
                // field names (an untyped request's top level: `max_tokens`, `best_of`).
                if path.contains(['.', '[']) {
                    self.0 += key.len();
                }
            }
        }
        let mut b = Bytes(0);
        visit(self, &mut b);
        (b.0 as u64).div_ceil(4)
    }
}

impl ChatCompletionRequest {
    /// The conversation's texts, as [`RequestBody::texts`] gives them for a chat body.
    pub fn texts(&self) -> Vec<&str> {
        let mut t = Texts(Vec::new());
        super::visit::visit_chat(self, &mut t);
        t.0
    }
}

/// Collects the [`Leaf::Content`] strings.
struct Texts<'a>(Vec<&'a str>);

impl<'a> Visit<'a> for Texts<'a> {
    fn text(&mut self, _: &str, leaf: Leaf, text: &'a str) {
        if leaf == Leaf::Content {
            self.0.push(text);
        }
    }
}

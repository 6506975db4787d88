//! What a provider's stream is made of: [`Chunk`]s (an OpenAI chunk object, with the
//! upstream's exact bytes while nothing rewrites it) in a [`ChunkStream`], and
//! [`complete_as_stream`] for a server that answers a streaming request with one document.

use crate::api::ApiError;
use crate::api::chat_delta::ChatDelta;
use crate::api::chunk_view::{ChunkView, ViewedChunk};
use bytes::Bytes;
use futures_util::Stream;
use serde_json::Value;
use std::pin::Pin;

/// A stream of OpenAI chunk objects (`chat.completion.chunk` or `text_completion`), ending
/// after the last chunk (no `[DONE]` item). An `Err` item is a failure the client must see;
/// the stream yields nothing after it.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<Chunk, ApiError>> + Send>>;

/// One chunk of a stream: the chunk object and, when the upstream sent it as one line of
/// OpenAI-shaped JSON, those exact bytes. The client then gets the same bytes when nothing
/// in the chunk is rewritten (see `gateway::stream`); anything that changes the object goes
/// through [`Chunk::rewritten`], which drops them. A usual chunk of an OpenAI stream comes
/// as `viewed`: its text with its borrowed view ([`crate::api::chunk_view`]), never parsed
/// into a tree unless [`Chunk::json_mut`] asks for it.
#[derive(Debug)]
pub struct Chunk {
    /// The chunk object; `None` until asked for when the chunk came `viewed`.
    pub json: Option<Value>,
    /// The upstream's JSON text of exactly the object (one line, no `\r` or `\n`), if any.
    pub raw: Option<Bytes>,
    /// The upstream's text with its view; then `json` and `raw` start as `None`.
    pub viewed: Option<ViewedChunk>,
}

impl Clone for Chunk {
    /// A copy; a `viewed` chunk's view is taken again from the copied text.
    fn clone(&self) -> Self {
        Chunk {
            json: self.json.clone(),
            raw: self.raw.clone(),
            viewed: self
                .viewed
                .as_ref()
                .map(|v| crate::api::chunk_view::viewed(v.backing_cart().clone())),
        }
    }
}

impl PartialEq for Chunk {
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json && self.text() == other.text()
    }
}

impl From<Value> for Chunk {
    /// A chunk made by Sluice (translated or restored): no upstream bytes.
    fn from(json: Value) -> Self {
        Chunk {
            json: Some(json),
            raw: None,
            viewed: None,
        }
    }
}

impl Chunk {
    /// A usual chunk as it came (see [`crate::api::chunk_view::viewed`]); its view must be
    /// `Some`.
    pub fn from_viewed(viewed: ViewedChunk) -> Self {
        Chunk {
            json: None,
            raw: None,
            viewed: Some(viewed),
        }
    }

    /// The upstream's exact text of the chunk, when kept.
    pub fn text(&self) -> Option<&[u8]> {
        match (&self.raw, &self.viewed) {
            (Some(raw), _) => Some(raw),
            (None, Some(v)) => Some(v.backing_cart().as_bytes()),
            (None, None) => None,
        }
    }

    /// The upstream's exact text as bytes to send (a copy when it came `viewed`).
    pub fn raw_bytes(&self) -> Option<Bytes> {
        match (&self.raw, &self.viewed) {
            (Some(raw), _) => Some(raw.clone()),
            (None, Some(v)) => Some(Bytes::copy_from_slice(v.backing_cart().as_bytes())),
            (None, None) => None,
        }
    }

    /// The view the chunk came with, if any.
    pub fn view(&self) -> Option<&ChunkView<'_>> {
        self.viewed.as_ref()?.get().as_ref()
    }

    /// What a dialect translator reads of the chunk: from its view when it came with one,
    /// else from its object (see [`crate::api::chat_delta`]); an empty delta for a chunk
    /// that has neither (never made by a provider).
    pub fn delta(&self) -> ChatDelta<'_> {
        match (self.view(), &self.json) {
            (Some(view), _) => ChatDelta::from_view(view),
            (None, Some(json)) => ChatDelta::from_tree(json),
            (None, None) => ChatDelta::default(),
        }
    }

    /// The chunk object, parsed from its text the first time it is asked for.
    pub fn json_mut(&mut self) -> &mut Value {
        if self.json.is_none() {
            let parsed = self
                .text()
                .and_then(|t| crate::api::json::from_bytes(t).ok())
                .unwrap_or(Value::Null);
            self.json = Some(parsed);
        }
        self.json.get_or_insert(Value::Null)
    }

    /// The chunk object to change in place: the upstream's text is dropped, so the chunk is
    /// encoded again from the object.
    pub fn rewritten(&mut self) -> &mut Value {
        self.json_mut();
        self.raw = None;
        self.viewed = None;
        self.json.get_or_insert(Value::Null)
    }

    /// The chunk object (see [`Chunk::json_mut`]).
    pub fn into_json(mut self) -> Value {
        self.json_mut();
        self.json.unwrap_or(Value::Null)
    }
}

/// Turns a whole chat or text completion into the chunks a stream of it would have had: one
/// content chunk per choice (with `role`, text and indexed tool calls), one finish chunk per
/// choice, and a usage-only chunk when the body has `usage`. Used when a server answers a
/// streaming request with one JSON document.
pub fn complete_as_stream(json: Value) -> ChunkStream {
    let chunks = completion_to_chunks(&json);
    Box::pin(futures_util::stream::iter(
        chunks.into_iter().map(|c| Ok(Chunk::from(c))),
    ))
}

fn completion_to_chunks(json: &Value) -> Vec<Value> {
    let is_chat = json.get("object").and_then(Value::as_str) != Some("text_completion");
    let object = if is_chat {
        "chat.completion.chunk"
    } else {
        "text_completion"
    };
    let base = |choices: Value| {
        serde_json::json!({
            "id": json.get("id").cloned().unwrap_or(Value::Null),
            "object": object,
            "created": json.get("created").cloned().unwrap_or(Value::from(0)),
            "model": json.get("model").cloned().unwrap_or(Value::Null),
            "choices": choices,
        })
    };
    let mut out = Vec::new();
    let empty = Vec::new();
    let choices = json
        .get("choices")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    for (i, c) in choices.iter().enumerate() {
        let index = c.get("index").cloned().unwrap_or(Value::from(i));
        let finish = c.get("finish_reason").cloned().unwrap_or(Value::Null);
        if is_chat {
            let msg = c.get("message").cloned().unwrap_or(Value::Null);
            let mut delta = serde_json::Map::new();
            delta.insert("role".into(), Value::from("assistant"));
            delta.insert(
                "content".into(),
                msg.get("content").cloned().unwrap_or(Value::Null),
            );
            if let Some(Value::Array(calls)) = msg.get("tool_calls") {
                let indexed: Vec<Value> = calls
                    .iter()
                    .enumerate()
                    .map(|(k, tc)| {
                        let mut tc = tc.clone();
                        if let Value::Object(m) = &mut tc {
                            m.insert("index".into(), Value::from(k));
                        }
                        tc
                    })
                    .collect();
                delta.insert("tool_calls".into(), Value::Array(indexed));
            }
            out.push(base(
                serde_json::json!([{"index": index, "delta": delta, "finish_reason": null}]),
            ));
            out.push(base(
                serde_json::json!([{"index": index, "delta": {}, "finish_reason": finish}]),
            ));
        } else {
            let text = c.get("text").cloned().unwrap_or(Value::from(""));
            out.push(base(
                serde_json::json!([{"index": index, "text": text, "finish_reason": finish}]),
            ));
        }
    }
    if let Some(usage) = json.get("usage").filter(|u| !u.is_null()) {
        let mut u = base(Value::Array(Vec::new()));
        if let Value::Object(m) = &mut u {
            m.insert("usage".into(), usage.clone());
        }
        out.push(u);
    }
    out
}

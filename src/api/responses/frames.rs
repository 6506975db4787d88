//! Responses stream events as SSE bytes: `event: <type>\ndata: <json>\n\n`.
//!
//! The JSON is written field by field into one buffer: the same bytes as the derived
//! (flattened, tagged) `Serialize` of [`StreamFrame`], which goes through serde's slower map
//! path for every field and escapes every key (test `the_fast_encoding_is_the_derived_one`,
//! one event of every kind).

use bytes::Bytes;
use serde::Serialize;

use super::events::{StreamEvent, StreamFrame};

impl StreamFrame {
    /// The SSE frame: `event: <type>\ndata: <json>\n\n`.
    ///
    /// The JSON is written field by field into one buffer: the same bytes as the derived
    /// (flattened, tagged) encoding, which goes through serde's slower map path for every
    /// field and escapes every key (test `the_fast_encoding_is_the_derived_one`, every kind
    /// of event).
    pub fn to_sse(&self) -> Bytes {
        let kind = self.event.kind();
        let mut out = open_frame(kind, 256);
        if !write_fields(&self.event, &mut out) {
            // Not reachable with a `Vec` writer; kept so a failure is still a JSON object.
            out = open_frame(kind, 256);
        }
        close_frame(out, self.sequence_number)
    }
}

/// The SSE frame of an event that carries only the Response object (`response.created`,
/// `response.in_progress`, `response.completed`, …), from that object's JSON `response`
/// (as `serde_json` writes a [`ResponseObject`]): the same bytes as [`StreamFrame::to_sse`],
/// without encoding the object again for each event that repeats it.
pub fn response_frame(kind: &'static str, response: &[u8], sequence_number: u64) -> Bytes {
    let mut out = open_frame(kind, response.len() + 96);
    out.extend_from_slice(b",\"response\":");
    out.extend_from_slice(response);
    close_frame(out, sequence_number)
}

/// `event: <kind>\ndata: {"type":"<kind>"`
fn open_frame(kind: &str, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: {\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.push(b'"');
    out
}

/// `,"sequence_number":<n>}\n\n`
fn close_frame(mut out: Vec<u8>, sequence_number: u64) -> Bytes {
    out.extend_from_slice(b",\"sequence_number\":");
    out.extend_from_slice(itoa::Buffer::new().format(sequence_number).as_bytes());
    out.extend_from_slice(b"}\n\n");
    Bytes::from(out)
}

/// Writes `,"<key>":<value>` pairs after an open JSON object. Keys are Sluice's own
/// constants (plain ASCII, nothing to escape); values are written by `serde_json`.
struct Fields<'a> {
    out: &'a mut Vec<u8>,
    ok: bool,
}

impl Fields<'_> {
    fn key(&mut self, key: &str) -> &mut Self {
        self.out.extend_from_slice(b",\"");
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self
    }

    fn num(&mut self, key: &str, n: usize) -> &mut Self {
        self.key(key);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        self
    }

    /// `"item_id"` and `"output_index"`, which most events start with.
    fn item(&mut self, item_id: &str, output_index: usize) -> &mut Self {
        self.val("item_id", item_id)
            .num("output_index", output_index)
    }

    fn val<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> &mut Self {
        self.key(key);
        self.ok &= serde_json::to_writer(&mut *self.out, value).is_ok();
        self
    }
}

/// Writes `event`'s fields after `type`, in the derived order; false when a value could not be
/// encoded.
fn write_fields(event: &StreamEvent, out: &mut Vec<u8>) -> bool {
    use StreamEvent::*;
    let mut f = Fields { out, ok: true };
    match event {
        Created { response }
        | InProgress { response }
        | Completed { response }
        | Incomplete { response }
        | Failed { response } => f.val("response", response),
        OutputItemAdded { output_index, item } | OutputItemDone { output_index, item } => {
            f.num("output_index", *output_index).val("item", item)
        }
        ContentPartAdded {
            item_id,
            output_index,
            content_index,
            part,
        }
        | ContentPartDone {
            item_id,
            output_index,
            content_index,
            part,
        } => f
            .item(item_id, *output_index)
            .num("content_index", *content_index)
            .val("part", part),
        OutputTextDelta {
            item_id,
            output_index,
            content_index,
            delta: text,
            logprobs,
        } => f
            .item(item_id, *output_index)
            .num("content_index", *content_index)
            .val("delta", text)
            .val("logprobs", logprobs),
        OutputTextDone {
            item_id,
            output_index,
            content_index,
            text,
            logprobs,
        } => f
            .item(item_id, *output_index)
            .num("content_index", *content_index)
            .val("text", text)
            .val("logprobs", logprobs),
        FunctionCallArgumentsDelta {
            item_id,
            output_index,
            delta,
        }
        | CustomToolCallInputDelta {
            item_id,
            output_index,
            delta,
        } => f.item(item_id, *output_index).val("delta", delta),
        FunctionCallArgumentsDone {
            item_id,
            output_index,
            name,
            arguments,
        } => f
            .item(item_id, *output_index)
            .val("name", name)
            .val("arguments", arguments),
        CustomToolCallInputDone {
            item_id,
            output_index,
            input,
        } => f.item(item_id, *output_index).val("input", input),
        ReasoningSummaryPartAdded {
            item_id,
            output_index,
            summary_index,
            part,
        }
        | ReasoningSummaryPartDone {
            item_id,
            output_index,
            summary_index,
            part,
        } => f
            .item(item_id, *output_index)
            .num("summary_index", *summary_index)
            .val("part", part),
        ReasoningSummaryTextDelta {
            item_id,
            output_index,
            summary_index,
            delta,
        } => f
            .item(item_id, *output_index)
            .num("summary_index", *summary_index)
            .val("delta", delta),
        ReasoningSummaryTextDone {
            item_id,
            output_index,
            summary_index,
            text,
        } => f
            .item(item_id, *output_index)
            .num("summary_index", *summary_index)
            .val("text", text),
        Error {
            code,
            message,
            param,
        } => f
            .val("code", code)
            .val("message", message)
            .val("param", param),
    };
    f.ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::responses::{OutputContent, OutputItem, ResponseObject, SummaryPart};

    #[test]
    fn a_frame_names_its_type_twice_and_carries_the_sequence_number() {
        let f = StreamFrame {
            event: StreamEvent::OutputTextDelta {
                item_id: "msg_1".into(),
                output_index: 0,
                content_index: 0,
                delta: "Hi".into(),
                logprobs: vec![],
            },
            sequence_number: 3,
        };
        assert_eq!(
            f.to_sse(),
            Bytes::from(
                "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hi\",\"logprobs\":[],\"sequence_number\":3}\n\n"
            )
        );
    }

    fn a_response() -> ResponseObject {
        let req: super::super::ResponsesRequest = serde_json::from_value(serde_json::json!({
            "model": "m", "input": "hi", "instructions": "be \"terse\"",
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
            "metadata": {"k": "v"}
        }))
        .unwrap();
        let mut response = ResponseObject::start("resp_1", 7, &req);
        response
            .output
            .push(OutputItem::Message(super::super::output::OutputMessage {
                id: "msg_1".into(),
                status: "completed".into(),
                role: "assistant".into(),
                content: vec![text_part("a \"quoted\" line\n")],
            }));
        response
    }

    fn text_part(text: &str) -> OutputContent {
        OutputContent::OutputText {
            text: text.into(),
            annotations: vec![],
            logprobs: vec![],
        }
    }

    /// One event of every kind, with strings that need escaping.
    fn every_kind_of_event() -> Vec<StreamEvent> {
        use StreamEvent::*;
        let response = a_response();
        let item = response.output[0].clone();
        let id = || "msg_\"1\u{e9}\u{1}".to_string();
        let part = SummaryPart {
            kind: "summary_text".into(),
            text: "th\\ink".into(),
        };
        vec![
            Created {
                response: response.clone(),
            },
            InProgress {
                response: response.clone(),
            },
            Completed {
                response: response.clone(),
            },
            Incomplete {
                response: response.clone(),
            },
            Failed { response },
            OutputItemAdded {
                output_index: 0,
                item: item.clone(),
            },
            OutputItemDone {
                output_index: 12,
                item,
            },
            ContentPartAdded {
                item_id: id(),
                output_index: 1,
                content_index: 0,
                part: text_part(""),
            },
            ContentPartDone {
                item_id: id(),
                output_index: 1,
                content_index: 3,
                part: OutputContent::Refusal {
                    refusal: "no".into(),
                },
            },
            OutputTextDelta {
                item_id: id(),
                output_index: 2,
                content_index: 0,
                delta: "line\nnext \u{1F600}".into(),
                logprobs: vec![],
            },
            OutputTextDone {
                item_id: id(),
                output_index: 2,
                content_index: 0,
                text: "all\ttext".into(),
                logprobs: vec![serde_json::json!({"token": "a", "logprob": -0.5})],
            },
            FunctionCallArgumentsDelta {
                item_id: "fc_1".into(),
                output_index: 1,
                delta: "{\"a\":".into(),
            },
            FunctionCallArgumentsDone {
                item_id: "fc_1".into(),
                output_index: 1,
                name: "f".into(),
                arguments: "{\"a\":1}".into(),
            },
            CustomToolCallInputDelta {
                item_id: "ctc_1".into(),
                output_index: 4,
                delta: "*** Begin Patch\n".into(),
            },
            CustomToolCallInputDone {
                item_id: "ctc_1".into(),
                output_index: 4,
                input: "*** Begin Patch\n*** End Patch".into(),
            },
            ReasoningSummaryPartAdded {
                item_id: id(),
                output_index: 0,
                summary_index: 0,
                part: part.clone(),
            },
            ReasoningSummaryPartDone {
                item_id: id(),
                output_index: 0,
                summary_index: 5,
                part,
            },
            ReasoningSummaryTextDelta {
                item_id: id(),
                output_index: 0,
                summary_index: 0,
                delta: "hm".into(),
            },
            ReasoningSummaryTextDone {
                item_id: id(),
                output_index: 0,
                summary_index: 0,
                text: "hm, so".into(),
            },
            Error {
                code: None,
                message: "m \"x\"".into(),
                param: None,
            },
            Error {
                code: Some("rate_limit_exceeded".into()),
                message: "slow down".into(),
                param: Some("model".into()),
            },
        ]
    }

    /// `to_sse` writes exactly what the derived `Serialize` gives, for every kind of event.
    #[test]
    fn the_fast_encoding_is_the_derived_one() {
        let events = every_kind_of_event();
        let mut kinds: Vec<&str> = events.iter().map(StreamEvent::kind).collect();
        kinds.dedup();
        assert_eq!(kinds.len(), 20, "one event of every kind");
        for (n, event) in events.into_iter().enumerate() {
            let f = StreamFrame {
                event,
                sequence_number: [0, 9, 10_000_000_000, u64::MAX][n % 4],
            };
            let derived = serde_json::to_string(&f).unwrap();
            let expected = format!("event: {}\ndata: {derived}\n\n", f.event.kind());
            assert_eq!(f.to_sse(), Bytes::from(expected), "{}", f.event.kind());
        }
    }

    /// A Response object encoded once gives the same frames as each event encoding it.
    #[test]
    fn a_response_frame_from_the_encoded_object_is_the_events_own() {
        let response = a_response();
        let json = serde_json::to_vec(&response).unwrap();
        for (event, kind) in [
            (
                StreamEvent::Created {
                    response: response.clone(),
                },
                "response.created",
            ),
            (
                StreamEvent::InProgress {
                    response: response.clone(),
                },
                "response.in_progress",
            ),
            (StreamEvent::Completed { response }, "response.completed"),
        ] {
            let f = StreamFrame {
                event,
                sequence_number: 41,
            };
            assert_eq!(response_frame(kind, &json, 41), f.to_sse());
        }
    }
}

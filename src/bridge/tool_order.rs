//! Tool calls of a chat stream, put in the order the Messages and Responses streams need: one
//! call after another, each call's fragments together.
//!
//! A chat stream may interleave calls (both calls' headers in one chunk, then each one's
//! arguments; or fragments of call 1 before call 0 is complete), while a Messages stream has one
//! open block at a time and a Responses client acts on each item's `output_item.done`. So the
//! call being streamed (the first one seen) passes through fragment by fragment; a fragment of
//! another call is held back while the streamed call's arguments are not yet a whole JSON
//! value, and the held call is streamed — everything held, then what follows — once they are
//! (or when [`ToolCallOrder::flush`] is called, at the finish reason). A fragment of a call
//! already streamed and left is dropped: its arguments were whole, more would break them.
//!
//! A fragment without `index` belongs to the last such call, unless it names another `id`: a
//! new call then (backends that leave `index` out number nothing, but give each call its id).

use crate::api::chat_delta::ToolCallDelta;

/// One fragment, in order: the call's chat `index` (resolved), its `id` and `name` on the
/// call's first fragment, a piece of its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrderedCall {
    /// The call's chat index (as sent, or given: see the module docs).
    pub index: u64,
    /// `id`, on the call's first fragment.
    pub id: Option<String>,
    /// `function.name`, on the call's first fragment.
    pub name: Option<String>,
    /// A piece of `function.arguments`.
    pub arguments: Option<String>,
}

impl OrderedCall {
    /// As the borrowed fragment the translators read.
    pub fn as_delta(&self) -> ToolCallDelta<'_> {
        ToolCallDelta {
            index: Some(self.index),
            id: self.id.as_deref(),
            name: self.name.as_deref(),
            arguments: self.arguments.as_deref(),
        }
    }
}

#[derive(Debug, Default)]
struct Call {
    index: u64,
    id: Option<String>,
    name: Option<String>,
    /// Arguments held back (not streamed yet).
    held: String,
    /// Where the arguments streamed so far stand as JSON (fed one fragment at a time: no
    /// fragment is read twice).
    streamed: JsonEnd,
    state: State,
}

/// Whether a JSON text fed in pieces is one whole value yet: nesting depth and string state,
/// updated per piece.
#[derive(Debug, Default, Clone, Copy)]
struct JsonEnd {
    started: bool,
    depth: u32,
    in_string: bool,
    escaped: bool,
}

impl JsonEnd {
    fn feed(&mut self, piece: &str) {
        for b in piece.bytes() {
            if self.in_string {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => {}
                b'{' | b'[' => {
                    self.started = true;
                    self.depth = self.depth.saturating_add(1);
                }
                b'}' | b']' => self.depth = self.depth.saturating_sub(1),
                b'"' => {
                    self.started = true;
                    self.in_string = true;
                }
                _ => self.started = true,
            }
        }
    }

    /// A value began and every object, array and string in it is closed.
    fn whole(&self) -> bool {
        self.started && self.depth == 0 && !self.in_string
    }
}

/// The largest call index taken (as the log's summary does: fragments past it are skipped).
const MAX_INDEX: u64 = 1024;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Seen, held back.
    #[default]
    Held,
    /// Being streamed.
    Streaming,
    /// Streamed and left.
    Done,
}

/// The reordering state of one stream (see the module docs).
#[derive(Debug, Default)]
pub struct ToolCallOrder {
    calls: Vec<Call>,
    /// The call of the last fragment.
    last: Option<u64>,
}

impl ToolCallOrder {
    /// The fragments to pass on for `d`, in order (none while it is held back).
    pub fn push(&mut self, d: &ToolCallDelta<'_>) -> Vec<OrderedCall> {
        let Some(index) = self.index_of(d) else {
            return Vec::new();
        };
        let pos = match self.calls.iter().position(|c| c.index == index) {
            Some(pos) => pos,
            None => {
                self.calls.push(Call {
                    index,
                    ..Call::default()
                });
                self.calls.len() - 1
            }
        };
        let call = &mut self.calls[pos];
        if call.id.is_none() {
            call.id = d.id.filter(|s| !s.is_empty()).map(str::to_string);
        }
        if call.name.is_none() {
            call.name = d.name.map(str::to_string);
        }
        let args = d.arguments.unwrap_or("");
        match call.state {
            State::Done => Vec::new(),
            State::Streaming => {
                call.streamed.feed(args);
                vec![OrderedCall {
                    index,
                    arguments: d.arguments.map(str::to_string),
                    ..OrderedCall::default()
                }]
            }
            State::Held => {
                call.held.push_str(args);
                let current = self.calls.iter().position(|c| c.state == State::Streaming);
                match current {
                    Some(c) if !self.calls[c].streamed.whole() => Vec::new(),
                    _ => {
                        if let Some(c) = current {
                            self.calls[c].state = State::Done;
                        }
                        vec![self.stream(pos)]
                    }
                }
            }
        }
    }

    /// Whether the call being streamed has begun but its arguments are not whole yet (text
    /// arriving now must wait: a Messages block cannot open beside an unfinished one).
    pub fn is_mid_call(&self) -> bool {
        self.calls
            .iter()
            .any(|c| c.state == State::Streaming && !c.streamed.whole())
    }

    /// Every held call, in the order first seen, each as one fragment: at the finish reason
    /// (nothing more will come) or the end of the stream.
    pub fn flush(&mut self) -> Vec<OrderedCall> {
        let mut out = Vec::new();
        for pos in 0..self.calls.len() {
            if self.calls[pos].state == State::Held {
                for c in self
                    .calls
                    .iter_mut()
                    .filter(|c| c.state == State::Streaming)
                {
                    c.state = State::Done;
                }
                out.push(self.stream(pos));
            }
        }
        out
    }

    /// Starts streaming the call at `pos`: its header and everything held.
    fn stream(&mut self, pos: usize) -> OrderedCall {
        let call = &mut self.calls[pos];
        call.state = State::Streaming;
        let held = std::mem::take(&mut call.held);
        call.streamed.feed(&held);
        OrderedCall {
            index: call.index,
            id: call.id.clone(),
            name: call.name.clone(),
            arguments: Some(held),
        }
    }

    /// The call a fragment belongs to (see the module docs): its `index`; without one, the
    /// call with its `id`, else a new call when the last one has another `id`, else the last
    /// call (numbered or not); `None` past [`MAX_INDEX`] (skipped).
    fn index_of(&mut self, d: &ToolCallDelta<'_>) -> Option<u64> {
        let id = d.id.filter(|s| !s.is_empty());
        let last = self
            .last
            .and_then(|i| self.calls.iter().find(|c| c.index == i));
        let next = self
            .calls
            .iter()
            .map(|c| c.index.saturating_add(1))
            .max()
            .unwrap_or(0);
        let index = match (d.index, id) {
            (Some(i), _) => i,
            (None, Some(id)) => match self.calls.iter().find(|c| c.id.as_deref() == Some(id)) {
                Some(c) => c.index,
                None if last.is_some_and(|c| c.id.is_some()) => next,
                None => last.map_or(0, |c| c.index),
            },
            (None, None) => last.map_or(0, |c| c.index),
        };
        if index > MAX_INDEX {
            return None;
        }
        self.last = Some(index);
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag<'a>(index: Option<u64>, id: Option<&'a str>, args: &'a str) -> ToolCallDelta<'a> {
        ToolCallDelta {
            index,
            id,
            name: id.map(|_| "get_weather"),
            arguments: Some(args),
        }
    }

    /// Runs `frags` through the order (with a flush at the end) and joins each call's
    /// arguments as the translators would see them; also checks that calls come one after
    /// another (no fragment of a call after another call started).
    fn run(frags: &[ToolCallDelta<'_>]) -> Vec<(u64, Option<String>, String)> {
        let mut order = ToolCallOrder::default();
        let mut out: Vec<OrderedCall> = frags.iter().flat_map(|f| order.push(f)).collect();
        out.extend(order.flush());
        let mut calls: Vec<(u64, Option<String>, String)> = Vec::new();
        for o in out {
            match calls.last_mut() {
                Some(last) if last.0 == o.index => {
                    assert!(o.id.is_none(), "a header in the middle of a call");
                    last.2.push_str(o.arguments.as_deref().unwrap_or(""));
                }
                _ => {
                    assert!(
                        calls.iter().all(|c| c.0 != o.index),
                        "call {} came back after another started",
                        o.index
                    );
                    calls.push((o.index, o.id, o.arguments.unwrap_or_default()));
                }
            }
        }
        calls
    }

    /// Found by an attacker test: both headers in one chunk, then each call's arguments. The
    /// Messages bridge sent call 0's arguments to a closed block (`{}{"city":"Paris"}`); the
    /// Responses bridge's done events said `{}` while the final response had the arguments.
    #[test]
    fn interleaved_calls_come_out_one_after_another_whole() {
        let calls = run(&[
            frag(Some(0), Some("call_a"), ""),
            frag(Some(1), Some("call_b"), ""),
            frag(Some(0), None, "{\"city\":\"Paris\"}"),
            frag(Some(1), None, "{\"city\":\"Rome\"}"),
        ]);
        assert_eq!(
            calls,
            vec![
                (0, Some("call_a".into()), "{\"city\":\"Paris\"}".into()),
                (1, Some("call_b".into()), "{\"city\":\"Rome\"}".into()),
            ]
        );
        // Fragments of both, alternating, then more of the first.
        let calls = run(&[
            frag(Some(0), Some("a"), "{\"x\":"),
            frag(Some(1), Some("b"), "{\"y\":"),
            frag(Some(0), None, "1}"),
            frag(Some(1), None, "2}"),
            frag(Some(2), Some("c"), "{}"),
        ]);
        assert_eq!(
            calls,
            vec![
                (0, Some("a".into()), "{\"x\":1}".into()),
                (1, Some("b".into()), "{\"y\":2}".into()),
                (2, Some("c".into()), "{}".into()),
            ]
        );
    }

    /// Calls one after another (what backends usually send) pass through fragment by
    /// fragment, nothing held.
    #[test]
    fn sequential_calls_stream_as_they_come() {
        let mut order = ToolCallOrder::default();
        assert_eq!(order.push(&frag(Some(0), Some("a"), "{\"x\"")).len(), 1);
        assert_eq!(order.push(&frag(Some(0), None, ":1}")).len(), 1);
        let next = order.push(&frag(Some(1), Some("b"), "{"));
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].id.as_deref(), Some("b"));
        assert_eq!(order.flush(), vec![]);
    }

    /// Found by a review: an index on a call's first fragment only (the rest carry none)
    /// continues that call; an id seen before is its call again; a huge index is skipped
    /// (it overflowed), as the log's summary skips it.
    #[test]
    fn fragments_without_index_continue_the_call_they_belong_to() {
        let calls = run(&[frag(Some(0), Some("a"), "{\"x\":"), frag(None, None, "1}")]);
        assert_eq!(calls, vec![(0, Some("a".into()), "{\"x\":1}".into())]);
        let calls = run(&[
            frag(None, Some("a"), "{\"x\":"),
            frag(None, Some("b"), "{}"),
            frag(None, Some("a"), "1}"),
        ]);
        assert_eq!(
            calls,
            vec![
                (0, Some("a".into()), "{\"x\":1}".into()),
                (1, Some("b".into()), "{}".into()),
            ]
        );
        let calls = run(&[
            frag(Some(u64::MAX), Some("z"), "{}"),
            frag(None, Some("y"), "{}"),
        ]);
        assert_eq!(calls, vec![(0, Some("y".into()), "{}".into())]);
    }

    /// The streamed call's arguments are read once, fragment by fragment, to know when they
    /// are whole; braces and escaped quotes inside strings do not fool it.
    #[test]
    fn whole_json_is_tracked_fragment_by_fragment() {
        let mut j = JsonEnd::default();
        for piece in ["{\"a\":\"}\\\"", "{\"", ",\"b\":[1,", "{}]"] {
            j.feed(piece);
            assert!(!j.whole(), "{piece}");
        }
        j.feed("}");
        assert!(j.whole());
        assert!(!JsonEnd::default().whole());
    }

    /// Found by an attacker test: fragments without `index` were all call 0, so two calls
    /// became one (`{"city":"Paris"}{"city":"Rome"}`). A new `id` is a new call; a fragment
    /// without index or id continues the last call.
    #[test]
    fn a_new_id_without_an_index_is_a_new_call() {
        let calls = run(&[
            frag(None, Some("call_a"), "{\"city\":"),
            frag(None, None, "\"Paris\"}"),
            frag(None, Some("call_b"), "{\"city\":\"Rome\"}"),
        ]);
        assert_eq!(
            calls,
            vec![
                (0, Some("call_a".into()), "{\"city\":\"Paris\"}".into()),
                (1, Some("call_b".into()), "{\"city\":\"Rome\"}".into()),
            ]
        );
    }
}

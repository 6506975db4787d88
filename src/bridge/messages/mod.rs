//! Anthropic Messages (`POST /v1/messages`) ↔ chat completions.
//!
//! [`request::to_chat`] turns a [`crate::api::messages::MessagesRequest`] into a chat
//! request (naming the fields and server tools it left out), [`response::from_answer`] (or [`response::from_chat`] from a tree) turns a
//! chat completion into a Messages answer, and [`stream::StreamTranslator`] turns chat
//! chunks into Messages SSE events one chunk at a time.

pub mod request;
pub mod response;
pub mod stream;

#[cfg(test)]
mod golden;

pub use request::{Bridged, require_max_tokens, require_messages, to_chat};
pub use response::{from_answer, from_chat};
pub use stream::StreamTranslator;

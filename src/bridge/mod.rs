//! Inbound dialects bridged to chat completions: pure translation, no I/O.
//!
//! An inbound API that is not chat completions (Anthropic Messages, OpenAI Responses) is
//! translated here into a [`crate::api::ChatCompletionRequest`], served by the gateway like
//! any chat request (policies, routing, log, limits), and the chat reply — a whole JSON body
//! or a stream of chat chunks — is translated back into the dialect's own shape.
//!
//! Imports only [`crate::api`]; never HTTP, the gateway or providers.

pub mod messages;
pub mod responses;
pub mod tool_order;

//! OpenAI Responses (`POST /v1/responses`) ↔ chat completions.
//!
//! [`request::to_chat`] turns a Responses request (and the stored turns it continues) into a
//! chat request; [`response::from_answer`] turns a chat completion (read through its borrowed
//! view, or [`response::from_chat`] from a tree) into a Response object;
//! [`stream::StreamTranslator`] turns chat chunks into Responses stream events, one chunk at
//! a time. [`tools`] flattens namespace and custom tools and maps calls back.

pub mod request;
pub mod response;
pub mod stream;
pub mod tools;

pub use request::{BridgedRequest, to_chat};
pub use response::{from_answer, from_chat};
pub use stream::StreamTranslator;
pub use tools::{ToolMap, ToolOrigin};

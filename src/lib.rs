//! Sluice: an OpenAI-compatible LLM gateway that routes each request by YAML policies
//! (openness, privacy, cost) to local or remote backends, and keeps its log local.
//!
//! Data flows one way: [`http`] (HTTP, protocol only) → [`gateway`] (decide, route, attempt,
//! record; [`access`] admits, [`policy`] decides) → [`providers`] (wire protocols) → back to
//! the client, with one record per request in [`store`]. See docs/architecture.md.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
// `ApiError` (~150 bytes) and the typed request enum are moved once per request; boxing them
// would add allocations on the hot path for no gain.
#![allow(clippy::result_large_err, clippy::large_enum_variant)]

pub mod access;
pub mod allocator;
pub mod api;
pub mod bridge;
pub mod cli;
pub mod config;
pub mod gateway;
pub mod http;
pub mod policy;
pub mod providers;
pub mod repro;
pub mod store;
pub mod telemetry;

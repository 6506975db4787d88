//! Who is calling and what they may spend: principals and keys ([`auth`], [`keys`]), rate
//! limits ([`limits`]) and budgets.
//!
//! Imports `api`, `config` and `store` only; never `http` or `gateway`.

pub mod auth;
pub mod keys;
pub mod limits;

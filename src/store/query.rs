//! Reads of the request log for the CLI, the admin API and `/ui`.

//! OpenAI Responses (`POST /v1/responses`) ↔ chat completions.

-- Responses API state (`POST /v1/responses` with `store` true, the default): one row per
-- stored response, so `previous_response_id`, `GET` and `DELETE /v1/responses/{id}` work.
-- Text follows `log.prompts`: `full` as sent, `redacted` with PII placeholders; with
-- `metadata` or `off` nothing is stored.
CREATE TABLE responses (
    id          TEXT PRIMARY KEY,        -- resp_<uuid v7, hex>
    owner       TEXT NOT NULL,           -- the creating key's id ('' when auth is off)
    created_ms  INTEGER NOT NULL,        -- Unix ms, UTC
    request_id  TEXT NOT NULL,           -- the request log row of the call that made it
    model       TEXT NOT NULL,           -- as the client named it
    history     TEXT NOT NULL,           -- JSON array: items of the turns it continues
    input       TEXT NOT NULL,           -- JSON array: this request's input items
    response    TEXT NOT NULL            -- JSON: the Response object
);

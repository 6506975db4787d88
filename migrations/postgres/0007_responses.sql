-- Responses API state on PostgreSQL (as migrations/0004_responses.sql on SQLite), shared by
-- every replica: a response stored through one replica is read, continued
-- (`previous_response_id`) and deleted through any other. Text follows `log.prompts` as on
-- SQLite; the JSON columns are kept as the text Sluice wrote.
CREATE TABLE responses (
    id          TEXT PRIMARY KEY,        -- resp_<uuid v7, hex>
    owner       TEXT NOT NULL,           -- the creating key's id ('' when auth is off)
    created_ms  BIGINT NOT NULL,         -- Unix ms, UTC
    request_id  TEXT NOT NULL,           -- the request log row of the call that made it
    model       TEXT NOT NULL,           -- as the client named it
    history     TEXT NOT NULL,           -- JSON array: items of the turns it continues
    input       TEXT NOT NULL,           -- JSON array: this request's input items
    response    TEXT NOT NULL            -- JSON: the Response object
);

-- The request log: one row per request, chained by SHA-256 (see src/store/chain.rs).
-- Column order of the hash is documented in docs/log.md and in chain.rs.
CREATE TABLE requests (
    seq                 INTEGER PRIMARY KEY,   -- position in the chain, 1, 2, 3, … (no gaps)
    id                  TEXT NOT NULL,         -- request id (x-request-id; may repeat)
    started_ms          INTEGER NOT NULL,      -- Unix time, ms, UTC
    duration_ms         INTEGER NOT NULL,
    ttft_ms             INTEGER,               -- streams: time to first chunk, ms
    endpoint            TEXT NOT NULL,         -- chat.completions | completions | embeddings
    requested_model     TEXT NOT NULL,
    deployment          TEXT,
    provider            TEXT,
    hosting             TEXT,                  -- local | remote
    openness            TEXT,                  -- api … reproducible
    policies            TEXT NOT NULL,         -- JSON array of policy names
    pii_kinds           TEXT NOT NULL,         -- JSON array of kinds (never values)
    api_key_id          TEXT,
    end_user            TEXT,
    client_ip           TEXT,
    status              INTEGER NOT NULL,      -- HTTP status; 499 = client went away mid-stream
    error_type          TEXT,
    error_message       TEXT,
    stream              INTEGER NOT NULL,      -- 0 | 1
    finish_reason       TEXT,
    prompt_tokens       INTEGER NOT NULL,
    completion_tokens   INTEGER NOT NULL,
    total_tokens        INTEGER NOT NULL,
    usage_estimated     INTEGER NOT NULL,      -- 1 when the backend reported no usage
    cost_usd            REAL,
    sampling            TEXT,                  -- JSON object of the effective sampling parameters
    attempts            INTEGER NOT NULL,
    log_mode            TEXT NOT NULL,         -- full | redacted | metadata
    request_body        TEXT,                  -- JSON; NULL in metadata mode
    response_model      TEXT,
    response_content    TEXT,                  -- NULL in metadata mode
    response_tool_calls TEXT,                  -- JSON array; NULL in metadata mode
    prev_hash           TEXT NOT NULL,         -- row_hash of the previous row (or the anchor)
    row_hash            TEXT NOT NULL          -- sha256(prev_hash || "\n" || canonical content)
);
CREATE INDEX requests_id ON requests(id);
CREATE INDEX requests_started ON requests(started_ms);

-- One row: the anchor (last deleted row of the chain) and the head (last written row).
CREATE TABLE chain (
    one         INTEGER PRIMARY KEY CHECK (one = 1),
    anchor_seq  INTEGER NOT NULL,
    anchor_hash TEXT NOT NULL,
    head_seq    INTEGER NOT NULL,
    head_hash   TEXT NOT NULL
);
INSERT INTO chain VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000',
                          0, '0000000000000000000000000000000000000000000000000000000000000000');

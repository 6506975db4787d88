-- The request log on PostgreSQL: the same columns, order and meaning as the SQLite schema
-- (migrations/0001_requests.sql), so rows hash identically (src/store/chain.rs).
CREATE TABLE requests (
    seq                 BIGINT PRIMARY KEY,
    id                  TEXT NOT NULL,
    started_ms          BIGINT NOT NULL,
    duration_ms         BIGINT NOT NULL,
    ttft_ms             BIGINT,
    endpoint            TEXT NOT NULL,
    requested_model     TEXT NOT NULL,
    deployment          TEXT,
    provider            TEXT,
    hosting             TEXT,
    openness            TEXT,
    policies            TEXT NOT NULL,
    pii_kinds           TEXT NOT NULL,
    api_key_id          TEXT,
    end_user            TEXT,
    client_ip           TEXT,
    status              BIGINT NOT NULL,
    error_type          TEXT,
    error_message       TEXT,
    stream              BIGINT NOT NULL,
    finish_reason       TEXT,
    prompt_tokens       BIGINT NOT NULL,
    completion_tokens   BIGINT NOT NULL,
    total_tokens        BIGINT NOT NULL,
    usage_estimated     BIGINT NOT NULL,
    cost_usd            DOUBLE PRECISION,
    sampling            TEXT,
    attempts            BIGINT NOT NULL,
    log_mode            TEXT NOT NULL,
    request_body        TEXT,
    response_model      TEXT,
    response_content    TEXT,
    response_tool_calls TEXT,
    prev_hash           TEXT NOT NULL,
    row_hash            TEXT NOT NULL
);
CREATE INDEX requests_id ON requests(id);
CREATE INDEX requests_started ON requests(started_ms);

-- One row: anchor and head of the one chain. Writers append under `SELECT … FOR UPDATE` on
-- this row (docs/scaling.md, "One chain under a lock").
CREATE TABLE chain (
    one         INTEGER PRIMARY KEY CHECK (one = 1),
    anchor_seq  BIGINT NOT NULL,
    anchor_hash TEXT NOT NULL,
    head_seq    BIGINT NOT NULL,
    head_hash   TEXT NOT NULL
);
INSERT INTO chain VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000',
                          0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Virtual keys, as in migrations/0002_keys.sql: shared by every replica.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    hash        BYTEA NOT NULL UNIQUE,
    created_ms  BIGINT NOT NULL,
    disabled    BIGINT NOT NULL,
    spec        TEXT NOT NULL
);
CREATE INDEX requests_key_started ON requests(api_key_id, started_ms);

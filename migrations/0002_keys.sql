-- Virtual keys: the secret is stored only as its SHA-256 (32 bytes); `spec` is the key's
-- settings as JSON (name, models, rpm, tpm, budget, policies, log, admin, team, tags,
-- metadata, expires).
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,        -- key_<uuid v7>
    name        TEXT NOT NULL UNIQUE,
    hash        BLOB NOT NULL UNIQUE,    -- sha256(secret)
    created_ms  INTEGER NOT NULL,        -- Unix ms, UTC
    disabled    INTEGER NOT NULL,        -- 1 once revoked
    spec        TEXT NOT NULL
);
CREATE INDEX requests_key_started ON requests(api_key_id, started_ms);

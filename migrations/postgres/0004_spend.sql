-- Spend per key and UTC day, USD, one number across replicas: added to in the same
-- transaction as the rows that cost it (so a spilled and replayed batch counts once).
CREATE TABLE spend (
    api_key_id  TEXT NOT NULL,
    day         BIGINT NOT NULL,           -- started_ms / 86400000
    all_usd     DOUBLE PRECISION NOT NULL,
    remote_usd  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (api_key_id, day)
);

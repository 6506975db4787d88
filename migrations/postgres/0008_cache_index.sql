-- As migrations/0007_cache_index.sql: the cache's index covers only rows logged under
-- deterministic sampling (outside the hash chain).
ALTER TABLE requests ADD COLUMN deterministic BIGINT;
DROP INDEX IF EXISTS requests_request_hash;
CREATE INDEX requests_cache ON requests(deployment, request_hash) WHERE deterministic = 1;

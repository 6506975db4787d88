-- The response cache's index covers only the rows it may serve: those logged under
-- deterministic sampling (docs/reproducibility.md "Response cache"). The index of 0003 held
-- every row, and its key (a SHA-256) put each insert on a random page of it: at 100,000
-- rows of distinct prompts that tripled the cost of writing a row.
-- `deterministic` is outside the hash chain, like the other columns of 0003.
ALTER TABLE requests ADD COLUMN deterministic INTEGER;
DROP INDEX IF EXISTS requests_request_hash;
CREATE INDEX requests_cache ON requests(deployment, request_hash) WHERE deterministic = 1;

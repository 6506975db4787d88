-- As migrations/0003_reproducibility.sql (outside the hash chain).
ALTER TABLE requests ADD COLUMN request_hash TEXT;
ALTER TABLE requests ADD COLUMN response_hash TEXT;
ALTER TABLE requests ADD COLUMN fingerprint TEXT;
CREATE INDEX requests_request_hash ON requests(deployment, request_hash);

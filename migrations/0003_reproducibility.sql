-- Reproducibility (docs/reproducibility.md): per row, the SHA-256 of the canonical effective
-- request, of the response content, and the backend's fingerprint. Not part of the hash chain
-- (its canonical content is the fixed column list of 0001; see docs/log.md "Hash chain").
ALTER TABLE requests ADD COLUMN request_hash TEXT;
ALTER TABLE requests ADD COLUMN response_hash TEXT;
ALTER TABLE requests ADD COLUMN fingerprint TEXT;
CREATE INDEX requests_request_hash ON requests(deployment, request_hash);

-- A unique id per row (outside the hash chain): a batch whose commit went through but was
-- never acknowledged (the server went away mid-commit) is spilled and replayed; rows already
-- present are skipped, so every row lands exactly once.
ALTER TABLE requests ADD COLUMN row_uid TEXT;
CREATE UNIQUE INDEX requests_row_uid ON requests(row_uid);

-- As migrations/0008_id_index.sql: no index on the request id.
DROP INDEX IF EXISTS requests_id;

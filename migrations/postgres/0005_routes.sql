-- As migrations/0005_routes.sql: how a Messages or Responses request reached its backend
-- (`native` | `bridged`, NULL for other endpoints) and the tools a bridged route removed
-- (JSON array). Outside the hash chain.
ALTER TABLE requests ADD COLUMN route TEXT;
ALTER TABLE requests ADD COLUMN dropped_tools TEXT;

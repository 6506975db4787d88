-- Inbound dialects with two ways to a backend (docs/api.md): per row, `route` is `native`
-- (the backend's own Messages or Responses API) or `bridged` (through chat completions),
-- NULL for the other endpoints; `dropped_tools` is the JSON array of the server or hosted
-- tools removed from a bridged request (NULL when none). Outside the hash chain, like 0003.
ALTER TABLE requests ADD COLUMN route TEXT;
ALTER TABLE requests ADD COLUMN dropped_tools TEXT;

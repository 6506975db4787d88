-- No index on the request id. A client's own `x-request-id` (a proxy such as Envoy or Istio
-- adds a random UUIDv4 to every request) put each insert on a random page of that index:
-- about 40 µs per row against 17 without it. Sluice's own ids are UUIDv7: a lookup by id
-- reads the time they carry and searches that minute through `requests_started`; any
-- other id is searched from the newest row back (docs/log.md "Looking up a request").
DROP INDEX IF EXISTS requests_id;

-- The row uids (UUIDv7, simple form: in time order) of spend-only records (`log: off`) whose
-- cost `spend` holds. A batch committed but unacknowledged, then written again (retried, or
-- replayed from the spill file), skips them as it skips rows already in `requests` by
-- `row_uid`; without this their cost was added twice. Kept 7 days (SPEND_APPLIED_KEEP_MS).
CREATE TABLE spend_applied (
    row_uid TEXT PRIMARY KEY
);

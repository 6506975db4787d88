-- Spend per key and UTC day, USD, kept apart from the rows: written by the log writer in the
-- same transaction as each batch (rows of `log: off` keys add their cost here without a row),
-- and read at start-up for budgets, so neither `log: off` nor retention resets a budget.
-- Existing logs: filled once from the rows already there.
CREATE TABLE spend (
    api_key_id  TEXT NOT NULL,
    day         INTEGER NOT NULL,          -- started_ms / 86400000
    all_usd     REAL NOT NULL,
    remote_usd  REAL NOT NULL,
    PRIMARY KEY (api_key_id, day)
) WITHOUT ROWID;

INSERT INTO spend (api_key_id, day, all_usd, remote_usd)
SELECT api_key_id, started_ms / 86400000,
       SUM(cost_usd),
       SUM(CASE WHEN hosting = 'remote' THEN cost_usd ELSE 0 END)
FROM requests
WHERE api_key_id IS NOT NULL AND cost_usd > 0
GROUP BY api_key_id, started_ms / 86400000;

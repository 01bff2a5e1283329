-- Alerts (budget warnings and limits, missed heartbeat targets), at most one
-- per tenant, kind, scope and period: a check that runs before every call
-- records the first crossing and stays quiet after it.

CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL,
        ts REAL NOT NULL,
        kind TEXT NOT NULL,                 -- budget_warning | budget_exceeded | target_missed
        scope TEXT NOT NULL,                -- daily | monthly | the heartbeat check's name
        period TEXT NOT NULL,               -- YYYY-MM-DD or YYYY-MM (UTC)
        share REAL,                         -- share of the limit (budgets) or measured value (checks)
        spent_usd REAL,
        limit_usd REAL,
        action TEXT,                        -- what the policy did: warn | block | downgrade | defer | hold
        message TEXT NOT NULL,
        UNIQUE (tenant, kind, scope, period)
    );

CREATE INDEX alerts_ts ON alerts(ts);

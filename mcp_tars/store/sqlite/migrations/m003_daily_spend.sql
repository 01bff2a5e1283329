-- Running totals per tenant and UTC day, kept exact by a trigger in the same
-- transaction as each ledger row, so budget checks are one indexed lookup
-- (and stay right with several processes writing).

CREATE TABLE daily_spend (
        tenant TEXT NOT NULL,
        day TEXT NOT NULL,
        calls INTEGER NOT NULL DEFAULT 0,
        cost_usd REAL NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant, day)
    );

CREATE TRIGGER ledger_daily_spend AFTER INSERT ON ledger BEGIN
        INSERT INTO daily_spend (tenant, day, calls, cost_usd)
        VALUES (NEW.tenant, NEW.day, 1, COALESCE(NEW.cost_usd, 0))
        ON CONFLICT (tenant, day) DO UPDATE SET
            calls = calls + 1, cost_usd = cost_usd + COALESCE(NEW.cost_usd, 0);
    END;

-- What the engine remembers per conversation: the routed tier (routing is
-- sticky) and the timing of calls (prompt-cache TTL choice).

CREATE TABLE sessions (
        tenant TEXT NOT NULL,
        session_id TEXT NOT NULL,
        level TEXT,
        model TEXT,
        calls INTEGER NOT NULL DEFAULT 0,
        first_ts REAL,
        last_ts REAL,
        gaps TEXT NOT NULL DEFAULT '[]',    -- JSON list of the latest gaps between calls, seconds
        PRIMARY KEY (tenant, session_id)
    );

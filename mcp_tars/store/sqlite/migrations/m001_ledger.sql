-- One row per API call, cache hit or batch result. Money in USD (REAL) until m034;
-- the lever columns always sum to saved_usd (see pricing.attribute_savings).

CREATE TABLE ledger (
        id INTEGER PRIMARY KEY,
        response_id TEXT NOT NULL UNIQUE,   -- API message id, 'hit_…' or 'batch:…'; the idempotency key
        request_id TEXT,                    -- the API's request-id header
        ts REAL NOT NULL,                   -- seconds since the epoch (UTC)
        day TEXT NOT NULL,                  -- YYYY-MM-DD (UTC), for grouping
        tenant TEXT NOT NULL,               -- hash of the API key or a configured namespace
        session_id TEXT,
        source TEXT NOT NULL,               -- api | cache | batch
        model TEXT NOT NULL,                -- model billed (or that produced a cached answer)
        requested_model TEXT,               -- model pinned by the caller, if any
        service_tier TEXT,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        cache_write_5m_tokens INTEGER NOT NULL DEFAULT 0,
        cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0,
        cache_read_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        -- cost and savings are NULL when the model's price is unknown (never a silent $0)
        cost_usd REAL,
        baseline_cost_usd REAL,
        saved_usd REAL,
        saved_cache_usd REAL,
        saved_pruning_usd REAL,
        saved_routing_usd REAL,
        saved_prompt_cache_usd REAL,
        saved_batch_usd REAL,
        baseline_estimated INTEGER NOT NULL DEFAULT 1,  -- 1 when the baseline is an estimate
        pricing_source TEXT NOT NULL,       -- table | override | unknown
        cache_kind TEXT,                    -- exact | semantic (source = cache)
        cache_similarity REAL,
        routing_level TEXT,
        routing_score INTEGER,
        routing_reason TEXT,
        prompt_cache TEXT,                  -- JSON: the prompt-caching decision
        tokens_before_pruning INTEGER,
        tokens_after_pruning INTEGER,
        pruning TEXT,                       -- JSON: what pruning removed and why
        stop_reason TEXT,
        latency_ms REAL,
        attempts INTEGER NOT NULL DEFAULT 1,
        task_id TEXT,                       -- deferred task, for batch results
        decisions TEXT                      -- JSON: everything else the engine decided
    );

CREATE INDEX ledger_ts ON ledger(ts);

CREATE INDEX ledger_day ON ledger(day);

CREATE INDEX ledger_session ON ledger(session_id);

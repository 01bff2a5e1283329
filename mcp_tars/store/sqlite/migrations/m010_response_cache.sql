-- The response cache (mcp_tars/cache.py; SQL in store/cache.py). Holds
-- answers and the last user message of semantically matchable requests,
-- never an API key: tenant is already a hash, keys are sha256 hashes.

CREATE TABLE response_cache (
        id INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL,               -- hash of the API key, or 'ns:<namespace>'
        request_key TEXT NOT NULL UNIQUE,   -- sha256 of tenant + canonical request (exact layer)
        context_key TEXT,                   -- sha256 of tenant + request minus the last user text; NULL: exact only
        semantic_key INTEGER,               -- 64-bit hash of context_key + the question's meaning-bearing terms
        term_keys TEXT,                     -- space-separated posting keys in response_cache_terms
        query_text TEXT,                    -- the last user message (semantic candidates are re-checked from it)
        query_type TEXT NOT NULL,           -- research | fact_lookup | code_pattern | template | default
        model TEXT NOT NULL,                -- model that produced the answer
        requested_model TEXT,               -- the request's model: pinned model or routing tier ('tier:simple')
        content TEXT NOT NULL,              -- JSON content blocks of the answer
        text TEXT NOT NULL,                 -- its text
        stop_reason TEXT,
        usage TEXT NOT NULL,                -- JSON usage of the original call
        cost_usd REAL NOT NULL,             -- what the original call cost
        baseline_cost_usd REAL NOT NULL,    -- its baseline: what one hit saves
        savings TEXT NOT NULL,              -- JSON lever breakdown of the original call
        size_bytes INTEGER NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        last_used_at REAL NOT NULL,
        exact_hits INTEGER NOT NULL DEFAULT 0,
        semantic_hits INTEGER NOT NULL DEFAULT 0,
        saved_usd REAL NOT NULL DEFAULT 0   -- money saved by its hits so far
    );

CREATE INDEX response_cache_semantic ON response_cache(semantic_key) WHERE semantic_key IS NOT NULL;

CREATE INDEX response_cache_expires ON response_cache(expires_at);

CREATE INDEX response_cache_tenant ON response_cache(tenant);

CREATE TABLE response_cache_terms (
        term_key INTEGER NOT NULL,
        entry_id INTEGER NOT NULL,
        PRIMARY KEY (term_key, entry_id)
    ) WITHOUT ROWID;

CREATE TABLE response_cache_totals (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        entries INTEGER NOT NULL,
        bytes INTEGER NOT NULL
    );

INSERT INTO response_cache_totals (id, entries, bytes) VALUES (1, 0, 0);

CREATE TRIGGER response_cache_count_insert AFTER INSERT ON response_cache BEGIN
        UPDATE response_cache_totals SET entries = entries + 1, bytes = bytes + NEW.size_bytes WHERE id = 1;
    END;

CREATE TRIGGER response_cache_count_delete AFTER DELETE ON response_cache BEGIN
        UPDATE response_cache_totals SET entries = entries - 1, bytes = bytes - OLD.size_bytes WHERE id = 1;
    END;

-- The deferred queue (mcp_tars/batches.py). A task is written before
-- anything is sent for it; a batch row is written in the same transaction
-- that marks its tasks submitted; batch_tasks keeps every submission, so
-- "never sent twice" can be checked with one query.

CREATE TABLE tasks (
        id TEXT PRIMARY KEY,                -- 'task_…'; also the batch request's custom_id
        tenant TEXT NOT NULL,
        status TEXT NOT NULL,               -- queued | claimed | submitted | running | succeeded | failed | canceled
        priority TEXT NOT NULL,             -- high | normal | low
        priority_rank INTEGER NOT NULL,     -- 0 high, 1 normal, 2 low (submission order)
        category TEXT NOT NULL,             -- routed model | priority | shared-prefix hash: the batch_size group
        model TEXT NOT NULL,                -- routed (or pinned) model
        prefix_key TEXT,                    -- hash of the system prompt and tools: tasks sharing it share a cached prefix
        request TEXT NOT NULL,              -- JSON: the caller's request as given
        params TEXT NOT NULL,               -- JSON: Messages API params after routing and pruning
        request_bytes INTEGER NOT NULL DEFAULT 0,
        decisions TEXT,                     -- JSON: routing, pruning, cache key
        created_at REAL NOT NULL,
        deadline_at REAL NOT NULL,
        estimated_ready_at REAL,
        attempts INTEGER NOT NULL DEFAULT 0,  -- submissions (and immediate runs) so far
        claim_token TEXT,                   -- the batch being created for this task
        claim_owner TEXT,                   -- host:pid:start of the process sending it; NULL: outcome unknown
        claimed_at REAL,
        batch_id TEXT,                      -- the API batch of the latest submission
        submitted_at REAL,
        finished_at REAL,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        result_type TEXT,                   -- succeeded | errored | expired | canceled | immediate
        text TEXT,
        content TEXT,                       -- JSON content blocks of the answer
        result_model TEXT,
        stop_reason TEXT,
        cost_usd REAL,
        response_id TEXT,                   -- the ledger row of the answer
        error TEXT                          -- the API's error, or why a queued task waits
    );

CREATE INDEX tasks_queue ON tasks(tenant, status, priority_rank, created_at);

CREATE INDEX tasks_batch ON tasks(batch_id);

CREATE INDEX tasks_claim ON tasks(claim_token);

CREATE INDEX tasks_finished ON tasks(tenant, finished_at);

CREATE TABLE batches (
        id TEXT PRIMARY KEY,                -- the API's message batch id
        tenant TEXT NOT NULL,
        status TEXT NOT NULL,               -- in_progress | canceling | ended | ingested
        priority TEXT,
        request_count INTEGER NOT NULL,
        created_at REAL NOT NULL,
        polled_at REAL,
        polls INTEGER NOT NULL DEFAULT 0,
        ended_at REAL,
        ingested_at REAL,
        cancel_sent INTEGER NOT NULL DEFAULT 0,
        adopted INTEGER NOT NULL DEFAULT 0, -- found in the API's list after a crash between create and record
        counts TEXT                         -- JSON: the API's request_counts at the last poll
    );

CREATE INDEX batches_open ON batches(tenant, status);

CREATE TABLE batch_tasks (
        batch_id TEXT NOT NULL REFERENCES batches(id),
        task_id TEXT NOT NULL REFERENCES tasks(id),
        attempt INTEGER NOT NULL,
        PRIMARY KEY (batch_id, task_id)
    );

CREATE INDEX batch_tasks_task ON batch_tasks(task_id);

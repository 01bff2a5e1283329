"""Schema migrations: an ordered list of small functions, recorded by name in
the database so that any older database upgrades itself on open.

Append new migrations at the end; never edit or reorder applied ones.
Each runs inside the transaction that records it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import sqlite_utils

MIGRATIONS_TABLE = "_tars_migrations"


@dataclass(frozen=True)
class Migration:
    name: str
    apply: Callable[[sqlite_utils.Database], None]


MIGRATIONS: list[Migration] = []


def migration(fn: Callable[[sqlite_utils.Database], None]) -> Callable[[sqlite_utils.Database], None]:
    if any(m.name == fn.__name__ for m in MIGRATIONS):
        raise ValueError(f"duplicate migration name {fn.__name__}")
    MIGRATIONS.append(Migration(fn.__name__, fn))
    return fn


@migration
def m001_ledger(db: sqlite_utils.Database) -> None:
    # One row per API call, cache hit or batch result. Money in USD (REAL);
    # the lever columns always sum to saved_usd (see pricing.attribute_savings).
    db.execute("""
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
    )""")
    db.execute("CREATE INDEX ledger_ts ON ledger(ts)")
    db.execute("CREATE INDEX ledger_day ON ledger(day)")
    db.execute("CREATE INDEX ledger_session ON ledger(session_id)")


@migration
def m002_sessions(db: sqlite_utils.Database) -> None:
    # What the engine remembers per conversation: the routed tier (routing is
    # sticky) and the timing of calls (prompt-cache TTL choice).
    db.execute("""
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
    )""")


@migration
def m003_daily_spend(db: sqlite_utils.Database) -> None:
    # Running totals per tenant and UTC day, kept exact by a trigger in the same
    # transaction as each ledger row, so budget checks are one indexed lookup
    # (and stay right with several processes writing).
    db.execute("""
    CREATE TABLE daily_spend (
        tenant TEXT NOT NULL,
        day TEXT NOT NULL,
        calls INTEGER NOT NULL DEFAULT 0,
        cost_usd REAL NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant, day)
    )""")
    db.execute("""
    CREATE TRIGGER ledger_daily_spend AFTER INSERT ON ledger BEGIN
        INSERT INTO daily_spend (tenant, day, calls, cost_usd)
        VALUES (NEW.tenant, NEW.day, 1, COALESCE(NEW.cost_usd, 0))
        ON CONFLICT (tenant, day) DO UPDATE SET
            calls = calls + 1, cost_usd = cost_usd + COALESCE(NEW.cost_usd, 0);
    END""")


@migration
def m030_alerts(db: sqlite_utils.Database) -> None:
    # Alerts (budget warnings and limits, missed heartbeat targets), at most one
    # per tenant, kind, scope and period: a check that runs before every call
    # records the first crossing and stays quiet after it.
    db.execute("""
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
    )""")
    db.execute("CREATE INDEX alerts_ts ON alerts(ts)")


# Report roll-ups: per-day sums of the ledger kept by triggers, so that a
# report over a million rows reads a few thousand. Each entry is
# (column, expression over one ledger row); "{r}" is NEW, OLD or the table.
_ROLLUP_SUMS = (
    ("calls", "1"),
    ("api_calls", "({r}.source = 'api')"),
    ("cache_hits", "({r}.source = 'cache')"),
    ("cache_hits_exact", "({r}.source = 'cache' AND {r}.cache_kind = 'exact')"),
    ("cache_hits_semantic", "({r}.source = 'cache' AND {r}.cache_kind = 'semantic')"),
    ("batch_calls", "({r}.source = 'batch')"),
    ("input_tokens", "{r}.input_tokens"),
    ("cache_write_5m_tokens", "{r}.cache_write_5m_tokens"),
    ("cache_write_1h_tokens", "{r}.cache_write_1h_tokens"),
    ("cache_read_tokens", "{r}.cache_read_tokens"),
    ("output_tokens", "{r}.output_tokens"),
    ("cost_usd", "COALESCE({r}.cost_usd, 0)"),
    ("priced_calls", "({r}.cost_usd IS NOT NULL)"),
    ("unknown_price_calls", "({r}.pricing_source = 'unknown')"),
    ("baseline_cost_usd", "COALESCE({r}.baseline_cost_usd, 0)"),
    ("baseline_calls", "({r}.baseline_cost_usd IS NOT NULL)"),
    ("estimated_baseline_calls", "({r}.baseline_cost_usd IS NOT NULL AND {r}.baseline_estimated != 0)"),
    ("saved_cache_usd", "COALESCE({r}.saved_cache_usd, 0)"),
    ("saved_routing_usd", "COALESCE({r}.saved_routing_usd, 0)"),
    ("saved_pruning_usd", "COALESCE({r}.saved_pruning_usd, 0)"),
    ("saved_prompt_cache_usd", "COALESCE({r}.saved_prompt_cache_usd, 0)"),
    ("saved_batch_usd", "COALESCE({r}.saved_batch_usd, 0)"),
    ("helped_cache", "(COALESCE({r}.saved_cache_usd, 0) > 0)"),
    ("helped_routing", "(COALESCE({r}.saved_routing_usd, 0) > 0)"),
    ("helped_pruning", "(COALESCE({r}.saved_pruning_usd, 0) > 0)"),
    ("helped_prompt_cache", "(COALESCE({r}.saved_prompt_cache_usd, 0) > 0)"),
    ("helped_batch", "(COALESCE({r}.saved_batch_usd, 0) > 0)"),
    ("pruned_calls", "({r}.tokens_before_pruning IS NOT NULL AND {r}.tokens_after_pruning IS NOT NULL)"),
    ("tokens_pruned", "COALESCE({r}.tokens_before_pruning - {r}.tokens_after_pruning, 0)"),
    ("latency_ms", "COALESCE({r}.latency_ms, 0)"),
    ("latency_calls", "({r}.latency_ms IS NOT NULL)"),
)


def _rollup(db: sqlite_utils.Database, table: str, keys: dict[str, str],
            sums: tuple[tuple[str, str], ...] = _ROLLUP_SUMS, integer_keys: frozenset[str] = frozenset()) -> None:
    """Create ``table`` keyed by ``keys`` (column -> expression over a ledger
    row; TEXT columns, INTEGER for those in ``integer_keys``) with the columns
    ``sums``, fill it from the existing ledger, and keep it exact on insert,
    update and delete."""
    key_cols = list(keys)
    columns = ",\n".join(
        [f"{k} {'INTEGER' if k in integer_keys else 'TEXT'} NOT NULL" for k in key_cols]
        + [f"{c} {'REAL' if c.endswith('_usd') or c == 'latency_ms' else 'INTEGER'} NOT NULL DEFAULT 0"
           for c, _ in sums]
    )
    db.execute(f"CREATE TABLE {table} ({columns}, PRIMARY KEY ({', '.join(key_cols)}))")
    all_cols = ", ".join(key_cols + [c for c, _ in sums])

    def exprs(r: str, sign: str = "") -> str:
        return ", ".join([e.format(r=r) for e in keys.values()] + [f"{sign}({e.format(r=r)})" for _, e in sums])

    upsert_tail = (f" ON CONFLICT ({', '.join(key_cols)}) DO UPDATE SET "
                   + ", ".join(f"{c} = {c} + excluded.{c}" for c, _ in sums))
    db.execute(f"INSERT INTO {table} ({all_cols}) SELECT "
               + ", ".join([e.format(r="ledger") for e in keys.values()]
                           + [f"SUM({e.format(r='ledger')})" for _, e in sums])
               + f" FROM ledger WHERE true GROUP BY {', '.join(e.format(r='ledger') for e in keys.values())}")
    add_new = f"INSERT INTO {table} ({all_cols}) VALUES ({exprs('NEW')}){upsert_tail};"
    remove_old = f"INSERT INTO {table} ({all_cols}) VALUES ({exprs('OLD', '-')}){upsert_tail};"
    db.execute(f"CREATE TRIGGER {table}_insert AFTER INSERT ON ledger BEGIN {add_new} END")
    db.execute(f"CREATE TRIGGER {table}_delete AFTER DELETE ON ledger BEGIN {remove_old} END")
    # Only updates of summed or grouping columns move money between groups
    # (setting task_id on a row, for instance, does not).
    watched = sorted({name for e in [*keys.values(), *(e for _, e in sums)]
                      for name in re.findall(r"\{r\}\.(\w+)", e)})
    db.execute(f"CREATE TRIGGER {table}_update AFTER UPDATE OF {', '.join(watched)} ON ledger "
               f"BEGIN {remove_old} {add_new} END")


@migration
def m031_report_rollups(db: sqlite_utils.Database) -> None:
    # Per tenant, day and model (every report but sessions), and per tenant, day
    # and session ('' for calls without one).
    _rollup(db, "rollup_daily_model", {"tenant": "{r}.tenant", "day": "{r}.day", "model": "{r}.model"})
    db.execute("CREATE INDEX rollup_daily_model_day ON rollup_daily_model(day)")
    _rollup(db, "rollup_daily_session",
            {"tenant": "{r}.tenant", "day": "{r}.day", "session_key": "COALESCE({r}.session_id, '')"})
    db.execute("CREATE INDEX rollup_daily_session_day ON rollup_daily_session(day)")


@migration
def m020_deferred_tasks(db: sqlite_utils.Database) -> None:
    # The deferred queue (mcp_tars/batches.py). A task is written before
    # anything is sent for it; a batch row is written in the same transaction
    # that marks its tasks submitted; batch_tasks keeps every submission, so
    # "never sent twice" can be checked with one query.
    db.execute("""
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
    )""")
    db.execute("CREATE INDEX tasks_queue ON tasks(tenant, status, priority_rank, created_at)")
    db.execute("CREATE INDEX tasks_batch ON tasks(batch_id)")
    db.execute("CREATE INDEX tasks_claim ON tasks(claim_token)")
    db.execute("CREATE INDEX tasks_finished ON tasks(tenant, finished_at)")
    db.execute("""
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
    )""")
    db.execute("CREATE INDEX batches_open ON batches(tenant, status)")
    db.execute("""
    CREATE TABLE batch_tasks (
        batch_id TEXT NOT NULL REFERENCES batches(id),
        task_id TEXT NOT NULL REFERENCES tasks(id),
        attempt INTEGER NOT NULL,
        PRIMARY KEY (batch_id, task_id)
    )""")
    db.execute("CREATE INDEX batch_tasks_task ON batch_tasks(task_id)")


@migration
def m010_response_cache(db: sqlite_utils.Database) -> None:
    # The response cache (mcp_tars/cache.py; SQL in store/cache.py). Holds
    # answers and the last user message of semantically matchable requests,
    # never an API key: tenant is already a hash, keys are sha256 hashes.
    db.execute("""
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
    )""")
    db.execute("CREATE INDEX response_cache_semantic ON response_cache(semantic_key) WHERE semantic_key IS NOT NULL")
    db.execute("CREATE INDEX response_cache_expires ON response_cache(expires_at)")
    db.execute("CREATE INDEX response_cache_tenant ON response_cache(tenant)")
    # Postings for fuzzy candidate retrieval: hash(context_key, term) -> entry.
    db.execute("""
    CREATE TABLE response_cache_terms (
        term_key INTEGER NOT NULL,
        entry_id INTEGER NOT NULL,
        PRIMARY KEY (term_key, entry_id)
    ) WITHOUT ROWID""")
    # Totals kept by triggers: checking the limits after an insert reads one row.
    db.execute("""
    CREATE TABLE response_cache_totals (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        entries INTEGER NOT NULL,
        bytes INTEGER NOT NULL
    )""")
    db.execute("INSERT INTO response_cache_totals (id, entries, bytes) VALUES (1, 0, 0)")
    db.execute("""
    CREATE TRIGGER response_cache_count_insert AFTER INSERT ON response_cache BEGIN
        UPDATE response_cache_totals SET entries = entries + 1, bytes = bytes + NEW.size_bytes WHERE id = 1;
    END""")
    db.execute("""
    CREATE TRIGGER response_cache_count_delete AFTER DELETE ON response_cache BEGIN
        UPDATE response_cache_totals SET entries = entries - 1, bytes = bytes - OLD.size_bytes WHERE id = 1;
    END""")


# Version 2 of the report roll-ups adds the tokens of the calls that cache hits
# replaced (``decisions.cache.replaced_tokens`` on a hit's ledger row; a row
# whose decisions are not valid JSON counts nothing rather than failing).
_REPLACED_TOKENS = ("(CASE WHEN {r}.source = 'cache' AND json_valid({r}.decisions) "
                    "THEN json_extract({r}.decisions, '$.cache.replaced_tokens') END)")
_ROLLUP_SUMS_V2 = _ROLLUP_SUMS + (
    ("cache_tokens_replaced", f"COALESCE({_REPLACED_TOKENS}, 0)"),
    ("cache_hits_with_tokens", f"({_REPLACED_TOKENS} IS NOT NULL)"),
)
# Version 3 (m033) keys the day x model roll-up by the set of levers that
# changed a call's cost as well: ``levers`` is a bitmask, bit i set when the
# saving of LEVER_BITS[i] on the row is non-zero (NULL counts as 0). Non-zero,
# not positive: a lever that made a call dearer (a prompt-cache write never
# read back, a call routed up to a dearer model) touched it too, and only then
# does a lever's group hold every cent of that lever's saving. The ``helped_*``
# sums stay "saving > 0" (calls the lever made cheaper, a subset of its group).
# Strategy reports sum the rows whose mask has a lever's bit; every other
# report sums over the masks. Budgets keep reading m003's daily_spend: a
# month of spend is then at most 31 rows, not days x models x lever sets
# (about 200 us at a year of traffic, on every API call).
LEVER_BITS: tuple[tuple[str, str], ...] = (
    ("cache", "saved_cache_usd"),
    ("routing", "saved_routing_usd"),
    ("pruning", "saved_pruning_usd"),
    ("prompt_cache", "saved_prompt_cache_usd"),
    ("batch", "saved_batch_usd"),
)
_LEVER_MASK = " | ".join(f"((COALESCE({{r}}.{column}, 0) != 0) << {bit})"
                         for bit, (_, column) in enumerate(LEVER_BITS))
ROLLUP_TABLES = {
    "rollup_daily_model": {"tenant": "{r}.tenant", "day": "{r}.day", "model": "{r}.model", "levers": _LEVER_MASK},
    "rollup_daily_session": {"tenant": "{r}.tenant", "day": "{r}.day", "session_key": "COALESCE({r}.session_id, '')"},
}
_INTEGER_KEYS = frozenset({"levers"})


def create_report_rollups(db: sqlite_utils.Database) -> None:
    """Drop and rebuild the report roll-ups (latest version) from the ledger."""
    for table, keys in ROLLUP_TABLES.items():
        for suffix in ("insert", "delete", "update"):
            db.execute(f"DROP TRIGGER IF EXISTS {table}_{suffix}")
        db.execute(f"DROP TABLE IF EXISTS {table}")
        _rollup(db, table, keys, _ROLLUP_SUMS_V2, _INTEGER_KEYS)
        db.execute(f"CREATE INDEX {table}_day ON {table}(day)")


@migration
def m032_report_rollups_v2(db: sqlite_utils.Database) -> None:
    create_report_rollups(db)


@migration
def m033_rollup_lever_mask(db: sqlite_utils.Database) -> None:
    # The day x model roll-up gains the ``levers`` bitmask key (see LEVER_BITS),
    # rebuilt from the ledger.
    create_report_rollups(db)

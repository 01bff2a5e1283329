"""Schema migrations: an ordered list of small functions, recorded by name in
the database so that any older database upgrades itself on open.

Append new migrations at the end; never edit or reorder applied ones.
Each runs inside the transaction that records it.
"""

from __future__ import annotations

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

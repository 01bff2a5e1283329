"""Ledger queries: one row per API call, cache hit or batch result."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from . import Store

LEDGER_COLUMNS = (
    "response_id", "request_id", "ts", "day", "tenant", "session_id", "source", "model",
    "requested_model", "service_tier", "input_tokens", "cache_write_5m_tokens",
    "cache_write_1h_tokens", "cache_read_tokens", "output_tokens", "cost_usd",
    "baseline_cost_usd", "saved_usd", "saved_cache_usd", "saved_pruning_usd",
    "saved_routing_usd", "saved_prompt_cache_usd", "saved_batch_usd", "baseline_estimated",
    "pricing_source", "cache_kind", "cache_similarity", "routing_level", "routing_score",
    "routing_reason", "prompt_cache", "tokens_before_pruning", "tokens_after_pruning",
    "pruning", "stop_reason", "latency_ms", "attempts", "task_id", "decisions",
)
_INSERT = (
    f"INSERT INTO ledger ({', '.join(LEDGER_COLUMNS)}) VALUES ({', '.join('?' for _ in LEDGER_COLUMNS)}) "
    "ON CONFLICT (response_id) DO NOTHING"
)


def utc_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")


_ZERO_DEFAULTS = {
    "input_tokens": 0, "cache_write_5m_tokens": 0, "cache_write_1h_tokens": 0, "cache_read_tokens": 0,
    "output_tokens": 0, "baseline_estimated": 1, "attempts": 1,
}


def _prepare(row: Mapping[str, Any]) -> tuple:
    unknown = set(row) - set(LEDGER_COLUMNS)
    if unknown:
        raise ValueError(f"unknown ledger columns: {sorted(unknown)}")
    values = dict(row)
    values.setdefault("day", utc_day(values["ts"]))
    for key, default in _ZERO_DEFAULTS.items():
        if values.get(key) is None:
            values[key] = default
    for key in ("prompt_cache", "pruning", "decisions"):
        if values.get(key) is not None and not isinstance(values[key], str):
            values[key] = json.dumps(values[key], sort_keys=True, default=str)
    return tuple(values.get(c) for c in LEDGER_COLUMNS)


def insert(store: Store, row: Mapping[str, Any], conn: sqlite3.Connection | None = None) -> bool:
    """Record one row; False when a row with the same response_id exists (the
    same response is never counted twice). Pass ``conn`` to join a transaction
    already open via ``store.write()``."""
    params = _prepare(row)
    if conn is not None:
        return conn.execute(_INSERT, params).rowcount == 1
    # one statement (its triggers run inside it): atomic without BEGIN/COMMIT
    return store.write_one(_INSERT, params) == 1


def insert_many(store: Store, rows: list[Mapping[str, Any]]) -> int:
    with store.write() as c:
        return sum(c.execute(_INSERT, _prepare(r)).rowcount for r in rows)


def spend(store: Store, tenant: str, first_day: str, last_day: str) -> float:
    """USD spent by a tenant over a range of UTC days (inclusive), from the
    per-day totals a trigger keeps beside the ledger (one row per day)."""
    with store.read() as c:
        row = c.execute(
            "SELECT COALESCE(SUM(cost_usd), 0) FROM daily_spend WHERE tenant = ? AND day BETWEEN ? AND ?",
            (tenant, first_day, last_day),
        ).fetchone()
    return float(row[0])


def count(store: Store) -> int:
    with store.read() as c:
        return c.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]


def by_response_id(store: Store, response_id: str) -> dict | None:
    with store.read() as c:
        c.row_factory = sqlite3.Row
        try:
            row = c.execute("SELECT * FROM ledger WHERE response_id = ?", (response_id,)).fetchone()
        finally:
            c.row_factory = None
    return dict(row) if row else None


# -- sessions -----------------------------------------------------------------

MAX_REMEMBERED_GAPS = 20


def get_session(store: Store, tenant: str, session_id: str) -> dict | None:
    with store.read() as c:
        row = c.execute(
            "SELECT level, model, calls, first_ts, last_ts, gaps FROM sessions WHERE tenant = ? AND session_id = ?",
            (tenant, session_id),
        ).fetchone()
    if not row:
        return None
    return {"level": row[0], "model": row[1], "calls": row[2], "first_ts": row[3], "last_ts": row[4], "gaps": json.loads(row[5])}


def touch_session(store: Store, tenant: str, session_id: str, *, ts: float, level: str | None, model: str | None) -> None:
    """Record a call of a session: its tier and the gap since the previous call."""
    with store.write() as c:
        row = c.execute(
            "SELECT last_ts, gaps FROM sessions WHERE tenant = ? AND session_id = ?", (tenant, session_id)
        ).fetchone()
        if row is None:
            c.execute(
                "INSERT INTO sessions (tenant, session_id, level, model, calls, first_ts, last_ts) VALUES (?, ?, ?, ?, 1, ?, ?)",
                (tenant, session_id, level, model, ts, ts),
            )
            return
        gaps = json.loads(row[1])
        if row[0] is not None:
            gaps = (gaps + [max(0.0, ts - row[0])])[-MAX_REMEMBERED_GAPS:]
        c.execute(
            "UPDATE sessions SET level = COALESCE(?, level), model = COALESCE(?, model), calls = calls + 1, "
            "last_ts = ?, gaps = ? WHERE tenant = ? AND session_id = ?",
            (level, model, ts, json.dumps(gaps), tenant, session_id),
        )


# -- the recovery spool ---------------------------------------------------------
# When the database cannot take a row after the API has already answered (and
# billed), the row goes to a JSON-lines file beside the database (mode 0600) and
# is added to the ledger the next time the store opens. Rows are keyed by
# response_id, so replaying twice never counts a response twice.


def spool_path(store: Store) -> Path:
    return store.path.with_name(store.path.name + ".ledger-spool.jsonl")


def spool(store: Store, row: Mapping[str, Any]) -> Path:
    """Append one ledger row to the recovery spool (fsync'd); raises OSError if even that fails."""
    path = spool_path(store)
    line = (json.dumps(dict(row), sort_keys=True, default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def replay_spool(store: Store) -> int:
    """Add spooled rows to the ledger, then remove the spool; returns rows added.
    A torn last line (a crash mid-write) is skipped."""
    path = spool_path(store)
    if str(store.path) == ":memory:":
        return 0
    added = sum(_replay_orphan(store, orphan) for orphan in path.parent.glob(f"{path.name}.*.replaying"))
    if not path.exists():
        return added
    # take the file away first: rows spooled from now on start a new one
    taken = path.with_name(f"{path.name}.{os.getpid()}.replaying")
    try:
        os.replace(path, taken)
    except FileNotFoundError:
        return added  # another process took it
    return added + _replay_file(store, path, taken)


def _replay_orphan(store: Store, taken: Path) -> int:
    """A file a replaying process took and never finished (it died): replay it
    unless its process is still alive."""
    try:
        pid = int(taken.name.rsplit(".", 2)[-2])
    except ValueError:
        return 0
    if pid == os.getpid():
        return 0
    try:
        os.kill(pid, 0)
        return 0  # still working on it
    except ProcessLookupError:
        pass
    except PermissionError:
        return 0
    return _replay_file(store, spool_path(store), taken)


def _replay_file(store: Store, path: Path, taken: Path) -> int:
    rows = []
    try:
        text = taken.read_text("utf-8")
    except FileNotFoundError:
        return 0  # another process replayed it first
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    try:
        added = insert_many(store, rows) if rows else 0
    except BaseException:
        os.replace(taken, path) if not path.exists() else _append(path, taken)
        raise
    taken.unlink(missing_ok=True)
    return added


def _append(path: Path, taken: Path) -> None:
    """Put back rows that could not be replayed, beside rows spooled meanwhile."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, taken.read_bytes())
        os.fsync(fd)
    finally:
        os.close(fd)
    taken.unlink()

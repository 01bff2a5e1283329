"""Ledger queries: one row per API call, cache hit or batch result.

Rows come in as the engine builds them (money in USD, JSON fields as dicts)
and are stored with money in picodollars (``schema.LEDGER_MONEY``).
"""

from __future__ import annotations

import itertools
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from .. import fastjson
from . import Connection, Store, rows_as_dicts, where_clause
from .schema import LEDGER_MONEY, to_picousd, usd

# The keys of a row as the engine writes it.
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
# The columns of the table (the same, money in picodollars, plus what the roll-ups read).
STORED_COLUMNS = tuple(LEDGER_MONEY.get(c, c) for c in LEDGER_COLUMNS) + ("cache_replaced_tokens",)
_INSERT = (
    f"INSERT INTO ledger ({', '.join(STORED_COLUMNS)}) VALUES ({', '.join('?' for _ in STORED_COLUMNS)}) "
    "ON CONFLICT (response_id) DO NOTHING"
)
# PostgreSQL takes many rows as one statement over arrays, one per column: the
# statement triggers then update each roll-up group once per chunk (about 5x the
# rows per second of one statement per row).
_FLOAT_COLUMNS = {"ts", "cache_similarity", "latency_ms"}
_INTEGER_COLUMNS = {c for c in STORED_COLUMNS if c.endswith(("_tokens", "_picousd", "_pruning"))} | {
    "baseline_estimated", "routing_score", "attempts"}
_PG_ARRAY_TYPES = ["double precision[]" if c in _FLOAT_COLUMNS else "bigint[]" if c in _INTEGER_COLUMNS else "text[]"
                   for c in STORED_COLUMNS]
_PG_INSERT_ARRAYS = (
    f"INSERT INTO ledger ({', '.join(STORED_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"?::{t}" for t in _PG_ARRAY_TYPES) + ") ON CONFLICT (response_id) DO NOTHING"
)
_PG_KINDS = [float if c in _FLOAT_COLUMNS else int if c in _INTEGER_COLUMNS else str for c in STORED_COLUMNS]
PG_ROWS_PER_STATEMENT = 5000


def utc_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")


_ZERO_DEFAULTS = {
    "input_tokens": 0, "cache_write_5m_tokens": 0, "cache_write_1h_tokens": 0, "cache_read_tokens": 0,
    "output_tokens": 0, "baseline_estimated": 1, "attempts": 1,
}


def _replaced_tokens(values: Mapping[str, Any]) -> int | None:
    """A cache hit's ``decisions.cache.replaced_tokens``: the tokens of the call it replaced."""
    if values.get("source") != "cache":
        return None
    decisions = values.get("decisions")
    if isinstance(decisions, str):
        try:
            decisions = json.loads(decisions)
        except ValueError:
            return None
    cache = decisions.get("cache") if isinstance(decisions, dict) else None
    tokens = cache.get("replaced_tokens") if isinstance(cache, dict) else None
    return int(tokens) if isinstance(tokens, (int, float)) and not isinstance(tokens, bool) else None


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
    replaced = _replaced_tokens(values)
    for key, column in LEDGER_MONEY.items():
        values[column] = to_picousd(values.pop(key, None))
    values["cache_replaced_tokens"] = replaced
    return tuple(values.get(c) for c in STORED_COLUMNS)


def _lock_order(rows: list[tuple]) -> list[tuple]:
    # tenant and day first: every writer takes the roll-up rows of its
    # (tenant, day) groups in the same order (see schema.ROLLUPS)
    t, d = STORED_COLUMNS.index("tenant"), STORED_COLUMNS.index("day")
    return sorted(rows, key=lambda r: (r[t], r[d]))


def insert(store: Store, row: Mapping[str, Any], conn: Connection | None = None) -> bool:
    """Record one row; False when a row with the same response_id exists (the
    same response is never counted twice). Pass ``conn`` to join a transaction
    already open via ``store.write()``."""
    params = _prepare(row)
    if conn is not None:
        return conn.execute(_INSERT, params).rowcount == 1
    # one statement (its triggers run inside it): atomic without BEGIN/COMMIT
    return store.write_one(_INSERT, params) == 1


def _insert_prepared(store: Store, prepared: list[tuple]) -> int:
    if not prepared:
        return 0
    with store.write() as c:
        if c.backend != "postgres":
            return c.executemany(_INSERT, prepared).rowcount
        added = 0
        for start in range(0, len(prepared), PG_ROWS_PER_STATEMENT):
            columns = [[None if v is None else kind(v) for v in values] for kind, values in
                       zip(_PG_KINDS, zip(*prepared[start:start + PG_ROWS_PER_STATEMENT]))]
            added += c.execute(_PG_INSERT_ARRAYS, columns).rowcount
        return added


def insert_many(store: Store, rows: Iterable[Mapping[str, Any]]) -> int:
    """Record rows in one transaction; returns how many were new."""
    return _insert_prepared(store, _lock_order([_prepare(r) for r in rows]))


def insert_stored(store: Store, rows: Iterable[Mapping[str, Any]]) -> int:
    """Record rows as another store returned them (``stored_rows``: money in
    picodollars), unchanged; returns how many were new."""
    return _insert_prepared(store, _lock_order([tuple(r.get(c) for c in STORED_COLUMNS) for r in rows]))


def stored_rows(store: Store, *, after_id: int = 0, limit: int = 5000) -> list[dict]:
    """Rows as stored (money in picodollars), in insertion order, from the one
    after ``after_id``; each has its ``id`` for the next page."""
    with store.read() as c:
        return rows_as_dicts(c.execute(
            f"SELECT id, {', '.join(STORED_COLUMNS)} FROM ledger WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)))


def spend(store: Store, tenant: str, first_day: str, last_day: str) -> float:
    """USD spent by a tenant over a range of UTC days (inclusive), from the
    per-day totals a trigger keeps beside the ledger (one row per day)."""
    with store.read() as c:
        row = c.execute(
            "SELECT COALESCE(SUM(cost_picousd), 0) FROM daily_spend WHERE tenant = ? AND day BETWEEN ? AND ?",
            (tenant, first_day, last_day),
        ).fetchone()
    return usd(row[0])


def iter_rows(store: Store, columns: tuple[str, ...], *, tenant: str | None = None, first_day: str | None = None,
              last_day: str | None = None, chunk: int = 5000):
    """Ledger rows (tuples of ``columns``, the engine's keys: money in USD) in
    the order they were recorded, read in chunks so that a large ledger
    streams instead of filling memory."""
    unknown = set(columns) - set(LEDGER_COLUMNS)
    if unknown:
        raise ValueError(f"unknown ledger columns: {sorted(unknown)}")
    stored = [LEDGER_MONEY.get(c, c) for c in columns]
    money = [c in LEDGER_MONEY for c in columns]
    where, params = where_clause(("tenant = ?", tenant), ("day >= ?", first_day), ("day <= ?", last_day))
    last_id = 0
    while True:
        with store.read() as c:
            found = c.execute(
                f"SELECT id, {', '.join(stored)} FROM ledger{where}{' AND' if where else ' WHERE'} id > ? "
                "ORDER BY id LIMIT ?", (*params, last_id, chunk)).fetchall()
        if not found:
            return
        last_id = found[-1][0]
        for row in found:
            yield tuple(usd(v) if is_money else v for v, is_money in zip(row[1:], money))


def spending_tenants(store: Store) -> list[str]:
    """Every tenant with spend recorded in the ledger."""
    with store.read() as c:
        return [r[0] for r in c.execute("SELECT DISTINCT tenant FROM daily_spend ORDER BY tenant")]


def count(store: Store) -> int:
    with store.read() as c:
        return c.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]


def with_usd(row: dict) -> dict:
    """A stored row with its money in USD as well (``cost_usd`` beside ``cost_picousd``...)."""
    return {**row, **{key: usd(row.get(column)) for key, column in LEDGER_MONEY.items()}}


def by_response_id(store: Store, response_id: str) -> dict | None:
    """The stored row (money in picodollars and, under the engine's keys, in USD)."""
    with store.read() as c:
        rows = rows_as_dicts(c.execute(
            f"SELECT id, {', '.join(STORED_COLUMNS)} FROM ledger WHERE response_id = ?", (response_id,)))
    return with_usd(rows[0]) if rows else None


def rows(store: Store, *, tenant: str | None = None, source: str | None = None) -> list[dict]:
    """Every row (of a tenant, or of a source), oldest first, money in USD and picodollars.
    For checks and tests; reports read the roll-ups."""
    where, params = where_clause(("tenant = ?", tenant), ("source = ?", source))
    with store.read() as c:
        found = rows_as_dicts(c.execute(f"SELECT id, {', '.join(STORED_COLUMNS)} FROM ledger{where} ORDER BY id",
                                        params))
    return [with_usd(r) for r in found]


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


def touch_session(store: Store, tenant: str, session_id: str, *, ts: float, level: str | None, model: str | None) -> dict:
    """Record a call of a session: its tier and the gap since the previous call.
    Returns the session as ``get_session`` would read it now."""
    select = (f"SELECT level, model, calls, first_ts, last_ts, gaps FROM sessions WHERE tenant = ? AND session_id = ? "
              f"{store.for_update}")
    with store.write() as c:
        row = c.execute(select, (tenant, session_id)).fetchone()
        if row is None:
            # ON CONFLICT: another machine may add the same session at the same moment
            inserted = c.execute(
                "INSERT INTO sessions (tenant, session_id, level, model, calls, first_ts, last_ts) "
                "VALUES (?, ?, ?, ?, 1, ?, ?) ON CONFLICT (tenant, session_id) DO NOTHING",
                (tenant, session_id, level, model, ts, ts),
            ).rowcount
            if inserted:
                return {"level": level, "model": model, "calls": 1, "first_ts": ts, "last_ts": ts, "gaps": []}
            row = c.execute(select, (tenant, session_id)).fetchone()
        gaps = json.loads(row[5])
        if row[4] is not None:
            gaps = (gaps + [max(0.0, ts - row[4])])[-MAX_REMEMBERED_GAPS:]
        c.execute(
            "UPDATE sessions SET level = COALESCE(?, level), model = COALESCE(?, model), calls = calls + 1, "
            "last_ts = ?, gaps = ? WHERE tenant = ? AND session_id = ?",
            (level, model, ts, json.dumps(gaps), tenant, session_id),
        )
    return {"level": row[0] if level is None else level, "model": row[1] if model is None else model,
            "calls": row[2] + 1, "first_ts": row[3], "last_ts": ts, "gaps": gaps}


def stored_sessions(store: Store) -> list[dict]:
    with store.read() as c:
        return rows_as_dicts(c.execute(
            "SELECT tenant, session_id, level, model, calls, first_ts, last_ts, gaps FROM sessions "
            "ORDER BY tenant, session_id"))


def insert_sessions(store: Store, sessions: list[dict]) -> int:
    """Add sessions another store returned (``stored_sessions``); one already here is kept."""
    if not sessions:
        return 0
    columns = ("tenant", "session_id", "level", "model", "calls", "first_ts", "last_ts", "gaps")
    with store.write() as c:
        return c.executemany(
            f"INSERT INTO sessions ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) "
            "ON CONFLICT (tenant, session_id) DO NOTHING", [tuple(s[k] for k in columns) for s in sessions]).rowcount


# -- the recovery spool ---------------------------------------------------------
# When the database cannot take a row after the API has already answered (and
# billed), the row goes to a JSON-lines file on this machine (mode 0600; beside
# a SQLite file, in the data directory for a server) and is added to the
# ledger the next time the store opens. Rows are keyed by response_id, so
# replaying twice never counts a response twice.


def spool(store: Store, row: Mapping[str, Any]) -> Path:
    """Append one ledger row to the recovery spool (fsync'd); raises OSError if even that fails."""
    path = store.spool_path
    if path is None:
        raise OSError("an in-memory database has no recovery spool")
    path.parent.mkdir(parents=True, exist_ok=True)
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
    path = store.spool_path
    if path is None or not path.parent.is_dir():
        return 0
    orphans = [*path.parent.glob(f"{path.name}.*.replaying"), *path.parent.glob(f"{path.name}.*.journal")]
    added = sum(_replay_orphan(store, orphan) for orphan in orphans)
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
    """A file a replaying process took and never finished, or the journal of
    a process that was answering (see ``Journal``), when that process died:
    replay it unless its process is still alive. The spool is a file on this machine, so
    its pid can be checked here."""
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
    return _replay_file(store, store.spool_path, taken)


def _replay_file(store: Store, path: Path, taken: Path) -> int:
    rows = []
    try:
        text = taken.read_text("utf-8")
    except FileNotFoundError:
        return 0  # another process replayed it first
    for line in text.split("\n"):  # not splitlines: U+2028 and U+0085 may stand unescaped inside a line
        if not line.strip():
            continue
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



_journal_numbers = itertools.count(1)


class Journal:
    """Rows answered for but not yet in the ledger, so that the ledger insert
    can come off the client's critical path and a crash before it still loses
    nothing: each row is one line here, appended the moment the answer has
    gone out, before any other work; ``clear`` empties the file once the rows
    are in. The file is ``<spool>.j<n>.<pid>.journal`` (n: one per journal of the
    process, so two engines on one store never empty each other's): when the process dies with rows
    in it, the next store open, in any process, adds them (``replay_spool``,
    as for a replayer that died). Not fsync'd: like the ledger itself (SQLite
    WAL, synchronous=NORMAL) it survives a killed or crashed process, whose
    written bytes the kernel keeps; not a power cut. A store without a spool
    (in memory) has no journal: ``write`` does nothing there."""

    def __init__(self, store: Store):
        spool_path = store.spool_path
        name = f"{spool_path.name}.j{next(_journal_numbers)}.{os.getpid()}.journal" if spool_path else None
        self.path = spool_path.with_name(name) if spool_path else None
        self._fd: int | None = None
        self._dirty = False

    def write(self, row: Mapping[str, Any]) -> None:
        """Append one row (raises OSError when the file cannot be written)."""
        if self.path is None:
            return
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.write(self._fd, fastjson.dumps(row, default=str) + b"\n")
        self._dirty = True

    def clear(self) -> None:
        """Every row written so far is in the ledger (or in the recovery spool)."""
        if self._dirty:
            os.ftruncate(self._fd, 0)
            self._dirty = False

    def close(self) -> None:
        """Clear, close and remove the file (call once the rows are in)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._dirty = False
            self.path.unlink(missing_ok=True)

"""Report queries. Every report is answered from the per-day roll-ups that
triggers keep beside the ledger (migrations m031-m033), so its cost grows with the
number of days, models and sessions, not with the number of calls.

Every function returns plain sums (one dict per group, the roll-up's columns);
the arithmetic on them (rates, shares, savings by lever) is ``mcp_tars.reports``.
"""

from __future__ import annotations

from typing import Iterable

from . import Store, where_clause
from .migrations import _ROLLUP_SUMS_V2 as _ROLLUP_SUMS  # the current roll-up columns
from .migrations import LEVER_BITS, create_report_rollups

SUM_COLUMNS: tuple[str, ...] = tuple(c for c, _ in _ROLLUP_SUMS)
OTHER_SESSIONS = "\x00other"  # the key of the group that gathers the sessions below the top N
_SUMS_SQL = ", ".join(f"SUM({c}) AS {c}" for c in SUM_COLUMNS)
_GROUPINGS = ((), ("model",), ("day",), ("day", "model"))


def _where(tenant: str | None, first_day: str | None, last_day: str | None) -> tuple[str, list]:
    return where_clause(("tenant = ?", tenant), ("day >= ?", first_day), ("day <= ?", last_day))


def _rows(store: Store, sql: str, params: Iterable) -> list[dict]:
    with store.read() as c:
        cur = c.execute(sql, list(params))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]


def sums(store: Store, *, tenant: str | None, first_day: str | None, last_day: str | None,
         by: tuple[str, ...] = ()) -> list[dict]:
    """Roll-up sums over a range of UTC days (inclusive; None is unbounded),
    grouped by nothing (one row, zeros when empty), ``("model",)``, ``("day",)``
    or ``("day", "model")``. Groups come sorted by their keys."""
    if tuple(by) not in _GROUPINGS:
        raise ValueError(f"cannot group report sums by {by!r}; use one of {list(_GROUPINGS)}")
    where, params = _where(tenant, first_day, last_day)
    keys = ", ".join(by)
    select = f"{keys}, {_SUMS_SQL}" if by else _SUMS_SQL
    sql = f"SELECT {select} FROM rollup_daily_model{where}"
    if by:
        sql += f" GROUP BY {keys} HAVING SUM(calls) > 0 ORDER BY {keys}"
    rows = _rows(store, sql, params)
    if not by:
        row = rows[0]
        return [{c: (row[c] if row[c] is not None else 0) for c in SUM_COLUMNS}]
    return rows


LEVERS: tuple[str, ...] = tuple(lever for lever, _ in LEVER_BITS)


def lever_sums(store: Store, *, tenant: str | None, first_day: str | None, last_day: str | None) -> dict[str, dict]:
    """Sums per lever (keys ``LEVERS``) over the calls whose saving by that
    lever is non-zero, either way: the roll-up rows whose ``levers`` mask has
    the lever's bit. A call counts under every lever that touched it, so the
    groups overlap; each holds all of its own lever's saving. A lever that
    touched nothing gets zeros."""
    where, params = _where(tenant, first_day, last_day)
    # One pass, at most 2**len(LEVERS) rows back: fold each mask into its levers here.
    rows = _rows(store, f"SELECT levers, {_SUMS_SQL} FROM rollup_daily_model{where} GROUP BY levers ORDER BY levers",
                 params)
    out = {lever: dict.fromkeys(SUM_COLUMNS, 0) for lever in LEVERS}
    for row in rows:
        mask = row.pop("levers")
        for bit, lever in enumerate(LEVERS):
            if mask >> bit & 1:
                into = out[lever]
                for column, value in row.items():
                    into[column] += value
    return out


def session_sums(store: Store, *, tenant: str | None, first_day: str | None, last_day: str | None,
                 top: int) -> list[dict]:
    """Sums per session (key ``session``; '' for calls without a session), the
    ``top`` most expensive first; the rest gathered under ``OTHER_SESSIONS``
    so that the groups still add up to the period's totals."""
    if top < 1:
        raise ValueError(f"the number of sessions to list must be at least 1 (got {top})")
    where, params = _where(tenant, first_day, last_day)
    # Ranking needs one sum per session; the full sums only for the top ones
    # and, once, for the rest (cheap: no grouping).
    with store.read() as c:
        keys = [r[0] for r in c.execute(
            f"SELECT session_key FROM rollup_daily_session{where} GROUP BY session_key HAVING SUM(calls) > 0 "
            "ORDER BY SUM(cost_usd) DESC, SUM(calls) DESC, session_key LIMIT ?", [*params, top])]
    if not keys:
        return []
    marks = ", ".join("?" for _ in keys)
    inside = f"{where} AND" if where else " WHERE"
    rows = {r["session"]: r for r in _rows(
        store, f"SELECT session_key AS session, {_SUMS_SQL} FROM rollup_daily_session{inside} session_key IN ({marks}) "
               "GROUP BY session_key", [*params, *keys])}
    out = [rows[k] for k in keys]
    rest = _rows(store, f"SELECT {_SUMS_SQL} FROM rollup_daily_session{inside} session_key NOT IN ({marks})",
                 [*params, *keys])[0]
    if rest["calls"]:
        out.append({"session": OTHER_SESSIONS, **rest})
    return out


def day_span(store: Store, *, tenant: str | None) -> tuple[str | None, str | None]:
    """First and last UTC day with ledger rows (None, None for an empty ledger)."""
    where, params = _where(tenant, None, None)
    rows = _rows(store, f"SELECT MIN(day) AS first, MAX(day) AS last FROM rollup_daily_model{where}", params)
    return rows[0]["first"], rows[0]["last"]


def batches_ingested_per_day(store: Store, *, tenant: str | None, first_day: str | None,
                             last_day: str | None) -> dict[str, int]:
    """Message Batches whose results entered the ledger, per UTC day (the
    deferred queue's ``batches`` table; empty when it does not exist)."""
    with store.read() as c:
        if c.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'batches'").fetchone() is None:
            return {}
    where, params = _where(tenant, first_day, last_day)
    rows = _rows(store, "SELECT day, COUNT(*) AS n FROM (SELECT tenant, date(ingested_at, 'unixepoch') AS day "
                        f"FROM batches WHERE ingested_at IS NOT NULL){where} GROUP BY day", params)
    return {r["day"]: r["n"] for r in rows}


def ledger_sums(store: Store, *, tenant: str | None, first_day: str | None, last_day: str | None) -> dict:
    """The same sums computed straight from the ledger (slow: a full scan of
    the range). For checking the roll-ups, not for reports."""
    where, params = _where(tenant, first_day, last_day)
    select = ", ".join(f"SUM({e.format(r='ledger')}) AS {c}" for c, e in _ROLLUP_SUMS)
    row = _rows(store, f"SELECT {select} FROM ledger{where}", params)[0]
    return {c: (row[c] if row[c] is not None else 0) for c in SUM_COLUMNS}


def rollup_mismatches(store: Store, *, tolerance_usd: float = 1e-6) -> list[str]:
    """Differences between the roll-ups and the ledger, per tenant and day; an
    empty list when they agree (money within ``tolerance_usd``)."""
    direct_sql = ", ".join(f"SUM({e.format(r='ledger')}) AS {c}" for c, e in _ROLLUP_SUMS)
    direct = {(r.pop("tenant"), r.pop("day")): r for r in _rows(
        store, f"SELECT tenant, day, {direct_sql} FROM ledger GROUP BY tenant, day", [])}
    problems: list[str] = []
    for table in ("rollup_daily_model", "rollup_daily_session"):
        rolled = {(r.pop("tenant"), r.pop("day")): r for r in _rows(
            store, f"SELECT tenant, day, {_SUMS_SQL} FROM {table} GROUP BY tenant, day HAVING SUM(calls) != 0", [])}
        for key in sorted(set(direct) | set(rolled)):
            a_row, b_row = direct.get(key, {}), rolled.get(key, {})
            for col in SUM_COLUMNS:
                a, b = a_row.get(col) or 0, b_row.get(col) or 0
                differ = abs(a - b) > tolerance_usd if isinstance(a, float) or isinstance(b, float) else a != b
                if differ:
                    problems.append(f"{table} {key[0]} {key[1]} {col}: ledger {a!r}, roll-up {b!r}")
    return problems


def rebuild_rollups(store: Store) -> None:
    """Recompute the roll-ups from the ledger (after a manual edit with the
    triggers dropped, or to repair a damaged file)."""
    with store.write():
        create_report_rollups(store.db)

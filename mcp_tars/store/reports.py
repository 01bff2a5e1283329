"""Report queries. Every report is answered from the per-day roll-ups that
triggers keep beside the ledger (``schema.ROLLUPS``), so its cost grows with
the number of days, models and sessions, not with the number of calls.

Every function returns plain sums (one dict per group, the roll-up's columns,
money in USD under ``*_usd`` keys); the arithmetic on them (rates, shares,
savings by lever) is ``mcp_tars.reports``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable

from . import Store, rows_as_dicts, where_clause
from .schema import FLOAT_SUMS, LEVER_BITS, MONEY_SUMS, ROLLUP_SUMS, rollup_ddl, usd


def _api_name(column: str) -> str:
    return column.replace("_picousd", "_usd")


# The sums every group carries, under the names reports use (money in USD).
SUM_COLUMNS: tuple[str, ...] = tuple(_api_name(c) for c, _ in ROLLUP_SUMS)
OTHER_SESSIONS = "\x00other"  # the key of the group that gathers the sessions below the top N
_SUMS_SQL = ", ".join(f"SUM({c}) AS {c}" for c, _ in ROLLUP_SUMS)
_GROUPINGS = ((), ("model",), ("day",), ("day", "model"))
LEVERS: tuple[str, ...] = tuple(lever for lever, _ in LEVER_BITS)
_SUM_KEYS = frozenset(c for c, _ in ROLLUP_SUMS)


def _converted(row: dict) -> dict:
    """A row of sums as reports use it: money in USD, counts as int (a
    PostgreSQL SUM of BIGINT is a Decimal), NULL sums (no rows) as 0."""
    out = {}
    for key, value in row.items():
        if key in MONEY_SUMS:
            out[_api_name(key)] = usd(value or 0)
        elif key in FLOAT_SUMS:
            out[key] = float(value or 0)
        elif key in _SUM_KEYS:
            out[key] = int(value or 0)
        else:
            out[key] = value
    return out



def _where(tenant: str | None, first_day: str | None, last_day: str | None) -> tuple[str, list]:
    return where_clause(("tenant = ?", tenant), ("day >= ?", first_day), ("day <= ?", last_day))


def _rows(store: Store, sql: str, params: Iterable) -> list[dict]:
    with store.read() as c:
        return [_converted(r) for r in rows_as_dicts(c.execute(sql, list(params)))]


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
    return _rows(store, sql, params)


def lever_sums(store: Store, *, tenant: str | None, first_day: str | None, last_day: str | None) -> dict[str, dict]:
    """Sums per lever (keys ``LEVERS``) over the calls whose saving by that
    lever is non-zero, either way: the roll-up rows whose ``levers`` mask has
    the lever's bit. A call counts under every lever that touched it, so the
    groups overlap; each holds all of its own lever's saving. A lever that
    touched nothing gets zeros."""
    where, params = _where(tenant, first_day, last_day)
    # One pass, at most 2**len(LEVERS) rows back: fold each mask into its levers here,
    # in picodollars (exact), converting once at the end.
    with store.read() as c:
        rows = rows_as_dicts(c.execute(
            f"SELECT levers, {_SUMS_SQL} FROM rollup_daily_model{where} GROUP BY levers ORDER BY levers", params))
    raw = {lever: dict.fromkeys(_SUM_KEYS, 0) for lever in LEVERS}
    for row in rows:
        mask = row.pop("levers")
        for bit, lever in enumerate(LEVERS):
            if mask >> bit & 1:
                into = raw[lever]
                for column, value in row.items():
                    into[column] += value if column in FLOAT_SUMS else int(value)
    return {lever: _converted(sums_) for lever, sums_ in raw.items()}


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
            "ORDER BY SUM(cost_picousd) DESC, SUM(calls) DESC, session_key LIMIT ?", [*params, top])]
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
    deferred queue's ``batches`` table)."""
    where, params = where_clause(("tenant = ?", tenant))
    inside = f"{where} AND" if where else " WHERE"
    with store.read() as c:
        times = [r[0] for r in c.execute(f"SELECT ingested_at FROM batches{inside} ingested_at IS NOT NULL", params)]
    out: dict[str, int] = {}
    for ts in times:  # a batch holds up to 100,000 results: there are few of them
        day = datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")
        if (first_day is None or day >= first_day) and (last_day is None or day <= last_day):
            out[day] = out.get(day, 0) + 1
    return out


def ledger_sums(store: Store, *, tenant: str | None, first_day: str | None, last_day: str | None) -> dict:
    """The same sums computed straight from the ledger (slow: a full scan of
    the range). For checking the roll-ups, not for reports."""
    where, params = _where(tenant, first_day, last_day)
    select = ", ".join(f"SUM({e.format(r='ledger')}) AS {c}" for c, e in ROLLUP_SUMS)
    return _rows(store, f"SELECT {select} FROM ledger{where}", params)[0]


def rollup_mismatches(store: Store, *, tolerance_ms: float = 1e-6) -> list[str]:
    """Differences between the roll-ups and the ledger, per tenant and day; an
    empty list when they agree. Money and counts must be equal exactly (they
    are integers); the latency sum within ``tolerance_ms``."""
    direct_sql = ", ".join(f"SUM({e.format(r='ledger')}) AS {c}" for c, e in ROLLUP_SUMS)
    with store.read() as c:
        direct = {(r.pop("tenant"), r.pop("day")): r for r in rows_as_dicts(c.execute(
            f"SELECT tenant, day, {direct_sql} FROM ledger GROUP BY tenant, day"))}
        rolled_by_table = {table: {(r.pop("tenant"), r.pop("day")): r for r in rows_as_dicts(c.execute(
            f"SELECT tenant, day, {_SUMS_SQL} FROM {table} GROUP BY tenant, day HAVING SUM(calls) != 0"))}
            for table in ("rollup_daily_model", "rollup_daily_session")}
        spend = {(r[0], r[1]): (int(r[2]), int(r[3])) for r in c.execute(
            "SELECT tenant, day, calls, cost_picousd FROM daily_spend WHERE calls != 0")}
    problems: list[str] = []
    for table, rolled in rolled_by_table.items():
        for key in sorted(set(direct) | set(rolled)):
            a_row, b_row = direct.get(key, {}), rolled.get(key, {})
            for col, _ in ROLLUP_SUMS:
                a, b = a_row.get(col) or 0, b_row.get(col) or 0
                differ = abs(a - b) > tolerance_ms if col in FLOAT_SUMS else int(a) != int(b)
                if differ:
                    problems.append(f"{table} {key[0]} {key[1]} {col}: ledger {a!r}, roll-up {b!r}")
    for key in sorted(set(direct) | set(spend)):
        want = (int(direct[key]["calls"]), int(direct[key]["cost_picousd"])) if key in direct else (0, 0)
        if spend.get(key, (0, 0)) != want:
            problems.append(f"daily_spend {key[0]} {key[1]}: ledger {want}, roll-up {spend.get(key)}")
    return problems


def rebuild_rollups(store: Store) -> None:
    """Recompute the roll-ups from the ledger, in their current version (after
    a manual edit with the triggers dropped, or to repair a damaged file)."""
    with store.write() as c:
        for statement in rollup_ddl(store.backend):
            c.execute(statement)

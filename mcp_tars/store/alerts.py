"""Alert queries: budget warnings and limits, missed heartbeat targets.

At most one alert per (tenant, kind, scope, period): the first crossing is
recorded and later identical ones are ignored, so a check that runs before
every call does not flood the table.
"""

from __future__ import annotations

from . import Store, where_clause

_COLUMNS = ("tenant", "ts", "kind", "scope", "period", "share", "spent_usd", "limit_usd", "action", "message")


def record(store: Store, *, tenant: str, ts: float, kind: str, scope: str, period: str, message: str,
           share: float | None = None, spent_usd: float | None = None, limit_usd: float | None = None,
           action: str | None = None) -> bool:
    """Record an alert; False when the same alert was already recorded for this period."""
    values = (tenant, ts, kind, scope, period, share, spent_usd, limit_usd, action, message)
    with store.write() as c:
        cur = c.execute(
            f"INSERT INTO alerts ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)}) "
            "ON CONFLICT (tenant, kind, scope, period) DO NOTHING",
            values,
        )
        return cur.rowcount == 1


def between(store: Store, *, tenant: str | None, since_ts: float | None, until_ts: float | None,
            limit: int = 100) -> list[dict]:
    """Alerts recorded in [since_ts, until_ts) (None is unbounded), newest first."""
    where, params = where_clause(("tenant = ?", tenant), ("ts >= ?", since_ts), ("ts < ?", until_ts))
    with store.read() as c:
        cur = c.execute(f"SELECT {', '.join(_COLUMNS)} FROM alerts{where} ORDER BY ts DESC, id DESC LIMIT ?",
                        [*params, limit])
        return [dict(zip(_COLUMNS, row)) for row in cur.fetchall()]

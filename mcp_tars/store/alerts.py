"""Alert queries: budget warnings and limits, missed heartbeat targets.

At most one alert per (tenant, kind, scope, period): the first crossing is
recorded and later identical ones are ignored, so a check that runs before
every call does not flood the table.
"""

from __future__ import annotations

from . import Store, rows_as_dicts, where_clause
from .schema import to_picousd, usd

_COLUMNS = ("tenant", "ts", "kind", "scope", "period", "share", "spent_picousd", "limit_picousd", "action", "message")


def record(store: Store, *, tenant: str, ts: float, kind: str, scope: str, period: str, message: str,
           share: float | None = None, spent_usd: float | None = None, limit_usd: float | None = None,
           action: str | None = None) -> bool:
    """Record an alert; False when the same alert was already recorded for this period."""
    values = (tenant, ts, kind, scope, period, share, to_picousd(spent_usd), to_picousd(limit_usd), action, message)
    with store.write() as c:
        cur = c.execute(
            f"INSERT INTO alerts ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)}) "
            "ON CONFLICT (tenant, kind, scope, period) DO NOTHING",
            values,
        )
        return cur.rowcount == 1


def between(store: Store, *, tenant: str | None, since_ts: float | None, until_ts: float | None,
            limit: int = 100) -> list[dict]:
    """Alerts recorded in [since_ts, until_ts) (None is unbounded), newest first (money in USD)."""
    where, params = where_clause(("tenant = ?", tenant), ("ts >= ?", since_ts), ("ts < ?", until_ts))
    with store.read() as c:
        rows = rows_as_dicts(c.execute(f"SELECT {', '.join(_COLUMNS)} FROM alerts{where} ORDER BY ts DESC, id DESC LIMIT ?",
                                       [*params, limit]))
    for row in rows:
        row["spent_usd"], row["limit_usd"] = usd(row.pop("spent_picousd")), usd(row.pop("limit_picousd"))
    return rows


def stored_alerts(store: Store) -> list[dict]:
    """Every alert as stored (money in picodollars), oldest first: for copying a database."""
    with store.read() as c:
        return rows_as_dicts(c.execute(f"SELECT {', '.join(_COLUMNS)} FROM alerts ORDER BY ts, id"))


def insert_stored(store: Store, alerts: list[dict]) -> int:
    """Add alerts another store returned (``stored_alerts``); one already recorded is kept."""
    if not alerts:
        return 0
    with store.write() as c:
        return c.executemany(
            f"INSERT INTO alerts ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)}) "
            "ON CONFLICT (tenant, kind, scope, period) DO NOTHING", [tuple(a[k] for k in _COLUMNS) for a in alerts]
        ).rowcount

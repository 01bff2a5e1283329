"""Wall-clock time, with an optional shared offset for simulations.

Benchmarks replay sessions with pauses of many minutes (prompt-cache TTLs are
5 minutes and 1 hour). Waiting for real is not an option, so the simulated API
and the server can share a clock offset: when ``MCP_TARS_CLOCK_FILE`` names a
file, its content (a number of seconds, default 0) is added to ``time.time()``.
Both processes read the same file, so advancing it moves time for both.
Nothing else in the package calls ``time.time()`` for decisions that depend on
elapsed time.
"""

from __future__ import annotations

import os
import time

_cached: tuple[str, float, float] | None = None  # (path, mtime, offset)


def offset_seconds() -> float:
    global _cached
    path = os.environ.get("MCP_TARS_CLOCK_FILE")
    if not path:
        return 0.0
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        return 0.0
    if _cached and _cached[0] == path and _cached[1] == mtime:
        return _cached[2]
    try:
        with open(path, encoding="utf-8") as f:
            value = float(f.read().strip() or 0)
    except (OSError, ValueError):
        value = 0.0
    _cached = (path, mtime, value)
    return value


def now() -> float:
    """Seconds since the epoch, shifted by the shared simulation offset."""
    return time.time() + offset_seconds()


def utc_now():
    """``now()`` as an aware UTC datetime (prices depend on the date)."""
    from datetime import datetime, timezone

    return datetime.fromtimestamp(now(), timezone.utc)


def advance(seconds: float, path: str | None = None) -> float:
    """Move the shared clock forward (simulations only). Returns the new offset."""
    path = path or os.environ.get("MCP_TARS_CLOCK_FILE")
    if not path:
        raise RuntimeError("MCP_TARS_CLOCK_FILE is not set: there is no shared clock to advance")
    new = offset_seconds() + seconds
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(repr(new))
    os.replace(tmp, path)
    return new

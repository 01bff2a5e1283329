"""The store: every query mcp-tars makes, behind one interface, on two backends.

    open_store()                                   # $MCP_TARS_DB, else the per-user SQLite file
    open_store("/path/to/mcp-tars.db")             # SQLite: one file, one machine (the default)
    open_store("postgresql://user:pw@host/db")     # PostgreSQL: one database for a team

This package is the only place that speaks SQL or holds a connection. The
backends (``sqlite/``, ``postgres/``) own the connection, the write
discipline and the migrations; each concern keeps its queries in a module
beside this one (``ledger.py``, ``cache.py``, ``tasks.py``, ``reports.py``,
``alerts.py``), in SQL both backends run; ``schema.py`` holds the facts both
share (money in picodollars, the report roll-ups).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .base import Connection, Store, StoreError, rows_as_dicts

__all__ = ["Connection", "Store", "StoreError", "default_db_url", "open_store", "rows_as_dicts", "where_clause"]

_POSTGRES = re.compile(r"^postgres(ql)?:", re.IGNORECASE)
_ANY_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def where_clause(*conditions: tuple[str, object]) -> tuple[str, list]:
    """`` WHERE a AND b`` and its parameters from (sql, value) pairs whose value
    is not None (a None condition is left out); ``("", [])`` when none apply."""
    used = [(sql, value) for sql, value in conditions if value is not None]
    if not used:
        return "", []
    return " WHERE " + " AND ".join(sql for sql, _ in used), [value for _, value in used]


def default_db_url() -> str:
    """``$MCP_TARS_DB`` (a path or a postgresql:// URL), else the SQLite file in
    the per-user data directory."""
    env = os.environ.get("MCP_TARS_DB")
    if env and env.strip():
        return env.strip()
    import platformdirs

    return str(Path(platformdirs.user_data_dir("mcp-tars")) / "mcp-tars.db")


def open_store(url: str | os.PathLike | None = None, *, migrate: bool = True) -> Store:
    """Open (and, unless ``migrate`` is false, upgrade) the database at ``url``:
    a SQLite file path, ``:memory:``, or a ``postgresql://`` URL. None: ``default_db_url()``.

    A URL of any other scheme is refused (it would otherwise become a file
    with an odd name), as is a malformed PostgreSQL URL; an unreachable
    server is a StoreError that says what to check."""
    location = str(url) if url is not None else default_db_url()
    if _POSTGRES.match(location):
        try:
            from .postgres import PostgresStore
        except ImportError as e:
            raise StoreError("MCP_TARS_DB is a PostgreSQL URL, but the PostgreSQL driver is not installed: "
                             "pip install 'mcp-tars[postgres]' (psycopg)") from e
        return PostgresStore(location, migrate=migrate)
    if _ANY_URL.match(location):
        scheme = location.split(":", 1)[0]
        raise StoreError(f"MCP_TARS_DB: the scheme {scheme}:// is not supported. Give a file path (SQLite, "
                         "one machine) or a postgresql://user:password@host:port/database URL (a team database).")
    from .sqlite import SQLiteStore

    path = Path(location).expanduser() if location != ":memory:" else Path(location)
    return SQLiteStore(path, migrate=migrate)

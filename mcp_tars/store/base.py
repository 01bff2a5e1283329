"""What every backend provides: the store interface the query modules use.

A backend owns its connection, its write discipline and its dialect. The
query modules (``ledger.py``, ``tasks.py``, ``cache.py``, ``reports.py``,
``alerts.py``) write portable SQL with ``?`` placeholders against the
``Connection`` that ``read()`` and ``write()`` yield, and ask the store for
the few things that differ (``for_update``, ``skip_locked``,
``shared_across_hosts``). Nothing outside this package sees a connection.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol, Sequence

from .migrations import MIGRATIONS_TABLE, Migration, migrations


class StoreError(RuntimeError):
    """The database cannot be used; the message says why and what to do."""


class Cursor(Protocol):
    rowcount: int
    description: Any

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list: ...
    def __iter__(self) -> Iterator: ...


class Connection(Protocol):
    """The handle ``Store.read()`` and ``Store.write()`` yield: SQL with ``?``
    placeholders on either backend."""

    backend: str

    def execute(self, sql: str, params: Sequence | None = ()) -> Cursor: ...
    def executemany(self, sql: str, rows: Iterable[Sequence]) -> Cursor: ...


def rows_as_dicts(cursor: Cursor) -> list[dict]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


class Store:
    """One database: the ledger, the response cache, the deferred queue, alerts.

    Open one with ``open_store(url)``. Thread-safe; several processes (and,
    on PostgreSQL, several machines) may share one database."""

    backend: str = ""  # "sqlite" | "postgres"
    # appended to a SELECT of rows the same transaction is about to change
    # (PostgreSQL: lock them; SQLite: every write transaction holds the whole file)
    for_update: str = ""
    # appended to a SELECT of queued work: rows another worker holds are skipped
    skip_locked: str = ""
    # whether processes on other machines may share this database, so that a
    # claim's owner can only be judged by its lease, never by /proc
    shared_across_hosts: bool = False

    @property
    def location(self) -> str:
        """The database, as messages show it (a path, or a URL without its password)."""
        raise NotImplementedError

    @property
    def data_dir(self) -> Path:
        """Where files that go with this database on this machine live (the
        ledger recovery spool, a relative metrics log)."""
        raise NotImplementedError

    @property
    def spool_path(self) -> Path | None:
        """The ledger recovery spool (None: nowhere to keep one, e.g. in memory)."""
        raise NotImplementedError

    @contextmanager
    def read(self) -> Iterator[Connection]:
        raise NotImplementedError
        yield

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction. Everything inside commits together or not at all."""
        raise NotImplementedError
        yield

    def write_one(self, sql: str, params: Sequence = ()) -> int:
        """One statement as its own transaction (its triggers included): atomic
        like ``write()``, with fewer round trips on the hot path. Returns rowcount."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- schema -------------------------------------------------------------------

    @property
    def migrations(self) -> tuple[Migration, ...]:
        return migrations(self.backend)

    def _run_migration(self, conn: Connection, migration: Migration) -> None:
        raise NotImplementedError

    def _lock_schema(self, conn: Connection) -> None:
        """Keep other processes from migrating at the same time (inside ``write()``)."""

    _MIGRATIONS_DDL = (f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
                       "id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, applied_at TEXT NOT NULL)")

    def _has_migrations_table(self, conn: Connection) -> bool:
        raise NotImplementedError

    def applied_migrations(self) -> list[str]:
        with self.read() as c:
            if not self._has_migrations_table(c):
                return []
            return [r[0] for r in c.execute(f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY id")]

    def migrate(self, *, until: str | None = None) -> list[str]:
        """Apply the migrations this database lacks, in order (up to and
        including ``until``, for tests that need an older schema); refuse a
        database written by a newer mcp-tars. Safe when several processes start
        at once. Returns the names applied now."""
        known = [m.name for m in self.migrations]
        if until is not None and until not in known:
            raise ValueError(f"no migration {until!r}")
        applied_now: list[str] = []
        with self.write() as conn:
            self._lock_schema(conn)
            conn.execute(self._MIGRATIONS_DDL)
            rows = conn.execute(f"SELECT id, name FROM {MIGRATIONS_TABLE} ORDER BY id").fetchall()
            applied = {r[1] for r in rows}
            unknown = [r[1] for r in rows if r[1] not in known]
            if unknown:
                raise StoreError(
                    f"the database {self.location} was written by a newer mcp-tars "
                    f"(unknown migrations: {', '.join(unknown)}). Upgrade mcp-tars, "
                    "or point MCP_TARS_DB at another database."
                )
            next_id = max((r[0] for r in rows), default=0) + 1
            for m in self.migrations:
                if m.name not in applied:
                    self._run_migration(conn, m)
                    conn.execute(f"INSERT INTO {MIGRATIONS_TABLE} (id, name, applied_at) VALUES (?, ?, ?)",
                                 (next_id, m.name, datetime.now(timezone.utc).isoformat(timespec="seconds")))
                    next_id += 1
                    applied_now.append(m.name)
                if m.name == until:
                    break
        return applied_now

    def _after_open(self, migrate: bool) -> None:
        self.replayed_rows = 0
        if not migrate:
            return
        self.migrate()
        from .ledger import replay_spool

        try:  # rows saved while the database could not take them
            self.replayed_rows = replay_spool(self)
        except StoreError as e:  # still failing: keep the spool for the next start
            logging.getLogger("mcp_tars.store").error("ledger recovery spool not replayed yet: %s", e)

"""The SQLite store: one file the user can open with any SQLite tool.

This package is the only place that speaks SQL. ``Store`` owns the connection,
the write discipline and the migrations; each concern keeps its queries in a
module beside this one (``ledger.py``, ``cache.py``, ``tasks.py``...).

Several server processes may share one database file: WAL mode lets readers
run beside a writer, every write runs in ``BEGIN IMMEDIATE`` (so two writers
queue on the busy timeout instead of failing half-way), and a thread lock keeps
one process's threads from interleaving on the shared connection.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import sqlite_utils

from .migrations import MIGRATIONS, MIGRATIONS_TABLE

BUSY_TIMEOUT_MS = 30_000


class StoreError(RuntimeError):
    """The database cannot be used; the message says why and what to do."""


def default_db_path() -> Path:
    env = os.environ.get("MCP_TARS_DB")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("mcp-tars")) / "mcp-tars.db"


def _create_private_file(path: Path) -> None:
    """Create the database file with mode 0600 before SQLite opens it; SQLite
    gives its -wal and -shm files the same permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


class Store:
    def __init__(self, path: str | os.PathLike | None = None, *, migrate: bool = True):
        self.path = Path(path) if path is not None else default_db_path()
        self._lock = threading.RLock()
        try:
            if str(self.path) != ":memory:":
                _create_private_file(self.path)
            conn = sqlite3.connect(
                str(self.path),
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            conn.execute("PRAGMA synchronous = NORMAL")  # durable in WAL across process crashes
            conn.execute("PRAGMA foreign_keys = ON")
        except (sqlite3.DatabaseError, OSError) as e:
            raise StoreError(f"cannot open the database {self.path}: {e}. "
                             "Check the path (MCP_TARS_DB), its permissions and free disk space.") from e
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self.journal_mode = mode
        if migrate:
            self.migrate()

    # -- transactions -------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. Everything inside commits together or not at all."""
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self.conn

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    # -- schema -------------------------------------------------------------

    def applied_migrations(self) -> list[str]:
        if not self.db[MIGRATIONS_TABLE].exists():
            return []
        return [r[0] for r in self.conn.execute(f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY id")]

    def migrate(self) -> list[str]:
        """Apply the migrations this database lacks, in order; refuse a database
        written by a newer mcp-tars. Safe when several processes start at once."""
        known = [m.name for m in MIGRATIONS]
        applied_now: list[str] = []
        try:
            with self.write() as conn:
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
                    "id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, applied_at TEXT NOT NULL)"
                )
                applied = self.applied_migrations()
                unknown = [n for n in applied if n not in known]
                if unknown:
                    raise StoreError(
                        f"the database {self.path} was written by a newer mcp-tars "
                        f"(unknown migrations: {', '.join(unknown)}). Upgrade mcp-tars, "
                        "or point MCP_TARS_DB at another file."
                    )
                for m in MIGRATIONS:
                    if m.name in applied:
                        continue
                    m.apply(self.db)
                    conn.execute(
                        f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (?, datetime('now'))",
                        (m.name,),
                    )
                    applied_now.append(m.name)
        except sqlite3.DatabaseError as e:
            raise StoreError(
                f"the database {self.path} cannot be read or upgraded: {e}. If the file is "
                "damaged, move it aside (mcp-tars creates a new one) and keep the old copy for recovery."
            ) from e
        return applied_now

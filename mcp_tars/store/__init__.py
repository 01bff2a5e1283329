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

import logging
import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import sqlite_utils

from .migrations import MIGRATIONS, MIGRATIONS_TABLE

BUSY_TIMEOUT_MS = 30_000  # MCP_TARS_BUSY_TIMEOUT_MS overrides it (tests use a short one)


def where_clause(*conditions: tuple[str, object]) -> tuple[str, list]:
    """`` WHERE a AND b`` and its parameters from (sql, value) pairs whose value
    is not None (a None condition is left out); ``("", [])`` when none apply."""
    used = [(sql, value) for sql, value in conditions if value is not None]
    if not used:
        return "", []
    return " WHERE " + " AND ".join(sql for sql, _ in used), [value for _, value in used]


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
        self.busy_timeout_ms = int(os.environ.get("MCP_TARS_BUSY_TIMEOUT_MS") or BUSY_TIMEOUT_MS)
        try:
            if str(self.path) != ":memory:":
                _create_private_file(self.path)
            conn = sqlite3.connect(
                str(self.path),
                timeout=self.busy_timeout_ms / 1000,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            conn.execute("PRAGMA synchronous = NORMAL")  # durable in WAL across process crashes
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as e:
            raise self._failure("opened", e) from e
        except OSError as e:
            raise StoreError(f"cannot open the database {self.path}: {e}. "
                             "Check the path (MCP_TARS_DB), its permissions and free disk space.") from e
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self.journal_mode = mode
        if migrate:
            self.migrate()
            from .ledger import replay_spool

            try:  # rows saved while the database could not take them
                self.replayed_rows = replay_spool(self)
            except StoreError as e:  # still failing: keep the spool for the next start
                logging.getLogger("mcp_tars.store").error("ledger recovery spool not replayed yet: %s", e)
                self.replayed_rows = 0

    # -- transactions -------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. Everything inside commits together or not at all."""
        with self._lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as e:  # locked, read-only, damaged...
                raise self._failure("written", e) from e
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException as e:
                if self.conn.in_transaction:  # a failed COMMIT (disk full) leaves it open
                    try:
                        self.conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                if type(e) in (sqlite3.OperationalError, sqlite3.DatabaseError):
                    raise self._failure("written", e) from e
                raise

    def write_one(self, sql: str, params: tuple = ()) -> int:
        """One statement as its own transaction (SQLite autocommit): atomic like
        ``write()``, with two round trips fewer on the hot path. Returns rowcount."""
        with self._lock:
            try:
                return self.conn.execute(sql, params).rowcount
            except sqlite3.DatabaseError as e:
                if type(e) in (sqlite3.OperationalError, sqlite3.DatabaseError):
                    raise self._failure("written", e) from e
                raise

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self.conn
            except sqlite3.DatabaseError as e:
                if type(e) in (sqlite3.OperationalError, sqlite3.DatabaseError):
                    raise self._failure("read", e) from e
                raise

    def _failure(self, done: str, e: sqlite3.DatabaseError) -> "StoreError":
        """Storage faults (full disk, lock held too long, read-only, damage) as a
        StoreError that says what to do; constraint errors stay what they are."""
        text = str(e).lower()
        if "full" in text:
            advice = "the disk is full (or the file reached its size limit): free some space"
        elif "locked" in text or "busy" in text:
            advice = (f"another process held the database lock for more than {self.busy_timeout_ms / 1000:g} s: "
                      "stop the process that holds it (a long-running sqlite3 shell, a backup) and retry")
        elif "readonly" in text or "read-only" in text:
            advice = "the file or its directory is read-only: check permissions and the mount"
        elif "malformed" in text or "not a database" in text or "corrupt" in text:
            advice = ("the file is damaged: move it aside (mcp-tars then creates a new one) and keep the old "
                      "copy for recovery (sqlite3 FILE .recover)")
        else:
            advice = "check the path (MCP_TARS_DB), its permissions and free disk space"
        return StoreError(f"the database {self.path} cannot be {done}: {e}. {advice}.")

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

"""The SQLite backend: one file the user can open with any SQLite tool (the
embedded default, for one person on one machine).

Several server processes may share one database file: WAL mode lets readers
run beside a writer, every write runs in ``BEGIN IMMEDIATE`` (so two writers
queue on the busy timeout instead of failing half-way, and a transaction
never sees a row change under it: ``for_update`` is not needed), and a thread
lock keeps one process's threads from interleaving on the shared connection.
The file lives on one machine, so a claim's owner can be checked in /proc.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from ..base import Store, StoreError
from ..migrations import MIGRATIONS_TABLE, Migration

BUSY_TIMEOUT_MS = 30_000  # MCP_TARS_BUSY_TIMEOUT_MS overrides it (tests use a short one)


class SQLiteConnection:
    """``sqlite3.Connection`` behind the store's ``Connection`` interface."""

    backend = "sqlite"

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def execute(self, sql: str, params: Sequence | None = ()) -> sqlite3.Cursor:
        return self._conn.execute(sql, params or ())

    def executemany(self, sql: str, rows: Iterable[Sequence]) -> sqlite3.Cursor:
        return self._conn.executemany(sql, rows)


def _create_private_file(path: Path) -> None:
    """Create the database file with mode 0600 before SQLite opens it; SQLite
    gives its -wal and -shm files the same permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


class SQLiteStore(Store):
    backend = "sqlite"

    def __init__(self, path: str | os.PathLike, *, migrate: bool = True):
        self.path = Path(path)
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
        self.conn = conn  # the raw connection: for this package, and for tests that break SQLite on purpose
        self._handle = SQLiteConnection(conn)
        self.journal_mode = mode
        self._after_open(migrate)

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def data_dir(self) -> Path:
        return self.path.parent

    @property
    def spool_path(self) -> Path | None:
        if str(self.path) == ":memory:":
            return None
        return self.path.with_name(self.path.name + ".ledger-spool.jsonl")

    # -- transactions -------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[SQLiteConnection]:
        with self._lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as e:  # locked, read-only, damaged...
                raise self._failure("written", e) from e
            try:
                yield self._handle
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

    def write_one(self, sql: str, params: Sequence = ()) -> int:
        # SQLite autocommit: one statement is one transaction
        with self._lock:
            try:
                return self.conn.execute(sql, params).rowcount
            except sqlite3.DatabaseError as e:
                if type(e) in (sqlite3.OperationalError, sqlite3.DatabaseError):
                    raise self._failure("written", e) from e
                raise

    @contextmanager
    def read(self) -> Iterator[SQLiteConnection]:
        with self._lock:
            try:
                yield self._handle
            except sqlite3.DatabaseError as e:
                if type(e) in (sqlite3.OperationalError, sqlite3.DatabaseError):
                    raise self._failure("read", e) from e
                raise

    def _failure(self, done: str, e: sqlite3.DatabaseError) -> StoreError:
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

    def _has_migrations_table(self, conn: SQLiteConnection) -> bool:
        return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                            (MIGRATIONS_TABLE,)).fetchone() is not None

    def _run_migration(self, conn: SQLiteConnection, migration: Migration) -> None:
        for statement in migration.sqlite_statements():
            conn.execute(statement)

    def migrate(self, *, until: str | None = None) -> list[str]:
        try:
            return super().migrate(until=until)
        except sqlite3.DatabaseError as e:  # what write() leaves as it is (a constraint, a schema clash)
            raise StoreError(
                f"the database {self.path} cannot be read or upgraded: {e}. If the file is "
                "damaged, move it aside (mcp-tars creates a new one) and keep the old copy for recovery."
            ) from e

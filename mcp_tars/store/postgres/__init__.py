"""The PostgreSQL backend: one ledger, one cache and one queue for a team,
on a database server that several machines share.

The same SQL as SQLite (``?`` placeholders become psycopg's ``%s``), in
autocommit mode: ``write()`` is one transaction, ``write_one()`` one
statement, and a read sees what is committed when each statement starts
(like SQLite in WAL mode). The differences that matter:

* rows a transaction reads and then changes are locked (``for_update``), and
  queued work is claimed with ``FOR UPDATE SKIP LOCKED`` (``skip_locked``),
  so two machines never take the same task and never wait on each other;
* claims carry a lease (tasks.lease_until): another machine's processes
  cannot be looked up in /proc, so a claim is taken over only once its lease
  has run out (``shared_across_hosts``);
* roll-ups are kept by one PL/pgSQL trigger function (store/schema.py);
* migrations run under an advisory lock, so servers starting together
  migrate once;
* a dropped connection is opened again on the next use.

The ledger recovery spool lives in this machine's data directory.
"""

from __future__ import annotations

import hashlib
import os
import threading
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator, Sequence
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors

from ..base import Store, StoreError
from ..migrations import MIGRATIONS_TABLE, Migration

CONNECT_TIMEOUT_SECONDS = 10
LOCK_TIMEOUT_MS = 30_000  # MCP_TARS_BUSY_TIMEOUT_MS overrides it, as for SQLite


def redact(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "postgresql://…"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{host}"
    query = "&".join("password=***" if q.lower().startswith("password=") else q for q in parts.query.split("&")
                     if q) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _said(e: Exception) -> str:
    """libpq's message on one line, without its closing punctuation (ours follows)."""
    return " ".join(str(e).split()).rstrip(".?!")


def check_url(url: str) -> dict:
    """The connection parameters of a postgresql:// URL; StoreError when malformed."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as e:
        raise StoreError(f"MCP_TARS_DB={redact(url)!r} is not a valid PostgreSQL URL: {_said(e)}. "
                         "Write it as postgresql://user:password@host:port/database") from e
    if not params.get("dbname"):
        raise StoreError(f"MCP_TARS_DB={redact(url)!r} names no database: write it as "
                         "postgresql://user:password@host:port/database")
    return params


@lru_cache(maxsize=256)
def _with_placeholders(sql: str) -> str:
    # psycopg's placeholders; our SQL has no literal '?' and escapes no '%'
    return sql.replace("%", "%%").replace("?", "%s")


def _clean(value):
    # PostgreSQL text cannot hold NUL characters (SQLite can): they become U+FFFD
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):  # an array parameter
        return [_clean(v) for v in value]
    return value


class PostgresConnection:
    """A psycopg connection behind the store's ``Connection`` interface."""

    backend = "postgres"

    def __init__(self, conn: psycopg.Connection):
        self._conn = conn

    def execute(self, sql: str, params: Sequence | None = ()) -> psycopg.Cursor:
        if not params:
            return self._conn.execute(sql)
        return self._conn.execute(_with_placeholders(sql), [_clean(v) for v in params])

    def executemany(self, sql: str, rows: Iterable[Sequence]) -> psycopg.Cursor:
        cursor = self._conn.cursor()
        cursor.executemany(_with_placeholders(sql), [[_clean(v) for v in row] for row in rows])
        return cursor


class PostgresStore(Store):
    backend = "postgres"
    for_update = "FOR UPDATE"
    skip_locked = "FOR UPDATE SKIP LOCKED"
    shared_across_hosts = True

    def __init__(self, url: str, *, migrate: bool = True):
        self.url = url
        self._params = check_url(url)
        self._lock = threading.RLock()
        self.lock_timeout_ms = int(os.environ.get("MCP_TARS_BUSY_TIMEOUT_MS") or LOCK_TIMEOUT_MS)
        self._conn: psycopg.Connection | None = None
        self._connection()  # fail now, with the reason, rather than on the first call
        self._after_open(migrate)

    @property
    def location(self) -> str:
        return redact(self.url)

    @property
    def data_dir(self) -> Path:
        import platformdirs

        return Path(platformdirs.user_data_dir("mcp-tars"))

    @property
    def spool_path(self) -> Path:
        p = self._params
        which = f"{p.get('user', '')}@{p.get('host', '')}:{p.get('port', '')}/{p['dbname']}?{p.get('options', '')}"
        return self.data_dir / f"postgres-{hashlib.sha256(which.encode()).hexdigest()[:16]}.ledger-spool.jsonl"

    # -- the connection --------------------------------------------------------

    def _connection(self) -> psycopg.Connection:
        """The open connection, opened (again) when there is none or it broke."""
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        extra = {} if "connect_timeout" in self._params else {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
        try:
            conn = psycopg.connect(self.url, autocommit=True, application_name="mcp-tars", **extra)
            conn.execute(f"SET lock_timeout = {int(self.lock_timeout_ms)}")
        except psycopg.OperationalError as e:
            raise StoreError(
                f"cannot connect to the PostgreSQL database {self.location}: {_said(e)}. Check that the "
                "server runs and accepts connections from this machine, and the user, password and database "
                "in MCP_TARS_DB (postgresql://user:password@host:port/database)."
            ) from e
        self._conn = conn
        return conn

    @contextmanager
    def write(self) -> Iterator[PostgresConnection]:
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction():
                    yield PostgresConnection(conn)
            except psycopg.Error as e:
                if _is_storage_fault(e):
                    raise self._failure("written", e) from e
                raise

    def write_one(self, sql: str, params: Sequence = ()) -> int:
        with self._lock:
            try:
                return PostgresConnection(self._connection()).execute(sql, params).rowcount
            except psycopg.Error as e:
                if _is_storage_fault(e):
                    raise self._failure("written", e) from e
                raise

    @contextmanager
    def read(self) -> Iterator[PostgresConnection]:
        with self._lock:
            conn = self._connection()
            try:
                yield PostgresConnection(conn)
            except psycopg.Error as e:
                if _is_storage_fault(e):
                    raise self._failure("read", e) from e
                raise

    def _failure(self, done: str, e: psycopg.Error) -> StoreError:
        if isinstance(e, pg_errors.DiskFull):
            advice = "the database server's disk is full: ask its administrator to free some space"
        elif isinstance(e, (pg_errors.LockNotAvailable, pg_errors.QueryCanceled)):
            advice = (f"another session held a lock for more than {self.lock_timeout_ms / 1000:g} s: find it in "
                      "pg_stat_activity (a long transaction, a migration by hand) and retry")
        elif isinstance(e, pg_errors.TransactionRollback):
            advice = "a concurrent write conflicted with this one: retry"
        elif isinstance(e, pg_errors.ReadOnlySqlTransaction):
            advice = "the server takes no writes (a standby?): point MCP_TARS_DB at the primary"
        elif isinstance(e, pg_errors.InsufficientPrivilege):
            advice = ("the database role lacks a privilege: grant it the right to create and change the tables "
                      "of its schema, or run `mcp-tars db migrate` once with a role that has it")
        else:
            advice = "check that the server runs and is reachable, and MCP_TARS_DB"
        return StoreError(f"the PostgreSQL database {self.location} cannot be {done}: {_said(e)}. {advice}.")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- schema ----------------------------------------------------------------

    def _has_migrations_table(self, conn: PostgresConnection) -> bool:
        return conn.execute("SELECT to_regclass(?) IS NOT NULL", (MIGRATIONS_TABLE,)).fetchone()[0]

    def _lock_schema(self, conn: PostgresConnection) -> None:
        # one lock per schema, released at commit: servers starting together migrate once
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema()))")

    def _run_migration(self, conn: PostgresConnection, migration: Migration) -> None:
        conn.execute(migration.sql)  # no parameters: psycopg runs the whole file at once


def _is_storage_fault(e: psycopg.Error) -> bool:
    """The database cannot be used right now (as opposed to a constraint or a bug in our SQL)."""
    return isinstance(e, (psycopg.OperationalError, psycopg.InternalError, pg_errors.InsufficientPrivilege))

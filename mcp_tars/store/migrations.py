"""Schema migrations: for each backend, an ordered list of SQL files recorded
by name in the database, so that any older database upgrades itself on open.

    mcp_tars/store/sqlite/migrations/m001_ledger.sql ... (the embedded default)
    mcp_tars/store/postgres/migrations/m001_schema.sql ... (team databases)

Names sort in the order migrations apply. A migration is frozen once
released: its file holds the SQL it ran, as it ran (never a call to a helper
whose output could change later), so every database that applied it has the
same schema. Change the schema by adding a file at the end; tests/test_store.py
keeps a checksum of every released file. The statements of one migration run
inside the transaction that records it.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

MIGRATIONS_TABLE = "_tars_migrations"


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def sqlite_statements(self) -> list[str]:
        """The file split into statements (a trigger body's semicolons included)."""
        out, pending = [], ""
        for line in self.sql.splitlines(keepends=True):
            pending += line
            if sqlite3.complete_statement(pending):
                statement = pending.strip()
                if statement.rstrip(";").strip() and not _only_comments(statement):
                    out.append(statement)
                pending = ""
        if pending.strip() and not _only_comments(pending):
            raise ValueError(f"migration {self.name}: incomplete last statement: {pending.strip()[:80]!r}")
        return out


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in text.splitlines())


@lru_cache(maxsize=None)
def migrations(backend: str) -> tuple[Migration, ...]:
    """Every migration of ``backend`` ("sqlite" or "postgres"), in the order they apply."""
    folder = resources.files(f"mcp_tars.store.{backend}").joinpath("migrations")
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return tuple(Migration(f.name[:-len(".sql")], f.read_text("utf-8")) for f in files)

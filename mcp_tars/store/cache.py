"""SQL of the response cache (tables: migrations m010_response_cache,
m036_response_cache_vectors and m037_response_cache_analysis; PostgreSQL
m001, m002 and m003).

Every lookup is an index probe, never a scan:

* exact: ``request_key`` (UNIQUE);
* semantic: the in-process vector index (``mcp_tars/cache/index.py``) reads
  the vectors of one context added after the last id it has
  (``vectors_after``: the ``(context_key, id)`` index), and the candidates it
  proposes are read back by id (``find_by_ids``) with their expiry checked.
  The columns and postings of the earlier lexical index (semantic_key,
  term_keys, response_cache_terms) are no longer written; deletes still
  remove the postings of rows from before.

Totals (entries, bytes) live in a one-row table kept by triggers, so checking
the limits after an insert costs one row read. Eviction runs in chunks.

Every function takes the connection ``Store.read()`` or ``Store.write()``
yields (SQLite or PostgreSQL). Rows come and go with money in USD (float);
the table holds picodollars. On PostgreSQL every writing function first locks
the totals row: cache writes from several machines then queue one after the
other (each is short) instead of deadlocking over the entries they delete,
and an answer stored twice at once replaces the first one, as on SQLite.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from . import Connection, rows_as_dicts
from .schema import to_picousd, usd

_ENTRY_COLUMNS = (
    "tenant", "request_key", "context_key", "query_text", "query_vector", "query_analysis", "query_type",
    "model", "requested_model", "content", "text", "stop_reason", "usage", "cost_usd",
    "baseline_cost_usd", "savings", "size_bytes", "created_at", "expires_at", "last_used_at",
)
_MONEY = {"cost_usd": "cost_picousd", "baseline_cost_usd": "baseline_cost_picousd"}
_MONEY_KEYS = {column: key for key, column in _MONEY.items()}
_STORED_COLUMNS = tuple(_MONEY.get(c, c) for c in _ENTRY_COLUMNS)
_INSERT_ENTRY = (
    f"INSERT INTO response_cache ({', '.join(_STORED_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _STORED_COLUMNS)}) RETURNING id"
)
_INSERT_ENTRY_WITH_ID = (
    f"INSERT INTO response_cache (id, {', '.join(_STORED_COLUMNS)}) "
    f"VALUES (?, {', '.join('?' for _ in _STORED_COLUMNS)})"
)
_HIT_COLUMNS = (
    "id, context_key, query_text, query_vector, query_analysis, query_type, model, content, text, usage, cost_picousd, baseline_cost_picousd, "
    "savings, created_at, exact_hits, semantic_hits"
)


def _rows(cursor) -> list[dict]:
    out = rows_as_dicts(cursor)
    for row in out:
        for key, column in _MONEY.items():
            if column in row:
                row[key] = usd(row.pop(column))
    return out


def _stored(row: dict) -> tuple:
    """An entry's values in _STORED_COLUMNS order, money in picodollars."""
    return tuple(to_picousd(row[_MONEY_KEYS[c]]) if c in _MONEY_KEYS else row[c] for c in _STORED_COLUMNS)


def _lock_totals(conn: Connection) -> None:
    if conn.backend == "postgres":
        conn.execute("SELECT entries FROM response_cache_totals WHERE id = 1 FOR UPDATE")


# -- reads ------------------------------------------------------------------


def find_exact(conn: Connection, request_key: str, now: float) -> dict | None:
    rows = _rows(conn.execute(
        f"SELECT {_HIT_COLUMNS} FROM response_cache WHERE request_key = ? AND expires_at > ?",
        (request_key, now),
    ))
    return rows[0] if rows else None


def find_by_ids(conn: Connection, ids: Sequence[int], now: float) -> list[dict]:
    """The live entries among ``ids``."""
    unique = sorted(set(ids))
    if not unique:
        return []
    marks = ",".join("?" * len(unique))
    return _rows(conn.execute(
        f"SELECT {_HIT_COLUMNS} FROM response_cache WHERE id IN ({marks}) AND expires_at > ?", (*unique, now),
    ))


def vectors_after(conn: Connection, context_key: str, after_id: int) -> list[tuple[int, bytes]]:
    """(id, query_vector) of this context's entries with an id above ``after_id``, in id order."""
    return [(int(r[0]), bytes(r[1])) for r in conn.execute(
        "SELECT id, query_vector FROM response_cache WHERE context_key = ? AND id > ? AND query_vector IS NOT NULL "
        "ORDER BY id", (context_key, after_id),
    ).fetchall()]


def totals(conn: Connection) -> tuple[int, int]:
    row = conn.execute("SELECT entries, bytes FROM response_cache_totals WHERE id = 1").fetchone()
    return (row[0], row[1]) if row else (0, 0)


def stats(conn: Connection, tenant: str | None, now: float) -> dict:
    where, args = ("WHERE tenant = ?", (tenant,)) if tenant is not None else ("", ())
    row = conn.execute(
        "SELECT count(*), coalesce(sum(size_bytes), 0), coalesce(sum(exact_hits), 0), "
        "coalesce(sum(semantic_hits), 0), coalesce(sum(saved_picousd), 0), "
        f"coalesce(sum(CASE WHEN expires_at <= ? THEN 1 ELSE 0 END), 0) FROM response_cache {where}",
        (now, *args),
    ).fetchone()
    by_type = {
        r[0]: {"entries": int(r[1]), "hits": int(r[2])}
        for r in conn.execute(
            f"SELECT query_type, count(*), sum(exact_hits + semantic_hits) FROM response_cache {where} "
            "GROUP BY query_type ORDER BY query_type",
            args,
        )
    }
    return {
        "entries": int(row[0]),
        "bytes": int(row[1]),
        "expired_entries": int(row[5]),
        "hits": {"exact": int(row[2]), "semantic": int(row[3]), "total": int(row[2]) + int(row[3])},
        "saved_usd": round(usd(row[4]), 6),
        "by_query_type": by_type,
    }


# -- writes -----------------------------------------------------------------


def _delete_entries(conn: Connection, rows: Iterable[tuple[int, str | None]]) -> int:
    """Delete entries and their postings; rows are (id, term_keys). In id
    order, as every writer changes entries, so two never wait on each other in a cycle."""
    rows = sorted(rows)
    postings = [(int(k), entry_id) for entry_id, keys in rows if keys for k in keys.split()]
    if postings:
        conn.executemany("DELETE FROM response_cache_terms WHERE term_key = ? AND entry_id = ?", postings)
    conn.executemany("DELETE FROM response_cache WHERE id = ?", [(entry_id,) for entry_id, _ in rows])
    return len(rows)


def insert_entry(conn: Connection, row: dict) -> int:
    """Insert one answer, replacing an older answer to the same request."""
    _lock_totals(conn)
    old = conn.execute("SELECT id, term_keys FROM response_cache WHERE request_key = ?", (row["request_key"],)).fetchall()
    if old:
        _delete_entries(conn, old)
    return conn.execute(_INSERT_ENTRY, _stored(row)).fetchone()[0]


def insert_entries(conn: Connection, entries: Sequence[dict]) -> int:
    """Bulk insert of new answers (benchmarks, imports): no replacement check."""
    _lock_totals(conn)
    first = conn.execute("SELECT coalesce(max(id), 0) FROM response_cache").fetchone()[0] + 1
    conn.executemany(_INSERT_ENTRY_WITH_ID, [(first + i, *_stored(row)) for i, row in enumerate(entries)])
    if conn.backend == "postgres":  # ids given here: the identity sequence moves past them
        conn.execute("SELECT setval(pg_get_serial_sequence('response_cache', 'id'), ?)", (first + len(entries) - 1,))
    return len(entries)


def record_hits(conn: Connection, updates: Sequence[tuple[int, int, float, float, int]]) -> None:
    """updates: (exact hits, semantic hits, money saved in USD, last used, entry id)."""
    conn.executemany(
        "UPDATE response_cache SET exact_hits = exact_hits + ?, semantic_hits = semantic_hits + ?, "
        "saved_picousd = saved_picousd + ?, "
        "last_used_at = CASE WHEN last_used_at > ? THEN last_used_at ELSE ? END WHERE id = ?",
        [(exact, semantic, to_picousd(saved), used, used, entry_id)
         for exact, semantic, saved, used, entry_id in sorted(updates, key=lambda u: u[4])],
    )


# Value of keeping an entry: hits so far x what one more hit saves, per byte,
# halved for every half-life without use. Expired entries are worth nothing.
# (Money in picodollars here: the same order as in USD.) Parameters: now, now, now, half_life.
_PRIORITY = (
    "CASE WHEN expires_at <= ? THEN 0.0 ELSE "
    "(1.0 + exact_hits + semantic_hits) * (baseline_cost_picousd + 1000000.0) / (size_bytes + 1024.0) "
    "/ (1.0 + (CASE WHEN ? > last_used_at THEN ? - last_used_at ELSE 0.0 END) / ?) END"
)


def evict(conn: Connection, *, target_entries: int, target_bytes: int, now: float, half_life: float) -> int:
    """Delete the lowest-priority entries until both targets hold. One sorted
    pass over the table per call: called once per chunk, not per insert."""
    _lock_totals(conn)
    entries, size = totals(conn)
    if entries <= target_entries and size <= target_bytes:
        return 0
    victims: list[tuple[int, str | None]] = []
    average = size / entries if entries else 1
    batch = max(entries - target_entries, int((size - target_bytes) / average) + 1, 64) + 64
    offset = 0
    while entries > target_entries or size > target_bytes:
        rows = conn.execute(
            f"SELECT id, term_keys, size_bytes FROM response_cache ORDER BY {_PRIORITY}, last_used_at, id LIMIT ? OFFSET ?",
            (now, now, now, half_life, batch, offset),
        ).fetchall()
        if not rows:
            break
        for entry_id, keys, entry_size in rows:
            if entries <= target_entries and size <= target_bytes:
                break
            victims.append((entry_id, keys))
            entries -= 1
            size -= entry_size
        offset += len(rows)
    return _delete_entries(conn, victims)


def delete_expired(conn: Connection, now: float, created_before: float | None = None) -> int:
    _lock_totals(conn)
    rows = conn.execute("SELECT id, term_keys FROM response_cache WHERE expires_at <= ?", (now,)).fetchall()
    if created_before is not None:
        rows += conn.execute(
            "SELECT id, term_keys FROM response_cache WHERE created_at < ? AND expires_at > ?", (created_before, now)
        ).fetchall()
    return _delete_entries(conn, rows)


def clear(conn: Connection, tenant: str | None) -> int:
    _lock_totals(conn)
    if tenant is None:
        n = conn.execute("SELECT count(*) FROM response_cache").fetchone()[0]
        conn.execute("DELETE FROM response_cache_terms")
        conn.execute("DELETE FROM response_cache")
        return n
    rows = conn.execute("SELECT id, term_keys FROM response_cache WHERE tenant = ?", (tenant,)).fetchall()
    return _delete_entries(conn, rows)

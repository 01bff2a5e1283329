"""SQL of the response cache (tables created by migration m010_response_cache).

Every lookup is an index probe, never a scan:

* exact: ``request_key`` (UNIQUE);
* semantic: ``semantic_key`` = hash of (context, meaning-bearing terms), so the
  few entries a lexical match could use are one index range;
* fuzzy (embedding scorer): ``response_cache_terms`` postings
  (hash of (context, term) -> entry id), probed for the rarest terms only,
  each with a small LIMIT.

Totals (entries, bytes) live in a one-row table kept by triggers, so checking
the limits after an insert costs one row read. Eviction runs in chunks.
"""

from __future__ import annotations

import sqlite3
from typing import Iterable, Sequence

_ENTRY_COLUMNS = (
    "tenant", "request_key", "context_key", "semantic_key", "term_keys", "query_text", "query_type",
    "model", "requested_model", "content", "text", "stop_reason", "usage", "cost_usd",
    "baseline_cost_usd", "savings", "size_bytes", "created_at", "expires_at", "last_used_at",
)
_INSERT_ENTRY = (
    f"INSERT INTO response_cache ({', '.join(_ENTRY_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in _ENTRY_COLUMNS)})"
)
_INSERT_ENTRY_WITH_ID = (
    f"INSERT INTO response_cache (id, {', '.join(_ENTRY_COLUMNS)}) "
    f"VALUES (:id, {', '.join(':' + c for c in _ENTRY_COLUMNS)})"
)
_HIT_COLUMNS = (
    "id, context_key, query_text, query_type, model, content, text, usage, cost_usd, baseline_cost_usd, "
    "savings, created_at, exact_hits, semantic_hits"
)


def _rows(cursor: sqlite3.Cursor) -> list[dict]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r)) for r in cursor.fetchall()]


# -- reads ------------------------------------------------------------------


def find_exact(conn: sqlite3.Connection, request_key: str, now: float) -> dict | None:
    rows = _rows(conn.execute(
        f"SELECT {_HIT_COLUMNS} FROM response_cache WHERE request_key = ? AND expires_at > ?",
        (request_key, now),
    ))
    return rows[0] if rows else None


def find_by_semantic_key(conn: sqlite3.Connection, semantic_key: int, context_key: str, now: float, limit: int) -> list[dict]:
    return _rows(conn.execute(
        f"SELECT {_HIT_COLUMNS} FROM response_cache "
        "WHERE semantic_key = ? AND context_key = ? AND expires_at > ? ORDER BY id DESC LIMIT ?",
        (semantic_key, context_key, now, limit),
    ))


def term_frequencies(conn: sqlite3.Connection, term_keys: Sequence[int], cap: int) -> list[int]:
    """How many entries carry each term key, counted up to ``cap`` (bounded work)."""
    return [
        conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM response_cache_terms WHERE term_key = ? LIMIT ?)", (k, cap)
        ).fetchone()[0]
        for k in term_keys
    ]


def find_by_terms(conn: sqlite3.Connection, term_keys: Sequence[int], now: float, per_term_limit: int) -> list[dict]:
    ids: list[int] = []
    for k in term_keys:
        ids.extend(r[0] for r in conn.execute(
            "SELECT entry_id FROM response_cache_terms WHERE term_key = ? ORDER BY entry_id DESC LIMIT ?",
            (k, per_term_limit),
        ))
    if not ids:
        return []
    unique = sorted(set(ids))
    marks = ",".join("?" * len(unique))
    return _rows(conn.execute(
        f"SELECT {_HIT_COLUMNS} FROM response_cache WHERE id IN ({marks}) AND expires_at > ?",
        (*unique, now),
    ))


def totals(conn: sqlite3.Connection) -> tuple[int, int]:
    row = conn.execute("SELECT entries, bytes FROM response_cache_totals WHERE id = 1").fetchone()
    return (row[0], row[1]) if row else (0, 0)


def stats(conn: sqlite3.Connection, tenant: str | None, now: float) -> dict:
    where, args = ("WHERE tenant = ?", (tenant,)) if tenant is not None else ("", ())
    row = conn.execute(
        "SELECT count(*), coalesce(sum(size_bytes), 0), coalesce(sum(exact_hits), 0), "
        "coalesce(sum(semantic_hits), 0), coalesce(sum(saved_usd), 0), "
        f"coalesce(sum(expires_at <= ?), 0) FROM response_cache {where}",
        (now, *args),
    ).fetchone()
    by_type = {
        r[0]: {"entries": r[1], "hits": r[2]}
        for r in conn.execute(
            f"SELECT query_type, count(*), sum(exact_hits + semantic_hits) FROM response_cache {where} "
            "GROUP BY query_type ORDER BY query_type",
            args,
        )
    }
    return {
        "entries": row[0],
        "bytes": row[1],
        "expired_entries": row[5],
        "hits": {"exact": row[2], "semantic": row[3], "total": row[2] + row[3]},
        "saved_usd": round(row[4], 6),
        "by_query_type": by_type,
    }


# -- writes -----------------------------------------------------------------


def _delete_entries(conn: sqlite3.Connection, rows: Iterable[tuple[int, str | None]]) -> int:
    """Delete entries and their postings; rows are (id, term_keys)."""
    rows = list(rows)
    postings = [(int(k), entry_id) for entry_id, keys in rows if keys for k in keys.split()]
    if postings:
        conn.executemany("DELETE FROM response_cache_terms WHERE term_key = ? AND entry_id = ?", postings)
    conn.executemany("DELETE FROM response_cache WHERE id = ?", [(entry_id,) for entry_id, _ in rows])
    return len(rows)


def insert_entry(conn: sqlite3.Connection, row: dict, term_keys: Sequence[int]) -> int:
    """Insert one answer, replacing an older answer to the same request."""
    old = conn.execute("SELECT id, term_keys FROM response_cache WHERE request_key = ?", (row["request_key"],)).fetchall()
    if old:
        _delete_entries(conn, old)
    entry_id = conn.execute(_INSERT_ENTRY, row).lastrowid
    if term_keys:
        conn.executemany(
            "INSERT OR IGNORE INTO response_cache_terms (term_key, entry_id) VALUES (?, ?)",
            [(k, entry_id) for k in term_keys],
        )
    return entry_id


def insert_entries(conn: sqlite3.Connection, entries: Sequence[tuple[dict, Sequence[int]]]) -> int:
    """Bulk insert of new answers (benchmarks, imports): no replacement check."""
    first = conn.execute("SELECT coalesce(max(id), 0) FROM response_cache").fetchone()[0] + 1
    rows = [{**row, "id": first + i} for i, (row, _) in enumerate(entries)]
    conn.executemany(_INSERT_ENTRY_WITH_ID, rows)
    conn.executemany(
        "INSERT OR IGNORE INTO response_cache_terms (term_key, entry_id) VALUES (?, ?)",
        [(k, first + i) for i, (_, keys) in enumerate(entries) for k in keys],
    )
    return len(rows)


def record_hits(conn: sqlite3.Connection, updates: Sequence[tuple[int, int, float, float, int]]) -> None:
    """updates: (exact hits, semantic hits, money saved, last used, entry id)."""
    conn.executemany(
        "UPDATE response_cache SET exact_hits = exact_hits + ?, semantic_hits = semantic_hits + ?, "
        "saved_usd = saved_usd + ?, last_used_at = max(last_used_at, ?) WHERE id = ?",
        updates,
    )


# Value of keeping an entry: hits so far x what one more hit saves, per byte,
# halved for every half-life without use. Expired entries are worth nothing.
_PRIORITY = (
    "CASE WHEN expires_at <= :now THEN 0.0 ELSE "
    "(1.0 + exact_hits + semantic_hits) * (baseline_cost_usd + 0.000001) / (size_bytes + 1024.0) "
    "/ (1.0 + max(0.0, :now - last_used_at) / :half_life) END"
)


def evict(conn: sqlite3.Connection, *, target_entries: int, target_bytes: int, now: float, half_life: float) -> int:
    """Delete the lowest-priority entries until both targets hold. One sorted
    pass over the table per call: called once per chunk, not per insert."""
    entries, size = totals(conn)
    if entries <= target_entries and size <= target_bytes:
        return 0
    victims: list[tuple[int, str | None]] = []
    average = size / entries if entries else 1
    batch = max(entries - target_entries, int((size - target_bytes) / average) + 1, 64) + 64
    offset = 0
    while entries > target_entries or size > target_bytes:
        rows = conn.execute(
            f"SELECT id, term_keys, size_bytes FROM response_cache ORDER BY {_PRIORITY}, last_used_at LIMIT :n OFFSET :o",
            {"now": now, "half_life": half_life, "n": batch, "o": offset},
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


def delete_expired(conn: sqlite3.Connection, now: float, created_before: float | None = None) -> int:
    rows = conn.execute("SELECT id, term_keys FROM response_cache WHERE expires_at <= ?", (now,)).fetchall()
    if created_before is not None:
        rows += conn.execute(
            "SELECT id, term_keys FROM response_cache WHERE created_at < ? AND expires_at > ?", (created_before, now)
        ).fetchall()
    return _delete_entries(conn, rows)


def clear(conn: sqlite3.Connection, tenant: str | None) -> int:
    if tenant is None:
        n = conn.execute("SELECT count(*) FROM response_cache").fetchone()[0]
        conn.execute("DELETE FROM response_cache_terms")
        conn.execute("DELETE FROM response_cache")
        return n
    rows = conn.execute("SELECT id, term_keys FROM response_cache WHERE tenant = ?", (tenant,)).fetchall()
    return _delete_entries(conn, rows)

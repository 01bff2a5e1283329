"""The SQLite store: migrations, idempotent ledger, several writer processes."""

import multiprocessing
import os
import sqlite3
import stat

import pytest

from mcp_tars.store import Store, StoreError, ledger
from mcp_tars.store.migrations import MIGRATIONS, MIGRATIONS_TABLE


def _row(i: int, **over) -> dict:
    row = {
        "response_id": f"msg_{i}", "ts": 1_790_000_000.0 + i, "tenant": "key:t", "source": "api",
        "model": "claude-haiku-5-5", "input_tokens": 10, "output_tokens": 5, "cost_usd": 0.001,
        "baseline_cost_usd": 0.01, "saved_usd": 0.009, "pricing_source": "table",
    }
    row.update(over)
    return row


def test_new_database_is_private_wal_and_fully_migrated(tmp_path):
    s = Store(tmp_path / "l.db")
    assert s.journal_mode == "wal"
    assert s.applied_migrations() == [m.name for m in MIGRATIONS]
    assert stat.S_IMODE(os.stat(tmp_path / "l.db").st_mode) == 0o600
    assert Store(tmp_path / "l.db").migrate() == []  # re-opening applies nothing


def test_older_database_is_upgraded(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(f"CREATE TABLE {MIGRATIONS_TABLE} (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, applied_at TEXT NOT NULL)")
    first = MIGRATIONS[0]
    import sqlite_utils
    first.apply(sqlite_utils.Database(conn))
    conn.execute(f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (?, 'then')", (first.name,))
    conn.commit()
    conn.close()
    s = Store(path)
    assert s.applied_migrations() == [m.name for m in MIGRATIONS]
    assert s.db["sessions"].exists()


def test_newer_database_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "new.db"
    Store(path).conn.execute(f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES ('m999_from_the_future', 'x')")
    with pytest.raises(StoreError, match="newer mcp-tars.*m999_from_the_future"):
        Store(path)


def test_corrupted_file_is_reported_not_overwritten(tmp_path):
    path = tmp_path / "bad.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot"):
        Store(path)
    assert path.read_bytes().startswith(b"this is not a database")


def test_the_same_response_is_never_counted_twice(tmp_path):
    s = Store(tmp_path / "l.db")
    assert ledger.insert(s, _row(1)) is True
    assert ledger.insert(s, _row(1, cost_usd=5.0)) is False
    assert ledger.count(s) == 1
    assert ledger.by_response_id(s, "msg_1")["cost_usd"] == 0.001


def test_spend_follows_the_ledger_and_skips_unknown_prices(tmp_path):
    s = Store(tmp_path / "l.db")
    ledger.insert_many(s, [_row(i) for i in range(10)] + [_row(99, cost_usd=None, pricing_source="unknown")])
    day = ledger.utc_day(1_790_000_000.0)
    assert ledger.spend(s, "key:t", day, day) == pytest.approx(0.01)


def test_unknown_columns_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown ledger columns"):
        ledger.insert(Store(tmp_path / "l.db"), _row(1, api_key="sk-secret"))


def _writer(path: str, worker: int, n: int) -> None:
    s = Store(path)
    for i in range(n):
        ledger.insert(s, _row(worker * 100_000 + i, tenant=f"key:{worker}"))


def test_several_processes_write_one_file_without_losing_rows(tmp_path):
    path = str(tmp_path / "shared.db")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 150)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    s = Store(path)
    assert ledger.count(s) == 600
    for w in range(4):
        day = ledger.utc_day(1_790_000_000.0)
        assert s.conn.execute("SELECT SUM(calls) FROM rollup_daily_model WHERE tenant = ?",
                              (f"key:{w}",)).fetchone()[0] == 150
        assert day


def test_sessions_remember_tier_and_gaps(tmp_path):
    s = Store(tmp_path / "l.db")
    ledger.touch_session(s, "t", "sess", ts=100.0, level="complex", model="claude-sonnet-5-5")
    ledger.touch_session(s, "t", "sess", ts=160.0, level=None, model=None)
    ledger.touch_session(s, "t", "sess", ts=560.0, level="expert", model="claude-opus-5-5")
    got = ledger.get_session(s, "t", "sess")
    assert got["gaps"] == [60.0, 400.0]
    assert got["level"] == "expert" and got["model"] == "claude-opus-5-5" and got["calls"] == 3
    assert ledger.get_session(s, "other", "sess") is None


def test_rows_a_dead_replayer_took_are_replayed_on_the_next_open(tmp_path):
    import json

    s = Store(tmp_path / "l.db")
    orphan = ledger.spool_path(s).with_name(ledger.spool_path(s).name + ".4000000.replaying")  # no such pid
    orphan.write_text(json.dumps(_row(7)) + "\n" + json.dumps(_row(8)) + "\n")
    s.close()
    reopened = Store(tmp_path / "l.db")
    assert ledger.count(reopened) == 2
    assert not orphan.exists()

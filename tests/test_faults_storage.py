"""Storage faults: a full disk, a read-only or locked database, a damaged or
truncated file, an older and a newer schema. The server reports each one and
never silently loses a ledger row: a row the database cannot take after the API
has answered (and billed) goes to a recovery spool and comes back later."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from mcp import Client

from conftest import TEST_API_KEY, make_config, server_env
from mcp_tars.server import create_server, open_state
from mcp_tars.store import Store, open_store, StoreError, ledger
from mcp_tars.store.migrations import MIGRATIONS_TABLE, migrations

MIGRATIONS = migrations("sqlite")

pytestmark = pytest.mark.anyio


def _rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT response_id, source, model FROM ledger WHERE tenant != 'filler' ORDER BY id").fetchall()


def _server_with(db: Path, config=None, *, after_open=None):
    """The real server; ``after_open(state)`` injects a fault into its live store."""
    config = config or make_config()

    def factory():
        state = open_state(config, str(db))
        if after_open is not None:
            after_open(state)
        return state

    return create_server(factory)


def _serve_exit(tmp_path: Path, sim, *args: str) -> subprocess.CompletedProcess:
    env = server_env(tmp_path, sim.base_url)
    return subprocess.run([sys.executable, "-m", "mcp_tars", *args], env=env, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def _filler_row(i: int, reason_chars: int = 400) -> dict:
    return {"response_id": f"filler_{i:08d}_" + "x" * 60, "ts": time.time(), "tenant": "filler", "source": "api",
            "model": "claude-haiku-5-5", "pricing_source": "table", "routing_reason": "y" * reason_chars}


def _fill_disk(state) -> None:
    """Cap the database at its current size plus a little, then fill it (large
    rows, then ever smaller ones, so that not even a small row fits): the
    honest equivalent of a full disk for the server's own connection."""
    conn = state.store.conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 4}")
    i = 0
    for reason_chars in (400, 100, 0):
        for _ in range(10_000):
            i += 1
            try:
                ledger.insert(state.store, _filler_row(i, reason_chars))
            except StoreError as e:
                assert "disk is full" in str(e)
                break
        else:
            raise AssertionError("the database never filled up")


def _complete_once(state, prompt: str):
    import asyncio

    from mcp_tars.engine import CompletionRequest

    async def go():
        try:
            return await state.engine.complete(CompletionRequest(prompt=prompt))
        finally:
            await state.engine.aclose()

    return asyncio.run(go())


def _assert_private(path: Path) -> None:
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, (path, oct(path.stat().st_mode))


# -- a write that fails after the API answered ---------------------------------------------


async def test_full_disk_keeps_the_answer_and_spools_the_row(tmp_path, api_env):
    db = tmp_path / "full.db"
    async with Client(_server_with(db, after_open=_fill_disk)) as client:
        r = await client.call_tool("optimized_complete", {"prompt": "What is the capital of Spain?", "session_id": "s"})
        assert not r.is_error, r.content
        s = r.structured_content
        assert s["text"]  # the paid-for answer is returned
        warning = " ".join(s["warnings"])
        assert "disk is full" in warning and "ledger-spool.jsonl" in warning
        report = await client.call_tool("cost_report", {"period": "all"})
        assert not report.is_error  # reads still work
    assert len(api_env.bill) == 1
    assert _rows(db) == []  # not in the database yet ...
    spool = db.with_name(db.name + ".ledger-spool.jsonl")
    assert spool.exists()
    _assert_private(spool)
    spooled = [json.loads(line) for line in spool.read_text().splitlines()]
    assert [row["response_id"] for row in spooled] == [api_env.bill[0].response_id]
    assert TEST_API_KEY not in spool.read_text()

    # ... and in it once the disk has room again (the next start)
    store = open_store(db)
    assert store.replayed_rows == 1
    store.close()
    assert not spool.exists()
    assert [r[0] for r in _rows(db)] == [api_env.bill[0].response_id]
    open_store(db).close()  # a second start adds nothing twice
    assert len(_rows(db)) == 1


async def test_read_only_database_keeps_the_answer_and_spools_the_row(tmp_path, api_env):
    db = tmp_path / "ro.db"

    def read_only(state):
        state.store.conn.execute("PRAGMA query_only = 1")

    async with Client(_server_with(db, after_open=read_only)) as client:
        r = await client.call_tool("optimized_complete", {"prompt": "What is the capital of Italy?"})
        assert not r.is_error, r.content
        assert "read-only" in " ".join(r.structured_content["warnings"])
    assert _rows(db) == []
    open_store(db).close()
    assert [r[0] for r in _rows(db)] == [line.response_id for line in api_env.bill]


async def test_locked_database_spools_then_catches_up_when_the_lock_is_gone(tmp_path, api_env, monkeypatch):
    monkeypatch.setenv("MCP_TARS_BUSY_TIMEOUT_MS", "300")
    db = tmp_path / "locked.db"
    open_store(db).close()
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    try:
        async with Client(_server_with(db)) as client:
            holder.execute("BEGIN EXCLUSIVE")  # another process takes the write lock and keeps it
            started = time.monotonic()
            r = await client.call_tool("optimized_complete", {"prompt": "What is the capital of Peru?"})
            assert time.monotonic() - started < 20  # waited the busy timeout, did not hang
            assert not r.is_error, r.content
            warning = " ".join(r.structured_content["warnings"])
            assert "lock" in warning and "0.3 s" in warning
            holder.execute("ROLLBACK")
            r2 = await client.call_tool("optimized_complete", {"prompt": "What is the capital of Chile?"})
            assert not r2.is_error and r2.structured_content["warnings"] == []
            # the spooled row came back as soon as the database took writes again
            assert sorted(r[0] for r in _rows(db)) == sorted(line.response_id for line in api_env.bill)
            assert len(api_env.bill) == 2
    finally:
        holder.close()
    assert not db.with_name(db.name + ".ledger-spool.jsonl").exists()


def test_lock_held_at_start_up_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MCP_TARS_BUSY_TIMEOUT_MS", "200")
    db = tmp_path / "startlock.db"
    open_store(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match="lock"):
            open_store(db)
    finally:
        holder.close()


def test_spool_that_cannot_be_written_either_logs_the_row(tmp_path, api_env, caplog):
    """Both the database and the spool fail: the answer still comes back, the
    caller is told plainly, and the row is in the server log."""
    import asyncio

    from mcp_tars.engine import CompletionRequest

    db = tmp_path / "both.db"
    state = open_state(make_config(), str(db))
    try:
        state.store.conn.execute("PRAGMA query_only = 1")
        os.mkdir(db.with_name(db.name + ".ledger-spool.jsonl"))  # a directory where the spool file goes
        result = _complete_once(state, "What is the capital of Kenya?")
    finally:
        state.store.close()
    assert result.text
    assert any("NOT in the ledger" in w for w in result.warnings)
    assert api_env.bill[0].response_id in caplog.text


# -- start-up faults ---------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["garbage", "truncated-header", "truncated-half"])
def test_damaged_database_stops_the_server_with_a_clear_message(tmp_path, sim, damage):
    db = tmp_path / "tars.db"
    if damage == "garbage":
        db.write_bytes(os.urandom(16384))
    else:
        store = open_store(db)
        ledger.insert_many(store, [_filler_row(i) for i in range(300)])
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store.close()
        data = db.read_bytes()
        db.write_bytes(data[:60] if damage == "truncated-header" else data[: len(data) // 2])
        for suffix in ("-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
    out = _serve_exit(tmp_path, sim, "serve")
    assert out.returncode == 3, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr
    assert str(db) in out.stderr and "damaged" in out.stderr and "move it aside" in out.stderr
    if damage == "garbage":
        report = _serve_exit(tmp_path, sim, "report", "--json")
        assert report.returncode == 3 and "damaged" in report.stderr


def test_newer_database_is_refused(tmp_path, sim):
    db = tmp_path / "tars.db"
    open_store(db).close()
    with sqlite3.connect(db) as c:
        c.execute(f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES ('m999_from_the_future', datetime('now'))")
    out = _serve_exit(tmp_path, sim, "serve", "--transport", "http", "--port", "0")
    assert out.returncode == 3, out.stderr[-2000:]
    assert "newer mcp-tars" in out.stderr and "m999_from_the_future" in out.stderr and "Upgrade" in out.stderr
    with sqlite3.connect(db) as c:  # nothing was changed
        names = [r[0] for r in c.execute(f"SELECT name FROM {MIGRATIONS_TABLE}")]
    assert names[-1] == "m999_from_the_future" and len(names) == len(MIGRATIONS) + 1


async def test_older_database_is_migrated_and_keeps_its_rows(tmp_path, api_env):
    db = tmp_path / "old.db"
    store = open_store(db, migrate=False)
    store.migrate(until="m003_daily_spend")  # the first release: ledger, sessions, daily spend
    with store.write() as c:  # a row as that release wrote it (money in REAL USD)
        c.execute("INSERT INTO ledger (response_id, ts, day, tenant, source, model, pricing_source, input_tokens, "
                  "output_tokens, cost_usd) VALUES ('msg_from_v1', ?, '2026-01-02', 'key:old', 'api', "
                  "'claude-haiku-5-5', 'table', 10, 5, 0.0001)", (time.time(),))
    store.close()

    async with Client(_server_with(db)) as client:
        r = await client.call_tool("optimized_complete", {"prompt": "What is the capital of Japan?"})
        assert not r.is_error, r.content
    with sqlite3.connect(db) as c:
        names = [row[0] for row in c.execute(f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY id")]
        old_cost = c.execute("SELECT cost_picousd FROM ledger WHERE response_id = 'msg_from_v1'").fetchone()[0]
    assert names == [m.name for m in MIGRATIONS]
    assert old_cost == 100_000_000  # $0.0001, to the picodollar
    assert [row[0] for row in _rows(db)] == ["msg_from_v1", api_env.bill[0].response_id]


def test_files_are_private(tmp_path, api_env):
    import asyncio

    from mcp_tars.engine import CompletionRequest

    db = tmp_path / "private.db"
    state = open_state(make_config(monitoring={"metrics_log": "logs/metrics.log"}), str(db))
    _complete_once(state, "What is the capital of Egypt?")
    for path in (db, Path(str(db) + "-wal"), Path(str(db) + "-shm"), tmp_path / "logs" / "metrics.log"):
        assert path.exists(), path
        _assert_private(path)
    state.store.close()

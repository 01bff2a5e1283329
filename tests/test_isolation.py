"""Isolation and secrets: tenants never share cache hits or report rows, the API
key is never stored, logged or rendered, files are private, and cached prompts
can be turned off, cleared and expired by policy."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from conftest import TEST_API_KEY, in_process_server, make_config, server_env
from mcp_tars.store import ledger, open_store
from mcp_tars.store import cache as cache_sql
from test_http_transport import http_server

pytestmark = pytest.mark.anyio

KEY_A = "sk-ant-tenant-A-secret-0001"
KEY_B = "sk-ant-tenant-B-secret-0002"
QUESTION = "What is the boiling point of water at sea level?"


async def _ask(server, prompt: str = QUESTION, **extra) -> dict:
    async with Client(server) as client:
        r = await client.call_tool("optimized_complete", {"prompt": prompt, **extra})
        assert not r.is_error, r.content
        return r.structured_content


async def _report(server, **args) -> dict:
    async with Client(server) as client:
        r = await client.call_tool("cost_report", {"period": "all", "format": "json", **args})
        assert not r.is_error, r.content
        return r.structured_content


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mcp_tars", *args], env=env, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


async def test_two_api_keys_never_share_cache_hits_or_reports(tmp_path, api_env, monkeypatch):
    db = str(tmp_path / "shared.db")
    config = make_config()

    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY_A)
    server_a = in_process_server(config, db)
    first_a = await _ask(server_a)
    again_a = await _ask(server_a)
    assert (first_a["source"], again_a["source"]) == ("api", "cache")  # A's own cache works

    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY_B)
    server_b = in_process_server(config, db)
    first_b = await _ask(server_b)
    assert first_b["source"] == "api"  # B never gets A's answer
    similar_b = await _ask(server_b, "What's the boiling point of water at sea level?")
    assert similar_b["response_id"] != first_a["response_id"]
    assert len(api_env.bill) == 2 + (similar_b["source"] == "api")

    report_b = await _report(server_b)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY_A)
    report_a = await _report(in_process_server(config, db))
    assert report_a["totals"]["calls"] == 2  # A's call and A's cache hit, nothing of B's
    assert report_b["totals"]["calls"] == 2
    assert abs(report_a["totals"]["cost_usd"] - first_a["cost_usd"]) < 1e-9

    sessions_b = await _report(server_b, group_by="session")
    assert KEY_A not in json.dumps(sessions_b) and KEY_B not in json.dumps(sessions_b)

    # the CLI report, scoped to the current key, agrees
    env = {**os.environ, "ANTHROPIC_API_KEY": KEY_B, "MCP_TARS_DB": db}
    out = _cli(env, "report", "--period", "all", "--json", "--tenant", "current")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["totals"]["calls"] == 2
    everyone = _cli(env, "report", "--period", "all", "--json")  # the default: every tenant of this database
    assert json.loads(everyone.stdout)["totals"]["calls"] == 4

    with open_store(db) as store:
        tenants = {r["tenant"] for r in ledger.rows(store)}
        with store.read() as c:  # the tenants the cache's entries belong to
            cache_tenants = {t for t in tenants if cache_sql.stats(c, t, 0)["entries"]}
            assert sum(cache_sql.stats(c, t, 0)["entries"] for t in tenants) == cache_sql.totals(c)[0] > 0
    assert len(tenants) == 2 and cache_tenants <= tenants
    assert all(t.startswith("key:") and "sk-" not in t for t in tenants)


async def test_the_api_key_is_never_stored_logged_or_rendered(tmp_path, sim):
    """Everything the server and the CLI write or print, at DEBUG log level, on
    success and on failure, searched for the key."""
    config = make_config(monitoring={"metrics_log": "logs/metrics.log"})
    env = {**server_env(tmp_path, sim.base_url, config), "MCP_TARS_LOG_LEVEL": "DEBUG"}
    env.pop("MCP_TARS_TOKEN", None)
    stderr_path = tmp_path / "server.stderr"
    with http_server(env, log_path=stderr_path) as (proc, port):
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            for args in ({"prompt": "What is DNS?", "session_id": "s-1"}, {"prompt": "What is DNS?", "session_id": "s-1"},
                         {"prompt": "Explain how TLS certificates are validated.", "stream": True}):
                r = await client.call_tool("optimized_complete", args)
                assert not r.is_error, r.content
                assert TEST_API_KEY not in json.dumps(r.structured_content)
            sim.inject_faults("529", count=30)
            failed = await client.call_tool("optimized_complete", {"prompt": "Will this fail?", "use_cache": False})
            assert failed.is_error and TEST_API_KEY not in failed.content[0].text
            sim.inject_faults("400", count=1, message="simulated: bad request")
            refused = await client.call_tool("optimized_complete", {"prompt": "And this?", "use_cache": False})
            assert refused.is_error and TEST_API_KEY not in refused.content[0].text
            rendered = [await client.call_tool("cost_report", {"period": "all", "group_by": g}) for g in ("model", "session")]
            rendered += [await client.read_resource(u) for u in ("tars://config", "tars://report/today", "tars://report/html", "tars://prices")]
            for item in rendered:
                assert TEST_API_KEY not in str(item)
    server_stderr = stderr_path.read_text()
    assert "DEBUG" in server_stderr  # the log really was verbose
    outputs = [server_stderr]
    for args in (["report", "--period", "all", "--markdown"], ["report", "--json"], ["report", "--html", str(tmp_path / "r.html")],
                 ["export", "costs-json", "-o", str(tmp_path / "costs.json")], ["cache", "stats"], ["config", "show"],
                 ["heartbeat", "--json"]):
        out = _cli(env, *args)
        outputs += [out.stdout, out.stderr]
    for text in outputs:
        assert TEST_API_KEY not in text
        assert TEST_API_KEY[-12:] not in text  # not even a tail of it
    searched = 0
    for path in tmp_path.rglob("*"):
        if path.is_file() and "anthropic-config" not in path.parts:
            data = path.read_bytes()
            assert TEST_API_KEY.encode() not in data, path
            assert TEST_API_KEY[-12:].encode() not in data, path
            searched += 1
    assert searched >= 5  # db, wal/shm, metrics log, reports, stderr


async def test_prompts_in_the_cache_can_be_turned_off(tmp_path, api_env):
    db = tmp_path / "nocache.db"
    marker = "zebra-quokka-7731"
    server = in_process_server(make_config(monitoring={"store_prompts_in_cache": False}), str(db))
    first = await _ask(server, f"What does the code word {marker} mean?")
    second = await _ask(server, f"What does the code word {marker} mean?")
    assert first["source"] == second["source"] == "api"
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT COUNT(*) FROM response_cache").fetchone()[0] == 0
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for path in tmp_path.glob("nocache.db*"):
        assert marker.encode() not in path.read_bytes(), path


async def test_cache_clear_command_removes_cached_prompts(tmp_path, api_env):
    db = tmp_path / "clear.db"
    server = in_process_server(make_config(), str(db))
    await _ask(server)
    assert (await _ask(server))["source"] == "cache"
    env = {**os.environ, "MCP_TARS_DB": str(db)}
    out = _cli(env, "cache", "clear")
    assert out.returncode == 0, out.stderr
    assert "removed 1 cached answer" in out.stdout
    assert _cached_answers(db) == 0
    with sqlite3.connect(db) as c:  # nothing of it left in the file either
        assert c.execute("SELECT COUNT(*) FROM response_cache_terms").fetchone()[0] == 0
    assert (await _ask(server))["source"] == "api"


def _cached_answers(db: Path) -> int:
    with open_store(db) as store, store.read() as c:
        return cache_sql.totals(c)[0]


def _age_cache(db: Path, days: float) -> None:
    with sqlite3.connect(db) as c:
        c.execute("UPDATE response_cache SET created_at = created_at - ?", (days * 86400,))


async def test_retention_days_purges_old_prompts_at_start_up_and_periodically(tmp_path, api_env, monkeypatch):
    import mcp_tars.server as server_module

    db = tmp_path / "retain.db"
    config = make_config(monitoring={"retention_days": 2})
    # _age_cache moves created_at back but not expires_at: only the retention rule can remove the entry
    await _ask(in_process_server(config, str(db)))
    _age_cache(db, 3)
    # start-up: the old answer is gone before the first call
    server = in_process_server(config, str(db))
    async with Client(server) as client:
        assert _cached_answers(db) == 0
        r = await client.call_tool("optimized_complete", {"prompt": QUESTION})
        assert r.structured_content["source"] == "api"

    # periodically: a running server purges answers that age past the limit
    monkeypatch.setattr(server_module, "CACHE_PURGE_INTERVAL_SECONDS", 0.1)
    server = in_process_server(config, str(db))
    async with Client(server) as client:
        r = await client.call_tool("optimized_complete", {"prompt": "What is the tallest mountain on Earth?"})
        assert r.structured_content["source"] == "api"
        with anyio.fail_after(5):  # a new answer is stored just after it is returned
            while True:
                if _cached_answers(db) == 2:
                    break
                await anyio.sleep(0.005)
        _age_cache(db, 3)
        with anyio.fail_after(10):
            while True:
                if _cached_answers(db) == 0:
                    break
                await anyio.sleep(0.05)
    # a fresh answer (inside the retention window) is kept
    await _ask(in_process_server(config, str(db)), "What is the longest river in Africa?")
    assert _cached_answers(db) == 1

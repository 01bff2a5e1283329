"""Crash safety of the deferred queue, with the real server as a subprocess.

The server (``python -m mcp_tars serve`` over stdio, driven by the MCP client)
is killed with SIGKILL at the moments that matter, then restarted on the same
database; every task must complete exactly once, with exactly one ledger row,
and the simulated API must never have received a task twice.

Kill points: right after a batch was submitted and recorded (the test sends
SIGKILL), in the middle of ingesting results (``MCP_TARS_TEST_CRASH_AFTER_INGEST``),
and between the API creating a batch and the server recording its id
(``MCP_TARS_TEST_CRASH_AFTER_CREATE``). Both hooks make the server SIGKILL itself.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path

import anyio
import psutil
import pytest
from mcp import Client

from conftest import make_config, server_env, stdio_params
from mcp_tars.sim import SimulatedAnthropic

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CALL_TIMEOUT = 60


def server_processes(db: Path) -> list[psutil.Process]:
    """Our live `mcp-tars serve` children working on ``db``."""
    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if "serve" in p.cmdline() and p.environ().get("MCP_TARS_DB") == str(db) and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except psutil.Error:
            continue
    return found


async def call(client: Client, tool: str, args: dict | None = None) -> dict:
    result = await client.call_tool(tool, args or {})
    assert not result.is_error, result.content
    return result.structured_content


class Server:
    """One server process; ``kill()`` sends SIGKILL, closing tolerates its death."""

    def __init__(self, env: dict, db: Path):
        self.env, self.db = env, db
        self.client = Client(stdio_params(env))

    async def __aenter__(self) -> "Server":
        await self.client.__aenter__()
        return self

    def kill(self) -> None:
        procs = server_processes(self.db)
        assert len(procs) == 1, procs
        os.kill(procs[0].pid, signal.SIGKILL)
        for _ in range(500):  # dead (a zombie until the client reaps it)
            if not server_processes(self.db):
                return
            time.sleep(0.01)
        raise AssertionError("the server survived SIGKILL")

    async def __aexit__(self, *exc) -> None:
        # Closing the transport of a killed server fails; the caller's
        # fail_after bounds the time it may take.
        try:
            await self.client.__aexit__(None, None, None)
        except Exception:  # noqa: BLE001
            pass


def db_query(db: Path, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        return c.execute(sql, args).fetchall()


def assert_exactly_once(db: Path, sim: SimulatedAnthropic, task_ids: list[str]) -> None:
    statuses = dict(db_query(db, "SELECT id, status FROM tasks"))
    assert {t: statuses[t] for t in task_ids} == {t: "succeeded" for t in task_ids}
    per_task = Counter(t for (t,) in db_query(db, "SELECT task_id FROM ledger"))
    assert per_task == Counter({t: 1 for t in task_ids})
    sent = Counter(r["custom_id"] for batch in sim.batches.values() for r in batch.requests)
    assert sent == Counter({t: 1 for t in task_ids})  # the API never got a task twice
    billed = Counter(line.custom_id for line in sim.bill)
    assert billed == Counter({t: 1 for t in task_ids})
    (ledger_total,) = db_query(db, "SELECT SUM(cost_picousd) FROM ledger")[0]
    assert ledger_total / 1e12 == pytest.approx(sim.bill_total_usd(), rel=1e-9)
    assert {tier for (tier,) in db_query(db, "SELECT DISTINCT service_tier FROM ledger")} == {"batch"}


async def crash_during(server: Server, tool: str, args: dict) -> None:
    """Call a tool under which the server's test hook kills it."""
    with anyio.move_on_after(20):
        try:
            await server.client.call_tool(tool, args)
        except Exception:  # noqa: BLE001 - the server dies under the call
            pass
    assert not server_processes(server.db), "the crash hook did not kill the server"


async def test_sigkill_at_each_step_of_the_batch_lifecycle(tmp_path):
    """Four server processes on one database, three of them killed:

    A submits batch 1 and is killed (SIGKILL from the test) while it runs;
    B defers more work and dies right after the API created batch 2, before
    recording its id; C adopts batch 2, then dies after committing 10 results
    of batch 1; D collects everything else. Every task ends succeeded once."""
    n1, n2 = 30, 6
    with SimulatedAnthropic(batch_ready_after_polls=2) as sim:
        env = server_env(tmp_path, sim.base_url, make_config())
        db = tmp_path / "tars.db"

        # A: defer and submit, then SIGKILL while the batch runs
        with anyio.fail_after(CALL_TIMEOUT):
            async with Server(env, db) as a:
                first = [(await call(a.client, "defer_task", {"prompt": f"Rename variable number {i} to snake case."}))["task_id"]
                         for i in range(n1)]
                out = await call(a.client, "process_deferred", {"force": True})
                assert out["submitted_batches"] == 1 and out["submitted_tasks"] == n1 and out["collected"] == 0
                a.kill()
        (batch1,) = sim.batches
        assert sim.batches[batch1].processing_status == "in_progress"
        assert db_query(db, "SELECT COUNT(*) FROM tasks WHERE status = 'submitted' AND batch_id = ?", batch1) == [(n1,)]

        # B: dies between the API creating batch 2 and recording it
        with anyio.fail_after(CALL_TIMEOUT):
            async with Server({**env, "MCP_TARS_TEST_CRASH_AFTER_CREATE": "1"}, db) as b:
                second = [(await call(b.client, "defer_task", {"prompt": f"Sort the list {i}, 3, 1.", "priority": "high"}))["task_id"]
                          for i in range(n2)]
                await crash_during(b, "process_deferred", {})
        (batch2,) = set(sim.batches) - {batch1}
        assert db_query(db, "SELECT COUNT(*) FROM tasks WHERE status = 'claimed'") == [(n2,)]
        assert db_query(db, "SELECT id FROM batches") == [(batch1,)]  # batch 2 is unknown locally

        # C: adopts batch 2, then dies after committing 10 results of batch 1
        with anyio.fail_after(CALL_TIMEOUT):
            async with Server({**env, "MCP_TARS_TEST_CRASH_AFTER_INGEST": "10"}, db) as c:
                await crash_during(c, "process_deferred", {})
        assert db_query(db, "SELECT adopted FROM batches WHERE id = ?", batch2) == [(1,)]
        assert sim.batches[batch1].processing_status == "ended"
        assert db_query(db, "SELECT COUNT(*) FROM ledger") == [(10,)]
        assert db_query(db, "SELECT COUNT(*) FROM tasks WHERE status = 'succeeded'") == [(10,)]

        # D: collects the rest; nothing is sent or counted twice
        with anyio.fail_after(CALL_TIMEOUT):
            async with Server(env, db) as d:
                collected = 0
                for _ in range(4):
                    out = await call(d.client, "process_deferred", {})
                    collected += out["collected"]
                    assert out["submitted_tasks"] == 0
                    if out["pending_batches"] == 0:
                        break
                assert collected == n1 - 10 + n2 and out["queued"] == 0
                status = await call(d.client, "task_status", {"task_id": first[3]})
                assert status["status"] == "succeeded" and status["text"].startswith("Simulated answer")
                assert status["batch_id"] == batch1 and status["attempts"] == 1
                assert (await call(d.client, "task_status", {"task_id": second[0]}))["batch_id"] == batch2

        assert len(sim.batches) == 2
        assert_exactly_once(db, sim, first + second)

"""Batch results are ingested as they stream in, RESULTS_CHUNK_SIZE at a time:
one payload lookup per chunk, each chunk recorded before the next one is read
from the API, and the same exactly-once, missing and "not ours" rules as for a
small batch."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from mcp_tars import batches as batches_module
from mcp_tars.app import connect_queue
from mcp_tars.engine import CompletionRequest, Engine
from mcp_tars.sim import SimulatedAnthropic
from mcp_tars.store import Store, open_store, ledger
from mcp_tars.store import tasks as task_store

from conftest import TEST_API_KEY, make_config

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

CHUNK = batches_module.RESULTS_CHUNK_SIZE


@pytest.fixture
def slow_sim(monkeypatch):
    """A sim whose batches end at the second poll, so a test can act between
    submission and ingestion."""
    with SimulatedAnthropic(batch_ready_after_polls=2) as sim:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", sim.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_API_KEY)
        yield sim


@pytest.fixture
async def queue(tmp_path, slow_sim):
    engine = Engine(make_config(), open_store(tmp_path / "tars.db"))
    yield connect_queue(engine)
    await engine.aclose()
    engine.store.close()


async def defer_many(queue, n: int) -> list[str]:
    return [(await queue.defer(CompletionRequest(prompt=f"Spell the number {i}."), priority="normal",
                               max_wait_seconds=86400, critical=False))["task_id"] for i in range(n)]


def watch_results_stream(queue, monkeypatch) -> list[int]:
    """Count the results the SDK's stream has handed out so far (the stream
    itself is the SDK's, unchanged); returns the live one-element counter."""
    handed_out = [0]
    sdk_batches = queue.engine.client.messages.batches
    real_results = sdk_batches.results

    class Counted:
        def __init__(self, stream):
            self.stream = stream

        async def __aiter__(self):
            async for entry in self.stream:
                handed_out[0] += 1
                yield entry

        async def close(self):
            await self.stream.close()

    async def results(batch_id, **kwargs):
        return Counted(await real_results(batch_id, **kwargs))

    monkeypatch.setattr(sdk_batches, "results", results)
    return handed_out


async def test_a_batch_larger_than_a_chunk_is_ingested_chunk_by_chunk(queue, slow_sim, monkeypatch):
    sim, n = slow_sim, 1200
    assert n > 4 * CHUNK
    ids = await defer_many(queue, n)
    out = await queue.process(force=True)
    assert out["submitted_batches"] == 1 and out["submitted_tasks"] == n and out["collected"] == 0
    (batch_id,) = sim.batches

    handed_out = watch_results_stream(queue, monkeypatch)
    lookups: list[tuple[int, int, int]] = []  # (task ids asked for, results read from the API, ledger rows)
    real_lookup = task_store.task_payloads

    def spy(store, task_ids, **kwargs):
        lookups.append((len(task_ids), handed_out[0], ledger.count(store)))
        return real_lookup(store, task_ids, **kwargs)

    monkeypatch.setattr(task_store, "task_payloads", spy)
    seen: list[tuple[float, float | None, str]] = []

    async def progress(done, total, message):
        seen.append((done, total, message))

    out = await queue.process(progress=progress)
    assert out["collected"] == n and out["pending_batches"] == 0 and out["queued"] == 0

    # one lookup per chunk, each made when only that chunk had been read, after the previous was recorded
    full, rest = divmod(n, CHUNK)
    assert [asked for asked, _, _ in lookups] == [CHUNK] * full + ([rest] if rest else [])
    assert [read for _, read, _ in lookups] == [min(n, (k + 1) * CHUNK) for k in range(len(lookups))]
    assert [rows for _, _, rows in lookups] == [k * CHUNK for k in range(len(lookups))]

    # every task succeeded once, with one ledger row, and the ledger matches the bill
    assert all(queue.status(t)["status"] == "succeeded" for t in ids)
    rows = [(r["task_id"], r["cost_usd"]) for r in ledger.rows(queue.store)]
    assert Counter(t for t, _ in rows) == Counter({t: 1 for t in ids})
    assert len(sim.bill) == n and all(line.batch for line in sim.bill)
    assert math.fsum(cost for _, cost in rows) == pytest.approx(sim.bill_total_usd(), rel=1e-12, abs=1e-15)

    # progress counts against the batch's request count, never past it
    ingest = [(done, total) for done, total, m in seen if m.startswith("ingest") and batch_id in m]
    assert ingest[0] == (0, n) and ingest[-1] == (n, n)
    assert all(total == n and 0 <= done <= total for done, total in ingest)
    assert [done for done, _ in ingest] == sorted(done for done, _ in ingest)

    # read again (as after a crash before the batch was marked finished): nothing is recorded twice
    with queue.store.write() as c:
        c.execute("UPDATE batches SET status = 'ended' WHERE id = ?", (batch_id,))
    out = await queue.process()
    assert out["collected"] == 0 and ledger.count(queue.store) == n


async def test_missing_and_foreign_results_across_chunks(queue, slow_sim, monkeypatch):
    """Results with no line are settled as missing only once the whole stream was
    read, a line that is not ours is skipped, whatever chunk they fall in."""
    sim = slow_sim
    monkeypatch.setattr(batches_module, "RESULTS_CHUNK_SIZE", 3)
    ids = await defer_many(queue, 10)
    await queue.process(force=True)
    (batch_id,) = sim.batches
    await queue.engine.client.messages.batches.retrieve(batch_id)  # the sim's second poll: the batch ends
    results = sim.batches[batch_id].results
    dropped = ids[:2] + ids[-1:]
    for t in dropped:
        del results[t]
    results["task_someone_elses"] = dict(results[ids[2]])
    lookups: list[int] = []
    real_lookup = task_store.task_payloads

    def spy(store, task_ids, **kwargs):
        lookups.append(len(task_ids))
        return real_lookup(store, task_ids, **kwargs)

    monkeypatch.setattr(task_store, "task_payloads", spy)
    out = await queue.process()
    assert lookups == [3, 3, 2]  # 7 of ours and 1 foreign line, 3 at a time
    assert out["collected"] == 7
    assert any(d.startswith(f"batch {batch_id}:") and "1 not ours" in d and "3 missing -> re-queued" in d
               for d in out["details"])
    assert {t: queue.status(t)["status"] for t in dropped} == {t: "queued" for t in dropped}
    assert all(queue.status(t)["status"] == "succeeded" for t in ids if t not in dropped)
    assert ledger.count(queue.store) == 7
    with queue.store.read() as c:
        assert c.execute("SELECT status FROM batches WHERE id = ?", (batch_id,)).fetchone()[0] == "ingested"


async def test_a_results_download_cut_half_way_is_resumed_on_the_next_pass(queue, slow_sim, monkeypatch):
    """The connection drops in the middle of the results body: the pass goes on
    (and says why), the chunks recorded before the cut stay, the next pass
    records the rest, each result exactly once."""
    sim, n = slow_sim, 40
    monkeypatch.setattr(batches_module, "RESULTS_CHUNK_SIZE", 5)
    ids = await defer_many(queue, n)
    await queue.process(force=True)
    (batch_id,) = sim.batches
    sim.inject_faults("cut_body", path=f"/v1/messages/batches/{batch_id}/results")
    out = await queue.process()  # the batch ends at this poll; its results break off half-way
    assert 0 < ledger.count(queue.store) < n, "the cut came before any result, or not at all"
    assert any("could not read the results" in d and batch_id in d for d in out["details"]), out["details"]
    with queue.store.read() as c:
        assert c.execute("SELECT status FROM batches WHERE id = ?", (batch_id,)).fetchone()[0] != "ingested"
    out = await queue.process()
    assert ledger.count(queue.store) == n and out["pending_batches"] == 0
    assert all(queue.status(t)["status"] == "succeeded" for t in ids)
    assert Counter(r["task_id"] for r in ledger.rows(queue.store)) == Counter({t: 1 for t in ids})
    assert len(sim.bill) == n

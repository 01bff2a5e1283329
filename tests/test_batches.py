"""The deferred queue: submission rules (pure), shared-prefix caching (pure),
and the whole lifecycle against the simulated API: one batch for many tasks at
half price, priorities, off-peak, deadlines, retries, cancellation, budget,
re-ingestion and the worker."""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import time
from datetime import datetime, timezone

import pytest

from mcp_tars import clock
from mcp_tars.batches import (
    DeferredQueue,
    Pending,
    chunk_for_api,
    estimate_ready_at,
    in_off_peak,
    next_off_peak_start,
    owner_alive,
    plan_queue,
    process_owner,
    settle_outcome,
    share_prefixes,
)
from mcp_tars.config import BatchSettings
from mcp_tars.app import connect_queue
from mcp_tars.engine import CompletionRequest, Engine, InputError
from mcp_tars.pricing import PriceTable, Usage
from mcp_tars.sim import SimulatedAnthropic
from mcp_tars.store import Store, open_store, ledger
from mcp_tars.store import tasks as task_store

from conftest import TEST_API_KEY, make_config

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

_stamps = itertools.count(1)
S = BatchSettings()  # defaults: size 20, timeout 300 s, off-peak 00-06 UTC, expected 3600 s, poll 30 s


def utc(*args) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


def pending(i="t1", priority="normal", category=None, created=0.0, deadline=None, size=0) -> Pending:
    deadline = created + 10 * 86400 if deadline is None else deadline
    return Pending(i, priority, category or f"m|{priority}|k", created, deadline, size)


# -- pure core: off-peak window ------------------------------------------------------------


def test_off_peak_window_default_and_wrapping():
    assert in_off_peak(utc(2026, 11, 20, 0, 0), S)
    assert in_off_peak(utc(2026, 11, 20, 5, 59), S)
    assert not in_off_peak(utc(2026, 11, 20, 6, 0), S)
    assert not in_off_peak(utc(2026, 11, 20, 23, 59), S)
    wrap = BatchSettings(off_peak_start_hour_utc=22, off_peak_end_hour_utc=4)
    assert in_off_peak(utc(2026, 11, 20, 23, 0), wrap) and in_off_peak(utc(2026, 11, 20, 3, 0), wrap)
    assert not in_off_peak(utc(2026, 11, 20, 12, 0), wrap)
    assert next_off_peak_start(utc(2026, 11, 20, 12, 0), wrap) == utc(2026, 11, 20, 22, 0)
    assert next_off_peak_start(utc(2026, 11, 20, 10, 0), S) == utc(2026, 11, 21, 0, 0)
    assert next_off_peak_start(utc(2026, 11, 20, 3, 0), S) == utc(2026, 11, 20, 3, 0)
    empty = BatchSettings(off_peak_start_hour_utc=5, off_peak_end_hour_utc=5)
    assert not in_off_peak(utc(2026, 11, 20, 5, 0), empty) and next_off_peak_start(utc(2026, 11, 20, 5, 0), empty) is None
    always = BatchSettings(off_peak_start_hour_utc=0, off_peak_end_hour_utc=24)
    assert in_off_peak(utc(2026, 11, 20, 13, 0), always)


# -- pure core: when a category goes out -----------------------------------------------------


def test_normal_priority_waits_for_batch_size_or_timeout():
    now = utc(2026, 11, 20, 12, 0)
    few = [pending(f"t{i}", created=now - 10) for i in range(S.batch_size - 1)]
    plan = plan_queue(few, S, now)
    assert not plan.submit and len(plan.waiting) == S.batch_size - 1
    full = few + [pending("last", created=now)]
    assert {why for _, why in plan_queue(full, S, now).submit} == {"batch size"}
    old = [pending("old", created=now - S.batch_timeout_seconds)]
    assert [why for _, why in plan_queue(old, S, now).submit] == ["batch timeout"]


def test_high_priority_goes_out_at_the_next_pass_and_first():
    now = utc(2026, 11, 20, 12, 0)
    tasks = [pending("n", "normal", created=now - S.batch_timeout_seconds), pending("h", "high", created=now)]
    plan = plan_queue(tasks, S, now)
    assert [(t.id, why) for t, why in plan.submit] == [("h", "high priority"), ("n", "batch timeout")]


def test_low_priority_waits_for_off_peak_unless_its_deadline_requires_it():
    day = utc(2026, 11, 20, 12, 0)
    night = utc(2026, 11, 21, 1, 0)
    many = [pending(f"l{i}", "low", created=day - 10_000) for i in range(50)]
    assert not plan_queue(many, S, day).submit  # full and old, but it is not off-peak
    assert {why for _, why in plan_queue(many, S, night).submit} == {"off-peak window"}
    urgent = pending("u", "low", created=day, deadline=day + S.expected_batch_seconds + S.poll_interval_seconds)
    assert [why for _, why in plan_queue([urgent], S, day).submit] == ["deadline"]
    no_wait = BatchSettings(low_priority_waits_for_off_peak=False)
    assert {why for _, why in plan_queue(many, no_wait, day).submit} == {"batch size"}


def test_deadline_pulls_its_whole_category_and_too_late_runs_now():
    now = utc(2026, 11, 20, 12, 0)
    near = pending("near", created=now, deadline=now + S.expected_batch_seconds + 10)
    sibling = pending("sib", created=now)
    other = pending("other", category="x|normal|y", created=now)
    plan = plan_queue([near, sibling, other], S, now)
    assert sorted(t.id for t, _ in plan.submit) == ["near", "sib"] and [t.id for t in plan.waiting] == ["other"]
    late = pending("late", created=now - 10_000, deadline=now + S.expected_batch_seconds - 1)
    plan = plan_queue([late], S, now, force=True)
    assert [t.id for t in plan.run_now] == ["late"] and not plan.submit


def test_force_submits_everything_a_batch_can_still_deliver():
    now = utc(2026, 11, 20, 12, 0)
    tasks = [pending("l", "low", created=now), pending("n", "normal", created=now)]
    assert {(t.id, why) for t, why in plan_queue(tasks, S, now, force=True).submit} == {("l", "forced"), ("n", "forced")}


def test_estimated_ready_at_follows_the_rules_and_the_deadline():
    now = utc(2026, 11, 20, 12, 0)
    e = S.expected_batch_seconds
    assert estimate_ready_at(pending("h", "high", created=now), [], S, now) == now + e
    assert estimate_ready_at(pending("n", created=now), [], S, now) == now + S.batch_timeout_seconds + e
    peers = [pending(f"p{i}", created=now) for i in range(S.batch_size - 1)]
    assert estimate_ready_at(pending("n", created=now), peers, S, now) == now + e  # it fills the batch
    assert estimate_ready_at(pending("l", "low", created=now), [], S, now) == utc(2026, 11, 21, 0, 0) + e
    soon = now + 2 * e
    assert estimate_ready_at(pending("l", "low", created=now, deadline=soon), [], S, now) == soon - S.poll_interval_seconds


def test_chunks_respect_request_and_byte_limits():
    tasks = [pending(f"t{i}", size=10) for i in range(7)]
    assert [len(c) for c in chunk_for_api(tasks, max_requests=3)] == [3, 3, 1]
    assert [len(c) for c in chunk_for_api(tasks, max_bytes=25)] == [2, 2, 2, 1]
    assert chunk_for_api([]) == []


def test_result_outcomes():
    assert settle_outcome("errored", "api_error", "boom") == (True, "api_error: boom")
    assert settle_outcome("errored", "overloaded_error", "busy")[0] is True
    assert settle_outcome("errored", "invalid_request_error", "max_tokens: too big") == (False, "invalid_request_error: max_tokens: too big")
    assert settle_outcome("expired", None, None)[0] is True
    assert "24-hour" in settle_outcome("expired", None, None)[1]


def test_owner_liveness():
    assert owner_alive(process_owner())
    assert not owner_alive(None)
    host = process_owner().rsplit(":", 3)[0]
    assert not owner_alive(f"{host}:999999999:-:x")  # no such pid
    assert not owner_alive(f"{host}:{os.getpid()}:1:x")  # this pid, but another process's start time
    assert owner_alive("some-other-host:1:-:x")  # another host: judged by the claim's age instead


# -- pure core: shared prefixes ------------------------------------------------------------------

LONG_SYSTEM = "You are a careful analyst of quarterly reports. " * 300  # well above any cache minimum
DOC = "Annual report. " + "Revenue grew in every region and margins held. " * 400


def req(cid, system=None, content="What changed?", model="claude-sonnet-5-5", **extra):
    params = {"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": content}], **extra}
    if system is not None:
        params["system"] = system
    return {"custom_id": cid, "params": params}


def test_shared_system_prompt_gets_a_1h_breakpoint():
    requests = [req("a", LONG_SYSTEM, "q1"), req("b", "short", "q2"), req("c", LONG_SYSTEM, "q3")]
    out, decisions = share_prefixes(requests, ttl="1h", min_tokens=lambda m: 1024)
    by_id = {r["custom_id"]: r["params"] for r in out}
    assert by_id["a"]["system"] == [{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    assert by_id["c"]["system"][0]["cache_control"]["ttl"] == "1h"
    assert by_id["b"]["system"] == "short" and decisions["b"]["ttl"] is None
    ids = [r["custom_id"] for r in out]
    assert abs(ids.index("a") - ids.index("c")) == 1  # sharers sit together
    assert requests[0]["params"]["system"] == LONG_SYSTEM  # the input is not modified


def test_shared_document_block_gets_the_breakpoint_after_the_system():
    content = lambda q: [{"type": "text", "text": DOC}, {"type": "text", "text": q}]  # noqa: E731
    requests = [req("a", "Be brief.", content("Q1?")), req("b", "Be brief.", content("Q2?"))]
    out, decisions = share_prefixes(requests, ttl="1h", min_tokens=lambda m: 1024)
    for r in out:
        blocks = r["params"]["messages"][0]["content"]
        assert blocks[0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"} and "cache_control" not in blocks[1]
        assert r["params"]["system"] == "Be brief."
    assert decisions["a"]["breakpoint"] == ["messages", 0, 0]


def test_no_breakpoint_when_short_alone_different_models_or_caller_placed_one():
    assert all(d["ttl"] is None for d in share_prefixes([req("a", "short", "x"), req("b", "short", "y")],
                                                       ttl="1h", min_tokens=lambda m: 1024)[1].values())
    assert share_prefixes([req("a", LONG_SYSTEM)], ttl="1h", min_tokens=lambda m: 1)[1]["a"]["ttl"] is None
    mixed = [req("a", LONG_SYSTEM, model="claude-haiku-5-5"), req("b", LONG_SYSTEM)]
    assert all(d["ttl"] is None for d in share_prefixes(mixed, ttl="1h", min_tokens=lambda m: 1)[1].values())
    mine = [{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}]
    out, decisions = share_prefixes([req("a", mine, "x", cache_control={"type": "ephemeral"}), req("b", mine, "y", cache_control={"type": "ephemeral"})],
                                    ttl="1h", min_tokens=lambda m: 1)
    assert all(r["params"]["system"] == mine for r in out)  # the caller's 5-minute choice is kept
    assert all("own cache breakpoints" in d["reason"] for d in decisions.values())


# -- against the simulated API ------------------------------------------------------------------


@pytest.fixture
async def queue_factory(db_url, api_env):
    """Queues over one database (each backend in turn); a second one is a restart."""
    made: list[DeferredQueue] = []

    def make(**sections) -> DeferredQueue:
        engine = Engine(make_config(**sections), open_store(db_url))
        queue = connect_queue(engine)
        made.append(queue)
        return queue

    yield make
    for q in made:
        await q.engine.aclose()
        q.store.close()


@pytest.fixture
def shifted_clock(tmp_path, monkeypatch):
    """Set the shared clock (ours and the sim's) to a given UTC time."""
    path = tmp_path / "clock"
    monkeypatch.setenv("MCP_TARS_CLOCK_FILE", str(path))

    def set_to(ts: float) -> None:
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            f.write(repr(ts - time.time()))
        os.replace(tmp, path)
        # clock.py caches on mtime: give every write its own, so a quick second one is seen
        stamp = time.time_ns() + next(_stamps)
        os.utime(path, ns=(stamp, stamp))

    return set_to


def batch_posts(sim: SimulatedAnthropic) -> list:
    return [r for r in sim.requests if r.method == "POST" and r.path == "/v1/messages/batches"]


def ledger_rows(store: Store, **where) -> list[dict]:
    return [r for r in ledger.rows(store) if all(r[k] == v for k, v in where.items())]


async def defer(queue, prompt, priority="normal", max_wait_seconds=86400, critical=False, **fields):
    return await queue.defer(CompletionRequest(prompt=prompt, **fields), priority=priority,
                             max_wait_seconds=max_wait_seconds, critical=critical)


@pytest.mark.anyio
async def test_100_deferred_tasks_become_one_batch_billed_at_exactly_half(queue_factory, api_env):
    sim = api_env
    q = queue_factory()
    ids = [(await defer(q, f"Translate into French: the meeting number {i} starts at noon."))["task_id"] for i in range(100)]
    assert len(set(ids)) == 100 and all(q.status(t)["status"] == "queued" for t in ids)
    out = await q.process()
    assert out["submitted_batches"] == 1 and out["submitted_tasks"] == 100 and out["collected"] == 100
    assert out["queued"] == 0 and out["pending_batches"] == 0
    posts = batch_posts(sim)
    assert len(posts) == 1 and sorted(r["custom_id"] for r in posts[0].body["requests"]) == sorted(ids)
    assert not [r for r in sim.requests if r.path == "/v1/messages"]  # nothing went through the standard endpoint

    rows = ledger_rows(q.store, source="batch")
    assert sorted(r["task_id"] for r in rows) == sorted(ids)
    prices = PriceTable()
    standard = math.fsum(prices.cost(Usage.from_api(line.usage), line.model, batch=False).usd for line in sim.bill)
    ledger_total = math.fsum(r["cost_usd"] for r in rows)
    assert all(line.batch for line in sim.bill) and len(sim.bill) == 100
    assert ledger_total == pytest.approx(sim.bill_total_usd(), rel=1e-12, abs=1e-15)
    assert ledger_total == pytest.approx(standard / 2, rel=1e-12, abs=1e-15)
    assert math.fsum(r["saved_batch_usd"] for r in rows) == pytest.approx(standard / 2, rel=1e-9)
    for r in rows:  # the lever split adds up, batch savings included
        parts = r["saved_cache_usd"] + r["saved_pruning_usd"] + r["saved_routing_usd"] + r["saved_prompt_cache_usd"] + r["saved_batch_usd"]
        assert parts == pytest.approx(r["saved_usd"], abs=1e-12) and r["service_tier"] == "batch"

    done = q.status(ids[7])
    assert done["status"] == "succeeded" and done["text"].startswith("Simulated answer") and done["cost_usd"] > 0
    assert done["model"] == "claude-haiku-5-5"  # routing applies to deferred work: a light task
    assert len(q.results(limit=500)) == 100 and q.results(status="failed") == []


@pytest.mark.anyio
async def test_shared_system_prompt_is_cached_with_1h_ttl_inside_the_batch(queue_factory, api_env):
    sim = api_env
    q = queue_factory()
    for i in range(4):
        await defer(q, f"Summarise the trend for region {i}.", system=LONG_SYSTEM, model="claude-sonnet-5-5")
    await q.process(force=True)
    sent = batch_posts(sim)[0].body["requests"]
    assert all(r["params"]["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"} for r in sent)
    rows = ledger_rows(q.store, source="batch")
    assert sum(r["cache_write_1h_tokens"] > 0 for r in rows) == 1
    assert sum(r["cache_read_tokens"] > 0 for r in rows) == 3
    assert math.fsum(r["cost_usd"] for r in rows) == pytest.approx(sim.bill_total_usd(), rel=1e-12)
    assert all(r["saved_prompt_cache_usd"] is not None for r in rows)


@pytest.mark.anyio
async def test_priorities_and_batch_timeout(queue_factory, api_env, shifted_clock):
    sim = api_env
    t0 = utc(2026, 11, 20, 12, 0)
    shifted_clock(t0)
    q = queue_factory()
    normal = (await defer(q, "Explain what a hash map is."))["task_id"]
    low = (await defer(q, "Explain what a linked list is.", priority="low"))["task_id"]
    high = await defer(q, "Explain what a binary heap is.", priority="high")
    assert high["estimated_ready_at"] == "2026-11-20T13:00:00Z"
    out = await q.process()
    assert out["submitted_tasks"] == 1 and out["queued"] == 2
    assert q.status(high["task_id"])["status"] == "succeeded"
    assert [r["custom_id"] for r in batch_posts(sim)[0].body["requests"]] == [high["task_id"]]

    shifted_clock(t0 + S.batch_timeout_seconds + 1)
    out = await q.process()
    assert out["submitted_tasks"] == 1 and q.status(normal)["status"] == "succeeded"
    assert q.status(low)["status"] == "queued"  # low work waits for the night


@pytest.mark.anyio
async def test_low_priority_goes_out_in_the_off_peak_window_or_for_its_deadline(queue_factory, api_env, shifted_clock):
    sim = api_env
    shifted_clock(utc(2026, 11, 20, 10, 0))
    q = queue_factory()
    relaxed = await defer(q, "List three synonyms of quick.", priority="low")
    assert relaxed["estimated_ready_at"] == "2026-11-21T01:00:00Z"  # 00:00 off-peak start + expected hour
    pressed = await defer(q, "List three synonyms of slow.", priority="low", max_wait_seconds=3 * 3600)
    assert pressed["estimated_ready_at"] == "2026-11-20T12:59:30Z"
    assert (await q.process())["submitted_tasks"] == 0

    shifted_clock(utc(2026, 11, 20, 11, 59, 45))  # deadline 13:00 minus the expected hour and one poll interval
    out = await q.process()
    # the deadline sends its category, which holds the relaxed task too (same model, priority, prefix)
    assert out["submitted_tasks"] == 2 and any("deadline" in d for d in out["details"])

    another = await defer(q, "List three synonyms of bright.", priority="low")
    shifted_clock(utc(2026, 11, 21, 0, 30))
    out = await q.process()
    assert out["submitted_tasks"] == 1 and any("off-peak" in d for d in out["details"])
    assert q.status(another["task_id"])["status"] == "succeeded"
    assert len(batch_posts(sim)) == 2


@pytest.mark.anyio
async def test_deadline_too_near_for_a_batch_runs_immediately_at_the_standard_rate(queue_factory, api_env):
    sim = api_env
    q = queue_factory()
    out = await defer(q, "What is the capital of France?", max_wait_seconds=120)
    assert out["status"] == "succeeded" and out["result"]["text"].startswith("Simulated answer")
    assert any("shorter than a batch" in w for w in out["warnings"])
    crit = await defer(q, "What is the capital of Spain?", critical=True)
    assert crit["status"] == "succeeded" and crit["result"]["source"] == "api"
    assert not batch_posts(sim)
    rows = ledger_rows(q.store)
    assert sorted(r["task_id"] for r in rows) == sorted([out["task_id"], crit["task_id"]])
    assert all(r["source"] == "api" and r["saved_batch_usd"] == 0 for r in rows)
    assert q.status(out["task_id"])["text"] == out["result"]["text"]


@pytest.mark.anyio
async def test_queued_task_past_its_batch_deadline_runs_immediately(queue_factory, api_env, shifted_clock):
    sim = api_env
    t0 = utc(2026, 11, 20, 12, 0)
    shifted_clock(t0)
    q = queue_factory(budget={"policy": "block", "daily_usd": 0.000001})
    task = (await defer(q, "Name a prime number.", max_wait_seconds=3 * 3600))["task_id"]
    await q.process(force=True)
    assert "waiting for budget" in q.status(task)["error"] and q.status(task)["status"] == "queued"
    shifted_clock(t0 + 2.5 * 3600)  # the server was away: a batch would now miss the deadline
    out = await q.process()
    assert out["ran_immediately"] == 0 and q.status(task)["status"] == "queued"  # the budget still holds it
    q.engine.config.budget.daily_usd = 100.0
    out = await q.process()
    assert out["ran_immediately"] == 1 and not batch_posts(sim)
    assert q.status(task)["status"] == "succeeded"
    assert [r["task_id"] for r in ledger_rows(q.store, source="api")] == [task]


@pytest.mark.anyio
async def test_errored_results_are_retried_then_failed_with_the_api_error(queue_factory, api_env):
    sim = api_env
    q = queue_factory(batch={"max_attempts": 2})
    flaky = (await defer(q, "Define entropy in one line.", priority="high"))["task_id"]
    broken = (await defer(q, "Define enthalpy in one line.", priority="high"))["task_id"]
    invalid = (await defer(q, "Define exergy in one line.", priority="high"))["task_id"]
    expired = (await defer(q, "Define fugacity in one line.", priority="high"))["task_id"]
    sim.fail_batch_requests(flaky, error_type="overloaded_error", message="Overloaded (simulated)", times=1)
    sim.fail_batch_requests(broken, error_type="api_error", message="Internal failure 42", times=None)
    sim.fail_batch_requests(invalid, error_type="invalid_request_error", message="messages.0: bad block", times=None)
    sim.fail_batch_requests(expired, outcome="expired", times=1)

    await q.process()
    assert q.status(flaky)["status"] == "queued" and q.status(flaky)["attempts"] == 1
    assert "overloaded_error" in q.status(flaky)["error"]
    assert q.status(invalid)["status"] == "failed" and "bad block" in q.status(invalid)["error"]
    assert q.status(expired)["status"] == "queued" and "expired" in q.status(expired)["error"]

    await q.process()  # high priority: the retries go out at the next pass
    assert q.status(flaky)["status"] == "succeeded" and q.status(flaky)["attempts"] == 2
    assert q.status(expired)["status"] == "succeeded"
    assert q.status(broken)["status"] == "failed" and q.status(broken)["error"] == "api_error: Internal failure 42"
    assert q.status(broken)["attempts"] == 2

    history = task_store.submissions(q.store, flaky)
    assert [h["attempt"] for h in history] == [1, 2] and history[0]["batch_id"] != history[1]["batch_id"]
    sent = [r["custom_id"] for post in batch_posts(sim) for r in post.body["requests"]]
    assert sent.count(flaky) == 2 and sent.count(broken) == 2 and sent.count(invalid) == 1
    rows = ledger_rows(q.store)
    assert sorted(r["task_id"] for r in rows) == sorted([flaky, expired])  # errors are not billed
    assert math.fsum(r["cost_usd"] for r in rows) == pytest.approx(sim.bill_total_usd(), rel=1e-12)
    assert {t["task_id"] for t in q.results(status="failed")} == {broken, invalid}


@pytest.mark.anyio
async def test_cancel_queued_and_submitted_tasks(tmp_path, monkeypatch):
    with SimulatedAnthropic(batch_ready_after_polls=5) as sim:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", sim.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_API_KEY)
        q = connect_queue(Engine(make_config(), open_store(tmp_path / "c.db")))
        try:
            queued = (await defer(q, "Write a haiku about rain."))["task_id"]
            assert (await q.cancel(queued))["status"] == "canceled"
            await q.process(force=True)
            assert not batch_posts(sim)  # a canceled queued task is never sent

            a = (await defer(q, "Write a haiku about snow.", priority="high"))["task_id"]
            b = (await defer(q, "Write a haiku about hail.", priority="high"))["task_id"]
            await q.process()
            (batch_id,) = sim.batches
            one = await q.cancel(a)
            assert one["status"] == "canceled" and "billed and recorded" in one["note"]
            assert sim.batches[batch_id].processing_status == "in_progress"  # b still wants its answer
            await q.cancel(b)
            assert sim.batches[batch_id].processing_status == "canceling"  # nobody wants it: canceled at the API
            for _ in range(3):
                await q.process()
            assert sim.batches[batch_id].processing_status == "ended"
            assert q.status(a)["status"] == q.status(b)["status"] == "canceled"
            assert q.status(a)["text"] is None
            assert ledger.count(q.store) == len(sim.bill)  # whatever was billed is in the ledger
            with pytest.raises(KeyError, match="no deferred task 'task_nope'"):
                await q.cancel("task_nope")
        finally:
            await q.engine.aclose()


@pytest.mark.anyio
async def test_canceled_task_whose_batch_finishes_is_billed_not_answered(tmp_path, monkeypatch):
    with SimulatedAnthropic(batch_ready_after_polls=2) as sim:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", sim.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_API_KEY)
        q = connect_queue(Engine(make_config(), open_store(tmp_path / "c.db")))
        try:
            a = (await defer(q, "Name a red fruit.", priority="high"))["task_id"]
            b = (await defer(q, "Name a yellow fruit.", priority="high"))["task_id"]
            await q.process()
            await q.cancel(a)
            await q.process()
            assert q.status(b)["status"] == "succeeded"
            late = await q.cancel(b)
            assert late["status"] == "succeeded" and "already succeeded" in late["note"]
            sa = q.status(a)
            assert sa["status"] == "canceled" and sa["text"] is None and sa["cost_usd"] > 0
            assert sorted(r["task_id"] for r in ledger_rows(q.store)) == sorted([a, b])
            assert math.fsum(r["cost_usd"] for r in ledger_rows(q.store)) == pytest.approx(sim.bill_total_usd(), rel=1e-12)
        finally:
            await q.engine.aclose()


@pytest.mark.anyio
async def test_results_are_ingested_once_even_when_read_again(queue_factory, api_env):
    sim = api_env
    q = queue_factory()
    ids = [(await defer(q, f"Spell the number {i}.", priority="high"))["task_id"] for i in range(5)]
    await q.process()
    (batch_id,) = sim.batches
    with q.store.write() as c:  # as if the process died before marking the batch ingested
        c.execute("UPDATE batches SET status = 'ended' WHERE id = ?", (batch_id,))
    out = await q.process()
    assert out["collected"] == 0
    assert ledger.count(q.store) == 5 and all(q.status(t)["status"] == "succeeded" for t in ids)


@pytest.mark.anyio
async def test_orphaned_claim_is_adopted_not_resubmitted(queue_factory, api_env):
    """A crash between batches.create and recording its id: the next pass finds
    the batch in the API's list and adopts it (the subprocess version of this
    is in test_batches_crash.py)."""
    sim = api_env
    q = queue_factory()
    ids = [(await defer(q, f"Give an antonym of word {i}.", priority="high"))["task_id"] for i in range(3)]
    host = process_owner().rsplit(":", 3)[0]
    task_store.claim(q.store, q.engine.tenant, ids, token="claim_x", owner=f"{host}:999999999:-:x", now=clock.now(),
                     lease_until=clock.now() - 1)  # its lease has run out
    payloads = task_store.task_payloads(q.store, ids)
    await q.engine.client.messages.batches.create(
        requests=[{"custom_id": t, "params": payloads[t]["params"]} for t in ids])
    out = await q.process()
    assert any("adopted" in d for d in out["details"]) and out["collected"] == 3
    assert len(batch_posts(sim)) == 1 and ledger.count(q.store) == 3

    # a claim whose batch was never created goes back to the queue, then out once
    # normal priority: queued until a batch fills or times out, whatever the hour
    # (a low-priority task goes out at once in the off-peak window, 0-6 UTC)
    more = (await defer(q, "Give an antonym of cold.", priority="normal"))["task_id"]
    task_store.claim(q.store, q.engine.tenant, [more], token="claim_y", owner=f"{host}:999999999:-:x", now=clock.now(),
                     lease_until=clock.now() - 1)
    await q.process()
    assert q.status(more)["status"] == "queued"
    await q.process(force=True)
    assert q.status(more)["status"] == "succeeded" and len(batch_posts(sim)) == 2


@pytest.mark.anyio
async def test_a_dead_owners_claim_is_taken_over_at_once_on_one_machine_and_after_its_lease_on_a_shared_database(
        queue_factory, api_env, shifted_clock):
    """SQLite lives on one machine: /proc says the owner is gone, the claim is
    reconciled at once. A PostgreSQL database is shared across machines, where
    the same pid may be a live process elsewhere: only the lease decides."""
    q = queue_factory()
    ids = [(await defer(q, f"Give a synonym of word {i}.", priority="high"))["task_id"] for i in range(3)]
    now = clock.now()
    shifted_clock(now)
    host = process_owner().rsplit(":", 3)[0]
    task_store.claim(q.store, q.engine.tenant, ids, token="claim_z", owner=f"{host}:999999999:-:x", now=now,
                     lease_until=now + 600)
    payloads = task_store.task_payloads(q.store, ids)
    await q.engine.client.messages.batches.create(
        requests=[{"custom_id": t, "params": payloads[t]["params"]} for t in ids])
    out = await q.process()
    if q.store.shared_across_hosts:
        assert not any("adopted" in d for d in out["details"]) and out["collected"] == 0
        assert all(q.status(t)["status"] == "submitted" for t in ids)  # claimed: being sent, for all we know
        shifted_clock(now + 601)
        out = await q.process()
    assert any("adopted" in d for d in out["details"]) and out["collected"] == 3
    assert len(batch_posts(api_env)) == 1  # sent once, whoever finished the job


@pytest.mark.anyio
async def test_submission_failure_keeps_tasks_queued(queue_factory, api_env):
    sim = api_env
    q = queue_factory()
    task = (await defer(q, "Say hello in Greek.", priority="high"))["task_id"]
    sim.inject_faults("500", count=1, path="/v1/messages/batches")
    out = await q.process()
    assert out["submitted_tasks"] == 0 and q.status(task)["status"] == "queued"
    assert "will retry" in q.status(task)["error"]
    await q.process()
    assert q.status(task)["status"] == "succeeded" and q.status(task)["attempts"] == 1


@pytest.mark.anyio
async def test_budget_block_holds_due_work(queue_factory, api_env):
    sim = api_env
    q = queue_factory(budget={"policy": "block", "daily_usd": 0.000001})
    task = (await defer(q, "Say hello in Latin.", priority="high"))["task_id"]
    out = await q.process()
    assert out["submitted_tasks"] == 0 and any("budget" in d for d in out["details"])
    assert q.status(task)["status"] == "queued" and "budget" in q.status(task)["error"]
    assert not batch_posts(sim)
    q.engine.config.budget.daily_usd = 10.0
    await q.process()
    assert q.status(task)["status"] == "succeeded" and q.status(task)["error"] is None


@pytest.mark.anyio
async def test_progress_is_reported(queue_factory, api_env):
    q = queue_factory()
    for i in range(3):
        await defer(q, f"Count to {i}.", priority="high")
    seen: list[tuple] = []

    async def progress(done, total, message):
        seen.append((done, total, message))

    await q.process(progress=progress)
    messages = [m for _, _, m in seen]
    assert any(m.startswith("submitting 3 task(s)") for m in messages)
    assert "polling batch 1/1" in messages and any(m.startswith("ingest") for m in messages)
    assert all(total is None or 0 <= done <= total for done, total, _ in seen)


@pytest.mark.anyio
async def test_validation_errors_say_what_to_fix(queue_factory, api_env):
    q = queue_factory()
    with pytest.raises(InputError, match="priority"):
        await defer(q, "x", priority="urgent")
    with pytest.raises(InputError, match="max_wait_seconds"):
        await defer(q, "x", max_wait_seconds=0)
    with pytest.raises(InputError, match="exactly one of `prompt`"):
        await q.defer(CompletionRequest(), priority="normal", max_wait_seconds=86400, critical=False)
    with pytest.raises(KeyError, match="no deferred task"):
        q.status("task_missing")
    with pytest.raises(ValueError, match="status must be one of"):
        q.results(status="bogus")


@pytest.mark.anyio
async def test_long_deferred_conversation_is_pruned(queue_factory, api_env):
    sim = api_env
    q = queue_factory(pruning={"auto_threshold_tokens": 2000})
    messages = []
    for i in range(40):
        messages.append({"role": "user", "content": f"Turn {i}: here are more notes about the migration plan. " * 12})
        messages.append({"role": "assistant", "content": f"Noted turn {i}. " * 20})
    messages.append({"role": "user", "content": "Now summarise the plan."})
    task = (await q.defer(CompletionRequest(messages=messages), priority="high", max_wait_seconds=86400, critical=False))["task_id"]
    await q.process()
    sent = batch_posts(sim)[0].body["requests"][0]["params"]["messages"]
    assert len(sent) < len(messages)
    (row,) = ledger_rows(q.store, task_id=task)
    assert row["tokens_before_pruning"] > row["tokens_after_pruning"] and row["saved_pruning_usd"] > 0


@pytest.mark.anyio
async def test_worker_keeps_going_through_api_faults(queue_factory, api_env):
    sim = api_env
    q = queue_factory(batch={"poll_interval_seconds": 0.05})
    sim.inject_faults("500", count=3, path="/v1/messages/batches")
    stop = asyncio.Event()
    worker = asyncio.create_task(q.run_worker(stop))
    try:
        task = (await defer(q, "Name a blue flower.", priority="high"))["task_id"]
        for _ in range(200):
            if q.status(task)["status"] == "succeeded":
                break
            await asyncio.sleep(0.02)
        assert q.status(task)["status"] == "succeeded"
        assert not worker.done()
    finally:
        stop.set()
        await asyncio.wait_for(worker, 5)


@pytest.mark.anyio
async def test_batch_answers_feed_the_response_cache(queue_factory, api_env):
    sim = api_env
    q = queue_factory()
    first = (await defer(q, "What is the boiling point of water at sea level?", priority="high"))["task_id"]
    await q.process()
    again = await defer(q, "What is the boiling point of water at sea level?", priority="high")
    assert again["status"] == "succeeded" and again["result"]["source"] == "cache"
    assert again["result"]["text"] == q.status(first)["text"] and again["result"]["cost_usd"] == 0
    assert any("response cache" in w for w in again["warnings"])
    assert q.status(again["task_id"])["status"] == "succeeded"
    assert len(batch_posts(sim)) == 1 and len(sim.bill) == 1
    assert [r["source"] for r in sorted(ledger_rows(q.store), key=lambda r: r["ts"])] == ["batch", "cache"]


@pytest.mark.anyio
async def test_a_task_whose_results_keep_expiring_ends_expired(tmp_path, sim, monkeypatch):
    from mcp_tars.batches import DeferredQueue
    from mcp_tars.engine import CompletionRequest, Engine
    from mcp_tars.store import Store, open_store

    from conftest import TEST_API_KEY, make_config

    monkeypatch.setenv("ANTHROPIC_BASE_URL", sim.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_API_KEY)
    engine = Engine(make_config(batch={"max_attempts": 2, "worker_enabled": False}), open_store(tmp_path / "x.db"))
    q: DeferredQueue = connect_queue(engine)
    try:
        task = (await q.defer(CompletionRequest(prompt="Define entropy in one line."), priority="high",
                              max_wait_seconds=7 * 86400, critical=False))["task_id"]
        sim.fail_batch_requests(task, outcome="expired", times=None)
        for _ in range(3):
            await q.process(force=True)
        status = q.status(task)
        assert status["status"] == "expired" and "24-hour" in status["error"]
        assert status["attempts"] == 2
    finally:
        await engine.aclose()


@pytest.mark.anyio
async def test_overdue_tasks_run_at_most_immediate_concurrency_at_a_time(queue_factory, api_env, shifted_clock):
    sim = api_env
    t0 = utc(2026, 11, 20, 12, 0)
    shifted_clock(t0)
    q = queue_factory(batch={"immediate_concurrency": 2})
    tasks = [(await defer(q, f"Name prime number {i}.", max_wait_seconds=3 * 3600))["task_id"] for i in range(5)]
    assert all(q.status(t)["status"] == "queued" for t in tasks)
    # Count the overdue runs in flight (the real runs, each held a moment so they overlap if the gate lets them).
    in_flight, peak = 0, 0
    run_now = q._run_now

    async def counted(*args, **kwargs):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0.02)
            return await run_now(*args, **kwargs)
        finally:
            in_flight -= 1

    q._run_now = counted
    shifted_clock(t0 + 2.5 * 3600)  # a batch would now miss every deadline
    out = await q.process()
    assert out["ran_immediately"] == 5 and not batch_posts(sim)
    assert all(q.status(t)["status"] == "succeeded" for t in tasks)
    assert peak == 2

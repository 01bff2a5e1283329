"""Pruning against the simulated API: every pruned conversation is accepted, and
automatic pruning inside a session keeps the prompt cache working."""

from __future__ import annotations

import json
import math

import anthropic
import pytest
from hypothesis import HealthCheck, given, settings

from conftest import make_config
from mcp_tars.engine import CompletionRequest, Engine
from mcp_tars.pruning import PruningSettings, prune_messages, validate_conversation
from mcp_tars.store import open_store
from test_pruning_properties import cases


@pytest.fixture(scope="module")
def shared_sim():
    from mcp_tars.sim import SimulatedAnthropic

    with SimulatedAnthropic() as s:
        yield s


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_the_simulated_api_accepts_every_pruned_conversation(case, shared_sim, tmp_path_factory):
    result = prune_messages(case["messages"], system=case["system"], max_tokens=case["max_tokens"],
                            level=case["level"], settings=PruningSettings(), protected_prefix=case["protected_prefix"],
                            budget_used_share=case["budget_used_share"])
    assert validate_conversation(result.messages) == []
    client = anthropic.Anthropic(api_key="test", base_url=shared_sim.base_url, max_retries=0,
                                 _strict_response_validation=True)
    params = {"model": "claude-haiku-5-5", "max_tokens": 16, "messages": result.messages}
    if case["system"] is not None:
        params["system"] = case["system"]
    try:
        client.messages.create(**params)  # raises on the 400 the API would give an invalid conversation
    finally:
        client.close()


@pytest.mark.anyio
async def test_session_pruning_keeps_the_pruned_prefix_cached(tmp_path, api_env):
    from bench.conversations import generate_session

    session = generate_session(seed=3, target_tokens=70_000)
    user_turns = [i for i, m in enumerate(session.messages)
                  if m["role"] == "user" and i > 0 and session.messages[i - 1]["role"] == "assistant"]
    engine = Engine(make_config(pruning={"auto_threshold_tokens": 20_000, "auto_target_tokens": 8_000}),
                    open_store(tmp_path / "p.db"))
    results = []
    try:
        for end in user_turns[-30:]:
            r = await engine.complete(CompletionRequest(messages=session.messages[: end + 1], system=session.system,
                                                        max_tokens=100, model="claude-sonnet-5-5",
                                                        session_id="long", use_cache=False))
            results.append(r)
    finally:
        await engine.aclose()
    pruned = [r for r in results if r.pruning]
    assert len(pruned) >= 10
    assert all(r.pruning["tokens_after"] < r.pruning["tokens_before"] for r in pruned)
    # after the first pruned turn, the pruned prefix is reused, so most input is read from the prompt cache
    later = pruned[2:]
    read = sum(r.usage["cache_read_input_tokens"] for r in later)
    total = sum(r.usage["input_tokens"] + r.usage["cache_creation_input_tokens"] + r.usage["cache_read_input_tokens"]
                for r in later)
    assert read / total > 0.6, (read, total)


@pytest.mark.anyio
async def test_abstractive_summary_is_billed_once_and_cached(tmp_path, api_env):
    from bench.conversations import generate_session
    from mcp_tars.store import ledger

    session = generate_session(seed=5, target_tokens=40_000)
    messages = session.messages
    if messages[-1]["role"] != "user":
        messages = messages[:-1]
    config = make_config(pruning={"auto_threshold_tokens": 10_000, "auto_target_tokens": 4_000, "abstractive": True})
    engine = Engine(config, open_store(tmp_path / "a.db"))
    try:
        first = await engine.complete(CompletionRequest(messages=messages, system=session.system, max_tokens=50,
                                                        model="claude-sonnet-5-5", use_cache=False))
        again = await engine.complete(CompletionRequest(messages=messages, system=session.system, max_tokens=50,
                                                        model="claude-sonnet-5-5", use_cache=False))
    finally:
        await engine.aclose()
    assert first.pruning and any(n.startswith("summary: abstractive") for n in first.pruning["notes"]), first.pruning["notes"]
    everything = ledger.rows(engine.store)
    rows = [(r["model"], r["cost_usd"]) for r in everything if "pruning_summary" in (r["decisions"] or "")]
    assert len(rows) == 1, [(r["source"], r["model"], r["decisions"]) for r in everything]  # summarised once
    assert rows[0][0] == "claude-haiku-5-5" and rows[0][1] > 0  # the cheapest tier, billed like any call
    assert again.pruning and ledger.count(engine.store) == 3  # two answers + one summary
    total = math.fsum(r["cost_usd"] for r in everything)
    assert abs(total - api_env.bill_total_usd()) < 1e-9


@pytest.mark.anyio
async def test_automatic_pruning_in_a_session_keeps_the_fact_the_question_needs(tmp_path, api_env):
    """The reported case through optimized_complete: the port stated before pasted
    code reaches the API with the question that asks for it, every turn accepted."""
    from mcp import Client

    from conftest import in_process_server
    from mcp_tars.sim.answers import question_text
    from test_pruning import BIG_SYSTEM, _dana

    config = make_config(pruning={"auto_threshold_tokens": 12_000, "auto_target_tokens": 6_000})
    messages = _dana()
    async with Client(in_process_server(config, str(tmp_path / "s.db"))) as client:
        for end in (4, 6):  # two turns of one session: the second continues the first's pruning
            r = await client.call_tool("optimized_complete", {
                "messages": messages[: end + 1], "system": BIG_SYSTEM, "max_tokens": 50,
                "model": "claude-sonnet-5-5", "session_id": "dana", "use_cache": False})
            assert not r.is_error, r.content
    calls = [q for q in api_env.requests if q.path.startswith("/v1/messages") and q.body]
    assert calls and all(q.status == 200 for q in calls)
    final = calls[-1].body
    assert r.structured_content["pruning"] is not None
    assert question_text(final["messages"]) == "Which port does my database use?"  # (with a cache breakpoint added)
    assert "5433" in json.dumps(final["messages"])

"""Prompt caching end to end: agent sessions through the real MCP server
(in-process, through the MCP client) against the simulated API, whose prompt
cache and bill are the referee. The shared clock (MCP_TARS_CLOCK_FILE) moves
the server and the simulator together through pauses of up to 35 minutes.

Two sessions of 16 calls (Sonnet and Opus), each with a
system prompt of several thousand tokens, tools, tool_use / tool_result
round trips, follow-ups, and four pauses longer than 5 minutes. After each
session's first call, ours must bill at least 90% of input tokens as cache
reads; plain 5-minute automatic caching reads clearly less and costs more.
"""

from __future__ import annotations

import json

import pytest
from mcp import Client

from conftest import in_process_server, make_config
from mcp_tars import clock
from mcp_tars.prompt_cache import PromptCacheSettings, SessionTiming, shape_request
from mcp_tars.store import ledger, open_store

pytestmark = pytest.mark.anyio

WORDS = ("request handler cache retry schema migration worker queue lock token budget ledger report "
         "session model router prefix breakpoint timeout index replica shard").split()
# Seconds before calls 2..16: tool runs of seconds, people reading, four pauses of 7-35 minutes.
PAUSES = {
    "a": [12, 40, 95, 420, 8, 30, 1500, 15, 60, 200, 25, 2100, 10, 45, 900],
    "b": [30, 600, 20, 10, 150, 1250, 40, 9, 75, 2000, 18, 33, 420, 12, 70],
}


def system_prompt(topic: str, sentences: int) -> str:
    lines = [f"You are an agent that maintains the {topic} service. Follow these rules exactly."]
    for i in range(sentences):
        a, b, c = WORDS[i % len(WORDS)], WORDS[(i * 7 + 3) % len(WORDS)], WORDS[(i * 11 + 5) % len(WORDS)]
        lines.append(f"Rule {i + 1}: never change the {a} of a {b} without checking its {c} first ({topic}).")
    return "\n".join(lines)


def tools_for(topic: str) -> list[dict]:
    return [{"name": name, "description": f"{name.replace('_', ' ')} in the {topic} repository. " * 6,
             "input_schema": {"type": "object", "properties": {"target": {"type": "string"}}, "required": ["target"]}}
            for name in ("read_file", "run_tests", "grep", "edit_file")]


def tool_output(session: str, call: int) -> str:
    lines = 15 + (call * 37 + len(session) * 11) % 140  # 15-155 lines: small outputs and whole files
    return "\n".join(f"{session}:{call}:{i} {WORDS[(call + i) % len(WORDS)]} ok in {i * 3} ms" for i in range(lines))


async def replay(client: Client, session: str, model: str | None, system: str, tools: list[dict],
                 with_session_id: bool = True) -> list[dict]:
    messages: list[dict] = [{"role": "user", "content": f"Session {session}: the nightly job fails. Use the tools to find out why."}]
    results = []
    for call in range(16):
        if call:
            clock.advance(PAUSES[session][call - 1])
        args = {"messages": messages, "system": system, "tools": tools, "max_tokens": 1024}
        if with_session_id:
            args["session_id"] = f"e2e-{session}"
        if model:
            args["model"] = model
        r = await client.call_tool("optimized_complete", args)
        assert not r.is_error, r.content
        result = r.structured_content
        results.append(result)
        content = result["content"]
        messages = messages + [{"role": "assistant", "content": content}]
        uses = [b for b in content if b["type"] == "tool_use"]
        if uses:
            messages.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": b["id"], "content": tool_output(session, call)} for b in uses]})
        elif call % 3 == 2:
            messages.append({"role": "user", "content": f"Explain in detail what you found so far (call {call})."})
        else:
            messages.append({"role": "user", "content": f"Good. Now use the run_tests tool on step {call}."})
    return results


def read_share(sim, results: list[dict]) -> float:
    bill = {line.response_id: line.usage for line in sim.bill}
    read = total = 0
    for result in results[1:]:
        usage = bill[result["response_id"]]
        read += usage["cache_read_input_tokens"]
        total += usage["input_tokens"] + usage["cache_read_input_tokens"] + usage["cache_creation_input_tokens"]
    return read / total


async def run_mode(sim, tmp_path, mode: str, prompt_cache: dict) -> dict:
    sim.reset()
    clock.advance(3 * 3600)  # nothing of an earlier mode is alive, in any cache
    db = tmp_path / f"{mode}.db"
    server = in_process_server(make_config(prompt_cache=prompt_cache), str(db))
    # Models are pinned: a routing change must not move this test (a mid-session model switch rewrites the cache).
    sessions = {"a": ("claude-sonnet-5-5", system_prompt("billing", 260)), "b": ("claude-opus-5-5", system_prompt("search", 170))}
    shares, results = {}, {}
    async with Client(server) as client:
        for session, (model, system) in sessions.items():
            results[session] = await replay(client, session, model, system, tools_for(session))
            shares[session] = read_share(sim, results[session])
            clock.advance(2 * 3600)
        report = (await client.call_tool("cost_report", {"period": "all", "group_by": "session", "format": "json"})).structured_content
    later = [r for rs in results.values() for r in rs[1:]]
    bill = {line.response_id: line.usage for line in sim.bill}
    read = sum(bill[r["response_id"]]["cache_read_input_tokens"] for r in later)
    total = sum(bill[r["response_id"]]["input_tokens"] + bill[r["response_id"]]["cache_read_input_tokens"]
                + bill[r["response_id"]]["cache_creation_input_tokens"] for r in later)
    return {"share": read / total, "sessions": shares, "cost": sim.bill_total_usd(), "db": db, "report": report,
            "models": {s: [r["model"] for r in rs] for s, rs in results.items()},
            "stop_reasons": [r["stop_reason"] for rs in results.values() for r in rs], "results": results}


async def test_agent_sessions_read_at_least_90_percent_from_the_prompt_cache(tmp_path, api_env, monkeypatch):
    monkeypatch.setenv("MCP_TARS_CLOCK_FILE", str(tmp_path / "clock"))
    sim = api_env
    none = await run_mode(sim, tmp_path, "none", {"enabled": False})
    auto = await run_mode(sim, tmp_path, "auto_5m", {"strategy": "auto_5m"})
    ours = await run_mode(sim, tmp_path, "ours", {})

    # The workload is what it claims: tool round trips, long pauses, the same models in every mode.
    assert ours["stop_reasons"].count("tool_use") >= 10
    assert none["models"] == auto["models"] == ours["models"]
    assert none["share"] == 0.0

    assert ours["share"] >= 0.90, ours["sessions"]
    assert all(share >= 0.88 for share in ours["sessions"].values()), ours["sessions"]
    assert auto["share"] < ours["share"] - 0.05, (auto["share"], ours["share"])
    assert ours["cost"] < auto["cost"] < none["cost"]

    # Every call's routing and prompt-cache decisions are in the ledger, as the bill saw them.
    bill = {line.response_id: line.usage for line in sim.bill}
    with open_store(ours["db"]) as store:
        rows = sorted(ledger.rows(store), key=lambda r: r["ts"])
    assert len(rows) == 32
    ttls = []
    for row in rows:
        decision = json.loads(row["prompt_cache"])
        assert decision["applied"] is True and decision["reason"], decision
        assert decision["breakpoints"] >= 1 and decision["stable_prefix_hash"]
        ttls.append(decision["ttl"])
        assert row["routing_level"] and row["routing_reason"] and row["routing_score"] is not None
        assert row["session_id"] in ("e2e-a", "e2e-b")
        usage = bill[row["response_id"]]
        assert row["cache_read_tokens"] == usage["cache_read_input_tokens"]
        assert row["cache_write_1h_tokens"] == usage["cache_creation"]["ephemeral_1h_input_tokens"]
    assert ttls.count("1h") >= 20  # long pauses: the conversation is written with the 1-hour TTL
    with open_store(auto["db"]) as store:
        auto_decisions = [json.loads(r["prompt_cache"]) for r in ledger.rows(store)]
    assert {d["ttl"] for d in auto_decisions} == {"5m"} and all(d["breakpoints"] == 1 for d in auto_decisions)

    # ... and visible in the report: both sessions, with what prompt caching saved.
    assert ours["report"]["totals"]["calls"] == 32
    assert json.dumps(ours["report"]).count("e2e-") >= 2


async def test_a_client_without_session_ids_still_reads_90_percent(tmp_path, api_env, monkeypatch):
    """No session_id: no gaps observed, so the TTL comes from the prior alone."""
    monkeypatch.setenv("MCP_TARS_CLOCK_FILE", str(tmp_path / "clock"))
    server = in_process_server(make_config(), str(tmp_path / "nosession.db"))
    async with Client(server) as client:
        results = await replay(client, "a", "claude-sonnet-5-5", system_prompt("billing", 260), tools_for("a"),
                               with_session_id=False)
    assert read_share(api_env, results) >= 0.90
    assert all(r["session_id"] is None for r in results)
    assert "prior only" in results[-1]["prompt_cache"]["reason"]


# --------------------------------------------------------------------------- the pure pieces the benchmark modes rely on

SONNET = "claude-sonnet-5-5"


def _agent_request(turns: int) -> dict:
    messages: list[dict] = [{"role": "user", "content": "Find out why the nightly job fails; use the tools."}]
    for i in range(turns - 1):
        messages.append({"role": "assistant", "content": [{"type": "tool_use", "id": f"t{i}", "name": "grep", "input": {"target": "x"}}]})
        messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{i}", "content": tool_output("p", i)}]})
    return {"model": SONNET, "max_tokens": 100, "system": system_prompt("billing", 200), "tools": tools_for("p"), "messages": messages}


def test_auto_5m_is_one_top_level_5_minute_marker_and_nothing_else():
    params = _agent_request(6)
    before = json.dumps(params, sort_keys=True)
    shaped, decision = shape_request(params, SONNET, PromptCacheSettings(strategy="auto_5m"), SessionTiming([700.0] * 5))
    assert json.dumps(params, sort_keys=True) == before  # the caller's dict is not mutated
    assert shaped["cache_control"] == {"type": "ephemeral", "ttl": "5m"}
    assert "cache_control" not in json.dumps({k: v for k, v in shaped.items() if k != "cache_control"})
    assert decision.applied and decision.ttl == "5m" and decision.breakpoints == 1
    own = dict(params, cache_control={"type": "ephemeral", "ttl": "1h"})  # the caller's own automatic marker stays
    shaped, decision = shape_request(own, SONNET, PromptCacheSettings(strategy="auto_5m"), None)
    assert shaped["cache_control"] == {"type": "ephemeral", "ttl": "1h"} and not decision.applied


def test_a_lost_conversation_cache_is_rewritten_with_first_call_economics():
    params = _agent_request(10)
    gaps = [30.0, 900.0, 20.0, 1500.0, 40.0, 15.0, 600.0, 25.0]
    _, kept = shape_request(params, SONNET, PromptCacheSettings(), SessionTiming(gaps, previous_model=SONNET))
    assert kept.ttl == "1h"  # only the last turn is new: 1h is cheap insurance
    _, switched = shape_request(params, SONNET, PromptCacheSettings(), SessionTiming(gaps, previous_model="claude-opus-5-5"))
    assert switched.ttl == "5m" and "model changed" in switched.reason  # everything is written again
    _, stale = shape_request(params, SONNET, PromptCacheSettings(), SessionTiming(gaps, seconds_since_previous_call=5400))
    assert stale.ttl == "5m" and "since the previous call" in stale.reason
    quick = SessionTiming([10.0] * 6)
    _, with_pause = shape_request(params, SONNET, PromptCacheSettings(), SessionTiming([10.0] * 6, seconds_since_previous_call=1200))
    assert with_pause.long_gap_share_estimate > shape_request(params, SONNET, PromptCacheSettings(), quick)[1].long_gap_share_estimate


# --------------------------------------------------------------------------- a caller that sets its own markers


def _system_marker(body: dict) -> dict | None:
    system = body.get("system")
    return system[0].get("cache_control") if isinstance(system, list) else None


async def _caller_marked_session(sim, tmp_path, name: str, prompt_cache: dict, system_cc: dict) -> dict:
    """Session "a" (long pauses) through the real server, its system prompt
    marked by the caller; what the simulated API saw and billed."""
    sim.reset()
    clock.advance(3 * 3600)  # nothing of an earlier run is alive in the cache
    server = in_process_server(make_config(prompt_cache=prompt_cache), str(tmp_path / f"{name}.db"))
    system = [{"type": "text", "text": system_prompt("billing", 260), "cache_control": system_cc}]
    async with Client(server) as client:
        results = await replay(client, "a", "claude-sonnet-5-5", system, tools_for("a"))
    sent = [r.body for r in sim.requests if r.path == "/v1/messages"]
    bill = {line.response_id: line.usage for line in sim.bill}
    usages = [bill[r["response_id"]] for r in results]
    assert system[0]["cache_control"] == system_cc  # the caller's own dicts are never touched
    return {"share": read_share(sim, results), "cost": sim.bill_total_usd(), "sent": sent, "results": results,
            "write_1h": sum(u["cache_creation"]["ephemeral_1h_input_tokens"] for u in usages),
            "decisions": [r["prompt_cache"] for r in results]}


async def test_a_caller_marker_without_ttl_gets_the_sessions_ttl(tmp_path, api_env, monkeypatch):
    """An agent that marks its system prompt with a TTL-less cache_control (the
    API's default 5 minutes) in a session with long pauses: adopted, the marker
    gets the 1-hour TTL our economics choose, and everything after it can be 1h
    too; not adopted, it forces 5m on every breakpoint after it. A marker with
    an explicit ttl is sent exactly as the caller wrote it. The simulated API,
    which rejects a 1h breakpoint after a 5m one, accepts every shaped request
    (replay fails on any tool error)."""
    monkeypatch.setenv("MCP_TARS_CLOCK_FILE", str(tmp_path / "clock"))
    sim = api_env
    on = await _caller_marked_session(sim, tmp_path, "adopt-on", {}, {"type": "ephemeral"})
    off = await _caller_marked_session(sim, tmp_path, "adopt-off", {"adopt_caller_markers_without_ttl": False},
                                       {"type": "ephemeral"})
    explicit = await _caller_marked_session(sim, tmp_path, "explicit-5m", {}, {"type": "ephemeral", "ttl": "5m"})

    for run in (on, off, explicit):
        assert len(run["sent"]) == 16  # one API request per call: nothing was refused and retried
        assert all(len(run["results"][i]["content"]) for i in range(16))

    # Adopted: the caller's marker goes out with the chosen ttl; 1h writes; more read from cache, for less.
    adopted = [d for d in on["decisions"] if d["adopted_caller_markers"]]
    assert len(adopted) >= 12, [d["reason"] for d in on["decisions"]]
    assert all("caller markers without a ttl: 1 given ttl 1h" in d["reason"] and d["ttl"] == "1h" for d in adopted)
    assert sum(_system_marker(body) == {"type": "ephemeral", "ttl": "1h"} for body in on["sent"]) == len(adopted)
    assert all(_system_marker(body) in ({"type": "ephemeral"}, {"type": "ephemeral", "ttl": "1h"}) for body in on["sent"])
    assert on["write_1h"] > 0
    assert on["share"] >= 0.90, on["share"]
    assert on["share"] > off["share"] + 0.05, (on["share"], off["share"])
    assert on["cost"] < off["cost"]

    # Setting off: today's behaviour, the caller's 5m forces 5m everywhere.
    assert off["write_1h"] == 0
    assert all(_system_marker(body) == {"type": "ephemeral"} for body in off["sent"])
    assert all(d["adopted_caller_markers"] == 0 for d in off["decisions"])
    assert any("ttl adjusted to the caller's markers (5m)" in d["reason"] for d in off["decisions"])

    # An explicit "5m" is the caller's choice: never changed, and nothing of ours is 1h after it.
    assert all(_system_marker(body) == {"type": "ephemeral", "ttl": "5m"} for body in explicit["sent"])
    assert explicit["write_1h"] == 0
    assert all(d["adopted_caller_markers"] == 0 for d in explicit["decisions"])
    assert explicit["share"] < on["share"] - 0.05

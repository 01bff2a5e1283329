"""Over 1,000 mixed calls through the server, the ledger equals the simulated
API's own bill to within $0.000001, and no response is counted twice: on a
SQLite file and on a PostgreSQL database."""

from __future__ import annotations

import random

import pytest
from mcp import Client

from conftest import in_process_server, make_config
from mcp_tars.store import ledger, open_store
from mcp_tars.store.schema import exact_usd

pytestmark = pytest.mark.anyio

MODELS = ["claude-haiku-5-5", "claude-sonnet-5-5", "claude-opus-5-5", "claude-sonnet-4-6",
          "claude-haiku-4-5-20251001", None, None]  # None: routed
LONG_SYSTEM = "You review pull requests for a payments company. Be precise and brief. " * 250


async def test_a_thousand_mixed_calls_match_the_bill(tmp_path, api_env, monkeypatch, db_url):
    sim = api_env
    clock_file = tmp_path / "clock"
    clock_file.write_text("0")
    monkeypatch.setenv("MCP_TARS_CLOCK_FILE", str(clock_file))
    from mcp_tars import clock

    db = db_url
    rng = random.Random(7)
    server = in_process_server(make_config(api={"max_retries": 6}), str(db))
    calls = errors = 0
    sessions: dict[str, list[dict]] = {}
    async with Client(server) as client:
        for i in range(1000):
            if i == 400:
                sim.inject_faults("529", count=12)  # a mid-run overload storm: retried, then fallback
            if i == 600:
                sim.inject_faults("stream_overloaded", count=3)
            if i % 97 == 0:
                sim.inject_faults("429", count=1)
            kind = rng.random()
            args: dict = {"max_tokens": rng.choice([50, 200, 600]), "use_cache": rng.random() < 0.3,
                          "stream": rng.random() < 0.3}
            if kind < 0.45:
                model = rng.choice(MODELS)
                if model:
                    args["model"] = model
                args["prompt"] = f"Question {rng.randint(0, 150)}: what does error code E{rng.randint(0, 40)} mean?"
            else:
                sid = f"s{rng.randint(0, 12)}"
                history = sessions.setdefault(sid, [])
                history.append({"role": "user", "content": f"Turn {len(history) // 2}: review hunk {rng.randint(0, 999)}"})
                args.update({"messages": list(history), "system": LONG_SYSTEM, "session_id": sid})
                if rng.random() < 0.05:
                    clock.advance(rng.choice([120, 400, 900]))  # pauses: 5m entries expire, 1h ones live
            r = await client.call_tool("optimized_complete", args)
            calls += 1
            if r.is_error:
                errors += 1
                if "messages" in args:
                    sessions[args["session_id"]].pop()
                continue
            if "messages" in args:
                sessions[args["session_id"]].append({"role": "assistant", "content": r.structured_content["text"]})
    assert errors == 0
    with open_store(db) as store:
        everything = ledger.rows(store)
    api_rows = [(r["response_id"], r["cost_usd"], r["cache_write_5m_tokens"], r["cache_write_1h_tokens"],
                 r["cache_read_tokens"], r["attempts"]) for r in everything if r["source"] == "api"]
    hit_rows = [r for r in everything if r["source"] == "cache"]
    hits = (len(hit_rows), sum(r["cost_picousd"] for r in hit_rows))
    total = float(sum(exact_usd(r["cost_picousd"]) for r in everything))
    billed_ids = [line.response_id for line in sim.bill]
    assert len(billed_ids) == len(set(billed_ids))
    assert sorted(r[0] for r in api_rows) == sorted(billed_ids)  # every billed response once, nothing else
    assert abs(total - sim.bill_total_usd()) <= 1e-6
    assert hits[1] == 0 and api_rows and len(api_rows) + hits[0] == calls
    assert sum(r[2] for r in api_rows) > 0 and sum(r[3] for r in api_rows) > 0 and sum(r[4] for r in api_rows) > 0
    assert any(r[5] > 1 for r in api_rows)  # retried requests are part of the run
    assert len({line.model for line in sim.bill}) >= 4

"""cost_report(group_by="strategy"): one group per lever with every figure a
model, day or session group has, over the calls that lever touched (its
saving on the call is non-zero); and the upgrade of an older SQLite file
(money in REAL USD, roll-ups as m033 built them) to today's schema.

The ledger is written by the real engine and deferred queue against the
simulated API; expected figures are computed here from the ledger's rows,
not from the roll-ups the reports read.
"""

from __future__ import annotations

import asyncio
import json
import math
from datetime import datetime, timezone

import pytest

from conftest import TEST_API_KEY, make_config
from mcp_tars import reports
from mcp_tars.store import Store, open_store, ledger
from mcp_tars.store import reports as report_store

LEVER_COLUMNS = {"cache": "saved_cache_picousd", "routing": "saved_routing_picousd",
                 "pruning": "saved_pruning_picousd", "prompt_cache": "saved_prompt_cache_picousd",
                 "batch": "saved_batch_picousd"}
LONG_SYSTEM = "You are the release assistant of a small web company. Answer briefly and precisely. " * 120
DAY = 86400.0


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def long_conversation(steps: int = 14) -> list[dict]:
    """A build session with long logs: well above the pruning threshold below."""
    messages: list[dict] = []
    for i in range(steps):
        log = "\n".join(f"[step {i}.{j}] compiled services/module_{i}_{j}.py in {(i * 31 + j * 7) % 97} ms, "
                        f"{(i + j) % 3} warnings, cache key {(i * 7919 + j * 104729) % 1_000_003:07d}"
                        for j in range(30))
        messages.append({"role": "user", "content": f"Build step {i} finished. Log:\n{log}"})
        messages.append({"role": "assistant", "content": f"Step {i} is green; nothing to fix."})
    messages.append({"role": "user", "content": "Which step had the slowest module, and how slow was it?"})
    return messages


async def _traffic(db_path: str) -> None:
    """Every lever at work: repeated questions (response cache), simple and
    hard ones (routing, down and up), a session on a long system prompt
    (prompt caching), a long conversation (pruning) and deferred work
    (Message Batches)."""
    from mcp_tars.batches import DeferredQueue
    from mcp_tars.engine import CompletionRequest, Engine

    config = make_config(pruning={"auto_threshold_tokens": 6_000, "auto_target_tokens": 3_000})
    engine = Engine(config, open_store(db_path))
    queue = DeferredQueue(engine)
    try:
        for prompt in ("What is DNS?", "What is DNS?", "What's the capital of France?", "What is DNS?",
                       "Design a zero-downtime migration plan for a sharded PostgreSQL cluster with cross-region "
                       "replicas, including rollback, capacity planning and an incident playbook, step by step.",
                       "What's the capital of France?"):
            await engine.complete(CompletionRequest(prompt=prompt, max_tokens=200))
        history: list[dict] = []
        for turn in ("Our deploy target is prod-eu-3.", "Which checks run before a deploy?", "Summarise the rollback."):
            history.append({"role": "user", "content": turn})
            result = await engine.complete(CompletionRequest(messages=list(history), system=LONG_SYSTEM,
                                                             session_id="ops", max_tokens=150))
            history.append({"role": "assistant", "content": result.text})
        await engine.complete(CompletionRequest(messages=long_conversation(), max_tokens=100, session_id="long",
                                                use_cache=False))
        for i in range(4):
            await queue.defer(CompletionRequest(prompt=f"One-line summary of release note {i}."), priority="high",
                              max_wait_seconds=86400, critical=False)
        processed = await queue.process(force=True)
        assert processed["collected"] == 4
    finally:
        await engine.aclose()


@pytest.fixture(scope="module")
def traffic_db(tmp_path_factory):
    """A ledger written once for the module by the engine against the simulated API."""
    from mcp_tars.sim import SimulatedAnthropic

    path = tmp_path_factory.mktemp("strategy") / "traffic.db"
    with SimulatedAnthropic() as sim, pytest.MonkeyPatch.context() as mp:
        profile = path.parent / "sdk-profile"
        profile.mkdir()
        mp.setenv("ANTHROPIC_CONFIG_DIR", str(profile))
        mp.setenv("ANTHROPIC_BASE_URL", sim.base_url)
        mp.setenv("ANTHROPIC_API_KEY", TEST_API_KEY)
        mp.setenv("MCP_TARS_STRICT_RESPONSES", "1")
        mp.delenv("MCP_TARS_CONFIG", raising=False)
        mp.delenv("MCP_TARS_CLOCK_FILE", raising=False)
        asyncio.run(_traffic(str(path)))
        assert sim.bill, "the simulated API was never called"
    return path


@pytest.fixture
def store(traffic_db):
    s = open_store(traffic_db)
    yield s
    s.close()


def strategy_report(store: Store) -> dict:
    return reports.build_report(store, period="all", group_by="strategy")


def ledger_figures(store: Store, keep=lambda row: True) -> dict:
    """What a group over the ledger rows ``keep`` accepts should hold, summed here from the rows."""
    rows = [r for r in ledger.rows(store) if keep(r)]

    def total(key):
        return sum(r[key] or 0 for r in rows)

    return {"calls": len(rows), "cost_usd": total("cost_usd"), "baseline_cost_usd": total("baseline_cost_usd"),
            "cache_hits": sum(r["source"] == "cache" for r in rows), "batch_calls": sum(r["source"] == "batch" for r in rows),
            "input_tokens": total("input_tokens"), "cache_read_tokens": total("cache_read_tokens"),
            "cache_writes": total("cache_write_5m_tokens") + total("cache_write_1h_tokens"),
            "output_tokens": total("output_tokens"), "saved_usd": total("saved_usd")}


def lever_saving(key: str):
    """A ledger row's saving by lever ``key``, in picodollars (NULL as 0)."""
    return lambda row: row[LEVER_COLUMNS[key]] or 0


# -- the groups -------------------------------------------------------------------------------------------


def test_strategy_groups_carry_every_figure_of_the_totals(store):
    report = strategy_report(store)
    totals = report["totals"]
    assert [g["key"] for g in report["groups"]] == list(reports.LEVER_KEYS)
    # model_mix is the totals' (and day groups') breakdown by model, not a figure of figures()
    figure_fields = set(totals) - {"model_mix"}
    model_group = reports.build_report(store, period="all", group_by="model")["groups"][0]
    assert figure_fields <= set(model_group)  # what every other group carries
    for g in report["groups"]:
        assert figure_fields <= set(g), figure_fields - set(g)
        for field in figure_fields:
            assert type(g[field]) is type(totals[field]) or g[field] is None or totals[field] is None, field
        assert set(g["savings_by_lever_usd"]) == set(g["calls_helped_by_lever"]) == set(reports.LEVER_KEYS)
        # the lever's own fields, as before
        for field in ("label", "basis", "explanation", "share", "share_of_baseline", "share_of_calls",
                      "lever_saved_usd", "calls_helped"):
            assert field in g, field
        assert g["overlapping"] is True
    assert report["groups_overlap"] is True
    assert reports.build_report(store, period="all", group_by="model")["groups_overlap"] is False
    json.dumps(report)


@pytest.mark.anyio
async def test_the_cost_report_tool_returns_the_same_groups(traffic_db, monkeypatch):
    """Through the real MCP server: the tool's result keeps every figure and the overlap flag."""
    from mcp import Client

    from conftest import in_process_server

    monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_API_KEY)  # the tenant the traffic was recorded under
    async with Client(in_process_server(db_path=str(traffic_db))) as client:
        r = await client.call_tool("cost_report", {"period": "all", "group_by": "strategy", "format": "json"})
    assert not r.is_error, r.content
    out = r.structured_content
    assert out["groups_overlap"] is True
    assert out["totals"]["calls"] > 0 and all(g["calls"] > 0 for g in out["groups"])
    assert [g["key"] for g in out["groups"]] == list(reports.LEVER_KEYS)
    for g in out["groups"]:
        assert {"calls", "cost_usd", "baseline_cost_usd", "saved_usd", "input_tokens", "output_tokens",
                "cache_hits", "lever_saved_usd"} <= set(g)
    assert sum(g["lever_saved_usd"] for g in out["groups"]) == pytest.approx(out["totals"]["saved_usd"])


def test_an_empty_period_still_lists_every_lever_with_zeros(tmp_path):
    empty = open_store(tmp_path / "empty.db")
    report = strategy_report(empty)
    assert [g["key"] for g in report["groups"]] == list(reports.LEVER_KEYS)
    for g in report["groups"]:
        assert set(report["totals"]) - {"model_mix"} <= set(g)
        assert (g["calls"], g["cost_usd"], g["baseline_cost_usd"], g["saved_usd"], g["share_of_calls"]) == (0, 0, 0, 0, None)
    assert "| Response caching | 0 |" in reports.render_markdown(report)
    empty.close()


def test_every_lever_touched_some_calls_and_the_groups_overlap(store):
    report = strategy_report(store)
    calls = {g["key"]: g["calls"] for g in report["groups"]}
    assert all(n > 0 for n in calls.values()), calls  # the traffic exercised every lever
    # a cache hit keeps the routing saving of the call it replaced; a batch call is routed too
    assert sum(calls.values()) > report["totals"]["calls"]


def test_each_group_holds_all_of_its_own_levers_saving(store):
    report = strategy_report(store)
    totals = report["totals"]
    for g in report["groups"]:
        key = g["key"]
        assert close(g["savings_by_lever_usd"][key], totals["savings_by_lever_usd"][key]), key
        assert g["lever_saved_usd"] == totals["savings_by_lever_usd"][key] == report["savings_by_lever"][key]["usd"]
        assert g["calls_helped_by_lever"][key] == totals["calls_helped_by_lever"][key] == g["calls_helped"]
        assert g["calls_helped"] <= g["calls"]
        # saved_usd means what it means in every group: all levers on these calls, baseline minus cost
        assert close(sum(g["savings_by_lever_usd"].values()), g["saved_usd"])
        assert close(g["baseline_cost_usd"] - g["cost_usd"], g["saved_usd"]), key
    assert sum(g["lever_saved_usd"] for g in report["groups"]) == totals["saved_usd"]


def test_group_figures_equal_the_ledger_rows_with_that_levers_saving(store):
    report = strategy_report(store)
    for g in report["groups"]:
        saving = lever_saving(g["key"])
        want = ledger_figures(store, lambda r: saving(r) != 0)
        assert g["calls"] == want["calls"] > 0, g["key"]
        assert close(g["cost_usd"], want["cost_usd"]) and close(g["baseline_cost_usd"], want["baseline_cost_usd"])
        assert close(g["saved_usd"], want["saved_usd"])
        assert (g["cache_hits"], g["batch_calls"], g["input_tokens"], g["cache_read_tokens"], g["output_tokens"]) == (
            want["cache_hits"], want["batch_calls"], want["input_tokens"], want["cache_read_tokens"],
            want["output_tokens"])
        assert g["cache_write_5m_tokens"] + g["cache_write_1h_tokens"] == want["cache_writes"]
        assert close(g["share_of_calls"], want["calls"] / report["totals"]["calls"])
    cache = report["groups"][0]
    assert cache["cost_usd"] == 0.0 and cache["cache_hits"] == cache["calls"]  # a hit costs nothing
    batch = report["groups"][-1]
    assert batch["batch_calls"] == batch["calls"] == 4


def test_a_lever_that_made_calls_dearer_still_counts_them(store):
    """Non-zero, not positive: a prompt-cache write that is not read back, or a
    call routed up, is in its lever's group (so the group holds all of the
    lever's saving) but not among the calls it helped."""
    dearer = {key: ledger_figures(store, lambda r, saving=lever_saving(key): saving(r) < 0)["calls"]
              for key in LEVER_COLUMNS}
    assert sum(dearer.values()) > 0, "the traffic should include a call some lever made dearer"
    groups = {g["key"]: g for g in strategy_report(store)["groups"]}
    for key, n in dearer.items():
        helped = ledger_figures(store, lambda r, saving=lever_saving(key): saving(r) > 0)["calls"]
        assert groups[key]["calls_helped"] == helped
        assert groups[key]["calls"] == helped + n, key


def test_strategy_view_renders_cost_baseline_calls_and_the_levers_saving(store):
    report = strategy_report(store)
    md = reports.render_markdown(report)
    section = md[md.index("## By strategy"):md.index("## Savings by lever")]
    assert "| Strategy | Calls | Share of calls | Calls helped | Cost | Baseline | Saved by this strategy |" in section
    for g in report["groups"]:
        line = next(row for row in section.splitlines() if row.startswith(f"| {g['label']} |"))
        for value in (f"{g['calls']:,}", reports._usd(g["cost_usd"]), reports._usd(g["baseline_cost_usd"]),
                      reports._usd(g["lever_saved_usd"])):
            assert f"| {value} |" in line, (value, line)
    assert "The groups overlap" in section
    html = reports.render_html(store, period="all")
    table = html[html.index('id="table-levers"'):html.index("</table>", html.index('id="table-levers"'))]
    assert "Calls touched" in table and "Their cost" in table and "Their baseline" in table
    for g in report["groups"]:
        assert reports._usd(g["baseline_cost_usd"]) in table


# -- upgrading an older file (m034: money in picodollars) ----------------------------------------------------

OLD_SCHEMA = "m033_rollup_lever_mask"  # the last schema with money in REAL USD


def open_at_old_schema(path) -> Store:
    """A SQLite file as mcp-tars left it before m034: every migration up to
    m033 applied, as frozen, with its REAL money columns and JSON-reading triggers."""
    store = open_store(path, migrate=False)
    store.migrate(until=OLD_SCHEMA)
    assert store.applied_migrations()[-1] == OLD_SCHEMA
    return store


def insert_old_rows(store: Store, rows: list[dict]) -> None:
    """Rows as the old mcp-tars wrote them (money in USD, REAL): the SQLite file of that version."""
    columns = ledger.LEDGER_COLUMNS
    with store.write() as c:
        c.executemany(f"INSERT INTO ledger ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
                      [tuple(r.get(k) for k in columns) for r in rows])


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")


def _comparable(report: dict) -> dict:
    return {"totals": report["totals"], "groups": report["groups"], "savings_by_lever": report["savings_by_lever"]}


def test_upgrading_an_old_file_keeps_every_figure_exact(tmp_path, traffic_db):
    source = open_store(traffic_db)
    rows = [{k: r[k] for k in ledger.LEDGER_COLUMNS} for r in ledger.rows(source)]
    source.close()
    # the same traffic on earlier days and for a second tenant, so day groups and spend ranges have more than one day
    moved = []
    for shift, tenant in ((1, None), (3, None), (2, "key:other")):
        for r in rows:
            moved.append({**r, "response_id": f"{r['response_id']}~{shift}", "ts": r["ts"] - shift * DAY,
                          "day": _day(r["ts"] - shift * DAY), "tenant": tenant or r["tenant"]})
    everything = rows + moved
    reference = open_store(tmp_path / "reference.db")  # the same rows written by today's mcp-tars
    assert ledger.insert_many(reference, everything) == len(everything)

    old = open_at_old_schema(tmp_path / "old.db")
    insert_old_rows(old, everything)
    with old.read() as c:  # the old triggers kept the old totals
        assert c.execute("SELECT SUM(calls) FROM daily_spend").fetchone()[0] == len(everything)
    old.close()

    upgraded = open_store(tmp_path / "old.db")  # opening migrates
    try:
        applied = upgraded.applied_migrations()  # later migrations (the cache's m036...) may follow
        assert applied[applied.index("m034_exact_money"):][:2] == ["m034_exact_money", "m035_task_leases"]
        # every row as today's mcp-tars stores it: money to the picodollar, the replaced tokens of each hit
        def as_stored(store):
            return sorted(({k: v for k, v in r.items() if k != "id"} for r in ledger.rows(store)),
                          key=lambda r: r["response_id"])

        stored = as_stored(upgraded)
        assert stored == as_stored(reference)
        assert any(r["cache_replaced_tokens"] for r in stored)
        tenant = rows[0]["tenant"]
        now = max(r["ts"] for r in rows)
        for group_by in ("model", "day", "strategy", "session"):
            for t in (tenant, None):
                assert _comparable(reports.build_report(upgraded, tenant=t, period="all", group_by=group_by, now=now)) \
                    == _comparable(reports.build_report(reference, tenant=t, period="all", group_by=group_by, now=now))
        today, month = _day(now), _day(now)[:7]
        for t in (tenant, "key:other"):
            for first, last in ((today, today), (f"{month}-01", today), (_day(now - 3 * DAY), today)):
                assert ledger.spend(upgraded, t, first, last) == ledger.spend(reference, t, first, last)
        assert ledger.spend(upgraded, tenant, _day(now - 3 * DAY), today) > 0
        assert report_store.rollup_mismatches(upgraded) == []
        # the strategy groups of the upgraded file follow its ledger
        report = reports.build_report(upgraded, period="all", group_by="strategy", now=now)
        for g in report["groups"]:
            saving = lever_saving(g["key"])
            want = ledger_figures(upgraded, lambda r: saving(r) != 0)
            assert g["calls"] == want["calls"] and close(g["cost_usd"], want["cost_usd"])
        # and new rows keep it exact
        ledger.insert_many(upgraded, [{**r, "response_id": r["response_id"] + "~new"} for r in rows])
        assert report_store.rollup_mismatches(upgraded) == []
    finally:
        upgraded.close()
        reference.close()

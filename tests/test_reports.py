"""Reports, costs.json and heartbeat checks over ledgers with known contents.

Rows are priced with the real ``pricing.attribute_call`` (so each row's lever
savings add up to its saved_usd as the engine writes them); expected figures
are computed here in plain Python from the rows, independently of the SQL
roll-ups the reports read.
"""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from mcp_tars import export, heartbeat, reports
from mcp_tars.pricing import PriceTable, Usage, attribute_cache_hit, attribute_call
from mcp_tars.store import Store, open_store, ledger
from mcp_tars.store import alerts as alert_store
from mcp_tars.store import reports as report_store

PRICES = PriceTable()
DEFAULT = "claude-sonnet-5-5"
MODELS = ("claude-haiku-5-5", "claude-sonnet-5-5", "claude-opus-5-5")
LEVER_COLUMNS = {"cache": "saved_cache_usd", "routing": "saved_routing_usd", "pruning": "saved_pruning_usd",
                 "prompt_cache": "saved_prompt_cache_usd", "batch": "saved_batch_usd"}
# 2026-02-13 15:00 UTC
NOW = datetime(2026, 2, 13, 15, 0, tzinfo=timezone.utc).timestamp()
DAY = 86400.0


def make_row(i: int, *, ts: float, model: str, source: str = "api", tenant: str = "t1", session: str | None = None,
             usage: Usage | None = None, pruned_away: int = 0, cache_kind: str = "exact",
             latency_ms: float | None = 1000.0) -> dict:
    """A ledger row as the engine writes it."""
    usage = usage or Usage(input_tokens=1000 + i, output_tokens=200 + i % 50)
    attribution = attribute_call(PRICES, usage=usage, model=model, default_model=DEFAULT, batch=source == "batch",
                                 pruned_away_tokens=pruned_away)
    if source == "cache":
        attribution = attribute_cache_hit(attribution.cost_usd, attribution.baseline_cost_usd)
        usage = Usage()
    row = {
        "response_id": f"r{i}", "ts": ts, "tenant": tenant, "session_id": session, "source": source, "model": model,
        "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
        "cache_write_5m_tokens": usage.cache_write_5m_tokens, "cache_write_1h_tokens": usage.cache_write_1h_tokens,
        "cache_read_tokens": usage.cache_read_tokens, "cost_usd": attribution.cost_usd,
        "baseline_cost_usd": attribution.baseline_cost_usd, "saved_usd": attribution.saved_usd,
        "baseline_estimated": int(attribution.baseline_estimated), "pricing_source": attribution.pricing_source,
        "cache_kind": cache_kind if source == "cache" else None, "latency_ms": latency_ms,
        **{col: attribution.savings.get(lever) for lever, col in LEVER_COLUMNS.items()},
    }
    if pruned_away:
        row["tokens_before_pruning"] = usage.input_tokens + pruned_away
        row["tokens_after_pruning"] = usage.input_tokens
    return row


def unknown_row(i: int, *, ts: float, tenant: str = "t1") -> dict:
    """An API call on a model without a price: costs and savings are NULL."""
    return {"response_id": f"u{i}", "ts": ts, "tenant": tenant, "source": "api", "model": "claude-unknown-9",
            "input_tokens": 500, "output_tokens": 100, "pricing_source": "unknown", "latency_ms": 800.0}


def mixed_rows(n: int, *, seed: int = 7, days: int = 40, tenants=("t1",)) -> list[dict]:
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        ts = NOW - rnd.random() * days * DAY
        source = rnd.choice(("api", "api", "api", "cache", "batch"))
        usage = Usage(input_tokens=rnd.randint(20, 9000), output_tokens=rnd.randint(10, 1500),
                      cache_write_5m_tokens=rnd.choice((0, 0, 2048)), cache_write_1h_tokens=rnd.choice((0, 0, 0, 4096)),
                      cache_read_tokens=rnd.choice((0, 0, 6000)))
        rows.append(make_row(i, ts=ts, model=rnd.choice(MODELS), source=source, tenant=rnd.choice(tenants),
                             session=rnd.choice((None, "alpha", "beta", "gamma", "delta")), usage=usage,
                             pruned_away=rnd.choice((0, 0, 0, 3000)), cache_kind=rnd.choice(("exact", "semantic")),
                             latency_ms=rnd.choice((None, rnd.uniform(100, 4000)))))
    rows += [unknown_row(i, ts=NOW - rnd.random() * days * DAY, tenant=rnd.choice(tenants)) for i in range(3)]
    return rows


def day_of(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")


def expected(rows: list[dict]) -> dict:
    """Report totals computed directly from rows."""
    def s(key):
        return sum(r.get(key) or 0 for r in rows)

    priced = [r for r in rows if r.get("cost_usd") is not None]
    latencies = [r["latency_ms"] for r in rows if r.get("latency_ms") is not None]
    return {
        "calls": len(rows),
        "api_calls": sum(r["source"] == "api" for r in rows),
        "batch_calls": sum(r["source"] == "batch" for r in rows),
        "cache_hits": sum(r["source"] == "cache" for r in rows),
        "cache_hits_exact": sum(r["source"] == "cache" and r.get("cache_kind") == "exact" for r in rows),
        "cache_hits_semantic": sum(r["source"] == "cache" and r.get("cache_kind") == "semantic" for r in rows),
        **{k: s(k) for k in ("input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens",
                             "cache_read_tokens")},
        "cost_usd": s("cost_usd"),
        "baseline_cost_usd": s("baseline_cost_usd"),
        "saved_usd": s("saved_usd"),
        "levers": {lever: s(col) for lever, col in LEVER_COLUMNS.items()},
        "unknown_price_calls": sum(r["pricing_source"] == "unknown" for r in rows),
        "avg_cost_per_call": (s("cost_usd") / len(priced)) if priced else None,
        "avg_latency_ms": (sum(latencies) / len(latencies)) if latencies else None,
        "tokens_pruned": sum((r.get("tokens_before_pruning") or 0) - (r.get("tokens_after_pruning") or 0) for r in rows),
    }


def close(a, b, tol=1e-9):
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=tol)


def assert_totals(totals: dict, exp: dict) -> None:
    for key in ("calls", "api_calls", "batch_calls", "cache_hits", "cache_hits_exact", "cache_hits_semantic",
                "input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens",
                "unknown_price_calls", "tokens_pruned"):
        assert totals[key] == exp[key], key
    for key in ("cost_usd", "baseline_cost_usd", "saved_usd", "avg_cost_per_call", "avg_latency_ms"):
        assert close(totals[key], exp[key]), (key, totals[key], exp[key])
    for lever, usd in exp["levers"].items():
        assert close(totals["savings_by_lever_usd"][lever], usd), lever


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path / "ledger.db")
    yield s
    s.close()


@pytest.fixture
def filled(store):
    rows = mixed_rows(600, tenants=("t1", "t2"))
    assert ledger.insert_many(store, rows) == len(rows)
    return store, rows


# -- totals equal the ledger ------------------------------------------------------------


@pytest.mark.parametrize("period,first,last", [
    ("today", "2026-02-13", "2026-02-13"), ("yesterday", "2026-02-12", "2026-02-12"),
    ("7d", "2026-02-07", "2026-02-13"), ("30d", "2026-01-15", "2026-02-13"), ("month", "2026-02-01", "2026-02-13"),
    ("all", None, None),
])
def test_totals_equal_the_ledger_for_every_period(filled, period, first, last):
    store, rows = filled
    report = reports.build_report(store, period=period, now=NOW)
    inside = [r for r in rows if (first is None or day_of(r["ts"]) >= first) and (last is None or day_of(r["ts"]) <= last)]
    assert inside, "the fixture should put rows in every period"
    assert_totals(report["totals"], expected(inside))
    if first:
        assert (report["since"], report["until"]) == (first, last)
    else:
        assert report["since"] == min(day_of(r["ts"]) for r in rows)


def test_tenant_filter_and_custom_dates(filled):
    store, rows = filled
    report = reports.build_report(store, tenant="t2", since="2026-01-20", until="2026-02-05", now=NOW)
    inside = [r for r in rows if r["tenant"] == "t2" and "2026-01-20" <= day_of(r["ts"]) <= "2026-02-05"]
    assert report["period"] == "custom" and report["days"] == 17
    assert_totals(report["totals"], expected(inside))
    since_only = reports.build_report(store, since="2026-02-10", now=NOW)
    assert (since_only["since"], since_only["until"]) == ("2026-02-10", "2026-02-13")


@pytest.mark.parametrize("group_by", ["model", "day", "session"])
def test_groups_add_up_to_the_totals(filled, group_by):
    store, rows = filled
    report = reports.build_report(store, period="all", group_by=group_by, now=NOW)
    t = report["totals"]
    assert sum(g["calls"] for g in report["groups"]) == t["calls"]
    assert sum(g["input_tokens"] for g in report["groups"]) == t["input_tokens"]
    assert close(sum(g["cost_usd"] for g in report["groups"]), t["cost_usd"])
    assert close(sum(g["saved_usd"] for g in report["groups"]), t["saved_usd"])
    for g in report["groups"]:
        assert sum(g["savings_by_lever_usd"].values()) == g["saved_usd"]
    keys = [g["key"] for g in report["groups"]]
    assert len(keys) == len(set(keys))
    if group_by == "model":
        by_model = {m: [r for r in rows if r["model"] == m] for m in {r["model"] for r in rows}}
        for g in report["groups"]:
            assert_totals(g, expected(by_model[g["key"]]))
    if group_by == "session":
        assert reports.NO_SESSION_KEY in keys


def test_sessions_beyond_the_top_are_gathered_and_still_add_up(filled):
    store, rows = filled
    report = reports.build_report(store, period="all", group_by="session", now=NOW,
                                  settings=reports.ReportSettings(top_sessions=2))
    keys = [g["key"] for g in report["groups"]]
    assert keys[-1] == reports.OTHER_SESSIONS_KEY and len(keys) == 3
    costs = [g["cost_usd"] for g in report["groups"][:2]]
    assert costs == sorted(costs, reverse=True)
    assert sum(g["calls"] for g in report["groups"]) == len(rows)
    assert close(sum(g["cost_usd"] for g in report["groups"]), report["totals"]["cost_usd"])


def test_strategy_groups_are_the_levers_and_add_up_to_the_total(filled):
    store, rows = filled
    report = reports.build_report(store, period="all", group_by="strategy", now=NOW)
    assert [g["key"] for g in report["groups"]] == ["cache", "routing", "pruning", "prompt_cache", "batch"]
    # each lever's own saving; a group's saved_usd is its calls' saving by every lever (groups overlap)
    assert sum(g["lever_saved_usd"] for g in report["groups"]) == report["totals"]["saved_usd"]
    cache = report["groups"][0]
    assert cache["calls"] == sum(r["source"] == "cache" and r["pricing_source"] != "unknown" for r in rows)
    assert report["groups"][4]["calls"] == sum(r["source"] == "batch" for r in rows)


# -- savings by lever -----------------------------------------------------------------------


def test_savings_by_lever_sum_exactly_to_the_total_and_are_labelled(filled):
    store, rows = filled
    report = reports.build_report(store, period="all", now=NOW)
    levers = report["savings_by_lever"]
    assert sum(v["usd"] for v in levers.values()) == report["totals"]["saved_usd"]  # exact, not approximate
    assert close(sum(v["share"] for v in levers.values()), 1.0)
    assert {k: v["basis"] for k, v in levers.items()} == {
        "cache": "measured", "routing": "estimated", "pruning": "estimated", "prompt_cache": "measured",
        "batch": "measured"}
    assert all(v["explanation"] for v in levers.values())
    # every row priced: cost + saved is the baseline
    priced = [r for r in rows if r.get("baseline_cost_usd") is not None]
    assert close(sum(r["cost_usd"] for r in priced) + report["totals"]["saved_usd"],
                 report["totals"]["baseline_cost_usd"], tol=1e-7)


money = st.floats(min_value=0, max_value=5, allow_nan=False, allow_infinity=False)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(MODELS), st.sampled_from(("api", "cache", "batch")),
                          st.integers(0, 200_000), st.integers(0, 20_000), st.integers(0, 50_000),
                          st.integers(0, 30_000), st.integers(0, 5)), min_size=1, max_size=40))
def test_levers_add_up_exactly_for_any_ledger(calls):
    store = open_store(":memory:")
    rows = [make_row(i, ts=NOW - day * DAY, model=model, source=source, session=f"s{day}",
                     usage=Usage(input_tokens=inp, output_tokens=out, cache_read_tokens=read,
                                 cache_write_5m_tokens=pruned // 7),
                     pruned_away=pruned)
            for i, (model, source, inp, out, read, pruned, day) in enumerate(calls)]
    ledger.insert_many(store, rows)
    for group_by in ("model", "day", "session", "strategy"):
        report = reports.build_report(store, period="7d", group_by=group_by, now=NOW)
        assert sum(v["usd"] for v in report["savings_by_lever"].values()) == report["totals"]["saved_usd"]
        assert close(report["totals"]["saved_usd"], sum(r["saved_usd"] for r in rows), tol=1e-8)
    store.close()


# -- unknown prices, warnings, budget ---------------------------------------------------------------


def test_unknown_prices_are_flagged_not_counted_as_zero(store):
    rows = [make_row(1, ts=NOW, model="claude-haiku-5-5"), make_row(2, ts=NOW, model="claude-sonnet-5-5"),
            unknown_row(1, ts=NOW), unknown_row(2, ts=NOW)]
    ledger.insert_many(store, rows)
    report = reports.build_report(store, now=NOW)
    t = report["totals"]
    assert t["unknown_price_calls"] == 2 and t["calls"] == 4 and t["priced_calls"] == 2
    assert close(t["avg_cost_per_call"], (rows[0]["cost_usd"] + rows[1]["cost_usd"]) / 2)  # not divided by 4
    assert any("2 call(s) have no known price" in w and "price_overrides" in w for w in report["warnings"])
    md = reports.render_markdown(report)
    assert "2 call(s) with unknown prices are not counted" in md


def test_budget_warnings_and_alerts_appear_in_the_report(store):
    ledger.insert_many(store, [make_row(1, ts=NOW, model=DEFAULT)])
    alert_store.record(store, tenant="t1", ts=NOW - 60, kind="budget_warning", scope="daily", period="2026-02-13",
                       message="budget warning: 85% of the daily budget", share=0.85, action="warn")
    budget = {"daily_usd": 8.5, "monthly_usd": 20.0, "daily_limit_usd": 10.0, "monthly_limit_usd": 100.0,
              "shares": {"daily": 0.85, "monthly": 0.2}, "policy": "downgrade", "warn_share": 0.8}
    report = reports.build_report(store, now=NOW, budget=budget)
    assert [w for w in report["warnings"] if w.startswith("budget")] == [
        "budget warning: 85% of the daily budget ($10.00) is spent; at 100% the policy is to downgrade."]
    assert report["budget"]["alerts"][0]["kind"] == "budget_warning"
    md = reports.render_markdown(report)
    assert "budget warning: 85% of the daily budget ($10.00)" in md and "Budget alerts in this period" in md
    quiet = reports.build_report(store, now=NOW, budget={**budget, "shares": {"daily": 0.5}})
    assert not [w for w in quiet["warnings"] if w.startswith("budget")]
    assert reports.build_report(store, period="yesterday", now=NOW)["budget"] is None  # the alert is today's


# -- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,message", [
    ({"period": "week"}, "unknown period 'week'"),
    ({"group_by": "tenant"}, "unknown group_by 'tenant'"),
    ({"since": "2026-13-01"}, "since must be a date written YYYY-MM-DD"),
    ({"until": "13/02/2026"}, "until must be a date written YYYY-MM-DD"),
    ({"since": "2026-02-10", "until": "2026-02-01"}, "is after until"),
])
def test_bad_arguments_raise_clear_errors(store, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        reports.build_report(store, now=NOW, **kwargs)


# -- roll-ups stay exact --------------------------------------------------------------------------


def test_rollups_follow_inserts_duplicates_updates_and_deletes(filled):
    store, rows = filled
    assert ledger.insert_many(store, rows[:50]) == 0  # the same responses again: not counted twice
    with store.write() as c:
        c.execute("UPDATE ledger SET task_id = 'task_x' WHERE response_id = 'r1'")
        c.execute("UPDATE ledger SET cost_picousd = cost_picousd + 1000000000000, model = 'claude-opus-5-5', day = '2026-02-13' "
                  "WHERE response_id = 'r2'")
        c.execute("DELETE FROM ledger WHERE response_id IN ('r3', 'r4', 'u1')")
    assert report_store.rollup_mismatches(store) == []
    report = reports.build_report(store, period="all", now=NOW)
    assert report["totals"]["calls"] == len(rows) - 3


def test_rebuilt_rollups_match_the_triggers(filled):
    store, rows = filled
    before = reports.build_report(store, period="all", group_by="day", now=NOW)
    report_store.rebuild_rollups(store)  # the migration's backfill path
    after = reports.build_report(store, period="all", group_by="day", now=NOW)
    assert report_store.rollup_mismatches(store) == []
    assert after["totals"]["calls"] == before["totals"]["calls"] == len(rows)
    assert close(after["totals"]["cost_usd"], before["totals"]["cost_usd"])


# -- rendering -----------------------------------------------------------------------------------------


def test_markdown_has_the_dashboard_the_daily_tree_and_the_footer(filled):
    store, _ = filled
    report = reports.build_report(store, period="7d", group_by="day", now=NOW)
    md = reports.render_markdown(report)
    t = report["totals"]
    assert "Performance Optimization Dashboard" in md
    for lever in reports.LEVERS:
        assert lever.label in md
    assert md.count("Daily Metrics (") == len(report["groups"]) == 7
    assert "Before (baseline" in md and "After (with mcp-tars)" in md and "└── Batch Efficiency" in md
    assert f"**{t['calls']:,}**" in md  # the table's total row
    assert "*Measured* (from the API's usage)" in md and "*Estimated*" in md
    assert f"{reports._usd(t['saved_usd'])} saved" in md


def test_markdown_escapes_table_cells_and_renders_an_empty_ledger(store):
    ledger.insert_many(store, [make_row(1, ts=NOW, model=DEFAULT, session="a|b`c")])
    md = reports.render_markdown(reports.build_report(store, group_by="session", now=NOW))
    assert "| a\\|b'c |" in md
    empty = open_store(":memory:")
    md = reports.render_markdown(reports.build_report(empty, now=NOW))
    assert "No calls in this period." in md and "**0 calls**" in md


def test_daily_tree_shows_only_the_newest_days(filled):
    store, _ = filled
    report = reports.build_report(store, period="30d", group_by="day", now=NOW)
    md = reports.render_markdown(report, settings=reports.ReportSettings(daily_tree_days=3))
    assert md.count("Daily Metrics (") == 3
    assert f"Daily Metrics ({report['groups'][-1]['key']})" in md
    assert f"The newest 3 of {len(report['groups'])} days are shown" in md


def test_terminal_tables(filled):
    store, _ = filled
    ledger.insert_many(store, [make_row(10_000, ts=NOW, model=DEFAULT, session="[bold]x[/bold]")])
    console = Console(record=True, width=200)
    for group_by in ("model", "strategy", "session"):
        reports.render_terminal(reports.build_report(store, period="30d", group_by=group_by, now=NOW), console)
    text = console.export_text()
    assert "Savings by lever" in text and "Response caching" in text and "claude-haiku-5-5" in text
    assert "Calls helped" in text
    assert "[bold]x[/bold]" in text  # a session id is shown as written, not read as markup
    assert "warning: 3 call(s) have no known price" in text


def test_report_is_json_serialisable(filled):
    store, _ = filled
    for group_by in reports.GROUP_BYS:
        json.dumps(reports.build_report(store, period="30d", group_by=group_by, now=NOW))


# -- costs.json ------------------------------------------------------------------------------------------


def test_costs_json_has_the_brief_shape_and_adds_up(filled):
    store, rows = filled
    data = export.costs_json(store, tenant="t1")
    t1 = [r for r in rows if r["tenant"] == "t1"]
    assert sorted(data) == sorted({day_of(r["ts"]) for r in t1})
    day = day_of(NOW)
    o = data[day]["optimizations"]
    assert set(o) >= {"caching", "contextPruning", "modelRouting", "batchProcessing", "totalSavings"}
    assert set(o["caching"]) >= {"hits", "tokensSaved", "costSaved"}
    assert set(o["modelRouting"]) >= {"haikuTasks", "sonnetTasks", "costSaved"}
    today = [r for r in t1 if day_of(r["ts"]) == day]
    assert o["caching"]["hits"] == sum(r["source"] == "cache" for r in today)
    assert o["modelRouting"]["haikuTasks"] == sum(r["model"] == "claude-haiku-5-5" for r in today)
    assert o["contextPruning"]["tokensSaved"] == expected(today)["tokens_pruned"]
    parts = [o[k]["costSaved"] for k in ("caching", "contextPruning", "modelRouting", "promptCaching", "batchProcessing")]
    for d in data.values():
        oo = d["optimizations"]
        assert round(sum(oo[k]["costSaved"] for k in ("caching", "contextPruning", "modelRouting", "promptCaching",
                                                      "batchProcessing")), 6) == oo["totalSavings"]["costSaved"]
    assert abs(o["totalSavings"]["costSaved"] - sum(r["saved_usd"] or 0 for r in today)) < 1e-5
    assert round(sum(parts), 6) == o["totalSavings"]["costSaved"]
    json.dumps(data)


def test_costs_json_cache_tokens_come_from_the_hit_rows(store):
    hit = make_row(1, ts=NOW, model=DEFAULT, source="cache")
    hit["decisions"] = {"cache": {"replaced_tokens": 1500}}
    plain_hit = make_row(2, ts=NOW - DAY, model=DEFAULT, source="cache")
    broken = make_row(4, ts=NOW - DAY, model=DEFAULT, source="cache")
    broken["decisions"] = "{not json"  # counts nothing, and must not stop the row from being recorded
    ledger.insert_many(store, [hit, plain_hit, broken, make_row(3, ts=NOW - 2 * DAY, model=DEFAULT)])
    assert ledger.count(store) == 4
    data = export.costs_json(store)
    assert data["2026-02-13"]["optimizations"]["caching"]["tokensSaved"] == 1500
    assert data["2026-02-12"]["optimizations"]["caching"]["tokensSaved"] is None  # hits that did not record it
    assert data["2026-02-11"]["optimizations"]["caching"]["tokensSaved"] == 0  # no hits


# -- heartbeat checks (pure parts) -----------------------------------------------------------------------------


def test_heartbeat_rate_checks_name_the_missed_targets(filled):
    store, _ = filled
    report = reports.build_report(store, period="30d", now=NOW)
    strict = heartbeat.HeartbeatSettings(min_cache_hit_rate=0.99, min_routed_share=0.0, min_savings_share=0.0)
    results = {r.name: r for r in heartbeat.check_rates(report, strict)}
    assert not results["cache_hit_rate"].ok and "below the target of 99%" in results["cache_hit_rate"].message
    assert results["routing_mix"].ok and results["savings"].ok
    assert results["cache_hit_rate"].value == report["totals"]["cache_hit_rate"]
    few = heartbeat.HeartbeatSettings(min_calls=10**6, min_cache_hit_rate=0.99)
    assert all(r.ok and "not enough calls" in r.message for r in heartbeat.check_rates(report, few))
    pricing = heartbeat.check_pricing(report)
    assert not pricing.ok and pricing.value == report["totals"]["unknown_price_calls"]


def test_heartbeat_budget_check():
    status = {"shares": {"daily": 0.85, "monthly": 0.3}, "daily_limit_usd": 10.0, "monthly_limit_usd": 100.0,
              "warn_share": 0.8, "policy": "block"}
    r = heartbeat.check_budget(status)
    assert not r.ok and r.value == 0.85 and "85% of the daily budget ($10.00)" in r.message
    assert heartbeat.check_budget({**status, "shares": {"daily": 0.5}}).ok
    assert heartbeat.check_budget({"shares": {}}).ok


def test_heartbeat_deferred_check():
    settings = heartbeat.HeartbeatSettings(max_queued_tasks=3, max_batch_hours=24)
    latest = lambda deadline: deadline - 3600  # noqa: E731 - the queue's rule, simplified
    fine = [{"deadline_at": NOW + 7200, "error": None}]
    assert heartbeat.check_deferred(fine, [], now=NOW, latest_submit_at=latest, settings=settings).ok
    late = fine + [{"deadline_at": NOW + 600, "error": None}]
    r = heartbeat.check_deferred(late, [], now=NOW, latest_submit_at=latest, settings=settings)
    assert not r.ok and r.value["late"] == 1 and "past the time their batch had to go out" in r.message
    held = fine + [{"deadline_at": NOW + 600, "error": "waiting for budget: the block policy holds this task"}]
    r = heartbeat.check_deferred(held, [], now=NOW, latest_submit_at=latest, settings=settings)
    assert r.ok and r.value["held_by_budget"] == 1
    stuck = [{"created_at": NOW - 25 * 3600}]
    r = heartbeat.check_deferred(fine * 4, stuck, now=NOW, latest_submit_at=latest, settings=settings)
    assert not r.ok and "more than 3 tasks" in r.message and "open for more than 24 h" in r.message


# -- end to end: the engine, the deferred queue and the MCP server against the simulated API -------------


LONG_SYSTEM = "You are the release assistant of a small web company. Answer briefly and precisely. " * 120


@pytest.mark.anyio
async def test_report_totals_equal_the_simulated_bill(tmp_path, api_env):
    """Immediate calls (routed, cached, prompt-cached sessions) and deferred
    batch work: the report's cost is the simulated API's bill, its calls the
    ledger's rows, and its levers add up to its savings."""
    from mcp_tars.batches import DeferredQueue
    from mcp_tars.engine import CompletionRequest, Engine

    from conftest import make_config

    sim = api_env
    store = open_store(tmp_path / "e2e.db")
    engine = Engine(make_config(), store)
    queue = DeferredQueue(engine)
    sources = []
    try:
        for prompt in ("What is DNS?", "What is DNS?", "Explain how TLS certificates are validated, step by step.",
                       "What's the capital of France?", "What is DNS?"):
            sources.append((await engine.complete(CompletionRequest(prompt=prompt, max_tokens=200))).source)
        history: list[dict] = []
        for turn in ("Our deploy target is prod-eu-3.", "Which checks run before a deploy?", "Summarise the rollback."):
            history.append({"role": "user", "content": turn})
            result = await engine.complete(CompletionRequest(messages=list(history), system=LONG_SYSTEM,
                                                             session_id="ops", max_tokens=150))
            history.append({"role": "assistant", "content": result.text})
        for i in range(4):
            await queue.defer(CompletionRequest(prompt=f"One-line summary of release note {i}."), priority="high",
                              max_wait_seconds=86400, critical=False)
        processed = await queue.process(force=True)
        assert processed["collected"] == 4
    finally:
        await engine.aclose()

    report = reports.build_report(store, tenant=engine.tenant, period="all", group_by="strategy")
    t = report["totals"]
    assert math.isclose(t["cost_usd"], sim.bill_total_usd(), abs_tol=1e-6)
    assert t["calls"] == ledger.count(store) == 12
    assert t["api_calls"] + t["batch_calls"] == len(sim.bill) and t["batch_calls"] == 4
    assert t["cache_hits"] == sources.count("cache") >= 1
    billed_input = sum(line.usage["input_tokens"] for line in sim.bill)
    billed_reads = sum(line.usage.get("cache_read_input_tokens", 0) for line in sim.bill)
    assert (t["input_tokens"], t["cache_read_tokens"]) == (billed_input, billed_reads)
    assert t["cache_read_tokens"] > 0, "the session's system prompt should have been read from the prompt cache"
    assert sum(v["usd"] for v in report["savings_by_lever"].values()) == t["saved_usd"]
    levers = {g["key"]: g for g in report["groups"]}
    assert levers["batch"]["calls"] == 4 and levers["batch"]["saved_usd"] > 0
    assert levers["cache"]["saved_usd"] > 0 and levers["prompt_cache"]["calls"] >= 1
    assert report_store.rollup_mismatches(store) == []

    day = day_of(clock_now())
    costs = export.costs_json(store, tenant=engine.tenant)
    assert math.isclose(costs[day]["cost"], sim.bill_total_usd(), abs_tol=1e-5)
    assert costs[day]["optimizations"]["batchProcessing"]["batchCount"] >= 1
    store.close()


def clock_now() -> float:
    from mcp_tars import clock

    return clock.now()


@pytest.mark.anyio
async def test_cost_report_tool_resources_and_prompt(tmp_path, api_env):
    from mcp import Client

    from conftest import in_process_server, make_config

    server = in_process_server(make_config(), str(tmp_path / "mcp.db"))
    async with Client(server) as client:
        for prompt in ("What is DNS?", "What is DNS?", "Explain how B-trees stay balanced."):
            assert not (await client.call_tool("optimized_complete", {"prompt": prompt, "max_tokens": 100})).is_error
        r = await client.call_tool("cost_report", {"period": "today", "group_by": "strategy"})
        assert not r.is_error
        data = r.structured_content
        assert data["totals"]["calls"] == 3 and data["totals"]["cache_hits"] == 1
        assert math.isclose(data["totals"]["cost_usd"], api_env.bill_total_usd(), abs_tol=1e-6)
        assert sum(v["usd"] for v in data["savings_by_lever"].values()) == data["totals"]["saved_usd"]
        assert "Performance Optimization Dashboard" in data["report"]
        as_json = await client.call_tool("cost_report", {"period": "today", "format": "json", "group_by": "model"})
        assert as_json.structured_content["report"] is None
        bad = await client.call_tool("cost_report", {"since": "2026-02-30"})
        assert bad.is_error and "YYYY-MM-DD" in bad.content[0].text
        today = (await client.read_resource("tars://report/today")).contents[0].text
        assert today.startswith("# mcp-tars cost report: today") and "3 calls" in today
        html = (await client.read_resource("tars://report/html")).contents[0].text
        assert html.startswith("<!DOCTYPE html>") and 'id="chart-daily-cost"' in html and 'class="mark bar"' in html
        prompt = await client.get_prompt("weekly_cost_review")
        assert "cost_report" in prompt.messages[0].content.text


def test_heartbeat_run_checks_over_a_real_configuration(tmp_path):
    from conftest import make_config

    store = open_store(tmp_path / "hb.db")
    rows = [make_row(i, ts=NOW - (i % 3) * 3600, model="claude-sonnet-5-5") for i in range(30)]  # no routing, no cache
    ledger.insert_many(store, rows)
    config = make_config(budget={"daily_usd": 0.05, "policy": "block"})
    results = heartbeat.run_checks(store, config, "t1", now=NOW)
    by_name = {r.name: r for r in results}
    assert list(by_name) == ["cache_hit_rate", "routing_mix", "savings", "budget", "deferred", "pricing"]
    assert not by_name["cache_hit_rate"].ok and by_name["cache_hit_rate"].value == 0
    assert not by_name["routing_mix"].ok
    assert not by_name["budget"].ok and by_name["budget"].value > 0.8
    assert by_name["deferred"].ok and by_name["pricing"].ok
    assert all(isinstance(r.message, str) and r.message for r in results)
    missed = alert_store.between(store, tenant="t1", since_ts=None, until_ts=None)
    assert sorted(a["scope"] for a in missed) == sorted(r.name for r in results if not r.ok)
    heartbeat.run_checks(store, config, "t1", now=NOW + 60)  # the same day: no new alerts
    assert len(alert_store.between(store, tenant="t1", since_ts=None, until_ts=None)) == len(missed)
    json.dumps([r.__dict__ for r in results])
    store.close()

"""Budgets: the pure verdict, the guard over the ledger (spend, alerts, the
deferred path's admission), and the policies end to end through the engine
and the deferred queue against the simulated API."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import pytest

from mcp_tars import budget
from mcp_tars.budget import BudgetGuard, evaluate, fits
from mcp_tars.config import BudgetSettings
from mcp_tars.store import Store, open_store, ledger
from mcp_tars.store import alerts as alert_store

NOW = datetime(2026, 2, 13, 15, 0, tzinfo=timezone.utc).timestamp()
DAY = 86400.0
LIMITS = {"daily": 10.0, "monthly": 100.0}


def verdict(spent_daily=0.0, spent_monthly=0.0, estimate=0.0, policy="block", committed=0.0, limits=LIMITS,
            warn_share=0.8):
    return evaluate(spent={"daily": spent_daily, "monthly": spent_monthly}, limits=limits,
                    estimated_cost_usd=estimate, warn_share=warn_share, policy=policy, committed_usd=committed)


# -- the pure verdict -------------------------------------------------------------------------


def test_no_budget_allows_everything():
    v = verdict(spent_daily=1e6, estimate=1e6, limits={"daily": None, "monthly": None})
    assert v.action == "allow" and v.share is None and v.message is None


def test_below_the_warning_line_allows():
    v = verdict(spent_daily=5.0, estimate=2.9)
    assert v.action == "allow" and v.scope == "daily" and math.isclose(v.share, 0.79)


def test_the_call_that_crosses_the_warning_line_is_warned():
    v = verdict(spent_daily=7.5, estimate=0.6)
    assert v.action == "warn" and math.isclose(v.share, 0.81)
    assert v.message == ("budget warning: 81% of the daily budget ($10.00) is spent with this call ($7.50 is spent; "
                         "this call is estimated at up to $0.60 (worst case: all of max_tokens as output)); "
                         "at 100% the policy is to block.")


def test_reaching_the_limit_exactly_is_still_allowed_with_a_warning():
    assert verdict(spent_daily=9.0, estimate=1.0).action == "warn"


@pytest.mark.parametrize("policy,words", [
    ("block", "The call was not made. Raise budget.daily_usd in performance-config.json, wait for the next UTC day"),
    ("downgrade", "routed one tier down"),
    ("defer", "queued for the Message Batches API"),
])
def test_over_the_limit_the_policy_applies(policy, words):
    v = verdict(spent_daily=9.5, estimate=0.6, policy=policy)
    assert v.action == policy and v.over_limit
    assert v.message.startswith("daily budget reached: $9.50 is spent, and this call is estimated at up to $0.60 "
                                "(worst case: all of max_tokens as output): $10.10 in all, above the $10.00 limit.")
    assert words in v.message
    assert (v.scope, v.spent_usd, v.limit_usd) == ("daily", 9.5, 10.0)


def test_committed_batch_work_counts_as_spent():
    assert verdict(spent_daily=5.0, estimate=2.0).action == "allow"
    v = verdict(spent_daily=5.0, estimate=2.0, committed=3.5)
    assert v.action == "block" and v.spent_usd == 8.5


def test_a_block_on_a_tiny_worst_case_estimate_says_what_it_is_made_of():
    """It once read "$0.0000 of $0.00 spent": every figure rounded away, and
    no word that the call was held on a worst-case estimate."""
    v = verdict(spent_daily=0.000412, estimate=0.0102, committed=0.0001, limits={"daily": 0.01, "monthly": None})
    assert v.action == "block"
    assert v.message.startswith(
        "daily budget reached: $0.000412 is spent and $0.0001 committed (batch work sent, not billed yet), and "
        "this call is estimated at up to $0.0102 (worst case: all of max_tokens as output): $0.0107 in all, "
        "above the $0.01 limit.")
    assert "$0.0000" not in v.message and "$0.00 " not in v.message


def test_the_tighter_budget_binds():
    v = verdict(spent_daily=1.0, spent_monthly=99.0, estimate=2.0, policy="defer")
    assert v.action == "defer" and v.scope == "monthly" and "monthly budget reached" in v.message


@pytest.mark.parametrize("kwargs,message", [
    ({"estimate": -1.0}, "the estimated cost must be a non-negative number of USD"),
    ({"estimate": float("nan")}, "the estimated cost must be a non-negative number of USD"),
    ({"committed": -0.5}, "the committed spend must be a non-negative number"),
    ({"policy": "shout"}, "budget policy must be one of block, downgrade, defer"),
    ({"warn_share": 0.0}, r"warn_share must be in \(0, 1\]"),
])
def test_bad_numbers_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        verdict(**kwargs)


def test_fits_admits_deferred_tasks_in_order_until_a_limit():
    spent = {"daily": 8.0, "monthly": 20.0}
    assert fits(spent=spent, limits=LIMITS, estimated_costs=[0.5, 0.5, 1.5, 0.1]) == 2  # stops at the first misfit
    assert fits(spent=spent, limits=LIMITS, estimated_costs=[0.5, 0.5], committed_usd=1.6) == 0
    assert fits(spent=spent, limits={"daily": None, "monthly": None}, estimated_costs=[50.0] * 3) == 3


# -- the guard over the ledger ----------------------------------------------------------------


@pytest.fixture
def store(db_url):
    s = open_store(db_url)
    yield s
    s.close()


def spend(store: Store, usd: float, *, ts: float, tenant: str = "t1", n: int = 1) -> None:
    """Ledger rows costing ``usd`` in total (the daily_spend trigger adds them up)."""
    start = ledger.count(store)
    ledger.insert_many(store, [{
        "response_id": f"spend{start + i}", "ts": ts, "tenant": tenant, "source": "api", "model": "claude-sonnet-5-5",
        "cost_usd": usd / n, "pricing_source": "table"} for i in range(n)])


def guard(store, **settings) -> BudgetGuard:
    return BudgetGuard(store, BudgetSettings(**{"daily_usd": 10.0, "monthly_usd": 100.0, **settings}))


def test_status_reads_the_spend_of_today_and_this_month(store):
    spend(store, 3.0, ts=NOW, n=3)
    spend(store, 2.0, ts=NOW - 3 * DAY)  # this month, another day
    spend(store, 50.0, ts=NOW - 20 * DAY)  # last month
    spend(store, 9.0, ts=NOW, tenant="t2")  # another tenant
    status = guard(store).status("t1", now=NOW)
    assert math.isclose(status["daily_usd"], 3.0) and math.isclose(status["monthly_usd"], 5.0)
    assert status["shares"] == pytest.approx({"daily": 0.3, "monthly": 0.05})
    assert (status["day"], status["month"], status["policy"]) == ("2026-02-13", "2026-02", "downgrade")
    assert status["warnings"] == []
    # the keys reports and the engine already use
    assert {"daily_usd", "monthly_usd", "daily_limit_usd", "monthly_limit_usd", "shares", "policy"} <= set(status)
    warned = guard(store).status("t2", now=NOW)
    assert warned["warnings"] == ["budget warning: 90% of the daily budget ($10.00) is spent; "
                                  "at 100% the policy is to downgrade."]


def test_alerts_are_recorded_once_per_tenant_kind_budget_and_period(store):
    spend(store, 8.5, ts=NOW)
    g = guard(store)
    for _ in range(3):
        assert g.verdict("t1", 0.1, now=NOW).action == "warn"
    assert guard(store).verdict("t1", 0.2, now=NOW + 60).action == "warn"  # another process: same alert
    over = g.verdict("t1", 5.0, now=NOW + 120)
    assert over.action == "downgrade"
    assert g.verdict("t1", 5.0, policy="block", now=NOW + 180).action == "block"  # asked again after downgrading
    spend(store, 8.5, ts=NOW + DAY)
    assert g.verdict("t1", 0.1, now=NOW + DAY).action == "warn"  # a new day: a new warning
    rows = alert_store.between(store, tenant="t1", since_ts=None, until_ts=None)
    assert [(a["kind"], a["scope"], a["period"], a["action"]) for a in reversed(rows)] == [
        ("budget_warning", "daily", "2026-02-13", "warn"),
        ("budget_exceeded", "daily", "2026-02-13", "downgrade"),
        ("budget_warning", "daily", "2026-02-14", "warn"),
    ]
    assert rows[-1]["share"] == pytest.approx(0.86) and rows[-1]["limit_usd"] == 10.0
    assert "86% of the daily budget" in rows[-1]["message"]


def test_verdict_without_recording_and_without_limits(store):
    spend(store, 9.0, ts=NOW)
    assert guard(store).verdict("t1", 0.1, record=False, now=NOW).action == "warn"
    assert alert_store.between(store, tenant=None, since_ts=None, until_ts=None) == []
    free = BudgetGuard(store, BudgetSettings())
    assert free.verdict("t1", 1e6, now=NOW) == budget.BudgetVerdict("allow")
    assert free.admissible("t1", [1e6, 1e6], now=NOW) == 2
    assert free.status("t1", now=NOW)["shares"] == {}


def test_admissible_counts_the_spend_and_the_committed_work(store):
    spend(store, 8.0, ts=NOW)
    g = guard(store, policy="defer")
    assert g.admissible("t1", [0.5, 0.5, 1.5], now=NOW) == 2
    assert g.admissible("t1", [0.5, 0.5, 1.5], committed_usd=1.2, now=NOW) == 1
    assert g.admissible("t1", [0.5], now=NOW + DAY) == 1  # tomorrow the daily budget is fresh
    spend(store, 91.5, ts=NOW - DAY)
    assert g.admissible("t1", [0.5], now=NOW + DAY) == 1 and g.admissible("t1", [0.6], now=NOW + DAY) == 0  # monthly


# -- end to end: the engine and the deferred queue against the simulated API -----------------

COMPLEX = ("Design a fault-tolerant architecture for a multi-region payment system: consistency versus "
           "availability trade-offs, failure modes, and a migration plan from a single region.")


@pytest.fixture
async def engine_factory(tmp_path, api_env):
    from mcp_tars.app import connect_queue
    from mcp_tars.engine import Engine

    from conftest import make_config

    made = []

    def make(**budget_settings):
        engine = Engine(make_config(budget=budget_settings), open_store(tmp_path / "e2e.db"))
        connect_queue(engine)  # the defer policy hands calls to the batch queue, as in the server
        made.append(engine)
        return engine

    yield make
    for engine in made:
        await engine.aclose()
        engine.store.close()


def api_posts(sim, path="/v1/messages") -> list:
    return [r for r in sim.requests if r.method == "POST" and r.path == path]


def now() -> float:
    from mcp_tars import clock

    return clock.now()


@pytest.mark.anyio
async def test_block_policy_refuses_the_call_before_any_request(engine_factory, api_env):
    from mcp_tars.engine import BudgetExceeded, CompletionRequest

    engine = engine_factory(daily_usd=0.01, policy="block")
    spend(engine.store, 0.0099, ts=now(), tenant=engine.tenant)
    with pytest.raises(BudgetExceeded, match="daily budget reached") as refused:
        await engine.complete(CompletionRequest(prompt=COMPLEX, max_tokens=2000))
    assert "budget.daily_usd" in str(refused.value)
    assert api_posts(api_env) == [] and api_env.bill == []
    assert ledger.count(engine.store) == 1  # only the earlier spend


@pytest.mark.anyio
async def test_a_warning_appears_in_results_and_reports_past_the_warning_line(engine_factory, api_env):
    from mcp_tars import reports
    from mcp_tars.engine import CompletionRequest

    engine = engine_factory(daily_usd=1.0, policy="block")
    spend(engine.store, 0.85, ts=now(), tenant=engine.tenant)
    result = await engine.complete(CompletionRequest(prompt="What is DNS?", max_tokens=50))
    assert any(w.startswith("budget warning") and "daily budget ($1.00)" in w for w in result.warnings)
    report = reports.build_report(engine.store, tenant=engine.tenant, budget=engine.budget_status())
    assert any(w.startswith("budget warning: 85% of the daily budget") for w in report["warnings"])


@pytest.mark.anyio
async def test_downgrade_policy_routes_to_a_cheaper_model_near_the_limit(engine_factory, api_env):
    from mcp_tars.engine import CompletionRequest
    from mcp_tars.pricing import PriceTable

    prices = PriceTable()
    # a hard task below the expert level (expert work never goes below routing.expert_floor_model)
    hard = "Debug this: my Flask app returns 400 on every POST behind the load balancer, GET works."
    relaxed = await engine_factory().complete(CompletionRequest(prompt=hard, max_tokens=300, use_cache=False))
    engine = engine_factory(daily_usd=100.0, policy="downgrade")
    spend(engine.store, 95.0, ts=now(), tenant=engine.tenant)
    pressed = await engine.complete(CompletionRequest(prompt=hard, max_tokens=300, use_cache=False))
    assert pressed.routing["downgraded"] and not relaxed.routing["downgraded"]
    assert prices.price(pressed.model)[0].output < prices.price(relaxed.model)[0].output
    assert pressed.source == "api" and pressed.cost_usd is not None


@pytest.mark.anyio
async def test_deferred_work_waits_for_the_budget_and_goes_out_the_next_day(engine_factory, api_env, tmp_path,
                                                                           monkeypatch):
    from mcp_tars import clock
    from mcp_tars.batches import DeferredQueue
    from mcp_tars.engine import CompletionRequest

    clock_file = tmp_path / "clock"
    clock_file.write_text("0")
    monkeypatch.setenv("MCP_TARS_CLOCK_FILE", str(clock_file))
    engine = engine_factory(daily_usd=0.01, monthly_usd=50.0, policy="defer")
    queue = DeferredQueue(engine)
    spend(engine.store, 0.0099, ts=now(), tenant=engine.tenant)
    ids = [(await queue.defer(CompletionRequest(prompt=f"Summarise release note {i} in one line.", max_tokens=1000),
                              priority="high", max_wait_seconds=7 * 86400, critical=False))["task_id"]
           for i in range(3)]
    out = await queue.process()
    assert out["submitted_tasks"] == 0 and api_posts(api_env, "/v1/messages/batches") == []
    assert all(queue.status(t)["status"] == "queued" and "budget" in queue.status(t)["error"] for t in ids)
    clock.advance(86400)  # a new UTC day: the daily budget has room again
    out = await queue.process()
    assert out["submitted_tasks"] == 3 and out["collected"] == 3
    assert all(queue.status(t)["status"] == "succeeded" for t in ids)
    assert sum(1 for line in api_env.bill if line.batch) == 3


@pytest.mark.anyio
async def test_work_already_submitted_counts_against_the_budget(engine_factory, api_env):
    """Batches in flight are not billed yet; the next pass must count them as
    committed (``BudgetGuard.admissible(..., committed_usd=...)``) instead of
    sending the budget a second time."""
    from mcp_tars.batches import DeferredQueue
    from mcp_tars.engine import CompletionRequest
    from mcp_tars.store import tasks as task_store

    api_env.configure(batch_ready_after_polls=5)
    engine = engine_factory(daily_usd=10.0, policy="defer")
    queue = DeferredQueue(engine)

    async def defer_three(tag):
        return [(await queue.defer(CompletionRequest(prompt=f"Summarise note {tag}{i}.", max_tokens=4000),
                                   priority="high", max_wait_seconds=7 * 86400, critical=False))["task_id"]
                for i in range(3)]

    first = await defer_three("a")
    params = task_store.task_payloads(engine.store, first)[first[0]]["params"]
    estimate = engine.estimate_cost(params, params["model"]) * float(engine.prices.batch_multiplier)
    engine.config.budget.daily_usd = 3.5 * estimate  # room for the first three, not for a fourth
    assert (await queue.process())["submitted_tasks"] == 3
    await defer_three("b")
    out = await queue.process()
    assert out["submitted_tasks"] == 0, "three tasks in flight already commit most of the budget"


@pytest.mark.anyio
async def test_defer_policy_queues_an_immediate_call_over_the_limit(engine_factory, api_env):
    from mcp_tars.engine import BudgetExceeded, CompletionRequest
    from mcp_tars.store import tasks as task_store

    engine = engine_factory(daily_usd=0.01, policy="defer")
    spend(engine.store, 0.0099, ts=now(), tenant=engine.tenant)
    with pytest.raises(BudgetExceeded, match=r"queued .*task_\w+") as deferred:
        await engine.complete(CompletionRequest(prompt=COMPLEX, max_tokens=2000))
    assert api_posts(api_env) == []
    task_id = next(w for w in str(deferred.value).replace(".", " ").replace(",", " ").split() if w.startswith("task_"))
    assert task_store.get_task(engine.store, engine.tenant, task_id)["status"] == "queued"


@pytest.mark.anyio
async def test_the_engine_records_budget_alerts_once(engine_factory, api_env):
    from mcp_tars.engine import BudgetExceeded, CompletionRequest

    engine = engine_factory(daily_usd=1.0, policy="block")
    spend(engine.store, 0.85, ts=now(), tenant=engine.tenant)
    for prompt in ("What is DNS?", "What is TCP?"):
        await engine.complete(CompletionRequest(prompt=prompt, max_tokens=50))
    spend(engine.store, 0.2, ts=now(), tenant=engine.tenant)
    for _ in range(2):
        with pytest.raises(BudgetExceeded):
            await engine.complete(CompletionRequest(prompt=COMPLEX, max_tokens=2000))
    kinds = sorted(a["kind"] for a in alert_store.between(engine.store, tenant=engine.tenant, since_ts=None,
                                                          until_ts=None))
    assert kinds == ["budget_exceeded", "budget_warning"]

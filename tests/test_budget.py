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
from mcp_tars.store import Store, ledger
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
    assert v.message == ("budget warning: 81% of the daily budget ($10.00) is spent with this call ($8.1000); "
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
    assert v.message.startswith("daily budget reached: $9.5000 of $10.00 spent or committed, and this call is "
                                "estimated at $0.6000.")
    assert words in v.message
    assert (v.scope, v.spent_usd, v.limit_usd) == ("daily", 9.5, 10.0)


def test_committed_batch_work_counts_as_spent():
    assert verdict(spent_daily=5.0, estimate=2.0).action == "allow"
    v = verdict(spent_daily=5.0, estimate=2.0, committed=3.5)
    assert v.action == "block" and v.spent_usd == 8.5


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
def store(tmp_path):
    s = Store(tmp_path / "budget.db")
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

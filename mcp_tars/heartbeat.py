"""Heartbeat checks: is the optimizer meeting its targets?

One pass, for ``mcp-tars heartbeat`` (cron, or an agent's HEARTBEAT.md loop):
cache hit rate, routing mix, savings, budget, unknown prices and the deferred
work backlog, each a ``CheckResult`` that says the measured value, the target
and, when missed, what to look at. A missed target is recorded as an alert
once per check and UTC day.

Targets live in the ``heartbeat`` section of performance-config.json
(``HeartbeatSettings``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any


from . import clock
from .budget import BudgetGuard
from .money import format_usd
from .reports import build_report
from .settings import HeartbeatSettings
from .store import Store
from .store import alerts as alert_store
from .store import ledger


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    value: Any
    target: Any
    message: str


def _settings(config: Any) -> HeartbeatSettings:
    return getattr(config, "heartbeat", None) or HeartbeatSettings()


def _rate_check(name: str, value: float | None, target: float, calls: int, settings: HeartbeatSettings,
                label: str, advice: str) -> CheckResult:
    if calls < settings.min_calls:
        return CheckResult(name, True, value, target,
                           f"{label}: not enough calls to judge ({calls} in {settings.window}, "
                           f"at least {settings.min_calls} needed)")
    value = value or 0.0
    if value >= target:
        return CheckResult(name, True, value, target, f"{label} {value:.1%} (target at least {target:.0%})")
    return CheckResult(name, False, value, target, f"{label} {value:.1%} is below the target of {target:.0%}: {advice}")


def check_rates(report: dict, settings: HeartbeatSettings) -> list[CheckResult]:
    """The rate checks on a report's totals (pure)."""
    t = report["totals"]
    routed = report["savings_by_lever"]["routing"]["calls"]
    mix = ", ".join(f"{m} {v['share']:.0%}" for m, v in list(t["model_mix"].items())[:4]) or "no calls"
    return [
        _rate_check("cache_hit_rate", t["cache_hit_rate"], settings.min_cache_hit_rate, t["calls"], settings,
                    "cache hit rate",
                    "repeated questions are not being reused; check cache.enabled, cache TTLs and that callers "
                    "leave use_cache on"),
        _rate_check("routing_mix", routed / t["calls"] if t["calls"] else None, settings.min_routed_share,
                    t["calls"], settings, f"calls routed to a cheaper model (mix: {mix})",
                    "most calls run on the default or a dearer model; check routing thresholds and pinned models"),
        _rate_check("savings", t["savings_share"], settings.min_savings_share, t["calls"], settings,
                    f"savings against the baseline ({format_usd(t['saved_usd'])})",
                    "see cost_report group_by=strategy for the lever that falls short"),
    ]


def check_pricing(report: dict) -> CheckResult:
    n = report["totals"]["unknown_price_calls"]
    if not n:
        return CheckResult("pricing", True, 0, 0, "every call in the window has a known price")
    return CheckResult("pricing", False, n, 0, f"{n} call(s) have no known price and are not counted; "
                                                "add their models under price_overrides")


def check_budget(status: dict) -> CheckResult:
    """Below ``warn_share`` of every configured budget (pure, from ``BudgetGuard.status``)."""
    shares = status.get("shares") or {}
    warn = status.get("warn_share", 0.8)
    if not shares:
        return CheckResult("budget", True, None, None, "no budget configured")
    scope, share = max(shares.items(), key=lambda kv: kv[1])
    limit = status[f"{scope}_limit_usd"]
    text = f"{share:.0%} of the {scope} budget ({format_usd(limit)}) spent"
    if share >= warn:
        return CheckResult("budget", False, share, warn,
                           f"{text}: at or above the {warn:.0%} warning line; at 100% the policy is to {status['policy']}")
    return CheckResult("budget", True, share, warn, f"{text} (warning at {warn:.0%})")


def check_deferred(queued: list[dict], open_batches: list[dict], *, now: float, latest_submit_at,
                   settings: HeartbeatSettings) -> CheckResult:
    """The deferred backlog (pure): queued tasks past the moment their batch had
    to go out, a queue longer than ``max_queued_tasks``, batches open too long.
    ``latest_submit_at(deadline_at)`` is the deferred queue's own rule."""
    late = [t for t in queued if now > latest_submit_at(t["deadline_at"]) and not (t.get("error") or "").startswith("waiting for budget")]
    held = [t for t in queued if (t.get("error") or "").startswith("waiting for budget")]
    stuck = [b for b in open_batches if now - b["created_at"] > settings.max_batch_hours * 3600]
    value = {"queued": len(queued), "late": len(late), "held_by_budget": len(held), "open_batches": len(open_batches),
             "stuck_batches": len(stuck)}
    target = {"late": 0, "max_queued": settings.max_queued_tasks, "stuck_batches": 0}
    summary = (f"{len(queued)} task(s) queued ({len(held)} held by the budget), "
               f"{len(open_batches)} batch(es) open")
    problems = []
    if late:
        problems.append(f"{len(late)} queued task(s) are past the time their batch had to go out; run "
                        "process_deferred (or mcp-tars heartbeat) and check that the worker runs")
    if len(queued) > settings.max_queued_tasks:
        problems.append(f"the queue holds more than {settings.max_queued_tasks} tasks")
    if stuck:
        problems.append(f"{len(stuck)} batch(es) open for more than {settings.max_batch_hours:g} h")
    if problems:
        return CheckResult("deferred", False, value, target, summary + ": " + "; ".join(problems))
    return CheckResult("deferred", True, value, target, summary)


def _deferred_check(store: Store, config: Any, tenant: str | None, now: float, settings: HeartbeatSettings) -> CheckResult:
    from .batches import latest_batch_submit_at  # the queue's rule; imported late, it pulls in the engine
    from .store import tasks as task_store

    queued = task_store.tasks_by_status(store, tenant, ["queued"])
    batches = task_store.open_batches(store, tenant)
    return check_deferred(queued, batches, now=now, settings=settings,
                          latest_submit_at=lambda deadline: latest_batch_submit_at(deadline, config.batch))


ALL_TENANTS = "*"  # the tenant of alerts raised by checks over every tenant


def _budget_status(store: Store, config: Any, tenant: str | None, now: float) -> dict:
    """One tenant's budget status; for every tenant (budgets are per tenant),
    the status of the one nearest its limit."""
    guard = BudgetGuard(store, config.budget)
    if tenant is not None:
        return guard.status(tenant, now=now)
    statuses = [guard.status(t, now=now) for t in ledger.spending_tenants(store)] or [guard.status("", now=now)]
    return max(statuses, key=lambda s: max(s["shares"].values(), default=0.0))


def run_checks(store: Store, config: Any, tenant: str | None, *, now: float | None = None) -> list[CheckResult]:
    """Every check for one tenant (None: over every tenant in the database);
    missed targets are recorded as alerts."""
    settings = _settings(config)
    now = clock.now() if now is None else now
    report = build_report(store, tenant=tenant, period=settings.window, group_by="model", now=now)
    results = [
        *check_rates(report, settings),
        check_budget(_budget_status(store, config, tenant, now)),
        _deferred_check(store, config, tenant, now, settings),
        check_pricing(report),
    ]
    if settings.record_alerts:
        day = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%d")
        for r in results:
            if not r.ok:
                alert_store.record(store, tenant=tenant or ALL_TENANTS, ts=now, kind="target_missed", scope=r.name,
                                   period=day, message=r.message,
                                   share=r.value if isinstance(r.value, (int, float)) else None)
    return results

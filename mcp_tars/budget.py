"""Daily and monthly budgets: the check before every call, and its alerts.

The core, ``evaluate``, is pure: spend so far, what is already committed
(submitted batch work not billed yet), the call's estimated cost, the limits
and the policy in, a verdict out. ``BudgetGuard`` reads the spend from the
store (the ``daily_spend`` totals kept by a trigger beside the ledger) and
records one alert per tenant, kind, budget and period.

The verdict is taken on the spend *after* the call (spent + committed +
estimate), so the call that would cross a line is the one that is warned or
held, not the one after it:

    share after the call < warn_share              allow
    warn_share <= share after the call <= 100%     warn   (the call runs; results and reports say so)
    share after the call > 100%                    the policy: block | downgrade | defer

Budgets are in UTC: a day is a UTC day, a month a calendar month.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterable, Literal

from . import clock
from .money import format_usd
from .store import Store
from .store import alerts as alert_store
from .store import ledger

if TYPE_CHECKING:
    from .settings import BudgetSettings

class BudgetExceeded(RuntimeError):
    """A call was blocked by the budget policy."""


class BudgetDeferred(BudgetExceeded):
    """The budget policy is "defer": the call belongs in the batch queue."""


Action = Literal["allow", "warn", "block", "downgrade", "defer"]
POLICIES = ("block", "downgrade", "defer")
SCOPES = ("daily", "monthly")

_WHAT_HAPPENS = {
    "block": ("The call was not made. Raise budget.{scope}_usd in performance-config.json, wait for the "
              "next {period}, or queue the work with defer_task (it waits for the budget too)."),
    "downgrade": "The call is routed one tier down to a cheaper model.",
    "defer": ("The call is queued for the Message Batches API (50% cheaper); it is sent once the "
              "{scope} budget allows it."),
}


@dataclass(frozen=True)
class BudgetVerdict:
    """What to do with one call. ``share`` is the largest share of a limit the
    spend would reach with this call; ``scope`` is that budget (daily/monthly)."""

    action: Action
    message: str | None = None
    share: float | None = None
    scope: str | None = None
    spent_usd: float | None = None
    limit_usd: float | None = None

    @property
    def over_limit(self) -> bool:
        return self.action in POLICIES


def _check_money(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number of USD (got {value!r})")
    return float(value)


def evaluate(*, spent: dict[str, float], limits: dict[str, float | None], estimated_cost_usd: float,
             warn_share: float, policy: str, committed_usd: float = 0.0) -> BudgetVerdict:
    """The verdict for one call, from plain numbers.

    ``spent`` and ``limits`` are keyed by scope ("daily", "monthly"); a limit of
    None means no budget. ``committed_usd`` is work already sent but not yet
    billed (it counts as spent)."""
    if policy not in POLICIES:
        raise ValueError(f"budget policy must be one of {', '.join(POLICIES)} (got {policy!r})")
    if not 0 < warn_share <= 1:
        raise ValueError(f"budget warn_share must be in (0, 1] (got {warn_share!r})")
    estimate = _check_money("the estimated cost", estimated_cost_usd)
    committed = _check_money("the committed spend", committed_usd)
    binding: tuple[float, str, float, float] | None = None  # (share after, scope, spent now, limit)
    for scope in SCOPES:
        limit = limits.get(scope)
        if not limit:
            continue
        spent_in_scope = _check_money(f"the {scope} spend", spent.get(scope, 0.0))
        share = (spent_in_scope + committed + estimate) / limit
        if binding is None or share > binding[0]:
            binding = (share, scope, spent_in_scope, limit)
    if binding is None:
        return BudgetVerdict("allow")
    share, scope, spent_in_scope, limit = binding
    now_spent = spent_in_scope + committed
    period = "UTC day" if scope == "daily" else "calendar month (UTC)"
    so_far = f"{format_usd(spent_in_scope)} is spent"
    if committed:
        so_far += f" and {format_usd(committed)} committed (batch work sent, not billed yet)"
    # The estimate is a worst case (the estimated input plus all of max_tokens as
    # output, at the standard rate): say so, a call rarely costs that much.
    estimated = f"this call is estimated at up to {format_usd(estimate)} (worst case: all of max_tokens as output)"
    if now_spent + estimate > limit:
        message = (f"{scope} budget reached: {so_far}, and {estimated}: {format_usd(now_spent + estimate)} in all, "
                   f"above the {format_usd(limit)} limit. " + _WHAT_HAPPENS[policy].format(scope=scope, period=period))
        return BudgetVerdict(policy, message, share, scope, now_spent, limit)  # type: ignore[arg-type]
    if share >= warn_share:
        message = (f"budget warning: {share:.0%} of the {scope} budget ({format_usd(limit)}) is spent with this call "
                   f"({so_far}; {estimated}); at 100% the policy is to {policy}.")
        return BudgetVerdict("warn", message, share, scope, now_spent, limit)
    return BudgetVerdict("allow", None, share, scope, now_spent, limit)


def fits(*, spent: dict[str, float], limits: dict[str, float | None], estimated_costs: Iterable[float],
         committed_usd: float = 0.0) -> int:
    """How many of ``estimated_costs``, taken in order, fit under every limit
    together (the deferred path: how many queued tasks may be sent now)."""
    running = _check_money("the committed spend", committed_usd)
    admitted = 0
    for cost in estimated_costs:
        cost = _check_money("an estimated cost", cost)
        over = any(limits.get(s) and spent.get(s, 0.0) + running + cost > limits[s] for s in SCOPES)
        if over:
            break
        running += cost
        admitted += 1
    return admitted


def _day_and_month(ts: float) -> tuple[str, str]:
    when = datetime.fromtimestamp(ts, timezone.utc)
    return when.strftime("%Y-%m-%d"), when.strftime("%Y-%m")


class BudgetGuard:
    """Budgets of one configuration over the store's ledger. Thread-safe as
    the store is; several processes (on a team database, several machines) see
    each other's spend through the shared per-day totals."""

    def __init__(self, store: Store, settings: "BudgetSettings"):
        self.store = store
        self.settings = settings
        self._recorded: set[tuple[str, str, str, str]] = set()  # alerts known to be in the table

    @property
    def limits(self) -> dict[str, float | None]:
        return {"daily": self.settings.daily_usd, "monthly": self.settings.monthly_usd}

    @property
    def enabled(self) -> bool:
        return any(self.limits.values())

    def spent(self, tenant: str, *, now: float | None = None) -> dict[str, float]:
        day, month = _day_and_month(clock.now() if now is None else now)
        return {
            "daily": ledger.spend(self.store, tenant, day, day),
            "monthly": ledger.spend(self.store, tenant, f"{month}-01", day),
        }

    def status(self, tenant: str, *, now: float | None = None) -> dict:
        """Spend against the limits. The keys of ``Engine.budget_status`` plus
        ``warn_share``, ``day``, ``month`` and ``warnings`` (one per budget at
        or above ``warn_share``)."""
        now = clock.now() if now is None else now
        day, month = _day_and_month(now)
        spent = self.spent(tenant, now=now) if self.enabled else {"daily": 0.0, "monthly": 0.0}
        shares = {s: spent[s] / limit for s, limit in self.limits.items() if limit}
        warnings = [
            f"budget warning: {share:.0%} of the {scope} budget ({format_usd(self.limits[scope])}) is spent; "
            f"at 100% the policy is to {self.settings.policy}."
            for scope, share in shares.items() if share >= self.settings.warn_share
        ]
        return {
            "daily_usd": spent["daily"], "monthly_usd": spent["monthly"],
            "daily_limit_usd": self.settings.daily_usd, "monthly_limit_usd": self.settings.monthly_usd,
            "shares": shares, "policy": self.settings.policy, "warn_share": self.settings.warn_share,
            "day": day, "month": month, "warnings": warnings,
        }

    def verdict(self, tenant: str, estimated_cost_usd: float, *, committed_usd: float = 0.0,
                policy: str | None = None, record: bool = True, now: float | None = None) -> BudgetVerdict:
        """The verdict for a call estimated at ``estimated_cost_usd``.

        ``policy`` overrides the configured one: after routing a call down, ask
        again with ``policy="block"`` so that a call that still does not fit is
        refused. Warnings and limits are recorded as alerts unless ``record``
        is false."""
        _check_money("the estimated cost", estimated_cost_usd)
        if not self.enabled:
            return BudgetVerdict("allow")
        now = clock.now() if now is None else now
        result = evaluate(spent=self.spent(tenant, now=now), limits=self.limits,
                          estimated_cost_usd=estimated_cost_usd, committed_usd=committed_usd,
                          warn_share=self.settings.warn_share, policy=policy or self.settings.policy)
        if record and result.action != "allow":
            self.record_alert(tenant, result, now=now)
        return result

    def admissible(self, tenant: str, estimated_costs: Iterable[float], *, committed_usd: float = 0.0,
                   now: float | None = None) -> int:
        """How many queued tasks, in the order given, may be sent now: the
        deferred path's check. ``committed_usd`` is the estimated cost of work
        already submitted and not yet billed."""
        costs = list(estimated_costs)
        if not self.enabled:
            return len(costs)
        now = clock.now() if now is None else now
        return fits(spent=self.spent(tenant, now=now), limits=self.limits, estimated_costs=costs,
                    committed_usd=committed_usd)

    def record_alert(self, tenant: str, verdict: BudgetVerdict, *, now: float | None = None,
                     action: str | None = None) -> bool:
        """Record a warning or limit alert, once per tenant, kind, budget and
        period. Returns True when this call recorded it."""
        if verdict.action == "allow" or verdict.scope is None:
            return False
        now = clock.now() if now is None else now
        day, month = _day_and_month(now)
        kind = "budget_warning" if verdict.action == "warn" else "budget_exceeded"
        period = day if verdict.scope == "daily" else month
        key = (tenant, kind, verdict.scope, period)
        if key in self._recorded:
            return False
        added = alert_store.record(
            self.store, tenant=tenant, ts=now, kind=kind, scope=verdict.scope, period=period,
            message=verdict.message or kind, share=verdict.share, spent_usd=verdict.spent_usd,
            limit_usd=verdict.limit_usd, action=action or verdict.action,
        )
        self._recorded.add(key)
        return added

"""Cost reports from the ledger: numbers, Markdown, terminal tables and HTML.

``build_report`` turns the per-day roll-ups (see ``store/reports.py``) into
one plain dict: totals, groups, savings by lever and warnings. Everything
else renders that dict: Jinja2 templates for Markdown (the strategy dashboard
and the before/after daily tree of the original brief) and HTML (inline SVG
charts drawn here, no scripts from the network), and ``rich`` for terminals.

Savings by lever add up exactly to the total saved, because the total *is*
their sum: each ledger row stores the five lever savings whose sum is its
saved_usd (``pricing.attribute_call``), and the report sums the levers first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

import jinja2

from . import clock
from .money import format_usd
from .settings import ReportSettings
from .store import Store
from .store import alerts as alert_store
from .store import reports as report_store

PERIODS = ("today", "yesterday", "7d", "30d", "month", "all")
GROUP_BYS = ("model", "day", "strategy", "session")
NO_SESSION_KEY = "(no session)"
OTHER_SESSIONS_KEY = "(other sessions)"


@dataclass(frozen=True)
class Lever:
    key: str
    label: str
    basis: str  # measured | estimated
    explanation: str
    column: str


# Report order: the order in which a request meets the levers' effects.
LEVERS: tuple[Lever, ...] = (
    Lever("cache", "Response caching", "measured",
          "a cache hit costs $0 and saves the request's whole baseline (no other lever acts on a request the cache answers)",
          "saved_cache_usd"),
    Lever("routing", "Model routing", "estimated",
          "counterfactual: the same request on the default model (token counts scaled between tokenizer families)",
          "saved_routing_usd"),
    Lever("pruning", "Context pruning", "estimated",
          "counterfactual: the tokens pruning removed, priced as input on the default model", "saved_pruning_usd"),
    Lever("prompt_cache", "Prompt caching", "measured",
          "from usage: cache reads and writes at their prices against the same tokens as plain input",
          "saved_prompt_cache_usd"),
    Lever("batch", "Message Batches", "measured",
          "from usage: the API's 50% batch rate against the standard rate", "saved_batch_usd"),
)
LEVER_KEYS = tuple(lever.key for lever in LEVERS)
_TOKEN_FIELDS = ("input_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens", "output_tokens")


# -- periods ---------------------------------------------------------------------------


def _parse_day(value: str, name: str) -> date:
    try:
        if not isinstance(value, str) or len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name} must be a date written YYYY-MM-DD (UTC), e.g. 2026-02-13 (got {value!r})") from None


def resolve_period(period: str, *, since: str | None = None, until: str | None = None,
                   now: float | None = None) -> tuple[str | None, str | None]:
    """First and last UTC day (inclusive) of a report; None is unbounded.
    ``since``/``until`` override the period."""
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}; use one of {', '.join(PERIODS)}, or since/until dates")
    today = datetime.fromtimestamp(clock.now() if now is None else now, timezone.utc).date()
    if since is not None or until is not None:
        first = _parse_day(since, "since") if since is not None else None
        last = _parse_day(until, "until") if until is not None else (today if since is not None else None)
        if first and last and first > last:
            raise ValueError(f"since ({first}) is after until ({last}): give a start date on or before the end date")
        return (first.isoformat() if first else None), (last.isoformat() if last else None)
    first = {
        "today": today, "yesterday": today - timedelta(days=1), "7d": today - timedelta(days=6),
        "30d": today - timedelta(days=29), "month": today.replace(day=1), "all": None,
    }[period]
    last = today - timedelta(days=1) if period == "yesterday" else (None if period == "all" else today)
    return (first.isoformat() if first else None), (last.isoformat() if last else None)


def _days_between(first: str, last: str) -> list[str]:
    a, b = date.fromisoformat(first), date.fromisoformat(last)
    return [(a + timedelta(days=i)).isoformat() for i in range((b - a).days + 1)]


# -- figures from sums -------------------------------------------------------------------


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def figures(sums: dict) -> dict:
    """The report fields of one group (or the totals) from its roll-up sums."""
    savings = {lever.key: float(sums[lever.column] or 0.0) for lever in LEVERS}
    saved = sum(savings.values())  # the levers first: the parts add up to the total by construction
    calls = int(sums["calls"] or 0)
    cost = float(sums["cost_usd"] or 0.0)
    baseline = float(sums["baseline_cost_usd"] or 0.0)
    out = {
        "calls": calls,
        "api_calls": int(sums["api_calls"] or 0),
        "batch_calls": int(sums["batch_calls"] or 0),
        "cache_hits": int(sums["cache_hits"] or 0),
        "cache_hits_exact": int(sums["cache_hits_exact"] or 0),
        "cache_hits_semantic": int(sums["cache_hits_semantic"] or 0),
        **{f: int(sums[f] or 0) for f in _TOKEN_FIELDS},
        "cost_usd": cost,
        "baseline_cost_usd": baseline,
        "saved_usd": saved,
        "savings_share": _ratio(saved, baseline),
        "savings_by_lever_usd": savings,
        "cache_hit_rate": int(sums["cache_hits"] or 0) / calls if calls else 0.0,
        "avg_cost_per_call": _ratio(cost, int(sums["priced_calls"] or 0)),
        "avg_baseline_cost_per_call": _ratio(baseline, int(sums["baseline_calls"] or 0)),
        "avg_latency_ms": _ratio(float(sums["latency_ms"] or 0.0), int(sums["latency_calls"] or 0)),
        "priced_calls": int(sums["priced_calls"] or 0),
        "unknown_price_calls": int(sums["unknown_price_calls"] or 0),
        "no_baseline_calls": calls - int(sums["baseline_calls"] or 0),
        "estimated_baseline_calls": int(sums["estimated_baseline_calls"] or 0),
        "pruned_calls": int(sums["pruned_calls"] or 0),
        "tokens_pruned": int(sums["tokens_pruned"] or 0),
        "cache_tokens_replaced": int(sums["cache_tokens_replaced"] or 0),
        "cache_hits_with_tokens": int(sums["cache_hits_with_tokens"] or 0),
    }
    out["total_tokens"] = sum(out[f] for f in _TOKEN_FIELDS)
    out["calls_helped_by_lever"] = {k: int(sums[f"helped_{k}"] or 0) for k in LEVER_KEYS}
    return out


def _model_mix(model_rows: list[dict], calls: int) -> dict[str, dict]:
    mix = {}
    for r in sorted(model_rows, key=lambda r: (-r["calls"], r["model"])):
        mix[r["model"]] = {"calls": int(r["calls"]), "share": _ratio(int(r["calls"]), calls) or 0.0,
                           "cost_usd": float(r["cost_usd"] or 0.0)}
    return mix


def savings_by_lever(total: dict) -> dict[str, dict]:
    saved = total["saved_usd"]
    baseline = total["baseline_cost_usd"]
    return {
        lever.key: {
            "label": lever.label,
            "usd": total["savings_by_lever_usd"][lever.key],
            "share": _ratio(total["savings_by_lever_usd"][lever.key], saved),
            "share_of_baseline": _ratio(total["savings_by_lever_usd"][lever.key], baseline),
            "calls": total["calls_helped_by_lever"][lever.key],
            "basis": lever.basis,
            "explanation": lever.explanation,
        }
        for lever in LEVERS
    }


def _strategy_groups(levers: dict[str, dict], lever_sums: dict[str, dict], calls: int) -> list[dict]:
    """One group per lever over the calls it touched (its saving on the call
    is non-zero, either way), with every field of ``figures`` for those calls
    (``saved_usd``: what they saved by all levers together, as in any group)
    plus the lever's own: ``lever_saved_usd`` (the lever's saving, all of it:
    the lever saved nothing on calls outside its group, so this is the
    group's own ``savings_by_lever_usd[lever]``, taken from the totals so
    that the groups' lever savings add up exactly to the total saved),
    ``calls_helped`` (calls it made cheaper), label, basis,
    explanation, ``share`` (of the total saved), ``share_of_baseline`` (of
    the period's baseline) and ``share_of_calls``. A call can be touched by
    several levers, so the groups overlap: their calls, costs and baselines
    do not add up to the totals."""
    groups = []
    for lever in LEVERS:
        overall = levers[lever.key]
        group = {"key": lever.key, **figures(lever_sums[lever.key])}
        group.update({
            "label": overall["label"], "basis": overall["basis"], "explanation": overall["explanation"],
            "lever_saved_usd": overall["usd"], "calls_helped": overall["calls"],
            "share": overall["share"], "share_of_baseline": overall["share_of_baseline"],
            "share_of_calls": _ratio(group["calls"], calls), "overlapping": True,
        })
        groups.append(group)
    return groups


def _warnings(total: dict, budget: dict | None, savings: dict[str, dict]) -> list[str]:
    out = []
    if total["unknown_price_calls"]:
        out.append(f"{total['unknown_price_calls']} call(s) have no known price (pricing_source 'unknown'): their cost "
                   "and savings are not counted in these totals. Add the model under price_overrides in "
                   "performance-config.json.")
    no_baseline = total["no_baseline_calls"] - total["unknown_price_calls"]
    if no_baseline > 0:
        out.append(f"{no_baseline} call(s) have no baseline (the default model had no price): their cost is counted, "
                   "their savings are not.")
    for lever in LEVERS:
        usd = savings[lever.key]["usd"]
        if usd < 0:
            why = {"prompt_cache": "cache writes that were not read back often enough",
                   "routing": "calls routed up to a model dearer than the default"}.get(lever.key, "")
            out.append(f"{lever.label} cost {format_usd(-usd)} more than it saved" + (f" ({why})." if why else "."))
    if budget:
        warn_share = budget.get("warn_share", 0.8)
        for scope, share in sorted((budget.get("shares") or {}).items()):
            limit = budget.get(f"{scope}_limit_usd")
            if share is not None and share >= warn_share and limit:
                state = "exceeded" if share > 1 else "warning"
                out.append(f"budget {state}: {share:.0%} of the {scope} budget ({format_usd(limit)}) is spent; "
                           f"at 100% the policy is to {budget.get('policy', 'block')}.")
    return out


def _ts_bounds(first: str | None, last: str | None) -> tuple[float | None, float | None]:
    def midnight(d: date) -> float:
        return datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp()

    return (midnight(date.fromisoformat(first)) if first else None,
            midnight(date.fromisoformat(last) + timedelta(days=1)) if last else None)


def build_report(store: Store, *, tenant: str | None = None, period: str = "today", group_by: str = "model",
                 since: str | None = None, until: str | None = None, budget: dict | None = None,
                 now: float | None = None, settings: ReportSettings | None = None) -> dict:
    """The report over one period: totals, groups, savings by lever, budget and
    warnings. ``tenant`` None covers every tenant in the database. Raises
    ValueError on an unknown period or group_by, or a malformed date."""
    if group_by not in GROUP_BYS:
        raise ValueError(f"unknown group_by {group_by!r}; use one of {', '.join(GROUP_BYS)}")
    settings = settings or ReportSettings()
    first, last = resolve_period(period, since=since, until=until, now=now)
    total_sums = report_store.sums(store, tenant=tenant, first_day=first, last_day=last)[0]
    model_rows = report_store.sums(store, tenant=tenant, first_day=first, last_day=last, by=("model",))
    total = figures(total_sums)
    total["model_mix"] = _model_mix(model_rows, total["calls"])
    levers = savings_by_lever(total)

    if group_by == "model":
        groups = [{"key": r["model"], **figures(r)} for r in model_rows]
        groups.sort(key=lambda g: (-g["cost_usd"], -g["calls"], g["key"]))
    elif group_by == "day":
        groups = [{"key": r["day"], **figures(r)}
                  for r in report_store.sums(store, tenant=tenant, first_day=first, last_day=last, by=("day",))]
        by_day_model: dict[str, list[dict]] = {}
        for r in report_store.sums(store, tenant=tenant, first_day=first, last_day=last, by=("day", "model")):
            by_day_model.setdefault(r["day"], []).append(r)
        for g in groups:
            g["model_mix"] = _model_mix(by_day_model.get(g["key"], []), g["calls"])
    elif group_by == "session":
        groups = []
        for r in report_store.session_sums(store, tenant=tenant, first_day=first, last_day=last,
                                           top=settings.top_sessions):
            key = {"": NO_SESSION_KEY, report_store.OTHER_SESSIONS: OTHER_SESSIONS_KEY}.get(r["session"], r["session"])
            groups.append({"key": key, **figures(r)})
    else:
        groups = _strategy_groups(levers, report_store.lever_sums(store, tenant=tenant, first_day=first, last_day=last),
                                  total["calls"])

    span_first, span_last = first, last
    if first is None or last is None:
        data_first, data_last = report_store.day_span(store, tenant=tenant)
        span_first = first or data_first
        span_last = last or data_last
        if last is not None and (span_first is None or span_first > last):
            span_first = last  # until alone, and no data before it: an empty day, never an inverted period
    days = len(_days_between(span_first, span_last)) if span_first and span_last and span_first <= span_last else 0

    since_ts, until_ts = _ts_bounds(first, last)
    alerts = alert_store.between(store, tenant=tenant, since_ts=since_ts, until_ts=until_ts, limit=50)
    budget_out = dict(budget) if budget else None
    if alerts:
        budget_out = {**(budget_out or {}), "alerts": alerts}
    return {
        "period": period if since is None and until is None else "custom",
        "group_by": group_by,
        "since": span_first,
        "until": span_last,
        "days": days,
        "tenant": tenant,
        "generated_at": datetime.fromtimestamp(clock.now() if now is None else now, timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "target_savings_share": settings.target_savings_share,
        "totals": total,
        "groups": groups,
        "groups_overlap": group_by == "strategy",  # a call is in the group of every lever that touched it
        "savings_by_lever": levers,
        "budget": budget_out,
        "warnings": _warnings(total, budget, levers),
    }


# -- Markdown ---------------------------------------------------------------------------


def _usd(value: float | None, digits: int | None = None) -> str:
    """Money as everywhere else (money.format_usd); ``digits`` fixes the
    decimals instead (chart axes, projections)."""
    if value is None or digits is None:
        return format_usd(value)
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.{digits}f}"


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


def _num(value: float | int | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def _ljust(value: Any, width: int) -> str:
    return str(value).ljust(width)


def _rjust(value: Any, width: int) -> str:
    return str(value).rjust(width)


def _cell(value: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("`", "'")


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mcp_tars", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False),
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined,
    )
    env.filters.update(usd=_usd, pct=_pct, num=_num, ms=_ms, cell=_cell, lj=_ljust, rj=_rjust)
    return env


def render_markdown(report: dict, *, settings: ReportSettings | None = None) -> str:
    """The Markdown report: summary, strategy dashboard, before/after tree(s),
    the grouped table, warnings and the footer on how savings are measured."""
    settings = settings or ReportSettings()
    if report["group_by"] == "day" and report["groups"]:
        trees = [{"label": g["key"], "f": g} for g in report["groups"][-settings.daily_tree_days:]]
    else:
        label = report["since"] if report["days"] == 1 else f"{report['since']} to {report['until']}"
        trees = [{"label": label or "no calls yet", "f": report["totals"]}]
    return _environment().get_template("report.md.j2").render(
        r=report, t=report["totals"], trees=trees, levers=LEVERS, shown_days=len(trees),
    )


# -- terminal ---------------------------------------------------------------------------


def render_terminal(report: dict, console) -> None:
    """Rich tables for ``mcp-tars report`` in a terminal."""
    from rich.table import Table
    from rich.text import Text  # keys and warnings are data: never read them as console markup

    t = report["totals"]
    title = f"mcp-tars cost report: {report['period']}"
    if report["since"]:
        title += f" ({report['since']} to {report['until']})"
    summary = Table(title=title, show_header=False, title_justify="left")
    summary.add_column(style="bold")
    summary.add_column(justify="right")
    summary.add_row("Calls", f"{t['calls']:,} (API {t['api_calls'] + t['batch_calls']:,}: immediate {t['api_calls']:,} · "
                             f"batch {t['batch_calls']:,}; cache hits {t['cache_hits']:,})")
    summary.add_row("Cost", _usd(t["cost_usd"]))
    summary.add_row("Baseline (without mcp-tars)", _usd(t["baseline_cost_usd"]))
    summary.add_row("Saved", f"{_usd(t['saved_usd'])} ({_pct(t['savings_share'])})")
    summary.add_row("Cache hit rate", f"{_pct(t['cache_hit_rate'])} (exact {t['cache_hits_exact']:,} · semantic {t['cache_hits_semantic']:,})")
    summary.add_row("Average cost per call", _usd(t["avg_cost_per_call"]))
    summary.add_row("Average latency", _ms(t["avg_latency_ms"]))
    summary.add_row("Tokens", f"in {t['input_tokens']:,} · cache write 5m {t['cache_write_5m_tokens']:,} · "
                              f"1h {t['cache_write_1h_tokens']:,} · cache read {t['cache_read_tokens']:,} · out {t['output_tokens']:,}")
    console.print(summary)

    levers = Table(title="Savings by lever", title_justify="left")
    for name, justify in (("Lever", "left"), ("Saved", "right"), ("Share", "right"), ("Of baseline", "right"), ("Basis", "left")):
        levers.add_column(name, justify=justify)
    for lever in LEVERS:
        s = report["savings_by_lever"][lever.key]
        levers.add_row(lever.label, _usd(s["usd"]), _pct(s["share"]), _pct(s["share_of_baseline"]), s["basis"])
    levers.add_row("Total", _usd(t["saved_usd"]), _pct(1.0 if t["saved_usd"] else None), _pct(t["savings_share"]), "", style="bold")
    console.print(levers)

    groups = Table(title=f"By {report['group_by']}", title_justify="left")
    if report["group_by"] == "strategy":
        groups.caption = ("Groups overlap: a call counts under every strategy that changed its cost; "
                          "the savings by strategy add up to the total.")
        for name in ("Strategy", "Calls", "Calls helped", "Cost", "Baseline", "Saved by it", "Share", "Of baseline",
                     "Basis"):
            groups.add_column(name, justify="left" if name in ("Strategy", "Basis") else "right")
        for g in report["groups"]:
            groups.add_row(g["label"], f"{g['calls']:,}", f"{g['calls_helped']:,}", _usd(g["cost_usd"]),
                           _usd(g["baseline_cost_usd"]), _usd(g["lever_saved_usd"]), _pct(g["share"]),
                           _pct(g["share_of_baseline"]), g["basis"])
    else:
        names = ("Key", "Calls", "Cache hits", "Input", "Cache write", "Cache read", "Output", "Cost", "Baseline", "Saved")
        for name in names:
            groups.add_column(name, justify="left" if name == "Key" else "right", overflow="fold")
        for g in report["groups"]:
            groups.add_row(Text(str(g["key"])), f"{g['calls']:,}", f"{g['cache_hits']:,}", f"{g['input_tokens']:,}",
                           f"{g['cache_write_5m_tokens'] + g['cache_write_1h_tokens']:,}", f"{g['cache_read_tokens']:,}",
                           f"{g['output_tokens']:,}", _usd(g["cost_usd"]), _usd(g["baseline_cost_usd"]), _usd(g["saved_usd"]))
    console.print(groups)
    for w in report["warnings"]:
        console.print(Text("warning: ", style="yellow") + Text(w), highlight=False)
    console.print("[dim]Routing and pruning savings are estimates (counterfactual costs); cache, prompt caching "
                  "and batch savings are measured from the API's usage.[/dim]")


# -- HTML with inline SVG charts --------------------------------------------------------------

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")
LEVER_COLORS = {"cache": "#59a14f", "routing": "#4e79a7", "pruning": "#f28e2b", "prompt_cache": "#76b7b2", "batch": "#b07aa1"}


def _nice_max(value: float) -> float:
    """A round axis maximum at or above ``value``."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        top = step * 10 ** exponent
        if top >= value * (1 - 1e-12):
            return top
    return 10 ** (exponent + 1)


def _ticks(top: float, n: int = 4) -> list[float]:
    return [top * i / n for i in range(n + 1)]


@dataclass(frozen=True)
class _Frame:
    width: int = 760
    height: int = 300
    left: int = 64
    right: int = 16
    top: int = 16
    bottom: int = 48

    @property
    def plot_w(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_h(self) -> float:
        return self.height - self.top - self.bottom


def _daily_cost_chart(days: list[str], day_model: dict[tuple[str, str], float], baseline: dict[str, float],
                      models: list[str], colors: dict[str, str]) -> dict:
    f = _Frame()
    if not days or not baseline:  # no day with calls
        return {"frame": f, "empty": True}
    stack_max = max(sum(day_model.get((d, m), 0.0) for m in models) for d in days)
    top = _nice_max(max(stack_max, max(baseline.get(d, 0.0) for d in days)))
    slot = f.plot_w / len(days)
    bar_w = max(1.0, slot * 0.7)
    bars, points = [], []
    for i, d in enumerate(days):
        x = f.left + i * slot + (slot - bar_w) / 2
        y_base = f.top + f.plot_h
        for m in models:
            v = day_model.get((d, m), 0.0)
            if v <= 0:
                continue
            h = v / top * f.plot_h
            y_base -= h
            bars.append({"x": x, "y": y_base, "w": bar_w, "h": h, "color": colors[m], "title": f"{d} {m}: {_usd(v)}"})
        points.append((f.left + (i + 0.5) * slot, f.top + f.plot_h - baseline.get(d, 0.0) / top * f.plot_h,
                       f"{d} baseline: {_usd(baseline.get(d, 0.0))}"))
    path = "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y, _ in points)
    every = max(1, math.ceil(len(days) / 10))
    labels = [{"x": f.left + (i + 0.5) * slot, "text": d[5:]} for i, d in enumerate(days) if i % every == 0 or i == len(days) - 1]
    ticks = [{"y": f.top + f.plot_h - v / top * f.plot_h, "text": _usd(v, 2)} for v in _ticks(top)]
    return {"frame": f, "empty": False, "bars": bars, "baseline_path": path,
            "baseline_points": [{"x": x, "y": y, "title": t} for x, y, t in points],
            "x_labels": labels, "y_ticks": ticks,
            "legend": [{"label": m, "color": colors[m]} for m in models]}


def _lever_chart(levers: dict[str, dict]) -> dict:
    f = _Frame(height=40 + 36 * len(LEVERS), left=150, right=110, top=10, bottom=30)
    values = [levers[k]["usd"] for k in LEVER_KEYS]
    low, high = min(0.0, *values), max(0.0, *values)
    if low == high == 0.0:
        return {"frame": f, "empty": True}
    span_top = _nice_max(max(abs(low), abs(high)))
    neg = span_top if low < 0 else 0.0
    pos = span_top if high > 0 else 0.0
    scale = f.plot_w / (neg + pos)
    zero_x = f.left + neg * scale
    bars = []
    for i, lever in enumerate(LEVERS):
        v = levers[lever.key]["usd"]
        y = f.top + i * 36 + 6
        w = abs(v) * scale
        bars.append({"x": zero_x - w if v < 0 else zero_x, "y": y, "w": w, "h": 24, "label": lever.label,
                     "value": _usd(v), "basis": lever.basis, "color": LEVER_COLORS[lever.key],
                     "label_y": y + 16, "value_x": (zero_x + w + 6) if v >= 0 else (zero_x + 6)})
    return {"frame": f, "empty": False, "bars": bars, "zero_x": zero_x}


def _hit_rate_chart(days: list[str], day_rows: dict[str, dict]) -> dict:
    f = _Frame(height=240)
    active = [d for d in days if day_rows.get(d, {}).get("calls")]
    if not active:
        return {"frame": f, "empty": True}
    slot = f.plot_w / len(days)
    points = []
    for i, d in enumerate(days):
        row = day_rows.get(d)
        if not row or not row["calls"]:
            continue
        rate = row["cache_hits"] / row["calls"]
        points.append({"x": f.left + (i + 0.5) * slot, "y": f.top + f.plot_h * (1 - rate),
                       "title": f"{d}: {_pct(rate)} of {row['calls']:,} calls"})
    path = "M" + " L".join(f"{p['x']:.1f},{p['y']:.1f}" for p in points)
    if len(points) == 1:  # one day: draw a short level segment so the line is visible
        p = points[0]
        path = f"M{p['x'] - slot * 0.35:.1f},{p['y']:.1f} L{p['x'] + slot * 0.35:.1f},{p['y']:.1f}"
    every = max(1, math.ceil(len(days) / 10))
    labels = [{"x": f.left + (i + 0.5) * slot, "text": d[5:]} for i, d in enumerate(days) if i % every == 0 or i == len(days) - 1]
    ticks = [{"y": f.top + f.plot_h * (1 - v), "text": _pct(v, 0)} for v in _ticks(1.0)]
    return {"frame": f, "empty": False, "path": path, "points": points, "x_labels": labels, "y_ticks": ticks}


def render_html(store: Store, *, tenant: str | None = None, period: str = "30d", now: float | None = None,
                since: str | None = None, until: str | None = None, budget: dict | None = None,
                group_by: str = "day", settings: ReportSettings | None = None) -> str:
    """One self-contained HTML file: totals, daily cost stacked by model
    against the baseline, savings by lever, cache hit rate over time, and the
    tables behind them, the one of ``group_by`` first (by strategy: the
    savings by lever). Charts are inline SVG drawn here; the page loads
    nothing from anywhere."""
    if group_by not in GROUP_BYS:
        raise ValueError(f"unknown group_by {group_by!r}; use one of {', '.join(GROUP_BYS)}")
    report = build_report(store, tenant=tenant, period=period, group_by="day", since=since, until=until,
                          budget=budget, now=now, settings=settings)
    first, last = report["since"], report["until"]
    days = _days_between(first, last) if first and last and first <= last else []
    day_rows = {g["key"]: g for g in report["groups"]}
    day_model = {(r["day"], r["model"]): float(r["cost_usd"] or 0.0)
                 for r in report_store.sums(store, tenant=tenant, first_day=first, last_day=last, by=("day", "model"))}
    models = sorted(report["totals"]["model_mix"], key=lambda m: -report["totals"]["model_mix"][m]["cost_usd"])
    colors = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(sorted(models))}
    baseline = {d: day_rows[d]["baseline_cost_usd"] for d in day_rows}
    charts = {
        "daily_cost": _daily_cost_chart(days, day_model, baseline, models, colors),
        "levers": _lever_chart(report["savings_by_lever"]),
        "hit_rate": _hit_rate_chart(days, day_rows),
    }
    session_groups = (build_report(store, tenant=tenant, period=period, group_by="session", since=since, until=until,
                                   now=now, settings=settings)["groups"] if group_by == "session" else [])
    return _environment().get_template("report.html.j2").render(
        r=report, t=report["totals"], charts=charts, levers=LEVERS, colors=colors, group_by=group_by,
        session_groups=session_groups,
        lever_groups={g["key"]: g for g in _strategy_groups(
            report["savings_by_lever"], report_store.lever_sums(store, tenant=tenant, first_day=first, last_day=last),
            report["totals"]["calls"])},
        model_groups=[{"key": r["model"], **figures(r)} for r in sorted(
            report_store.sums(store, tenant=tenant, first_day=first, last_day=last, by=("model",)),
            key=lambda r: -float(r["cost_usd"] or 0.0))],
    )

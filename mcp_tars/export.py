"""``costs.json``: the original brief's per-day optimization record, from the ledger.

    {"2026-02-13": {"optimizations": {
        "caching":         {"hits", "tokensSaved", "costSaved"},
        "contextPruning":  {"taskCount", "tokensSaved", "costSaved"},
        "modelRouting":    {"haikuTasks", "sonnetTasks", "costSaved"},
        "batchProcessing": {"batchCount", "tokensSaved", "costSaved"},
        "totalSavings":    {"tokensSaved", "costSaved"}}}}

Beyond the brief's shape, each day also carries ``promptCaching`` (a lever the
brief did not know) so that ``totalSavings.costSaved`` is the sum of the five
levers' savings, ``modelRouting.opusTasks``/``otherTasks``/``tasksByModel``, and
the day's ``calls``, ``cost``, ``baselineCost`` and ``basis`` (which savings are
measured, which estimated).

Token savings are what the ledger knows: tokens removed by pruning, and the
tokens of the calls that cache hits replaced (``decisions.cache.replaced_tokens``
on the hit's row; null for a day whose hits do not record it). Batches and
routing change prices, not tokens: they report 0 tokens saved.
"""

from __future__ import annotations

from .reports import LEVERS, figures
from .store import Store
from .store import reports as report_store

_FAMILIES = ("haiku", "sonnet", "opus")


def _family(model: str) -> str:
    return next((f for f in _FAMILIES if f in model), "other")


def _usd(value: float) -> float:
    return round(value, 6)


def costs_json(store: Store, *, tenant: str | None = None, since: str | None = None,
               until: str | None = None) -> dict:
    """One entry per UTC day with ledger rows, oldest first."""
    days = report_store.sums(store, tenant=tenant, first_day=since, last_day=until, by=("day",))
    by_day_model: dict[str, list[dict]] = {}
    for r in report_store.sums(store, tenant=tenant, first_day=since, last_day=until, by=("day", "model")):
        by_day_model.setdefault(r["day"], []).append(r)
    batches = report_store.batches_ingested_per_day(store, tenant=tenant, first_day=since, last_day=until)
    out: dict[str, dict] = {}
    for row in days:
        day = row["day"]
        f = figures(row)
        lever = {k: _usd(v) for k, v in f["savings_by_lever_usd"].items()}
        # The total is the sum of the rounded parts, so the file adds up as printed.
        total_saved = _usd(sum(lever.values()))
        if f["cache_hits_with_tokens"]:
            cache_tokens = f["cache_tokens_replaced"]
        else:
            cache_tokens = None if f["cache_hits"] else 0
        families = {family: 0 for family in (*_FAMILIES, "other")}
        tasks_by_model = {}
        for m in by_day_model.get(day, []):
            families[_family(m["model"])] += int(m["calls"])
            tasks_by_model[m["model"]] = int(m["calls"])
        out[day] = {
            "calls": f["calls"],
            "cost": _usd(f["cost_usd"]),
            "baselineCost": _usd(f["baseline_cost_usd"]),
            "optimizations": {
                "caching": {"hits": f["cache_hits"], "exactHits": f["cache_hits_exact"],
                            "semanticHits": f["cache_hits_semantic"], "tokensSaved": cache_tokens,
                            "costSaved": lever["cache"]},
                "contextPruning": {"taskCount": f["pruned_calls"], "tokensSaved": f["tokens_pruned"],
                                   "costSaved": lever["pruning"]},
                "modelRouting": {"haikuTasks": families["haiku"], "sonnetTasks": families["sonnet"],
                                 "opusTasks": families["opus"], "otherTasks": families["other"],
                                 "tasksByModel": tasks_by_model, "costSaved": lever["routing"]},
                "promptCaching": {"cacheReadTokens": f["cache_read_tokens"],
                                  "cacheWriteTokens": f["cache_write_5m_tokens"] + f["cache_write_1h_tokens"],
                                  "costSaved": lever["prompt_cache"]},
                "batchProcessing": {"batchCount": batches.get(day, 0), "batchedTasks": f["batch_calls"],
                                    "tokensSaved": 0, "costSaved": lever["batch"]},
                "totalSavings": {"tokensSaved": f["tokens_pruned"] + (cache_tokens or 0), "costSaved": total_saved},
            },
            "basis": {lv.key: lv.basis for lv in LEVERS},
        }
        if f["unknown_price_calls"]:
            out[day]["unknownPriceCalls"] = f["unknown_price_calls"]
    return out

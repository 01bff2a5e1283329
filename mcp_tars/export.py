"""Exports from the ledger: ``costs.json`` (the original brief's per-day
optimization record), ``costs.csv`` (the same days as a table) and
``ledger.csv`` (one row per call, for spreadsheets and your own analysis).

``costs.json``:

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

import csv
import io

from .money import clean_float
from .reports import LEVERS, figures
from .store import Store
from .store import ledger
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


COSTS_CSV_COLUMNS = ("day", "calls", "api_calls", "batch_calls", "cache_hits", "cost_usd", "baseline_cost_usd",
                     "saved_usd", *(f"saved_{lv.key}_usd" for lv in LEVERS), "tokens_pruned", "unknown_price_calls")
# What a call cost and saved, and why; not the prompt-cache and pruning details (JSON), nor the decisions.
LEDGER_CSV_COLUMNS = ("ts", "day", "tenant", "session_id", "source", "model", "requested_model", "service_tier",
                      "input_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens",
                      "output_tokens", "cost_usd", "baseline_cost_usd", "saved_usd", "saved_cache_usd",
                      "saved_routing_usd", "saved_pruning_usd", "saved_prompt_cache_usd", "saved_batch_usd",
                      "baseline_estimated", "pricing_source", "cache_kind", "routing_level", "routing_score",
                      "tokens_before_pruning", "tokens_after_pruning", "stop_reason", "latency_ms", "attempts",
                      "task_id", "response_id", "request_id")


def _cell(value):
    return clean_float(value) if isinstance(value, float) else value


def costs_csv(store: Store, *, tenant: str | None = None, since: str | None = None,
              until: str | None = None) -> tuple[str, int]:
    """One row per UTC day with ledger rows (the figures of costs.json), and the number of days."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COSTS_CSV_COLUMNS)
    days = report_store.sums(store, tenant=tenant, first_day=since, last_day=until, by=("day",))
    for row in days:
        f = figures(row)
        lever = f["savings_by_lever_usd"]
        writer.writerow([row["day"], f["calls"], f["api_calls"], f["batch_calls"], f["cache_hits"],
                         *(_cell(f[k]) for k in ("cost_usd", "baseline_cost_usd", "saved_usd")),
                         *(_cell(lever[lv.key]) for lv in LEVERS), f["tokens_pruned"], f["unknown_price_calls"]])
    return out.getvalue(), len(days)


def ledger_csv(store: Store, *, tenant: str | None = None, since: str | None = None,
               until: str | None = None) -> tuple[str, int]:
    """Every ledger row (one per call, cache hit or batch result) in the
    order recorded, and the number of rows. ``ts`` is Unix seconds (UTC)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(LEDGER_CSV_COLUMNS)
    count = 0
    for row in ledger.iter_rows(store, LEDGER_CSV_COLUMNS, tenant=tenant, first_day=since, last_day=until):
        writer.writerow([_cell(v) for v in row])
        count += 1
    return out.getvalue(), count
